// The SecurityPolicy evaluator on hand-built policies: JWT tokens made by PyJWT (the
// test/vectors/jwt vectors) and HS256 tokens signed here, htpasswd hashes written by Apache's
// htpasswd, API keys, access rules, CORS.
#include "security/evaluator.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <re2/re2.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>

#include "security/htpasswd.h"
#include "security/jwks.h"

// Counts operator new calls on this thread while counting is on (the cached-path check).
// new and delete below are a malloc/free pair; GCC sees them inlined into each other.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace

void* operator new(size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
// Every replaceable form that pairs with free(): the library's nothrow and array allocations
// (std::get_temporary_buffer, ...) must not meet the sanitizer's own new.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (g_counting) ++g_allocations;
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace portico::security {
namespace {

using json = nlohmann::json;
using Action = Outcome::Action;

constexpr int64_t kNow = 1700000000;  // the vectors' time; their tokens expire at 1700003600

const json& vectors() {
  static const json doc = [] {
    std::ifstream in(std::string(PORTICO_SOURCE_DIR) + "/test/vectors/jwt/vectors.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return doc;
}

std::string vectorToken(const std::string& name) {
  for (const auto& c : vectors()["cases"])
    if (c["name"] == name) return c["token"];
  ADD_FAILURE() << "no vector " << name;
  return "";
}

std::shared_ptr<const KeySet> mainKeys() {
  auto ks = parseJwks(vectors()["keysets"]["main"]["jwks"].dump());
  EXPECT_TRUE(ks.ok());
  return *ks;
}

std::shared_ptr<const KeySet> emptyKeys() { return *parseJwks(R"({"keys":[]})"); }

const std::string kSecret = "0123456789abcdef0123456789abcdef-evaluator-test";

// An HS256 token over `claims`, signed with kSecret.
std::string hsToken(const json& claims, const std::string& kid = "hs") {
  std::string h, p, sig;
  base64UrlEncode(json{{"alg", "HS256"}, {"kid", kid}}.dump(), h);
  base64UrlEncode(claims.dump(), p);
  std::string input = h + "." + p;
  unsigned char mac[32];
  size_t mac_len = 0;
  EXPECT_TRUE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, kSecret.data(), kSecret.size(),
                        reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                        sizeof mac, &mac_len));
  base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), mac_len), sig);
  return input + "." + sig;
}

uint64_t nextUid() {
  static uint64_t uid = 1000;
  return ++uid;
}

JwtProvider provider(std::string name, std::shared_ptr<const KeySet> keys, VerifierOptions o = {}) {
  JwtProvider p;
  p.name = std::move(name);
  p.uid = nextUid();
  if (o.algorithms.empty()) o.algorithms = AlgSet::all();
  p.verifier = std::make_shared<Verifier>(std::move(o), std::move(keys));
  return p;
}

JwtProvider rsaProvider() {
  VerifierOptions o;
  o.issuer = "https://idp.example.com";
  o.audiences = {"devices-api"};
  return provider("idp", mainKeys(), o);
}

JwtProvider hsProvider() { return provider("hs", *hmacKeySet(kSecret, "hs")); }

Policy jwtPolicy(std::vector<JwtProvider> providers, bool optional = false) {
  auto jwt = std::make_shared<JwtAuth>();
  jwt->providers = std::move(providers);
  jwt->optional = optional;
  Policy p;
  p.jwt = jwt;
  return p;
}

// A request with its headers kept alive.
struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string peer = "192.0.2.10";

  Req& h(std::string n, std::string v) {
    headers.emplace_back(std::move(n), std::move(v));
    return *this;
  }

  const Request& get() {
    fields.clear();
    for (const auto& [n, v] : headers) fields.push_back({n, v, http1::HeaderTag::kOther});
    request.method = method;
    request.path = path;
    request.query = query;
    request.headers = fields.data();
    request.header_count = static_cast<uint32_t>(fields.size());
    if (inet_pton(AF_INET, peer.c_str(), addr) == 1) {
      request.peer_family = AF_INET;
    } else {
      EXPECT_EQ(inet_pton(AF_INET6, peer.c_str(), addr), 1);
      request.peer_family = AF_INET6;
    }
    request.peer_addr = addr;
    return request;
  }

  std::vector<http1::Header> fields;
  Request request;
  uint8_t addr[16] = {};
};

