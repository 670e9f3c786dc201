#include "http1/message.h"

namespace portico::http1 {

int statusFor(Error e) {
  switch (e) {
    case Error::kNone:
      return 200;
    case Error::kBadVersion:
      return 505;
    case Error::kRequestLineTooLong:
      return 414;
    case Error::kHeadersTooLarge:
    case Error::kTooManyHeaders:
      return 431;
    case Error::kUnsupportedTransferEncoding:
      return 501;
    case Error::kBadStatusLine:
      return 502;  // only responses have status lines: the upstream is at fault
    default:
      return 400;
  }
}

std::string_view describe(Error e) {
  switch (e) {
    case Error::kNone:
      return "no error";
    case Error::kBadRequestLine:
      return "malformed request line";
    case Error::kBadMethod:
      return "invalid method";
    case Error::kBadTarget:
      return "invalid request target";
    case Error::kBadVersion:
      return "unsupported HTTP version";
    case Error::kRequestLineTooLong:
      return "request line too long";
    case Error::kHeadersTooLarge:
      return "header section too large";
    case Error::kTooManyHeaders:
      return "too many header fields";
    case Error::kBadHeaderName:
      return "invalid header field name";
    case Error::kBadHeaderValue:
      return "invalid header field value";
    case Error::kObsFold:
      return "obsolete line folding";
    case Error::kBadContentLength:
      return "invalid Content-Length";
    case Error::kDuplicateContentLength:
      return "repeated Content-Length";
    case Error::kContentLengthAndTransferEncoding:
      return "both Content-Length and Transfer-Encoding";
    case Error::kBadTransferEncoding:
      return "invalid Transfer-Encoding";
    case Error::kUnsupportedTransferEncoding:
      return "unsupported transfer coding";
    case Error::kMissingHost:
      return "missing Host";
    case Error::kDuplicateHost:
      return "repeated Host";
    case Error::kBadStatusLine:
      return "malformed status line";
    case Error::kBadChunk:
      return "invalid chunked framing";
    case Error::kBadTrailer:
      return "invalid trailer section";
  }
  return "unknown error";
}

}  // namespace portico::http1
