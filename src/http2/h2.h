// HTTP/2 pieces shared by the downstream (server) and upstream (client) sides: nghttp2
// session options with Portico's limits, header-field helpers, and the gRPC conventions the
// proxy needs (grpc-timeout, status mapping, grpc-message encoding).
//
// The frame layer is nghttp2 (RFC 9113 framing, HPACK, stream states, flow control and
// message validation). Portico adds the limits nghttp2 leaves to its user: decoded header
// list size, early-reset (rapid reset) accounting, and the bound on queued output.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace portico::http2 {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Limits {
  uint32_t max_concurrent_streams = 128;
  uint32_t initial_stream_window = 256 * 1024;   // bytes buffered per stream, each way
  uint32_t connection_window = 4 * 1024 * 1024;  // whole connection, each way
  uint32_t max_header_list_size = 64 * 1024;     // decoded header bytes of one message
  uint32_t max_outbound_control_frames = 512;    // queued PING/SETTINGS ACKs, RST_STREAMs
  uint32_t max_continuations = 8;                // CONTINUATION frames per header block
  // Rapid reset (CVE-2023-44487): once `early_reset_min_streams` streams were opened, a
  // connection where at least half of them were reset by the client before their response
  // began is sent GOAWAY (ENHANCE_YOUR_CALM) and closed.
  uint32_t early_reset_min_streams = 100;
};

struct SessionDeleter {
  void operator()(nghttp2_session* s) const { nghttp2_session_del(s); }
};
using SessionPtr = std::unique_ptr<nghttp2_session, SessionDeleter>;

struct OptionDeleter {
  void operator()(nghttp2_option* o) const { nghttp2_option_del(o); }
};
using OptionPtr = std::unique_ptr<nghttp2_option, OptionDeleter>;

// Options for either side: manual flow control (the proxy grants window as it forwards),
// bounded control-frame queue and CONTINUATION count.
OptionPtr makeOptions(const Limits& limits, bool server);

inline nghttp2_nv nv(std::string_view name, std::string_view value,
                     uint8_t flags = NGHTTP2_NV_FLAG_NONE) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), flags};
}

inline std::string_view view(nghttp2_rcbuf* buf) {
  nghttp2_vec v = nghttp2_rcbuf_get_buf(buf);
  return {reinterpret_cast<const char*>(v.base), v.len};
}

// Fields HTTP/2 forbids (RFC 9113 §8.2.2) that an HTTP/1.1 peer may send.
bool isConnectionSpecific(std::string_view lowercase_name);

// gRPC (PROTOCOL-HTTP2.md). True for application/grpc and application/grpc+<format>.
bool isGrpcContentType(std::string_view content_type);
// grpc-timeout ("1S", "250m", up to 8 digits and one unit H M S m u n) in milliseconds
// (rounded up, at least 1); 0 when absent or malformed.
uint64_t parseGrpcTimeoutMs(std::string_view value);
// http-grpc-status-mapping.md for responses Portico generates: 404 → 12 UNIMPLEMENTED,
// 429/502/503/504 → 14 UNAVAILABLE, 401 → 16, 403 → 7, 400 → 13, others → 2 UNKNOWN.
int grpcStatusForHttp(int http_status);
// grpc-message: percent-encodes bytes outside 0x20-0x7E and '%'.
std::string percentEncodeGrpcMessage(std::string_view message);

// gRPC-Web (PROTOCOL-WEB.md): 1 for application/grpc-web[+fmt], 2 for
// application/grpc-web-text[+fmt], 0 otherwise; `suffix` gets the "+fmt" part.
int grpcWebMode(std::string_view content_type, std::string_view* suffix);
// Base64 (RFC 4648, padded). Decoding takes 4-character groups, each of which may end in
// padding (grpc-web-text bodies may concatenate padded chunks); a partial group is kept in
// `carry` for the next call. False on a character outside the alphabet.
void base64Encode(std::string_view in, std::string& out);
bool base64Decode(std::string& carry, std::string_view in, std::string& out);

enum GrpcStatus : int {
  kGrpcOk = 0,
  kGrpcCancelled = 1,
  kGrpcUnknown = 2,
  kGrpcDeadlineExceeded = 4,
  kGrpcPermissionDenied = 7,
  kGrpcUnimplemented = 12,
  kGrpcInternal = 13,
  kGrpcUnavailable = 14,
  kGrpcUnauthenticated = 16,
};

}  // namespace portico::http2
