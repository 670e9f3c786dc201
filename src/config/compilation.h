// Internal to the compiler (compiler.cc, compile_routes.cc, compile_policy.cc,
// config_dump.cc): the state of one compile() run. Not for other components.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "config/compiler.h"
#include "config/model.h"
#include "net/tls.h"
#include "router/route_table.h"

namespace portico::config {

// A resource's spec as its decoder read it, kept in the resource's DecodeSlot: a later compile
// of the same document replays the diagnostics instead of decoding again. Decoding depends on
// the document alone.
struct DecodedSpec {
  std::optional<GatewayModel> gateway;
  std::optional<HttpRouteModel> route;
  std::optional<BackendModel> backend;
  std::optional<TrafficPolicyModel> policy;
  std::optional<RouteFilterModel> route_filter;
  std::optional<SecretModel> secret;  // Secret or ConfigMap
  std::optional<SecurityPolicyModel> security;
  // The decoder's diagnostics, lines relative to the document (Resource::line_offset not added).
  std::vector<Diagnostic> diagnostics;
};

}  // namespace portico::config

namespace portico::config::internal {

// Status of one Gateway listener, as reported in status.listeners[].
struct ListenerStatus {
  std::string name;
  Condition accepted{"Accepted", true, "Accepted", ""};
  std::optional<Condition> conflicted;   // set when Conflicted=True
  bool resolved_refs = true;             // false when allowedRoutes.kinds has unsupported kinds
  bool http_route = true;                // supportedKinds: HTTPRoute
  bool grpc_route = true;                // supportedKinds: GRPCRoute
  std::optional<Condition> refs_failed;  // ResolvedRefs=False for another reason (TLS refs)
  bool programmed = false;
  uint32_t attached_routes = 0;
  bool operator==(const ListenerStatus&) const = default;
};

// status.parents[] entry of an HTTPRoute.
struct ParentStatus {
  const ParentRefModel* ref = nullptr;  // in the route's decoded spec
  Condition accepted{"Accepted", false, "NoMatchingParent", ""};
  bool operator==(const ParentStatus&) const = default;
};

// status.ancestors[] entry of a TrafficPolicy (one per target).
struct AncestorStatus {
  std::string target_kind = "Gateway";
  std::string gateway_ns;    // the target's namespace
  std::string gateway_name;  // the target's name
  std::string section;       // sectionName of the target, if any
  Condition accepted{"Accepted", true, "Accepted", ""};
  std::vector<Condition> more;  // further conditions (SecurityPolicy: ResolvedRefs, Conflicted)
  bool operator==(const AncestorStatus&) const = default;
};

// Status of any resource, turned into JSON by the config dump.
struct ResourceStatus {
  std::vector<Condition> conditions;
  std::vector<ListenerStatus> listeners;   // Gateway
  std::vector<std::string> addresses;      // Gateway
  std::vector<ParentStatus> parents;       // HTTPRoute
  std::optional<Condition> resolved_refs;  // HTTPRoute, copied to every parent
  std::vector<AncestorStatus> ancestors;   // TrafficPolicy
  bool operator==(const ResourceStatus&) const = default;
};

// An accepted listener being compiled.
struct ListenerBuild {
  uint32_t gateway = 0;   // index into Compilation::gateways_
  uint32_t listener = 0;  // index into the Gateway's listeners
  router::ListenerSpec spec;
  // The last route item attached: a route's parentRefs are attached one after the other, so
  // this dedupes a listener selected by several parentRefs of one route.
  uint32_t last_route = UINT32_MAX;
  std::optional<net::TlsListenerSettings> tls;  // HTTPS listeners (compile_tls.cc)
};

// A listening socket being compiled.
struct PortBuild {
  std::string bind_ip;
  net::Address bind;
  uint16_t port = 0;
  std::vector<uint32_t> listeners;  // indexes into Compilation::listeners_
  PortSettings settings;
  std::map<std::string, std::string> set_by;  // setting field -> "TrafficPolicy ns/name"
};

struct GatewayItem {
  uint32_t resource = 0;
  const GatewayModel& model;    // owned by the resource's DecodedSpec
  std::vector<uint32_t> ports;  // indexes into Compilation::ports_
};

// A Backend materialized for a route: (index into Compilation::backends_, port for portless
// endpoints or 0).
using BackendKey = std::pair<uint32_t, uint16_t>;

// What compiling one HTTPRoute gave, kept in the CompileCache for the next compile.
struct CompiledRoute {
  std::shared_ptr<DecodeSlot> slot;  // the route's document (keeps its spec alive)
  // The first of its rules (one per model rule, contiguous, one allocation that this pointer
  // keeps), route policies applied.
  std::shared_ptr<Rule> rules;
  // (index into Compilation::listeners_, the route as attached there).
  std::vector<std::pair<uint32_t, std::shared_ptr<const router::RouteSpec>>> attached;
  // (index into Compilation::gateways_, listener index): one more attached route each.
  std::vector<std::pair<uint32_t, uint32_t>> attached_to;
  std::vector<ParentStatus> parents;
  std::optional<Condition> resolved_refs;
  std::vector<Diagnostic> diagnostics;  // lines relative to the document
  // Backends of portless endpoints it materialized or used, in first-use order.
  std::vector<BackendKey> port_backends;
  std::shared_ptr<const std::string> status_json;  // its status in /config_dump
};

struct RouteItem {
  uint32_t resource = 0;
  const HttpRouteModel& model;
  std::vector<Rule*> rules;  // parallel to model.rules; empty when reused (see rule())
  // From the CompileCache (its rules are final: route policies are not applied again, and
  // its status is the one it had), or compiled now. Null without a cache.
  std::shared_ptr<const CompiledRoute> compiled;
  bool reused = false;
  CompiledRoute* recording = nullptr;  // compiled now: `compiled`, being filled

