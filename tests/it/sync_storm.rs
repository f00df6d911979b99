//! A RAG pipeline keeping its index in sync, as issue 21 reproduced it: clients posting
//! batches of documents over a small set of ids, clients deleting those ids, one searching, all
//! at once over real HTTP, on each backend. Before the storage lock order, every write hung
//! within seconds (a delete held the claims while waiting for the writer; a writer held the
//! writer while waiting for the claims).
//!
//! Hooks under the backends' write locks (`ingest.commit`, `delete.commit`) yield the
//! processor while the lock is held, so that the other clients pile up behind it: the storm
//! interleaves thousands of times in seconds rather than needing minutes. A hang fails the
//! test at a deadline (every request has a client timeout) instead of timing out CI.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::blocking::Client;
use semdex::api::ApiConfig;
use semdex::collections::Collections;
use semdex::queue::QueueOptions;
use semdex::service::ServiceOptions;
use serde_json::{Value, json};

use crate::common::Served;

/// Document ids the clients fight over, per collection.
const IDS: usize = 40;
/// Documents per ingest request.
const BATCH: usize = 12;
/// Ingest requests each ingesting client sends.
const BATCHES: usize = 25;
/// Passage size of the storm's collections: a document is several passages, so a partial
/// write would show.
const CHUNK_TOKENS: usize = 32;
/// Longest a request may go unanswered before the storm counts it as hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The text of version `version` of document `id`: real sentences, several passages long.
fn text(id: &str, version: u64) -> String {
    let windows = crate::common::seed_windows(80, 24);
    let pick = |k: u64| windows[((version * 7 + k * 13) % windows.len() as u64) as usize].clone();
    format!(
        "Document {id}, version {version}. {} {} {}",
        pick(1),
        pick(2),
        pick(3)
    )
}

fn id(i: usize) -> String {
    format!("doc-{i:02}")
}

/// What the clients saw, by request kind.
#[derive(Default)]
struct Tally {
    /// (kind, status) → count; a status of 0 is no answer at all.
    statuses: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Everything that was not an allowed answer.
    failures: Mutex<Vec<String>>,
    /// Every version written of each (collection, id), for checking hits and documents.
    versions: Mutex<HashMap<(String, String), Vec<u64>>>,
    next_version: AtomicU64,
}

impl Tally {
    fn record(
        &self,
        kind: &'static str,
        status: u16,
        allowed: &[u16],
        detail: impl FnOnce() -> String,
    ) {
        *self.statuses.lock().entry((kind, status)).or_default() += 1;
        if !allowed.contains(&status) {
            self.failures
                .lock()
                .push(format!("{kind}: status {status}: {}", detail()));
        }
    }

    fn answered(&self, kind: &str) -> u64 {
        self.statuses
            .lock()
            .iter()
            .filter(|((k, status), _)| *k == kind && *status != 0)
            .map(|(_, n)| n)
            .sum()
    }
}

fn client() -> Client {
    Client::builder().timeout(ANSWER_WITHIN).build().unwrap()
}

