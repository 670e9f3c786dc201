// Fuzz target: arbitrary bytes as a JWT, a JWKS document, a PEM public key, and a claim path
// over a JSON claim set (the input split at its first newline: path, then JSON). The token is
// verified against a fixed key set with every algorithm allowed (HMAC, RSA, EC and Ed25519
// keys from RFC 7515 and RFC 8037), so well-formed inputs reach every signature check and the
// claim checks. Whatever the bytes: no crash, no leak, no read out of bounds (ASan + UBSan),
// and bounded time (token and documents are size-capped before any work).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "security/jwks.h"
#include "security/jwt.h"

namespace {

using namespace portico::security;

constexpr std::string_view kKeys = R"({"keys":[
{"kty":"oct","kid":"hs","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
{"kty":"RSA","kid":"rsa","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
{"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
{"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})";

const Verifier& verifier() {
  static const Verifier* v = [] {
    auto keys = parseJwks(kKeys);
    if (!keys.ok() || (*keys)->keys().size() != 4) std::abort();
    VerifierOptions o;
    o.algorithms = AlgSet::all();
    o.issuer = "joe";
    o.audiences = {"api"};
    o.required_claims = {{"org.tenant", {"acme"}}, {"/roles/0", {}}};
    return new Verifier(std::move(o), *keys);
  }();
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto verified = verifier().verify(in, 1300819000);
  if (verified.ok()) {
    for (const auto& path : {"org.tenant", "/roles/0", "roles", "iss"})
      if (const auto* c = findClaim(verified->claims, path)) (void)claimValue(*c);
  } else {
    (void)reasonName(verified.error().reason);
  }
  if (auto jws = parseJws(in); jws.ok()) {
    if (auto claims = decodeClaims(jws->payload_b64); claims.ok())
      (void)verifier().checkClaims(*claims, 0);
  }

  if (auto keys = parseJwks(in); keys.ok()) {
    for (const auto& key : (*keys)->keys())
      for (int a = 0; a < kAlgCount; ++a)
        if (key.serves(static_cast<Alg>(a)))
          (void)verifySignature(static_cast<Alg>(a), key, "e30.e30", std::string(64, 'x'));
  }
  (void)parsePemPublicKey(in, "kid");

  size_t nl = in.find('\n');
  if (nl != std::string_view::npos) {
    if (auto json = parseStrictJson(in.substr(nl + 1)))
      if (const auto* c = findClaim(*json, in.substr(0, nl))) (void)claimValue(*c);
  }
  return 0;
}
