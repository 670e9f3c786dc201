// The evaluator's CORS step (Fetch standard, https://fetch.spec.whatwg.org/#http-cors-protocol)
// and its access rules (client address, JWT claims and scopes, consumers, methods, paths).
#include <arpa/inet.h>
#include <re2/re2.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "security/evaluator_internal.h"

namespace portico::security {

bool Cidr::contains(uint8_t fam, const uint8_t* a) const {
  if (fam != family || !a) return false;
  const int bits = family == AF_INET ? 32 : 128;
  const int p = std::min<int>(prefix, bits);
  const int full = p / 8, rest = p % 8;
  if (std::memcmp(addr, a, static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == (a[full] & mask);
}

namespace internal {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// ---- CORS -----------------------------------------------------------------------------------

// `pattern` with one '*' standing for one or more host labels' characters (not '/').
bool wildcardMatch(std::string_view pattern, std::string_view origin) {
  size_t star = pattern.find('*');
  std::string_view pre = pattern.substr(0, star), post = pattern.substr(star + 1);
  if (origin.size() <= pre.size() + post.size()) return false;
  if (!startsWithIgnoreCase(origin, pre)) return false;
  if (!equalsIgnoreCase(origin.substr(origin.size() - post.size()), post)) return false;
  std::string_view middle = origin.substr(pre.size(), origin.size() - pre.size() - post.size());
  return middle.find_first_of("/:@?#") == std::string_view::npos;
}

bool originAllowed(const Cors& cors, std::string_view origin) {
  if (origin.empty()) return false;
  for (const auto& o : cors.allow_origins) {
    if (o == "*") return true;
    if (o.find('*') != std::string::npos) {
      if (wildcardMatch(o, origin)) return true;
    } else if (equalsIgnoreCase(o, origin)) {
      return true;
    }
  }
  for (const auto& re : cors.allow_origin_regexes)
    if (re && RE2::FullMatch(re2::StringPiece(origin.data(), origin.size()), *re)) return true;
  return false;
}

void appendAllowOrigin(const Cors& cors, std::string_view origin, std::string& out) {
  out += "access-control-allow-origin: ";
  if (!cors.allow_credentials && contains(cors.allow_origins, "*"))
    out += "*";
  else
    out += origin;
  out += "\r\n";
  if (cors.allow_credentials) out += "access-control-allow-credentials: true\r\n";
}

void appendJoined(std::string& out, const std::vector<std::string>& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += ", ";
    out += list[i];
  }
}

bool methodAllowed(const Cors& cors, std::string_view method) {
  // CORS-safelisted methods need no permission (a browser never checks them).
  if (method == "GET" || method == "HEAD" || method == "POST") return true;
  return contains(cors.allow_methods, "*") || contains(cors.allow_methods, method);
}

// The preflight's Access-Control-Allow-Headers: each requested name the policy allows.
void appendAllowHeaders(const Cors& cors, std::string_view requested, std::string& out) {
  const bool any = contains(cors.allow_headers, "*");
  size_t start = out.size();
  while (!requested.empty()) {
    size_t comma = requested.find(',');
    std::string_view name = requested.substr(0, comma);
    requested.remove_prefix(comma == std::string_view::npos ? requested.size() : comma + 1);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (name.empty()) continue;
    bool ok = any;
    for (const auto& h : cors.allow_headers) ok = ok || equalsIgnoreCase(h, name);
    if (!ok) continue;
    out += out.size() == start ? "access-control-allow-headers: " : ", ";
    for (char ch : name) out.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch + 32) : ch);
  }
  if (out.size() != start) out += "\r\n";
}

}  // namespace

void appendCorsActual(const Cors& cors, std::string_view origin, std::string& out) {
  if (!originAllowed(cors, origin)) return;
  appendAllowOrigin(cors, origin, out);
  if (!cors.expose_headers.empty()) {
    out += "access-control-expose-headers: ";
    appendJoined(out, cors.expose_headers);
    out += "\r\n";
  }
  out += "vary: origin\r\n";
}

