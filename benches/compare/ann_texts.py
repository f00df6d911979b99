"""Short real passages for the 10^6-vector ANN benchmark, as JSON lines for `semdex ingest`.

Sources, all on a Debian machine with the build's crates: the Python library reference's reST
sources (Debian `python3.11-doc`), the English man pages (troff, stripped of its markup), and
the READMEs and doc comments of the crates in cargo's registry. Paragraphs are split into
passages of one to a few sentences (60 to 400 characters); exact duplicates are dropped; the
mix is shuffled with a fixed seed.

    python3 benches/compare/ann_texts.py --out /work/cache/ann/texts --limit 132000

writes OUT/part-NNN.jsonl files of 10,000 passages each: {"id", "text"}.
"""

import argparse
import glob
import gzip
import json
import os
import random
import re
import sys

MIN_CHARS, MAX_CHARS = 60, 400
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")


def passages_of(paragraph):
    """One paragraph as passages: whole when short, else greedy groups of sentences."""
    text = " ".join(paragraph.split())
    if len(text) < MIN_CHARS or len(text.split()) < 8:
        return []
    if len(text) <= MAX_CHARS:
        return [text]
    out, current = [], ""
    for sentence in SENTENCE_END.split(text):
        if current and len(current) + 1 + len(sentence) > MAX_CHARS:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    out.append(current)
    return [p[:MAX_CHARS] for p in out if len(p) >= MIN_CHARS and len(p.split()) >= 8]


RST_ROLE = re.compile(r":[\w:.-]+:`([^`<]*?)(?:\s*<[^>]*>)?`")


def rest_paragraphs(path):
    """Prose paragraphs of a reST file: no directives, literal blocks, tables or headings."""
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    paragraph, literal_indent, out = [], None, []

    def flush():
        if paragraph:
            out.append(" ".join(paragraph))
            paragraph.clear()

    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if not stripped:
            flush()
            continue
        if stripped.startswith(".."):
            flush()
            # Code and grammar blocks are skipped; the prose inside other directives (a
            # function's description) is kept.
            if re.match(r"\.\.\s+(code-block|code|testcode|testoutput|doctest|productionlist|sourcecode|literalinclude|highlight|raw|csv-table|list-table|table|index|toctree|_|\|)", stripped) or not re.match(r"\.\.\s+[\w-]+::", stripped):
                literal_indent = indent
            continue
        if stripped.startswith(":") or re.fullmatch(r"[=\-~^*+#`:'\"._|]{3,}", stripped) or "+--" in stripped:
            flush()
            continue
        if stripped.startswith((">>>", "...", "|", "$ ")):
            flush()
            continue
        text = RST_ROLE.sub(r"\1", stripped)
        text = text.replace("``", "").replace("**", "").replace("`", "")
        if text.endswith("::"):
            text = text[:-1]
            paragraph.append(text)
            flush()
            literal_indent = indent
            continue
        paragraph.append(text)
    flush()
    return out


TROFF_ESCAPE = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\\*(\(..|\[[^\]]*\]|.)|\\\((..)|\\\[[^\]]*\]|\\[&|^%0-]|\\s[+-]?\d")


def man_paragraphs(path):
    """Running text of a troff man page: macros give breaks, font escapes are dropped."""
    try:
        raw = gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    except (OSError, EOFError):
        return []
    paragraph, out, nofill = [], [], False

    def flush():
        if paragraph:
            out.append(" ".join(paragraph))
            paragraph.clear()

    for line in raw.splitlines():
        if line.startswith((".\\\"", "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            macro = macro.strip()
            if macro in ("nf", "EX", "TS"):
                flush()
                nofill = True
            elif macro in ("fi", "EE", "TE"):
                nofill = False
            elif macro in ("B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB") and rest:
                paragraph.append(rest.replace('"', ""))
            else:
                flush()
            continue
        if nofill:
            continue
        text = TROFF_ESCAPE.sub("", line).replace("\\-", "-").replace("\\e", "\\").strip()
        if not text:
            flush()
        else:
            paragraph.append(text)
    flush()
    return out


def markdown_paragraphs(path):
    """Prose paragraphs of a README: no code fences, tables, HTML, badges or headings."""
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    return prose_blocks(lines)


def prose_blocks(lines):
    paragraph, out, fence = [], [], False

    def flush():
        if paragraph:
            out.append(" ".join(paragraph))
            paragraph.clear()

    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fence = not fence
            continue
        if fence:
            continue
        if not stripped or stripped.startswith(("#", "|", "<", "[![", "![", "    ", "- [", "* [")):
            flush()
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", stripped)
        text = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", text).replace("`", "").replace("**", "")
        paragraph.append(text)
    flush()
    return out


def doc_comment_paragraphs(path):
    """Paragraphs of a Rust file's `///` and `//!` doc comments."""
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    out, block = [], []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("///", "//!")):
            block.append(stripped[3:].strip())
        elif block:
            out.extend(prose_blocks(block))
            block = []
    if block:
        out.extend(prose_blocks(block))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=132000)
    p.add_argument("--python-docs", default="/usr/share/doc/python3.11/html/_sources")
    p.add_argument("--man", default="/usr/share/man")
    p.add_argument("--crates", default=os.path.expanduser("~/.cargo/registry/src"))
    p.add_argument("--per-source", type=int, default=50000, help="at most this many passages of one source")
    p.add_argument("--seed", type=int, default=25)
    args = p.parse_args()

    sources = {}
    sources["python docs"] = [q for f in sorted(glob.glob(f"{args.python_docs}/**/*.txt", recursive=True))
                              for para in rest_paragraphs(f) for q in passages_of(para)]
    sources["man pages"] = [q for f in sorted(glob.glob(f"{args.man}/man[1-8]/*.gz"))
                            for para in man_paragraphs(f) for q in passages_of(para)]
    readmes = sorted(glob.glob(f"{args.crates}/*/*/README*"))
    rust = sorted(glob.glob(f"{args.crates}/*/*/src/**/*.rs", recursive=True))
    sources["crate docs"] = [q for f in readmes for para in markdown_paragraphs(f) for q in passages_of(para)] + \
                            [q for f in rust for para in doc_comment_paragraphs(f) for q in passages_of(para)]

    seen, texts = set(), []
    for name, passages in sources.items():
        unique = [t for t in passages if not (t in seen or seen.add(t))]
        random.Random(args.seed).shuffle(unique)
        print(f"{name}: {len(passages)} passages, {len(unique)} new, {min(len(unique), args.per_source)} kept",
              file=sys.stderr)
        unique = unique[: args.per_source]
        texts.extend((name, t) for t in unique)
    random.Random(args.seed).shuffle(texts)
    texts = texts[: args.limit]
    os.makedirs(args.out, exist_ok=True)
    for part in range(0, len(texts), 10000):
        with open(os.path.join(args.out, f"part-{part // 10000:03}.jsonl"), "w") as f:
            for i, (source, text) in enumerate(texts[part : part + 10000], start=part):
                f.write(json.dumps({"id": f"p{i}", "text": text, "metadata": {"source": source}}) + "\n")
    mean = sum(len(t) for _, t in texts) / max(len(texts), 1)
    print(f"wrote {len(texts)} passages (mean {mean:.0f} characters) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
