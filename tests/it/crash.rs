//! kill -9 in the middle of an ingest leaves a store that opens cleanly, holds whole documents
//! only, and loses nothing that was committed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use semdex::chunk::{ChunkOptions, Chunker};
use semdex::engine::{EngineOptions, IngestStatus};
use semdex::progress::NoProgress;

const DOCS: usize = 150;

fn committed_documents(db: &std::path::Path) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as usize)
}

#[test]
fn sigkill_mid_ingest_leaves_whole_documents_only() {
    let corpus = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let windows = crate::common::seed_windows(DOCS, 60);
    for (i, w) in windows.iter().enumerate() {
        std::fs::write(corpus.path().join(format!("doc{i:03}.txt")), w).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(crate::common::model_dir())
        .args(["ingest", "--ingest-batch", "4", "--data-dir"])
        .arg(data.path())
        .arg(corpus.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let db = data
        .path()
        .join(semdex::storage::embedded::store::DATABASE_FILE);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < 3 {
        assert!(Instant::now() < deadline, "ingest made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
        seen = committed_documents(&db);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The store opens cleanly; nothing committed was lost; every document is whole.
    let engine = crate::common::engine_with(EngineOptions::new(data.path()));
    let stats = engine.stats().unwrap();
    assert!(
        stats.documents >= seen,
        "{} documents after the kill, {seen} seen before",
        stats.documents
    );
    assert!(stats.documents < DOCS, "the kill came mid-ingest");
    assert_eq!(stats.indexed, stats.chunks, "index rebuilt from the store");
    let chunker = Chunker::new(
        crate::common::encoder().tokenizer().clone(),
        ChunkOptions::default(),
    )
    .unwrap();
    let mut offset = 0;
    loop {
        let page = engine.documents(50, offset).unwrap();
        if page.is_empty() {
            break;
        }
        for summary in &page {
            let doc = engine.document(&summary.id).unwrap();
            assert_eq!(
                doc.chunks,
                chunker.chunk(&doc.id, &doc.text).len(),
                "{} is whole",
                doc.id
            );
            let hits = engine
                .search(
                    &doc.text,
                    &semdex::engine::SearchRequest {
                        k: 1,
                        exact: true,
                        filter: semdex::storage::ChunkFilter {
                            doc_ids: Some(vec![doc.id.clone()]),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(hits.hits.len(), 1, "{} has its vectors", doc.id);
            // The lexical index was never committed before the kill: it caught up with the
            // store when the engine opened.
            let words = engine
                .search(
                    &doc.text,
                    &semdex::engine::SearchRequest {
                        k: 1,
                        mode: semdex::engine::SearchMode::Lexical,
                        filter: semdex::storage::ChunkFilter {
                            doc_ids: Some(vec![doc.id.clone()]),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(words.hits.len(), 1, "{} is in the lexical index", doc.id);
        }
        offset += page.len();
    }

    // Ingesting again finishes the job: committed documents are unchanged, the rest created.
    let docs = semdex::engine::sources::collect(&[corpus.path().to_path_buf()], std::io::empty())
        .unwrap()
        .documents;
    let reports = engine.ingest(docs, &NoProgress).unwrap();
    let unchanged = reports
        .iter()
        .filter(|r| r.status == IngestStatus::Unchanged)
        .count();
    assert_eq!(unchanged, stats.documents);
    assert_eq!(engine.stats().unwrap().documents, DOCS);
}
