//! Snapshots of the data directory: taken while a sync storm writes, restored whole and
//! equal to the moment they were taken; refused when damaged, truncated or of another model,
//! before anything changes; a restore killed at any point leaves the old collection or the
//! new one; the command line round trip of the default collection.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semdex::engine::{EngineError, EngineOptions};
use semdex::hooks::Gate;
use semdex::storage::embedded::EmbeddedCatalog;
use semdex::storage::snapshot::Snapshots;
use semdex::storage::{Catalog, ChunkSettings, ModelIdentity};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::Served;
use crate::sync_storm::{self, Tally, client, send};

/// Questions whose exact dense answers are compared between a collection and its restore.
const QUESTIONS: [&str; 4] = [
    "Where did Putin and Kim meet?",
    "What did they discuss about the railway?",
    "cosmodrome launch",
    "artillery shells for the war",
];

/// What a collection holds: every document's content hash and its passages' spans, by id.
type Contents = BTreeMap<String, (String, Vec<(usize, usize)>)>;

/// What the storm test records at the snapshot's moment: the contents, each query's hits,
/// and the snapshot's description as the server answered it.
type Recorded = (Contents, Vec<Vec<(String, u64, u64, String)>>, Value);

fn contents(served: &Served, collection: &str) -> Contents {
    contents_unless_changing(served, collection)
        .expect("every document listed reads back when no write is running")
}

/// [`contents`], read while writers may run: `None` when a document listed was deleted before
/// it could be read (the collection changed under the read).
fn contents_unless_changing(served: &Served, collection: &str) -> Option<Contents> {
    let engine = served.collections.engine_blocking(collection).unwrap();
    engine
        .documents(1000, 0)
        .unwrap()
        .into_iter()
        .map(|summary| {
            let stored = unless_gone(engine.document(&summary.id))?;
            let spans = unless_gone(engine.document_chunks(&summary.id))?
                .iter()
                .map(|s| (s.start, s.end))
                .collect();
            Some((summary.id, (stored.content_hash, spans)))
        })
        .collect()
}

/// A read's value; `None` if its document was not found; any other failure fails the test.
fn unless_gone<T>(read: Result<T, EngineError>) -> Option<T> {
    match read {
        Ok(value) => Some(value),
        Err(EngineError::NotFound(_)) => None,
        Err(other) => panic!("{other}"),
    }
}

