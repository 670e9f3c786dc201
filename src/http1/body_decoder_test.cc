// BodyDecoder: Content-Length, until-close and chunked bodies, fed whole and in pieces.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "http1/parser.h"

namespace portico::http1 {
namespace {

// Decodes a whole body, `step` bytes at a time; returns the data and sets the final step.
std::string decodeAll(BodyKind kind, std::string_view input, size_t step, BodyDecoder::Step* last,
                      size_t* used, uint64_t length = 0) {
  BodyDecoder d;
  d.reset(kind, length);
  std::string data;
  size_t pos = 0;
  size_t avail = std::min(step, input.size());
  for (;;) {
    BodyDecoder::Step s = d.decode(input.substr(pos, avail - pos));
    if (!s.data.empty()) {
      // Spans point into the input.
      EXPECT_GE(s.data.data(), input.data() + pos);
      EXPECT_LE(s.data.data() + s.data.size(), input.data() + avail);
    }
    data.append(s.data);
    pos += s.consumed;
    *last = s;
    if (s.status != ParseStatus::kIncomplete) break;
    if (s.consumed == 0) {
      if (avail == input.size()) break;
      avail = std::min(input.size(), avail + step);
    }
  }
  *used = pos;
  return data;
}

TEST(Http1Body, ContentLength) {
  BodyDecoder::Step last;
  size_t used = 0;
  EXPECT_EQ(decodeAll(BodyKind::kContentLength, "helloEXTRA", 100, &last, &used, 5), "hello");
  EXPECT_EQ(last.status, ParseStatus::kDone);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(decodeAll(BodyKind::kContentLength, "hel", 100, &last, &used, 5), "hel");
  EXPECT_EQ(last.status, ParseStatus::kIncomplete);
  BodyDecoder d;
  d.reset(BodyKind::kContentLength, 0);
  EXPECT_TRUE(d.done());
  d.reset(BodyKind::kNone);
  EXPECT_EQ(d.decode("abc").status, ParseStatus::kDone);
  EXPECT_EQ(d.decode("abc").consumed, 0u);
}

TEST(Http1Body, UntilClose) {
  BodyDecoder d;
  d.reset(BodyKind::kUntilClose);
  auto s = d.decode("anything at all");
  EXPECT_EQ(s.status, ParseStatus::kIncomplete);
  EXPECT_EQ(s.data, "anything at all");
  EXPECT_EQ(s.consumed, 15u);
}

struct ChunkCase {
  std::string input;
  ParseStatus status;
  Error error;
  std::string data;
};

const std::vector<ChunkCase> kChunkCases = {
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", ParseStatus::kDone, Error::kNone, "hello world"},
    {"A\r\n0123456789\r\n0\r\n\r\n", ParseStatus::kDone, Error::kNone, "0123456789"},
    {"000\r\n\r\n", ParseStatus::kDone, Error::kNone, ""},
    {"5;a\r\nhello\r\n0;b=c;d=\"e; \\\"f\\\" \"\r\n\r\n", ParseStatus::kDone, Error::kNone,
     "hello"},
    {"5;ilovew3;somuchlove=aretheseparametersfor;another=withvalue\r\nhello\r\n0\r\n\r\n",
     ParseStatus::kDone, Error::kNone, "hello"},
    {"3\r\nabc\r\n0\r\nVary: *\r\nX-Checksum: abc def\r\n\r\n", ParseStatus::kDone, Error::kNone,
     "abc"},
    {"3\r\nabc\r\n0\r\nX-Empty:\r\n\r\n", ParseStatus::kDone, Error::kNone, "abc"},
    {"3\r\nab", ParseStatus::kIncomplete, Error::kNone, "ab"},
    {"ffffffffffffffff\r\nab", ParseStatus::kIncomplete, Error::kNone, "ab"},
    {"00000000000000001\r\na\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"\r\nabc\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3\r\nabc\r\n\r\n", ParseStatus::kError, Error::kBadChunk, "abc"},
    {"g\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"-1\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3 \r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3\r\nabcX\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, "abc"},
    {"3\r\nabc\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, "abc"},
    {"3\r\r;x\r\nabc\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;\r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3; a\r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;a=\r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;a=\"b\r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;a=\"b\"c\r\nabc\r\n0\r\n\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;a=b\x01\r\nabc\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"3;a\x7f\r\nabc\r\n", ParseStatus::kError, Error::kBadChunk, ""},
    {"0\r\nNo-Colon\r\n\r\n", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\nX : y\r\n\r\n", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\nX: y\r\n z\r\n\r\n", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\nX: y\nZ: w\r\n\r\n", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\nX: a\x01\r\n\r\n", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\n\rX", ParseStatus::kError, Error::kBadTrailer, ""},
    {"0\r\n\n", ParseStatus::kError, Error::kBadTrailer, ""},
};

TEST(Http1Body, Chunked) {
  for (const ChunkCase& c : kChunkCases) {
    BodyDecoder::Step last;
    size_t used = 0;
    EXPECT_EQ(decodeAll(BodyKind::kChunked, c.input, SIZE_MAX, &last, &used), c.data) << c.input;
    EXPECT_EQ(last.status, c.status) << c.input;
    EXPECT_EQ(last.error, c.error) << c.input;
  }
}

// Byte-by-byte (and other splits) give identical data, status, error and consumed total.
TEST(Http1Body, SplitFeedingIsEquivalent) {
  for (const ChunkCase& c : kChunkCases) {
    BodyDecoder::Step whole_last;
    size_t whole_used = 0;
    const std::string whole =
        decodeAll(BodyKind::kChunked, c.input, SIZE_MAX, &whole_last, &whole_used);
    for (size_t step : {1, 2, 3, 7}) {
      BodyDecoder::Step last;
      size_t used = 0;
      EXPECT_EQ(decodeAll(BodyKind::kChunked, c.input, step, &last, &used), whole) << c.input;
      EXPECT_EQ(last.status, whole_last.status) << c.input << " step " << step;
      EXPECT_EQ(last.error, whole_last.error) << c.input << " step " << step;
      EXPECT_EQ(used, whole_used) << c.input << " step " << step;
    }
  }
}

TEST(Http1Body, ErrorIsSticky) {
  BodyDecoder d;
  d.reset(BodyKind::kChunked);
  EXPECT_EQ(d.decode("x").status, ParseStatus::kError);
  auto s = d.decode("5\r\nhello");
  EXPECT_EQ(s.status, ParseStatus::kError);
  EXPECT_EQ(s.error, Error::kBadChunk);
  EXPECT_EQ(s.consumed, 0u);
}

TEST(Http1Body, TrailerSectionIsBounded) {
  std::string in = "0\r\n";
  while (in.size() < 70 * 1024) in += "X-Pad: " + std::string(100, 'p') + "\r\n";
  in += "\r\n";
  BodyDecoder::Step last;
  size_t used = 0;
  decodeAll(BodyKind::kChunked, in, SIZE_MAX, &last, &used);
  EXPECT_EQ(last.error, Error::kBadTrailer);
  std::string small = "0\r\n";
  while (small.size() < 50 * 1024) small += "X-Pad: " + std::string(100, 'p') + "\r\n";
  small += "\r\n";
  decodeAll(BodyKind::kChunked, small, SIZE_MAX, &last, &used);
  EXPECT_EQ(last.status, ParseStatus::kDone);
}

TEST(Http1Body, ChunkExtensionsAreBounded) {
  const std::string in = "1;x=" + std::string(8000, 'a') + "\r\na\r\n0\r\n\r\n";
  BodyDecoder::Step last;
  size_t used = 0;
  decodeAll(BodyKind::kChunked, in, SIZE_MAX, &last, &used);
  EXPECT_EQ(last.error, Error::kBadChunk);
}

}  // namespace
}  // namespace portico::http1
