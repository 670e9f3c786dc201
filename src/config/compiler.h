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

namespace portico::config {

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

struct CompileResult {
  std::shared_ptr<const Snapshot> snapshot;  // never null; may have no ports
  std::vector<Diagnostic> diagnostics;       // errors: rejected parts; warnings: degraded
};

// Compiles `resources` (from loadPath/loadString) into a Snapshot with the given version.
// `ids` assigns stats and pool ids; it must be the same object across reloads so that ids
// stay stable. Supported kinds: Gateway and HTTPRoute (gateway.networking.k8s.io/v1, v1beta1),
// Backend and TrafficPolicy (portico.dev/v1alpha1).
// What the gateway process adds to the resources.
struct CompileOptions {
  const DnsAnswers* dns = nullptr;  // addresses of DNS endpoints (see Snapshot::dns_names)
  std::string local_zone;           // the gateway's zone, for zone-aware load balancing
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
