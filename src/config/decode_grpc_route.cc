// Decoding of GRPCRoute (gateway.networking.k8s.io/v1) specs into the HTTPRoute model.
//
// A gRPC call is an HTTP/2 POST to "/<service>/<method>", so a GRPCRoute is routed by the HTTP
// router once its method matches are written as path matches:
//   Exact, service and method  -> path Exact "/<service>/<method>"
//   Exact, service only        -> path PathPrefix "/<service>/" (whole segments: not "/<service>X")
//   Exact, method only         -> path RegularExpression "/[^/]+/<method>"
//   RegularExpression          -> path RegularExpression "/(?:<service>)/(?:<method>)", a missing
//                                 part being "[^/]+" (RE2, full match)
//   no method match            -> path PathPrefix "/" (every request)
// A service written fully qualified (".pkg.Svc") is matched without its leading dot. Each match
// keeps the characters of its service and method, which rank GRPCRoute matches (Gateway API
// GRPCRoute precedence, router::GrpcRank). Header matches, parentRefs, hostnames, filters
// (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror) and backendRefs decode as
// HTTPRoute's do (decode_route.h). Limits are the GRPCRoute CRD's.
#include <algorithm>

#include "config/decode_route.h"
#include "config/model.h"
#include "config/syntax.h"

namespace portico::config {
namespace {

constexpr size_t kMaxRules = 16;
constexpr size_t kMaxMatchesPerRule = 64;
constexpr size_t kMaxMatchesTotal = 128;
constexpr size_t kMaxBackendRefs = 16;
constexpr size_t kMaxNameLength = 1024;  // service and method

bool identStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool identChar(char c) { return identStart(c) || (c >= '0' && c <= '9'); }

// The CRD's pattern for an Exact service: ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$
bool validService(std::string_view s) {
  if (s.starts_with('.')) s.remove_prefix(1);
  bool start = true;
  for (char c : s) {
    if (start) {
      if (!identStart(c)) return false;
      start = false;
    } else if (c == '.') {
      start = true;
    } else if (!identChar(c)) {
      return false;
    }
  }
  return !start;
}

// The CRD's pattern for an Exact method: ^[A-Za-z_][A-Za-z_0-9]*$
bool validMethod(std::string_view s) {
  return !s.empty() && identStart(s[0]) && std::all_of(s.begin(), s.end(), identChar);
}

// match.method: writes the path condition of `match`.
void decodeMethodMatch(Reporter& r, const YAML::Node& node, const std::string& path,
                       MatchModel* match) {
  MapReader m(r, node, path);
  std::string type = m.string("type").value_or("Exact");
  std::optional<std::string> service = m.string("service");
  std::optional<std::string> method = m.string("method");
  m.finish();
  bool regex = type == "RegularExpression";
  if (!regex && type != "Exact") {
    r.error(
        m.markOf("type"), m.childPath("type"),
        "Unsupported value: \"" + type + "\": supported values: \"Exact\", \"RegularExpression\"");
    return;
  }
  bool ok = true;
  for (auto [key, value] : {std::pair{"service", &service}, {"method", &method}}) {
    if (!*value) continue;
    const std::string& v = **value;
    std::string problem;
    if (v.size() > kMaxNameLength) {
      problem = "must be at most 1024 characters";
    } else if (!regex && std::string_view(key) == "service" && !validService(v)) {
      problem =
          "service must only contain valid characters (matching "
          "^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)";
    } else if (!regex && std::string_view(key) == "method" && !validMethod(v)) {
      problem = "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)";
    } else if (regex && !v.empty() && !route_decode::regex(r, m.markOf(key), m.childPath(key), v)) {
      ok = false;  // reported
      continue;
    }
    if (!problem.empty()) {
      r.error(m.markOf(key), m.childPath(key), invalidValue(v, problem));
      ok = false;
    }
  }
  // A RegularExpression part left empty matches any service or method.
  if (regex && service && service->empty()) service.reset();
  if (regex && method && method->empty()) method.reset();
  if (!service && !method) {
    r.error(markOf(node), path,
            "Invalid value: One or both of 'service' or 'method' must be specified");
    return;
  }
  if (!ok) return;
  std::string_view svc = service ? std::string_view(*service) : std::string_view();
  if (!regex && svc.starts_with('.')) svc.remove_prefix(1);  // ".pkg.Svc" names pkg.Svc
  match->grpc_service_chars = static_cast<uint16_t>(svc.size());
  match->grpc_method_chars = static_cast<uint16_t>(method ? method->size() : 0);
  if (regex) {
    match->path_kind = PathKind::kRegularExpression;
    match->path = "/(?:" + service.value_or("[^/]+") + ")/(?:" + method.value_or("[^/]+") + ")";
    match->path_regex = route_decode::regex(r, markOf(node), path, match->path);
    return;
  }
  if (service && method) {
    match->path_kind = PathKind::kExact;
    match->path = "/" + std::string(svc) + "/" + *method;
  } else if (service) {
    match->path_kind = PathKind::kPathPrefix;
    match->path = "/" + std::string(svc) + "/";
  } else {
    match->path_kind = PathKind::kRegularExpression;
    match->path = "/[^/]+/" + *method;
    match->path_regex = route_decode::regex(r, markOf(node), path, match->path);
  }
}

MatchModel decodeMatch(Reporter& r, const YAML::Node& node, const std::string& path) {
  MatchModel match;
  match.where = Where{markOf(node), path};
  match.grpc = true;
  MapReader m(r, node, path);
  if (m.has("method")) decodeMethodMatch(r, m.take("method"), m.childPath("method"), &match);
  if (m.has("headers"))
    route_decode::headerMatches(r, m.take("headers"), m.childPath("headers"), &match.headers);
  m.finish();
  return match;
}

// A match of every request (a rule without matches).
MatchModel matchAll(const Where& where) {
  MatchModel match;  // PathPrefix "/"
  match.where = where;
  match.grpc = true;
  return match;
}

RuleModel decodeRule(Reporter& r, const YAML::Node& node, const std::string& path,
                     const Resource& res, size_t* total_matches) {
  RuleModel rule;
  rule.where = Where{markOf(node), path};
  MapReader m(r, node, path);
  if (std::optional<std::string> name = m.string("name")) {
    std::string problem = checkDnsSubdomain(*name);
    if (!problem.empty())
      r.error(m.markOf("name"), m.childPath("name"), invalidValue(*name, problem));
    rule.name = *name;
  }
  forEachItem(r, m.take("matches"), m.childPath("matches"), kMaxMatchesPerRule,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                rule.matches.push_back(decodeMatch(r, item, item_path));
              });
  *total_matches += rule.matches.size();
  if (rule.matches.empty()) rule.matches.push_back(matchAll(Where{m.mark(), path}));
  if (m.has("filters"))
    route_decode::grpcFilters(r, m.take("filters"), m.childPath("filters"), res, &rule.filters);
  forEachItem(r, m.take("backendRefs"), m.childPath("backendRefs"), kMaxBackendRefs,
              [&](const YAML::Node& item, const std::string& item_path, size_t) {
                rule.backend_refs.push_back(route_decode::grpcBackendRef(r, item, item_path, res));
              });
  m.unsupported("sessionPersistence", "sessionPersistence");
  m.finish();
  return rule;
}

}  // namespace

