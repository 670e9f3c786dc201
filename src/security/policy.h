// A compiled SecurityPolicy (portico.dev/v1alpha1): what the proxy checks before a request is
// sent upstream. Built on the main thread by the config compiler (compile_security.cc) from
// the SecurityPolicy resources, immutable afterwards, shared by the snapshot's rules and ports
// (std::shared_ptr<const Policy>) and read by every worker without locks.
//
// A Policy has independent sections (JWT, API keys, basic auth, external authorization,
// access rules, CORS). Attachment (compile time): each section of the effective policy of a
// rule comes from, in order, a Gateway policy's `overrides`, the most specific policy that
// sets the section (rule sectionName, then HTTPRoute, then Gateway). The proxy receives up to
// three layers (Gateway overrides, rule, Gateway defaults) and takes each section from the
// first layer that has it (`Layers` below) — nothing is merged per request.
//
// Order of the checks at request time (evaluator.h runs them):
//  1. CORS: a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
//     here, before any authentication (browsers send no credentials on a preflight).
//  2. Authentication: JWT, then API key, then basic auth — each section present must pass
//     (a request may need both a token and an API key). Failures answer 401.
//  3. Access rules (`authorization`): first matching rule's action, else the default; 403.
//  4. External authorization (asynchronous, proxy/ext_authz.h); deny passes its answer on.
//  5. Header edits for the upstream (claims, consumer, username, authz headers), then, when a
//     provider asks for it (`recomputeRoute`), the route is matched again on the new headers.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "security/jose.h"
#include "security/jwt.h"

namespace portico::config {
struct Backend;
}
namespace re2 {
class RE2;
}

