#include "security/jwt.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace portico::security {

namespace {

using json = nlohmann::json;

JwtError fail(JwtReason reason, std::string description) {
  return JwtError{reason, std::move(description)};
}

// A NumericDate claim: absent (nullopt, ok), a number (value), or malformed (error set).
std::optional<double> numericDate(const json& claims, const char* name, bool& malformed) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    malformed = true;
    return std::nullopt;
  }
  return it->get<double>();
}

// True when `claim` equals `expected` as a header-ready scalar, or any element of an array
// claim does.
bool claimMatches(const json& claim, const std::string& expected) {
  if (claim.is_array()) {
    for (const auto& e : claim)
      if (!e.is_array() && !e.is_object() && claimMatches(e, expected)) return true;
    return false;
  }
  if (claim.is_string()) return claim.get_ref<const std::string&>() == expected;
  auto v = claimValue(claim);
  return v && *v == expected;
}

bool appendScalar(const json& v, std::string& out) {
  switch (v.type()) {
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
      out += s;
      return true;
    }
    case json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return true;
    case json::value_t::number_integer:
      out += std::to_string(v.get<int64_t>());
      return true;
    case json::value_t::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      return true;
    case json::value_t::number_float:
      out += v.dump();
      return true;
    default:
      return false;
  }
}

// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, "application/" optional.
bool sameMediaType(std::string_view a, std::string_view b) {
  auto strip = [](std::string_view t) {
    constexpr std::string_view kApp = "application/";
    if (t.size() > kApp.size()) {
      bool app = true;
      for (size_t i = 0; i < kApp.size() && app; ++i)
        app = std::tolower(static_cast<unsigned char>(t[i])) == kApp[i];
      if (app) t.remove_prefix(kApp.size());
    }
    return t;
  };
  a = strip(a), b = strip(b);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

const json* pointer(const json& root, std::string_view path) {
  const json* cur = &root;
  std::string token;
  size_t pos = 1;
  while (true) {
    size_t end = path.find('/', pos);
    std::string_view raw = path.substr(pos, end == std::string_view::npos ? path.npos : end - pos);
    token.clear();
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '~') {
        token.push_back(raw[i]);
      } else if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        token.push_back(raw[++i] == '0' ? '~' : '/');
      } else {
        return nullptr;
      }
    }
    if (cur->is_object()) {
      auto it = cur->find(token);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      if (token.empty() || token.size() > 9 || (token.size() > 1 && token[0] == '0'))
        return nullptr;
      size_t idx = 0;
      for (char c : token) {
        if (c < '0' || c > '9') return nullptr;
        idx = idx * 10 + static_cast<size_t>(c - '0');
      }
      if (idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    } else {
      return nullptr;
    }
    if (end == std::string_view::npos) return cur;
    pos = end + 1;
  }
}

}  // namespace

