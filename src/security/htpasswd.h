// htpasswd files (Apache's format, as `htpasswd` writes them) for basic authentication.
//
// A line is `user:hash`. Blank lines and lines starting with '#' are skipped. Schemes Portico
// verifies (policy.h HtpasswdUser::Scheme): bcrypt `$2y$`/`$2b$`/`$2a$` (htpasswd -B),
// `$apr1$` Apache MD5-crypt (htpasswd -m, the default), `$5$` SHA-256-crypt (-2), `$6$`
// SHA-512-crypt (-5), `{SHA}` base64 SHA-1 (-s). Refused with a reason: crypt DES (-d),
// plain text (-p), anything else.
//
// Thread-safety: pure functions; verifyPassword may run on any thread (crypt_rn with its
// state on the stack). bcrypt costs milliseconds: callers cache successful verifications.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "security/policy.h"

namespace portico::security {

// The users of an htpasswd text, sorted by name (user names are unique). nullopt with
// `error` = "line N: reason" on the first bad line.
std::optional<std::vector<HtpasswdUser>> parseHtpasswd(std::string_view text, std::string* error);

// True when `password` matches the user's hash (compared in constant time).
bool verifyPassword(const HtpasswdUser& user, std::string_view password);

// Apache MD5-crypt of `password` with the salt of `setting` ("$apr1$salt$..." or
// "$apr1$salt"); "" when the setting is not one. Exposed for tests.
std::string apr1Crypt(std::string_view password, std::string_view setting);

}  // namespace portico::security
