"""semdex against its peers, measured in one run on the same texts and the same cores.

Sections:
  encode  semdex (f32 and int8) vs ONNX Runtime (f32 and int8, quantize_dynamic) vs
          sentence-transformers (PyTorch): tokens/s at several batch sizes and short-query p50,
          every engine in alternation (--repeat rounds), and agreement of the vectors (min/mean
          cosine of semdex f32 with sentence-transformers, of semdex int8 with semdex f32, of
          ORT int8 with sentence-transformers).
  ann     semdex's index vs hnswlib vs faiss (HNSWFlat and HNSWSQ8, same M / ef_construction) on
          the vectors of a semdex data directory, with the BEIR queries: recall@10 and queries/s
          at each ef, and at matched recall (benches/compare/ann.py, which also takes .fvecs).
  beir    sentence-transformers + exact search on a BEIR split, BM25 (bm25s, or rank_bm25) and
          their fusions (min-max convex 0.5/0.5 and RRF k=60), scored by pytrec_eval, beside
          semdex's own figures for its dense, lexical and hybrid retrievals; semdex's run files
          are scored by pytrec_eval too, to check semdex's metric code.

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


def semdex_encode(args, passages_file, precision="f32"):
    cmd = [args.semdex, "--model", args.model, "--threads", str(args.threads), "--precision", precision,
           "bench", "encode", "--input", passages_file, "--count", str(args.count), "--batch", args.batch,
           "--query-rounds", str(args.rounds), "--json"]
    if args.backend:
        cmd[1:1] = ["--backend", args.backend]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def semdex_vectors(args, texts, precision="f32"):
    out = subprocess.run([args.semdex, "--model", args.model, "--precision", precision, "embed"],
                         input="\n".join(texts) + "\n", check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines()]


def cosines(a, b):
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def encode_section(args):
    """Every engine measured in alternation, `--repeat` rounds: the shared machine's drift hits
    them alike. Each cell prints every round's tokens/s; ratios use each engine's best round."""
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

    ort_f32 = onnx_runtime(args, model, quantized=False)
    ort_int8 = onnx_runtime(args, model, quantized=True)

    def semdex_run(precision):
        def run():
            s = semdex_encode(args, passages_file, precision)
            return {r["batch"]: r["tokens_per_s"] for r in s["throughput"]}, s["short_query"]["p50_ms"], s
        return run

    def ort_run(ort):
        def run():
            rows = {}
            for b in batches:
                t = time.perf_counter()
                ort(passages, b)
                rows[b] = tokens / (time.perf_counter() - t)
            return rows, p50_ms(lambda x: ort([x], 1), SHORT_QUERIES, args.rounds), None
        return run

    def st_run():
        model.encode(passages[:8], batch_size=8)
        rows = {}
        for b in batches:
            t = time.perf_counter()
            model.encode(passages, batch_size=b, normalize_embeddings=True)
            rows[b] = tokens / (time.perf_counter() - t)
        return rows, p50_ms(lambda x: model.encode(x), SHORT_QUERIES, args.rounds), None

    engines = [("semdex f32", semdex_run("f32")), ("semdex int8", semdex_run("int8"))]
    if ort_f32 is not None:
        engines += [("onnxruntime f32", ort_run(ort_f32)), ("onnxruntime int8", ort_run(ort_int8))]
    rounds = {name: [] for name, _ in engines}
    kernels = {}
    for r in range(args.repeat):
        for name, run in engines:
            rows, p50, report = run()
            rounds[name].append((rows, p50))
            if report is not None:
                kernels[name] = report.get("kernels", "?")
            print(f"round {r + 1}: {name}: " + ", ".join(f"b{b} {rows[b]:.0f}" for b in batches)
                  + f", p50 {p50:.2f} ms", file=sys.stderr)
    if not args.skip_st:
        rounds["sentence-transformers"] = [st_run()]

    ours = np.array(semdex_vectors(args, passages[: args.agreement]), dtype=np.float32)
    ours_int8 = np.array(semdex_vectors(args, passages[: args.agreement], "int8"), dtype=np.float32)
    theirs = model.encode(passages[: args.agreement], normalize_embeddings=True)
    agreement = {"semdex f32 vs sentence-transformers": cosines(ours, theirs),
                 "semdex int8 vs semdex f32": cosines(ours_int8, ours)}
    if ort_int8 is not None:
        agreement["onnxruntime int8 vs sentence-transformers"] = cosines(ort_int8(passages[: args.agreement], 8), theirs)

    best = {name: {b: max(r[0][b] for r in rs) for b in batches} for name, rs in rounds.items()}
    p50 = {name: min(r[1] for r in rs) for name, rs in rounds.items()}
    top = {name: max(v.values()) for name, v in best.items()}
    print(f"\nencode: tokens/s ({len(passages)} passages, {source}, mean {tokens / len(passages):.0f} tokens, "
          f"{args.threads} threads, {args.repeat} rounds in alternation; semdex kernels: "
          f"{', '.join(f'{k} {v}' for k, v in kernels.items())})")
    print(f"| engine | " + " | ".join(f"batch {b}" for b in batches) + " | short query p50 |")
    print("| --- |" + " ---: |" * (len(batches) + 1))
    for name, rs in rounds.items():
        cells = [" / ".join(f"{r[0][b]:,.0f}" for r in rs) for b in batches]
        print(f"| {name} | " + " | ".join(cells) + " | " + " / ".join(f"{r[1]:.2f}" for r in rs) + " ms |")
    pairs = [("semdex f32", "onnxruntime f32"), ("semdex int8", "onnxruntime int8"),
             ("semdex int8", "semdex f32"), ("semdex f32", "sentence-transformers")]
    for a, b in pairs:
        if a in top and b in top:
            print(f"{a} / {b}: best batch {top[a] / top[b]:.2f}x, "
                  + ", ".join(f"batch {x} {best[a][x] / best[b][x]:.2f}x" for x in batches)
                  + f"; short-query p50 {p50[a]:.2f} ms vs {p50[b]:.2f} ms")
    for name, cos in agreement.items():
        print(f"{name} on {len(cos)} passages: min cosine {cos.min():.7f}, mean {cos.mean():.7f}")
    os.unlink(passages_file)
    return {"rounds": {n: [[r[0], r[1]] for r in rs] for n, rs in rounds.items()}, "kernels": kernels,
            "min_cosine": {n: float(c.min()) for n, c in agreement.items()}}


def onnx_runtime(args, st_model, quantized=False):
    """The same model exported with torch.onnx.export (opset 17), run by ONNX Runtime on sorted,
    padded batches; `quantized`: after onnxruntime.quantization.quantize_dynamic (int8 weights per
    channel, activations quantised at run time), as FACTS.md describes."""
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
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        qpath = os.path.join(tempfile.gettempdir(), "semdex-minilm-int8.onnx")
        if not os.path.exists(qpath):
            quantize_dynamic(path, qpath, weight_type=QuantType.QInt8, per_channel=True)
        path = qpath
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


def ann_section(args):
    """benches/compare/ann.py on the vectors of --data-dir and the BEIR queries (that script
    holds the comparison: semdex, hnswlib, faiss HNSWFlat and HNSWSQ8, same vectors, in turn)."""
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "ann.py"), "--semdex", args.semdex,
           "--model", args.model, "--data-dir", args.data_dir, "--scifact", args.scifact, "--m", str(args.m),
           "--ef-construction", str(args.ef_construction), "--ef", args.ef, "--threads", str(args.threads)]
    subprocess.run(cmd, check=True)
    return {}


# Lucene's English stop words, for the rank_bm25 fallback.
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split())


def bm25_peer(texts):
    """BM25 from a well-known Python implementation over `texts`, k1=0.9, b=0.4 (Anserini's
    defaults, which Pyserini's BEIR baselines use): bm25s (Lucene's BM25) with bm25s' English stop
    words and the Snowball stemmer (PyStemmer), or, without bm25s, rank_bm25's BM25Okapi on
    lowercased words less Lucene's stop words, stemmed by PyStemmer where installed. Returns
    (name, search): search(queries, k) gives each query's [(document index, score)], best first,
    documents with a positive score only."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        bm25s = None
    if bm25s is not None:
        stemmer = Stemmer.Stemmer("english")
        retriever = bm25s.BM25(k1=0.9, b=0.4)
        retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                        show_progress=False)

        def search(queries, k):
            tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
            docs, scores = retriever.retrieve(tokens, k=k, show_progress=False)
            return [[(int(d), float(s)) for d, s in zip(dr, sr) if s > 0] for dr, sr in zip(docs, scores)]

        return f"bm25s {bm25s.__version__}", search

    import re
    import numpy as np
    from rank_bm25 import BM25Okapi
    try:
        import Stemmer
        stem = Stemmer.Stemmer("english").stemWords
    except ImportError:
        stem = lambda words: [re.sub(r"(ing|ed|es|s)$", "", w) if len(w) > 4 else w for w in words]

    def tokenize(text):
        return stem([w for w in re.findall(r"\w\w+", text.lower()) if w not in ENGLISH_STOP_WORDS])

    index = BM25Okapi([tokenize(t) for t in texts], k1=0.9, b=0.4)

    def search(queries, k):
        out = []
        for q in queries:
            scores = index.get_scores(tokenize(q))
            top = np.argsort(-scores)[:k]
            out.append([(int(j), float(scores[j])) for j in top if scores[j] > 0])
        return out

    return "rank_bm25 BM25Okapi", search


