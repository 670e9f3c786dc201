#!/usr/bin/env python3
"""Portico benchmark harness (python3 stdlib only). Normally started by bench/run.sh.

Scenarios (SCENARIOS, default "single rr3 h2 grpc tls", run one after the other in the same
run; h2, grpc and the tls ones are described in docs/benchmarks.md and at SCENARIO_TITLES):
  single  the upstream nginx listens on one port: each proxy has one upstream endpoint;
  rr3     the upstream nginx listens on three ports: each proxy has three endpoints,
          round robin (nginx `upstream` with three servers, HAProxy `balance roundrobin`,
          Portico a Backend with three endpoints). Before measuring, every proxy must
          spread requests over the three ports (the upstream answers GET /__port with the
          port it was reached on), and during its warm-up it must hold connections to all
          three; otherwise the scenario fails.
Everything else is the same in every scenario.

Throughput/latency/CPU: one nginx upstream (fixed 64-byte body) and wrk pinned to
CLIENT_CPU, each proxy pinned to PROXY_CPU. All proxies run for the whole benchmark;
ROUNDS rounds of `wrk -t1 -c64 -dDURATION` alternate between them (the order rotates each
round) and the per-proxy medians are reported. CPU per request comes from the proxy's
own utime+stime (/proc/<pid>/stat, summed over the proxy's whole process tree) sampled
just before and just after each wrk run, divided by the requests wrk completed.

Memory: for each proxy a fresh instance is started; its RSS (sum over its process tree)
is sampled, then an idle-client subprocess opens MEM_CONNS connections, sends one full
keep-alive request on each (at most 64 in flight at a time, so upstream connection
counts stay small) and keeps them all open and idle; RSS is sampled again and the
delta is divided by the number of connections that completed their request. The client
then verifies that the proxy did not close the idle connections in the meantime. The
memory test runs once, in the first scenario.

See docs/benchmarks.md. `bench.py --scenarios single,rr3` overrides SCENARIOS.
`bench.py --idle-client HOST PORT N CONCURRENCY TIMEOUT` is the
internal idle-connection client.
"""

import collections
import ctypes
import datetime
import errno
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# 64 bytes including the trailing newline.
BODY = b"portico-bench upstream payload: 0123456789abcdefghijklmnopqrstu\n"
assert len(BODY) == 64, len(BODY)

KNOWN_PROXIES = ("portico", "nginx", "haproxy")

# Scenario name -> number of upstream endpoints (ports of the one upstream nginx).
SCENARIOS = {"single": 1, "rr3": 3, "h2": 1, "grpc": 1, "tls-handshake": 1, "tls-resume": 1,
             "tls-keepalive": 1}
SCENARIO_TITLES = {"single": "one upstream endpoint",
                   "rr3": "three upstream endpoints, round robin",
                   "h2": "HTTP/2 clients (h2c, prior knowledge) to an HTTP/1.1 upstream",
                   "grpc": "gRPC unary calls (h2c) to an HTTP/2 gRPC upstream",
                   "tls-handshake": "TLS 1.3, a new connection (full handshake) per request",
                   "tls-resume": "TLS 1.3, a new connection (resumed session) per request",
                   "tls-keepalive": "TLS 1.3, keep-alive connections"}
# A name in SCENARIOS (and `--scenarios`) that stands for several scenarios.
SCENARIO_ALIASES = {"tls": ["tls-handshake", "tls-resume", "tls-keepalive"]}
DEFAULT_SCENARIOS = "single rr3 h2 grpc tls"
# How each scenario's clients reach the proxy: wrk (HTTP/1.1), wrk over TLS, or h2load.
H2LOAD_SCENARIOS = ("h2", "grpc")
TLS_SCENARIOS = ("tls-handshake", "tls-resume", "tls-keepalive")

# gRPC scenario: the method called, and the messages (5-byte gRPC prefix: not compressed,
# big-endian length; then a protobuf message with one bytes field, number 1).
GRPC_PATH = "/portico.bench.Bench/Call"


def _grpc_frame(payload):
    msg = b"\x0a" + bytes([len(payload)]) + payload
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


GRPC_REQUEST = _grpc_frame(b"portico-bench grpc request")
GRPC_RESPONSE = _grpc_frame(b"portico-bench grpc response: 0123456789abcdefghijklmnopqrstuvw")
assert len(GRPC_RESPONSE) == 69, len(GRPC_RESPONSE)

# The upstream answers this path with the port the request arrived on (spread check only;
# the measured path is /).
PORT_PATH = "/__port"

# A round is "disturbed" when processes outside the benchmark used more than this share of
# a core while it ran (see Bench.run_wrk).
FOREIGN_LIMIT = 0.05


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class SkipProxy(Exception):
    """A proxy that cannot take part in a scenario (the reason is reported)."""


def env_str(name, default):
    v = os.environ.get(name, "")
    return v if v.strip() else default


def env_int(name, default):
    v = env_str(name, str(default))
    try:
        return int(v)
    except ValueError:
        raise BenchError(f"{name}={v!r} is not an integer")


def parse_duration(name, default):
    """Accepts wrk-style durations: 10, 10s, 2m, 1h. Returns (wrk_arg, seconds)."""
    v = env_str(name, default).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", v)
    if not m:
        raise BenchError(f"{name}={v!r}: expected e.g. 10s, 30, 2m")
    secs = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if secs < 1 or secs != int(secs):
        raise BenchError(f"{name}={v!r}: wrk needs a whole number of seconds >= 1")
    return f"{int(secs)}s", int(secs)


def median_or_none(values):
    """Median of values; None if any is None (e.g. h2load gives no percentiles)."""
    v = list(values)
    return None if not v or any(x is None for x in v) else statistics.median(v)


def which(name, *extra):
    for p in extra:
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # comm may contain spaces and parentheses: split after the last ')'.
    return s[s.rfind(")") + 2:].split()


