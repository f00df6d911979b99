//! Named collections end to end: the routes over real HTTP, isolation between two
//! collections, name rules and errors, per-collection chunking, reopening, the CLI's
//! `--collection`, and deletes interrupted by a crash (on disk and by SIGKILL of the binary).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use semdex::api::ApiConfig;
use semdex::collections::{CollectionSettings, Collections};
use semdex::engine::{Engine, EngineOptions, SearchRequest};
use semdex::progress::NoProgress;
use semdex::queue::QueueOptions;
use serde_json::{Value, json};

use crate::common::{http_client as client, send};

const ROCKETS: &str = "The rocket lifted off from the launch pad at dawn. Its second stage \
     placed the weather satellite in a polar orbit four hundred kilometres up.";
const BREAD: &str = "Knead the dough for ten minutes, let it rise until doubled, then bake \
     the loaf at two hundred and twenty degrees until the crust is dark.";

#[test]
fn collections_are_isolated_named_and_deletable_over_http() {
    let s = crate::common::start_server(ApiConfig::default(), QueueOptions::default());
    let c = client();
    let data_dir = s.engine.options().data_dir.clone();

    // Create two; a duplicate and bad names are refused.
    let (status, body) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "space"})),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "space");
    assert_eq!(body["documents"], 0);
    assert!(body["created"].as_str().is_some());
    let (status, _) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "kitchen", "chunk_tokens": 32, "chunk_overlap": 4})),
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "space"})),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    let (status, _) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "default"})),
    );
    assert_eq!(status, StatusCode::CONFLICT, "default exists already");
    for bad in ["", "has space", "dots.in.it", "ünï", &"n".repeat(65)] {
        let (status, body) = send(c.post(s.url("/collections")).json(&json!({"name": bad})));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("name"));
    }
    let (status, _) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "tiny", "chunk_tokens": 2})),
    );
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "chunk budget out of range"
    );
    let (status, _) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "n".repeat(64)})),
    );
    assert_eq!(
        status,
        StatusCode::CREATED,
        "64 characters is the limit, inclusive"
    );

    // The same id in two collections: two documents.
    let (status, body) = send(
        c.post(s.url("/collections/space/documents"))
            .json(&json!({"id": "x", "text": ROCKETS})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["documents"][0]["status"], "created");
    let long_bread = [BREAD; 6].join(" ");
    let (status, body) = send(
        c.post(s.url("/collections/kitchen/documents"))
            .json(&json!({"id": "x", "text": long_bread})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["documents"][0]["status"], "created",
        "ids are per collection"
    );

    // Each search sees only its own collection, POST and GET alike.
    let (status, body) = send(
        c.post(s.url("/collections/space/search"))
            .json(&json!({"query": "how do I bake bread", "k": 50})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let hits = body["results"].as_array().unwrap();
    assert!(!hits.is_empty());
    for hit in hits {
        assert!(ROCKETS.contains(hit["text"].as_str().unwrap()), "{hit}");
    }
    let (status, body) = send(c.get(s.url("/collections/kitchen/search?q=satellite%20orbit&k=50")));
    assert_eq!(status, StatusCode::OK);
    for hit in body["results"].as_array().unwrap() {
        assert!(
            BREAD.contains(hit["text"].as_str().unwrap())
                || long_bread.contains(hit["text"].as_str().unwrap()),
            "{hit}"
        );
    }
    // The unprefixed routes are the default collection: the seed article, nothing else.
    let (_, body) = send(
        c.post(s.url("/search"))
            .json(&json!({"query": "satellite orbit rocket", "k": 50})),
    );
    for hit in body["results"].as_array().unwrap() {
        assert_eq!(hit["doc_id"], "seed", "{hit}");
    }
    let (status, _) = send(c.get(s.url("/documents/x")));
    assert_eq!(status, StatusCode::NOT_FOUND, "x is not in default");
    // ... and /collections/default/... is the same collection under its name: a document
    // created at one address is read and deleted at the other.
    let (status, body) = send(c.post(s.url("/documents")).json(&json!({
        "id": "both-addresses",
        "text": "One document, two addresses."
    })));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(c.get(s.url("/collections/default/documents/both-addresses")));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "One document, two addresses.");
    let (status, body) = send(c.delete(s.url("/collections/default/documents/both-addresses")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(c.get(s.url("/documents/both-addresses")));
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "deleted through its other address"
    );
    let (status, body) = send(c.get(s.url("/collections/kitchen/documents/x")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["text"], long_bread.as_str());
    let (status, body) = send(c.get(s.url("/collections/kitchen/documents/x/chunks")));
    assert_eq!(status, StatusCode::OK);
    let kitchen_chunks = body["chunks"].as_array().unwrap().len();
    assert!(kitchen_chunks > 3, "32-token passages: {kitchen_chunks}");
    let (status, body) = send(c.get(s.url("/collections/space/documents")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 1);

    // Listing and describing.
    let (status, body) = send(c.get(s.url("/collections")));
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..3], ["default", "kitchen", &"n".repeat(64)]);
    assert_eq!(names.len(), 4);
    let (_, kitchen) = send(c.get(s.url("/collections/kitchen")));
    assert_eq!(kitchen["chunk_tokens"], 32);
    assert_eq!(kitchen["chunk_overlap"], 4);
    assert_eq!(kitchen["documents"], 1);
    assert_eq!(kitchen["chunks"], kitchen_chunks);
    let (_, info) = send(c.get(s.url("/info")));
    let entries = info["collections"].as_array().unwrap();
    let space = entries.iter().find(|e| e["name"] == "space").unwrap();
    assert_eq!(space["documents"], 1);
    assert_eq!(space["loaded"], true);
    assert!(space["vectors"].as_u64().unwrap() >= 1);
    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("semdex_documents{collection=\"kitchen\"} 1"),
        "{metrics}"
    );

    // Unknown collections are 404 on every route; bad names 422.
    for path in [
        "/collections/nope",
        "/collections/nope/documents",
        "/collections/nope/documents/x",
        "/collections/nope/search?q=hi",
    ] {
        let (status, body) = send(c.get(s.url(path)));
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "collection_not_found", "{path}");
    }
    let (status, _) = send(c.get(s.url("/collections/bad.name/search?q=hi")));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Deleting: default is permanent; another goes with its files.
    let (status, body) = send(c.delete(s.url("/collections/default")));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(data_dir.join("collections/space").is_dir());
    let (status, body) = send(c.delete(s.url("/collections/space")));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true);
    assert!(!data_dir.join("collections/space").exists());
    assert_eq!(
        std::fs::read_dir(data_dir.join("collections"))
            .unwrap()
            .count(),
        2,
        "nothing of space is left behind"
    );
    let (status, _) = send(
        c.post(s.url("/collections/space/search"))
            .json(&json!({"query": "rocket"})),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(c.delete(s.url("/collections/space")));
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The name can be used again, for a fresh, empty collection.
    let (status, body) = send(
        c.post(s.url("/collections"))
            .json(&json!({"name": "space"})),
    );
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["documents"], 0);
}

