"""Integration test harness: real processes on loopback ports picked at run time.

Starts the real `portico` binary (PORTICO_BIN) and real peers (portico echo, Python HTTP
servers, nginx, curl), waits for their ports, and cleans everything up.
"""

import hashlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PORTICO_BIN", os.path.join(ROOT, "build", "release", "portico"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


def raw_request(port, data, timeout=5.0, read_until_close=True):
    """Sends raw bytes, returns everything read until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def read_to_eof(sock):
    """Reads from `sock` until the peer closes; returns the bytes."""
    chunks = []
    while True:
        b = sock.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def status_of(response_bytes):
    line = response_bytes.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def gateway_yaml(port, routes, backends, address="127.0.0.1", timeouts="", client_limits=""):
    """routes: list of (path_type, path, [(backend_name, port_or_None, weight)]).
    timeouts / client_limits: flow-style YAML maps for a TrafficPolicy on the Gateway."""
    rules = []
    for path_type, path, refs in routes:
        brefs = []
        for name, bport, weight in refs:
            r = f"{{name: {name}, weight: {weight}"
            if bport:
                r += f", port: {bport}"
            brefs.append(r + "}")
        rules.append(
            f"  - matches: [{{path: {{type: {path_type}, value: {path}}}}}]\n"
            f"    backendRefs: [{', '.join(brefs)}]")
    docs = [textwrap.dedent(f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {{name: test}}
        spec:
          gatewayClassName: portico
          addresses: [{{type: IPAddress, value: {address}}}]
          listeners: [{{name: http, port: {port}, protocol: HTTP}}]
        """),
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: test}\nspec:\n  parentRefs: [{name: test}]\n  rules:\n"
            + "\n".join(rules) + "\n"]
    for name, endpoints in backends.items():
        eps = ", ".join(f"{{address: 127.0.0.1, port: {p}}}" for p in endpoints)
        docs.append("apiVersion: portico.dev/v1alpha1\nkind: Backend\n"
                    f"metadata: {{name: {name}}}\nspec:\n  endpoints: [{eps}]\n")
    if timeouts or client_limits:
        policy = ("apiVersion: portico.dev/v1alpha1\nkind: TrafficPolicy\n"
                  "metadata: {name: gateway-policy}\nspec:\n"
                  "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: test}]\n")
        if timeouts:
            policy += f"  timeouts: {timeouts}\n"
        if client_limits:
            policy += f"  clientLimits: {client_limits}\n"
        docs.append(policy)
    return "---\n".join(docs)


class Process:
    def __init__(self, args, name, env=None, preexec=None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"portico-{name}-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=preexec)

    def output(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the process; returns its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        os.unlink(self.log.name)
        return out


class GatewayTestCase(unittest.TestCase):
    """Base class: temp dir, process bookkeeping, helpers to start peers and the gateway."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="portico-test-")
        self.procs = []

    def tearDown(self):
        problems = []
        for p in reversed(self.procs):
            out = p.stop(signal.SIGTERM)
            # Sanitizer builds report memory errors and leaks on exit: any is a failure.
            if p.name == "gateway" and ("Sanitizer" in out or "runtime error:" in out):
                problems.append(out[-4000:])
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("the gateway reported memory errors:\n" + "\n".join(problems))

    def start(self, args, name, port=None, **kw):
        p = Process(args, name, **kw)
        self.procs.append(p)
        if port is not None:
            try:
                wait_port(port)
            except TimeoutError:
                raise AssertionError(f"{name} did not start:\n{p.output()}")
        return p

    def echo(self, name):
        port = free_port()
        self.start([BIN, "echo", "--port", str(port), "--name", name], f"echo-{name}", port)
        return port

    def gateway(self, config_text, workers=2, extra=()):
        path = os.path.join(self.tmp, "gateway.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        self.admin_port = free_port()
        p = self.start([BIN, "gateway", "-c", path, "--workers", str(workers),
                        "--admin", f"127.0.0.1:{self.admin_port}", *extra], "gateway",
                       self.admin_port)
        self.gw = p
        return p

    def admin_get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}",
                                    timeout=5) as r:
            return r.status, r.read().decode()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class ThreadedServer:
    """A raw TCP server on a thread: handler(conn) is called per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.sock.close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base for HttpPeer handlers: HTTP/1.1 keep-alive, no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class HttpPeer:
    """A Python http.server peer (upstream, mirror target, health-check target) on a thread.
    Connections the gateway resets on purpose (dropped retries, mirrors) are expected, so
    handler errors print nothing. `handler` is a BaseHTTPRequestHandler subclass."""

    class _Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    def __init__(self, handler, ip="127.0.0.1", port=0):
        self.httpd = self._Server((ip, port), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def read_head(conn):
    """Reads one HTTP head from a socket; returns (head_bytes, leftover)."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(65536)
        if not b:
            return None, data
        data += b
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def parse_responses(data):
    """Splits a byte stream of HTTP/1.1 responses with Content-Length bodies:
    returns [(status, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        out.append((status, rest[:length]))
        data = rest[length:]
    return out
