// See chain.h.
#include "inspect/chain.h"

#include <fmt/format.h>

#include "image/chain.h"
#include "image/reader.h"

namespace cryo::inspect {

Result<std::vector<Checkpoint>> open_ancestors(const Checkpoint& checkpoint, Verify verify)
{
    std::vector<Checkpoint> ancestors;
    ancestors.reserve(image::kMaxChainDepth);   // `child` points into it
    if (verify == Verify::Checksums)
        TRY(image::refuse_interrupted_dedup(checkpoint.directory()));
    const Checkpoint* child = &checkpoint;
    while (child->manifest() && !child->manifest()->parent().empty()) {
        if (ancestors.size() == image::kMaxChainDepth)
            return fail("{}: the chain of parent checkpoints is longer than {} (a cycle?)", checkpoint.directory(),
                        image::kMaxChainDepth);
        std::string path = verify == Verify::Checksums
            ? TRY(image::checked_parent(child->directory(), *child->manifest()))
            : image::resolve_parent(child->directory(), child->manifest()->parent());
        auto parent = TRY_CTX(Checkpoint::open(path, verify), "{}: parent checkpoint", child->directory());
        ancestors.push_back(std::move(parent));
        child = &ancestors.back();
    }
    return ancestors;
}

void warn_if_deduped(const Checkpoint& checkpoint)
{
    if (!checkpoint.manifest() || checkpoint.manifest()->deduped_by().empty())
        return;
    fmt::print(stderr, "cryo: warning: {} was deduplicated for {} (cryo dedup): the pages that checkpoint stores "
                       "itself were punched out here and read as zeros\n",
               checkpoint.directory(), image::resolve_parent(checkpoint.directory(), checkpoint.manifest()->deduped_by()));
}

Result<void> run_check_chain(const std::string& directory)
{
    auto describe = [](const image::ImageReader& reader) {
        const auto& manifest = reader.manifest();
        uint64_t bytes = 0;
        for (const auto& file : manifest.files())
            bytes += file.size();
        return fmt::format("{} files, {:.1f} MiB{}{}", manifest.files_size(), static_cast<double>(bytes) / (1 << 20),
                           manifest.pre_dump() ? ", a pre-dump" : "",
                           manifest.deduped_by().empty() ? ""
                                                         : fmt::format(", deduplicated for {}",
                                                                       image::resolve_parent(reader.directory(),
                                                                                             manifest.deduped_by())));
    };
    auto reader = TRY(image::ImageReader::open(directory));
    TRY(reader.verify());
    auto chain = TRY(image::ParentChain::open(directory, reader.manifest()));
    fmt::print("{}: verified ({})\n", directory, describe(reader));
    for (size_t n = 1; n <= chain.depth(); ++n)
        fmt::print("  ancestor {} {}: verified, the one recorded ({})\n", n, chain.ancestor(n).directory(),
                   describe(chain.ancestor(n)));
    fmt::print("cryo check: the checkpoint and its {} ancestor(s) are complete and consistent\n", chain.depth());
    return {};
}

} // namespace cryo::inspect
