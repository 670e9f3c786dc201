#include "http2/h2.h"

#include <gtest/gtest.h>

#include <string>

namespace portico::http2 {
namespace {

TEST(GrpcTimeout, UnitsRoundUpToMilliseconds) {
  EXPECT_EQ(parseGrpcTimeoutMs("1S"), 1000u);
  EXPECT_EQ(parseGrpcTimeoutMs("250m"), 250u);
  EXPECT_EQ(parseGrpcTimeoutMs("2M"), 120'000u);
  EXPECT_EQ(parseGrpcTimeoutMs("1H"), 3'600'000u);
  EXPECT_EQ(parseGrpcTimeoutMs("1500u"), 2u);
  EXPECT_EQ(parseGrpcTimeoutMs("1n"), 1u);  // never 0: that would mean "no deadline"
  EXPECT_EQ(parseGrpcTimeoutMs("0m"), 1u);
  EXPECT_EQ(parseGrpcTimeoutMs("99999999S"), 99'999'999'000u);  // 8 digits is the maximum
}

TEST(GrpcTimeout, MalformedIsIgnored) {
  for (const char* bad : {"", "S", "10", "10s", "123456789S", "-1S", "1.5S", " 1S", "1S "}) {
    EXPECT_EQ(parseGrpcTimeoutMs(bad), 0u) << bad;
  }
}

TEST(GrpcStatus, HttpMappingFollowsTheGrpcDocument) {
  EXPECT_EQ(grpcStatusForHttp(400), kGrpcInternal);
  EXPECT_EQ(grpcStatusForHttp(401), kGrpcUnauthenticated);
  EXPECT_EQ(grpcStatusForHttp(403), kGrpcPermissionDenied);
  EXPECT_EQ(grpcStatusForHttp(404), kGrpcUnimplemented);
  EXPECT_EQ(grpcStatusForHttp(429), kGrpcUnavailable);
  EXPECT_EQ(grpcStatusForHttp(502), kGrpcUnavailable);
  EXPECT_EQ(grpcStatusForHttp(503), kGrpcUnavailable);
  EXPECT_EQ(grpcStatusForHttp(504), kGrpcUnavailable);
  EXPECT_EQ(grpcStatusForHttp(500), kGrpcUnknown);
  EXPECT_EQ(grpcStatusForHttp(418), kGrpcUnknown);
}

TEST(GrpcMessage, PercentEncodesOutsidePrintableAscii) {
  EXPECT_EQ(percentEncodeGrpcMessage("no route"), "no route");
  EXPECT_EQ(percentEncodeGrpcMessage("100%\n"), "100%25%0A");
  EXPECT_EQ(percentEncodeGrpcMessage("\xE2\x98\xBA"), "%E2%98%BA");  // U+263A in UTF-8
}

TEST(ContentType, GrpcAndGrpcWeb) {
  EXPECT_TRUE(isGrpcContentType("application/grpc"));
  EXPECT_TRUE(isGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(isGrpcContentType("Application/GRPC;charset=x"));
  EXPECT_FALSE(isGrpcContentType("application/grpc-web"));
  EXPECT_FALSE(isGrpcContentType("application/grpcx"));
  EXPECT_FALSE(isGrpcContentType("application/json"));
  std::string_view suffix;
  EXPECT_EQ(grpcWebMode("application/grpc-web", &suffix), 1);
  EXPECT_EQ(suffix, "");
  EXPECT_EQ(grpcWebMode("application/grpc-web+proto", &suffix), 1);
  EXPECT_EQ(suffix, "+proto");
  EXPECT_EQ(grpcWebMode("application/grpc-web-text+proto", &suffix), 2);
  EXPECT_EQ(suffix, "+proto");
  EXPECT_EQ(grpcWebMode("application/grpc", &suffix), 0);
  EXPECT_EQ(grpcWebMode("application/grpc-webby", &suffix), 0);
}

TEST(Base64, RoundTripsEveryLength) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    std::string enc;
    base64Encode(data, enc);
    EXPECT_EQ(enc.size() % 4, 0u);
    std::string carry, dec;
    ASSERT_TRUE(base64Decode(carry, enc, dec));
    EXPECT_EQ(dec, data);
    EXPECT_TRUE(carry.empty());
    data.push_back(static_cast<char>(i * 37));
  }
  std::string enc;
  base64Encode("hi!", enc);
  EXPECT_EQ(enc, "aGkh");
}

TEST(Base64, DecodesAcrossCallsAndPaddedChunks) {
  // grpc-web-text bodies may arrive split anywhere and may concatenate padded chunks.
  std::string carry, out;
  ASSERT_TRUE(base64Decode(carry, "aG", out));
  ASSERT_TRUE(base64Decode(carry, "k=aGkh", out));
  EXPECT_EQ(out, "hihi!");
  EXPECT_TRUE(carry.empty());
  std::string c2, o2;
  EXPECT_FALSE(base64Decode(c2, "a*==", o2));
  std::string c3, o3;
  EXPECT_FALSE(base64Decode(c3, "a=b=", o3));  // data after padding in a group
}

}  // namespace
}  // namespace portico::http2
