#include "http1/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portico::http1 {
namespace {

using namespace std::string_literals;

// A request head parsed with its own header storage.
struct Req {
  explicit Req(std::string_view input, Limits l = {}) : limits(l), storage(l.max_headers) {
    head.headers = storage.data();
    result = parseRequestHead(input, limits, &head);
  }
  bool ok() const { return result.status == ParseStatus::kDone; }
  Error error() const { return result.error; }
  std::string_view header(std::string_view name) const {
    for (uint32_t i = 0; i < head.header_count; ++i)
      if (head.headers[i].name == name) return head.headers[i].value;
    return "<absent>";
  }
  Limits limits;
  std::vector<Header> storage;
  RequestHead head;
  ParseResult result;
};

struct Res {
  explicit Res(std::string_view input, std::string_view method = "GET", Limits l = {})
      : storage(l.max_headers) {
    head.headers = storage.data();
    result = parseResponseHead(input, l, method, &head);
  }
  bool ok() const { return result.status == ParseStatus::kDone; }
  Error error() const { return result.error; }
  std::vector<Header> storage;
  ResponseHead head;
  ParseResult result;
};

constexpr std::string_view kGet =
    "GET /index.html?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: test\r\n"
    "Accept: */*  \r\n"
    "\r\n";

TEST(Http1Request, ParsesSimpleGet) {
  Req r(kGet);
  ASSERT_TRUE(r.ok()) << describe(r.error());
  EXPECT_EQ(r.result.consumed, kGet.size());
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.target, "/index.html?q=1");
  EXPECT_EQ(r.head.host, "example.com");
  EXPECT_EQ(r.head.header_count, 3u);
  EXPECT_EQ(r.header("Accept"), "*/*");  // OWS trimmed
  EXPECT_EQ(r.head.info.version_minor, 1);
  EXPECT_EQ(r.head.info.body, BodyKind::kNone);
  EXPECT_TRUE(r.head.info.keep_alive);
  EXPECT_EQ(r.head.headers[0].tag, HeaderTag::kHost);
  EXPECT_EQ(r.head.headers[1].tag, HeaderTag::kOther);
  // Views point into the input.
  EXPECT_EQ(r.head.method.data(), kGet.data());
}

TEST(Http1Request, EveryPrefixIsIncomplete) {
  for (size_t n = 0; n < kGet.size(); ++n) {
    Req r(kGet.substr(0, n));
    EXPECT_EQ(r.result.status, ParseStatus::kIncomplete) << n;
  }
}

TEST(Http1Request, SkipsLeadingEmptyLines) {
  const std::string in = "\r\n\r\n"s + std::string(kGet);
  Req r(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.result.consumed, in.size());
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(Req("\n"s + std::string(kGet)).error(), Error::kBadMethod);
  EXPECT_EQ(Req("\rGET / HTTP/1.1\r\n"s).error(), Error::kBadRequestLine);
}

TEST(Http1Request, TagsHeadersCaseInsensitively) {
  Req r(
      "POST / HTTP/1.1\r\nhOsT: a\r\nCONTENT-LENGTH: 0\r\nconnection: x-foo\r\nKeep-Alive: 5\r\n"
      "Proxy-Connection: y\r\nTE: trailers\r\nTrailer: z\r\nUpgrade: ws\r\nExpect: nope\r\n"
      "X-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: https\r\nContent-Lengths: 1\r\n\r\n");
  ASSERT_TRUE(r.ok()) << describe(r.error());
  const HeaderTag want[] = {
      HeaderTag::kHost,          HeaderTag::kContentLength,   HeaderTag::kConnection,
      HeaderTag::kKeepAlive,     HeaderTag::kProxyConnection, HeaderTag::kTe,
      HeaderTag::kTrailer,       HeaderTag::kUpgrade,         HeaderTag::kExpect,
      HeaderTag::kXForwardedFor, HeaderTag::kXForwardedProto, HeaderTag::kOther,
  };
  ASSERT_EQ(r.head.header_count, std::size(want));
  for (size_t i = 0; i < std::size(want); ++i) EXPECT_EQ(r.head.headers[i].tag, want[i]) << i;
  EXPECT_TRUE(r.head.info.connection_other_tokens);
  EXPECT_FALSE(r.head.info.upgrade);  // Upgrade without Connection: upgrade
  EXPECT_FALSE(r.head.info.expect_continue);
}

struct BadCase {
  std::string input;
  Error error;
};

