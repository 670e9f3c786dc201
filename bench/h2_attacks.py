#!/usr/bin/python3
"""HTTP/2 attack figures: how much an attacker gets out of Portico before it is cut off.

Starts `portico echo` and `portico gateway` (one worker) on loopback, then runs each attack
from a hostile client written with raw frames (python3-h2 for encoding) and reports, per
attack: what the attacker sent before the connection was closed, Portico's CPU time against
the attacker's (from /proc and getrusage), Portico's RSS growth, and whether a well-behaved
client on a second connection kept getting answers during the attack.

Attacks (the issue's hardening list):
  rapid_reset    HEADERS then RST_STREAM, back to back (CVE-2023-44487)
  continuation   one HEADERS without END_HEADERS, then CONTINUATION frames forever
  hpack_bomb     one header block that decodes to far more than the header-list limit
  ping_flood     PING frames while never reading (the ACKs queue up)
  settings_flood SETTINGS frames while never reading
  window_starve  a 100 MiB download whose window the client never opens

Environment: PORTICO_BIN (default build/release/portico). Prints a markdown table.
"""
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import h2.config
import h2.connection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PORTICO_BIN", os.path.join(ROOT, "build/release/portico"))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"port {port} never opened")


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Prober(threading.Thread):
    """A well-behaved client: one GET every 10 ms on its own connection during the attack."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.stop = port, 0, 0, False

    def run(self):
        while not self.stop:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/probe", timeout=2) as r:
                    r.read()
                    self.ok += 1
            except Exception:
                self.failed += 1
            time.sleep(0.01)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed(sock):
    """True once the peer closed (EOF or reset); drains what arrived."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def client_conn():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    return c


HEADERS = [(":method", "GET"), (":path", "/a"), (":scheme", "http"), (":authority", "x")]


def rapid_reset(port, budget):
    s = connect(port)
    c = client_conn()
    s.sendall(c.data_to_send())
    sent = 0
    for _ in range(budget):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, HEADERS, end_stream=True)
        c.reset_stream(sid)
        try:
            s.sendall(c.data_to_send())
        except OSError:
            break
        sent += 1
        if sent % 10 == 0 and closed(s):
            break
    return s, f"{sent} streams opened and reset"


def continuation(port, budget):
    s = connect(port)
    s.sendall(PREFACE + frame(4, 0, 0, b""))
    s.sendall(frame(1, 0, 1, b"\x82\x84\x86"))  # :method GET, :path /, :scheme http
    block = b"\x40\x01a\x0aaaaaaaaaaa" * 100  # literal fields, ~1.4 KB per frame
    sent = 0
    for _ in range(budget):
        try:
            s.sendall(frame(9, 0, 1, block))
        except OSError:
            break
        sent += 1
        if sent % 4 == 0 and closed(s):
            break
    return s, f"{sent} CONTINUATION frames ({sent * len(block) // 1024} KiB)"


def hpack_bomb(port, budget):
    s = connect(port)
    s.sendall(PREFACE + frame(4, 0, 0, b""))
    # One 4 KiB field added to the dynamic table, then referenced 4000 times: ~16 MB decoded.
    big = b"\x40\x01x\x7f\xa1\x1e" + b"y" * 4000  # literal, incremental indexing, 4000 B
    refs = b"\xbe" * 4000                              # index 62: the entry just added
    sent = 0
    for i in range(budget):
        sid = 1 + 2 * i
        try:
            s.sendall(frame(1, 5, sid, b"\x82\x84\x86" + (big if i == 0 else b"") + refs))
        except OSError:
            break
        sent += 1
        if closed(s):
            break
    return s, f"{sent} header blocks of ~16 MB decoded each"


def ping_flood(port, budget):
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(PREFACE + frame(4, 0, 0, b""))
    sent = 0
    for _ in range(budget):
        try:
            s.sendall(frame(6, 0, 0, b"12345678") * 100)
        except OSError:
            break
        sent += 100
    return s, f"{sent} PINGs, never reading"


def settings_flood(port, budget):
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(PREFACE)
    sent = 0
    for _ in range(budget):
        try:
            s.sendall(frame(4, 0, 0, b"") * 100)
        except OSError:
            break
        sent += 100
    return s, f"{sent} SETTINGS, never reading"


def window_starve(port, budget):
    s = connect(port)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/big.bin"), (":scheme", "http"),
                       (":authority", "x")], end_stream=True)
    s.sendall(c.data_to_send())
    time.sleep(3)  # the response waits on a window that never opens
    return s, "GET of 100 MiB, window never opened, 3 s"


ATTACKS = [("rapid_reset", rapid_reset, 20000), ("continuation", continuation, 20000),
           ("hpack_bomb", hpack_bomb, 50), ("ping_flood", ping_flood, 2000),
           ("settings_flood", settings_flood, 2000), ("window_starve", window_starve, 1)]


def main():
    tmp = tempfile.mkdtemp(prefix="portico-h2attack-")
    echo, port, admin, files = free_port(), free_port(), free_port(), free_port()
    with open(os.path.join(tmp, "big.bin"), "wb") as f:
        f.truncate(100 * 1024 * 1024)
    cfg = os.path.join(tmp, "gw.yaml")
    with open(cfg, "w") as f:
        f.write(f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: g}}
spec:
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{name: g}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /big.bin}}}}]
    backendRefs: [{{group: portico.dev, kind: Backend, name: files}}]
  - backendRefs: [{{group: portico.dev, kind: Backend, name: echo}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: echo}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {echo}}}]
---
apiVersion: portico.dev/v1alpha1
kind: Backend
metadata: {{name: files}}
spec:
  endpoints: [{{address: 127.0.0.1, port: {files}}}]
""")
    procs = [
        subprocess.Popen([BIN, "echo", "--port", str(echo)], stderr=subprocess.DEVNULL),
        subprocess.Popen(["/usr/bin/python3", "-m", "http.server", str(files), "--bind",
                          "127.0.0.1", "--directory", tmp], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([BIN, "gateway", "-c", cfg, "--workers", "1", "--admin",
                          f"127.0.0.1:{admin}"], stderr=subprocess.DEVNULL),
    ]
    gw = procs[-1]
    try:
        for p in (echo, files, port):
            wait_port(p)
        print("| attack | what the attacker sent | closed by Portico | Portico CPU ÷ attacker CPU "
              "| Portico RSS growth | well-behaved client during the attack |")
        print("|---|---|---|---|---|---|")
        for name, fn, budget in ATTACKS:
            prober = Prober(port)
            prober.start()
            rss0, cpu0, mine0 = proc_rss_kb(gw.pid), proc_cpu(gw.pid), self_cpu()
            t0 = time.time()
            sock, sent = fn(port, budget)
            was_closed = False
            deadline = time.time() + 3
            while time.time() < deadline:
                if closed(sock):
                    was_closed = True
                    break
                time.sleep(0.05)
            elapsed = time.time() - t0
            cpu = proc_cpu(gw.pid) - cpu0
            mine = self_cpu() - mine0
            rss = proc_rss_kb(gw.pid) - rss0
            sock.close()
            prober.stop = True
            prober.join()
            ratio = f"{cpu / mine:.2f}" if mine > 0.01 else f"{cpu:.2f} s vs <0.01 s"
            print(f"| {name} | {sent} | {'yes' if was_closed else 'no'} ({elapsed:.1f} s) | "
                  f"{ratio} | {rss / 1024:+.1f} MiB | {prober.ok} OK, {prober.failed} failed |")
            sys.stdout.flush()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
