// TODO(integration): temporary. security/htpasswd.h (another branch) declares parseHtpasswd;
// once it is on main, include it in compile_security.cc and delete this header and
// htpasswd_pending.cc.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "security/policy.h"

namespace portico::security {

// The users of an htpasswd file; nullopt with *error = "line N: reason" when a line is bad.
std::optional<std::vector<HtpasswdUser>> parseHtpasswd(std::string_view text, std::string* error);

}  // namespace portico::security
