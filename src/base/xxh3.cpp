// The baseline XXH3 and the choice among the compiled ones; see xxh3.h.
#define CRYO_XXH3_VARIANT sse2_variant
#define CRYO_XXH3_VARIANT_NAME "sse2"
#include "base/xxh3_variant.inc"

#include <new>
#include <utility>
#include <vector>

namespace cryo::xxh3 {

extern const Variant avx2_variant;
extern const Variant avx512_variant;

namespace {

// The CPU's and the kernel's support (GCC's check includes XCR0, so a
// kernel that does not save the wide registers rules them out too), widest
// first.
std::vector<const Variant*> runnable()
{
    __builtin_cpu_init();   // static constructors may run before libgcc's
    std::vector<const Variant*> variants;
    if (__builtin_cpu_supports("avx512f"))
        variants.push_back(&avx512_variant);
    if (__builtin_cpu_supports("avx2"))
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
