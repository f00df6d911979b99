//! The lexical index: BM25 over the same passages as the vector index, on tantivy.
//!
//! Like the vector index it is derived data: the SQLite store is the source of truth. Every
//! commit records the store generation it reflects (in tantivy's commit payload), so that on
//! start the engine can tell whether the index is current, behind (it catches up by chunk id),
//! or missing, damaged or made by another analyzer (it is rebuilt from the stored passages).
//! Each passage is one tantivy document: its chunk id (indexed, for deletes; a fast field, for
//! filters and for mapping hits back) and its text, analyzed by [`analyzer`].

pub mod analyzer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{
    DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TERMINATED, TantivyDocument, Term,
};

use crate::index::{Hit, VectorId};

/// The chunk-id field's name (tantivy looks fast fields up by name).
const CHUNK_ID: &str = "chunk_id";
/// The text field's name.
const TEXT: &str = "text";
/// Memory of the one indexing thread (tantivy's minimum is 15 MB): passages are short, and
/// indexing must stay out of the encoder's way.
const WRITER_MEMORY: usize = 32 << 20;
/// Threads that merge segments in the background.
const MERGE_THREADS: usize = 2;
/// From this many passages on the writer is kept between commits: ingests into a big index
/// are frequent and long, and remaking the writer would slow them. Below it, each commit
/// frees the writer (benches/README.md: 100 one-document collections).
const KEEP_WRITER_FROM: u64 = 2_000;

/// The writer, locked; there is one once [`LexicalIndex::writer`] returned this.
struct WriterGuard<'a>(MutexGuard<'a, Option<IndexWriter>>);

impl std::ops::Deref for WriterGuard<'_> {
    type Target = IndexWriter;

    fn deref(&self) -> &IndexWriter {
        self.0
            .as_ref()
            .expect("the writer is made before the guard is handed out")
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut IndexWriter {
        self.0
            .as_mut()
            .expect("the writer is made before the guard is handed out")
    }
}

/// Lexical index failures.
#[derive(Debug, thiserror::Error)]
pub enum LexicalError {
    /// tantivy failed (I/O, a damaged file).
    #[error("lexical index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index folder could not be created or cleared.
    #[error("lexical index folder {dir}: {source}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A write to an index opened read-only.
    #[error("the lexical index is open read-only")]
    ReadOnly,
}

/// Result alias for the lexical index.
pub type Result<T, E = LexicalError> = std::result::Result<T, E>;

/// What a commit records besides tantivy's own metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Payload {
    generation: u64,
    analyzer: String,
}

/// How an opened index relates to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It holds the passages of this store generation.
    At(u64),
    /// It is new or was just cleared: it holds nothing and must be filled from the store.
    Empty,
}

/// Counts for `/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexicalStats {
    /// Passages indexed (committed).
    pub passages: u64,
    /// Bytes of the index's files.
    pub bytes: u64,
}

/// BM25 search over passages.
pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    writable: bool,
    /// tantivy's writer, made on the first write. It costs megabytes and a few threads, so
    /// a small index lets it go after each commit (see [`KEEP_WRITER_FROM`]).
    writer: Mutex<Option<IndexWriter>>,
    chunk_id: Field,
    text: Field,
    dir: PathBuf,
    /// Whether anything was written since the last commit.
    dirty: AtomicBool,
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    let chunk_id = builder.add_u64_field(CHUNK_ID, INDEXED | FAST);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(analyzer::ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field(TEXT, TextOptions::default().set_indexing_options(indexing));
    (builder.build(), chunk_id, text)
}

impl LexicalIndex {
    /// Opens the index in `dir`, or makes a new, empty one when there is none or it cannot be
    /// used (damaged, another schema or analyzer): the caller then fills it from the store.
    /// A writable index holds tantivy's writer (one per folder).
    pub fn open(dir: &Path, writable: bool) -> Result<(Self, Opened)> {
        match Self::open_existing(dir, writable) {
            Ok(Some(opened)) => return Ok(opened),
            Ok(None) => {}
            Err(e) if writable => {
                tracing::warn!(error = %e, dir = %dir.display(), "the lexical index cannot be used; rebuilding it from the store");
            }
            Err(e) => return Err(e),
        }
        if !writable {
            // Read-only and nothing usable on disk: an in-memory index, filled by the caller.
            let (schema, chunk_id, text) = schema();
            let index = Index::create_in_ram(schema);
            return Ok((
                Self::assemble(index, chunk_id, text, dir, true)?,
                Opened::Empty,
            ));
        }
        let io = |source| LexicalError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let (schema, chunk_id, text) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        Ok((
            Self::assemble(index, chunk_id, text, dir, true)?,
            Opened::Empty,
        ))
    }

