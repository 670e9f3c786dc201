// Internal to src/http1: the header-section scanner and the field semantics shared by the
// request and response head parsers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http1/message.h"
#include "http1/parser.h"

namespace portico::http1::internal {

// Outcome of one scanning step over a possibly incomplete input.
struct Scan {
  ParseStatus status = ParseStatus::kIncomplete;
  Error error = Error::kNone;
  const char* next = nullptr;  // position after what was scanned, when kDone
};

inline Scan scanError(Error e) { return Scan{ParseStatus::kError, e, nullptr}; }

// Scans the header section starting at `p` (just after the start line's CRLF) up to and
// including the empty line ending it. Fills headers[0..*count) with views into the input (values
// OWS-trimmed, tags set). Every error is detected at a definite position, so a prefix of an input
// gives either kIncomplete or the same result as the whole input. Enforces
// limits.max_header_bytes (counting every byte after the start line) and limits.max_headers,
// and refuses a repeated or malformed Content-Length and Content-Length with Transfer-Encoding.
Scan scanHeaders(const char* p, const char* end, const Limits& limits, Header* headers,
                 uint32_t* count);

// What the framing- and connection-related fields of a head say, gathered in one pass.
struct FieldFacts {
  uint32_t host_count = 0;
  std::string_view host;
  uint32_t content_length_count = 0;
  std::string_view content_length;
  bool transfer_encoding = false;  // any Transfer-Encoding field, even empty
  bool te_invalid = false;         // a list element that is not a transfer-coding
  bool te_chunked_last = false;    // the final coding is "chunked"
  uint32_t te_chunked_count = 0;
  bool te_other = false;  // a coding other than chunked
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
  bool connection_other = false;
  bool upgrade_header = false;
  bool expect_continue = false;
};

// Reads the tagged headers into facts.
FieldFacts collectFacts(const Header* headers, uint32_t count);

// Parses a Content-Length value (1*DIGIT, OWS already trimmed). False if malformed or overflowing.
bool parseContentLength(std::string_view value, uint64_t* out);

// Whether `value` is a valid Host field value (uri-host [ ":" port ] characters, maybe empty).
bool validHost(std::string_view value);

// Fills keep_alive/connection_close/upgrade-independent connection flags of `info`.
void applyConnection(const FieldFacts& facts, HeadInfo* info);

}  // namespace portico::http1::internal
