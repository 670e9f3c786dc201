#include "security/jose.h"

#include <array>
#include <vector>

namespace portico::security {

namespace {

constexpr std::array<std::string_view, kAlgCount> kAlgNames = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
};

constexpr char kB64Chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> makeB64Table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64Chars[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kB64Table = makeB64Table();

}  // namespace

std::string_view algName(Alg alg) { return kAlgNames[static_cast<size_t>(alg)]; }

std::optional<Alg> parseAlg(std::string_view name) {
  for (size_t i = 0; i < kAlgNames.size(); ++i)
    if (kAlgNames[i] == name) return static_cast<Alg>(i);
  return std::nullopt;
}

KeyType keyTypeFor(Alg alg) {
  switch (alg) {
    case Alg::kHS256:
    case Alg::kHS384:
    case Alg::kHS512:
      return KeyType::kOct;
    case Alg::kES256:
    case Alg::kES384:
      return KeyType::kEc;
    case Alg::kEdDSA:
      return KeyType::kOkp;
    default:
      return KeyType::kRsa;
  }
}

std::string_view keyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kRsa:
      return "RSA";
    case KeyType::kEc:
      return "EC";
    case KeyType::kOkp:
      return "OKP";
    case KeyType::kOct:
      return "oct";
  }
  return "?";
}

std::string_view reasonName(JwtReason reason) {
  switch (reason) {
    case JwtReason::kMalformed:
      return "malformed";
    case JwtReason::kTooLarge:
      return "too_large";
    case JwtReason::kAlgNotAllowed:
      return "alg_not_allowed";
    case JwtReason::kUnknownCrit:
      return "unknown_crit";
    case JwtReason::kUnknownKid:
      return "unknown_kid";
    case JwtReason::kNoMatchingKey:
      return "no_matching_key";
    case JwtReason::kBadSignature:
      return "bad_signature";
    case JwtReason::kExpired:
      return "expired";
    case JwtReason::kNotYetValid:
      return "not_yet_valid";
    case JwtReason::kWrongIssuer:
      return "wrong_issuer";
    case JwtReason::kWrongAudience:
      return "wrong_audience";
    case JwtReason::kMissingClaim:
      return "missing_claim";
    case JwtReason::kClaimMismatch:
      return "claim_mismatch";
  }
  return "unknown";
}

bool base64UrlDecode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  out.reserve(out.size() + in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int8_t v = kB64Table[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits (2 or 4) must be zero: otherwise two strings would decode to the same bytes.
  return (acc & ((1u << bits) - 1)) == 0;
}

void base64UrlEncode(std::string_view in, std::string& out) {
  out.reserve(out.size() + (in.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Chars[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kB64Chars[(acc << (6 - bits)) & 0x3f]);
}

std::optional<nlohmann::json> parseStrictJson(std::string_view text, int max_depth) {
  using json = nlohmann::json;
  // One vector of member names per open container (arrays get an unused entry), so duplicate
  // names are found in the object where they occur. Objects in JOSE headers and claim sets
  // are small; a linear scan beats hashing here.
  std::vector<std::vector<std::string>> names;
  bool bad = false;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (bad) return false;
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= max_depth) {
          bad = true;
          return false;
        }
        names.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!names.empty()) names.pop_back();
        break;
      case json::parse_event_t::key: {
        if (names.empty() || !parsed.is_string()) break;
        const auto& key = parsed.get_ref<const std::string&>();
        auto& seen = names.back();
        for (const auto& k : seen)
          if (k == key) {
            bad = true;
            return false;
          }
        seen.push_back(key);
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json j = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false,
                       /*ignore_comments=*/false);
  if (bad || j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace portico::security