struct Eval {
  WorkerState state{4096, 64};
  Trace trace;

  Outcome& run(const Layers& layers, Req& r, int64_t now = kNow) {
    trace.clear();
    evaluate(layers, r.get(), state, now, &state.scratch(), &trace);
    return state.scratch();
  }
  Outcome& run(const Policy& p, Req& r, int64_t now = kNow) {
    Layers l;
    l.rule = &p;
    return run(l, r, now);
  }
  bool traced(const std::string& needle) const {
    for (const auto& t : trace)
      if (t.find(needle) != std::string::npos) return true;
    return false;
  }
};

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string added(const Outcome& o, const std::string& name) {
  for (const auto& h : o.add_headers)
    if (h.name == name) return h.value;
  return "<none>";
}

Cidr cidr(const std::string& text) {
  Cidr c;
  size_t slash = text.find('/');
  std::string ip = text.substr(0, slash);
  c.prefix = static_cast<uint8_t>(std::stoi(text.substr(slash + 1)));
  c.family = inet_pton(AF_INET, ip.c_str(), c.addr) == 1 ? AF_INET : AF_INET6;
  if (c.family == AF_INET6) {
    EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), c.addr), 1);
  }
  return c;
}

// ---- JWT --------------------------------------------------------------------------------

TEST(EvaluatorJwt, DefaultSourceIsBearerAuthorization) {
  Policy p = jwtPolicy({rsaProvider()});
  Eval e;
  Req r;
  r.h("Authorization", "bearer " + vectorToken("ok RS256"));
  Outcome& o = e.run(p, r);
  EXPECT_EQ(o.action, Action::kContinue);
  ASSERT_NE(o.provider, nullptr);
  EXPECT_EQ(o.provider->name, "idp");
  ASSERT_TRUE(o.claims);
  EXPECT_EQ((*o.claims)["sub"], "device-7");
  EXPECT_TRUE(has(o.remove_headers, "authorization"));  // forward: false
  EXPECT_TRUE(
      e.traced("jwt: provider idp: token from header authorization verified (RS256, kid rsa1)"));
}

TEST(EvaluatorJwt, EverySourceKind) {
  JwtProvider p = hsProvider();
  p.sources = {{CredentialSource::Kind::kHeader, "x-token", "Token "},
               {CredentialSource::Kind::kQuery, "access_token", ""},
               {CredentialSource::Kind::kCookie, "session", ""}};
  Policy pol = jwtPolicy({p});
  std::string tok = hsToken({{"sub", "s"}});
  Eval e;
  {
    Req r;
    r.h("x-token", "Bearer " + tok);  // wrong prefix: not a credential of this source
    EXPECT_EQ(e.run(pol, r).reason, "jwt_missing");
    r.headers.clear();
    r.h("X-Token", "token " + tok);
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.action, Action::kContinue);
    EXPECT_TRUE(has(o.remove_headers, "x-token"));
  }
  {
    Req r;
    r.query = "a=1&access_token=" + tok + "&b=2";
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.action, Action::kContinue);
    EXPECT_TRUE(has(o.remove_query_params, "access_token"));
    EXPECT_TRUE(o.remove_headers.empty());
  }
  {
    Req r;
    r.h("cookie", "a=b").h("Cookie", "theme=dark; session=" + tok + "; x=y");
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.action, Action::kContinue);
    EXPECT_TRUE(o.remove_headers.empty());  // a cookie stays (see dropCredential)
    EXPECT_TRUE(o.remove_query_params.empty());
    EXPECT_TRUE(e.traced("token from cookie session verified"));
  }
  {
    Req r;
    r.query = "xaccess_token=" + tok;  // a different parameter
    r.h("cookie", "xsession=" + tok);
    EXPECT_EQ(e.run(pol, r).reason, "jwt_missing");
  }
}

