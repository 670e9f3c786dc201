// JWT/JWS/JWKS verification against tokens made by independent implementations: PyJWT and
// `openssl` (test/vectors/jwt/make_vectors.py, run again here with fresh keys), and the worked
// examples of RFC 7515 Appendix A and RFC 8037 Appendix A typed from the RFC text.
#include "security/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "security/jwks.h"

namespace portico::security {
namespace {

using json = nlohmann::json;

std::string vectorsDir() { return std::string(PORTICO_SOURCE_DIR) + "/test/vectors/jwt"; }

json loadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::shared_ptr<const KeySet> keySetFrom(const json& spec) {
  auto ks = spec.contains("jwks") ? parseJwks(spec["jwks"].dump())
                                  : parsePemPublicKey(spec["pem"].get<std::string>());
  EXPECT_TRUE(ks.ok()) << (ks.ok() ? "" : ks.error().description);
  return ks.ok() ? *ks : nullptr;
}

VerifierOptions opts(AlgSet algs, std::string issuer = "", size_t max_keys_tried = 4) {
  VerifierOptions o;
  o.algorithms = algs;
  o.issuer = std::move(issuer);
  o.max_keys_tried = max_keys_tried;
  return o;
}

VerifierOptions optionsFrom(const json& c) {
  VerifierOptions o;
  for (const auto& a : c["algs"]) o.algorithms.add(*parseAlg(a.get<std::string>()));
  o.issuer = c["issuer"].get<std::string>();
  o.audiences = c["audiences"].get<std::vector<std::string>>();
  if (c.contains("clock_skew")) o.clock_skew_seconds = c["clock_skew"].get<int64_t>();
  if (c.contains("require_expiration")) o.require_expiration = c["require_expiration"];
  if (c.contains("max_token_bytes")) o.max_token_bytes = c["max_token_bytes"].get<size_t>();
  if (c.contains("allowed_types"))
    o.allowed_types = c["allowed_types"].get<std::vector<std::string>>();
  if (c.contains("required"))
    for (const auto& r : c["required"])
      o.required_claims.push_back(
          {r["path"].get<std::string>(), r["values"].get<std::vector<std::string>>()});
  return o;
}

// Runs every case of a vectors file; returns the number checked.
size_t runVectors(const json& doc) {
  std::map<std::string, std::shared_ptr<const KeySet>> sets;
  for (const auto& [name, spec] : doc["keysets"].items()) sets[name] = keySetFrom(spec);

  // The main JWKS keeps the four usable keys and skips the others with their reasons.
  const auto& main = *sets["main"];
  EXPECT_EQ(main.keys().size(), 4u);
  std::map<std::string, std::string> skipped;
  for (const auto& s : main.skipped()) skipped[s.kid] = s.reason;
  EXPECT_EQ(skipped.size(), 4u);
  EXPECT_EQ(skipped["unknown-kty"], "unsupported \"kty\"");
  EXPECT_EQ(skipped["rsa-1024"], "RSA key shorter than 2048 bits");
  EXPECT_EQ(skipped["rsa-enc"], "\"use\" is not \"sig\"");
  EXPECT_EQ(skipped["off-curve"], "EC point not on the curve");

  std::string secret_b64 = doc["keysets"]["hmac"]["jwks"]["keys"][0]["k"];
  std::string pem = doc["keysets"]["pem_rsa"]["pem"];
  size_t n = 0;
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Verifier v(optionsFrom(c), sets[c["keyset"].get<std::string>()]);
    auto r = v.verify(c["token"].get<std::string>(), c["now"].get<int64_t>());
    std::string expect = c["expect"];
    if (expect == "ok") {
      EXPECT_TRUE(r.ok()) << reasonName(r.error().reason) << ": " << r.error().description;
      if (r.ok()) {
        EXPECT_EQ(r->claims["sub"], "device-7");
        EXPECT_EQ(r->expires.has_value(), r->claims.contains("exp"));
      }
    } else {
      if (r.ok()) {
        ADD_FAILURE() << "verified, expected " << expect;
        continue;
      }
      EXPECT_EQ(reasonName(r.error().reason), expect) << r.error().description;
      // Nothing about keys in the description.
      EXPECT_EQ(r.error().description.find(secret_b64.substr(0, 8)), std::string::npos);
      EXPECT_EQ(r.error().description.find("BEGIN"), std::string::npos);
      EXPECT_EQ(r.error().description.find(pem.substr(27, 16)), std::string::npos);
      EXPECT_LT(r.error().description.size(), 80u);
    }
    ++n;
  }
  return n;
}

TEST(JwtVectors, CheckedInPyJwtTokens) {
  size_t n = runVectors(loadJson(vectorsDir() + "/vectors.json"));
  EXPECT_GT(n, 90u);
}

TEST(JwtVectors, FreshPyJwtTokens) {
  if (std::system("/usr/bin/python3 -c 'import jwt' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3-jwt is not installed";
  char dir[] = "/tmp/portico-jwt-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string out = std::string(dir) + "/vectors.json";
  std::string cmd = "/usr/bin/python3 " + vectorsDir() + "/make_vectors.py " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  size_t n = runVectors(loadJson(out));
  EXPECT_GT(n, 90u);
  std::remove(out.c_str());
  rmdir(dir);
}

// --- RFC 7515 Appendix A and RFC 8037 Appendix A --------------------------------------------

// {"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}
constexpr std::string_view kRfcPayload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
constexpr int64_t kBeforeRfcExp = 1300819000;

std::string rfcToken(std::string_view header, std::string_view sig) {
  return std::string(header) + "." + std::string(kRfcPayload) + "." + std::string(sig);
}

TEST(JwtRfc7515, A1Hs256) {
  auto keys = parseJwks(
      R"({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})");
  ASSERT_TRUE(keys.ok());
  Verifier v(opts({Alg::kHS256}, "joe"), *keys);
  std::string token = rfcToken("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
                               "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
  auto r = v.verify(token, kBeforeRfcExp);
  ASSERT_TRUE(r.ok()) << r.error().description;
  EXPECT_EQ(r->claims["http://example.com/is_root"], true);
  EXPECT_EQ(claimValue(*findClaim(r->claims, "http://example.com/is_root")), "true");
  EXPECT_EQ(*r->expires, 1300819380);
  auto late = v.verify(token, 1300819380 + 60);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().reason, JwtReason::kExpired);
}

constexpr std::string_view kA2Jwks =
    R"({"keys":[{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}]})";
constexpr std::string_view kA2Signature =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
    "p0igcN_IoypGlUPQGe77Rw";

TEST(JwtRfc7515, A2Rs256) {
  auto keys = parseJwks(kA2Jwks);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ((*keys)->keys().size(), 1u);
  EXPECT_EQ((*keys)->keys()[0].bits, 2048u);
  Verifier v(opts({Alg::kRS256}, "joe"), *keys);
  auto r = v.verify(rfcToken("eyJhbGciOiJSUzI1NiJ9", kA2Signature), kBeforeRfcExp);
  ASSERT_TRUE(r.ok()) << r.error().description;
  EXPECT_EQ(r->alg, Alg::kRS256);
  // The same signature does not verify as PS256, nor as RS384.
  Verifier any(opts(AlgSet::all()), *keys);
  auto ps = any.verify(rfcToken("eyJhbGciOiJQUzI1NiJ9", kA2Signature), kBeforeRfcExp);
  ASSERT_FALSE(ps.ok());
  EXPECT_EQ(ps.error().reason, JwtReason::kBadSignature);
}

TEST(JwtRfc7515, A3Es256) {
  auto keys = parseJwks(
      R"({"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ((*keys)->keys().size(), 1u);
  Verifier v(opts({Alg::kES256}, "joe"), *keys);
  auto r = v.verify(rfcToken("eyJhbGciOiJFUzI1NiJ9",
                             "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ"
                             "xfKTUJqPP3-Kg6NU1Q"),
                    kBeforeRfcExp);
  ASSERT_TRUE(r.ok()) << r.error().description;
}

TEST(JwtRfc8037, A4Ed25519) {
  auto keys = parseJwks(
      R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ((*keys)->keys().size(), 1u);
  // The payload is the text "Example of Ed25519 signing", not a claim set: the signature is
  // checked alone.
  std::string token =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  auto jws = parseJws(token);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(jws->alg, Alg::kEdDSA);
  const Jwk& key = (*keys)->keys()[0];
  EXPECT_TRUE(verifySignature(Alg::kEdDSA, key, jws->signing_input, jws->signature));
  std::string tampered = jws->signature;
  tampered[0] ^= 1;
  EXPECT_FALSE(verifySignature(Alg::kEdDSA, key, jws->signing_input, tampered));
  // The whole token fails only at the claims: the signature held.
  Verifier v(opts({Alg::kEdDSA}), *keys);
  auto r = v.verify(token, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, JwtReason::kMalformed);
  EXPECT_EQ(r.error().description, "Jwt payload is not a JSON object");
}

// --- Building blocks ------------------------------------------------------------------------

TEST(Base64Url, StrictDecoding) {
  std::string out;
  EXPECT_TRUE(base64UrlDecode("aGVsbG8", out));
  EXPECT_EQ(out, "hello");
  for (std::string_view bad : {"aGVsbG8=", "aGVs bG8", "aGVs+G8", "aGVs/G8", "a", "aGVsbG9"}) {
    out.clear();
    EXPECT_FALSE(base64UrlDecode(bad, out)) << bad;  // the last: non-zero unused bits
  }
  out.clear();
  EXPECT_TRUE(base64UrlDecode("", out));
  EXPECT_TRUE(out.empty());
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len < 10; ++len) {
    std::string enc, dec;
    base64UrlEncode(all.substr(250 - len, len), enc);
    ASSERT_TRUE(base64UrlDecode(enc, dec));
    EXPECT_EQ(dec, all.substr(250 - len, len));
  }
}

TEST(StrictJson, DuplicatesAndDepth) {
  EXPECT_TRUE(parseStrictJson(R"({"a":{"b":1,"c":[{"b":2}]},"b":3})"));
  EXPECT_FALSE(parseStrictJson(R"({"a":1,"a":1})"));
  EXPECT_FALSE(parseStrictJson(R"({"a":{"b":1,"b":2}})"));
  EXPECT_FALSE(parseStrictJson(R"({"a":[{"b":1,"b":2}]})"));
  EXPECT_FALSE(parseStrictJson("{\"a\":1} x"));
  EXPECT_FALSE(parseStrictJson("{\"a\":\"\xff\"}"));  // not UTF-8
  std::string deep(40, '[');
  deep += std::string(40, ']');
  EXPECT_FALSE(parseStrictJson(deep, 16));
  EXPECT_TRUE(parseStrictJson(deep, 41));
}

TEST(JwtClaims, PathsAndHeaderValues) {
  json c = json::parse(R"({"tenant":"acme","org":{"tenant":"globex","a.b":{"c":7}},
    "roles":["r1","r2"],"n":1.5,"big":18446744073709551615,"neg":-3,"ok":false,"x.y":"dotted",
    "https://e.com/t":"url","bad":"a\r\nb","obj":{"k":1},"nested":[[1]],"nul":null,"~/":"esc"})");
  auto val = [&](std::string_view path) -> std::optional<std::string> {
    const json* j = findClaim(c, path);
    if (!j) return std::string("<absent>");
    return claimValue(*j);
  };
  EXPECT_EQ(val("tenant"), "acme");
  EXPECT_EQ(val("org.tenant"), "globex");
  EXPECT_EQ(val("/org/tenant"), "globex");
  EXPECT_EQ(val("/org/a.b/c"), "7");
  EXPECT_EQ(val("/roles/1"), "r2");
  EXPECT_EQ(val("/roles/01"), "<absent>");
  EXPECT_EQ(val("/~0~1"), "esc");
  EXPECT_EQ(val("/~2"), "<absent>");
  EXPECT_EQ(val("roles"), "r1,r2");
  EXPECT_EQ(val("n"), "1.5");
  EXPECT_EQ(val("big"), "18446744073709551615");
  EXPECT_EQ(val("neg"), "-3");
  EXPECT_EQ(val("ok"), "false");
  EXPECT_EQ(val("x.y"), "dotted");  // an exact top-level name wins over the dotted path
  EXPECT_EQ(val("https://e.com/t"), "url");
  EXPECT_EQ(val("bad"), std::nullopt);  // CR LF never reaches a header
  EXPECT_EQ(val("obj"), std::nullopt);
  EXPECT_EQ(val("nested"), std::nullopt);
  EXPECT_EQ(val("nul"), std::nullopt);
  EXPECT_EQ(val("org.missing"), "<absent>");
  EXPECT_EQ(val("tenant.x"), "<absent>");
  EXPECT_EQ(val(""), "<absent>");
}

TEST(JwtErrors, ForbiddenOnlyForClaimRequirements) {
  EXPECT_TRUE((JwtError{JwtReason::kMissingClaim, ""}).forbidden());
  EXPECT_TRUE((JwtError{JwtReason::kClaimMismatch, ""}).forbidden());
  EXPECT_FALSE((JwtError{JwtReason::kExpired, ""}).forbidden());
  EXPECT_FALSE((JwtError{JwtReason::kBadSignature, ""}).forbidden());
  Status s = JwtError{JwtReason::kExpired, "Jwt is expired"}.toStatus();
  EXPECT_EQ(s.message(), "expired: Jwt is expired");
  EXPECT_EQ(s.source(), ErrorSource::kDownstream);
}

TEST(Jwks, MalformedDocumentsAndLimits) {
  for (std::string_view bad : {"", "[]", "{}", R"({"keys":{}})", R"({"keys":[],"keys":[]})",
                               "{\"keys\":[", R"({"keys":[{"kty":"oct","k":"YQ","k":"YQ"}]})"}) {
    auto r = parseJwks(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().reason, JwtReason::kMalformed) << bad;
  }
  std::string many = R"({"keys":[)";
  for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + R"({"kty":"oct","k":"YQ"})";
  many += "]}";
  auto r = parseJwks(many);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, JwtReason::kTooLarge);
  JwksLimits limits;
  limits.max_keys = 100;
  EXPECT_TRUE(parseJwks(many, limits).ok());
  auto big = parseJwks(std::string(300 * 1024, ' '));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().reason, JwtReason::kTooLarge);
}

TEST(Jwks, SkipReasons) {
  auto r = parseJwks(R"({"keys":[
    {"kty":"oct","k":"c2VjcmV0","kid":"a","alg":"RS256"},
    {"kty":"oct","k":"c2VjcmV0","kid":"b","key_ops":["sign"]},
    {"kty":"oct","k":"c2VjcmV0","kid":"c","key_ops":["verify"],"alg":"HS256"},
    {"kty":"EC","crv":"P-521","x":"AA","y":"AA","kid":"d"},
    {"kty":"OKP","crv":"X25519","x":"AA","kid":"e"},
    {"kty":"RSA","n":"AQAB","kid":"f"},
    {"kty":"oct","k":"c2VjcmV0+","kid":"g"},
    {"kty":"oct","kid":7},
    "nope",
    {"kty":"EC","crv":"P-256","kid":"h","alg":"ES384","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
  ],"extra":true})");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)->keys().size(), 1u);
  EXPECT_EQ((*r)->keys()[0].kid, "c");
  std::vector<std::string> reasons;
  for (const auto& s : (*r)->skipped()) reasons.push_back(s.kid + ": " + s.reason);
  EXPECT_EQ(reasons, (std::vector<std::string>{
                         "a: \"alg\" does not fit \"kty\"",
                         "b: \"key_ops\" lacks \"verify\"",
                         "d: unsupported EC curve",
                         "e: unsupported OKP curve",
                         "f: missing or non-string \"e\"",
                         "g: \"k\" is not base64url",
                         ": non-string \"kid\"",
                         ": not a JSON object",
                         "h: \"alg\" does not fit \"crv\"",
                     }));
}

