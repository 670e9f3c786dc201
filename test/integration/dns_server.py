#!/usr/bin/python3
"""A tiny authoritative DNS server for tests, whose answers the test changes at run time.

UDP only, on loopback. Every query re-reads a JSON records file, so a test changes answers by
rewriting the file (atomically: write a temporary file, then rename; `DnsServer.set` does).
Needs Debian's python3-dnslib (run with /usr/bin/python3).

Records file:

    {
      "api.test":     {"a": ["127.0.0.1", "127.0.0.2"], "ttl": 1},
      "dual.test":    {"a": ["127.0.0.1"], "aaaa": ["::1"], "ttl": 5},
      "gone.test":    {"rcode": "NXDOMAIN"},
      "broken.test":  {"rcode": "SERVFAIL"},
      "slow.test":    {"silent": true}
    }

Names match case-insensitively, with or without the trailing dot. A name not in the file gets
NXDOMAIN; a known name without records of the asked type gets an empty NOERROR answer. "ttl"
defaults to 1 second. If the file is missing or not valid JSON (yet), the last good contents are
used.

As a program:

    /usr/bin/python3 test/integration/dns_server.py --records records.json [--port 0]
        [--host 127.0.0.1] [--port-file FILE] [--log]

prints the bound port on its first stdout line (and writes it to --port-file), then serves
until killed. Point the gateway at it with `portico gateway --dns-server 127.0.0.1:PORT`.

From a test (this directory is on sys.path under unittest discover):

    from dns_server import DnsServer
    with DnsServer({"api.test": {"a": ["127.0.0.1"], "ttl": 1}}) as dns:
        ...  # dns.address == "127.0.0.1:PORT"
        dns.set({"api.test": {"a": ["127.0.0.2"], "ttl": 1}})
        dns.queries("api.test")  # how many queries for the name so far
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


def _normalize(name):
    return name.lower().rstrip(".")


class _Records:
    """The records file, re-read on every query; keeps the last parse that succeeded."""

    def __init__(self, path):
        self.path = path
        self.last_good = {}

    def current(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                self.last_good = {_normalize(k): v for k, v in data.items()}
        except (OSError, ValueError):
            pass  # a test writing the file non-atomically, or not yet: keep the last answers
        return self.last_good


def _answer(dnslib, request, records):
    """The reply to `request`, or None to stay silent."""
    reply = request.reply()  # copies id, question and RD; sets QR, AA, RA
    if not request.questions:
        reply.header.rcode = RCODES["FORMERR"]
        return reply
    q = request.q
    entry = records.get(_normalize(str(q.qname)))
    if entry is None:
        reply.header.rcode = RCODES["NXDOMAIN"]
        return reply
    if entry.get("silent"):
        return None
    rcode = entry.get("rcode", "NOERROR")
    if rcode != "NOERROR":
        reply.header.rcode = RCODES.get(rcode, RCODES["SERVFAIL"])
        return reply
    ttl = int(entry.get("ttl", 1))
    if q.qtype == dnslib.QTYPE.A:
        for ip in entry.get("a", []):
            reply.add_answer(dnslib.RR(q.qname, dnslib.QTYPE.A, rdata=dnslib.A(ip), ttl=ttl))
    elif q.qtype == dnslib.QTYPE.AAAA:
        for ip in entry.get("aaaa", []):
            reply.add_answer(dnslib.RR(q.qname, dnslib.QTYPE.AAAA, rdata=dnslib.AAAA(ip), ttl=ttl))
    return reply


def serve(records_path, host="127.0.0.1", port=0, port_file=None, log=False):
    import dnslib  # imported here so that the DnsServer helper works without dnslib installed

    records = _Records(records_path)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, port_file)
    print(bound, flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            request = dnslib.DNSRecord.parse(data)
        except Exception:  # dnslib raises several kinds on garbage; a test server shrugs
            continue
        reply = _answer(dnslib, request, records.current())
        if log:
            what = "silent" if reply is None else dnslib.RCODE.get(reply.header.rcode)
            qname = request.q.qname if request.questions else "-"
            qtype = dnslib.QTYPE.get(request.q.qtype) if request.questions else "-"
            print(f"dns_server: {qname} {qtype} -> {what} {len(reply.rr) if reply else 0}",
                  file=sys.stderr, flush=True)
        if reply is not None:
            sock.sendto(reply.pack(), peer)


class DnsServer:
    """Runs dns_server.py as a child process; `set` replaces its records atomically."""

    def __init__(self, records=None, host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="portico-dns-")
        self.path = os.path.join(self.dir, "records.json")
        self.log_path = os.path.join(self.dir, "queries.log")
        self.host = host
        self.set(records or {})
        self.proc = None
        self.port = None

    def set(self, records):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(records, f)
        os.replace(tmp, self.path)

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def start(self):
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.abspath(__file__), "--records", self.path,
             "--host", self.host, "--log"],
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"dns_server did not start; see {self.log_path}")
        self.port = int(line)
        return self

    def queries(self, name=None):
        """How many queries arrived (for `name` only, if given)."""
        with open(self.log_path, encoding="utf-8") as f:
            lines = [l for l in f if l.startswith("dns_server: ")]
        if name is None:
            return len(lines)
        want = _normalize(name)
        return sum(1 for l in lines if _normalize(l.split()[1]) == want)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", required=True, help="JSON records file, re-read per query")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="also write the bound port here")
    parser.add_argument("--log", action="store_true", help="log each query to stderr")
    args = parser.parse_args()
    try:
        serve(args.records, args.host, args.port, args.port_file, args.log)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
