// Verification keys: a JWKS document (RFC 7517), a PEM public key, or an HMAC secret, parsed
// once into an immutable KeySet that verifiers share (std::shared_ptr<const KeySet>).
//
// Every key is parsed to an OpenSSL EVP_PKEY (or kept as raw bytes for `oct`) up front, so a
// verification costs one signature check and no key decoding. Keys the verifier could never
// use are skipped with a reason instead of failing the whole set (RFC 7517 §5): unknown `kty`
// or `crv`, `use` other than `sig`, `key_ops` without `verify`, an `alg` that does not fit the
// key type, RSA keys under 2048 bits, EC points not on their curve, malformed members.
// Private members (`d`, `p`, ...) are ignored; `x5c`, `x5u`, `jku` are never fetched or used.
//
// Thread-safety: a KeySet is immutable after parsing; any thread may verify with it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "security/jose.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace portico::security {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// The curve of an EC or OKP key.
enum class Curve : uint8_t { kNone, kP256, kP384, kEd25519 };

struct Jwk {
  std::string kid;  // "" when the JWK has none
  KeyType type = KeyType::kRsa;
  Curve curve = Curve::kNone;
  std::optional<Alg> alg;  // the JWK's own `alg`: when set, the only algorithm it serves
  PkeyPtr pkey;            // RSA, EC and OKP keys
  std::string secret;      // oct keys only (raw bytes)
  size_t bits = 0;         // RSA modulus size, EC field size, secret size × 8

  // True when this key may verify a signature made with `a`: same family, the right curve,
  // the JWK's `alg` (if any) equal to `a`, an HMAC secret at least as long as the hash.
  bool serves(Alg a) const;
};

struct SkippedKey {
  size_t index = 0;  // position in `keys`
  std::string kid;
  std::string reason;  // "unsupported kty \"foo\"", never key material
};

struct JwksLimits {
  size_t max_document_bytes = 256 * 1024;
  size_t max_keys = 64;
};

class KeySet {
 public:
  KeySet(std::vector<Jwk> keys, std::vector<SkippedKey> skipped)
      : keys_(std::move(keys)), skipped_(std::move(skipped)) {}
  const std::vector<Jwk>& keys() const { return keys_; }
  const std::vector<SkippedKey>& skipped() const { return skipped_; }
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<Jwk> keys_;
  std::vector<SkippedKey> skipped_;
};

// A JWKS document: `{"keys": [...]}` (other top-level members ignored). Fails (kMalformed) when
// the document is not strict JSON, over the limits, or has no `keys` array; a set where every
// key was skipped is returned (empty) so the caller can report the reasons.
JwtResult<std::shared_ptr<const KeySet>> parseJwks(std::string_view document,
                                                   const JwksLimits& limits = {});

// One PEM "PUBLIC KEY" (SubjectPublicKeyInfo: RSA, EC P-256/P-384, Ed25519), given `kid`.
JwtResult<std::shared_ptr<const KeySet>> parsePemPublicKey(std::string_view pem,
                                                           std::string_view kid = {});

// An HMAC secret (HS256/384/512) as one `oct` key.
JwtResult<std::shared_ptr<const KeySet>> hmacKeySet(std::string_view secret,
                                                    std::string_view kid = {});

}  // namespace portico::security
