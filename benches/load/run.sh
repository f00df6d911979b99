#!/usr/bin/env bash
# Loopback HTTP load figures for `semdex serve`, measured with wrk (Debian: apt-get install wrk).
#
#   benches/load/run.sh [search|embed|all]      DURATION=15s PORT=18080 SCIFACT_DATA_DIR=...
#
# search: POST /search with the seed-article questions at concurrency 1, 8 and 64, on the seed
#         article (exact search) and, when SCIFACT_DATA_DIR names a data directory made by
#         `semdex bench beir --chunked`, on SciFact's 18k chunks (HNSW).
# embed:  POST /embed with one sentence per request at concurrency 1 and 32, with dynamic
#         batching and with --no-batching, for the questions (~15 tokens) and short queries (~10).
# The server and wrk share the machine's cores, as a sidecar deployment would.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT=${PORT:-18080}
DURATION=${DURATION:-15s}
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
"$ROOT/models/fetch.sh" >&2
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/semdex"
python3 -c 'import json,sys; [print(json.loads(l)["question"]) for l in open(sys.argv[1])]' \
    "$ROOT/tests/data/seed_qa.jsonl" > "$WORK/questions.txt"
SERVER=

start() { # DATA_DIR [serve options...]
    local dir=$1; shift
    "$BIN" serve --model "$ROOT/models/all-MiniLM-L6-v2" --seeds "$ROOT/seeds" --data-dir "$dir" \
        --addr "127.0.0.1:$PORT" "$@" > "$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 600); do curl -sf "127.0.0.1:$PORT/health" > /dev/null && return; sleep 0.5; done
    echo "the server did not come up; its log:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; }
load() { # LABEL KIND PATH CONNECTIONS FILE
    local threads=2
    [ "$4" = 1 ] && threads=1
    export LOAD_KIND=$2 LOAD_PATH=$3 LOAD_FILE=$5
    wrk -t$threads -c"$4" -d2s -s "$HERE/post.lua" "http://127.0.0.1:$PORT" > /dev/null # warm-up
    printf '%-34s c=%-3s %s\n' "$1" "$4" \
        "$(wrk -t$threads -c"$4" -d"$DURATION" --timeout 30s -s "$HERE/post.lua" "http://127.0.0.1:$PORT" | tail -1)"
}

case ${1:-all} in
search | all)
    start "$WORK/seed"
    for c in 1 8 64; do load "search, seed article (exact)" search /search $c "$WORK/questions.txt"; done
    stop
    if [ -n "${SCIFACT_DATA_DIR:-}" ]; then
        start "$SCIFACT_DATA_DIR"
        for c in 1 8 64; do load "search, SciFact chunks (hnsw)" search /search $c "$WORK/questions.txt"; done
        stop
    fi ;;&
embed | all)
    for mode in batching no-batching; do
        flag=()
        [ $mode = no-batching ] && flag=(--no-batching)
        start "$WORK/seed" "${flag[@]}"
        for c in 1 32; do
            load "embed, $mode, questions" embed /embed $c "$WORK/questions.txt"
            load "embed, $mode, short queries" embed /embed $c "$HERE/short-queries.txt"
        done
        stop
    done ;;
esac
