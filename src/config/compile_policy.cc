// TrafficPolicy attachment: settings of policies targeting a Gateway go to the PortSettings
// of every port that Gateway listens on. Older policies are established: a younger policy
// setting the same field of the same port to another value is ignored there (warning).
#include <algorithm>
#include <array>
#include <map>
#include <tuple>
#include <type_traits>

#include "config/compilation.h"

namespace portico::config::internal {
namespace {

uint32_t durationSetting(uint64_t ms) {
  if (ms == 0 || ms >= kTimeoutDisabledMs) return kTimeoutDisabledMs;
  return static_cast<uint32_t>(ms);
}

// Applies one setting to one port; returns false when an older policy holds the field.
template <typename T>
void apply(const Setting<T>& setting, uint32_t value, uint32_t* field, PortBuild& port,
           const std::string& policy_id, Reporter& r) {
  if (!setting.value) return;
  auto [it, inserted] = port.set_by.emplace(setting.where.path, policy_id);
  if (!inserted) {
    if (it->second != policy_id && *field != value) {
      r.warning(setting.where.mark, setting.where.path,
                "Conflicted: on port " + std::to_string(port.port) +
                    " this is already set by the older " + it->second + "; ignored there");
    }
    return;
  }
  *field = value;
}

}  // namespace

void Compilation::targetNotFound(uint32_t policy_resource, const PolicyTargetModel& target,
                                 AncestorStatus as, Reporter& r) {
  const std::string& ns = resources_[policy_resource].ns;
  bool invalid = rejected_.count({target.kind, ns, target.name}) > 0;
  as.accepted = Condition{"Accepted", false, "TargetNotFound",
                          target.kind + " " + ns + '/' + target.name +
                              (invalid ? " is invalid (see its errors)" : " not found")};
  r.warning(target.where.mark, target.where.path,
            "Accepted=False/TargetNotFound: " + as.accepted.message);
  status_[policy_resource].ancestors.push_back(std::move(as));
}

void Compilation::applyPolicies() {
  std::vector<uint32_t> order(policies_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return olderFirst(resources_[policies_[a].resource], resources_[policies_[b].resource]);
  });
  for (uint32_t pi : order) {
    const PolicyItem& policy = policies_[pi];
    const Resource& res = resources_[policy.resource];
    const TrafficPolicyModel& m = policy.model;
    Reporter r = reporterFor(policy.resource);
    std::string policy_id = "TrafficPolicy " + res.ns + '/' + res.name;
    for (const PolicyTargetModel& target : m.targets) {
      if (target.kind != "Gateway") continue;  // applyRoutePolicies()
      AncestorStatus as;
      as.gateway_ns = res.ns;
      as.gateway_name = target.name;
      auto git = gateway_by_name_.find({res.ns, target.name});
      if (git == gateway_by_name_.end()) {
        targetNotFound(policy.resource, target, std::move(as), r);
        continue;
      }
      const GatewayItem& gw = gateways_[git->second];
      for (uint32_t port_index : gw.ports) {
        PortBuild& port = ports_[port_index];
        PortSettings& s = port.settings;
        auto dur = [](const Setting<uint64_t>& x) {
          return x.value ? durationSetting(*x.value) : 0;
        };
        apply(m.request_headers_ms, dur(m.request_headers_ms), &s.header_timeout_ms, port,
              policy_id, r);
        apply(m.request_body_ms, dur(m.request_body_ms), &s.body_timeout_ms, port, policy_id, r);
        apply(m.idle_ms, dur(m.idle_ms), &s.idle_timeout_ms, port, policy_id, r);
        const RouteSettingsModel& d = m.defaults;
        apply(d.connect_ms, dur(d.connect_ms), &s.connect_timeout_ms, port, policy_id, r);
        apply(d.request_ms, dur(d.request_ms), &s.request_timeout_ms, port, policy_id, r);
        apply(d.upstream_idle_ms, dur(d.upstream_idle_ms), &s.upstream_idle_ms, port, policy_id, r);
        const RouteSettingsModel& o = m.overrides;
        apply(o.connect_ms, dur(o.connect_ms), &s.overrides.connect_timeout_ms, port, policy_id, r);
        apply(o.request_ms, dur(o.request_ms), &s.overrides.request_timeout_ms, port, policy_id, r);
        apply(o.upstream_idle_ms, dur(o.upstream_idle_ms), &s.overrides.upstream_idle_ms, port,
              policy_id, r);
        for (auto [setting, field] :
             {std::pair{&d.retry, &s.retry}, {&o.retry, &s.overrides.retry}}) {
          if (!setting->value) continue;
          auto [it, inserted] = port.set_by.emplace(setting->where.path, policy_id);
          if (inserted) {
            *field = std::make_shared<RetryPolicy>(*setting->value);
          } else if (it->second != policy_id) {
            r.warning(setting->where.mark, setting->where.path,
                      "Conflicted: on port " + std::to_string(port.port) +
                          " this is already set by the older " + it->second + "; ignored there");
          }
        }
        apply(m.max_request_line_bytes, m.max_request_line_bytes.value.value_or(0),
              &s.limits.max_request_line, port, policy_id, r);
        apply(m.max_request_headers_bytes, m.max_request_headers_bytes.value.value_or(0),
              &s.limits.max_header_bytes, port, policy_id, r);
        apply(m.max_request_headers, m.max_request_headers.value.value_or(0), &s.limits.max_headers,
              port, policy_id, r);
        apply(m.h2_max_concurrent_streams, m.h2_max_concurrent_streams.value.value_or(0),
              &s.h2_max_concurrent_streams, port, policy_id, r);
        apply(m.h2_stream_window, m.h2_stream_window.value.value_or(0), &s.h2_stream_window, port,
              policy_id, r);
        apply(m.h2_connection_window, m.h2_connection_window.value.value_or(0),
              &s.h2_connection_window, port, policy_id, r);
        if (m.response_overrides.value) {
          const Setting<std::vector<ResponseOverride>>& ro = m.response_overrides;
          auto [it, inserted] = port.set_by.emplace(ro.where.path, policy_id);
          if (inserted) {
            s.response_overrides = *ro.value;
          } else if (it->second != policy_id) {
            r.warning(ro.where.mark, ro.where.path,
                      "Conflicted: on port " + std::to_string(port.port) +
                          " this is already set by the older " + it->second + "; ignored there");
          }
        }
        // PortSettings belong to the socket: say so when other Gateways share it.
        for (uint32_t l : port.listeners) {
          const GatewayItem& other = gateways_[listeners_[l].gateway];
          if (other.resource == gw.resource) continue;
          const Resource& other_res = resources_[other.resource];
          r.warning(target.where.mark, target.where.path,
                    "port " + std::to_string(port.port) + " is shared with Gateway " +
                        other_res.ns + '/' + other_res.name +
                        ": these settings apply to its listeners too");
          break;
        }
      }
      status_[policy.resource].ancestors.push_back(std::move(as));
    }
  }
}

