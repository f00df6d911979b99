"""`semdex serve` on large data directories: time from start to the first answered search,
resident memory after start and after N searches, and /search latency, measured on several
data directories in alternation (the machine's drift hits each alike).

    python3 benches/compare/ann_serve.py --semdex target/release/semdex --model models/all-MiniLM-L6-v2 \\
        --data-dir /work/cache/ann/scifact-chunked --data-dir /work/cache/ann/1m/data \\
        --queries ../shared/data/scifact/queries.jsonl [--searches 1000] [--rounds 2] [--mode hybrid]

Each round starts every server in turn (the index must already be saved in the data directory:
a first start that builds it is not a start time), asks `/health` every 10 ms until it answers
200, sends one search, then `--searches` more one at a time (concurrency 1), reading the
server's /proc/PID/status (VmRSS: resident, and its anonymous and file-backed parts) after the
first search and after the last; then stops it with SIGTERM. Prints the medians over rounds.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def post(url, body, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def run_once(args, data_dir, queries):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([args.semdex, "--model", args.model, "serve", "--addr", f"127.0.0.1:{port}",
                             "--data-dir", data_dir, "--seeds", os.path.join(data_dir, "no-seeds")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"semdex serve exited with {proc.returncode} on {data_dir}")
            time.sleep(0.01)
        ready = time.perf_counter() - started
        first = post(f"{base}/search", {"query": queries[0], "k": 10, "mode": args.mode})
        answered = time.perf_counter() - started
        assert first["results"], "the first search found nothing"
        after_start = memory(proc.pid)
        latencies = []
        for q in (queries * (args.searches // len(queries) + 1))[: args.searches]:
            t = time.perf_counter()
            post(f"{base}/search", {"query": q, "k": 10, "mode": args.mode})
            latencies.append((time.perf_counter() - t) * 1000)
        after = memory(proc.pid)
        info = json.load(urllib.request.urlopen(f"{base}/info"))
        return {"ready_s": ready, "first_search_s": answered, "rss_after_start": after_start,
                "rss_after_searches": after, "p50_ms": statistics.median(latencies),
                "p90_ms": statistics.quantiles(latencies, n=10)[-1], "chunks": info["chunks"], "index": info["index"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--semdex", required=True)
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--data-dir", action="append", required=True)
    p.add_argument("--queries", required=True, help="BEIR queries.jsonl or one query per line")
    p.add_argument("--searches", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--mode", default="hybrid")
    p.add_argument("--json", help="write every run to this file")
    args = p.parse_args()
    with open(args.queries) as f:
        lines = [l.strip() for l in f if l.strip()]
    queries = [json.loads(l)["text"] if l.startswith("{") else l for l in lines]

    runs = {d: [] for d in args.data_dir}
    for rnd in range(args.rounds):
        for d in args.data_dir:
            print(f"round {rnd + 1}: {d}", file=sys.stderr)
            runs[d].append(run_once(args, d, queries))
    med = lambda xs: statistics.median(xs)
    print(f"\nsemdex serve, {args.searches} {args.mode} searches at concurrency 1, median of {args.rounds} rounds")
    print(f"{'data directory':<40}{'passages':>10}{'ready s':>9}{'1st search s':>14}{'RSS start MB':>14}"
          f"{'(anon/file)':>14}{'RSS after MB':>14}{'(anon/file)':>14}{'p50 ms':>8}{'p90 ms':>8}")
    for d, rs in runs.items():
        a, b = [r["rss_after_start"] for r in rs], [r["rss_after_searches"] for r in rs]
        print(f"{d[-40:]:<40}{rs[0]['chunks']:>10}{med([r['ready_s'] for r in rs]):>9.2f}"
              f"{med([r['first_search_s'] for r in rs]):>14.2f}{med([x['VmRSS'] for x in a]):>14.0f}"
              f"{med([x['RssAnon'] for x in a]):>7.0f}/{med([x['RssFile'] for x in a]):<6.0f}"
              f"{med([x['VmRSS'] for x in b]):>14.0f}{med([x['RssAnon'] for x in b]):>7.0f}/{med([x['RssFile'] for x in b]):<6.0f}"
              f"{med([r['p50_ms'] for r in rs]):>8.1f}{med([r['p90_ms'] for r in rs]):>8.1f}")
    ds = list(runs)
    for d in ds[1:]:
        ratio = med([r["p50_ms"] for r in runs[d]]) / med([r["p50_ms"] for r in runs[ds[0]]])
        print(f"p50 {d} / {ds[0]}: {ratio:.2f}x")
    for d, rs in runs.items():
        print(f"{d}: /info index {json.dumps(rs[-1]['index'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
