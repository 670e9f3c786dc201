#include "config/filters.h"

#include <gtest/gtest.h>

namespace portico::config {
namespace {

std::string describe(const HeaderModifier& m) {
  std::string out;
  for (const std::string& n : m.remove) out += "-" + n + " ";
  for (const HeaderValue& h : m.set) out += "=" + h.name + ":" + h.value + " ";
  for (const HeaderValue& h : m.add) out += "+" + h.name + ":" + h.value + " ";
  return out;
}

TEST(ComposeModifiers, EitherSideAlone) {
  HeaderModifier a{{{"x", "1"}}, {}, {"y"}};
  EXPECT_EQ(describe(composeModifiers(&a, nullptr)), "-y =x:1 ");
  EXPECT_EQ(describe(composeModifiers(nullptr, &a)), "-y =x:1 ");
  EXPECT_TRUE(composeModifiers(nullptr, nullptr).empty());
}

TEST(ComposeModifiers, SecondWins) {
  // Rule: set x=1, add y=a, remove z. BackendRef: set y=b, add x=2, add z=3, remove w.
  HeaderModifier rule{{{"x", "1"}}, {{"y", "a"}}, {"z"}};
  HeaderModifier backend{{{"y", "b"}}, {{"x", "2"}, {"z", "3"}}, {"w"}};
  // x: set 1 then add 2 -> set 1, add 2. y: set b. z: removed then added 3 -> set 3. w: removed.
  EXPECT_EQ(describe(composeModifiers(&rule, &backend)), "-w =x:1 =y:b =z:3 +x:2 ");
}

TEST(ComposeModifiers, AddsAccumulateAndRemoveAfterSet) {
  HeaderModifier rule{{}, {{"x", "1"}}, {}};
  HeaderModifier backend{{}, {{"x", "2"}}, {}};
  EXPECT_EQ(describe(composeModifiers(&rule, &backend)), "+x:1,2 ");
  HeaderModifier set{{{"x", "1"}}, {}, {}};
  HeaderModifier remove{{}, {}, {"x"}};
  EXPECT_EQ(describe(composeModifiers(&set, &remove)), "-x ");
}

}  // namespace
}  // namespace portico::config
