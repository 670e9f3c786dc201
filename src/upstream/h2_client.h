// H2ClientConn: one HTTP/2 connection from a worker to an upstream endpoint, carrying many
// streams at once (Backend protocol http2 / grpc). H2ClientPool: a worker's such connections,
// by endpoint (Endpoint::pool_id).
//
// A stream's owner (H2StreamHandler) gets the response as it is decoded and supplies the
// request body on demand. Flow control is end to end: the connection grants the upstream
// more window only when the owner says it forwarded bytes (consume()), so a slow client
// bounds what Portico buffers to one stream window. Loop-thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "http2/h2.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/tls.h"
#include "stats/stats.h"

namespace portico::upstream {

class H2ClientPool;

class H2StreamHandler {
 public:
  // One response field; `trailers` for the fields after the body.
  virtual void onH2Header(std::string_view name, std::string_view value, bool trailers) = 0;
  // The end of a header block; `end_stream` when the response ends with it.
  virtual void onH2HeadersEnd(bool trailers, bool end_stream) = 0;
  // Body bytes; the handler calls H2ClientConn::consume() once it forwarded them.
  virtual void onH2Data(std::string_view data) = 0;
  // The response ended (END_STREAM on DATA). Not called after onH2HeadersEnd(end_stream).
  virtual void onH2End() = 0;
  // The stream failed: reset by the upstream (`error` is its code), refused (`refused`: the
  // upstream did not process it, it may be sent again), or the connection failed. The handler
  // is detached afterwards.
  virtual void onH2Reset(uint32_t error, bool refused, std::string_view why) = 0;
  // Request body: copies up to `len` bytes; sets *eof with the last ones. Returns the bytes
  // copied, or -1 when none are available yet (H2ClientConn::resume() when there are).
  virtual ssize_t onH2ReadBody(uint8_t* buf, size_t len, bool* eof) = 0;

 protected:
  ~H2StreamHandler() = default;
};

class H2ClientConn final : public net::IoHandler, public net::Deferred, public net::Flushable {
 public:
  // Opens a stream: `nva` holds the pseudo-header fields first. `has_body`: DATA follows
  // (read from the handler). Returns the stream id, or a negative value on failure.
  int32_t submit(const nghttp2_nv* nva, size_t n, bool has_body, H2StreamHandler* handler);
  // More request body is available for `stream`.
  void resume(int32_t stream);
  // `n` response body bytes of `stream` were forwarded: the upstream may send more.
  void consume(int32_t stream, size_t n);
  // Detaches the handler; RST_STREAM(`error`) when the stream is still open.
  void cancel(int32_t stream, uint32_t error);
  // Sends what the session queued (after submit/resume/consume/cancel), at the end of this
  // loop iteration: the frames of every stream that moved in it go out in one write.
  void flush();
  void flushDeferred() override { flushNow(); }

  bool connecting() const { return connecting_; }
  uint32_t poolId() const { return pool_id_; }

  void onIo(uint32_t events) override;

 private:
  friend class H2ClientPool;
  H2ClientConn(net::EventLoop& loop, H2ClientPool& pool, net::Transport transport, uint32_t pool_id,
               bool connecting, stats::BackendStats* stats);
  ~H2ClientConn() override;
  bool available() const;
  void flushNow();
  void fail(std::string_view why);
  void close();
  void updateInterest();
  void armIdle();
  void detach(int32_t stream);
  H2StreamHandler* find(int32_t stream) const;
  static void onIdleTimeout(void* ctx);

  static int onHeader(nghttp2_session*, const nghttp2_frame*, nghttp2_rcbuf*, nghttp2_rcbuf*,
                      uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);

  net::EventLoop& loop_;
  H2ClientPool& pool_;
  net::Transport transport_;  // plain, or TLS (ALPN h2) for a Backend with spec.tls
  int fd_;                    // transport_.fd(); -1 once closed
  uint32_t pool_id_;
  bool connecting_;
  bool goaway_ = false;  // no new streams (the upstream sent GOAWAY or the conn failed)
  bool in_callback_ = false;
  uint32_t interest_ = 0;
  std::vector<std::pair<int32_t, H2StreamHandler*>> open_;  // streams with a handler
  http2::SessionPtr session_;
  Buffer in_;
  Buffer out_;
  net::Timer idle_timer_;
  stats::BackendStats* stats_;
};

class H2ClientPool {
 public:
  explicit H2ClientPool(net::EventLoop& loop) : loop_(loop) {}
  H2ClientPool(const H2ClientPool&) = delete;
  H2ClientPool& operator=(const H2ClientPool&) = delete;
  ~H2ClientPool();

  // A connection to `address` that can take one more stream: an existing one, or a new one
  // being connected. nullptr with `*error` set when connecting failed at once.
  // `tls` (may be null) and `server_name`: the Backend's spec.tls.
  H2ClientConn* get(uint32_t pool_id, const net::Address& address,
                    const std::shared_ptr<const net::ClientTlsContext>& tls,
                    const std::string& server_name, stats::BackendStats* stats, std::string* error);
  // Closes the connections that carry no stream (drain), or all of them (shutdown).
  void closeIdle();
  void closeAll();
  uint32_t idle_timeout_ms = 60'000;

 private:
  friend class H2ClientConn;
  void remove(H2ClientConn* conn);
  net::EventLoop& loop_;
  std::vector<std::vector<H2ClientConn*>> conns_;  // by pool_id
};

}  // namespace portico::upstream
