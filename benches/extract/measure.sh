#!/usr/bin/env bash
# Ingest throughput per format, with extraction's share of the time, and hit@1/3 by page
# over the Python 3.11 library reference as HTML and as its reST sources (the ceiling).
#
#   benches/extract/corpus.sh CORPUS        # first
#   benches/extract/measure.sh CORPUS [WORK]
#
# Each format is ingested by `semdex ingest` into a fresh data directory; its log gives the
# seconds spent reading and extracting files (`read_seconds`) and ingesting them (chunking,
# embedding, indexing: `seconds`). Then `semdex bench qa` asks tests/data/pydoc_qa.jsonl of
# the HTML and reST data directories in each mode (their documents are unchanged, so nothing
# is embedded again).
set -euo pipefail
corpus=$(cd "${1:?corpus folder (benches/extract/corpus.sh)}" && pwd)
work=${2:-target/extract-measure}
semdex=${SEMDEX:-target/release/semdex}
mkdir -p "$work"
docs=/usr/share/doc/python3.11/html
# PAGES=all ingests all 317 pages; the default is a fixed subset of 100 (the 40 pages the
# questions name and 60 others, every third of the rest in name order), which this 2-core
# shared machine embeds in minutes rather than an hour.
lib=$work/library-html
rst=$work/library-rst
rm -rf "$lib" "$rst"
mkdir -p "$lib" "$rst"
python3 - "$docs" "$lib" "$rst" "${PAGES:-100}" <<'PY'
import json, os, shutil, sys
docs, lib, rst, count = sys.argv[1:]
pages = sorted(f[:-5] for f in os.listdir(f"{docs}/library") if f.endswith(".html"))
named = [json.loads(l)["page"] for l in open("tests/data/pydoc_qa.jsonl") if l.strip()]
if count == "all":
    chosen = pages
else:
    others = [p for p in pages if p not in named][::3]
    chosen = named + others[: int(count) - len(named)]
for p in chosen:
    shutil.copy(f"{docs}/library/{p}.html", lib)
    shutil.copy(f"{docs}/_sources/library/{p}.rst.txt", rst)
print(f"{len(chosen)} pages", file=sys.stderr)
PY

# Markdown as people have it: the README and guides Debian packages ship.
if [ ! -d "$corpus/markdown" ]; then
    mkdir -p "$corpus/markdown"
    find /usr/share/doc -name '*.md' -size +2k -size -200k | sort | while read -r f; do
        cp "$f" "$corpus/markdown/$(echo "${f#/usr/share/doc/}" | tr / _)"
    done
fi

ingest() { # NAME PATH
    rm -rf "$work/$1"
    nice -n 10 "$semdex" ingest --data-dir "$work/$1" "$2" 2> "$work/$1.log" || true
    local files bytes
    files=$(find "$2" -type f | wc -l)
    bytes=$(du -sb "$2" | cut -f1)
    grep -Eo '(read_seconds|seconds)="?[0-9.]+"?|chunks_embedded=[0-9]+|documents=[0-9]+' \
        "$work/$1.log" | tr '\n' ' ' | sed "s/^/$1 files=$files bytes=$bytes /"
    grep -E ' read$|"read"| read ' "$work/$1.log" | grep -Eo 'format="?[a-z]+"?|pages=[0-9]+' | tr '\n' ' '
    echo
}

echo "== ingest (machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, shared)"
ingest html "$lib"
ingest rst "$rst"

echo "== pydoc questions, hit by page"
for mode in dense lexical hybrid; do
    for corpus_dir in html:"$lib" rst:"$rst"; do
        name=${corpus_dir%%:*}
        echo -n "$name $mode: "
        nice -n 10 "$semdex" bench qa --file tests/data/pydoc_qa.jsonl --corpus "${corpus_dir#*:}" \
            --data-dir "$work/$name" --mode "$mode" --json 2>/dev/null
    done
done

echo "== ingest, the other formats"
ingest pdf "$corpus/pdf"
ingest docx "$corpus/docx"
ingest markdown "$corpus/markdown"
