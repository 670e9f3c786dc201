// EventLoop: one epoll instance, its timer wheel and a cross-thread task queue.
//
// Thread-safety: everything but post() and stop() must be called on the loop's own thread.
// post()/stop() may be called from any thread; they take a mutex private to this loop (never
// shared between workers) and wake the loop through an eventfd.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "net/timer_wheel.h"

namespace portico::net {

// Something that owns a file descriptor registered with the loop.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
  virtual void onIo(uint32_t events) = 0;
};

// Objects destroyed at the end of the current loop iteration, after every event of the batch
// was dispatched (so a handler never runs after its owner was freed within one batch).
class Deferred {
 public:
  virtual ~Deferred() = default;
};

// Something that writes its output once per loop iteration: deferFlush() queues it, and
// flushDeferred() runs after the iteration's events, timers and posted tasks, before deferred
// deletions. Many small writes of one iteration (HTTP/2 frames of many streams) become one.
class Flushable {
 public:
  virtual void flushDeferred() = 0;

 protected:
  ~Flushable() = default;

 private:
  friend class EventLoop;
  bool flush_queued_ = false;
};

class EventLoop {
 public:
  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  bool add(int fd, uint32_t events, IoHandler* handler);
  bool modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);

  // Runs until stop(). Each iteration: epoll_wait, dispatch, fire timers, run posted tasks,
  // free deferred objects.
  void run();
  // One iteration of run(): waits at most `max_wait_ms` (-1: until the next timer or event).
  // For tests and fuzz targets that drive a loop themselves.
  void runOnce(int max_wait_ms);
  void stop();
  // Runs `task` on the loop thread soon. Thread-safe.
  void post(std::function<void()> task);
  // Destroys `obj` after the current iteration (loop thread only).
  void deferDelete(Deferred* obj) { deferred_.push_back(obj); }
  // Calls obj->flushDeferred() once at the end of the current iteration (loop thread only).
  // The object must stay alive until then: queue it before deferDelete()-ing it, never after.
  void deferFlush(Flushable* obj) {
    if (obj->flush_queued_) return;
    obj->flush_queued_ = true;
    flushes_.push_back(obj);
  }

  TimerWheel& timers() { return timers_; }
  // Monotonic milliseconds, refreshed once per iteration.
  uint64_t nowMs() const { return timers_.now(); }
  static uint64_t monotonicMs();
  static uint64_t monotonicUs();

 private:
  void runPosted();
  void runFlushes();

  int epfd_ = -1;
  int wakefd_ = -1;
  IoHandler* wake_handler_ = nullptr;
  bool stopping_ = false;
  TimerWheel timers_;
  std::vector<Deferred*> deferred_;
  std::vector<Flushable*> flushes_;
  std::mutex mu_;  // guards posted_ only; private to this loop
  std::vector<std::function<void()>> posted_;
};

}  // namespace portico::net
