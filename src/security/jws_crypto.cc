// Signature checks for each JWS algorithm (step 7 of jwt.h), OpenSSL 3 EVP only.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <array>
#include <memory>

#include "security/jwt.h"

namespace portico::security {

namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Digests fetched once per process: the implicit fetch behind EVP_sha256() costs a lookup on
// every call in OpenSSL 3.
const EVP_MD* digest(int bits) {
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD* sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  static EVP_MD* sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  return bits == 256 ? sha256 : bits == 384 ? sha384 : sha512;
}

int hashBits(Alg alg) {
  switch (alg) {
    case Alg::kHS384:
    case Alg::kRS384:
    case Alg::kPS384:
    case Alg::kES384:
      return 384;
    case Alg::kHS512:
    case Alg::kRS512:
    case Alg::kPS512:
      return 512;
    default:
      return 256;
  }
}

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool hmacVerify(Alg alg, const Jwk& key, std::string_view input, std::string_view sig) {
  const int bits = hashBits(alg);
  const size_t len = static_cast<size_t>(bits / 8);
  if (sig.size() != len) return false;
  std::array<unsigned char, 64> mac{};
  size_t out_len = 0;
  const char* name = bits == 256 ? "SHA256" : bits == 384 ? "SHA384" : "SHA512";
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, name, nullptr, key.secret.data(), key.secret.size(),
                 u8(input), input.size(), mac.data(), mac.size(), &out_len) ||
      out_len != len)
    return false;
  return CRYPTO_memcmp(mac.data(), sig.data(), len) == 0;
}

// Appends a DER INTEGER holding the unsigned big-endian `v`.
size_t derInteger(std::string_view v, unsigned char* out) {
  size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  std::string_view digits = v.substr(i);
  bool pad = !digits.empty() && (static_cast<unsigned char>(digits[0]) & 0x80);
  size_t len = digits.size() + (pad ? 1 : 0) + (digits.empty() ? 1 : 0);
  size_t n = 0;
  out[n++] = 0x02;
  out[n++] = static_cast<unsigned char>(len);
  if (pad || digits.empty()) out[n++] = 0;
  for (char c : digits) out[n++] = static_cast<unsigned char>(c);
  return n;
}

bool allZero(std::string_view v) {
  for (char c : v)
    if (c != 0) return false;
  return true;
}

bool pkeyVerify(Alg alg, const Jwk& key, std::string_view input, std::string_view sig) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == Alg::kEdDSA ? nullptr : digest(hashBits(alg));
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.pkey.get()) != 1) return false;
  if (alg == Alg::kPS256 || alg == Alg::kPS384 || alg == Alg::kPS512) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
      return false;
  }
  return EVP_DigestVerify(ctx.get(), u8(sig), sig.size(), u8(input), input.size()) == 1;
}

}  // namespace

bool verifySignature(Alg alg, const Jwk& key, std::string_view input, std::string_view sig) {
  if (!key.serves(alg)) return false;
  switch (keyTypeFor(alg)) {
    case KeyType::kOct:
      return hmacVerify(alg, key, input, sig);
    case KeyType::kRsa:
      // RFC 7518 §3.3: the signature is exactly as long as the modulus.
      if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()))) return false;
      return pkeyVerify(alg, key, input, sig);
    case KeyType::kOkp:
      if (sig.size() != 64) return false;
      return pkeyVerify(alg, key, input, sig);
    case KeyType::kEc: {
      // RFC 7518 §3.4: R‖S, each the curve's size; OpenSSL takes an ECDSA-Sig-Value in DER.
      const size_t half = alg == Alg::kES256 ? 32 : 48;
      if (sig.size() != 2 * half) return false;
      std::string_view r = sig.substr(0, half), s = sig.substr(half);
      if (allZero(r) || allZero(s)) return false;  // "psychic signatures"
      std::array<unsigned char, 2 + 2 * (3 + 48)> der{};
      size_t n = 2;
      n += derInteger(r, der.data() + n);
      n += derInteger(s, der.data() + n);
      der[0] = 0x30;
      der[1] = static_cast<unsigned char>(n - 2);
      return pkeyVerify(alg, key, input,
                        std::string_view(reinterpret_cast<const char*>(der.data()), n));
    }
  }
  return false;
}

}  // namespace portico::security
