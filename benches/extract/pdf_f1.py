#!/usr/bin/env python3
"""semdex's PDF text against poppler's pdftotext, file by file, in the same run.

For each PDF: word-level F1 of semdex's text against pdftotext's (words are runs of letters
and digits after NFKC normalisation and lowercasing, each CJK character a word of its own;
F1 over the multisets of words, so reading order does not count), and the wall time of
extracting it with each tool, the two run in alternation, best of --rounds. Overall F1 is
over all words of all files, a file semdex cannot read counting as F1 0; pages/s is total
pages over total best times, over the files both read.

    cargo bench --bench extract --no-run   # prints the bench executable
    benches/extract/pdf_f1.py --bin target/release/deps/extract-HASH CORPUS/pdf/*.pdf
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
WORD = re.compile(f"[{CJK}]|[^\\W{CJK}]+")


def words(text):
    return collections.Counter(WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def timed(cmd):
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - started, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the extract bench executable")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("pdfs", nargs="+")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pdf in args.pdfs:
            name = os.path.basename(pdf)
            best_semdex = best_poppler = float("inf")
            line = None
            for r in range(args.rounds):
                runs = [("semdex", [args.bin, "--text", tmp, pdf]),
                        ("poppler", ["pdftotext", "-enc", "UTF-8", pdf, f"{tmp}/{name}.ref"])]
                if r % 2:
                    runs.reverse()
                for who, cmd in runs:
                    seconds, out = timed(cmd)
                    if who == "semdex":
                        best_semdex = min(best_semdex, seconds)
                        line = json.loads(out.stdout.decode().strip().splitlines()[-1])
                    else:
                        best_poppler = min(best_poppler, seconds)
            ref = words(open(f"{tmp}/{name}.ref", encoding="utf-8", errors="replace").read())
            if "error" in line:
                # A file semdex cannot read scores zero: every reference word is missed.
                rows.append({"file": name, "error": line["error"], "pages": 0,
                             "words_semdex": 0, "words_pdftotext": sum(ref.values()),
                             "common": 0, "f1": 0.0, "semdex_s": 0.0,
                             "pdftotext_s": best_poppler})
                continue
            ours = words(open(f"{tmp}/{name}.txt", encoding="utf-8").read())
            common = sum((ours & ref).values())
            rows.append({
                "file": name,
                "pages": line["pages"],
                "words_semdex": sum(ours.values()),
                "words_pdftotext": sum(ref.values()),
                "common": common,
                "precision": common / max(1, sum(ours.values())),
                "recall": common / max(1, sum(ref.values())),
                "f1": 2 * common / max(1, sum(ours.values()) + sum(ref.values())),
                "semdex_s": best_semdex,
                "semdex_extract_s": line["seconds"],
                "pdftotext_s": best_poppler,
            })
    ok = [r for r in rows if "error" not in r]
    common = sum(r["common"] for r in rows)
    total = sum(r["words_semdex"] + r["words_pdftotext"] for r in rows)
    read_common = sum(r["common"] for r in ok)
    read_total = sum(r["words_semdex"] + r["words_pdftotext"] for r in ok)
    pages = sum(r["pages"] for r in ok)
    summary = {
        "files": len(rows),
        "errors": len(rows) - len(ok),
        "pages": pages,
        "f1_overall": 2 * common / max(1, total),
        "f1_overall_files_read": 2 * read_common / max(1, read_total),
        "f1_mean": sum(r["f1"] for r in rows) / max(1, len(rows)),
        "semdex_pages_per_s": pages / sum(r["semdex_s"] for r in ok),
        "pdftotext_pages_per_s": pages / sum(r["pdftotext_s"] for r in ok),
        "pdftotext_over_semdex_time": sum(r["pdftotext_s"] for r in ok)
        / sum(r["semdex_s"] for r in ok),
    }
    if args.json:
        print(json.dumps({"files": rows, "summary": summary}))
        return
    print(f"| file | pages | F1 | precision | recall | semdex s | pdftotext s |")
    print(f"| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['file']} | | 0 (error: {r['error']}) | | | | {r['pdftotext_s']:.3f} |")
            continue
        print(f"| {r['file']} | {r['pages']} | {r['f1']:.3f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['semdex_s']:.3f} | {r['pdftotext_s']:.3f} |")
    print()
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
