//! The engine through its public API, on the real model and a real SQLite store: the shared
//! suite (`suite.rs`) on the embedded backend, and what only the embedded backend has (its
//! index dump, graph compaction, the data directory's model check).

use semdex::engine::{
    Engine, EngineError, EngineOptions, SearchMode, SearchRequest, SearchStrategy,
};
use semdex::progress::NoProgress;
use semdex::storage::embedded::store::{Store, StoreError};
use semdex::storage::{ModelIdentity, StorageError};

fn hidden() -> NoProgress {
    NoProgress
}

/// A dense-only request: these tests are about the vector index.
fn req(k: usize) -> SearchRequest {
    SearchRequest {
        k,
        mode: SearchMode::Dense,
        ..SearchRequest::default()
    }
}

#[test]
fn restart_gives_identical_results_with_and_without_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.exact_below = 0; // answer with HNSW so that the graph itself is tested
    let docs: Vec<_> = crate::common::seed_windows(60, 40)
        .iter()
        .enumerate()
        .map(|(i, t)| crate::common::doc(&format!("w{i}"), t))
        .collect();
    let queries = [
        "Who visited the cosmodrome?",
        "artillery shells for the war",
        "naval drill",
    ];
    let run = |engine: &Engine| -> Vec<Vec<(u64, f32)>> {
        queries
            .iter()
            .map(|q| {
                let r = engine.search(q, &req(10)).unwrap();
                assert_eq!(r.strategy, SearchStrategy::Hnsw);
                r.hits.iter().map(|h| (h.chunk_id, h.score)).collect()
            })
            .collect()
    };
    let before = {
        let engine = crate::common::engine_with(options.clone());
        engine.ingest(docs.clone(), &hidden()).unwrap();
        // New vectors are searched exactly until they are folded into the graph (at once
        // here: the corpus is past `exact_below`).
        assert_eq!(engine.stats().unwrap().indexed, 60);
        engine.maintain().unwrap();
        engine.persist().unwrap();
        run(&engine)
    };
    // A damaged index (a power cut mid-write, a full disk) is refused by its checksums and
    // rebuilt from the store.
    let segment = std::fs::read_dir(dir.path().join("index/segment"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a segment folder");
    for file in ["vectors.f32", "codes.u8", "links0.u32"] {
        assert!(segment.join(file).is_file(), "{file}");
    }
    let vectors = segment.join("vectors.f32");
    let intact = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &intact[..intact.len() / 3]).unwrap();
    {
        let rebuilt = crate::common::engine_with(options.clone());
        assert_eq!(rebuilt.stats().unwrap().indexed, 60);
        assert_eq!(run(&rebuilt)[0][0], before[0][0], "rebuilt from the store");
    }
    let reopened = crate::common::engine_with(options.clone());
    assert_eq!(
        run(&reopened)[0][0],
        before[0][0],
        "loaded the rebuilt index"
    );
    // One writer per data directory: a second open fails at once and names the holder;
    // a read-only open works beside it.
    let err = Engine::open(crate::common::encoder(), options.clone(), &hidden())
        .err()
        .expect("the directory is locked");
    assert!(
        matches!(
            err,
            EngineError::Storage(StorageError::Store(StoreError::Locked { .. }))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("in use by this process"), "{err}");
    {
        let mut read_only = options.clone();
        read_only.read_only = true;
        let reader = crate::common::engine_with(read_only);
        assert_eq!(run(&reader), before);
        assert!(matches!(
            reader.ingest(vec![crate::common::doc("x", "text")], &hidden()),
            Err(EngineError::Storage(StorageError::ReadOnly(_)))
        ));
        assert!(matches!(
            reader.delete("w1"),
            Err(EngineError::Storage(StorageError::ReadOnly(_)))
        ));
    }
    let extra = crate::common::doc(
        "late",
        "A late document about submarines and the Pacific fleet.",
    );
    reopened.ingest(vec![extra], &hidden()).unwrap();
    drop(reopened); // no persist: the dump is now one document behind the store
    let caught_up = crate::common::engine_with(options.clone());
    assert_eq!(
        caught_up.stats().unwrap().indexed,
        caught_up.stats().unwrap().chunks
    );
    let late = caught_up
        .search("submarines in the Pacific fleet", &req(1))
        .unwrap();
    assert_eq!(late.hits[0].doc_id, "late");
    drop(caught_up);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let rebuilt = crate::common::engine_with(options);
    assert_eq!(
        rebuilt.stats().unwrap().indexed,
        61,
        "rebuilt from stored vectors"
    );
}

#[test]
fn deleted_chunks_vanish_from_hnsw_results_and_compaction_keeps_k() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.exact_below = 0;
    let engine = crate::common::engine_with(options);
    let docs: Vec<_> = crate::common::seed_windows(80, 30)
        .iter()
        .enumerate()
        .map(|(i, t)| crate::common::doc(&format!("w{i}"), t))
        .collect();
    engine.ingest(docs, &hidden()).unwrap();
    engine.maintain().unwrap(); // freeze the graph: the tombstones below are the graph's
    let first = engine
        .search("spy satellite launch", &req(10))
        .unwrap()
        .hits;
    let doomed: Vec<String> = first.iter().take(5).map(|h| h.doc_id.clone()).collect();
    for id in &doomed {
        engine.delete(id).unwrap();
    }
    let after = engine
        .search("spy satellite launch", &req(10))
        .unwrap()
        .hits;
    assert_eq!(after.len(), 10, "still k results");
    assert!(after.iter().all(|h| !doomed.contains(&h.doc_id)));
    // Past the threshold the graph is rebuilt without its tombstones.
    for i in 10..40 {
        let _ = engine.delete(&format!("w{i}"));
    }
    assert!(engine.stats().unwrap().tombstones > 0);
    assert!(engine.maintain().unwrap());
    let stats = engine.stats().unwrap();
    assert_eq!(stats.tombstones, 0);
    assert_eq!(stats.indexed, stats.chunks);
    assert_eq!(
        engine
            .search("spy satellite launch", &req(10))
            .unwrap()
            .hits
            .len(),
        10
    );
}

