#include "net/socket.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portico::net {

Result<int> listenTcp(const Address& addr, bool reuse_port, int backlog) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, addr.sa(), addr.length) != 0) {
    std::string msg = "bind " + addr.toString() + ": " + std::strerror(errno);
    ::close(fd);
    return Status::error(msg);
  }
  if (::listen(fd, backlog) != 0) {
    std::string msg = "listen " + addr.toString() + ": " + std::strerror(errno);
    ::close(fd);
    return Status::error(msg);
  }
  return fd;
}

Result<int> connectTcp(const Address& addr, bool* in_progress) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Status::error(std::string("socket: ") + std::strerror(errno), ErrorSource::kInternal);
  }
  tuneStream(fd);
  *in_progress = false;
  if (::connect(fd, addr.sa(), addr.length) != 0) {
    if (errno == EINPROGRESS) {
      *in_progress = true;
    } else {
      std::string msg = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      return Status::error(msg, ErrorSource::kUpstream, true);
    }
  }
  return fd;
}

int connectError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void tuneStream(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Address localAddress(int fd) {
  Address a;
  a.length = sizeof a.storage;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length);
  return a;
}

}  // namespace portico::net
