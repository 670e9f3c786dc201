// SecurityPolicy in the config compiler: decoding errors, compiled sections, attachment
// precedence, conflicts, key sets, consumers, htpasswd, ext-authz backends, fail-closed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "config/model.h"
#include "config/testing.h"
#include "security/jwks.h"
#include "security/policy.h"

namespace portico::config {
namespace {

using testing::kGateway;

constexpr std::string_view kEcJwks =
    R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})";
constexpr std::string_view kPem = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZD2pulul3gUvkWBka+3NUzeRZLVH
hF4qi6IJNVA3960f9biVT54Gga1QiW74JSLfIRZmh0TwZSn529UWZ8jZ4Q==
-----END PUBLIC KEY-----
)";

// Two routes: "devices" with rules "read" and "write", "plain" with one rule.
constexpr std::string_view kRoutes = R"(apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: api}
spec:
  endpoints: [{address: 10.0.0.1, port: 9001}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: authz}
spec:
  endpoints: [{address: 10.0.0.9, port: 9009}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: devices}
spec:
  parentRefs: [{name: gw}]
  hostnames: [devices.example.com]
  rules:
  - name: read
    matches: [{path: {type: PathPrefix, value: /read}}]
    backendRefs: [{group: portico.dev, kind: Backend, name: api}]
  - name: write
    matches: [{path: {type: PathPrefix, value: /write}}]
    backendRefs: [{group: portico.dev, kind: Backend, name: api}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain}
spec:
  parentRefs: [{name: gw}]
  hostnames: [plain.example.com]
  rules:
  - backendRefs: [{group: portico.dev, kind: Backend, name: api}]
---
)";

// `text` has `part` (a readable message when not).
::testing::AssertionResult has(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not in:\n" << text;
}

class SecurityPolicyTest : public testing::CompilerTest {
 protected:
  std::vector<std::string> compileWith(std::string_view policies) {
    return compileText(std::string(kGateway) + std::string(kRoutes) + std::string(policies));
  }
  const security::Policy* ruleSecurity(std::string_view host, std::string_view path) const {
    const Rule* rule = ruleFor(host, path);
    return rule == nullptr ? nullptr : rule->security();
  }
  std::vector<std::string> errors(const std::vector<std::string>& d) const {
    std::vector<std::string> out;
    for (const std::string& line : d)
      if (line.find(": error: ") != std::string::npos) out.push_back(line);
    return out;
  }
  nlohmann::json ancestors(std::string_view name) const {
    return dumpOf("SecurityPolicy", name)["status"]["ancestors"];
  }
};

