// MirrorRequest: one fire-and-forget copy of a proxied request (HTTPRoute RequestMirror).
//
// The downstream side hands it the request head as serialized for the upstream, then the
// request body bytes as framed for the upstream (feed), then end(). The mirror sends them to
// one endpoint of the mirror backend, reads the response and throws it away. It never slows
// the real request: it buffers at most kMaxBuffered bytes, and a mirror that falls behind,
// fails or times out is dropped (counted in portico_mirror_requests_total{result}).
//
// Lifetime: while the downstream side holds the pointer (until end()), the object stays alive
// even when it has given up; after end() it frees itself once its upstream exchange is over.
// Loop-thread only. The worker keeps the live mirrors in a list and aborts them at exit.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/snapshot.h"
#include "http1/parser.h"
#include "net/event_loop.h"
#include "upstream/upstream_conn.h"

namespace portico::proxy {

class Worker;

class MirrorRequest final : public upstream::UpstreamOwner, public net::Deferred {
 public:
  static constexpr size_t kMaxBuffered = 1024 * 1024;

  // Starts a copy of a request to `backend`. `head` is the serialized upstream head. When
  // `has_body` is false the request is complete and the caller keeps no pointer (nullptr is
  // returned); otherwise body bytes follow through feed() and the caller must call end().
  static MirrorRequest* start(Worker& worker, const config::Backend& backend, std::string_view head,
                              bool has_body, bool is_head, uint32_t timeout_ms);

  // Body bytes, framed as sent upstream.
  void feed(std::string_view framed);
  // The request body is over (`complete`) or abandoned; the caller drops its pointer.
  void end(bool complete);
  // Worker exit: closes the upstream connection and frees the mirror.
  void abort();

  void onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) override;

  MirrorRequest* prev = nullptr;  // Worker's intrusive list
  MirrorRequest* next = nullptr;

 private:
  MirrorRequest(Worker& worker, uint32_t backend_stats_id, bool is_head);
  ~MirrorRequest() override;

  bool connect(const config::Endpoint& endpoint);
  void flush();
  void readResponse();
  // Ends the upstream exchange: the connection goes back to the pool when `reusable`.
  void finish(bool ok, bool reusable);
  void maybeFree();
  static void onTimer(void* ctx);

  Worker& worker_;
  upstream::UpstreamConn* up_ = nullptr;
  net::Timer timer_;
  http1::BodyDecoder resp_body_;
  uint32_t backend_stats_id_;
  bool is_head_;
  bool body_ended_ = true;  // no more feed() calls
  bool body_complete_ = true;
  bool finished_ = false;  // the upstream exchange is over
  bool resp_head_done_ = false;
  bool up_keep_alive_ = false;
  bool freed_ = false;
};

}  // namespace portico::proxy
