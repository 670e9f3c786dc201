// The evaluator's access rules and CORS (evaluator_rules.cc) on hand-built policies.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <re2/re2.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "security/evaluator.h"
#include "security/evaluator_testing.h"

namespace portico::security {
namespace {

using namespace eval_test;
using Action = Outcome::Action;
using json = nlohmann::json;

// ---- Access rules -----------------------------------------------------------------------

TEST(EvaluatorAccess, CidrContains) {
  uint8_t a[16];
  Cidr v4 = cidr("10.0.0.0/8");
  inet_pton(AF_INET, "10.255.1.2", a);
  EXPECT_TRUE(v4.contains(AF_INET, a));
  inet_pton(AF_INET, "11.0.0.1", a);
  EXPECT_FALSE(v4.contains(AF_INET, a));
  Cidr odd = cidr("192.168.128.0/17");
  inet_pton(AF_INET, "192.168.200.1", a);
  EXPECT_TRUE(odd.contains(AF_INET, a));
  inet_pton(AF_INET, "192.168.127.255", a);
  EXPECT_FALSE(odd.contains(AF_INET, a));
  EXPECT_TRUE(cidr("0.0.0.0/0").contains(AF_INET, a));
  Cidr v6 = cidr("2001:db8::/33");
  inet_pton(AF_INET6, "2001:db8:7fff::1", a);
  EXPECT_TRUE(v6.contains(AF_INET6, a));
  inet_pton(AF_INET6, "2001:db8:8000::1", a);
  EXPECT_FALSE(v6.contains(AF_INET6, a));
  EXPECT_FALSE(v6.contains(AF_INET, a));
  inet_pton(AF_INET6, "::1", a);
  EXPECT_TRUE(cidr("::1/128").contains(AF_INET6, a));
  a[15] = 2;
  EXPECT_FALSE(cidr("::1/128").contains(AF_INET6, a));
}

TEST(EvaluatorAccess, PeerAddressAndXffHops) {
  AccessRule lab;
  lab.name = "lab-net";
  lab.client_cidrs = {cidr("10.0.0.0/8"), cidr("2001:db8::/32")};
  Policy pol = accessPolicy({lab});
  Eval e;
  Req r;
  r.peer = "10.1.2.3";
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  EXPECT_TRUE(e.traced("authorization: rule lab-net matched: Allow"));
  r.peer = "192.0.2.1";
  Outcome& denied = e.run(pol, r);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.reason, "access_denied");
  EXPECT_EQ(denied.body, "access denied\n");
  r.peer = "2001:db8::5";
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  r.peer = "::ffff:10.9.9.9";  // IPv4-mapped
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);

  // X-Forwarded-For is ignored without trusted hops.
  r.peer = "192.0.2.1";
  r.h("x-forwarded-for", "10.0.0.1");
  EXPECT_EQ(e.run(pol, r).status, 403);

  pol.xff_trusted_hops = 2;
  pol.xff_set = true;
  r.headers.clear();
  // Fields joined in order: 1.1.1.1, 10.0.0.7, 203.0.113.9 — the 2nd from the right.
  r.h("X-Forwarded-For", "1.1.1.1, 10.0.0.7").h("x-forwarded-for", "203.0.113.9");
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  EXPECT_TRUE(e.traced("X-Forwarded-For (2 trusted hops): 10.0.0.7"));
  pol.xff_trusted_hops = 1;
  EXPECT_EQ(e.run(pol, r).status, 403);
  pol.xff_trusted_hops = 5;  // fewer entries: the leftmost
  EXPECT_EQ(e.run(pol, r).status, 403);
  r.headers.clear();
  r.h("x-forwarded-for", "[2001:db8::9], 198.51.100.1");
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  r.headers.clear();
  r.h("x-forwarded-for", "garbage");
  EXPECT_EQ(e.run(pol, r).status, 403);
}