TEST(Jwks, PemKeys) {
  EXPECT_FALSE(parsePemPublicKey("not pem").ok());
  EXPECT_FALSE(
      parsePemPublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").ok());
}

TEST(JwtVerifier, HmacSecretLengthAndKeyTypes) {
  // An HMAC secret shorter than the hash is never used (RFC 7518 §3.2).
  auto short_secret = hmacKeySet("0123456789abcdef0123456789abcde");  // 31 bytes
  auto long_secret = hmacKeySet("0123456789abcdef0123456789abcdef");  // 32 bytes
  ASSERT_TRUE(short_secret.ok() && long_secret.ok());
  EXPECT_FALSE((*short_secret)->keys()[0].serves(Alg::kHS256));
  EXPECT_TRUE((*long_secret)->keys()[0].serves(Alg::kHS256));
  EXPECT_FALSE((*long_secret)->keys()[0].serves(Alg::kHS384));
  EXPECT_FALSE((*long_secret)->keys()[0].serves(Alg::kRS256));
  // verifySignature refuses a key that does not serve the alg instead of misusing it.
  EXPECT_FALSE(verifySignature(Alg::kRS256, (*long_secret)->keys()[0], "a.b", "sig"));
  auto rsa = parseJwks(kA2Jwks);
  ASSERT_TRUE(rsa.ok());
  EXPECT_FALSE((*rsa)->keys()[0].serves(Alg::kHS256));
  EXPECT_FALSE((*rsa)->keys()[0].serves(Alg::kES256));
  EXPECT_TRUE((*rsa)->keys()[0].serves(Alg::kPS512));
  EXPECT_FALSE(hmacKeySet("").ok());
}

TEST(JwtVerifier, KeysTriedAreBounded) {
  // Ten keys without kids; the token verifies only with the last: with the default bound of
  // four keys tried, it fails as a bad signature; with ten, it verifies.
  std::string jwks = R"({"keys":[)";
  for (int i = 0; i < 10; ++i) {
    std::string secret(32, static_cast<char>('a' + i)), k;
    base64UrlEncode(secret, k);
    jwks += std::string(i ? "," : "") + R"({"kty":"oct","k":")" + k + "\"}";
  }
  jwks += "]}";
  auto keys = parseJwks(jwks);
  ASSERT_TRUE(keys.ok());
  std::string h, p;
  base64UrlEncode(R"({"alg":"HS256"})", h);
  base64UrlEncode(R"({"sub":"x"})", p);
  const Jwk& last = (*keys)->keys()[9];
  std::string input = h + "." + p;
  unsigned char mac[32];
  size_t mac_len = 0;
  ASSERT_TRUE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, last.secret.data(),
                        last.secret.size(), reinterpret_cast<const unsigned char*>(input.data()),
                        input.size(), mac, sizeof mac, &mac_len));
  std::string sig;
  base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), mac_len), sig);
  std::string token = input + "." + sig;
  Verifier few(opts({Alg::kHS256}), *keys);
  auto r = few.verify(token, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, JwtReason::kBadSignature);
  Verifier many(opts({Alg::kHS256}, "", 10), *keys);
  EXPECT_TRUE(many.verify(token, 0).ok());
}

