#include "admin/admin_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/buffer.h"
#include "http1/parser.h"
#include "proxy/http_util.h"

namespace portico::admin {

namespace {

class AdminConn final : public net::IoHandler, public net::Deferred {
 public:
  AdminConn(net::EventLoop& loop, int fd, const AdminHandler& handler)
      : loop_(loop), fd_(fd), handler_(handler) {
    loop_.add(fd_, EPOLLIN, this);
    timer_.set(&AdminConn::onTimeout, this);
    loop_.timers().schedule(&timer_, 10'000);
  }
  ~AdminConn() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void onIo(uint32_t events) override {
    if (fd_ < 0) return;
    if (responded_) {
      flush();
      return;
    }
    char* p = in_.reserve(4096);
    ssize_t n = ::recv(fd_, p, in_.writable(), 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      close();
      return;
    }
    in_.commit(static_cast<size_t>(n));
    http1::Limits limits;
    limits.max_header_bytes = 16 * 1024;
    limits.max_headers = 64;
    std::vector<http1::Header> headers(limits.max_headers);
    http1::RequestHead head;
    head.headers = headers.data();
    http1::ParseResult r = http1::parseRequestHead(in_.view(), limits, &head);
    if (r.status == http1::ParseStatus::kIncomplete) return;
    responded_ = true;
    if (r.status == http1::ParseStatus::kError) {
      proxy::appendLocalResponse(out_, http1::statusFor(r.error),
                                 std::string(http1::describe(r.error)) + "\n", true);
    } else {
      std::string_view target = head.target;
      size_t q = target.find('?');
      std::string_view path = target.substr(0, q);
      std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
      AdminResponse resp = handler_(head.method, path, query);
      out_.append("HTTP/1.1 ");
      proxy::appendDecimal(out_, static_cast<uint64_t>(resp.status));
      out_.append(" ");
      out_.append(proxy::reasonPhrase(resp.status));
      out_.append("\r\ncontent-type: ");
      out_.append(resp.content_type);
      out_.append("\r\ncontent-length: ");
      proxy::appendDecimal(out_, resp.body.size());
      out_.append("\r\nconnection: close\r\n\r\n");
      if (head.method != "HEAD") out_.append(resp.body);
    }
    flush();
  }

 private:
  void flush() {
    while (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out_.consume(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        loop_.modify(fd_, EPOLLOUT, this);
        return;
      }
      break;
    }
    close();
  }
  void close() {
    if (fd_ < 0) return;
    timer_.cancel();
    loop_.remove(fd_);
    ::shutdown(fd_, SHUT_WR);
    ::close(fd_);
    fd_ = -1;
    loop_.deferDelete(this);
  }
  static void onTimeout(void* ctx) { static_cast<AdminConn*>(ctx)->close(); }

  net::EventLoop& loop_;
  int fd_;
  const AdminHandler& handler_;
  bool responded_ = false;
  Buffer in_;
  Buffer out_;
  net::Timer timer_;
};

}  // namespace

AdminServer::AdminServer(net::EventLoop& loop, int fd, AdminHandler handler)
    : loop_(loop), fd_(fd), handler_(std::move(handler)) {
  loop_.add(fd_, EPOLLIN, this);
}

AdminServer::~AdminServer() {
  loop_.remove(fd_);
  ::close(fd_);
}

void AdminServer::onIo(uint32_t) {
  for (int i = 0; i < 16; ++i) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    new AdminConn(loop_, fd, handler_);
  }
}

}  // namespace portico::admin
