// The page-server framing and handshake (src/net/page_protocol.h) over a
// socketpair: frames round-trip, a changed byte or a cut frame is caught,
// the handshake accepts the same key and refuses another one (both sides
// saying why); a file range sent with send_file_range() arrives as its
// bytes, with and without a key; a Data frame received with a splice
// target lands in that file, and is still caught when changed or cut.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <string>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "net/page_protocol.h"
#include "temp_dir.h"

namespace cryo::net {

namespace {

std::pair<Channel, Channel> connected_pair()
{
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    return { Channel(UniqueFd(fds[0]), "client"), Channel(UniqueFd(fds[1]), "server") };
}

image::Key key_of(char fill)
{
    std::array<std::byte, image::kKeySize> bytes;
    bytes.fill(static_cast<std::byte>(fill));
    return image::Key::from_bytes(bytes);
}

std::span<const std::byte> bytes_of(const std::string& text)
{
    return std::as_bytes(std::span(text.data(), text.size()));
}

// Runs both handshakes at once; returns (client result, server result).
std::pair<Result<void>, Result<void>> handshake(Channel& client, Channel& server, const image::Key* client_key,
                                                const image::Key* server_key)
{
    auto server_side = std::async(std::launch::async, [&] { return server_handshake(server, server_key); });
    auto client_result = client_handshake(client, client_key);
    auto server_result = server_side.get();
    return { client_result, server_result };
}

} // namespace

TEST(PageProtocol, FramesRoundTrip)
{
    auto [client, server] = connected_pair();
    ASSERT_TRUE(client.send(FrameType::Data, 7, bytes_of("pages")));
    ASSERT_TRUE(client.send(FrameType::Close, 7, {}));
    auto data = server.receive();
    ASSERT_TRUE(data) << data.error().message();
    EXPECT_EQ(data->type, FrameType::Data);
    EXPECT_EQ(data->file, 7u);
    EXPECT_EQ(data->text(), "pages");
    auto close = server.expect(FrameType::Close);
    ASSERT_TRUE(close) << close.error().message();
    EXPECT_TRUE(close->payload.empty());
}

// A byte range of a file, at an offset inside a page: without a key sent
// with sendfile (the checksum over a mapping), with one read and HMACed;
// the receiver gets exactly those bytes either way. A range past the end
// of the file is refused before anything is sent.
TEST(PageProtocol, FileRangeArrivesAsItsBytes)
{
    std::string content(3 * 4096 + 123, '\0');
    for (size_t i = 0; i < content.size(); ++i)
        content[i] = static_cast<char>(i * 7 + 3);
    UniqueFd file(::memfd_create("pages", MFD_CLOEXEC));
    ASSERT_TRUE(file);
    ASSERT_TRUE(write_all(file.get(), bytes_of(content), "pages"));
    std::vector<std::byte> buffer(content.size());
    auto sent_and_received = [&](Channel& client, Channel& server) {
        auto sent = client.send_file_range(FrameType::Data, 3, file.get(), 4000, 8000, "pages", buffer);
        ASSERT_TRUE(sent) << sent.error().message();
        auto data = server.expect(FrameType::Data);
        ASSERT_TRUE(data) << data.error().message();
        EXPECT_EQ(data->file, 3u);
        EXPECT_EQ(data->text(), content.substr(4000, 8000));
    };
    auto [client, server] = connected_pair();
    sent_and_received(client, server);
    auto past = client.send_file_range(FrameType::Data, 3, file.get(), 12000, 1000, "pages", buffer);
    ASSERT_FALSE(past);
    EXPECT_NE(past.error().message().find("pages holds 12411 bytes"), std::string::npos) << past.error().message();
    ASSERT_TRUE(client.send(FrameType::Close, 3, {}));
    auto close = server.expect(FrameType::Close);
    ASSERT_TRUE(close) << close.error().message();

    auto [keyed_client, keyed_server] = connected_pair();
    auto key = key_of('k');
    auto [client_result, server_result] = handshake(keyed_client, keyed_server, &key, &key);
    ASSERT_TRUE(client_result) << client_result.error().message();
    ASSERT_TRUE(server_result) << server_result.error().message();
    sent_and_received(keyed_client, keyed_server);
}

TEST(PageProtocol, ChangedByteIsCaught)
{
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    UniqueFd raw(fds[0]);
    Channel server(UniqueFd(fds[1]), "server");
    // Capture a real frame, flip one payload byte, feed it back.
    int capture[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, capture), 0);
    Channel sender(UniqueFd(capture[0]), "sender");
    ASSERT_TRUE(sender.send(FrameType::Data, 1, bytes_of("0123456789")));
    char frame[64];
    ssize_t length = ::read(capture[1], frame, sizeof(frame));
    ::close(capture[1]);
    ASSERT_EQ(length, 24 + 10 + 8);
    frame[24 + 3] ^= 1;
    ASSERT_EQ(::write(raw.get(), frame, length), length);
    auto received = server.receive();
    ASSERT_FALSE(received);
    EXPECT_NE(received.error().message().find("failed its checksum check"), std::string::npos)
        << received.error().message();
}

