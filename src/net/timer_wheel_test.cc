#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace portico::net {
namespace {

struct Fired {
  std::vector<int> ids;
};

struct Ctx {
  Fired* fired;
  int id;
};

void record(void* p) {
  auto* c = static_cast<Ctx*>(p);
  c->fired->ids.push_back(c->id);
}

TEST(TimerWheel, FiresInDeadlineOrderAndNeverEarly) {
  TimerWheel w(1000);
  Fired f;
  Ctx a{&f, 1}, b{&f, 2};
  Timer ta(&record, &a), tb(&record, &b);
  w.schedule(&ta, 50);
  w.schedule(&tb, 20);
  w.advance(1019);
  EXPECT_TRUE(f.ids.empty());
  w.advance(1020);
  EXPECT_EQ(f.ids, std::vector<int>({2}));
  w.advance(1049);
  EXPECT_EQ(f.ids.size(), 1u);
  w.advance(1050);
  EXPECT_EQ(f.ids, std::vector<int>({2, 1}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CancelAndRescheduleAndLongDelays) {
  TimerWheel w(0);
  Fired f;
  Ctx a{&f, 1}, b{&f, 2};
  Timer ta(&record, &a), tb(&record, &b);
  w.schedule(&ta, 100);
  w.schedule(&tb, 100);
  ta.cancel();
  w.schedule(&tb, 30'000);  // beyond one revolution of the wheel
  w.advance(10'239);
  w.advance(20'000);
  EXPECT_TRUE(f.ids.empty());
  w.advance(30'000);
  EXPECT_EQ(f.ids, std::vector<int>({2}));
}

struct Rearm {
  TimerWheel* wheel;
  Timer* self;
  Timer* victim;
  int count = 0;
};

void rearmAndCancel(void* p) {
  auto* r = static_cast<Rearm*>(p);
  ++r->count;
  if (r->victim) r->victim->cancel();                     // cancel a timer due in the same slot
  if (r->count < 3) r->wheel->schedule(r->self, 10'240);  // exactly one revolution later
}

TEST(TimerWheel, CallbacksMayCancelOthersAndRearmIntoTheSameSlot) {
  TimerWheel w(0);
  Fired f;
  Ctx v{&f, 9};
  Timer victim(&record, &v);
  Timer t;
  Rearm r{&w, &t, &victim};
  t.set(&rearmAndCancel, &r);
  w.schedule(&victim, 100);
  w.schedule(&t, 100);  // same slot, linked first
  w.advance(100);
  EXPECT_EQ(r.count, 1);
  EXPECT_TRUE(f.ids.empty());
  w.advance(100 + 10'240);
  EXPECT_EQ(r.count, 2);
  w.advance(100 + 2 * 10'240);
  EXPECT_EQ(r.count, 3);
  EXPECT_EQ(w.size(), 0u);
}

}  // namespace
}  // namespace portico::net