TEST_F(SecurityPolicyTest, DecodeErrorsHaveFieldPathsAndLines) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  jwt:
    providers:
    - name: idp
      algorithms: [none, XS256]
      remoteJWKS: {uri: "ftp://idp/jwks", cacheDuration: 300s}
      claimToHeaders: [{claim: tenant, header: connection}]
    - name: idp
      localJWKS: {type: Inline, inline: "{}"}
      remoteJWKS: {uri: "http://idp/jwks"}
  apiKeyAuth:
    consumers: [{name: a, keyHash: "sha256:abc"}]
    colour: blue
  authorization:
    rules:
    - action: Allow
      principal: {clientCIDRs: [10.0.0.0/33, "::1/129", nonsense]}
      operation: {paths: [{type: RegularExpression, value: "(("}]}
  extAuth:
    http: {backendRefs: []}
)");
  EXPECT_EQ(
      errors(d),
      (std::vector<std::string>{
          "F:51:20: error: SecurityPolicy default/bad: spec.jwt.providers[0].algorithms[0]: "
          "Forbidden: \"none\" means an unsigned token, which is never accepted",
          "F:51:26: error: SecurityPolicy default/bad: spec.jwt.providers[0].algorithms[1]: "
          "Unsupported value: \"XS256\": supported values: HS256, HS384, HS512, RS256, RS384, "
          "RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
          "F:52:25: error: SecurityPolicy default/bad: spec.jwt.providers[0].remoteJWKS.uri: "
          "Invalid value: \"ftp://idp/jwks\": must be an http:// or https:// URI",
          "F:53:48: error: SecurityPolicy default/bad: "
          "spec.jwt.providers[0].claimToHeaders[0].header: Invalid value: \"connection\": a "
          "hop-by-hop or framing header cannot carry a credential value",
          "F:54:7: error: SecurityPolicy default/bad: spec.jwt.providers[1]: Invalid value: "
          "exactly one of remoteJWKS, localJWKS",
          "F:54:7: error: SecurityPolicy default/bad: spec.jwt.providers[1].name: Duplicate "
          "value: provider \"idp\" is already defined",
          "F:58:36: error: SecurityPolicy default/bad: spec.apiKeyAuth.consumers[0].keyHash: "
          "Invalid value: must be \"sha256:\" followed by 64 hex digits",
          "F:59:5: error: SecurityPolicy default/bad: spec.apiKeyAuth.colour: unknown field "
          "\"colour\"",
          "F:66:11: error: SecurityPolicy default/bad: spec.extAuth.http: Invalid value: exactly "
          "one backendRef (backendRef, or backendRefs with one item)",
          "F:63:33: error: SecurityPolicy default/bad: "
          "spec.authorization.rules[0].principal.clientCIDRs[0]: Invalid value: \"10.0.0.0/33\": "
          "must be an IPv4 or IPv6 CIDR (10.0.0.0/8, ::1/128) with a prefix length in range",
          "F:63:46: error: SecurityPolicy default/bad: "
          "spec.authorization.rules[0].principal.clientCIDRs[1]: Invalid value: \"::1/129\": "
          "must be an IPv4 or IPv6 CIDR (10.0.0.0/8, ::1/128) with a prefix length in range",
          "F:63:57: error: SecurityPolicy default/bad: "
          "spec.authorization.rules[0].principal.clientCIDRs[2]: Invalid value: \"nonsense\": "
          "must be an IPv4 or IPv6 CIDR (10.0.0.0/8, ::1/128) with a prefix length in range",
          "F:64:60: error: SecurityPolicy default/bad: "
          "spec.authorization.rules[0].operation.paths[0].value: Invalid value: \"((\": "
          "invalid RE2 regular expression: missing ): (("}));
  // Rejected, and fail closed: the route it targets answers 500 instead of being open.
  const Rule* rule = ruleFor("devices.example.com", "/read");
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ(rule->filterError(), "SecurityPolicy default/bad is invalid\n");
  EXPECT_EQ(rule->security(), nullptr);
  nlohmann::json conditions = dumpOf("SecurityPolicy", "bad")["status"]["conditions"];
  EXPECT_EQ(conditions[0]["status"], "False");
  EXPECT_EQ(conditions[0]["reason"], "Invalid");
  EXPECT_EQ(ancestors("bad")[0]["conditions"][0]["status"], "False");
  // Other routes are untouched.
  EXPECT_EQ(ruleFor("plain.example.com", "/")->filterError(), "");
}

TEST_F(SecurityPolicyTest, MoreDecodeErrors) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  overrides: {cors: {allowOrigins: ["*"]}}
  basicAuth: {users: {name: h}, htpasswdFile: x}
  cors: {allowOrigins: ["https://a.com/path"], allowOriginRegexes: ["[z"], maxAge: 5parsecs,
         exposeHeaders: [x-ok, "x bad"], allowMethods: [GET, get]}
  jwt:
    providers:
    - name: p
      localJWKS: {type: Elsewhere}
      clockSkew: 2h
      extractFrom: {headers: [{name: "bad header"}]}
)");
  std::string all = joined(errors(d));
  EXPECT_TRUE(has(all,
                  "F:48:14: error: SecurityPolicy default/bad: spec.overrides: "
                  "Forbidden: overrides are for policies that target Gateways only"));
  EXPECT_TRUE(has(all, "spec.basicAuth: Invalid value: exactly one of users, htpasswdFile"));
  EXPECT_TRUE(has(all, "spec.cors.allowOrigins[0]: Invalid value: \"https://a.com/path\""));
  EXPECT_TRUE(has(all, "spec.cors.allowOriginRegexes[0]: Invalid value: \"[z\""));
  EXPECT_TRUE(has(all, "spec.cors.maxAge: "));
  EXPECT_TRUE(has(all, "spec.cors.exposeHeaders[1]: Invalid value: \"x bad\""));
  EXPECT_TRUE(has(all,
                  "spec.cors.allowMethods[1]: Invalid value: \"get\": must be an "
                  "upper-case HTTP method"));
  EXPECT_TRUE(has(all,
                  "spec.jwt.providers[0].localJWKS.type: Unsupported value: "
                  "\"Elsewhere\""));
  EXPECT_TRUE(has(all, "spec.jwt.providers[0].clockSkew: Invalid value: at most 1h"));
  EXPECT_TRUE(has(all,
                  "spec.jwt.providers[0].extractFrom.headers[0].name: Invalid value: "
                  "\"bad header\""));
}