TEST(EvaluatorJwt, ForwardKeepsTheToken) {
  JwtProvider p = hsProvider();
  p.forward = true;
  Policy pol = jwtPolicy({p});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + hsToken({{"sub", "s"}}));
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  EXPECT_FALSE(has(o.remove_headers, "authorization"));
}

TEST(EvaluatorJwt, MissingInvalidForbiddenAnswers) {
  VerifierOptions o;
  o.required_claims = {{"plan", {"gold"}}};
  Policy pol = jwtPolicy({provider("hs", *hmacKeySet(kSecret, "hs"), o)});
  Eval e;
  Req r;
  Outcome& missing = e.run(pol, r);
  EXPECT_EQ(missing.action, Action::kRespond);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.reason, "jwt_missing");
  EXPECT_EQ(missing.response_headers, "www-authenticate: Bearer realm=\"portico\"\r\n");

  r.h("authorization", "Bearer not.a.token");
  Outcome& bad = e.run(pol, r);
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.reason, "jwt_invalid");
  EXPECT_TRUE(bad.response_headers.starts_with(
      "www-authenticate: Bearer error=\"invalid_token\", error_description=\""))
      << bad.response_headers;

  r.headers.clear();
  r.h("authorization", "Bearer " + hsToken({{"plan", "free"}}));
  Outcome& forbidden = e.run(pol, r);
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(forbidden.reason, "jwt_forbidden");
  EXPECT_EQ(forbidden.response_headers,
            "www-authenticate: Bearer error=\"insufficient_scope\", error_description=\"Jwt "
            "claim plan is not allowed\"\r\n");

  r.headers.clear();
  r.h("authorization", "Bearer " + hsToken({{"plan", "gold"}}));
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
}

TEST(EvaluatorJwt, DescriptionIsQuoteEscaped) {
  VerifierOptions o;
  o.required_claims = {{"a\"b\\c", {}}};
  Policy pol = jwtPolicy({provider("hs", *hmacKeySet(kSecret, "hs"), o)});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + hsToken({{"sub", "s"}}));
  Outcome& out = e.run(pol, r);
  EXPECT_EQ(out.status, 403);
  EXPECT_NE(out.response_headers.find(R"(error_description="Jwt lacks required claim a\"b\\c")"),
            std::string::npos)
      << out.response_headers;
}

TEST(EvaluatorJwt, OptionalPassesWithoutTokenButNotWithABadOne) {
  Policy pol = jwtPolicy({hsProvider()}, /*optional=*/true);
  Eval e;
  Req r;
  Outcome& none = e.run(pol, r);
  EXPECT_EQ(none.action, Action::kContinue);
  EXPECT_EQ(none.provider, nullptr);
  r.h("authorization", "Bearer " + vectorToken("ok RS256"));  // not signed with the secret
  EXPECT_EQ(e.run(pol, r).reason, "jwt_invalid");
}

TEST(EvaluatorJwt, FirstProviderThatVerifiesWins) {
  Policy pol = jwtPolicy({hsProvider(), rsaProvider()});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + vectorToken("ok ES256"));
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  ASSERT_NE(o.provider, nullptr);
  EXPECT_EQ(o.provider->name, "idp");
  EXPECT_TRUE(e.traced("jwt: provider hs: token from header authorization refused"));
}

TEST(EvaluatorJwt, UnknownKidOnRemoteProviderAsksForRefresh) {
  JwtProvider p = rsaProvider();
  p.remote_jwks_uri = "http://127.0.0.1:1/jwks.json";
  Policy pol = jwtPolicy({p});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + vectorToken("wrong kid"));
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.reason, "jwt_invalid");
  EXPECT_EQ(o.refresh_jwks_uri, "http://127.0.0.1:1/jwks.json");
  r.headers.clear();
  r.h("authorization", "Bearer " + vectorToken("tampered payload"));
  EXPECT_EQ(e.run(pol, r).refresh_jwks_uri, "");
  // A local provider never asks.
  Policy local = jwtPolicy({rsaProvider()});
  r.headers.clear();
  r.h("authorization", "Bearer " + vectorToken("wrong kid"));
  EXPECT_EQ(e.run(local, r).refresh_jwks_uri, "");
}

