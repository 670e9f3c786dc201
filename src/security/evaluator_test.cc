// The SecurityPolicy evaluator on hand-built policies: JWT tokens made by PyJWT (the
// test/vectors/jwt vectors) and HS256 tokens signed here, htpasswd hashes written by Apache's
// htpasswd, API keys; access rules and CORS are in evaluator_rules_test.cc.
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

#include "security/evaluator_testing.h"
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

using namespace eval_test;

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