TEST_F(SecurityPolicyTest, BadTargetsRejectTheWholePolicy) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: portico.dev, kind: Backend, name: api}]
  cors: {allowOrigins: ["*"]}
)");
  EXPECT_EQ(errors(d),
            (std::vector<std::string>{"F:47:43: error: SecurityPolicy default/bad: "
                                      "spec.targetRefs[0]: Unsupported value: portico.dev/Backend: "
                                      "targetRefs must name a gateway.networking.k8s.io Gateway, "
                                      "HTTPRoute or GRPCRoute"}));
}

std::string jwtPolicy(std::string_view name, std::string_view target, std::string_view provider,
                      std::string_view created = "") {
  std::string out = "apiVersion: portico.dev/v1alpha1\nkind: SecurityPolicy\nmetadata: {name: " +
                    std::string(name);
  if (!created.empty()) out += ", creationTimestamp: \"" + std::string(created) + "\"";
  out += "}\nspec:\n  targetRefs: [" + std::string(target) +
         "]\n  jwt:\n    providers:\n    - name: " + std::string(provider) +
         "\n      remoteJWKS: {uri: \"http://127.0.0.1:1/" + std::string(provider) + "\"}\n---\n";
  return out;
}

constexpr std::string_view kToGateway =
    "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}";
constexpr std::string_view kToDevices =
    "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}";
constexpr std::string_view kToWrite =
    "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: write}";

TEST_F(SecurityPolicyTest, RuleBeatsRouteBeatsGatewayDefaults) {
  std::vector<std::string> d = compileWith(jwtPolicy("gw-policy", kToGateway, "gwidp") +
                                           jwtPolicy("route-policy", kToDevices, "routeidp") +
                                           jwtPolicy("rule-policy", kToWrite, "ruleidp") +
                                           R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: route-cors}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  cors: {allowOrigins: ["https://app.example.com"], maxAge: 600s}
  clientIPDetection: {xForwardedFor: {numTrustedHops: 2}}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const Port* p = port(8080);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(p->settings.security_defaults, nullptr);
  EXPECT_EQ(p->settings.security_overrides, nullptr);
  EXPECT_EQ(p->settings.security_defaults->jwt->providers[0].name, "gwidp");
  EXPECT_EQ(p->settings.security_defaults->sources,
            (std::vector<std::string>{"jwt: SecurityPolicy default/gw-policy (Gateway default)"}));

  const security::Policy* read = ruleSecurity("devices.example.com", "/read");
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->jwt->providers[0].name, "routeidp");
  EXPECT_EQ(read->cors->max_age_s, 600);
  EXPECT_TRUE(read->xff_set);
  EXPECT_EQ(read->xff_trusted_hops, 2u);
  EXPECT_EQ(read->sources,
            (std::vector<std::string>{
                "jwt: SecurityPolicy default/route-policy (HTTPRoute default)",
                "cors: SecurityPolicy default/route-cors (HTTPRoute default)",
                "clientIPDetection: SecurityPolicy default/route-cors (HTTPRoute default)"}));
  const security::Policy* write = ruleSecurity("devices.example.com", "/write");
  ASSERT_NE(write, nullptr);
  EXPECT_EQ(write->jwt->providers[0].name, "ruleidp");
  EXPECT_NE(write->cors, nullptr);  // the route's, for the sections the rule policy leaves
  EXPECT_EQ(write->sources[0], "jwt: SecurityPolicy default/rule-policy (rule write default)");
  EXPECT_EQ(ruleSecurity("plain.example.com", "/"), nullptr);  // only the Gateway's defaults

  // Every remote URI the snapshot uses, for the fetcher; an empty key set until fetched.
  ASSERT_EQ(snap().jwks_sources.size(), 3u);
  EXPECT_EQ(snap().jwks_sources[0].uri, "http://127.0.0.1:1/gwidp");
  EXPECT_EQ(snap().jwks_sources[0].refresh_ms, 300'000u);
  EXPECT_TRUE(write->jwt->providers[0].verifier->keys()->empty());
  EXPECT_EQ(write->jwt->providers[0].remote_jwks_uri, "http://127.0.0.1:1/ruleidp");
  // Provider uids are unique.
  EXPECT_NE(write->jwt->providers[0].uid, read->jwt->providers[0].uid);
  EXPECT_NE(read->jwt->providers[0].uid, 0u);
  for (std::string name : {"gw-policy", "route-policy", "rule-policy"})
    EXPECT_EQ(ancestors(name)[0]["conditions"][0]["status"], "True") << name;
  EXPECT_EQ(ancestors("rule-policy")[0]["ancestorRef"]["sectionName"], "write");
}

