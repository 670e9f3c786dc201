// The admin /config_dump: every resource with its spec and Gateway API status, and the
// compiled ports. compile() keeps only what the dump needs that the snapshot does not already
// have (Snapshot::dump: the resources, shared with the loader, and each one's status as JSON,
// identical statuses stored once, an unchanged status shared with the previous version);
// renderConfigDump() writes the JSON when it is asked for.
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "config/compilation.h"

namespace portico::config {

// What renderConfigDump() needs besides the ports of the snapshot.
struct ConfigDumpSource {
  std::shared_ptr<const std::vector<Resource>> resources;
  // Per resource: its status object as JSON. Identical statuses computed by one compile are
  // one string; a resource whose status did not change shares the previous version's.
  std::vector<std::shared_ptr<const std::string>> status;
};

namespace internal {
namespace {

constexpr std::string_view kControllerName = "portico.dev/gateway";

// The JSON writers below emit keys in alphabetical order, as nlohmann::json (a std::map) did
// when the statuses were built with it.
void appendKey(std::string_view key, std::string* out) {
  out->push_back('"');
  out->append(key);
  out->append("\":");
}

void appendCondition(const Condition& c, int64_t generation, std::string* out) {
  out->append("{\"message\":");
  appendJsonString(c.message, out);
  if (generation > 0) out->append(",\"observedGeneration\":" + std::to_string(generation));
  out->append(",\"reason\":");
  appendJsonString(c.reason, out);
  out->append(c.status ? ",\"status\":\"True\",\"type\":" : ",\"status\":\"False\",\"type\":");
  appendJsonString(c.type, out);
  out->push_back('}');
}

void appendConditions(const std::vector<Condition>& conditions, int64_t generation,
                      std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < conditions.size(); ++i) {
    if (i > 0) out->push_back(',');
    appendCondition(conditions[i], generation, out);
  }
  out->push_back(']');
}

void appendParentRef(const ParentRefModel& ref, std::string* out) {
  out->append("{\"group\":");
  appendJsonString(ref.group, out);
  out->append(",\"kind\":");
  appendJsonString(ref.kind, out);
  out->append(",\"name\":");
  appendJsonString(ref.name, out);
  out->append(",\"namespace\":");
  appendJsonString(ref.ns, out);
  if (ref.port != 0) out->append(",\"port\":" + std::to_string(ref.port));
  if (!ref.section_name.empty()) {
    out->append(",\"sectionName\":");
    appendJsonString(ref.section_name, out);
  }
  out->push_back('}');
}

std::string statusJson(const Resource& res, const ResourceStatus& st) {
  int64_t gen = res.generation;
  std::string out = "{";
  out.reserve(512);
  auto separate = [&] {
    if (out.size() > 1) out.push_back(',');
  };
  bool gateway = res.kind == "Gateway" && !st.addresses.empty();
  if (gateway) {
    separate();
    appendKey("addresses", &out);
    out.push_back('[');
    for (size_t i = 0; i < st.addresses.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append("{\"type\":\"IPAddress\",\"value\":");
      appendJsonString(st.addresses[i], &out);
      out.push_back('}');
    }
    out.push_back(']');
  }
  if (!st.ancestors.empty()) {
    separate();
    appendKey("ancestors", &out);
    out.push_back('[');
    for (size_t i = 0; i < st.ancestors.size(); ++i) {
      const AncestorStatus& as = st.ancestors[i];
      if (i > 0) out.push_back(',');
      out.append("{\"ancestorRef\":{\"group\":");
      appendJsonString(kGatewayGroup, &out);
      out.append(",\"kind\":");
      appendJsonString(as.target_kind, &out);
      out.append(",\"name\":");
      appendJsonString(as.gateway_name, &out);
      out.append(",\"namespace\":");
      appendJsonString(as.gateway_ns, &out);
      if (!as.section.empty()) {
        out.append(",\"sectionName\":");
        appendJsonString(as.section, &out);
      }
      out.append("},\"conditions\":");
      std::vector<Condition> conditions = {as.accepted};
      conditions.insert(conditions.end(), as.more.begin(), as.more.end());
      appendConditions(conditions, gen, &out);
      out.append(",\"controllerName\":");
      appendJsonString(kControllerName, &out);
      out.push_back('}');
    }
    out.push_back(']');
  }
  if (!st.conditions.empty()) {
    separate();
    appendKey("conditions", &out);
    appendConditions(st.conditions, gen, &out);
  }
  if (gateway) {
    separate();
    appendKey("listeners", &out);
    out.push_back('[');
    for (size_t i = 0; i < st.listeners.size(); ++i) {
      const ListenerStatus& ls = st.listeners[i];
      if (i > 0) out.push_back(',');
      std::vector<Condition> conditions = {ls.accepted};
      conditions.push_back(ls.refs_failed ? *ls.refs_failed
                           : ls.resolved_refs
                               ? Condition{"ResolvedRefs", true, "ResolvedRefs", ""}
                               : Condition{"ResolvedRefs", false, "InvalidRouteKinds",
                                           "only HTTPRoute and GRPCRoute are "
                                           "supported"});
      conditions.push_back(ls.programmed ? Condition{"Programmed", true, "Programmed", ""}
                                         : Condition{"Programmed", false, "Invalid", ""});
      if (ls.conflicted) conditions.push_back(*ls.conflicted);
      out.append("{\"attachedRoutes\":" + std::to_string(ls.attached_routes) + ",\"conditions\":");
      appendConditions(conditions, gen, &out);
      out.append(",\"name\":");
      appendJsonString(ls.name, &out);
      out.append(",\"supportedKinds\":[");
      for (auto [allowed, kind] :
           {std::pair{ls.http_route, "HTTPRoute"}, {ls.grpc_route, "GRPCRoute"}}) {
        if (!allowed) continue;
        if (out.back() != '[') out.push_back(',');
        out.append("{\"group\":");
        appendJsonString(kGatewayGroup, &out);
        out.append(",\"kind\":\"" + std::string(kind) + "\"}");
      }
      out.append("]}");
    }
    out.push_back(']');
  }
  if (!st.parents.empty()) {
    separate();
    appendKey("parents", &out);
    out.push_back('[');
    for (size_t i = 0; i < st.parents.size(); ++i) {
      const ParentStatus& ps = st.parents[i];
      if (i > 0) out.push_back(',');
      out.append("{\"conditions\":[");
      appendCondition(ps.accepted, gen, &out);
      if (st.resolved_refs) {
        out.push_back(',');
        appendCondition(*st.resolved_refs, gen, &out);
      }
      out.push_back(']');
      out.append(",\"controllerName\":");
      appendJsonString(kControllerName, &out);
      out.append(",\"parentRef\":");
      appendParentRef(*ps.ref, &out);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

}  // namespace

std::shared_ptr<const ConfigDumpSource> Compilation::dumpSource() const {
  auto dump = std::make_shared<ConfigDumpSource>();
  dump->resources = resources_ptr_;
  dump->status.resize(resources_.size());
  // Reused routes have the status they had (their status_ entries are left empty).
  for (const RouteItem& route : routes_)
    if (route.reused) dump->status[route.resource] = route.compiled->status_json;
  std::unordered_map<std::string_view, std::shared_ptr<const std::string>> fresh;
  for (size_t i = 0; i < resources_.size(); ++i) {
    if (dump->status[i] != nullptr) continue;
    const Resource& res = resources_[i];
    DecodeSlot* slot = res.decoded.get();
    if (slot != nullptr && slot->status != nullptr && slot->status->status == status_[i]) {
      dump->status[i] = slot->status->json;
      continue;
    }
    std::string json = statusJson(res, status_[i]);
    std::shared_ptr<const std::string> shared;
    if (auto it = fresh.find(json); it != fresh.end()) {
      shared = it->second;
    } else {
      shared = std::make_shared<const std::string>(std::move(json));
      fresh.emplace(std::string_view(*shared), shared);  // the key views the string it maps to
    }
    dump->status[i] = shared;
    if (slot != nullptr)
      slot->status = std::make_shared<StatusCache>(StatusCache{status_[i], shared});
  }
  for (const RouteItem& route : routes_)
    if (route.recording != nullptr) route.recording->status_json = dump->status[route.resource];
  return dump;
}

}  // namespace internal

namespace {

using nlohmann::json;

// An HTTPS port's certificates and client validation (never keys or PEM text).
json tlsJson(const net::TlsPortSettings& s) {
  json listeners = json::array();
  for (const net::TlsListenerSettings& l : s.listeners) {
    json certs = json::array();
    for (const auto& c : l.certificates)
      certs.push_back(
          {{"subject", c->subject()}, {"names", c->names()}, {"notAfter", c->notAfter()}});
    const char* mode = l.client_mode == net::ClientCertMode::kRequired   ? "Required"
                       : l.client_mode == net::ClientCertMode::kOptional ? "Optional"
                                                                         : "None";
    listeners.push_back({{"name", l.id},
                         {"certificates", certs},
                         {"clientCertificates", mode},
                         {"minVersion", l.min_version == 0x0304 ? "1.3" : "1.2"}});
  }
  return {{"alpn", s.alpn}, {"listeners", listeners}};
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

std::string renderConfigDump(const Snapshot& snapshot) {
  // Compact JSON, one resource per line. Specs are written straight from YAML; the small
  // parts go through nlohmann::json.
  std::string out = "{\"version\":" + std::to_string(snapshot.version) + ",\"resources\":[";
  const ConfigDumpSource* dump = snapshot.dump.get();
  size_t count = dump != nullptr && dump->resources ? dump->resources->size() : 0;
  for (size_t i = 0; i < count; ++i) {
    const Resource& res = (*dump->resources)[i];
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
    out += ",\"status\":";
    out += *dump->status[i];
    out += '}';
  }
  json ports = json::array();
  for (const Port& port : snapshot.ports) {
    json listeners = json::array();
    for (const router::RouteTable::Listener& l : port.routes->listeners()) {
      json routes = json::array();
      for (const auto& r : l.spec.routes)
        routes.push_back((r->kind == router::RouteKind::kHTTPRoute
                              ? std::string()
                              : std::string(router::routeKindName(r->kind)) + ' ') +
                         r->ns + '/' + r->name);
      listeners.push_back({{"name", l.spec.id}, {"hostname", l.spec.hostname}, {"routes", routes}});
    }
    json entry = {{"address", port.bind.toString()},
                  {"listeners", listeners},
                  {"settings", settingsJson(port.settings)}};
    if (port.tls) entry["tls"] = tlsJson(port.tls->settings());
    ports.push_back(std::move(entry));
  }
  json backends = json::array();
  for (const auto& b : snapshot.backends) {
    backends.push_back(
        {{"name", b->ns + '/' + b->name}, {"protocol", backendProtocolName(b->protocol)}});
  }
  out += "\n],\"backends\":" + backends.dump(-1, ' ', false, json::error_handler_t::replace);
  out += ",\"ports\":" + ports.dump(-1, ' ', false, json::error_handler_t::replace) + "}\n";
  return out;
}

}  // namespace portico::config
