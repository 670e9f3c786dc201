// H2Stream's SecurityPolicy step (h2_stream.h: checkSecurity) — the HTTP/2 twin of
// security_side.cc: the same evaluator, the same passes, with the stream's own field storage.
#include <algorithm>
#include <optional>
#include <utility>

#include "proxy/ext_authz.h"
#include "proxy/h2_stream.h"
#include "proxy/security_stage.h"
#include "proxy/worker.h"
#include "router/route_table.h"

namespace portico::proxy {

namespace {
const std::vector<security::HeaderAdd> kNoHeaders;
}

void H2Stream::onAuthzDone(void* ctx, ExtAuthzVerdict& verdict) {
  auto* self = static_cast<H2Stream*>(ctx);
  self->authz_ = nullptr;
  self->authz_verdict_ = std::make_unique<ExtAuthzVerdict>(std::move(verdict));
  LocalSnapshot* pinned = std::exchange(self->authz_snapshot_, nullptr);
  if (!self->closed_) {
    self->resumed_ = true;
    self->route();
    // The body that arrived meanwhile, then its end, as if they came now.
    if (!self->held_body_.empty()) {
      std::string held = std::move(self->held_body_);
      self->held_body_.clear();
      self->requestData(reinterpret_cast<const uint8_t*>(held.data()), held.size());
    }
    if (std::exchange(self->held_end_, false)) self->requestEnd();
  }
  self->conn_.worker().releaseSnapshot(pinned);
}

H2Stream::SecurityStep H2Stream::checkSecurity(router::RouteInput& in, const config::Port& port) {
  Worker& w = conn_.worker();
  security::WorkerState& ws = w.security();
  stats::Shard& st = w.stats();
  bool authz_used = false;
  std::vector<http1::Header> original;  // pass 1 starts from the request as sent
  std::string_view original_path = path_;
  for (uint8_t pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      headers_ = original;
      path_ = original_path;
      sec_added_.clear();
      cors_resp_.clear();
      splitTarget(path_, &in);
      in.headers = headers_.data();
      in.header_count = static_cast<uint32_t>(headers_.size());
    }
    security::Layers layers = securityLayers(port.settings, *rule_);
    if (!layers.any()) return SecurityStep::kContinue;
    security::Outcome& out = ws.scratch();
    security::Request req = securityRequest(in, conn_.peerFamily(), conn_.peerAddr());
    security::evaluate(layers, req, ws, unixSeconds(), &out);
    if (!out.refresh_jwks_uri.empty()) w.requestJwksRefresh(out.refresh_jwks_uri);

    // As in DownstreamConn::checkSecurity (security_side.cc).
    bool deferred =
        pass == 0 && out.recompute_route &&
        ((out.action == security::Outcome::Action::kRespond && out.reason == "access_denied") ||
         out.action == security::Outcome::Action::kExtAuthz);
    auto decide = [&]() -> std::optional<SecurityStep> {
      if (out.action == security::Outcome::Action::kRespond) {
        st.global.security_local_answers.inc();
        local_extra_ = securityAnswerHeaders(out);
        std::string body = out.body;
        respondLocal(out.status, body, "text/plain", {}, {}, -1, /*overridable=*/false);
        return SecurityStep::kAnswered;
      }
      if (out.action != security::Outcome::Action::kExtAuthz) return std::nullopt;
      if (authz_verdict_ && authz_pass_ == pass) {
        if (authz_verdict_->kind == ExtAuthzVerdict::Kind::kDeny) {
          st.global.security_local_answers.inc();
          local_extra_ = authz_verdict_->client_headers + out.cors_response_headers;
          std::string type =
              authz_verdict_->content_type.empty() ? "text/plain" : authz_verdict_->content_type;
          respondLocal(authz_verdict_->status, authz_verdict_->body, type, {}, {}, -1,
                       /*overridable=*/false);
          return SecurityStep::kAnswered;
        }
        authz_used = true;
        return std::nullopt;
      }
      if (authz_used) return std::nullopt;
      // The request body is not sent to the service on this path (HTTP/1.1 requests send it);
      // body bytes that arrive meanwhile are held (requestData).
      ExtAuthzCall* call = ExtAuthzCall::start(w, *out.ext_authz, req, conn_.tls(), {},
                                               &H2Stream::onAuthzDone, this);
      // Suspended: the snapshot stays pinned (the call reads the policy's config) and route()
      // runs again with the verdict.
      authz_snapshot_ = std::exchange(snapshot_, nullptr);
      rule_ = nullptr;
      if (deferred) {  // route() starts again from the request as the client sent it
        headers_ = original;
        path_ = original_path;
        sec_added_.clear();
        cors_resp_.clear();
      }
      authz_ = call;
      authz_pass_ = pass;
      return SecurityStep::kSuspended;
    };
    // The fields this pass adds, owned by the stream (the outcome is the worker's scratch),
    // with the service's headers when it allowed.
    auto applyEdits = [&](bool with_outcome) {
      sec_added_.clear();
      if (with_outcome) sec_added_.assign(out.add_headers.begin(), out.add_headers.end());
      if (authz_used && authz_verdict_ && authz_pass_ == pass)
        sec_added_.insert(sec_added_.end(), authz_verdict_->upstream_headers.begin(),
                          authz_verdict_->upstream_headers.end());
      uint32_t count = static_cast<uint32_t>(headers_.size());
      headers_.resize(headers_.size() + sec_added_.size());
      applyHeaderEdits(with_outcome ? out.remove_headers : std::vector<std::string>{}, kNoHeaders,
                       sec_added_, headers_.data(), &count, static_cast<uint32_t>(headers_.size()));
      headers_.resize(count);
      in.headers = headers_.data();
      in.header_count = count;
    };

    if (!deferred) {
      if (std::optional<SecurityStep> step = decide()) return *step;
    }
    if (out.recompute_route && pass == 0) original = headers_;
    applyEdits(/*with_outcome=*/true);
    if (!out.remove_query_params.empty()) {
      sec_path_ = security::removeQueryParams(path_, out.remove_query_params);
      path_ = sec_path_;
      splitTarget(path_, &in);
    }
    if (!out.cors_response_headers.empty()) cors_resp_.append(out.cors_response_headers);
    if (!out.recompute_route || pass == 1) return SecurityStep::kContinue;
    router::RouteDecision d = port.routes->match(in);
    if (d.rule == nullptr) {
      st.global.no_route.inc();
      respondLocal(404, "no route matches on listener " + std::string(d.listener) +
                            " after the token's claims were copied to headers\n");
      return SecurityStep::kAnswered;
    }
    security::Layers before = layers;
    rule_ = d.rule;
    security::Layers after = securityLayers(port.settings, *rule_);
    if (!after.any()) return SecurityStep::kContinue;
    if (sameSections(before, after)) {
      if (!deferred) return SecurityStep::kContinue;
      if (std::optional<SecurityStep> step = decide()) return *step;
      headers_ = original;  // pass 0's edits again, now with the service's headers
      applyEdits(/*with_outcome=*/true);
      return SecurityStep::kContinue;
    }
  }
  return SecurityStep::kContinue;
}

}  // namespace portico::proxy
