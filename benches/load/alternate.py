#!/usr/bin/env python3
"""Latency of search modes against one or more running servers, measured in alternation.

Each question is sent once per mode in turn over one keep-alive connection (concurrency 1), so
that the machine's drift in speed (other work, frequency) hits every mode alike; wrk runs one
mode for seconds at a time and its ratios move with that drift. Requests are pre-built bytes
and responses are read by Content-Length, to keep the client's own time small.

    benches/load/alternate.py --url http://127.0.0.1:8080 \
        --queries ../shared/data/scifact/queries.jsonl --qrels ../shared/data/scifact/qrels/test.tsv \
        --modes dense,hybrid:rerank=false,hybrid --seconds 60

Questions come one per line, or from a BEIR `queries.jsonl` (its `text` fields; with `--qrels`,
only the queries that split judges).

A mode is `NAME[:OPTION=VALUE...]`, sent as `"mode": NAME` plus each option (JSON values).
With several `--url`s (two builds on copies of one data directory, say), every question goes to
each server in turn, each over its own connection. Prints p50 and p90 per server and mode and
each p50 over the first's. Python's standard library only.
"""
import argparse
import json
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit


def request_bytes(host, path, body):
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


def read_queries(path, qrels):
    """The questions of a text file (one per line) or of a BEIR queries.jsonl."""
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not path.endswith(".jsonl"):
        return lines
    judged = None
    if qrels:
        with open(qrels, encoding="utf-8") as f:
            judged = {row.split("\t")[0] for row in f.read().splitlines()[1:] if row}
    queries = [json.loads(line) for line in lines]
    return [q["text"] for q in queries if judged is None or str(q["_id"]) in judged]


def parse_mode(spec):
    name, *options = spec.split(":")
    body = {"mode": name}
    for option in options:
        key, _, value = option.partition("=")
        body[key] = json.loads(value)
    return body


class Connection:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def roundtrip(self, data):
        """Sends one request; returns the response's status once its body is read."""
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.pending:
            self.pending += self.recv()
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self.recv()
        self.pending = rest[length:]
        return status

    def recv(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            sys.exit("the server closed the connection")
        return chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", action="append", help="a server (repeatable; default: http://127.0.0.1:8080)")
    ap.add_argument("--path", default="/search", help="the search route (default: %(default)s)")
    ap.add_argument("--queries", required=True, help="questions, one per line, or a BEIR queries.jsonl")
    ap.add_argument("--qrels", help="with a queries.jsonl: only the queries this qrels TSV judges")
    ap.add_argument("--modes", default="dense,hybrid", help="comma-separated modes (default: %(default)s)")
    ap.add_argument("--k", type=int, default=5, help="passages per answer (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=30, help="how long to measure (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=20, help="rounds not counted (default: %(default)s)")
    args = ap.parse_args()

    urls = args.url or ["http://127.0.0.1:8080"]
    modes = args.modes.split(",")
    queries = read_queries(args.queries, args.qrels)
    if not queries:
        sys.exit(f"{args.queries} has no questions")
    columns = []  # (label, connection, one request per question)
    for url in urls:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        conn = Connection(host, port)
        for m in modes:
            label = m if len(urls) == 1 else f"{parts.netloc} {m}"
            requests = [
                request_bytes(host, args.path, {"query": q, "k": args.k, **parse_mode(m)})
                for q in queries
            ]
            columns.append((label, conn, requests))
    latencies = {label: [] for label, _, _ in columns}
    deadline = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < deadline:
        for label, conn, requests in columns:
            started = time.perf_counter_ns()
            status = conn.roundtrip(requests[n % len(requests)])
            elapsed_ms = (time.perf_counter_ns() - started) / 1e6
            if status != 200:
                sys.exit(f"{label}: HTTP {status}")
            if n >= args.warmup:
                latencies[label].append(elapsed_ms)
        n += 1
    first = statistics.median(latencies[columns[0][0]])
    for label, _, _ in columns:
        values = sorted(latencies[label])
        p50 = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(f"{label:32s} n={len(values):5d}  p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  ×{p50 / first:.3f}")


if __name__ == "__main__":
    main()
