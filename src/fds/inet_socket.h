// IPv4 and IPv6 sockets: what `cryo show` and errors print of them.
#pragma once

#include <string>

#include "inet.pb.h"

namespace cryo::fds {

// "127.0.0.1:80", "[::1]:80", "*:80" (the wildcard address).
std::string format_inet_address(const image::InetAddress& address);

// "TCP IPv4 127.0.0.1:80 -> 127.0.0.1:5000 established, 3 bytes received, 5 to send".
std::string describe_inet_socket(const image::InetSocket& socket);

} // namespace cryo::fds
