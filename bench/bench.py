#!/usr/bin/env python3
"""Portico benchmark harness (python3 stdlib only). Normally started by bench/run.sh.

Scenarios (SCENARIOS, default "single rr3", run one after the other in the same run):
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
SCENARIOS = {"single": 1, "rr3": 3}
SCENARIO_TITLES = {"single": "one upstream endpoint",
                   "rr3": "three upstream endpoints, round robin"}

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


def nginx_proxy_conf(tmp, label, port, up_ports, fd_limit):
    head, paths = nginx_common(tmp, label, fd_limit)
    # Several servers: nginx's default balancing is (weighted) round robin.
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in up_ports)
    return head + f"""http {{
    access_log off;
{paths}
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    upstream bench_upstream {{
{servers}
        keepalive 128;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def haproxy_conf(tmp, port, up_ports, maxconn, fd_limit):
    # HAProxy refuses to start when it cannot raise RLIMIT_NOFILE to 2*maxconn (it reserves
    # a server-side fd per client connection). Idle keep-alive clients have no server side,
    # so where the hard limit cannot be raised (containers) we only downgrade that to a
    # warning instead of shrinking maxconn below the idle-connection test size.
    limits = "" if fd_limit >= 2 * maxconn + 100 else "    no strict-limits\n"
    servers = "\n".join(f"    server up{i} 127.0.0.1:{p}" for i, p in enumerate(up_ports, 1))
    return f"""global
    nbthread 1
    maxconn {maxconn}
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
    bind 127.0.0.1:{port}
    default_backend upstream

backend upstream
    balance roundrobin
{servers}
"""


def portico_conf(port, up_ports):
    # loadBalancer defaults to RoundRobin.
    endpoints = ", ".join(f"{{address: 127.0.0.1, port: {p}}}" for p in up_ports)
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench}}
spec:
  gatewayClassName: portico
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bench}}
spec:
  parentRefs: [{{name: bench}}]
  rules: [{{backendRefs: [{{name: upstream, port: {up_ports[0]}}}]}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: upstream}}
spec:
  endpoints: [{endpoints}]
