#include "net/timer_wheel.h"

namespace portico::net {

void Timer::cancel() {
  if (wheel_ != nullptr) wheel_->unlink(this);
}

TimerWheel::~TimerWheel() {
  for (auto& head : slots_) {
    while (head != nullptr) unlink(head);
  }
}

void TimerWheel::link(Timer* t, Timer** head) {
  t->prev_ = nullptr;
  t->next_ = *head;
  if (*head != nullptr) (*head)->prev_ = t;
  *head = t;
  t->head_ = head;
  t->wheel_ = this;
  ++count_;
}

void TimerWheel::unlink(Timer* t) {
  if (t->prev_ != nullptr) {
    t->prev_->next_ = t->next_;
  } else {
    *t->head_ = t->next_;
  }
  if (t->next_ != nullptr) t->next_->prev_ = t->prev_;
  t->prev_ = t->next_ = nullptr;
  t->head_ = nullptr;
  t->wheel_ = nullptr;
  --count_;
}

void TimerWheel::schedule(Timer* t, uint64_t delay_ms) {
  if (t->wheel_ != nullptr) unlink(t);
  t->deadline_ = now_ + delay_ms;
  uint64_t tick = (t->deadline_ + kTickMs - 1) / kTickMs;
  if (tick <= tick_) tick = tick_ + 1;
  link(t, &slots_[tick % kSlots]);
}

void TimerWheel::advance(uint64_t now_ms) {
  if (now_ms > now_) now_ = now_ms;
  uint64_t target = now_ / kTickMs;
  while (tick_ < target) {
    ++tick_;
    if (count_ == 0) {
      tick_ = target;
      break;
    }
    Timer*& slot = slots_[tick_ % kSlots];
    if (slot == nullptr) continue;
    // Detach the slot so callbacks that re-arm into it (a full revolution later) are not
    // seen again in this pass; unlink() keeps working through head_.
    processing_ = slot;
    slot = nullptr;
    for (Timer* t = processing_; t != nullptr; t = t->next_) t->head_ = &processing_;
    while (processing_ != nullptr) {
      Timer* t = processing_;
      unlink(t);
      if (t->deadline_ <= now_) {
        t->cb_(t->ctx_);
      } else {
        uint64_t tick = (t->deadline_ + kTickMs - 1) / kTickMs;
        link(t, &slots_[tick % kSlots]);
      }
    }
  }
}

}  // namespace portico::net
