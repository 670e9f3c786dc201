// Building blocks shared by the JWS/JWT verifier (jwt.h) and the key-set parser (jwks.h):
// algorithm names, failure reasons, strict base64url and strict JSON.
//
// Everything here is a pure function of its input; no state, safe from any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/status.h"

namespace portico::security {

// JWS algorithms Portico verifies (RFC 7518 §3.1, RFC 8037 §3.1). `none` is deliberately not
// one of them: an unsecured JWS can never be named in an allow-list, so it never verifies.
enum class Alg : uint8_t {
  kHS256,
  kHS384,
  kHS512,
  kRS256,
  kRS384,
  kRS512,
  kPS256,
  kPS384,
  kPS512,
  kES256,
  kES384,
  kEdDSA,
};
inline constexpr int kAlgCount = 12;

// The key family an algorithm needs.
enum class KeyType : uint8_t { kRsa, kEc, kOkp, kOct };

std::string_view algName(Alg alg);
// The algorithm named exactly `name` ("RS256"); nullopt for `none` and anything unknown.
std::optional<Alg> parseAlg(std::string_view name);
KeyType keyTypeFor(Alg alg);
std::string_view keyTypeName(KeyType type);  // the JWK `kty`: "RSA", "EC", "OKP", "oct"

// A set of algorithms (the per-provider allow-list).
class AlgSet {
 public:
  constexpr AlgSet() = default;
  constexpr AlgSet(std::initializer_list<Alg> algs) {
    for (Alg a : algs) add(a);
  }
  constexpr void add(Alg a) { bits_ |= 1u << static_cast<unsigned>(a); }
  constexpr bool contains(Alg a) const { return (bits_ >> static_cast<unsigned>(a)) & 1u; }
  constexpr bool empty() const { return bits_ == 0; }
  static constexpr AlgSet all() {
    AlgSet s;
    s.bits_ = (1u << kAlgCount) - 1;
    return s;
  }

 private:
  uint32_t bits_ = 0;
};

// Why a token (or a key) was refused. `reasonName` gives the short machine string used in
// stats and logs; the description in JwtError is for humans (error_description).
enum class JwtReason : uint8_t {
  kMalformed,      // not a compact JWS: dots, base64url, JSON, types of known members
  kTooLarge,       // over the configured token size
  kAlgNotAllowed,  // `none`, unknown, or not in the verifier's allow-list
  kUnknownCrit,    // `crit` lists an extension this verifier does not understand
  kUnknownKid,     // the token's `kid` names no key of the set
  kNoMatchingKey,  // no key of the set has the type/curve/alg/use the token's alg needs
  kBadSignature,   // the signature does not verify (also: wrong length, DER for ES*)
  kExpired,        // now >= exp + skew
  kNotYetValid,    // now < nbf - skew, or iat > now + skew
  kWrongIssuer,    // iss missing or not the configured issuer
  kWrongAudience,  // aud missing or none of its values is a configured audience
  kMissingClaim,   // a required claim is absent (or exp when expiration is required)
  kClaimMismatch,  // a required claim has none of the expected values
};
std::string_view reasonName(JwtReason reason);

// A verification failure. `description` never contains key material or token bytes; it is
// safe to send back in `WWW-Authenticate: Bearer error="invalid_token", error_description=`.
struct JwtError {
  JwtReason reason;
  std::string description;

  // True for failures of authorization rather than authentication (a valid token that lacks a
  // required claim): the gateway answers 403 insufficient_scope instead of 401 invalid_token.
  bool forbidden() const {
    return reason == JwtReason::kMissingClaim || reason == JwtReason::kClaimMismatch;
  }
  Status toStatus() const {
    return Status::error(std::string(reasonName(reason)) + ": " + description,
                         ErrorSource::kDownstream);
  }
};

// A value or the JwtError explaining why there is none (Result<T> with a machine reason).
template <typename T>
class [[nodiscard]] JwtResult {
 public:
  JwtResult(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  JwtResult(JwtError error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const JwtError& error() const { return std::get<JwtError>(v_); }

 private:
  std::variant<T, JwtError> v_;
};

// Strict base64url (RFC 4648 §5) without padding: only [A-Za-z0-9_-], no '=', no whitespace,
// a length that is not 1 mod 4, and zero bits in the unused low bits of the last character
// (one canonical encoding per byte string). Appends to `out`; false on any violation.
bool base64UrlDecode(std::string_view in, std::string& out);
void base64UrlEncode(std::string_view in, std::string& out);

// Strict JSON for JOSE objects: RFC 8259 text, no duplicate member names at any level
// (RFC 7515 §5.2), nesting at most `max_depth`. nullopt on any violation.
std::optional<nlohmann::json> parseStrictJson(std::string_view text, int max_depth = 16);

}  // namespace portico::security
