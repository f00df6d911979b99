"""A million-passage corpus from the real passages of semdex data directories, filled with
perturbed copies of their vectors: the vector files of the 10^6 ANN benchmark, and a data
directory that `semdex serve` opens (for its start time, memory and /search latency).

    python3 benches/compare/ann_fill.py --real DATA_DIR [--real DATA_DIR...] --total 1000000 \\
        --queries-from-beir SCIFACT --semdex target/release/semdex --out /work/cache/ann/1m

Writes OUT/base.fvecs (every vector, in the new store's chunk order), OUT/queries.fvecs (real
queries: the BEIR queries embedded by `semdex embed`, and real passages held out of the
corpus), OUT/truth.ivecs (each query's exact top 100 by dot product) and, with --store, the
data directory OUT/data: the real documents copied as they are (their passages, vectors and
token vectors), then documents for the filler vectors that repeat the text of the passage they
were derived from and carry no token vectors (an empty matrix: late interaction gives them no
score), so that the store is not 10^6 × 15 KB of copied token vectors.

A filler vector is v' = normalise(v_s + s · (v_a − v_b)) for a real source passage s and two
other random real passages a and b: noise drawn from the data's own spread (MiniLM's
embeddings occupy a narrow cone; isotropic noise would leave it), s chosen so that v' keeps a
cosine of about 0.85 with its source. The script prints how many vectors are real.
"""

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np

EMPTY_TOKENS = bytes([1]) + (384).to_bytes(2, "little") + (0).to_bytes(4, "little")


def write_vecs(path, x):
    n, d = x.shape
    np.hstack([np.full((n, 1), d, dtype=np.int32).view(x.dtype), x]).tofile(path)


