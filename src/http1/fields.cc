#include "http1/fields.h"

#include "http1/chars.h"

namespace portico::http1::internal {
namespace {

// Name equality for header names already known to be tokens: OR-ing 0x20 lowercases letters
// and maps no other tchar onto a letter or '-', so this is exact case-insensitive equality.
// `lower_name` holds lowercase letters and '-' only.
bool nameIs(std::string_view name, std::string_view lower_name) {
  if (name.size() != lower_name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if ((name[i] | 0x20) != lower_name[i]) return false;
  return true;
}

HeaderTag tagFor(std::string_view name) {
  switch (name.size()) {
    case 2:
      if (nameIs(name, "te")) return HeaderTag::kTe;
      break;
    case 4:
      if (nameIs(name, "host")) return HeaderTag::kHost;
      break;
    case 6:
      if (nameIs(name, "expect")) return HeaderTag::kExpect;
      break;
    case 7:
      if (nameIs(name, "upgrade")) return HeaderTag::kUpgrade;
      if (nameIs(name, "trailer")) return HeaderTag::kTrailer;
      break;
    case 10:
      if (nameIs(name, "connection")) return HeaderTag::kConnection;
      if (nameIs(name, "keep-alive")) return HeaderTag::kKeepAlive;
      break;
    case 14:
      if (nameIs(name, "content-length")) return HeaderTag::kContentLength;
      break;
    case 15:
      if (nameIs(name, "x-forwarded-for")) return HeaderTag::kXForwardedFor;
      break;
    case 16:
      if (nameIs(name, "proxy-connection")) return HeaderTag::kProxyConnection;
      break;
    case 17:
      if (nameIs(name, "transfer-encoding")) return HeaderTag::kTransferEncoding;
      if (nameIs(name, "x-forwarded-proto")) return HeaderTag::kXForwardedProto;
      break;
    default:
      break;
  }
  return HeaderTag::kOther;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && chars::isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && chars::isOws(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the quoted-string at the start of `s` (RFC 9110 §5.6.4), 0 if there is none.
size_t quotedLength(std::string_view s) {
  if (s.empty() || s[0] != '"') return 0;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] == '"') return i + 1;
    if (s[i] == '\\') {
      if (++i == s.size() || !(chars::is(s[i], chars::kFieldValue))) return 0;
    } else if (!chars::is(s[i], chars::kQuotedText)) {
      return 0;
    }
  }
  return 0;
}

// Calls fn(element) for each non-empty, OWS-trimmed element of a comma-separated list
// (RFC 9110 §5.6.1); commas inside quoted strings do not split. Returns false, having called fn
// for none or some elements, if a quoted string is unterminated.
template <typename Fn>
bool forEachElement(std::string_view v, Fn fn) {
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      std::string_view e = trimOws(v.substr(start, i - start));
      if (!e.empty()) fn(e);
      start = i + 1;
    }
  }
  if (quoted) return false;
  std::string_view e = trimOws(v.substr(start));
  if (!e.empty()) fn(e);
  return true;
}

// transfer-coding = token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) ).
// Sets *name to the coding name; false if `e` does not match.
bool parseCoding(std::string_view e, std::string_view* name, bool* has_params) {
  const char* p = e.data();
  const char* const end = p + e.size();
  const char* q = chars::skip(p, end, chars::kToken);
  if (q == p) return false;
  *name = std::string_view(p, q - p);
  *has_params = q != end;
  p = q;
  while (p != end) {
    while (p != end && chars::isOws(*p)) ++p;
    if (p == end || *p++ != ';') return false;
    while (p != end && chars::isOws(*p)) ++p;
    q = chars::skip(p, end, chars::kToken);
    if (q == p) return false;
    p = q;
    while (p != end && chars::isOws(*p)) ++p;
    if (p == end || *p++ != '=') return false;
    while (p != end && chars::isOws(*p)) ++p;
    q = chars::skip(p, end, chars::kToken);
    if (q == p) q = p + quotedLength(std::string_view(p, end - p));
    if (q == p) return false;
    p = q;
  }
  return true;
}

void addTransferEncoding(std::string_view value, FieldFacts* f) {
  f->transfer_encoding = true;
  const bool closed = forEachElement(value, [f](std::string_view e) {
    std::string_view name;
    bool has_params = false;
    if (!parseCoding(e, &name, &has_params)) {
      f->te_invalid = true;
      return;
    }
    if (chars::equalsLower(name, "chunked")) {
      if (has_params) f->te_invalid = true;
      ++f->te_chunked_count;
      f->te_chunked_last = true;
    } else {
      f->te_other = true;
      f->te_chunked_last = false;
    }
  });
  if (!closed) f->te_invalid = true;
}

