// Request and response head parsing (RFC 9112 §2-§6): start lines here, header fields in
// fields.cc. Each call rescans the input from its start; every error is found at a definite
// position, so feeding a head in pieces gives the same result as feeding it whole.
#include "http1/chars.h"
#include "http1/fields.h"
#include "http1/parser.h"

namespace portico::http1 {
namespace {

using internal::Scan;
using internal::scanError;

constexpr Scan kMore{ParseStatus::kIncomplete, Error::kNone, nullptr};

// Skips the empty lines a recipient ignores before a start line (RFC 9112 §2.2), at most
// `max_bytes` of them. On kDone, scan.next is the start line.
Scan skipEmptyLines(const char* p, const char* end, uint32_t max_bytes, Error bare_cr,
                    Error too_long) {
  const char* const begin = p;
  for (;;) {
    if (p == end) return kMore;
    if (*p != '\r') return Scan{ParseStatus::kDone, Error::kNone, p};
    if (static_cast<uint32_t>(p - begin) >= max_bytes) return scanError(too_long);
    if (p + 1 == end) return kMore;
    if (p[1] != '\n') return scanError(bare_cr);
    p += 2;
  }
}

// Parses `HTTP/DIGIT.DIGIT` at p. On kDone scan.next follows it and *minor is set.
// Well-formed versions other than 1.0 and 1.1 give kBadVersion, anything else `malformed`.
Scan parseVersion(const char* p, const char* end, uint8_t* minor, Error malformed) {
  static constexpr std::string_view kName = "HTTP/";
  for (char c : kName) {
    if (p == end) return kMore;
    if (*p++ != c) return scanError(malformed);
  }
  if (p == end) return kMore;
  const char major = *p++;
  if (major < '0' || major > '9') return scanError(malformed);
  if (p == end) return kMore;
  if (*p++ != '.') return scanError(malformed);
  if (p == end) return kMore;
  const char m = *p++;
  if (m < '0' || m > '9') return scanError(malformed);
  if (major != '1' || m > '1') return scanError(Error::kBadVersion);
  *minor = static_cast<uint8_t>(m - '0');
  return Scan{ParseStatus::kDone, Error::kNone, p};
}

// Expects CRLF at p: kIncomplete if input ends first, `bad` if something else is there.
Scan expectCrlf(const char* p, const char* end, Error bad) {
  if (p == end) return kMore;
  if (*p != '\r') return scanError(bad);
  if (p + 1 == end) return kMore;
  if (p[1] != '\n') return scanError(bad);
  return Scan{ParseStatus::kDone, Error::kNone, p + 2};
}

ParseResult fail(Error e) { return ParseResult{ParseStatus::kError, e, 0}; }
ParseResult fromScan(const Scan& s) { return ParseResult{s.status, s.error, 0}; }

// request-line = method SP request-target SP HTTP-version CRLF. On kDone, scan.next is the
// first header line.
Scan parseRequestLine(const char* p, const char* end, const Limits& limits, RequestHead* head) {
  // The line (without CRLF) may hold max_request_line bytes: scanning of its content stops at
  // `stop`, where a CR must be.
  const bool capped = static_cast<size_t>(end - p) > limits.max_request_line;
  const char* const stop = capped ? p + size_t{limits.max_request_line} + 1 : end;
  const Scan more = capped ? scanError(Error::kRequestLineTooLong) : kMore;
  // Running into `stop` means too long, not incomplete.
  auto cut = [&](const Scan& s) {
    return (s.status == ParseStatus::kIncomplete && capped) ? more : s;
  };

  const char* const method = p;
  p = chars::skip(p, stop, chars::kToken);
  if (p == stop) return more;
  if (*p != ' ' || p == method) return scanError(Error::kBadMethod);
  head->method = std::string_view(method, p - method);
  const char* const target = ++p;
  p = chars::skipTarget(p, stop);
  if (p == stop) return more;
  if (*p != ' ' || p == target) return scanError(Error::kBadTarget);
  head->target = std::string_view(target, p - target);
  ++p;
  Scan s = cut(parseVersion(p, stop, &head->info.version_minor, Error::kBadRequestLine));
  if (s.status != ParseStatus::kDone) return s;
  if (s.next == stop) return more;  // CR beyond the limit
  return expectCrlf(s.next, end, Error::kBadRequestLine);
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF; the SP before an empty
// reason may be missing (as llhttp accepts). Its length is bounded by max_request_line too.
Scan parseStatusLine(const char* p, const char* end, const Limits& limits, ResponseHead* head) {
  const bool capped = static_cast<size_t>(end - p) > limits.max_request_line;
  const char* const stop = capped ? p + size_t{limits.max_request_line} + 1 : end;
  const Scan more = capped ? scanError(Error::kHeadersTooLarge) : kMore;

  Scan s = parseVersion(p, stop, &head->info.version_minor, Error::kBadStatusLine);
  if (s.status != ParseStatus::kDone) return s.status == ParseStatus::kIncomplete ? more : s;
  p = s.next;
  if (p == stop) return more;
  if (*p++ != ' ') return scanError(Error::kBadStatusLine);
  int status = 0;
  for (int i = 0; i < 3; ++i, ++p) {
    if (p == stop) return more;
    if (*p < '0' || *p > '9') return scanError(Error::kBadStatusLine);
    status = status * 10 + (*p - '0');
  }
  if (status < 100) return scanError(Error::kBadStatusLine);
  head->status = status;
  if (p == stop) return more;
  const char* reason = p;
  if (*p == ' ') {
    reason = ++p;
    p = chars::skipFieldValue(p, stop);
    if (p == stop) return more;
  }
  head->reason = std::string_view(reason, p - reason);
  return expectCrlf(p, end, Error::kBadStatusLine);
}

}  // namespace

ParseResult parseRequestHead(std::string_view input, const Limits& limits, RequestHead* head) {
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  head->header_count = 0;
  head->host = {};
  head->info = HeadInfo{};
  Scan s = skipEmptyLines(begin, end, limits.max_request_line, Error::kBadRequestLine,
                          Error::kRequestLineTooLong);
  if (s.status == ParseStatus::kDone) s = parseRequestLine(s.next, end, limits, head);
  if (s.status == ParseStatus::kDone)
    s = internal::scanHeaders(s.next, end, limits, head->headers, &head->header_count);
  if (s.status != ParseStatus::kDone) return fromScan(s);

  using internal::FieldFacts;
  const FieldFacts f = internal::collectFacts(head->headers, head->header_count);
  HeadInfo& info = head->info;
  if (f.host_count > 1) return fail(Error::kDuplicateHost);
  if (f.host_count == 0 && info.version_minor == 1) return fail(Error::kMissingHost);
  if (!internal::validHost(f.host)) return fail(Error::kBadHeaderValue);
  head->host = f.host;
  uint64_t length = 0;  // scanHeaders() validated Content-Length and its uniqueness
  if (f.content_length_count == 1) internal::parseContentLength(f.content_length, &length);
  const bool connect = head->method == "CONNECT";
  if (f.transfer_encoding) {
    // HTTP/1.0 has no chunked coding (RFC 9112 §6.1: the framing is faulty); CONNECT has no
    // content (RFC 9110 §9.3.6); anything but a single, final chunked is undelimited.
    if (info.version_minor == 0 || connect || f.te_invalid || f.te_chunked_count != 1 ||
        !f.te_chunked_last)
      return fail(Error::kBadTransferEncoding);
    if (f.te_other) return fail(Error::kUnsupportedTransferEncoding);
    info.body = BodyKind::kChunked;
  } else if (f.content_length_count == 1) {
    if (connect && length != 0) return fail(Error::kBadContentLength);
    info.body = connect ? BodyKind::kNone : BodyKind::kContentLength;
    info.content_length = connect ? 0 : length;
  }
  internal::applyConnection(f, &info);
  info.upgrade = f.connection_upgrade && f.upgrade_header;
  info.expect_continue = f.expect_continue && info.version_minor == 1;
  return ParseResult{ParseStatus::kDone, Error::kNone, static_cast<size_t>(s.next - begin)};
}

ParseResult parseResponseHead(std::string_view input, const Limits& limits,
                              std::string_view request_method, ResponseHead* head) {
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  head->header_count = 0;
  head->status = 0;
  head->reason = {};
  head->info = HeadInfo{};
  Scan s = skipEmptyLines(begin, end, limits.max_request_line, Error::kBadStatusLine,
                          Error::kHeadersTooLarge);
  if (s.status == ParseStatus::kDone) s = parseStatusLine(s.next, end, limits, head);
  if (s.status == ParseStatus::kDone)
    s = internal::scanHeaders(s.next, end, limits, head->headers, &head->header_count);
  if (s.status != ParseStatus::kDone) return fromScan(s);

  const internal::FieldFacts f = internal::collectFacts(head->headers, head->header_count);
  HeadInfo& info = head->info;
  uint64_t length = 0;  // scanHeaders() validated Content-Length and its uniqueness
  if (f.content_length_count == 1) internal::parseContentLength(f.content_length, &length);
  // Malformed framing is refused even where the status makes it moot: a proxy must not
  // forward it.
  if (f.transfer_encoding && (info.version_minor == 0 || f.te_invalid || f.te_chunked_count > 1))
    return fail(Error::kBadTransferEncoding);

  const int status = head->status;
  const bool bodiless = status < 200 || status == 204 || status == 304 ||
                        request_method == "HEAD" || (request_method == "CONNECT" && status < 300);
  if (bodiless) {
    info.body = BodyKind::kNone;
  } else if (f.transfer_encoding) {
    // Not ending in chunked: the body runs until the connection closes (RFC 9112 §6.3).
    info.body = f.te_chunked_last ? BodyKind::kChunked : BodyKind::kUntilClose;
  } else if (f.content_length_count == 1) {
    info.body = BodyKind::kContentLength;
    info.content_length = length;
  } else {
    info.body = BodyKind::kUntilClose;
  }
  internal::applyConnection(f, &info);
  if (info.body == BodyKind::kUntilClose) info.keep_alive = false;
  info.upgrade = status == 101 && f.connection_upgrade && f.upgrade_header;
  return ParseResult{ParseStatus::kDone, Error::kNone, static_cast<size_t>(s.next - begin)};
}

}  // namespace portico::http1