def min_max(ranked):
    """{doc: score} scaled to 0..1 over the list (every score 1 when they are all equal)."""
    if not ranked:
        return {}
    lo, hi = min(ranked.values()), max(ranked.values())
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in ranked.items()}


def top(scores, k):
    """The k best of {doc: score}, as a dict."""
    return dict(sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k])


def convex_fusion(dense, lexical, dense_weight=0.5, k=100):
    """Min-max normalised convex combination of two runs ({qid: {doc: score}}, each a query's
    top-k); a document missing from one list scores 0 there after normalisation."""
    fused = {}
    for qid in set(dense) | set(lexical):
        d, l = min_max(dense.get(qid, {})), min_max(lexical.get(qid, {}))
        fused[qid] = top({doc: dense_weight * d.get(doc, 0.0) + (1 - dense_weight) * l.get(doc, 0.0)
                          for doc in set(d) | set(l)}, k)
    return fused


def rrf_fusion(runs, k_rrf=60, k=100):
    """Reciprocal rank fusion of runs ({qid: {doc: score}}): sum of 1 / (k_rrf + rank), rank from 1."""
    fused = {}
    for run in runs:
        for qid, ranked in run.items():
            acc = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(sorted(ranked.items(), key=lambda x: (-x[1], x[0])), 1):
                acc[doc] = acc.get(doc, 0.0) + 1.0 / (k_rrf + rank)
    return {qid: top(scores, k) for qid, scores in fused.items()}