def db(data_dir):
    return os.path.join(data_dir, "semdex.sqlite3")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", action="append", required=True, help="a semdex data directory of real passages")
    p.add_argument("--total", type=int, default=1_000_000)
    p.add_argument("--held-out", type=int, default=500, help="real passages kept out of the corpus as queries")
    p.add_argument("--queries-from-beir", help="a BEIR folder whose queries.jsonl are embedded as queries")
    p.add_argument("--beir-queries", type=int, default=500)
    p.add_argument("--semdex", default="target/release/semdex")
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--scale", type=float, default=0.45, help="s: the filler noise's scale")
    p.add_argument("--store", action="store_true", help="also write the data directory OUT/data")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=25)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)

    # Every real passage: (source directory, chunk id, vector).
    sources, vectors = [], []
    for data_dir in args.real:
        con = sqlite3.connect(f"file:{db(data_dir)}?mode=ro", uri=True)
        rows = con.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
        sources.extend((data_dir, r[0]) for r in rows)
        vectors.append(np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]))
        print(f"{data_dir}: {len(rows)} real passages", file=sys.stderr)
    real = np.concatenate(vectors).astype(np.float32)
    order = rng.permutation(len(real))
    held = np.sort(order[: args.held_out])
    kept = np.sort(order[args.held_out:])
    queries = [real[held]]
    if args.queries_from_beir:
        with open(os.path.join(args.queries_from_beir, "queries.jsonl")) as f:
            texts = [json.loads(l)["text"] for l in f if l.strip()][: args.beir_queries]
        out = subprocess.run([args.semdex, "--model", args.model, "embed"], input="\n".join(texts) + "\n",
                             check=True, capture_output=True, text=True).stdout
        queries.append(np.array([json.loads(l) for l in out.splitlines()], dtype=np.float32))
    queries = np.concatenate(queries)

    base_real = real[kept]
    fill = args.total - len(base_real)
    print(f"{len(base_real)} real vectors in the corpus, {len(held)} held out as queries, "
          f"{fill} filler vectors; {len(queries)} queries", file=sys.stderr)
    src = rng.integers(0, len(base_real), fill)
    a = rng.integers(0, len(base_real), fill)
    b = rng.integers(0, len(base_real), fill)
    filler = np.empty((fill, real.shape[1]), dtype=np.float32)
    step = 100_000
    for s in range(0, fill, step):
        e = min(s + step, fill)
        v = base_real[src[s:e]] + args.scale * (base_real[a[s:e]] - base_real[b[s:e]])
        filler[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos = (filler[: 20000] * base_real[src[: 20000]]).sum(1)
    print(f"filler cosine to its source: mean {cos.mean():.3f}, 5% {np.percentile(cos, 5):.3f}, "
          f"95% {np.percentile(cos, 95):.3f}", file=sys.stderr)
    base = np.concatenate([base_real, filler])
    write_vecs(os.path.join(args.out, "base.fvecs"), base)
    write_vecs(os.path.join(args.out, "queries.fvecs"), queries)

    t = time.time()
    truth = np.empty((len(queries), 100), dtype=np.int32)
    for s in range(0, len(queries), 100):
        scores = queries[s : s + 100] @ base.T
        top = np.argpartition(-scores, 100, axis=1)[:, :100]
        part = np.take_along_axis(scores, top, axis=1)
        truth[s : s + 100] = np.take_along_axis(top, np.argsort(-part, axis=1, kind="stable"), axis=1)
    write_vecs(os.path.join(args.out, "truth.ivecs"), truth)
    print(f"ground truth in {time.time() - t:.0f} s", file=sys.stderr)
    with open(os.path.join(args.out, "README.txt"), "w") as f:
        f.write(f"{len(base)} vectors: {len(base_real)} real MiniLM embeddings of real passages "
                f"({', '.join(args.real)}), {fill} perturbed copies (scale {args.scale}); "
                f"{len(queries)} real queries ({len(held)} held-out passages, {len(queries) - len(held)} "
                f"BEIR queries); truth.ivecs: exact top 100.\n")

    if not args.store:
        return
    # The data directory: real documents copied whole, then one filler document per vector.
    out_dir = os.path.join(args.out, "data")
    os.makedirs(out_dir, exist_ok=True)
    path = db(out_dir)
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["cp", db(args.real[0]), path], check=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    # Start from the first directory's schema and meta (model identity), with no rows.
    con.execute("DELETE FROM token_vectors")
    con.execute("DELETE FROM chunks")
    con.execute("DELETE FROM documents")
    con.commit()
    kept_set = set(kept.tolist())
    position_of = {source: p for p, source in enumerate(sources)}
    text_at = {}
    copied = 0
    for n, data_dir in enumerate(args.real):
        con.execute(f"ATTACH DATABASE 'file:{db(data_dir)}?mode=ro' AS src{n}")
        docs = con.execute(f"SELECT row, id, source, text, metadata, content_hash, ingested_at, title "
                           f"FROM src{n}.documents").fetchall()
        for doc in docs:
            chunks = con.execute(f"SELECT id, idx, start, end, text, embedding FROM src{n}.chunks "
                                 "WHERE doc_row = ? ORDER BY idx", (doc[0],)).fetchall()
            positions = [position_of[(data_dir, c[0])] for c in chunks]
            for p, c in zip(positions, chunks):
                text_at[p] = c[4]
            if not all(p in kept_set for p in positions):
                continue  # a held-out passage's document stays out of the corpus
            cur = con.execute("INSERT INTO documents (id, source, text, metadata, content_hash, ingested_at, title) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (f"r{n}-{doc[1]}",) + tuple(doc[2:]))
            row = cur.lastrowid
            for (cid, idx, start, end, text, emb) in chunks:
                c = con.execute("INSERT INTO chunks (doc_row, idx, start, end, text, embedding) VALUES (?, ?, ?, ?, ?, ?)",
                                (row, idx, start, end, text, emb))
                con.execute(f"INSERT INTO token_vectors (chunk_id, data) SELECT ?, data FROM src{n}.token_vectors "
                            "WHERE chunk_id = ?", (c.lastrowid, cid))
                copied += 1
        con.commit()
    print(f"copied {copied} real passages", file=sys.stderr)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    for s in range(0, fill, 20_000):
        for j in range(s, min(s + 20_000, fill)):
            text = text_at[int(kept[src[j]])]
            cur = con.execute("INSERT INTO documents (id, source, text, metadata, content_hash, ingested_at) "
                              "VALUES (?, 'filler', ?, ?, ?, ?)",
                              (f"fill-{j}", text, json.dumps({"filler": True}),
                               hashlib.sha256(f"fill-{j}".encode()).hexdigest(), now))
            c = con.execute("INSERT INTO chunks (doc_row, idx, start, end, text, embedding) VALUES (?, 0, 0, ?, ?, ?)",
                            (cur.lastrowid, len(text.encode()), text, filler[j].astype("<f4").tobytes()))
            con.execute("INSERT INTO token_vectors (chunk_id, data) VALUES (?, ?)", (c.lastrowid, EMPTY_TOKENS))
        con.commit()
        print(f"  {min(s + 20_000, fill)} / {fill} filler documents", file=sys.stderr)
    con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    con.commit()
    # Only this database: the attached sources are read-only, and checkpointing them fails.
    con.execute("PRAGMA main.wal_checkpoint(TRUNCATE)")
    con.close()
    print(f"wrote {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
