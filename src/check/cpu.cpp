// See cpu.h.
#include "check/cpu.h"

#include <cpuid.h>

#include <fmt/format.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"

namespace cryo::check {

namespace {

// The features a program may choose a code path by.
struct Feature {
    enum Word { Leaf1Ecx, Leaf1Edx, Leaf7Ebx, Leaf7Ecx, Leaf7Edx, Ext1Ecx, Ext1Edx, Xcr0 } word;
    int bit;
    const char* name;
};

constexpr Feature kFeatures[] = {
    { Feature::Leaf1Edx, 23, "mmx" }, { Feature::Leaf1Edx, 25, "sse" }, { Feature::Leaf1Edx, 26, "sse2" },
    { Feature::Leaf1Ecx, 0, "sse3" }, { Feature::Leaf1Ecx, 1, "pclmulqdq" }, { Feature::Leaf1Ecx, 9, "ssse3" },
    { Feature::Leaf1Ecx, 12, "fma" }, { Feature::Leaf1Ecx, 13, "cx16" }, { Feature::Leaf1Ecx, 19, "sse4_1" },
    { Feature::Leaf1Ecx, 20, "sse4_2" }, { Feature::Leaf1Ecx, 22, "movbe" }, { Feature::Leaf1Ecx, 23, "popcnt" },
    { Feature::Leaf1Ecx, 25, "aes" }, { Feature::Leaf1Ecx, 26, "xsave" }, { Feature::Leaf1Ecx, 28, "avx" },
    { Feature::Leaf1Ecx, 29, "f16c" }, { Feature::Leaf1Ecx, 30, "rdrand" },
    { Feature::Leaf7Ebx, 0, "fsgsbase" }, { Feature::Leaf7Ebx, 3, "bmi1" }, { Feature::Leaf7Ebx, 5, "avx2" },
    { Feature::Leaf7Ebx, 8, "bmi2" }, { Feature::Leaf7Ebx, 9, "erms" }, { Feature::Leaf7Ebx, 16, "avx512f" },
    { Feature::Leaf7Ebx, 17, "avx512dq" }, { Feature::Leaf7Ebx, 18, "rdseed" }, { Feature::Leaf7Ebx, 19, "adx" },
    { Feature::Leaf7Ebx, 21, "avx512ifma" }, { Feature::Leaf7Ebx, 23, "clflushopt" }, { Feature::Leaf7Ebx, 24, "clwb" },
    { Feature::Leaf7Ebx, 28, "avx512cd" }, { Feature::Leaf7Ebx, 29, "sha" }, { Feature::Leaf7Ebx, 30, "avx512bw" },
    { Feature::Leaf7Ebx, 31, "avx512vl" },
    { Feature::Leaf7Ecx, 1, "avx512vbmi" }, { Feature::Leaf7Ecx, 3, "pku" }, { Feature::Leaf7Ecx, 6, "avx512_vbmi2" },
    { Feature::Leaf7Ecx, 8, "gfni" }, { Feature::Leaf7Ecx, 9, "vaes" }, { Feature::Leaf7Ecx, 10, "vpclmulqdq" },
    { Feature::Leaf7Ecx, 11, "avx512_vnni" }, { Feature::Leaf7Ecx, 12, "avx512_bitalg" },
    { Feature::Leaf7Ecx, 14, "avx512_vpopcntdq" }, { Feature::Leaf7Ecx, 22, "rdpid" },
    { Feature::Leaf7Ecx, 27, "movdiri" }, { Feature::Leaf7Ecx, 28, "movdir64b" },
    { Feature::Leaf7Edx, 8, "avx512_vp2intersect" }, { Feature::Leaf7Edx, 14, "serialize" },
    { Feature::Leaf7Edx, 22, "amx_bf16" }, { Feature::Leaf7Edx, 23, "avx512_fp16" }, { Feature::Leaf7Edx, 24, "amx_tile" },
    { Feature::Leaf7Edx, 25, "amx_int8" },
    { Feature::Ext1Ecx, 0, "lahf_lm" }, { Feature::Ext1Ecx, 5, "abm" }, { Feature::Ext1Ecx, 6, "sse4a" },
    { Feature::Ext1Ecx, 8, "prefetchw" }, { Feature::Ext1Ecx, 16, "fma4" },
    { Feature::Ext1Edx, 27, "rdtscp" }, { Feature::Ext1Edx, 29, "lm" },
    { Feature::Xcr0, 1, "xsave sse state" }, { Feature::Xcr0, 2, "xsave avx state" },
    { Feature::Xcr0, 5, "xsave avx-512 opmask state" }, { Feature::Xcr0, 6, "xsave avx-512 zmm_hi256 state" },
    { Feature::Xcr0, 7, "xsave avx-512 hi16_zmm state" }, { Feature::Xcr0, 9, "xsave pkru state" },
    { Feature::Xcr0, 17, "xsave amx tilecfg state" }, { Feature::Xcr0, 18, "xsave amx tiledata state" },
};

uint64_t word_of(const image::CpuFeatures& features, Feature::Word word)
{
    switch (word) {
    case Feature::Leaf1Ecx: return features.leaf1_ecx();
    case Feature::Leaf1Edx: return features.leaf1_edx();
    case Feature::Leaf7Ebx: return features.leaf7_ebx();
    case Feature::Leaf7Ecx: return features.leaf7_ecx();
    case Feature::Leaf7Edx: return features.leaf7_edx();
    case Feature::Ext1Ecx: return features.ext1_ecx();
    case Feature::Ext1Edx: return features.ext1_edx();
    case Feature::Xcr0: return features.xcr0();
    }
    return 0;
}

uint64_t read_xcr0()
{
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!(ecx & (1u << 27)))   // OSXSAVE: xgetbv allowed
        return 0;
    uint32_t low = 0, high = 0;
    asm volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return (static_cast<uint64_t>(high) << 32) | low;
}

std::string model_name()
{
    auto text = read_text_file("/proc/cpuinfo");
    if (!text)
        return "";
    auto at = text->find("model name");
    if (at == std::string::npos)
        return "";
    auto colon = text->find(':', at);
    auto end = text->find('\n', at);
    if (colon == std::string::npos || colon > end)
        return "";
    auto name = text->substr(colon + 1, end - colon - 1);
    return name.substr(name.find_first_not_of(' ') == std::string::npos ? 0 : name.find_first_not_of(' '));
}

} // namespace

