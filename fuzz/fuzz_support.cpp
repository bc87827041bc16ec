// See fuzz_support.h.
#include "fuzz_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <map>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "image/format.h"
#include "image/reader.h"
#include "image/writer.h"

namespace cryo::fuzz {

Pack unpack(std::span<const uint8_t> input)
{
    Pack result;
    if (input.empty())
        return result;
    result.flags = input[0];
    size_t at = 1;
    while (at < input.size() && result.files.size() < kMaxPackedFiles) {
        size_t name_length = input[at++];
        if (input.size() - at < name_length + 4)
            break;
        std::string name(reinterpret_cast<const char*>(input.data() + at), name_length);
        at += name_length;
        uint32_t length = 0;
        std::memcpy(&length, input.data() + at, 4);
        at += 4;
        size_t available = std::min<size_t>(length, input.size() - at);
        std::string data(reinterpret_cast<const char*>(input.data() + at), available);
        at += available;
        bool repeated = false;
        for (const auto& file : result.files)
            repeated = repeated || file.name == name;
        if (image::is_safe_image_name(name) && !name.ends_with(".tmp") && !repeated)
            result.files.push_back({ std::move(name), std::move(data) });
    }
    return result;
}

std::string pack(const Pack& pack)
{
    std::string out(1, static_cast<char>(pack.flags));
    for (const auto& file : pack.files) {
        out += static_cast<char>(file.name.size());
        out += file.name;
        uint32_t length = static_cast<uint32_t>(file.data.size());
        out.append(reinterpret_cast<const char*>(&length), 4);
        out += file.data;
    }
    return out;
}

std::string fix_header(std::string bytes)
{
    image::FileHeader header;
    if (bytes.size() < sizeof(header))
        return bytes;
    std::memcpy(&header, bytes.data(), sizeof(header));
    header.payload_size = bytes.size() - sizeof(header);
    header.payload_xxh3 = XXH3_64bits(bytes.data() + sizeof(header), bytes.size() - sizeof(header));
    std::memcpy(bytes.data(), &header, sizeof(header));
    return bytes;
}

void fix_manifest(std::vector<PackedFile>& files)
{
    PackedFile* manifest_file = nullptr;
    std::map<std::string, const PackedFile*> by_name;
    for (auto& file : files) {
        if (file.name == image::kManifestName)
            manifest_file = &file;
        else
            by_name[file.name] = &file;
    }
    if (!manifest_file)
        return;
    image::Manifest manifest;
    if (!image::decode_image(manifest_file->data, image::ImageKind::Manifest, manifest))
        return;
    for (auto& record : *manifest.mutable_files()) {
        auto it = by_name.find(record.name());
        if (it == by_name.end())
            continue;
        record.set_size(it->second->data.size());
        record.set_xxh3(XXH3_64bits(it->second->data.data(), it->second->data.size()));
    }
    if (auto bytes = image::encode_image(image::ImageKind::Manifest, manifest))
        manifest_file->data = std::move(*bytes);
}

ScratchDir::ScratchDir()
{
    std::string base;
    if (const char* configured = std::getenv("CRYO_FUZZ_SCRATCH"); configured && *configured)
        base = configured;
    else if (::access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    else if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp)
        base = tmp;
    else
        base = "/tmp";
    std::string pattern = base + "/cryo-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data()))
        std::abort();
    m_path = pattern;
}

ScratchDir::~ScratchDir()
{
    clear();
    ::rmdir(m_path.c_str());
}

void ScratchDir::clear()
{
    DIR* listing = ::opendir(m_path.c_str());
    if (!listing)
        return;
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(listing))
        if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
            names.push_back(entry->d_name);
    ::closedir(listing);
    for (const auto& name : names) {
        std::string path = m_path + "/" + name;
        if (::unlink(path.c_str()) < 0)
            ::rmdir(path.c_str());
    }
}

void ScratchDir::write(const std::string& name, std::string_view data)
{
    std::string path = m_path + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        std::abort();
    while (!data.empty()) {
        ssize_t written = ::write(fd, data.data(), data.size());
        if (written <= 0)
            std::abort();
        data.remove_prefix(static_cast<size_t>(written));
    }
    ::close(fd);
}

void quiet()
{
    google::protobuf::SetLogHandler(nullptr);
    spdlog::set_level(spdlog::level::off);
}

} // namespace cryo::fuzz
