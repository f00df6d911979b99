//! Filling in the BM25 postings of passages an older semdex stored (schema 1), at start.

use super::Result;
use super::postings::{LexicalDelta, PostingRows, TermCounts};

/// Passages per transaction of [`backfill_postings`].
const BACKFILL_BATCH: i64 = 512;

/// Writes the BM25 postings of passages that have none (written under schema 1), a batch per
/// transaction, so that an upgraded database ranks every passage; replicas starting together
/// share the work (`SKIP LOCKED`). Derived data, like the embedded backend's lexical index
/// rebuilt from its store.
pub(super) fn backfill_postings(client: &mut postgres::Client) -> Result<()> {
    let started = std::time::Instant::now();
    let mut written = 0usize;
    loop {
        let mut tx = client.transaction()?;
        let rows = tx.query(
            "SELECT c.id, c.collection, c.text,
                    CASE WHEN d.title_in_context IS NOT FALSE THEN d.title END, c.section::text
             FROM semdex_chunks c
             JOIN semdex_documents d ON d.collection = c.collection AND d.id = c.doc_id
             WHERE c.terms IS NULL ORDER BY c.id LIMIT $1 FOR UPDATE OF c SKIP LOCKED",
            &[&BACKFILL_BATCH],
        )?;
        if rows.is_empty() {
            break;
        }
        // Per collection, in name order: replicas backfilling together lock totals alike.
        let mut batches: std::collections::BTreeMap<String, (PostingRows, LexicalDelta)> =
            Default::default();
        let (mut ids, mut lengths) = (Vec::new(), Vec::new());
        for row in &rows {
            let id: i64 = row.get(0);
            let text: &str = row.get(2);
            let title: Option<&str> = row.get(3);
            let section = crate::storage::types::section_from_json(row.get(4));
            let terms = TermCounts::of(&crate::chunk::contextual_text(title, &section, text));
            ids.push(id);
            lengths.push(terms.length);
            let (postings, delta) = batches.entry(row.get(1)).or_default();
            delta.add(terms.length);
            postings.push(id, terms);
        }
        tx.execute(
            "UPDATE semdex_chunks SET terms = u.terms
             FROM unnest($1::bigint[], $2::integer[]) AS u(id, terms) WHERE semdex_chunks.id = u.id",
            &[&ids, &lengths],
        )?;
        for (collection, (postings, _)) in &batches {
            postings.insert(&mut tx, collection)?;
        }
        for (collection, (_, delta)) in &batches {
            delta.apply(&mut tx, collection)?;
        }
        tx.commit()?;
        if written == 0 {
            tracing::info!("writing the BM25 postings of passages stored by an older semdex");
        }
        written += rows.len();
    }
    if written > 0 {
        tracing::info!(
            passages = written,
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "wrote BM25 postings"
        );
    }
    Ok(())
}
