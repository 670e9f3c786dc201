// FileWatcher: tells the main thread when the configuration files change (inotify).
//
// Watches the folder holding PATH (a file: its parent folder, filtered by name, so editors that
// replace the file by rename are seen; a folder: every *.yaml/*.yml in it). Events are
// coalesced, `on_change` runs once per burst: at once when the events read together end with
// a file closed after writing or renamed into place; kWritingMs after the last
// event while a file was modified and not closed yet (so that a half-written file is not
// read); kDebounceMs after the last event otherwise (create, delete, attributes).
// Main thread only; never used on a worker.
#pragma once

#include <functional>
#include <string>

#include "net/event_loop.h"

namespace portico::config {

class FileWatcher final : public net::IoHandler {
 public:
  static constexpr uint32_t kDebounceMs = 10;
  static constexpr uint32_t kWritingMs = 100;

  FileWatcher(net::EventLoop& loop, std::string path, std::function<void()> on_change);
  ~FileWatcher() override;
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // False when inotify is unavailable (the gateway then reloads on SIGHUP only).
  bool ok() const { return fd_ >= 0; }
  void onIo(uint32_t events) override;

 private:
  static void onTimer(void* ctx);
  bool relevant(const char* name) const;

  net::EventLoop& loop_;
  std::string dir_;
  std::string file_;  // "" when watching a whole folder
  std::function<void()> on_change_;
  int fd_ = -1;
  bool writing_ = false;  // a relevant file was modified and not closed since
  net::Timer timer_;
};

}  // namespace portico::config
