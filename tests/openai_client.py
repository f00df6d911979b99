"""The official `openai` Python client, and LangChain's `OpenAIEmbeddings` with its defaults,
against a real `semdex serve`.

Run by .ci/run inside a throwaway venv that has `openai`, `tiktoken` and `langchain-openai`
installed, after the cargo build (the tiktoken encoding file comes from the cargo registry):

    python tests/openai_client.py target/release/semdex

Starts the server on an ephemeral port over a fresh data directory, calls
client.embeddings.create with the client's default encoding (base64) and with "float", checks
both against POST /embed; posts cl100k_base token ids as LangChain does and runs LangChain's
default (token-id) path itself, offline, checking those against POST /embed too; then stops the
server with SIGTERM and expects a clean exit.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import openai

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def bundled_cl100k(repo):
    """The cl100k_base.tiktoken file that the tiktoken-rs crate bundles (semdex decodes ids with
    it). Found through `cargo metadata`: the manifest path of the tiktoken-rs package that this
    checkout's Cargo.lock resolves, whose assets/ folder holds the file; failing that (no cargo on
    PATH), by searching $CARGO_HOME/registry/src for an unpacked tiktoken-rs crate."""
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout
        for package in json.loads(out)["packages"]:
            if package["name"] == "tiktoken-rs":
                path = os.path.join(os.path.dirname(package["manifest_path"]),
                                    "assets", "cl100k_base.tiktoken")
                if os.path.exists(path):
                    print(f"cl100k_base.tiktoken from cargo metadata: {path}")
                    return path
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"cargo metadata failed ({e}); searching the cargo registry")
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(os.path.join(
        cargo_home, "registry", "src", "*", "tiktoken-rs-*", "assets", "cl100k_base.tiktoken")))
    assert found, "no tiktoken-rs crate in the cargo registry: build semdex first"
    print(f"cl100k_base.tiktoken from the cargo registry: {found[-1]}")
    return found[-1]


def offline_tiktoken(repo):
    """Python tiktoken, and so LangChain, able to use cl100k_base without the internet.

    tiktoken downloads its encoding files and caches each under TIKTOKEN_CACHE_DIR, named by the
    sha1 of its URL, and accepts a cached file whose sha256 is the one it expects. tiktoken-rs
    bundles the very same file, so it is put into a fresh cache directory; tiktoken's download
    function is replaced by one that fails, so a miss cannot silently reach the network."""
    cache = tempfile.mkdtemp(prefix="semdex-tiktoken-")
    shutil.copy(bundled_cl100k(repo), os.path.join(cache, hashlib.sha1(CL100K_URL.encode()).hexdigest()))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    import tiktoken
    import tiktoken.load

    def no_download(url):
        raise AssertionError(f"tiktoken tried to download {url}")

    tiktoken.load.read_file = no_download
    return tiktoken.get_encoding("cl100k_base")


def post_json(base, path, body):
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def max_diff(a, b):
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b))


def normalized(v):
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


def check_token_ids(base, client, repo):
    """cl100k_base ids, posted the way LangChain posts them and by LangChain itself."""
    enc = offline_tiktoken(repo)
    texts = ["Putin accepted an invitation to visit North Korea.", "Crème brûlée, façade",
             "金正恩与普京会晤。", "rockets 🚀🇰🇵 and 👩‍👩‍👧 families", ""]
    reference = post_json(base, "/embed", {"inputs": texts})

    # What LangChain sends: encode_ordinary, windows of at most embedding_ctx_length ids, one
    # array per window; an empty text has no window and is sent as "".
    windows = [enc.encode_ordinary(t) for t in texts if t]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=windows)
    for item, want in zip(result.data, [r for t, r in zip(texts, reference) if t]):
        assert max_diff(item.embedding, want) < 1e-6
    print(f"openai client, cl100k_base token arrays: {len(windows)} vectors match /embed")
    try:
        client.embeddings.create(model="x", input=[[1, 2], [3, 100300]])
        raise AssertionError("ids outside cl100k_base should be refused")
    except openai.UnprocessableEntityError as e:
        assert "input[1][1]" in str(e), e
        print("ids outside cl100k_base refused:", e.status_code)

    from langchain_openai import OpenAIEmbeddings

    sent = []

    class Spy:
        """Records what LangChain posts."""

        def __init__(self, inner):
            self.inner = inner

        def create(self, **kwargs):
            sent.append(kwargs["input"])
            return self.inner.create(**kwargs)

    # LangChain's defaults: check_embedding_ctx_length=True, tiktoken, cl100k_base for our name.
    embeddings = OpenAIEmbeddings(model="all-MiniLM-L6-v2", base_url=f"{base}/v1", api_key="not-needed")
    embeddings.client = Spy(embeddings.client)
    vectors = embeddings.embed_documents(texts)
    assert sent and isinstance(sent[0], list) and isinstance(sent[0][0], list), sent[:1]
    assert isinstance(sent[0][0][0], int), "LangChain did not send token ids"
    for text, got, want in zip(texts, vectors, reference):
        assert max_diff(got, want) < 1e-6, f"LangChain's vector of {text!r} differs from /embed"
    assert max_diff(embeddings.embed_query(texts[0]), reference[0]) < 1e-6
    print(f"langchain OpenAIEmbeddings (defaults, token ids): {len(texts)} vectors match /embed")

    # Long texts: LangChain cuts the ids into windows (here of 8, cutting characters in two),
    # embeds each window and averages the vectors weighted by window length.
    long_text = "Kim Jong Un 金正恩 🚀🇰🇵 visited the Vostochny cosmodrome; naïve façade. " * 3
    small = OpenAIEmbeddings(model="all-MiniLM-L6-v2", base_url=f"{base}/v1", api_key="x",
                             embedding_ctx_length=8)
    got = small.embed_query(long_text)
    ids = enc.encode_ordinary(long_text)
    cut = [ids[i:i + 8] for i in range(0, len(ids), 8)]
    parts = post_json(base, "/embed", {"inputs": [enc.decode(w) for w in cut]})
    average = [sum(len(w) * v[k] for w, v in zip(cut, parts)) / len(ids) for k in range(len(parts[0]))]
    assert max_diff(got, normalized(average)) < 1e-5
    print(f"langchain OpenAIEmbeddings, {len(cut)} windows of 8 ids: the weighted average of /embed")


def main():
    binary = os.path.abspath(sys.argv[1])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = tempfile.mkdtemp(prefix="semdex-openai-")
    server = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", data],
        cwd=repo, stderr=subprocess.PIPE, text=True,
    )
    found = {}
    ready = threading.Event()

    def pump():
        for line in server.stderr:
            sys.stderr.write(line)
            m = re.search(r"addr=(\S+)", line)
            if m and "addr" not in found:
                found["addr"] = m.group(1)
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(120), "server did not report its address"
        base = f"http://{found['addr']}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health") as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            assert time.time() < deadline, "server never became healthy"
            time.sleep(0.1)

        texts = ["Putin accepted an invitation to visit North Korea.", "Artillery shells", ""]
        reference = post_json(base, "/embed", {"inputs": texts})

        client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed")
        for fmt in (openai.NOT_GIVEN, "float", "base64"):
            result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format=fmt)
            assert len(result.data) == len(texts)
            for item, want in zip(result.data, reference):
                got = item.embedding
                if isinstance(got, str):  # raw base64 when asked for explicitly
                    import base64
                    import struct
                    raw = base64.b64decode(got)
                    got = list(struct.unpack(f"<{len(raw) // 4}f", raw))
                assert len(got) == 384, len(got)
                diff = max(abs(a - b) for a, b in zip(got, want))
                assert diff < 1e-6, f"encoding {fmt}: vectors differ from /embed by {diff}"
            assert result.usage.prompt_tokens > 0
            print(f"openai client, encoding_format={fmt}: {len(result.data)} vectors match /embed")
        single = client.embeddings.create(model="x", input="one text")
        assert len(single.data) == 1 and len(single.data[0].embedding) == 384
        check_token_ids(base, client, repo)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    assert code == 0, f"server exited with {code}"
    print("openai client test passed")


if __name__ == "__main__":
    main()
