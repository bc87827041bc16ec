#include "image/format.h"

#include <fmt/format.h>

namespace cryo::image {

std::string_view kind_name(ImageKind kind)
{
    switch (kind) {
    case ImageKind::Manifest: return "manifest";
    case ImageKind::Tree: return "process tree";
    case ImageKind::Core: return "process core";
    case ImageKind::Memory: return "memory map";
    case ImageKind::PageMap: return "page map";
    case ImageKind::FdTable: return "descriptor table";
    case ImageKind::FileTable: return "file table";
    case ImageKind::Stats: return "statistics";
    case ImageKind::DedupJournal: return "dedup journal";
    }
    return "unknown";
}

std::string core_name(int pid) { return fmt::format("core-{}.img", pid); }
std::string memory_name(int pid) { return fmt::format("mm-{}.img", pid); }
std::string pagemap_name(int pid) { return fmt::format("pagemap-{}.img", pid); }
std::string pages_name(int pid) { return fmt::format("pages-{}.img", pid); }
std::string fdtable_name(int pid) { return fmt::format("fds-{}.img", pid); }

bool is_safe_image_name(std::string_view name)
{
    if (name.empty() || name.size() > 200 || name == "." || name == "..")
        return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

} // namespace cryo::image
