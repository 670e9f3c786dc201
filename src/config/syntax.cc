#include "config/syntax.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <vector>

namespace portico::config {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// One RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool isLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (!isLowerAlnum(label.front()) || !isLowerAlnum(label.back())) return false;
  return std::all_of(label.begin(), label.end(),
                     [](char c) { return isLowerAlnum(c) || c == '-'; });
}

bool hasUpper(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool isSubdomain(std::string_view v) {
  if (v.empty() || v.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = v.find('.', start);
    if (!isLabel(v.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool isTchar(char c) {
  if (isLowerAlnum(c) || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Reads exactly `n` digits at `pos`.
std::optional<int> digits(std::string_view v, size_t pos, size_t n) {
  if (pos + n > v.size()) return std::nullopt;
  int out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!isDigit(v[i])) return std::nullopt;
    out = out * 10 + (v[i] - '0');
  }
  return out;
}

}  // namespace

std::string checkDnsLabel(std::string_view value) {
  if (value.size() > 63) return "must be no more than 63 characters";
  if (isLabel(value)) return "";
  return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
         "'-', and must start and end with an alphanumeric character";
}

std::string checkDnsSubdomain(std::string_view value) {
  if (value.size() > 253) return "must be no more than 253 characters";
  if (isSubdomain(value)) return "";
  return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
         "'-' or '.', and must start and end with an alphanumeric character";
}

std::string checkHostname(std::string_view value, bool allow_wildcard) {
  if (value.empty()) return "must not be empty";
  if (value.size() > 253) return "must be no more than 253 characters";
  if (isIpLiteral(value)) return "must be a DNS name, not an IP address";
  if (hasUpper(value)) return "must be lowercase";
  std::string_view name = value;
  if (name.starts_with("*.")) {
    if (!allow_wildcard) return "wildcards are not allowed here";
    name.remove_prefix(2);
  }
  if (name.find('*') != std::string_view::npos)
    return "a wildcard is allowed only as the whole first label (\"*.example.com\")";
  if (!isSubdomain(name))
    return "must be a DNS name: lowercase labels of alphanumerics and '-' separated by '.'";
  return "";
}

std::string checkPathValue(std::string_view value) {
  if (value.empty() || value.front() != '/') return "must be an absolute path starting with '/'";
  if (value.size() > 1024) return "must be no more than 1024 characters";
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '%') {
      if (i + 2 >= value.size() || !isHex(value[i + 1]) || !isHex(value[i + 2]))
        return "'%' must start a percent-encoded octet (%XX)";
      if (value[i + 1] == '2' && (value[i + 2] == 'f' || value[i + 2] == 'F'))
        return "must not contain an encoded '/' (%2F)";
      i += 2;
      continue;
    }
    if (c == '#') return "must not contain '#'";
    bool ok = isLowerAlnum(c) || (c >= 'A' && c <= 'Z') ||
              std::string_view("-/._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
    if (!ok) return "contains a character not allowed in a path";
  }
  if (value.find("//") != std::string_view::npos) return "must not contain '//'";
  if (value.find("/./") != std::string_view::npos) return "must not contain '/./'";
  if (value.find("/../") != std::string_view::npos) return "must not contain '/../'";
  if (value.ends_with("/..") || value.ends_with("/.")) return "must not end with '/..' or '/.'";
  return "";
}

std::string checkHeaderName(std::string_view value) {
  if (value.empty()) return "must not be empty";
  if (value.size() > 256) return "must be no more than 256 characters";
  if (!std::all_of(value.begin(), value.end(), isTchar))
    return "must be an HTTP header name (token characters only)";
  return "";
}

bool isIpLiteral(std::string_view value) {
  if (value.size() >= 2 && value.front() == '[' && value.back() == ']')
    value = value.substr(1, value.size() - 2);
  if (value.empty() || value.size() >= INET6_ADDRSTRLEN) return false;
  std::array<char, INET6_ADDRSTRLEN> buf{};
  std::copy(value.begin(), value.end(), buf.begin());
  unsigned char out[sizeof(in6_addr)];
  return inet_pton(AF_INET, buf.data(), out) == 1 || inet_pton(AF_INET6, buf.data(), out) == 1;
}

bool wildcardMatches(std::string_view pattern, std::string_view host) {
  if (!pattern.starts_with("*.")) return false;
  std::string_view suffix = pattern.substr(1);  // ".example.com"
  return host.size() > suffix.size() && host.ends_with(suffix) &&
         host[host.size() - suffix.size() - 1] != '.';
}

std::optional<std::string> intersectHostnames(std::string_view route_host,
                                              std::string_view listener_host) {
  if (listener_host.empty()) return std::string(route_host);
  bool route_wild = route_host.starts_with("*.");
  bool listener_wild = listener_host.starts_with("*.");
  if (route_host == listener_host) return std::string(route_host);
  if (!route_wild && !listener_wild) return std::nullopt;
  if (!route_wild) {
    if (wildcardMatches(listener_host, route_host)) return std::string(route_host);
    return std::nullopt;
  }
  if (!listener_wild) {
    if (wildcardMatches(route_host, listener_host)) return std::string(listener_host);
    return std::nullopt;
  }
  // Both wildcards: the longer one is the intersection when it lies within the shorter one.
  std::string_view r = route_host.substr(1), l = listener_host.substr(1);
  if (r.size() > l.size() && r.ends_with(l)) return std::string(route_host);
  if (l.size() > r.size() && l.ends_with(r)) return std::string(listener_host);
  return std::nullopt;
}

std::optional<uint64_t> parseDurationMs(std::string_view v) {
  if (v.empty()) return std::nullopt;
  uint64_t total = 0;
  int components = 0;
  size_t i = 0;
  while (i < v.size()) {
    size_t start = i;
    uint64_t n = 0;
    while (i < v.size() && isDigit(v[i])) n = n * 10 + static_cast<uint64_t>(v[i++] - '0');
    if (i == start || i - start > 5) return std::nullopt;
    uint64_t unit = 0;
    if (v.substr(i).starts_with("ms")) {
      unit = 1, i += 2;
    } else if (i < v.size() && v[i] == 'h') {
      unit = 3'600'000, ++i;
    } else if (i < v.size() && v[i] == 'm') {
      unit = 60'000, ++i;
    } else if (i < v.size() && v[i] == 's') {
      unit = 1'000, ++i;
    } else {
      return std::nullopt;
    }
    if (++components > 4) return std::nullopt;
    total += n * unit;
  }
  return total;
}

std::optional<int64_t> parseRfc3339(std::string_view v) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto year = digits(v, 0, 4), month = digits(v, 5, 2), day = digits(v, 8, 2);
  auto hour = digits(v, 11, 2), minute = digits(v, 14, 2), second = digits(v, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (v[4] != '-' || v[7] != '-' || (v[10] != 'T' && v[10] != 't' && v[10] != ' ') ||
      v[13] != ':' || v[16] != ':')
    return std::nullopt;
  static constexpr std::array<int, 12> kDays = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*month < 1 || *month > 12 || *day < 1 || *day > kDays[*month - 1] || *hour > 23 ||
      *minute > 59 || *second > 60)
    return std::nullopt;
  size_t i = 19;
  int64_t micros = 0;
  if (i < v.size() && v[i] == '.') {
    size_t start = ++i;
    int64_t scale = 100'000;
    while (i < v.size() && isDigit(v[i])) {
      micros += (v[i++] - '0') * scale;
      scale /= 10;
    }
    if (i == start) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (i < v.size() && (v[i] == 'Z' || v[i] == 'z')) {
    ++i;
  } else if (i < v.size() && (v[i] == '+' || v[i] == '-')) {
    auto oh = digits(v, i + 1, 2), om = digits(v, i + 4, 2);
    if (!oh || !om || v[i + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_s = (*oh * 3600 + *om * 60) * (v[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != v.size()) return std::nullopt;
  int64_t days = daysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  int64_t secs = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_s;
  return secs * 1'000'000 + micros;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace portico::config
