// HTTPRoutes: rules and backendRef resolution, then attachment to Gateway listeners
// (parentRefs, allowedRoutes, hostname intersection).
#include <algorithm>
#include <array>
#include <utility>

#include "config/compilation.h"
#include "config/syntax.h"
#include "upstream/load_balancer.h"

namespace portico::config::internal {
namespace {

// A rule's timeout: unset -> 0 (the Gateway default); "0s" -> disabled.
uint32_t timeoutMs(const std::optional<uint64_t>& ms) {
  if (!ms) return 0;
  if (*ms == 0 || *ms >= kTimeoutDisabledMs) return kTimeoutDisabledMs;
  return static_cast<uint32_t>(*ms);
}

std::string describeParent(const ParentRefModel& ref) {
  std::string out = "Gateway " + ref.ns + '/' + ref.name;
  if (!ref.section_name.empty()) out += " listener \"" + ref.section_name + "\"";
  if (ref.port != 0) out += " port " + std::to_string(ref.port);
  return out;
}

router::StringMatch stringMatchOf(const StringMatchModel& m) {
  router::StringMatch out;
  out.name = m.name;
  out.value = m.value;
  out.is_regex = m.type == StringMatchKind::kRegularExpression;
  out.regex = m.regex;
  return out;
}

// The route table's view of a match; regexes are the decoder's compiled ones (shared).
router::MatchSpec matchSpecOf(const MatchModel& m) {
  router::MatchSpec match;
  switch (m.path_kind) {
    case PathKind::kExact:
      match.path_type = router::PathType::kExact;
      break;
    case PathKind::kPathPrefix:
      match.path_type = router::PathType::kPathPrefix;
      break;
    case PathKind::kRegularExpression:
      match.path_type = router::PathType::kRegularExpression;
      match.path_regex = m.path_regex;
      break;
  }
  match.path = m.path;
  match.method = m.method;
  for (const StringMatchModel& h : m.headers) match.headers.push_back(stringMatchOf(h));
  for (const StringMatchModel& q : m.query_params) match.query_params.push_back(stringMatchOf(q));
  match.grpc = router::GrpcRank{m.grpc, m.grpc_service_chars, m.grpc_method_chars};
  return match;
}

// `n` default rules, contiguous in one allocation (std::make_shared<Rule[]> would want Rule
// copyable): the pointer to the first keeps them all. Gateway API allows up to 16 rules.
template <size_t... K>
std::shared_ptr<Rule> makeRules(size_t n, std::index_sequence<K...>) {
  std::shared_ptr<Rule> first;
  auto make = [&](auto block) { first = std::shared_ptr<Rule>(block, block->data()); };
  static_cast<void>(
      ((n == K + 1 ? (make(std::make_shared<std::array<Rule, K + 1>>()), true) : false) || ...));
  if (first == nullptr) make(std::make_shared<std::vector<Rule>>(n));
  return first;
}
std::shared_ptr<Rule> makeRules(size_t n) { return makeRules(n, std::make_index_sequence<16>()); }

}  // namespace

namespace {

upstream::LbType lbType(LbKind kind) {
  switch (kind) {
    case LbKind::kLeastRequest:
      return upstream::LbType::kLeastRequest;
    case LbKind::kRandom:
      return upstream::LbType::kRandom;
    case LbKind::kRingHash:
      return upstream::LbType::kRingHash;
    case LbKind::kMaglev:
      return upstream::LbType::kMaglev;
    case LbKind::kRoundRobin:
      break;
  }
  return upstream::LbType::kRoundRobin;
}

}  // namespace

void Compilation::buildBalancer(Backend& backend) {
  // One endpoint per address: an address listed twice adds its weights.
  std::vector<Endpoint> unique;
  for (Endpoint& e : backend.endpoints) {
    auto same = std::find_if(unique.begin(), unique.end(),
                             [&](const Endpoint& u) { return u.pool_id == e.pool_id; });
    if (same != unique.end()) {
      same->weight += e.weight;
    } else {
      unique.push_back(std::move(e));
    }
  }
  std::vector<upstream::LbEndpoint> lb_endpoints;
  for (const Endpoint& e : unique)
    lb_endpoints.push_back(
        upstream::LbEndpoint{e.health_id, e.weight, e.priority, e.zone, e.authority});
  upstream::LbConfig config;
  config.type = lbType(backend.lb.type);
  config.ring_min_size = backend.lb.ring_min_size;
  config.maglev_table_size = backend.lb.maglev_table_size;
  config.panic_threshold_percent = backend.lb.panic_threshold_percent;
  config.local_zone = local_zone_;
  backend.balancer = upstream::LoadBalancer::build(std::move(lb_endpoints), config);
  // endpoints[] in the balancer's order, so that pick() indexes it.
  backend.endpoints.clear();
  for (const upstream::LbEndpoint& le : backend.balancer->endpoints()) {
    for (Endpoint& e : unique) {
      if (e.health_id == le.pool_id) backend.endpoints.push_back(std::move(e));
    }
  }
}

const Backend* Compilation::materializeBackend(uint32_t backend_item, uint16_t ref_port) {
  BackendKey key{backend_item, ref_port};
  if (ref_port != 0 && recording_ != nullptr &&
      std::find(recording_->port_backends.begin(), recording_->port_backends.end(), key) ==
          recording_->port_backends.end()) {
    recording_->port_backends.push_back(key);
  }
  auto it = materialized_.find(key);
  if (it != materialized_.end()) return it->second;
  if (reusing_) {
    // A full compile would place this backend among the previous version's ones.
    abandoned_ = true;
    return nullptr;
  }
  const BackendItem& item = backends_[backend_item];
  const Resource& res = resources_[item.resource];
  auto backend = std::make_unique<Backend>();
  backend->ns = res.ns;
  backend->name = res.name;
  backend->stats_id = ids_.backend(res.ns + '/' + res.name);
  backend->index = static_cast<uint32_t>(snapshot_->backends.size());
  backend->lb = item.model.load_balancer;
  backend->active_health = item.model.active_health;
  backend->passive_health = item.model.passive_health;
  backend->circuit_breaker = item.model.circuit_breaker;
  backend->pool = item.model.pool;
  backend->protocol = item.model.protocol;
  if (item.model.tls) {
    backend->tls = backendTls(item.resource);  // null only for a rejected Backend (unreferenced)
    backend->tls_server_name = item.model.tls->sni;
    if (backend->active_health) {  // no TLS checks yet: TCP
      backend->active_health->http = false;
      backend->active_health->grpc = false;
    }
  }
  for (const EndpointModel& e : item.model.endpoints) {
    uint16_t port = e.port != 0 ? e.port : ref_port;
    if (port == 0) continue;  // validated by the decoder; defensive
    std::vector<net::Address> addresses;
    if (e.dns) {
      for (const std::string& ip : dns_.addresses(e.address))
        if (std::optional<net::Address> a = net::Address::parseIp(ip, port))
          addresses.push_back(*a);
    } else if (std::optional<net::Address> a = net::Address::parseIp(e.address, port)) {
      addresses.push_back(*a);
    }
    for (const net::Address& address : addresses) {
      Endpoint endpoint;
      endpoint.address = address;
      endpoint.authority = address.toString();
      // TLS connections are pooled per Backend (its CA, client certificate and SNI).
      endpoint.pool_id =
          ids_.pool(item.model.tls ? "tls:" + res.ns + '/' + res.name + '@' + endpoint.authority
                                   : endpoint.authority);
      // Health is per backend (two Backends may check one address differently).
      endpoint.health_id = ids_.health(res.ns + '/' + res.name + '@' + endpoint.authority);
      endpoint.weight = e.weight;
      endpoint.priority = e.priority;
      endpoint.zone = e.zone;
      if (e.dns) endpoint.hostname = e.address;
      backend->endpoints.push_back(std::move(endpoint));
    }
    if (e.dns) snapshot_->dns_names.push_back(e.address);
  }
  buildBalancer(*backend);
  const Backend* out = backend.get();
  materialized_[key] = out;
  snapshot_->backends.push_back(std::shared_ptr<const Backend>(std::move(backend)));
  return out;
}

const Backend* Compilation::resolveBackendRef(const BackendRefModel& ref, Reporter& r,
                                              std::string* failure_reason,
                                              std::string* failure_message,
                                              std::string_view consequence) {
  bool core_service = ref.group.empty() && ref.kind == "Service";
  bool portico_backend = ref.group == kPorticoGroup && ref.kind == "Backend";
  if (!core_service && !portico_backend) {
    *failure_reason = "InvalidKind";
    *failure_message = "backendRef kind " + (ref.group.empty() ? "" : ref.group + "/") + ref.kind +
                       " is not supported (use a portico.dev Backend, or a Service reference "
                       "that names a Backend)";
    r.warning(
        ref.where.mark, ref.where.path,
        "ResolvedRefs=False/InvalidKind: " + *failure_message + "; " + std::string(consequence));
    return nullptr;
  }
  auto it = backend_by_name_.find({ref.ns, ref.name});
  if (it == backend_by_name_.end()) {
    *failure_reason = "BackendNotFound";
    *failure_message =
        "Backend " + ref.ns + '/' + ref.name +
        (rejected_.count({"Backend", ref.ns, ref.name}) ? " is invalid (see its errors)"
                                                        : " not found");
    r.warning(ref.where.mark, ref.where.path,
              "ResolvedRefs=False/BackendNotFound: " + *failure_message + "; " +
                  std::string(consequence));
    return nullptr;
  }
  const BackendItem& item = backends_[it->second];
  if (item.needs_ref_port && ref.port == 0) {
    std::string endpoint_path;
    for (const EndpointModel& e : item.model.endpoints)
      if (e.port == 0 && endpoint_path.empty()) endpoint_path = e.where.path;
    *failure_reason = "UnresolvedPort";
    *failure_message = "Backend " + ref.ns + '/' + ref.name + " has an endpoint without port (" +
                       endpoint_path + ") and this backendRef sets no port";
    r.error(ref.where.mark, ref.where.path,
            "Required value: port: " + *failure_message + "; " + std::string(consequence));
    return nullptr;
  }
  return materializeBackend(it->second, item.needs_ref_port ? ref.port : 0);
}

std::vector<Mirror> Compilation::resolveMirrors(
    const std::vector<MirrorModel>& models, Reporter& r,
    const std::function<void(const std::string&, const std::string&)>& note) {
  std::vector<Mirror> out;
  for (const MirrorModel& m : models) {
    std::string reason, message;
    const Backend* backend =
        resolveBackendRef(m.backend, r, &reason, &message, "requests are not mirrored to it");
    if (backend == nullptr) {
      note(reason, message);
      continue;
    }
    if (m.per_million > 0) out.push_back(Mirror{backend, m.per_million});
  }
  return out;
}

void Compilation::compileRules(RouteItem& route, Reporter& r) {
  const Resource& res = resources_[route.resource];
  // The id of "ns/name" does not change for a document: kept with its decoded spec.
  uint32_t stats_id;
  if (res.decoded && res.decoded->stats_instance == ids_.instance()) {
    stats_id = res.decoded->route_stats_id;
  } else {
    scratch_.assign(res.ns).append(1, '/').append(res.name);
    stats_id = ids_.route(scratch_);
    if (res.decoded) {
      res.decoded->stats_instance = ids_.instance();
      res.decoded->route_stats_id = stats_id;
    }
  }
  Condition resolved{"ResolvedRefs", true, "ResolvedRefs", ""};
  route.rules.reserve(route.model.rules.size());
  // The route's rules in one allocation.
  std::shared_ptr<Rule> block = makeRules(route.model.rules.size());
  for (uint32_t i = 0; i < route.model.rules.size(); ++i) {
    const RuleModel& rm = route.model.rules[i];
    Rule* rule = block.get() + i;
    rule->route_ns = res.ns;
    rule->route_name = res.name;
    rule->rule_index = i;
    rule->route_stats_id = stats_id;
    rule->request_timeout_ms = timeoutMs(rm.request_timeout_ms);
    rule->backend_request_timeout_ms = timeoutMs(rm.backend_request_timeout_ms);
    const FiltersModel& f = rm.filters;
    if (f.request_headers && !f.request_headers->empty())
      rule->editExtras().request_headers = std::make_unique<HeaderModifier>(*f.request_headers);
    if (f.response_headers && !f.response_headers->empty())
      rule->editExtras().response_headers = std::make_unique<HeaderModifier>(*f.response_headers);
    if (f.redirect) rule->editExtras().redirect = std::make_unique<Redirect>(*f.redirect);
    if (f.url_rewrite &&
        (!f.url_rewrite->hostname.empty() || f.url_rewrite->path.kind != PathModifierKind::kNone)) {
      rule->editExtras().url_rewrite = std::make_unique<UrlRewrite>(*f.url_rewrite);
    }
    auto note = [&](const std::string& reason, const std::string& message) {
      if (resolved.status) resolved = {"ResolvedRefs", false, reason, message};
    };
    if (std::vector<Mirror> mirrors = resolveMirrors(f.mirrors, r, note); !mirrors.empty())
      rule->editExtras().mirrors = std::move(mirrors);
    rule->backends.reserve(rm.backend_refs.size());
    for (const ExtensionRefModel& ext : f.extension_refs) {
      std::string message;
      auto it = route_filter_by_name_.find({res.ns, ext.name});
      if (ext.group != kPorticoGroup || ext.kind != "HTTPRouteFilter") {
        message = "ExtensionRef " + ext.group + "/" + ext.kind +
                  " is not supported (use a portico.dev HTTPRouteFilter)";
        note("InvalidKind", message);
      } else if (it == route_filter_by_name_.end()) {
        message =
            "HTTPRouteFilter " + res.ns + '/' + ext.name +
            (rejected_.count({"HTTPRouteFilter", res.ns, ext.name}) ? " is invalid (see its errors)"
                                                                    : " not found");
        note("NotFound", message);
      } else if (const RouteFilterModel& model = route_filters_[it->second];
                 model.direct_response) {
        rule->editExtras().direct_response =
            std::make_unique<DirectResponse>(*model.direct_response);
      }
      if (!message.empty()) {
        r.warning(ext.where.mark, ext.where.path,
                  "ResolvedRefs=False: " + message + "; matching requests answer 500");
        rule->editExtras().filter_error = "filter reference not resolved\n";
      }
    }
    bool backend_rewrite = false;
    for (const BackendRefModel& ref : rm.backend_refs) {
      std::string reason, message;
      const Backend* backend = resolveBackendRef(ref, r, &reason, &message);
      if (backend == nullptr) note(reason, message);
      WeightedBackend wb;
      wb.backend = backend;
      wb.weight = ref.weight;
      const FiltersModel& bf = ref.filters;
      auto filters = std::make_unique<BackendFilters>();
      filters->has_own_filters =
          bf.request_headers || bf.response_headers || bf.url_rewrite || !bf.mirrors.empty();
      filters->request_headers = rule->requestHeaders();
      if (bf.request_headers && !bf.request_headers->empty()) {
        filters->own_request_headers = std::make_unique<HeaderModifier>(
            composeModifiers(rule->requestHeaders(), &*bf.request_headers));
        filters->request_headers = filters->own_request_headers.get();
      }
      filters->response_headers = rule->responseHeaders();
      if (bf.response_headers && !bf.response_headers->empty()) {
        filters->own_response_headers = std::make_unique<HeaderModifier>(
            composeModifiers(rule->responseHeaders(), &*bf.response_headers));
        filters->response_headers = filters->own_response_headers.get();
      }
      filters->url_rewrite = rule->urlRewrite();
      if (bf.url_rewrite && (!bf.url_rewrite->hostname.empty() ||
                             bf.url_rewrite->path.kind != PathModifierKind::kNone)) {
        filters->own_url_rewrite = std::make_unique<UrlRewrite>(*bf.url_rewrite);
        filters->url_rewrite = filters->own_url_rewrite.get();
        backend_rewrite = true;
      }
      filters->mirrors = rule->mirrors();
      for (const Mirror& m : resolveMirrors(bf.mirrors, r, note)) filters->mirrors.push_back(m);
      if (filters->has_own_filters || filters->request_headers || filters->response_headers ||
          filters->url_rewrite || !filters->mirrors.empty()) {
        wb.filters = std::move(filters);
      }
      rule->backends.push_back(std::move(wb));
      rule->total_weight += ref.weight;
    }
    // The prefix ReplacePrefixMatch replaces: only a redirect or a rewrite reads it.
    if ((rule->redirect() || rule->urlRewrite() || backend_rewrite) && rm.matches.size() == 1 &&
        rm.matches[0].path_kind == PathKind::kPathPrefix) {
      std::string_view prefix = rm.matches[0].path;
      while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
      rule->editExtras().rewrite_prefix = std::string(prefix);
    }
    if (f.redirect || !f.extension_refs.empty()) {
      // Answered locally: no backends needed.
    } else if (rm.backend_refs.empty()) {
      r.warning(rm.where.mark, rm.where.path, "no backendRefs: matching requests answer 500");
    } else if (rule->total_weight == 0) {
      r.warning(rm.where.mark, fieldPath(rm.where.path, "backendRefs"),
                "every backendRef has weight 0: matching requests answer 500");
    }
    route.rules.push_back(rule);
  }
  if (recording_ != nullptr) recording_->rules = block;
  snapshot_->rules.push_back(std::move(block));
  status_[route.resource].resolved_refs = resolved;
}

void Compilation::attachParent(uint32_t route_index, const ParentRefModel& ref,
                               ParentStatus* status, Reporter& r) {
  const RouteItem& route = routes_[route_index];
  const Resource& res = resources_[route.resource];
  auto notAttached = [&](const std::string& reason, const std::string& message) {
    status->accepted = Condition{"Accepted", false, reason, message};
    r.warning(ref.where.mark, ref.where.path, "Accepted=False/" + reason + ": " + message);
  };
  if (ref.group != kGatewayGroup || ref.kind != "Gateway") {
    notAttached("UnsupportedValue", "parentRef kind " + ref.group + '/' + ref.kind +
                                        " is not supported (only Gateway)");
    return;
  }
  auto git = gateway_by_name_.find({ref.ns, ref.name});
  if (git == gateway_by_name_.end()) {
    notAttached("NoMatchingParent",
                "Gateway " + ref.ns + '/' + ref.name +
                    (rejected_.count({"Gateway", ref.ns, ref.name}) ? " is invalid (see its errors)"
                                                                    : " not found"));
    return;
  }
  uint32_t g = git->second;
  GatewayItem& gw = gateways_[g];
  const Resource& gw_res = resources_[gw.resource];
  ResourceStatus& gw_status = status_[gw.resource];

  bool any_selected = false, any_served = false, any_allowed = false, kinds_denied = false;
  uint32_t attached = 0;
  std::string not_served;
  for (uint32_t li = 0; li < gw.model.listeners.size(); ++li) {
    const ListenerModel& lm = gw.model.listeners[li];
    if (!ref.section_name.empty() && lm.name != ref.section_name) continue;
    if (ref.port != 0 && lm.port != ref.port) continue;
    any_selected = true;
    auto bit = listener_build_.find({g, li});
    if (bit == listener_build_.end()) {
      if (not_served.empty()) not_served = "listener \"" + lm.name + "\" is not accepted";
      continue;
    }
    any_served = true;
    if (!(res.kind == "GRPCRoute" ? lm.allows_grpc_route : lm.allows_http_route)) {
      kinds_denied = true;
      continue;
    }
    if (!lm.allow_all_namespaces && res.ns != gw_res.ns) continue;
    any_allowed = true;
    std::vector<std::string> hostnames;
    if (route.model.hostnames.empty()) {
      if (!lm.hostname.empty()) hostnames.push_back(lm.hostname);
    } else {
      for (const std::string& h : route.model.hostnames) {
        std::optional<std::string> common = intersectHostnames(h, lm.hostname);
        if (common && std::find(hostnames.begin(), hostnames.end(), *common) == hostnames.end())
          hostnames.push_back(*common);
      }
      if (hostnames.empty()) continue;
    }
    ++attached;
    ListenerBuild& lb = listeners_[bit->second];
    if (lb.last_route == route_index) continue;  // already via another parentRef
    lb.last_route = route_index;
    router::RouteSpec spec;
    spec.kind =
        res.kind == "GRPCRoute" ? router::RouteKind::kGRPCRoute : router::RouteKind::kHTTPRoute;
    spec.ns = res.ns;
    spec.name = res.name;
    spec.created_us = res.created_us;
    spec.hostnames = std::move(hostnames);
    spec.rules.reserve(route.model.rules.size());
    for (uint32_t i = 0; i < route.model.rules.size(); ++i) {
      router::RuleSpec rule;
      rule.rule = route.rules[i];
      rule.matches.reserve(route.model.rules[i].matches.size());
      for (const MatchModel& m : route.model.rules[i].matches) {
        rule.matches.push_back(matchSpecOf(m));
      }
      spec.rules.push_back(std::move(rule));
    }
    router::RouteTable::prepare(spec);
    auto shared = std::make_shared<const router::RouteSpec>(std::move(spec));
    if (recording_ != nullptr) {
      recording_->attached.emplace_back(bit->second, shared);
      recording_->attached_to.emplace_back(g, li);
    }
    lb.spec.routes.push_back(std::move(shared));
    ++gw_status.listeners[li].attached_routes;
  }
  if (attached > 0) {
    status->accepted = Condition{"Accepted", true, "Accepted", ""};
  } else if (!any_selected) {
    notAttached("NoMatchingParent",
                describeParent(ref) + ": no listener with this sectionName/port");
  } else if (!any_served) {
    notAttached("NoMatchingParent", describeParent(ref) + ": " + not_served);
  } else if (!any_allowed) {
    notAttached("NotAllowedByListeners",
                describeParent(ref) + (kinds_denied && res.ns == gw_res.ns
                                           ? ": allowedRoutes.kinds does not include " + res.kind
                                           : ": allowedRoutes does not admit " + res.kind +
                                                 "s from namespace " + res.ns));
  } else {
    notAttached("NoMatchingListenerHostname",
                describeParent(ref) + ": no route hostname matches the listener hostnames");
  }
}

void Compilation::startReuse() {
  if (!reuse_ || cache_->state == nullptr) return;
  const CompileCache::State& st = *cache_->state;
  if (st.stats_instance != ids_.instance() || st.local_zone != local_zone_ ||
      st.dns.by_name != dns_.by_name || st.jwks != jwks_ || st.others != others_ ||
      securityFilesChanged()) {
    return;
  }
  reusing_ = true;
  snapshot_->backends = st.backends;
  materialized_ = st.materialized;
  snapshot_->dns_names = st.dns_names;
}

void Compilation::replayRoute(RouteItem& route, const CompiledRoute& compiled) {
  // route.rules stays empty (see RouteItem) and so does the route's status_ entry: its JSON is
  // the compiled route's.
  snapshot_->rules.push_back(compiled.rules);
  for (const auto& [listener, spec] : compiled.attached)
    listeners_[listener].spec.routes.push_back(spec);
  for (auto [gateway, listener] : compiled.attached_to)
    ++status_[gateways_[gateway].resource].listeners[listener].attached_routes;
  if (compiled.status_json == nullptr) {  // not expected: dumpSource() fills it
    status_[route.resource].parents = compiled.parents;
    status_[route.resource].resolved_refs = compiled.resolved_refs;
  }
  const Resource& res = resources_[route.resource];
  for (const Diagnostic& d : compiled.diagnostics) {
    diagnostics_.push_back(d);
    Diagnostic& placed = diagnostics_.back();
    placed.file = res.file;
    if (placed.line > 0) placed.line += res.line_offset;
  }
  route.reused = true;
}

bool Compilation::sameRouteBackends() const {
  std::vector<BackendKey> order;
  for (const RouteItem& route : routes_) {
    for (const BackendKey& key : route.compiled->port_backends)
      if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
  }
  return order == cache_->state->port_backends;
}

void Compilation::fillCache() {
  if (cache_ == nullptr) return;
  std::unique_ptr<CompileCache::State>& st = cache_->state;
  if (!reusing_) {
    st = std::make_unique<CompileCache::State>();
    st->stats_instance = ids_.instance();
    st->dns = dns_;
    st->jwks = jwks_;
    st->local_zone = local_zone_;
    st->others = std::move(others_);
    st->routes.reserve(routes_.size());
  }
  st->backends = snapshot_->backends;
  st->materialized = materialized_;
  st->dns_names = snapshot_->dns_names;
  st->security_files = security_files_;
  st->port_backends.clear();
  for (const RouteItem& route : routes_) {
    for (const BackendKey& key : route.compiled->port_backends) {
      if (std::find(st->port_backends.begin(), st->port_backends.end(), key) ==
          st->port_backends.end()) {
        st->port_backends.push_back(key);
      }
    }
    if (route.reused) continue;
    st->routes[route.compiled->slot.get()] = route.compiled;
  }
  // Drop the routes that are gone (replaced documents included): those not in use.
  if (st->routes.size() != routes_.size()) {
    std::erase_if(st->routes, [&](const auto& entry) { return entry.second.use_count() == 1; });
  }
}

void Compilation::attachRoutes() {
  snapshot_->rules.reserve(snapshot_->rules.size() + routes_.size());
  startReuse();
  // Backends whose endpoints all have ports exist even when no route uses them.
  if (!reusing_) {
    for (uint32_t i = 0; i < backends_.size(); ++i)
      if (!backends_[i].needs_ref_port) materializeBackend(i, 0);
  }
  for (uint32_t ri = 0; ri < routes_.size(); ++ri) {
    RouteItem& route = routes_[ri];
    const Resource& res = resources_[route.resource];
    if (reusing_) {
      auto it = cache_->state->routes.find(res.decoded.get());
      if (it != cache_->state->routes.end()) {
        route.compiled = it->second;
        replayRoute(route, *it->second);
        ++timings_.routes_reused;
        continue;
      }
    }
    ++timings_.routes_compiled;
    std::shared_ptr<CompiledRoute> compiled;
    if (cache_ != nullptr) {
      compiled = std::make_shared<CompiledRoute>();
      compiled->slot = res.decoded;
      recording_ = compiled.get();
    }
    route.recording = compiled.get();
    size_t first = diagnostics_.size();
    Reporter r = reporterFor(route.resource);
    compileRules(route, r);
    ResourceStatus& st = status_[route.resource];
    st.parents.reserve(route.model.parent_refs.size());
    for (const ParentRefModel& ref : route.model.parent_refs) {
      ParentStatus ps;
      ps.ref = &ref;
      attachParent(ri, ref, &ps, r);
      st.parents.push_back(std::move(ps));
    }
    recording_ = nullptr;
    if (abandoned_) return;
    if (compiled == nullptr) continue;
    compiled->parents = st.parents;
    compiled->resolved_refs = st.resolved_refs;
    compiled->diagnostics.assign(diagnostics_.begin() + static_cast<ptrdiff_t>(first),
                                 diagnostics_.end());
    for (Diagnostic& d : compiled->diagnostics)
      if (d.line > 0) d.line -= res.line_offset;
    route.compiled = std::move(compiled);
  }
  if (reusing_ && !sameRouteBackends()) abandoned_ = true;
}

}  // namespace portico::config::internal
