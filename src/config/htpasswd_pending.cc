// TODO(integration): temporary stand-in for security/htpasswd.cc (another branch), weak so
// that the real definition wins when both are linked. Delete with htpasswd_pending.h.
#include "config/htpasswd_pending.h"

namespace portico::security {

__attribute__((weak)) std::optional<std::vector<HtpasswdUser>> parseHtpasswd(std::string_view text,
                                                                             std::string* error) {
  std::vector<HtpasswdUser> users;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(':');
    auto fail = [&](const char* reason) {
      *error = "line " + std::to_string(line_no) + ": " + reason;
      return std::nullopt;
    };
    if (colon == 0 || colon == std::string_view::npos) return fail("expected user:hash");
    HtpasswdUser u;
    u.name = std::string(line.substr(0, colon));
    u.hash = std::string(line.substr(colon + 1));
    std::string_view h = u.hash;
    if (h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$")) {
      u.scheme = HtpasswdUser::Scheme::kBcrypt;
    } else if (h.starts_with("{SHA}")) {
      u.scheme = HtpasswdUser::Scheme::kSha1;
    } else if (h.starts_with("$apr1$")) {
      u.scheme = HtpasswdUser::Scheme::kApr1;
    } else if (h.starts_with("$5$")) {
      u.scheme = HtpasswdUser::Scheme::kSha256;
    } else if (h.starts_with("$6$")) {
      u.scheme = HtpasswdUser::Scheme::kSha512;
    } else {
      return fail("unsupported hash (use htpasswd -B, -m, -s, -2 or -5)");
    }
    users.push_back(std::move(u));
  }
  return users;
}

}  // namespace portico::security
