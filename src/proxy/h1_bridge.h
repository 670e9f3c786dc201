// H1Bridge: an HTTP/1.1 client's request served by an H2Stream — a request routed to a rule
// with HTTP/2 (or gRPC) backends, or a gRPC-Web request. DownstreamConn keeps parsing the
// request and its body framing; the bridge hands the head and body to the stream and writes
// the stream's response back as HTTP/1.1 (chunked when its length is unknown; trailers as
// chunked trailer fields). Owned by DownstreamConn, one request at a time. Loop-thread only.
#pragma once

#include <string>
#include <string_view>

#include "http1/parser.h"
#include "proxy/h2_stream.h"

namespace portico::proxy {

class DownstreamConn;

class H1Bridge final : public StreamDownstream {
 public:
  explicit H1Bridge(DownstreamConn& conn) : conn_(conn) {}
  ~H1Bridge();

  // A stream for `head` (copied: the caller may consume the head's bytes after this), started
  // by start(); `end_stream` when it has no body.
  void prepare(const http1::RequestHead& head, std::string_view authority, std::string_view target);
  void start(bool end_stream);
  void requestData(std::string_view data);
  void requestEnd();
  size_t bufferedRequest() const { return stream_ ? stream_->bufferedRequest() : 0; }
  // The client's output has room: writes more of the response.
  void pull();
  // The client connection closes: the stream stops.
  void abort();
  bool active() const { return stream_ != nullptr; }

  Worker& worker() override;
  const config::Port* findPort(const config::Snapshot& snap) override;
  uint16_t localPort() const override;
  uint8_t peerFamily() const override;
  const uint8_t* peerAddr() const override;
  bool tls() const override;
  std::string clientCertHeader() override;
  bool misdirected(const config::Port& port, std::string_view listener) override;
  void submitResponse(H2Stream* stream, const nghttp2_nv* nva, size_t n, bool end_stream) override;
  void submitTrailers(H2Stream* stream, const nghttp2_nv* nva, size_t n) override;
  void resumeResponse(H2Stream* stream) override;
  void consumeRequest(H2Stream* stream, size_t n) override;
  void resetStream(H2Stream* stream, uint32_t error) override;

 private:
  void finish();

  DownstreamConn& conn_;
  H2Stream* stream_ = nullptr;
  bool chunked_ = false;    // the response goes out chunked
  bool head_only_ = false;  // HEAD request: no body bytes
  bool pulling_ = false;
  bool feeding_ = false;  // inside requestData()/requestEnd()
  std::string trailers_;  // "name: value\r\n" lines, written after the last chunk
};

}  // namespace portico::proxy
