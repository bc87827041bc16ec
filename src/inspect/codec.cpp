// See codec.h. The outer document is parsed as a google.protobuf.Struct;
// each image's "message" is then printed back to JSON and parsed into the
// typed message, so every error protobuf's parser reports (unknown field,
// wrong type, bad enum name) comes with the image it is in.
#include "inspect/codec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "base/xxh3.h"
#include "image/reader.h"
#include "image/transform.h"
#include "image/writer.h"

namespace cryo::inspect {

namespace {

namespace pb = google::protobuf;

constexpr int kDocumentVersion = 1;
// A document holds at most every image at its largest, base64-encoded.
constexpr uint64_t kMaxDocumentSize = 4ull << 30;

std::string json_string(std::string_view text)
{
    std::string out = "\"";
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\')
            out += fmt::format("\\{}", c);
        else if (byte < 0x20)
            out += fmt::format("\\u{:04x}", byte);
        else
            out += c;
    }
    return out + "\"";
}

// Protobuf's JSON printer indents from column 0; nested in the document the
// message is indented by `indent` more. JSON strings never hold a raw
// newline, so every newline is a line break of the layout.
std::string indented(std::string_view json, std::string_view indent)
{
    std::string out;
    out.reserve(json.size() + json.size() / 8);
    for (char c : json) {
        out += c;
        if (c == '\n')
            out += indent;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
        out.pop_back();
    return out;
}

pb::util::JsonPrintOptions print_options()
{
    pb::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    return options;
}

Result<std::string> message_to_json(const pb::Message& message)
{
    std::string json;
    auto status = pb::util::MessageToJsonString(message, &json, print_options());
    if (!status.ok())
        return fail("cannot print as JSON: {}", status.ToString());
    return json;
}

Result<void> json_to_message(const std::string& json, pb::Message& message)
{
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = pb::util::JsonStringToMessage(json, &message, options);
    if (!status.ok())
        return fail("{}", status.message().as_string());
    return {};
}

// One image of a checkpoint as a document entry. Checks on the way that
// the JSON gives back the same payload, which fails only for messages this
// cryo cannot represent completely (fields of a newer cryo).
Result<std::string> image_entry(const Checkpoint& checkpoint, const std::string& name, image::ImageKind kind)
{
    auto message = new_message(name);
    std::string bytes = TRY(checkpoint.read_bytes(name, image::kMaxPayloadSize + sizeof(image::FileHeader)));
    TRY_CTX(image::decode_image(bytes, kind, *message), "{}", checkpoint.path(name));
    std::string json = TRY_CTX(message_to_json(*message), "{}", checkpoint.path(name));

    auto again = new_message(name);
    std::string payload;
    if (!json_to_message(json, *again) || !again->SerializeToString(&payload)
        || payload != std::string_view(bytes).substr(sizeof(image::FileHeader)))
        fmt::print(stderr, "cryo decode: warning: {} does not survive the JSON round trip (fields unknown to this cryo?); "
                           "encoding the document will not give the same file\n",
                   checkpoint.path(name));
    return fmt::format("    {{\n      \"name\": {},\n      \"kind\": {},\n      \"version\": {},\n      \"message\": {}\n    }}",
                       json_string(name), json_string(json_kind_name(name)), image::kFormatVersion,
                       indented(json, "      "));
}

struct ParsedImage {
    std::string name;
    image::ImageKind kind;
    std::unique_ptr<pb::Message> message;
};

const pb::Value* field(const pb::Struct& object, const std::string& key)
{
    auto it = object.fields().find(key);
    return it == object.fields().end() ? nullptr : &it->second;
}

Result<ParsedImage> parse_entry(const pb::Value& value, size_t index)
{
    if (value.kind_case() != pb::Value::kStructValue)
        return fail("images[{}]: not an object", index);
    const auto& object = value.struct_value();
    const auto* name = field(object, "name");
    const auto* kind_name = field(object, "kind");
    const auto* version = field(object, "version");
    const auto* message_value = field(object, "message");
    if (!name || name->kind_case() != pb::Value::kStringValue)
        return fail("images[{}]: no \"name\" string", index);
    std::string where = fmt::format("images[{}] ({})", index, name->string_value());
    if (!image::is_safe_image_name(name->string_value()))
        return fail("{}: not a valid image file name", where);
    if (!kind_name || kind_name->kind_case() != pb::Value::kStringValue)
        return fail("{}: no \"kind\" string", where);
    auto kind = kind_from_json_name(kind_name->string_value());
    if (!kind)
        return fail("{}: unknown kind \"{}\"", where, kind_name->string_value());
    if (json_kind_name(name->string_value()) != kind_name->string_value())
        return fail("{}: a file of this name cannot hold a {} image", where, kind_name->string_value());
    if (!version || version->kind_case() != pb::Value::kNumberValue)
        return fail("{}: no \"version\" number", where);
    if (version->number_value() != image::kFormatVersion)
        return fail("{}: format version {} is not supported (this cryo writes version {})", where,
                    version->number_value(), image::kFormatVersion);
    if (!message_value || message_value->kind_case() != pb::Value::kStructValue)
        return fail("{}: no \"message\" object", where);
    std::string json;
    auto status = pb::util::MessageToJsonString(*message_value, &json);
    if (!status.ok())
        return fail("{}: {}", where, status.message().as_string());
    ParsedImage parsed { name->string_value(), *kind, new_message(name->string_value()) };
    TRY_CTX(json_to_message(json, *parsed.message), "{}: message", where);
    return parsed;
}

Result<std::vector<ParsedImage>> parse_document(std::string_view document)
{
    pb::Struct root;
    pb::util::JsonParseOptions options;
    auto status = pb::util::JsonStringToMessage(pb::StringPiece(document.data(), document.size()), &root, options);
    if (!status.ok())
        return fail("not a JSON document: {}", status.message().as_string());
    const auto* version = field(root, "cryo_json");
    if (!version || version->kind_case() != pb::Value::kNumberValue || version->number_value() != kDocumentVersion)
        return fail("not a cryo JSON document (\"cryo_json\": {} expected)", kDocumentVersion);
    const auto* images = field(root, "images");
    if (!images || images->kind_case() != pb::Value::kListValue)
        return fail("no \"images\" list");
    std::vector<ParsedImage> parsed;
    std::set<std::string> names;
    for (int i = 0; i < images->list_value().values_size(); ++i) {
        auto entry = TRY(parse_entry(images->list_value().values(i), static_cast<size_t>(i)));
        if (!names.insert(entry.name).second)
            return fail("images[{}]: {} is in the document twice", i, entry.name);
        parsed.push_back(std::move(entry));
    }
    return parsed;
}

Result<std::string> read_input(const std::string& input)
{
    UniqueFd owned;
    int fd = STDIN_FILENO;
    if (!input.empty() && input != "-") {
        owned = TRY(open_file(input, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
        struct stat st;
        if (::fstat(owned.get(), &st) < 0)
            return fail_errno(fmt::format("stat {}", input));
        if (!S_ISREG(st.st_mode))
            return fail("{} is not a regular file", input);
        fd = owned.get();
    }
    std::string what = input.empty() || input == "-" ? "standard input" : input;
    std::string text;
    char buffer[1 << 16];
    for (;;) {
        ssize_t got = ::read(fd, buffer, sizeof(buffer));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail_errno(fmt::format("read {}", what));
        if (got == 0)
            break;
        if (text.size() + static_cast<size_t>(got) > kMaxDocumentSize)
            return fail("{} is larger than any document of a checkpoint ({} bytes)", what, kMaxDocumentSize);
        text.append(buffer, static_cast<size_t>(got));
    }
    return text;
}

// How encode stores images: as they are, or sealed again under the
// checkpoint's id when the checkpoint is encrypted.
struct EncodeSealing {
    const image::Key* key { nullptr };
    image::CheckpointId checkpoint_id {};
};

Result<EncodeSealing> encode_sealing(const image::Manifest& manifest, const std::optional<image::Key>& key)
{
    if (!manifest.has_encryption()) {
        if (key)
            return fail("a key was given (--key), but the document's manifest describes a checkpoint that is not encrypted");
        return EncodeSealing {};
    }
    if (!key)
        return fail("the document's manifest describes an encrypted checkpoint: give its key with --key KEYFILE "
                    "(the images are sealed again with it)");
    EncodeSealing sealing { &*key };
    const auto& id = manifest.encryption().checkpoint_id();
    if (manifest.encryption().cipher() != image::kSealCipher || id.size() != sealing.checkpoint_id.size())
        return fail("the manifest's encryption (cipher '{}', id of {} bytes) is not one this cryo writes",
                    manifest.encryption().cipher(), id.size());
    std::memcpy(sealing.checkpoint_id.data(), id.data(), id.size());
    return sealing;
}

// A file the manifest lists and encode does not write must already be in
// the directory, as the manifest describes it (in an encrypted checkpoint:
// sealed for it, and authenticated unless --no-verify).
Result<void> check_kept_file(int dir_fd, const std::string& directory, const image::ManifestFile& file, Verify verify,
                             const EncodeSealing& sealing)
{
    std::string path = fmt::format("{}/{}", directory, file.name());
    if (!image::is_safe_image_name(file.name()))
        return fail("the manifest lists an invalid file name '{}'", file.name());
    auto fd = open_file_at(dir_fd, file.name(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (!fd)
        return fail("{}: listed in the manifest but not there ({}); the JSON document holds no page data: "
                    "encode into the checkpoint's directory or a copy of it",
                    path, fd.error().message());
    struct stat st;
    if (::fstat(fd->get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode))
        return fail("{} is not a regular file", path);
    if (static_cast<uint64_t>(st.st_size) != file.size())
        return fail("{}: size is {} bytes, the manifest says {}", path, st.st_size, file.size());
    if (verify == Verify::Skip)
        return {};
    std::vector<std::byte> buffer(static_cast<size_t>(std::clamp<uint64_t>(file.size(), 1, 1 << 20)));
    uint64_t digest = TRY(image::file_xxh3(fd->get(), file.size(), buffer, path));
    if (digest != file.xxh3())
        return fail("{}: checksum mismatch with the manifest (corrupted)", path);
    if (sealing.key) {
        image::ReadKeys keys { sealing.key, &sealing.checkpoint_id };
        TRY_CTX(image::decode_file(fd->get(), file.size(), file.name(), &file, keys,
                                   [](std::span<const std::byte>) -> Result<void> { return {}; }),
                "{}", path);
    }
    return {};
}

// The bytes to store for an image, and its manifest record.
Result<std::string> stored_image(const EncodeSealing& sealing, const std::string& name, const std::string& bytes,
                                 image::ManifestFile& record)
{
    record.set_name(name);
    record.clear_compression();
    record.clear_seal_salt();
    record.clear_content_size();
    std::string stored = bytes;
    if (sealing.key) {
        auto sealed = TRY(image::seal_bytes(*sealing.key, sealing.checkpoint_id, name, bytes));
        stored = std::move(sealed.bytes);
        record.set_seal_salt(sealed.salt.data(), sealed.salt.size());
        record.set_content_size(bytes.size());
    }
    record.set_size(stored.size());
    record.set_xxh3(xxh3::hash(stored.data(), stored.size()));
    return stored;
}

} // namespace

Result<std::string> decode_to_json(const DecodeOptions& options)
{
    auto checkpoint = TRY(Checkpoint::open(options.directory, options.verify, options.key ? &*options.key : nullptr));
    std::vector<std::string> entries;
    std::vector<std::string> raw;
    std::string manifest_name(image::kManifestName);
    std::vector<std::string> names = checkpoint.files();
    // The statistics of the last restore are written after the manifest and
    // are not listed in it; the document holds them when they are there.
    std::string restore_stats(image::kRestoreStatsName);
    std::error_code error;
    if (checkpoint.manifest() && std::filesystem::is_regular_file(std::filesystem::symlink_status(checkpoint.path(restore_stats), error)))
        names.push_back(restore_stats);
    if (!options.image.empty() && options.image != manifest_name && std::ranges::find(names, options.image) == names.end())
        return fail("{}: no such image in the checkpoint", checkpoint.path(options.image));
    for (const auto& name : names) {
        if (!options.image.empty() && name != options.image)
            continue;
        auto kind = metadata_kind(name);
        if (kind) {
            entries.push_back(TRY(image_entry(checkpoint, name, *kind)));
            continue;
        }
        if (!options.image.empty())
            return fail("{}: not a metadata image (page files stay raw)", checkpoint.path(name));
        std::string record = fmt::format("    {{ \"name\": {}", json_string(name));
        if (checkpoint.manifest())
            for (const auto& file : checkpoint.manifest()->files())
                if (file.name() == name)
                    record += fmt::format(", \"size\": \"{}\", \"xxh3\": \"{}\"", file.size(), file.xxh3());
        raw.push_back(record + " }");
    }
    if (!checkpoint.manifest() && options.image == manifest_name)
        return fail("{}: no readable manifest to decode", checkpoint.path(manifest_name));
    if (!checkpoint.manifest())
        fmt::print(stderr, "cryo decode: warning: the document has no manifest (none readable in {})\n", options.directory);
    else if (options.image.empty() || options.image == manifest_name)
        entries.push_back(TRY(image_entry(checkpoint, manifest_name, image::ImageKind::Manifest)));
    std::string document = fmt::format("{{\n  \"cryo_json\": {},\n  \"checkpoint\": {},\n  \"images\": [\n",
                                       kDocumentVersion, json_string(options.directory));
    for (size_t i = 0; i < entries.size(); ++i)
        document += entries[i] + (i + 1 < entries.size() ? ",\n" : "\n");
    document += "  ],\n  \"raw_files\": [\n";
    for (size_t i = 0; i < raw.size(); ++i)
        document += raw[i] + (i + 1 < raw.size() ? ",\n" : "\n");
    document += "  ]\n}\n";
    return document;
}

Result<void> run_decode(const DecodeOptions& options)
{
    std::string document = TRY(decode_to_json(options));
    if (options.output.empty() || options.output == "-")
        return write_all(STDOUT_FILENO, document, "standard output");
    // The document holds registers, file contents and queued data: 0600 like
    // the images themselves.
    UniqueFd fd = TRY(open_file(options.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    TRY(write_all(fd.get(), document, options.output));
    return {};
}

Result<std::vector<EncodedImage>> encode_from_json(std::string_view document)
{
    auto parsed = TRY(parse_document(document));
    std::vector<EncodedImage> encoded;
    for (const auto& image : parsed) {
        std::string bytes = TRY_CTX(image::encode_image(image.kind, *image.message), "{}", image.name);
        if (bytes.size() - sizeof(image::FileHeader) > image::kMaxPayloadSize)
            return fail("{}: {} bytes, more than a reader accepts", image.name, bytes.size());
        encoded.push_back({ image.name, image.kind, std::move(bytes) });
    }
    return encoded;
}

Result<void> run_encode(const EncodeOptions& options)
{
    std::string document = TRY(read_input(options.input));
    auto images = TRY_CTX(encode_from_json(document), "{}", options.input.empty() ? "standard input" : options.input);

    if (::mkdir(options.directory.c_str(), 0700) < 0 && errno != EEXIST)
        return fail_errno(fmt::format("create {}", options.directory));
    UniqueFd dir = TRY(open_file(options.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::string manifest_name(image::kManifestName);

    // The manifest: the document's, or the directory's when the document
    // holds only some images.
    image::Manifest manifest;
    auto in_document = std::ranges::find(images, manifest_name, &EncodedImage::name);
    if (in_document != images.end()) {
        TRY(image::decode_image(in_document->bytes, image::ImageKind::Manifest, manifest));
        images.erase(in_document);
    } else {
        auto reader = TRY_CTX(image::ImageReader::open(options.directory, options.key ? &*options.key : nullptr),
                              "the document has no manifest and neither has the directory");
        manifest = reader.manifest();
    }

    // Everything is checked before the directory is changed.
    auto sealing = TRY(encode_sealing(manifest, options.key));
    std::map<std::string, const EncodedImage*> written;
    for (const auto& image : images)
        written[image.name] = &image;
    std::set<std::string> listed;
    for (const auto& file : manifest.files()) {
        if (file.name() == manifest_name || !listed.insert(file.name()).second)
            return fail("the manifest lists {} twice or lists itself", file.name());
        if (!written.contains(file.name()))
            TRY(check_kept_file(dir.get(), options.directory, file, options.verify, sealing));
    }
    std::map<std::string, std::pair<std::string, image::ManifestFile>> stored;
    for (const auto& image : images) {
        image::ManifestFile record;
        if (image.name == image::kRestoreStatsName) {
            // Restore writes it in clear, outside the manifest: so does encode.
            stored[image.name] = { image.bytes, std::move(record) };
            continue;
        }
        std::string bytes = TRY_CTX(stored_image(sealing, image.name, image.bytes, record), "{}", image.name);
        stored[image.name] = { std::move(bytes), std::move(record) };
    }

    // A half-written directory must never look complete: the manifest goes
    // first and comes back last.
    if (::unlinkat(dir.get(), manifest_name.c_str(), 0) < 0 && errno != ENOENT)
        return fail_errno(fmt::format("remove {}/{}", options.directory, manifest_name));
    for (const auto& image : images)
        TRY(image::write_file_atomically(dir.get(), options.directory, image.name, stored.at(image.name).first));
    for (auto& file : *manifest.mutable_files()) {
        auto it = written.find(file.name());
        if (it == written.end())
            continue;
        file = stored.at(file.name()).second;
        written.erase(it);
    }
    for (const auto& image : images)
        // stats-restore.img is written by restore after the manifest, never listed in it.
        if (written.contains(image.name) && image.name != image::kRestoreStatsName)
            *manifest.add_files() = stored.at(image.name).second;
    std::string bytes = TRY(image::encode_image(image::ImageKind::Manifest, manifest));
    if (sealing.key)
        bytes = TRY(image::seal_bytes(*sealing.key, sealing.checkpoint_id, manifest_name, bytes)).bytes;
    TRY(image::write_file_atomically(dir.get(), options.directory, manifest_name, bytes));
    if (::fsync(dir.get()) < 0)
        return fail_errno(fmt::format("fsync {}", options.directory));
    return {};
}

} // namespace cryo::inspect
