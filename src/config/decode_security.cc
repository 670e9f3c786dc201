// Decoding of SecurityPolicy (portico.dev/v1alpha1): strict, every error with its field path.
// This file: the policy, targets and overrides, the request-rule sections (extAuth,
// authorization, cors, clientIPDetection) and the field helpers all sections share;
// decode_security_auth.cc: the authentication sections (jwt, apiKeyAuth, basicAuth).
// What depends on the document alone is checked and built here (algorithms, header names,
// CIDRs, regexes, durations, inline key hashes); keys, Secrets, files and the ext-authz backend
// are resolved by compile_security.cc.
#include "config/decode_security.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "config/decode_route.h"
#include "config/model.h"
#include "config/syntax.h"
#include "security/jose.h"

namespace portico::config {

namespace security_decode {
namespace {

bool isHopByHop(std::string_view h) {
  static constexpr std::string_view kHop[] = {"connection",
                                              "keep-alive",
                                              "proxy-connection",
                                              "te",
                                              "transfer-encoding",
                                              "upgrade",
                                              "trailer",
                                              "host",
                                              "content-length",
                                              "proxy-authenticate",
                                              "proxy-authorization"};
  return std::find(std::begin(kHop), std::end(kHop), h) != std::end(kHop);
}

}  // namespace

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A header name: a token, lowercased. "" (reported) when invalid.
std::string headerName(Reporter& r, const YAML::Mark& mark, const std::string& path,
                       const std::string& value) {
  std::string problem = checkHeaderName(value);
  if (!problem.empty()) {
    r.error(mark, path, invalidValue(value, problem));
    return "";
  }
  return lower(value);
}

// A header Portico sets for the upstream: a token, not hop-by-hop or a pseudo-header.
std::string upstreamHeader(Reporter& r, const YAML::Mark& mark, const std::string& path,
                           const std::string& value) {
  if (value.starts_with(":")) {
    r.error(mark, path, invalidValue(value, "a pseudo-header cannot be set"));
    return "";
  }
  std::string name = headerName(r, mark, path, value);
  if (!name.empty() && isHopByHop(name)) {
    r.error(mark, path,
            invalidValue(value, "a hop-by-hop or framing header cannot carry a credential value"));
    return "";
  }
  return name;
}

std::vector<std::string> stringList(Reporter& r, const YAML::Node& node, const std::string& path,
                                    size_t max_items) {
  std::vector<std::string> out;
  forEachItem(r, node, path, max_items, [&](const YAML::Node& item, const std::string& p, size_t) {
    if (std::optional<std::string> v = readString(r, item, p)) out.push_back(std::move(*v));
  });
  return out;
}

// A list of header names, checked item by item and lowercased. kSet: a header Portico sets
// for the upstream (no pseudo or hop-by-hop header); kReadOrStar: "*" allowed.
std::vector<std::string> headerList(Reporter& r, const YAML::Node& node, const std::string& path,
                                    HeaderUse use) {
  std::vector<std::string> out;
  forEachItem(r, node, path, kMaxList, [&](const YAML::Node& item, const std::string& p, size_t) {
    std::optional<std::string> v = readString(r, item, p);
    if (!v) return;
    if (use == HeaderUse::kReadOrStar && *v == "*") {
      out.push_back(*v);
      return;
    }
    std::string name = use == HeaderUse::kSet ? upstreamHeader(r, markOf(item), p, *v)
                                              : headerName(r, markOf(item), p, *v);
    if (!name.empty()) out.push_back(std::move(name));
  });
  return out;
}

bool readBool(MapReader& m, std::string_view key, bool* out) {
  if (!m.has(key)) {
    m.take(key);
    return false;
  }
  YAML::Node v = m.take(key);
  if (v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false")) {
    *out = v.Scalar() == "true";
    return true;
  }
  m.reporter().error(markOf(v), m.childPath(key), "Invalid value: must be true or false");
  return false;
}

}  // namespace security_decode

using namespace security_decode;

namespace {

constexpr size_t kMaxTargetRefs = 16;
constexpr size_t kMaxRules = 256;

BackendRefModel backendRef(Reporter& r, const YAML::Node& node, const std::string& path,
                           const Resource& res) {
  BackendRefModel b;
  b.where = Where{markOf(node), path};
  b.ns = res.ns;
  MapReader m(r, node, path);
  b.group = m.string("group").value_or("");
  b.kind = m.string("kind").value_or("Service");
  b.name = m.string("name", Need::kRequired).value_or("");
  if (std::optional<std::string> ns = m.string("namespace")) {
    std::string problem = checkDnsLabel(*ns);
    if (!problem.empty())
      r.error(m.markOf("namespace"), m.childPath("namespace"), invalidValue(*ns, problem));
    b.ns = *ns;
  }
  if (std::optional<int64_t> port = m.integer("port", 1, 65535))
    b.port = static_cast<uint16_t>(*port);
  m.finish();
  return b;
}

void decodeExtAuth(MapReader& parent, const Resource& res, ExtAuthModel* out) {
  Reporter& r = parent.reporter();
  out->where = Where{parent.markOf("extAuth"), parent.childPath("extAuth")};
  MapReader m(r, parent.take("extAuth"), parent.childPath("extAuth"));
  if (m.has("grpc")) m.unsupported("grpc", "gRPC external authorization");
  MapReader h(r, m.take("http", Need::kRequired), m.childPath("http"));
  int refs = 0;
  if (h.has("backendRef")) {
    out->backend = backendRef(r, h.take("backendRef"), h.childPath("backendRef"), res);
    ++refs;
  }
  if (h.has("backendRefs")) {
    YAML::Node list = h.take("backendRefs");
    forEachItem(r, list, h.childPath("backendRefs"), kMaxList,
                [&](const YAML::Node& item, const std::string& path, size_t) {
                  out->backend = backendRef(r, item, path, res);
                  ++refs;
                });
  }
  if (refs != 1) {
    r.error(h.mark(), h.path(),
            "Invalid value: exactly one backendRef (backendRef, or backendRefs with one item)");
  }
  if (std::optional<std::string> path = h.string("path")) {
    if (!path->starts_with("/") || path->find_first_of("?# \r\n") != std::string::npos) {
      r.error(h.markOf("path"), h.childPath("path"),
              invalidValue(*path, "must be an absolute path without query"));
    }
    out->settings.path = *path;
  }
  out->settings.headers_to_backend =
      headerList(r, h.take("headersToBackend"), h.childPath("headersToBackend"), HeaderUse::kSet);
  h.finish();
  out->settings.headers_to_service =
      headerList(r, m.take("headersToExtAuth"), m.childPath("headersToExtAuth"), HeaderUse::kRead);
  if (m.has("bodyToExtAuth")) {
    MapReader b(r, m.take("bodyToExtAuth"), m.childPath("bodyToExtAuth"));
    if (std::optional<int64_t> n = b.integer("maxRequestBytes", 1, 1 << 20, Need::kRequired))
      out->settings.max_body_bytes = static_cast<uint32_t>(*n);
    b.finish();
  }
  if (std::optional<uint64_t> ms = m.duration("timeout")) {
    if (*ms == 0 || *ms > 60'000) {
      r.error(m.markOf("timeout"), m.childPath("timeout"),
              "Invalid value: must be between 1ms and 60s");
    } else {
      out->settings.timeout_ms = static_cast<uint32_t>(*ms);
    }
  }
  readBool(m, "failOpen", &out->settings.fail_open);
  if (m.has("cache")) {
    MapReader c(r, m.take("cache"), m.childPath("cache"));
    if (std::optional<uint64_t> ms = c.duration("ttl", Need::kRequired)) {
      if (*ms == 0 || *ms > 3'600'000) {
        r.error(c.markOf("ttl"), c.childPath("ttl"), "Invalid value: must be between 1ms and 1h");
      } else {
        out->settings.cache_ttl_ms = static_cast<uint32_t>(*ms);
      }
    }
    out->settings.cache_max_entries =
        static_cast<uint32_t>(c.integer("maxEntries", 1, 1'000'000).value_or(1000));
    c.finish();
  }
  m.finish();
}

std::optional<security::Cidr> parseCidr(std::string_view text) {
  security::Cidr c;
  size_t slash = text.find('/');
  std::string addr(text.substr(0, slash));
  int max_prefix;
  if (inet_pton(AF_INET, addr.c_str(), c.addr) == 1) {
    c.family = AF_INET;
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.addr) == 1) {
    c.family = AF_INET6;
    max_prefix = 128;
  } else {
    return std::nullopt;
  }
  int prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    prefix = 0;
    for (char ch : p) {
      if (ch < '0' || ch > '9') return std::nullopt;
      prefix = prefix * 10 + (ch - '0');
    }
    if (prefix > max_prefix) return std::nullopt;
  }
  c.prefix = static_cast<uint8_t>(prefix);
  // Host bits cleared, so that "10.1.2.3/8" means 10.0.0.0/8.
  for (int bit = prefix; bit < max_prefix; ++bit)
    c.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return c;
}