  Rule* rule(size_t i) const { return reused ? compiled->rules.get() + i : rules[i]; }
};

struct BackendItem {
  uint32_t resource = 0;
  const BackendModel& model;
  bool needs_ref_port = false;  // some endpoint has no port
};

struct PolicyItem {
  uint32_t resource = 0;
  const TrafficPolicyModel& model;
};

struct SecurityItem {
  uint32_t resource = 0;
  const SecurityPolicyModel& model;
  std::string invalid;  // decode errors (the policy fails closed); "" when valid
};

class Compilation {
 public:
  // `cache` may be null; `reuse`: take routes from it when allowed (else only refill it).
  Compilation(std::shared_ptr<const std::vector<Resource>> resources, StatsIds& ids,
              uint64_t version, const DnsAnswers& dns, std::string local_zone, CompileCache* cache,
              bool reuse, const JwksKeySets* jwks = nullptr);
  CompileResult run();
  // run() gave up reusing routes (a reused route would not be the same as compiled now):
  // compile again with reuse = false. Its result is not to be used.
  bool abandoned() const { return abandoned_; }

 private:
  // compiler.cc
  void decodeAll();
  // The decoded spec of resource `i` of kind `kind` ("Gateway", ...): from its DecodeSlot, or
  // decoded now and stored there. Appends its diagnostics, placed in the file.
  const DecodedSpec& decoded(uint32_t i);
  void buildListeners();
  void buildPorts();
  void fillStatsNames();
  Reporter reporterFor(uint32_t resource);
  // Condition message from the error diagnostics emitted since `first` ("" if none).
  std::string errorsSince(size_t first) const;

  // compile_routes.cc
  void attachRoutes();
  void compileRules(RouteItem& route, Reporter& r);
  const Backend* resolveBackendRef(
      const BackendRefModel& ref, Reporter& r, std::string* failure_reason,
      std::string* failure_message,
      std::string_view consequence = "its share of the traffic answers 500");
  // RequestMirror backends; an unresolved one is reported through `note` and left out.
  std::vector<Mirror> resolveMirrors(
      const std::vector<MirrorModel>& models, Reporter& r,
      const std::function<void(const std::string&, const std::string&)>& note);
  const Backend* materializeBackend(uint32_t backend_item, uint16_t ref_port);
  // Takes the previous compile's backends and route results when nothing but HTTPRoutes
  // changed (sets reusing_).
  void startReuse();
  // Adds a route compiled by an earlier compile to this one.
  void replayRoute(RouteItem& route, const CompiledRoute& compiled);
  // Whether the backends of portless endpoints are the ones the previous compile made, in
  // the same order (else the snapshot would differ from a full compile's).
  bool sameRouteBackends() const;
  // Stores this compile's route results in the cache for the next compile.
  void fillCache();
  void buildBalancer(Backend& backend);
  void attachParent(uint32_t route_index, const ParentRefModel& ref, ParentStatus* status,
                    Reporter& r);

  // compile_policy.cc
  void applyPolicies();
  void applyRoutePolicies();  // after attachRoutes(): policies targeting routes and rules
  // Records a target that does not exist: status TargetNotFound and a warning.
  void targetNotFound(uint32_t policy_resource, const PolicyTargetModel& target, AncestorStatus as,
                      Reporter& r);

  // compile_security.cc: SecurityPolicies compiled and attached to rules and ports (after
  // applyRoutePolicies(); rules of reused routes are final and left alone).
  void applySecurityPolicies();
  // Whether a file the previous compile's SecurityPolicies read (keys, consumers, htpasswd)
  // now reads differently: its routes' rules would not be the same (no reuse).
  bool securityFilesChanged() const;
  // Reads a file for a SecurityPolicy and records it for securityFilesChanged(); "" on
  // success, else the problem.
  std::string readSecurityFile(const std::string& path, std::string* out);

