//! Ingest and search orchestration: chunker, encoder, store and indexes working together.
//!
//! The engine knows nothing of HTTP or JSON formatting; the CLI and the API call it. It is
//! `Sync`: searches run concurrently under a read lock on the indexes, writers serialise on
//! the store's write connection, and each document is committed (store, then index) as a unit.

mod indexes;
mod ingest;
mod search;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use indicatif::ProgressBar;

use crate::chunk::{ChunkError, ChunkOptions, Chunker};
use crate::embed::{EmbedError, Encoder};
use crate::index::{HnswParams, IndexError, VectorIndex};
use crate::store::{ModelIdentity, Store, StoreError};

use indexes::Indexes;
pub use ingest::{DocumentInput, IngestReport, IngestStatus, content_hash};
pub use search::{
    SearchHit, SearchRequest, SearchResults, SearchStrategy, validate as validate_search,
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
    /// Chunking options are invalid.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
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
    /// Bytes held by the exact index's vectors.
    pub vector_bytes: usize,
}

/// The retrieval engine over one data directory.
pub struct Engine {
    encoder: Arc<Encoder>,
    chunker: Chunker,
    writer: Mutex<Store>,
    reader: Mutex<Store>,
    indexes: RwLock<Indexes>,
    compaction: Mutex<()>,
    options: EngineOptions,
}

impl Engine {
    /// Opens the data directory (creating it), checks it was made with this encoder's model,
    /// and loads the index from its dump or rebuilds it from the stored vectors (never by
    /// re-embedding). `progress` shows the rebuild.
    pub fn open(
        encoder: Arc<Encoder>,
        options: EngineOptions,
        progress: &ProgressBar,
    ) -> Result<Self> {
        options.hnsw.validate()?;
        let model = model_identity(&encoder);
        let writer = Store::open(&options.data_dir, &model)?;
        let reader = Store::open(&options.data_dir, &model)?;
        let chunker = Chunker::new(encoder.tokenizer().clone(), options.chunk)?;
        let indexes = Indexes::open(
            &reader,
            &index_dir(&options.data_dir),
            encoder.dimension(),
            options.hnsw,
            progress,
        )?;
        Ok(Self {
            encoder,
            chunker,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            indexes: RwLock::new(indexes),
            compaction: Mutex::new(()),
            options,
        })
    }

    /// The encoder, shared with whoever else embeds (the API's batching queue).
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
        let ix = self.read_indexes();
        Ok(EngineStats {
            documents,
            chunks,
            indexed: ix.ann.len(),
            tombstones: ix.ann.tombstones(),
            index_kind: ix.ann.kind(),
            hnsw: ix.ann.params(),
            exact_below: self.options.exact_below,
            vector_bytes: ix.exact.memory_bytes(),
        })
    }

    /// Writes the index dump so that the next start loads instead of rebuilding.
    pub fn persist(&self) -> Result<()> {
        let ix = self.read_indexes();
        ix.save(&index_dir(&self.options.data_dir))?;
        Ok(())
    }

    /// Rebuilds the graph without its deleted vectors once they pass the configured share.
    /// Searches go on meanwhile; returns whether a rebuild happened.
    pub fn maintain(&self) -> Result<bool> {
        let Ok(_only_one) = self.compaction.try_lock() else {
            return Ok(false);
        };
        let due = {
            let ix = self.read_indexes();
            let held = ix.ann.indexed_ids().len();
            held > 0 && ix.ann.tombstones() as f64 > self.options.compact_ratio * held as f64
        };
        if !due {
            return Ok(false);
        }
        let snapshot = self.read_indexes().snapshot();
        let fresh = Indexes::build_graph(
            &snapshot,
            self.encoder.dimension(),
            self.options.hnsw,
            &ProgressBar::hidden(),
        )?;
        self.write_indexes().replace_graph(fresh, &snapshot)?;
        tracing::info!(vectors = snapshot.len(), "compacted the HNSW graph");
        Ok(true)
    }

    fn reader(&self) -> MutexGuard<'_, Store> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Store> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_indexes(&self) -> RwLockReadGuard<'_, Indexes> {
        self.indexes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_indexes(&self) -> RwLockWriteGuard<'_, Indexes> {
        self.indexes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Where the index dump lives inside a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}