fn open_collections(dir: &Path) -> Collections {
    let engine = Engine::open(
        crate::common::encoder(),
        EngineOptions::new(dir),
        &NoProgress,
    )
    .unwrap();
    crate::common::collections_beside(Arc::new(engine))
}

#[test]
fn collections_survive_a_restart_and_interrupted_creates_and_deletes_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    {
        let collections = open_collections(dir.path());
        collections
            .create(
                "papers",
                CollectionSettings {
                    chunk_tokens: Some(48),
                    chunk_overlap: Some(8),
                },
            )
            .unwrap();
        collections
            .engine_blocking("papers")
            .unwrap()
            .ingest(vec![crate::common::doc("r", ROCKETS)], &NoProgress)
            .unwrap();
        collections
            .create("doomed", CollectionSettings::default())
            .unwrap();
        collections.persist().unwrap();
    }
    // What a crash leaves: a delete that renamed but did not finish removing, and a create
    // that never reached its rename.
    let parent = dir.path().join("collections");
    std::fs::rename(parent.join("doomed"), parent.join(".deleted-doomed-1-1")).unwrap();
    std::fs::create_dir(parent.join(".creating-half-1-1")).unwrap();
    std::fs::write(parent.join(".creating-half-1-1/collection.json"), "{").unwrap();

    let collections = open_collections(dir.path());
    let names: Vec<String> = collections
        .list()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["default", "papers"],
        "doomed is gone, half never was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["papers"], "the hidden folders are cleared");
    let info = collections.info("papers").unwrap();
    assert!(!info.loaded, "opened on first use, not at start");
    assert_eq!(info.documents, 1, "counted without opening");
    assert_eq!(info.chunk.max_tokens, 48);
    let engine = collections.engine_blocking("papers").unwrap();
    assert_eq!(engine.options().chunk.max_tokens, 48, "settings come back");
    let hits = engine
        .search("satellite orbit", &SearchRequest::default())
        .unwrap();
    assert_eq!(hits.hits[0].doc_id, "r");
    assert!(collections.info("papers").unwrap().loaded);
}