namespace portico::security {

// Where a credential is read from. Header names are lowercase. For a header, `prefix` is a
// scheme the value must start with (case-insensitive, e.g. "Bearer "), removed before use.
struct CredentialSource {
  enum class Kind : uint8_t { kHeader, kQuery, kCookie };
  Kind kind = Kind::kHeader;
  std::string name;    // header name (lowercase), query parameter or cookie name
  std::string prefix;  // headers only; "" = the whole value
};

// A claim copied into a request header for the upstream (claimToHeaders).
struct ClaimToHeader {
  std::string claim;   // a claim path (jwt.h: name, dotted path or JSON pointer)
  std::string header;  // lowercase; a client-sent header of this name is always removed
};

// ---- JWT -------------------------------------------------------------------------------

struct JwtProvider {
  std::string name;
  uint64_t uid = 0;  // unique per compiled provider (process-wide counter): the token
                     // cache's key part, so a reload or a key rotation never reuses a verdict
  std::vector<CredentialSource> sources;  // default: header authorization, prefix "Bearer "
  bool forward = false;  // keep the token in the upstream request (default: removed)
  std::vector<ClaimToHeader> claim_to_headers;
  bool recompute_route = false;
  // The keys and checks. For remoteJWKS, the key set is the last one fetched (empty until
  // the first fetch succeeds: every token then fails with "signing keys not available").
  std::shared_ptr<const Verifier> verifier;
  std::string remote_jwks_uri;  // "" for local keys; else the URI workers ask to refresh
};

struct JwtAuth {
  std::vector<JwtProvider> providers;  // alternatives: the first whose token verifies wins
  bool optional = false;               // a request without any token passes unauthenticated
};

// ---- API keys ---------------------------------------------------------------------------

using KeyDigest = std::array<uint8_t, 32>;  // SHA-256 of the key bytes

struct ApiConsumer {
  std::string name;  // the client id
  KeyDigest digest{};
  bool disabled = false;
  std::vector<std::pair<std::string, std::string>> metadata;  // name -> value, in order
};

struct ApiKeyAuth {
  std::vector<CredentialSource> sources;  // default: header x-api-key
  std::vector<ApiConsumer> consumers;     // sorted by digest (binary search), then compared
                                          // in constant time (CRYPTO_memcmp)
  std::string forward_client_id_header;   // "" = none; else set to the consumer's name
  std::vector<std::pair<std::string, std::string>> metadata_to_headers;  // metadata -> header
  bool sanitize = true;  // remove the key (header or query parameter) before forwarding
};

// ---- Basic auth -------------------------------------------------------------------------

// One htpasswd line, parsed (security/htpasswd.h). `hash` as written in the file.
struct HtpasswdUser {
  enum class Scheme : uint8_t {
    kBcrypt,  // $2y$ / $2b$ / $2a$ (htpasswd -B)
    kSha1,    // {SHA}base64 (htpasswd -s)
    kApr1,    // $apr1$ (htpasswd -m, the default)
    kSha256,  // $5$ (htpasswd -2)
    kSha512,  // $6$ (htpasswd -5)
  };
  std::string name;
  Scheme scheme = Scheme::kBcrypt;
  std::string hash;
};

struct BasicAuth {
  std::vector<HtpasswdUser> users;  // sorted by name
  std::string realm = "portico";
  std::string forward_username_header;  // "" = none
  bool forward = false;                 // keep the Authorization header upstream
};

// ---- External authorization ---------------------------------------------------------------

struct ExtAuthz {
  const config::Backend* backend = nullptr;  // the authorization service (snapshot-owned)
  std::string path = "/";  // prefix: the request path is appended ("/auth" + "/orders/1")
  std::vector<std::string> headers_to_service;  // lowercase; empty = all request headers
  std::vector<std::string> headers_to_backend;  // lowercase: copied from an allow upstream
  uint32_t timeout_ms = 200;
  bool fail_open = false;          // the service unreachable / timed out / 5xx: allow
  uint32_t max_body_bytes = 0;     // 0: the body is not sent
  uint32_t cache_ttl_ms = 0;       // 0: no cache; else verdicts cached per worker by request
  uint32_t cache_max_entries = 0;  // key (method, path, the headers sent)
};

// ---- Access rules -----------------------------------------------------------------------

struct Cidr {
  uint8_t family = 0;  // AF_INET / AF_INET6
  uint8_t prefix = 0;
  uint8_t addr[16] = {};
  bool contains(uint8_t fam, const uint8_t* a) const;
};

struct ClaimCondition {
  std::string claim;                // claim path
  std::vector<std::string> values;  // any of; a claim array matches when one element does
};

struct PathCondition {
  enum class Kind : uint8_t { kExact, kPrefix, kRegex };
  Kind kind = Kind::kPrefix;
  std::string value;
  std::shared_ptr<const re2::RE2> regex;  // kRegex
};

// Every condition that is set must hold; within a list, any entry.
struct AccessRule {
  std::string name;
  bool allow = true;
  std::vector<Cidr> client_cidrs;
  std::vector<ClaimCondition> claims;  // of the verified token (none: the rule fails)
  std::vector<std::string> scopes;     // all required, from the `scope`/`scp` claim
  std::vector<std::string> consumers;  // API-key consumer or basic-auth user names
  std::vector<std::string> methods;
  std::vector<PathCondition> paths;
};

struct Authorization {
  bool default_allow = false;
  std::vector<AccessRule> rules;  // first match wins
};

// ---- CORS ------------------------------------------------------------------------------

struct Cors {
  std::vector<std::string> allow_origins;  // exact (lowercase scheme://host[:port]), "*",
                                           // or with one "*" wildcard ("https://*.a.com")
  std::vector<std::shared_ptr<const re2::RE2>> allow_origin_regexes;
  std::vector<std::string> allow_methods;  // "*" allowed
  std::vector<std::string> allow_headers;  // lowercase; "*" allowed
  std::vector<std::string> expose_headers;
  int64_t max_age_s = -1;  // -1: not sent
  bool allow_credentials = false;
};

// ---- The policy -------------------------------------------------------------------------

struct Policy {
  std::shared_ptr<const JwtAuth> jwt;
  std::shared_ptr<const ApiKeyAuth> api_key;
  std::shared_ptr<const BasicAuth> basic;
  std::shared_ptr<const ExtAuthz> ext_authz;
  std::shared_ptr<const Authorization> authorization;
  std::shared_ptr<const Cors> cors;
  // Client address for access rules: the Nth address from the right of X-Forwarded-For
  // (0: the peer's address).
  uint32_t xff_trusted_hops = 0;
  bool xff_set = false;              // xff_trusted_hops was written (for layering)
  std::vector<std::string> sources;  // "jwt: SecurityPolicy ns/name (HTTPRoute)", explain
  bool empty() const { return !jwt && !api_key && !basic && !ext_authz && !authorization && !cors; }
};

// The layers the proxy combines per request: each section from the first that has it.
struct Layers {
  const Policy* override_ = nullptr;  // Gateway overrides (port)
  const Policy* rule = nullptr;       // the rule's own (route and rule policies, compiled)
  const Policy* defaults = nullptr;   // Gateway defaults (port)
  bool any() const { return override_ || rule || defaults; }
};

}  // namespace portico::security