std::vector<std::string> methodList(Reporter& r, const YAML::Node& node, const std::string& path,
                                    bool star_allowed) {
  std::vector<std::string> out;
  forEachItem(r, node, path, kMaxList, [&](const YAML::Node& item, const std::string& p, size_t) {
    std::optional<std::string> v = readString(r, item, p);
    if (!v) return;
    bool ok = !v->empty() && std::all_of(v->begin(), v->end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    });
    if (!ok && !(star_allowed && *v == "*")) {
      r.error(markOf(item), p, invalidValue(*v, "must be an upper-case HTTP method"));
      return;
    }
    out.push_back(std::move(*v));
  });
  return out;
}

void decodeAuthorization(MapReader& parent, SecuritySectionsModel* out) {
  Reporter& r = parent.reporter();
  out->authorization_where =
      Where{parent.markOf("authorization"), parent.childPath("authorization")};
  auto authz = std::make_shared<security::Authorization>();
  MapReader m(r, parent.take("authorization"), parent.childPath("authorization"));
  forEachItem(
      r, m.take("rules"), m.childPath("rules"), kMaxRules,
      [&](const YAML::Node& item, const std::string& path, size_t) {
        MapReader rm(r, item, path);
        security::AccessRule rule;
        rule.name = rm.string("name").value_or("");
        std::string action = rm.string("action", Need::kRequired).value_or("Allow");
        if (action != "Allow" && action != "Deny") {
          r.error(rm.markOf("action"), rm.childPath("action"),
                  "Unsupported value: \"" + action + "\": supported values: \"Allow\", \"Deny\"");
        }
        rule.allow = action == "Allow";
        if (rm.has("principal")) {
          MapReader p(r, rm.take("principal"), rm.childPath("principal"));
          forEachItem(r, p.take("clientCIDRs"), p.childPath("clientCIDRs"), kMaxList,
                      [&](const YAML::Node& c, const std::string& cpath, size_t) {
                        std::optional<std::string> v = readString(r, c, cpath);
                        if (!v) return;
                        std::optional<security::Cidr> cidr = parseCidr(*v);
                        if (!cidr) {
                          r.error(markOf(c), cpath,
                                  invalidValue(*v,
                                               "must be an IPv4 or IPv6 CIDR (10.0.0.0/8, "
                                               "::1/128) with a prefix length in range"));
                          return;
                        }
                        rule.client_cidrs.push_back(*cidr);
                      });
          if (p.has("jwt")) {
            MapReader j(r, p.take("jwt"), p.childPath("jwt"));
            forEachItem(r, j.take("claims"), j.childPath("claims"), kMaxList,
                        [&](const YAML::Node& c, const std::string& cpath, size_t) {
                          MapReader cm(r, c, cpath);
                          security::ClaimCondition cc;
                          cc.claim = cm.string("name", Need::kRequired).value_or("");
                          cc.values = stringList(r, cm.take("values", Need::kRequired),
                                                 cm.childPath("values"));
                          cm.finish();
                          if (cc.values.empty())
                            r.error(markOf(c), cm.childPath("values"),
                                    "Required value: at least one value");
                          rule.claims.push_back(std::move(cc));
                        });
            rule.scopes = stringList(r, j.take("scopes"), j.childPath("scopes"));
            j.finish();
          }
          rule.consumers = stringList(r, p.take("consumers"), p.childPath("consumers"));
          p.finish();
        }
        if (rm.has("operation")) {
          MapReader o(r, rm.take("operation"), rm.childPath("operation"));
          rule.methods = methodList(r, o.take("methods"), o.childPath("methods"), false);
          forEachItem(r, o.take("paths"), o.childPath("paths"), kMaxList,
                      [&](const YAML::Node& pn, const std::string& ppath, size_t) {
                        MapReader pm(r, pn, ppath);
                        security::PathCondition pc;
                        std::string type = pm.string("type").value_or("PathPrefix");
                        pc.value = pm.string("value", Need::kRequired).value_or("/");
                        if (type == "Exact" || type == "PathPrefix") {
                          pc.kind = type == "Exact" ? security::PathCondition::Kind::kExact
                                                    : security::PathCondition::Kind::kPrefix;
                          std::string problem = checkPathValue(pc.value);
                          if (!problem.empty())
                            r.error(pm.markOf("value"), pm.childPath("value"),
                                    invalidValue(pc.value, problem));
                        } else if (type == "RegularExpression") {
                          pc.kind = security::PathCondition::Kind::kRegex;
                          pc.regex = route_decode::regex(r, pm.markOf("value"),
                                                         pm.childPath("value"), pc.value);
                        } else {
                          r.error(pm.markOf("type"), pm.childPath("type"),
                                  "Unsupported value: \"" + type +
                                      "\": supported values: \"Exact\", \"PathPrefix\", "
                                      "\"RegularExpression\"");
                        }
                        pm.finish();
                        rule.paths.push_back(std::move(pc));
                      });
          o.finish();
        }
        rm.finish();
        authz->rules.push_back(std::move(rule));
      });
  std::string def = m.string("defaultAction").value_or("Deny");
  if (def != "Allow" && def != "Deny") {
    r.error(m.markOf("defaultAction"), m.childPath("defaultAction"),
            "Unsupported value: \"" + def + "\": supported values: \"Allow\", \"Deny\"");
  }
  authz->default_allow = def == "Allow";
  m.finish();
  out->authorization = std::move(authz);
}

