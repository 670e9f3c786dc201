// Buffer: a contiguous byte queue with a read and a write offset.
// Owned by one connection; not thread-safe. Memory is released when the buffer empties
// and `release()` is called, so idle connections hold no buffer.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace portico {

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~Buffer() { freeStorage(); }

  // First allocations come from a per-thread free list of kBlockSize blocks, so a connection
  // that takes and returns a buffer per request never reaches malloc in steady state.
  static constexpr size_t kBlockSize = 16 * 1024;

  const char* data() const { return data_ + read_; }
  size_t size() const { return write_ - read_; }
  bool empty() const { return write_ == read_; }
  std::string_view view() const { return {data(), size()}; }

  void append(std::string_view s) { append(s.data(), s.size()); }
  void append(const char* p, size_t n) {
    if (n == 0) return;
    reserve(n);
    std::memcpy(data_ + write_, p, n);
    write_ += n;
  }
  // Space to write at least `n` bytes; commit() what was written.
  char* reserve(size_t n) {
    if (cap_ - write_ < n) grow(n);
    return data_ + write_;
  }
  size_t writable() const { return cap_ - write_; }
  void commit(size_t n) { write_ += n; }
  void consume(size_t n) {
    read_ += n;
    if (read_ == write_) read_ = write_ = 0;
  }
  void clear() { read_ = write_ = 0; }
  // Frees the storage if the buffer is empty.
  void release() {
    if (read_ == write_ && data_ != nullptr) {
      freeStorage();
      data_ = nullptr;
      cap_ = read_ = write_ = 0;
    }
  }
  size_t capacity() const { return cap_; }

 private:
  void grow(size_t n) {
    size_t live = write_ - read_;
    if (read_ > 0 && cap_ - live >= n && live <= cap_ / 2) {
      std::memmove(data_, data_ + read_, live);
    } else {
      size_t cap = cap_ == 0 ? kBlockSize : cap_;
      while (cap - live < n) cap *= 2;
      char* d = cap == kBlockSize ? takeBlock() : static_cast<char*>(std::malloc(cap));
      if (live) std::memcpy(d, data_ + read_, live);
      freeStorage();
      data_ = d;
      cap_ = cap;
    }
    write_ = live;
    read_ = 0;
  }
  struct BlockPool {
    static constexpr size_t kMaxFree = 1024;
    char* free[kMaxFree];
    size_t count = 0;
    ~BlockPool() {
      while (count > 0) std::free(free[--count]);
    }
  };
  static BlockPool& pool() {
    static thread_local BlockPool p;
    return p;
  }
  static char* takeBlock() {
    BlockPool& p = pool();
    if (p.count > 0) return p.free[--p.count];
    return static_cast<char*>(std::malloc(kBlockSize));
  }
  void freeStorage() {
    if (data_ == nullptr) return;
    BlockPool& p = pool();
    if (cap_ == kBlockSize && p.count < BlockPool::kMaxFree) {
      p.free[p.count++] = data_;
    } else {
      std::free(data_);
    }
  }
  void swap(Buffer& o) {
    std::swap(data_, o.data_);
    std::swap(cap_, o.cap_);
    std::swap(read_, o.read_);
    std::swap(write_, o.write_);
  }

  char* data_ = nullptr;
  size_t cap_ = 0;
  size_t read_ = 0;
  size_t write_ = 0;
};

}  // namespace portico