TEST(PageProtocol, CutFrameIsABrokenTransfer)
{
    auto [client, server] = connected_pair();
    std::string header(24, '\0');
    uint32_t magic = 0x53505943, type = static_cast<uint32_t>(FrameType::Data);
    uint64_t length = 100;
    std::memcpy(header.data(), &magic, 4);
    std::memcpy(header.data() + 4, &type, 4);
    std::memcpy(header.data() + 16, &length, 8);
    ASSERT_EQ(::write(client.fd(), header.data(), header.size()), 24);
    ASSERT_EQ(::write(client.fd(), "abc", 3), 3);
    ::shutdown(client.fd(), SHUT_WR);
    auto received = server.receive();
    ASSERT_FALSE(received);
    EXPECT_NE(received.error().message().find("in the middle of a frame (broken transfer)"), std::string::npos)
        << received.error().message();
}

// A connection closed between two frames is the end of a conversation
// for receive_or_end() (a lazy restore that is done), but still a broken
// transfer for receive(); closed inside a frame it is broken for both.
TEST(PageProtocol, CleanCloseIsTheEndOnlyBetweenFrames)
{
    {
        auto [client, server] = connected_pair();
        ASSERT_TRUE(client.send(FrameType::Done, 0, {}));
        ::shutdown(client.fd(), SHUT_WR);
        auto done = server.receive_or_end();
        ASSERT_TRUE(done && *done) << (done ? "" : done.error().message());
        EXPECT_EQ((*done)->type, FrameType::Done);
        auto end = server.receive_or_end();
        ASSERT_TRUE(end) << end.error().message();
        EXPECT_FALSE(*end);
        auto strict = server.receive();
        ASSERT_FALSE(strict);
        EXPECT_NE(strict.error().message().find("closed the connection (broken transfer)"), std::string::npos);
    }
    auto [client, server] = connected_pair();
    ASSERT_EQ(::write(client.fd(), "CYPS", 4), 4);
    ::shutdown(client.fd(), SHUT_WR);
    auto cut = server.receive_or_end();
    ASSERT_FALSE(cut);
    EXPECT_NE(cut.error().message().find("in the middle of a frame"), std::string::npos) << cut.error().message();
}

TEST(PageProtocol, SameKeyAuthenticatesEveryFrame)
{
    auto [client, server] = connected_pair();
    auto key = key_of('k');
    auto [client_result, server_result] = handshake(client, server, &key, &key);
    ASSERT_TRUE(client_result) << client_result.error().message();
    ASSERT_TRUE(server_result) << server_result.error().message();
    ASSERT_TRUE(client.send(FrameType::Commit, 0, bytes_of("manifest")));
    auto commit = server.expect(FrameType::Commit);
    ASSERT_TRUE(commit) << commit.error().message();
    EXPECT_EQ(commit->text(), "manifest");
}

TEST(PageProtocol, WrongKeyIsRefusedByBothSides)
{
    auto [client, server] = connected_pair();
    auto client_key = key_of('a');
    auto server_key = key_of('b');
    auto [client_result, server_result] = handshake(client, server, &client_key, &server_key);
    ASSERT_FALSE(client_result);
    ASSERT_FALSE(server_result);
    EXPECT_NE(client_result.error().message().find("wrong key"), std::string::npos) << client_result.error().message();
    EXPECT_NE(server_result.error().message().find("wrong key"), std::string::npos) << server_result.error().message();
}

TEST(PageProtocol, KeyOnOneSideOnlyIsRefused)
{
    auto key = key_of('k');
    {
        auto [client, server] = connected_pair();
        auto [client_result, server_result] = handshake(client, server, nullptr, &key);
        ASSERT_FALSE(client_result);
        EXPECT_NE(client_result.error().message().find("requires a key"), std::string::npos)
            << client_result.error().message();
        EXPECT_FALSE(server_result);
    }
    {
        auto [client, server] = connected_pair();
        auto [client_result, server_result] = handshake(client, server, &key, nullptr);
        ASSERT_FALSE(client_result);
        EXPECT_NE(client_result.error().message().find("started without --key"), std::string::npos)
            << client_result.error().message();
        EXPECT_FALSE(server_result);
    }
}

namespace {

// A file a spliced payload goes into: `end` bytes so far, open for writing
// (at its end) and for reading.
struct SpliceFile {
    cryo::test::TempDir temp;
    std::string path { temp.path() + "/pages.img" };
    UniqueFd out { ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) };
    UniqueFd in { ::open(path.c_str(), O_RDONLY | O_CLOEXEC) };
    uint64_t end { 0 };