/// Sends a request; its status (0 when no answer came) and body.
fn send(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    match request.send() {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().unwrap_or(Value::Null))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Work done once while the storm runs.
type Middle<'a> = Box<dyn FnOnce(&Tally) + Send + 'a>;

/// Runs the storm against `served` over `collections` (each created first if absent);
/// `middle`, if given, runs once the storm is a third through, on its own thread (a collection
/// created and deleted while the clients work). Returns the tally and the seconds it took.
fn storm(served: &Served, collections: &[String], middle: Option<Middle<'_>>) -> (Arc<Tally>, f64) {
    let http = client();
    for name in collections {
        let (status, body) = send(http.post(served.url("/collections")).json(&json!({
            "name": name,
            "chunk_tokens": CHUNK_TOKENS,
            "chunk_overlap": 0,
        })));
        assert!([201, 409].contains(&status), "{status} {body}");
    }
    let tally = Arc::new(Tally::default());
    let ingesting = AtomicU64::new(2);
    let done = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for client_no in 0..2u64 {
            let (tally, ingesting, progress) = (&tally, &ingesting, &progress);
            s.spawn(move || {
                let http = client();
                let mut state = client_no * 7919 + 1;
                let mut next = || {
                    // xorshift: a fixed, different sequence per client.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                for _ in 0..BATCHES {
                    let collection = &collections[(next() % collections.len() as u64) as usize];
                    let mut chosen: Vec<usize> = (0..IDS).collect();
                    for i in 0..BATCH {
                        let j = i + (next() as usize % (IDS - i));
                        chosen.swap(i, j);
                    }
                    let docs: Vec<Value> = chosen[..BATCH]
                        .iter()
                        .map(|&i| {
                            let version = tally.next_version.fetch_add(1, Ordering::SeqCst);
                            tally
                                .versions
                                .lock()
                                .entry((collection.clone(), id(i)))
                                .or_default()
                                .push(version);
                            json!({"id": id(i), "text": text(&id(i), version)})
                        })
                        .collect();
                    let (status, body) = send(
                        http.post(served.url(&format!("/collections/{collection}/documents")))
                            .json(&json!({ "documents": docs })),
                    );
                    tally.record("ingest", status, &[200, 404, 429], || body.to_string());
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                ingesting.fetch_sub(1, Ordering::SeqCst);
            });
        }
        for client_no in 0..3u64 {
            let (tally, ingesting) = (&tally, &ingesting);
            s.spawn(move || {
                let http = client();
                let mut n = client_no;
                while ingesting.load(Ordering::SeqCst) > 0 {
                    n += 3;
                    let collection = &collections[(n / 7) as usize % collections.len()];
                    let target = id((n * 11 % IDS as u64) as usize);
                    let (status, body) = send(http.delete(
                        served.url(&format!("/collections/{collection}/documents/{target}")),
                    ));
                    tally.record("delete", status, &[200, 404, 429], || body.to_string());
                }
            });
        }
        {
            let (tally, ingesting) = (&tally, &ingesting);
            s.spawn(move || {
                let http = client();
                let questions = [
                    "Where did Putin and Kim meet?",
                    "What did they discuss about the railway?",
                    "cosmodrome",
                ];
                let mut n = 0usize;
                while ingesting.load(Ordering::SeqCst) > 0 {
                    n += 1;
                    let collection = &collections[n % collections.len()];
                    let (status, body) = send(
                        http.post(served.url(&format!("/collections/{collection}/search")))
                            .json(&json!({"query": questions[n % questions.len()], "k": 10})),
                    );
                    tally.record("search", status, &[200, 404, 429], || body.to_string());
                    if status == 200 {
                        check_hits(tally, collection, &body);
                    }
                }
            });
        }
        if let Some(middle) = middle {
            let (tally, progress, done) = (&tally, &progress, &done);
            s.spawn(move || {
                // A third of the way through (counted in requests answered, not in time).
                while progress.load(Ordering::SeqCst) < (2 * BATCHES / 3) as u64
                    && !done.load(Ordering::SeqCst)
                {
                    std::thread::yield_now();
                }
                middle(tally);
            });
        }
        while ingesting.load(Ordering::SeqCst) > 0 {
            std::thread::park_timeout(Duration::from_millis(100));
        }
        done.store(true, Ordering::SeqCst);
    });
    (tally, started.elapsed().as_secs_f64())
}

/// Every hit is a passage of a version of its document that some client wrote.
fn check_hits(tally: &Tally, collection: &str, body: &Value) {
    for hit in body["results"].as_array().into_iter().flatten() {
        let doc = hit["doc_id"].as_str().unwrap_or_default().to_string();
        let passage = hit["text"].as_str().unwrap_or_default();
        let versions = tally
            .versions
            .lock()
            .get(&(collection.to_string(), doc.clone()))
            .cloned()
            .unwrap_or_default();
        if !versions.iter().any(|&v| text(&doc, v).contains(passage)) {
            tally.failures.lock().push(format!(
                "search in {collection}: a hit of {doc} that no version of it has: {passage:?}"
            ));
        }
    }
}

