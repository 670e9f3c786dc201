// The config compiler: resources -> an immutable Snapshot for the workers, plus diagnostics.
//
// Main thread only. Never throws. Fault isolation: an invalid resource is rejected alone (an
// invalid Gateway listener alone), with diagnostics; everything else compiles. References
// that do not resolve keep their place: an unresolved backendRef answers 500 for its share.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"
#include "config/snapshot.h"
#include "config/stats_ids.h"

namespace portico::security {
class KeySet;
}

namespace portico::config {

// The last good key set of each remote JWKS URI (Snapshot::jwks_sources), by URI.
using JwksKeySets = std::map<std::string, std::shared_ptr<const security::KeySet>, std::less<>>;

// What the gateway's resolver knows about DNS endpoint names: name -> IP literals. A name
// without an answer contributes no endpoints yet.
struct DnsAnswers {
  std::map<std::string, std::vector<std::string>> by_name;
  const std::vector<std::string>& addresses(const std::string& name) const {
    static const std::vector<std::string> kNone;
    auto it = by_name.find(name);
    return it == by_name.end() ? kNone : it->second;
  }
};

// Where one compile() spent its time (wall clock, ms), for the gateway's reload log line.
struct CompileTimings {
  double decode_ms = 0;        // classification, decoded specs (reused or decoded now)
  double listeners_ms = 0;     // Gateways, listeners, ports, Gateway policies
  double routes_ms = 0;        // HTTPRoute rules, references, attachment, route policies
  double tables_ms = 0;        // route tables of the ports
  double status_ms = 0;        // statuses for /config_dump
  double total_ms = 0;         // compile() from call to return (a second try included)
  double cpu_ms = 0;           // the same in CPU time of the calling thread (total - cpu: waiting)
  uint32_t routes_reused = 0;  // HTTPRoutes whose previous compiled form was reused
  uint32_t routes_compiled = 0;  // HTTPRoutes compiled now
  // "decode 1.0, listeners 0.1, routes 2.0 (9999 reused, 1 compiled), tables 4.0, status 0.3,
  // total 8.0, cpu 7.9"
  std::string describe() const;
};

struct CompileResult {
  std::shared_ptr<const Snapshot> snapshot;  // never null; may have no ports
  std::vector<Diagnostic> diagnostics;       // errors: rejected parts; warnings: degraded
  CompileTimings timings;
};

// Compiles `resources` (from loadPath/loadString) into a Snapshot with the given version.
// `ids` assigns stats and pool ids; it must be the same object across reloads so that ids
// stay stable. Supported kinds: Gateway and HTTPRoute (gateway.networking.k8s.io/v1, v1beta1),
// Backend, TrafficPolicy, HTTPRouteFilter and SecurityPolicy (portico.dev/v1alpha1).
// What one compile() leaves for the next, so that a reload that changed only HTTPRoutes
// compiles only those: the compiled rules, attachments, statuses and diagnostics of every
// route, by document. compile() reuses a route's when its document is the same and nothing
// else is (every resource that is not an HTTPRoute the same document in the same order, the
// same StatsIds, DNS answers and zone); otherwise it compiles everything and refills the
// cache. The result is the same as without a cache (snapshot, statuses, diagnostics), except
// that unchanged rules and backends are the previous snapshot's objects, shared.
// Main thread only; one per gateway process, used with one StatsIds.
class CompileCache {
 public:
  CompileCache();
  ~CompileCache();
  CompileCache(const CompileCache&) = delete;
  CompileCache& operator=(const CompileCache&) = delete;

  struct State;                  // compilation.h
  std::unique_ptr<State> state;  // null: nothing to reuse
};

// What the gateway process adds to the resources.
struct CompileOptions {
  const DnsAnswers* dns = nullptr;  // addresses of DNS endpoints (see Snapshot::dns_names)
  std::string local_zone;           // the gateway's zone, for zone-aware load balancing
  CompileCache* cache = nullptr;    // reuse the previous compile's routes (see CompileCache)
  // Remote JWKS key sets fetched so far (uri -> last good set); a URI without one gives its
  // providers an empty key set (every token fails until the first fetch). Like DNS answers,
  // a change of any key set compiles everything again (no route reuse).
  const JwksKeySets* jwks = nullptr;
};

CompileResult compile(const std::vector<Resource>& resources, StatsIds& ids, uint64_t version = 0,
                      const CompileOptions& options = {});
// The same without copying the resources: the snapshot keeps `resources` for its config dump.
CompileResult compile(std::shared_ptr<const std::vector<Resource>> resources, StatsIds& ids,
                      uint64_t version = 0, const CompileOptions& options = {});

// The admin /config_dump JSON of a snapshot from compile(): every resource (apiVersion, kind,
// metadata, source file and line, spec, status) and the ports. Rendered on each call from the
// resources the snapshot keeps. Main thread only (reads the resources' YAML).
std::string renderConfigDump(const Snapshot& snapshot);

}  // namespace portico::config