TEST(EvaluatorJwt, ClaimToHeadersReplaceSpoofedHeaders) {
  JwtProvider a = rsaProvider();
  a.claim_to_headers = {{"tenant", "x-tenant"},
                        {"org.plan", "x-plan"},
                        {"roles", "x-roles"},
                        {"absent", "x-absent"},
                        {"org", "x-org"}};
  a.recompute_route = true;
  JwtProvider b = hsProvider();
  b.claim_to_headers = {{"sub", "x-hs-sub"}};
  Policy pol = jwtPolicy({a, b});
  Eval e;
  Req r;
  r.h("x-tenant", "evil")
      .h("x-hs-sub", "evil")
      .h("authorization", "Bearer " + vectorToken("ok PS256"));
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  for (const char* h : {"x-tenant", "x-plan", "x-roles", "x-absent", "x-org", "x-hs-sub"})
    EXPECT_TRUE(has(o.remove_headers, h)) << h;
  EXPECT_EQ(added(o, "x-tenant"), "acme");
  EXPECT_EQ(added(o, "x-plan"), "premium");
  EXPECT_EQ(added(o, "x-roles"), "reader,writer");
  EXPECT_EQ(added(o, "x-absent"), "<none>");
  EXPECT_EQ(added(o, "x-org"), "<none>");  // an object is not a header value
  EXPECT_EQ(o.add_headers.size(), 3u);
  EXPECT_TRUE(o.recompute_route);
  EXPECT_TRUE(e.traced("jwt: claimToHeaders tenant -> x-tenant: acme"));
  // Spoofed headers are removed even when the request is refused.
  r.headers.pop_back();
  Outcome& refused = e.run(pol, r);
  EXPECT_EQ(refused.reason, "jwt_missing");
}

// ---- Token cache ------------------------------------------------------------------------

TEST(EvaluatorTokenCache, HitSkipsVerification) {
  JwtProvider p = rsaProvider();
  p.claim_to_headers = {{"tenant", "x-tenant"}};
  Policy pol = jwtPolicy({p});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + vectorToken("ok RS256"));
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  EXPECT_EQ(e.state.tokenCacheMisses(), 1u);
  EXPECT_EQ(e.state.tokenCacheHits(), 0u);
  EXPECT_EQ(e.state.cachedTokens(), 1u);
  Outcome& again = e.run(pol, r);
  EXPECT_EQ(again.action, Action::kContinue);
  EXPECT_EQ(added(again, "x-tenant"), "acme");
  EXPECT_EQ(e.state.tokenCacheHits(), 1u);
  EXPECT_TRUE(e.traced("verified (RS256, kid rsa1, cached)"));

  // The same provider uid with no keys at all: the verdict comes from the cache.
  JwtProvider same = p;
  same.verifier = std::make_shared<Verifier>(p.verifier->options(), emptyKeys());
  Policy keyless = jwtPolicy({same});
  Outcome& cached = e.run(keyless, r);
  EXPECT_EQ(cached.action, Action::kContinue);
  EXPECT_EQ(added(cached, "x-tenant"), "acme");
  EXPECT_EQ(e.state.tokenCacheHits(), 2u);

  // A new uid (a reload, a key rotation) never reuses it.
  same.uid = nextUid();
  Policy rotated = jwtPolicy({same});
  EXPECT_EQ(e.run(rotated, r).reason, "jwt_invalid");
  EXPECT_EQ(e.state.tokenCacheMisses(), 2u);

  // A different token (one byte off) is a miss too.
  std::string tok = vectorToken("ok RS256");
  tok.back() = tok.back() == 'A' ? 'B' : 'A';
  r.headers.clear();
  r.h("authorization", "Bearer " + tok);
  EXPECT_EQ(e.run(keyless, r).reason, "jwt_invalid");
}

TEST(EvaluatorTokenCache, ExpiryHonoured) {
  Policy pol = jwtPolicy({rsaProvider()});  // skew 60 s; exp 1700003600
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + vectorToken("ok RS256"));
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  EXPECT_EQ(e.run(pol, r, 1700003659).action, Action::kContinue);
  EXPECT_EQ(e.state.tokenCacheHits(), 1u);
  Outcome& late = e.run(pol, r, 1700003660);
  EXPECT_EQ(late.reason, "jwt_invalid");
  EXPECT_NE(late.response_headers.find("Jwt is expired"), std::string::npos);
  EXPECT_EQ(e.state.cachedTokens(), 0u);
}

