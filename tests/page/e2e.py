"""The browser page at / in a real Chromium, against a real `semdex serve`.

Run by .ci/run inside a throwaway venv that has `playwright` installed, with Debian's chromium:

    python tests/page/e2e.py target/release/semdex

Starts the server over a fresh data directory (it ingests seeds/), then does what a person does:
asks "Where did Putin and Kim meet?", opens the document of the Vostochny passage, adds
documents through the form (pasted text with CJK and emoji, and files), finds one by a search,
deletes it, and sees the API's 422, 429 and 503 errors in words. Then it restarts the server
with --api-key and tries a wrong key and the right one. Screenshots at desktop (1280x800) and
phone (390x844) widths go to target/page-screenshots/.
"""

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
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOTS = os.path.join(REPO, "target", "page-screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}
QUESTION = "Where did Putin and Kim meet?"
SEED_ID = "seeds/putin-kim-summit.txt"
KEY = "correct-horse-battery-staple"

# A document whose passages sit after many multi-byte characters, so that a page treating the
# API's UTF-8 byte offsets as JavaScript string indexes would show the wrong text.
CJK_ID = "notes/月面 🚀.md"
CJK_TEXT = (
    "月面探査の記録。" * 40 + "\n\n"
    + "🚀🌕✨ Mission log, day one: the crew checked the rover, the drills and the radio. "
      "Everything 👍 worked. " * 4 + "\n\n"
    + "The Artemis programme plans to land astronauts near the lunar south pole, where water ice "
      "hides in permanently shadowed craters that never see sunlight.\n\n"
    + "東京で記者会見が開かれた。" * 20 + "\n"
)


class Server:
    """`semdex serve` on an ephemeral port over a fresh data directory."""

    def __init__(self, binary, *extra):
        self.data = tempfile.mkdtemp(prefix="semdex-page-")
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", self.data, *extra],
            cwd=REPO, stderr=subprocess.PIPE, text=True,
        )
        found = {}
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                if os.environ.get("PAGE_E2E_SERVER_LOG"):
                    sys.stderr.write(line)
                m = re.search(r"listening.*addr=(\S+)|addr=(\S+).*listening", line)
                if m and "addr" not in found:
                    found["addr"] = m.group(1) or m.group(2)
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        assert ready.wait(180), "server did not report its address"
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
            time.sleep(0.2)

    def api(self, path, key=None, body=None):
        """GET `path`, or POST `body` as JSON to it."""
        req = urllib.request.Request(self.base + path)
        if body is not None:
            req.data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        shutil.rmtree(self.data, ignore_errors=True)
        assert code == 0, f"server exited with {code}"


def shot(page, name, full_page=False):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=full_page)
    print(f"  screenshot {os.path.relpath(path, REPO)}")


def watch_console(page, problems):
    """Collects page errors and console errors, except the browser's own line for a 4xx/5xx
    response (those are the API errors the test provokes on purpose)."""
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def on_console(msg):
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            problems.append(f"console error: {msg.text}")

    page.on("console", on_console)


def no_horizontal_scroll(page):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


def search(page, question):
    box = page.get_by_label("Ask a question about your documents")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#search-status")).to_contain_text("found", timeout=60_000)
    expect(page.locator(".results")).not_to_have_attribute("aria-busy", "true")


def hit_texts(page):
    return page.locator(".hit .passage").all_inner_texts()


