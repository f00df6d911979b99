#!/bin/sh
# RSS of `semdex serve` with N collections of one document each: after start, after creating
# and filling them, after a search in each, and after a restart (collections open on first use).
set -eu
#   benches/collections/memory.sh            (B=binary, N=collections, PORT=port)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-$ROOT/target/release/semdex}; N=${N:-100}; PORT=${PORT:-18931}
D=$(mktemp -d); M=$ROOT/models/all-MiniLM-L6-v2
rss() { awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$1/status; }
start() { $B --model $M serve --addr 127.0.0.1:$PORT --data-dir $D --seeds $ROOT/seeds 2>/dev/null & PID=$!
  until curl -sf localhost:$PORT/health >/dev/null; do sleep 0.2; done; }
start; echo "start (default only): $(rss $PID)"
for i in $(seq 1 $N); do
  curl -sf -X POST localhost:$PORT/collections -H 'content-type: application/json' -d "{\"name\":\"c$i\"}" >/dev/null
  curl -sf -X POST localhost:$PORT/collections/c$i/documents -H 'content-type: application/json' \
    -d "{\"id\":\"d\",\"text\":\"Document number $i is about topic $i and nothing else.\"}" >/dev/null
done
echo "after $N collections created and filled: $(rss $PID)"
for i in $(seq 1 $N); do curl -sf "localhost:$PORT/collections/c$i/search?q=topic" >/dev/null; done
echo "after a search in each: $(rss $PID)  threads: $(ls /proc/$PID/task | wc -l)"
kill $PID; wait $PID || true
start; echo "after restart (none opened yet): $(rss $PID)"
for i in $(seq 1 $N); do curl -sf "localhost:$PORT/collections/c$i/search?q=topic" >/dev/null; done
echo "after restart and a search in each: $(rss $PID)  threads: $(ls /proc/$PID/task | wc -l)"
du -sh $D/collections | sed 's/^/disk: /'
kill $PID; wait $PID || true; rm -rf $D