bool runCors(Ctx& c, const Cors& cors) {
  const std::string_view* origin = findHeader(c.req, "origin");
  if (!origin) return true;
  const std::string_view* method = findHeader(c.req, "access-control-request-method");
  if (c.req.method != "OPTIONS" || !method) {
    appendCorsActual(cors, *origin, c.out->cors_response_headers);
    if (c.trace)
      c.note(c.out->cors_response_headers.empty()
                 ? "cors: origin " + std::string(*origin) + " not allowed: no CORS headers"
                 : "cors: origin " + std::string(*origin) + " allowed");
    return true;
  }
  // A preflight: answered here, never forwarded.
  if (!originAllowed(cors, *origin) || !methodAllowed(cors, *method)) {
    if (c.trace)
      c.note("cors: preflight from " + std::string(*origin) + " for " + std::string(*method) +
             " refused: 200 without CORS headers");
    c.respond(200, "cors_origin_denied", "");
    return false;
  }
  c.respond(200, "cors_preflight", "");
  std::string& h = c.out->response_headers;
  appendAllowOrigin(cors, *origin, h);
  if (!cors.allow_methods.empty()) {
    h += "access-control-allow-methods: ";
    // With credentials, "*" is not a wildcard for the browser: name the method asked for.
    if (cors.allow_credentials && contains(cors.allow_methods, "*"))
      h += *method;
    else
      appendJoined(h, cors.allow_methods);
    h += "\r\n";
  }
  if (const std::string_view* req_headers = findHeader(c.req, "access-control-request-headers"))
    appendAllowHeaders(cors, *req_headers, h);
  if (cors.max_age_s >= 0)
    h += "access-control-max-age: " + std::to_string(cors.max_age_s) + "\r\n";
  h += "vary: origin\r\n";
  if (c.trace)
    c.note("cors: preflight from " + std::string(*origin) + " for " + std::string(*method) +
           " answered");
  return false;
}

// ---- Access rules ---------------------------------------------------------------------------

namespace {

struct ClientAddr {
  uint8_t family = 0;  // 0: unknown
  uint8_t bytes[16] = {};
};

// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) compare as IPv4.
void setAddr(ClientAddr& a, uint8_t family, const uint8_t* bytes) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET6 && std::memcmp(bytes, kMapped, 12) == 0) {
    a.family = AF_INET;
    std::memcpy(a.bytes, bytes + 12, 4);
    return;
  }
  a.family = family;
  std::memcpy(a.bytes, bytes, family == AF_INET ? 4 : 16);
}

bool parseAddr(std::string_view s, ClientAddr& a) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  char buf[64];
  if (s.empty() || s.size() >= sizeof buf) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  uint8_t bytes[16];
  if (inet_pton(AF_INET, buf, bytes) == 1) {
    setAddr(a, AF_INET, bytes);
    return true;
  }
  if (inet_pton(AF_INET6, buf, bytes) == 1) {
    setAddr(a, AF_INET6, bytes);
    return true;
  }
  return false;
}

