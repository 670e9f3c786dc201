// Path and Location computations of the HTTPRoute RequestRedirect and URLRewrite filters.
// Pure functions writing into a Buffer (no allocation beyond the buffer's own).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/buffer.h"
#include "config/filters.h"

namespace portico::proxy {

// ReplacePrefixMatch: appends `path` with its leading `prefix` (a PathPrefix value without
// trailing '/', "" for "/") replaced by `replacement`, per the Gateway API table:
// "/foo/bar" with "/foo" -> "/xyz" or "/xyz/" gives "/xyz/bar", -> "" gives "/bar"; "/foo"
// -> "" or "/" gives "/"; "/foo/" -> "/xyz" gives "/xyz/". A path that does not start with
// `prefix` is appended unchanged.
void appendPrefixReplaced(std::string_view path, std::string_view prefix,
                          std::string_view replacement, Buffer& out);

// Appends the request path (without query) after `modifier`: unchanged, replaced whole, or
// with `prefix` replaced.
void appendModifiedPath(const config::PathModifier& modifier, std::string_view path,
                        std::string_view prefix, Buffer& out);

// The host of a Host header value without its ":port" ("[v6]:port" keeps "[v6]").
std::string_view hostWithoutPort(std::string_view host);

// Appends the Location of a RequestRedirect for a request to `host` (Host header) on
// `listener_port` with `path` and `query` ("" when none). Scheme: the filter's, else the
// request's (`request_scheme`).
// Port: the filter's; else 80/443 when the filter sets a scheme; else the listener port.
// The port is omitted for http:80 and https:443.
void appendRedirectLocation(const config::Redirect& redirect, std::string_view host,
                            uint16_t listener_port, std::string_view path, std::string_view query,
                            std::string_view prefix, Buffer& out,
                            std::string_view request_scheme = "http");

}  // namespace portico::proxy
