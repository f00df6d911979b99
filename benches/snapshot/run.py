#!/usr/bin/env python3
"""Snapshot and restore of a data directory's collection: time and size, and how long writes
wait while a snapshot is taken.

    cargo build --release
    benches/snapshot/run.py --source /work/cache/scifact-chunked --work /tmp/snapshot-bench

--source is an ingested data directory (e.g. `semdex bench beir --chunked`'s); it is copied
into --work first (its LOCK left out) and never written. Then:
  1. `semdex snapshot` of its default collection to a file: wall time, archive size;
  2. `semdex restore` of that file as a new collection: wall time (reading, checking, and
     building the HNSW graph and the BM25 index), size on disk;
  3. `semdex serve` on the copy; one client writes a short new document per request to the
     default collection, back to back, for --before seconds, then
     `POST /collections/default/snapshots` is sent while the writes go on, and they go on
     for --after seconds after it answers. Write latencies before and during the snapshot
     are printed (p50, p99, max).
Standard library only. The copy is removed at the end unless --keep.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from semdex_http import ROOT, request, serve, summary  # noqa: E402


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
    )


def timed(cmd):
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return time.monotonic() - started, out.stdout.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/semdex"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"))
    ap.add_argument("--before", type=float, default=15)
    ap.add_argument("--after", type=float, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    data = os.path.join(args.work, "data")
    if os.path.exists(data):
        sys.exit(f"{data} exists: give an empty --work")
    os.makedirs(args.work, exist_ok=True)
    shutil.copytree(args.source, data, ignore=shutil.ignore_patterns("LOCK"))
    semdex = [args.bin, "--model", args.model]
    server = None
    try:
        store = size_of(os.path.join(data, "semdex.sqlite3"))
        whole = size_of(data)
        archive = os.path.join(args.work, "default.tar")
        seconds, out = timed(semdex + ["snapshot", "--data-dir", data, archive])
        taken = json.loads(out)
        print(
            f"snapshot: {seconds:.1f} s; {taken['documents']} documents, {taken['chunks']} passages; "
            f"archive {size_of(archive) / 1e6:.0f} MB (store {store / 1e6:.0f} MB, "
            f"data directory with its indexes {whole / 1e6:.0f} MB)"
        )
        seconds, _ = timed(
            semdex + ["restore", archive, "--data-dir", data, "--collection", "restored"]
        )
        restored = size_of(os.path.join(data, "collections", "restored"))
        print(f"restore: {seconds:.1f} s; the restored collection {restored / 1e6:.0f} MB on disk")
        os.remove(archive)

        server, base = serve(semdex, data)

        writes = []  # (started, seconds, status)
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                doc = {
                    "id": f"bench-write-{i}",
                    "text": f"Write {i} made while the snapshot benchmark runs: the "
                    "store keeps taking documents during a snapshot.",
                }
                started = time.monotonic()
                status, _ = request("POST", f"{base}/documents", doc)
                writes.append((started, time.monotonic() - started, status))

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(args.before)
        snap_start = time.monotonic()
        status, body = request("POST", f"{base}/collections/default/snapshots")
        snap_end = time.monotonic()
        if status != 201:
            sys.exit(f"snapshot route answered {status}: {body}")
        time.sleep(args.after)
        stop.set()
        thread.join()
        failed = [w for w in writes if w[2] != 200]
        before = [s for t, s, _ in writes if t < snap_start]
        during = [s for t, s, _ in writes if snap_start <= t < snap_end]
        after = [s for t, s, _ in writes if t >= snap_end]
        print(
            f"snapshot through the server: {snap_end - snap_start:.1f} s, "
            f"{body['bytes'] / 1e6:.0f} MB, {body['chunks']} passages"
        )
        print(f"writes before:  {summary(before)}")
        print(f"writes during:  {summary(during)}")
        print(f"writes after:   {summary(after)}")
        if failed:
            print(f"{len(failed)} writes failed: statuses {sorted({w[2] for w in failed})}")
        print(f"median write, during ÷ before: {statistics.median(during) / statistics.median(before):.2f}"
              if during and before else "")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