TEST(EvaluatorAccess, ClaimsScopesConsumersMethodsPaths) {
  AccessRule admins;
  admins.name = "admins";
  admins.allow = false;
  admins.paths = {{PathCondition::Kind::kPrefix, "/admin", nullptr}};
  admins.methods = {"POST", "DELETE"};
  AccessRule readers;
  readers.name = "readers";
  readers.claims = {{"tenant", {"acme", "globex"}}, {"roles", {"reader"}}};
  readers.scopes = {"read", "list"};
  AccessRule exact;
  exact.name = "exact";
  exact.paths = {{PathCondition::Kind::kExact, "/health", nullptr},
                 {PathCondition::Kind::kRegex, "/v[0-9]+/status",
                  std::make_shared<re2::RE2>("/v[0-9]+/status")}};
  Policy pol = jwtPolicy({hsProvider()}, /*optional=*/true);
  pol.authorization = accessPolicy({admins, readers, exact}).authorization;
  Eval e;
  auto run = [&](const std::string& method, const std::string& path, const json& claims) {
    Req r;
    r.method = method;
    r.path = path;
    if (!claims.is_null()) r.h("authorization", "Bearer " + hsToken(claims));
    return e.run(pol, r).status;
  };
  const json good = {{"tenant", "acme"}, {"roles", {"reader"}}, {"scope", "list read write"}};
  EXPECT_EQ(run("GET", "/x", good), 0);
  EXPECT_EQ(run("POST", "/admin/x", good), 403);  // first match: admins (Deny)
  EXPECT_EQ(run("POST", "/adminx", good), 0);     // not a segment prefix: readers
  EXPECT_EQ(run("GET", "/admin", good), 0);       // method differs
  json scp = {{"tenant", "globex"}, {"roles", {"reader", "x"}}, {"scp", {"read", "list"}}};
  EXPECT_EQ(run("GET", "/x", scp), 0);
  scp["scp"] = "read list";
  EXPECT_EQ(run("GET", "/x", scp), 0);
  EXPECT_EQ(run("GET", "/x", {{"tenant", "acme"}, {"roles", {"reader"}}, {"scope", "read"}}),
            403);  // a scope missing
  EXPECT_EQ(
      run("GET", "/x", {{"tenant", "initech"}, {"roles", {"reader"}}, {"scope", "read list"}}),
      403);
  EXPECT_EQ(run("GET", "/x", {{"tenant", "acme"}, {"scope", "read list"}}), 403);  // all claims
  EXPECT_EQ(run("GET", "/x", json()), 403);  // no token: claim rules never match
  EXPECT_EQ(run("GET", "/health", json()), 0);
  EXPECT_EQ(run("GET", "/health/x", json()), 403);
  EXPECT_EQ(run("GET", "/v2/status", json()), 0);
  EXPECT_EQ(run("GET", "/v2/status/x", json()), 403);
  EXPECT_TRUE(e.traced("authorization: no rule matched: default Deny"));

  AccessRule by_consumer;
  by_consumer.name = "acme";
  by_consumer.consumers = {"acme-app"};
  Policy ak = apiKeyPolicy();
  ak.authorization = accessPolicy({by_consumer}).authorization;
  Req r;
  r.h("x-api-key", "k-acme-123");
  EXPECT_EQ(e.run(ak, r).action, Action::kContinue);
  r.headers.clear();
  r.h("x-api-key", "k+globex/==");
  EXPECT_EQ(e.run(ak, r).status, 403);
  // Default allow.
  Policy open = accessPolicy({admins}, /*default_allow=*/true);
  Req plain;
  EXPECT_EQ(e.run(open, plain).action, Action::kContinue);
}

// ---- CORS -------------------------------------------------------------------------------

Policy corsPolicy(bool credentials) {
  auto c = std::make_shared<Cors>();
  c->allow_origins = {"https://app.example.com", "https://*.example.com"};
  c->allow_origin_regexes = {std::make_shared<re2::RE2>("https://[a-z]+\\.example\\.org")};
  c->allow_methods = {"GET", "PUT"};
  c->allow_headers = {"x-tenant", "content-type"};
  c->expose_headers = {"x-request-id", "x-trace"};
  c->max_age_s = 600;
  c->allow_credentials = credentials;
  Policy p;
  p.cors = c;
  return p;
}

Req preflight(const std::string& origin, const std::string& method,
              const std::string& headers = "") {
  Req r;
  r.method = "OPTIONS";
  r.h("origin", origin).h("access-control-request-method", method);
  if (!headers.empty()) r.h("Access-Control-Request-Headers", headers);
  return r;
}

TEST(EvaluatorCors, OriginKinds) {
  Policy pol = corsPolicy(false);
  Eval e;
  for (const std::string ok :
       {"https://app.example.com", "HTTPS://APP.example.com", "https://a.example.com",
        "https://a.b.example.com", "https://abc.example.org"}) {
    Req r;
    r.h("origin", ok);
    EXPECT_NE(e.run(pol, r).cors_response_headers, "") << ok;
  }
  for (const std::string bad :
       {"https://example.com", "http://a.example.com", "https://a.example.com.evil.com",
        "https://evil.com/.example.com", "https://a.example.org.evil", "https://9.example.org",
        "null", ""}) {
    Req r;
    r.h("origin", bad);
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.action, Action::kContinue);
    EXPECT_EQ(o.cors_response_headers, "") << bad;
  }
  auto star = std::make_shared<Cors>(*pol.cors);
  star->allow_origins = {"*"};
  pol.cors = star;
  Req r;
  r.h("origin", "null");
  EXPECT_EQ(e.run(pol, r).cors_response_headers,
            "access-control-allow-origin: *\r\n"
            "access-control-expose-headers: x-request-id, x-trace\r\nvary: origin\r\n");
}

