#include "security/jwks.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstring>

namespace portico::security {

void PkeyDeleter::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }

namespace {

using json = nlohmann::json;

constexpr size_t kMinRsaBits = 2048;
constexpr size_t kMaxRsaBits = 8192;  // bounds the cost of one verification
constexpr size_t kMaxKidBytes = 256;

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BldDeleter {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct CtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_PKEY_CTX, CtxDeleter>;

const unsigned char* bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Builds a public key of OpenSSL type `type` from params; null on failure.
PkeyPtr fromParams(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld));
  CtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
  EVP_PKEY* pkey = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) return nullptr;
  return PkeyPtr(pkey);
}

bool publicCheck(EVP_PKEY* pkey) {
  CtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  return ctx && EVP_PKEY_public_check(ctx.get()) == 1;
}

// A base64url member of `jwk`, decoded; nullopt with `why` set when absent or invalid.
std::optional<std::string> b64Member(const json& jwk, const char* name, std::string& why) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    why = std::string("missing or non-string \"") + name + "\"";
    return std::nullopt;
  }
  std::string out;
  if (!base64UrlDecode(it->get_ref<const std::string&>(), out) || out.empty()) {
    why = std::string("\"") + name + "\" is not base64url";
    return std::nullopt;
  }
  return out;
}

bool rsaKey(const json& j, Jwk& key, std::string& why) {
  auto n = b64Member(j, "n", why);
  if (!n) return false;
  auto e = b64Member(j, "e", why);
  if (!e) return false;
  std::unique_ptr<BIGNUM, BnDeleter> bn_n(
      BN_bin2bn(bytes(*n), static_cast<int>(n->size()), nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> bn_e(
      BN_bin2bn(bytes(*e), static_cast<int>(e->size()), nullptr));
  if (!bn_n || !bn_e) return (why = "out of memory", false);
  size_t bits = static_cast<size_t>(BN_num_bits(bn_n.get()));
  if (bits < kMinRsaBits) return (why = "RSA key shorter than 2048 bits", false);
  if (bits > kMaxRsaBits) return (why = "RSA key longer than 8192 bits", false);
  if (e->size() > 8 || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()))
    return (why = "unusable RSA public exponent", false);
  std::unique_ptr<OSSL_PARAM_BLD, BldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
    return (why = "out of memory", false);
  key.pkey = fromParams("RSA", bld.get());
  if (!key.pkey) return (why = "invalid RSA key", false);
  key.bits = bits;
  return true;
}

bool ecKey(const json& j, Jwk& key, std::string& why) {
  auto crv = j.find("crv");
  if (crv == j.end() || !crv->is_string()) return (why = "missing \"crv\"", false);
  const auto& name = crv->get_ref<const std::string&>();
  size_t len = 0;
  const char* group = nullptr;
  if (name == "P-256") {
    key.curve = Curve::kP256, len = 32, group = "prime256v1";
  } else if (name == "P-384") {
    key.curve = Curve::kP384, len = 48, group = "secp384r1";
  } else {
    return (why = "unsupported EC curve", false);
  }
  auto x = b64Member(j, "x", why);
  if (!x) return false;
  auto y = b64Member(j, "y", why);
  if (!y) return false;
  if (x->size() != len || y->size() != len)
    return (why = "EC coordinates of the wrong length", false);
  std::string point;
  point.reserve(1 + 2 * len);
  point.push_back('\x04');
  point += *x;
  point += *y;
  std::unique_ptr<OSSL_PARAM_BLD, BldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    return (why = "out of memory", false);
  key.pkey = fromParams("EC", bld.get());
  if (!key.pkey || !publicCheck(key.pkey.get())) {
    key.pkey.reset();
    return (why = "EC point not on the curve", false);
  }
  key.bits = len * 8;
  return true;
}

bool okpKey(const json& j, Jwk& key, std::string& why) {
  auto crv = j.find("crv");
  if (crv == j.end() || !crv->is_string()) return (why = "missing \"crv\"", false);
  if (crv->get_ref<const std::string&>() != "Ed25519")
    return (why = "unsupported OKP curve", false);
  auto x = b64Member(j, "x", why);
  if (!x) return false;
  if (x->size() != 32) return (why = "Ed25519 key of the wrong length", false);
  key.pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(*x), x->size()));
  if (!key.pkey) return (why = "invalid Ed25519 key", false);
  key.curve = Curve::kEd25519;
  key.bits = 256;
  return true;
}

