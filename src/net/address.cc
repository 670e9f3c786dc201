#include "net/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace portico::net {

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string Address::ipString() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
  }
  return buf;
}

std::string Address::toString() const {
  std::string ip = ipString();
  if (family() == AF_INET6) ip = "[" + ip + "]";
  return ip + ":" + std::to_string(port());
}

std::optional<Address> Address::parseIp(std::string_view ip, uint16_t port) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip == "localhost") ip = "127.0.0.1";
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = 0;
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::optional<Address> Address::parseHostPort(std::string_view hp) {
  size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = hp.substr(0, colon);
  std::string_view port_text = hp.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535)
    return std::nullopt;
  if (host.empty() || host == "*") host = "0.0.0.0";
  return parseIp(host, static_cast<uint16_t>(port));
}

Address Address::fromSockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  std::memcpy(&a.storage, sa, len);
  a.length = len;
  return a;
}

}  // namespace portico::net
