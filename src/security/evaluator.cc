// The evaluator's orchestration and the authentication steps (JWT, API key, basic auth) with
// their per-worker caches. CORS and access rules: evaluator_rules.cc; request reading and the
// edit helpers: evaluator_request.cc.
#include "security/evaluator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>

#include "common/hash.h"
#include "security/evaluator_internal.h"
#include "security/htpasswd.h"

namespace portico::security {

using internal::Ctx;

// ---- Per-worker caches ----------------------------------------------------------------------

namespace {

// A bounded LRU over entries with a `hash` member: the hash picks the bucket, `eq` decides.
template <typename E>
class Lru {
 public:
  explicit Lru(size_t capacity) : capacity_(capacity) {}
  size_t size() const { return list_.size(); }

  template <typename Eq>
  E* find(uint64_t hash, Eq eq) {
    auto [b, e] = index_.equal_range(hash);
    for (auto it = b; it != e; ++it) {
      if (eq(*it->second)) {
        list_.splice(list_.begin(), list_, it->second);  // most recent first; no allocation
        return &*it->second;
      }
    }
    return nullptr;
  }
  // Inserts `entry` (REQUIRES: no equal entry); returns it, valid until the next insert/erase.
  E* insert(E entry) {
    if (capacity_ == 0) {
      spare_ = std::move(entry);
      return &spare_;
    }
    list_.push_front(std::move(entry));
    index_.emplace(list_.front().hash, list_.begin());
    if (list_.size() > capacity_) erase(&list_.back());
    return &list_.front();
  }
  void erase(E* entry) {
    auto [b, e] = index_.equal_range(entry->hash);
    for (auto it = b; it != e; ++it) {
      if (&*it->second == entry) {
        list_.erase(it->second);
        index_.erase(it);
        return;
      }
    }
  }

 private:
  size_t capacity_;
  std::list<E> list_;
  std::unordered_multimap<uint64_t, typename std::list<E>::iterator> index_;
  E spare_{};
};

struct TokenEntry {
  uint64_t hash = 0;
  uint64_t uid = 0;
  std::string token;
  std::shared_ptr<const nlohmann::json> claims;
  int64_t deadline = 0;  // dropped when now >= deadline (exp + skew, the verifier's rule)
  Alg alg = Alg::kHS256;
  std::string kid;
  std::vector<HeaderAdd> headers;  // claimToHeaders values, in the provider's order
};

struct BasicEntry {
  uint64_t hash = 0;
  KeyDigest key{};  // SHA-256 of the credential text (base64 of user:password)
  std::string user;
  std::string user_hash;  // the htpasswd hash it verified against
};

KeyDigest sha256(std::string_view s) {
  KeyDigest d{};
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

// CPU a worker may spend checking passwords in one second (the rest of its time serves
// requests); a cached credential costs nothing.
constexpr uint64_t kPasswordBudgetUsPerSecond = 250'000;

uint64_t monotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t tokenHash(uint64_t uid, std::string_view token) {
  return fastHash(token) ^ (uid * 0x9E3779B97F4A7C15ull);
}

}  // namespace

struct WorkerState::Impl {
  Impl(size_t tokens_cap, size_t basic_cap) : tokens(tokens_cap), basic(basic_cap) {}
  Lru<TokenEntry> tokens;
  Lru<BasicEntry> basic;
  // Password hashes a worker checks per second (bcrypt and SHA-crypt cost milliseconds each):
  // past the budget, credentials not in the cache are answered 429 without a check, so a
  // flood of wrong passwords cannot take the worker.
  uint64_t slow_window_s = 0;
  uint64_t slow_spent_us = 0;
  std::vector<std::string> spare_strings;
  std::vector<HeaderAdd> spare_adds;

