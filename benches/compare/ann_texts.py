"""Short real passages for the 10^6-vector ANN benchmark, as JSON lines for `semdex ingest`.

Sources, all on a Debian machine with the build's crates: the Python library reference's reST
sources (Debian `python3.11-doc`), the English man pages (troff, stripped of its markup), and
the READMEs and doc comments of the crates in cargo's registry; with `--sources all`, also the
paragraphs of the Rust toolchain's HTML documentation (books and the standard library), the
docstrings of the Python packages installed in `--python-packages` folders, the GNU info
manuals, BEIR SciFact's abstracts and the Debian packages' changelogs (the 10^6-passage ingest). Paragraphs are split into
passages of one to a few sentences (60 to 400 characters); exact duplicates are dropped; the
mix is shuffled with a fixed seed.

    python3 benches/compare/ann_texts.py --out /work/cache/ann/texts --limit 132000

writes OUT/part-NNN.jsonl files of 10,000 passages each: {"id", "text"}. The ingest of 10^6
takes passages and sentences (these sources hold about 530,000 distinct passages and 740,000
distinct sentences):

    python3 benches/compare/ann_texts.py --out DIR --sources all --unit both --limit 1000000 --per-source 1000000 \
        --python-packages /usr/lib/python3.11 --python-packages VENV/lib/python3.11/site-packages
"""

import argparse
import ast
import glob
import gzip
import html
import json
import os
import random
import re
import sys

MIN_CHARS, MAX_CHARS = 60, 400
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")


# "passage": a paragraph whole when short, else greedy groups of sentences; "sentence": each
# sentence of a paragraph alone; "both": the passages and the sentences (`--unit`).
UNIT = "passage"


def passages_of(paragraph):
    """One paragraph as passages (see UNIT)."""
    text = " ".join(paragraph.split())
    if len(text) < MIN_CHARS or len(text.split()) < 8:
        return []
    sentences = []
    if UNIT in ("sentence", "both"):
        sentences = [s[:MAX_CHARS] for s in SENTENCE_END.split(text) if len(s) >= MIN_CHARS // 2 and len(s.split()) >= 6]
        if UNIT == "sentence":
            return sentences
    if len(text) <= MAX_CHARS:
        return [text] + sentences
    out, current = [], ""
    for sentence in SENTENCE_END.split(text):
        if current and len(current) + 1 + len(sentence) > MAX_CHARS:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    out.append(current)
    return [p[:MAX_CHARS] for p in out if len(p) >= MIN_CHARS and len(p.split()) >= 8] + sentences


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


def read_gzip(path):
    """A gzipped text file's contents ("" when it cannot be read)."""
    try:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    except (OSError, EOFError):
        return ""


TROFF_ESCAPE = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\\*(\(..|\[[^\]]*\]|.)|\\\((..)|\\\[[^\]]*\]|\\[&|^%0-]|\\s[+-]?\d")


def man_paragraphs(path):
    """Running text of a troff man page: macros give breaks, font escapes are dropped."""
    raw = read_gzip(path)
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


HTML_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
HTML_TAG = re.compile(r"<[^>]+>")


def html_paragraphs(path):
    """The `<p>` paragraphs of an HTML page, as text."""
    try:
        raw = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return []
    return [html.unescape(HTML_TAG.sub("", p)) for p in HTML_PARAGRAPH.findall(raw)]


def docstring_paragraphs(path):
    """Paragraphs of a Python file's docstrings (modules, classes, functions)."""
    try:
        tree = ast.parse(open(path, encoding="utf-8", errors="replace").read())
    except (SyntaxError, ValueError, OSError, RecursionError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                out.extend(prose_blocks(doc.splitlines()))
    return out


def info_paragraphs(path):
    """Paragraphs of a GNU info manual: blank-line separated, menus and node lines dropped."""
    raw = read_gzip(path)
    out = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [l for l in block.splitlines() if l.strip()]
        if not lines or lines[0].startswith(("File:", "*", "\x1f", "Tag Table")) or any(l.startswith("     ") for l in lines):
            continue
        out.append(" ".join(lines))
    return out


def changelog_paragraphs(path):
    """The entries of a Debian changelog (`  * ...` with their continuation lines)."""
    raw = read_gzip(path)
    out, entry = [], []
    for line in raw.splitlines():
        if re.match(r"\s+[*+-] ", line):
            if entry:
                out.append(" ".join(entry))
            entry = [line.strip()[2:]]
        elif entry and line.startswith("    ") and line.strip():
            entry.append(line.strip())
        else:
            if entry:
                out.append(" ".join(entry))
            entry = []
    if entry:
        out.append(" ".join(entry))
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
    p.add_argument("--sources", choices=["docs", "all"], default="docs",
                   help="docs: Python reference, man pages, crates (the 132k set); all: also Rust HTML docs, docstrings, info, SciFact")
    p.add_argument("--rust-docs", default=sorted(glob.glob(os.path.expanduser("~/.rustup/toolchains/*/share/doc/rust/html")))[:1])
    p.add_argument("--python-packages", action="append", default=[])
    p.add_argument("--unit", choices=["passage", "sentence", "both"], default="passage",
                   help="passage: paragraphs or groups of sentences up to 400 characters; sentence: one sentence each; both")
    p.add_argument("--info", default="/usr/share/info")
    p.add_argument("--scifact", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/scifact"))
    args = p.parse_args()
    global UNIT
    UNIT = args.unit

    sources = {}
    sources["python docs"] = [q for f in sorted(glob.glob(f"{args.python_docs}/**/*.txt", recursive=True))
                              for para in rest_paragraphs(f) for q in passages_of(para)]
    sources["man pages"] = [q for f in sorted(glob.glob(f"{args.man}/man[1-8]/*.gz"))
                            for para in man_paragraphs(f) for q in passages_of(para)]
    readmes = sorted(glob.glob(f"{args.crates}/*/*/README*"))
    rust = sorted(glob.glob(f"{args.crates}/*/*/src/**/*.rs", recursive=True))
    sources["crate docs"] = [q for f in readmes for para in markdown_paragraphs(f) for q in passages_of(para)] + \
                            [q for f in rust for para in doc_comment_paragraphs(f) for q in passages_of(para)]

    if args.sources == "all":
        rust_docs = args.rust_docs if isinstance(args.rust_docs, list) else [args.rust_docs]
        pages = sorted(f for d in rust_docs for f in glob.glob(f"{d}/**/*.html", recursive=True))
        sources["rust docs"] = [q for f in pages for para in html_paragraphs(f) for q in passages_of(para)]
        modules = sorted(f for d in args.python_packages for f in glob.glob(f"{d}/**/*.py", recursive=True))
        sources["docstrings"] = [q for f in modules for para in docstring_paragraphs(f) for q in passages_of(para)]
        sources["info manuals"] = [q for f in sorted(glob.glob(f"{args.info}/*.gz"))
                                   for para in info_paragraphs(f) for q in passages_of(para)]
        corpus = os.path.join(args.scifact, "corpus.jsonl")
        abstracts = [json.loads(line)["text"] for line in open(corpus)] if os.path.exists(corpus) else []
        sources["scifact"] = [q for a in abstracts for q in passages_of(a)]
        sources["debian changelogs"] = [q for f in sorted(glob.glob("/usr/share/doc/*/changelog*.gz"))
                                        for para in changelog_paragraphs(f) for q in passages_of(para)]

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
