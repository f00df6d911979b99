#!/usr/bin/env python3
"""`/search` requests/s at concurrency 8 with reads on the primary alone, on one standby and
on two: what PostgreSQL standbys do for semdex's read traffic.

    cargo build --release
    benches/standby/reads.py --corpus ../shared/data/scifact/corpus.jsonl --docs 2000

Starts a throwaway primary and two streaming standbys of it (`tests/pg/server.sh start` and
`standby`, pg_basebackup -R), then three `semdex serve` on the primary: P with no
`--read-database-url`, S1 with one standby, S2 with both. The first --docs documents of a BEIR
corpus go in through P; once both standbys have replayed them, wrk (Debian: apt-get install
wrk) sends the corpus's queries to each server in turn, --rounds rounds of --seconds each, at
--connections, in hybrid mode (the query is embedded, then PostgreSQL searches) and in lexical
mode (no embedding: PostgreSQL's BM25 alone, so the database's share of a search), and prints
each server's best round. Everything is removed at the end.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import semdex_http  # noqa: E402
from semdex_http import ROOT, request, serve  # noqa: E402

SERVER_SH = os.path.join(ROOT, "tests/pg/server.sh")
POST_LUA = os.path.join(ROOT, "benches/load/post.lua")


def wrk(base, mode, queries, connections, seconds):
    """(requests/s, p50 ms, non-2xx answers) of one wrk run."""
    env = dict(os.environ, LOAD_KIND="search", LOAD_PATH="/search", LOAD_FILE=queries, LOAD_MODE=mode)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", POST_LUA, base],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, float(p50.group(1)) * scale, int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="a BEIR corpus.jsonl (its queries.jsonl beside it)")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/semdex"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"))
    args = ap.parse_args()
    docs = semdex_http.beir_documents(args.corpus, args.docs)
    semdex = [args.bin, "--model", args.model]
    work = tempfile.mkdtemp(prefix="standby-reads-")
    queries = os.path.join(work, "queries.txt")
    with open(os.path.join(os.path.dirname(args.corpus), "queries.jsonl")) as f, open(queries, "w") as out:
        for line in f:
            out.write(json.loads(line)["text"].replace("\n", " ") + "\n")
    dirs = [os.path.join(work, n) for n in ("primary", "standby1", "standby2")]
    ports = [semdex_http.free_port() for _ in dirs]
    children = []
    try:
        env = dict(os.environ, PG_FSYNC=os.environ.get("PG_FSYNC", "on"))
        sh = lambda *a: subprocess.run([SERVER_SH, *a], check=True, stdout=subprocess.PIPE, env=env).stdout.decode().strip()
        primary = sh("start", dirs[0], str(ports[0]))
        standbys = [sh("standby", str(ports[0]), d, str(p)) for d, p in zip(dirs[1:], ports[1:])]
        servers = {}
        for name, reads in (("primary only", []), ("1 standby", standbys[:1]), ("2 standbys", standbys)):
            extra = ["--database-url", primary]
            for url in reads:
                extra += ["--read-database-url", url]
            data = os.path.join(work, f"data-{len(servers)}")
            os.makedirs(data)
            child, base = serve(semdex, data, extra, log=os.path.join(work, f"{len(servers)}.log"))
            children.append(child)
            servers[name] = base
        base_p = servers["primary only"]
        started = time.monotonic()
        passages = 0
        for i in range(0, len(docs), 50):
            status, body = request("POST", f"{base_p}/documents", {"documents": docs[i : i + 50]})
            if status != 200:
                sys.exit(f"ingest answered {status}: {body}")
            passages += sum(d.get("chunks", 0) for d in body["documents"])
        print(f"ingest: {len(docs)} documents, {passages} passages in {time.monotonic() - started:.0f} s",
              flush=True)
        # Both standbys have replayed everything once S2 sees every standby at lag 0 in rotation.
        deadline = time.monotonic() + 300
        while True:
            status, info = request("GET", f"{servers['2 standbys']}/info")
            shown = info.get("standbys", []) if status == 200 else []
            if len(shown) == 2 and all(s["in_rotation"] and s["replay_lag_seconds"] == 0 for s in shown):
                break
            if time.monotonic() > deadline:
                sys.exit(f"the standbys did not catch up: {shown}")
            time.sleep(0.5)
        best = {}
        for r in range(args.rounds):
            for mode in ("hybrid", "lexical"):
                for name, base in servers.items():
                    wrk(base, mode, queries, args.connections, 2)  # warm-up
                    rate, p50, errors = wrk(base, mode, queries, args.connections, args.seconds)
                    print(f"round {r + 1} {mode:8} {name:13} {rate:8.1f} requests/s  p50 {p50:7.1f} ms"
                          f"  non-2xx {errors}", flush=True)
                    if errors:
                        sys.exit(f"{name} answered {errors} requests with an error")
                    key = (mode, name)
                    if key not in best or rate > best[key][0]:
                        best[key] = (rate, p50)
        print(f"\nbest of {args.rounds} rounds, concurrency {args.connections}:")
        print(f"{'mode':8} {'reads from':13} {'requests/s':>10} {'p50 ms':>8} {'vs primary only':>16}")
        for mode in ("hybrid", "lexical"):
            alone = best[(mode, "primary only")][0]
            for name in servers:
                rate, p50 = best[(mode, name)]
                print(f"{mode:8} {name:13} {rate:10.1f} {p50:8.1f} {rate / alone:15.2f}x")
    finally:
        for child in children:
            child.terminate()
            child.wait()
        for d in reversed(dirs):
            subprocess.run([SERVER_SH, "stop", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
