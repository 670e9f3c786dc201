// Syntax checks for configuration values (Kubernetes names, Gateway API hostnames, paths,
// GEP-2257 durations, RFC 3339 timestamps). Pure functions, no diagnostics: the `check*`
// functions return "" when the value is valid, else the detail for an "Invalid value" message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portico::config {

// RFC 1123 label (namespaces): lowercase alphanumerics and '-', at most 63 characters.
std::string checkDnsLabel(std::string_view value);
// RFC 1123 subdomain (resource names, sectionNames): labels joined by '.', at most 253.
std::string checkDnsSubdomain(std::string_view value);
// Gateway API Hostname: a lowercase DNS name, optionally "*." + name; no IP addresses.
std::string checkHostname(std::string_view value, bool allow_wildcard);
// HTTPRoute Exact/PathPrefix value: absolute, no "//", "/./", "/../", "%2f", "#", at most
// 1024 characters of the allowed set.
std::string checkPathValue(std::string_view value);
// An HTTP header name (RFC 9110 token), at most 256 characters.
std::string checkHeaderName(std::string_view value);

// True for an IPv4 or IPv6 literal (IPv6 optionally in brackets).
bool isIpLiteral(std::string_view value);

// True when `host` (lowercase, exact) matches the wildcard `pattern` ("*.example.com"): it
// ends with ".example.com" and has at least one more label before it.
bool wildcardMatches(std::string_view pattern, std::string_view host);

// The hostnames a route hostname and a listener hostname have in common, per Gateway API:
// the more specific of the two when one contains the other, else nullopt. An empty listener
// hostname matches any route hostname.
std::optional<std::string> intersectHostnames(std::string_view route_host,
                                              std::string_view listener_host);

// GEP-2257 duration ("1h30m", "500ms", "0s"): 1 to 4 components of up to 5 digits with unit
// h, m, s or ms. Returns milliseconds, or nullopt when malformed.
std::optional<uint64_t> parseDurationMs(std::string_view value);

// RFC 3339 date-time ("2024-05-01T10:00:00Z", fractions and offsets allowed). Returns
// microseconds since the Unix epoch (digits beyond are ignored), or nullopt when malformed.
std::optional<int64_t> parseRfc3339(std::string_view value);

// Levenshtein distance, for "did you mean" hints.
size_t editDistance(std::string_view a, std::string_view b);

}  // namespace portico::config
