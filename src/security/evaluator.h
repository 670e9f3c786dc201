// The request-time side of a SecurityPolicy: given a request and the policy layers of its rule,
// decide — answer locally (401/403/CORS preflight), ask the external authorization service, or
// continue with header edits for the upstream. Pure logic over the request's head: no I/O, no
// clock reads (the caller passes `now`), so the proxy paths (HTTP/1.1 and HTTP/2), `portico
// explain` and the unit tests all run the same code.
//
// Cost: a repeat caller's JWT is found in the worker's token cache (exact token bytes compared,
// `exp` honoured) and costs no signature check; claim header values are cached with it. The
// Outcome is reused per worker (clear() keeps its capacity): no allocation on the cached path
// beyond what the header edits need.
//
// Loop-thread only: a WorkerState belongs to one worker.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http1/message.h"
#include "security/policy.h"

namespace portico::security {

struct Request {
  std::string_view method;
  std::string_view authority;  // Host / :authority
  std::string_view path;       // without the query
  std::string_view query;      // after '?', "" if none
  const http1::Header* headers = nullptr;
  uint32_t header_count = 0;
  uint8_t peer_family = 0;  // AF_INET / AF_INET6
  const uint8_t* peer_addr = nullptr;
};

struct HeaderAdd {
  std::string name;  // lowercase
  std::string value;
};

struct Outcome {
  enum class Action : uint8_t { kContinue, kRespond, kExtAuthz };
  Action action = Action::kContinue;

  // kRespond: Portico answers. `response_headers` are complete lines ("name: value\r\n"):
  // WWW-Authenticate, the CORS headers of a preflight, ...
  int status = 0;
  std::string body;  // text/plain
  std::string response_headers;
  // A short machine reason for stats and logs: "jwt_missing", "jwt_invalid", "jwt_forbidden",
  // "api_key_missing", "api_key_invalid", "basic_missing", "basic_invalid", "access_denied",
  // "cors_preflight", "cors_origin_denied".
  std::string_view reason;

  // kContinue and kExtAuthz: the upstream request's edits — headers removed (lowercase names;
  // every field of that name), then headers added; query parameters removed from the target.
  // A credential read from a cookie is never removed (the edits cannot drop one cookie).
  std::vector<std::string> remove_headers;
  std::vector<HeaderAdd> add_headers;
  std::vector<std::string> remove_query_params;
  bool recompute_route = false;  // match the route again once the edits are applied
  // Actual (non-preflight) CORS request from an allowed origin: lines added to the response.
  // Also set when Portico answers (kRespond 401/403): add them to that answer too.
  std::string cors_response_headers;

  // kExtAuthz: the service to ask (the edits above apply when it allows).
  const ExtAuthz* ext_authz = nullptr;

  // Who the caller is (explain, logs, access rules).
  const JwtProvider* provider = nullptr;         // the provider whose token verified
  std::shared_ptr<const nlohmann::json> claims;  // its verified claims (shared with the cache)
  std::string consumer;                          // API-key consumer or basic-auth user
  // A token named a `kid` its remote provider's key set lacks (or that key set is still
  // empty): the caller asks the main thread to refresh this JWKS URI (it rate-limits). Empty
  // otherwise.
  std::string_view refresh_jwks_uri;

  void clear();
};

// Per-worker caches.
class WorkerState {
 public:
  explicit WorkerState(size_t token_cache_entries = 4096, size_t basic_cache_entries = 1024);
  ~WorkerState();
  WorkerState(const WorkerState&) = delete;
  WorkerState& operator=(const WorkerState&) = delete;

  Outcome& scratch() { return outcome_; }
  size_t cachedTokens() const;
  uint64_t tokenCacheHits() const { return token_hits_; }
  uint64_t tokenCacheMisses() const { return token_misses_; }
  uint64_t basicCacheHits() const { return basic_hits_; }

 private:
  friend struct EvaluatorAccess;  // evaluator.cc
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Outcome outcome_;
  uint64_t token_hits_ = 0;
  uint64_t token_misses_ = 0;
  uint64_t basic_hits_ = 0;
};

// One line per decision, for `portico explain` ("jwt: provider idp: token verified (RS256,
// kid k1)", "claimToHeaders: tenant -> x-tenant: acme", "authorization: rule admins: no
// match", ...). Null in the proxy.
using Trace = std::vector<std::string>;

// Runs the checks of `layers` on `req` (policy.h has the order) into `out` (cleared first).
// `now_s` is Unix time in seconds.
void evaluate(const Layers& layers, const Request& req, WorkerState& state, int64_t now_s,
              Outcome* out, Trace* trace = nullptr);

// CORS headers for a local answer (401/403/404 ...) to a request with an Origin the policy
// allows: the same lines an upstream answer would get. "" when none apply.
std::string corsHeadersFor(const Layers& layers, const Request& req);

// The target with the named query parameters removed ("/p?a=1&key=x&b=2" -> "/p?a=1&b=2").
std::string removeQueryParams(std::string_view target, const std::vector<std::string>& names);

}  // namespace portico::security
