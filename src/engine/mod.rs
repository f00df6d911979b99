//! Ingest and search orchestration: chunker, encoder, store and index working together.
//!
//! The engine knows nothing of HTTP or JSON formatting; the CLI and the service layer call it.
//! It is `Sync`: searches run concurrently (a pool of read connections to the store, a read
//! lock on the index), writers serialise on the store's one write connection, and each
//! document is committed (store transaction, then index) as a unit. A data directory is open
//! for writing in one process at a time ([`DirLock`]).

mod claims;
pub mod fusion;
mod indexes;
mod ingest;
mod search;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::chunk::{ChunkError, ChunkOptions, Chunker};
use crate::embed::{EmbedError, Encoder};
use crate::index::{HnswIndex, HnswParams, IndexError, VectorIndex};
use crate::late::TokenFilter;
use crate::lexical::{LexicalError, LexicalIndex, LexicalStats};
use crate::progress::{NoProgress, Progress};
use crate::store::{DirLock, ModelIdentity, PooledStore, ReadPool, Store, StoreError};
pub use fusion::Fusion;
pub use ingest::{
    DocumentInput, IngestReport, IngestStatus, content_hash, validate as validate_document,
};
pub use search::{
    DEFAULT_DENSE_WEIGHT, HYBRID_CANDIDATES, HitScores, MAX_RESCORED, Query, RESCORED_CANDIDATES,
    SearchHit, SearchMode, SearchRequest, SearchResults, SearchStrategy,
    validate as validate_search,
};

/// Largest `k` a query may ask for.
pub const MAX_K: usize = 1000;
/// Largest per-query `ef`.
pub const MAX_EF: usize = 10_000;
/// Longest document id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Engine failures. `InvalidRequest` and `NotFound` are the caller's fault; the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed (empty query, k out of range, bad filter, empty document).
    #[error("{0}")]
    InvalidRequest(String),
    /// A document id that does not exist.
    #[error("no document with id {0:?}")]
    NotFound(String),
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The lexical index failed.
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    /// Chunking options are invalid.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A write to an engine opened read-only.
    #[error("the data directory {0} is open read-only here (another process holds it)")]
    ReadOnly(PathBuf),
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How the engine runs; defaults are measured (benches/README.md).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where the store and the index dump live.
    pub data_dir: PathBuf,
    /// HNSW graph parameters.
    pub hnsw: HnswParams,
    /// Passage size and overlap.
    pub chunk: ChunkOptions,
    /// Below this many live chunks every query is answered exactly (faster and exact).
    pub exact_below: usize,
    /// Rebuild the graph when this fraction of it is deleted vectors.
    pub compact_ratio: f64,
    /// Chunks embedded per encoder call while ingesting; documents are committed after each
    /// such group, so a crash loses at most one group's work.
    pub ingest_batch: usize,
    /// Read connections to the store: concurrent searches up to this many read in parallel.
    pub read_connections: usize,
    /// Embed and index each passage with its document's title before it
    /// ([`crate::chunk::document_title`]), so that a passage that never names its subject
    /// still carries it. Off by default: on a one-document corpus it only adds the same words
    /// to every passage (benches/README.md).
    pub title_context: bool,
    /// Open without the directory's write lock, for reading beside a process that holds it:
    /// writes fail with [`EngineError::ReadOnly`] and the index is never saved.
    pub read_only: bool,
}

impl EngineOptions {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            hnsw: HnswParams::default(),
            chunk: ChunkOptions::default(),
            exact_below: 5_000,
            compact_ratio: 0.2,
            ingest_batch: 64,
            read_connections: 4,
            title_context: false,
            read_only: false,
        }
    }
}

/// Counts and settings, for `/info` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
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
    /// Bytes of the vectors the index holds in memory (its only copy of them).
    pub vector_bytes: usize,
    /// The lexical index's passages and size.
    pub lexical: LexicalStats,
}

/// The retrieval engine over one data directory.
pub struct Engine {
    encoder: Arc<Encoder>,
    chunker: Chunker,
    writer: Mutex<Store>,
    readers: ReadPool,
    /// parking_lot's lock, for its fair unlock: a writer adding a long document step by step
    /// hands the lock to waiting searches between steps instead of taking it straight back.
    index: RwLock<HnswIndex>,
    lexical: LexicalIndex,
    /// Which tokens late interaction ignores.
    token_filter: TokenFilter,
    compaction: Mutex<()>,
    /// Ids that ingests are embedding, so that a delete meanwhile is not undone.
    claims: claims::Claims,
    options: EngineOptions,
    /// Held while the engine lives (absent when read-only).
    _lock: Option<DirLock>,
}

