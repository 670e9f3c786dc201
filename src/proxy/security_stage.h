// What both request paths (DownstreamConn for HTTP/1.1, H2Stream for HTTP/2 and bridged
// requests) do around security::evaluate(): the policy layers of a rule, the request view,
// and the header edits of an allowed request applied to its header array.
//
// Edits: every field named in Outcome::remove_headers is removed (the array is compacted in
// place, order kept), then Outcome::add_headers and `extra` (ext-authz headers) are appended as
// views of those strings: the Outcome (the worker's scratch) must outlive the use of the
// array, which holds on HTTP/1.1 because the upstream head is serialized in the same call;
// H2Stream copies the added fields into its own storage first.
// Loop-thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/snapshot.h"
#include "http1/message.h"
#include "router/router.h"
#include "security/evaluator.h"

namespace portico::proxy {

// Gateway overrides, the rule's own, Gateway defaults.
inline security::Layers securityLayers(const config::PortSettings& ps, const config::Rule& rule) {
  security::Layers l;
  l.override_ = ps.security_overrides.get();
  l.rule = rule.security();
  l.defaults = ps.security_defaults.get();
  return l;
}

inline security::Request securityRequest(const router::RouteInput& in, uint8_t peer_family,
                                         const uint8_t* peer_addr) {
  security::Request r;
  r.method = in.method;
  r.authority = in.host;
  r.path = in.path;
  r.query = in.query;
  r.headers = in.headers;
  r.header_count = in.header_count;
  r.peer_family = peer_family;
  r.peer_addr = peer_addr;
  return r;
}

// Sets in.path and in.query from a request target ("/p?q").
inline void splitTarget(std::string_view target, router::RouteInput* in) {
  size_t q = target.find('?');
  in->path = target.substr(0, q);
  in->query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

// True when both give every section from the same compiled object (the same checks).
bool sameSections(const security::Layers& a, const security::Layers& b);

// Removes the fields named in `remove` or in `replacing`, then appends `adds` and `replacing`
// (views of their strings). False (array unchanged beyond the removals) when the result would
// exceed `capacity` fields.
bool applyHeaderEdits(const std::vector<std::string>& remove,
                      const std::vector<security::HeaderAdd>& adds,
                      const std::vector<security::HeaderAdd>& replacing, http1::Header* headers,
                      uint32_t* count, uint32_t capacity);

// Unix time in seconds (token expiry checks).
int64_t unixSeconds();

// "www-authenticate: ...\r\n" lines of a local answer plus the CORS lines for its origin.
std::string securityAnswerHeaders(const security::Outcome& out);

}  // namespace portico::proxy
