// H2Stream: one request of an HTTP/2 client connection, from its header block to the end of
// its response: routing (the same RouteTable and filters as HTTP/1.1), the backend and
// endpoint choice, and the exchange with the upstream — HTTP/1.1 (a pooled UpstreamConn; the
// request re-framed, the response translated) or HTTP/2 for Backends with protocol http2 or
// grpc (a stream on a shared H2ClientConn; trailers, grpc-timeout and cancellation passed on).
//
// Responses Portico generates for gRPC requests (content-type application/grpc) are
// trailers-only: HTTP 200 with grpc-status and grpc-message (http-grpc-status-mapping.md).
// Retries: only of requests that never reached the upstream (connect failure, refused stream),
// at once, on another endpoint. Not on this path yet (HTTP/1.1 clients have them): retries
// after the upstream saw the request, backoff and budget, RequestMirror.
// Loop-thread only; freed through EventLoop::deferDelete once the connection closed it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "config/snapshot.h"
#include "http1/parser.h"
#include "http2/h2.h"
#include "net/event_loop.h"
#include "router/router.h"
#include "security/evaluator.h"
#include "upstream/h2_client.h"
#include "upstream/upstream_conn.h"

namespace portico::proxy {

class H2Stream;
class Worker;
class ExtAuthzCall;
struct ExtAuthzVerdict;
struct LocalSnapshot;

// The client side of an H2Stream: an HTTP/2 connection (H2DownstreamConn), or an HTTP/1.1
// connection whose request goes to a rule with HTTP/2 backends or is gRPC-Web (H1Bridge).
class StreamDownstream {
 public:
  virtual Worker& worker() = 0;
  virtual const config::Port* findPort(const config::Snapshot& snap) = 0;
  virtual uint16_t localPort() const = 0;
  virtual uint8_t peerFamily() const = 0;
  virtual const uint8_t* peerAddr() const = 0;
  virtual bool tls() const = 0;
  // The verified client certificate as an x-forwarded-client-cert element ("" when none).
  virtual std::string clientCertHeader() = 0;
  // The Host chose a listener of `port` that checks client certificates, but the TLS
  // handshake (SNI) chose another one: the request must be answered 421.
  virtual bool misdirected(const config::Port& port, std::string_view listener) = 0;
  // The response head (":status" first); a body follows unless `end_stream`, pulled with
  // H2Stream::readResponse().
  virtual void submitResponse(H2Stream* stream, const nghttp2_nv* nva, size_t n,
                              bool end_stream) = 0;
  // Trailers, submitted from within readResponse() once the body is complete.
  virtual void submitTrailers(H2Stream* stream, const nghttp2_nv* nva, size_t n) = 0;
  // Response bytes are available again after readResponse() returned NGHTTP2_ERR_DEFERRED.
  virtual void resumeResponse(H2Stream* stream) = 0;
  // `n` request body bytes went upstream: the client may send more.
  virtual void consumeRequest(H2Stream* stream, size_t n) = 0;
  // The stream failed after its response began.
  virtual void resetStream(H2Stream* stream, uint32_t error) = 0;