// Calls f(entry) for each X-Forwarded-For entry, all fields in order; stops when f is true.
template <typename F>
void forEachXff(const Request& req, F f) {
  for (uint32_t i = 0; i < req.header_count; ++i) {
    if (!equalsIgnoreCase(req.headers[i].name, "x-forwarded-for")) continue;
    std::string_view v = req.headers[i].value;
    while (true) {
      size_t comma = v.find(',');
      if (f(v.substr(0, comma))) return;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
}

// The peer's address, or with `hops` > 0 the hops-th X-Forwarded-For entry from the right
// (the leftmost when there are fewer). Unknown (family 0) when that entry does not parse or
// there is no X-Forwarded-For: no CIDR condition then matches.
ClientAddr clientAddress(const Request& req, uint32_t hops, std::string* shown) {
  ClientAddr a;
  if (hops == 0) {
    if (req.peer_addr && (req.peer_family == AF_INET || req.peer_family == AF_INET6))
      setAddr(a, req.peer_family, req.peer_addr);
    return a;
  }
  size_t count = 0;
  forEachXff(req, [&](std::string_view) {
    ++count;
    return false;
  });
  if (count == 0) return a;
  size_t want = count > hops ? count - hops : 0, i = 0;
  forEachXff(req, [&](std::string_view e) {
    if (i++ != want) return false;
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (shown) shown->assign(e);
    parseAddr(e, a);
    return true;
  });
  return a;
}

bool pathMatches(const PathCondition& p, std::string_view path) {
  switch (p.kind) {
    case PathCondition::Kind::kExact:
      return path == p.value;
    case PathCondition::Kind::kPrefix: {
      // Gateway API PathPrefix: whole segments ("/admin" matches "/admin/x", not "/adminx").
      std::string_view v = p.value;
      while (v.size() > 1 && v.back() == '/') v.remove_suffix(1);
      if (v == "/" || v.empty()) return true;
      return path.starts_with(v) && (path.size() == v.size() || path[v.size()] == '/');
    }
    case PathCondition::Kind::kRegex:
      return p.regex && RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *p.regex);
  }
  return false;
}

bool scalarEquals(const nlohmann::json& v, const std::string& want) {
  if (v.is_string()) return v.get_ref<const std::string&>() == want;
  if (v.is_array() || v.is_object() || v.is_null()) return false;
  auto s = claimValue(v);
  return s && *s == want;
}

bool claimMatches(const nlohmann::json& claims, const ClaimCondition& cond) {
  const nlohmann::json* v = findClaim(claims, cond.claim);
  if (!v || v->is_null()) return false;
  for (const auto& want : cond.values) {
    if (v->is_array()) {
      for (const auto& e : *v)
        if (scalarEquals(e, want)) return true;
    } else if (scalarEquals(*v, want)) {
      return true;
    }
  }
  return cond.values.empty();
}

bool hasScope(const nlohmann::json& claims, std::string_view scope) {
  auto inString = [&](const nlohmann::json& s) {
    if (!s.is_string()) return false;
    std::string_view v = s.get_ref<const std::string&>();
    while (!v.empty()) {
      size_t sp = v.find(' ');
      if (v.substr(0, sp) == scope) return true;
      if (sp == std::string_view::npos) break;
      v.remove_prefix(sp + 1);
    }
    return false;
  };
  if (auto it = claims.find("scope"); it != claims.end() && inString(*it)) return true;
  if (auto it = claims.find("scp"); it != claims.end()) {
    if (inString(*it)) return true;
    if (it->is_array())
      for (const auto& e : *it)
        if (e.is_string() && e.get_ref<const std::string&>() == scope) return true;
  }
  return false;
}

// Why the rule does not match (a static string), or nullptr when it matches.
const char* ruleMismatch(const AccessRule& r, const Request& req, const ClientAddr& addr,
                         const nlohmann::json* claims, std::string_view consumer) {
  if (!r.client_cidrs.empty()) {
    bool ok = false;
    for (const auto& cidr : r.client_cidrs) ok = ok || cidr.contains(addr.family, addr.bytes);
    if (!ok) return "client address";
  }
  if (!r.claims.empty() || !r.scopes.empty()) {
    if (!claims) return "no verified token";
    for (const auto& cond : r.claims)
      if (!claimMatches(*claims, cond)) return "claims";
    for (const auto& s : r.scopes)
      if (!hasScope(*claims, s)) return "scopes";
  }
  if (!r.consumers.empty() && (consumer.empty() || !contains(r.consumers, consumer)))
    return "consumer";
  if (!r.methods.empty() && !contains(r.methods, req.method)) return "method";
  if (!r.paths.empty()) {
    bool ok = false;
    for (const auto& p : r.paths) ok = ok || pathMatches(p, req.path);
    if (!ok) return "path";
  }
  return nullptr;
}

}  // namespace

bool runAccess(Ctx& c, const Authorization& authz, uint32_t xff_hops,
               const nlohmann::json* claims) {
  std::string shown;
  ClientAddr addr = clientAddress(c.req, xff_hops, c.trace ? &shown : nullptr);
  if (c.trace && xff_hops > 0)
    c.note("authorization: client address from X-Forwarded-For (" + std::to_string(xff_hops) +
           " trusted hops): " + (shown.empty() ? std::string("none") : shown));
  bool allow = authz.default_allow;
  bool matched = false;
  for (const auto& rule : authz.rules) {
    const char* why = ruleMismatch(rule, c.req, addr, claims, c.out->consumer);
    if (why) {
      if (c.trace) c.note("authorization: rule " + rule.name + ": no match (" + why + ")");
      continue;
    }
    if (c.trace)
      c.note("authorization: rule " + rule.name + " matched: " + (rule.allow ? "Allow" : "Deny"));
    allow = rule.allow;
    matched = true;
    break;
  }
  if (!matched && c.trace)
    c.note(std::string("authorization: no rule matched: default ") + (allow ? "Allow" : "Deny"));
  if (allow) return true;
  c.respond(403, "access_denied", "access denied\n");
  return false;
}

}  // namespace internal
}  // namespace portico::security
