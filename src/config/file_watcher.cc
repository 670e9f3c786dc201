#include "config/file_watcher.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace portico::config {

FileWatcher::FileWatcher(net::EventLoop& loop, std::string path, std::function<void()> on_change)
    : loop_(loop), on_change_(std::move(on_change)) {
  timer_.set(&FileWatcher::onTimer, this);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    dir_ = path;
  } else {
    size_t slash = path.rfind('/');
    dir_ = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    file_ = slash == std::string::npos ? path : path.substr(slash + 1);
  }
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) return;
  uint32_t mask =
      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB;
  if (inotify_add_watch(fd_, dir_.c_str(), mask) < 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  loop_.add(fd_, EPOLLIN, this);
}

FileWatcher::~FileWatcher() {
  timer_.cancel();
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
  }
}

bool FileWatcher::relevant(const char* name) const {
  if (name == nullptr || name[0] == '\0') return false;
  if (!file_.empty()) return file_ == name;
  if (name[0] == '.') return false;  // hidden files and editors' swap files
  size_t n = std::strlen(name);
  auto ends = [&](const char* suffix) {
    size_t m = std::strlen(suffix);
    return n >= m && std::strcmp(name + n - m, suffix) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

void FileWatcher::onIo(uint32_t) {
  alignas(inotify_event) char buf[8192];
  bool changed = false;
  bool ends_write = false;  // the last relevant event ends a write (close after write, rename)
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->len > 0 && relevant(ev->name)) {
        changed = true;
        if (ev->mask & IN_MODIFY) writing_ = true;
        if (ev->mask & IN_CLOSE_WRITE) writing_ = false;
        ends_write = (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0;
      }
      p += sizeof(inotify_event) + ev->len;
    }
  }
  if (!changed) return;
  // Writes come in bursts (truncate, write, close): reload once, after the burst. A file
  // being written (modified, not closed yet) is waited for; a file closed after writing or
  // renamed into place is complete: reload now (events read in the same batch are coalesced).
  if (ends_write && !writing_) {
    timer_.cancel();
    on_change_();
    return;
  }
  loop_.timers().schedule(&timer_, writing_ ? kWritingMs : kDebounceMs);
}

void FileWatcher::onTimer(void* ctx) {
  auto* self = static_cast<FileWatcher*>(ctx);
  self->writing_ = false;  // a writer that never closes: reload after kWritingMs of quiet
  self->on_change_();
}

}  // namespace portico::config