TEST(EvaluatorTokenCache, FailuresAreNotCachedAndSizeIsBounded) {
  Policy pol = jwtPolicy({hsProvider()});
  WorkerState state(2);
  Req r;
  r.h("authorization", "Bearer bad");
  Outcome out;
  evaluate(Layers{nullptr, &pol, nullptr}, r.get(), state, kNow, &out);
  EXPECT_EQ(state.cachedTokens(), 0u);
  for (int i = 0; i < 5; ++i) {
    r.headers.clear();
    r.h("authorization", "Bearer " + hsToken({{"n", i}}));
    evaluate(Layers{nullptr, &pol, nullptr}, r.get(), state, kNow, &out);
    EXPECT_EQ(out.action, Action::kContinue);
  }
  EXPECT_EQ(state.cachedTokens(), 2u);
  evaluate(Layers{nullptr, &pol, nullptr}, r.get(), state, kNow, &out);  // the newest: a hit
  EXPECT_EQ(state.tokenCacheHits(), 1u);
}

TEST(EvaluatorTokenCache, CachedPathReusesOutcomeStorage) {
  JwtProvider p = hsProvider();
  p.claim_to_headers = {{"long", "x-long"}};
  Policy pol = jwtPolicy({p});
  Eval e;
  Req r;
  r.h("authorization", "Bearer " + hsToken({{"long", std::string(200, 'v')}}));
  e.run(pol, r);
  Outcome& first = e.run(pol, r);
  const char* value_storage = first.add_headers.at(0).value.data();
  const std::string* vec_storage = first.remove_headers.data();
  Outcome& second = e.run(pol, r);
  EXPECT_EQ(second.add_headers.at(0).value.data(), value_storage);
  EXPECT_EQ(second.remove_headers.data(), vec_storage);
  EXPECT_EQ(second.add_headers[0].value, std::string(200, 'v'));
}

TEST(EvaluatorTokenCache, CachedPathDoesNotAllocate) {
  JwtProvider p = rsaProvider();
  p.claim_to_headers = {{"tenant", "x-tenant"}, {"org.plan", "x-plan-with-a-long-header-name"}};
  Policy pol = jwtPolicy({p});
  Layers layers{nullptr, &pol, nullptr};
  WorkerState state;
  Req r;
  r.h("x-tenant", "spoofed").h("authorization", "Bearer " + vectorToken("ok ES256"));
  const Request& req = r.get();
  for (int i = 0; i < 2; ++i) evaluate(layers, req, state, kNow, &state.scratch());
  g_allocations = 0;
  g_counting = true;
  evaluate(layers, req, state, kNow, &state.scratch());
  g_counting = false;
  EXPECT_EQ(g_allocations, 0u);
  EXPECT_EQ(state.scratch().action, Action::kContinue);
  EXPECT_EQ(added(state.scratch(), "x-plan-with-a-long-header-name"), "premium");
  EXPECT_EQ(state.tokenCacheHits(), 2u);
}

// ---- API keys ---------------------------------------------------------------------------

