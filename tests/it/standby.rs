//! PostgreSQL hot standbys, on real servers: a primary and a streaming standby made with
//! `pg_basebackup -R` (`tests/pg/server.sh standby`), `semdex serve` processes on each; a
//! standby that falls behind or goes away leaves the rotation and rejoins; a promoted standby
//! can be served writable; and `pg_dump` / `pg_restore` carry a corpus and its model to
//! another server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use semdex::engine::{EngineOptions, model_identity};
use semdex::progress::NoProgress;
use semdex::storage::postgres::{ConnectOptions, Database, PostgresCatalog};
use semdex::storage::{Catalog, ChunkSettings, Consistency, ModelIdentity, StorageError, reading};
use serde_json::{Value, json};

use crate::common::{doc, http_client as client, send};
use crate::pg::{PgServer, search_ids};

/// Polls `check` every 20 ms until it holds; fails after `within`.
fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn info(c: &Client, base: &str) -> Value {
    let (status, body) = send(c.get(format!("{base}/info")));
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn standby_of(c: &Client, base: &str) -> Value {
    info(c, base)["standbys"][0].clone()
}

fn ingest(c: &Client, base: &str, id: &str, text: &str) -> (StatusCode, Value) {
    send(
        c.post(format!("{base}/documents"))
            .json(&json!({"id": id, "text": text})),
    )
}

fn search(c: &Client, base: &str, query: &str, consistency: &str) -> (StatusCode, Value) {
    send(c.post(format!("{base}/search")).json(&json!({
        "query": query, "k": 5, "mode": "lexical", "consistency": consistency
    })))
}

fn serve(data: &tempfile::TempDir, args: &[&str]) -> (std::process::Child, String) {
    let mut all = vec!["--database-pool", "4"];
    all.extend_from_slice(args);
    crate::common::serve_binary_with(data.path(), &all)
}

/// Connections the standby has from semdex processes.
fn semdex_sessions(server: &PgServer) -> i64 {
    server
        .connect()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'semdex'",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_standby_serves_reads_refuses_writes_survives_outages_and_can_be_promoted() {
    let primary = PgServer::start();
    let standby = primary.standby();
    let c = client();

    // B serves the standby, started before any semdex made the schema: it waits for it.
    let data_b = tempfile::tempdir().unwrap();
    let b_args = ["--database-url".to_string(), standby.url.clone()];
    let starting_b = {
        let path = data_b.path().to_path_buf();
        let args = b_args.clone();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut all = vec!["--database-pool", "4"];
            all.extend_from_slice(&args);
            crate::common::serve_binary_with(&path, &all)
        })
    };
    eventually(
        "B connects to the standby",
        Duration::from_secs(120),
        || semdex_sessions(&standby) > 0,
    );
    // A serves the primary and reads from the standby.
    let data_a = tempfile::tempdir().unwrap();
    let (mut a, base_a) = serve(
        &data_a,
        &[
            "--database-url",
            &primary.url,
            "--read-database-url",
            &standby.url,
        ],
    );
    let (mut b, base_b) = starting_b.join().unwrap();
    assert_eq!(info(&c, &base_b)["read_only"], true);
    assert_eq!(info(&c, &base_a)["read_only"], false);

    // Written through A, found through B once the standby has replayed it.
    let (status, body) = ingest(
        &c,
        &base_a,
        "launch",
        "The rocket launch from the Vostochny cosmodrome was delayed by high winds.",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let lag = eventually("found through B", Duration::from_secs(30), || {
        search_ids(&c, &base_b, "default", "launch delayed by winds") == ["launch"]
    });
    eprintln!(
        "a document written through the primary was found through the standby after {:.0} ms",
        lag.as_secs_f64() * 1000.0
    );
    // Read-your-writes through A: the primary answers at once.
    let (status, body) = ingest(
        &c,
        &base_a,
        "train",
        "The armoured train crossed the border.",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = search(&c, &base_a, "armoured train", "primary");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["doc_id"], "train");
    let (status, body) = send(c.get(format!("{base_a}/documents/train?consistency=primary")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(c.get(format!("{base_a}/documents/train?consistency=strong")));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Eventual reads through A go to the standby.
    let standby_reads = |c: &Client| standby_of(c, &base_a)["reads"].as_u64().unwrap();
    let before = standby_reads(&c);
    eventually("A's standby answers", Duration::from_secs(30), || {
        let (status, body) = search(&c, &base_a, "armoured train", "eventual");
        status == StatusCode::OK && body["results"][0]["doc_id"] == "train"
    });
    assert!(standby_reads(&c) > before, "the standby answered");
    let shown = standby_of(&c, &base_a);
    assert_eq!(shown["in_rotation"], true, "{shown}");
    assert!(shown["replay_lag_seconds"].as_f64().is_some(), "{shown}");
    let (_, metrics) = {
        let response = c.get(format!("{base_a}/metrics")).send().unwrap();
        (response.status(), response.text().unwrap())
    };
    assert!(
        metrics.contains("semdex_standby_replay_lag_seconds{standby=\""),
        "{metrics}"
    );

    // B refuses every write with 503 read_only.
    for (method, path, body) in [
        ("POST", "/documents", json!({"id": "x", "text": "Nope."})),
        ("DELETE", "/documents/launch", Value::Null),
        ("POST", "/collections", json!({"name": "papers"})),
        ("DELETE", "/collections/papers", Value::Null),
    ] {
        let request = match method {
            "POST" => c.post(format!("{base_b}{path}")).json(&body),
            _ => c.delete(format!("{base_b}{path}")),
        };
        let (status, body) = send(request);
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(body["error"]["code"], "read_only", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{body}"
        );
    }

    // A collection made through A is listed and searched through B once replayed.
    let (status, body) = send(
        c.post(format!("{base_a}/collections"))
            .json(&json!({"name": "papers"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        c.post(format!("{base_a}/collections/papers/documents"))
            .json(&json!({"id": "p1", "text": "Protein folding predicted from sequence."})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("papers through B", Duration::from_secs(30), || {
        let (status, body) = send(
            c.post(format!("{base_b}/collections/papers/search"))
                .json(&json!({"query": "protein folding", "mode": "lexical"})),
        );
        status == StatusCode::OK && body["results"][0]["doc_id"] == "p1"
    });

    // The standby stops: A's searches go on (the primary answers), and the standby leaves
    // A's rotation; B, whose only server it was, answers 503 unavailable.
    standby.stop();
    for _ in 0..20 {
        let (status, body) = search(&c, &base_a, "armoured train", "eventual");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["results"][0]["doc_id"], "train");
    }
    let shown = standby_of(&c, &base_a);
    assert_eq!(shown["in_rotation"], false, "{shown}");
    let (status, body) = search(&c, &base_b, "armoured train", "eventual");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");

    // It starts again: it rejoins A's rotation and answers A's reads; B serves again.
    standby.restart();
    eventually("the standby rejoins", Duration::from_secs(60), || {
        standby_of(&c, &base_a)["in_rotation"] == true
    });
    let before = standby_reads(&c);
    let (status, body) = search(&c, &base_a, "armoured train", "eventual");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(standby_reads(&c) > before, "the standby answers again");
    eventually("B serves again", Duration::from_secs(60), || {
        search(&c, &base_b, "armoured train", "eventual").0 == StatusCode::OK
    });

    // Promoted, it leaves A's rotation (it no longer follows the primary), and B restarted on
    // it is writable.
    standby.promote();
    eventually(
        "the promoted standby leaves",
        Duration::from_secs(60),
        || {
            let shown = standby_of(&c, &base_a);
            shown["in_rotation"] == false
                && shown["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not in recovery"))
        },
    );
    b.kill().unwrap();
    let _ = b.wait();
    let data_b = tempfile::tempdir().unwrap();
    let (mut b, base_b) = serve(&data_b, &["--database-url", &standby.url]);
    assert_eq!(info(&c, &base_b)["read_only"], false);
    let (status, body) = ingest(
        &c,
        &base_b,
        "after",
        "Written once the standby was promoted.",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    // Found first (dense search answers every passage of the collection after it).
    assert_eq!(search_ids(&c, &base_b, "default", "promoted")[0], "after");

    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
}

/// A database with one standby, connected in this process, with its default collection's
/// engine; the bound on replay lag is `max_lag`.
fn with_standby(
    primary: &PgServer,
    standby: &PgServer,
    max_lag: Duration,
) -> (std::sync::Arc<Database>, semdex::engine::Engine) {
    let model = model_identity(&crate::common::encoder());
    let options = EngineOptions::new(std::env::temp_dir());
    let database = Database::open(
        &primary.url,
        &ConnectOptions {
            pool_size: 4,
            standbys: vec![standby.url.clone()],
            max_standby_lag: max_lag,
        },
        &model,
        options.hnsw,
    )
    .unwrap();
    let catalog = PostgresCatalog::new(
        database.clone(),
        ChunkSettings {
            chunk_tokens: options.chunk.max_tokens,
            chunk_overlap: options.chunk.overlap,
        },
    );
    let backend = catalog
        .open("default", &model, &options.backend(), &NoProgress)
        .unwrap();
    let engine = semdex::engine::Engine::with_backend(
        crate::common::encoder(),
        backend,
        options,
        &NoProgress,
    )
    .unwrap();
    (database, engine)
}

#[test]
fn a_standby_past_the_lag_bound_leaves_the_rotation_and_rejoins_once_caught_up() {
    let primary = PgServer::start();
    let standby = primary.standby();
    let bound = Duration::from_secs(1);
    let (database, engine) = with_standby(&primary, &standby, bound);
    engine
        .ingest(
            vec![doc("d0", "The first document, about rivers.")],
            &NoProgress,
        )
        .unwrap();
    let status = || database.standbys().remove(0);
    eventually("d0 on the standby", Duration::from_secs(30), || {
        reading(Consistency::Eventual, || engine.document("d0")).is_ok()
    });
    let reads = status().reads;
    reading(Consistency::Eventual, || engine.document("d0")).unwrap();
    assert_eq!(
        status().reads,
        reads + 1,
        "an eventual read goes to the standby"
    );
    let primary_reads = database.primary_reads();
    reading(Consistency::Primary, || engine.document("d0")).unwrap();
    engine.document("d0").unwrap();
    assert_eq!(
        status().reads,
        reads + 1,
        "primary reads and reads outside a scope"
    );
    assert_eq!(database.primary_reads(), primary_reads + 2);

    // Replay paused: the standby falls behind and leaves the rotation once over the bound;
    // meanwhile eventual reads still find what was written (the primary answers them).
    standby
        .connect()
        .execute("SELECT pg_wal_replay_pause()", &[])
        .unwrap();
    engine
        .ingest(
            vec![doc("d1", "The second document, about mountains.")],
            &NoProgress,
        )
        .unwrap();
    let waited = eventually("out of rotation", Duration::from_secs(60), || {
        !status().in_rotation
    });
    let behind = status();
    eprintln!("out of rotation after {waited:?}: {behind:?}");
    assert!(behind.replay_lag.unwrap() > bound, "{behind:?}");
    assert!(behind.replay_lag_bytes.unwrap() > 0, "{behind:?}");
    assert!(behind.reason.unwrap().contains("over the bound"));
    let reads = status().reads;
    let found = reading(Consistency::Eventual, || engine.document("d1")).unwrap();
    assert_eq!(found.id, "d1");
    assert_eq!(status().reads, reads, "the primary answered");

    // Replay resumed: it catches up and rejoins.
    standby
        .connect()
        .execute("SELECT pg_wal_replay_resume()", &[])
        .unwrap();
    eventually("back in rotation", Duration::from_secs(60), || {
        status().in_rotation
    });
    let found = reading(Consistency::Eventual, || engine.document("d1")).unwrap();
    assert_eq!(found.id, "d1");
    assert_eq!(status().reads, reads + 1, "the standby answered again");
}

/// The tables of semdex, dumped from one server with `pg_dump` and restored into a fresh one
/// with `pg_restore`, serve the same answers; `semdex_meta` carries the model, so a semdex
/// with another model refuses the restored database.
#[test]
fn pg_dump_and_pg_restore_carry_a_corpus_and_its_model() {
    let source = PgServer::start();
    let options = EngineOptions::new(std::env::temp_dir());
    let model = model_identity(&crate::common::encoder());
    let open = |url: &str| {
        let catalog = crate::pg::catalog(url, &options);
        let backend = catalog
            .open("default", &model, &options.backend(), &NoProgress)
            .unwrap();
        semdex::engine::Engine::with_backend(
            crate::common::encoder(),
            backend,
            options.clone(),
            &NoProgress,
        )
        .unwrap()
    };
    let engine = open(&source.url);
    let docs: Vec<_> = crate::common::seed_windows(12, 90)
        .into_iter()
        .enumerate()
        .map(|(i, text)| doc(&format!("w{i}"), &text))
        .collect();
    engine.ingest(docs, &NoProgress).unwrap();
    let questions = [
        "Where did Putin and Kim meet?",
        "railway",
        "artillery shells",
    ];
    let answers = |engine: &semdex::engine::Engine| -> Vec<Vec<(String, usize, usize)>> {
        questions
            .iter()
            .map(|q| {
                let request = semdex::engine::SearchRequest {
                    k: 8,
                    exact: true,
                    ..Default::default()
                };
                engine
                    .search(q, &request)
                    .unwrap()
                    .hits
                    .into_iter()
                    .map(|h| (h.doc_id, h.start, h.end))
                    .collect()
            })
            .collect()
    };
    let expected = answers(&engine);
    drop(engine);

    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("semdex.dump");
    let file_arg = file.to_str().unwrap();
    crate::pg::client_program(
        "pg_dump",
        &[
            "--format=custom",
            "--table=semdex_*",
            "--file",
            file_arg,
            &source.url,
        ],
    );
    let target = PgServer::start();
    crate::pg::client_program(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &target.url,
            file_arg,
        ],
    );
    let engine = open(&target.url);
    assert_eq!(answers(&engine), expected, "the same answers");
    // The identity sequence came along: new passages get new ids.
    engine
        .ingest(
            vec![doc("new", "A document written after the restore.")],
            &NoProgress,
        )
        .unwrap();
    assert_eq!(engine.stats().unwrap().documents, 13);
    let other = ModelIdentity {
        name: "other-model".into(),
        fingerprint: "0000".into(),
        dimension: 384,
        precision: "f32".into(),
    };
    let err = Database::connect(&target.url, 2, &other, options.hnsw)
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::Postgres(_)) && err.to_string().contains("other-model"),
        "{err}"
    );
}
