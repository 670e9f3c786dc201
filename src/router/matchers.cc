#include "router/matchers.h"

#include <re2/re2.h>

namespace portico::router {

std::shared_ptr<const re2::RE2> compileRegex(std::string_view pattern, std::string* error) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re =
      std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    if (error != nullptr) *error = re->error();
    return nullptr;
  }
  return re;
}

bool fullMatch(const re2::RE2& re, std::string_view text) {
  return re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), re);
}

bool pathHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  return path.starts_with(prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + ('a' - 'A'));
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + ('a' - 'A'));
    if (x != y) return false;
  }
  return true;
}

bool findHeader(const RouteInput& in, std::string_view name, std::string_view* value) {
  for (uint32_t i = 0; i < in.header_count; ++i) {
    if (equalsIgnoreCase(in.headers[i].name, name)) {
      *value = in.headers[i].value;
      return true;
    }
  }
  return false;
}

bool findQueryParam(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = param.find('=');
    if (param.substr(0, eq) == name) {
      *value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
      return true;
    }
  }
  return false;
}

}  // namespace portico::router
