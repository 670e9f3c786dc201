#!/usr/bin/python3
"""Reload latency with a large config: time from a config file change to the first request
the running gateway answers with the new route.

Starts `portico echo` (the upstream) and `portico gateway -c routes.yaml` with ROUTES HTTPRoutes
(the shape of bench/route_scale_bench.cc: one Gateway, one Backend, ROUTES routes over
min(ROUTES, 1000) hostnames, two rules each). Then, RUNS times per write mode, it moves the
Exact rule of one route to a new path, writes the file and polls the gateway over loopback
(a new raw TCP connection per request) until the new path answers 200; the time from the end
of the write to that answer is one sample. Before each change the new path must answer 404.

Write modes, as editors do it:
  rename   write the whole text to a temp file in the same folder, then rename() it over
  inplace  open the file with O_TRUNC and write the whole text, then close

Prints a markdown table (median, min, max in ms per mode) and the gateway's own account of
the last reload (documents parsed/reused, load and compile time).

Environment: PORTICO_BIN (default build/release/portico), ROUTES (10000), RUNS (7),
WORKERS (1), SETTLE (0.3: seconds between runs), TIMEOUT (10: seconds per change), POLL
(0.001: seconds between two polls; the resolution of the figures).
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PORTICO_BIN", os.path.join(ROOT, "build/release/portico"))
ROUTES = int(os.environ.get("ROUTES", "10000"))
RUNS = int(os.environ.get("RUNS", "7"))
WORKERS = os.environ.get("WORKERS", "1")
SETTLE = float(os.environ.get("SETTLE", "0.3"))
TIMEOUT = float(os.environ.get("TIMEOUT", "10"))
POLL = float(os.environ.get("POLL", "0.001"))


def log(msg):
    print(f"reload_bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(routes, port, up_port, target, target_path):
    """The config text; route `target` has its Exact rule on `target_path`."""
    parts = [
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
        f"spec:\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
        "---\napiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\n"
        f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {up_port}}}]\n"
    ]
    hosts = min(routes, 1000)
    for i in range(routes):
        exact = target_path if i == target else f"/exact{i}"
        parts.append(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            f"metadata: {{name: r{i}}}\nspec:\n  parentRefs: [{{name: g}}]\n"
            f"  hostnames: [h{i % hosts}.example.com]\n  rules:\n"
            f"  - matches: [{{path: {{type: PathPrefix, value: /svc{i}}}}}]\n"
            "    backendRefs: [{name: b}]\n"
            f"  - matches: [{{path: {{type: Exact, value: {exact}}}}}]\n"
            "    backendRefs: [{name: b}]\n")
    return "".join(parts)


def status_of(port, host, path):
    """Status code of GET path (new connection), or 0 when the connection fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def write_rename(path, text):
    tmp = path + ".tmp"  # same folder; not *.yaml, so the watcher ignores it until renamed
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def write_inplace(path, text):
    with open(path, "w") as f:
        f.write(text)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def main():
    tmp = tempfile.mkdtemp(prefix="portico-reload-bench-")
    procs = []
    try:
        port, up_port, admin_port = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([BIN, "echo", "--port", str(up_port), "--name", "up"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        target = ROUTES // 2
        host = f"h{target % min(ROUTES, 1000)}.example.com"
        config = os.path.join(tmp, "routes.yaml")
        path_now = f"/exact{target}"
        write_inplace(config, make_config(ROUTES, port, up_port, target, path_now))
        gw_log = open(os.path.join(tmp, "gateway.log"), "w+")
        started = time.monotonic()
        procs.append(subprocess.Popen(
            [BIN, "gateway", "-c", config, "--admin", f"127.0.0.1:{admin_port}", "--workers",
             WORKERS], stdout=gw_log, stderr=subprocess.STDOUT))
        wait_for(lambda: status_of(port, host, path_now) == 200, 120, "the gateway to serve")
        log(f"{ROUTES} routes: gateway serving after {time.monotonic() - started:.1f} s")
        results = {}
        n = 0
        for mode, write in (("rename", write_rename), ("inplace", write_inplace)):
            samples = []
            for _ in range(RUNS):
                n += 1
                new_path = f"/moved{n}"
                if status_of(port, host, new_path) != 404:
                    raise RuntimeError(f"{new_path} answers before the change")
                text = make_config(ROUTES, port, up_port, target, new_path)
                write(config, text)
                t0 = time.monotonic()
                while status_of(port, host, new_path) != 200:
                    if time.monotonic() - t0 > TIMEOUT:
                        raise RuntimeError(f"{mode}: {new_path} never answered 200")
                    time.sleep(POLL)  # leave the CPU to the gateway (2-core machines)
                samples.append((time.monotonic() - t0) * 1000)
                if status_of(port, host, path_now) != 404:
                    raise RuntimeError(f"{mode}: old path {path_now} still answers")
                path_now = new_path
                time.sleep(SETTLE)
            results[mode] = samples
            log(f"{mode}: " + ", ".join(f"{s:.1f}" for s in samples) + " ms")
        gw_log.flush()
        gw_log.seek(0)
        applied = [line.strip() for line in gw_log if "applied" in line]
        print(f"### Reload latency, {ROUTES} routes ({RUNS} changes per mode)\n")
        print("| write | median (ms) | min (ms) | max (ms) |")
        print("|---|---:|---:|---:|")
        for mode, samples in results.items():
            print(f"| {mode} | {statistics.median(samples):.1f} | {min(samples):.1f} | "
                  f"{max(samples):.1f} |")
        if applied:
            print(f"\nlast reload, as the gateway logged it: `{applied[-1]}`")
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    sys.exit(main())