KeyDigest digestOf(const std::string& key) {
  KeyDigest d{};
  unsigned len = 0;
  EVP_Digest(key.data(), key.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

Policy apiKeyPolicy() {
  auto ak = std::make_shared<ApiKeyAuth>();
  ak->consumers = {
      {"acme-app", digestOf("k-acme-123"), false, {{"tenant", "acme"}, {"plan", "gold"}}},
      {"old-app", digestOf("k-old"), true, {}},
      {"globex", digestOf("k+globex/=="), false, {{"tenant", "globex"}}}};
  std::sort(ak->consumers.begin(), ak->consumers.end(),
            [](const ApiConsumer& a, const ApiConsumer& b) { return a.digest < b.digest; });
  ak->forward_client_id_header = "x-consumer";
  ak->metadata_to_headers = {{"tenant", "x-tenant"}, {"missing", "x-missing"}};
  Policy p;
  p.api_key = ak;
  return p;
}

TEST(EvaluatorApiKey, DefaultHeader) {
  Policy pol = apiKeyPolicy();
  Eval e;
  Req r;
  r.h("x-consumer", "spoofed").h("x-tenant", "spoofed").h("X-API-Key", "k-acme-123");
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  EXPECT_EQ(o.consumer, "acme-app");
  for (const char* h : {"x-consumer", "x-tenant", "x-missing", "x-api-key"})
    EXPECT_TRUE(has(o.remove_headers, h)) << h;
  EXPECT_EQ(added(o, "x-consumer"), "acme-app");
  EXPECT_EQ(added(o, "x-tenant"), "acme");
  EXPECT_EQ(added(o, "x-missing"), "<none>");
}

TEST(EvaluatorApiKey, MissingUnknownDisabled) {
  Policy pol = apiKeyPolicy();
  Eval e;
  Req r;
  Outcome& missing = e.run(pol, r);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.reason, "api_key_missing");
  EXPECT_EQ(missing.response_headers, "www-authenticate: ApiKey realm=\"portico\"\r\n");
  r.h("x-api-key", "k-acme-12");
  EXPECT_EQ(e.run(pol, r).reason, "api_key_invalid");
  r.headers.clear();
  r.h("x-api-key", "k-old");
  Outcome& disabled = e.run(pol, r);
  EXPECT_EQ(disabled.reason, "api_key_invalid");
  EXPECT_EQ(disabled.status, 401);
  EXPECT_TRUE(e.traced("disabled consumer old-app"));
}

TEST(EvaluatorApiKey, QueryParameterSanitized) {
  Policy pol = apiKeyPolicy();
  auto ak = std::make_shared<ApiKeyAuth>(*pol.api_key);
  ak->sources = {{CredentialSource::Kind::kHeader, "x-key", ""},
                 {CredentialSource::Kind::kQuery, "api_key", ""}};
  pol.api_key = ak;
  Eval e;
  Req r;
  r.query = "page=2&api_key=k%2Bglobex%2F%3D%3D";
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  EXPECT_EQ(o.consumer, "globex");
  EXPECT_TRUE(has(o.remove_query_params, "api_key"));
  EXPECT_EQ(removeQueryParams("/p?" + r.query, o.remove_query_params), "/p?page=2");

  ak->sanitize = false;
  Outcome& kept = e.run(pol, r);
  EXPECT_EQ(kept.action, Action::kContinue);
  EXPECT_TRUE(kept.remove_query_params.empty());
}

// ---- Basic auth -------------------------------------------------------------------------

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// Hashes written by `htpasswd -nb{m,s,2,5,B}` (apache2-utils).
Policy basicPolicy() {
  auto basic = std::make_shared<BasicAuth>();
  std::string error;
  auto users = parseHtpasswd(
      "alice:$apr1$SWr8P11q$JxB3tS1JHcz.d.zBQFg8C/\n"
      "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
      "carol:$5$uEhvXwFJFrKDnaZr$dTUhDTxoiCUhqUdVDZjdqkQ00rAmIZe4irXyzbuk6d/\n"
      "dave:$6$dUiDKSenHSqSbS15$MwsqHgT4vRY2d9X375m1hzyGPN1zG/wTkL6wQraIIO0gJeCuPyH7S9sJQcHL/"
      "I2RtC7pbmHwqhoZQtV858s910\n"
      "erin:$2y$05$6DaEYOUbJ3UTgoVL2YkIx.9yagFw1Rk.5LRElUIYiVhmGmSfAE.Iq\n",
      &error);
  EXPECT_TRUE(users) << error;
  basic->users = *users;
  basic->realm = "lab \"one\"";
  basic->forward_username_header = "x-user";
  Policy p;
  p.basic = basic;
  return p;
}

TEST(EvaluatorBasic, EveryScheme) {
  Policy pol = basicPolicy();
  Eval e;
  const std::pair<std::string, std::string> ok[] = {
      {"alice", "p@ss:word"}, {"bob", "secret"}, {"carol", "x"}, {"dave", "y"}, {"erin", "z"}};
  for (const auto& [user, password] : ok) {
    SCOPED_TRACE(user);
    Req r;
    r.h("x-user", "spoofed").h("authorization", "Basic " + b64(user + ":" + password));
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.action, Action::kContinue);
    EXPECT_EQ(o.consumer, user);
    EXPECT_TRUE(has(o.remove_headers, "authorization"));
    EXPECT_TRUE(has(o.remove_headers, "x-user"));
    EXPECT_EQ(added(o, "x-user"), user);
    Req wrong;
    wrong.h("authorization", "Basic " + b64(user + ":" + password + "!"));
    Outcome& w = e.run(pol, wrong);
    EXPECT_EQ(w.status, 401);
    EXPECT_EQ(w.reason, "basic_invalid");
    EXPECT_EQ(w.response_headers, "www-authenticate: Basic realm=\"lab \\\"one\\\"\"\r\n");
  }
}

