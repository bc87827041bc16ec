// See chain.h.
#include "image/chain.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>

#include "base/xxh3.h"

namespace cryo::image {

std::string resolve_parent(const std::string& directory, const std::string& parent)
{
    // Lexically: the directory of a dump in progress may not exist yet
    // ("DIR2/../DIR1" must work before DIR2 is created).
    return (std::filesystem::path(directory) / parent).lexically_normal().string();
}

Result<uint64_t> manifest_checksum(const std::string& directory)
{
    auto path = fmt::format("{}/{}", directory, kManifestName);
    auto file = TRY(open_file(path, O_RDONLY | O_CLOEXEC));
    auto bytes = TRY(read_all(file.get(), path));
    return xxh3::hash(bytes.data(), bytes.size());
}

std::string fetched_ancestor_path(size_t n)
{
    std::string path;
    for (size_t level = 0; level < n; ++level)
        path += fmt::format("{}{}", level == 0 ? "" : "/", kFetchedParentName);
    return path;
}

bool verified_by_chunks(const ImageReader& reader, const ManifestFile& record)
{
    return record.name().starts_with("pages-") && !reader.encrypted() && !is_transformed(record)
        && record.chunk_xxh3_size() > 0;
}

Result<std::string> checked_parent(const std::string& child, const Manifest& child_manifest)
{
    auto path = resolve_parent(child, child_manifest.parent());
    // A parent fetched from a page server sits inside its child.
    if (struct stat st; ::stat(fmt::format("{}/{}", child, kFetchedParentName).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        path = fmt::format("{}/{}", child, kFetchedParentName);
    auto checksum = TRY_CTX(manifest_checksum(path), "{}: parent checkpoint {}", child, child_manifest.parent());
    if (checksum == child_manifest.parent_manifest_xxh3())
        return path;
    // Say why when the parent says it: thinned out for another checkpoint.
    if (auto parent = ImageReader::open(path); parent && !parent->manifest().deduped_by().empty())
        return fail("{}: parent checkpoint {} was deduplicated for {} since this checkpoint was made (cryo dedup): "
                    "pages this checkpoint needs may be gone from it", child, path,
                    resolve_parent(path, parent->manifest().deduped_by()));
    return fail("{}: parent checkpoint {} changed since this checkpoint was made (its manifest differs): "
                "refusing to mix pages of different checkpoints", child, path);
}

Result<void> refuse_deduped(const std::string& directory, const Manifest& manifest, std::string_view what)
{
    if (manifest.deduped_by().empty())
        return {};
    auto newest = resolve_parent(directory, manifest.deduped_by());
    return fail("{} was deduplicated for {} (cryo dedup): its page files keep only the pages that checkpoint needs, "
                "so it cannot be the {}; use {} instead", directory, newest, what, newest);
}

Result<void> refuse_interrupted_dedup(const std::string& directory)
{
    if (struct stat st; ::stat(fmt::format("{}/{}", directory, kDedupJournalName).c_str(), &st) == 0)
        return fail("{}: an interrupted cryo dedup left its chain half rewritten (its pages are all there): run "
                    "`cryo dedup -D {}` again to finish it", directory, directory);
    return {};
}

Result<ParentChain> ParentChain::open(const std::string& directory, const Manifest& manifest, ChainVerify verify)
{
    ParentChain chain;
    TRY(refuse_interrupted_dedup(directory));
    chain.m_readers.reserve(kMaxChainDepth);   // child_manifest points into it
    std::string child = directory;
    const Manifest* child_manifest = &manifest;
    while (!child_manifest->parent().empty()) {
        if (chain.m_readers.size() == kMaxChainDepth)
            return fail("{}: the chain of parent checkpoints is longer than {} (a cycle?)", directory, kMaxChainDepth);
        auto path = TRY(checked_parent(child, *child_manifest));
        auto reader = TRY_CTX(ImageReader::open(path), "{}: parent checkpoint", child);
        if (verify != ChainVerify::LinksOnly)
            TRY_CTX(reader.verify([&](const std::string& name) {
                if (verify == ChainVerify::MetadataOnly)
                    return !name.starts_with("pages-");
                return verify == ChainVerify::Everything || !verified_by_chunks(reader, *reader.listed(name));
            }), "{}: parent checkpoint", child);
        chain.m_readers.push_back(std::move(reader));
        child = path;
        child_manifest = &chain.m_readers.back().manifest();
    }
    return chain;
}

Result<AncestorPageFiles> open_ancestor_page_files(const ParentChain& chain, const PageMap& map, int pid)
{
    AncestorPageFiles result;
    for (const auto& run : map.runs()) {
        size_t ancestor = run.ancestor();
        if (ancestor == 0 || ancestor > chain.depth())
            continue;
        if (result.files.size() < ancestor) {
            result.files.resize(ancestor);
            result.sizes.resize(ancestor);
        }
        if (result.files[ancestor - 1])
            continue;
        const auto& reader = chain.ancestor(ancestor);
        auto name = pages_name(pid);
        if (!reader.has_file(name))
            return fail("{}: pid {} has pages in ancestor checkpoint {} ({}), which has no {}", pagemap_name(pid), pid,
                        ancestor, reader.directory(), name);
        result.files[ancestor - 1] = TRY(reader.open_raw(name));
        result.sizes[ancestor - 1] = reader.file_size(name);
    }
    // Runs beyond the chain: refused by check_page_map() with these sizes.
    return result;
}

} // namespace cryo::image
