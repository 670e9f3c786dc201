// Request matching primitives shared by RouteTable::Entry and the explain API: header and
// query parameter lookup, path prefix test, RE2 compilation and full match.
//
// Lookups are allocation-free; they return views into the request.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "router/router.h"

namespace re2 {
class RE2;
}

namespace portico::router {

// Compiles `pattern` as an RE2 regular expression (UTF-8, no logging). On failure returns
// nullptr and sets `*error` (when given) to RE2's message.
std::shared_ptr<const re2::RE2> compileRegex(std::string_view pattern, std::string* error);

// Whether `re` matches the whole of `text`.
bool fullMatch(const re2::RE2& re, std::string_view text);

// Whether `path` starts with the path segments of `prefix` (a PathPrefix value without its
// trailing '/'; "" for "/", which matches everything).
bool pathHasPrefix(std::string_view path, std::string_view prefix);

// ASCII case-insensitive equality.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// The value of the first header named `name` (case-insensitive). false when absent.
bool findHeader(const RouteInput& in, std::string_view name, std::string_view* value);

// The value of the first query parameter named `name` (case-sensitive, not percent-decoded)
// in `query` ("a=1&b=2", without '?'). A parameter without '=' has value "". false when absent.
bool findQueryParam(std::string_view query, std::string_view name, std::string_view* value);

}  // namespace portico::router
