#!/usr/bin/env bash
# Builds the real-document corpus of benches/extract outside git (default
# target/extract-corpus): PDFs from five producers, and the .docx, HTML and Markdown files the
# throughput figures use. Nothing here was written for semdex:
#   - pdfminer's sample PDFs (the pdfminer 20191125 sdist on PyPI, MIT): simple Type1 text, a
#     two-column ACL paper, slides, IRS forms, Japanese CID fonts, and encrypted files;
#   - pdfTeX output: the LaTeX base documentation Debian ships (texlive-latex-base-doc),
#     LaTeX News in two columns, guides full of ligatures, the Cyrillic guide;
#   - Chromium's print-to-PDF of real pages: the Python 3.11 library reference
#     (python3.11-doc), the Debian Reference in Japanese and Chinese, the Debian FAQ in Russian;
#   - LibreOffice Writer's PDF export of Python reference pages (and .docx saved from them).
# Needs: pip, apt-get (poppler-utils chromium libreoffice-writer-nogui fonts-noto-cjk
# python3.11-doc texlive-latex-base-doc debian-reference-ja debian-reference-zh-cn
# debian-faq-ru).
#
#   benches/extract/corpus.sh [OUT]
set -euo pipefail
out=${1:-target/extract-corpus}
mkdir -p "$out/pdf" "$out/docx" "$out/src" "$out/bad"
out=$(cd "$out" && pwd)

need=()
for cmd in pdftotext chromium soffice; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ] || [ ! -d /usr/share/doc/python3.11/html ] \
    || [ ! -d /usr/share/doc/texlive-doc/latex/base ] || [ ! -d /usr/share/debian-reference ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils chromium \
        libreoffice-writer-nogui fonts-noto-cjk python3.11-doc texlive-latex-base-doc \
        debian-reference-ja debian-reference-zh-cn debian-faq-ru >/dev/null
fi

# 1. pdfminer's samples.
if [ ! -d "$out/src/pdfminer-20191125" ]; then
    pip download --quiet --no-deps --no-binary :all: pdfminer==20191125 -d "$out/src"
    tar xzf "$out/src/pdfminer-20191125.tar.gz" -C "$out/src"
fi
samples=$out/src/pdfminer-20191125/samples
for f in simple1 simple2 simple3 jo nonfree/kampo nonfree/naacl06-shinyama \
    nonfree/nlp2004slides nonfree/dmca nonfree/f1040nr nonfree/i1040nr encryption/base; do
    cp "$samples/$f.pdf" "$out/pdf/pdfminer-$(basename "$f").pdf"
done
# Encrypted with a user password: a bad-file case, not part of the text comparison.
cp "$samples/encryption/aes-256.pdf" "$out/bad/encrypted-aes-256.pdf"
cp "$samples/encryption/rc4-128.pdf" "$out/bad/encrypted-rc4-128.pdf"

# 2. pdfTeX.
tex=/usr/share/doc/texlive-doc/latex/base
for f in ltnews20 ltnews26 ltnews28 ltnews30 usrguide clsguide fntguide cyrguide \
    encguide letter alltt webcomp; do
    cp "$tex/$f.pdf" "$out/pdf/pdftex-$f.pdf"
done

# 3. Chromium print-to-PDF.
lib=/usr/share/doc/python3.11/html/library
print() { # URL OUT
    [ -s "$2" ] || timeout 120 chromium --headless --no-sandbox --disable-gpu \
        --no-pdf-header-footer --print-to-pdf="$2" "$1" >/dev/null 2>&1 || true
}
for page in json csv pathlib re sqlite3 argparse functools itertools; do
    print "file://$lib/$page.html" "$out/pdf/chromium-pydoc-$page.pdf"
done
for page in ch01 ch02; do
    print "file:///usr/share/debian-reference/$page.ja.html" "$out/pdf/chromium-debref-ja-$page.pdf"
    print "file:///usr/share/debian-reference/$page.zh-cn.html" "$out/pdf/chromium-debref-zh-$page.pdf"
done
print "file:///usr/share/doc/debian/FAQ/ru/basic-defs.ru.html" "$out/pdf/chromium-debfaq-ru.pdf"

# 4. LibreOffice: PDF export and .docx of Python reference pages (pages it can load: it
# refuses some, such as collections.html).
lo="soffice -env:UserInstallation=file://$out/src/lo-profile --headless"
for page in os.path tempfile textwrap zipfile heapq glob copy; do
    if [ ! -s "$out/pdf/libreoffice-pydoc-$page.pdf" ]; then
        cp "$lib/$page.html" "$out/src/$page.html"
        timeout 180 $lo --convert-to pdf:writer_web_pdf_Export \
            --outdir "$out/pdf" "$out/src/$page.html" >/dev/null 2>&1 || true
        mv -f "$out/pdf/$page.pdf" "$out/pdf/libreoffice-pydoc-$page.pdf" 2>/dev/null || true
    fi
    if [ ! -s "$out/docx/pydoc-$page.docx" ]; then
        timeout 180 $lo --convert-to 'docx:MS Word 2007 XML' \
            --outdir "$out/docx" "$out/src/$page.html" >/dev/null 2>&1 || true
        mv -f "$out/docx/$page.docx" "$out/docx/pydoc-$page.docx" 2>/dev/null || true
    fi
done

# Bad files made from real ones: truncated, corrupted, a zip bomb named .docx, a scanned
# (image-only) PDF, deep HTML.
head -c 20000 "$out/pdf/pdftex-usrguide.pdf" > "$out/bad/truncated.pdf"
python3 - "$out" <<'PY'
import io, sys, zipfile, random
out = sys.argv[1]
data = bytearray(open(f"{out}/pdf/pdfminer-naacl06-shinyama.pdf", "rb").read())
random.seed(7)
for _ in range(200):
    data[random.randrange(len(data))] = random.randrange(256)
open(f"{out}/bad/corrupt.pdf", "wb").write(bytes(data))
with zipfile.ZipFile(f"{out}/bad/bomb.docx", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("[Content_Types].xml", "<Types/>")
    with z.open("word/document.xml", "w", force_zip64=True) as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(2048):  # 2 GiB of zeros, about 2 MB compressed
            f.write(chunk)
open(f"{out}/bad/deep.html", "w").write("<div>" * 10_000_000)
PY
# A scanned page: the first page rendered to an image, then wrapped in a PDF with no text.
if [ ! -s "$out/bad/scanned.pdf" ] && command -v pdftoppm >/dev/null; then
    pdftoppm -r 60 -f 1 -l 1 -png "$out/pdf/pdftex-usrguide.pdf" "$out/src/scan"
    timeout 120 chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer \
        --print-to-pdf="$out/bad/scanned.pdf" "file://$out/src/scan-01.png" >/dev/null 2>&1 || true
fi
ls "$out/pdf" | wc -l | xargs echo "PDFs:"
ls "$out/docx" | wc -l | xargs echo ".docx files:"