// Each input is a complete head that must be rejected with the given error.
const std::vector<BadCase> kBadRequests = {
    {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadMethod},
    {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadMethod},
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadTarget},
    {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadTarget},
    {"GET /\xce\xb4 HTTP/1.1\r\nHost: a\r\n\r\n", Error::kBadTarget},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Error::kBadVersion},
    {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Error::kBadVersion},
    {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", Error::kBadVersion},
    {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / HTTP/01.1\r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / http/1.1\r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / RTSP/1.0\r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET /\r\n\r\n", Error::kBadTarget},
    {"GET / HTTP/1.1\rHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / HTTP/1.1\nHost: a\r\n\r\n", Error::kBadRequestLine},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\nNa(me: x\r\n\r\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\nName\r\n\r\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\0z\r\n\r\n"s, Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rY: b\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\n\n", Error::kBadHeaderName},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Error::kObsFold},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", Error::kObsFold},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", Error::kObsFold},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
     Error::kBadContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
     Error::kDuplicateContentLength},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     Error::kContentLengthAndTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     Error::kContentLengthAndTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     "\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedchunked\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip;p=\"x,chunked\r\n\r\n",
     Error::kBadTransferEncoding},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Error::kBadTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     Error::kUnsupportedTransferEncoding},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     Error::kUnsupportedTransferEncoding},
    {"GET / HTTP/1.1\r\n\r\n", Error::kMissingHost},
    {"GET / HTTP/1.1\r\nhost: a\r\nHost: a\r\n\r\n", Error::kDuplicateHost},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", Error::kDuplicateHost},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Error::kBadHeaderValue},
    {"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", Error::kBadHeaderValue},
    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n",
     Error::kBadContentLength},
    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n",
     Error::kBadTransferEncoding},
};

TEST(Http1Request, RejectsBadInput) {
  for (const BadCase& c : kBadRequests) {
    Req r(c.input);
    EXPECT_EQ(r.result.status, ParseStatus::kError) << c.input;
    EXPECT_EQ(r.error(), c.error) << c.input << " -> " << describe(r.error());
  }
}

// Feeding a head in growing prefixes gives kIncomplete until the same result as feeding it whole.
TEST(Http1Request, PrefixesAgreeWithWholeInput) {
  std::vector<std::string> inputs = {std::string(kGet)};
  for (const BadCase& c : kBadRequests) inputs.push_back(c.input);
  for (const std::string& in : inputs) {
    Req whole(in);
    for (size_t n = 0; n <= in.size(); ++n) {
      Req part(std::string_view(in).substr(0, n));
      if (part.result.status == ParseStatus::kIncomplete) continue;
      EXPECT_EQ(part.result.status, whole.result.status) << in << " @" << n;
      EXPECT_EQ(part.error(), whole.error()) << in << " @" << n;
      EXPECT_EQ(part.result.consumed, whole.result.consumed) << in << " @" << n;
      break;
    }
  }
}

TEST(Http1Request, RejectsEarlyWhileIncomplete) {
  EXPECT_EQ(Req("GET / HTTP/5.6").error(), Error::kBadVersion);
  EXPECT_EQ(Req("GET / HTTP/1.1\r\n Host").error(), Error::kObsFold);
  EXPECT_EQ(Req("GET /\x01").error(), Error::kBadTarget);
  EXPECT_EQ(Req("PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n").error(),
            Error::kDuplicateContentLength);
}