def process_tree(pid):
    """pid plus all its live descendants."""
    children = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(d)[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo.extend(children.get(p, ()))
    return out


def cpu_times(pids):
    """(utime, stime) of all threads, summed over pids, in seconds."""
    ut = st = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            ut += int(f[11])  # field 14: utime
            st += int(f[12])  # field 15: stime
        except (OSError, IndexError, ValueError):
            pass
    return ut / CLK_TCK, st / CLK_TCK


def cpu_seconds(pids):
    return sum(cpu_times(pids))


def system_busy_seconds():
    """Non-idle CPU time (user+nice+system+irq+softirq) over all cores, from /proc/stat.
    irq/softirq are included because, on the kernels we run on, the time the kernel spends
    in softirq context on behalf of a process (loopback TCP) shows up in that process's
    utime+stime too (a saturated proxy reaches ~100% of its core by its own times while
    /proc/stat books ~30% of that core as softirq)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK
    return 0.0


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def count_fds(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes

_libc = None


def _child_setup():
    # Die with the harness even if it is SIGKILLed (PR_SET_PDEATHSIG = 1).
    try:
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class Proc:
    """A background process started in its own session (so its whole tree is one process
    group), pinned to a core with taskset, with stdout+stderr going to a log file."""

    live = []

    def __init__(self, name, argv, cpu, tmp):
        global _libc
        if _libc is None:
            try:
                _libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                _libc = False
        self.name = name
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.argv = ["taskset", "-c", str(cpu)] + argv
        self._log = open(self.log_path, "ab")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True,
                                  preexec_fn=_child_setup if _libc else None)
        self.pid = self.p.pid  # taskset execs the program: same pid
        Proc.live.append(self)

    def status(self):
        rc = self.p.poll()
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with status {rc}"

    def tree(self):
        return process_tree(self.pid) if self.p.poll() is None else []

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def wait_port(self, port, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise BenchError(f"{self.name} {self.status()} before "
                                 f"listening on 127.0.0.1:{port}; log {self.log_path}:\n"
                                 f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"{self.name} did not accept connections on 127.0.0.1:{port} within "
                         f"{timeout}s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self):
        if self in Proc.live:
            Proc.live.remove(self)
        if self.p.poll() is None:
            pids = process_tree(self.pid)
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            # Anything of ours still alive (in the group or escaped from it) gets SIGKILL.
            for sig_target in [self.pid] + pids:
                try:
                    if sig_target == self.pid:
                        os.killpg(self.pid, signal.SIGKILL)
                    else:
                        os.kill(sig_target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"warning: {self.name} (pid {self.pid}) did not die")
        self._log.close()

    @classmethod
    def stop_all(cls):
        for p in list(cls.live):
            p.stop()


def http_check(port, tries=3):
    """One request through the proxy: must be 200 with the upstream's body."""
    last = None
    for _ in range(tries):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/", headers={"Host": "bench"})
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and body == BODY:
                return
            last = f"status {r.status}, body {body[:100]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.2)
    raise BenchError(f"sanity request to 127.0.0.1:{port} failed: {last}")


# --------------------------------------------------------------------------- configs


def nginx_common(tmp, name, fd_limit):
    temp = os.path.join(tmp, f"{name}-temp")
    os.makedirs(temp, exist_ok=True)
    paths = "\n".join(f"    {d}_temp_path {temp}/{d};"
                      for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                      if d not in NGINX_WITHOUT)
    return f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {fd_limit};
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.error.log warn;
events {{
    worker_connections {max(1024, fd_limit - 64)};
    use epoll;
}}
""", paths


def nginx_upstream_conf(tmp, ports, fd_limit):
    head, paths = nginx_common(tmp, "upstream", fd_limit)
    body = BODY.decode().rstrip("\n")
    listen = "\n".join(f"        listen 127.0.0.1:{p} backlog=4096;" for p in ports)
    return head + f"""http {{
    access_log off;
{paths}
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    server {{
{listen}
        location / {{
            default_type text/plain;
            return 200 "{body}\\n";
        }}
        location = {PORT_PATH} {{
            default_type text/plain;
            return 200 "$server_port\\n";
        }}
    }}
}}
"""


def nginx_grpc_server_conf(tmp, port, fd_limit, www):
    """The gRPC upstream of the grpc scenario: nginx over h2c answering every call to
    GRPC_PATH with GRPC_RESPONSE (a static file: `return` cannot hold binary bytes) and the
    trailers `grpc-status: 0`, `grpc-message: ""`. A POST to a static file is a 405 in
    nginx; `error_page 405 =200 $uri` turns it into the file, answered 200."""
    head, paths = nginx_common(tmp, "grpc-upstream", fd_limit)
    return head + f"""http {{
    access_log off;
{paths}
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    http2_max_concurrent_streams 1024;
    etag off;
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{
            root {www};
            default_type application/grpc;
            add_trailer grpc-status 0;
            add_trailer grpc-message "";
            error_page 405 =200 $uri;
            # When the answer goes out before the request's END_STREAM arrived, nginx ends
            # the stream with RST_STREAM(NO_ERROR) (allowed by RFC 9113); nginx's grpc_pass
            # fails such a call ("upstream sent frame for unknown stream", ~0.05 % of calls,
            # counted in the errors column). Reading the body first (`mirror` with
            # `mirror_request_body on`) avoids it but stalls calls multiplexed on one
            # connection (1.4k instead of 59k calls/s with h2load -c4 -m100 here).
        }}
    }}
}}
"""


def nginx_proxy_conf(tmp, label, port, up_ports, fd_limit, kind="http1", tls=None, keepalive=128):
    """kind: http1 (HTTP/1.1 clients), h2 (h2c clients), grpc (h2c clients, h2c upstream
    through grpc_pass) or tls (HTTPS clients, TLS 1.3 only). tls: (cert, key) paths."""
    head, paths = nginx_common(tmp, label, fd_limit)
    # Several servers: nginx's default balancing is (weighted) round robin.
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in up_ports)
    listen = f"listen 127.0.0.1:{port}{' http2' if kind in ('h2', 'grpc') else ''}" \
             f"{' ssl' if kind == 'tls' else ''} backlog=4096;"
    ssl = ""
    if kind == "tls":
        ssl = f"""        ssl_certificate {tls[0]};
        ssl_certificate_key {tls[1]};
        ssl_protocols TLSv1.3;
