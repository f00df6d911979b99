#!/bin/sh
# Measure semdex against its peers in one run, on the same machine and the same texts.
#
#   benches/compare/run.sh [compare.py options]     e.g.  benches/compare/run.sh encode --count 300
#
# Makes (once) a throwaway virtual environment with sentence-transformers (PyTorch, a few GB),
# onnxruntime, hnswlib, faiss-cpu, pytrec_eval and bm25s with PyStemmer (the BM25 peer), builds semdex
# in release mode and runs compare.py, which prints a table with ratios. Not part of CI.
# SEMDEX_COMPARE_VENV picks the venv folder.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV="${SEMDEX_COMPARE_VENV:-${TMPDIR:-/tmp}/semdex-compare-venv}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV (sentence-transformers, onnxruntime, hnswlib, faiss-cpu, bm25s)..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        sentence-transformers onnxruntime onnx onnxscript hnswlib faiss-cpu pytrec-eval-terrier \
        bm25s PyStemmer
fi
# A venv made before the BM25 peer existed gains it here.
"$VENV/bin/python" -c "import bm25s, Stemmer" 2>/dev/null ||
    "$VENV/bin/pip" install --quiet --disable-pip-version-check bm25s PyStemmer

"$ROOT/models/fetch.sh" >&2
(cd "$ROOT" && cargo build --release --quiet)
cd "$ROOT"
exec "$VENV/bin/python" "$HERE/compare.py" --semdex "$ROOT/target/release/semdex" \
    --model "$ROOT/models/all-MiniLM-L6-v2" "$@"
