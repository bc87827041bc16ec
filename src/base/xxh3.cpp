// The baseline XXH3 and the choice among the compiled ones; see xxh3.h.
#define CRYO_XXH3_VARIANT sse2_variant
#define CRYO_XXH3_VARIANT_NAME "sse2"
#include "base/xxh3_variant.inc"

#include <sys/platform/x86.h>

#include <new>
#include <utility>
#include <vector>

namespace cryo::xxh3 {

extern const Variant avx2_variant;
extern const Variant avx512_variant;

namespace {

// The CPU's and the kernel's support, widest first, as the C library found
// it at start ("active" includes XCR0: a kernel that does not save the wide
// registers rules them out too). GCC's __builtin_cpu_supports would link
// libgcc's own probe, which runs at every start and asks the CPU again:
// each CPUID is a trap to the hypervisor in a VM.
std::vector<const Variant*> runnable()
{
    std::vector<const Variant*> variants;
    if (CPU_FEATURE_ACTIVE(AVX512F))
        variants.push_back(&avx512_variant);
    if (CPU_FEATURE_ACTIVE(AVX2))
        variants.push_back(&avx2_variant);
    variants.push_back(&sse2_variant);
    return variants;
}

const Variant& chosen()
{
    static const Variant& variant = *runnable().front();
    return variant;
}

} // namespace

std::vector<const Variant*> usable_variants() { return runnable(); }

uint64_t hash(const void* data, size_t size) { return chosen().hash(data, size); }

const char* instruction_set() { return chosen().name; }

Stream::Stream(uint64_t seed) : m_state(chosen().create())
{
    if (!m_state)
        throw std::bad_alloc();
    reset(seed);
}

Stream::Stream(Stream&& other) noexcept : m_state(std::exchange(other.m_state, nullptr)) { }

Stream& Stream::operator=(Stream&& other) noexcept
{
    if (this != &other) {
        if (m_state)
            chosen().destroy(m_state);
        m_state = std::exchange(other.m_state, nullptr);
    }
    return *this;
}

Stream::~Stream()
{
    if (m_state)
        chosen().destroy(m_state);
}

void Stream::reset(uint64_t seed) { chosen().reset(m_state, seed); }

void Stream::update(const void* data, size_t size) { chosen().update(m_state, data, size); }

uint64_t Stream::digest() const { return chosen().digest(m_state); }

} // namespace cryo::xxh3