image::CpuFeatures current_cpu_features()
{
    image::CpuFeatures features;
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid(0, eax, ebx, ecx, edx);
    uint32_t max_leaf = eax;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    features.set_vendor(vendor);
    features.set_model_name(model_name());
    __cpuid(1, eax, ebx, ecx, edx);
    features.set_leaf1_ecx(ecx);
    features.set_leaf1_edx(edx);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        features.set_leaf7_ebx(ebx);
        features.set_leaf7_ecx(ecx);
        features.set_leaf7_edx(edx);
    }
    __cpuid(0x80000000, eax, ebx, ecx, edx);
    if (eax >= 0x80000001) {
        __cpuid(0x80000001, eax, ebx, ecx, edx);
        features.set_ext1_ecx(ecx);
        features.set_ext1_edx(edx);
    }
    features.set_xcr0(read_xcr0());
    return features;
}

Result<void> compare_cpu_features(const image::CpuFeatures& recorded, const image::CpuFeatures& current)
{
    std::vector<std::string> missing;
    for (const auto& feature : kFeatures) {
        uint64_t bit = 1ull << feature.bit;
        if ((word_of(recorded, feature.word) & bit) && !(word_of(current, feature.word) & bit))
            missing.emplace_back(feature.name);
    }
    if (missing.empty())
        return {};
    return fail("the checkpoint was taken on a CPU with {} that this one ({}) lacks: the restored program may die of "
                "SIGILL or lose register state; --skip-cpu-check restores anyway (taken on: {})",
                fmt::join(missing, ", "), current.model_name().empty() ? current.vendor() : current.model_name(),
                recorded.model_name().empty() ? recorded.vendor() : recorded.model_name());
}

} // namespace cryo::check