void decodeCors(MapReader& parent, SecuritySectionsModel* out) {
  Reporter& r = parent.reporter();
  out->cors_where = Where{parent.markOf("cors"), parent.childPath("cors")};
  auto cors = std::make_shared<security::Cors>();
  MapReader m(r, parent.take("cors"), parent.childPath("cors"));
  YAML::Node origins = m.take("allowOrigins");
  forEachItem(r, origins, m.childPath("allowOrigins"), kMaxList,
              [&](const YAML::Node& item, const std::string& path, size_t) {
                std::optional<std::string> v = readString(r, item, path);
                if (!v) return;
                std::string o = lower(*v);
                size_t stars = std::count(o.begin(), o.end(), '*');
                bool ok = o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) &&
                                       stars <= 1 && o.find('/', 8) == std::string::npos);
                if (!ok) {
                  r.error(markOf(item), path,
                          invalidValue(*v,
                                       "must be \"*\" or scheme://host[:port] with at most "
                                       "one \"*\" and no path"));
                  return;
                }
                cors->allow_origins.push_back(std::move(o));
              });
  forEachItem(
      r, m.take("allowOriginRegexes"), m.childPath("allowOriginRegexes"), kMaxList,
      [&](const YAML::Node& item, const std::string& path, size_t) {
        std::optional<std::string> v = readString(r, item, path);
        if (!v) return;
        if (std::shared_ptr<const re2::RE2> re = route_decode::regex(r, markOf(item), path, *v))
          cors->allow_origin_regexes.push_back(std::move(re));
      });
  cors->allow_methods = methodList(r, m.take("allowMethods"), m.childPath("allowMethods"), true);
  cors->allow_headers =
      headerList(r, m.take("allowHeaders"), m.childPath("allowHeaders"), HeaderUse::kReadOrStar);
  cors->expose_headers =
      headerList(r, m.take("exposeHeaders"), m.childPath("exposeHeaders"), HeaderUse::kRead);
  if (std::optional<uint64_t> ms = m.duration("maxAge"))
    cors->max_age_s = static_cast<int64_t>(*ms / 1000);
  readBool(m, "allowCredentials", &cors->allow_credentials);
  m.finish();
  if (cors->allow_credentials && std::find(cors->allow_origins.begin(), cors->allow_origins.end(),
                                           "*") != cors->allow_origins.end()) {
    r.warning(markOf(origins), parent.childPath("cors.allowOrigins"),
              "allowCredentials with origin \"*\": every web site may make credentialed requests; "
              "list the allowed origins instead");
  }
  out->cors = std::move(cors);
}

