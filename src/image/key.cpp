// See key.h.
#include "image/key.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <cstring>

#include <openssl/crypto.h>

#include "base/fd.h"

namespace cryo::image {

namespace {

std::unexpected<Error> not_a_key(const std::string& path, uint64_t size)
{
    return fail("key file {}: {} bytes, not a key: a key file holds 32 raw bytes or 64 hex digits (and an optional "
                "newline); make one with: head -c 32 /dev/urandom > {}",
                path, size, path);
}

} // namespace

Key Key::from_bytes(std::span<const std::byte, kKeySize> bytes)
{
    Key key;
    std::memcpy(key.m_bytes.data(), bytes.data(), kKeySize);
    return key;
}

Key& Key::operator=(const Key& other)
{
    m_bytes = other.m_bytes;
    return *this;
}

Key::~Key()
{
    OPENSSL_cleanse(m_bytes.data(), m_bytes.size());
}

Result<Key> Key::load(const std::string& path)
{
    auto fd = TRY_CTX(open_file(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), "key file");
    struct stat st;
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat key file {}", path));
    if (!S_ISREG(st.st_mode))
        return fail("key file {}: not a regular file", path);
    // The longest valid key file is 64 hex digits and a newline.
    if (st.st_size > 66)
        return not_a_key(path, static_cast<uint64_t>(st.st_size));
    std::string text = TRY(read_all(fd.get(), path));
    Key key;
    if (text.size() == kKeySize) {
        std::memcpy(key.m_bytes.data(), text.data(), kKeySize);
        OPENSSL_cleanse(text.data(), text.size());
        return key;
    }
    std::string_view digits(text);
    if (digits.ends_with('\n'))
        digits.remove_suffix(1);
    bool hex = digits.size() == 2 * kKeySize;
    for (size_t i = 0; hex && i < kKeySize; ++i) {
        int high = OPENSSL_hexchar2int(static_cast<unsigned char>(digits[2 * i]));
        int low = OPENSSL_hexchar2int(static_cast<unsigned char>(digits[2 * i + 1]));
        hex = high >= 0 && low >= 0;
        key.m_bytes[i] = static_cast<std::byte>(high * 16 + low);
    }
    OPENSSL_cleanse(text.data(), text.size());
    if (!hex)
        return not_a_key(path, static_cast<uint64_t>(st.st_size));
    return key;
}

Result<void> random_bytes(std::span<std::byte> out)
{
    size_t done = 0;
    while (done < out.size()) {
        ssize_t got = ::getrandom(out.data() + done, out.size() - done, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fail_errno("getrandom");
        done += static_cast<size_t>(got);
    }
    return {};
}

} // namespace cryo::image
