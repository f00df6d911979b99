//! One open collection's storage, behind one trait: the engine chunks, embeds, fuses and
//! rescores; a [`Backend`] stores what it is given and answers candidate queries. The engine
//! does not know which backend it has.

use std::collections::HashMap;

use crate::index::{Hit, HnswParams};
use crate::lexical::LexicalStats;

use super::Result;
use super::types::{
    ChunkFilter, ChunkRecord, ChunkSpan, DocumentState, DocumentSummary, NewChunk, NewDocument,
    StoredDocument,
};

/// How a collection's storage runs; the defaults are measured (benches/README.md).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendOptions {
    /// HNSW graph parameters.
    pub hnsw: HnswParams,
    /// Below this many live chunks every query is answered exactly (faster and exact).
    pub exact_below: usize,
    /// Rebuild the graph when this fraction of it is deleted vectors.
    pub compact_ratio: f64,
    /// Read connections to the store: concurrent searches up to this many read in parallel.
    pub read_connections: usize,
    /// Open without the directory's write lock, for reading beside a process that holds it:
    /// writes fail with [`super::StorageError::ReadOnly`] and the index is never saved.
    pub read_only: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            hnsw: HnswParams::default(),
            exact_below: 5_000,
            compact_ratio: 0.2,
            read_connections: 4,
            read_only: false,
        }
    }
}

/// Counts and settings of a collection, for `/info` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionStats {
    /// Documents stored.
    pub documents: usize,
    /// Chunks stored.
    pub chunks: usize,
    /// Live vectors in the approximate index.
    pub indexed: usize,
    /// Deleted vectors the graph still holds (until compaction).
    pub tombstones: usize,
    /// The approximate index's kind.
    pub index_kind: &'static str,
    /// Its parameters.
    pub hnsw: HnswParams,
    /// Queries below this many chunks are exact.
    pub exact_below: usize,
    /// Bytes of the vector data the index holds in memory (8-bit codes, and the f32 vectors
    /// added since its graph was last frozen).
    pub vector_bytes: usize,
    /// Bytes of memory the index holds in all: vector data, links and bookkeeping.
    pub index_memory_bytes: usize,
    /// The lexical index's passages and size.
    pub lexical: LexicalStats,
    /// What ranks passages by their words, and how words are analysed.
    pub lexical_kind: LexicalKind,
}

/// What ranks passages by their words in a backend, for `/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexicalKind {
    /// The ranking ("tantivy (BM25)").
    pub ranking: &'static str,
    /// How text becomes terms.
    pub analyzer: &'static str,
}

/// How a query's dense candidates were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchStrategy {
    /// Every vector scored (asked for, or the corpus is small).
    Exact,
    /// Every vector the filter allows scored (the filter is selective).
    ExactFiltered,
    /// The HNSW graph.
    Hnsw,
    /// The HNSW graph, skipping what the filter excludes.
    HnswFiltered,
    /// No dense retrieval: BM25 only.
    Lexical,
}

impl SearchStrategy {
    /// A lowercase name for responses and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::ExactFiltered => "exact_filtered",
            Self::Hnsw => "hnsw",
            Self::HnswFiltered => "hnsw_filtered",
            Self::Lexical => "lexical",
        }
    }
}

/// Why [`Backend::write`] wrote no passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The store holds this text and metadata already.
    Unchanged,
    /// The store held this text; the new metadata was written.
    MetadataUpdated,
    /// A delete of the id came after the caller read its state: nothing was written.
    Deleted,
}

/// What [`Backend::write`] did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing needed new vectors.
    Settled(Settled),
    /// The text differs from the stored one (or there is none) and no passages were given:
    /// embed them and write again.
    NeedsPassages,
    /// The document and its passages were written; `existed` tells an update from a create.
    Stored {
        /// Whether a previous version was replaced.
        existed: bool,
    },
}

/// What to do with a document, given what the store holds for its id: the one rule both
/// backends apply under their write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same text and metadata.
    Unchanged,
    /// Same text, other metadata: write the metadata only.
    MetadataOnly,
    /// New or changed text: write the document and its passages.
    Passages {
        /// Whether a previous version exists.
        existed: bool,
    },
}

/// The [`Decision`] for `doc` when the store holds `state` for its id. The same text read
/// from another format (a PDF stored before pages were kept, whose format is unknown) is
/// chunked again: its sections and pages differ. Plain text and text given as text are one
/// format.
pub fn decide(state: Option<&DocumentState>, doc: &NewDocument<'_>) -> Decision {
    fn structured(format: Option<&str>) -> Option<&str> {
        format.filter(|f| *f != "text")
    }
    match state {
        Some(s)
            if s.content_hash == doc.content_hash
                && structured(s.format.as_deref()) == structured(doc.format) =>
        {
            if &s.metadata == doc.metadata {
                Decision::Unchanged
            } else {
                Decision::MetadataOnly
            }
        }
        Some(_) => Decision::Passages { existed: true },
        None => Decision::Passages { existed: false },
    }
}

/// One query's first stage: how many candidates each retriever returns, and what they may
/// return.
#[derive(Debug, Clone, Copy)]
pub struct CandidateQuery<'a> {
    /// The query text, for the lexical retriever.
    pub text: &'a str,
    /// The unit-length query vector, for the dense retriever.
    pub vector: Option<&'a [f32]>,
    /// Dense candidates wanted (0: none).
    pub dense_depth: usize,
    /// Lexical candidates wanted (0: none).
    pub lexical_depth: usize,
    /// HNSW search breadth (default: the backend's).
    pub ef: Option<usize>,
    /// Score every vector instead of walking the graph.
    pub exact: bool,
    /// Which passages may be returned.
    pub filter: &'a ChunkFilter,
}

