// Internal to src/config/: what the two halves of the SecurityPolicy decoder share —
// decode_security.cc (the policy and its request-rule sections, and the field helpers below)
// and decode_security_auth.cc (the authentication sections it calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "config/yaml_reader.h"

namespace portico::config::security_decode {

inline constexpr size_t kMaxList = 64;  // items of any list field

std::string lower(std::string s);
// A header name: a token, lowercased. "" (reported) when invalid.
std::string headerName(Reporter& r, const YAML::Mark& mark, const std::string& path,
                       const std::string& value);
// A header Portico sets for the upstream: a token, not hop-by-hop or a pseudo-header.
std::string upstreamHeader(Reporter& r, const YAML::Mark& mark, const std::string& path,
                           const std::string& value);
std::vector<std::string> stringList(Reporter& r, const YAML::Node& node, const std::string& path,
                                    size_t max_items = kMaxList);
enum class HeaderUse : uint8_t { kRead, kSet, kReadOrStar };
// A list of header names, checked item by item and lowercased. kSet: a header Portico sets
// for the upstream (no pseudo or hop-by-hop header); kReadOrStar: "*" allowed.
std::vector<std::string> headerList(Reporter& r, const YAML::Node& node, const std::string& path,
                                    HeaderUse use);
// `key` as true/false into *out; false when absent or invalid (reported).
bool readBool(MapReader& m, std::string_view key, bool* out);

// The authentication sections (decode_security_auth.cc), each under `parent`.
void decodeJwt(MapReader& parent, JwtModel* out);
void decodeApiKey(MapReader& parent, ApiKeyModel* out);
void decodeBasic(MapReader& parent, BasicAuthModel* out);

}  // namespace portico::config::security_decode
