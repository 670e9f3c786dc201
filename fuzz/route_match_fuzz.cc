// Fuzz target: request fields against one fixed compiled config; RouteTable::match() and
// router::explain() must agree on the listener and the winning rule, whatever the bytes.
//
// Input format: fields separated by 0x00 bytes, in order
//   host \0 path \0 query \0 method \0 name1 \0 value1 \0 ... name4 \0 value4
// Missing fields are empty; bytes after the 4th header value belong to that value.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "config/compiler.h"
#include "config/loader.h"
#include "http1/message.h"
#include "router/explain.h"
#include "router/route_table.h"

namespace {

using namespace portico;

// Two listeners on one port (wildcard hostname and any host), and routes covering every match
// type, route hostnames exact and wildcard, and creationTimestamp tie-breaks. The "many" route
// has more than RouteTable::kIndexThreshold matches so its candidate lists are path-indexed.
constexpr std::string_view kConfig = R"yaml(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  listeners:
  - {name: wild, port: 8080, protocol: HTTP, hostname: "*.example.com"}
  - {name: any, port: 8080, protocol: HTTP}
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: be, namespace: default}
spec:
  endpoints: [{address: 10.0.0.1, port: 9001}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: [api.example.com]
  rules:
  - matches:
    - path: {type: Exact, value: /health}
      method: GET
    - path: {type: Exact, value: /}
    backendRefs: [{name: be}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: prefix, namespace: default, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["*.example.com", other.org]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api/}
      headers: [{name: X-Env, value: prod}, {name: x-env, value: dev}]
    - path: {type: PathPrefix, value: /api}
      queryParams: [{name: v, value: "2"}]
    backendRefs: [{name: be}]
  - matches:
    - path: {type: PathPrefix, value: /api}
    backendRefs: [{name: be}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: regex, namespace: default, creationTimestamp: "2024-03-01T00:00:00+02:00"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/v[0-9]+/items(/.*)?"}
      method: POST
      headers: [{name: x-ver, type: RegularExpression, value: "v[0-9]+"}]
      queryParams: [{name: tag, type: RegularExpression, value: "a|b"}]
    - path: {type: RegularExpression, value: "/api/.*"}
      method: DELETE
    backendRefs: [{name: be}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shared-new, namespace: default, creationTimestamp: "2024-05-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shared}}]
    backendRefs: [{name: be}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shared-old, namespace: default, creationTimestamp: "2023-05-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shared}}]
    backendRefs: [{name: be}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: many, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["*.example.com", "*.a.example.com", "a.example.com"]
  rules:
  - matches:
    - {path: {type: Exact, value: /m/0}}
    - {path: {type: Exact, value: /m/1}, method: GET}
    - {path: {type: Exact, value: /m/2}, headers: [{name: h, value: x}]}
    - {path: {type: Exact, value: /m/3}, queryParams: [{name: q, value: x}]}
    - {path: {type: PathPrefix, value: /m}}
    - {path: {type: PathPrefix, value: /m/a}, method: PUT}
    - {path: {type: PathPrefix, value: /m/a/b/}}
    - {path: {type: PathPrefix, value: /m/a/b/c}, headers: [{name: h, type: RegularExpression, value: "[a-z]+"}]}
    - {path: {type: RegularExpression, value: "/m/[0-9]+"}}
    - {path: {type: RegularExpression, value: "/m/r.*"}, method: PATCH}
    backendRefs: [{name: be}]
  - matches:
    - {path: {type: Exact, value: /n}}
    - {path: {type: Exact, value: /n/}}
    - {path: {type: PathPrefix, value: /n/x}}
    - {path: {type: PathPrefix, value: /n/x/y}, queryParams: [{name: q, type: RegularExpression, value: "[0-9]*"}]}
    - {path: {type: PathPrefix, value: /}, method: OPTIONS}
    - {path: {type: RegularExpression, value: "/n/(x|y)/.*"}}
    - {path: {type: PathPrefix, value: /n/%20}}
    - {path: {type: Exact, value: "/m/0"}, method: HEAD}
    - {path: {type: RegularExpression, value: "(/[^/]+)*"}, headers: [{name: x-any, value: "1"}]}
    backendRefs: [{name: be}]
)yaml";

struct Fixture {
  std::shared_ptr<const config::Snapshot> snapshot;
  const router::RouteTable* table = nullptr;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture out;
    config::LoadResult load = config::loadString(kConfig, "route_match_fuzz.yaml");
    config::StatsIds ids;
    config::CompileResult compiled = config::compile(load.resources, ids, 1);
    // Expected warning only: the duplicate "x-env" header match of route "prefix".
    if (config::hasErrors(load.diagnostics) || config::hasErrors(compiled.diagnostics) ||
        compiled.snapshot->ports.size() != 1 || compiled.snapshot->ports[0].routes == nullptr) {
      for (const auto* diags : {&load.diagnostics, &compiled.diagnostics})
        for (const config::Diagnostic& d : *diags) std::fprintf(stderr, "%s\n", d.format().c_str());
      std::fprintf(stderr, "route_match_fuzz: fixed config did not compile as expected\n");
      std::abort();
    }
    out.snapshot = compiled.snapshot;
    out.table = out.snapshot->ports[0].routes.get();
    return out;
  }();
  return f;
}

// Splits off the next 0x00-terminated field of `rest` (all of it when there is no 0x00).
std::string_view nextField(std::string_view& rest) {
  size_t pos = rest.find('\0');
  std::string_view field = rest.substr(0, pos);
  rest = pos == std::string_view::npos ? std::string_view() : rest.substr(pos + 1);
  return field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& f = fixture();
  std::string_view rest(reinterpret_cast<const char*>(data), size);

  router::RouteInput in;
  in.host = nextField(rest);
  in.path = nextField(rest);
  in.query = nextField(rest);
  in.method = nextField(rest);
  http1::Header headers[4];
  uint32_t count = 0;
  while (count < 4 && !rest.empty()) {
    headers[count].name = nextField(rest);
    // The last header value takes everything left, NULs included.
    headers[count].value = count == 3 ? std::exchange(rest, std::string_view()) : nextField(rest);
    ++count;
  }
  in.headers = headers;
  in.header_count = count;

  router::RouteDecision d = f.table->match(in);
  router::Explanation e = router::explain(*f.table, in);
  if (d.rule != e.rule || d.listener != e.listener) {
    std::fprintf(stderr,
                 "route_match_fuzz: match() and explain() disagree\n"
                 "  match:   listener '%.*s' rule %p\n"
                 "  explain: listener '%s' rule %p route '%s' rule %d match %d\n%s",
                 static_cast<int>(d.listener.size()), d.listener.data(),
                 static_cast<const void*>(d.rule), e.listener.c_str(),
                 static_cast<const void*>(e.rule), e.matched_route.c_str(), e.rule_index,
                 e.match_index, router::toText(e).c_str());
    std::abort();
  }
  return 0;
}