void addConnection(std::string_view value, FieldFacts* f) {
  const bool closed = forEachElement(value, [f](std::string_view e) {
    if (chars::equalsLower(e, "close")) {
      f->connection_close = true;
    } else if (chars::equalsLower(e, "keep-alive")) {
      f->connection_keep_alive = true;
    } else if (chars::equalsLower(e, "upgrade")) {
      f->connection_upgrade = true;
    } else {
      f->connection_other = true;
    }
  });
  if (!closed) f->connection_other = true;
}

}  // namespace

Scan scanHeaders(const char* p, const char* end, const Limits& limits, Header* headers,
                 uint32_t* count) {
  // Scanning never passes `stop`: a header section reaching it is too large if more input
  // follows, and incomplete otherwise.
  const bool capped = static_cast<size_t>(end - p) > limits.max_header_bytes;
  const char* const stop = capped ? p + limits.max_header_bytes : end;
  const Scan more =
      capped ? scanError(Error::kHeadersTooLarge) : Scan{ParseStatus::kIncomplete, Error::kNone};
  uint32_t n = 0;
  uint32_t content_lengths = 0;
  bool transfer_encoding = false;
  *count = 0;
  for (;;) {
    if (p == stop) return more;
    if (*p == '\r') {
      if (p + 1 == stop) return more;
      if (p[1] != '\n') return scanError(Error::kBadHeaderName);
      *count = n;
      return Scan{ParseStatus::kDone, Error::kNone, p + 2};
    }
    if (chars::isOws(*p)) return scanError(Error::kObsFold);
    if (n == limits.max_headers) return scanError(Error::kTooManyHeaders);
    const char* const name = p;
    p = chars::skip(p, stop, chars::kToken);
    if (p == stop) return more;
    if (*p != ':' || p == name) return scanError(Error::kBadHeaderName);
    const char* const name_end = p++;
    while (p != stop && chars::isOws(*p)) ++p;
    const char* const value = p;
    p = chars::skipFieldValue(p, stop);
    if (p == stop) return more;
    if (*p != '\r') return scanError(Error::kBadHeaderValue);
    const char* value_end = p;
    if (p + 1 == stop) return more;
    if (p[1] != '\n') return scanError(Error::kBadHeaderValue);
    p += 2;
    while (value_end != value && chars::isOws(value_end[-1])) --value_end;
    Header& h = headers[n++];
    h.name = std::string_view(name, name_end - name);
    h.value = std::string_view(value, value_end - value);
    h.tag = tagFor(h.name);
    // Framing conflicts are refused as soon as their line is complete.
    if (h.tag == HeaderTag::kContentLength) {
      uint64_t ignored = 0;
      if (++content_lengths > 1) return scanError(Error::kDuplicateContentLength);
      if (!parseContentLength(h.value, &ignored)) return scanError(Error::kBadContentLength);
    } else if (h.tag == HeaderTag::kTransferEncoding) {
      transfer_encoding = true;
    }
    if (content_lengths != 0 && transfer_encoding)
      return scanError(Error::kContentLengthAndTransferEncoding);
  }
}

FieldFacts collectFacts(const Header* headers, uint32_t count) {
  FieldFacts f;
  for (uint32_t i = 0; i < count; ++i) {
    const Header& h = headers[i];
    switch (h.tag) {
      case HeaderTag::kHost:
        if (f.host_count++ == 0) f.host = h.value;
        break;
      case HeaderTag::kContentLength:
        if (f.content_length_count++ == 0) f.content_length = h.value;
        break;
      case HeaderTag::kTransferEncoding:
        addTransferEncoding(h.value, &f);
        break;
      case HeaderTag::kConnection:
        addConnection(h.value, &f);
        break;
      case HeaderTag::kUpgrade:
        f.upgrade_header = true;
        break;
      case HeaderTag::kExpect:
        if (chars::equalsLower(h.value, "100-continue")) f.expect_continue = true;
        break;
      default:
        break;
    }
  }
  return f;
}

bool parseContentLength(std::string_view value, uint64_t* out) {
  if (value.empty()) return false;
  uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool validHost(std::string_view value) {
  for (char c : value)
    if (!chars::is(c, chars::kHostChar)) return false;
  return true;
}

void applyConnection(const FieldFacts& facts, HeadInfo* info) {
  info->connection_close = facts.connection_close;
  info->connection_other_tokens = facts.connection_other;
  info->keep_alive =
      !facts.connection_close && (info->version_minor == 1 || facts.connection_keep_alive);
}

}  // namespace portico::http1::internal
