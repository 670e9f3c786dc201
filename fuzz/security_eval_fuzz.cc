// Fuzz target: request heads against one fixed SecurityPolicy with every section (CORS, JWT
// from a header, a query parameter and a cookie, API keys, basic auth, access rules with
// CIDRs behind one trusted X-Forwarded-For hop, claims, scopes and paths, ext_authz in the
// defaults layer). Each input is evaluated twice on one WorkerState with small caches (the
// second run takes the cache paths and evicts), with and without a trace; the query edits
// are applied with removeQueryParams. Whatever the bytes: no crash, no leak, no read out of
// bounds, and an answer that is consistent (a local answer has a status and a reason).
//
// Input format: fields separated by 0x00 bytes, in order
//   method \0 path \0 query \0 peer (one byte: its low bit picks IPv4 10.1.2.3 or IPv6 ::1)
//   \0 name1 \0 value1 \0 ... name8 \0 value8
// Missing fields are empty; bytes after the 8th header value belong to that value.
// The JWT secret is kSecret below, so seeds can carry valid HS256 tokens.
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <re2/re2.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "security/evaluator.h"
#include "security/htpasswd.h"
#include "security/jwks.h"

namespace {

using namespace portico;
using namespace portico::security;

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef-0123456789";

KeyDigest sha256(std::string_view s) {
  KeyDigest d{};
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

struct Fixture {
  Policy rule;
  Policy defaults;
  Layers layers;

  Fixture() {
    auto keys = hmacKeySet(kSecret, "k1");
    if (!keys.ok()) std::abort();
    VerifierOptions o;
    o.algorithms = {Alg::kHS256, Alg::kHS384, Alg::kHS512};
    o.required_claims = {{"sub", {}}};
    JwtProvider p;
    p.name = "idp";
    p.uid = 1;
    p.verifier = std::make_shared<Verifier>(o, *keys);
    p.sources = {{CredentialSource::Kind::kHeader, "authorization", "Bearer "},
                 {CredentialSource::Kind::kQuery, "access_token", ""},
                 {CredentialSource::Kind::kCookie, "session", ""}};
    p.claim_to_headers = {{"tenant", "x-tenant"}, {"org.plan", "x-plan"}, {"/roles", "x-roles"}};
    p.recompute_route = true;
    JwtProvider q = p;
    q.name = "second";
    q.uid = 2;
    q.sources = {{CredentialSource::Kind::kHeader, "x-token", ""}};
    q.remote_jwks_uri = "http://127.0.0.1:1/jwks.json";
    auto jwt = std::make_shared<JwtAuth>();
    jwt->providers = {p, q};
    jwt->optional = true;
    rule.jwt = jwt;

    auto ak = std::make_shared<ApiKeyAuth>();
    ak->sources = {{CredentialSource::Kind::kHeader, "x-api-key", ""},
                   {CredentialSource::Kind::kQuery, "api_key", ""}};
    ak->consumers = {{"acme", sha256("k-acme"), false, {{"tenant", "acme"}}},
                     {"old", sha256("k-old"), true, {}}};
    std::sort(ak->consumers.begin(), ak->consumers.end(),
              [](const ApiConsumer& a, const ApiConsumer& b) { return a.digest < b.digest; });
    ak->forward_client_id_header = "x-consumer";
    ak->metadata_to_headers = {{"tenant", "x-key-tenant"}};
    rule.api_key = ak;

    auto basic = std::make_shared<BasicAuth>();
    auto users = parseHtpasswd(
        "alice:$apr1$SWr8P11q$JxB3tS1JHcz.d.zBQFg8C/\n"  // p@ss:word
        "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",       // secret
        nullptr);
    if (!users) std::abort();
    basic->users = *users;
    basic->forward_username_header = "x-user";
    rule.basic = basic;

    auto cors = std::make_shared<Cors>();
    cors->allow_origins = {"https://app.example.com", "https://*.example.com"};
    cors->allow_origin_regexes = {std::make_shared<re2::RE2>("https://[a-z]+\\.example\\.org")};
    cors->allow_methods = {"GET", "PUT", "*"};
    cors->allow_headers = {"x-tenant", "*"};
    cors->expose_headers = {"x-request-id"};
    cors->max_age_s = 600;
    cors->allow_credentials = true;
    rule.cors = cors;

    auto authz = std::make_shared<Authorization>();
    AccessRule deny;
    deny.name = "deny-admin";
    deny.allow = false;
    deny.paths = {{PathCondition::Kind::kPrefix, "/admin", nullptr},
                  {PathCondition::Kind::kRegex, "/v[0-9]+/internal/.*",
                   std::make_shared<re2::RE2>("/v[0-9]+/internal/.*")}};
    AccessRule lab;
    lab.name = "lab";
    Cidr v4;
    v4.family = AF_INET;
    v4.prefix = 8;
    v4.addr[0] = 10;
    Cidr v6;
    v6.family = AF_INET6;
    v6.prefix = 128;
    v6.addr[15] = 1;
    lab.client_cidrs = {v4, v6};
    AccessRule readers;
    readers.name = "readers";
    readers.claims = {{"tenant", {"acme"}}, {"roles", {"reader"}}};
    readers.scopes = {"read"};
    readers.methods = {"GET", "HEAD"};
    AccessRule consumers;
    consumers.name = "consumers";
    consumers.consumers = {"acme", "alice"};
    authz->rules = {deny, lab, readers, consumers};
    rule.authorization = authz;
    rule.xff_trusted_hops = 1;
    rule.xff_set = true;

    defaults.ext_authz = std::make_shared<ExtAuthz>();
    defaults.cors = std::make_shared<Cors>();  // shadowed by the rule's
    layers = Layers{nullptr, &rule, &defaults};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture* fx = new Fixture;
  static WorkerState* state = new WorkerState(8, 4);
  if (size > 32 * 1024) return 0;

  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view fields[4 + 16];
  size_t n = 0;
  while (n < 19) {
    size_t z = in.find('\0');
    if (z == std::string_view::npos) break;
    fields[n++] = in.substr(0, z);
    in.remove_prefix(z + 1);
  }
  fields[n++] = in;

  http1::Header headers[8];
  uint32_t count = 0;
  for (size_t i = 4; i + 1 < n && count < 8; i += 2)
    headers[count++] = {fields[i], fields[i + 1], http1::HeaderTag::kOther};

  static const uint8_t kV4[4] = {10, 1, 2, 3};
  static const uint8_t kV6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const bool v6 = !fields[3].empty() && (fields[3][0] & 1);
  Request req;
  req.method = fields[0];
  req.path = fields[1];
  req.query = fields[2];
  req.headers = headers;
  req.header_count = count;
  req.peer_family = v6 ? AF_INET6 : AF_INET;
  req.peer_addr = v6 ? kV6 : kV4;

  Trace trace;
  for (int round = 0; round < 2; ++round) {
    Outcome& out = state->scratch();
    evaluate(fx->layers, req, *state, 1700000000, &out, round == 0 ? &trace : nullptr);
    if (out.action == Outcome::Action::kRespond && (out.status == 0 || out.reason.empty()))
      std::abort();
    if (out.action == Outcome::Action::kExtAuthz && !out.ext_authz) std::abort();
    std::string target = std::string(req.path) + "?" + std::string(req.query);
    (void)removeQueryParams(target, out.remove_query_params);
  }
  (void)corsHeadersFor(fx->layers, req);
  return 0;
}
