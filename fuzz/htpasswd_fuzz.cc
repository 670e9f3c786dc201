// Fuzz target: htpasswd text and passwords. The input is split at its first newline: a
// password, then an htpasswd file. Every user the parser accepts is checked against the
// password (expensive settings skipped: bcrypt cost above 5, more than 5000 SHA-crypt rounds —
// they are valid, only slow), and the password is also run through Apache MD5-crypt with a
// salt taken from the file. Whatever the bytes: no crash, no leak, no read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "security/htpasswd.h"

namespace {

using namespace portico::security;

bool cheap(const HtpasswdUser& u) {
  const std::string& h = u.hash;
  switch (u.scheme) {
    case HtpasswdUser::Scheme::kBcrypt:
      return h.size() > 6 && h[4] == '0' && h[5] <= '5';
    case HtpasswdUser::Scheme::kSha256:
    case HtpasswdUser::Scheme::kSha512: {
      if (h.compare(3, 7, "rounds=") != 0) return true;
      return std::strtoull(h.c_str() + 10, nullptr, 10) <= 5000;
    }
    default:
      return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view password = nl == std::string_view::npos ? in : in.substr(0, nl);
  std::string_view file = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  std::string error;
  auto users = parseHtpasswd(file, &error);
  if (!users) {
    if (error.rfind("line ", 0) != 0) std::abort();  // every refusal names its line
  } else {
    for (size_t i = 1; i < users->size(); ++i)
      if (!((*users)[i - 1].name < (*users)[i].name)) std::abort();  // sorted, unique
    size_t checked = 0;
    for (const auto& u : *users) {
      if (!cheap(u) || ++checked > 4) continue;
      (void)verifyPassword(u, password);
    }
  }
  std::string setting = "$apr1$" + std::string(file.substr(0, 12));
  std::string once = apr1Crypt(password, setting);
  if (apr1Crypt(password, once) != once) std::abort();  // its own output is a valid setting
  return 0;
}
