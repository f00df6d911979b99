#!/usr/bin/env python3
"""A PostgreSQL hot standby's replay lag while semdex ingests: how far it falls behind, and
how long a document written through the primary takes to be found through the standby.

    cargo build --release
    benches/standby/run.py --corpus ../shared/data/scifact/corpus.jsonl --docs 5000

Starts a throwaway primary (`tests/pg/server.sh start`, fsync on unless PG_FSYNC=off) and a
streaming standby of it (`tests/pg/server.sh standby`: pg_basebackup -R), then two `semdex serve`: A on the primary
with `--read-database-url` the standby, B on the standby alone (read-only). The first --docs
documents of a BEIR corpus (title and text, or with --text title the title alone) are posted to A in batches of --batch, one request at a time.
Meanwhile one thread reads A's `/info` (the standby's replay lag as semdex measures it) and
PostgreSQL's own `pg_stat_replication.replay_lag` on the primary every --every seconds; after
each batch, the last document of the batch is read through B until found, and the time from
the write's answer to that read is its visibility delay. Prints the distributions of all
three. Standard library only; everything is removed at the end.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import semdex_http  # noqa: E402
from semdex_http import ROOT, request, serve, summary  # noqa: E402

SERVER_SH = os.path.join(ROOT, "tests/pg/server.sh")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="a BEIR corpus.jsonl")
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--text", choices=["full", "title"], default="full",
                    help="a document's text: title and abstract, or the title alone (one passage)")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/semdex"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"))
    args = ap.parse_args()
    docs = semdex_http.beir_documents(args.corpus, args.docs, title_only=args.text == "title")
    semdex = [args.bin, "--model", args.model]
    work = tempfile.mkdtemp(prefix="standby-bench-")
    primary_dir, standby_dir = os.path.join(work, "primary"), os.path.join(work, "standby")
    primary_port, standby_port = semdex_http.free_port(), semdex_http.free_port()
    children = []
    try:
        # fsync on, as in production (tests/pg/server.sh turns it off by default).
        env = dict(os.environ, PG_FSYNC=os.environ.get("PG_FSYNC", "on"))
        sh = lambda *a: subprocess.run([SERVER_SH, *a], check=True, stdout=subprocess.PIPE, env=env).stdout.decode().strip()
        primary = sh("start", primary_dir, str(primary_port))
        standby = sh("standby", str(primary_port), standby_dir, str(standby_port))
        data = lambda name: (os.makedirs(os.path.join(work, name)), os.path.join(work, name))[1]
        a, base_a = serve(semdex, data("a"), ["--database-url", primary, "--read-database-url", standby, "--request-timeout", "600"],
                          log=os.path.join(work, "a.log"))
        children.append(a)
        b, base_b = serve(semdex, data("b"), ["--database-url", standby], log=os.path.join(work, "b.log"))
        children.append(b)

        semdex_lag, pg_lag, out_of_rotation = [], [], [0]
        stop = threading.Event()

        def watch():
            query = ("SELECT COALESCE(EXTRACT(epoch FROM replay_lag), 0) FROM pg_stat_replication")
            while not stop.is_set():
                try:
                    status, info = request("GET", f"{base_a}/info", timeout=30)
                except OSError:
                    break  # the server stopped: the run is over
                if status == 200 and info["standbys"]:
                    s = info["standbys"][0]
                    semdex_lag.append(s["replay_lag_seconds"])
                    if not s["in_rotation"]:
                        out_of_rotation[0] += 1
                out = subprocess.run(
                    [SERVER_SH, "run", "psql", primary, "-tAc", query],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                ).stdout.decode().strip()
                if out:
                    pg_lag.append(float(out.splitlines()[0]))
                time.sleep(args.every)

        watcher = threading.Thread(target=watch)
        watcher.start()
        visible = []
        started = time.monotonic()
        passages = 0
        for i in range(0, len(docs), args.batch):
            batch = docs[i : i + args.batch]
            status, body = request("POST", f"{base_a}/documents", {"documents": batch})
            if status != 200:
                sys.exit(f"ingest answered {status}: {body}")
            passages += sum(d.get("chunks", 0) for d in body["documents"])
            written = time.monotonic()
            last = batch[-1]["id"]
            while request("GET", f"{base_b}/documents/{last}", timeout=30)[0] != 200:
                time.sleep(0.002)
            visible.append(time.monotonic() - written)
        seconds = time.monotonic() - started
        stop.set()
        watcher.join()
        print(f"ingest: {len(docs)} documents through the primary in {seconds:.0f} s "
              f"({len(docs) / seconds:.1f} documents/s, {passages} passages)")
        print(f"visible through the standby after the write's answer: {summary(visible)}")
        print(f"replay lag as semdex measures it (/info): {summary(semdex_lag)}")
        print(f"replay lag, PostgreSQL's pg_stat_replication: {summary(pg_lag)}")
        print(f"probes with the standby out of rotation: {out_of_rotation[0]} of {len(semdex_lag)}")
    finally:
        for child in children:
            child.terminate()
            child.wait()
        for d in (standby_dir, primary_dir):
            subprocess.run([SERVER_SH, "stop", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
