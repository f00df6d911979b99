"""semdex against its peers, measured in one run on the same texts and the same cores.

Sections:
  encode  semdex vs sentence-transformers (PyTorch) vs ONNX Runtime: passages/s and tokens/s
          at several batch sizes, short-query p50, and agreement of semdex's vectors with
          sentence-transformers' (min/mean cosine).
  ann     semdex's HNSW vs hnswlib vs faiss (HNSW, same M / ef_construction) on the vectors of
          a semdex data directory, with the BEIR queries: recall@10 and queries/s at each ef.
  beir    sentence-transformers + exact search on a BEIR split, scored by pytrec_eval, beside
          semdex's own figures; semdex's run files are scored by pytrec_eval too, to check
          semdex's metric code.

Run through run.sh, which makes the venv; every peer uses the same thread count.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHORT_QUERIES = [
    "Who invited Putin to visit North Korea?",
    "Where was the summit held?",
    "what weapons did russia want",
    "When did Kim leave for Vladivostok?",
    "How long since their last summit?",
    "Which factories will Kim visit?",
    "What did the US say about arms?",
    "Is a return visit planned?",
]


def load_passages(args):
    """SciFact abstracts (title + text), the BEIR convention, or windows of the seed article."""
    corpus = os.path.join(args.scifact, "corpus.jsonl")
    texts = []
    if os.path.exists(corpus):
        with open(corpus) as f:
            for line in f:
                d = json.loads(line)
                texts.append((d.get("title", "") + " " + d.get("text", "")).strip())
                if len(texts) >= args.count:
                    break
        return texts, f"first {len(texts)} SciFact abstracts"
    seed = open(os.path.join(os.path.dirname(args.semdex), "../../seeds/putin-kim-summit.txt")).read()
    words = seed.split()
    for i in range(args.count):
        start = (i * 7919) % len(words)
        texts.append(" ".join((words * 2)[start : start + 150]))
    return texts, f"{len(texts)} windows of the seed article"


def p50_ms(fn, queries, rounds):
    samples = []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            fn(q)
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def semdex_encode(args, passages_file):
    cmd = [args.semdex, "--model", args.model, "--threads", str(args.threads), "bench", "encode",
           "--input", passages_file, "--count", str(args.count), "--batch", args.batch,
           "--query-rounds", str(args.rounds), "--json"]
    if args.backend:
        cmd[1:1] = ["--backend", args.backend]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def semdex_vectors(args, texts):
    out = subprocess.run([args.semdex, "--model", args.model, "embed"], input="\n".join(texts) + "\n",
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines()]


def encode_section(args):
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    passages, source = load_passages(args)
    passages = [p.replace("\n", " ") for p in passages]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(passages) + "\n")
        passages_file = f.name
    batches = [int(b) for b in args.batch.split(",")]

    model = SentenceTransformer(args.model, device="cpu")
    tok = model.tokenizer
    lengths = [len(x) for x in tok(passages, truncation=True, max_length=model.max_seq_length)["input_ids"]]
    tokens = sum(lengths)
    print(f"texts: {source}, mean {tokens / len(passages):.0f} tokens; {args.threads} threads", file=sys.stderr)

    rows = {}
    # semdex first, then the peers, all in this one run.
    s = semdex_encode(args, passages_file)
    rows["semdex"] = {r["batch"]: r["tokens_per_s"] for r in s["throughput"]}
    q = {"semdex": s["short_query"]["p50_ms"]}

    model.encode(passages[:8], batch_size=8)
    rows["sentence-transformers"] = {}
    for b in batches:
        t = time.perf_counter()
        model.encode(passages, batch_size=b, normalize_embeddings=True)
        rows["sentence-transformers"][b] = tokens / (time.perf_counter() - t)
    q["sentence-transformers"] = p50_ms(lambda x: model.encode(x), SHORT_QUERIES, args.rounds)

    ort = onnx_runtime(args, model)
    if ort is not None:
        rows["onnxruntime"] = {}
        for b in batches:
            t = time.perf_counter()
            ort(passages, b)
            rows["onnxruntime"][b] = tokens / (time.perf_counter() - t)
        q["onnxruntime"] = p50_ms(lambda x: ort([x], 1), SHORT_QUERIES, args.rounds)

    ours = np.array(semdex_vectors(args, passages[: args.agreement]), dtype=np.float32)
    theirs = model.encode(passages[: args.agreement], normalize_embeddings=True)
    cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))

    print(f"\nencode: tokens/s ({len(passages)} passages, {source}, mean {tokens / len(passages):.0f} tokens)")
    print(f"{'engine':<24}" + "".join(f"{'batch ' + str(b):>12}" for b in batches) + f"{'query p50 ms':>14}")
    for name, r in rows.items():
        print(f"{name:<24}" + "".join(f"{r[b]:>12.0f}" for b in batches) + f"{q[name]:>14.2f}")
    best = {name: max(r.values()) for name, r in rows.items()}
    for peer in rows:
        if peer != "semdex":
            print(f"semdex / {peer}: best batch {best['semdex'] / best[peer]:.2f}x, "
                  + ", ".join(f"batch {b} {rows['semdex'][b] / rows[peer][b]:.2f}x" for b in batches)
                  + f"; short-query p50 {q['semdex']:.2f} ms vs {q[peer]:.2f} ms")
    print(f"agreement with sentence-transformers on {len(cos)} passages: min cosine {cos.min():.7f}, mean {cos.mean():.7f}")
    os.unlink(passages_file)
    return {"rows": rows, "query_p50_ms": q, "min_cosine": float(cos.min())}


def onnx_runtime(args, st_model):
    """The same model exported with torch.onnx.export, run by ONNX Runtime on sorted, padded batches."""
    try:
        import numpy as np
        import onnxruntime as ortlib
        import torch
    except ImportError:
        print("onnxruntime not installed: skipping that peer", file=sys.stderr)
        return None
    path = os.path.join(tempfile.gettempdir(), "semdex-minilm.onnx")
    if not os.path.exists(path):
        bert = st_model[0].auto_model.eval()

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        ids = torch.ones(2, 16, dtype=torch.long)
        with torch.no_grad():
            torch.onnx.export(Wrapped(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), path,
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "b", 1: "s"} for n in
                                            ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]})
    opts = ortlib.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    session = ortlib.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    tok = st_model.tokenizer

    def encode(texts, batch):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=256, return_tensors="np")
            feed = {k: enc[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
            h = session.run(None, feed)[0]
            m = feed["attention_mask"][..., None].astype(np.float32)
            v = (h * m).sum(1) / m.sum(1)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            for j, i in enumerate(idx):
                out[i] = v[j]
        return out

    return encode


def load_store_vectors(data_dir):
    import sqlite3
    import numpy as np
    con = sqlite3.connect(f"file:{os.path.join(data_dir, 'semdex.sqlite3')}?mode=ro", uri=True)
    rows = con.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vecs = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
    return ids, vecs


def query_texts(args):
    with open(os.path.join(args.scifact, "queries.jsonl")) as f:
        return [json.loads(l)["text"] for l in f if l.strip()]


def tie_recall(found_scores, found_ids, true_ids, true_scores, k):
    total = 0.0
    for fi, fs, ti, ts in zip(found_ids, found_scores, true_ids, true_scores):
        top = set(ti[:k].tolist())
        floor = ts[k - 1] - 1e-6
        total += sum(1 for i, s in zip(fi[:k], fs[:k]) if i in top or s >= floor) / k
    return total / len(found_ids)


def ann_section(args):
    import numpy as np
    import hnswlib
    import faiss
    from sentence_transformers import SentenceTransformer

    ids, base = load_store_vectors(args.data_dir)
    texts = query_texts(args)
    queries_file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    queries_file.write("\n".join(t.replace("\n", " ") for t in texts) + "\n")
    queries_file.close()
    model = SentenceTransformer(args.model, device="cpu")
    q = model.encode(texts, normalize_embeddings=True).astype(np.float32)
    efs = [int(e) for e in args.ef.split(",")]
    n, dim = base.shape
    print(f"\nann: {n} vectors of {args.data_dir}, {len(q)} queries, M={args.m}, ef_construction={args.ef_construction}", file=sys.stderr)

    scores = q @ base.T
    order = np.argsort(-scores, axis=1)[:, :10]
    true_ids = ids[order]
    true_scores = np.take_along_axis(scores, order, axis=1)
    results = {}

    out = subprocess.run([args.semdex, "--model", args.model, "bench", "ann", "--data-dir", args.data_dir,
                          "--queries", queries_file.name, "--m", str(args.m), "--ef-construction",
                          str(args.ef_construction), "--ef", args.ef, "--json"],
                         check=True, capture_output=True, text=True).stdout
    s = json.loads(out)
    results["semdex (hnsw_rs)"] = {"build": s["build_seconds"], "rows": {r["ef"]: (r["recall@10"], r["qps"]) for r in s["rows"]}}
    os.unlink(queries_file.name)

    threads = args.threads
    index = hnswlib.Index(space="ip", dim=dim)
    t = time.perf_counter()
    index.init_index(max_elements=n, ef_construction=args.ef_construction, M=args.m)
    index.set_num_threads(threads)
    index.add_items(base, ids)
    build = time.perf_counter() - t
    index.set_num_threads(1)
    rows = {}
    for ef in efs:
        index.set_ef(max(ef, 10))
        t = time.perf_counter()
        labels, dists = index.knn_query(q, k=10)
        qps = len(q) / (time.perf_counter() - t)
        rows[ef] = (tie_recall(1 - dists, labels, true_ids, true_scores, 10), qps)
    results["hnswlib"] = {"build": build, "rows": rows}

    faiss.omp_set_num_threads(threads)
    findex = faiss.IndexHNSWFlat(dim, args.m, faiss.METRIC_INNER_PRODUCT)
    findex.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    findex.add(base)
    build = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    rows = {}
    for ef in efs:
        findex.hnsw.efSearch = max(ef, 10)
        t = time.perf_counter()
        sims, pos = findex.search(q, 10)
        qps = len(q) / (time.perf_counter() - t)
        rows[ef] = (tie_recall(sims, ids[pos], true_ids, true_scores, 10), qps)
    results["faiss HNSWFlat"] = {"build": build, "rows": rows}

    print(f"\nann: recall@10 / queries per second (one thread) at each ef; {n} vectors, {len(q)} queries")
    print(f"{'engine':<20}{'build s':>9}" + "".join(f"{'ef ' + str(e):>16}" for e in efs))
    for name, r in results.items():
        print(f"{name:<20}{r['build']:>9.1f}" + "".join(f"{r['rows'][e][0]:>8.4f}/{r['rows'][e][1]:<7.0f}" for e in efs))
    ours = results["semdex (hnsw_rs)"]["rows"]
    for peer in ["hnswlib", "faiss HNSWFlat"]:
        theirs = results[peer]["rows"]
        print(f"semdex / {peer} queries/s at matched ef: "
              + ", ".join(f"ef {e} {ours[e][1] / theirs[e][1]:.2f}x (recall {ours[e][0] - theirs[e][0]:+.4f})" for e in efs))
    return results


def beir_section(args):
    """Scores sentence-transformers + exact search (numpy) and semdex's runs with pytrec_eval,
    for each split of --split (comma-separated); the corpus is encoded once."""
    import numpy as np
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    corpus = [json.loads(l) for l in open(os.path.join(args.scifact, "corpus.jsonl")) if l.strip()]
    queries = {str(d["_id"]): d["text"] for d in map(json.loads, open(os.path.join(args.scifact, "queries.jsonl")))}
    model = SentenceTransformer(args.model, device="cpu")
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]
    t = time.perf_counter()
    docs = model.encode(texts, batch_size=32, normalize_embeddings=True).astype(np.float32)
    encode_s = time.perf_counter() - t
    measures = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100", "recip_rank"}
    keys = ["ndcg@10", "recall@10", "recall@100", "map@100"]

    def read_run(path):
        r = {}
        for line in open(path):
            qid, _, doc, _, score, _ = line.split()
            r.setdefault(qid, {})[doc] = float(score)
        return r

    results = {}
    for split in args.split.split(","):
        qrels = {}
        with open(os.path.join(args.scifact, "qrels", f"{split}.tsv")) as f:
            for i, line in enumerate(f):
                parts = line.strip().split("\t")
                if i == 0 and parts[0] == "query-id":
                    continue
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
        qids = sorted(q for q in qrels if q in queries)
        qv = model.encode([queries[q] for q in qids], normalize_embeddings=True).astype(np.float32)
        scores = qv @ docs.T
        run = {}
        for i, qid in enumerate(qids):
            top = np.argsort(-scores[i])[:100]
            run[qid] = {str(corpus[j]["_id"]): float(scores[i, j]) for j in top}
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures)

        def summarize(r):
            per = evaluator.evaluate(r)
            mean = lambda key: sum(v[key] for v in per.values()) / len(per)
            return {"ndcg@10": mean("ndcg_cut_10"), "recall@10": mean("recall_10"),
                    "recall@100": mean("recall_100"), "map@100": mean("map_cut_100")}

        st = summarize(run)
        rows = {"sentence-transformers + exact": st}
        runs_dir = tempfile.mkdtemp(prefix="semdex-runs-")
        out = subprocess.run([args.semdex, "--model", args.model, "bench", "beir", "--dataset", args.scifact,
                              "--split", split, "--json", "--runs-out", runs_dir],
                             check=True, capture_output=True, text=True).stdout
        s = json.loads(out)
        rows["semdex exact"] = {k: s["exact"][k] for k in keys}
        rows["semdex hnsw"] = {k: s["hnsw"][k] for k in keys}
        rows["pytrec_eval on semdex exact.run"] = summarize(read_run(os.path.join(runs_dir, "exact.run")))
        print(f"\nbeir: {os.path.basename(os.path.normpath(args.scifact))} {split} split, {len(qids)} queries "
              f"(sentence-transformers encoded the corpus in {encode_s:.0f} s)")
        print(f"{'':<34}{'nDCG@10':>9}{'Recall@10':>11}{'Recall@100':>12}{'MAP@100':>9}")
        for name, m in rows.items():
            print(f"{name:<34}{m['ndcg@10']:>9.4f}{m['recall@10']:>11.4f}{m['recall@100']:>12.4f}{m['map@100']:>9.4f}")
        print(f"semdex exact - sentence-transformers: nDCG@10 {rows['semdex exact']['ndcg@10'] - st['ndcg@10']:+.4f}")
        results[split] = rows
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("section", nargs="?", default="all", choices=["all", "encode", "ann", "beir"])
    p.add_argument("--semdex", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--backend", default=None, help="semdex backend (packed or candle)")
    p.add_argument("--scifact", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/scifact"))
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--agreement", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-dir", default="data/beir-scifact-whole", help="semdex data directory for the ann section")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", default="16,32,64,128,256")
    p.add_argument("--split", default="test,train", help="BEIR splits for the beir section, comma-separated")
    args = p.parse_args()
    result = {}
    if args.section in ("all", "encode"):
        result["encode"] = encode_section(args)
    if args.section in ("all", "beir"):
        result["beir"] = beir_section(args)
    if args.section in ("all", "ann"):
        result["ann"] = ann_section(args)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