TEST(EvaluatorCors, PreflightWithoutCredentials) {
  Policy pol = corsPolicy(false);
  Eval e;
  Req r = preflight("https://a.example.com", "PUT", "X-Tenant, content-type,x-other");
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kRespond);
  EXPECT_EQ(o.status, 200);
  EXPECT_EQ(o.reason, "cors_preflight");
  EXPECT_EQ(o.body, "");
  EXPECT_EQ(o.response_headers,
            "access-control-allow-origin: https://a.example.com\r\n"
            "access-control-allow-methods: GET, PUT\r\n"
            "access-control-allow-headers: x-tenant, content-type\r\n"
            "access-control-max-age: 600\r\n"
            "vary: origin\r\n");
}

TEST(EvaluatorCors, PreflightWithCredentialsAndWildcards) {
  Policy pol = corsPolicy(true);
  auto c = std::make_shared<Cors>(*pol.cors);
  c->allow_origins = {"*"};
  c->allow_methods = {"*"};
  c->allow_headers = {"*"};
  c->max_age_s = -1;
  pol.cors = c;
  Eval e;
  Req r = preflight("https://x.test", "PATCH", "authorization, X-Custom");
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.reason, "cors_preflight");
  // With credentials a literal "*" is no wildcard: the origin, method and names are echoed.
  EXPECT_EQ(o.response_headers,
            "access-control-allow-origin: https://x.test\r\n"
            "access-control-allow-credentials: true\r\n"
            "access-control-allow-methods: PATCH\r\n"
            "access-control-allow-headers: authorization, x-custom\r\n"
            "vary: origin\r\n");
  Req actual;
  actual.h("origin", "https://x.test");
  EXPECT_EQ(e.run(pol, actual).cors_response_headers,
            "access-control-allow-origin: https://x.test\r\n"
            "access-control-allow-credentials: true\r\n"
            "access-control-expose-headers: x-request-id, x-trace\r\n"
            "vary: origin\r\n");
  c->allow_credentials = false;
  Outcome& nocred = e.run(pol, r);
  EXPECT_EQ(nocred.response_headers,
            "access-control-allow-origin: *\r\n"
            "access-control-allow-methods: *\r\n"
            "access-control-allow-headers: authorization, x-custom\r\n"
            "vary: origin\r\n");
}

TEST(EvaluatorCors, DisallowedPreflightIsAnsweredBare) {
  Policy pol = corsPolicy(true);
  Eval e;
  Req bad_origin = preflight("https://evil.com", "GET");
  Outcome& o = e.run(pol, bad_origin);
  EXPECT_EQ(o.action, Action::kRespond);
  EXPECT_EQ(o.status, 200);
  EXPECT_EQ(o.reason, "cors_origin_denied");
  EXPECT_EQ(o.response_headers.find("access-control"), std::string::npos);
  Req bad_method = preflight("https://app.example.com", "DELETE");
  EXPECT_EQ(e.run(pol, bad_method).reason, "cors_origin_denied");
  Req safelisted = preflight("https://app.example.com", "POST");
  EXPECT_EQ(e.run(pol, safelisted).reason, "cors_preflight");
}

TEST(EvaluatorCors, PreflightBeforeAuthAndLocalAnswersCarryCors) {
  Policy pol = jwtPolicy({hsProvider()});
  pol.cors = corsPolicy(true).cors;
  Eval e;
  Req pre = preflight("https://app.example.com", "PUT");
  Outcome& o = e.run(pol, pre);
  EXPECT_EQ(o.reason, "cors_preflight");  // no token needed
  Req actual;
  actual.h("origin", "https://app.example.com");
  Outcome& unauthorized = e.run(pol, actual);
  EXPECT_EQ(unauthorized.status, 401);
  std::string lines = corsHeadersFor(Layers{nullptr, &pol, nullptr}, actual.get());
  EXPECT_EQ(lines,
            "access-control-allow-origin: https://app.example.com\r\n"
            "access-control-allow-credentials: true\r\n"
            "access-control-expose-headers: x-request-id, x-trace\r\n"
            "vary: origin\r\n");
  EXPECT_EQ(unauthorized.cors_response_headers, lines);
  Req other;
  other.h("origin", "https://evil.com");
  EXPECT_EQ(corsHeadersFor(Layers{nullptr, &pol, nullptr}, other.get()), "");
  Req no_origin;
  EXPECT_EQ(corsHeadersFor(Layers{nullptr, &pol, nullptr}, no_origin.get()), "");
  // An OPTIONS without Access-Control-Request-Method is an ordinary request: authenticated.
  Req options;
  options.method = "OPTIONS";
  options.h("origin", "https://app.example.com");
  EXPECT_EQ(e.run(pol, options).status, 401);
}

}  // namespace
}  // namespace portico::security
