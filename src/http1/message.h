// HTTP/1.x message heads as parsed from the wire. All string_views point into the caller's
// input buffer and are valid only while that buffer is unchanged.
#pragma once

#include <cstdint>
#include <string_view>

namespace portico::http1 {

// Headers the proxy treats specially, recognised once by the parser (case-insensitive).
enum class HeaderTag : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kExpect,
  kXForwardedFor,
  kXForwardedProto,
};

struct Header {
  std::string_view name;
  std::string_view value;  // OWS trimmed
  HeaderTag tag = HeaderTag::kOther;
};

// How the body of a message is delimited (RFC 9112 §6.3).
enum class BodyKind : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

// Flags derived from the head while parsing it.
struct HeadInfo {
  uint8_t version_minor = 1;  // HTTP/1.<minor>; 0 or 1
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;           // when body == kContentLength
  bool keep_alive = true;                // after Connection and version rules
  bool connection_close = false;         // "close" token present
  bool upgrade = false;                  // Connection: upgrade + Upgrade header present
  bool expect_continue = false;          // Expect: 100-continue (requests)
  bool connection_other_tokens = false;  // Connection lists other header names to drop
};

// The limits a parser enforces; exceeding them is an error with a specific status.
struct Limits {
  uint32_t max_request_line = 8 * 1024;   // 414 beyond
  uint32_t max_header_bytes = 60 * 1024;  // 431 beyond (all header lines together)
  uint32_t max_headers = 100;             // 431 beyond
};

// Every way a message can be rejected. statusFor() gives the response code for requests.
enum class Error : uint8_t {
  kNone,
  kBadRequestLine,
  kBadMethod,
  kBadTarget,
  kBadVersion,          // 505 for a well-formed but unsupported version, 400 otherwise
  kRequestLineTooLong,  // 414
  kHeadersTooLarge,     // 431
  kTooManyHeaders,      // 431
  kBadHeaderName,
  kBadHeaderValue,
  kObsFold,
  kBadContentLength,
  kDuplicateContentLength,
  kContentLengthAndTransferEncoding,
  kBadTransferEncoding,          // chunked not last, or repeated; 400
  kUnsupportedTransferEncoding,  // a coding we do not implement; 501
  kMissingHost,
  kDuplicateHost,
  kBadStatusLine,
  kBadChunk,
  kBadTrailer,
};

// HTTP status a server answers for a request with this error.
int statusFor(Error e);
// A short, stable, human-readable reason ("invalid Content-Length").
std::string_view describe(Error e);

}  // namespace portico::http1