  // Moves the edits' strings of the previous outcome aside, so the next one reuses them.
  void recycle(Outcome& o) {
    constexpr size_t kMaxSpare = 64;
    for (auto& s : o.remove_headers)
      if (spare_strings.size() < kMaxSpare) spare_strings.push_back(std::move(s));
    for (auto& s : o.remove_query_params)
      if (spare_strings.size() < kMaxSpare) spare_strings.push_back(std::move(s));
    for (auto& h : o.add_headers)
      if (spare_adds.size() < kMaxSpare) spare_adds.push_back(std::move(h));
  }
};

struct EvaluatorAccess {
  static WorkerState::Impl& impl(WorkerState& s) { return *s.impl_; }
  static uint64_t& hits(WorkerState& s) { return s.token_hits_; }
  static uint64_t& misses(WorkerState& s) { return s.token_misses_; }
  static uint64_t& basicHits(WorkerState& s) { return s.basic_hits_; }
};

WorkerState::WorkerState(size_t token_cache_entries, size_t basic_cache_entries)
    : impl_(std::make_unique<Impl>(token_cache_entries, basic_cache_entries)) {}
WorkerState::~WorkerState() = default;
size_t WorkerState::cachedTokens() const { return impl_->tokens.size(); }

void Outcome::clear() {
  action = Action::kContinue;
  status = 0;
  body.clear();
  response_headers.clear();
  reason = {};
  remove_headers.clear();
  add_headers.clear();
  remove_query_params.clear();
  recompute_route = false;
  cors_response_headers.clear();
  ext_authz = nullptr;
  provider = nullptr;
  claims.reset();
  consumer.clear();
  refresh_jwks_uri = {};
}

// ---- Layers ---------------------------------------------------------------------------------

namespace {

template <typename T>
const T* pick(const Layers& l, std::shared_ptr<const T> Policy::*member) {
  for (const Policy* p : {l.override_, l.rule, l.defaults})
    if (p && p->*member) return (p->*member).get();
  return nullptr;
}

uint32_t pickXffHops(const Layers& l) {
  for (const Policy* p : {l.override_, l.rule, l.defaults})
    if (p && p->xff_set) return p->xff_trusted_hops;
  return 0;
}

std::string_view sourceKindName(CredentialSource::Kind k) {
  switch (k) {
    case CredentialSource::Kind::kHeader:
      return "header";
    case CredentialSource::Kind::kQuery:
      return "query parameter";
    case CredentialSource::Kind::kCookie:
      return "cookie";
  }
  return "";
}

std::string describe(const CredentialSource& s) {
  return std::string(sourceKindName(s.kind)) + " " + s.name;
}

const CredentialSource kBearerSource{CredentialSource::Kind::kHeader, "authorization", "Bearer "};
const CredentialSource kApiKeySource{CredentialSource::Kind::kHeader, "x-api-key", ""};

// The edit that keeps a credential from reaching the upstream.
void dropCredential(Ctx& c, const CredentialSource& s) {
  if (s.kind == CredentialSource::Kind::kHeader) c.removeHeader(s.name);
  if (s.kind == CredentialSource::Kind::kQuery) c.removeQueryParam(s.name);
  // A cookie stays: removing one cookie means rewriting the Cookie header, which the edits
  // (remove whole headers, add headers) cannot express without dropping the other cookies.
}

// ---- JWT ------------------------------------------------------------------------------------

int64_t saturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  return r;
}

// The cached or freshly verified entry for `token`; nullptr with `err` set on failure.
const TokenEntry* verifyToken(Ctx& c, WorkerState& state, const JwtProvider& p,
                              std::string_view token, std::optional<JwtError>* err, bool* cached) {
  auto& cache = EvaluatorAccess::impl(state).tokens;
  const uint64_t hash = tokenHash(p.uid, token);
  TokenEntry* e = cache.find(hash, [&](const TokenEntry& t) {
    return t.uid == p.uid && t.token.size() == token.size() &&
           std::memcmp(t.token.data(), token.data(), token.size()) == 0;
  });
  if (e) {
    if (c.now < e->deadline) {
      ++EvaluatorAccess::hits(state);
      *cached = true;
      return e;
    }
    cache.erase(e);
  }
  ++EvaluatorAccess::misses(state);
  *cached = false;
  if (!p.verifier || !p.verifier->keys() || p.verifier->keys()->empty()) {
    // A remote JWKS not fetched yet (or every key of it unusable).
    *err = JwtError{JwtReason::kNoMatchingKey, "signing keys not available"};
    return nullptr;
  }
  auto r = p.verifier->verify(token, c.now);
  if (!r.ok()) {
    *err = r.error();
    return nullptr;
  }
  TokenEntry entry;
  entry.hash = hash;
  entry.uid = p.uid;
  entry.token.assign(token.data(), token.size());
  entry.claims = std::make_shared<const nlohmann::json>(std::move(r->claims));
  entry.deadline = r->expires ? saturatingAdd(*r->expires, p.verifier->options().clock_skew_seconds)
                              : std::numeric_limits<int64_t>::max();
  entry.alg = r->alg;
  entry.kid = std::move(r->kid);
  for (const auto& ch : p.claim_to_headers) {
    const nlohmann::json* v = findClaim(*entry.claims, ch.claim);
    if (!v) continue;
    if (auto s = claimValue(*v)) entry.headers.push_back({ch.header, std::move(*s)});
  }
  return cache.insert(std::move(entry));
}

void answerBearer(Ctx& c, int status, std::string_view reason, std::string_view error,
                  std::string_view description) {
  c.respond(status, reason, std::string(description) + "\n");
  std::string& h = c.out->response_headers;
  h += "www-authenticate: Bearer error=\"";
  h += error;
  h += "\", error_description=\"";
  internal::appendQuoted(h, description);
  h += "\"\r\n";
}

// Step 2a. False when answered.
bool runJwt(Ctx& c, WorkerState& state, const JwtAuth& jwt) {
  // Anti-spoofing: no client-sent claim header reaches the upstream, whichever provider wins.
  for (const auto& p : jwt.providers)
    for (const auto& ch : p.claim_to_headers) c.removeHeader(ch.header);

  bool any_token = false;
  std::optional<JwtError> first_error, forbidden_error;
  for (const auto& p : jwt.providers) {
    const CredentialSource* begin = p.sources.empty() ? &kBearerSource : p.sources.data();
    const CredentialSource* end = p.sources.empty() ? begin + 1 : begin + p.sources.size();
    for (const CredentialSource* s = begin; s != end; ++s) {
      std::string_view token = internal::extractCredential(c.req, *s);
      if (token.empty()) continue;
      any_token = true;
      std::optional<JwtError> err;
      bool cached = false;
      const TokenEntry* e = verifyToken(c, state, p, token, &err, &cached);
      if (!e) {
        if (!p.remote_jwks_uri.empty() &&
            (err->reason == JwtReason::kUnknownKid || !p.verifier ||
             p.verifier->keys() == nullptr || p.verifier->keys()->empty()))
          c.out->refresh_jwks_uri = p.remote_jwks_uri;
        if (c.trace)
          c.note("jwt: provider " + p.name + ": token from " + describe(*s) + " refused: " +
                 std::string(reasonName(err->reason)) + " (" + err->description + ")");
        if (err->forbidden() && !forbidden_error) {
          forbidden_error = std::move(err);
        } else if (!first_error) {
          first_error = std::move(err);
        }
        continue;
      }
      c.out->provider = &p;
      c.out->claims = e->claims;
      if (c.trace) {
        std::string line = "jwt: provider " + p.name + ": token from " + describe(*s) +
                           " verified (" + std::string(algName(e->alg));
        if (!e->kid.empty()) line += ", kid " + e->kid;
        line += cached ? ", cached)" : ")";
        c.note(std::move(line));
      }
      if (!p.forward) dropCredential(c, *s);
      for (const auto& h : e->headers) {
        c.addHeader(h.name, h.value);
        if (c.trace) {
          for (const auto& ch : p.claim_to_headers)
            if (ch.header == h.name)
              c.note("jwt: claimToHeaders " + ch.claim + " -> " + h.name + ": " + h.value);
        }
      }
      if (p.recompute_route) c.out->recompute_route = true;
      return true;
    }
  }
  if (!any_token) {
    if (jwt.optional) {
      if (c.trace) c.note("jwt: no token; optional: continuing unauthenticated");
      return true;
    }
    if (c.trace) c.note("jwt: no token in any source: 401");
    c.respond(401, "jwt_missing", "Jwt is missing\n");
    c.out->response_headers += "www-authenticate: Bearer realm=\"portico\"\r\n";
    return false;
  }
  if (forbidden_error) {
    answerBearer(c, 403, "jwt_forbidden", "insufficient_scope", forbidden_error->description);
    return false;
  }
  answerBearer(c, 401, "jwt_invalid", "invalid_token", first_error->description);
  return false;
}

// ---- API keys -------------------------------------------------------------------------------

bool runApiKey(Ctx& c, const ApiKeyAuth& ak) {
  if (!ak.forward_client_id_header.empty()) c.removeHeader(ak.forward_client_id_header);
  for (const auto& [md, header] : ak.metadata_to_headers) c.removeHeader(header);

  const CredentialSource* begin = ak.sources.empty() ? &kApiKeySource : ak.sources.data();
  const CredentialSource* end = ak.sources.empty() ? begin + 1 : begin + ak.sources.size();
  const CredentialSource* src = nullptr;
  std::string_view key;
  for (const CredentialSource* s = begin; s != end && !src; ++s) {
    key = internal::extractCredential(c.req, *s);
    if (!key.empty()) src = s;
  }
  auto unauthorized = [&](std::string_view reason, std::string_view body) {
    c.respond(401, reason, body);
    c.out->response_headers += "www-authenticate: ApiKey realm=\"portico\"\r\n";
    return false;
  };
  if (!src) {
    if (c.trace) c.note("api_key: no key in any source: 401");
    return unauthorized("api_key_missing", "API key is missing\n");
  }
  KeyDigest digest = src->kind == CredentialSource::Kind::kQuery
                         ? sha256(internal::percentDecode(key))
                         : sha256(key);
  auto it = std::lower_bound(ak.consumers.begin(), ak.consumers.end(), digest,
                             [](const ApiConsumer& a, const KeyDigest& d) { return a.digest < d; });
  bool match = it != ak.consumers.end() &&
               CRYPTO_memcmp(it->digest.data(), digest.data(), digest.size()) == 0;
  if (!match || it->disabled) {
    if (c.trace)
      c.note(match ? "api_key: key from " + describe(*src) + " belongs to disabled consumer " +
                         it->name + ": 401"
                   : "api_key: key from " + describe(*src) + " is unknown: 401");
    return unauthorized("api_key_invalid", "API key is invalid\n");
  }
  const ApiConsumer& consumer = *it;
  if (c.trace) c.note("api_key: key from " + describe(*src) + " is consumer " + consumer.name);
  c.out->consumer.assign(consumer.name);
  if (ak.sanitize) dropCredential(c, *src);
  if (!ak.forward_client_id_header.empty()) c.addHeader(ak.forward_client_id_header, consumer.name);
  for (const auto& [md, header] : ak.metadata_to_headers) {
    for (const auto& [name, value] : consumer.metadata) {
      if (name != md) continue;
      c.addHeader(header, value);
      break;
    }
  }
  return true;
}

// ---- Basic auth -----------------------------------------------------------------------------

bool runBasic(Ctx& c, WorkerState& state, const BasicAuth& basic) {
  if (!basic.forward_username_header.empty()) c.removeHeader(basic.forward_username_header);
  auto unauthorized = [&](std::string_view reason, std::string_view body) {
    c.respond(401, reason, body);
    std::string& h = c.out->response_headers;
    h += "www-authenticate: Basic realm=\"";
    internal::appendQuoted(h, basic.realm);
    h += "\"\r\n";
    return false;
  };
  std::string_view cred;
  for (uint32_t i = 0; i < c.req.header_count && cred.empty(); ++i) {
    const auto& h = c.req.headers[i];
    if (!internal::equalsIgnoreCase(h.name, "authorization") ||
        !internal::startsWithIgnoreCase(h.value, "basic "))
      continue;
    cred = h.value.substr(6);
    while (!cred.empty() && cred.front() == ' ') cred.remove_prefix(1);
  }
  if (cred.empty()) {
    if (c.trace) c.note("basic: no Basic credentials: 401");
    return unauthorized("basic_missing", "credentials are missing\n");
  }
  std::string decoded;
  size_t colon = std::string::npos;
  if (cred.size() <= 4096 && internal::base64Decode(cred, decoded)) colon = decoded.find(':');
  if (colon == std::string::npos) {
    if (c.trace) c.note("basic: malformed credentials: 401");
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return unauthorized("basic_invalid", "credentials are invalid\n");
  }
  std::string_view user_name = std::string_view(decoded).substr(0, colon);
  std::string_view password = std::string_view(decoded).substr(colon + 1);
  auto it = std::lower_bound(
      basic.users.begin(), basic.users.end(), user_name,
      [](const HtpasswdUser& u, std::string_view n) { return std::string_view(u.name) < n; });
  const HtpasswdUser* user = it != basic.users.end() && it->name == user_name ? &*it : nullptr;
  bool ok = false;
  if (user) {
    auto& cache = EvaluatorAccess::impl(state).basic;
    KeyDigest key = sha256(cred);
    uint64_t hash;
    std::memcpy(&hash, key.data(), sizeof hash);
    // A hit needs the same credential text and the same stored hash for that user: the verdict
    // of verifyPassword depends on nothing else, so no policy identity is needed in the key.
    BasicEntry* e = cache.find(hash, [&](const BasicEntry& b) {
      return CRYPTO_memcmp(b.key.data(), key.data(), key.size()) == 0 && b.user == user->name &&
             b.user_hash == user->hash;
    });
    if (e) {
      ok = true;
      ++EvaluatorAccess::basicHits(state);
    } else {
      auto& impl = EvaluatorAccess::impl(state);
      uint64_t t0 = monotonicUs();
      if (t0 / 1'000'000 != impl.slow_window_s) {
        impl.slow_window_s = t0 / 1'000'000;
        impl.slow_spent_us = 0;
      }
      if (impl.slow_spent_us >= kPasswordBudgetUsPerSecond) {
        OPENSSL_cleanse(decoded.data(), decoded.size());
        if (c.trace) c.note("basic: password checks over this worker's budget: 429");
        c.respond(429, "basic_busy", "too many password checks; retry later\n");
        c.out->response_headers += "retry-after: 1\r\n";
        return false;
      }
      ok = verifyPassword(*user, password);
      impl.slow_spent_us += monotonicUs() - t0;
      if (ok) cache.insert(BasicEntry{hash, key, user->name, user->hash});
    }
  }
  OPENSSL_cleanse(decoded.data(), decoded.size());
  if (!ok) {
    if (c.trace)
      c.note(user ? "basic: wrong password for user " + user->name + ": 401"
                  : std::string("basic: unknown user: 401"));
    return unauthorized("basic_invalid", "credentials are invalid\n");
  }
  if (c.trace) c.note("basic: user " + user->name + " authenticated");
  c.out->consumer.assign(user->name);
  if (!basic.forward) c.removeHeader("authorization");
  if (!basic.forward_username_header.empty())
    c.addHeader(basic.forward_username_header, user->name);
  return true;
}

}  // namespace

// ---- evaluate -------------------------------------------------------------------------------

void evaluate(const Layers& layers, const Request& req, WorkerState& state, int64_t now_s,
              Outcome* out, Trace* trace) {
  auto& impl = EvaluatorAccess::impl(state);
  impl.recycle(*out);
  out->clear();
  Ctx c{layers, req, now_s, out, trace, &impl.spare_strings, &impl.spare_adds};

  if (const Cors* cors = pick(layers, &Policy::cors); cors && !internal::runCors(c, *cors)) return;
  if (const JwtAuth* jwt = pick(layers, &Policy::jwt); jwt && !runJwt(c, state, *jwt)) return;
  if (const ApiKeyAuth* ak = pick(layers, &Policy::api_key); ak && !runApiKey(c, *ak)) return;
  if (const BasicAuth* b = pick(layers, &Policy::basic); b && !runBasic(c, state, *b)) return;
  if (const Authorization* a = pick(layers, &Policy::authorization);
      a && !internal::runAccess(c, *a, pickXffHops(layers), out->claims.get()))
    return;
  if (const ExtAuthz* ext = pick(layers, &Policy::ext_authz)) {
    out->action = Outcome::Action::kExtAuthz;
    out->ext_authz = ext;
    if (c.trace) c.note("ext_authz: asking the authorization service");
  }
}

std::string corsHeadersFor(const Layers& layers, const Request& req) {
  std::string out;
  const Cors* cors = pick(layers, &Policy::cors);
  if (!cors) return out;
  const std::string_view* origin = internal::findHeader(req, "origin");
  if (origin) internal::appendCorsActual(*cors, *origin, out);
  return out;
}

}  // namespace portico::security
