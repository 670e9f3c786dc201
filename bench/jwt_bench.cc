// JWT verification cost (Google Benchmark): RS256, ES256, EdDSA and HS256 verifications per
// second with a cached parsed key (one signature check each, plus the claim checks), and the
// parse alone. Keys are generated at start with OpenSSL; tokens are signed here.
#include <benchmark/benchmark.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "security/jwks.h"
#include "security/jwt.h"

// Every operator new of the process is counted, so each benchmark reports the C++ heap
// allocations of one iteration (OpenSSL's own mallocs are not included). GCC cannot see that
// the replaced operator new is malloc, hence the pragma.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
std::atomic<uint64_t> g_allocs{0};

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

using namespace portico::security;

// Runs `fn` once per iteration and reports items/s and C++ allocations per item.
template <typename Fn>
void measure(benchmark::State& state, Fn&& fn) {
  uint64_t before = g_allocs.load(std::memory_order_relaxed);
  for (auto _ : state) fn();
  uint64_t allocs = g_allocs.load(std::memory_order_relaxed) - before;
  state.SetItemsProcessed(state.iterations());
  state.counters["allocs"] =
      static_cast<double>(allocs) / static_cast<double>(std::max<int64_t>(state.iterations(), 1));
}

constexpr int64_t kNow = 1700000000;
constexpr std::string_view kClaims =
    R"({"iss":"https://idp.example.com","aud":"devices-api","sub":"device-7","iat":1699999990,)"
    R"("nbf":1699999990,"exp":1700003600,"tenant":"acme","roles":["reader","writer"]})";

std::string b64(std::string_view s) {
  std::string out;
  base64UrlEncode(s, out);
  return out;
}

EVP_PKEY* keygen(const char* type, const char* arg) {
  EVP_PKEY* k = arg ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, arg)
                    : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  if (!k) std::abort();
  return k;
}

EVP_PKEY* rsaKeygen() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (!k) std::abort();
  return k;
}

std::string sign(EVP_PKEY* key, const EVP_MD* md, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) != 1 ||
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1)
    std::abort();
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    std::abort();
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  return sig;
}

// DER ECDSA-Sig-Value to the raw R‖S of RFC 7518 §3.4.
std::string rawEcdsa(const std::string& der, int half) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  std::string raw(2 * half, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), half);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + half, half);
  ECDSA_SIG_free(sig);
  return raw;
}

std::string publicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

struct Fixture {
  std::string token;
  std::unique_ptr<Verifier> verifier;
};

Fixture make(Alg alg) {
  std::string input =
      b64(std::string(R"({"alg":")") + std::string(algName(alg)) + R"(","typ":"JWT","kid":"k1"})") +
      "." + b64(kClaims);
  std::string sig;
  std::shared_ptr<const KeySet> keys;
  EVP_PKEY* key = nullptr;
  if (alg == Alg::kHS256) {
    std::string secret(32, 's');
    auto ks = hmacKeySet(secret, "k1");
    keys = *ks;
    size_t len = 0;
    unsigned char mac[32];
    EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, 32, &len);
    sig.assign(reinterpret_cast<char*>(mac), len);
  } else {
    if (alg == Alg::kRS256) {
      key = rsaKeygen();
      sig = sign(key, EVP_sha256(), input);
    } else if (alg == Alg::kES256) {
      key = keygen("EC", "P-256");
      sig = rawEcdsa(sign(key, EVP_sha256(), input), 32);
    } else {
      key = keygen("ED25519", nullptr);
      sig = sign(key, nullptr, input);
    }
    auto ks = parsePemPublicKey(publicPem(key), "k1");
    if (!ks.ok()) std::abort();
    keys = *ks;
    EVP_PKEY_free(key);
  }
  VerifierOptions o;
  o.algorithms.add(alg);
  o.issuer = "https://idp.example.com";
  o.audiences = {"devices-api"};
  o.required_claims = {{"tenant", {"acme"}}};
  Fixture f{input + "." + b64(sig), std::make_unique<Verifier>(std::move(o), keys)};
  if (!f.verifier->verify(f.token, kNow).ok()) std::abort();
  return f;
}

void BM_Verify(benchmark::State& state, Alg alg) {
  Fixture f = make(alg);
  measure(state, [&] {
    auto r = f.verifier->verify(f.token, kNow);
    benchmark::DoNotOptimize(r.ok());
  });
  state.counters["token_bytes"] = static_cast<double>(f.token.size());
}
BENCHMARK_CAPTURE(BM_Verify, RS256, Alg::kRS256);
BENCHMARK_CAPTURE(BM_Verify, ES256, Alg::kES256);
BENCHMARK_CAPTURE(BM_Verify, EdDSA, Alg::kEdDSA);
BENCHMARK_CAPTURE(BM_Verify, HS256, Alg::kHS256);

// The signature check alone (verifySignature with the parsed key): BM_Verify minus this is
// the cost of parsing and the claim checks.
void BM_SignatureOnly(benchmark::State& state, Alg alg) {
  Fixture f = make(alg);
  auto jws = parseJws(f.token);
  const Jwk& key = f.verifier->keys()->keys()[0];
  measure(state, [&] {
    benchmark::DoNotOptimize(verifySignature(alg, key, jws->signing_input, jws->signature));
  });
}
BENCHMARK_CAPTURE(BM_SignatureOnly, RS256, Alg::kRS256);
BENCHMARK_CAPTURE(BM_SignatureOnly, ES256, Alg::kES256);
BENCHMARK_CAPTURE(BM_SignatureOnly, HS256, Alg::kHS256);

// Split, base64url-decode and parse the header (no signature check, no payload).
void BM_ParseJws(benchmark::State& state) {
  Fixture f = make(Alg::kHS256);
  measure(state, [&] {
    auto r = parseJws(f.token);
    benchmark::DoNotOptimize(r.ok());
  });
}
BENCHMARK(BM_ParseJws);

// Decode the payload and check the claims (what follows a good signature).
void BM_DecodeAndCheckClaims(benchmark::State& state) {
  Fixture f = make(Alg::kHS256);
  auto jws = parseJws(f.token);
  measure(state, [&] {
    auto claims = decodeClaims(jws->payload_b64);
    auto ok = f.verifier->checkClaims(*claims, kNow);
    benchmark::DoNotOptimize(ok.ok());
  });
}
BENCHMARK(BM_DecodeAndCheckClaims);

}  // namespace

BENCHMARK_MAIN();
