// Fuzz target: raw bytes a client sends on an HTTP/2 connection, after the connection
// preface, fed to a real H2DownstreamConn (nghttp2 server session, Portico's streams, routing
// and limits) on one side of a socketpair. Routes lead to an HTTP/1.1 and a gRPC backend on a
// closed port, so streams also exercise upstream failures. Whatever the bytes, the connection
// must answer or close without crashing, leaking or reading out of bounds (ASan + UBSan).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "config/compiler.h"
#include "config/loader.h"
#include "http2/h2.h"
#include "proxy/h2_downstream.h"
#include "proxy/worker.h"
#include "stats/stats.h"
#include "upstream/shared_state.h"

namespace {

using namespace portico;

constexpr std::string_view kConfig = R"yaml(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{group: portico.dev, kind: Backend, name: h1}]
  - matches: [{path: {type: Exact, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, statusCode: 301}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{group: portico.dev, kind: Backend, name: rpc}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: h1}
spec:
  endpoints: [{address: 127.0.0.1, port: 1}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {name: rpc}
spec:
  protocol: grpc
  endpoints: [{address: 127.0.0.1, port: 1}]
)yaml";

struct Fixture {
  stats::Shard shard;
  upstream::SharedState shared;
  std::unique_ptr<proxy::Worker> worker;
};

Fixture& fixture() {
  static Fixture* f = [] {
    auto* out = new Fixture;
    config::LoadResult load = config::loadString(kConfig, "http2_fuzz.yaml");
    config::StatsIds ids;
    config::CompileResult compiled = config::compile(load.resources, ids, 1);
    if (config::hasErrors(load.diagnostics) || config::hasErrors(compiled.diagnostics)) {
      for (const auto* diags : {&load.diagnostics, &compiled.diagnostics})
        for (const config::Diagnostic& d : *diags) std::fprintf(stderr, "%s\n", d.format().c_str());
      std::abort();
    }
    proxy::WorkerOptions options;
    options.shared = &out->shared;
    out->worker = std::make_unique<proxy::Worker>(0, out->shard, options);
    out->worker->attach(compiled.snapshot);
    return out;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = fixture();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  std::string input(http2::kPreface);
  input.append(reinterpret_cast<const char*>(data), size);
  const uint8_t peer[16] = {127, 0, 0, 1};
  auto* conn = new proxy::H2DownstreamConn(*f.worker, net::Transport(fds[0]), AF_INET, peer, 8080);
  conn->start(input, /*fresh=*/true);
  // Let the connection write and react, then read what it sent, as a client would.
  for (int i = 0; i < 3; ++i) {
    f.worker->loop().runOnce(0);
    char sink[65536];
    while (::recv(fds[1], sink, sizeof sink, 0) > 0) {
    }
  }
  ::close(fds[1]);  // the client goes away: the connection closes on EOF
  for (int i = 0; i < 3; ++i) f.worker->loop().runOnce(0);
  return 0;
}
