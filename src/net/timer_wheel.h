// TimerWheel: O(1) schedule/cancel timers for one event loop (one thread).
//
// Resolution kTickMs; deadlines beyond one revolution are re-inserted when their slot comes
// round. Timers are intrusive: the owner embeds a Timer and must cancel it (or let it fire)
// before destroying it; ~Timer cancels automatically.
#pragma once

#include <cstdint>

namespace portico::net {

class TimerWheel;

class Timer {
 public:
  using Callback = void (*)(void* ctx);
  Timer() = default;
  Timer(Callback cb, void* ctx) : cb_(cb), ctx_(ctx) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }

  void set(Callback cb, void* ctx) {
    cb_ = cb;
    ctx_ = ctx;
  }
  bool armed() const { return wheel_ != nullptr; }
  uint64_t deadline() const { return deadline_; }
  void cancel();

 private:
  friend class TimerWheel;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  Timer** head_ = nullptr;  // the list this timer is on
  TimerWheel* wheel_ = nullptr;
  uint64_t deadline_ = 0;
  Callback cb_ = nullptr;
  void* ctx_ = nullptr;
};

class TimerWheel {
 public:
  static constexpr uint64_t kTickMs = 10;
  static constexpr uint32_t kSlots = 1024;

  explicit TimerWheel(uint64_t now_ms) : now_(now_ms), tick_(now_ms / kTickMs) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  ~TimerWheel();

  // (Re)arms `t` to fire at now + delay_ms (at tick resolution, never early).
  void schedule(Timer* t, uint64_t delay_ms);
  // Fires every timer whose deadline is <= now_ms. Callbacks may schedule or cancel timers.
  void advance(uint64_t now_ms);
  // Milliseconds until the next tick if any timer is armed, else -1 (for epoll_wait).
  int nextTimeoutMs() const { return count_ == 0 ? -1 : static_cast<int>(kTickMs); }
  uint64_t now() const { return now_; }
  uint32_t size() const { return count_; }

 private:
  friend class Timer;
  void link(Timer* t, Timer** head);
  void unlink(Timer* t);

  Timer* slots_[kSlots] = {};
  Timer* processing_ = nullptr;  // the slot being fired, detached from slots_
  uint64_t now_;
  uint64_t tick_;  // last processed tick
  uint32_t count_ = 0;
};

}  // namespace portico::net
