"""What the Python benchmarks share: JSON over HTTP, a `semdex serve` started and waited for,
and latency summaries. Standard library only.

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import semdex_http
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def request(method, url, body=None, timeout=600):
    """(status, parsed JSON body, or the body's text for an error status)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(semdex, data, extra=(), log=None):
    """Starts `semdex serve` on data directory `data` (no seeds) and waits until it is ready;
    returns the child and its base URL."""
    port = free_port()
    child = subprocess.Popen(
        semdex
        + ["serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}",
           "--seeds", os.path.join(data, "no-seeds")]
        + list(extra),
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w") if log else subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        try:
            if request("GET", f"{base}/health", timeout=5)[0] == 200:
                return child, base
        except OSError:
            pass
        if time.monotonic() > deadline or child.poll() is not None:
            sys.exit(f"semdex serve on {data} did not become ready" + (f" (see {log})" if log else ""))
        time.sleep(0.2)


def beir_documents(corpus, limit, title_only=False):
    """The first `limit` documents of a BEIR corpus.jsonl as semdex documents: title and
    abstract, or the title alone (one passage each)."""
    docs = []
    with open(corpus) as f:
        for line in f:
            if len(docs) == limit:
                break
            d = json.loads(line)
            text = d.get("title", "") if title_only else d.get("title", "") + "\n\n" + d["text"]
            docs.append({"id": d["_id"], "text": text.strip() or d["text"]})
    return docs


def summary(seconds):
    """n, p50, p90, p99 and max of durations in seconds, in milliseconds."""
    values = sorted(v for v in seconds if v is not None)
    if not values:
        return "none"
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return (
        f"n {len(values)}, p50 {pick(0.5) * 1000:.0f} ms, p90 {pick(0.9) * 1000:.0f} ms, "
        f"p99 {pick(0.99) * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"
    )
