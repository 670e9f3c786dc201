#include "net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace portico::net {

namespace {
// The wake eventfd's handler: drains the counter; tasks run after the batch.
class WakeHandler final : public IoHandler {
 public:
  explicit WakeHandler(int fd) : fd_(fd) {}
  void onIo(uint32_t) override {
    uint64_t v;
    [[maybe_unused]] ssize_t n = ::read(fd_, &v, sizeof v);
  }

 private:
  int fd_;
};
}  // namespace

uint64_t EventLoop::monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t EventLoop::monotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

EventLoop::EventLoop() : timers_(monotonicMs()) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) {
    std::perror("portico: epoll/eventfd");
    std::abort();
  }
  auto* wake = new WakeHandler(wakefd_);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<IoHandler*>(wake);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  wake_handler_ = wake;
}

EventLoop::~EventLoop() {
  for (Deferred* d : deferred_) delete d;
  delete wake_handler_;
  ::close(wakefd_);
  ::close(epfd_);
}

bool EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::stop() {
  post([this] { stopping_ = true; });
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakefd_, &one, sizeof one);
}

void EventLoop::runPosted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (posted_.empty()) return;
    tasks.swap(posted_);
  }
  for (auto& t : tasks) t();
}

void EventLoop::run() {
  while (!stopping_) runOnce(-1);
}

void EventLoop::runFlushes() {
  // A flush may queue others (a downstream write granting an upstream stream more window):
  // run rounds until none is left.
  std::vector<Flushable*> batch;
  while (!flushes_.empty()) {
    batch.swap(flushes_);
    for (Flushable* f : batch) {
      f->flush_queued_ = false;
      f->flushDeferred();
    }
    batch.clear();
  }
}

void EventLoop::runOnce(int max_wait_ms) {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  int wait = timers_.nextTimeoutMs();
  if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms)) wait = max_wait_ms;
  int n = epoll_wait(epfd_, events, kMaxEvents, wait);
  if (n < 0 && errno != EINTR) {
    std::perror("portico: epoll_wait");
    std::abort();
  }
  timers_.advance(monotonicMs());
  for (int i = 0; i < n; ++i) {
    static_cast<IoHandler*>(events[i].data.ptr)->onIo(events[i].events);
  }
  if (n > 0) timers_.advance(monotonicMs());
  runPosted();
  runFlushes();
  if (!deferred_.empty()) {
    std::vector<Deferred*> batch;
    batch.swap(deferred_);
    for (Deferred* d : batch) delete d;
  }
}

}  // namespace portico::net