impl Engine {
    /// Opens the data directory (creating it and taking its write lock), checks it was made
    /// with this encoder's model, and loads the index from its dump — catching up with the
    /// store if the dump is behind — or rebuilds it from the stored vectors (never by
    /// re-embedding). `progress` shows a rebuild.
    pub fn open(
        encoder: Arc<Encoder>,
        options: EngineOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        options.hnsw.validate()?;
        let lock = if options.read_only {
            None
        } else {
            Some(DirLock::acquire(&options.data_dir)?)
        };
        let model = model_identity(&encoder);
        let writer = Store::open(&options.data_dir, &model)?;
        let readers = ReadPool::open(&options.data_dir, &model, options.read_connections)?;
        let chunker = Chunker::new(encoder.tokenizer().clone(), options.chunk)?;
        let index = indexes::open_vector_index(
            &readers.get(),
            &index_dir(&options.data_dir),
            encoder.dimension(),
            options.hnsw,
            progress,
        )?;
        let lexical = indexes::open_lexical_index(
            &readers.get(),
            &lexical_dir(&options.data_dir),
            !options.read_only,
            progress,
        )?;
        let token_filter = TokenFilter::new(encoder.tokenizer());
        let engine = Self {
            encoder,
            chunker,
            writer: Mutex::new(writer),
            readers,
            index: RwLock::new(index),
            lexical,
            token_filter,
            compaction: Mutex::new(()),
            claims: claims::Claims::default(),
            options,
            _lock: lock,
        };
        engine.fill_token_vectors(progress)?;
        Ok(engine)
    }

    /// The encoder, shared with whoever else embeds (the service's batching queue).
    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Counts and index settings.
    pub fn stats(&self) -> Result<EngineStats> {
        let (documents, chunks) = self.reader().counts()?;
        let ix = self.read_index();
        Ok(EngineStats {
            documents,
            chunks,
            indexed: ix.len(),
            tombstones: ix.tombstones(),
            index_kind: ix.kind(),
            hnsw: ix.params(),
            exact_below: self.options.exact_below,
            vector_bytes: ix.vector_bytes(),
            lexical: self.lexical.stats(),
        })
    }

    /// Writes the index dump so that the next start loads instead of rebuilding. A read-only
    /// engine saves nothing.
    pub fn persist(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        self.read_index().save(&index_dir(&self.options.data_dir))?;
        Ok(())
    }

    /// Rebuilds the graph without its deleted vectors once they pass the configured share.
    /// Searches and writes go on meanwhile; returns whether a rebuild happened.
    ///
    /// The new graph is built from the store (the old graph holds the only other copy of the
    /// vectors, so memory peaks at two graphs, never three copies). What changed during the
    /// build is replayed with writers paused, and the graphs are swapped.
    pub fn maintain(&self) -> Result<bool> {
        let Ok(_only_one) = self.compaction.try_lock() else {
            return Ok(false);
        };
        let (due, held) = {
            let ix = self.read_index();
            let held = ix.indexed_ids().len();
            (
                held > 0 && ix.tombstones() as f64 > self.options.compact_ratio * held as f64,
                held,
            )
        };
        if !due {
            return Ok(false);
        }
        let mut fresh = indexes::build_from_store(
            &self.reader(),
            self.encoder.dimension(),
            self.options.hnsw,
            held,
            &NoProgress,
        )?;
        // Writers commit to the store and then to the index under the write connection: holding
        // it makes the index exactly as current as the store while the difference is replayed.
        let writer = self.writer();
        let mut ix = self.write_index();
        if ix.generation() != fresh.generation() {
            let live_now: Vec<u64> = ix
                .indexed_ids()
                .iter()
                .copied()
                .filter(|&id| ix.contains(id))
                .collect();
            let added: Vec<u64> = live_now
                .iter()
                .copied()
                .filter(|&id| !fresh.contains(id))
                .collect();
            let live: std::collections::HashSet<u64> = live_now.into_iter().collect();
            let removed: Vec<u64> = fresh
                .indexed_ids()
                .iter()
                .copied()
                .filter(|id| !live.contains(id))
                .collect();
            let vectors = writer.vectors_by_ids(&added)?;
            let items: Vec<(u64, &[f32])> =
                vectors.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            fresh.add(&items)?;
            fresh.remove(&removed);
        }
        fresh.set_generation(ix.generation());
        let vectors = fresh.len();
        *ix = fresh;
        drop(ix);
        drop(writer);
        tracing::info!(vectors, "compacted the HNSW graph");
        Ok(true)
    }

    /// A read connection from the pool.
    fn reader(&self) -> PooledStore<'_> {
        self.readers.get()
    }

    /// The write connection; fails on a read-only engine.
    fn writer_for_update(&self) -> Result<MutexGuard<'_, Store>> {
        if self.options.read_only {
            return Err(EngineError::ReadOnly(self.options.data_dir.clone()));
        }
        Ok(self.writer())
    }

    fn writer(&self) -> MutexGuard<'_, Store> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_index(&self) -> RwLockReadGuard<'_, HnswIndex> {
        self.index.read()
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, HnswIndex> {
        self.index.write()
    }
}

/// The identity a store records for this encoder's model.
pub fn model_identity(encoder: &Encoder) -> ModelIdentity {
    let config = encoder.config();
    ModelIdentity {
        name: config.name.clone(),
        fingerprint: config.fingerprint.clone(),
        dimension: config.dimension(),
    }
}

/// Documents and passages stored in a data directory made with `encoder`'s model, read
/// without opening its indexes or taking its lock (for listings of unopened collections).
pub fn count_stored(data_dir: &Path, encoder: &Encoder) -> Result<(usize, usize)> {
    let pool = ReadPool::open(data_dir, &model_identity(encoder), 1)?;
    Ok(pool.get().counts()?)
}

/// Where the index dump lives inside a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Where the lexical index lives inside a data directory.
pub fn lexical_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("lexical")
}