/// After the storm: a new write is answered at once, every stored document is a version some
/// client wrote with all of its passages, the indexes hold exactly the stored passages, and
/// searches return only passages of stored documents.
fn check_settled(served: &Served, tally: &Tally, collection: &str) {
    let http = client();
    let (status, body) = send(
        http.post(served.url(&format!("/collections/{collection}/documents")))
            .json(&json!({"id": "after", "text": text("after", 0)})),
    );
    assert_eq!(status, 200, "a write after the storm: {body}");
    let (status, body) =
        send(http.delete(served.url(&format!("/collections/{collection}/documents/after"))));
    assert_eq!(status, 200, "{body}");

    let engine = served.collections.engine_blocking(collection).unwrap();
    let chunker = semdex::chunk::Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        engine.options().chunk,
    )
    .unwrap();
    let documents = engine.documents(1000, 0).unwrap();
    let mut passages = 0;
    for summary in &documents {
        let stored = engine.document(&summary.id).unwrap();
        let versions = tally
            .versions
            .lock()
            .get(&(collection.to_string(), summary.id.clone()))
            .cloned()
            .unwrap_or_default();
        assert!(
            versions
                .iter()
                .any(|&v| text(&summary.id, v) == stored.text),
            "{collection}/{}: stored text is no version a client wrote",
            summary.id
        );
        let spans = engine.document_chunks(&summary.id).unwrap();
        let expected = chunker.chunk(&summary.id, &stored.text);
        assert_eq!(
            spans.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|c| (c.start, c.end))
                .collect::<Vec<_>>(),
            "{collection}/{}: all of its passages",
            summary.id
        );
        passages += spans.len();
    }
    let stats = engine.stats().unwrap();
    assert_eq!(stats.documents, documents.len(), "{collection}");
    assert_eq!(stats.chunks, passages, "{collection}: passages");
    assert_eq!(
        stats.indexed, passages,
        "{collection}: vector index = store"
    );
    assert_eq!(
        stats.lexical.passages as usize, passages,
        "{collection}: lexical index = store"
    );
    let live: std::collections::HashSet<String> = documents.iter().map(|d| d.id.clone()).collect();
    for question in [
        "Where did Putin and Kim meet?",
        "railway",
        "cosmodrome launch",
    ] {
        for mode in ["dense", "lexical", "hybrid"] {
            let (status, body) = send(
                http.post(served.url(&format!("/collections/{collection}/search")))
                    .json(&json!({"query": question, "k": 20, "mode": mode})),
            );
            assert_eq!(status, 200, "{body}");
            for hit in body["results"].as_array().unwrap() {
                let doc = hit["doc_id"].as_str().unwrap();
                assert!(live.contains(doc), "{collection}: a hit of deleted {doc}");
                let stored = engine.document(doc).unwrap();
                let (start, end) = (
                    hit["start"].as_u64().unwrap() as usize,
                    hit["end"].as_u64().unwrap() as usize,
                );
                assert_eq!(&stored.text[start..end], hit["text"].as_str().unwrap());
            }
        }
    }
}

/// Hooks that yield under the write locks of every id the storm writes, for as long as they
/// are held.
fn widen_the_windows() -> Vec<semdex::hooks::Installed> {
    (0..IDS)
        .flat_map(|i| {
            ["ingest.commit", "delete.commit"]
                .map(|point| semdex::hooks::install(point, id(i), std::thread::yield_now))
        })
        .collect()
}

