// HTTPRoute rule filters in the compact form the proxy applies them: header modifier lists
// with lowercase names, the redirect / URL rewrite settings, direct responses. Shared by the
// decoder's model (config/model.h) and the compiled config::Rule (config/snapshot.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
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

// A response Portico writes itself: HTTPRouteFilter directResponse, or the replacement body
// of a TrafficPolicy responseOverride.
struct DirectResponse {
  uint16_t status_code = 200;  // 0 in a responseOverride: keep the original status
  std::string content_type = "text/plain";
  std::string body;
};

// TrafficPolicy responseOverride: a response Portico generates whose status is in one of
// `ranges` is answered with `response` instead.
struct ResponseOverride {
  std::vector<std::pair<uint16_t, uint16_t>> ranges;  // inclusive [first, second]
  DirectResponse response;
  bool matches(int status) const {
    for (const auto& [lo, hi] : ranges)
      if (status >= lo && status <= hi) return true;
    return false;
  }
};

// Applies `second` after `first`: one modifier with the effect of both (backendRef filters
// after the rule's). Either may be null; returns an empty modifier when both are.
HeaderModifier composeModifiers(const HeaderModifier* first, const HeaderModifier* second);

}  // namespace portico::config
