// Connection: what a Worker knows of a client connection, whatever its protocol (HTTP/1.1
// DownstreamConn, HTTP/2 H2DownstreamConn): an intrusive list link, drain and close.
#pragma once

namespace portico::proxy {

class Connection {
 public:
  // Worker drain: idle connections close now, busy ones once their requests are answered.
  virtual void drain() = 0;
  // Closes at once, with every upstream connection or stream it uses.
  virtual void close() = 0;

  Connection* prev = nullptr;  // Worker's intrusive list
  Connection* next = nullptr;

 protected:
  ~Connection() = default;
};

}  // namespace portico::proxy