TEST_F(SecurityPolicyTest, GatewayOverridesGoToThePort) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: gw}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  cors: {allowOrigins: ["*"]}
  overrides:
    authorization:
      defaultAction: Allow
      rules:
      - {name: no-lab, action: Deny, principal: {clientCIDRs: ["10.1.2.3/8"]}}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const Port* p = port(8080);
  ASSERT_NE(p->settings.security_overrides, nullptr);
  const security::Authorization& a = *p->settings.security_overrides->authorization;
  EXPECT_TRUE(a.default_allow);
  ASSERT_EQ(a.rules.size(), 1u);
  EXPECT_FALSE(a.rules[0].allow);
  ASSERT_EQ(a.rules[0].client_cidrs.size(), 1u);
  EXPECT_EQ(a.rules[0].client_cidrs[0].prefix, 8);
  EXPECT_EQ(a.rules[0].client_cidrs[0].addr[1], 0);  // host bits cleared
  EXPECT_EQ(
      p->settings.security_overrides->sources,
      (std::vector<std::string>{"authorization: SecurityPolicy default/gw (Gateway override)"}));
  EXPECT_EQ(p->settings.security_defaults->sources,
            (std::vector<std::string>{"cors: SecurityPolicy default/gw (Gateway default)"}));
}

TEST_F(SecurityPolicyTest, OlderPolicyWinsAConflict) {
  std::vector<std::string> d =
      compileWith(jwtPolicy("young", kToDevices, "young", "2024-05-02T00:00:00Z") +
                  jwtPolicy("old", kToDevices, "old", "2024-05-01T00:00:00Z"));
  EXPECT_TRUE(has(joined(d),
                  "warning: SecurityPolicy default/young: spec.targetRefs[0]: "
                  "Conflicted: sections already set for this target by an older "
                  "policy: jwt (SecurityPolicy default/old); ignored"));
  EXPECT_EQ(ruleSecurity("devices.example.com", "/read")->jwt->providers[0].name, "old");
  nlohmann::json young = ancestors("young")[0]["conditions"];
  ASSERT_EQ(young.size(), 2u);
  EXPECT_EQ(young[1]["type"], "Conflicted");
  EXPECT_EQ(young[1]["status"], "True");
  EXPECT_EQ(ancestors("old")[0]["conditions"].size(), 1u);
}

TEST_F(SecurityPolicyTest, TargetNotFound) {
  std::vector<std::string> d = compileWith(
      jwtPolicy("p", "{group: gateway.networking.k8s.io, kind: GRPCRoute, name: devices}", "idp"));
  EXPECT_TRUE(has(joined(d),
                  "Accepted=False/TargetNotFound: GRPCRoute default/devices "
                  "not found"));
  EXPECT_EQ(ruleSecurity("devices.example.com", "/read"), nullptr);
}

