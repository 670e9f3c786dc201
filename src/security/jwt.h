// JWT verification: a compact JWS (RFC 7515) checked against a KeySet and a provider's policy.
//
// What Verifier::verify does, in this order; the first failure is returned (JwtError with a
// machine reason, jose.h):
//  1. Size: at most `max_token_bytes` (16 KiB by default)                        too_large
//  2. Shape: exactly two dots, three segments of strict base64url (no padding,
//     no whitespace, canonical trailing bits); a 5-part JWE is not a JWS          malformed
//     (the signature segment may be empty: that is a missing signature,       bad_signature)
//  3. Header: strict JSON object (no duplicate names), `alg` a string, `kid`/`typ` strings
//     when present                                                                malformed
//  4. `alg`: one Portico verifies; `none` (any spelling) never                  alg_not_allowed
//  5. `crit`: any listed extension is refused (Portico understands none)        unknown_crit
//     `alg` in the verifier's allow-list                                         alg_not_allowed
//     `typ`: when `allowed_types` is set, it must be one of them                  malformed
//  6. Key: with a `kid`, the keys with that kid plus the keys without one (neither: unknown_kid);
//     without a `kid`, every key. Of those, only keys that serve the alg: same family (an RSA
//     key never serves HS*, so its PEM bytes are never an HMAC secret), right curve, the JWK's
//     own `alg`, an HMAC secret at least as long as the hash (none left: no_matching_key).
//     At most `max_keys_tried` are tried.
//  7. Signature over the header and payload segments exactly as received: HMAC compared in
//     constant time; RSA PKCS#1 v1.5; RSA-PSS with salt = hash length; ECDSA with the raw
//     R‖S of RFC 7518 §3.4 (a DER signature has the wrong length and fails; R or S zero
//     fails); Ed25519                                                             bad_signature
//  8. Payload (only now decoded): a strict JSON object                             malformed
//  9. Time, NumericDate seconds (may be fractional; non-numbers are malformed), skew S:
//     `exp` (required if `require_expiration`): now >= exp + S                     expired
//     `nbf`: now < nbf - S; `iat`: iat > now + S                                   not_yet_valid
// 10. `iss` equal to `issuer` (when set)                                          wrong_issuer
// 11. `aud` (string or array) has a value in `audiences` (when set)               wrong_audience
// 12. Required claims, by path: present (missing_claim), and when values are given, the claim
//     (a string, number or bool rendered as in claimValue) or one element of an array claim
//     equals one of them (claim_mismatch). These two are 403s (JwtError::forbidden()).
//
// Header members `jku`, `x5u`, `jwk`, `x5c` are ignored: keys come only from the KeySet.
//
// Claim paths (required claims here, claims-to-headers later): a path starting with "/" is an
// RFC 6901 JSON pointer ("/org/tenant", "/https:~1~1example.com~1roles"); otherwise it is a
// top-level claim name if one matches exactly (so "https://example.com/tenant" works), else
// dot-separated object members ("org.tenant").
//
// Thread-safety: a Verifier is immutable; verify() may run concurrently on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "security/jose.h"
#include "security/jwks.h"

namespace portico::security {

struct RequiredClaim {
  std::string path;
  std::vector<std::string> values;  // empty: presence only
};

struct VerifierOptions {
  AlgSet algorithms;                   // the allow-list; empty verifies nothing
  std::string issuer;                  // "" = iss not checked
  std::vector<std::string> audiences;  // empty = aud not checked
  // `typ` values accepted ("at+jwt" also accepts "application/AT+JWT"); empty = not checked.
  std::vector<std::string> allowed_types;
  int64_t clock_skew_seconds = 60;
  bool require_expiration = false;
  std::vector<RequiredClaim> required_claims;
  size_t max_token_bytes = 16 * 1024;
  size_t max_keys_tried = 4;
};

// A compact JWS split and its header decoded; the payload is left encoded.
struct ParsedJws {
  std::string_view signing_input;  // "header.payload" exactly as received (views the token)
  std::string_view payload_b64;
  nlohmann::json header;  // a JSON object
  Alg alg = Alg::kHS256;
  std::optional<std::string> kid;
  std::string signature;  // decoded bytes
};

// Steps 1–5 without the verifier's policy (allow-list, `typ`).
JwtResult<ParsedJws> parseJws(std::string_view token, size_t max_token_bytes = 16 * 1024);

// The payload segment decoded as a strict JSON object (step 8).
JwtResult<nlohmann::json> decodeClaims(std::string_view payload_b64);

// Step 7 for one key. REQUIRES: key.serves(alg).
bool verifySignature(Alg alg, const Jwk& key, std::string_view signing_input,
                     std::string_view signature);

struct VerifiedJwt {
  Alg alg = Alg::kHS256;
  std::string kid;  // of the key that verified ("" when it has none)
  nlohmann::json header;
  nlohmann::json claims;           // a JSON object
  std::optional<int64_t> expires;  // exp (floored) if present: the token cache's deadline
};

class Verifier {
 public:
  Verifier(VerifierOptions options, std::shared_ptr<const KeySet> keys)
      : options_(std::move(options)), keys_(std::move(keys)) {}

  // `now` is Unix time in seconds.
  JwtResult<VerifiedJwt> verify(std::string_view token, int64_t now) const;

  // Steps 9–12 on decoded claims (also used by verify()).
  JwtResult<bool> checkClaims(const nlohmann::json& claims, int64_t now) const;

  const VerifierOptions& options() const { return options_; }
  const std::shared_ptr<const KeySet>& keys() const { return keys_; }

 private:
  VerifierOptions options_;
  std::shared_ptr<const KeySet> keys_;
};

// The claim at `path` (see above); null when absent.
const nlohmann::json* findClaim(const nlohmann::json& claims, std::string_view path);

// A claim value as a header-ready string: strings as they are, integers in decimal, other
// numbers as JSON writes them, booleans "true"/"false", arrays of those joined with ",".
// nullopt for null, objects, nested arrays, and strings with control characters (CR, LF,
// NUL...) that a header may not carry.
std::optional<std::string> claimValue(const nlohmann::json& value);

}  // namespace portico::security