void decodeClientIp(MapReader& parent, SecuritySectionsModel* out) {
  Reporter& r = parent.reporter();
  out->xff_where = Where{parent.markOf("clientIPDetection"), parent.childPath("clientIPDetection")};
  MapReader m(r, parent.take("clientIPDetection"), parent.childPath("clientIPDetection"));
  out->xff_trusted_hops = 0;
  if (m.has("xForwardedFor")) {
    MapReader x(r, m.take("xForwardedFor"), m.childPath("xForwardedFor"));
    out->xff_trusted_hops =
        static_cast<uint32_t>(x.integer("numTrustedHops", 0, 32, Need::kRequired).value_or(0));
    x.finish();
  }
  if (m.has("customHeader")) m.unsupported("customHeader", "a custom client IP header");
  m.finish();
}

constexpr std::string_view kSections[] = {
    "jwt", "apiKeyAuth", "basicAuth", "extAuth", "authorization", "cors", "clientIPDetection"};

void decodeSections(MapReader& m, const Resource& res, SecuritySectionsModel* out) {
  if (m.has("jwt")) decodeJwt(m, &out->jwt.emplace());
  if (m.has("apiKeyAuth")) decodeApiKey(m, &out->api_key.emplace());
  if (m.has("basicAuth")) decodeBasic(m, &out->basic.emplace());
  if (m.has("extAuth")) decodeExtAuth(m, res, &out->ext_auth.emplace());
  if (m.has("authorization")) decodeAuthorization(m, out);
  if (m.has("cors")) decodeCors(m, out);
  if (m.has("clientIPDetection")) decodeClientIp(m, out);
  for (std::string_view s : kSections) m.take(s);  // absent or null
  if (out->jwt && !out->jwt->optional && out->basic) {
    for (const JwtProviderModel& p : out->jwt->providers) {
      for (const security::CredentialSource& src : p.provider.sources) {
        if (src.kind == security::CredentialSource::Kind::kHeader && src.name == "authorization") {
          m.reporter().warning(out->basic->where.mark, out->basic->where.path,
                               "jwt provider \"" + p.name +
                                   "\" also reads the Authorization header: a request cannot "
                                   "pass both (use another extractFrom for the token)");
          return;
        }
      }
    }
  }
}

}  // namespace