    // The target for file id `id` only.
    Channel::SpliceRoute route(uint32_t id)
    {
        return [this, id](uint32_t file) -> std::optional<SpliceTarget> {
            if (file != id)
                return std::nullopt;
            return SpliceTarget { .fd = out.get(), .read_fd = in.get(), .end = end, .name = "pages.img" };
        };
    }
    std::string content() { return read_all(in.get(), "pages.img").value_or("?"); }
};

std::string pattern(size_t size)
{
    std::string content(size, '\0');
    for (size_t i = 0; i < content.size(); ++i)
        content[i] = static_cast<char>(i * 7 + i / 4096);
    return content;
}

// A Data frame as Channel::send() puts it on the wire without a key (the
// first frame of the connection: sequence 0), announcing `length` bytes.
std::string raw_data_frame(const std::string& payload, uint64_t length)
{
    std::string frame(24, '\0');
    uint32_t magic = 0x53505943, type = static_cast<uint32_t>(FrameType::Data), file = 1;
    std::memcpy(frame.data(), &magic, 4);
    std::memcpy(frame.data() + 4, &type, 4);
    std::memcpy(frame.data() + 8, &file, 4);
    std::memcpy(frame.data() + 16, &length, 8);
    frame += payload;
    uint64_t tag = XXH3_64bits_withSeed(frame.data(), frame.size(), 0);
    frame.append(reinterpret_cast<const char*>(&tag), sizeof(tag));
    return frame;
}

} // namespace

// Big Data frames for the file the receiver names are spliced into it
// after what it held (the payload is then the file's bytes); small ones,
// and those of another file, come through the buffer. Also with a key
// (HMAC over the spliced bytes).
TEST(PageProtocol, DataFrameIsSplicedIntoItsFile)
{
    SpliceFile file;
    ASSERT_TRUE(write_all(file.out.get(), bytes_of("head"), "pages.img"));
    file.end = 4;
    std::string big = pattern(3 * kSpliceMinPayload + 123);
    auto [client, server] = connected_pair();
    auto key = key_of('k');
    auto [client_result, server_result] = handshake(client, server, &key, &key);
    ASSERT_TRUE(client_result && server_result);
    auto sender = std::async(std::launch::async, [&] {
        return client.send(FrameType::Data, 1, bytes_of(big)) && client.send(FrameType::Data, 1, bytes_of("small"))
            && client.send(FrameType::Data, 2, bytes_of(big)) && client.send(FrameType::Data, 1, bytes_of(big));
    });
    auto route = file.route(1);
    auto spliced = server.receive(route);
    ASSERT_TRUE(spliced) << spliced.error().message();
    EXPECT_TRUE(spliced->spliced);
    EXPECT_EQ(spliced->text(), big);
    file.end += big.size();
    auto small = server.receive(route);
    ASSERT_TRUE(small) << small.error().message();
    EXPECT_FALSE(small->spliced);
    EXPECT_EQ(small->text(), "small");
    auto other = server.receive(route);
    ASSERT_TRUE(other) << other.error().message();
    EXPECT_FALSE(other->spliced);
    EXPECT_EQ(other->text(), big);
    auto again = server.receive(route);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_TRUE(again->spliced);
    EXPECT_TRUE(sender.get());
    EXPECT_EQ(file.content(), "head" + big + big);
}

// A changed byte in a spliced payload fails the tag check (the bytes are
// in the file already: the caller discards it); a payload cut short is a
// broken transfer.
TEST(PageProtocol, SplicedFrameChangedOrCutIsCaught)
{
    std::string big = pattern(2 * kSpliceMinPayload);
    {
        SpliceFile file;
        auto [client, server] = connected_pair();
        std::string frame = raw_data_frame(big, big.size());
        frame[24 + kSpliceMinPayload + 5] ^= 1;
        auto sender = std::async(std::launch::async, [&] { return write_all(client.fd(), bytes_of(frame), "frame"); });
        auto received = server.receive(file.route(1));
        ASSERT_FALSE(received);
        EXPECT_NE(received.error().message().find("a data frame from server failed its checksum check"),
                  std::string::npos)
            << received.error().message();
        EXPECT_TRUE(sender.get());
    }
    SpliceFile file;
    auto [client, server] = connected_pair();
    std::string frame = raw_data_frame(big, big.size()).substr(0, 24 + kSpliceMinPayload + 100);
    ASSERT_TRUE(write_all(client.fd(), bytes_of(frame), "frame"));
    ::shutdown(client.fd(), SHUT_WR);
    auto received = server.receive(file.route(1));
    ASSERT_FALSE(received);
    EXPECT_NE(received.error().message().find("server closed the connection in the middle of a frame (broken transfer)"),
              std::string::npos)
        << received.error().message();
}

} // namespace cryo::net
