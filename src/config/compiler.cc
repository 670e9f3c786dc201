// compile(): the phases, resource classification, listeners and ports.
// Routes: compile_routes.cc. Policies: compile_policy.cc. Status JSON: config_dump.cc.
#include "config/compiler.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <tuple>
#include <unordered_map>

#include "config/compilation.h"

namespace portico::config {
namespace internal {
namespace {

enum class KindClass {
  kGateway,
  kHttpRoute,
  kBackend,
  kTrafficPolicy,
  kRouteFilter,
  kSecurityPolicy,
  kSecret,  // core v1 Secret or ConfigMap
  kIgnored,
  kUnknown
};

constexpr std::string_view kIgnoredGatewayKinds[] = {
    "GatewayClass",   "TLSRoute",         "TCPRoute",    "UDPRoute",
    "ReferenceGrant", "BackendTLSPolicy", "ListenerSet", "XListenerSet"};

// `*field` is set to the field at fault ("kind", or "apiVersion" for a version not served).
KindClass classify(const Resource& res, std::string* problem, std::string* field) {
  *field = "kind";
  std::string_view group = res.group(), version = res.version();
  if (group == kGatewayGroup) {
    bool served_version = version == "v1" || version == "v1beta1";
    if (res.kind == "Gateway" || res.kind == "HTTPRoute") {
      if (served_version)
        return res.kind == "Gateway" ? KindClass::kGateway : KindClass::kHttpRoute;
      *problem = "Unsupported value: \"" + res.api_version + "\": " + res.kind +
                 " is served as gateway.networking.k8s.io/v1";
      *field = "apiVersion";
      return KindClass::kUnknown;
    }
    // GRPCRoute decodes into the HTTPRoute model (decodeGrpcRoute) and is routed like one.
    if (res.kind == "GRPCRoute") {
      if (version == "v1") return KindClass::kHttpRoute;
      *problem = "Unsupported value: \"" + res.api_version +
                 "\": GRPCRoute is served as gateway.networking.k8s.io/v1";
      *field = "apiVersion";
      return KindClass::kUnknown;
    }
    for (std::string_view k : kIgnoredGatewayKinds) {
      if (res.kind == k) {
        *problem = "kind " + res.kind + " is not supported yet; ignored";
        return KindClass::kIgnored;
      }
    }
  } else if (group.empty() && version == "v1" &&
             (res.kind == "Secret" || res.kind == "ConfigMap")) {
    return KindClass::kSecret;
  } else if (group == kPorticoGroup) {
    if (res.kind == "Backend" || res.kind == "TrafficPolicy" || res.kind == "HTTPRouteFilter" ||
        res.kind == "SecurityPolicy") {
      if (version == "v1alpha1") {
        return res.kind == "Backend"          ? KindClass::kBackend
               : res.kind == "TrafficPolicy"  ? KindClass::kTrafficPolicy
               : res.kind == "SecurityPolicy" ? KindClass::kSecurityPolicy
                                              : KindClass::kRouteFilter;
      }
      *problem = "Unsupported value: \"" + res.api_version + "\": " + res.kind +
                 " is served as portico.dev/v1alpha1";
      *field = "apiVersion";
      return KindClass::kUnknown;
    }
  }
  *problem =
      "Unsupported value: kind " + res.kind + " of apiVersion \"" + res.api_version +
      "\": supported kinds are Gateway, HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1), "
      "Backend, TrafficPolicy, HTTPRouteFilter and SecurityPolicy (portico.dev/v1alpha1), Secret "
      "and ConfigMap (v1)";
  return KindClass::kUnknown;
}

// The mark of a top-level field's value, or of the document.
YAML::Mark topFieldMark(const Resource& res, std::string_view key) {
  if (res.document.IsMap()) {
    for (auto it = res.document.begin(); it != res.document.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return markOf(it->second);
  }
  return markOf(res.document);
}

std::string where(const Resource& res) {
  std::string out = res.file.empty() ? std::string("<input>") : res.file;
  if (!res.mark.is_null()) out += ':' + std::to_string(res.mark.line + 1);
  return out;
}

}  // namespace

const JwksKeySets kNoJwks;

bool olderFirst(const Resource& a, const Resource& b) {
  if (a.created_us != b.created_us) return a.created_us < b.created_us;
  return (a.ns + '/' + a.name) < (b.ns + '/' + b.name);
}

Compilation::Compilation(std::shared_ptr<const std::vector<Resource>> resources, StatsIds& ids,
                         uint64_t version, const DnsAnswers& dns, std::string local_zone,
                         CompileCache* cache, bool reuse, const JwksKeySets* jwks)
    : resources_ptr_(std::move(resources)),
      resources_(*resources_ptr_),
      ids_(ids),
      dns_(dns),
      jwks_(jwks != nullptr ? *jwks : kNoJwks),
      local_zone_(std::move(local_zone)),
      cache_(cache),
      reuse_(reuse && cache != nullptr),
      snapshot_(std::make_shared<Snapshot>()),
      status_(resources_.size()) {
  snapshot_->version = version;
}

Reporter Compilation::reporterFor(uint32_t resource) {
  return Reporter(resources_[resource].subject(), &diagnostics_);
}

std::string Compilation::errorsSince(size_t first) const {
  std::string out;
  for (size_t i = first; i < diagnostics_.size(); ++i) {
    const Diagnostic& d = diagnostics_[i];
    if (d.severity != Severity::kError) continue;
    if (!out.empty()) out += "; ";
    if (!d.field_path.empty()) out += d.field_path + ": ";
    out += d.message;
    if (out.size() > 2000) {
      out += "; ...";
      break;
    }
  }
  return out;
}

const DecodedSpec& Compilation::decoded(uint32_t i) {
  const Resource& res = resources_[i];
  std::shared_ptr<const DecodedSpec> spec = res.decoded ? res.decoded->spec : nullptr;
  if (spec == nullptr) {
    auto fresh = std::make_shared<DecodedSpec>();
    Subject subject = res.subject();
    subject.line_offset = 0;
    Reporter r(std::move(subject), &fresh->diagnostics);
    std::string unused, unused_field;
    switch (classify(res, &unused, &unused_field)) {
      case KindClass::kGateway:
        fresh->gateway = decodeGateway(res, r);
        break;
      case KindClass::kHttpRoute:
        fresh->route = res.kind == "GRPCRoute" ? decodeGrpcRoute(res, r) : decodeHttpRoute(res, r);
        break;
      case KindClass::kBackend:
        fresh->backend = decodeBackend(res, r);
        break;
      case KindClass::kTrafficPolicy:
        fresh->policy = decodeTrafficPolicy(res, r);
        break;
      case KindClass::kRouteFilter:
        fresh->route_filter = decodeRouteFilter(res, r);
        break;
      case KindClass::kSecurityPolicy:
        fresh->security = decodeSecurityPolicy(res, r);
        break;
      case KindClass::kSecret:
        fresh->secret = decodeSecret(res, r);
        break;
      default:
        break;
    }
    spec = std::move(fresh);
    if (res.decoded) res.decoded->spec = spec;
  }
  for (const Diagnostic& d : spec->diagnostics) {
    diagnostics_.push_back(d);
    Diagnostic& placed = diagnostics_.back();
    placed.file = res.file;
    if (placed.line > 0) placed.line += res.line_offset;
  }
  if (res.decoded == nullptr) decoded_.push_back(spec);  // else the slot keeps it alive
  return *spec;
}

void Compilation::decodeAll() {
  // Resources seen so far by (group, kind, ns, name): open addressing over indexes + 1.
  std::vector<uint32_t> seen(16);
  while (seen.size() < resources_.size() * 2) seen.resize(seen.size() * 2);
  const size_t seen_mask = seen.size() - 1;
  auto identity = [](const Resource& r) {
    size_t h = std::hash<std::string_view>{}(r.group());
    for (std::string_view part :
         {std::string_view(r.kind), std::string_view(r.ns), std::string_view(r.name)})
      h = (h ^ std::hash<std::string_view>{}(part)) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
  };
  // The index of the first resource with the identity of resources_[i], inserting i if none.
  auto firstWithIdentity = [&](uint32_t i) -> uint32_t {
    const Resource& res = resources_[i];
    for (size_t k = identity(res) & seen_mask;; k = (k + 1) & seen_mask) {
      if (seen[k] == 0) {
        seen[k] = i + 1;
        return i;
      }
      const Resource& other = resources_[seen[k] - 1];
      if (other.name == res.name && other.ns == res.ns && other.kind == res.kind &&
          other.group() == res.group())
        return seen[k] - 1;
    }
  };
  routes_.reserve(resources_.size());
  for (uint32_t i = 0; i < resources_.size(); ++i) {
    const Resource& res = resources_[i];
    size_t first = diagnostics_.size();
    std::string problem, field;
    KindClass kind = classify(res, &problem, &field);
    if (kind != KindClass::kHttpRoute && cache_ != nullptr) others_.push_back(res.decoded);
    if (kind == KindClass::kIgnored || kind == KindClass::kUnknown) {
      Reporter r = reporterFor(i);
      r.add(kind == KindClass::kIgnored ? Severity::kWarning : Severity::kError,
            topFieldMark(res, field), field, problem);
      status_[i].conditions.push_back(Condition{"Accepted", false, "Unsupported", problem});
      continue;
    }
    uint32_t first_defined = firstWithIdentity(i);
    if (first_defined != i) {
      std::string message = "Duplicate value: " + res.id() + " is already defined at " +
                            where(resources_[first_defined]) + "; this definition is ignored";
      YAML::Mark name_mark = markOf(res.document);
      for (auto top = res.document.begin(); top != res.document.end(); ++top) {
        if (!top->first.IsScalar() || top->first.Scalar() != "metadata" || !top->second.IsMap())
          continue;
        for (auto m = top->second.begin(); m != top->second.end(); ++m)
          if (m->first.IsScalar() && m->first.Scalar() == "name") name_mark = markOf(m->second);
      }
      reporterFor(i).error(name_mark, "metadata.name", message);
      status_[i].conditions.push_back(Condition{"Accepted", false, "Duplicate", message});
      continue;
    }
    const DecodedSpec& spec = decoded(i);
    bool ok = false;
    switch (kind) {
      case KindClass::kGateway:
        if (spec.gateway) {
          for (const ListenerModel& l : spec.gateway->listeners) {
            ListenerStatus ls;
            ls.name = l.name;
            if (!l.accepted) ls.accepted = Condition{"Accepted", false, l.reason, l.message};
            ls.resolved_refs = l.allows_http_route || l.allows_grpc_route;
            ls.http_route = l.allows_http_route;
            ls.grpc_route = l.allows_grpc_route;
            status_[i].listeners.push_back(std::move(ls));
          }
          gateway_by_name_[{res.ns, res.name}] = static_cast<uint32_t>(gateways_.size());
          gateways_.push_back(GatewayItem{i, *spec.gateway, {}});
          ok = true;
        }
        break;
      case KindClass::kHttpRoute:
        if (spec.route) {
          routes_.push_back(RouteItem{i, *spec.route, {}, nullptr, false});
          ok = true;
        }
        break;
      case KindClass::kBackend:
        if (spec.backend) {
          const BackendModel& m = *spec.backend;
          bool needs_port = std::any_of(m.endpoints.begin(), m.endpoints.end(),
                                        [](const EndpointModel& e) { return e.port == 0; });
          backend_by_name_[{res.ns, res.name}] = static_cast<uint32_t>(backends_.size());
          backends_.push_back(BackendItem{i, m, needs_port});
          status_[i].conditions.push_back(Condition{"Accepted", true, "Accepted", ""});
          ok = true;
        }
        break;
      case KindClass::kTrafficPolicy:
        if (spec.policy) {
          policies_.push_back(PolicyItem{i, *spec.policy});
          ok = true;
        }
        break;
      case KindClass::kRouteFilter:
        if (spec.route_filter) {
          route_filter_by_name_[{res.ns, res.name}] = static_cast<uint32_t>(route_filters_.size());
          route_filters_.push_back(*spec.route_filter);
          status_[i].conditions.push_back(Condition{"Accepted", true, "Accepted", ""});
          ok = true;
        }
        break;
      case KindClass::kSecurityPolicy:
        if (spec.security) {
          std::string message = spec.security->invalid ? errorsSince(first) : "";
          if (spec.security->invalid && message.empty()) message = "invalid (see its errors)";
          security_policies_.push_back(SecurityItem{i, *spec.security, message});
          // An invalid one is rejected but still placed: its targets fail closed.
          ok = !spec.security->invalid;
        }
        break;
      case KindClass::kSecret:
        if (spec.secret) {
          secret_by_name_[{res.kind, res.ns, res.name}] = {i, &*spec.secret};
          ok = true;
        }
        break;
      default:
        break;
    }
    if (!ok) {
      rejected_.insert({res.kind, res.ns, res.name});
      std::string message = errorsSince(first);
      std::string reason = kind == KindClass::kHttpRoute ? "UnsupportedValue" : "Invalid";
      // Gateway API's reason for a route whose filters cannot be combined.
      if (kind == KindClass::kHttpRoute && message.find("IncompatibleFilters") != std::string::npos)
        reason = "IncompatibleFilters";
      status_[i].conditions.push_back(Condition{"Accepted", false, reason, message});
    }
  }
}

void Compilation::buildListeners() {
  std::vector<uint32_t> order(gateways_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return olderFirst(resources_[gateways_[a].resource], resources_[gateways_[b].resource]);
  });
  for (uint32_t g : order) {
    GatewayItem& gw = gateways_[g];
    const Resource& res = resources_[gw.resource];
    ResourceStatus& st = status_[gw.resource];
    Reporter r = reporterFor(gw.resource);
    std::vector<std::string> ips = gw.model.addresses;
    if (ips.empty()) ips.push_back("0.0.0.0");
    st.addresses = ips;
    uint32_t served = 0;
    for (uint32_t li = 0; li < gw.model.listeners.size(); ++li) {
      const ListenerModel& lm = gw.model.listeners[li];
      ListenerStatus& ls = st.listeners[li];
      if (!lm.accepted) continue;
      std::string id = res.ns + '/' + res.name + '/' + lm.name;
      std::optional<net::TlsListenerSettings> tls;
      if (lm.tls) {
        Condition failed;
        tls = resolveListenerTls(gw, lm, id, r, &failed);
        if (!tls) {
          ls.refs_failed = failed;
          continue;
        }
      }
      // Listeners on one socket must differ in hostname and agree on TLS; the older Gateway
      // keeps it.
      std::string conflict;
      bool protocol_conflict = false;
      for (const std::string& ip : ips) {
        auto pit = port_by_key_.find({ip, lm.port});
        if (pit == port_by_key_.end()) continue;
        for (uint32_t other : ports_[pit->second].listeners) {
          if (listeners_[other].tls.has_value() != lm.tls.has_value()) {
            conflict = listeners_[other].spec.id;
            protocol_conflict = true;
          } else if (listeners_[other].spec.hostname == lm.hostname) {
            conflict = listeners_[other].spec.id;
          }
        }
      }
      if (!conflict.empty()) {
        std::string message =
            protocol_conflict
                ? "Conflicted: port " + std::to_string(lm.port) + " is already served by " +
                      "listener " + conflict + " with another protocol (HTTP and HTTPS)"
                : "Conflicted: port " + std::to_string(lm.port) + " with hostname \"" +
                      lm.hostname + "\" is already served by listener " + conflict;
        std::string reason = protocol_conflict ? "ProtocolConflict" : "HostnameConflict";
        r.error(lm.where.mark, lm.where.path, message);
        ls.accepted = Condition{"Accepted", false, reason, message};
        ls.conflicted = Condition{"Conflicted", true, reason, message};
        continue;
      }
      uint32_t build = static_cast<uint32_t>(listeners_.size());
      ListenerBuild lb;
      lb.gateway = g;
      lb.listener = li;
      lb.spec.id = id;
      lb.spec.hostname = lm.hostname;
      lb.tls = std::move(tls);
      listeners_.push_back(std::move(lb));
      listener_build_[{g, li}] = build;
      for (const std::string& ip : ips) {
        auto [pit, inserted] =
            port_by_key_.emplace(std::make_pair(ip, lm.port), static_cast<uint32_t>(ports_.size()));
        if (inserted) {
          PortBuild pb;
          pb.bind_ip = ip;
          pb.bind = net::Address::parseIp(ip, lm.port).value_or(net::Address{});
          pb.port = lm.port;
          ports_.push_back(std::move(pb));
        }
        ports_[pit->second].listeners.push_back(build);
        if (std::find(gw.ports.begin(), gw.ports.end(), pit->second) == gw.ports.end())
          gw.ports.push_back(pit->second);
      }
      ls.programmed = true;
      ++served;
    }
    size_t total = gw.model.listeners.size();
    if (served == total) {
      st.conditions.push_back(Condition{"Accepted", true, "Accepted", ""});
    } else {
      std::string message = std::to_string(total - served) + " of " + std::to_string(total) +
                            " listeners are not valid or not supported";
      st.conditions.push_back(Condition{"Accepted", served > 0, "ListenersNotValid", message});
    }
    if (served > 0) {
      st.conditions.push_back(
          Condition{"Programmed", true, "Programmed",
                    "compiled into config version " + std::to_string(snapshot_->version)});
    } else {
      st.conditions.push_back(Condition{"Programmed", false, "Invalid", "no listener is served"});
    }
  }
}

void Compilation::buildPorts() {
  std::vector<uint32_t> order(ports_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return std::tie(ports_[a].port, ports_[a].bind_ip) <
           std::tie(ports_[b].port, ports_[b].bind_ip);
  });
  // A listener is on several ports when its Gateway has several addresses: copied for all
  // but the last, which takes it.
  std::vector<uint32_t> uses(listeners_.size());
  for (const PortBuild& pb : ports_)
    for (uint32_t l : pb.listeners) ++uses[l];
  for (uint32_t pi : order) {
    const PortBuild& pb = ports_[pi];
    std::vector<router::ListenerSpec> specs;
    for (uint32_t l : pb.listeners) {
      if (--uses[l] == 0) {
        specs.push_back(std::move(listeners_[l].spec));
      } else {
        specs.push_back(listeners_[l].spec);
      }
    }
    Port port;
    port.bind = pb.bind;
    port.port = pb.port;
    port.settings = pb.settings;
    for (const auto& [field, policy] : pb.set_by)
      port.settings.policy_sources.push_back(field + ": " + policy);
    port.routes = std::make_shared<const router::RouteTable>(std::move(specs));
    if (!pb.listeners.empty() && listeners_[pb.listeners[0]].tls) {
      port.tls = buildPortTls(pb);
      if (port.tls == nullptr) continue;  // reported
    }
    snapshot_->ports.push_back(std::move(port));
  }
}

void Compilation::fillStatsNames() {
  snapshot_->route_stats_count = ids_.routeCount();
  snapshot_->backend_stats_count = ids_.backendCount();
  snapshot_->pool_count = ids_.poolCount();
  snapshot_->route_stat_names = ids_.routeNames();
  snapshot_->backend_stat_names = ids_.backendNames();
}

CompileResult Compilation::run() {
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  };
  double start = cpu();
  auto lap = [&] {
    double now = cpu();
    double ms = now - start;
    start = now;
    return ms;
  };
  try {
    decodeAll();
    resolveBackendTls();
    timings_.decode_ms = lap();
    buildListeners();
    applyPolicies();
    timings_.listeners_ms = lap();
    attachRoutes();
    if (abandoned_) return {};
    applyRoutePolicies();
    applySecurityPolicies();
    if (abandoned_) return {};
    timings_.routes_ms = lap();
    buildPorts();
    fillStatsNames();
    timings_.tables_ms = lap();
    snapshot_->dump = dumpSource();
    fillCache();
    timings_.status_ms = lap();
  } catch (const std::exception& e) {
    if (cache_ != nullptr) cache_->state.reset();
    // Not expected: decoders catch yaml-cpp errors. Fail closed with an empty snapshot.
    Diagnostic d;
    d.message = std::string("internal error while compiling the configuration: ") + e.what();
    diagnostics_.push_back(std::move(d));
    uint64_t version = snapshot_->version;
    snapshot_ = std::make_shared<Snapshot>();
    snapshot_->version = version;
  }
  return CompileResult{std::move(snapshot_), std::move(diagnostics_), timings_};
}

}  // namespace internal

