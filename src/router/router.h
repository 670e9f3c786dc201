// Request routing over the compiled route tables of one listening port.
//
// A RouteTable holds every listener (Gateway × listener) bound to one port and the HTTPRoute
// rules attached to each, pre-sorted by Gateway API precedence. match() is const, allocation-
// free and lock-free: workers call it concurrently on a shared immutable table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/snapshot.h"
#include "http1/message.h"

namespace portico::router {

struct RouteInput {
  std::string_view host;    // Host header as received: any case, may end in ":port"
  std::string_view path;    // request path without the query ("/a/b")
  std::string_view query;   // after '?', without it ("" if none)
  std::string_view method;  // "GET"
  const http1::Header* headers = nullptr;
  uint32_t header_count = 0;
};

struct RouteDecision {
  // The listener chosen by Host ("ns/gateway/listener"); empty when no listener on the port
  // accepts this host (answer 404 naming the port).
  std::string_view listener;
  // The matching rule; nullptr when the listener has no matching route (answer 404 naming
  // the listener).
  const config::Rule* rule = nullptr;
};

// The concrete table lives in router/route_table.h:
//   class RouteTable { public: RouteDecision match(const RouteInput& in) const; ... };
class RouteTable;

// Picks a backendRef of `rule` in proportion to the weights, using `random` (uniform 32-bit).
// Returns nullptr when total_weight is 0. The result's backend may be nullptr (unresolved).
const config::WeightedBackend* pickBackend(const config::Rule& rule, uint32_t random);

}  // namespace portico::router
