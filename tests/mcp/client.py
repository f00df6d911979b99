"""semdex's MCP server driven by the official Python MCP client SDK (`pip install mcp`), over
stdio (`semdex mcp`, as a desktop agent starts it) and over streamable HTTP (`/mcp` on `semdex
serve`), with and without an API key.

Run by .ci/run inside a throwaway venv that has `mcp` installed, after the cargo build:

    python tests/mcp/client.py target/release/semdex

Each transport: the tools are listed (names, descriptions, input schemas), every tool is
called and its text and structured content checked, and the failures a user makes (an unknown
collection, a bad filter, values out of range, arguments of the wrong shape, an unknown
document) come back as tool errors with the message that explains them, after which the same
session keeps working. Over HTTP with a key: without it the server answers 401 and no session
starts; with it everything works.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOOLS = {"search", "add_documents", "get_document", "delete_document", "list_collections"}
QUESTION = "At which space facility did the two leaders hold their meeting?"


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call_ok(session, name, arguments):
    result = await session.call_tool(name, arguments)
    assert not result.is_error, f"{name} {arguments}: {text_of(result)}"
    return result


async def call_error(session, name, arguments, *needles):
    """A call that must fail as a tool error whose message holds every needle."""
    result = await session.call_tool(name, arguments)
    message = text_of(result)
    assert result.is_error, f"{name} {arguments} should have failed: {message}"
    for needle in needles:
        assert needle in message, f"{name} {arguments}: {needle!r} not in {message!r}"
    return message


async def exercise(session, label):
    """Every tool and every documented failure, in one session."""
    info = await session.initialize()
    assert info.server_info.name == "semdex", info.server_info
    assert info.instructions and "search" in info.instructions

    tools = (await session.list_tools()).tools
    assert {t.name for t in tools} == TOOLS, [t.name for t in tools]
    for t in tools:
        assert t.description and len(t.description) > 40, t
        assert t.input_schema.get("type") == "object", t.input_schema
    search_schema = next(t for t in tools if t.name == "search").input_schema
    for field in ("query", "k", "collection", "mode", "filter", "group_by", "expand", "max_tokens"):
        assert field in search_schema["properties"], field
    assert search_schema.get("required") == ["query"], search_schema.get("required")
    print(f"{label}: {len(tools)} tools listed")

    listed = await call_ok(session, "list_collections", {})
    names = [c["name"] for c in listed.structured_content["collections"]]
    assert names[0] == "default", names
    assert "default" in text_of(listed)

    found = await call_ok(session, "search", {"query": QUESTION, "k": 3})
    body = found.structured_content
    assert len(body["results"]) == 3 and body["mode"] == "hybrid", body
    first = body["results"][0]
    assert "Vostochny" in first["text"], first["text"]
    assert first["highlights"], "search answers carry highlights"
    assert first["doc_id"].endswith("putin-kim-summit.txt"), first["doc_id"]
    text = text_of(found)
    assert f'[1] document "{first["doc_id"]}", passage #{first["chunk_index"]}, bytes {first["start"]}..' in text, text
    assert "best sentence at bytes" in text and "**" in text, text
    print(f"{label}: search answered with citable text: {text.splitlines()[2][:90]}")

    budget = await call_ok(session, "search", {"query": QUESTION, "k": 10, "max_tokens": 128, "expand": 1})
    body = budget.structured_content
    assert body["budget"]["unit"] == "tokens" and body["budget"]["used"] <= 128, body["budget"]
    assert body["contexts"] and all(c["results"] for c in body["contexts"]), body["contexts"]
    assert f"of 128 tokens used" in text_of(budget)

    grouped = await call_ok(session, "search", {"query": QUESTION, "k": 2, "group_by": "doc_id"})
    groups = grouped.structured_content["groups"]
    assert [g["key"] for g in groups] == [first["doc_id"]], groups

    added = await call_ok(session, "add_documents", {"documents": [{
        "id": "note", "text": "The summit notes were written on page three. The talks lasted five hours.",
        "metadata": {"page": 3, "title": "Summit notes"}}]})
    assert added.structured_content["documents"][0]["status"] == "created", added.structured_content
    hit = await call_ok(session, "search", {"query": "how long did the talks last", "k": 1,
                                             "filter": {"page": {"$gte": 3}}})
    result = hit.structured_content["results"][0]
    assert result["doc_id"] == "note", result
    assert 'title "Summit notes", page 3' in text_of(hit), text_of(hit)

    doc = await call_ok(session, "get_document", {"id": "note"})
    assert doc.structured_content["text"].startswith("The summit notes"), doc.structured_content
    part = await call_ok(session, "get_document", {"id": "note", "start": 4, "end": 16})
    assert part.structured_content["text"] == "summit notes", part.structured_content
    deleted = await call_ok(session, "delete_document", {"id": "note"})
    assert deleted.structured_content["deleted_chunks"] == 1, deleted.structured_content

    # Failures a user makes: tool errors with the message, and the session goes on.
    await call_error(session, "get_document", {"id": "note"}, "no document", "note")
    await call_error(session, "delete_document", {"id": "note"}, "no document")
    await call_error(session, "search", {"query": QUESTION, "collection": "nope"}, "nope", "list_collections")
    await call_error(session, "search", {"query": QUESTION, "filter": {"year": {"$near": 3}}}, "filter.metadata.year")
    await call_error(session, "search", {"query": QUESTION, "k": 0}, "k must be between 1 and 1000")
    await call_error(session, "search", {"query": QUESTION, "group_by": "doc_id", "group_size": 0},
                     "group_size must be between 1 and 100")
    await call_error(session, "search", {"query": QUESTION, "expand": 99}, "expand must be between 0 and 10")
    await call_error(session, "search", {"query": QUESTION, "max_tokens": 0}, "max_tokens must be between 1")
    await call_error(session, "search", {"query": QUESTION, "diversity": 2}, "diversity must be between 0 and 1")
    await call_error(session, "search", {"query": QUESTION, "group_by": "colour"}, "colour")
    await call_error(session, "search", {"query": "   "}, "query must not be empty")
    await call_error(session, "search", {"query": 5}, "invalid arguments")
    await call_error(session, "search", {"question": QUESTION}, "invalid arguments")
    await call_error(session, "add_documents", {"documents": [{"text": "  "}]}, "text")
    await call_error(session, "add_documents", {"documents": [{"text": "x"}], "collection": "nope"}, "nope")
    await call_error(session, "get_document", {"id": first["doc_id"], "start": 10, "end": 5}, "start..end")
    again = await call_ok(session, "list_collections", {})
    assert again.structured_content["collections"][0]["name"] == "default"
    print(f"{label}: every tool answered, 16 failures came back as tool errors, the session lives on")


async def over_stdio(binary, repo):
    data = tempfile.mkdtemp(prefix="semdex-mcp-stdio-")
    params = StdioServerParameters(
        command=binary,
        args=["mcp", "--data-dir", data, "--seeds", os.path.join(repo, "seeds")],
        cwd=repo,
        env={"RUST_LOG": "warn"},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")


class Server:
    """`semdex serve` on an ephemeral port, ready."""

    def __init__(self, binary, repo, *extra):
        data = tempfile.mkdtemp(prefix="semdex-mcp-http-")
        self.process = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", data,
             "--seeds", os.path.join(repo, "seeds"), *extra],
            cwd=repo, stderr=subprocess.PIPE, text=True,
        )
        found = {}
        ready = threading.Event()

        def pump():
            for line in self.process.stderr:
                sys.stderr.write(line)
                m = re.search(r"addr=(\S+)", line)
                if m and "addr" not in found:
                    found["addr"] = m.group(1)
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        assert ready.wait(120), "server did not report its address"
        self.base = f"http://{found['addr']}"
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health") as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            assert time.time() < deadline, "server never became healthy"
            time.sleep(0.1)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        assert code == 0, f"server exited with {code}"


async def over_http(base, label, headers=None):
    client = create_mcp_http_client(headers=headers)
    async with client:
        async with streamable_http_client(f"{base}/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, label)


async def refused_without_key(base):
    """No session starts without the key: the SDK's initialize fails on the 401."""
    try:
        async with create_mcp_http_client() as client:
            async with streamable_http_client(f"{base}/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await asyncio.wait_for(session.initialize(), 60)
    except BaseException as e:  # the SDK raises inside its task group (an exception group)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        causes = []

        def flatten(error):
            causes.append(error)
            for inner in getattr(error, "exceptions", ()):
                flatten(inner)

        flatten(e)
        described = " | ".join(f"{type(c).__name__}: {c}" for c in causes)
        # The SDK reports a non-JSON-RPC error status as an MCPError (raw_post checks the 401).
        assert any(isinstance(c, MCPError) for c in causes), described
        print(f"http without the key: refused ({described[-120:]})")
        return
    raise AssertionError("an MCP session started without the API key")


def raw_post(base, headers):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    request = urllib.request.Request(f"{base}/mcp", data=body, headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    binary = os.path.abspath(sys.argv[1])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    asyncio.run(over_stdio(binary, repo))

    open_server = Server(binary, repo)
    try:
        asyncio.run(over_http(open_server.base, "http"))
    finally:
        open_server.stop()

    key = "mcp-test-key"
    keyed = Server(binary, repo, "--api-key", key)
    try:
        status, body = raw_post(keyed.base, {})
        assert status == 401, (status, body)
        assert json.loads(body)["error"]["code"] == "unauthorized", body
        asyncio.run(refused_without_key(keyed.base))
        asyncio.run(over_http(keyed.base, "http with the key", {"Authorization": f"Bearer {key}"}))
    finally:
        keyed.stop()
    print("mcp client test passed")


if __name__ == "__main__":
    main()
