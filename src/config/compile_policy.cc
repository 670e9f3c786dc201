// TrafficPolicy attachment: settings of policies targeting a Gateway go to the PortSettings
// of every port that Gateway listens on. Older policies are established: a younger policy
// setting the same field of the same port to another value is ignored there (warning).
#include <algorithm>

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
      AncestorStatus as;
      as.gateway_ns = res.ns;
      as.gateway_name = target.name;
      auto git = gateway_by_name_.find({res.ns, target.name});
      if (git == gateway_by_name_.end()) {
        bool invalid = rejected_.count({"Gateway", res.ns, target.name}) > 0;
        as.accepted = Condition{"Accepted", false, "TargetNotFound",
                                "Gateway " + res.ns + '/' + target.name +
                                    (invalid ? " is invalid (see its errors)" : " not found")};
        r.warning(target.where.mark, target.where.path,
                  "Accepted=False/TargetNotFound: " + as.accepted.message);
        status_[policy.resource].ancestors.push_back(std::move(as));
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
        apply(m.connect_ms, dur(m.connect_ms), &s.connect_timeout_ms, port, policy_id, r);
        apply(m.request_ms, dur(m.request_ms), &s.request_timeout_ms, port, policy_id, r);
        apply(m.max_request_line_bytes, m.max_request_line_bytes.value.value_or(0),
              &s.limits.max_request_line, port, policy_id, r);
        apply(m.max_request_headers_bytes, m.max_request_headers_bytes.value.value_or(0),
              &s.limits.max_header_bytes, port, policy_id, r);
        apply(m.max_request_headers, m.max_request_headers.value.value_or(0), &s.limits.max_headers,
              port, policy_id, r);
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

}  // namespace portico::config::internal