TEST_F(SecurityPolicyTest, LocalKeysInlineFileAndPem) {
  dir_.write("keys/jwks.json", kEcJwks);
  dir_.write("keys/pub.pem", kPem);
  std::vector<std::string> d = compileWith(R"(apiVersion: v1
kind: Secret
metadata: {name: jwks}
stringData:
  jwks.json: '{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h"}]}'
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  jwt:
    providers:
    - name: inline
      issuer: https://idp.example.com
      audiences: [devices-api]
      localJWKS: {type: Inline, inline: ')" +
                                           std::string(kEcJwks) + R"('}
      clockSkew: 30s
      requiredClaims: [{name: plan, values: [premium]}]
    - name: file
      algorithms: [ES256]
      localJWKS: {type: File, file: keys/jwks.json}
    - name: pem
      localJWKS: {type: File, file: keys/pub.pem}
    - name: secret
      localJWKS: {type: ValueRef, valueRef: {kind: Secret, name: jwks}}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const security::Policy* p = ruleSecurity("devices.example.com", "/read");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->jwt->providers.size(), 4u);
  const auto& inline_p = p->jwt->providers[0];
  EXPECT_EQ(inline_p.verifier->keys()->keys().size(), 1u);
  EXPECT_EQ(inline_p.verifier->keys()->keys()[0].kid, "k1");
  EXPECT_EQ(inline_p.verifier->options().issuer, "https://idp.example.com");
  EXPECT_EQ(inline_p.verifier->options().clock_skew_seconds, 30);
  EXPECT_EQ(inline_p.verifier->options().required_claims[0].values[0], "premium");
  EXPECT_TRUE(inline_p.verifier->options().algorithms.contains(security::Alg::kES256));
  EXPECT_FALSE(inline_p.verifier->options().algorithms.contains(security::Alg::kHS256));
  // Default extraction: Authorization: Bearer.
  EXPECT_EQ(inline_p.sources[0].name, "authorization");
  EXPECT_EQ(inline_p.sources[0].prefix, "Bearer ");
  EXPECT_TRUE(inline_p.remote_jwks_uri.empty());
  const auto& file_p = p->jwt->providers[1];
  EXPECT_TRUE(file_p.verifier->options().algorithms.contains(security::Alg::kES256));
  EXPECT_FALSE(file_p.verifier->options().algorithms.contains(security::Alg::kRS256));
  EXPECT_EQ(p->jwt->providers[2].verifier->keys()->keys()[0].type, security::KeyType::kEc);
  // An oct key set allows HS* by default.
  EXPECT_TRUE(p->jwt->providers[3].verifier->options().algorithms.contains(security::Alg::kHS256));
  EXPECT_TRUE(snap().jwks_sources.empty());
}

TEST_F(SecurityPolicyTest, BadKeysFailClosed) {
  dir_.write("empty.json", R"({"keys":[{"kty":"foo"}]})");
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: read}]
  jwt:
    providers:
    - name: skipped
      localJWKS: {type: File, file: empty.json}
    - name: missing
      localJWKS: {type: File, file: nowhere.json}
    - name: garbage
      localJWKS: {type: Inline, inline: "not json"}
)");
  std::vector<std::string> e = errors(d);
  ASSERT_EQ(e.size(), 3u) << joined(d);
  EXPECT_EQ(e[0],
            "F:51:37: error: SecurityPolicy default/p: spec.jwt.providers[0].localJWKS.file: "
            "Invalid value: no usable key: keys[0] unsupported \"kty\"");
  EXPECT_TRUE(has(e[1], "spec.jwt.providers[1].localJWKS.file: Invalid value: cannot read "));
  EXPECT_TRUE(has(e[2],
                  "spec.jwt.providers[2].localJWKS.inline: Invalid value: not a "
                  "usable JWKS: "));
  EXPECT_EQ(ruleFor("devices.example.com", "/read")->filterError(),
            "SecurityPolicy default/p is invalid\n");
  EXPECT_EQ(ruleFor("devices.example.com", "/write")->filterError(), "");  // not targeted
  EXPECT_TRUE(has(joined(d),
                  "fail closed: SecurityPolicy default/p is invalid: the "
                  "requests it covers answer 500"));
  EXPECT_EQ(ancestors("p")[0]["conditions"][0]["status"], "False");
  EXPECT_EQ(dumpOf("SecurityPolicy", "p")["status"]["conditions"][0]["reason"], "Invalid");
}

TEST_F(SecurityPolicyTest, UselessCombinationsWarn) {
  dir_.write("u.htpasswd", "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  jwt:
    providers:
    - name: idp
      algorithms: [RS256]
      localJWKS: {type: Inline, inline: ')" +
                                           std::string(kEcJwks) + R"('}
  basicAuth: {htpasswdFile: u.htpasswd}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  EXPECT_TRUE(has(joined(d),
                  "warning: SecurityPolicy default/p: spec.basicAuth: jwt provider "
                  "\"idp\" also reads the Authorization header"));
  EXPECT_TRUE(has(joined(d),
                  "spec.jwt.providers[0].localJWKS.inline: no key serves an "
                  "algorithm of the provider's algorithms: every token fails"));
}

TEST_F(SecurityPolicyTest, InvalidGatewayPolicyDeniesEverything) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  basicAuth: {htpasswdFile: missing.htpasswd}
)");
  ASSERT_EQ(errors(d).size(), 1u);
  const Port* p = port(8080);
  ASSERT_NE(p->settings.security_overrides, nullptr);
  ASSERT_NE(p->settings.security_overrides->authorization, nullptr);
  EXPECT_FALSE(p->settings.security_overrides->authorization->default_allow);
  EXPECT_TRUE(p->settings.security_overrides->authorization->rules.empty());
  EXPECT_TRUE(has(p->settings.security_overrides->sources[0], "every request is denied"));
}

