// Internal to the HTTP/2 stream path (h2_stream.cc, h2_upstream_side.cc): header-field
// helpers shared by the client side and the upstream side of an H2Stream.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/buffer.h"
#include "config/filters.h"
#include "http1/parser.h"
#include "http2/h2.h"
#include "proxy/http_util.h"
#include "proxy/worker.h"

namespace portico::proxy::h2_fields {

// A response that moves no byte for this long is reset (Envoy's stream_idle_timeout default).
inline constexpr uint32_t kStreamIdleMs = 300'000;
inline const http1::Limits kUpstreamLimits{64 * 1024, 96 * 1024, Worker::kUpstreamMaxHeaders};
inline constexpr size_t kHighWater = 256 * 1024;

inline http1::HeaderTag tagOf(std::string_view n) {
  using T = http1::HeaderTag;
  if (n == "host") return T::kHost;
  if (n == "content-length") return T::kContentLength;
  if (n == "te") return T::kTe;
  if (n == "x-forwarded-for") return T::kXForwardedFor;
  if (n == "x-forwarded-proto") return T::kXForwardedProto;
  return T::kOther;
}

inline void appendLower(std::string& out, std::string_view s) {
  for (char c : s) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
}

// Fields as (name, value) offsets into one arena: built while a head is translated.
struct FieldList {
  std::string& arena;
  std::vector<std::pair<uint32_t, uint32_t>>& fields;
  void add(std::string_view name, std::string_view value, bool lower = false) {
    uint32_t n = static_cast<uint32_t>(arena.size());
    if (lower) {
      appendLower(arena, name);
    } else {
      arena.append(name);
    }
    arena.push_back('\0');
    uint32_t v = static_cast<uint32_t>(arena.size());
    arena.append(value);
    arena.push_back('\0');
    fields.emplace_back(n, v);
  }
  // The fields a header modifier sets and adds, parsed back from its HTTP/1 lines.
  void addModifier(const config::HeaderModifier& mod, const http1::Header* headers,
                   uint32_t count) {
    Buffer lines;
    appendModifierHeaders(mod, headers, count, lines);
    std::string_view all = lines.view();
    while (!all.empty()) {
      size_t eol = all.find("\r\n");
      std::string_view line = all.substr(0, eol);
      all = eol == std::string_view::npos ? std::string_view() : all.substr(eol + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      add(line.substr(0, colon), value, /*lower=*/true);
    }
  }
};

// nghttp2_nv views of a field list, after `pseudo` fields already in `out`.
inline void toNv(const std::string& arena, const std::vector<std::pair<uint32_t, uint32_t>>& fields,
                 std::vector<nghttp2_nv>& out) {
  for (auto [n, v] : fields) {
    std::string_view name(arena.data() + n);
    std::string_view value(arena.data() + v);
    out.push_back(http2::nv(name, value));
  }
}

// "name: value\r\n" lines (a security answer's WWW-Authenticate, CORS fields, an external
// authorization service's headers) as nghttp2_nv views into `lines`, whose names are lowercased
// in place; connection-specific fields are skipped. With `drop_cors`, access-control-* fields
// already in `out` are removed first (the policy's replace the upstream's).
inline void linesToNv(std::string& lines, std::vector<nghttp2_nv>& out, bool drop_cors = false) {
  if (drop_cors) {
    std::erase_if(out, [](const nghttp2_nv& nv) {
      return isCorsResponseHeader(
          std::string_view(reinterpret_cast<const char*>(nv.name), nv.namelen));
    });
  }
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t eol = lines.find("\r\n", pos);
    if (eol == std::string::npos) eol = lines.size();
    size_t colon = lines.find(':', pos);
    if (colon != std::string::npos && colon < eol && colon > pos) {
      for (size_t i = pos; i < colon; ++i) {
        char& c = lines[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      std::string_view name(lines.data() + pos, colon - pos);
      size_t v = colon + 1;
      while (v < eol && (lines[v] == ' ' || lines[v] == '\t')) ++v;
      std::string_view value(lines.data() + v, eol - v);
      if (name != "connection" && name != "transfer-encoding" && name != "keep-alive" &&
          name != "upgrade" && name != "content-length" && name != "proxy-connection" &&
          name != "te") {
        out.push_back(http2::nv(name, value));
      }
    }
    pos = eol + 2;
  }
}

inline thread_local std::vector<nghttp2_nv> t_nv;  // nghttp2_nv views, reused per thread

}  // namespace portico::proxy::h2_fields
