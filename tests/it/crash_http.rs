//! Crash over HTTP: the real `semdex serve` binary is SIGKILLed while a client streams
//! `POST /documents` at it. After a restart every document it acknowledged with a 2xx is
//! there, whole (all its passages, searchable), nothing is partial, and the index holds exactly
//! the stored passages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use semdex::chunk::{ChunkOptions, Chunker};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

#[test]
fn sigkill_during_http_ingest_keeps_every_acknowledged_document_whole() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = crate::common::serve_binary(data.path());

    // Documents of a few passages each, posted one after another until the server dies.
    let texts = crate::common::seed_windows(400, 300);
    let acked: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, texts, base) = (acked.clone(), stop.clone(), texts.clone(), base.clone());
        std::thread::spawn(move || {
            let c = client();
            for (i, text) in texts.iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("doc-{i:03}");
                let Ok(r) = c
                    .post(format!("{base}/documents"))
                    .json(&json!({"id": id, "text": text, "metadata": {"n": i}}))
                    .send()
                else {
                    break; // the server is gone
                };
                if !r.status().is_success() {
                    break;
                }
                let Ok(body) = r.json::<Value>() else { break };
                let chunks = body["documents"][0]["chunks"].as_u64().unwrap_or(0) as usize;
                acked.lock().unwrap().push((id, chunks));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "ingest made no progress");
        assert!(!writer.is_finished(), "the writer stopped early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, with a request most likely in flight
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < texts.len(), "the kill came mid-stream");

    let (mut child, base) = crate::common::serve_binary(data.path());
    let c = client();
    let chunker = Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        ChunkOptions::default(),
    )
    .unwrap();
    // Every acknowledged document is there, with the passages it was acknowledged with, and
    // each of them is found by its own text.
    for (id, chunks) in &acked {
        let i: usize = id.trim_start_matches("doc-").parse().unwrap();
        let doc: Value = c
            .get(format!("{base}/documents/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(doc["text"], texts[i], "{id} lost or changed");
        assert_every_passage_found(
            &c,
            &base,
            id,
            &texts[i],
            *chunks,
            |passage| json!({"query": passage, "k": 1, "exact": true, "filter": {"doc_ids": [id]}}),
        );
    }
    // Nothing is partial, acknowledged or not: every stored document has every passage the
    // chunker makes of its text.
    let page: Value = c
        .get(format!("{base}/documents?limit=1000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let listed = page["documents"].as_array().unwrap();
    assert!(listed.len() >= acked.len());
    let mut passages = 0;
    for summary in listed {
        let id = summary["id"].as_str().unwrap();
        let doc: Value = c
            .get(format!("{base}/documents/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let expected = chunker.chunk(id, doc["text"].as_str().unwrap()).len();
        assert_eq!(doc["chunks"], expected, "{id} is whole");
        passages += expected;
    }
    // The index agrees with the store.
    let info: Value = c
        .get(format!("{base}/info"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["documents"], listed.len());
    assert_eq!(info["chunks"], passages);
    assert_eq!(info["index"]["vectors"], passages, "index = store");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Asserts that document `id` (of `text`) has its `chunks` passages and that each is the top
/// hit of the search `request` makes of the passage's own text.
fn assert_every_passage_found(
    c: &Client,
    base: &str,
    id: &str,
    text: &str,
    chunks: usize,
    request: impl Fn(&str) -> Value,
) {
    let spans: Value = c
        .get(format!("{base}/documents/{id}/chunks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let spans = spans["chunks"].as_array().unwrap();
    assert_eq!(spans.len(), chunks, "{id} has all its passages");
    for span in spans {
        let (start, end) = (
            span["start"].as_u64().unwrap() as usize,
            span["end"].as_u64().unwrap() as usize,
        );
        let hits: Value = c
            .post(format!("{base}/search"))
            .json(&request(&text[start..end]))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            hits["results"][0]["chunk_id"], span["chunk_id"],
            "{id}'s passage {} is found",
            span["index"]
        );
    }
}

/// Posts one document; returns its passage count once the server acknowledged it.
fn post_document(c: &Client, base: &str, id: &str, text: &str) -> usize {
    let r = c
        .post(format!("{base}/documents"))
        .json(&json!({"id": id, "text": text}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{id}: {}", r.status());
    let body: Value = r.json().unwrap();
    body["documents"][0]["chunks"].as_u64().unwrap() as usize
}

#[test]
fn sigkill_during_a_graph_freeze_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let hook = tempfile::tempdir().unwrap();
    let pause = format!("segment.meta.json:{}", hook.path().display());
    // With --exact-below 1 the first write makes the graph due: after the first request, the
    // server freezes its new vectors into a segment in the background, and the hook stops it
    // with the segment's files written, just before they become current.
    let (mut child, base) = crate::common::serve_binary_env(
        data.path(),
        &["--exact-below", "1"],
        &[("SEMDEX_PAUSE_DUMP", pause.as_str())],
    );
    let c = client();
    let texts = crate::common::seed_windows(12, 80);
    let mut acked = Vec::new();
    acked.push((
        "first".to_string(),
        post_document(&c, &base, "first", &texts[0]),
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !hook.path().join("paused").exists() {
        assert!(Instant::now() < deadline, "the freeze never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let segment = data.path().join("index/segment");
    assert!(
        std::fs::read_dir(&segment).unwrap().any(|e| e
            .unwrap()
            .path()
            .join("vectors.f32")
            .is_file()),
        "the frozen graph's files are written"
    );
    assert!(
        !segment.join("segment.meta.json").exists(),
        "not yet current"
    );
    // Writes and searches go on during a freeze.
    for (i, text) in texts.iter().enumerate().skip(1) {
        let id = format!("during-{i}");
        acked.push((id.clone(), post_document(&c, &base, &id, text)));
    }
    let hits: Value = c
        .get(format!("{base}/search?q=artillery&k=3&mode=dense"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(hits["results"].as_array().unwrap().len(), 3);
    child.kill().unwrap(); // SIGKILL mid-freeze
    child.wait().unwrap();

    let (mut child, base) = crate::common::serve_binary(data.path());
    let mut passages = 0;
    for (id, chunks) in &acked {
        passages += chunks;
        let i = if id == "first" {
            0
        } else {
            id.trim_start_matches("during-").parse().unwrap()
        };
        assert_every_passage_found(
            &c,
            &base,
            id,
            &texts[i],
            *chunks,
            |passage| json!({"query": passage, "k": 1, "mode": "dense"}),
        );
    }
    let info: Value = c
        .get(format!("{base}/info"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["chunks"], passages);
    assert_eq!(info["index"]["vectors"], passages, "index = store");
    child.kill().unwrap();
    child.wait().unwrap();
}