std::optional<HttpRouteModel> decodeGrpcRoute(const Resource& res, Reporter& r) {
  int errors_before = r.errorCount();
  HttpRouteModel route;
  MapReader spec(r, res.spec, "spec");
  route_decode::parentRefsAndHostnames(r, spec, res, &route);
  size_t total_matches = 0;
  YAML::Node rules = spec.take("rules");
  forEachItem(r, rules, spec.childPath("rules"), kMaxRules,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                route.rules.push_back(decodeRule(r, item, path, res, &total_matches));
              });
  if (total_matches > kMaxMatchesTotal) {
    r.error(markOf(rules), spec.childPath("rules"),
            "Too many: " + std::to_string(total_matches) + ": at most " +
                std::to_string(kMaxMatchesTotal) + " matches across all rules");
  }
  if (isAbsent(rules)) {
    RuleModel def;  // one rule matching every request, no backends
    def.where = Where{spec.mark(), "spec.rules"};
    def.matches.push_back(matchAll(def.where));
    route.rules.push_back(def);
  }
  spec.unsupported("useDefaultGateways", "useDefaultGateways");
  spec.finish();
  if (r.errorCount() > errors_before) return std::nullopt;
  if (route.parent_refs.empty()) {
    r.warning(spec.mark(), "spec.parentRefs", "no parentRefs: the route is attached to no Gateway");
  }
  return route;
}

}  // namespace portico::config
