// AdminServer: the admin HTTP listener (/ready, /stats/prometheus, /config_dump, ...).
//
// Runs on the main thread's event loop, never on a worker. One request per connection
// (answered with Connection: close); the routes are supplied by the caller as a handler.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "net/event_loop.h"

namespace portico::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using AdminHandler = std::function<AdminResponse(std::string_view method, std::string_view path,
                                                 std::string_view query)>;

class AdminServer final : public net::IoHandler {
 public:
  // Takes ownership of the listening socket `fd`.
  AdminServer(net::EventLoop& loop, int fd, AdminHandler handler);
  ~AdminServer() override;
  void onIo(uint32_t events) override;

 private:
  net::EventLoop& loop_;
  int fd_;
  AdminHandler handler_;
};

}  // namespace portico::admin