/// The first stage's answer.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Dense hits, best first (cosine similarity).
    pub dense: Vec<Hit>,
    /// Lexical hits, best first (the backend's word-match score).
    pub lexical: Vec<Hit>,
    /// How the dense hits were found (`None` when none were asked for).
    pub strategy: Option<SearchStrategy>,
}

/// A collection's storage: documents and passages, their vectors, and the indexes that
/// answer candidate queries. Calls block; the service runs them on blocking threads. Locks are
/// taken in the order [`crate::storage`] documents.
pub trait Backend: Send + Sync {
    /// Counts and index settings.
    fn stats(&self) -> Result<CollectionStats>;

    /// What the store holds for a document id, for change detection.
    fn document_state(&self, id: &str) -> Result<Option<DocumentState>>;

    /// Writes a document as a unit, deciding under the backend's write lock for the id
    /// ([`decide`]): returns [`Written::Settled`]`(Deleted)` without writing when
    /// `deleted_since(what the store holds now)` says a delete of the id came after the caller
    /// read its state, and [`Written::NeedsPassages`] when `passages` is `None` and the text
    /// must be embedded. `deleted_since` is called under that lock and must take no lock of
    /// its own that a delete could hold while waiting for it.
    fn write(
        &self,
        doc: &NewDocument<'_>,
        passages: Option<&[NewChunk<'_>]>,
        deleted_since: &dyn Fn(Option<&DocumentState>) -> bool,
    ) -> Result<Written>;

    /// Deletes a document and its passages; returns how many passages it had, or `None` when
    /// there was no such document. `on_deleted` is called once the delete is made, under the
    /// write lock for the id, so that a writer of the id that takes the lock next sees what it
    /// records (the engine marks the ingests in flight: [`Backend::write`]'s
    /// `deleted_since`). If a commit that follows it fails, the mark stays: an ingest of the
    /// id in flight then reports a delete that did not happen and leaves the document as it
    /// was, the conservative outcome of a delete that was asked for.
    fn delete(&self, id: &str, on_deleted: &dyn Fn()) -> Result<Option<usize>>;

    /// Makes every write so far searchable by words (a backend whose lexical index is
    /// transactional has nothing to do).
    fn flush(&self) -> Result<()>;

    /// Fails, saying why, when this process may not write the collection (storage opened
    /// read-only): checked before a write does any work, such as embedding.
    fn check_writable(&self) -> Result<()>;

    /// A whole stored document.
    fn document(&self, id: &str) -> Result<Option<StoredDocument>>;

    /// Documents in id order, without their text.
    fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>>;

    /// Where a document's passages lie, in order; `None` when there is no such document.
    fn document_chunks(&self, id: &str) -> Result<Option<Vec<ChunkSpan>>>;

    /// The first stage of a query: dense and lexical candidates under the filter.
    fn candidates(&self, query: &CandidateQuery<'_>) -> Result<Candidates>;

    /// Cosine similarities of a unit query vector with these passages (absent ones skipped).
    fn dense_among(&self, vector: &[f32], ids: &[u64]) -> Result<Vec<Hit>>;

    /// The unit vectors of these passages (absent ones skipped), for re-ranking by diversity.
    fn vectors_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, Vec<f32>>>;

    /// Word-match scores of a query with these passages (those matching no word skipped).
    fn lexical_among(&self, text: &str, ids: &[u64]) -> Result<Vec<Hit>>;

    /// Hands `visit` the stored token vectors of each of these passages that has them.
    fn visit_token_vectors(&self, ids: &[u64], visit: &mut dyn FnMut(u64, &[u8])) -> Result<()>;

    /// The passages with these ids, for results (missing ids are absent).
    fn chunks_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, ChunkRecord>>;

    /// Whether reads are work on this machine's cores (files, memory maps) rather than waits
    /// on a server. A hybrid query's rescoring then runs [`Self::lexical_among`] and
    /// [`Self::visit_token_vectors`] on the engine's search threads, so they must not wait for
    /// a lock that a writer may hold ([`Self::dense_among`] stays on the calling thread). A
    /// backend that waits on a network must say false: its waits would hold threads sized to
    /// the cores. False by default.
    fn reads_are_local(&self) -> bool {
        false
    }

    /// Refuses writes from now on ([`super::StorageError::CollectionNotFound`]), once the
    /// writes in flight are done: the collection is being deleted. Reads go on. Nothing by
    /// default (a database refuses them itself once the collection's row is gone).
    fn close(&self) {}

    /// Saves what makes the next start fast (an index dump); nothing by default.
    fn persist(&self) -> Result<()> {
        Ok(())
    }

    /// Housekeeping (graph compaction); returns whether it did something.
    fn maintain(&self) -> Result<bool> {
        Ok(false)
    }

    /// Up to `limit` passages stored without token vectors (by an older semdex).
    fn passages_without_token_vectors(&self, _limit: usize) -> Result<Vec<(u64, String)>> {
        Ok(Vec::new())
    }

    /// How many passages have no token vectors.
    fn count_without_token_vectors(&self) -> Result<usize> {
        Ok(0)
    }

    /// Stores token vectors for existing passages.
    fn put_token_vectors(&self, _items: &[(u64, Vec<u8>)]) -> Result<()> {
        Ok(())
    }
}