std::optional<SecurityPolicyModel> decodeSecurityPolicy(const Resource& res, Reporter& r) {
  SecurityPolicyModel p;
  if (isAbsent(res.spec)) {
    r.error(markOf(res.document), "spec", "Required value");
    return std::nullopt;
  }
  MapReader spec(r, res.spec, "spec");
  int before_targets = r.errorCount();
  YAML::Node targets = spec.take("targetRefs", Need::kRequired);
  forEachItem(
      r, targets, spec.childPath("targetRefs"), kMaxTargetRefs,
      [&](const YAML::Node& item, const std::string& path, size_t) {
        MapReader m(r, item, path);
        std::optional<std::string> group = m.string("group", Need::kRequired);
        std::optional<std::string> kind = m.string("kind", Need::kRequired);
        std::optional<std::string> name = m.string("name", Need::kRequired);
        std::optional<std::string> section = m.string("sectionName");
        m.finish();
        if (!group || !kind || !name) return;
        if (*group != kGatewayGroup ||
            (*kind != "Gateway" && *kind != "HTTPRoute" && *kind != "GRPCRoute")) {
          r.error(m.markOf("kind"), path,
                  "Unsupported value: " + *group + "/" + *kind +
                      ": targetRefs must name a gateway.networking.k8s.io Gateway, HTTPRoute or "
                      "GRPCRoute");
          return;
        }
        if (section && *kind == "Gateway") {
          r.error(m.markOf("sectionName"), m.childPath("sectionName"),
                  "targeting a Gateway listener is not supported yet (target the Gateway)");
          return;
        }
        p.targets.push_back(
            PolicyTargetModel{Where{markOf(item), path}, *kind, *name, section.value_or("")});
      });
  if (targets.IsDefined() && targets.IsSequence() && targets.size() == 0)
    r.error(markOf(targets), "spec.targetRefs", "Required value: at least one targetRef");
  if (r.errorCount() > before_targets || p.targets.empty()) {
    // Without targets nothing can fail closed: rejected as a whole. Report the rest too.
    SecurityPolicyModel ignored;
    decodeSections(spec, res, &ignored.defaults);
    spec.take("overrides");
    spec.finish();
    return std::nullopt;
  }
  int before = r.errorCount();
  decodeSections(spec, res, &p.defaults);
  if (spec.has("overrides")) {
    bool gateways_only =
        std::all_of(p.targets.begin(), p.targets.end(),
                    [](const PolicyTargetModel& t) { return t.kind == "Gateway"; });
    if (!gateways_only) {
      r.error(spec.markOf("overrides"), spec.childPath("overrides"),
              "Forbidden: overrides are for policies that target Gateways only");
    }
    MapReader o(r, spec.take("overrides"), spec.childPath("overrides"));
    decodeSections(o, res, &p.overrides);
    o.finish();
  }
  spec.finish();
  if (p.defaults.empty() && p.overrides.empty() && r.errorCount() == before) {
    r.warning(spec.mark(), "spec",
              "no section is set (jwt, apiKeyAuth, basicAuth, extAuth, "
              "authorization, cors, clientIPDetection): the policy does "
              "nothing");
  }
  p.invalid = r.errorCount() > before;
  return p;
}

}  // namespace portico::config
