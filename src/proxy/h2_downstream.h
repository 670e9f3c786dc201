// H2DownstreamConn: one client connection speaking HTTP/2 (h2c with prior knowledge, or h2
// chosen by ALPN), carrying many requests at once; each is an H2Stream (h2_stream.h).
//
// Frames, HPACK, stream states and message validation are nghttp2's (a server session fed
// from the socket, its output written back without blocking). Portico bounds what nghttp2
// leaves open: the decoded size of a header block, the streams a client may reset early
// (rapid reset: GOAWAY ENHANCE_YOUR_CALM), queued control frames (nghttp2 closes the
// connection past Limits::max_outbound_control_frames), and output buffered for a client that
// does not read (reading stops above kHighWater). Window updates are sent only when a
// stream's request bytes went upstream (end-to-end flow control).
// Loop-thread only. Freed through EventLoop::deferDelete after close().
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/buffer.h"
#include "config/snapshot.h"
#include "http2/h2.h"
#include "net/event_loop.h"
#include "net/tls.h"
#include "proxy/connection.h"
#include "proxy/h2_stream.h"
#include "proxy/listener.h"

namespace portico::proxy {

class Worker;

class H2DownstreamConn final : public Connection,
                               public StreamDownstream,
                               public net::Flushable,
                               public net::IoHandler,
                               public net::Deferred {
 public:
  // Takes over `transport` (its socket registered nowhere; plain, or TLS after ALPN chose
  // h2); start() gets the bytes already read from it (the preface, and what followed).
  H2DownstreamConn(Worker& worker, net::Transport transport, uint8_t peer_family,
                   const uint8_t* peer_addr, uint16_t local_port);
  ~H2DownstreamConn() override;
  // `fresh`: accepted now (not handed over by DownstreamConn).
  void start(std::string_view received, bool fresh);

  void onIo(uint32_t events) override;
  void drain() override;
  void close() override;

  // StreamDownstream, for streams.
  Worker& worker() override { return worker_; }
  const config::Port* findPort(const config::Snapshot& snap) override;
  uint16_t localPort() const override { return local_port_; }
  uint8_t peerFamily() const override { return peer_family_; }
  const uint8_t* peerAddr() const override { return peer_addr_; }
  bool tls() const override { return transport_.isTls(); }
  std::string clientCertHeader() override;
  bool misdirected(const config::Port& port, std::string_view listener) override {
    return port.tls && port.tls->misdirected(transport_.listenerIndex(), listener);
  }
  void submitResponse(H2Stream* stream, const nghttp2_nv* nva, size_t n, bool end_stream) override;
  void submitTrailers(H2Stream* stream, const nghttp2_nv* nva, size_t n) override;
  void resumeResponse(H2Stream* stream) override;
  void consumeRequest(H2Stream* stream, size_t n) override;
  void resetStream(H2Stream* stream, uint32_t error) override;
  // Writes what the session has queued at the end of this loop iteration, so the frames of
  // every stream that made progress in it go out in one write.
  void flush();
  void flushDeferred() override { flushNow(); }

  static constexpr size_t kHighWater = 256 * 1024;

 private:
  void readClient();
  // Writes what the session has queued now (a no-op while nghttp2 runs a callback of ours).
  void flushNow();
  void updateInterest();
  void armIdle();
  void tooManyEarlyResets();
  static void onTimer(void* ctx);

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, nghttp2_rcbuf*, nghttp2_rcbuf*,
                      uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static int onInvalidFrame(nghttp2_session*, const nghttp2_frame*, int, void*);
  static ssize_t readResponse(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                              nghttp2_data_source*, void*);

  Worker& worker_;
  net::Transport transport_;
  int fd_;  // transport_.fd(), for the event loop; -1 once closed
  uint16_t local_port_;
  uint8_t peer_family_;
  uint8_t peer_addr_[16];
  bool closed_ = false;
  bool draining_ = false;
  bool in_session_ = false;  // inside nghttp2_session_mem_recv / mem_send
  bool read_paused_ = false;
  uint32_t interest_ = 0;
  uint32_t streams_opened_ = 0;
  uint32_t early_resets_ = 0;              // streams the client reset before their response began
  uint32_t max_header_bytes_ = 60 * 1024;  // decoded header block of one request
  PortCache port_cache_;
  http2::SessionPtr session_;
  std::vector<H2Stream*> streams_;  // open streams
  Buffer out_;
  net::Timer timer_;  // idle (no open stream)
};

}  // namespace portico::proxy