TEST_F(SecurityPolicyTest, RemoteKeysFromTheFetcher) {
  std::string text =
      std::string(kGateway) + std::string(kRoutes) + jwtPolicy("p", kToDevices, "idp");
  file_ = dir_.write("config.yaml", text);
  load_ = loadPath(file_);
  security::JwtResult<std::shared_ptr<const security::KeySet>> keys = security::parseJwks(kEcJwks);
  ASSERT_TRUE(keys.ok());
  JwksKeySets fetched{{"http://127.0.0.1:1/idp", keys.value()}};
  CompileCache cache;
  CompileOptions options;
  options.cache = &cache;
  options.jwks = &fetched;
  result_ = compile(load_.resources, ids_, 1, options);
  const security::JwtProvider& provider =
      ruleSecurity("devices.example.com", "/read")->jwt->providers[0];
  EXPECT_EQ(provider.verifier->keys(), keys.value());  // shared, not copied
  EXPECT_EQ(provider.remote_jwks_uri, "http://127.0.0.1:1/idp");
  uint64_t uid = provider.uid;

  // The same inputs: routes reused from the cache.
  result_ = compile(load_.resources, ids_, 2, options);
  EXPECT_EQ(result_.timings.routes_reused, 2u);
  EXPECT_EQ(ruleSecurity("devices.example.com", "/read")->jwt->providers[0].uid, uid);

  // A new key set: everything compiled again, a new provider (new uid: no cached verdicts).
  security::JwtResult<std::shared_ptr<const security::KeySet>> pem =
      security::parsePemPublicKey(kPem);
  ASSERT_TRUE(pem.ok());
  fetched["http://127.0.0.1:1/idp"] = pem.value();
  result_ = compile(load_.resources, ids_, 3, options);
  EXPECT_EQ(result_.timings.routes_reused, 0u);
  const security::JwtProvider& after =
      ruleSecurity("devices.example.com", "/read")->jwt->providers[0];
  EXPECT_EQ(after.verifier->keys(), pem.value());
  EXPECT_NE(after.uid, uid);
}

TEST_F(SecurityPolicyTest, ChangedKeyFileIsReadAgainDespiteTheCache) {
  dir_.write("keys.json", kEcJwks);
  std::string text =
      std::string(kGateway) + std::string(kRoutes) + R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  jwt:
    providers:
    - {name: idp, localJWKS: {type: File, file: keys.json}}
)";
  file_ = dir_.write("config.yaml", text);
  load_ = loadPath(file_);
  CompileCache cache;
  CompileOptions options;
  options.cache = &cache;
  result_ = compile(load_.resources, ids_, 1, options);
  auto kid = [&] {
    return ruleSecurity("devices.example.com", "/read")
        ->jwt->providers[0]
        .verifier->keys()
        ->keys()[0]
        .kid;
  };
  EXPECT_EQ(kid(), "k1");
  result_ = compile(load_.resources, ids_, 2, options);
  EXPECT_EQ(result_.timings.routes_reused, 2u);  // nothing changed
  dir_.write("keys.json", kPem);                 // rotated: a PEM key has no kid
  result_ = compile(load_.resources, ids_, 3, options);
  EXPECT_EQ(result_.timings.routes_reused, 0u);
  EXPECT_EQ(kid(), "");
  std::remove((dir_.path() + "/keys.json").c_str());  // gone: the policy fails closed
  result_ = compile(load_.resources, ids_, 4, options);
  EXPECT_EQ(result_.timings.routes_reused, 0u);
  EXPECT_EQ(ruleFor("devices.example.com", "/read")->filterError(),
            "SecurityPolicy default/p is invalid\n");
}