/// Prints the storm's figures (for the before/after report) and fails on anything a
/// client should not have seen.
fn report(name: &str, tally: &Tally, seconds: f64) {
    let statuses = tally.statuses.lock().clone();
    eprintln!(
        "storm {name}: {seconds:.1} s; answered per second: ingest {:.1}, delete {:.1}, search {:.1}; statuses {statuses:?}",
        tally.answered("ingest") as f64 / seconds,
        tally.answered("delete") as f64 / seconds,
        tally.answered("search") as f64 / seconds,
    );
    let failures = tally.failures.lock();
    assert!(
        failures.is_empty(),
        "{} requests were not answered as they should be, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(tally.answered("ingest") > 0 && tally.answered("delete") > 0);
}

fn served(collections: Collections) -> Served {
    crate::common::serve(
        Arc::new(collections),
        ApiConfig::default(),
        QueueOptions::default(),
        ServiceOptions::default(),
    )
}

/// Runs `test` and, if it panicked, leaves the server behind rather than wait for work that
/// may hang forever.
fn guarded(served: Served, test: impl FnOnce(&Served)) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&served))) {
        Ok(()) => drop(served),
        Err(panic) => {
            served.abandon();
            std::panic::resume_unwind(panic);
        }
    }
}

/// The storm on one collection of a backend's server.
pub fn one_collection(collections: Collections) {
    let _hooks = widen_the_windows();
    guarded(served(collections), |served| {
        let names = ["storm".to_string()];
        let (tally, seconds) = storm(served, &names, None);
        report("one collection", &tally, seconds);
        check_settled(served, &tally, "storm");
    });
}

/// The storm across two collections, with a third created while it runs, written to, and
/// deleted under the writers.
pub fn two_collections_and_one_that_comes_and_goes(collections: Collections) {
    let _hooks = widen_the_windows();
    guarded(served(collections), |served| {
        let names = ["storm-a".to_string(), "storm-b".to_string()];
        let middle = Box::new(|tally: &Tally| {
            let http = client();
            let (status, body) = send(http.post(served.url("/collections")).json(&json!({
                "name": "storm-c",
                "chunk_tokens": CHUNK_TOKENS,
            })));
            tally.record("create", status, &[201], || body.to_string());
            for round in 0..3u64 {
                let docs: Vec<Value> = (0..BATCH)
                    .map(|i| json!({"id": id(i), "text": text(&id(i), round)}))
                    .collect();
                let (status, body) = send(
                    http.post(served.url("/collections/storm-c/documents"))
                        .json(&json!({ "documents": docs })),
                );
                tally.record("ingest", status, &[200, 429], || body.to_string());
            }
            // Deleted while the other clients keep writing elsewhere, and an ingest into it
            // runs: that ingest ends 200 (done first) or 404 (the collection went first).
            std::thread::scope(|s| {
                let late = s.spawn(|| {
                    let docs: Vec<Value> = (0..BATCH)
                        .map(|i| json!({"id": id(i), "text": text(&id(i), 9)}))
                        .collect();
                    send(
                        client()
                            .post(served.url("/collections/storm-c/documents"))
                            .json(&json!({ "documents": docs })),
                    )
                });
                let (status, body) = send(http.delete(served.url("/collections/storm-c")));
                tally.record("delete collection", status, &[200], || body.to_string());
                let (status, body) = late.join().unwrap();
                tally.record("ingest", status, &[200, 404, 429], || body.to_string());
            });
            let (status, _) = send(http.get(served.url("/collections/storm-c")));
            tally.record("deleted collection", status, &[404], || {
                "storm-c still answers after its delete".into()
            });
        });
        let (tally, seconds) = storm(served, &names, Some(middle));
        report("two collections", &tally, seconds);
        for name in &names {
            check_settled(served, &tally, name);
        }
        let listed: Vec<String> = served
            .collections
            .list()
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(listed, ["default", "storm-a", "storm-b"]);
        // What was made for the storm's settings still holds them.
        let info = served.collections.info("storm-a").unwrap();
        assert_eq!(info.chunk.max_tokens, CHUNK_TOKENS);
    });
}

fn embedded() -> (Collections, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::common::engine_with(semdex::engine::EngineOptions::new(dir.path()));
    (crate::common::collections_beside(Arc::new(engine)), dir)
}

#[test]
fn sync_storm_on_the_data_directory() {
    let (collections, _dir) = embedded();
    one_collection(collections);
}

#[test]
fn sync_storm_across_collections_on_the_data_directory() {
    let (collections, _dir) = embedded();
    two_collections_and_one_that_comes_and_goes(collections);
}