def check_search(page, server, hybrid):
    loads = []
    for _ in range(5):
        page.goto(server.base + "/")
        loads.append(page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return {ttfb: n.responseStart - n.requestStart, dcl: n.domContentLoadedEventEnd,"
            " load: n.loadEventEnd}; })()"))
    median = sorted(loads, key=lambda t: t["load"])[len(loads) // 2]
    print(f"  page load, median of {len(loads)}: first byte {median['ttfb']:.1f} ms, "
          f"DOMContentLoaded {median['dcl']:.1f} ms, load {median['load']:.1f} ms "
          f"(first load {loads[0]['load']:.1f} ms)")
    # The issue asks for under 100 ms from localhost; CI machines are shared, so allow slack.
    assert median["load"] < 300, f"the page took {median['load']:.0f} ms to load"
    assert page.evaluate("document.activeElement.id") == "q", "the question box has focus on load"
    expect(page.locator("#corpus")).to_contain_text("1 document")

    search(page, QUESTION)
    assert "q=Where+did+Putin+and+Kim+meet%3F" in page.url, page.url
    passages = hit_texts(page)
    assert len(passages) == 5, passages
    vostochny = [i for i, p in enumerate(passages) if "Vostochny" in p]
    assert vostochny, f"no Vostochny passage among {passages}"
    if hybrid:
        # Dense search puts it fifth; hybrid lifts it into the top three (the goal of
        # first place is not met yet: benches/README.md, Hybrid retrieval).
        assert vostochny[0] < 3, f"with hybrid search the Vostochny passage is at {vostochny[0]}"
    first = page.locator(".hit").nth(vostochny[0])
    marks = [m.lower() for m in first.locator("mark").all_inner_texts()]
    assert any(m.startswith("putin") for m in marks) and "kim" in marks, marks
    assert re.fullmatch(r"0\.\d{3}", first.locator(".score-value").inner_text()), "score shown"
    # The context around the passage comes from the document, by byte offsets.
    seed = server.api(f"/documents/{urllib.request.quote(SEED_ID, safe='')}")["text"]
    hit = server.api("/search?" + urllib.parse.urlencode({"q": QUESTION, "k": 5}))["results"][vostochny[0]]
    raw = seed.encode()
    before = raw[:hit["start"]].decode()
    after = raw[hit["end"]:].decode()
    shown_before = first.locator(".ctx.before").inner_text()
    shown_after = first.locator(".ctx.after").inner_text()
    assert shown_before or shown_after, "context around the passage"
    if before.strip():
        tail = " ".join(before.split()[-4:])
        assert " ".join(shown_before.split()).endswith(tail), (shown_before[-80:], tail)
    if after.strip():
        head = " ".join(after.split()[:4])
        assert " ".join(shown_after.split()).startswith(head), (shown_after[:80], head)
    no_horizontal_scroll(page)

    # The URL can be shared: loading it runs the same search.
    page.goto(page.url)
    expect(page.locator("#search-status")).to_contain_text("found", timeout=60_000)
    assert page.get_by_label("Ask a question about your documents").input_value() == QUESTION
    assert hit_texts(page) == passages
    return vostochny[0]


def check_document(page, rank):
    """Opens the document of a result with the keyboard only."""
    link = page.locator(".hit .doc-link").nth(rank)
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#document-heading")).to_have_text(SEED_ID)
    hit = page.locator(".block.found")
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text("Vostochny")
    assert page.evaluate("document.activeElement.classList.contains('found')"), "found passage has focus"
    assert "doc=" in page.url
    blocks = page.locator(".document-text .block")
    expect(page.locator("#document-facts")).to_contain_text("passage")
    facts = page.locator("#document-facts").inner_text()
    n = int(re.match(r"(\d+) passage", facts).group(1))
    assert blocks.count() == n, f"{blocks.count()} blocks for {n} passages"
    assert hit.locator("mark").count() > 0, "question words are marked in the document"


def check_add_find_delete(page, server, tmp):
    page.get_by_role("link", name="Documents").click()
    expect(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible()
    expect(page.locator("#documents .doc-link")).to_have_text([SEED_ID])

    # Bad metadata is caught in the page, in words, next to the field.
    page.locator("#add-id").fill(CJK_ID)
    page.get_by_label("Text", exact=True).fill(CJK_TEXT)
    meta = page.get_by_label("Metadata")
    meta.fill('{"topic": space}')
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-meta-error")).to_contain_text("not valid JSON")
    expect(meta).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("document.activeElement.id") == "add-meta"
    meta.fill('["a list"]')
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-meta-error")).to_contain_text("must be a JSON object")

    meta.fill('{"topic": "space", "lang": "ja"}')
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator(".progress-row").first
    expect(row).to_contain_text("Added as", timeout=120_000)
    expect(page.locator("#documents .doc-link")).to_have_count(2)
    expect(page.locator("#corpus")).to_contain_text("2 documents")

    # Files: one request each, with progress; one of them large.
    quokka = os.path.join(tmp, "quokka.md")
    with open(quokka, "w", encoding="utf-8") as f:
        f.write("# Quokkas\n\nThe quokka is a small wallaby that lives on Rottnest Island off Perth. "
                "Visitors photograph its smiling face.\n")
    big = os.path.join(tmp, "ledger.txt")
    with open(big, "w", encoding="utf-8") as f:
        for i in range(400):
            f.write(f"Entry {i}: the harbour master logged a cargo of timber, wool and copper "
                    f"bound for port number {i % 17}. ")
            if i % 10 == 9:
                f.write("\n\n")
    page.get_by_label("Metadata").fill("")
    page.get_by_label("Files").set_input_files([quokka, big])
    page.get_by_role("button", name="Add", exact=True).click()
    rows = page.locator(".progress-row")
    expect(rows).to_have_count(2)
    shot(page, "documents-uploading-desktop")
    expect(rows.nth(0)).to_contain_text("quokka.md")
    expect(rows.nth(1)).to_contain_text(re.compile("Uploading|Indexing|Waiting|Added"))
    expect(rows.nth(1)).to_contain_text("Added as “ledger.txt”", timeout=180_000)
    expect(rows.nth(0)).to_contain_text("Added as “quokka.md”, 1 passage")
    expect(page.locator("#documents .doc-link")).to_have_count(4)
    shot(page, "documents-desktop", full_page=True)

    # A server-side refusal (422: an id over the limit) shows in words; the form stays usable.
    page.locator("#add-id").fill("x" * 600)
    page.get_by_label("Text", exact=True).fill("A document with far too long an id.")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(".progress-row.failed")).to_contain_text("did not accept")
    expect(page.locator(".progress-row.failed")).to_contain_text("the limit is 512")
    expect(page.locator("#notice")).to_contain_text("could not be added")
    page.locator("#add-id").fill("")
    page.get_by_label("Text", exact=True).fill("")

    # Find the pasted document by a search: the passage and its context come from byte offsets
    # into a text full of CJK and emoji.
    page.get_by_role("link", name="Search").click()
    search(page, "Where is there water ice on the Moon?")
    first = page.locator(".hit").first
    expect(first.locator(".doc-link")).to_have_text(CJK_ID)
    api_hit = server.api("/search?" + urllib.parse.urlencode(
        {"q": "Where is there water ice on the Moon?", "k": 1}))["results"][0]
    assert api_hit["doc_id"] == CJK_ID
    assert first.locator(".passage").inner_text().split() == api_hit["text"].split()
    raw = CJK_TEXT.encode()
    assert raw[:api_hit["start"]].decode() != CJK_TEXT[:api_hit["start"]], "offsets differ from indexes"
    want_before = " ".join(raw[:api_hit["start"]].decode().split())[-30:]
    shown_before = " ".join(first.locator(".ctx.before").inner_text().split())
    assert shown_before.endswith(want_before), (shown_before[-60:], want_before)
    expect(first.locator(".chips")).to_contain_text("topic: space")
    shot(page, "search-cjk-desktop")

    # Its document, with the passages marked.
    first.locator(".doc-link").click()
    expect(page.locator("#document-heading")).to_have_text(CJK_ID)
    expect(page.locator(".block.found")).to_contain_text("permanently shadowed craters")
    shown = "".join(page.locator(".document-text .block-text").all_inner_texts())
    assert "".join(shown.split()) == "".join(CJK_TEXT.split()), "the whole text, in order"
    expect(page.locator("#document-metadata")).to_contain_text("space")

    # Search for the uploaded file, then delete it and search again.
    page.get_by_role("link", name="Search").click()
    search(page, "Which animal lives on Rottnest Island?")
    # A Markdown file's first heading is its title; the id and passage follow it.
    expect(page.locator(".hit .doc-link").first).to_have_text("Quokkas")
    expect(page.locator(".hit .where").first).to_contain_text("quokka.md")
    page.get_by_role("link", name="Documents").click()
    page.get_by_role("button", name="Delete quokka.md").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("quokka.md")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#notice")).to_contain_text("Deleted “quokka.md”")
    expect(page.locator("#documents .doc-link")).to_have_count(3)
    page.get_by_role("link", name="Search").click()
    search(page, "Which animal lives on Rottnest Island?")
    assert "quokka.md" not in page.locator(".hit .doc-link").all_inner_texts()


def check_files_and_jobs(page, server):
    """Real files through the page: a PDF large enough to be a job (the server runs with
    --job-threshold-bytes 100000) whose hits cite their pages, a scanned PDF refused in words,
    and a file dropped on the form."""
    page.get_by_role("link", name="Documents").click()
    docs = os.path.join(REPO, "tests/data/documents")
    page.get_by_label("Files").set_input_files([
        os.path.join(docs, "libreoffice-os.path.pdf"), os.path.join(docs, "scanned-no-text.pdf")])
    page.get_by_role("button", name="Add", exact=True).click()
    rows = page.locator(".progress-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Added as “libreoffice-os.path.pdf”", timeout=300_000)
    expect(rows.nth(1)).to_have_class(re.compile("failed"), timeout=120_000)
    expect(rows.nth(1)).to_contain_text("no text layer")
    shot(page, "documents-files-desktop")

    # Dropped on the form: as if chosen.
    dropped = page.evaluate_handle("""(text) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], 'numbat.md', { type: 'text/markdown' }));
        return dt;
    }""", "# Numbats\n\nThe numbat eats termites in the eucalypt woodlands of Western Australia.\n")
    page.dispatch_event("#add-form", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#add-form")).to_have_class(re.compile("dropping"))
    page.dispatch_event("#add-form", "drop", {"dataTransfer": dropped})
    expect(page.locator("#notice")).to_contain_text("1 file ready")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator(".progress-row").first).to_contain_text("Added as “numbat.md”", timeout=120_000)

    page.get_by_role("link", name="Search").click()
    search(page, "normalize the case of a pathname")
    first = page.locator(".hit").first
    expect(first.locator(".doc-link")).to_contain_text("os.path")
    expect(first.locator(".where")).to_contain_text(re.compile(r"pages? \d"))
    shot(page, "search-pdf-pages-desktop")


def failing(status, code, message):
    """A route handler answering like semdex does when it refuses a request."""
    def fulfill(route):
        route.fulfill(status=status, content_type="application/json",
                      headers={"Retry-After": "2"},
                      body=json.dumps({"error": {"code": code, "message": message}}))
    return fulfill


def check_api_errors(page, server):
    """429 and 503 from the API (provoked by intercepting /search) are shown in words, and the
    page keeps working."""
    page.goto(server.base + "/")
    for status, code, message, expected in [
        (429, "overloaded", "embedding queue full: 1024 inputs waiting", "busy"),
        (503, "not_ready", "the model and index are still loading", "cannot answer right now"),
        (422, "invalid_request", "k must be between 1 and 1000", "did not accept"),
    ]:
        page.route("**/search?*", failing(status, code, message))
        box = page.get_by_label("Ask a question about your documents")
        box.fill(f"provoke {status}")
        box.press("Enter")
        notice = page.locator("#notice")
        expect(notice).to_contain_text(expected)
        expect(notice).to_contain_text(message[:20], ignore_case=True)
        if status == 429:
            expect(notice).to_contain_text("2 seconds")
            shot(page, "error-429-desktop")
        page.unroute("**/search?*")
    search(page, QUESTION)
    expect(page.locator("#notice")).to_be_empty()


def check_modes_and_collections(page, server):
    """The mode selector, each hit's score parts and the collection selector, against the
    real server: a second collection made through the API is searched on its own."""
    server.api("/collections", body={"name": "notes"})
    server.api("/collections/notes/documents", body={
        "id": "orbit-note", "text": "The weather satellite reached a polar orbit after the second stage fired."})
    page.goto(server.base + "/?q=" + urllib.parse.quote(QUESTION))
    expect(page.locator("#search-status")).to_contain_text("found", timeout=60_000)
    expect(page.get_by_label("Mode")).to_have_value("hybrid")
    parts = page.locator(".hit .parts").first
    for name in ("dense", "lexical", "rerank"):
        expect(parts).to_contain_text(name)
    expect(page.get_by_label("Collection")).to_be_visible()
    shot(page, "search-hybrid-desktop")
    page.get_by_label("Mode").select_option("dense")
    expect(page.locator(".hit .parts").first).not_to_contain_text("lexical")
    assert "mode=dense" in page.url, page.url
    page.get_by_label("Collection").select_option("notes")
    expect(page.locator(".hit")).to_have_count(1, timeout=60_000)
    expect(page.locator(".hit").first).to_contain_text("polar orbit")
    assert "c=notes" in page.url, page.url
    shot(page, "search-collection-desktop")
    page.get_by_label("Collection").select_option("default")
    expect(page.locator(".hit").first).not_to_contain_text("polar orbit")


def check_document_variants(page, server):
    """Overlapping passages (--chunk-overlap) and a server without the chunks route: the
    whole text is shown once, in order, either way."""
    doc_path = "/documents/" + urllib.parse.quote(SEED_ID, safe="")
    seed = server.api(doc_path)["text"]
    raw = seed.encode()
    chunks = server.api(doc_path + "/chunks")["chunks"]
    overlapping = []
    for i, c in enumerate(chunks):
        start = c["start"] if i == 0 else max(0, chunks[i - 1]["end"] - 60)
        while start > 0 and (raw[start] & 0xC0) == 0x80:
            start -= 1
        overlapping.append({**c, "start": start})
    words = "".join(seed.split())

    page.route("**/chunks", lambda route: route.fulfill(json={"id": SEED_ID, "chunks": overlapping}))
    page.goto(server.base + "/?doc=" + urllib.parse.quote(SEED_ID, safe="") + "&passage=2")
    expect(page.locator(".block.found")).to_have_count(1)
    expect(page.locator(".document-text .block")).to_have_count(len(chunks))
    assert page.locator(".document-text .shared").count() >= len(chunks) - 1
    shown = "".join(page.locator(".document-text .block-text").all_inner_texts())
    assert "".join(shown.split()) == words, "overlaps are shown once"
    page.unroute("**/chunks")

    page.route("**/chunks", failing(404, "not_found", "no route for GET"))
    page.goto(server.base + "/?doc=" + urllib.parse.quote(SEED_ID, safe=""))
    expect(page.locator(".document-text .block.plain")).to_have_count(1)
    shown = page.locator(".document-text .block-text").inner_text()
    assert "".join(shown.split()) == words, "without the chunks route, the plain text"
    expect(page.locator("#notice")).to_be_empty()
    page.unroute("**/chunks")


def check_phone(browser, server, problems):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    watch_console(page, problems)
    page.goto(server.base + "/")
    shot(page, "home-phone")
    search(page, QUESTION)
    no_horizontal_scroll(page)
    shot(page, "search-phone")
    page.locator(".hit .doc-link").first.click()
    expect(page.locator(".block.found")).to_have_count(1)
    no_horizontal_scroll(page)
    shot(page, "document-phone")
    page.get_by_role("link", name="Documents").click()
    expect(page.locator("#documents .doc-link").first).to_be_visible()
    no_horizontal_scroll(page)
    shot(page, "documents-phone", full_page=True)
    context.close()


def check_api_key(browser, server, problems):
    for name, options in [("desktop", DESKTOP), ("phone", PHONE)]:
        context = browser.new_context(**options)
        page = context.new_page()
        watch_console(page, problems)
        page.goto(server.base + "/")  # the page itself needs no key
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        expect(page.get_by_label("Ask a question about your documents")).to_be_attached()
        dialog.get_by_label("API key").fill("wrong-key")
        dialog.get_by_role("button", name="Use this key").click()
        expect(dialog.locator("#key-error")).to_contain_text("That API key was not accepted")
        expect(dialog).to_be_visible()
        shot(page, f"api-key-wrong-{name}")
        dialog.get_by_label("API key").fill(KEY)
        dialog.get_by_role("button", name="Use this key").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#corpus")).to_contain_text("1 document")
        search(page, QUESTION)
        assert any("Vostochny" in p for p in hit_texts(page))
        # Kept for the tab: a reload does not ask again.
        page.reload()
        expect(page.locator("#corpus")).to_contain_text("1 document")
        expect(dialog).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('semdex.apiKey')") == KEY
        context.close()

    # Cancelling leaves a usable page that says why nothing shows, and can ask again.
    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    watch_console(page, problems)
    page.goto(server.base + "/")
    page.locator("#key-dialog").get_by_role("button", name="Cancel").click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text("needs an API key")
    expect(page.locator("#key-dialog")).to_be_hidden()
    notice.get_by_role("button", name="Enter API key").click()
    page.locator("#key-dialog").get_by_label("API key").fill(KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#corpus")).to_contain_text("1 document")
    context.close()


def main():
    # Shared CI machines can be slow: give every expectation time before it fails.
    expect.set_options(timeout=20_000)
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "target/release/semdex"))
    problems = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print("== the page against a server without an API key")
        server = Server(binary, "--job-threshold-bytes", "100000")
        try:
            hybrid = "search" in server.api("/info")
            context = browser.new_context(**DESKTOP)
            page = context.new_page()
            page.set_default_timeout(20_000)
            watch_console(page, problems)
            print("- search")
            rank = check_search(page, server, hybrid)
            shot(page, "search-desktop")
            print("- open the document")
            check_document(page, rank)
            shot(page, "document-desktop")
            print("- add, find, delete")
            check_add_find_delete(page, server, tmp)
            print("- files, jobs and drag and drop")
            check_files_and_jobs(page, server)
            print("- API errors in words")
            check_api_errors(page, server)
            print("- modes, score parts, collections")
            check_modes_and_collections(page, server)
            print("- overlapping passages, and no chunks route")
            check_document_variants(page, server)
            context.close()
            print("- phone width")
            check_phone(browser, server, problems)
        finally:
            server.stop()

        print("== the page against a server with --api-key")
        server = Server(binary, "--api-key", KEY)
        try:
            check_api_key(browser, server, problems)
        finally:
            server.stop()
        browser.close()
    assert not problems, "\n".join(problems)
    print("page e2e test passed")


if __name__ == "__main__":
    main()
