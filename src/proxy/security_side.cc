// DownstreamConn's SecurityPolicy step (downstream_conn.h: checkSecurity): the evaluator's
// outcome applied to an HTTP/1.1 request, the external authorization round trip, and the route
// chosen again after claims became headers.
#include <algorithm>
#include <optional>
#include <utility>

#include "proxy/downstream_conn.h"
#include "proxy/ext_authz.h"
#include "proxy/security_stage.h"
#include "proxy/worker.h"
#include "router/route_table.h"

namespace portico::proxy {

namespace {
const std::vector<security::HeaderAdd> kNoHeaders;
}

void DownstreamConn::suspendRequest() {
  resetRequestState();
  phase_ = Phase::kHead;
  resumed_ = true;
  updateInterest();
}

void DownstreamConn::onAuthzDone(void* ctx, ExtAuthzVerdict& verdict) {
  auto* self = static_cast<DownstreamConn*>(ctx);
  self->authz_ = nullptr;
  self->authz_verdict_ = std::make_unique<ExtAuthzVerdict>(std::move(verdict));
  LocalSnapshot* pinned = std::exchange(self->authz_snapshot_, nullptr);
  self->updateInterest();
  self->process();
  if (self->phase_ != Phase::kClosed) self->updateInterest();
  self->worker_.releaseSnapshot(pinned);
}

DownstreamConn::SecurityStep DownstreamConn::checkSecurity(http1::RequestHead& head,
                                                           size_t head_len,
                                                           std::string_view& target,
                                                           router::RouteInput& in,
                                                           const config::Port& port) {
  security::WorkerState& ws = worker_.security();
  stats::Shard& st = worker_.stats();
  // Pass 0 is the matched rule's policy. When a provider recomputes the route (claims to
  // headers), pass 0's authorization decisions (access rules, external authorization) wait
  // for the route matched again, as in Envoy (authentication from the first match,
  // authorization from the final one): the same checks there, they stand; another policy
  // there, pass 1 checks it on the request as the client sent it (pass 0's edits undone) and
  // applies its edits; the route is not recomputed again.
  std::vector<http1::Header>& original = worker_.headerBackup();
  std::string_view original_target = target;
  bool authz_used = false;  // an earlier pass of this request asked the service
  for (uint8_t pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      std::copy(original.begin(), original.end(), head.headers);
      head.header_count = static_cast<uint32_t>(original.size());
      in.headers = head.headers;
      in.header_count = head.header_count;
      target = original_target;
      splitTarget(target, &in);
      cors_resp_.clear();
    }
    security::Layers layers = securityLayers(port.settings, *rule_);
    if (!layers.any()) return SecurityStep::kContinue;
    security::Outcome& out = ws.scratch();
    security::Request req = securityRequest(in, peer_family_, peer_addr_);
    security::evaluate(layers, req, ws, unixSeconds(), &out);
    if (!out.refresh_jwks_uri.empty()) worker_.requestJwksRefresh(out.refresh_jwks_uri);

    // The outcome's decision: a local answer, or the external authorization service.
    // nullopt: go on with the edits.
    auto decide = [&]() -> std::optional<SecurityStep> {
      if (out.action == security::Outcome::Action::kRespond) {
        st.global.security_local_answers.inc();
        std::string lines = securityAnswerHeaders(out);
        std::string body = out.body;
        int status = out.status;
        in_.consume(head_len);
        respondLocal(status, body, !req_bodyless_, lines, "text/plain", /*overridable=*/false);
        return SecurityStep::kAnswered;
      }
      if (out.action != security::Outcome::Action::kExtAuthz) return std::nullopt;
      if (authz_verdict_ && authz_pass_ == pass) {
        if (authz_verdict_->kind == ExtAuthzVerdict::Kind::kDeny) {
          st.global.security_local_answers.inc();
          std::string lines = authz_verdict_->client_headers + out.cors_response_headers;
          std::string body = authz_verdict_->body;
          std::string type =
              authz_verdict_->content_type.empty() ? "text/plain" : authz_verdict_->content_type;
          int status = authz_verdict_->status;
          in_.consume(head_len);
          respondLocal(status, body, !req_bodyless_, lines, type, /*overridable=*/false);
          return SecurityStep::kAnswered;
        }
        authz_used = true;
        return std::nullopt;  // allowed: its headers join the edits
      }
      if (authz_used) return std::nullopt;  // asked in pass 0 already
      // The body, when the policy sends it: only a Content-Length body, up to the limit, once
      // it has all arrived (the head is parsed again as more bytes come).
      std::string_view body;
      uint32_t max_body = out.ext_authz->max_body_bytes;
      if (max_body > 0 && head.info.body == http1::BodyKind::kContentLength &&
          head.info.content_length > 0) {
        size_t need = std::min<uint64_t>(max_body, head.info.content_length);
        if (in_.size() < head_len + need) {
          suspendRequest();
          return SecurityStep::kSuspended;
        }
        body = in_.view().substr(head_len, need);
      }
      ExtAuthzCall* call = ExtAuthzCall::start(worker_, *out.ext_authz, req, transport_.isTls(),
                                               body, &DownstreamConn::onAuthzDone, this);
      authz_snapshot_ = worker_.acquireSnapshot();  // the call reads the policy's config
      suspendRequest();
      authz_ = call;
      authz_pass_ = pass;
      updateInterest();
      return SecurityStep::kSuspended;
    };
    auto authzHeaders = [&]() -> const std::vector<security::HeaderAdd>& {
      return authz_used && authz_verdict_ && authz_pass_ == pass ? authz_verdict_->upstream_headers
                                                                 : kNoHeaders;
    };

    bool deferred =
        pass == 0 && out.recompute_route &&
        ((out.action == security::Outcome::Action::kRespond && out.reason == "access_denied") ||
         out.action == security::Outcome::Action::kExtAuthz);
    if (!deferred) {
      if (std::optional<SecurityStep> step = decide()) return *step;
    }
    if (out.recompute_route && pass == 0)
      original.assign(head.headers, head.headers + head.header_count);
    if (!applyHeaderEdits(out.remove_headers, out.add_headers, authzHeaders(), head.headers,
                          &head.header_count, worker_.headerCapacity())) {
      in_.consume(head_len);
      respondLocal(431, "too many request header fields after the security policy's edits\n", true);
      return SecurityStep::kAnswered;
    }
    in.headers = head.headers;
    in.header_count = head.header_count;
    if (!out.remove_query_params.empty()) {
      sec_target_ = security::removeQueryParams(target, out.remove_query_params);
      target = sec_target_;
      splitTarget(target, &in);
    }
    if (!out.cors_response_headers.empty()) cors_resp_.append(out.cors_response_headers);
    if (!out.recompute_route || pass == 1) return SecurityStep::kContinue;
    router::RouteDecision d = port.routes->match(in);
    if (d.rule == nullptr) {
      st.global.no_route.inc();
      in_.consume(head_len);
      respondLocal(404,
                   "no route matches on listener " + std::string(d.listener) +
                       " after the token's claims were copied to headers\n",
                   !req_bodyless_);
      return SecurityStep::kAnswered;
    }
    security::Layers before = layers;
    rule_ = d.rule;
    security::Layers after = securityLayers(port.settings, *rule_);
    if (!after.any()) return SecurityStep::kContinue;  // no checks on that rule
    if (sameSections(before, after)) {
      // The same checks: pass 0's decision stands (the external authorization's headers,
      // when it allows, are added now).
      if (!deferred) return SecurityStep::kContinue;
      if (std::optional<SecurityStep> step = decide()) return *step;
      if (!applyHeaderEdits({}, {}, authzHeaders(), head.headers, &head.header_count,
                            worker_.headerCapacity())) {
        in_.consume(head_len);
        respondLocal(431, "too many request header fields after the security policy's edits\n",
                     true);
        return SecurityStep::kAnswered;
      }
      in.headers = head.headers;
      in.header_count = head.header_count;
      return SecurityStep::kContinue;
    }
  }
  return SecurityStep::kContinue;
}

}  // namespace portico::proxy