JwtResult<ParsedJws> parseJws(std::string_view token, size_t max_token_bytes) {
  if (token.size() > max_token_bytes)
    return fail(JwtReason::kTooLarge,
                "Jwt is larger than " + std::to_string(max_token_bytes) + " bytes");
  size_t d1 = token.find('.');
  size_t d2 = d1 == token.npos ? token.npos : token.find('.', d1 + 1);
  if (d2 == token.npos || token.find('.', d2 + 1) != token.npos)
    return fail(JwtReason::kMalformed, "Jwt is not a compact JWS (header.payload.signature)");
  ParsedJws out;
  std::string_view header_b64 = token.substr(0, d1);
  out.payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  out.signing_input = token.substr(0, d2);
  std::string header_text;
  if (header_b64.empty() || !base64UrlDecode(header_b64, header_text))
    return fail(JwtReason::kMalformed, "Jwt header is not base64url");
  // The payload is decoded only after the signature verified, but its alphabet is checked
  // now so that a malformed token is reported as such whatever the key.
  for (char c : out.payload_b64)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return fail(JwtReason::kMalformed, "Jwt payload is not base64url");
  if (out.payload_b64.empty() || out.payload_b64.size() % 4 == 1)
    return fail(JwtReason::kMalformed, "Jwt payload is not base64url");
  if (!base64UrlDecode(token.substr(d2 + 1), out.signature))
    return fail(JwtReason::kMalformed, "Jwt signature is not base64url");
  auto header = parseStrictJson(header_text, 8);
  if (!header || !header->is_object())
    return fail(JwtReason::kMalformed, "Jwt header is not a JSON object");
  out.header = std::move(*header);
  auto alg = out.header.find("alg");
  if (alg == out.header.end() || !alg->is_string())
    return fail(JwtReason::kMalformed, "Jwt header has no alg");
  auto parsed_alg = parseAlg(alg->get_ref<const std::string&>());
  if (!parsed_alg) {
    const auto& name = alg->get_ref<const std::string&>();
    bool none = name.size() == 4;
    for (size_t i = 0; i < name.size() && none; ++i)
      none = std::tolower(static_cast<unsigned char>(name[i])) == "none"[i];
    return fail(JwtReason::kAlgNotAllowed,
                none ? "Jwt alg none is never accepted" : "Jwt alg is not supported");
  }
  out.alg = *parsed_alg;
  if (auto kid = out.header.find("kid"); kid != out.header.end()) {
    if (!kid->is_string()) return fail(JwtReason::kMalformed, "Jwt kid is not a string");
    out.kid = kid->get<std::string>();
  }
  if (auto typ = out.header.find("typ"); typ != out.header.end() && !typ->is_string())
    return fail(JwtReason::kMalformed, "Jwt typ is not a string");
  if (auto crit = out.header.find("crit"); crit != out.header.end()) {
    if (!crit->is_array() || crit->empty())
      return fail(JwtReason::kMalformed, "Jwt crit is not a non-empty array");
    for (const auto& c : *crit)
      if (!c.is_string()) return fail(JwtReason::kMalformed, "Jwt crit is not a list of names");
    // RFC 7515 §4.1.11: every listed extension must be understood; Portico understands none.
    return fail(JwtReason::kUnknownCrit, "Jwt crit lists an unsupported extension");
  }
  return out;
}

JwtResult<json> decodeClaims(std::string_view payload_b64) {
  std::string text;
  if (!base64UrlDecode(payload_b64, text))
    return fail(JwtReason::kMalformed, "Jwt payload is not base64url");
  auto claims = parseStrictJson(text, 16);
  if (!claims || !claims->is_object())
    return fail(JwtReason::kMalformed, "Jwt payload is not a JSON object");
  return std::move(*claims);
}

JwtResult<VerifiedJwt> Verifier::verify(std::string_view token, int64_t now) const {
  auto parsed = parseJws(token, options_.max_token_bytes);
  if (!parsed.ok()) return parsed.error();
  ParsedJws& jws = *parsed;
  if (!options_.algorithms.contains(jws.alg))
    return fail(JwtReason::kAlgNotAllowed, "Jwt alg is not allowed");
  if (!options_.allowed_types.empty()) {
    auto typ = jws.header.find("typ");
    bool ok = false;
    if (typ != jws.header.end())
      for (const auto& t : options_.allowed_types)
        ok = ok || sameMediaType(t, typ->get_ref<const std::string&>());
    if (!ok) return fail(JwtReason::kMalformed, "Jwt typ is not accepted");
  }
  if (!keys_) return fail(JwtReason::kNoMatchingKey, "no keys to verify the Jwt");

  // Key selection: by kid when the token names one, else every key; only keys serving the alg.
  bool kid_found = false;
  size_t tried = 0;
  const Jwk* verified_by = nullptr;
  for (const Jwk& key : keys_->keys()) {
    // A key without a kid is a candidate for any token (as in Envoy): a PEM key or a JWKS
    // without kids still verifies tokens that carry one.
    if (jws.kid && !key.kid.empty() && key.kid != *jws.kid) continue;
    kid_found = true;
    if (!key.serves(jws.alg)) continue;
    if (tried == options_.max_keys_tried) break;
    ++tried;
    if (verifySignature(jws.alg, key, jws.signing_input, jws.signature)) {
      verified_by = &key;
      break;
    }
  }
  if (!verified_by) {
    if (jws.kid && !kid_found)
      return fail(JwtReason::kUnknownKid, "Jwks doesn't have a key with the Jwt kid");
    if (tried == 0)
      return fail(JwtReason::kNoMatchingKey, "Jwks doesn't have a key to match the Jwt alg");
    return fail(JwtReason::kBadSignature,
                jws.signature.empty() ? "Jwt signature is missing" : "Jwt verification fails");
  }

  auto claims = decodeClaims(jws.payload_b64);
  if (!claims.ok()) return claims.error();
  auto checked = checkClaims(*claims, now);
  if (!checked.ok()) return checked.error();

  VerifiedJwt out;
  out.alg = jws.alg;
  out.kid = verified_by->kid;
  out.header = std::move(jws.header);
  out.claims = std::move(*claims);
  if (auto exp = out.claims.find("exp"); exp != out.claims.end()) {
    // Clamped: a cast of a double beyond int64 is undefined. 2^62 s is far past any deadline.
    constexpr double kFar = 4611686018427387904.0;
    out.expires = static_cast<int64_t>(std::floor(std::clamp(exp->get<double>(), -kFar, kFar)));
  }
  return out;
}