bool octKey(const json& j, Jwk& key, std::string& why) {
  auto k = b64Member(j, "k", why);
  if (!k) return false;
  key.secret = std::move(*k);
  key.bits = key.secret.size() * 8;
  return true;
}

// Parses one JWK; false with `why` when it must be skipped.
bool parseJwk(const json& j, Jwk& key, std::string& why) {
  if (!j.is_object()) return (why = "not a JSON object", false);
  if (auto kid = j.find("kid"); kid != j.end()) {
    if (!kid->is_string()) return (why = "non-string \"kid\"", false);
    key.kid = kid->get<std::string>();
    if (key.kid.size() > kMaxKidBytes) {
      key.kid.clear();
      return (why = "\"kid\" longer than 256 bytes", false);
    }
  }
  auto kty = j.find("kty");
  if (kty == j.end() || !kty->is_string()) return (why = "missing \"kty\"", false);
  const auto& t = kty->get_ref<const std::string&>();
  if (t == "RSA") {
    key.type = KeyType::kRsa;
  } else if (t == "EC") {
    key.type = KeyType::kEc;
  } else if (t == "OKP") {
    key.type = KeyType::kOkp;
  } else if (t == "oct") {
    key.type = KeyType::kOct;
  } else {
    return (why = "unsupported \"kty\"", false);
  }
  if (auto use = j.find("use"); use != j.end()) {
    if (!use->is_string()) return (why = "non-string \"use\"", false);
    if (use->get_ref<const std::string&>() != "sig") return (why = "\"use\" is not \"sig\"", false);
  }
  if (auto ops = j.find("key_ops"); ops != j.end()) {
    if (!ops->is_array()) return (why = "non-array \"key_ops\"", false);
    bool verify = false;
    for (const auto& op : *ops) {
      if (!op.is_string()) return (why = "non-string in \"key_ops\"", false);
      verify = verify || op.get_ref<const std::string&>() == "verify";
    }
    if (!verify) return (why = "\"key_ops\" lacks \"verify\"", false);
  }
  if (auto alg = j.find("alg"); alg != j.end()) {
    if (!alg->is_string()) return (why = "non-string \"alg\"", false);
    key.alg = parseAlg(alg->get_ref<const std::string&>());
    if (!key.alg) return (why = "unsupported \"alg\"", false);
    if (keyTypeFor(*key.alg) != key.type) return (why = "\"alg\" does not fit \"kty\"", false);
  }
  bool ok = false;
  switch (key.type) {
    case KeyType::kRsa:
      ok = rsaKey(j, key, why);
      break;
    case KeyType::kEc:
      ok = ecKey(j, key, why);
      break;
    case KeyType::kOkp:
      ok = okpKey(j, key, why);
      break;
    case KeyType::kOct:
      ok = octKey(j, key, why);
      break;
  }
  if (ok && key.alg) {
    if ((*key.alg == Alg::kES256 && key.curve != Curve::kP256) ||
        (*key.alg == Alg::kES384 && key.curve != Curve::kP384))
      return (why = "\"alg\" does not fit \"crv\"", false);
  }
  return ok;
}

JwtError malformed(std::string what) { return JwtError{JwtReason::kMalformed, std::move(what)}; }

}  // namespace

bool Jwk::serves(Alg a) const {
  if (keyTypeFor(a) != type) return false;
  if (alg && *alg != a) return false;
  switch (a) {
    case Alg::kHS256:
      return secret.size() >= 32;
    case Alg::kHS384:
      return secret.size() >= 48;
    case Alg::kHS512:
      return secret.size() >= 64;
    case Alg::kES256:
      return curve == Curve::kP256;
    case Alg::kES384:
      return curve == Curve::kP384;
    case Alg::kEdDSA:
      return curve == Curve::kEd25519;
    default:
      return pkey != nullptr;
  }
}