TEST(JwtVerifier, EmptyAllowListVerifiesNothing) {
  auto keys = parseJwks(kA2Jwks);
  ASSERT_TRUE(keys.ok());
  Verifier v(VerifierOptions{}, *keys);
  auto r = v.verify(rfcToken("eyJhbGciOiJSUzI1NiJ9", kA2Signature), kBeforeRfcExp);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, JwtReason::kAlgNotAllowed);
}

TEST(JwtVerifier, AlgNoneNeverVerifiesWhateverTheAllowList) {
  auto keys = hmacKeySet(std::string(64, 'k'));
  ASSERT_TRUE(keys.ok());
  Verifier v(opts(AlgSet::all()), *keys);
  for (std::string_view header : {R"({"alg":"none"})", R"({"alg":"NoNe"})"}) {
    std::string h, p;
    base64UrlEncode(header, h);
    base64UrlEncode(R"({"sub":"x"})", p);
    for (std::string sig : {"", "c2ln"}) {
      auto r = v.verify(h + "." + p + "." + sig, 0);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().reason, JwtReason::kAlgNotAllowed);
      EXPECT_EQ(r.error().description, "Jwt alg none is never accepted");
    }
  }
  EXPECT_FALSE(parseAlg("none"));
  EXPECT_FALSE(AlgSet::all().contains(static_cast<Alg>(kAlgCount)));
}

TEST(JwtVerifier, OneVerifierManyThreads) {
  // Workers share one Verifier and KeySet (shared_ptr<const>): concurrent verifications of good
  // and bad tokens all get their own answer.
  auto keys = parseJwks(kA2Jwks);
  ASSERT_TRUE(keys.ok());
  const Verifier v(opts({Alg::kRS256}, "joe"), *keys);
  const std::string good = rfcToken("eyJhbGciOiJSUzI1NiJ9", kA2Signature);
  std::string bad = good;
  bad[bad.size() - 5] = bad[bad.size() - 5] == 'A' ? 'B' : 'A';
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (!v.verify(good, kBeforeRfcExp).ok()) ++failures[t];
        auto r = v.verify(bad, kBeforeRfcExp);
        if (r.ok() || r.error().reason != JwtReason::kBadSignature) ++failures[t];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace portico::security