def read_run(path):
    """A TREC run file as {qid: {doc: score}}."""
    r = {}
    for line in open(path):
        qid, _, doc, _, score, _ = line.split()
        r.setdefault(qid, {})[doc] = float(score)
    return r


def read_qrels(path):
    """A BEIR qrels TSV (header optional) as {qid: {doc: relevance}}."""
    qrels = {}
    with open(path) as f:
        for i, line in enumerate(f):
            parts = line.strip().split("\t")
            if i == 0 and parts[0] == "query-id":
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def trec_top(ranked, k):
    """A query's k first documents in trec_eval's order (score descending, then document id
    descending), so that recip_rank on them is MRR@k."""
    return dict(sorted(ranked.items(), key=lambda x: (x[1], x[0]), reverse=True)[:k])


BEIR_KEYS = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"]


def beir_section(args):
    """Scores sentence-transformers + exact search (numpy), BM25 from a Python peer, their fusions
    (min-max convex 0.5/0.5 and RRF k=60 over each query's top 100) and semdex's runs with
    pytrec_eval, for each split of --split (comma-separated); the corpus is encoded once."""
    import numpy as np
    import pytrec_eval
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    corpus = [json.loads(l) for l in open(os.path.join(args.scifact, "corpus.jsonl")) if l.strip()]
    doc_ids = [str(d["_id"]) for d in corpus]
    queries = {str(d["_id"]): d["text"] for d in map(json.loads, open(os.path.join(args.scifact, "queries.jsonl")))}
    model = SentenceTransformer(args.model, device="cpu")
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]
    t = time.perf_counter()
    docs = model.encode(texts, batch_size=32, normalize_embeddings=True).astype(np.float32)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    bm25_name, bm25_search = bm25_peer(texts)
    bm25_index_s = time.perf_counter() - t
    print(f"beir: sentence-transformers encoded {len(texts)} documents in {encode_s:.0f} s, "
          f"{bm25_name} indexed them in {bm25_index_s:.1f} s", file=sys.stderr)
    measures = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100", "recip_rank"}

    results = {}
    for split in args.split.split(","):
        qrels = read_qrels(os.path.join(args.scifact, "qrels", f"{split}.tsv"))
        qids = sorted(q for q in qrels if q in queries)
        qv = model.encode([queries[q] for q in qids], normalize_embeddings=True).astype(np.float32)
        scores = qv @ docs.T
        dense = {}
        for i, qid in enumerate(qids):
            best = np.argsort(-scores[i])[:100]
            dense[qid] = {doc_ids[j]: float(scores[i, j]) for j in best}
        t = time.perf_counter()
        lexical = {qid: {doc_ids[j]: s for j, s in hits}
                   for qid, hits in zip(qids, bm25_search([queries[q] for q in qids], 100))}
        bm25_qps = len(qids) / (time.perf_counter() - t)
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures)

        def summarize(r):
            r = {q: ranked for q, ranked in r.items() if ranked}
            per = evaluator.evaluate(r)
            mrr = evaluator.evaluate({q: trec_top(ranked, 10) for q, ranked in r.items()})
            # trec_eval's convention: a query of the qrels with no document in the run counts 0.
            mean = lambda p, key: sum(p[q][key] for q in p) / len(qids)
            return {"ndcg@10": mean(per, "ndcg_cut_10"), "mrr@10": mean(mrr, "recip_rank"),
                    "recall@10": mean(per, "recall_10"), "recall@100": mean(per, "recall_100"),
                    "map@100": mean(per, "map_cut_100")}

        st = summarize(dense)
        peer = summarize(lexical)
        rows = {"sentence-transformers + exact": st,
                f"BM25 ({bm25_name.split()[0]})": peer,
                "ST + BM25, convex 0.5 (min-max)": summarize(convex_fusion(dense, lexical, 0.5, 100)),
                "ST + BM25, RRF k=60": summarize(rrf_fusion([dense, lexical], 60, 100))}
        peer_rows = list(rows)
        runs_dir = tempfile.mkdtemp(prefix="semdex-runs-")
        cmd = [args.semdex, "--model", args.model, "--threads", str(args.threads), "bench", "beir",
               "--dataset", args.scifact, "--split", split, "--json", "--runs-out", runs_dir]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        s = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        # Every retrieval semdex scored (dense, dense_exact, lexical, hybrid, hybrid_rrf, ...), one run file each.
        ours = {name: m for name, m in s.items() if isinstance(m, dict) and "ndcg@10" in m}
        check = {}
        for name, m in ours.items():
            rows[f"semdex {name}"] = {k: m.get(k, float("nan")) for k in BEIR_KEYS}
            run_file = os.path.join(runs_dir, f"{name}.run")
            if os.path.exists(run_file):
                check[name] = summarize(read_run(run_file))
        exact = "dense_exact" if "dense_exact" in check else next(iter(check), None)
        if exact:
            rows[f"pytrec_eval on semdex {exact}.run"] = check[exact]
        print(f"\nbeir: {os.path.basename(os.path.normpath(args.scifact))} {split} split, {len(qids)} queries "
              f"(sentence-transformers encoded the corpus in {encode_s:.0f} s; {bm25_name}, k1=0.9 b=0.4, "
              f"{bm25_qps:.0f} queries/s; every peer row scored by pytrec_eval)")
        print(f"{'':<40}{'nDCG@10':>9}{'MRR@10':>9}{'Recall@10':>11}{'Recall@100':>12}{'MAP@100':>9}")
        for name, m in rows.items():
            print(f"{name:<40}{m['ndcg@10']:>9.4f}{m['mrr@10']:>9.4f}{m['recall@10']:>11.4f}"
                  f"{m['recall@100']:>12.4f}{m['map@100']:>9.4f}")
            if name == peer_rows[-1]:
                print("-" * 90)
        if check:
            worst = max((abs(check[n][k] - ours[n][k]), n, k) for n in check for k in BEIR_KEYS if k in ours[n])
            print(f"pytrec_eval on semdex's {len(check)} run files vs semdex's own metrics: "
                  f"largest difference {worst[0]:.2g} ({worst[1]} {worst[2]})")
        # semdex's hybrid run uses its default fusion, convex, unless a hybrid_convex run says otherwise.
        hybrid_peer = peer_rows[3] if "hybrid_convex" in ours else peer_rows[2]
        pairs = [("dense_exact", peer_rows[0]), ("lexical", peer_rows[1]), ("hybrid", hybrid_peer),
                 ("hybrid_convex", peer_rows[2]), ("hybrid_rrf", peer_rows[3])]
        for ours_name, peer_name in pairs:
            if ours_name in ours:
                a, b = ours[ours_name], rows[peer_name]
                print(f"semdex {ours_name} - {peer_name}: nDCG@10 {a['ndcg@10'] - b['ndcg@10']:+.4f}, "
                      f"Recall@100 {a['recall@100'] - b['recall@100']:+.4f}")
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
    p.add_argument("--repeat", type=int, default=2, help="encode: rounds of every engine, in alternation")
    p.add_argument("--skip-st", action="store_true", help="encode: leave out sentence-transformers (slow)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-dir", default="data/beir-scifact-whole",
                   help="semdex data directory for the ann and beir sections (bench beir reuses it when it was made "
                        "from the same corpus and settings, else ingests into it)")
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