"""


NGINX_WITHOUT = set()


# --------------------------------------------------------------------------- bench


def parse_scenarios(text):
    names = [n for n in re.split(r"[,\s]+", text.strip()) if n]
    for n in names:
        if n not in SCENARIOS:
            raise BenchError(f"unknown scenario {n!r} (known: {' '.join(SCENARIOS)})")
    if not names:
        raise BenchError("no scenario selected")
    if len(set(names)) != len(names):
        raise BenchError("a scenario is listed twice")
    return names


class Bench:
    def __init__(self, scenarios=None):
        self.scenarios = parse_scenarios(scenarios or env_str("SCENARIOS", "single rr3"))
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

    # ---------------------------------------------------------------- proxies

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_upstream(self, scenario):
        """One nginx listening on as many ports as the scenario has endpoints."""
        ports = []
        while len(ports) < SCENARIOS[scenario]:
            p = free_port()
            if p not in ports:
                ports.append(p)
        self.upstream_ports = ports
        conf = self.write(f"upstream-{scenario}.conf", nginx_upstream_conf(self.tmp, ports, self.fd_limit))
        self.upstream = Proc(f"upstream-{scenario}",
                             [self.nginx, "-p", self.tmp, "-e", f"{self.tmp}/upstream.error.log",
                              "-c", conf], self.client_cpu, self.tmp)
        for port in ports:
            self.upstream.wait_port(port, self.port_timeout)
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            if r.status != 200 or r.read() != BODY:
                raise BenchError(f"upstream nginx does not serve the expected body on port {port}")
            c.close()
        log(f"upstream nginx on 127.0.0.1:{','.join(map(str, ports))} (core {self.client_cpu}), "
            f"body {len(BODY)} bytes")

    def stop_upstream(self):
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None

    def start_proxy(self, name, tag=""):
        port = free_port()
        label = name + tag
        if name == "nginx":
            conf = self.write(f"{label}.conf",
                              nginx_proxy_conf(self.tmp, label, port, self.upstream_ports, self.fd_limit))
            argv = [self.nginx, "-p", self.tmp, "-e", f"{self.tmp}/{label}.error.log", "-c", conf]
        elif name == "haproxy":
            conf = self.write(f"{label}.cfg", haproxy_conf(self.tmp, port, self.upstream_ports,
                                                           self.haproxy_maxconn, self.fd_limit))
            argv = [self.haproxy, "-db", "-f", conf]
        else:
            conf = self.write(f"{label}.yaml", portico_conf(port, self.upstream_ports))
            argv = [self.portico_bin, "gateway", "-c", conf, "--workers", "1"] + self.portico_args
        proc = Proc(label, argv, self.proxy_cpu, self.tmp)
        try:
            proc.wait_port(port, self.port_timeout)
            http_check(port)
        except BenchError as e:
            raise BenchError(f"{name} failed to start: {e}\ncommand: {' '.join(proc.argv)}\n"
                             f"config: {conf}")
        log(f"{label} on 127.0.0.1:{port} (core {self.proxy_cpu}), pids {proc.tree()}")
        return proc, port

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
        cmd = ["taskset", "-c", self.client_cpu, self.wrk, f"-t{self.threads}", f"-c{self.conns}",
               f"-d{duration_arg}", "--timeout", "5s", "-s", self.wrk_lua, f"http://127.0.0.1:{port}/"]
        others = [q for n, (pr, _) in self.running.items() if n != name for q in pr.tree()]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        sys0, oth0 = system_busy_seconds(), cpu_seconds(others)
        (u0, s0), up0, t0 = cpu_times(pids), cpu_seconds(up_pids), time.monotonic()
        wp = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        probed = None
        try:
            if probe is not None:
                time.sleep(duration / 2)
                probed = probe()
            out, err = wp.communicate(timeout=duration + 60)
        except BaseException:
            wp.kill()
            wp.wait()
            raise
        r = subprocess.CompletedProcess(cmd, wp.returncode, out, err)
        (u1, s1), up1, t1 = cpu_times(pids), cpu_seconds(up_pids), time.monotonic()
        sys1, oth1 = system_busy_seconds(), cpu_seconds(others)
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        m = re.search(r"^WRKJSON (\{.*\})$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise BenchError(f"wrk against {name} failed (rc {r.returncode}):\n{r.stdout}\n{r.stderr}")
        w = json.loads(m.group(1))
        if proc.p.poll() is not None:
            raise BenchError(f"{name} died during the run ({proc.status()}); log:\n{proc.log_tail()}")
        reqs = w["requests"]
        if reqs <= 0:
            raise BenchError(f"wrk completed no requests against {name}:\n{r.stdout}")
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
                log(f"[{scenario}] round {rnd + 1}/{self.rounds} {p:8s} {r['rps']:10.0f} req/s  p50 {r['p50_us']:7.0f}us  "
                    f"p99 {r['p99_us']:7.0f}us  cpu {r['cpu_us_per_req']:6.2f}us/req  "
                    f"proxy core {r['proxy_core_util']*100:3.0f}%  client core {r['client_core_util']*100:3.0f}%  "
                    f"other load {r['foreign_cpu_util']*100:3.0f}%"
                    + (f"  ERRORS {r['errors']}" if r["error_total"] else ""))
        out = {}
        for p, runs in res.items():
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "user_us_per_req",
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
                       "foreign_limit": FOREIGN_LIMIT},
            "load_before_start": getattr(self, "initial_load", None),
        }

    def ratios(self, thr, mem):
        b = self.baseline
        if b not in thr:
            return {}
        out = {}
        bm = thr[b]["median"]
        for p in self.proxies:
            if p == b:
                continue
            pm = thr[p]["median"]
            r = {
                "rps_ratio": bm["rps"] / pm["rps"] if pm["rps"] else None,
                "p50_ratio": bm["p50_us"] / pm["p50_us"] if pm["p50_us"] else None,
                "p99_ratio": bm["p99_us"] / pm["p99_us"] if pm["p99_us"] else None,
                "cpu_per_req_ratio": bm["cpu_us_per_req"] / pm["cpu_us_per_req"] if pm["cpu_us_per_req"] else None,
            }
            # Drift-resistant variant: the same ratios per round (the two runs of a round are
            # adjacent in time), then the median over rounds.
            paired = {}
            for key, name in (("rps", "rps_ratio"), ("p50_us", "p50_ratio"), ("p99_us", "p99_ratio"),
                              ("cpu_us_per_req", "cpu_per_req_ratio")):
                vals = [x[key] / y[key] for x, y in zip(thr[b]["runs"], thr[p]["runs"]) if y[key]]
                paired[name] = statistics.median(vals) if vals else None
            r["paired_median"] = paired
            bb = (mem.get(b) or {}).get("median_bytes_per_conn")
            pb = (mem.get(p) or {}).get("median_bytes_per_conn")
            r["rss_per_conn_ratio"] = bb / pb if bb is not None and pb else None
            out[p] = r
        return out

    def markdown(self, meta, scenarios, mem):
        def f(v, fmt):
            return "n/a" if v is None else format(v, fmt)
        L = []
        prm = meta["params"]
        L.append(f"## Portico benchmark — {meta['date']}")
        L.append("")
        L.append(f"{meta['nproc']} cores ({meta['cpu_model']}), kernel {meta['kernel']}; "
                 f"{prm['rounds']} alternating rounds of `wrk -t{prm['wrk_threads']} -c{prm['wrk_connections']} "
                 f"-d{prm['duration_s']}s`, medians; proxy on core {prm['proxy_cpu']}, "
                 f"wrk + upstream nginx on core {prm['client_cpu']}; {prm['body_bytes']}-byte body; "
                 f"scenarios: {', '.join(self.scenarios)}.")
        for sc, res in scenarios.items():
            L.append("")
            L.extend(self.markdown_scenario(sc, res, mem if res.get("memory") else {}, f))
        return "\n".join(L) + "\n"

    def markdown_scenario(self, scenario, res, mem, f):
        thr, ratios = res["throughput"], res["ratios"]
        L = [f"### Scenario `{scenario}`: {SCENARIO_TITLES[scenario]}", ""]
        if res["spread"]:
            L.append("Requests per upstream port before measuring (GET /__port; keep-alive / new "
                     "connections) and established upstream connections per port halfway through "
                     "the warm-up:")
            L.append("")
            for p in self.proxies:
                sp = res["spread"][p]
                L.append(f"- {p}: {' '.join(map(str, sp['keepalive'].values()))} / "
                         f"{' '.join(map(str, sp['new_connections'].values()))}; under load: "
                         f"{' '.join(map(str, (res['under_load'].get(p) or {}).values())) or 'n/a'}")
            L.append("")
        def row(cells):
            return "| " + " | ".join(cells) + " |"

        head = ["proxy", "req/s", "p50 (µs)", "p99 (µs)", "CPU µs/req (user+sys)", "proxy core", "client core"]
        L.append(row(head + (["RSS/idle conn (B)"] if mem else []) + ["errors"]))
        L.append("|---" + "|---:" * (len(head) + (1 if mem else 0)) + "|")  # + errors column
        for p in self.proxies:
            m = thr[p]["median"]
            cells = [p, f"{m['rps']:.0f}", f"{m['p50_us']:.0f}", f"{m['p99_us']:.0f}",
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
            for p in self.proxies:
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
            head = ["peer", "rps ratio", "p50 ratio", "p99 ratio", "CPU/req ratio"] + (["RSS/conn ratio"] if mem else [])
            L.append(row(head))
            L.append("|---" + "|---:" * (len(head) - 1) + "|")
            keys = ("rps_ratio", "p50_ratio", "p99_ratio", "cpu_per_req_ratio")
            for p, r in ratios.items():
                L.append(row([p] + [f(r[k], ".2f") for k in keys]
                             + ([f(r["rss_per_conn_ratio"], ".2f")] if mem else [])))
                L.append(row([f"{p} (per-round, median)"] + [f(r["paired_median"][k], ".2f") for k in keys]
                             + ([""] if mem else [])))
        warn = []
        for p in self.proxies:
            m = thr[p]["median"]
            if m["client_core_util"] > 0.9:
                warn.append(f"{p}: client core (wrk + upstream) {m['client_core_util']*100:.0f}% busy — "
                            "req/s may be capped by the load generator; CPU µs/req is the robust comparison")
            if m["proxy_core_util"] < 0.8:
                warn.append(f"{p}: proxy core only {m['proxy_core_util']*100:.0f}% busy — the proxy "
                            "was not saturated, req/s reflects the client side")
            if m["errors"]:
                warn.append(f"{p}: {m['errors']} wrk errors over all rounds")
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
        for i, sc in enumerate(self.scenarios):
            log(f"scenario {sc}: {SCENARIO_TITLES[sc]}")
            self.start_upstream(sc)
            spread = {}
            for p in self.proxies:
                self.running[p] = self.start_proxy(p, tag=f"-{sc}")
                if len(self.upstream_ports) > 1:
                    spread[p] = self.check_spread(p, self.running[p][1])
            thr, under_load = self.throughput(sc)
            for p, (proc, _) in list(self.running.items()):
                proc.stop()
            self.running.clear()
            if i == 0:  # the idle-connection memory test runs once, in the first scenario
                mem = self.memory()
            self.stop_upstream()
            scenarios[sc] = {"upstream_endpoints": SCENARIOS[sc], "title": SCENARIO_TITLES[sc],
                             "spread": spread, "under_load": under_load, "memory": i == 0 and bool(mem),
                             "throughput": thr,
                             "ratios": self.ratios(thr, mem if i == 0 else {})}
        meta = self.meta()
        md = self.markdown(meta, scenarios, mem)
        os.makedirs(self.out_dir, exist_ok=True)
        result = dict(meta, scenarios=scenarios, memory=mem, memory_scenario=self.scenarios[0],
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