JwtResult<std::shared_ptr<const KeySet>> parseJwks(std::string_view document,
                                                   const JwksLimits& limits) {
  if (document.size() > limits.max_document_bytes)
    return JwtError{JwtReason::kTooLarge,
                    "JWKS document over " + std::to_string(limits.max_document_bytes) + " bytes"};
  auto doc = parseStrictJson(document, 8);
  if (!doc || !doc->is_object()) return malformed("JWKS is not a JSON object");
  auto keys = doc->find("keys");
  if (keys == doc->end() || !keys->is_array()) return malformed("JWKS has no \"keys\" array");
  if (keys->size() > limits.max_keys)
    return JwtError{JwtReason::kTooLarge,
                    "JWKS has more than " + std::to_string(limits.max_keys) + " keys"};
  std::vector<Jwk> out;
  std::vector<SkippedKey> skipped;
  out.reserve(keys->size());
  for (size_t i = 0; i < keys->size(); ++i) {
    Jwk key;
    std::string why;
    if (parseJwk((*keys)[i], key, why)) {
      out.push_back(std::move(key));
    } else {
      skipped.push_back(SkippedKey{i, std::move(key.kid), std::move(why)});
    }
  }
  return std::make_shared<const KeySet>(std::move(out), std::move(skipped));
}

JwtResult<std::shared_ptr<const KeySet>> parsePemPublicKey(std::string_view pem,
                                                           std::string_view kid) {
  if (pem.size() > 64 * 1024) return JwtError{JwtReason::kTooLarge, "PEM key over 64 KiB"};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return malformed("out of memory");
  Jwk key;
  key.kid = std::string(kid);
  key.pkey.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key.pkey) return malformed("not a PEM public key");
  if (EVP_PKEY_is_a(key.pkey.get(), "RSA")) {
    key.type = KeyType::kRsa;
    key.bits = static_cast<size_t>(EVP_PKEY_get_bits(key.pkey.get()));
    if (key.bits < kMinRsaBits) return malformed("RSA key shorter than 2048 bits");
    if (key.bits > kMaxRsaBits) return malformed("RSA key longer than 8192 bits");
  } else if (EVP_PKEY_is_a(key.pkey.get(), "EC")) {
    key.type = KeyType::kEc;
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key.pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof group, &len) != 1)
      return malformed("EC key without a named curve");
    if (std::strcmp(group, "prime256v1") == 0) {
      key.curve = Curve::kP256, key.bits = 256;
    } else if (std::strcmp(group, "secp384r1") == 0) {
      key.curve = Curve::kP384, key.bits = 384;
    } else {
      return malformed("unsupported EC curve");
    }
    if (!publicCheck(key.pkey.get())) return malformed("EC point not on the curve");
  } else if (EVP_PKEY_is_a(key.pkey.get(), "ED25519")) {
    key.type = KeyType::kOkp;
    key.curve = Curve::kEd25519;
    key.bits = 256;
  } else {
    return malformed("unsupported public key type");
  }
  std::vector<Jwk> keys;
  keys.push_back(std::move(key));
  return std::make_shared<const KeySet>(std::move(keys), std::vector<SkippedKey>{});
}

JwtResult<std::shared_ptr<const KeySet>> hmacKeySet(std::string_view secret, std::string_view kid) {
  if (secret.empty()) return malformed("empty HMAC secret");
  Jwk key;
  key.kid = std::string(kid);
  key.type = KeyType::kOct;
  key.secret = std::string(secret);
  key.bits = secret.size() * 8;
  std::vector<Jwk> keys;
  keys.push_back(std::move(key));
  return std::make_shared<const KeySet>(std::move(keys), std::vector<SkippedKey>{});
}

}  // namespace portico::security
