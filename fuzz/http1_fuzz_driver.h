// Shared driver of the HTTP/1 fuzz targets: runs a connection's worth of messages (head parser,
// then body decoder, repeatedly) over the input with small limits, once with all bytes available
// and once with the input arriving in two parts split at a data-derived point, and aborts if the
// two runs disagree or an invariant breaks.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http1/parser.h"

namespace portico::http1::fuzz {

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

inline bool within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

inline void appendNumber(std::string* out, uint64_t v) {
  *out += std::to_string(v);
  *out += ' ';
}

// Records a parsed head and checks that its views lie inside the input.
inline void recordHead(std::string* trace, const ParseResult& r, std::string_view input,
                       const Header* headers, uint32_t count, const HeadInfo& info,
                       const Limits& limits) {
  appendNumber(trace, static_cast<uint64_t>(r.status));
  appendNumber(trace, static_cast<uint64_t>(r.error));
  if (r.status != ParseStatus::kDone) return;
  check(r.consumed >= 4 && r.consumed <= input.size(), "head length");
  check(input.substr(r.consumed - 4, 4) == "\r\n\r\n", "head ends with an empty line");
  check(count <= limits.max_headers, "header count");
  appendNumber(trace, r.consumed);
  appendNumber(trace, info.version_minor);
  appendNumber(trace, static_cast<uint64_t>(info.body));
  appendNumber(trace, info.content_length);
  appendNumber(trace, info.keep_alive * 16 + info.connection_close * 8 + info.upgrade * 4 +
                          info.expect_continue * 2 + info.connection_other_tokens);
  for (uint32_t i = 0; i < count; ++i) {
    check(within(headers[i].name, input) && within(headers[i].value, input), "header views");
    check(!headers[i].name.empty(), "empty header name");
    *trace += headers[i].name;
    *trace += ':';
    *trace += headers[i].value;
    appendNumber(trace, static_cast<uint64_t>(headers[i].tag));
  }
}

// Parses a head from input[pos, avail), growing avail to the whole input while incomplete.
template <typename ParseHead>
ParseResult parseGrowing(std::string_view input, size_t pos, size_t* avail, ParseHead parse) {
  for (;;) {
    const ParseResult r = parse(input.substr(pos, *avail - pos));
    if (r.status != ParseStatus::kIncomplete || *avail == input.size()) return r;
    *avail = input.size();
  }
}

// Decodes a body from input[*pos, avail), growing avail while incomplete; returns the trace.
inline void decodeGrowing(std::string_view input, size_t* pos, size_t* avail, BodyDecoder* d,
                          std::string* trace) {
  std::string data;
  BodyDecoder::Step s;
  for (;;) {
    const std::string_view part = input.substr(*pos, *avail - *pos);
    s = d->decode(part);
    check(s.consumed <= part.size(), "body consumed");
    check(within(s.data, part), "body data view");
    check(s.data.size() <= s.consumed, "body data within consumed bytes");
    data.append(s.data);
    *pos += s.consumed;
    if (s.status != ParseStatus::kIncomplete) break;
    if (s.consumed == 0) {
      if (*avail == input.size()) break;
      *avail = input.size();
    }
  }
  check(s.status != ParseStatus::kDone || d->done(), "done() agrees");
  appendNumber(trace, static_cast<uint64_t>(s.status));
  appendNumber(trace, static_cast<uint64_t>(s.error));
  appendNumber(trace, *pos);
  *trace += data;
}

// The limits the fuzzers use: small, so that the limit paths are reached.
inline Limits fuzzLimits() {
  Limits l;
  l.max_request_line = 200;
  l.max_header_bytes = 600;
  l.max_headers = 8;
  return l;
}

// Runs messages over `input` where only input[0, first) is available at first; returns a trace
// of everything parsed. `request` selects the request or the response parser.
inline std::string runConnection(std::string_view input, size_t first, bool request,
                                 std::string_view request_method) {
  const Limits limits = fuzzLimits();
  std::vector<Header> headers(limits.max_headers);
  std::string trace;
  size_t pos = 0;
  size_t avail = first;
  BodyDecoder decoder;
  for (int message = 0; message < 32 && pos < input.size(); ++message) {
    RequestHead req;
    ResponseHead res;
    req.headers = res.headers = headers.data();
    const ParseResult r = parseGrowing(input, pos, &avail, [&](std::string_view in) {
      return request ? parseRequestHead(in, limits, &req)
                     : parseResponseHead(in, limits, request_method, &res);
    });
    const std::string_view rest = input.substr(pos);
    const HeadInfo& info = request ? req.info : res.info;
    recordHead(&trace, r, rest, headers.data(), request ? req.header_count : res.header_count, info,
               limits);
    if (r.status != ParseStatus::kDone) break;
    if (request) {
      check(within(req.method, rest) && within(req.target, rest) && within(req.host, rest),
            "request line views");
      trace += req.method;
      trace += ' ';
      trace += req.target;
      trace += ' ';
      trace += req.host;
      if (req.method == "CONNECT") break;  // a tunnel follows
    } else {
      check(res.status >= 100 && res.status <= 999, "status code");
      check(within(res.reason, rest), "reason view");
      appendNumber(&trace, static_cast<uint64_t>(res.status));
      trace += res.reason;
    }
    pos += r.consumed;
    decoder.reset(info.body, info.content_length);
    check(decoder.kind() == info.body, "decoder kind");
    decodeGrowing(input, &pos, &avail, &decoder, &trace);
    if (!decoder.done() || info.upgrade || !info.keep_alive) break;
  }
  return trace;
}

// The split point of the second run, derived from the data.
inline size_t splitPoint(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  return (static_cast<size_t>(data[0]) * 257 + data[size / 2]) % (size + 1);
}

inline void runBoth(const uint8_t* data, size_t size, bool request,
                    std::string_view request_method) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string whole = runConnection(input, size, request, request_method);
  const std::string split = runConnection(input, splitPoint(data, size), request, request_method);
  check(whole == split, "whole and split runs disagree");
}

}  // namespace portico::http1::fuzz
