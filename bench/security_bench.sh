#!/usr/bin/env bash
# SecurityPolicy cost: one Portico, one nginx upstream, wrk; same run, same machine. Routes:
#   plain         no SecurityPolicy (the reference)
#   jwt-cached    JWT RS256, one token for every request (the per-worker token cache hits)
#   jwt-uncached  JWT RS256, TOKENS different tokens in rotation (more than the 4096-entry
#                 per-worker cache: each request is a signature check)
#   api-key       API key in x-api-key
# Invoked by `./dev bench`; prints a markdown table (req/s, p99, ratio to plain; medians of
# ROUNDS alternating rounds) on stdout for docs/benchmarks.md, progress on stderr.
#
#   ROUNDS=3 DURATION=5s WARMUP=1s     wrk rounds per route (alternating), medians reported
#   CONNECTIONS=32 THREADS=1           wrk -c / -t
#   TOKENS=10000                       distinct tokens for jwt-uncached (PyJWT, ~0.3 ms each)
#   SCENARIOS="plain jwt-cached jwt-uncached api-key"   subset, in this order
#   PROXY_CPU=0 CLIENT_CPU=1           cores for Portico / for wrk + nginx
#   PORTICO_BIN=build/release/portico  KEEP_TMP=1 keeps the temp dir (configs, tokens, logs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for tool in taskset wrk; do
  command -v "$tool" >/dev/null || { echo "security_bench: '$tool' not found" >&2; exit 1; }
done
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || { echo "security_bench: nginx (upstream) not installed" >&2; exit 1; }
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3)"
"$PY" -c "import jwt, cryptography" 2>/dev/null \
  || { echo "security_bench: python3-jwt and python3-cryptography are needed" >&2; exit 1; }
export PORTICO_BIN="${PORTICO_BIN:-$ROOT/build/release/portico}"
[[ -x "$PORTICO_BIN" ]] || { echo "security_bench: $PORTICO_BIN not built" >&2; exit 1; }

ROOT="$ROOT" exec "$PY" - "$@" <<'PYEOF'
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.environ["ROOT"]
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # noqa: E402  (Proc, the nginx upstream config, wrk's reporting script)

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402


def log(msg):
    print(f"security_bench: {msg}", file=sys.stderr, flush=True)


def env(name, default):
    return os.environ.get(name, default) or default


ROUNDS = int(env("ROUNDS", "3"))
DURATION = env("DURATION", "5s")
WARMUP = env("WARMUP", "1s")
CONNS = int(env("CONNECTIONS", "32"))
THREADS = int(env("THREADS", "1"))
TOKENS = int(env("TOKENS", "10000"))
PROXY_CPU = env("PROXY_CPU", "0")
CLIENT_CPU = env("CLIENT_CPU", "1")
PORTICO = os.environ["PORTICO_BIN"]
ALL = ["plain", "jwt-cached", "jwt-uncached", "api-key"]
SCENARIOS = env("SCENARIOS", " ".join(ALL)).replace(",", " ").split()
for s in SCENARIOS:
    if s not in ALL:
        sys.exit(f"security_bench: unknown scenario {s!r} (known: {' '.join(ALL)})")
if "plain" not in SCENARIOS:
    SCENARIOS.insert(0, "plain")  # the reference of every ratio

ISSUER, AUDIENCE, API_KEY = "https://idp.bench", "bench-api", "k-bench-0123456789abcdef"
PATHS = {"plain": "/plain/x", "jwt-cached": "/jwt/x", "jwt-uncached": "/jwt/x",
         "api-key": "/key/x"}


