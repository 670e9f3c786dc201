// Snapshot::config_dump_json: every resource with its spec and Gateway API status, and the
// compiled ports. Served by admin /config_dump.
#include <nlohmann/json.hpp>

#include "config/compilation.h"

namespace portico::config::internal {
namespace {

using nlohmann::json;

constexpr std::string_view kControllerName = "portico.dev/gateway";

json conditionJson(const Condition& c, int64_t generation) {
  json out = {{"type", c.type},
              {"status", c.status ? "True" : "False"},
              {"reason", c.reason},
              {"message", c.message}};
  if (generation > 0) out["observedGeneration"] = generation;
  return out;
}

json conditionsJson(const std::vector<Condition>& conditions, int64_t generation) {
  json out = json::array();
  for (const Condition& c : conditions) out.push_back(conditionJson(c, generation));
  return out;
}

json parentRefJson(const ParentRefModel& ref) {
  json out = {{"group", ref.group}, {"kind", ref.kind}, {"namespace", ref.ns}, {"name", ref.name}};
  if (!ref.section_name.empty()) out["sectionName"] = ref.section_name;
  if (ref.port != 0) out["port"] = ref.port;
  return out;
}

json statusJson(const Resource& res, const ResourceStatus& st) {
  int64_t gen = res.generation;
  json out = json::object();
  if (!st.conditions.empty()) out["conditions"] = conditionsJson(st.conditions, gen);
  if (res.kind == "Gateway" && !st.addresses.empty()) {
    json addresses = json::array();
    for (const std::string& a : st.addresses)
      addresses.push_back({{"type", "IPAddress"}, {"value", a}});
    out["addresses"] = addresses;
    json listeners = json::array();
    for (const ListenerStatus& ls : st.listeners) {
      std::vector<Condition> conditions = {ls.accepted};
      conditions.push_back(ls.resolved_refs ? Condition{"ResolvedRefs", true, "ResolvedRefs", ""}
                                            : Condition{"ResolvedRefs", false, "InvalidRouteKinds",
                                                        "only HTTPRoute is supported"});
      conditions.push_back(ls.programmed ? Condition{"Programmed", true, "Programmed", ""}
                                         : Condition{"Programmed", false, "Invalid", ""});
      if (ls.conflicted) conditions.push_back(*ls.conflicted);
      listeners.push_back({{"name", ls.name},
                           {"supportedKinds", json::array({{{"group", std::string(kGatewayGroup)},
                                                            {"kind", "HTTPRoute"}}})},
                           {"attachedRoutes", ls.attached_routes},
                           {"conditions", conditionsJson(conditions, gen)}});
    }
    out["listeners"] = listeners;
  }
  if (!st.parents.empty()) {
    json parents = json::array();
    for (const ParentStatus& ps : st.parents) {
      std::vector<Condition> conditions = {ps.accepted};
      if (st.resolved_refs) conditions.push_back(*st.resolved_refs);
      parents.push_back({{"parentRef", parentRefJson(ps.ref)},
                         {"controllerName", kControllerName},
                         {"conditions", conditionsJson(conditions, gen)}});
    }
    out["parents"] = parents;
  }
  if (!st.ancestors.empty()) {
    json ancestors = json::array();
    for (const AncestorStatus& as : st.ancestors) {
      json ref = {{"group", std::string(kGatewayGroup)},
                  {"kind", as.target_kind},
                  {"namespace", as.gateway_ns},
                  {"name", as.gateway_name}};
      if (!as.section.empty()) ref["sectionName"] = as.section;
      ancestors.push_back({{"ancestorRef", ref},
                           {"controllerName", kControllerName},
                           {"conditions", conditionsJson({as.accepted}, gen)}});
    }
    out["ancestors"] = ancestors;
  }
  return out;
}

json settingsJson(const PortSettings& s) {
  return {{"requestHeadersTimeoutMs", s.header_timeout_ms},
          {"requestBodyTimeoutMs", s.body_timeout_ms},
          {"idleTimeoutMs", s.idle_timeout_ms},
          {"connectTimeoutMs", s.connect_timeout_ms},
          {"requestTimeoutMs", s.request_timeout_ms},
          {"maxRequestLineBytes", s.limits.max_request_line},
          {"maxRequestHeadersBytes", s.limits.max_header_bytes},
          {"maxRequestHeaders", s.limits.max_headers}};
}

}  // namespace

std::string Compilation::configDump() const {
  // Compact JSON, one resource per line. Specs are written straight from YAML (fast for
  // large configs); the small parts go through nlohmann::json.
  std::string out = "{\"version\":" + std::to_string(snapshot_->version) + ",\"resources\":[";
  for (size_t i = 0; i < resources_.size(); ++i) {
    const Resource& res = resources_[i];
    json metadata = {{"name", res.name}, {"namespace", res.ns}};
    if (!res.creation_timestamp.empty()) metadata["creationTimestamp"] = res.creation_timestamp;
    if (res.generation > 0) metadata["generation"] = res.generation;
    if (!res.labels.empty()) metadata["labels"] = res.labels;
    if (!res.annotations.empty()) metadata["annotations"] = res.annotations;
    json source = {{"file", res.file}};
    if (!res.mark.is_null()) source["line"] = res.mark.line + 1;
    out += i == 0 ? "\n{" : ",\n{";
    out += "\"apiVersion\":";
    appendJsonString(res.api_version, &out);
    out += ",\"kind\":";
    appendJsonString(res.kind, &out);
    out += ",\"metadata\":" + metadata.dump(-1, ' ', false, json::error_handler_t::replace);
    out += ",\"source\":" + source.dump(-1, ' ', false, json::error_handler_t::replace);
    if (res.spec.IsDefined()) {
      out += ",\"spec\":";
      appendJson(res.spec, &out);
    }
    out += ",\"status\":" +
           statusJson(res, status_[i]).dump(-1, ' ', false, json::error_handler_t::replace);
    out += '}';
  }
  json ports = json::array();
  for (const Port& port : snapshot_->ports) {
    json listeners = json::array();
    for (const router::RouteTable::Listener& l : port.routes->listeners()) {
      json routes = json::array();
      for (const router::RouteSpec& r : l.spec.routes) routes.push_back(r.ns + '/' + r.name);
      listeners.push_back({{"name", l.spec.id}, {"hostname", l.spec.hostname}, {"routes", routes}});
    }
    ports.push_back({{"address", port.bind.toString()},
                     {"listeners", listeners},
                     {"settings", settingsJson(port.settings)}});
  }
  out += "\n],\"ports\":" + ports.dump(-1, ' ', false, json::error_handler_t::replace) + "}\n";
  return out;
}

}  // namespace portico::config::internal