 protected:
  ~StreamDownstream() = default;
};

class H2Stream final : public upstream::UpstreamOwner,
                       public upstream::H2StreamHandler,
                       public net::Deferred {
 public:
  H2Stream(StreamDownstream& conn, int32_t id);
  ~H2Stream() override;

  // Request side, from the connection. addHeader() returns false past the header-list limit
  // (the stream keeps a reference to the buffers).
  bool addHeader(nghttp2_rcbuf* name, nghttp2_rcbuf* value, uint32_t limit);
  // An HTTP/1.1 request head (H1Bridge): copied, names lowercased, hop-by-hop fields dropped;
  // headersDone() starts it.
  void setHttp1Head(const http1::RequestHead& head, std::string_view authority,
                    std::string_view target);
  void headersDone(bool end_stream);
  // Request bytes received and not yet taken upstream (H1Bridge backpressure).
  size_t bufferedRequest() const { return req_buf_.size() + req_unconsumed_; }
  void requestData(const uint8_t* data, size_t len);
  void requestEnd();
  // The header block (HEADERS and CONTINUATION frames) must be complete within `ms`, else the
  // stream is reset.
  void armHeaderTimeout(uint32_t ms);
  // The stream closed downstream (reset by the client, or the connection went away): stop.
  void closed(uint32_t error);
  // The connection's data provider: response body bytes, EOF, trailers.
  ssize_t readResponse(uint8_t* buf, size_t len, uint32_t* flags);
  bool responseStarted() const { return resp_started_; }
  int32_t id() const { return id_; }
  // The request came through an HTTP/1.1 connection that already counted it.
  void setBridged() { bridged_ = true; }

  // Upstream HTTP/1.1.
  void onUpstreamIo(upstream::UpstreamConn* conn, uint32_t events) override;
  // Upstream HTTP/2.
  void onH2Header(std::string_view name, std::string_view value, bool trailers) override;
  void onH2HeadersEnd(bool trailers, bool end_stream) override;
  void onH2Data(std::string_view data) override;
  void onH2End() override;
  void onH2Reset(uint32_t error, bool refused, std::string_view why) override;
  ssize_t onH2ReadBody(uint8_t* buf, size_t len, bool* eof) override;

 private:
  struct Field {
    std::string_view name;
    std::string_view value;
    nghttp2_rcbuf* name_buf;  // held while the stream lives; null for an HTTP/1.1 head
    nghttp2_rcbuf* value_buf;
  };
  void route();
  // The rule's SecurityPolicy (security_stage.h), as DownstreamConn::checkSecurity: answer,
  // suspend for the external authorization service (route() runs again with its verdict), or
  // edit headers_ / path_ and maybe choose another rule. Requests bridged from HTTP/1.1 were
  // checked by their connection.
  enum class SecurityStep : uint8_t { kContinue, kAnswered, kSuspended };
  SecurityStep checkSecurity(router::RouteInput& in, const config::Port& port);
  static void onAuthzDone(void* ctx, ExtAuthzVerdict& verdict);
  // A response generated by Portico (gRPC requests get a trailers-only gRPC status instead).
  // `grpc_status` >= 0 replaces the status mapped from `status` for a gRPC request.
  void respondLocal(int status, std::string_view body, std::string_view content_type = "text/plain",
                    std::string_view location = {}, std::string_view overloaded = {},
                    int grpc_status = -1, bool overridable = true);
  // What is left of the request deadline, in ms (kTimeoutDisabledMs: none).
  uint32_t remainingMs() const;
  bool pickEndpoint();
  void startHttp1(bool fresh_only = false);
  void startHttp2();
  void serializeHttp1Head(Buffer& out);
  void appendForwardedFor(Buffer& out);
  void forwardBodyHttp1(std::string_view data);
  void flushHttp1();
  void readHttp1();
  void processHttp1Response();
  // Decodes buffered response body bytes into resp_ while it is below the high-water mark.
  bool pumpHttp1Body();
  void responseHeadersFromHttp1(const http1::ResponseHead& head);
  // Submits the collected response fields (resp_fields_) downstream.
  void sendResponseHead(bool end_stream);
  // The HTTP/1.1 response ended: the connection goes back to the pool when it can.
  void responseDone();
  // Response body bytes into resp_ (base64 for grpc-web-text); `credit`: they came from the
  // upstream stream and count against its window until the client took them.
  void appendResponseBody(std::string_view data, bool credit);
  // `sent` response bytes went to the client: the upstream may send more.
  void creditUpstream(size_t sent);
  // The HTTP/2 upstream stream ended (detached from its connection).
  void upstreamEnded();
  // `not_sent`: the request never reached the upstream (it may go to another endpoint).
  void upstreamFailed(int status, std::string_view why, int grpc_status = -1,
                      bool not_sent = false);
  // A retry (connect-failure trigger of the effective retry policy) on another endpoint.
  bool retryElsewhere();
  void releaseUpstream(bool reusable);
  void countResponse(int status);
  static void onTimer(void* ctx);

  StreamDownstream& conn_;
  int32_t id_;
  bool closed_ = false;
  bool bridged_ = false;
  bool grpc_ = false;            // gRPC or gRPC-Web: Portico's own answers carry grpc-status
  uint8_t grpc_web_ = 0;         // 1: application/grpc-web, 2: grpc-web-text (base64 bodies)
  bool req_end_ = false;         // END_STREAM received
  bool req_chunked_ = false;     // HTTP/1.1 upstream: the body is sent chunked
  bool req_has_length_ = false;  // content-length given
  bool headers_done_ = false;
  bool resp_started_ = false;   // response HEADERS submitted downstream
  bool resp_end_ = false;       // every response byte is in resp_
  bool resp_deferred_ = false;  // the data provider waits for bytes
  bool up_head_done_ = false;   // HTTP/1.1 upstream: response head parsed
  bool up_keep_alive_ = false;
  bool in_interim_ = false;  // HTTP/2 upstream: a 1xx head is being received
  bool is_head_ = false;
  bool cb_request_ = false;
  bool upstream_done_ = false;  // nothing more will come from the upstream
  bool retried_fresh_ = false;  // sent again on a fresh connection after a stale pooled one
  int status_ = 0;
  uint32_t header_bytes_ = 0;
  uint32_t req_unconsumed_ = 0;  // request bytes not yet credited to the client's window
  int lb_index_ = -1;
  uint64_t body_sent_ = 0;  // request body bytes given to an HTTP/1.1 upstream
  uint64_t body_read_ = 0;  // request body bytes given to an HTTP/2 upstream stream
  const config::RetryPolicy* retry_ = nullptr;  // effective retry policy; null: none
  uint8_t attempts_ = 0;                        // retries made
  uint64_t start_us_ = 0;
  uint64_t lb_hash_ = 0;
  std::vector<Field> fields_;           // request fields (pseudo-headers first)
  std::string head_arena_;              // an HTTP/1.1 head's fields
  std::vector<http1::Header> headers_;  // regular request fields, for routing and filters
  std::string_view method_, scheme_, authority_, path_;
  std::string_view up_path_, up_authority_;  // the upstream target, after URLRewrite
  std::string rewritten_path_;
  std::string content_length_text_;
  std::string web_suffix_;       // gRPC-Web content-type suffix ("+proto")
  std::string b64_carry_;        // grpc-web-text request: a partial base64 group
  size_t text_credit_ = 0;       // grpc-web-text request bytes not credited to the client
  size_t text_resp_credit_ = 0;  // response bytes received and not credited upstream
  Buffer req_buf_;  // request body not yet taken upstream (HTTP/2 upstream, or connecting)
  Buffer resp_;     // response body not yet taken by the client
  // Response (or trailer) fields being collected, as "name\0value\0" pairs in resp_arena_.
  std::string resp_arena_;
  std::vector<std::pair<uint32_t, uint32_t>> resp_fields_;  // offsets of name, value
  std::string trailers_arena_;
  std::vector<std::pair<uint32_t, uint32_t>> trailers_;
  LocalSnapshot* snapshot_ = nullptr;
  const config::Rule* rule_ = nullptr;
  const config::WeightedBackend* target_ = nullptr;
  const config::Backend* backend_ = nullptr;
  const config::Endpoint* endpoint_ = nullptr;
  upstream::UpstreamConn* up_ = nullptr;
  http1::BodyDecoder resp_body_;
  upstream::H2ClientConn* h2_ = nullptr;
  int32_t up_stream_ = -1;
  net::Timer timer_;  // connect, then the request deadline
  uint64_t deadline_ms_ = 0;
  bool deadline_whole_ = false;  // grpc-timeout: the deadline covers the whole response
  bool idle_mode_ = false;       // timer_ is the stream idle timeout (response under way)
  uint32_t idle_ms_ = 0;
  // SecurityPolicy state.
  ExtAuthzCall* authz_ = nullptr;
  LocalSnapshot* authz_snapshot_ = nullptr;  // pinned while the call is in flight
  std::unique_ptr<ExtAuthzVerdict> authz_verdict_;
  uint8_t authz_pass_ = 0;
  bool resumed_ = false;                        // route() runs again after a suspension
  std::vector<security::HeaderAdd> sec_added_;  // fields the policy added (headers_ views them)
  std::string sec_path_;                        // :path without removed query parameters
  std::string cors_resp_;                       // CORS lines for the response
  std::string local_extra_;  // lines for the next respondLocal (WWW-Authenticate)
  std::string held_body_;    // request body received while the external authorization call runs
  bool held_end_ = false;    // ... and the request's end
};

}  // namespace portico::proxy
