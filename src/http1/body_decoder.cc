// Message body decoding (RFC 9112 §6-§7): a byte-at-a-time state machine for chunked framing,
// spans into the input for data. Feeding input in any split gives the same data and result.
#include <algorithm>

#include "http1/chars.h"
#include "http1/parser.h"

namespace portico::http1 {
namespace {

// A chunk size has at most 16 hex digits (leading zeros included): it fits in 64 bits.
constexpr uint32_t kMaxChunkSizeDigits = 16;
// Bytes of chunk extensions allowed on one chunk-size line.
constexpr uint32_t kMaxChunkExtBytes = 4 * 1024;
// Bytes of the trailer section (all lines and the final CRLF).
constexpr uint32_t kMaxTrailerBytes = 60 * 1024;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void BodyDecoder::reset(BodyKind kind, uint64_t content_length) {
  kind_ = kind;
  remaining_ = 0;
  size_digits_ = 0;
  ext_bytes_ = 0;
  trailer_bytes_ = 0;
  trailer_in_value_ = false;
  ext_ = ExtState::kNameStart;
  error_ = Error::kNone;
  switch (kind) {
    case BodyKind::kNone:
      state_ = State::kDone;
      break;
    case BodyKind::kContentLength:
      remaining_ = content_length;
      state_ = content_length == 0 ? State::kDone : State::kLength;
      break;
    case BodyKind::kChunked:
      state_ = State::kChunkSize;
      break;
    case BodyKind::kUntilClose:
      state_ = State::kUntilClose;
      break;
  }
}

BodyDecoder::Step BodyDecoder::decode(std::string_view input) {
  Step step;
  const char* const begin = input.data();
  const char* p = begin;
  const char* const end = begin + input.size();
  auto takeData = [&](uint64_t limit) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(limit, end - p));
    step.data = std::string_view(p, n);
    p += n;
    return n;
  };
  for (;;) {
    switch (state_) {
      case State::kDone:
        step.status = ParseStatus::kDone;
        step.consumed = p - begin;
        return step;
      case State::kError:
        step.status = ParseStatus::kError;
        step.error = error_;
        step.consumed = p - begin;
        return step;
      case State::kUntilClose:
        takeData(end - p);
        step.consumed = p - begin;
        return step;
      case State::kLength:
        remaining_ -= takeData(remaining_);
        if (remaining_ == 0) state_ = State::kDone;
        step.status = remaining_ == 0 ? ParseStatus::kDone : ParseStatus::kIncomplete;
        step.consumed = p - begin;
        return step;
      case State::kChunkData:
        if (p == end) break;
        remaining_ -= takeData(remaining_);
        if (remaining_ == 0) state_ = State::kChunkDataCr;
        step.consumed = p - begin;
        return step;
      default:
        if (p == end) break;
        if (const Error e = framingByte(*p); e != Error::kNone) {
          error_ = e;
          state_ = State::kError;
        } else {
          ++p;
        }
        continue;
    }
    step.consumed = p - begin;  // input exhausted
    return step;
  }
}

Error BodyDecoder::framingByte(char c) {
  switch (state_) {
    case State::kChunkSize: {
      const int v = hexValue(c);
      if (v >= 0) {
        if (size_digits_ == kMaxChunkSizeDigits) return Error::kBadChunk;
        ++size_digits_;
        remaining_ = remaining_ << 4 | static_cast<uint64_t>(v);
        return Error::kNone;
      }
      if (size_digits_ == 0) return Error::kBadChunk;
      if (c == '\r') {
        state_ = State::kChunkSizeLf;
      } else if (c == ';') {
        state_ = State::kChunkExt;
        ext_ = ExtState::kNameStart;
        ext_bytes_ = 1;
      } else {
        return Error::kBadChunk;
      }
      return Error::kNone;
    }
    case State::kChunkExt:
      if (++ext_bytes_ > kMaxChunkExtBytes) return Error::kBadChunk;
      switch (ext_) {
        case ExtState::kNameStart:
        case ExtState::kValueStart:
          if (chars::is(c, chars::kToken)) {
            ext_ = ext_ == ExtState::kNameStart ? ExtState::kName : ExtState::kToken;
          } else if (c == '"' && ext_ == ExtState::kValueStart) {
            ext_ = ExtState::kQuoted;
          } else {
            return Error::kBadChunk;
          }
          return Error::kNone;
        case ExtState::kName:
        case ExtState::kToken:
          if (chars::is(c, chars::kToken)) return Error::kNone;
          if (c == '=' && ext_ == ExtState::kName) {
            ext_ = ExtState::kValueStart;
            return Error::kNone;
          }
          break;  // ';' or CR, below
        case ExtState::kQuoted:
          if (c == '"') {
            ext_ = ExtState::kAfterQuoted;
          } else if (c == '\\') {
            ext_ = ExtState::kQuotedEscape;
          } else if (!chars::is(c, chars::kQuotedText)) {
            return Error::kBadChunk;
          }
          return Error::kNone;
        case ExtState::kQuotedEscape:
          if (!chars::is(c, chars::kFieldValue)) return Error::kBadChunk;
          ext_ = ExtState::kQuoted;
          return Error::kNone;
        case ExtState::kAfterQuoted:
          break;
      }
      if (c == ';') {
        ext_ = ExtState::kNameStart;
      } else if (c == '\r') {
        state_ = State::kChunkSizeLf;
      } else {
        return Error::kBadChunk;
      }
      return Error::kNone;
    case State::kChunkSizeLf:
      if (c != '\n') return Error::kBadChunk;
      state_ = remaining_ == 0 ? State::kTrailerStart : State::kChunkData;
      return Error::kNone;
    case State::kChunkDataCr:
      if (c != '\r') return Error::kBadChunk;
      state_ = State::kChunkDataLf;
      return Error::kNone;
    case State::kChunkDataLf:
      if (c != '\n') return Error::kBadChunk;
      state_ = State::kChunkSize;
      size_digits_ = 0;
      return Error::kNone;
    default:
      break;
  }
  // Trailer section: field lines like a head's, then an empty line.
  if (++trailer_bytes_ > kMaxTrailerBytes) return Error::kBadTrailer;
  switch (state_) {
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kTrailerEndLf;
      } else if (chars::is(c, chars::kToken)) {
        state_ = State::kTrailerLine;
        trailer_in_value_ = false;
      } else {
        return Error::kBadTrailer;  // obs-fold, bare LF, invalid name
      }
      return Error::kNone;
    case State::kTrailerLine:
      if (trailer_in_value_) {
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (!chars::is(c, chars::kFieldValue)) {
          return Error::kBadTrailer;
        }
      } else if (c == ':') {
        trailer_in_value_ = true;
      } else if (!chars::is(c, chars::kToken)) {
        return Error::kBadTrailer;
      }
      return Error::kNone;
    case State::kTrailerLf:
      if (c != '\n') return Error::kBadTrailer;
      state_ = State::kTrailerStart;
      return Error::kNone;
    case State::kTrailerEndLf:
      if (c != '\n') return Error::kBadTrailer;
      state_ = State::kDone;
      return Error::kNone;
    default:
      return Error::kBadChunk;  // unreachable: decode() handles the other states
  }
}

}  // namespace portico::http1