/// A store whose vectors were made at another precision (int8 here, f32 the encoder's) is
/// refused like another model's: its queries would be embedded unlike its passages. A store
/// from before precision was recorded reads as f32.
#[test]
fn another_precision_is_refused_and_an_old_store_reads_as_f32() {
    let encoder = crate::common::encoder();
    let current = semdex::engine::model_identity(&encoder);
    assert_eq!(current.precision, "f32");
    let dir = tempfile::tempdir().unwrap();
    Store::open(
        dir.path(),
        &ModelIdentity {
            precision: "int8".into(),
            ..current.clone()
        },
    )
    .unwrap();
    let err = Engine::open(encoder.clone(), EngineOptions::new(dir.path()), &hidden())
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            EngineError::Storage(StorageError::Store(StoreError::ModelMismatch { .. }))
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("int8") && err.to_string().contains("--precision"),
        "{err}"
    );

    // A store made before the record: no `precision` key.
    let old = tempfile::tempdir().unwrap();
    Store::open(old.path(), &current).unwrap();
    let db = rusqlite::Connection::open(
        old.path()
            .join(semdex::storage::embedded::store::DATABASE_FILE),
    )
    .unwrap();
    db.execute("DELETE FROM meta WHERE key = 'precision'", [])
        .unwrap();
    drop(db);
    Engine::open(encoder, EngineOptions::new(old.path()), &hidden()).unwrap();
}

#[test]
fn another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(
        dir.path(),
        &ModelIdentity {
            name: "other-model".into(),
            fingerprint: "0000".into(),
            dimension: 768,
            precision: "f32".into(),
        },
    )
    .unwrap();
    let err = Engine::open(
        crate::common::encoder(),
        EngineOptions::new(dir.path()),
        &hidden(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            EngineError::Storage(StorageError::Store(StoreError::ModelMismatch { .. }))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("other-model"));
}

#[test]
fn hnsw_recall_against_exact_on_real_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.exact_below = 0;
    options.ingest_batch = 256;
    let engine = crate::common::engine_with(options);
    let windows = crate::common::seed_windows(1200, 12);
    let docs: Vec<_> = windows
        .iter()
        .enumerate()
        .map(|(i, t)| crate::common::doc(&format!("w{i}"), t))
        .collect();
    engine.ingest(docs, &hidden()).unwrap();
    engine.maintain().unwrap(); // fold the new vectors into the graph
    let queries = crate::common::seed_windows(1300, 9);
    let (mut found, mut wanted) = (0, 0);
    for q in &queries[1200..] {
        let approx = engine.search(q, &req(10)).unwrap().hits;
        let truth = engine
            .search(
                q,
                &SearchRequest {
                    exact: true,
                    ..req(10)
                },
            )
            .unwrap()
            .hits;
        // Near-duplicate windows tie; a hit scoring at least the 10th true score counts.
        let floor = truth.last().unwrap().score - 1e-5;
        found += approx.iter().filter(|h| h.score >= floor).count().min(10);
        wanted += 10;
    }
    let recall = found as f64 / wanted as f64;
    println!(
        "HNSW recall@10 vs exact on {} real vectors: {recall:.4}",
        windows.len()
    );
    assert!(recall >= 0.99, "recall@10 {recall}");
}

crate::suite::backend_suite!(crate::suite::Embedded::new());

/// A data directory written by schema 2 (before passages kept their section and pages, and
/// documents their format) opens at schema 3: what it holds reads back with no title, section
/// or pages, and is found as before.
#[test]
fn a_schema_2_store_reads_back_without_citations() {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
    engine
        .ingest(
            vec![crate::common::doc(
                "old",
                "Quokkas live on Rottnest Island, off the coast near Perth.",
            )],
            &hidden(),
        )
        .unwrap();
    drop(engine);
    // What schema 2 had: none of the new columns.
    let db = dir
        .path()
        .join(semdex::storage::embedded::store::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "ALTER TABLE documents DROP COLUMN format;
         ALTER TABLE documents DROP COLUMN title_in_context;
         ALTER TABLE chunks DROP COLUMN section;
         ALTER TABLE chunks DROP COLUMN page_first;
         ALTER TABLE chunks DROP COLUMN page_last;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);

    let engine = crate::common::engine_with(EngineOptions::new(dir.path()));
    let doc = engine.document("old").unwrap();
    assert_eq!((doc.title, doc.format), (None, None));
    let hits = engine
        .search("Where do quokkas live?", &SearchRequest::default())
        .unwrap()
        .hits;
    assert_eq!(hits[0].doc_id, "old");
    assert_eq!(hits[0].citation, semdex::storage::Citation::default());
    let spans = engine.document_chunks("old").unwrap();
    assert!(
        spans
            .iter()
            .all(|s| s.section.is_empty() && s.pages.is_none())
    );
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
