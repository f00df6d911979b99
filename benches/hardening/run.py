#!/usr/bin/env python3
"""Hardening benches for `semdex serve` (issue 13), on loopback, standard library only.

  benches/hardening/run.py stall [--binary B] [--chunks 2000]
      Search latency while one long document is ingested: p50/p99/max of searches before and
      during a POST /documents of one document of about CHUNKS passages.

  benches/hardening/run.py soak [--binary B] [--seconds 120] [--queue 16]
      Overload and soak: clients at 4x the queue limit mixing search, ingest and delete for
      SECONDS. Every 10 s: requests admitted (2xx) and refused (429), p99 of admitted ones, and
      the server's resident memory. At the end: whether memory stayed flat after warm-up.

Each run starts its own server on a fresh data directory (no seeds) and stops it at the end.
Not part of CI: the figures depend on the machine. Results are in benches/README.md.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUESTIONS = [
    "Which Kremlin spokesman said there are no plans yet for a trip to North Korea?",
    "Where did the summit take place?",
    "What did the leaders discuss about sanctions?",
    "naval drill in the sea of Japan",
    "railway link between Russia and Korea",
    "economic cooperation and energy projects",
]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Server:
    """A `semdex serve` child on a fresh data directory."""

    def __init__(self, binary, port, extra):
        self.dir = tempfile.mkdtemp(prefix="semdex-bench-")
        self.port = port
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--model", os.path.join(ROOT, "models/all-MiniLM-L6-v2"), "serve",
             "--addr", f"127.0.0.1:{port}", "--data-dir", os.path.join(self.dir, "data"),
             "--seeds", os.path.join(self.dir, "no-seeds")] + extra,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not become ready; see " + self.log.name)

    def request(self, method, path, body=None, timeout=600):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"content-type": "application/json"} if body is not None else {}
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def words():
    with open(os.path.join(ROOT, "seeds/putin-kim-summit.txt")) as f:
        return f.read().split()


def text_of(n_words, seed):
    rng = random.Random(seed)
    w = words()
    return " ".join(rng.choice(w) for _ in range(n_words))


def stall(args):
    server = Server(args.binary, args.port, ["--chunk-tokens", str(args.chunk_tokens)])
    try:
        latencies = {"before": [], "during": []}
        phase = ["before"]
        stop = threading.Event()
        slow = []  # (seconds after the ingest began that it ended, latency)
        t0 = [time.perf_counter()]

        def searcher():
            rng = random.Random(1)
            while not stop.is_set():
                started = time.perf_counter()
                body = {"query": rng.choice(QUESTIONS), "k": 5}
                if args.mode:
                    body["mode"] = args.mode
                status, _ = server.request("POST", "/search", body)
                elapsed = time.perf_counter() - started
                if status == 200:
                    latencies[phase[0]].append(elapsed)
                    if elapsed > 0.2:
                        slow.append((started + elapsed - t0[0], elapsed))
                time.sleep(0.02)

        # Something to search, then a baseline.
        server.request("POST", "/documents", {"id": "small", "text": text_of(2000, 0)})
        thread = threading.Thread(target=searcher)
        thread.start()
        time.sleep(args.baseline)
        # About `chunks` passages of `chunk_tokens` tokens (~0.8 words a token here).
        doc = text_of(int(args.chunks * args.chunk_tokens * 0.67), 1)
        phase[0] = "during"
        started = t0[0] = time.perf_counter()
        status, body = server.request("POST", "/documents", {"id": "long", "text": doc})
        took = time.perf_counter() - started
        stop.set()
        thread.join()
        report = json.loads(body)
        chunks = report["documents"][0]["chunks"] if status == 200 else None
        print(f"ingest of one document: HTTP {status}, {chunks} passages, {took:.1f} s")
        for end, latency in slow:
            if end >= 0:
                print(f"  a search of {latency * 1000:.0f} ms ended {end:.1f} s into the ingest")
        for name, values in latencies.items():
            ms = [v * 1000 for v in values]
            print(f"search {name:>6}: n={len(ms):4d}  p50={percentile(ms, 50):7.1f} ms  "
                  f"p99={percentile(ms, 99):7.1f} ms  max={max(ms, default=float('nan')):7.1f} ms")
    finally:
        server.stop()


def soak(args):
    server = Server(args.binary, args.port,
                    ["--max-queued-inputs", str(args.queue), "--request-timeout", "30"])
    try:
        lock = threading.Lock()
        window = {"admitted": 0, "refused": 0, "other": 0, "latencies": []}
        totals = {"admitted": 0, "refused": 0, "other": 0}
        others = {}  # status -> count, for answers that are neither 2xx nor 429
        stop = threading.Event()

        def client(n):
            rng = random.Random(n)
            while not stop.is_set():
                roll = rng.random()
                if roll < 0.7:
                    method, path = "POST", "/search"
                    body = {"query": rng.choice(QUESTIONS), "k": 10}
                elif roll < 0.9:
                    method, path = "POST", "/documents"
                    body = {"id": f"d{rng.randrange(200)}",
                            "text": text_of(rng.randrange(50, 400), rng.random())}
                else:
                    method, path, body = "DELETE", f"/documents/d{rng.randrange(200)}", None
                started = time.perf_counter()
                try:
                    status, _ = server.request(method, path, body, timeout=60)
                except OSError:
                    status = -1
                elapsed = time.perf_counter() - started
                with lock:
                    if 200 <= status < 300 or status == 404 and method == "DELETE":
                        window["admitted"] += 1
                        window["latencies"].append(elapsed)
                    elif status == 429:
                        window["refused"] += 1
                    else:
                        window["other"] += 1
                        others[status] = others.get(status, 0) + 1
                if status == 429:
                    time.sleep(0.05)

        clients = [threading.Thread(target=client, args=(n,)) for n in range(4 * args.queue)]
        for c in clients:
            c.start()
        rss = []
        started = time.time()
        print(f"{4 * args.queue} clients, queue limit {args.queue}, {args.seconds} s")
        print("   t  admitted  refused  other  p99 admitted (ms)  RSS (MiB)")
        while time.time() - started < args.seconds:
            time.sleep(10)
            with lock:
                snap = dict(window)
                for key in ("admitted", "refused", "other"):
                    totals[key] += window[key]
                    window[key] = 0
                window["latencies"] = []
            rss.append(server.rss_mib())
            p99 = percentile([v * 1000 for v in snap["latencies"]], 99)
            print(f"{time.time() - started:4.0f}  {snap['admitted']:8d}  {snap['refused']:7d}  "
                  f"{snap['other']:5d}  {p99:17.1f}  {rss[-1]:9.1f}", flush=True)
        stop.set()
        for c in clients:
            c.join()
        alive = server.request("GET", "/health")[0] == 200
        after_warmup = rss[len(rss) // 3:]
        growth = (max(after_warmup) - min(after_warmup)) if after_warmup else float("nan")
        print(f"total admitted {totals['admitted']}, refused {totals['refused']}, "
              f"other {totals['other']} {others}; /health after: {'200' if alive else 'DOWN'}")
        print(f"RSS after warm-up (last two thirds): {min(after_warmup):.1f}..{max(after_warmup):.1f}"
              f" MiB (spread {growth:.1f} MiB)")
        if not alive:
            sys.exit(1)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["stall", "soak"])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/semdex"))
    parser.add_argument("--port", type=int, default=18240)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--chunk-tokens", type=int, default=32)
    parser.add_argument("--baseline", type=float, default=10)
    parser.add_argument("--mode", help="search mode to send (default: the server's)")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--queue", type=int, default=16)
    args = parser.parse_args()
    {"stall": stall, "soak": soak}[args.what](args)


if __name__ == "__main__":
    main()
