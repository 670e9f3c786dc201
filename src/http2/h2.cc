#include "http2/h2.h"

namespace portico::http2 {

OptionPtr makeOptions(const Limits& limits, bool server) {
  nghttp2_option* o = nullptr;
  nghttp2_option_new(&o);
  OptionPtr opt(o);
  nghttp2_option_set_no_auto_window_update(o, 1);
  nghttp2_option_set_max_outbound_ack(o, limits.max_outbound_control_frames);
  nghttp2_option_set_max_continuations(o, limits.max_continuations);
  nghttp2_option_set_max_settings(o, 32);
  nghttp2_option_set_max_deflate_dynamic_table_size(o, 4096);
  if (server) {
    // Streams the client reset are counted by Portico itself (early resets); nghttp2's own
    // token bucket stays as a second line at its defaults.
    nghttp2_option_set_max_reserved_remote_streams(o, 0);
  } else {
    nghttp2_option_set_peer_max_concurrent_streams(o, 100);
  }
  return opt;
}

bool isConnectionSpecific(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" ||
         n == "transfer-encoding" || n == "upgrade" || n == "te" || n == "host" || n == "trailer" ||
         n == "http2-settings";
}

bool isGrpcContentType(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size()) return false;
  for (size_t i = 0; i < kGrpc.size(); ++i) {
    char c = ct[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kGrpc[i]) return false;
  }
  return ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';';
}

uint64_t parseGrpcTimeoutMs(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(v[i] - '0');
  }
  uint64_t ms;
  switch (v.back()) {
    case 'H':
      ms = n * 3'600'000;
      break;
    case 'M':
      ms = n * 60'000;
      break;
    case 'S':
      ms = n * 1'000;
      break;
    case 'm':
      ms = n;
      break;
    case 'u':
      ms = (n + 999) / 1000;
      break;
    case 'n':
      ms = (n + 999'999) / 1'000'000;
      break;
    default:
      return 0;
  }
  return ms == 0 ? 1 : ms;
}

int grpcStatusForHttp(int s) {
  switch (s) {
    case 400:
      return kGrpcInternal;
    case 401:
      return kGrpcUnauthenticated;
    case 403:
      return kGrpcPermissionDenied;
    case 404:
      return kGrpcUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return kGrpcUnavailable;
    default:
      return kGrpcUnknown;
  }
}

std::string percentEncodeGrpcMessage(std::string_view m) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(m.size());
  for (unsigned char c : m) {
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

int grpcWebMode(std::string_view ct, std::string_view* suffix) {
  constexpr std::string_view kWeb = "application/grpc-web";
  if (ct.size() < kWeb.size()) return 0;
  for (size_t i = 0; i < kWeb.size(); ++i) {
    char c = ct[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kWeb[i]) return 0;
  }
  std::string_view rest = ct.substr(kWeb.size());
  int mode = 1;
  if (rest.substr(0, 5) == "-text") {
    mode = 2;
    rest.remove_prefix(5);
  }
  if (!rest.empty() && rest[0] != '+' && rest[0] != ';') return 0;
  *suffix = rest.substr(0, rest.find(';'));
  return mode;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

void base64Encode(std::string_view in, std::string& out) {
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t v = b(i) << 16;
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.append("==");
  } else if (i + 2 == in.size()) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out.push_back(kB64[v >> 18]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back('=');
  }
}

bool base64Decode(std::string& carry, std::string_view in, std::string& out) {
  for (char c : in) {
    if (c == '\r' || c == '\n') continue;
    carry.push_back(c);
    if (carry.size() < 4) continue;
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      if (carry[k] == '=' && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad != 0) return false;  // data after padding inside a group
      v[k] = b64Value(carry[k]);
      if (v[k] < 0) return false;
    }
    uint32_t x = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>(x >> 16));
    if (pad < 2) out.push_back(static_cast<char>((x >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(x & 0xFF));
    carry.clear();
  }
  return true;
}

}  // namespace portico::http2
