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

namespace {

// A SAX handler building the DOM directly, refusing duplicate member names (looked up in the
// object being built) and nesting deeper than `max_depth`. Cheaper than nlohmann's callback
// parser: no std::function, no copy of the names seen.
class StrictDomBuilder {
 public:
  using json = nlohmann::json;
  explicit StrictDomBuilder(size_t max_depth) : max_depth_(max_depth) {}

  bool null() { return place(json(nullptr)); }
  bool boolean(bool v) { return place(json(v)); }
  bool number_integer(json::number_integer_t v) { return place(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return place(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return place(json(v)); }
  bool string(std::string& v) { return place(json(std::move(v))); }
  bool binary(json::binary_t&) { return false; }
  bool start_object(size_t) { return open(json::value_t::object); }
  bool start_array(size_t) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    auto& obj = stack_.back()->get_ref<json::object_t&>();
    if (obj.find(k) != obj.end()) return false;  // RFC 7515 §5.2, RFC 8725 §2.6
    key_ = std::move(k);
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  json& root() { return root_; }

 private:
  bool place(json&& v) { return insert(std::move(v)) != nullptr; }
  json* insert(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      auto& arr = top->get_ref<json::array_t&>();
      arr.push_back(std::move(v));
      return &arr.back();
    }
    auto& obj = top->get_ref<json::object_t&>();
    return &obj.emplace(std::move(key_), std::move(v)).first->second;
  }
  bool open(json::value_t type) {
    if (stack_.size() >= max_depth_) return false;
    stack_.push_back(insert(json(type)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  size_t max_depth_;
  json root_;
  std::string key_;
  std::vector<json*> stack_;
};

}  // namespace

std::optional<nlohmann::json> parseStrictJson(std::string_view text, int max_depth) {
  StrictDomBuilder builder(static_cast<size_t>(max_depth < 0 ? 0 : max_depth));
  if (!nlohmann::json::sax_parse(text.begin(), text.end(), &builder,
                                 nlohmann::json::input_format_t::json, /*strict=*/true,
                                 /*ignore_comments=*/false))
    return std::nullopt;
  return std::move(builder.root());
}

}  // namespace portico::security