TEST(EvaluatorBasic, PasswordChecksHaveABudgetPerWorker) {
  // bcrypt at cost 12 (htpasswd -nbB -C 12 slow pw): ~250 ms per check. A flood of wrong
  // passwords is answered 429 once a second's budget is spent; a cached credential still passes.
  auto basic = std::make_shared<BasicAuth>();
  std::string error;
  auto users =
      parseHtpasswd("slow:$2y$12$UFdbmqtx4MWHUoW0unYvo.4PGXGOqD.oqAQPHELJxXY4xEVyE5g02\n", &error);
  ASSERT_TRUE(users) << error;
  basic->users = *users;
  Policy pol;
  pol.basic = basic;
  Eval e;
  Req good;
  good.h("authorization", "Basic " + b64("slow:pw"));
  ASSERT_EQ(e.run(pol, good).action, Action::kContinue);  // checked once, then cached
  bool busy = false;
  for (int i = 0; i < 6 && !busy; ++i) {
    Req wrong;
    wrong.h("authorization", "Basic " + b64("slow:guess" + std::to_string(i)));
    Outcome& o = e.run(pol, wrong);
    ASSERT_EQ(o.action, Action::kRespond);
    if (o.status == 429) {
      busy = true;
      EXPECT_EQ(o.reason, "basic_busy");
      EXPECT_EQ(o.response_headers, "retry-after: 1\r\n");
    } else {
      EXPECT_EQ(o.status, 401);
    }
  }
  EXPECT_TRUE(busy);
  EXPECT_EQ(e.run(pol, good).action, Action::kContinue);  // the cache needs no budget
}

TEST(EvaluatorBasic, MissingMalformedUnknown) {
  Policy pol = basicPolicy();
  Eval e;
  Req r;
  EXPECT_EQ(e.run(pol, r).reason, "basic_missing");
  r.h("authorization", "Bearer abc");
  EXPECT_EQ(e.run(pol, r).reason, "basic_missing");
  for (const std::string& bad : std::vector<std::string>{b64("bob:secret") + "=", "Ym9iOnNlY3JldA",
                                                         "Ym9iOnNlY3JldB==", "!!!!",
                                                         b64("bobsecret"), b64("mallory:secret")}) {
    SCOPED_TRACE(bad);
    r.headers.clear();
    r.h("authorization", "Basic " + bad);
    Outcome& o = e.run(pol, r);
    EXPECT_EQ(o.reason, "basic_invalid");
    EXPECT_EQ(o.status, 401);
  }
  r.headers.clear();
  r.h("authorization", "BASIC   " + b64("bob:secret"));
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
}

TEST(EvaluatorBasic, CacheAndForward) {
  Policy pol = basicPolicy();
  auto basic = std::make_shared<BasicAuth>(*pol.basic);
  basic->forward = true;
  pol.basic = basic;
  Eval e;
  Req r;
  r.h("authorization", "Basic " + b64("erin:z"));
  EXPECT_EQ(e.run(pol, r).action, Action::kContinue);
  EXPECT_EQ(e.state.basicCacheHits(), 0u);
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kContinue);
  EXPECT_EQ(e.state.basicCacheHits(), 1u);
  EXPECT_FALSE(has(o.remove_headers, "authorization"));
  // The same credentials against a policy where erin has another hash: no cache hit.
  auto other = std::make_shared<BasicAuth>(*basic);
  other->users = *parseHtpasswd("erin:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", nullptr);
  Policy changed;
  changed.basic = other;
  EXPECT_EQ(e.run(changed, r).reason, "basic_invalid");
  EXPECT_EQ(e.state.basicCacheHits(), 1u);
}

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

