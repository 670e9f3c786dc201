#include "common/buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace portico {
namespace {

TEST(Buffer, AppendConsumeAndGrowKeepsBytes) {
  Buffer b;
  std::string expect;
  for (int i = 0; i < 5000; ++i) {
    std::string s = std::to_string(i) + ",";
    b.append(s);
    expect += s;
    if (i % 7 == 0) {
      b.consume(2);
      expect.erase(0, 2);
    }
  }
  EXPECT_EQ(b.view(), expect);
}

TEST(Buffer, ReleaseFreesOnlyWhenEmpty) {
  Buffer b;
  b.append("abc");
  b.release();
  EXPECT_EQ(b.view(), "abc");
  b.consume(3);
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
  b.append("x");
  EXPECT_EQ(b.capacity(), Buffer::kBlockSize);
}

}  // namespace
}  // namespace portico
