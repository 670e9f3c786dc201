#!/usr/bin/env bash
# Portico benchmark harness: Portico vs nginx vs HAProxy on the same machine, same run.
# Invoked by `./dev bench`; see docs/benchmarks.md for the method and the env knobs.
#
#   PROXIES="portico nginx haproxy"  proxies to measure (any subset, in this order)
#   SCENARIOS="single rr3 h2 grpc tls"  one upstream endpoint; three endpoints, round robin;
#                                    h2c clients (h2load); gRPC unary (h2load); TLS 1.3 (tls =
#                                    tls-handshake tls-resume tls-keepalive); in this order, same
#                                    run (or: run.sh --scenarios single,h2)
#   H2_CLIENTS=4 H2_STREAMS=100      h2/grpc: h2load -c / -m (streams per connection)
#   H2_LATENCY_LOG=1                 h2/grpc: latency percentiles from h2load --log-file
#   TLS_CONNECTIONS=16 TLS_KEY=ecdsa tls-handshake: parallel `openssl s_time -new`; ecdsa | rsa
#   ROUNDS=5 DURATION=10s            alternating wrk rounds per proxy; medians are reported
#   WARMUP=2s                        one unrecorded wrk run per proxy before round 1
#   CONNECTIONS=64 THREADS=1         wrk -c / -t
#   MEM_CONNS=10000 MEM_ROUNDS=1     idle keep-alive connection memory test (MEM_CONNS=0: skip)
#   PROXY_CPU=0 CLIENT_CPU=1         cores for the proxy / for wrk + upstream + idle client
#   BASELINE=portico                 proxy whose ratios to every other proxy are reported
#   PORTICO_BIN=build/release/portico PORTICO_ARGS=""   Portico binary and extra arguments
#   QUIET_WAIT=120                   before each run wait up to this long for other load to stop
#   RETRY_DISTURBED=2                re-run a round disturbed by other processes' CPU use
#   PORT_TIMEOUT=20                  seconds a proxy gets to accept connections after start
#   MEM_INFLIGHT=64 MEM_SETTLE=2     idle test: requests in flight while opening; settle time
#   SKIP_BUILD=1                     do not (re)build Portico
#   OUT_DIR=build/bench KEEP_TMP=1   results directory / keep the temp dir (configs, logs)
#
# The markdown report goes to stdout, progress to stderr, machine-readable results to
# $OUT_DIR/results.json (and a copy of the report to $OUT_DIR/results.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PROXIES="${PROXIES:-portico nginx haproxy}"

for tool in taskset wrk; do
  command -v "$tool" >/dev/null || { echo "bench: '$tool' not found (apt-get install wrk util-linux)" >&2; exit 1; }
done
# h2load (h2, grpc), curl (h2c checks), openssl (tls), python3-grpcio (grpc checks): bench.py
# checks for them when a selected scenario needs them.
for p in $PROXIES; do
  case "$p" in
    nginx)   [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || { echo "bench: nginx not installed" >&2; exit 1; } ;;
    haproxy) [[ -x /usr/sbin/haproxy ]] || command -v haproxy >/dev/null || { echo "bench: haproxy not installed" >&2; exit 1; } ;;
    portico) ;;
    *) echo "bench: unknown proxy '$p' in PROXIES (known: portico nginx haproxy)" >&2; exit 1 ;;
  esac
done
# The upstream is always nginx.
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || { echo "bench: nginx (upstream) not installed" >&2; exit 1; }

# 10k idle connections need ~10k fds in the client and in the proxy: raise the limit as
# far as we are allowed to (containers often cap the hard limit; bench.py checks).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ " $PROXIES " == *" portico "* && -z "${PORTICO_BIN:-}" && "${SKIP_BUILD:-0}" != 1 ]]; then
  if [[ -d build/release ]]; then
    echo "bench: cmake --build --preset release" >&2
    cmake --build --preset release >&2 || { echo "bench: Portico build failed (PROXIES=\"nginx haproxy\" to bench the peers only)" >&2; exit 1; }
  elif [[ ! -x build/release/portico ]]; then
    echo "bench: configuring and building the release preset" >&2
    { cmake --preset release >&2 && cmake --build --preset release >&2; } \
      || { echo "bench: Portico build failed (PROXIES=\"nginx haproxy\" to bench the peers only)" >&2; exit 1; }
  fi
fi

PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3)"
# Not exec: keep this shell around so that its trap can clean up if python is killed hard.
"$PY" "$ROOT/bench/bench.py" "$@" &
BENCH_PID=$!
cleanup() {
  # bench.py kills everything it started itself; this is a backstop for SIGKILL of bench.py.
  kill -TERM "$BENCH_PID" 2>/dev/null || true
  wait "$BENCH_PID" 2>/dev/null || true
}
trap cleanup INT TERM HUP
set +e
wait "$BENCH_PID"
rc=$?
# wait returns early (>128) when a trapped signal arrives; wait again for the real status.
while kill -0 "$BENCH_PID" 2>/dev/null; do wait "$BENCH_PID"; rc=$?; done
exit "$rc"
