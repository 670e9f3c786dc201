// HTTPRoute rule filters in the compact form the proxy applies them: header modifier lists
// with lowercase names, and the redirect / URL rewrite settings. Shared by the decoder's model
// (config/model.h) and the compiled config::Rule (config/snapshot.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portico::config {

struct HeaderValue {
  std::string name;  // lowercase
  std::string value;
};

// RequestHeaderModifier / ResponseHeaderModifier. Applied in the order remove, set, add:
// `remove` drops every field of the name, `set` replaces every field of the name by one, `add`
// appends ",value" to the (combined) existing value, or adds the field when absent.
struct HeaderModifier {
  std::vector<HeaderValue> set;
  std::vector<HeaderValue> add;
  std::vector<std::string> remove;  // lowercase names
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

enum class PathModifierKind : uint8_t { kNone, kReplaceFullPath, kReplacePrefixMatch };

struct PathModifier {
  PathModifierKind kind = PathModifierKind::kNone;
  std::string value;  // the replacement
};

// RequestRedirect: answered locally with `status_code` and a Location header.
struct Redirect {
  std::string scheme;    // "" = the request's ("http")
  std::string hostname;  // "" = the request's Host, without port
  uint16_t port = 0;     // 0 = unset (see the redirect port rule)
  uint16_t status_code = 302;
  PathModifier path;
};

// URLRewrite: the upstream request's Host and/or path are replaced.
struct UrlRewrite {
  std::string hostname;  // "" = unchanged
  PathModifier path;
};

}  // namespace portico::config
