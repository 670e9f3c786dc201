#include "proxy/http_util.h"

#include <netinet/in.h>

#include <cstdio>

#include "upstream/load_balancer.h"

namespace portico::proxy {

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 421:
      return "Misdirected Request";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void appendDecimal(Buffer& out, uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

void appendChunkHeader(Buffer& out, size_t size) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%zx\r\n", size);
  out.append(buf, static_cast<size_t>(n));
}

void appendLocalResponse(Buffer& out, int status, std::string_view body, size_t content_length,
                         bool close, std::string_view extra_headers,
                         std::string_view content_type) {
  out.append("HTTP/1.1 ");
  appendDecimal(out, static_cast<uint64_t>(status));
  out.append(" ");
  out.append(reasonPhrase(status));
  if (!extra_headers.empty()) {
    out.append("\r\n");
    out.append(extra_headers.substr(0, extra_headers.size() - 2));  // without the last CRLF
  }
  if (!content_type.empty()) {
    out.append("\r\ncontent-type: ");
    out.append(content_type);
  }
  out.append("\r\ncontent-length: ");
  appendDecimal(out, content_length);
  out.append(close ? "\r\nconnection: close\r\n\r\n" : "\r\n\r\n");
  out.append(body);
}

uint64_t requestHash(const config::Backend& backend, const router::RouteInput& in,
                     uint8_t peer_family, const uint8_t* peer_addr, uint32_t r1, uint32_t r2) {
  using config::HashOn;
  std::string_view key;
  switch (backend.lb.hash_on) {
    case HashOn::kNone:
      return 0;
    case HashOn::kHeader:
      for (uint32_t i = 0; i < in.header_count && key.empty(); ++i)
        if (equalsIgnoreCase(in.headers[i].name, backend.lb.hash_name)) key = in.headers[i].value;
      break;
    case HashOn::kCookie:
      for (uint32_t i = 0; i < in.header_count && key.data() == nullptr; ++i) {
        if (!equalsIgnoreCase(in.headers[i].name, "cookie")) continue;
        key = cookieValue(in.headers[i].value, backend.lb.hash_name);
      }
      break;
    case HashOn::kQueryParameter:
      key = queryValue(in.query, backend.lb.hash_name);
      break;
    case HashOn::kSourceIp:
      key = std::string_view(reinterpret_cast<const char*>(peer_addr),
                             peer_family == AF_INET6 ? 16 : 4);
      break;
  }
  if (key.data() == nullptr) return (uint64_t{r1} << 32) | r2;
  return upstream::hashKey(key);
}

std::string_view cookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    std::string_view value = pair.substr(eq + 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return {};
}

std::string_view queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    return eq == std::string_view::npos ? pair.substr(pair.size()) : pair.substr(eq + 1);
  }
  return {};
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool nominatedByConnection(const http1::Header* headers, uint32_t count, std::string_view name) {
  for (uint32_t i = 0; i < count; ++i) {
    if (headers[i].tag != http1::HeaderTag::kConnection) continue;
    std::string_view v = headers[i].value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (equalsIgnoreCase(tok, name)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

namespace {

bool listed(const std::vector<config::HeaderValue>& list, std::string_view name) {
  for (const config::HeaderValue& hv : list)
    if (equalsIgnoreCase(hv.name, name)) return true;
  return false;
}

bool removed(const config::HeaderModifier& mod, std::string_view name) {
  for (const std::string& r : mod.remove)
    if (equalsIgnoreCase(r, name)) return true;
  return false;
}

}  // namespace

bool modifierTakesOver(const config::HeaderModifier& mod, std::string_view name) {
  return removed(mod, name) || listed(mod.set, name) || listed(mod.add, name);
}

void appendModifierHeaders(const config::HeaderModifier& mod, const http1::Header* headers,
                           uint32_t count, Buffer& out) {
  for (const config::HeaderValue& hv : mod.set) {
    out.append(hv.name);
    out.append(": ");
    out.append(hv.value);
    for (const config::HeaderValue& add : mod.add) {
      if (add.name != hv.name) continue;
      out.append(",");
      out.append(add.value);
    }
    out.append("\r\n");
  }
  for (const config::HeaderValue& add : mod.add) {
    if (listed(mod.set, add.name)) continue;  // appended to the set value above
    out.append(add.name);
    out.append(": ");
    if (!removed(mod, add.name)) {
      bool first = true;
      for (uint32_t i = 0; i < count; ++i) {
        if (!equalsIgnoreCase(headers[i].name, add.name)) continue;
        if (!first) out.append(", ");
        first = false;
        out.append(headers[i].value);
      }
      if (!first) out.append(",");
    }
    out.append(add.value);
    out.append("\r\n");
  }
}

}  // namespace portico::proxy
