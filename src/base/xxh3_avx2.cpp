// XXH3 for CPUs with AVX2 (compiled with -mavx2); see xxh3.h.
#define CRYO_XXH3_VARIANT avx2_variant
#define CRYO_XXH3_VARIANT_NAME "avx2"
#include "base/xxh3_variant.inc"