TEST_F(SecurityPolicyTest, ApiKeysFromConsumersFileAndSecret) {
  dir_.write("sub/consumers.yaml", R"(- name: file-app
  key: k-file
  metadata: {tenant: globex}
- name: hashed
  keyHash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  disabled: true
)");
  std::vector<std::string> d = compileWith(R"(apiVersion: v1
kind: Secret
metadata: {name: api-keys}
data:
  secret-app: ay1zZWNyZXQ=
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  apiKeyAuth:
    credentialRefs: [{kind: Secret, name: api-keys}]
    consumers:
    - {name: acme-app, key: k-acme-123, metadata: {tenant: acme, plan: premium}}
    consumersFile: sub/consumers.yaml
    extractFrom: [{headers: [X-API-Key]}, {params: [api_key]}]
    forwardClientIDHeader: X-Consumer
    metadataToHeaders: [{metadata: tenant, header: x-tenant}]
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const security::ApiKeyAuth& a = *ruleSecurity("devices.example.com", "/read")->api_key;
  ASSERT_EQ(a.consumers.size(), 4u);
  EXPECT_TRUE(std::is_sorted(a.consumers.begin(), a.consumers.end(),
                             [](const auto& x, const auto& y) { return x.digest < y.digest; }));
  auto find = [&](std::string_view name) -> const security::ApiConsumer* {
    for (const security::ApiConsumer& c : a.consumers)
      if (c.name == name) return &c;
    return nullptr;
  };
  ASSERT_NE(find("acme-app"), nullptr);
  EXPECT_EQ(find("acme-app")->digest, apiKeyDigest("k-acme-123"));
  EXPECT_EQ(find("acme-app")->metadata[1],
            (std::pair<std::string, std::string>{"plan", "premium"}));
  ASSERT_NE(find("secret-app"), nullptr);
  EXPECT_EQ(find("secret-app")->digest, apiKeyDigest("k-secret"));  // base64 data decoded
  ASSERT_NE(find("file-app"), nullptr);
  EXPECT_EQ(find("file-app")->digest, apiKeyDigest("k-file"));
  ASSERT_NE(find("hashed"), nullptr);
  EXPECT_TRUE(find("hashed")->disabled);
  EXPECT_EQ(find("hashed")->digest, security::KeyDigest{});
  // SHA-256("k-acme-123") as hex digest check of the known value for "abc".
  security::KeyDigest abc = apiKeyDigest("abc");
  EXPECT_EQ(abc[0], 0xba);
  EXPECT_EQ(abc[31], 0xad);
  ASSERT_EQ(a.sources.size(), 2u);
  EXPECT_EQ(a.sources[0].name, "x-api-key");  // lowercased
  EXPECT_EQ(a.sources[1].kind, security::CredentialSource::Kind::kQuery);
  EXPECT_EQ(a.forward_client_id_header, "x-consumer");
  EXPECT_TRUE(a.sanitize);
}

TEST_F(SecurityPolicyTest, ApiKeyErrors) {
  dir_.write("consumers.yaml", "- name: x\n  key: k-dup\n- name: y\n  kee: 1\n");
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices}]
  apiKeyAuth:
    credentialRefs: [{kind: Secret, name: nowhere}]
    consumers: [{name: a, key: k-dup}]
    consumersFile: consumers.yaml
)");
  std::string all = joined(errors(d));
  EXPECT_TRUE(has(all,
                  "spec.apiKeyAuth.credentialRefs[0]: ResolvedRefs=False/"
                  "InvalidSecretRef: Secret default/nowhere not found"));
  EXPECT_TRUE(has(all, "spec.apiKeyAuth.consumersFile: " + dir_.path() +
                           "/consumers.yaml:4:3: [1].kee: unknown field \"kee\""));
  EXPECT_TRUE(has(all, "Duplicate value: consumer"));
  EXPECT_TRUE(has(all, "has the same key as consumer"));
  EXPECT_EQ(ruleFor("devices.example.com", "/read")->filterError(),
            "SecurityPolicy default/p is invalid\n");
  nlohmann::json cond = ancestors("p")[0]["conditions"];
  EXPECT_EQ(cond[1]["type"], "ResolvedRefs");
  EXPECT_EQ(cond[1]["status"], "False");
}

TEST_F(SecurityPolicyTest, HtpasswdFromSecretAndFile) {
  dir_.write("users.htpasswd", "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
  std::vector<std::string> d = compileWith(R"(apiVersion: v1
kind: Secret
metadata: {name: htpasswd}
stringData:
  .htpasswd: |
    # comment
    zoe:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/
    alice:$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: secret}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: read}]
  basicAuth: {users: {kind: Secret, name: htpasswd}, realm: lab, forwardUsernameHeader: X-User}
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: file}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: write}]
  basicAuth: {htpasswdFile: users.htpasswd}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const security::BasicAuth& b = *ruleSecurity("devices.example.com", "/read")->basic;
  ASSERT_EQ(b.users.size(), 2u);
  EXPECT_EQ(b.users[0].name, "alice");  // sorted by name
  EXPECT_EQ(b.users[0].scheme, security::HtpasswdUser::Scheme::kBcrypt);
  EXPECT_EQ(b.users[1].scheme, security::HtpasswdUser::Scheme::kApr1);
  EXPECT_EQ(b.realm, "lab");
  EXPECT_EQ(b.forward_username_header, "x-user");
  const security::BasicAuth& f = *ruleSecurity("devices.example.com", "/write")->basic;
  ASSERT_EQ(f.users.size(), 1u);
  EXPECT_EQ(f.users[0].scheme, security::HtpasswdUser::Scheme::kSha1);
  EXPECT_EQ(f.realm, "portico");
}

