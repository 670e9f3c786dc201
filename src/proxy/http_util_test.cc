#include "proxy/http_util.h"

#include <gtest/gtest.h>

namespace portico::proxy {
namespace {

TEST(HttpUtil, CookieValue) {
  EXPECT_EQ(cookieValue("a=1; session=abc; b=2", "session"), "abc");
  EXPECT_EQ(cookieValue("session=\"q v\"", "session"), "q v");
  EXPECT_EQ(cookieValue("sessionx=1; xsession=2", "session").data(), nullptr);
  EXPECT_EQ(cookieValue("", "session").data(), nullptr);
  std::string_view empty = cookieValue("a=; session=", "session");
  EXPECT_NE(empty.data(), nullptr);
  EXPECT_EQ(empty, "");
}

TEST(HttpUtil, QueryValue) {
  EXPECT_EQ(queryValue("a=1&user=u1&b", "user"), "u1");
  EXPECT_EQ(queryValue("user=a%20b", "user"), "a%20b");  // as written, not decoded
  std::string_view bare = queryValue("a=1&flag", "flag");
  EXPECT_NE(bare.data(), nullptr);
  EXPECT_EQ(bare, "");
  EXPECT_EQ(queryValue("users=1&auser=2", "user").data(), nullptr);
}

TEST(HttpUtil, Idempotent) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
    EXPECT_TRUE(isIdempotent(m)) << m;
  for (const char* m : {"POST", "PATCH", "CONNECT", "get"}) EXPECT_FALSE(isIdempotent(m)) << m;
}

}  // namespace
}  // namespace portico::proxy
