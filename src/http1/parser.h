// Strict, incremental HTTP/1.1 head parsers (RFC 9112) and the body decoder.
//
// Head parsing is restartable: call it with all bytes received so far; it returns kIncomplete
// until the blank line ending the head is present (enforcing limits on the partial input), then
// kDone with `consumed` = head length. Nothing is copied: the head's views point into `input`.
// Header storage is caller-provided so a worker can reuse one array for every request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http1/message.h"

namespace portico::http1 {

enum class ParseStatus : uint8_t { kDone, kIncomplete, kError };

struct RequestHead {
  std::string_view method;
  std::string_view target;  // request-target as sent (origin-form, absolute-form, ...)
  std::string_view host;    // Host header value ("" if absent)
  HeadInfo info;
  Header* headers = nullptr;  // caller-provided array of capacity limits.max_headers
  uint32_t header_count = 0;
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  HeadInfo info;
  Header* headers = nullptr;
  uint32_t header_count = 0;
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  Error error = Error::kNone;
  size_t consumed = 0;  // bytes of the head, when kDone
};

// Parses a request head. `head->headers` must point to at least limits.max_headers entries.
// Rejects (kError) everything RFC 9112 lets a server reject that could cause request smuggling:
// CL+TE together, repeated/malformed CL, TE other than a final "chunked", obs-fold, whitespace
// before the colon, invalid tokens and field values, missing or repeated Host on HTTP/1.1,
// bare CR. Leading empty lines before the request line are skipped (RFC 9112 §2.2).
ParseResult parseRequestHead(std::string_view input, const Limits& limits, RequestHead* head);

// Parses a response head. `request_method` decides bodiless responses (HEAD, CONNECT 2xx),
// as do status 1xx/204/304. Without CL or TE, or with TE not ending in chunked, the body runs
// until close (and keep_alive is false). info.upgrade is set only on a 101 with Connection:
// upgrade and Upgrade. The status line is bounded by limits.max_request_line (kHeadersTooLarge).
ParseResult parseResponseHead(std::string_view input, const Limits& limits,
                              std::string_view request_method, ResponseHead* head);

// Decodes a message body incrementally. Data spans point into the input given to decode().
class BodyDecoder {
 public:
  void reset(BodyKind kind, uint64_t content_length = 0);

  struct Step {
    ParseStatus status = ParseStatus::kIncomplete;  // kDone once the body (and trailers) ended
    Error error = Error::kNone;
    size_t consumed = 0;    // input bytes used by this step
    std::string_view data;  // body bytes found in this step (maybe empty)
  };
  // Consumes a prefix of `input` and returns at most one span of body data. Call again with
  // the rest while consumed > 0 and status == kIncomplete. For kUntilClose the body never ends
  // here: the caller ends it on EOF.
  Step decode(std::string_view input);

  bool done() const { return state_ == State::kDone; }
  BodyKind kind() const { return kind_; }

 private:
  enum class State : uint8_t {
    kDone,
    kError,  // sticky: decode() repeats error_
    kLength,
    kUntilClose,
    kChunkSize,
    kChunkExt,
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerStart,
    kTrailerLine,
    kTrailerLf,
    kTrailerEndLf,
  };
  // Position inside chunk extensions (`;name[=token|"quoted"]`...), in State::kChunkExt.
  enum class ExtState : uint8_t {
    kNameStart,
    kName,
    kValueStart,
    kToken,
    kQuoted,
    kQuotedEscape,
    kAfterQuoted,
  };
  // Consumes one byte of chunked framing (sizes, extensions, CRLFs, trailers).
  Error framingByte(char c);

  BodyKind kind_ = BodyKind::kNone;
  State state_ = State::kDone;
  ExtState ext_ = ExtState::kNameStart;
  bool trailer_in_value_ = false;
  Error error_ = Error::kNone;
  uint64_t remaining_ = 0;
  uint32_t size_digits_ = 0;
  uint32_t ext_bytes_ = 0;
  uint32_t trailer_bytes_ = 0;
};

}  // namespace portico::http1