def config(port, up_port, key):
    jwks = json.dumps({"keys": [dict(json.loads(RSAAlgorithm.to_jwk(key.public_key())),
                                     kid="bench-rsa")]}, separators=(",", ":"))

    def route(name, prefix):
        return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                f"metadata: {{name: {name}}}\nspec:\n  parentRefs: [{{name: bench}}]\n"
                f"  rules: [{{matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}], "
                f"backendRefs: [{{name: upstream}}]}}]\n")

    def policy(name, target, spec):
        return (f"apiVersion: portico.dev/v1alpha1\nkind: SecurityPolicy\n"
                f"metadata: {{name: {name}}}\nspec:\n  targetRefs: [{{group: "
                f"gateway.networking.k8s.io, kind: HTTPRoute, name: {target}}}]\n{spec}")

    docs = [
        f"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: bench}}\n"
        f"spec:\n  gatewayClassName: portico\n"
        f"  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
        f"  addresses: [{{type: IPAddress, value: 127.0.0.1}}]\n",
        f"apiVersion: portico.dev/v1alpha1\nkind: Backend\nmetadata: {{name: upstream}}\n"
        f"spec:\n  endpoints: [{{address: 127.0.0.1, port: {up_port}}}]\n",
        route("plain", "/plain")]
    if "jwt-cached" in SCENARIOS or "jwt-uncached" in SCENARIOS:
        docs += [route("jwt", "/jwt"), policy("jwt", "jwt", (
            f"  jwt:\n    providers:\n    - name: idp\n      issuer: {ISSUER}\n"
            f"      audiences: [{AUDIENCE}]\n      algorithms: [RS256]\n"
            f"      localJWKS: {{type: Inline, inline: '{jwks}'}}\n"))]
    if "api-key" in SCENARIOS:
        docs += [route("key", "/key"), policy("key", "key", (
            f"  apiKeyAuth:\n    consumers:\n"
            + "".join(f"    - {{name: app-{i}, key: k-other-{i:04d}}}\n" for i in range(99))
            + f"    - {{name: bench-app, key: {API_KEY}}}\n"))]
    return "---\n".join(docs)


def make_tokens(key, n):
    exp = int(time.time()) + 24 * 3600
    t0 = time.monotonic()
    out = [jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"client-{i}", "jti": str(i),
                       "exp": exp}, key, algorithm="RS256", headers={"kid": "bench-rsa"})
           for i in range(n)]
    log(f"{n} RS256 tokens signed in {time.monotonic() - t0:.1f}s")
    return out


ROTATE_LUA = r"""
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = "Bearer " .. line end
local i = 0
request = function()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", "/jwt/x", {["Authorization"] = tokens[i]})
end
"""


def check(port, path, headers, want=200):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    if status != want:
        raise SystemExit(f"security_bench: GET {path} answered {status}, expected {want}")


def run_wrk(tmp, port, scenario, duration, scripts, token, gw=None):
    path = PATHS[scenario]
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{duration}",
           "--timeout", "5s", "-s", scripts[scenario]]
    if scenario == "jwt-cached":
        cmd += ["-H", f"Authorization: Bearer {token}"]
    elif scenario == "api-key":
        cmd += ["-H", f"x-api-key: {API_KEY}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    pids = bench.process_tree(gw.p.pid) if gw is not None else []
    cpu0 = bench.cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp).stdout
    cpu = bench.cpu_seconds(pids) - cpu0
    w = bench.parse_wrk(out)
    if w is None:
        raise SystemExit(f"security_bench: no result from wrk:\n{out}")
    # Portico's own CPU (utime+stime) per request: what a policy costs even when the client or
    # the upstream, not Portico, limits the request rate.
    w["cpu_us"] = cpu * 1e6 / w["requests"] if w["requests"] else 0.0
    w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
    errors = sum(w[k] for k in ("err_connect", "err_read", "err_write", "err_status",
                                "err_timeout"))
    w["errors"] = errors
    return w


