// A resolved socket address (IPv4 or IPv6) and its text form.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portico::net {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  // "1.2.3.4:80" or "[::1]:80".
  std::string toString() const;
  // The IP alone, for X-Forwarded-For.
  std::string ipString() const;

  // Parses an IP literal ("127.0.0.1", "::1", "[::1]") with a port. No DNS.
  static std::optional<Address> parseIp(std::string_view ip, uint16_t port);
  // Parses "host:port" / "[v6]:port" where host is an IP literal or "localhost" / "" (any).
  static std::optional<Address> parseHostPort(std::string_view host_port);
  static Address fromSockaddr(const sockaddr* sa, socklen_t len);
};

}  // namespace portico::net