  // compile_tls.cc
  // The TLS settings of an HTTPS listener: certificates and CA bundles read from its Secrets,
  // ConfigMaps and files. nullopt (reported, *failed set) when a reference does not resolve.
  std::optional<net::TlsListenerSettings> resolveListenerTls(const GatewayItem& gw,
                                                             const ListenerModel& lm,
                                                             const std::string& id, Reporter& r,
                                                             Condition* failed);
  // The TLS context of a port whose listeners are HTTPS; null (reported) when it fails.
  std::shared_ptr<const net::ServerTlsContext> buildPortTls(const PortBuild& pb);
  // Backends with spec.tls: their client contexts; a Backend whose CA or client certificate
  // does not resolve is rejected (reported, removed from backend_by_name_).
  void resolveBackendTls();
  std::shared_ptr<const net::ClientTlsContext> backendTls(uint32_t resource) const;

  // config_dump.cc
  std::shared_ptr<const ConfigDumpSource> dumpSource() const;

  std::shared_ptr<const std::vector<Resource>> resources_ptr_;
  const std::vector<Resource>& resources_;  // *resources_ptr_
  StatsIds& ids_;
  const DnsAnswers& dns_;
  const JwksKeySets& jwks_;
  std::string local_zone_;  // the gateway's zone, for zone-aware load balancing
  CompileCache* cache_;     // may be null
  bool reuse_;              // may take routes from cache_
  bool reusing_ = false;    // takes routes from cache_ (startReuse())
  bool abandoned_ = false;
  // Resources that are not HTTPRoutes, in order: the previous compile's must be the same for
  // its routes to be reused.
  std::vector<std::shared_ptr<DecodeSlot>> others_;
  CompiledRoute* recording_ = nullptr;  // the route being compiled, while attachRoutes() runs
  std::shared_ptr<Snapshot> snapshot_;
  std::vector<Diagnostic> diagnostics_;
  CompileTimings timings_;
  std::vector<ResourceStatus> status_;  // parallel to resources_
  // Keeps alive the models of resources without a DecodeSlot (a slot keeps its own).
  std::vector<std::shared_ptr<const DecodedSpec>> decoded_;

  std::set<std::tuple<std::string, std::string, std::string>> rejected_;  // (kind, ns, name)
  std::vector<GatewayItem> gateways_;
  std::vector<RouteItem> routes_;
  std::vector<BackendItem> backends_;
  std::vector<PolicyItem> policies_;
  std::vector<SecurityItem> security_policies_;
  std::map<std::string, std::string> security_files_;  // path -> content, or the read error
  std::vector<RouteFilterModel> route_filters_;        // HTTPRouteFilters
  std::map<std::pair<std::string, std::string>, uint32_t> route_filter_by_name_;
  std::map<std::pair<std::string, std::string>, uint32_t> gateway_by_name_;  // (ns, name)
  std::map<std::pair<std::string, std::string>, uint32_t> backend_by_name_;
  // Secrets and ConfigMaps by (kind, ns, name): resource index and decoded content.
  std::map<std::tuple<std::string, std::string, std::string>,
           std::pair<uint32_t, const SecretModel*>>
      secret_by_name_;
  std::set<uint32_t> reported_secrets_;  // Secrets whose content errors were reported
  std::map<uint32_t, std::shared_ptr<const net::ClientTlsContext>> backend_tls_;  // by resource
  // Materialized Backends by (index into backends_, port for portless endpoints or 0).
  std::map<BackendKey, const Backend*> materialized_;
  std::string scratch_;  // reused to build lookup keys without allocating

  std::vector<ListenerBuild> listeners_;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> listener_build_;  // (gateway, listener)
  std::vector<PortBuild> ports_;
  std::map<std::pair<std::string, uint16_t>, uint32_t> port_by_key_;  // (bind ip, port)
};

// Sort key for "oldest first, then alphabetical {namespace}/{name}".
bool olderFirst(const Resource& a, const Resource& b);

}  // namespace portico::config::internal

namespace portico::config {

struct CompileCache::State {
  // What the routes depended on besides their own documents.
  uint64_t stats_instance = 0;
  DnsAnswers dns;
  JwksKeySets jwks;  // compared by key-set pointer: a new fetch compiles everything
  std::map<std::string, std::string> security_files;  // SecurityPolicy files as last read
  std::string local_zone;
  std::vector<std::shared_ptr<DecodeSlot>> others;
  // The snapshot's backends, the keys of those made for portless endpoints (first use order),
  // and its DNS names: a compile reusing routes starts from them.
  std::vector<std::shared_ptr<const Backend>> backends;
  std::map<internal::BackendKey, const Backend*> materialized;
  std::vector<internal::BackendKey> port_backends;
  std::vector<std::string> dns_names;
  // Every route of the last compile, by its document's DecodeSlot.
  std::unordered_map<const DecodeSlot*, std::shared_ptr<const internal::CompiledRoute>> routes;
};

// A resource's last status and its JSON, kept in its DecodeSlot: a later compile that gives the
// same document the same status reuses the JSON (the JSON depends on the status and on the
// document alone).
struct StatusCache {
  internal::ResourceStatus status;
  std::shared_ptr<const std::string> json;
};

}  // namespace portico::config
