// XXH3 for CPUs with AVX-512 (compiled with -mavx512f); see xxh3.h.
#define CRYO_XXH3_VARIANT avx512_variant
#define CRYO_XXH3_VARIANT_NAME "avx512"
#include "base/xxh3_variant.inc"
