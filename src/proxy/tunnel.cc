// The upgrade tunnel of DownstreamConn: after an upstream 101 Switching Protocols answers an
// Upgrade: websocket request, the connection carries bytes both ways until both sides close.
//
// All I/O goes through the connection's usual paths (readDownstream into in_, out_ +
// flushOut(), up_->in / up_->out + up_->flush()), so a transport under them covers the
// tunnel too. Bytes read on one side are moved to the other side's output; a side whose
// output is above kHighWater stops reading the other (updateInterest). A half-close is passed
// on with shutdown(SHUT_WR) once the output towards that side drained; the connection closes
// when both directions are done, on an error, or after the port's idle timeout without
// traffic. A tunnel holds no config snapshot, no circuit-breaker unit and no active-request
// count: it outlives reloads and does not count as a request in flight.
#include <sys/socket.h>

#include <utility>

#include "proxy/downstream_conn.h"
#include "proxy/http_util.h"
#include "proxy/worker.h"

namespace portico::proxy {

namespace {

// Moves all of `from` to the end of `to`, without copying when `to` is empty.
void moveBytes(Buffer& from, Buffer& to) {
  if (to.empty()) {
    to = std::move(from);  // swaps storage: `from` gets `to`'s (empty) buffer
    from.clear();
    return;
  }
  to.append(from.view());
  from.clear();
}

bool hasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view t = list.substr(0, comma);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (equalsIgnoreCase(t, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool DownstreamConn::wantsUpgrade(const http1::RequestHead& head) {
  // HTTP/1.1 only (RFC 9110 §7.8); websocket is the one protocol proxied. Other tokens (h2c)
  // are dropped with the other hop-by-hop fields.
  if (!head.info.upgrade || head.info.version_minor != 1) return false;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    if (h.tag == http1::HeaderTag::kUpgrade && hasToken(h.value, "websocket")) return true;
  }
  return false;
}

void DownstreamConn::startTunnel(const http1::ResponseHead& head, size_t head_len) {
  using http1::HeaderTag;
  // The 101 head: end-to-end fields (with the backendRef's response header modifiers), the
  // Upgrade field as sent, and Connection: upgrade.
  out_.append("HTTP/1.1 101 ");
  out_.append(head.reason.empty() ? reasonPhrase(101) : head.reason);
  out_.append("\r\n");
  const config::HeaderModifier* mod = target_->responseHeaders();
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const http1::Header& h = head.headers[i];
    if (h.tag != HeaderTag::kUpgrade) {
      if (isHopByHop(h.tag)) continue;
      if (head.info.connection_other_tokens &&
          nominatedByConnection(head.headers, head.header_count, h.name)) {
        continue;
      }
      if (mod != nullptr && modifierTakesOver(*mod, h.name)) continue;
    }
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (mod != nullptr) appendModifierHeaders(*mod, head.headers, head.header_count, out_);
  out_.append("connection: upgrade\r\n\r\n");
  up_->in.consume(head_len);

  stats::Shard& st = worker_.stats();
  st.global.downstream_responses[0].inc();
  st.routes.at(rule_->route_stats_id).responses[0].inc();
  st.backends.at(backend_->stats_id).responses[0].inc();
  uint64_t us = net::EventLoop::monotonicUs() - start_us_;  // time to the 101
  st.global.latency.record(us);
  st.routes.at(rule_->route_stats_id).latency.record(us);
  st.global.downstream_upgrades.inc();
  st.global.downstream_tunnels_active.inc();
  recordOutcome(false, false);

  // The request is over: release the snapshot, breaker units, LB and retry state. up_ stays.
  resetRequestState();
  up_timer_.cancel();
  up_timer_kind_ = UpTimer::kNone;
  phase_ = Phase::kTunnel;
  up_eof_ = up_shut_ = down_shut_ = false;
  tunnelStep();
}

void DownstreamConn::tunnelStep() {
  if (phase_ != Phase::kTunnel) return;
  if (up_ == nullptr) {  // the upstream finished both ways: deliver the rest, then close
    if (!out_.empty() && !flushOut()) return;
    if (phase_ != Phase::kTunnel) return;
    if (out_.empty()) {
      close();
      return;
    }
    updateInterest();
    return;
  }
  if (!in_.empty()) moveBytes(in_, up_->out);
  if (!up_->in.empty()) moveBytes(up_->in, out_);
  if (!up_->out.empty() && !up_->flush()) {
    close();
    return;
  }
  if (!out_.empty() && !flushOut()) return;  // flushOut closed the connection
  if (client_eof_ && !up_shut_ && up_->out.empty()) {
    ::shutdown(up_->fd(), SHUT_WR);
    up_shut_ = true;
  }
  if (up_eof_ && !down_shut_ && out_.empty()) {
    ::shutdown(fd_, SHUT_WR);
    down_shut_ = true;
  }
  if (up_shut_ && down_shut_) {  // both directions delivered and closed
    close();
    return;
  }
  updateInterest();
  const config::Port* port = findPort();
  worker_.loop().timers().schedule(&timer_, port ? port->settings.idle_timeout_ms : 60'000);
}

void DownstreamConn::onTunnelUpstreamEof() {
  up_eof_ = true;
  if (up_shut_) {
    // Closed both ways (its EPOLLHUP would be reported whatever the interest): what it sent
    // moves to out_ and the upstream connection goes.
    if (!up_->in.empty()) moveBytes(up_->in, out_);
    releaseUpstream(false);
  }
  tunnelStep();
}

}  // namespace portico::proxy