"""
    if kind == "grpc":
        location = """            grpc_pass grpc://bench_upstream;"""
    else:
        location = """            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
    return head + f"""http {{
    access_log off;
{paths}
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    http2_max_concurrent_streams 1024;
    upstream bench_upstream {{
{servers}
        keepalive {keepalive};
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    server {{
        {listen}
{ssl}        location / {{
{location}
        }}
    }}
}}
"""


def haproxy_conf(tmp, port, up_ports, maxconn, fd_limit, kind="http1", tls_pem=None):
    """kind as for nginx_proxy_conf; tls_pem: certificate + key in one file."""
    # HAProxy refuses to start when it cannot raise RLIMIT_NOFILE to 2*maxconn (it reserves
    # a server-side fd per client connection). Idle keep-alive clients have no server side,
    # so where the hard limit cannot be raised (containers) we only downgrade that to a
    # warning instead of shrinking maxconn below the idle-connection test size.
    limits = "" if fd_limit >= 2 * maxconn + 100 else "    no strict-limits\n"
    proto = " proto h2" if kind == "grpc" else ""
    servers = "\n".join(f"    server up{i} 127.0.0.1:{p}{proto}" for i, p in enumerate(up_ports, 1))
    bind = {"http1": "", "h2": " proto h2", "grpc": " proto h2",
            "tls": f" ssl crt {tls_pem} ssl-min-ver TLSv1.3"}[kind]
    return f"""global
    nbthread 1
    maxconn {maxconn}
    tune.h2.max-concurrent-streams 1024
{limits}    # no 'log' line: no logging

defaults
    mode http
    maxconn {maxconn}
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-request 10s
    timeout http-keep-alive 600s

frontend bench
    bind 127.0.0.1:{port}{bind}
    default_backend upstream

backend upstream
    balance roundrobin
{servers}
"""


def portico_conf(port, up_ports, kind="http1", tls=None):
    """kind as for nginx_proxy_conf. Every HTTP listener also takes h2c (prior knowledge);
    grpc: a GRPCRoute to a Backend with `protocol: grpc`; tls: an HTTPS listener whose
    certificate is a Secret (tls: (certificate PEM text, key PEM text))."""
    # loadBalancer defaults to RoundRobin.
    endpoints = ", ".join(f"{{address: 127.0.0.1, port: {p}}}" for p in up_ports)
    if kind == "tls":
        listener = (f"{{name: https, port: {port}, protocol: HTTPS, tls: {{certificateRefs: "
                    f"[{{kind: Secret, name: bench-cert}}], options: {{portico.dev/min-version: \"1.3\"}}}}}}")
    else:
        listener = f"{{name: http, port: {port}, protocol: HTTP}}"
    route = "GRPCRoute" if kind == "grpc" else "HTTPRoute"
    protocol = "\n  protocol: grpc" if kind == "grpc" else ""
    text = f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench}}
spec:
  gatewayClassName: portico
  listeners: [{listener}]
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: {route}
metadata: {{name: bench}}
spec:
  parentRefs: [{{name: bench}}]
  rules: [{{backendRefs: [{{name: upstream, port: {up_ports[0]}}}]}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: upstream}}
spec:{protocol}
  endpoints: [{endpoints}]
"""
    if kind == "tls":
        def block(pem):
            return "".join(f"    {line}\n" for line in pem.strip().splitlines())
        text += f"""---
apiVersion: v1
kind: Secret
metadata: {{name: bench-cert}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{block(tls[0])}  tls.key: |
{block(tls[1])}"""
    return text


NGINX_WITHOUT = set()


# --------------------------------------------------------------------------- bench


def parse_scenarios(text):
    names = []
    for n in re.split(r"[,\s]+", text.strip()):
        if n:
            names.extend(SCENARIO_ALIASES.get(n, [n]))
    for n in names:
        if n not in SCENARIOS:
            raise BenchError(f"unknown scenario {n!r} (known: {' '.join(SCENARIOS)}; "
                             f"{' '.join(f'{a} = {chr(32).join(v)}' for a, v in SCENARIO_ALIASES.items())})")
    if not names:
        raise BenchError("no scenario selected")
    if len(set(names)) != len(names):
        raise BenchError("a scenario is listed twice")
    return names


class Bench:
    def __init__(self, scenarios=None):
        self.scenarios = parse_scenarios(scenarios or env_str("SCENARIOS", DEFAULT_SCENARIOS))
        self.proxies = env_str("PROXIES", "portico nginx haproxy").split()
        for p in self.proxies:
            if p not in KNOWN_PROXIES:
                raise BenchError(f"unknown proxy {p!r} in PROXIES (known: {' '.join(KNOWN_PROXIES)})")
        if len(set(self.proxies)) != len(self.proxies):
            raise BenchError("PROXIES lists a proxy twice")
        self.rounds = env_int("ROUNDS", 5)
        self.duration_arg, self.duration = parse_duration("DURATION", "10s")
        warm = env_str("WARMUP", "2s")
        self.warmup_arg, self.warmup = (None, 0) if warm in ("0", "0s") else parse_duration("WARMUP", "2s")
        self.conns = env_int("CONNECTIONS", 64)
        self.threads = env_int("THREADS", 1)
        # h2 and grpc: h2load -c H2_CLIENTS -m H2_STREAMS (streams per connection).
        self.h2_clients = env_int("H2_CLIENTS", 4)
        self.h2_streams = env_int("H2_STREAMS", 100)
        # h2load has no latency percentiles: with H2_LATENCY_LOG=1 it logs every request's
        # time (--log-file, ~1 µs of client CPU per request) and the harness computes them.
        self.h2_latency_log = env_str("H2_LATENCY_LOG", "1") not in ("0", "")
        # tls-handshake: s_time processes side by side, each one connection at a time.
        self.tls_conns = env_int("TLS_CONNECTIONS", 16)
        self.tls_key = env_str("TLS_KEY", "ecdsa")
        if self.tls_key not in ("ecdsa", "rsa"):
            raise BenchError(f"TLS_KEY={self.tls_key!r}: expected ecdsa (P-256) or rsa (2048 bits)")
        self.mem_conns = env_int("MEM_CONNS", 10000)
        self.mem_rounds = env_int("MEM_ROUNDS", 1)
        self.mem_inflight = env_int("MEM_INFLIGHT", 64)
        self.mem_settle = env_int("MEM_SETTLE", 2)
        self.proxy_cpu = env_str("PROXY_CPU", "0")
        self.client_cpu = env_str("CLIENT_CPU", "1")
        self.port_timeout = env_int("PORT_TIMEOUT", 20)
        self.quiet_wait = env_int("QUIET_WAIT", 120)
        self.retries = env_int("RETRY_DISTURBED", 2)
        self.gave_up_waiting = False
        self.baseline = env_str("BASELINE", "portico")
        self.out_dir = os.path.join(ROOT, env_str("OUT_DIR", "build/bench"))
        self.keep_tmp = env_str("KEEP_TMP", "0") not in ("0", "")
        self.portico_bin = env_str("PORTICO_BIN", os.path.join(ROOT, "build/release/portico"))
        self.portico_args = env_str("PORTICO_ARGS", "").split()
        if self.rounds < 1:
            raise BenchError("ROUNDS must be >= 1")
        if self.rounds < 5:
            log(f"warning: ROUNDS={self.rounds} (< 5): medians are not comparable with published figures")

        self.nginx = which("nginx", "/usr/sbin/nginx")
        self.haproxy = which("haproxy", "/usr/sbin/haproxy")
        self.wrk = which("wrk", "/usr/bin/wrk")
        self.h2load = which("h2load", "/usr/bin/h2load")
        self.curl = which("curl", "/usr/bin/curl")
        self.openssl = which("openssl", "/usr/bin/openssl")
        needs = {"h2load": any(sc in H2LOAD_SCENARIOS for sc in self.scenarios),
                 "curl": any(sc in H2LOAD_SCENARIOS for sc in self.scenarios),
                 "openssl": any(sc in TLS_SCENARIOS for sc in self.scenarios)}
        for tool, needed in needs.items():
            if needed and not getattr(self, tool):
                raise BenchError(f"{tool} not found (scenarios {' '.join(self.scenarios)}; apt-get install "
                                 f"{ {'h2load': 'nghttp2-client'}.get(tool, tool) })")
        if not self.nginx:
            raise BenchError("nginx not found (it is also the upstream)")
        if not self.wrk:
            raise BenchError("wrk not found")
        if "haproxy" in self.proxies and not self.haproxy:
            raise BenchError("haproxy not found")
        if "portico" in self.proxies and not os.access(self.portico_bin, os.X_OK):
            raise BenchError(f"Portico binary {self.portico_bin} missing or not executable "
                             "(build it: cmake --preset release && cmake --build --preset release; "
                             "or set PROXIES without portico)")
        ncpu = os.cpu_count() or 1
        for c in (self.proxy_cpu, self.client_cpu):
            if not c.isdigit() or int(c) >= ncpu:
                raise BenchError(f"core {c!r} does not exist on this {ncpu}-core machine "
                                 "(set PROXY_CPU / CLIENT_CPU)")
        if self.proxy_cpu == self.client_cpu:
            log("warning: PROXY_CPU == CLIENT_CPU: proxy and load generator share a core")

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        self.fd_limit = soft
        if self.mem_conns > 0 and self.fd_limit < self.mem_conns + 512:
            new = max(0, self.fd_limit - 512)
            log(f"warning: open-file limit is {self.fd_limit}; MEM_CONNS lowered from "
                f"{self.mem_conns} to {new} (run as root or raise `ulimit -Hn`)")
            self.mem_conns = new
        # haproxy: global maxconn sized for the idle test, not 2x fd limit (idle client
        # connections have no server side, so the real fd need is ~mem_conns + a few).
        self.haproxy_maxconn = max(4096, self.mem_conns + 1024)

        v = subprocess.run([self.nginx, "-V"], capture_output=True, text=True).stderr
        for mod in ("fastcgi", "uwsgi", "scgi"):
            if f"--without-http_{mod}_module" in v:
                NGINX_WITHOUT.add(mod)

        self.tmp = tempfile.mkdtemp(prefix="portico-bench-")
        os.chmod(self.tmp, 0o755)  # nginx workers may run as 'nobody'
        self.wrk_lua = os.path.join(self.tmp, "report.lua")
        with open(self.wrk_lua, "w") as f:
            f.write(WRK_LUA)
        self.upstream = None
        self.upstream_ports = []
        self.running = {}  # proxy name -> (Proc, port)
        self.scenario = None  # the scenario running now
        self.tls = None  # tls scenarios: {"cert", "key", "pem", "cert_text", "key_text", "desc"}
        self.grpc_request = os.path.join(self.tmp, "grpc-request.bin")
        with open(self.grpc_request, "wb") as f:
            f.write(GRPC_REQUEST)

    # ---------------------------------------------------------------- proxies

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def kind(self, scenario=None):
        """How clients and upstreams speak in a scenario (see nginx_proxy_conf)."""
        sc = scenario or self.scenario
        return {"h2": "h2", "grpc": "grpc"}.get(sc, "tls" if sc in TLS_SCENARIOS else "http1")

    def make_certificate(self):
        """A self-signed certificate for CN/SAN `bench`, made with openssl in the temp dir:
        ECDSA P-256 (TLS_KEY=ecdsa, default) or RSA-2048 (TLS_KEY=rsa)."""
        if self.tls is not None:
            return
        cert, key = os.path.join(self.tmp, "bench-cert.pem"), os.path.join(self.tmp, "bench-key.pem")
        keyopt = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if self.tls_key == "ecdsa"
                  else ["-newkey", "rsa:2048"])
        r = subprocess.run([self.openssl, "req", "-x509", *keyopt, "-nodes", "-keyout", key, "-out", cert,
                            "-days", "2", "-subj", "/CN=bench", "-addext", "subjectAltName=DNS:bench"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"openssl could not make the certificate:\n{r.stderr}")
        with open(cert) as f:
            cert_text = f.read()
        with open(key) as f:
            key_text = f.read()
        pem = self.write("bench-cert+key.pem", cert_text + key_text)
        desc = "ECDSA P-256" if self.tls_key == "ecdsa" else "RSA-2048"
        self.tls = {"cert": cert, "key": key, "pem": pem, "cert_text": cert_text, "key_text": key_text,
                    "desc": desc}
        log(f"TLS certificate: self-signed {desc}, CN=bench, {cert}")

    def start_upstream(self, scenario):
        """One nginx listening on as many ports as the scenario has endpoints; in the grpc
        scenario an h2c nginx answering gRPC calls (nginx_grpc_server_conf)."""
        ports = []
        while len(ports) < SCENARIOS[scenario]:
            p = free_port()
            if p not in ports:
                ports.append(p)
        self.upstream_ports = ports
        if scenario == "grpc":
            www = os.path.join(self.tmp, "grpc-www")
            os.makedirs(os.path.join(www, os.path.dirname(GRPC_PATH.lstrip("/"))), exist_ok=True)
            with open(os.path.join(www, GRPC_PATH.lstrip("/")), "wb") as f:
                f.write(GRPC_RESPONSE)
            os.chmod(www, 0o755)
            text = nginx_grpc_server_conf(self.tmp, ports[0], self.fd_limit, www)
        else:
            text = nginx_upstream_conf(self.tmp, ports, self.fd_limit)
        conf = self.write(f"upstream-{scenario}.conf", text)
        self.upstream = Proc(f"upstream-{scenario}",
                             [self.nginx, "-p", self.tmp, "-e", f"{self.tmp}/upstream.error.log",
                              "-c", conf], self.client_cpu, self.tmp)
        for port in ports:
            self.upstream.wait_port(port, self.port_timeout)
            if scenario == "grpc":
                self.grpc_check(port)
                continue
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            if r.status != 200 or r.read() != BODY:
                raise BenchError(f"upstream nginx does not serve the expected body on port {port}")
            c.close()
        log(f"upstream nginx on 127.0.0.1:{','.join(map(str, ports))} (core {self.client_cpu}), "
            + (f"gRPC over h2c, {len(GRPC_RESPONSE)}-byte response message" if scenario == "grpc"
               else f"body {len(BODY)} bytes"))

    def stop_upstream(self):
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None

    def portico_https_unsupported(self, conf):
        """None if `portico check` accepts the HTTPS listener of conf; else why not (the
        line of its output that says so). Portico before TLS listeners skips them."""
        r = subprocess.run([self.portico_bin, "check", "-c", conf], capture_output=True, text=True)
        out = (r.stdout or "") + (r.stderr or "")
        for line in out.splitlines():
            if "not supported" in line and "HTTPS" in line:
                return line.strip()
        return None if r.returncode == 0 else out.strip()

    def start_proxy(self, name, tag="", kind=None):
        """Starts proxy `name` configured for `kind` (default: the current scenario's) and
        sends it one request. Raises SkipProxy when Portico cannot serve the scenario."""
        kind = kind or self.kind()
        port = free_port()
        label = name + tag
        if kind == "h2" or kind == "grpc":
            # Every stream may hold an upstream HTTP/1.1 connection (nginx grpc_pass: one call
            # per connection too): keep as many idle as there can be streams.
            keepalive = max(128, self.h2_clients * self.h2_streams + 64)
        else:
            keepalive = 128
        if kind == "tls":
            self.make_certificate()
        if name == "nginx":
            conf = self.write(f"{label}.conf",
                              nginx_proxy_conf(self.tmp, label, port, self.upstream_ports, self.fd_limit,
                                               kind, tls=self.tls and (self.tls["cert"], self.tls["key"]),
                                               keepalive=keepalive))
            argv = [self.nginx, "-p", self.tmp, "-e", f"{self.tmp}/{label}.error.log", "-c", conf]
        elif name == "haproxy":
            conf = self.write(f"{label}.cfg", haproxy_conf(self.tmp, port, self.upstream_ports,
                                                           self.haproxy_maxconn, self.fd_limit, kind,
                                                           tls_pem=self.tls and self.tls["pem"]))
            argv = [self.haproxy, "-db", "-f", conf]
        else:
            conf = self.write(f"{label}.yaml", portico_conf(
                port, self.upstream_ports, kind,
                tls=self.tls and (self.tls["cert_text"], self.tls["key_text"])))
            if kind == "tls":
                why = self.portico_https_unsupported(conf)
                if why:
                    raise SkipProxy(f"this Portico build does not serve HTTPS listeners "
                                    f"(`portico check`: {why})")
            argv = [self.portico_bin, "gateway", "-c", conf, "--workers", "1"] + self.portico_args
        proc = Proc(label, argv, self.proxy_cpu, self.tmp)
        try:
            proc.wait_port(port, self.port_timeout)
            self.check_proxy(kind, port)
        except BenchError as e:
            proc.stop()
            raise BenchError(f"{name} failed to start: {e}\ncommand: {' '.join(proc.argv)}\n"
                             f"config: {conf}")
        log(f"{label} on 127.0.0.1:{port} (core {self.proxy_cpu}, {kind}), pids {proc.tree()}")
        return proc, port

    # ---------------------------------------------------------------- sanity requests

    def check_proxy(self, kind, port):
        if kind == "http1":
            http_check(port)
        elif kind == "h2":
            self.h2c_check(port)
        elif kind == "grpc":
            self.grpc_check(port)
        else:
            self.tls_check(port)

    def h2c_check(self, port):
        """GET / over h2c with prior knowledge (curl): 200, HTTP/2, the upstream's body."""
        r = subprocess.run([self.curl, "-sS", "--http2-prior-knowledge", "-H", "Host: bench", "-o", "-",
                            "-w", "\n%{http_version} %{http_code}", "--max-time", "5",
                            f"http://127.0.0.1:{port}/"], capture_output=True)
        want = BODY + b"\n2 200"
        if r.returncode != 0 or r.stdout != want:
            raise BenchError(f"h2c request to 127.0.0.1:{port} failed: curl rc {r.returncode}, "
                             f"output {r.stdout[:200]!r}, {r.stderr[:300]!r}")

    def grpc_check(self, port):
        """One unary call with a real gRPC client (python3-grpcio, in a subprocess so that
        grpc's threads do not live in the harness): status OK and the expected message. The
        same request as h2load sends."""
        code = (
            "import grpc, sys\n"
            "ch = grpc.insecure_channel(sys.argv[1])\n"
            "f = ch.unary_unary(sys.argv[2])\n"
            "r, call = f.with_call(bytes.fromhex(sys.argv[3]), timeout=5)\n"
            "print(call.code().name, r.hex())\n")
        r = subprocess.run([sys.executable, "-c", code, f"127.0.0.1:{port}", GRPC_PATH,
                            GRPC_REQUEST[5:].hex()], capture_output=True, text=True, timeout=60)
        if "No module named 'grpc'" in r.stderr:
            log("warning: python3-grpcio is not installed: gRPC answers checked with curl only "
                "(status 200 and the message; not grpc-status)")
            c = subprocess.run([self.curl, "-sS", "--http2-prior-knowledge", "-X", "POST", "--data-binary",
                                f"@{self.grpc_request}", "-H", "content-type: application/grpc",
                                "-H", "te: trailers", "-o", "-", "--max-time", "5",
                                f"http://127.0.0.1:{port}{GRPC_PATH}"], capture_output=True)
            if c.returncode != 0 or c.stdout != GRPC_RESPONSE:
                raise BenchError(f"gRPC call to 127.0.0.1:{port} failed: curl rc {c.returncode}, "
                                 f"{c.stdout[:200]!r} {c.stderr[:300]!r}")
            return
        if r.returncode != 0 or r.stdout.split() != ["OK", GRPC_RESPONSE[5:].hex()]:
            raise BenchError(f"gRPC call to 127.0.0.1:{port}{GRPC_PATH} failed: {r.stdout[:300]} "
                             f"{r.stderr[-600:]}")

    def tls_check(self, port):
        """GET / over HTTPS, verifying the harness's certificate for `bench`: 200, the
        upstream's body, TLS 1.3. Records the negotiated cipher for the report."""
        ctx = ssl.create_default_context(cafile=self.tls["cert"])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                     server_hostname="bench")
        except (OSError, ssl.SSLError) as e:
            raise BenchError(f"TLS connection to 127.0.0.1:{port} failed: {e!r}")
        try:
            version, cipher = c.sock.version(), c.sock.cipher()[0]
            c.request("GET", "/", headers={"Host": "bench"})
            r = c.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"HTTPS request to 127.0.0.1:{port} failed: {e!r}")
        finally:
            c.close()
        if r.status != 200 or body != BODY or version != "TLSv1.3":
            raise BenchError(f"HTTPS request to 127.0.0.1:{port}: status {r.status}, {version}, "
                             f"body {body[:100]!r}")
        self.tls["negotiated"] = f"{version} {cipher}"

    # ---------------------------------------------------------------- spread over endpoints

    def check_spread(self, name, port, n=30):
        """GET /__port n times over one keep-alive connection and n times over fresh
        connections: every upstream port must get at least a third of its fair share in
        each mode. Returns the counts {mode: {port: requests}}; raises if not spread."""
        counts = {"keepalive": collections.Counter(), "new_connections": collections.Counter()}
        conn = None
        try:
            for i in range(2 * n):
                mode = "keepalive" if i < n else "new_connections"
                if conn is None or mode == "new_connections":
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", PORT_PATH, headers={"Host": "bench"})
                r = conn.getresponse()
                body = r.read().decode(errors="replace").strip()
                if r.status != 200 or not body.isdigit():
                    raise BenchError(f"{name}: GET {PORT_PATH} answered {r.status} {body[:80]!r}")
                counts[mode][int(body)] += 1
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"{name}: spread check request failed: {e!r}")
        finally:
            if conn is not None:
                conn.close()
        out = {m: {str(p): c[p] for p in self.upstream_ports} for m, c in counts.items()}
        fair = n / len(self.upstream_ports)
        for mode, c in counts.items():
            stray = set(c) - set(self.upstream_ports)
            if stray or any(c[p] < fair / 3 for p in self.upstream_ports):
                raise BenchError(f"{name} does not spread requests over the {len(self.upstream_ports)} "
                                 f"upstream endpoints ({mode}): requests per port {out[mode]}"
                                 + (f", unknown ports {sorted(stray)}" if stray else ""))
        log(f"{name}: {PORT_PATH} x{n} per port — keep-alive {out['keepalive']}, "
            f"new connections {out['new_connections']}")
        return out

    def upstream_conns(self, pids):
        """Established TCP connections from pids to each upstream port ({port: count})."""
        inodes = set()
        for p in pids:
            try:
                for fd in os.listdir(f"/proc/{p}/fd"):
                    try:
                        link = os.readlink(f"/proc/{p}/fd/{fd}")
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
            except OSError:
                pass
        counts = {str(p): 0 for p in self.upstream_ports}
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                # fields: sl local_address rem_address st ... uid timeout inode
                if fields[3] != "01" or fields[9] not in inodes:  # 01 = ESTABLISHED
                    continue
                rport = str(int(fields[2].split(":")[1], 16))
                if rport in counts:
                    counts[rport] += 1
        return counts

    # ---------------------------------------------------------------- throughput

    def run_wrk(self, name, duration_arg, duration, probe=None):
        """One wrk run against proxy `name`. probe: a callable run once halfway through
        (warm-up only: it costs the harness some CPU); its result is returned as "probe"."""
        proc, port = self.running[name]
        pids = proc.tree()
        if not pids:
            raise BenchError(f"{name} is not running any more ({proc.status()}, not by this script); "
                             f"log:\n{proc.log_tail()}")
        up_pids = self.upstream.tree()
        cmd = ["taskset", "-c", self.client_cpu] + self.load_command(port, duration_arg, duration)
        tool = self.load_tool()
        # tls-handshake: TLS_CONNECTIONS s_time processes, each one connection at a time.
        copies = self.tls_conns if tool == "s_time" else 1
        others = [q for n, (pr, _) in self.running.items() if n != name for q in pr.tree()]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        sys0, oth0 = system_busy_seconds(), cpu_seconds(others)
        (u0, s0), up0, t0 = cpu_times(pids), cpu_seconds(up_pids), time.monotonic()
        latency_log = os.path.join(self.tmp, "h2load-requests.log")
        if os.path.exists(latency_log):
            os.unlink(latency_log)
        wps = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(copies)]
        probed = None
        try:
            if probe is not None:
                time.sleep(duration / 2)
                probed = probe()
            outs = [wp.communicate(timeout=duration + 60) for wp in wps]
        except BaseException:
            for wp in wps:
                wp.kill()
                wp.wait()
            raise
        (u1, s1), up1, t1 = cpu_times(pids), cpu_seconds(up_pids), time.monotonic()
        sys1, oth1 = system_busy_seconds(), cpu_seconds(others)
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.CompletedProcess(cmd, max(wp.returncode for wp in wps), "".join(o for o, _ in outs),
                                        "".join(e for _, e in outs))
        if tool == "s_time":
            w = parse_s_time([o for o, _ in outs], (t1 - t0) * 1e6)
        else:
            w = parse_h2load(r.stdout) if tool == "h2load" else parse_wrk(r.stdout)
            if w is not None and tool == "h2load" and self.h2_latency_log:
                w.update(h2load_percentiles(latency_log))
                os.unlink(latency_log)
        if r.returncode != 0 or w is None:
            raise BenchError(f"{tool} against {name} failed (rc {r.returncode}):\n{r.stdout}\n{r.stderr}")
        if proc.p.poll() is not None:
            raise BenchError(f"{name} died during the run ({proc.status()}); log:\n{proc.log_tail()}")
        reqs = w["requests"]
        if reqs <= 0:
            raise BenchError(f"{tool} completed no requests against {name}:\n{r.stdout}")
        wall = t1 - t0
        proxy_cpu = (u1 + s1) - (u0 + s0)
        wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        errors = {k[4:]: w[k] for k in w if k.startswith("err_")}
        # CPU used on this machine by anything that is not part of the benchmark (builds,
        # tests, fuzzers of a concurrent session...): such load shares our two cores and
        # makes every figure of the run unreliable.
        ours = (proxy_cpu + (up1 - up0) + wrk_cpu + (oth1 - oth0)
                + (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime))
        foreign = max(0.0, (sys1 - sys0) - ours) / wall
        return {
            "rps": reqs / (w["duration_us"] / 1e6),
            "requests": reqs,
            "p50_us": w["p50_us"], "p90_us": w["p90_us"], "p99_us": w["p99_us"],
            "p999_us": w["p999_us"], "max_us": w["max_us"], "mean_us": w["mean_us"],
            "cpu_us_per_req": proxy_cpu * 1e6 / reqs,
            "user_us_per_req": (u1 - u0) * 1e6 / reqs,
            "sys_us_per_req": (s1 - s0) * 1e6 / reqs,
            "proxy_cpu_s": proxy_cpu,
            "proxy_core_util": proxy_cpu / wall,
            "client_core_util": ((up1 - up0) + wrk_cpu) / wall,
            "upstream_cpu_s": up1 - up0, "wrk_cpu_s": wrk_cpu,
            "wall_s": wall,
            "foreign_cpu_util": foreign,
            "errors": errors,
            "error_total": sum(errors.values()),
            "probe": probed,
        }

    def load_tool(self):
        return ("h2load" if self.scenario in H2LOAD_SCENARIOS
                else "s_time" if self.scenario == "tls-handshake" else "wrk")

    def load_command(self, port, duration_arg, duration):
        """The load generator's command line for the current scenario (tls-handshake: one of
        the TLS_CONNECTIONS s_time processes run side by side)."""
        sc = self.scenario
        if sc == "tls-handshake":
            # Full handshakes: s_time -new makes a new session for every connection (wrk and
            # h2load resume the previous connection's session: see docs/benchmarks.md).
            # -www sends `GET / HTTP/1.0` and reads the answer until the proxy closes.
            return [self.openssl, "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-www", "/",
                    "-time", str(duration)]
        if sc in H2LOAD_SCENARIOS:
            cmd = [self.h2load, "-t1", f"-c{self.h2_clients}", f"-m{self.h2_streams}", "-D", str(duration)]
            if self.h2_latency_log:
                cmd += ["--log-file", os.path.join(self.tmp, "h2load-requests.log")]
            if sc == "grpc":
                cmd += ["-d", self.grpc_request, "-H", "content-type: application/grpc", "-H", "te: trailers",
                        f"http://127.0.0.1:{port}{GRPC_PATH}"]
            else:
                cmd += [f"http://127.0.0.1:{port}/"]
            return cmd
        scheme = "https" if sc in TLS_SCENARIOS else "http"
        cmd = [self.wrk, f"-t{self.threads}", f"-c{self.conns}", f"-d{duration_arg}", "--timeout", "5s",
               "-s", self.wrk_lua]
        if sc == "tls-resume":
            # The proxy closes each connection after its response; wrk connects again and
            # resumes the TLS session of the connection before (TLS 1.3 ticket, PSK + ECDHE).
            cmd += ["-H", "Connection: close"]
        return cmd + [f"{scheme}://127.0.0.1:{port}/"]

    def wait_quiet(self):
        """Wait (at most QUIET_WAIT s) until processes outside the benchmark use less than
        FOREIGN_LIMIT of a core, measured over 1 s. Our own processes are idle here."""
        if self.quiet_wait <= 0 or self.gave_up_waiting:
            return False
        deadline = time.monotonic() + self.quiet_wait
        said = False
        quiet_for = 0
        while True:
            b0, t0 = system_busy_seconds(), time.monotonic()
            time.sleep(1)
            busy = (system_busy_seconds() - b0) / (time.monotonic() - t0)
            # One quiet second right after a long busy spell may just be a gap between two
            # compiler jobs: after waiting, ask for 3 quiet seconds in a row.
            quiet_for = quiet_for + 1 if busy <= FOREIGN_LIMIT else 0
            if quiet_for >= (3 if said else 1):
                if said:
                    log("machine quiet again")
                return True
            if busy <= FOREIGN_LIMIT:
                continue
            if time.monotonic() >= deadline:
                log(f"warning: machine still busy ({busy*100:.0f}% of a core) after waiting "
                    f"{self.quiet_wait}s; measuring anyway, no more waiting or retries in this run")
                self.gave_up_waiting = True
                return False
            if not said:
                log(f"other processes are using {busy*100:.0f}% of a core; waiting up to "
                    f"{self.quiet_wait}s for the machine to become quiet")
                said = True

    def measured_run(self, name):
        for attempt in range(1, self.retries + 2):
            self.wait_quiet()
            r = self.run_wrk(name, self.duration_arg, self.duration)
            r["attempt"] = attempt
            if (r["foreign_cpu_util"] <= FOREIGN_LIMIT or attempt > self.retries
                    or self.gave_up_waiting or self.quiet_wait <= 0):
                return r
            log(f"{name}: run disturbed by other load ({r['foreign_cpu_util']*100:.0f}% of a core, "
                f"{r['rps']:.0f} req/s); retrying ({attempt}/{self.retries})")

    def throughput(self, scenario):
        res = {p: [] for p in self.proxies}
        under_load = {}
        if self.warmup:
            self.wait_quiet()
            for p in self.proxies:
                log(f"[{scenario}] warm-up {p} ({self.warmup_arg})")
                pids = self.running[p][0].tree()
                w = self.run_wrk(p, self.warmup_arg, self.warmup, probe=lambda: self.upstream_conns(pids))
                under_load[p] = w["probe"]
                log(f"[{scenario}] {p}: upstream connections per port halfway through the warm-up: "
                    f"{w['probe']}")
                if len(self.upstream_ports) > 1 and min(w["probe"].values()) == 0:
                    raise BenchError(f"[{scenario}] {p} did not use every upstream endpoint under load: "
                                     f"established connections per upstream port {w['probe']}")
        elif len(self.upstream_ports) > 1:
            log(f"[{scenario}] WARMUP=0: no under-load check of the upstream connections")
        n = len(self.proxies)
        for rnd in range(self.rounds):
            order = self.proxies[rnd % n:] + self.proxies[:rnd % n]
            for p in order:
                r = self.measured_run(p)
                r["round"] = rnd + 1
                res[p].append(r)
                lat = (f"p50 {r['p50_us']:7.0f}us  p99 {r['p99_us']:7.0f}us" if r["p50_us"] is not None
                       else f"mean {r['mean_us'] or 0:7.0f}us  max {r['max_us'] or 0:7.0f}us")
                log(f"[{scenario}] round {rnd + 1}/{self.rounds} {p:8s} {r['rps']:10.0f} req/s  {lat}  "
                    f"cpu {r['cpu_us_per_req']:6.2f}us/req  "
                    f"proxy core {r['proxy_core_util']*100:3.0f}%  client core {r['client_core_util']*100:3.0f}%  "
                    f"other load {r['foreign_cpu_util']*100:3.0f}%"
                    + (f"  ERRORS {r['errors']}" if r["error_total"] else ""))
        out = {}
        for p, runs in res.items():
            med = {k: median_or_none(r[k] for r in runs)
                   for k in ("rps", "p50_us", "p99_us", "mean_us", "max_us", "cpu_us_per_req", "user_us_per_req",
                             "sys_us_per_req", "proxy_core_util",
                             "client_core_util", "p90_us", "p999_us")}
            med["rps_min"] = min(r["rps"] for r in runs)
            med["rps_max"] = max(r["rps"] for r in runs)
            med["errors"] = sum(r["error_total"] for r in runs)
            med["disturbed_rounds"] = sum(1 for r in runs if r["foreign_cpu_util"] > FOREIGN_LIMIT)
            med["foreign_cpu_util_max"] = max(r["foreign_cpu_util"] for r in runs)
            out[p] = {"median": med, "runs": runs}
        return out, under_load

    # ---------------------------------------------------------------- memory

    def memory_one(self, name, idx):
        proc, port = self.start_proxy(name, tag=f"-mem{idx}")
        client = None
        try:
            # A little traffic first so lazily-initialised state (upstream pool, buffers)
            # is in the baseline rather than counted as per-connection memory.
            for _ in range(3):
                http_check(port)
            time.sleep(1)
            pids = proc.tree()
            rss0 = sum(rss_kb(p) for p in pids)
            fds0 = count_fds(pids)
            timeout = max(60, self.mem_conns // 100)
            client = subprocess.Popen(
                ["taskset", "-c", self.client_cpu, sys.executable, os.path.abspath(__file__),
                 "--idle-client", "127.0.0.1", str(port), str(self.mem_conns),
                 str(self.mem_inflight), str(timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = client.stdout.readline()
            if not line.startswith("READY "):
                raise BenchError(f"idle client failed against {name}: {line!r} (rc {client.poll()})")
            ready = json.loads(line[6:])
            time.sleep(self.mem_settle)
            pids = proc.tree()
            if not pids:
                raise BenchError(f"{name} died during the memory test ({proc.status()}); "
                                 f"log:\n{proc.log_tail()}")
            rss1 = sum(rss_kb(p) for p in pids)
            fds1 = count_fds(pids)
            client.stdin.write("CHECK\n")
            client.stdin.flush()
            line = client.stdout.readline()
            if not line.startswith("ALIVE "):
                raise BenchError(f"idle client liveness check failed: {line!r}")
            alive = json.loads(line[6:])
            ok = ready["ok"]
            r = {
                "connections_requested": self.mem_conns, "connections_ok": ok,
                "connections_failed": ready["failed"], "failures": ready["errors"],
                "still_open_after_settle": alive["alive"], "setup_s": ready["elapsed_s"],
                "rss_before_kb": rss0, "rss_after_kb": rss1,
                "rss_delta_bytes_per_conn": (rss1 - rss0) * 1024 / ok if ok else None,
                "proxy_fds_before": fds0, "proxy_fds_after": fds1, "processes": len(pids),
            }
            log(f"memory {name}: {ok}/{self.mem_conns} conns ok ({alive['alive']} still open), "
                f"RSS {rss0} kB -> {rss1} kB = "
                f"{r['rss_delta_bytes_per_conn'] or 0:.0f} B/conn, fds {fds0} -> {fds1}"
                + (f", failures {ready['errors']}" if ready["failed"] else ""))
            if alive["alive"] < ok:
                log(f"warning: {name} closed {ok - alive['alive']} idle connections during the test")
            return r
        finally:
            if client is not None:
                try:
                    client.stdin.close()
                    client.wait(timeout=30)
                except Exception:
                    client.kill()
                    client.wait()
            proc.stop()

    def memory(self):
        out = {}
        if self.mem_conns <= 0 or self.mem_rounds <= 0:
            return out
        runs = {p: [] for p in self.proxies}
        n = len(self.proxies)
        for rnd in range(self.mem_rounds):
            for p in self.proxies[rnd % n:] + self.proxies[:rnd % n]:
                runs[p].append(self.memory_one(p, rnd + 1))
        for p, rs in runs.items():
            vals = [r["rss_delta_bytes_per_conn"] for r in rs if r["rss_delta_bytes_per_conn"] is not None]
            out[p] = {"median_bytes_per_conn": statistics.median(vals) if vals else None, "runs": rs}
        return out

    # ---------------------------------------------------------------- report

    def meta(self):
        def first_line(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0]
            except Exception:
                return None
        cpu_model = None
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu_model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        versions = {"nginx": first_line([self.nginx, "-v"]), "wrk": first_line([self.wrk, "-v"])}
        if self.haproxy:
            versions["haproxy"] = first_line([self.haproxy, "-v"])
        if self.h2load:
            versions["h2load"] = first_line([self.h2load, "--version"])
        if self.openssl:
            versions["openssl"] = first_line([self.openssl, "version"])
        if "portico" in self.proxies:
            versions["portico"] = first_line([self.portico_bin, "--version"])
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "nproc": os.cpu_count(),
            "cpu_model": cpu_model, "versions": versions,
            "params": {"proxies": self.proxies, "scenarios": self.scenarios, "rounds": self.rounds, "duration_s": self.duration,
                       "warmup_s": self.warmup, "wrk_threads": self.threads, "wrk_connections": self.conns,
                       "proxy_cpu": self.proxy_cpu, "client_cpu": self.client_cpu,
                       "body_bytes": len(BODY), "mem_conns": self.mem_conns, "mem_rounds": self.mem_rounds,
                       "mem_inflight": self.mem_inflight, "fd_limit": self.fd_limit, "clk_tck": CLK_TCK,
                       "quiet_wait_s": self.quiet_wait, "retry_disturbed": self.retries,
                       "foreign_limit": FOREIGN_LIMIT, "h2_clients": self.h2_clients,
                       "h2_streams_per_connection": self.h2_streams, "tls_connections": self.tls_conns,
                       "tls_key": self.tls_key, "portico_bin": self.portico_bin},
            "load_before_start": getattr(self, "initial_load", None),
        }

    RATIO_KEYS = (("rps", "rps_ratio"), ("p50_us", "p50_ratio"), ("p99_us", "p99_ratio"),
                  ("mean_us", "mean_ratio"), ("cpu_us_per_req", "cpu_per_req_ratio"))

    def ratios(self, thr, mem):
        b = self.baseline
        if b not in thr:
            return {}
        out = {}
        bm = thr[b]["median"]

        def div(x, y):
            return x / y if x is not None and y else None
        for p in thr:
            if p == b:
                continue
            pm = thr[p]["median"]
            r = {name: div(bm[key], pm[key]) for key, name in self.RATIO_KEYS}
            # Drift-resistant variant: the same ratios per round (the two runs of a round are
            # adjacent in time), then the median over rounds.
            paired = {}
            for key, name in self.RATIO_KEYS:
                vals = [div(x[key], y[key]) for x, y in zip(thr[b]["runs"], thr[p]["runs"])]
                vals = [v for v in vals if v is not None]
                paired[name] = statistics.median(vals) if vals else None
            r["paired_median"] = paired
            bb = (mem.get(b) or {}).get("median_bytes_per_conn")
            pb = (mem.get(p) or {}).get("median_bytes_per_conn")
            r["rss_per_conn_ratio"] = bb / pb if bb is not None and pb else None
            out[p] = r
        return out

    def best_peer(self, thr):
        """BASELINE against the best peer on each figure (highest req/s, lowest latency and
        CPU per request), from the medians: {figure: {"peer": name, "ratio": x}}."""
        b = self.baseline
        peers = [p for p in thr if p != b]
        if b not in thr or not peers:
            return {}
        out = {}
        for key, name in self.RATIO_KEYS:
            vals = {p: thr[p]["median"][key] for p in peers if thr[p]["median"][key]}
            if not vals or thr[b]["median"][key] is None:
                continue
            best = (max if key == "rps" else min)(vals, key=vals.get)
            out[name] = {"peer": best, "ratio": thr[b]["median"][key] / vals[best]}
        return out

    def markdown(self, meta, scenarios, mem):
        def f(v, fmt):
            return "n/a" if v is None else format(v, fmt)
        L = []
        prm = meta["params"]
        L.append(f"## Portico benchmark — {meta['date']}")
        L.append("")
        L.append(f"{meta['nproc']} cores ({meta['cpu_model']}), kernel {meta['kernel']}; "
                 f"{prm['rounds']} alternating rounds of {prm['duration_s']} s per proxy, medians; "
                 f"proxy on core {prm['proxy_cpu']}, load generator + upstream nginx on core "
                 f"{prm['client_cpu']}; scenarios: {', '.join(self.scenarios)}.")
        for sc, res in scenarios.items():
            L.append("")
            L.extend(self.markdown_scenario(sc, res, mem if res.get("memory") else {}, f))
        return "\n".join(L) + "\n"

    def markdown_scenario(self, scenario, res, mem, f):
        thr, ratios = res["throughput"], res["ratios"]
        proxies = list(thr)
        L = [f"### Scenario `{scenario}`: {SCENARIO_TITLES[scenario]}", ""]
        L.append(f"Load: `{res['load']}`" + (f"; {res['notes']}" if res.get("notes") else "") + ".")
        L.append("")
        for p, why in res.get("skipped", {}).items():
            L.append(f"**{p} not measured**: {why}")
            L.append("")
        if not proxies:
            return L
        if res["spread"]:
            L.append("Requests per upstream port before measuring (GET /__port; keep-alive / new "
                     "connections) and established upstream connections per port halfway through "
                     "the warm-up:")
            L.append("")
            for p in proxies:
                sp = res["spread"][p]
                L.append(f"- {p}: {' '.join(map(str, sp['keepalive'].values()))} / "
                         f"{' '.join(map(str, sp['new_connections'].values()))}; under load: "
                         f"{' '.join(map(str, (res['under_load'].get(p) or {}).values())) or 'n/a'}")
            L.append("")

        def row(cells):
            return "| " + " | ".join(cells) + " |"

        head = ["proxy", "req/s", "p50 (µs)", "p99 (µs)", "mean (µs)", "CPU µs/req (user+sys)", "proxy core",
                "client core"]
        L.append(row(head + (["RSS/idle conn (B)"] if mem else []) + ["errors"]))
        L.append("|---" + "|---:" * (len(head) + (1 if mem else 0)) + "|")  # + errors column
        for p in proxies:
            m = thr[p]["median"]
            cells = [p, f"{m['rps']:.0f}", f(m["p50_us"], ".0f"), f(m["p99_us"], ".0f"), f(m["mean_us"], ".0f"),
                     f"{m['cpu_us_per_req']:.2f} ({m['user_us_per_req']:.1f}+{m['sys_us_per_req']:.1f})",
                     f"{m['proxy_core_util']*100:.0f}%", f"{m['client_core_util']*100:.0f}%"]
            if mem:
                cells.append(f((mem.get(p) or {}).get("median_bytes_per_conn"), ".0f"))
            L.append(row(cells + [str(m["errors"])]))
        if mem:
            L.append("")
            L.append(f"Idle keep-alive test: {self.mem_conns} connections, one request each, then idle; "
                     "RSS = sum over the proxy's processes.")
            L.append("")
            L.append("| proxy | conns ok | still open | RSS before (kB) | RSS after (kB) | bytes/conn |")
            L.append("|---|---:|---:|---:|---:|---:|")
            for p in proxies:
                for r in mem[p]["runs"]:
                    L.append(row([p, str(r["connections_ok"]), str(r["still_open_after_settle"]),
                                  str(r["rss_before_kb"]), str(r["rss_after_kb"]),
                                  f(r["rss_delta_bytes_per_conn"], ".0f")]))
        if ratios:
            b = self.baseline
            L.append("")
            L.append(f"{b} relative to each peer ({b} ÷ peer; rps: higher is better, "
                     "latency/CPU/memory: lower is better):")
            L.append("")
            head = ["peer", "rps ratio", "p50 ratio", "p99 ratio", "mean ratio", "CPU/req ratio"] + \
                (["RSS/conn ratio"] if mem else [])
            L.append(row(head))
            L.append("|---" + "|---:" * (len(head) - 1) + "|")
            keys = [name for _, name in self.RATIO_KEYS]
            for p, r in ratios.items():
                L.append(row([p] + [f(r[k], ".2f") for k in keys]
                             + ([f(r["rss_per_conn_ratio"], ".2f")] if mem else [])))
                L.append(row([f"{p} (per-round, median)"] + [f(r["paired_median"][k], ".2f") for k in keys]
                             + ([""] if mem else [])))
        best = res.get("best_peer") or {}
        if best:
            names = {"rps_ratio": "req/s", "p50_ratio": "p50", "p99_ratio": "p99", "mean_ratio": "mean latency",
                     "cpu_per_req_ratio": "CPU/req"}
            L.append("")
            L.append(f"{self.baseline} ÷ best peer: " + "; ".join(
                f"{names[k]} {v['ratio']:.2f} ({v['peer']})" for k, v in best.items()) + ".")
        warn = []
        tool = {"h2": "h2load", "grpc": "h2load", "tls-handshake": "s_time"}.get(scenario, "wrk")
        for p in proxies:
            m = thr[p]["median"]
            if m["client_core_util"] > 0.9:
                warn.append(f"{p}: client core ({tool} + upstream) {m['client_core_util']*100:.0f}% busy — "
                            "req/s may be capped by the load generator; CPU µs/req is the robust comparison")
            if m["proxy_core_util"] < 0.8:
                warn.append(f"{p}: proxy core only {m['proxy_core_util']*100:.0f}% busy — the proxy "
                            "was not saturated, req/s reflects the client side")
            if m["errors"]:
                warn.append(f"{p}: {m['errors']} {tool} errors over all rounds")
            spread = (m["rps_max"] - m["rps_min"]) / m["rps"] if m["rps"] else 0
            if spread > 0.10:
                warn.append(f"{p}: req/s spread across rounds {spread*100:.0f}% of the median")
            if m["disturbed_rounds"]:
                warn.append(f"{p}: {m['disturbed_rounds']}/{len(thr[p]['runs'])} rounds ran while other processes "
                            f"used up to {m['foreign_cpu_util_max']*100:.0f}% of a core — the machine was not "
                            "quiet, figures are unreliable (stop builds/tests/fuzzers and re-run)")
        for p, mm in mem.items():
            for r in mm["runs"]:
                if r["still_open_after_settle"] < r["connections_ok"] or r["connections_failed"]:
                    warn.append(f"{p}: idle test — {r['connections_failed']} connections failed, "
                                f"{r['connections_ok'] - r['still_open_after_settle']} closed by the proxy")
        if warn:
            L.append("")
            L.append("Warnings:")
            L.extend(f"- {w}" for w in warn)
        return L

    # ---------------------------------------------------------------- main

    def run(self):
        log(f"proxies: {' '.join(self.proxies)}; {self.rounds} rounds x {self.duration}s; "
            f"idle conns {self.mem_conns}; fd limit {self.fd_limit}; temp dir {self.tmp}")
        b0, t0 = system_busy_seconds(), time.monotonic()
        time.sleep(1)
        busy = (system_busy_seconds() - b0) / (time.monotonic() - t0)
        self.initial_load = busy
        if busy > FOREIGN_LIMIT:
            log(f"WARNING: the machine is not idle ({busy*100:.0f}% of a core busy before the benchmark "
                "started): other work will share the cores and distort the results")
            self.wait_quiet()  # before starting anything, so nothing sits idle for long
        scenarios, mem = {}, {}
        mem_scenario = None
        all_proxies = self.proxies
        for sc in self.scenarios:
            log(f"scenario {sc}: {SCENARIO_TITLES[sc]}")
            self.scenario = sc
            self.start_upstream(sc)
            spread, skipped = {}, {}
            try:
                for p in all_proxies:
                    try:
                        self.running[p] = self.start_proxy(p, tag=f"-{sc}")
                    except SkipProxy as e:
                        log(f"[{sc}] {p} skipped: {e}")
                        skipped[p] = str(e)
                        continue
                    if len(self.upstream_ports) > 1:
                        spread[p] = self.check_spread(p, self.running[p][1])
                # throughput() and memory() measure self.proxies: the ones running here.
                self.proxies = [p for p in all_proxies if p in self.running]
                thr, under_load = self.throughput(sc) if self.proxies else ({}, {})
                for p, (proc, _) in list(self.running.items()):
                    proc.stop()
                self.running.clear()
                # The idle-connection memory test runs once, in the first HTTP/1.1 scenario.
                with_mem = mem_scenario is None and self.kind() == "http1" and not skipped
                if with_mem:
                    mem = self.memory()
                    mem_scenario = sc
            finally:
                self.proxies = all_proxies
            self.stop_upstream()
            notes = []
            if sc == "tls-handshake":
                notes.append("s_time gives no latencies: mean = processes × wall time / connections")
            if sc in H2LOAD_SCENARIOS:
                notes.append(f"{self.h2_streams} concurrent streams per connection, "
                             f"{self.h2_clients * self.h2_streams} in total; "
                             + ("latency percentiles from h2load's per-request log" if self.h2_latency_log
                                else "h2load reports no latency percentiles (mean and max only)"))
            if sc in TLS_SCENARIOS and self.tls:
                notes.append(f"self-signed {self.tls['desc']} certificate, {self.tls.get('negotiated', 'TLS 1.3')}")
            load = self.load_command("PORT", self.duration_arg, self.duration)
            load[0] = os.path.basename(load[0])
            load = " ".join(a.replace(self.tmp + "/", "") if " " not in a else f"'{a}'" for a in load)
            if sc == "tls-handshake":
                load = f"{self.tls_conns} × {load}"
            scenarios[sc] = {"upstream_endpoints": SCENARIOS[sc], "title": SCENARIO_TITLES[sc],
                             "load": load,
                             "notes": "; ".join(notes), "skipped": skipped,
                             "spread": spread, "under_load": under_load, "memory": with_mem and bool(mem),
                             "throughput": thr,
                             "ratios": self.ratios(thr, mem if with_mem else {}),
                             "best_peer": self.best_peer(thr)}
        meta = self.meta()
        md = self.markdown(meta, scenarios, mem)
        os.makedirs(self.out_dir, exist_ok=True)
        result = dict(meta, scenarios=scenarios, memory=mem, memory_scenario=mem_scenario,
                      baseline=self.baseline)
        jpath = os.path.join(self.out_dir, "results.json")
        with open(jpath + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(jpath + ".tmp", jpath)
        with open(os.path.join(self.out_dir, "results.md"), "w") as f:
            f.write(md)
        sys.stdout.write(md)
        sys.stdout.flush()
        log(f"wrote {jpath}")

    def cleanup(self, ok):
        Proc.stop_all()
        if ok and not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"temp dir kept: {self.tmp}")


def parse_wrk(out):
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    return json.loads(m.group(1)) if m else None


def parse_s_time(outs, wall_us):
    """Sum of `openssl s_time` outputs (one per process). Its own times are CPU seconds and
    whole wall seconds, so the rate uses the harness's wall time; the mean time per
    connection follows from Little's law (processes × wall time / connections)."""
    total = 0
    for out in outs:
        m = re.search(r"^(\d+) connections in [\d.]+s; .* bytes read (\d+)$", out, re.M)
        if not m:
            return None
        n, nbytes = int(m.group(1)), int(m.group(2))
        if n and nbytes < n * len(BODY):  # every connection must have read a whole answer
            return None
        total += n
    return {"requests": total, "duration_us": wall_us, "bytes": None,
            "p50_us": None, "p90_us": None, "p99_us": None, "p999_us": None, "max_us": None,
            "mean_us": len(outs) * wall_us / total if total else None}


def h2load_percentiles(path):
    """p50/p90/p99/p99.9/max (µs) of the request times in an h2load --log-file (columns:
    start time, status, µs until the end of the response); only requests that completed
    within the run are in it."""
    times = []
    with open(path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) == 3:
                times.append(int(parts[2]))
    if not times:
        return {}
    times.sort()

    def pct(q):
        return float(times[min(len(times) - 1, int(q / 100 * len(times)))])
    return {"p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99), "p999_us": pct(99.9),
            "max_us": float(times[-1])}


def _h2load_time_us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else None


def parse_h2load(out):
    """h2load's summary in the shape of parse_wrk's (latencies in µs). h2load 1.52 reports
    min/max/mean/sd of the request times, no percentiles: p50/p99 are None. Only 2xx
    responses count as requests; failed, errored, timed-out and non-2xx ones as errors."""
    fin = re.search(r"^finished in ([\d.]+)(s|ms), ", out, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out, re.M)
    st = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    tr = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if not (fin and req and st and tr):
        return None
    dur_us = float(fin.group(1)) * (1e6 if fin.group(2) == "s" else 1e3)
    ok = int(st.group(1))
    return {"requests": ok, "duration_us": dur_us, "bytes": None,
            "p50_us": None, "p90_us": None, "p99_us": None, "p999_us": None,
            "max_us": _h2load_time_us(tr.group(2)), "mean_us": _h2load_time_us(tr.group(3)),
            "err_failed": int(req.group(5)), "err_errored": int(req.group(6)),
            "err_timeout": int(req.group(7)), "err_status": int(st.group(2)) + int(st.group(3)) + int(st.group(4))}


WRK_LUA = r"""
-- Prints one machine-readable line at the end of the run (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"p50_us":%.0f,"p90_us":%.0f,' ..
    '"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f,"mean_us":%.1f,"err_connect":%.0f,' ..
    '"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# --------------------------------------------------------------------------- idle client


def _response_state(buf):
    """None: incomplete; 'ok': complete 200 keep-alive response; otherwise an error string."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None if len(buf) < 65536 else "header too large"
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        return "bad status line"
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip().lower()
    body = len(buf) - end - 4
    if "chunked" in hdrs.get("transfer-encoding", ""):
        if not buf.endswith(b"0\r\n\r\n"):
            return None
    elif "content-length" in hdrs:
        if body < int(hdrs["content-length"]):
            return None
    else:
        return "no content-length (close-delimited)"
    if parts[1] != "200":
        return f"status {parts[1]}"
    conn = hdrs.get("connection", "")
    if "close" in conn or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn):
        return "server asked to close"
    return "ok"


def idle_client(host, port, n, inflight_max, timeout):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: portico-bench-idle\r\n\r\n"
    sel = selectors.DefaultSelector()
    idle, errors = [], collections.Counter()
    started = inflight = failed = 0
    t0 = time.monotonic()
    deadline = t0 + timeout

    def fail(s, why):
        nonlocal inflight, failed
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        inflight -= 1
        failed += 1
        errors[why] += 1

    while (started < n or inflight) and time.monotonic() < deadline:
        while started < n and inflight < inflight_max:
            started += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                failed += 1
                errors[f"socket: {errno.errorcode.get(e.errno, e.errno)}"] += 1
                continue
            s.setblocking(False)
            err = s.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                errors[f"connect: {errno.errorcode.get(err, err)}"] += 1
                continue
            inflight += 1
            sel.register(s, selectors.EVENT_WRITE, bytearray())
        for key, _ in sel.select(timeout=0.5):
            s, buf = key.fileobj, key.data
            if key.events & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, f"connect: {errno.errorcode.get(err, err)}")
                    continue
                try:
                    if s.send(req) != len(req):
                        fail(s, "short write")
                        continue
                except OSError as e:
                    fail(s, f"send: {errno.errorcode.get(e.errno, e.errno)}")
                    continue
                sel.modify(s, selectors.EVENT_READ, buf)
                continue
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(s, f"recv: {errno.errorcode.get(e.errno, e.errno)}")
                continue
            if not chunk:
                fail(s, "closed before response")
                continue
            buf += chunk
            st = _response_state(buf)
            if st is None:
                continue
            if st != "ok":
                fail(s, st)
                continue
            sel.unregister(s)
            inflight -= 1
            idle.append(s)
    if inflight:
        for key in list(sel.get_map().values()):
            fail(key.fileobj, "timeout")
    sel.close()
    print("READY " + json.dumps({"ok": len(idle), "failed": failed, "errors": dict(errors),
                                 "elapsed_s": round(time.monotonic() - t0, 3)}), flush=True)

    if sys.stdin.readline().strip() == "CHECK":
        sel = selectors.DefaultSelector()
        for s in idle:
            sel.register(s, selectors.EVENT_READ)
        closed = unexpected = 0
        for key, _ in sel.select(timeout=0):
            try:
                d = key.fileobj.recv(1, socket.MSG_PEEK)
                if d:
                    unexpected += 1
                else:
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        sel.close()
        print("ALIVE " + json.dumps({"alive": len(idle) - closed, "closed": closed,
                                     "unexpected_data": unexpected}), flush=True)
        sys.stdin.readline()  # wait for EOF
    linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: RST, no TIME_WAIT
    for s in idle:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()


# --------------------------------------------------------------------------- main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-client":
        host, port, n, conc, timeout = sys.argv[2:7]
        idle_client(host, int(port), int(n), int(conc), float(timeout))
        return 0
    scenarios = None
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--scenarios":
        scenarios = args[1]
    elif len(args) == 1 and args[0].startswith("--scenarios="):
        scenarios = args[0].split("=", 1)[1]
    elif args:
        print(__doc__, file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    try:
        b = Bench(scenarios)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    ok = False
    try:
        b.run()
        ok = True
        return 0
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        return 130
    finally:
        # Ignore further signals while killing what we started.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        b.cleanup(ok)


if __name__ == "__main__":
    sys.exit(main())