def main():
    tmp = tempfile.mkdtemp(prefix="portico-security-bench-")
    ok = False
    try:
        key = rsa.generate_private_key(65537, 2048)
        port, up_port, admin = bench.free_port(), bench.free_port(), bench.free_port()
        fd_limit = 4096
        with open(os.path.join(tmp, "upstream.conf"), "w") as f:
            f.write(bench.nginx_upstream_conf(tmp, [up_port], fd_limit))
        conf = os.path.join(tmp, "portico.yaml")
        with open(conf, "w") as f:
            f.write(config(port, up_port, key))
        nginx = bench.which("nginx", "/usr/sbin/nginx")
        up = bench.Proc("upstream", [nginx, "-p", tmp, "-e", os.path.join(tmp, "upstream.error.log"),
                                     "-c", os.path.join(tmp, "upstream.conf")],
                        CLIENT_CPU, tmp)
        up.wait_port(up_port, 20)
        gw = bench.Proc("portico", [PORTICO, "gateway", "-c", conf, "--workers", "1",
                                    "--admin", f"127.0.0.1:{admin}"], PROXY_CPU, tmp)
        gw.wait_port(port, 20)

        scripts = {}
        base = os.path.join(tmp, "report.lua")
        with open(base, "w") as f:
            f.write(bench.WRK_LUA)
        for s in SCENARIOS:
            scripts[s] = base
        token = None
        if "jwt-cached" in SCENARIOS or "jwt-uncached" in SCENARIOS:
            tokens = make_tokens(key, TOKENS if "jwt-uncached" in SCENARIOS else 1)
            token = tokens[0]
            tok_path = os.path.join(tmp, "tokens.txt")
            with open(tok_path, "w") as f:
                f.write("\n".join(tokens) + "\n")
            rot = os.path.join(tmp, "rotate.lua")
            with open(rot, "w") as f:
                f.write(ROTATE_LUA % tok_path + bench.WRK_LUA)
            scripts["jwt-uncached"] = rot
            check(port, "/jwt/x", {"Authorization": f"Bearer {token}"})
            check(port, "/jwt/x", {"Authorization": f"Bearer {tokens[-1]}"})
            check(port, "/jwt/x", {}, want=401)
        check(port, "/plain/x", {})
        if "api-key" in SCENARIOS:
            check(port, "/key/x", {"x-api-key": API_KEY})
            check(port, "/key/x", {"x-api-key": "nope"}, want=401)

        for s in SCENARIOS:
            log(f"warm-up {s} ({WARMUP})")
            run_wrk(tmp, port, s, WARMUP, scripts, token)
        results = {s: [] for s in SCENARIOS}
        for r in range(ROUNDS):
            for s in SCENARIOS:
                w = run_wrk(tmp, port, s, DURATION, scripts, token, gw)
                log(f"round {r + 1}/{ROUNDS} {s:13s} {w['rps']:9.0f} req/s  "
                    f"p99 {w['p99_us']:6.0f} us  cpu {w['cpu_us']:5.1f} us/req  "
                    f"errors {w['errors']}")
                results[s].append(w)
        if gw.p.poll() is not None:
            raise SystemExit(f"security_bench: portico {gw.status()}:\n{gw.log_tail()}")

        med = {s: {"rps": statistics.median(w["rps"] for w in ws),
                   "p99_us": statistics.median(w["p99_us"] for w in ws),
                   "cpu_us": statistics.median(w["cpu_us"] for w in ws),
                   "errors": sum(w["errors"] for w in ws)} for s, ws in results.items()}
        plain = med["plain"]["rps"]
        print(f"### SecurityPolicy cost (wrk -t{THREADS} -c{CONNS} -d{DURATION}, "
              f"median of {ROUNDS} rounds, Portico --workers 1 on CPU {PROXY_CPU}, "
              f"wrk + nginx on CPU {CLIENT_CPU})\n")
        plain_cpu = med["plain"]["cpu_us"]
        print("| route | req/s | p99 (µs) | req/s vs plain | Portico CPU µs/req | CPU vs plain "
              "| errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        desc = {"plain": "plain (no policy)", "jwt-cached": "JWT RS256, one token (cached)",
                "jwt-uncached": f"JWT RS256, {TOKENS} tokens (uncached)",
                "api-key": "API key (x-api-key, 100 consumers)"}
        for s in SCENARIOS:
            m = med[s]
            cpu_ratio = m["cpu_us"] / plain_cpu if plain_cpu else 0.0
            print(f"| {desc[s]} | {m['rps']:.0f} | {m['p99_us']:.0f} | "
                  f"{m['rps'] / plain:.2f}x | {m['cpu_us']:.1f} | {cpu_ratio:.2f}x | "
                  f"{m['errors']} |")
        goal = []
        for s in ("jwt-cached", "api-key"):
            if s in med:
                ratio = med[s]["rps"] / plain
                goal.append(f"{s} {ratio:.2f}x {'OK' if ratio >= 0.9 else 'MISSED'}")
        print(f"\ngoal: cached JWT and API key >= 0.9x plain: {', '.join(goal) or 'not measured'}")
        print("(req/s ratios; the CPU column is Portico's own time per request, which shows "
              "the policy's cost also when wrk or nginx limits the rate)")
        ok = all(m["errors"] == 0 for m in med.values())
        if not ok:
            log("some requests failed (errors column): the figures are not comparable")
        return 0 if ok else 1
    finally:
        bench.Proc.stop_all()
        if ok and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"temp dir kept: {tmp}")


sys.exit(main())
PYEOF
