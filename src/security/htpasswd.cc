#include "security/htpasswd.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

namespace portico::security {
namespace {

constexpr std::string_view kItoa64 =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool isCryptChar(char c) { return kItoa64.find(c) != std::string_view::npos; }

bool allCryptChars(std::string_view s) { return std::all_of(s.begin(), s.end(), isCryptChar); }

bool isBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// `$2y$NN$` + 22 salt + 31 hash characters.
bool validBcrypt(std::string_view h) {
  if (h.size() != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y'))
    return false;
  if (h[3] != '$' || h[6] != '$' || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9')
    return false;
  int cost = (h[4] - '0') * 10 + (h[5] - '0');
  return cost >= 4 && cost <= 31 && allCryptChars(h.substr(7));
}

// `$apr1$salt$` + 22 characters, salt 1..8 characters.
bool validApr1(std::string_view h) {
  std::string_view rest = h.substr(6);
  size_t d = rest.find('$');
  if (d == 0 || d == std::string_view::npos || d > 8) return false;
  std::string_view salt = rest.substr(0, d), sum = rest.substr(d + 1);
  return salt.find(':') == std::string_view::npos && sum.size() == 22 && allCryptChars(sum);
}

// `$5$[rounds=N$]salt$` + 43 (SHA-256) or 86 (SHA-512) characters; salt at most 16.
bool validShaCrypt(std::string_view h, size_t sum_len) {
  std::string_view rest = h.substr(3);
  if (rest.starts_with("rounds=")) {
    size_t d = rest.find('$');
    if (d == std::string_view::npos || d == 7 || d > 16) return false;
    for (char c : rest.substr(7, d - 7))
      if (c < '0' || c > '9') return false;
    rest.remove_prefix(d + 1);
  }
  size_t d = rest.find('$');
  if (d == std::string_view::npos || d > 16) return false;
  for (char c : rest.substr(0, d))
    if (c == ':' || c == '\n' || c == '\0') return false;
  std::string_view sum = rest.substr(d + 1);
  return sum.size() == sum_len && allCryptChars(sum);
}

// `{SHA}` + base64 of 20 bytes (27 characters and one '=').
bool validSha1(std::string_view h) {
  std::string_view b = h.substr(5);
  if (b.size() != 28 || b[27] != '=') return false;
  return std::all_of(b.begin(), b.begin() + 27, isBase64Char);
}

std::optional<HtpasswdUser::Scheme> schemeOf(std::string_view hash, std::string* reason) {
  using Scheme = HtpasswdUser::Scheme;
  if (hash.starts_with("$2")) {
    if (validBcrypt(hash)) return Scheme::kBcrypt;
    *reason = "malformed bcrypt hash";
  } else if (hash.starts_with("$apr1$")) {
    if (validApr1(hash)) return Scheme::kApr1;
    *reason = "malformed $apr1$ hash";
  } else if (hash.starts_with("$5$")) {
    if (validShaCrypt(hash, 43)) return Scheme::kSha256;
    *reason = "malformed $5$ (SHA-256-crypt) hash";
  } else if (hash.starts_with("$6$")) {
    if (validShaCrypt(hash, 86)) return Scheme::kSha512;
    *reason = "malformed $6$ (SHA-512-crypt) hash";
  } else if (hash.starts_with("{SHA}")) {
    if (validSha1(hash)) return Scheme::kSha1;
    *reason = "malformed {SHA} hash";
  } else if (hash.size() == 13 && allCryptChars(hash)) {
    *reason = "crypt DES hashes (htpasswd -d) are not supported; use bcrypt (htpasswd -B)";
  } else if (hash.starts_with("$")) {
    *reason = "unsupported hash scheme (supported: bcrypt, $apr1$, $5$, $6$, {SHA})";
  } else {
    *reason = "plain-text or unknown password hash (supported: bcrypt, $apr1$, $5$, $6$, {SHA})";
  }
  return std::nullopt;
}

void md5Update(EVP_MD_CTX* ctx, std::string_view s) { EVP_DigestUpdate(ctx, s.data(), s.size()); }

void to64(std::string& out, uint32_t v, int n) {
  while (n-- > 0) {
    out.push_back(kItoa64[v & 0x3f]);
    v >>= 6;
  }
}

}  // namespace

std::string apr1Crypt(std::string_view pw, std::string_view setting) {
  constexpr std::string_view kMagic = "$apr1$";
  if (!setting.starts_with(kMagic)) return "";
  std::string_view salt = setting.substr(kMagic.size());
  salt = salt.substr(0, std::min<size_t>(salt.find('$'), 8));

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return "";
  unsigned char fin[16];
  unsigned len = 0;
  // alt = MD5(pw salt pw)
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  md5Update(ctx, pw);
  md5Update(ctx, salt);
  md5Update(ctx, pw);
  EVP_DigestFinal_ex(ctx, fin, &len);

  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  md5Update(ctx, pw);
  md5Update(ctx, kMagic);
  md5Update(ctx, salt);
  for (size_t pl = pw.size(); pl > 0; pl -= std::min<size_t>(pl, 16))
    EVP_DigestUpdate(ctx, fin, std::min<size_t>(pl, 16));
  std::memset(fin, 0, sizeof fin);
  for (size_t i = pw.size(); i != 0; i >>= 1) {
    if (i & 1)
      EVP_DigestUpdate(ctx, fin, 1);
    else
      EVP_DigestUpdate(ctx, pw.data(), 1);
  }
  EVP_DigestFinal_ex(ctx, fin, &len);

  for (int i = 0; i < 1000; ++i) {
    EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
    if (i & 1)
      md5Update(ctx, pw);
    else
      EVP_DigestUpdate(ctx, fin, 16);
    if (i % 3) md5Update(ctx, salt);
    if (i % 7) md5Update(ctx, pw);
    if (i & 1)
      EVP_DigestUpdate(ctx, fin, 16);
    else
      md5Update(ctx, pw);
    EVP_DigestFinal_ex(ctx, fin, &len);
  }
  EVP_MD_CTX_free(ctx);

  std::string out(kMagic);
  out.append(salt);
  out.push_back('$');
  to64(out, (uint32_t{fin[0]} << 16) | (uint32_t{fin[6]} << 8) | fin[12], 4);
  to64(out, (uint32_t{fin[1]} << 16) | (uint32_t{fin[7]} << 8) | fin[13], 4);
  to64(out, (uint32_t{fin[2]} << 16) | (uint32_t{fin[8]} << 8) | fin[14], 4);
  to64(out, (uint32_t{fin[3]} << 16) | (uint32_t{fin[9]} << 8) | fin[15], 4);
  to64(out, (uint32_t{fin[4]} << 16) | (uint32_t{fin[10]} << 8) | fin[5], 4);
  to64(out, fin[11], 2);
  return out;
}

std::optional<std::vector<HtpasswdUser>> parseHtpasswd(std::string_view text, std::string* error) {
  std::vector<HtpasswdUser> users;
  std::unordered_set<std::string_view> seen;
  size_t line_no = 0;
  auto fail = [&](const std::string& reason) {
    if (error) *error = "line " + std::to_string(line_no) + ": " + reason;
    return std::nullopt;
  };
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected user:hash");
    std::string_view name = line.substr(0, colon), hash = line.substr(colon + 1);
    if (name.empty()) return fail("empty user name");
    for (char c : name)
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f)
        return fail("user name has a space or control character");
    if (hash.empty()) return fail("user \"" + std::string(name) + "\" has no password hash");
    if (!seen.insert(name).second) return fail("duplicate user \"" + std::string(name) + "\"");
    std::string reason;
    auto scheme = schemeOf(hash, &reason);
    if (!scheme) return fail("user \"" + std::string(name) + "\": " + reason);
    users.push_back({std::string(name), *scheme, std::string(hash)});
  }
  std::sort(users.begin(), users.end(),
            [](const HtpasswdUser& a, const HtpasswdUser& b) { return a.name < b.name; });
  return users;
}

bool verifyPassword(const HtpasswdUser& user, std::string_view password) {
  using Scheme = HtpasswdUser::Scheme;
  switch (user.scheme) {
    case Scheme::kSha1: {
      unsigned char md[20];
      unsigned len = 0;
      if (!EVP_Digest(password.data(), password.size(), md, &len, EVP_sha1(), nullptr))
        return false;
      char b64[29];
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64), md, 20);
      return constantTimeEqual(std::string_view(user.hash).substr(5), std::string_view(b64, 28));
    }
    case Scheme::kApr1:
      return constantTimeEqual(apr1Crypt(password, user.hash), user.hash);
    case Scheme::kBcrypt:
    case Scheme::kSha256:
    case Scheme::kSha512: {
      if (password.find('\0') != std::string_view::npos) return false;
      std::string pw(password);
      struct crypt_data data;
      std::memset(&data, 0, sizeof data);
      const char* out = crypt_rn(pw.c_str(), user.hash.c_str(), &data, sizeof data);
      OPENSSL_cleanse(pw.data(), pw.size());
      bool ok = out && out[0] != '*' && constantTimeEqual(out, user.hash);
      OPENSSL_cleanse(&data, sizeof data);
      return ok;
    }
  }
  return false;
}

}  // namespace portico::security