Policy accessPolicy(std::vector<AccessRule> rules, bool default_allow = false) {
  auto a = std::make_shared<Authorization>();
  a->rules = std::move(rules);
  a->default_allow = default_allow;
  Policy p;
  p.authorization = a;
  return p;
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

// ---- Layers, ext_authz, helpers ---------------------------------------------------------

TEST(EvaluatorLayers, EachSectionFromTheFirstLayerThatHasIt) {
  Policy override_ = apiKeyPolicy();
  Policy rule = jwtPolicy({hsProvider()});
  rule.api_key = basicPolicy().api_key;  // none
  auto deny_all = accessPolicy({}, false);
  Policy defaults = jwtPolicy({rsaProvider()});
  defaults.authorization = deny_all.authorization;
  Layers l{&override_, &rule, &defaults};
  Eval e;
  Req r;
  r.h("x-api-key", "k-acme-123").h("authorization", "Bearer " + hsToken({{"sub", "a"}}));
  Outcome& o = e.run(l, r);
  EXPECT_EQ(o.status,
            403);  // jwt from the rule (hs) passed, api key from override, authz from defaults
  EXPECT_EQ(o.reason, "access_denied");
  EXPECT_EQ(o.consumer, "acme-app");
  ASSERT_NE(o.provider, nullptr);
  EXPECT_EQ(o.provider->name, "hs");

  defaults.xff_set = true;
  defaults.xff_trusted_hops = 1;
  AccessRule lab;
  lab.name = "lab";
  lab.client_cidrs = {cidr("10.0.0.0/8")};
  rule.authorization = accessPolicy({lab}).authorization;
  r.h("x-forwarded-for", "10.0.0.1");
  EXPECT_EQ(e.run(l, r).action, Action::kContinue);
  rule.xff_set = true;  // 0 hops: the peer (192.0.2.10)
  EXPECT_EQ(e.run(l, r).status, 403);
}

TEST(EvaluatorExtAuthz, AskedLastWhenEverythingPassed) {
  Policy pol = apiKeyPolicy();
  auto ext = std::make_shared<ExtAuthz>();
  ext->path = "/check";
  pol.ext_authz = ext;
  Eval e;
  Req r;
  EXPECT_EQ(e.run(pol, r).reason, "api_key_missing");
  r.h("x-api-key", "k-acme-123");
  Outcome& o = e.run(pol, r);
  EXPECT_EQ(o.action, Action::kExtAuthz);
  EXPECT_EQ(o.ext_authz, ext.get());
  EXPECT_EQ(added(o, "x-consumer"), "acme-app");
}

TEST(EvaluatorHelpers, RemoveQueryParams) {
  EXPECT_EQ(removeQueryParams("/p?a=1&key=x&b=2", {"key"}), "/p?a=1&b=2");
  EXPECT_EQ(removeQueryParams("/p?key=x", {"key"}), "/p");
  EXPECT_EQ(removeQueryParams("/p?key&key=2&keyx=3", {"key"}), "/p?keyx=3");
  EXPECT_EQ(removeQueryParams("/p", {"key"}), "/p");
  EXPECT_EQ(removeQueryParams("/p?a=1", {}), "/p?a=1");
  EXPECT_EQ(removeQueryParams("/p?a=1&b=2", {"a", "b"}), "/p");
}

TEST(EvaluatorHelpers, EmptyLayersContinue) {
  Eval e;
  Req r;
  Outcome& o = e.run(Layers{}, r);
  EXPECT_EQ(o.action, Action::kContinue);
  EXPECT_TRUE(o.remove_headers.empty());
  EXPECT_TRUE(e.trace.empty());
}

}  // namespace
}  // namespace portico::security
