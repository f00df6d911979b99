#!/usr/bin/env python3
"""A RAG pipeline's sync workload against a running semdex: clients posting batches of documents
over a small set of ids, clients deleting those ids, one client searching, for a fixed time.
Prints the requests answered per second by kind, the statuses, the requests left unanswered,
and whether a single write afterwards is answered (issue 21: before the storage lock order, every
write hung within seconds).

    semdex serve --data-dir /tmp/storm &        # or with --database-url URL
    benches/storm/run.py --base http://127.0.0.1:8080 --seconds 40

Standard library only. Each request has a client timeout (--timeout); one that is not answered
within it counts as unanswered.
"""

import argparse
import json
import random
import threading
import time
import urllib.error
import urllib.request

WORDS = (
    "the summit took place at the cosmodrome where the two leaders discussed railway links "
    "energy projects satellites rockets and the exchange of delegations while officials "
    "described talks as open and warm and agreed to continue cooperation in space science "
    "agriculture education and trade"
).split()


def text(doc_id, version):
    rng = random.Random(f"{doc_id}/{version}")
    words = [rng.choice(WORDS) for _ in range(110)]
    return f"Document {doc_id}, version {version}. " + " ".join(words) + "."


def request(method, url, body, timeout):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except Exception:  # a timeout or a dropped connection: no answer
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("--collection", default="storm")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--ids", type=int, default=40)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--ingesters", type=int, default=2)
    ap.add_argument("--deleters", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    base = args.base.rstrip("/")
    coll = f"{base}/collections/{args.collection}"
    status = request("POST", f"{base}/collections",
                     {"name": args.collection, "chunk_tokens": 32, "chunk_overlap": 0}, args.timeout)
    if status not in (201, 409):
        raise SystemExit(f"cannot create collection {args.collection}: {status}")

    counts = {}
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    version = [0]

    def note(kind, code):
        with lock:
            counts.setdefault(kind, {}).setdefault(code, 0)
            counts[kind][code] += 1

    def ingester(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            docs = []
            for i in rng.sample(range(args.ids), args.batch):
                with lock:
                    version[0] += 1
                    v = version[0]
                docs.append({"id": f"doc-{i:02}", "text": text(f"doc-{i:02}", v)})
            note("ingest", request("POST", f"{coll}/documents", {"documents": docs}, args.timeout))

    def deleter(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            doc = f"doc-{rng.randrange(args.ids):02}"
            note("delete", request("DELETE", f"{coll}/documents/{doc}", None, args.timeout))

    def searcher():
        questions = ["Where did the leaders meet?", "railway links", "cosmodrome rockets"]
        n = 0
        while time.monotonic() < stop:
            n += 1
            note("search", request("POST", f"{coll}/search",
                                   {"query": questions[n % 3], "k": 10}, args.timeout))

    threads = [threading.Thread(target=ingester, args=(i,)) for i in range(args.ingesters)]
    threads += [threading.Thread(target=deleter, args=(100 + i,)) for i in range(args.deleters)]
    threads.append(threading.Thread(target=searcher))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    t0 = time.monotonic()
    after = request("POST", f"{coll}/documents",
                    {"id": "after", "text": text("after", 0)}, args.timeout)
    after_ms = (time.monotonic() - t0) * 1000

    report = {"seconds": round(elapsed, 1), "statuses": counts, "write_after": after,
              "write_after_ms": round(after_ms, 1)}
    for kind, codes in counts.items():
        answered = sum(n for code, n in codes.items() if code != 0)
        report[f"{kind}_per_s"] = round(answered / elapsed, 1)
        report[f"{kind}_unanswered"] = codes.get(0, 0)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{elapsed:.1f} s")
    for kind in ("ingest", "delete", "search"):
        codes = counts.get(kind, {})
        print(f"  {kind:7} {report.get(kind + '_per_s', 0):8.1f} answered/s   statuses {dict(sorted(codes.items()))}")
    print(f"  a write afterwards: status {after} in {after_ms:.0f} ms" if after
          else f"  a write afterwards: no answer within {args.timeout:.0f} s")


if __name__ == "__main__":
    main()
