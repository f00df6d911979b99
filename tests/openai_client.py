"""The official `openai` Python client against a real `semdex serve`.

Run by .ci/run inside a throwaway venv that has `openai` installed:

    python tests/openai_client.py target/release/semdex

Starts the server on an ephemeral port over a fresh data directory, calls
client.embeddings.create with the client's default encoding (base64) and with "float", checks
both against POST /embed, then stops the server with SIGTERM and expects a clean exit.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import openai


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
        req = urllib.request.Request(f"{base}/embed", data=json.dumps({"inputs": texts}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            reference = json.load(r)

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
        try:
            client.embeddings.create(model="x", input=[[1, 2, 3]])
            raise AssertionError("token arrays should be refused")
        except openai.UnprocessableEntityError as e:
            print("token arrays refused:", e.status_code)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    assert code == 0, f"server exited with {code}"
    print("openai client test passed")


if __name__ == "__main__":
    main()