JwtResult<bool> Verifier::checkClaims(const json& claims, int64_t now_s) const {
  const double now = static_cast<double>(now_s);
  const double skew = static_cast<double>(options_.clock_skew_seconds);
  bool bad = false;
  auto exp = numericDate(claims, "exp", bad);
  auto nbf = numericDate(claims, "nbf", bad);
  auto iat = numericDate(claims, "iat", bad);
  if (bad) return fail(JwtReason::kMalformed, "Jwt exp, nbf or iat is not a number");
  if (exp && now >= *exp + skew) return fail(JwtReason::kExpired, "Jwt is expired");
  // A token that never expires, where one must: invalid (401), not a lack of permission (403).
  if (!exp && options_.require_expiration)
    return fail(JwtReason::kExpired, "Jwt has no exp (an expiration is required)");
  if (nbf && now < *nbf - skew) return fail(JwtReason::kNotYetValid, "Jwt not yet valid");
  if (iat && *iat > now + skew) return fail(JwtReason::kNotYetValid, "Jwt issued in the future");

  if (!options_.issuer.empty()) {
    auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() ||
        iss->get_ref<const std::string&>() != options_.issuer)
      return fail(JwtReason::kWrongIssuer, "Jwt issuer is not configured");
  }
  if (!options_.audiences.empty()) {
    auto aud = claims.find("aud");
    bool ok = false;
    auto allowed = [&](const json& v) {
      if (!v.is_string()) return false;
      for (const auto& a : options_.audiences)
        if (a == v.get_ref<const std::string&>()) return true;
      return false;
    };
    if (aud != claims.end()) {
      if (aud->is_array()) {
        for (const auto& v : *aud) ok = ok || allowed(v);
      } else {
        ok = allowed(*aud);
      }
    }
    if (!ok) return fail(JwtReason::kWrongAudience, "Audiences in Jwt are not allowed");
  }
  for (const auto& rc : options_.required_claims) {
    const json* claim = findClaim(claims, rc.path);
    if (!claim || claim->is_null())
      return fail(JwtReason::kMissingClaim, "Jwt lacks required claim " + rc.path);
    if (rc.values.empty()) continue;
    bool ok = false;
    for (const auto& v : rc.values) ok = ok || claimMatches(*claim, v);
    if (!ok) return fail(JwtReason::kClaimMismatch, "Jwt claim " + rc.path + " is not allowed");
  }
  return true;
}

const json* findClaim(const json& claims, std::string_view path) {
  if (!claims.is_object() || path.empty()) return nullptr;
  if (path[0] == '/') return pointer(claims, path);
  if (auto it = claims.find(path); it != claims.end()) return &*it;
  const json* cur = &claims;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string_view name = path.substr(pos, dot == path.npos ? path.npos : dot - pos);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(name);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == path.npos) return cur;
    pos = dot + 1;
  }
}

std::optional<std::string> claimValue(const json& value) {
  std::string out;
  if (value.is_array()) {
    bool first = true;
    for (const auto& e : value) {
      if (!first) out.push_back(',');
      first = false;
      if (!appendScalar(e, out)) return std::nullopt;
    }
    return out;
  }
  if (!appendScalar(value, out)) return std::nullopt;
  return out;
}

}  // namespace portico::security
