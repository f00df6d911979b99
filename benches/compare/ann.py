"""semdex's vector index beside hnswlib and faiss, on the same vectors, in one run.

    python3 benches/compare/ann.py --semdex target/release/semdex --base B.fvecs --queries Q.fvecs \\
        [--ground-truth G.ivecs] [--ef 16,32,64,128,256] [--threads 2] [--rounds 3] [--work DIR]
    python3 benches/compare/ann.py --semdex ... --model DIR --data-dir DATA --scifact SCIFACT
        (the vectors of a semdex data directory; the BEIR queries embedded by `semdex embed`)

Engines, given the same unit vectors, M and ef_construction: semdex (`semdex bench ann`, its
index written to --work and reopened from there, as the server opens it), hnswlib, faiss
IndexHNSWFlat and faiss IndexHNSWSQ (an 8-bit scalar quantiser, as semdex's codes are). Each
builds once on --threads threads; then --rounds rounds search every engine in turn (one thread,
then --threads threads), so that the machine's drift hits all alike; each (engine, threads, ef)
keeps its best round. Prints recall@10 / queries/s per ef, queries/s at recall@10 0.95, 0.99 and
0.999 (the fastest ef that reaches it, as ann-benchmarks' Pareto front reads), and ratios.
Needs numpy, hnswlib and faiss-cpu (e.g. a venv: pip install numpy hnswlib faiss-cpu).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

TARGETS = [0.95, 0.99, 0.999]


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def write_vecs(path, x):
    n, d = x.shape
    np.hstack([np.full((n, 1), d, dtype=np.int32).view(x.dtype), x]).tofile(path)


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def store_vectors(data_dir):
    import sqlite3
    con = sqlite3.connect(f"file:{os.path.join(data_dir, 'semdex.sqlite3')}?mode=ro", uri=True)
    rows = con.execute("SELECT embedding FROM chunks ORDER BY id").fetchall()
    return np.stack([np.frombuffer(r[0], dtype="<f4") for r in rows]).astype(np.float32)


def embed(args, texts):
    out = subprocess.run([args.semdex, "--model", args.model, "embed"], input="\n".join(texts) + "\n",
                         check=True, capture_output=True, text=True).stdout
    return np.array([json.loads(l) for l in out.splitlines()], dtype=np.float32)


def recall(found_ids, found_scores, truth_ids, truth_scores, k=10):
    """Recall@k where a hit scoring at least the k-th true score counts (ties are interchangeable)."""
    total = 0.0
    for fi, fs, ti, ts in zip(found_ids, found_scores, truth_ids, truth_scores):
        top = set(ti[:k].tolist())
        floor = ts[k - 1] - 1e-6
        total += sum(1 for i, s in zip(fi[:k], fs[:k]) if i in top or s >= floor) / k
    return total / len(found_ids)


def sweep(search, set_ef, queries, efs, truth):
    """Per ef: (recall@10, queries/s by the clock, queries per CPU-second of this process)."""
    rows = {}
    for ef in efs:
        set_ef(max(ef, 10))
        search(queries[: min(100, len(queries))])  # warm-up, untimed
        c, t = time.process_time(), time.perf_counter()
        ids, scores = search(queries)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        rows[ef] = (recall(ids, scores, *truth), len(queries) / wall, len(queries) / cpu)
    return rows


def reused(path):
    """The build figures of an index file a previous run left, if --reuse allows it."""
    try:
        with open(path + ".json") as f:
            return json.load(f)
    except OSError:
        return None


def remember(path, build_s, memory_mb):
    with open(path + ".json", "w") as f:
        json.dump({"build_s": build_s, "memory_mb": memory_mb}, f)


class Hnswlib:
    name = "hnswlib"

    def __init__(self, args, base, path):
        import hnswlib
        self.path, self.dim, self.n = path, base.shape[1], base.shape[0]
        if args.reuse and (old := reused(path)):
            self.build_s, self.memory_mb = old["build_s"], old["memory_mb"]
            return
        index = hnswlib.Index(space="ip", dim=self.dim)
        t = time.perf_counter()
        index.init_index(max_elements=self.n, ef_construction=args.ef_construction, M=args.m)
        index.set_num_threads(args.threads)
        index.add_items(base, np.arange(self.n))
        self.build_s = time.perf_counter() - t
        index.save_index(path)
        self.memory_mb = os.path.getsize(path) / 2**20
        remember(path, self.build_s, self.memory_mb)

    def open(self, threads):
        import hnswlib
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.load_index(self.path, max_elements=self.n)
        index.set_num_threads(threads)

        def search(q):
            labels, dists = index.knn_query(q, k=10)
            return labels, 1 - dists

        return search, index.set_ef


class Faiss:
    def __init__(self, args, base, path, quantised):
        import faiss
        self.path = path
        self.name = "faiss HNSWSQ8" if quantised else "faiss HNSWFlat"
        if args.reuse and (old := reused(path)):
            self.build_s, self.memory_mb = old["build_s"], old["memory_mb"]
            return
        faiss.omp_set_num_threads(args.threads)
        d = base.shape[1]
        if quantised:
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, args.m, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWFlat(d, args.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
        t = time.perf_counter()
        if quantised:
            index.train(base)
        index.add(base)
        self.build_s = time.perf_counter() - t
        faiss.write_index(index, path)
        self.memory_mb = os.path.getsize(path) / 2**20
        remember(path, self.build_s, self.memory_mb)

    def open(self, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        index = faiss.read_index(self.path)

        def search(q):
            scores, ids = index.search(q, 10)
            return ids, scores

        def set_ef(ef):
            index.hnsw.efSearch = ef

        return search, set_ef


class Semdex:
    name = "semdex"

    def __init__(self, args, files, index_dir):
        self.args, self.files, self.index_dir = args, files, index_dir
        report = self.run(1)
        self.build_s = report["build_s"]
        self.memory_mb = report["index_bytes"] / 2**20
        if self.build_s is None:  # an index a previous run built
            self.build_s = (reused(index_dir) or {}).get("build_s")
        else:
            remember(index_dir, self.build_s, self.memory_mb)

    def run(self, threads):
        base, queries, gt = self.files
        cmd = [self.args.semdex, "--threads", str(threads), "bench", "ann", "--base", base, "--queries", queries,
               "--ground-truth", gt, "--m", str(self.args.m), "--ef-construction", str(self.args.ef_construction),
               "--ef", self.args.ef, "--index-dir", self.index_dir, "--json"]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    def rows(self, threads):
        report = self.run(threads)
        return {r["ef"]: (r["recall@10"], r["qps"], r.get("cpu_qps") or 0.0) for r in report["results"]}, report


def at_recall(rows, target, column=1):
    """The best queries/s (column 1: by the clock, 2: per CPU-second) among the efs whose
    recall@10 reaches `target` (None: none does)."""
    ok = [row[column] for row in rows.values() if row[0] >= target]
    return max(ok) if ok else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--semdex", required=True)
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--base")
    p.add_argument("--queries")
    p.add_argument("--ground-truth")
    p.add_argument("--data-dir", help="a semdex data directory: its stored vectors are the base set")
    p.add_argument("--scifact", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/scifact"),
                   help="with --data-dir: the BEIR folder whose queries.jsonl are embedded as queries")
    p.add_argument("--work", default="/tmp/semdex-ann-compare")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", default="16,24,32,48,64,96,128,192,256,384,512")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--engines", default="semdex,hnswlib,faiss,faiss-sq")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--reuse", action="store_true",
                   help="use the peers' and semdex's indexes a previous run left in --work instead of building")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    efs = [int(e) for e in args.ef.split(",")]
    engines = args.engines.split(",")

    if args.data_dir:
        base = store_vectors(args.data_dir)
        with open(os.path.join(args.scifact, "queries.jsonl")) as f:
            texts = [json.loads(l)["text"] for l in f if l.strip()]
        queries = embed(args, texts)
        args.base = os.path.join(args.work, "base.fvecs")
        args.queries = os.path.join(args.work, "queries.fvecs")
        write_vecs(args.base, base)
        write_vecs(args.queries, queries)
        args.ground_truth = None
    base = unit(read_vecs(args.base, np.float32))
    queries = unit(read_vecs(args.queries, np.float32))
    n, dim = base.shape
    if args.ground_truth:
        truth_ids = read_vecs(args.ground_truth, np.int32)[:, :10]
    else:
        import faiss
        faiss.omp_set_num_threads(args.threads)
        flat = faiss.IndexFlatIP(dim)
        flat.add(base)
        _, truth_ids = flat.search(queries, 100)
        args.ground_truth = os.path.join(args.work, "truth.ivecs")
        write_vecs(args.ground_truth, truth_ids.astype(np.int32))
        truth_ids = truth_ids[:, :10]
        del flat
    truth_scores = np.take_along_axis(queries @ base.T, truth_ids, axis=1) if n * len(queries) < 4e8 else \
        np.stack([base[row] @ q for row, q in zip(truth_ids, queries)])
    truth = (truth_ids, truth_scores)
    print(f"ann: {n} vectors of {dim} dimensions, {len(queries)} queries; M={args.m}, "
          f"ef_construction={args.ef_construction}; builds on {args.threads} threads", file=sys.stderr)

    built = []
    files = (args.base, args.queries, args.ground_truth)
    for name in engines:
        print(f"building {name}...", file=sys.stderr)
        if name == "semdex":
            index_dir = os.path.join(args.work, "semdex-index")
            if not args.reuse:
                subprocess.run(["rm", "-rf", index_dir], check=True)
            built.append(Semdex(args, files, index_dir))
        elif name == "hnswlib":
            built.append(Hnswlib(args, base, os.path.join(args.work, "hnswlib.bin")))
        elif name == "faiss":
            built.append(Faiss(args, base, os.path.join(args.work, "faiss-hnswflat.bin"), False))
        elif name == "faiss-sq":
            built.append(Faiss(args, base, os.path.join(args.work, "faiss-hnswsq8.bin"), True))
        print(f"  {built[-1].name}: {built[-1].build_s} s", file=sys.stderr)

    best = {}
    semdex_open = []
    for rnd in range(args.rounds):
        for threads in sorted({1, args.threads}):
            for engine in built:
                print(f"round {rnd + 1}, {threads} thread(s): {engine.name}", file=sys.stderr)
                if isinstance(engine, Semdex):
                    rows, report = engine.rows(threads)
                    semdex_open.append(report.get("open_s"))
                else:
                    search, set_ef = engine.open(threads)
                    rows = sweep(search, set_ef, queries, efs, truth)
                    del search, set_ef
                key = (engine.name, threads)
                old = best.setdefault(key, {})
                for ef, row in rows.items():
                    if ef not in old:
                        old[ef] = row
                    else:  # the best round, by each measure
                        old[ef] = (row[0], max(old[ef][1], row[1]), max(old[ef][2], row[2]))

    names = [e.name for e in built]
    for threads in sorted({1, args.threads}):
        print(f"\nrecall@10 / queries per second by the clock (per CPU-second), {threads} search thread(s); "
              f"{n} vectors, {len(queries)} queries")
        print(f"{'engine':<16}{'build s':>9}" + "".join(f"{'ef ' + str(e):>24}" for e in efs))
        for e in built:
            rows = best[(e.name, threads)]
            build = f"{e.build_s:>9.1f}" if e.build_s is not None else f"{'reused':>9}"
            print(f"{e.name:<16}{build}" + "".join(
                f"{rows[ef][0]:>9.4f}/{rows[ef][1]:>6.0f} ({rows[ef][2]:>6.0f})" for ef in efs))
        for column, label in [(1, "by the clock"), (2, "per CPU-second")]:
            print(f"\nqueries/s at recall@10 >= target, {threads} thread(s), {label}")
            print(f"{'engine':<16}" + "".join(f"{t:>10}" for t in TARGETS))
            for name in names:
                cells = [at_recall(best[(name, threads)], t, column) for t in TARGETS]
                print(f"{name:<16}" + "".join(f"{c:>10.0f}" if c else f"{'-':>10}" for c in cells))
            if "semdex" in names:
                ours = best[("semdex", threads)]
                for peer in [x for x in names if x != "semdex"]:
                    theirs = best[(peer, threads)]
                    ratios = []
                    for t in TARGETS:
                        a, b = at_recall(ours, t, column), at_recall(theirs, t, column)
                        ratios.append(f"{t}: {a / b:.2f}x" if a and b else f"{t}: -")
                    print(f"semdex / {peer} at matched recall: " + ", ".join(ratios))
    print("\nbuild seconds on", args.threads, "threads:",
          ", ".join(f"{e.name} {e.build_s:.1f}" for e in built if e.build_s is not None))
    ours = next((e for e in built if e.name == "semdex"), None)
    if ours is not None and ours.build_s:
        for e in built:
            if e.name != "semdex" and e.build_s:
                print(f"semdex / {e.name} build speed: {e.build_s / ours.build_s:.2f}x")
        print("semdex index reopened in", ", ".join(f"{o:.2f} s" for o in semdex_open if o is not None))
    print("index memory (MiB; peers: the size of their saved index, which they load whole; "
          "semdex: its own count, the f32 copy it reads from disk not included (counted when small enough to be read onto the heap)):",
          ", ".join(f"{e.name} {e.memory_mb:.0f}" for e in built))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"vectors": n, "queries": len(queries), "build_s": {e.name: e.build_s for e in built},
                       "results": {f"{k[0]}@{k[1]}": {str(ef): v for ef, v in rows.items()} for k, rows in best.items()}},
                      f, indent=1)


if __name__ == "__main__":
    main()
