//! Keeping the BM25 postings and a collection's totals in step with its passages, in the
//! transaction that writes or deletes a document.

use postgres::GenericClient;

use super::Result;

/// A passage's terms (by the lexical analyzer, the embedded backend's) with their counts, and
/// how many there are in all: its postings and BM25 length.
pub(super) struct TermCounts {
    terms: Vec<String>,
    counts: Vec<i32>,
    pub(super) length: i32,
}

impl TermCounts {
    pub(super) fn of(words: &str) -> Self {
        let all = crate::lexical::analyzer::terms(words);
        let mut counts: std::collections::BTreeMap<String, i32> = Default::default();
        for term in &all {
            *counts.entry(term.clone()).or_default() += 1;
        }
        let length = i32::try_from(all.len()).unwrap_or(i32::MAX);
        let (terms, counts) = counts.into_iter().unzip();
        Self {
            terms,
            counts,
            length,
        }
    }
}

/// The postings of several passages, gathered for one insert.
#[derive(Default)]
pub(super) struct PostingRows {
    /// The passage of each posting: its id, or (before the insert assigns ids) its position
    /// in its document.
    pub(super) chunk_ids: Vec<i64>,
    pub(super) terms: Vec<String>,
    pub(super) tfs: Vec<i32>,
    pub(super) lengths: Vec<i32>,
}

impl PostingRows {
    pub(super) fn push(&mut self, chunk_id: i64, passage: TermCounts) {
        for (term, tf) in passage.terms.into_iter().zip(passage.counts) {
            self.chunk_ids.push(chunk_id);
            self.terms.push(term);
            self.tfs.push(tf);
            self.lengths.push(passage.length);
        }
    }

    pub(super) fn insert(&self, tx: &mut impl GenericClient, collection: &str) -> Result<()> {
        if self.chunk_ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO semdex_postings (collection, term, chunk_id, tf, length)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::integer[], $5::integer[])",
            &[
                &collection,
                &self.terms,
                &self.chunk_ids,
                &self.tfs,
                &self.lengths,
            ],
        )?;
        Ok(())
    }
}

/// A change to a collection's BM25 totals within one transaction.
#[derive(Default)]
pub(super) struct LexicalDelta {
    passages: i64,
    terms: i64,
}

impl LexicalDelta {
    pub(super) fn add(&mut self, length: i32) {
        self.passages += 1;
        self.terms += i64::from(length);
    }

    /// Takes away deleted passages (their `terms`; a passage without postings never counted).
    pub(super) fn remove(&mut self, lengths: &[Option<i32>]) {
        for length in lengths.iter().flatten() {
            self.passages -= 1;
            self.terms -= i64::from(*length);
        }
    }

    /// Writes the change: last in a transaction, as the row lock it takes is held to commit
    /// and serialises the collection's writers.
    pub(super) fn apply(&self, tx: &mut impl GenericClient, collection: &str) -> Result<()> {
        if self.passages == 0 && self.terms == 0 {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO semdex_lexical_totals AS t (collection, passages, terms)
             VALUES ($1, $2, $3)
             ON CONFLICT (collection) DO UPDATE
             SET passages = t.passages + EXCLUDED.passages, terms = t.terms + EXCLUDED.terms",
            &[&collection, &self.passages, &self.terms],
        )?;
        Ok(())
    }
}

/// Deletes a document and its passages (their postings go with them), and takes the passages
/// out of the collection's BM25 totals in `delta`, by their lengths as deleted: a concurrent
/// backfill's are counted once it has committed. Whether the document was there, and how many
/// passages it had.
pub(super) fn delete_document(
    tx: &mut impl GenericClient,
    collection: &str,
    doc_id: &str,
    delta: &mut LexicalDelta,
) -> Result<(bool, usize)> {
    let lengths: Vec<Option<i32>> = tx
        .query(
            "DELETE FROM semdex_chunks WHERE collection = $1 AND doc_id = $2 RETURNING terms",
            &[&collection, &doc_id],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    delta.remove(&lengths);
    let deleted = tx.execute(
        "DELETE FROM semdex_documents WHERE collection = $1 AND id = $2",
        &[&collection, &doc_id],
    )?;
    Ok((deleted == 1, lengths.len()))
}