std::string CompileTimings::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "decode %.1f, listeners %.1f, routes %.1f (%u reused, %u compiled), tables %.1f, "
                "status %.1f, total %.1f, cpu %.1f",
                decode_ms, listeners_ms, routes_ms, routes_reused, routes_compiled, tables_ms,
                status_ms, total_ms, cpu_ms);
  return buf;
}

namespace {

// CPU time of the calling thread, in ms.
double threadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace

CompileCache::CompileCache() = default;
CompileCache::~CompileCache() = default;

CompileResult compile(std::shared_ptr<const std::vector<Resource>> resources, StatsIds& ids,
                      uint64_t version, const CompileOptions& options) {
  static const DnsAnswers kNoAnswers;
  const DnsAnswers& dns = options.dns ? *options.dns : kNoAnswers;
  auto start = std::chrono::steady_clock::now();
  double cpu_start = threadCpuMs();
  CompileResult result;
  bool abandoned = false;
  {
    internal::Compilation reusing(resources, ids, version, dns, options.local_zone, options.cache,
                                  /*reuse=*/true, options.jwks);
    result = reusing.run();
    abandoned = reusing.abandoned();
  }
  if (abandoned) {
    result = internal::Compilation(std::move(resources), ids, version, dns, options.local_zone,
                                   options.cache, /*reuse=*/false, options.jwks)
                 .run();
  }
  result.timings.total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  result.timings.cpu_ms = threadCpuMs() - cpu_start;
  return result;
}

CompileResult compile(const std::vector<Resource>& resources, StatsIds& ids, uint64_t version,
                      const CompileOptions& options) {
  return compile(std::make_shared<const std::vector<Resource>>(resources), ids, version, options);
}

}  // namespace portico::config
