#!/usr/bin/env bash
# The PostgreSQL backend beside the embedded one, in the same run, on BEIR SciFact.
#
#   benches/postgres/run.sh SCIFACT_DIR        (e.g. ../shared/data/scifact)
#
# Starts a throwaway PostgreSQL 18 + pgvector (tests/pg/server.sh, fsync on) and measures, for
# each backend:
#   quality  `semdex bench beir` on the test split, whole documents and chunked: nDCG@10 per
#            mode, and the dense HNSW top 10's recall against exact dense search (from the
#            TREC run files);
#   ingest   the first INGEST_DOCS (default 500) SciFact documents, chunked, into an empty
#            data directory / collection with `semdex ingest` (documents and passages per s);
#   search   POST /search with the test questions through `semdex serve` on the chunked
#            corpus, wrk at concurrency 1 and 8 (DURATION per row, default 15s), the rows of
#            the two backends interleaved.
# Embedded data directories and the database (PG_DIR) are kept in target/bench-postgres/ and
# reused by later runs (`bench beir` skips what is already ingested). PHASES (default
# "quality ingest search") and MODES (default "whole chunked") pick what runs; the search
# phase needs the chunked corpus in both backends (the chunked quality run makes it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCIFACT=$(cd "${1:?usage: benches/postgres/run.sh SCIFACT_DIR}" && pwd)
OUT=${OUT:-$ROOT/target/bench-postgres}
PORT=${PG_PORT:-55439}
HTTP_PORT=${PORT_HTTP:-18090}
DURATION=${DURATION:-15s}
INGEST_DOCS=${INGEST_DOCS:-500}
PHASES=${PHASES:-quality ingest search}
MODES=${MODES:-whole chunked}
mkdir -p "$OUT"
PG_DIR=${PG_DIR:-$OUT/pg}
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; "$ROOT/tests/pg/server.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
"$ROOT/models/fetch.sh" >&2
(cd "$ROOT" && cargo build --release --quiet)
BIN=$ROOT/target/release/semdex
MODEL=(--model "$ROOT/models/all-MiniLM-L6-v2")
URL=$(PG_FSYNC=on "$ROOT/tests/pg/server.sh" start "$PG_DIR" "$PORT")
echo "PostgreSQL: $URL (fsync on)"

phase() { [[ " $PHASES " == *" $1 "* ]]; }

phase quality && echo "== quality (bench beir, test split)"
phase quality && for mode in $MODES; do
    flag=(); [ $mode = chunked ] && flag=(--chunked)
    for backend in embedded postgres; do
        db=(); [ $backend = postgres ] && db=(--database-url "$URL")
        runs="$OUT/runs-$backend-$mode"
        "$BIN" "${MODEL[@]}" bench beir --dataset "$SCIFACT" --split test "${flag[@]}" "${db[@]}" \
            --data-dir "$OUT/beir-scifact-$mode" --mode dense,lexical,hybrid --runs-out "$runs" \
            --json > "$OUT/beir-$backend-$mode.json" 2> "$OUT/beir-$backend-$mode.log"
        python3 - "$OUT/beir-$backend-$mode.json" "$runs" "$backend" "$mode" <<'PY'
import json, sys, collections
report, runs, backend, mode = sys.argv[1:]
r = json.load(open(report))
def top10(name):
    ranked = collections.defaultdict(list)
    for line in open(f"{runs}/{name}.run"):
        q, _, doc, rank, _, _ = line.split()
        ranked[q].append((int(rank), doc))
    return {q: {d for _, d in sorted(v)[:10]} for q, v in ranked.items()}
ann, exact = top10("dense"), top10("dense_exact")
recall = sum(len(ann[q] & exact[q]) / max(1, len(exact[q])) for q in exact) / len(exact)
names = ["dense", "dense_exact", "lexical", "hybrid"]
print(f"{backend:9} {mode:8} " + " ".join(f"{n} {r[n]['ndcg@10']:.4f}" for n in names)
      + f"  HNSW recall@10 vs exact {recall:.3f}")
PY
    done
done

phase ingest && echo "== ingest (first $INGEST_DOCS documents, chunked)"
phase ingest && python3 - "$SCIFACT/corpus.jsonl" "$INGEST_DOCS" > "$WORK/ingest.jsonl" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    if i == int(sys.argv[2]): break
    d = json.loads(line)
    print(json.dumps({"id": d["_id"], "text": (d["title"] + "\n\n" + d["text"]).strip()}))
PY
phase ingest && for backend in embedded postgres; do
    db=(); [ $backend = postgres ] && db=(--database-url "$URL" --collection "ingest-bench-$$")
    start=$(date +%s.%N)
    "$BIN" "${MODEL[@]}" ingest --data-dir "$WORK/ingest-$backend" "${db[@]}" "$WORK/ingest.jsonl" 2> "$WORK/ingest.log"
    end=$(date +%s.%N)
    python3 -c "d=$INGEST_DOCS; s=$end-$start; print(f'$backend  {d} documents in {s:.1f} s: {d/s:.1f} documents/s')"
done

phase search || exit 0
echo "== POST /search at concurrency 1 and 8 (chunked corpus, $DURATION per row)"
python3 -c 'import json,sys; [print(json.loads(l)["text"]) for l in list(open(sys.argv[1]))[:300]]' \
    "$SCIFACT/queries.jsonl" > "$WORK/queries.txt"
start_server() { # BACKEND
    local db=()
    [ "$1" = postgres ] && db=(--database-url "$URL")
    "$BIN" "${MODEL[@]}" serve --data-dir "$OUT/beir-scifact-chunked" --seeds "$WORK/no-seeds" \
        --addr "127.0.0.1:$HTTP_PORT" "${db[@]}" > "$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 600); do curl -sf "127.0.0.1:$HTTP_PORT/health" > /dev/null && return; sleep 0.5; done
    echo "the server did not come up:" >&2; cat "$WORK/server.log" >&2; exit 1
}
for round in 1 2; do
    for backend in embedded postgres; do
        path=/search; [ $backend = postgres ] && path=/collections/beir-scifact-chunked/search
        start_server $backend
        for c in 1 8; do
            t=2; [ $c = 1 ] && t=1
            export LOAD_KIND=search LOAD_PATH=$path LOAD_FILE=$WORK/queries.txt
            wrk -t$t -c$c -d2s -s "$ROOT/benches/load/post.lua" "http://127.0.0.1:$HTTP_PORT" > /dev/null
            printf 'round %s %-9s c=%-2s %s\n' $round $backend $c \
                "$(wrk -t$t -c$c -d"$DURATION" --timeout 30s -s "$ROOT/benches/load/post.lua" "http://127.0.0.1:$HTTP_PORT" | tail -1)"
        done
        kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
    done
done