TEST(Http1Request, AcceptsValidFraming) {
  Req cl("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  0042 \r\n\r\n");
  ASSERT_TRUE(cl.ok());
  EXPECT_EQ(cl.head.info.body, BodyKind::kContentLength);
  EXPECT_EQ(cl.head.info.content_length, 42u);
  Req max("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max.head.info.content_length, UINT64_MAX);
  Req te("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , ChUnKeD \t\r\n\r\n");
  ASSERT_TRUE(te.ok()) << describe(te.error());
  EXPECT_EQ(te.head.info.body, BodyKind::kChunked);
  Req connect("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  ASSERT_TRUE(connect.ok());
  EXPECT_EQ(connect.head.info.body, BodyKind::kNone);
  EXPECT_EQ(connect.head.target, "example.com:443");
  Req http10("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(http10.ok());
  EXPECT_EQ(http10.head.host, "");
  EXPECT_TRUE(Req("GET / HTTP/1.1\r\nHost:\r\n\r\n").ok());  // empty Host is allowed
  EXPECT_TRUE(Req("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").ok());
  EXPECT_TRUE(Req("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  EXPECT_TRUE(Req("GET http://a.b/c?d=\"e\"|f#g HTTP/1.1\r\nHost: a.b\r\n\r\n").ok());
  EXPECT_TRUE(Req("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n").ok());  // obs-text
}

TEST(Http1Request, ConnectionSemantics) {
  struct {
    const char* head;
    bool keep_alive, close, other;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, true, false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false, true, false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a\r\nConnection: ,keep-alive\r\n\r\n", true,
       false, true},
      {"GET / HTTP/1.0\r\n\r\n", false, false, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, true, false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true, false, true},
  };
  for (const auto& c : cases) {
    Req r(c.head);
    ASSERT_TRUE(r.ok()) << c.head;
    EXPECT_EQ(r.head.info.keep_alive, c.keep_alive) << c.head;
    EXPECT_EQ(r.head.info.connection_close, c.close) << c.head;
    EXPECT_EQ(r.head.info.connection_other_tokens, c.other) << c.head;
  }
}

TEST(Http1Request, UpgradeAndExpect) {
  Req up("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(up.ok());
  EXPECT_TRUE(up.head.info.upgrade);
  EXPECT_FALSE(Req("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n").head.info.upgrade);
  Req expect("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
  ASSERT_TRUE(expect.ok());
  EXPECT_TRUE(expect.head.info.expect_continue);
  Req old("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old.head.info.expect_continue);  // RFC 9110 §10.1.1: ignored in HTTP/1.0
}

TEST(Http1Request, RequestLineLimit) {
  Limits limits;
  limits.max_request_line = 20;
  const std::string fits = "GET /" + std::string(6, 'a') + " HTTP/1.1";  // 20 bytes
  ASSERT_EQ(fits.size(), 20u);
  EXPECT_TRUE(Req(fits + "\r\nHost: a\r\n\r\n", limits).ok());
  const std::string over = "GET /" + std::string(7, 'a') + " HTTP/1.1";
  EXPECT_EQ(Req(over + "\r\nHost: a\r\n\r\n", limits).error(), Error::kRequestLineTooLong);
  // Also while incomplete: no CRLF yet, but already past the limit.
  EXPECT_EQ(Req("GET /" + std::string(30, 'a'), limits).error(), Error::kRequestLineTooLong);
  EXPECT_EQ(Req("GET /" + std::string(15, 'a'), limits).result.status, ParseStatus::kIncomplete);
  EXPECT_EQ(Req(std::string(40, 'A'), limits).error(), Error::kRequestLineTooLong);
  EXPECT_EQ(Req(std::string(40, 'A'), limits).result.status, ParseStatus::kError);
  EXPECT_EQ(statusFor(Error::kRequestLineTooLong), 414);
}

TEST(Http1Request, HeaderLimits) {
  Limits limits;
  limits.max_header_bytes = 40;
  limits.max_headers = 3;
  const std::string line = "GET / HTTP/1.1\r\n";
  // 3 headers, 38 bytes of header section including the final CRLF.
  const std::string fits = line + "Host: a\r\nX-A: 0123456\r\nX-B: 012345\r\n\r\n";
  ASSERT_EQ(fits.size() - line.size(), 38u);
  EXPECT_TRUE(Req(fits, limits).ok());
  EXPECT_EQ(Req(line + "Host: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits).error(),
            Error::kTooManyHeaders);
  EXPECT_EQ(Req(line + "Host: a\r\nX-Long: " + std::string(40, 'v') + "\r\n\r\n", limits).error(),
            Error::kHeadersTooLarge);
  // Also while incomplete.
  EXPECT_EQ(Req(line + "Host: a\r\nX-Long: " + std::string(40, 'v'), limits).error(),
            Error::kHeadersTooLarge);
  EXPECT_EQ(Req(line + "Host: a\r\nA: 1\r\nB: 2\r\nC", limits).error(), Error::kTooManyHeaders);
  EXPECT_EQ(statusFor(Error::kHeadersTooLarge), 431);
  EXPECT_EQ(statusFor(Error::kTooManyHeaders), 431);
}

TEST(Http1Request, Pipelining) {
  const std::string in =
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "GET /b HTTP/1.1\r\nHost: y\r\n\r\n"
      "POST /c HTTP/1.1\r\nHost: z\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  std::vector<std::string> targets, bodies;
  size_t pos = 0;
  while (pos < in.size()) {
    Req r(std::string_view(in).substr(pos));
    ASSERT_TRUE(r.ok()) << describe(r.error());
    targets.emplace_back(r.head.target);
    pos += r.result.consumed;
    BodyDecoder d;
    d.reset(r.head.info.body, r.head.info.content_length);
    std::string body;
    for (;;) {
      auto s = d.decode(std::string_view(in).substr(pos));
      body.append(s.data);
      pos += s.consumed;
      ASSERT_NE(s.status, ParseStatus::kError);
      if (s.status == ParseStatus::kDone) break;
    }
    bodies.push_back(body);
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"/a", "/b", "/c"}));
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello", "", "abc"}));
}

TEST(Http1Response, Basics) {
  Res ok("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.head.status, 200);
  EXPECT_EQ(ok.head.reason, "OK");
  EXPECT_EQ(ok.head.info.body, BodyKind::kContentLength);
  EXPECT_EQ(ok.head.info.content_length, 3u);
  EXPECT_TRUE(ok.head.info.keep_alive);
  Res noreason("HTTP/1.1 404 \r\n\r\n");
  ASSERT_TRUE(noreason.ok());
  EXPECT_EQ(noreason.head.reason, "");
  Res nosp("HTTP/1.0 301\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(nosp.ok());
  EXPECT_EQ(nosp.head.status, 301);
  EXPECT_FALSE(nosp.head.info.keep_alive);
  Res spaced("HTTP/1.1 200  Fine  Thanks\r\n\r\n");
  ASSERT_TRUE(spaced.ok());
  EXPECT_EQ(spaced.head.reason, " Fine  Thanks");
}

TEST(Http1Response, BodilessResponses) {
  EXPECT_EQ(Res("HTTP/1.1 204 No Content\r\n\r\n").head.info.body, BodyKind::kNone);
  EXPECT_EQ(Res("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").head.info.body,
            BodyKind::kNone);
  EXPECT_EQ(Res("HTTP/1.1 100 Continue\r\n\r\n").head.info.body, BodyKind::kNone);
  Res head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD");
  EXPECT_EQ(head.head.info.body, BodyKind::kNone);
  EXPECT_TRUE(head.head.info.keep_alive);
  Res connect("HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT");
  EXPECT_EQ(connect.head.info.body, BodyKind::kNone);
  EXPECT_TRUE(connect.head.info.keep_alive);
  EXPECT_EQ(Res("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", "CONNECT").head.info.body,
            BodyKind::kContentLength);
  Res up("HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(up.head.info.upgrade);
  EXPECT_EQ(up.head.info.body, BodyKind::kNone);
  Res notup("HTTP/1.1 200 OK\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(notup.head.info.upgrade);
}

TEST(Http1Response, Framing) {
  Res until("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  EXPECT_EQ(until.head.info.body, BodyKind::kUntilClose);
  EXPECT_FALSE(until.head.info.keep_alive);
  Res chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(chunked.head.info.body, BodyKind::kChunked);
  EXPECT_TRUE(chunked.head.info.keep_alive);
  EXPECT_EQ(Res("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").head.info.body,
            BodyKind::kChunked);
  Res gzip("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
  EXPECT_EQ(gzip.head.info.body, BodyKind::kUntilClose);
  EXPECT_FALSE(gzip.head.info.keep_alive);
  EXPECT_EQ(
      Res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").error(),
      Error::kContentLengthAndTransferEncoding);
  EXPECT_EQ(
      Res("HTTP/1.1 304 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").error(),
      Error::kContentLengthAndTransferEncoding);
  EXPECT_EQ(Res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n").error(),
            Error::kDuplicateContentLength);
  EXPECT_EQ(Res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n").error(),
            Error::kBadTransferEncoding);
  EXPECT_EQ(Res("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").error(),
            Error::kBadTransferEncoding);
}

TEST(Http1Response, RejectsBadStatusLines) {
  const std::pair<std::string, Error> cases[] = {
      {"HTTP/1.1 20 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 2000 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 099 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1  200 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1\t200 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 200 O\x01K\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 200 OK\nX: y\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 200 OK\rX: y\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/2.0 200 OK\r\n\r\n", Error::kBadVersion},
      {"HTTP/1.01 200 OK\r\n\r\n", Error::kBadStatusLine},
      {"ICE/1.1 200 OK\r\n\r\n", Error::kBadStatusLine},
      {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", Error::kBadHeaderName},
      {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", Error::kObsFold},
  };
  for (const auto& [in, error] : cases) {
    Res r(in);
    EXPECT_EQ(r.result.status, ParseStatus::kError) << in;
    EXPECT_EQ(r.error(), error) << in << " -> " << describe(r.error());
  }
  EXPECT_EQ(statusFor(Error::kBadStatusLine), 502);
}

TEST(Http1Response, StatusLineLimit) {
  Limits limits;
  limits.max_request_line = 20;
  EXPECT_TRUE(Res("HTTP/1.1 200 " + std::string(7, 'r') + "\r\n\r\n", "GET", limits).ok());
  EXPECT_EQ(Res("HTTP/1.1 200 " + std::string(8, 'r') + "\r\n\r\n", "GET", limits).error(),
            Error::kHeadersTooLarge);
}

TEST(Http1Message, StatusAndDescription) {
  EXPECT_EQ(statusFor(Error::kBadVersion), 505);
  EXPECT_EQ(statusFor(Error::kUnsupportedTransferEncoding), 501);
  EXPECT_EQ(statusFor(Error::kMissingHost), 400);
  EXPECT_EQ(statusFor(Error::kContentLengthAndTransferEncoding), 400);
  EXPECT_EQ(describe(Error::kBadContentLength), "invalid Content-Length");
  for (int e = 0; e <= static_cast<int>(Error::kBadTrailer); ++e)
    EXPECT_NE(describe(static_cast<Error>(e)), "unknown error") << e;
}

}  // namespace
}  // namespace portico::http1