/// The exact dense answers to [`QUESTIONS`]: (document, start, end, passage) per hit.
fn answers(served: &Served, collection: &str) -> Vec<Vec<(String, u64, u64, String)>> {
    let http = client();
    QUESTIONS
        .iter()
        .map(|question| {
            let (status, body) = send(
                http.post(served.url(&format!("/collections/{collection}/search")))
                    .json(&json!({"query": question, "k": 10, "mode": "dense", "exact": true})),
            );
            assert_eq!(status, 200, "{body}");
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["doc_id"].as_str().unwrap().to_string(),
                        h["start"].as_u64().unwrap(),
                        h["end"].as_u64().unwrap(),
                        h["text"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

fn download(served: &Served, collection: &str, id: &str) -> Vec<u8> {
    let response = client()
        .get(served.url(&format!("/collections/{collection}/snapshots/{id}")))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().unwrap().to_vec()
}

fn upload(served: &Served, collection: &str, archive: Vec<u8>, replace: bool) -> (u16, Value) {
    send(
        client()
            .post(served.url(&format!(
                "/collections/{collection}/snapshots/upload?replace={replace}"
            )))
            .header("content-type", "application/x-tar")
            .body(archive),
    )
}

/// Hidden folders a create, delete or restore left in the data directory's collections.
fn hidden_leftovers(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("collections"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn names(served: &Served) -> Vec<String> {
    served
        .collections
        .list()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// The storm writes on; a third of the way through, every writer is held at its commit (the
/// store stands still) while the collection's state is recorded and a snapshot begins; the
/// snapshot is then held at its moment while the writers go on, and let go once they have
/// written more. Restored, the snapshot holds the recorded state exactly.
#[test]
fn a_snapshot_taken_during_a_sync_storm_restores_the_moment_it_was_taken() {
    let (collections, dir) = sync_storm::embedded();
    let data = dir.path().to_path_buf();
    let _windows = sync_storm::widen_the_windows();
    // Writers stop at their commits (under the write lock) while `holding` is set.
    let holding = Arc::new(AtomicBool::new(false));
    let writers = Gate::new();
    let _hold: Vec<_> = (0..sync_storm::IDS)
        .flat_map(|i| {
            ["ingest.commit", "delete.commit"].map(|point| {
                let (holding, writers) = (holding.clone(), writers.clone());
                semdex::hooks::install(point, sync_storm::id(i), move || {
                    if holding.load(Ordering::SeqCst) {
                        writers.wait();
                    }
                })
            })
        })
        .collect();
    let moment = Gate::new();
    let at_moment = moment.clone();
    let _snapshot_moment = semdex::hooks::install("snapshot.begun", "storm", move || {
        at_moment.wait();
    });
    let recorded: Mutex<Option<Recorded>> = Mutex::new(None);
    sync_storm::guarded(sync_storm::served(collections), |served| {
        let names = ["storm".to_string()];
        let middle = Box::new(|tally: &Tally| {
            holding.store(true, Ordering::SeqCst);
            assert!(
                writers.wait_for_arrivals(1, Duration::from_secs(120)),
                "no writer reached its commit"
            );
            let state = contents(served, "storm");
            let found = answers(served, "storm");
            let (snapshot_done, snapshot) = std::sync::mpsc::channel();
            let http = client();
            let url = served.url("/collections/storm/snapshots");
            std::thread::spawn(move || {
                let _ = snapshot_done.send(send(http.post(url)));
            });
            assert!(
                moment.wait_for_arrivals(1, Duration::from_secs(120)),
                "the snapshot never began"
            );
            // The writers go on while the snapshot holds its moment, until the collection
            // differs from the moment's (some answered writes change nothing: a delete of a
            // document already gone, an ingest of the text it already holds).
            holding.store(false, Ordering::SeqCst);
            writers.open();
            let deadline = Instant::now() + Duration::from_secs(120);
            while contents_unless_changing(served, "storm").as_ref() == Some(&state) {
                assert!(
                    Instant::now() < deadline,
                    "no write changed the collection while the snapshot held its moment"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            moment.open();
            let (status, info) = snapshot.recv().unwrap();
            tally.record("snapshot", status, &[201], || info.to_string());
            *recorded.lock().unwrap() = Some((state, found, info));
        });
        let (tally, seconds) = sync_storm::storm(served, &names, Some(middle));
        sync_storm::report("snapshot", &tally, seconds);
        sync_storm::check_settled(served, &tally, "storm");

        let (state, found, info) = recorded.lock().unwrap().take().unwrap();
        assert_eq!(info["documents"].as_u64().unwrap() as usize, state.len());
        let id = info["id"].as_str().unwrap();
        let archive = download(served, "storm", id);
        assert_eq!(archive.len() as u64, info["bytes"].as_u64().unwrap());
        let (status, body) = upload(served, "restored", archive, false);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["chunk_tokens"], sync_storm::CHUNK_TOKENS);
        assert_eq!(contents(served, "restored"), state, "the snapshot's moment");
        assert_eq!(answers(served, "restored"), found, "the same answers");
        let stats = served
            .collections
            .engine_blocking("restored")
            .unwrap()
            .stats()
            .unwrap();
        assert_eq!(stats.indexed, stats.chunks, "vector index = store");
        assert_eq!(
            stats.lexical.passages as usize, stats.chunks,
            "BM25 = store"
        );
        let (status, listed) = send(client().get(served.url("/collections/storm/snapshots")));
        assert_eq!(status, 200);
        assert_eq!(listed["snapshots"][0]["id"], id);
    });
    assert!(hidden_leftovers(&data).is_empty());
}

/// A snapshot of a store made with another model.
fn foreign_snapshot() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let other = ModelIdentity {
        name: "other-model".into(),
        fingerprint: "0000".into(),
        dimension: 384,
        precision: "f32".into(),
    };
    {
        let backend = semdex::storage::embedded::EmbeddedBackend::open(
            dir.path(),
            &other,
            EngineOptions::new(dir.path()).backend(),
            &semdex::progress::NoProgress,
        )
        .unwrap();
        let vector = vec![1.0 / (384f32).sqrt(); 384];
        let metadata = serde_json::Map::new();
        let written = semdex::storage::Backend::write(
            &backend,
            &semdex::storage::NewDocument {
                id: "x",
                source: None,
                text: "Words of another model.",
                metadata: &metadata,
                content_hash: "h",
                title: None,
                title_in_context: false,
                format: None,
            },
            Some(&[semdex::storage::NewChunk {
                index: 0,
                start: 0,
                end: 23,
                text: "Words of another model.",
                vector: &vector,
                tokens: None,
                section: &[],
                pages: None,
            }]),
            &|_| false,
        )
        .unwrap();
        assert!(matches!(written, semdex::storage::Written::Stored { .. }));
    }
    let catalog = EmbeddedCatalog::open(dir.path(), true).unwrap();
    let mut out = Vec::new();
    catalog
        .write_snapshot(
            "default",
            ChunkSettings {
                chunk_tokens: 128,
                chunk_overlap: 0,
            },
            dir.path(),
            &mut out,
            &CancellationToken::new(),
        )
        .unwrap();
    out
}

#[test]
fn damaged_truncated_and_foreign_snapshots_are_refused_before_anything_changes() {
    let (collections, dir) = sync_storm::embedded();
    let data = dir.path().to_path_buf();
    let served = sync_storm::served(collections);
    let http = client();
    let (status, _) = send(
        http.post(served.url("/collections"))
            .json(&json!({"name": "keep"})),
    );
    assert_eq!(status, 201);
    let texts: Vec<String> = crate::common::seed_windows(6, 80);
    let docs: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("k{i}"), "text": t}))
        .collect();
    let (status, body) = send(
        http.post(served.url("/collections/keep/documents"))
            .json(&json!({ "documents": docs })),
    );
    assert_eq!(status, 200, "{body}");
    let kept = contents(&served, "keep");

    let (status, info) = send(http.post(served.url("/collections/keep/snapshots")));
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    let archive = download(&served, "keep", &id);
    let before = names(&served);

    let mut refusals = Vec::new();
    let truncated = archive[..archive.len() / 2].to_vec();
    let mut flipped = archive.clone();
    let middle = archive.len() / 2;
    flipped[middle] ^= 0x01;
    for (what, bytes, expected) in [
        ("truncated", truncated.clone(), "truncated"),
        ("damaged", flipped, "checksum"),
        ("foreign", foreign_snapshot(), "other-model"),
        ("not a snapshot", b"{\"hello\": 1}".to_vec(), "not a usable"),
        ("empty", Vec::new(), "empty"),
    ] {
        for (target, replace) in [("fresh", false), ("keep", true)] {
            let (status, body) = upload(&served, target, bytes.clone(), replace);
            assert_eq!(status, 422, "{what} into {target}: {body}");
            assert_eq!(body["error"]["code"], "invalid_snapshot", "{what}: {body}");
            let message = body["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains(expected), "{what}: {message}");
            refusals.push(message);
            assert_eq!(names(&served), before, "{what}: nothing changed");
            assert_eq!(contents(&served, "keep"), kept, "{what}: keep is intact");
            assert!(hidden_leftovers(&data).is_empty(), "{what}: nothing left");
        }
    }
    eprintln!("refusals: {refusals:#?}");
    assert!(
        refusals.iter().any(|m| m.contains("all-MiniLM-L6-v2")),
        "the foreign refusal names both models"
    );

    // A valid snapshot over a name in use: refused unless replace, then replaces it whole.
    let (status, body) = send(
        http.post(served.url("/collections/keep/documents"))
            .json(&json!({"id": "later", "text": "A document written after the snapshot."})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(&served, "keep", archive.clone(), false);
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("conflict")),
        "{body}"
    );
    let (status, body) = upload(&served, "keep", archive.clone(), true);
    assert_eq!(status, 201, "{body}");
    assert_eq!(contents(&served, "keep"), kept, "replaced by the snapshot");
    let (status, _) = send(http.get(served.url("/collections/keep/documents/later")));
    assert_eq!(status, 404);
    let (status, body) = upload(&served, "default", archive, true);
    assert_eq!(status, 422, "{body}");

    // The snapshot routes' other answers.
    let (status, body) = send(http.post(served.url("/collections/absent/snapshots")));
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("collection_not_found"))
    );
    let (status, body) = send(http.get(served.url("/collections/keep/snapshots/nope")));
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("snapshot_not_found"))
    );
    let (status, body) = send(http.post(served.url("/collections/default/snapshots")));
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        send(http.delete(served.url(&format!("/collections/keep/snapshots/{id}"))));
    assert_eq!(status, 200, "{body}");
    let (status, listed) = send(http.get(served.url("/collections/keep/snapshots")));
    assert_eq!(
        (status, listed["snapshots"].as_array().unwrap().len()),
        (200, 0)
    );
    drop(served);
    assert!(hidden_leftovers(&data).is_empty());
}

/// `semdex ARGS` with the test model.
fn semdex(args: &[&str]) -> Command {
    let mut command = crate::cli::semdex(args);
    command.env_remove("SEMDEX_DATABASE_URL");
    command
}

/// Starts `semdex ARGS` with `SEMDEX_PAUSE_AT=pause`, waits until it stops there and kills it
/// with SIGKILL.
fn kill_at(args: &[&str], pause: &str) {
    let mut child = semdex(args)
        .env(semdex::hooks::PAUSE_AT, pause)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("paused at") {
            child.kill().unwrap();
            let _ = child.wait();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!("semdex {args:?} never paused at {pause} ({status}): {seen:#?}");
}

/// Documents and passages of a collection, read through a freshly opened catalog (which
/// completes or clears what an interrupted restore left).
fn reopened(data: &Path) -> (Vec<String>, BTreeMap<String, (usize, usize)>) {
    let catalog = EmbeddedCatalog::open(data, false).unwrap();
    let model = semdex::engine::model_identity(&crate::common::encoder());
    let listed: Vec<String> = catalog
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let counts = listed
        .iter()
        .map(|name| (name.clone(), catalog.counts(name, &model).unwrap()))
        .collect();
    (listed, counts)
}

#[test]
fn a_restore_killed_at_any_point_leaves_the_old_collection_or_the_new_one() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let corpus = root.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let windows = crate::common::seed_windows(8, 120);
    let lines: Vec<String> = windows
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("s{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(corpus.join("snap.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(
        corpus.join("old.txt"),
        "The old collection holds one short document about trains.",
    )
    .unwrap();
    let data_arg = data.to_str().unwrap();
    let run = |args: &[&str]| crate::cli::run_ok(&mut semdex(args));
    run(&[
        "ingest",
        "--data-dir",
        data_arg,
        corpus.join("snap.jsonl").to_str().unwrap(),
    ]);
    run(&[
        "ingest",
        "--data-dir",
        data_arg,
        "--collection",
        "old",
        corpus.join("old.txt").to_str().unwrap(),
    ]);
    let archive = root.path().join("default.tar");
    let archive_arg = archive.to_str().unwrap();
    let taken: Value =
        serde_json::from_str(&run(&["snapshot", "--data-dir", data_arg, archive_arg])).unwrap();
    let snapshot_counts = (
        taken["documents"].as_u64().unwrap() as usize,
        taken["chunks"].as_u64().unwrap() as usize,
    );
    let (names, counts) = reopened(&data);
    let old_counts = counts["old"];
    assert_eq!(names, ["old"]);

    // A restore of the archive into `collection`, killed where `point` pauses it.
    let kill_restore_at = |collection: &str, replace: bool, point: &str| {
        let mut args = vec![
            "restore",
            archive_arg,
            "--data-dir",
            data_arg,
            "--collection",
            collection,
        ];
        if replace {
            args.push("--replace");
        }
        kill_at(&args, &format!("{point}={collection}"));
    };

    // Killed with everything checked and built, before the rename: no trace.
    kill_restore_at("fresh", false, "restore.staged");
    assert_eq!(hidden_leftovers(&data).len(), 1, "killed mid-way");
    let (names, _) = reopened(&data);
    assert_eq!(names, ["old"], "no trace of the killed restore");
    assert!(hidden_leftovers(&data).is_empty());

    // Killed while replacing, before the old collection moved away: the old one stays.
    kill_restore_at("old", true, "restore.staged");
    let (names, counts) = reopened(&data);
    assert_eq!(
        (names, counts["old"]),
        (vec!["old".to_string()], old_counts)
    );
    assert!(hidden_leftovers(&data).is_empty());

    // Killed between the two renames of a replace: the next open completes it.
    kill_restore_at("old", true, "restore.swap");
    assert!(
        !data.join("collections/old").exists(),
        "killed between the renames"
    );
    let (names, counts) = reopened(&data);
    assert_eq!(
        (names, counts["old"]),
        (vec!["old".to_string()], snapshot_counts)
    );
    assert!(hidden_leftovers(&data).is_empty());

    // And what it completed answers as the snapshot's source does.
    let query = |collection: &str| -> Value {
        let out = run(&[
            "query",
            "--data-dir",
            data_arg,
            "--collection",
            collection,
            "--json",
            "--exact",
            "--mode",
            "dense",
            "-k",
            "5",
            "Where did Putin and Kim meet?",
        ]);
        let mut body: Value = serde_json::from_str(&out).unwrap();
        body["took_ms"] = Value::Null;
        body
    };
    assert_eq!(query("old"), query("default"));
}

#[test]
fn the_default_collection_round_trips_through_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let data_arg = data.to_str().unwrap();
    let run = |args: &[&str]| crate::cli::run_ok(&mut semdex(args));
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds");
    run(&["ingest", "--data-dir", data_arg, seeds]);
    let archive = root.path().join("out/default.tar");
    std::fs::create_dir(root.path().join("out")).unwrap();
    let archive_arg = archive.to_str().unwrap();
    run(&["snapshot", "--data-dir", data_arg, archive_arg]);
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["default.tar"], "the archive alone, whole");
    let restored: Value = serde_json::from_str(&run(&[
        "restore",
        archive_arg,
        "--data-dir",
        data_arg,
        "--collection",
        "copy",
    ]))
    .unwrap();
    assert_eq!(restored["from"], "default");
    for mode in ["dense", "lexical", "hybrid"] {
        let query = |collection: &str| -> Value {
            let mut body: Value = serde_json::from_str(&run(&[
                "query",
                "--data-dir",
                data_arg,
                "--collection",
                collection,
                "--json",
                "--exact",
                "--mode",
                mode,
                "-k",
                "5",
                "Where did Putin and Kim meet?",
            ]))
            .unwrap();
            body["took_ms"] = Value::Null;
            body
        };
        assert_eq!(query("copy"), query("default"), "{mode}");
    }
    let restore_refused = |snapshot: &str, collection: &str| -> String {
        let out = semdex(&[
            "restore",
            snapshot,
            "--data-dir",
            data_arg,
            "--collection",
            collection,
        ])
        .output()
        .unwrap();
        assert!(
            !out.status.success(),
            "restore {snapshot} into {collection}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let message = restore_refused(archive_arg, "copy");
    assert!(message.contains("--replace"), "{message}");
    run(&[
        "restore",
        archive_arg,
        "--data-dir",
        data_arg,
        "--collection",
        "copy",
        "--replace",
    ]);
    restore_refused(archive_arg, "default");
    restore_refused(seeds, "x");
}