    /// The index in `dir` if it exists and was made by this schema and analyzer.
    fn open_existing(dir: &Path, writable: bool) -> Result<Option<(Self, Opened)>> {
        if !dir.join("meta.json").is_file() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir)?;
        let (expected, chunk_id, text) = schema();
        if index.schema() != expected {
            return Ok(None);
        }
        let payload: Option<Payload> = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str(&p).ok());
        let Some(payload) = payload.filter(|p| p.analyzer == analyzer::ANALYZER) else {
            return Ok(None);
        };
        let opened = Self::assemble(index, chunk_id, text, dir, writable)?;
        Ok(Some((opened, Opened::At(payload.generation))))
    }

    fn assemble(
        index: Index,
        chunk_id: Field,
        text: Field,
        dir: &Path,
        writable: bool,
    ) -> Result<Self> {
        index
            .tokenizers()
            .register(analyzer::ANALYZER, analyzer::analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writable,
            writer: Mutex::new(None),
            chunk_id,
            text,
            dir: dir.to_path_buf(),
            dirty: AtomicBool::new(false),
        })
    }

    /// The writer, made now if there is none.
    fn writer(&self) -> Result<WriterGuard<'_>> {
        if !self.writable {
            return Err(LexicalError::ReadOnly);
        }
        let mut slot = self.writer.lock();
        if slot.is_none() {
            let options = IndexWriterOptions::builder()
                .memory_budget_per_thread(WRITER_MEMORY)
                .num_worker_threads(1)
                .num_merge_threads(MERGE_THREADS)
                .build();
            *slot = Some(self.index.writer_with_options(options)?);
        }
        Ok(WriterGuard(slot))
    }

    /// Indexes passages (visible to searches after the next [`LexicalIndex::commit`]).
    pub fn add(&self, passages: &[(VectorId, &str)]) -> Result<()> {
        let writer = self.writer()?;
        for (id, text) in passages {
            let mut doc = TantivyDocument::default();
            doc.add_u64(self.chunk_id, *id);
            doc.add_text(self.text, text);
            writer.add_document(doc)?;
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes passages (from the next commit on).
    pub fn remove(&self, ids: &[VectorId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        for id in ids {
            writer.delete_term(Term::from_field_u64(self.chunk_id, *id));
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes what was added and removed durable and searchable, recording that the index now
    /// reflects store generation `generation`.
    pub fn commit(&self, generation: u64) -> Result<()> {
        let mut writer = self.writer()?;
        let payload = Payload {
            generation,
            analyzer: analyzer::ANALYZER.into(),
        };
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
        prepared.commit()?;
        self.dirty.store(false, Ordering::Release);
        self.reader.reload()?;
        if self.reader.searcher().num_docs() < KEEP_WRITER_FROM {
            // Small: let the merges this commit started finish, then free the writer.
            if let Some(writer) = writer.0.take() {
                writer.wait_merging_threads()?;
            }
        }
        Ok(())
    }

    /// Drops the writes no commit has made durable, so that the index is its last commit
    /// again (before catching it up with the store: a write whose commit failed must not be
    /// added a second time).
    pub fn rollback(&self) -> Result<()> {
        // Dropping tantivy's writer discards what it holds uncommitted, and also lets go of
        // a writer that an I/O error (a full disk) left unusable: the next write makes a new one.
        let writer = self.writer.lock().take();
        drop(writer);
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    /// Whether there are writes that no commit has made searchable yet.
    pub fn has_uncommitted(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// The `k` passages with the best BM25 scores for `query` (an OR of its terms), among
    /// `allowed` when given. A query with no terms (only stop words or punctuation) matches
    /// nothing.
    pub fn search(&self, query: &str, k: usize, allowed: Option<&[VectorId]>) -> Result<Vec<Hit>> {
        let Some(query) = self.query(query) else {
            return Ok(Vec::new());
        };
        if k == 0 || allowed.is_some_and(<[_]>::is_empty) {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(k).order_by_score();
        let found = match allowed {
            None => searcher.search(&query, &top)?,
            Some(ids) => {
                let ids: Arc<HashSet<VectorId>> = Arc::new(ids.iter().copied().collect());
                let pass = move |id: u64| ids.contains(&id);
                searcher.search(&query, &FilterCollector::new(CHUNK_ID.into(), pass, top))?
            }
        };
        // Each segment's id column is opened once (opening it per hit was a third of a top
        // 100's time at a million passages).
        let mut columns: Vec<Option<Column<u64>>> = vec![None; searcher.segment_readers().len()];
        let mut hits = Vec::with_capacity(found.len());
        for (score, address) in found {
            let column = match &mut columns[address.segment_ord as usize] {
                Some(column) => column,
                slot => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64(CHUNK_ID)?,
                ),
            };
            if let Some(id) = column.first(address.doc_id) {
                hits.push(Hit { id, score });
            }
        }
        Ok(hits)
    }

    /// The BM25 scores of the passages `ids` for `query`, the scores [`Self::search`] gives
    /// them (to float rounding: the terms' scores may be summed in another order); passages
    /// matching none of its terms are left out. A hybrid query asks this of the candidates
    /// only the dense retriever found: each is looked up by its id and the query's scorer
    /// jumps to it, so the cost follows the candidates, not the passages that share a word
    /// with the query.
    pub fn score_among(&self, query: &str, ids: &[VectorId]) -> Result<Vec<Hit>> {
        let Some(query) = self.query(query) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let weight = query.weight(EnableScoring::enabled_from_searcher(&searcher))?;
        let mut hits = Vec::with_capacity(ids.len());
        for segment in searcher.segment_readers() {
            let ids_index = segment.inverted_index(self.chunk_id)?;
            let alive = segment.alive_bitset();
            let mut docs: Vec<(DocId, VectorId)> = Vec::with_capacity(ids.len());
            for &id in ids {
                let term = Term::from_field_u64(self.chunk_id, id);
                let postings = ids_index
                    .read_postings(&term, IndexRecordOption::Basic)
                    .map_err(tantivy::TantivyError::from)?;
                let Some(mut postings) = postings else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        docs.push((doc, id));
                    }
                    doc = postings.advance();
                }
            }
            if docs.is_empty() {
                continue;
            }
            docs.sort_unstable();
            docs.dedup();
            let mut scorer = weight.scorer(segment, 1.0)?;
            for (doc, id) in docs {
                // A scorer only moves forward; one already past `doc` skipped it: no match.
                if scorer.doc() <= doc && scorer.seek(doc) == doc {
                    hits.push(Hit {
                        id,
                        score: scorer.score(),
                    });
                }
            }
        }
        Ok(hits)
    }

    /// A query's terms as an OR of BM25 term queries; `None` when it has none (only stop
    /// words or punctuation).
    fn query(&self, text: &str) -> Option<BooleanQuery> {
        let clauses: Vec<(Occur, Box<dyn Query>)> = analyzer::query_terms(text)
            .into_iter()
            .map(|t| {
                let term = Term::from_field_text(self.text, &t);
                let query: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                (Occur::Should, query)
            })
            .collect();
        (!clauses.is_empty()).then(|| BooleanQuery::new(clauses))
    }

    /// The chunk ids of every passage indexed (committed), for catching up with the store,
    /// and those indexed more than once (which a catch-up indexes afresh).
    pub fn ids(&self) -> Result<(HashSet<VectorId>, Vec<VectorId>)> {
        let searcher = self.reader.searcher();
        let mut ids = HashSet::new();
        let mut repeated = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64(CHUNK_ID)?;
            for doc in segment.doc_ids_alive() {
                if let Some(id) = column.first(doc)
                    && !ids.insert(id)
                {
                    repeated.push(id);
                }
            }
        }
        repeated.sort_unstable();
        repeated.dedup();
        Ok((ids, repeated))
    }

    /// Passages indexed and bytes on disk.
    pub fn stats(&self) -> LexicalStats {
        let passages = self.reader.searcher().num_docs();
        let bytes = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        LexicalStats { passages, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_among_ids_match_the_search_across_segments_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = LexicalIndex::open(&dir.path().join("lexical"), true).unwrap();
        let words = ["summit", "rocket", "train", "cosmodrome", "talks", "leader"];
        let text = |id: u64| {
            (0..=id % 5)
                .map(|i| words[((id + i * 7) % words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Three commits: three segments (merges may join some; either way must agree).
        for batch in 0..3u64 {
            let passages: Vec<(u64, String)> = (batch * 20..batch * 20 + 20)
                .map(|id| (id, text(id)))
                .collect();
            let refs: Vec<(u64, &str)> = passages.iter().map(|(i, t)| (*i, t.as_str())).collect();
            index.add(&refs).unwrap();
            index.commit(batch + 1).unwrap();
        }
        index.remove(&[3, 25, 41]).unwrap();
        index.commit(4).unwrap();

        let query = "Which leader went to the cosmodrome by train?";
        let all = index.search(query, 100, None).unwrap();
        assert!(all.len() > 20, "the query matches most passages");
        let mut ids: Vec<u64> = (0..60).rev().collect();
        ids.extend([7, 7, 1_000]); // a repeat and an unknown id
        let among = index.score_among(query, &ids).unwrap();
        assert_eq!(among.len(), all.len(), "every matching passage, once");
        let expected: std::collections::HashMap<u64, f32> =
            all.iter().map(|h| (h.id, h.score)).collect();
        let mut found: std::collections::HashMap<u64, f32> = std::collections::HashMap::new();
        for hit in &among {
            let want = expected.get(&hit.id).copied().unwrap_or(f32::NAN);
            assert!(
                (want - hit.score).abs() <= 1e-5 * want.abs(),
                "passage {}: {} against {want}",
                hit.id,
                hit.score
            );
            found.insert(hit.id, hit.score);
        }
        for deleted in [3, 25, 41] {
            assert!(!found.contains_key(&deleted));
        }
        assert!(index.score_among("the of and", &ids).unwrap().is_empty());
        assert!(index.score_among(query, &[]).unwrap().is_empty());
    }

    #[test]
    fn bm25_search_filters_updates_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lexical");
        let (index, opened) = LexicalIndex::open(&path, true).unwrap();
        assert_eq!(opened, Opened::Empty);
        index
            .add(&[
                (1, "The meeting was held at the Vostochny Cosmodrome."),
                (2, "Kim met Putin; Putin met Kim. Kim, Kim, Kim."),
                (3, "Artillery shells and rockets."),
                (4, "普京和金正恩在东方航天发射场会面"),
            ])
            .unwrap();
        assert!(
            index.search("cosmodrome", 5, None).unwrap().is_empty(),
            "not committed yet"
        );
        index.commit(7).unwrap();
        let ids = |hits: Vec<Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(
            ids(index.search("Where was the meeting?", 5, None).unwrap()),
            [1]
        );
        assert_eq!(ids(index.search("kim", 5, None).unwrap()), [2]);
        assert_eq!(ids(index.search("金正恩", 5, None).unwrap()), [4]);
        assert!(index.search("the of and", 5, None).unwrap().is_empty());
        assert!(index.search("", 5, None).unwrap().is_empty());
        let both = index.search("meeting kim", 5, None).unwrap();
        assert_eq!(both.len(), 2);
        assert!(both[0].score >= both[1].score && both[1].score > 0.0);
        assert_eq!(
            ids(index.search("meeting kim", 5, Some(&[1, 3])).unwrap()),
            [1]
        );
        assert!(
            index
                .search("meeting kim", 5, Some(&[]))
                .unwrap()
                .is_empty()
        );

        index.remove(&[1]).unwrap();
        index.add(&[(5, "A second meeting is planned.")]).unwrap();
        index.commit(8).unwrap();
        assert_eq!(ids(index.search("meeting", 5, None).unwrap()), [5]);
        assert_eq!(index.ids().unwrap().0, HashSet::from([2, 3, 4, 5]));
        assert_eq!(index.stats().passages, 4);
        drop(index);

        let (reopened, opened) = LexicalIndex::open(&path, true).unwrap();
        assert_eq!(opened, Opened::At(8));
        assert_eq!(ids(reopened.search("meeting", 5, None).unwrap()), [5]);
        drop(reopened);

        // A damaged index is replaced by an empty one, to be filled from the store.
        std::fs::write(path.join("meta.json"), b"{ not json").unwrap();
        let (fresh, opened) = LexicalIndex::open(&path, true).unwrap();
        assert_eq!(opened, Opened::Empty);
        assert!(fresh.ids().unwrap().0.is_empty());
    }

    #[test]
    fn read_only_without_an_index_is_empty_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (index, opened) = LexicalIndex::open(&dir.path().join("none"), false).unwrap();
        assert_eq!(opened, Opened::Empty);
        assert!(index.search("anything", 3, None).unwrap().is_empty());
        assert!(!dir.path().join("none").exists());
    }
}