#[test]
fn a_server_killed_during_a_collection_delete_restarts_with_it_whole_or_gone() {
    let data = tempfile::tempdir().unwrap();
    let c = client();
    let documents: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("d{i}"), "text": format!("{ROCKETS} Flight number {i}.")}))
        .collect();
    let (mut child, base) = crate::common::serve_binary(data.path());
    let (status, _) = send(
        c.post(format!("{base}/collections"))
            .json(&json!({"name": "fleet"})),
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(
        c.post(format!("{base}/collections/fleet/documents"))
            .json(&json!({"documents": documents})),
    );
    assert_eq!(status, StatusCode::OK);
    // Delete and kill at once: wherever the kill lands, the restart must see one of two states.
    let deleter = {
        let base = base.clone();
        std::thread::spawn(move || {
            let _ = client().delete(format!("{base}/collections/fleet")).send();
        })
    };
    std::thread::sleep(Duration::from_millis(2));
    child.kill().unwrap();
    child.wait().unwrap();
    deleter.join().unwrap();

    let (mut child, base) = crate::common::serve_binary(data.path());
    let (status, body) = send(c.get(format!("{base}/collections/fleet")));
    match status {
        StatusCode::OK => {
            assert_eq!(body["documents"], 40, "present means whole: {body}");
            let (status, hits) = send(
                c.post(format!("{base}/collections/fleet/search"))
                    .json(&json!({"query": "Flight number 7", "k": 40})),
            );
            assert_eq!(status, StatusCode::OK);
            assert!(!hits["results"].as_array().unwrap().is_empty());
        }
        StatusCode::NOT_FOUND => {
            assert!(!data.path().join("collections/fleet").exists());
        }
        other => panic!("unexpected {other}: {body}"),
    }
    let hidden = std::fs::read_dir(data.path().join("collections"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(hidden, 0, "no half-deleted folder survives a restart");
    // Either way the server works and the name is usable.
    let (status, _) = send(c.delete(format!("{base}/collections/fleet")));
    assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND);
    let (status, _) = send(
        c.post(format!("{base}/collections"))
            .json(&json!({"name": "fleet"})),
    );
    assert_eq!(status, StatusCode::CREATED);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_cli_ingests_into_and_queries_a_collection() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("bread.txt");
    std::fs::write(&file, BREAD).unwrap();
    let semdex = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_semdex"))
            .arg("--model")
            .arg(crate::common::model_dir())
            .args(args)
            .arg("--data-dir")
            .arg(data.path().join("d"))
            .args(["--seeds", "/nonexistent"])
            .output()
            .unwrap()
    };
    let out = semdex(&["ingest", "--collection", "kitchen", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = semdex(&[
        "query",
        "--collection",
        "kitchen",
        "--json",
        "how long to knead dough",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        hits["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Knead")
    );
    // The default collection did not receive it.
    let out = semdex(&["query", "--json", "how long to knead dough"]);
    assert!(out.status.success());
    let hits: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(hits["results"].as_array().unwrap().is_empty());
    let out = semdex(&["query", "--collection", "nope", "anything"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collection named \"nope\""));
}

/// A collection that takes long to open (held at the `collections.open` hook) holds up nobody
/// else: `/health`, the default collection and another collection answer meanwhile, while
/// requests for it wait without holding the server's two runtime threads; they all get their
/// answer once it is open.
#[test]
fn a_collection_slow_to_open_holds_up_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    {
        let collections = open_collections(dir.path());
        for name in ["slow-to-open", "quick-to-open"] {
            collections
                .create(name, CollectionSettings::default())
                .unwrap();
            collections
                .engine_blocking(name)
                .unwrap()
                .ingest(vec![crate::common::doc("r", ROCKETS)], &NoProgress)
                .unwrap();
        }
    }
    let gate = semdex::hooks::Gate::new();
    let held = gate.clone();
    let _hook = semdex::hooks::install("collections.open", "slow-to-open", move || held.wait());
    let served = crate::common::serve(
        Arc::new(open_collections(dir.path())),
        ApiConfig::default(),
        QueueOptions::default(),
        semdex::service::ServiceOptions::default(),
    );
    let search = |collection: &str| {
        send(
            client()
                .post(served.url(&format!("/collections/{collection}/search")))
                .json(&json!({"query": "satellite orbit"})),
        )
    };
    std::thread::scope(|s| {
        // More waiting requests than the server has runtime threads.
        let waiting: Vec<_> = (0..4).map(|_| s.spawn(|| search("slow-to-open"))).collect();
        assert!(
            gate.wait_for_arrivals(1, Duration::from_secs(120)),
            "the open never started"
        );
        let quick = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let health = quick.get(served.url("/health")).send().unwrap();
        assert_eq!(
            health.status(),
            StatusCode::OK,
            "/health while a collection opens"
        );
        let (status, body) = search("quick-to-open");
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = send(
            quick
                .post(served.url("/search"))
                .json(&json!({"query": "summit"})),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            waiting.iter().all(|w| !w.is_finished()),
            "requests for the opening collection wait for it"
        );
        gate.open();
        for w in waiting {
            let (status, body) = w.join().unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["results"][0]["doc_id"], "r");
        }
    });
    assert_eq!(
        gate.arrivals(),
        1,
        "opened once, for every request that waited"
    );
}
