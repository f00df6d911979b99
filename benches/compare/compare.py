"""semdex against its peers, measured in one run on the same texts and the same cores.

Sections:
  encode  semdex vs sentence-transformers (PyTorch) vs ONNX Runtime: passages/s and tokens/s
          at several batch sizes, short-query p50, and agreement of semdex's vectors with
          sentence-transformers' (min/mean cosine).

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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("section", nargs="?", default="encode", choices=["encode"])
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
    args = p.parse_args()
    result = {}
    if args.section in ("encode",):
        result["encode"] = encode_section(args)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
