//! Concurrent writes to one document id come out serial, and every reported status is true
//! (issue 13, item 10). Each test holds its ingests between embedding and committing (a
//! `Progress` that waits at its first report), so the interleaving is the same on every run.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use semdex::engine::{EngineError, EngineOptions, IngestStatus};
use semdex::progress::Progress;

/// Waits at `arrive`, then at `leave`, the first time the ingest reports embedded text: after
/// it has read the document's state and embedded its passages, before it commits.
struct Hold<'a> {
    first: AtomicBool,
    arrive: &'a Barrier,
    leave: &'a Barrier,
}

impl<'a> Hold<'a> {
    fn new(arrive: &'a Barrier, leave: &'a Barrier) -> Self {
        Self {
            first: AtomicBool::new(true),
            arrive,
            leave,
        }
    }
}

impl Progress for Hold<'_> {
    fn set_total(&self, _total: u64) {}

    fn advance(&self, _delta: u64) {
        if self.first.swap(false, Ordering::SeqCst) {
            self.arrive.wait();
            self.leave.wait();
        }
    }
}

fn two_ingests_of_one_new_id(first: &str, second: &str) -> (Vec<IngestStatus>, String) {
    let data = tempfile::tempdir().unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(data.path()));
    // Both ingests have read "no such document" and embedded before either commits.
    let (arrive, leave) = (Barrier::new(2), Barrier::new(2));
    let hold = |arrive, leave| Hold::new(arrive, leave);
    let reports = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let doc = crate::common::doc("same", first);
            engine
                .ingest(vec![doc], &hold(&arrive, &leave))
                .unwrap()
                .remove(0)
        });
        let b = s.spawn(|| {
            let doc = crate::common::doc("same", second);
            engine
                .ingest(vec![doc], &hold(&arrive, &leave))
                .unwrap()
                .remove(0)
        });
        [a.join().unwrap(), b.join().unwrap()]
    });
    let mut statuses: Vec<IngestStatus> = reports.iter().map(|r| r.status).collect();
    statuses.sort_by_key(|s| s.as_str());
    let stored = engine.document("same").unwrap();
    let last = reports
        .iter()
        .find(|r| r.status != IngestStatus::Created)
        .unwrap();
    assert_eq!(stored.chunks, last.chunks);
    let stats = engine.stats().unwrap();
    assert_eq!(stats.indexed, stats.chunks, "index = store");
    (statuses, stored.text)
}

#[test]
fn two_ingests_of_one_new_id_report_created_once() {
    let text = "The summit took place in Vladivostok.";
    let (statuses, stored) = two_ingests_of_one_new_id(text, text);
    assert_eq!(
        statuses,
        [IngestStatus::Created, IngestStatus::Unchanged],
        "the second to commit finds the first's document"
    );
    assert_eq!(stored, text);

    let (a, b) = (
        "The summit took place in Vladivostok.",
        "Talks turned to a railway link and energy projects.",
    );
    let (statuses, stored) = two_ingests_of_one_new_id(a, b);
    assert_eq!(statuses, [IngestStatus::Created, IngestStatus::Updated]);
    assert!(stored == a || stored == b);
}

#[test]
fn a_delete_during_an_ingest_of_its_id_is_not_undone() {
    let data = tempfile::tempdir().unwrap();
    let engine = crate::common::engine_with(EngineOptions::new(data.path()));
    engine
        .ingest(
            vec![crate::common::doc(
                "doc",
                "The first version of the document.",
            )],
            &semdex::progress::NoProgress,
        )
        .unwrap();
    let (arrive, leave) = (Barrier::new(2), Barrier::new(2));
    let report = std::thread::scope(|s| {
        let ingest = s.spawn(|| {
            engine
                .ingest(
                    vec![crate::common::doc(
                        "doc",
                        "The second version, embedded while a delete runs.",
                    )],
                    &Hold::new(&arrive, &leave),
                )
                .unwrap()
                .remove(0)
        });
        arrive.wait(); // the ingest has read the old version and embedded the new one
        let removed = engine.delete("doc").unwrap();
        assert_eq!(removed, 1, "the delete removed the stored version");
        leave.wait();
        ingest.join().unwrap()
    });
    assert_eq!(report.status, IngestStatus::Deleted, "{report:?}");
    assert_eq!(report.chunks, 0);
    assert!(
        matches!(engine.document("doc"), Err(EngineError::NotFound(_))),
        "the delete stands"
    );
    let stats = engine.stats().unwrap();
    assert_eq!((stats.documents, stats.chunks, stats.indexed), (0, 0, 0));

    // The id is free again: an ingest after the delete creates it.
    let third = engine
        .ingest(
            vec![crate::common::doc("doc", "A third version.")],
            &semdex::progress::NoProgress,
        )
        .unwrap();
    assert_eq!(third[0].status, IngestStatus::Created);
    let again = engine
        .ingest(
            vec![crate::common::doc("doc", "A fourth version.")],
            &semdex::progress::NoProgress,
        )
        .unwrap();
    assert_eq!(again[0].status, IngestStatus::Updated);
    assert_eq!(engine.document("doc").unwrap().text, "A fourth version.");
}