TEST_F(SecurityPolicyTest, HtpasswdErrorsPointAtTheField) {
  std::vector<std::string> d = compileWith(R"(apiVersion: v1
kind: Secret
metadata: {name: htpasswd}
stringData:
  .htpasswd: "ok:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nnocolon\n"
---
apiVersion: v1
kind: Secret
metadata: {name: other}
stringData: {x: y}
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: read}]
  basicAuth: {users: {kind: Secret, name: htpasswd}}
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: q}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: write}]
  basicAuth: {users: {kind: Secret, name: other}}
)");
  std::vector<std::string> e = errors(d);
  ASSERT_EQ(e.size(), 2u) << joined(d);
  EXPECT_TRUE(has(e[0],
                  "SecurityPolicy default/p: spec.basicAuth.users: Invalid value: "
                  "htpasswd line 2: "));
  EXPECT_TRUE(has(e[1],
                  "SecurityPolicy default/q: spec.basicAuth.users: "
                  "ResolvedRefs=False/InvalidSecretRef: Secret default/other has no "
                  "key \".htpasswd\""));
  EXPECT_NE(ruleFor("devices.example.com", "/read")->filterError(), "");
  EXPECT_NE(ruleFor("devices.example.com", "/write")->filterError(), "");
}

TEST_F(SecurityPolicyTest, ExtAuthBackendResolution) {
  std::vector<std::string> d = compileWith(R"(apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: ok}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: read}]
  extAuth:
    http:
      backendRefs: [{group: portico.dev, kind: Backend, name: authz}]
      path: /check
      headersToBackend: [X-User-Id]
    headersToExtAuth: [Authorization]
    timeout: 300ms
    cache: {ttl: 10s}
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: missing}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: devices, sectionName: write}]
  extAuth:
    http: {backendRef: {group: portico.dev, kind: Backend, name: nowhere}}
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const security::ExtAuthz& e = *ruleSecurity("devices.example.com", "/read")->ext_authz;
  ASSERT_NE(e.backend, nullptr);
  EXPECT_EQ(e.backend->name, "authz");
  EXPECT_EQ(e.backend->endpoints[0].authority, "10.0.0.9:9009");
  EXPECT_EQ(e.path, "/check");
  EXPECT_EQ(e.headers_to_backend, std::vector<std::string>{"x-user-id"});
  EXPECT_EQ(e.headers_to_service, std::vector<std::string>{"authorization"});
  EXPECT_EQ(e.timeout_ms, 300u);
  EXPECT_EQ(e.cache_ttl_ms, 10'000u);
  EXPECT_EQ(e.cache_max_entries, 1000u);
  EXPECT_FALSE(e.fail_open);
  // Unresolved: ResolvedRefs=False, and the rule answers 500 (fail closed).
  EXPECT_TRUE(has(joined(d),
                  "spec.extAuth.http.backendRef: ResolvedRefs=False/"
                  "BackendNotFound: Backend default/nowhere not found"));
  const Rule* write = ruleFor("devices.example.com", "/write");
  EXPECT_TRUE(has(write->filterError(), "extAuth backend not resolved"));
  nlohmann::json cond = ancestors("missing")[0]["conditions"];
  EXPECT_EQ(cond[0]["status"], "True");
  EXPECT_EQ(cond[1]["type"], "ResolvedRefs");
  EXPECT_EQ(cond[1]["reason"], "BackendNotFound");
}

TEST_F(SecurityPolicyTest, GrpcRouteTargetAndClaimRouting) {
  std::vector<std::string> d = compileWith(R"(apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - backendRefs: [{group: portico.dev, kind: Backend, name: api}]
---
apiVersion: portico.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GRPCRoute, name: g}]
  jwt:
    optional: true
    providers:
    - name: idp
      remoteJWKS: {uri: "https://idp.example.com/jwks", cacheDuration: 60s}
      extractFrom: {headers: [{name: x-token, valuePrefix: "Bearer "}], params: [access_token], cookies: [session]}
      claimToHeaders: [{claim: tenant, header: X-Tenant}]
      recomputeRoute: true
      forward: true
)");
  EXPECT_TRUE(errors(d).empty()) << joined(d);
  const security::Policy* p = ruleSecurity("grpc.example.com", "/pkg.Svc/Method");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->jwt->optional);
  const security::JwtProvider& idp = p->jwt->providers[0];
  ASSERT_EQ(idp.sources.size(), 3u);
  EXPECT_EQ(idp.sources[0].name, "x-token");
  EXPECT_EQ(idp.sources[2].kind, security::CredentialSource::Kind::kCookie);
  EXPECT_EQ(idp.claim_to_headers[0].header, "x-tenant");
  EXPECT_TRUE(idp.recompute_route);
  EXPECT_TRUE(idp.forward);
  EXPECT_EQ(p->sources[0], "jwt: SecurityPolicy default/p (GRPCRoute default)");
  ASSERT_EQ(snap().jwks_sources.size(), 1u);
  EXPECT_EQ(snap().jwks_sources[0].refresh_ms, 60'000u);
}

}  // namespace
}  // namespace portico::config
