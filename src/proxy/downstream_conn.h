// DownstreamConn: one client connection speaking HTTP/1.1, proxied request by request.
//
// Life of a request: read → parse head (http1::parseRequestHead) → route (router::RouteTable)
// → pick backend and endpoint → take a pooled UpstreamConn or connect → serialize the head
// (hop-by-hop removed, X-Forwarded-*) → stream the body (re-framed) → parse the response head
// → stream the response body → return the upstream connection to the pool → next request.
// One request is in flight at a time; pipelined requests wait in the input buffer.
// Bodies stream with backpressure: a side's output above kHighWater pauses reading the other.
// Loop-thread only. Freed through EventLoop::deferDelete after close().
#pragma once

#include <netinet/in.h>

#include <cstdint>

#include "common/buffer.h"
#include "config/snapshot.h"
#include "http1/parser.h"
#include "net/event_loop.h"
#include "upstream/upstream_conn.h"

namespace portico::proxy {

class Worker;
struct LocalSnapshot;

class DownstreamConn final : public net::IoHandler,
                             public net::Deferred,
                             public upstream::UpstreamOwner {
 public:
  DownstreamConn(Worker& worker, int fd, const sockaddr* peer, uint16_t local_port);
  ~DownstreamConn() override;

  void start();
  void onIo(uint32_t events) override;
  void onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) override;

  // Worker drain: idle connections close now, busy ones after their current response.
  void drain();
  // Closes the connection and any upstream connection it uses.
  void close();

  DownstreamConn* prev = nullptr;  // Worker's intrusive list
  DownstreamConn* next = nullptr;

  static constexpr size_t kReadSize = 16 * 1024;
  static constexpr size_t kHighWater = 256 * 1024;

 private:
  enum class Phase : uint8_t { kHead, kProxy, kLinger, kClosed };
  enum class UpTimer : uint8_t { kNone, kConnect, kResponse, kBodyGap };

  // Downstream side.
  void readDownstream();
  void process();
  bool startRequest(http1::RequestHead& head, size_t head_len);
  bool forwardRequestBody();
  bool flushOut();
  void updateInterest();
  void onDownstreamEof();
  void respondLocal(int status, std::string_view body, bool close);
  void finishExchange();
  void beginClose();
  void resetRequestState();
  const config::Port* findPort();

  // Upstream side.
  bool connectUpstream();
  void serializeRequestHead(const http1::RequestHead& head, std::string_view target,
                            std::string_view authority, Buffer& out);
  void flushUpstream();
  void readUpstream();
  void processResponse();
  void writeResponseHead(const http1::ResponseHead& head);
  void responseComplete();
  void upstreamFailed(int status, std::string_view why, bool reset);
  bool retryOnFreshConnection();
  void releaseUpstream(bool reusable);
  void armUpTimer(UpTimer kind, uint32_t ms);

  static void onTimer(void* ctx);
  static void onUpTimer(void* ctx);

  Worker& worker_;
  int fd_;
  Phase phase_ = Phase::kHead;
  UpTimer up_timer_kind_ = UpTimer::kNone;
  uint8_t peer_family_;
  uint8_t req_version_minor_ = 1;
  bool head_started_ = false;  // first byte of the current head arrived
  bool req_keep_alive_ = true;
  bool req_is_head_ = false;
  bool req_chunked_out_ = false;  // we send the request body chunked
  bool req_done_ = true;          // request body fully forwarded
  bool req_bodyless_ = true;
  bool resp_head_done_ = false;
  bool resp_chunked_out_ = false;  // we send the response body chunked
  bool resp_close_ = false;        // the connection closes after this response
  bool retried_ = false;
  bool up_keep_alive_ = false;  // the upstream allows reuse after this response
  bool draining_ = false;
  bool client_eof_ = false;  // the client half-closed after its request
  uint16_t local_port_;
  uint32_t interest_ = 0;
  uint32_t port_index_ = 0;
  uint64_t port_version_ = ~0ull;
  int resp_status_ = 0;
  uint8_t peer_addr_[16];
  Buffer in_;
  Buffer out_;
  Buffer req_head_;  // the upstream request head, kept for one retry of bodiless requests
  http1::BodyDecoder req_body_;
  http1::BodyDecoder resp_body_;
  net::Timer timer_;                   // idle / header / body-gap / linger
  net::Timer up_timer_;                // connect / response / response-gap
  LocalSnapshot* snapshot_ = nullptr;  // held for the current request
  const config::Rule* rule_ = nullptr;
  const config::Backend* backend_ = nullptr;
  const config::Endpoint* endpoint_ = nullptr;
  upstream::UpstreamConn* up_ = nullptr;
  uint64_t start_us_ = 0;
};

}  // namespace portico::proxy