namespace {

std::string describe(uint64_t ms) {
  if (ms == 0 || ms >= kTimeoutDisabledMs) return "disabled";
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::string describe(const RetryPolicy& p) {
  std::string on;
  auto add = [&](bool set, const char* name) {
    if (set) on += (on.empty() ? "" : ",") + std::string(name);
  };
  add(p.on_5xx, "5xx");
  add(p.on_gateway_error, "gateway-error");
  add(p.on_reset, "reset");
  add(p.on_connect_failure, "connect-failure");
  add(p.on_retriable_4xx, "retriable-4xx");
  for (uint16_t c : p.status_codes) add(true, std::to_string(c).c_str());
  std::string out = std::to_string(p.num_retries) + " retries on " + on;
  if (p.per_try_timeout_ms != 0) out += ", per try " + describe(p.per_try_timeout_ms);
  out += ", backoff " + describe(p.base_interval_ms) + ".." + describe(p.max_interval_ms);
  return out;
}

// One level of the GEP-713 hierarchy for a rule: a value and who set it.
template <typename T>
struct Layered {
  std::optional<T> value;
  std::string source;
  Where where;
};

// Sets `slot` from `setting` unless an older policy of the same level already did (warning).
template <typename T, typename V>
void offer(const Setting<T>& setting, V value, const std::string& source, Layered<V>* slot,
           Reporter& r) {
  if (!setting.value) return;
  if (slot->value) {
    if (slot->source != source) {
      r.warning(
          setting.where.mark, setting.where.path,
          "Conflicted: already set for this target by the older " + slot->source + "; ignored");
    }
    return;
  }
  slot->value = value;
  slot->source = source;
  slot->where = setting.where;
}

}  // namespace

void Compilation::applyRoutePolicies() {
  std::vector<uint32_t> order(policies_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return olderFirst(resources_[policies_[a].resource], resources_[policies_[b].resource]);
  });
  // Routes by (ns, name), filled when some policy targets a route.
  bool targets_routes = std::any_of(policies_.begin(), policies_.end(), [](const PolicyItem& p) {
    return std::any_of(p.model.targets.begin(), p.model.targets.end(),
                       [](const PolicyTargetModel& t) { return t.kind == "HTTPRoute"; });
  });
  if (!targets_routes) return;  // no status to set, no rule to change
  std::map<std::pair<std::string_view, std::string_view>, uint32_t> route_by_name;
  for (uint32_t i = 0; i < routes_.size(); ++i) {
    const Resource& res = resources_[routes_[i].resource];
    if (res.kind == "HTTPRoute") route_by_name[{res.ns, res.name}] = i;  // not GRPCRoutes
  }
  // Per rule, per field, four levels in precedence order: route overrides, rule overrides,
  // rule defaults, route defaults (the route's own timeouts sit between overrides and
  // defaults).
  enum Level { kRouteOverride, kRuleOverride, kRuleDefault, kRouteDefault, kLevels };
  struct RuleLayers {
    std::array<Layered<uint64_t>, kLevels> request, connect, idle;
    std::array<Layered<RetryPolicy>, kLevels> retry;
  };
  std::map<const Rule*, RuleLayers> layers;
  for (uint32_t pi : order) {
    const PolicyItem& policy = policies_[pi];
    const Resource& res = resources_[policy.resource];
    Reporter r = reporterFor(policy.resource);
    std::string policy_id = "TrafficPolicy " + res.ns + '/' + res.name;
    for (const PolicyTargetModel& target : policy.model.targets) {
      if (target.kind != "HTTPRoute") continue;
      AncestorStatus as;
      as.target_kind = "HTTPRoute";
      as.gateway_ns = res.ns;
      as.gateway_name = target.name;
      as.section = target.section;
      auto it = route_by_name.find({res.ns, target.name});
      if (it == route_by_name.end()) {
        targetNotFound(policy.resource, target, std::move(as), r);
        continue;
      }
      RouteItem& route = routes_[it->second];
      bool any = false;
      for (uint32_t ri = 0; ri < route.model.rules.size(); ++ri) {
        if (!target.section.empty() && route.model.rules[ri].name != target.section) continue;
        any = true;
        RuleLayers& l = layers[route.rule(ri)];
        bool rule_level = !target.section.empty();
        Level def = rule_level ? kRuleDefault : kRouteDefault;
        Level ovr = rule_level ? kRuleOverride : kRouteOverride;
        std::string what = rule_level ? " (rule " + target.section + " " : " (HTTPRoute ";
        for (auto [settings, level, kind] : {std::tuple{&policy.model.defaults, def, "default)"},
                                             {&policy.model.overrides, ovr, "override)"}}) {
          std::string source = policy_id + what + kind;
          offer(settings->request_ms, settings->request_ms.value.value_or(0), source,
                &l.request[level], r);
          offer(settings->connect_ms, settings->connect_ms.value.value_or(0), source,
                &l.connect[level], r);
          offer(settings->upstream_idle_ms, settings->upstream_idle_ms.value.value_or(0), source,
                &l.idle[level], r);
          offer(settings->retry, settings->retry.value.value_or(RetryPolicy{}), source,
                &l.retry[level], r);
        }
      }
      if (!any) {
        as.accepted = Condition{"Accepted", false, "TargetNotFound",
                                "HTTPRoute " + res.ns + '/' + target.name +
                                    " has no rule named \"" + target.section + "\""};
        r.warning(target.where.mark, target.where.path,
                  "Accepted=False/TargetNotFound: " + as.accepted.message);
      }
      status_[policy.resource].ancestors.push_back(std::move(as));
    }
  }
  auto ms = [](uint64_t v) {
    return v == 0 || v >= kTimeoutDisabledMs ? kTimeoutDisabledMs : static_cast<uint32_t>(v);
  };
  for (RouteItem& route : routes_) {
    if (route.reused) continue;  // its rules are final: the policies did not change
    for (uint32_t ri = 0; ri < route.rules.size(); ++ri) {
      auto it = layers.find(route.rules[ri]);
      if (it == layers.end()) continue;
      Rule& rule = *route.rules[ri];
      const RuleLayers& l = it->second;
      // Overrides beat the route's own field; defaults lose to it.
      auto pick = [&](const auto& levels, bool own_set, const char* name) -> const auto* {
        using Slot = std::remove_reference_t<decltype(levels[0])>;
        const Slot* chosen = nullptr;
        for (int level = 0; level < kLevels; ++level) {
          if (own_set && level >= kRuleDefault) break;
          if (levels[level].value) {
            chosen = &levels[level];
            break;
          }
        }
        if (chosen) {
          rule.editExtras().policy_sources.push_back(
              std::string(name) + " " + describe(*chosen->value) + " from " + chosen->source);
        }
        return chosen;
      };
      if (const auto* v = pick(l.request, rule.request_timeout_ms != 0, "request timeout"))
        rule.request_timeout_ms = ms(*v->value);
      if (const auto* v = pick(l.connect, false, "connect timeout"))
        rule.editExtras().connect_timeout_ms = ms(*v->value);
      if (const auto* v = pick(l.idle, false, "upstream idle timeout"))
        rule.editExtras().upstream_idle_ms = ms(*v->value);
      if (const auto* v = pick(l.retry, false, "retry"))
        rule.editExtras().retry = std::make_shared<RetryPolicy>(*v->value);
    }
  }
}

}  // namespace portico::config::internal
