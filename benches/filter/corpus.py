#!/usr/bin/env python3
"""The corpus of `semdex bench filter`, as JSON lines on stdout.

BEIR SciFact's abstracts with the ids and texts (`title + " " + text`) that `semdex bench beir`
stores, so that ingesting these lines over a copy of its chunked data directory only adds
metadata and re-embeds nothing, followed by the distinct sentences of the STS Benchmark test
set (short passages, embedded on ingest) to pass 20,000 passages. Every document gets a
`bucket` in 0..999, round robin, so that `bucket < 100` admits about 10 % of the passages.

usage: corpus.py SCIFACT_DIR STSB_TEST_CSV > corpus.jsonl
"""

import json
import sys


def main(scifact, stsb):
    docs = []
    with open(f"{scifact}/corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = f"{d.get('title', '')} {d.get('text', '')}".strip()
            if text:
                docs.append((str(d["_id"]), text))
    seen = set()
    with open(stsb, encoding="utf-8") as f:
        for line in f:
            for sentence in line.rstrip("\n").split("\t")[5:7]:
                sentence = sentence.strip()
                if sentence and sentence not in seen:
                    seen.add(sentence)
                    docs.append((f"stsb-{len(seen)}", sentence))
    for i, (doc_id, text) in enumerate(docs):
        row = {"id": doc_id, "text": text, "metadata": {"bucket": i % 1000}}
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:3])
