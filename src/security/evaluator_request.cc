// The evaluator's request-reading helpers (headers, query parameters, cookies, credentials),
// the edit helpers of Ctx, and removeQueryParams.
#include <algorithm>

#include "security/evaluator_internal.h"

namespace portico::security {
namespace internal {

namespace {
std::string& pushString(std::vector<std::string>& v, std::vector<std::string>* spare) {
  if (spare && !spare->empty()) {
    v.push_back(std::move(spare->back()));
    spare->pop_back();
  } else {
    v.emplace_back();
  }
  return v.back();
}
}  // namespace

void Ctx::removeHeader(std::string_view name) {
  for (const auto& h : out->remove_headers)
    if (h == name) return;
  pushString(out->remove_headers, spare_strings).assign(name.data(), name.size());
}

void Ctx::removeQueryParam(std::string_view name) {
  for (const auto& h : out->remove_query_params)
    if (h == name) return;
  pushString(out->remove_query_params, spare_strings).assign(name.data(), name.size());
}

void Ctx::addHeader(std::string_view name, std::string_view value) {
  if (spare_adds && !spare_adds->empty()) {
    out->add_headers.push_back(std::move(spare_adds->back()));
    spare_adds->pop_back();
  } else {
    out->add_headers.emplace_back();
  }
  out->add_headers.back().name.assign(name.data(), name.size());
  out->add_headers.back().value.assign(value.data(), value.size());
}

void Ctx::respond(int status, std::string_view reason, std::string_view body) {
  out->action = Outcome::Action::kRespond;
  out->status = status;
  out->reason = reason;
  out->body.assign(body.data(), body.size());
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

const std::string_view* findHeader(const Request& req, std::string_view name) {
  for (uint32_t i = 0; i < req.header_count; ++i)
    if (equalsIgnoreCase(req.headers[i].name, name)) return &req.headers[i].value;
  return nullptr;
}

std::string_view queryParam(std::string_view query, std::string_view name, bool* found) {
  *found = false;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view seg = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    size_t eq = seg.find('=');
    if (seg.substr(0, eq) != name) continue;
    *found = true;
    return eq == std::string_view::npos ? std::string_view() : seg.substr(eq + 1);
  }
  return {};
}

std::string_view cookieValue(const Request& req, std::string_view name, bool* found) {
  *found = false;
  for (uint32_t i = 0; i < req.header_count; ++i) {
    if (!equalsIgnoreCase(req.headers[i].name, "cookie")) continue;
    std::string_view v = req.headers[i].value;
    while (!v.empty()) {
      size_t semi = v.find(';');
      std::string_view pair = v.substr(0, semi);
      v.remove_prefix(semi == std::string_view::npos ? v.size() : semi + 1);
      size_t b = pair.find_first_not_of(" \t");
      if (b == std::string_view::npos) continue;
      pair.remove_prefix(b);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
      std::string_view val = pair.substr(eq + 1);
      while (!val.empty() && (val.back() == ' ' || val.back() == '\t')) val.remove_suffix(1);
      if (val.size() >= 2 && val.front() == '"' && val.back() == '"')
        val = val.substr(1, val.size() - 2);
      *found = true;
      return val;
    }
  }
  return {};
}

std::string_view extractCredential(const Request& req, const CredentialSource& src) {
  bool found = false;
  switch (src.kind) {
    case CredentialSource::Kind::kHeader:
      for (uint32_t i = 0; i < req.header_count; ++i) {
        const auto& h = req.headers[i];
        if (!equalsIgnoreCase(h.name, src.name) || !startsWithIgnoreCase(h.value, src.prefix))
          continue;
        std::string_view v = h.value.substr(src.prefix.size());
        while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        if (!v.empty()) return v;
      }
      return {};
    case CredentialSource::Kind::kQuery:
      return queryParam(req.query, src.name, &found);
    case CredentialSource::Kind::kCookie:
      return cookieValue(req, src.name, &found);
  }
  return {};
}

void appendQuoted(std::string& out, std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
}

static int hexValue(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Query parameter values are percent-decoded (a key may hold '+', '/', '=').
std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hexValue(s[i + 1]), lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

static int base64Value(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

// Strict RFC 4648 base64 with padding: canonical (zero unused bits), nothing else.
bool base64Decode(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    bool last = i + 4 == in.size();
    for (size_t j = 0; j < 4; ++j) {
      char ch = in[i + j];
      if (last && j >= 4 - pad) {
        v <<= 6;
        continue;
      }
      int d = base64Value(ch);
      if (d < 0) return false;
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    if (last && pad == 2 && (v & 0xffff) != 0) return false;
    if (last && pad == 1 && (v & 0xff) != 0) return false;
    out.push_back(static_cast<char>(v >> 16));
    if (!last || pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xff));
    if (!last || pad < 1) out.push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

}  // namespace internal

std::string removeQueryParams(std::string_view target, const std::vector<std::string>& names) {
  size_t q = target.find('?');
  if (q == std::string_view::npos || names.empty()) return std::string(target);
  std::string out(target.substr(0, q));
  std::string_view query = target.substr(q + 1);
  bool first = true;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view seg = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    std::string_view name = seg.substr(0, seg.find('='));
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    out.push_back(first ? '?' : '&');
    out.append(seg);
    first = false;
  }
  return out;
}

}  // namespace portico::security
