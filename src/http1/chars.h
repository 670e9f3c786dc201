// Character classes of RFC 9110/9112 as lookup tables, and scanners that skip runs of one class.
// Internal to src/http1: the parsers and decoders share them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace portico::http1::chars {

enum Class : uint8_t {
  kToken = 1,        // tchar (RFC 9110 §5.6.2)
  kFieldValue = 2,   // field-vchar / SP / HTAB (obs-text included), also reason-phrase chars
  kTarget = 4,       // VCHAR: what a request-target may contain
  kHexDigit = 8,     // HEXDIG
  kHostChar = 16,    // uri-host [ ":" port ] chars: unreserved / pct / sub-delims / ":" "[" "]"
  kQuotedText = 32,  // qdtext (RFC 9110 §5.6.4)
};

constexpr std::array<uint8_t, 256> makeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kToken | kHostChar;
    for (char s : std::string_view("!#$%&'*+-.^_`|~"))
      if (c == static_cast<unsigned char>(s)) v |= kToken;
    for (char s : std::string_view("-._~%!$&'()*+,;=:[]"))
      if (c == static_cast<unsigned char>(s)) v |= kHostChar;
    if (c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f)) v |= kFieldValue;
    if (c >= 0x21 && c <= 0x7e) v |= kTarget;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexDigit;
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
        (c >= 0x5d && c <= 0x7e) || c >= 0x80)
      v |= kQuotedText;
    t[c] = v;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kTable = makeTable();

inline bool is(char c, Class cls) { return (kTable[static_cast<uint8_t>(c)] & cls) != 0; }
inline bool isOws(char c) { return c == ' ' || c == '\t'; }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Returns the first position in [p, end) whose char is not of class `cls`, or `end`.
inline const char* skip(const char* p, const char* end, Class cls) {
  while (p < end && is(*p, cls)) ++p;
  return p;
}

// skip(p, end, kFieldValue) with a 16-bytes-at-a-time fast path: header values are the bulk
// of a head.
inline const char* skipFieldValue(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k20 = _mm_set1_epi8(0x20);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  const __m128i kTab = _mm_set1_epi8('\t');
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i ge20 = _mm_cmpeq_epi8(_mm_max_epu8(x, k20), x);  // x >= 0x20 (unsigned)
    const __m128i ok =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, kDel), ge20), _mm_cmpeq_epi8(x, kTab));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(ok));
    if (mask != 0xffff) return p + __builtin_ctz(~mask);
    p += 16;
  }
#endif
  return skip(p, end, kFieldValue);
}

// skip(p, end, kTarget) with a 16-bytes-at-a-time fast path (targets can be long).
inline const char* skipTarget(const char* p, const char* end) {
#if defined(__SSE2__)
  // x in [0x21, 0x7e] <=> (int8)(x + 0x5f) < -128 + 0x5e.
  const __m128i kBias = _mm_set1_epi8(0x5f);
  const __m128i kBound = _mm_set1_epi8(static_cast<char>(-128 + 0x5e));
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i ok = _mm_cmplt_epi8(_mm_add_epi8(x, kBias), kBound);
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(ok));
    if (mask != 0xffff) return p + __builtin_ctz(~mask);
    p += 16;
  }
#endif
  return skip(p, end, kTarget);
}

// ASCII case-insensitive equality; `lower_ascii` must already be lower case.
inline bool equalsLower(std::string_view s, std::string_view lower_ascii) {
  if (s.size() != lower_ascii.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != lower_ascii[i]) return false;
  return true;
}

}  // namespace portico::http1::chars
