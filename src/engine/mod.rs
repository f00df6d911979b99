//! Ingest and search orchestration: chunker, encoder and a storage [`backend`] working
//! together.
//!
//! The engine knows nothing of HTTP or JSON formatting; the CLI and the service layer call it.
//! It chunks and embeds documents and hands each to its backend to commit as a unit; it asks
//! the backend for dense and lexical candidates, fuses them and rescores the best with late
//! interaction. It is `Sync`: searches run concurrently, and writes to one id are made
//! serial ([`claims`]) before the backend serialises them again under its own lock.

pub mod backend;
mod claims;
pub mod fusion;
mod ingest;
mod parallel;
mod search;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk::{ChunkError, ChunkOptions, Chunker};
use crate::embed::{EmbedError, Encoder};
use crate::index::{HnswParams, IndexError};
use crate::late::TokenFilter;
use crate::lexical::{LexicalError, LexicalStats};
use crate::progress::Progress;
use crate::store::{ModelIdentity, StoreError};
use backend::Backend;
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
    /// The collection was deleted (by another process sharing its database) while this
    /// request ran.
    #[error("no collection named {0:?}")]
    CollectionNotFound(String),
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
    /// The database failed (a bad statement, a constraint, a schema problem).
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] backend::postgres::PgError),
    /// The storage cannot be reached now (a database that is down or restarting); the
    /// request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
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
    /// Where the corpus lives: the data directory (default) or a PostgreSQL database.
    pub storage: Storage,
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
            storage: Storage::Embedded,
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

/// Where an engine keeps its corpus.
#[derive(Debug, Clone, Default)]
pub enum Storage {
    /// SQLite, an HNSW graph and a tantivy index in the data directory.
    #[default]
    Embedded,
    /// A PostgreSQL database with pgvector, shared with other semdex processes; the
    /// collection's rows are those under its name.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The database (a bounded pool of connections).
        database: Arc<backend::postgres::Database>,
        /// The collection's name.
        collection: String,
    },
}

/// What ranks passages by their words in a backend, for `/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexicalKind {
    /// The ranking ("tantivy (BM25)").
    pub ranking: &'static str,
    /// How text becomes terms.
    pub analyzer: &'static str,
}

/// The retrieval engine over one collection.
pub struct Engine {
    encoder: Arc<Encoder>,
    chunker: Chunker,
    backend: Box<dyn Backend>,
    /// Which tokens late interaction ignores.
    token_filter: TokenFilter,
    /// Ids that ingests are embedding, so that a delete meanwhile is not undone.
    claims: claims::Claims,
    options: EngineOptions,
}

impl Engine {
    /// Opens the collection's storage ([`EngineOptions::storage`]), checks it was made with
    /// this encoder's model, and brings its indexes up to date (never by re-embedding, except
    /// for token vectors an older semdex did not store). `progress` shows a rebuild.
    pub fn open(
        encoder: Arc<Encoder>,
        options: EngineOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let model = model_identity(&encoder);
        let backend: Box<dyn Backend> = match &options.storage {
            Storage::Embedded => Box::new(backend::embedded::EmbeddedBackend::open(
                &model,
                options.clone(),
                progress,
            )?),
            #[cfg(feature = "postgres")]
            Storage::Postgres {
                database,
                collection,
            } => Box::new(backend::postgres::PostgresBackend::open(
                database.clone(),
                collection,
                &model,
                &options,
            )?),
        };
        let chunker = Chunker::new(encoder.tokenizer().clone(), options.chunk)?;
        let token_filter = TokenFilter::new(encoder.tokenizer());
        let engine = Self {
            encoder,
            chunker,
            backend,
            token_filter,
            claims: claims::Claims::default(),
            options,
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
        self.backend.stats()
    }

    /// Saves what makes the next start fast (the embedded backend's index dump). A read-only
    /// engine saves nothing.
    pub fn persist(&self) -> Result<()> {
        self.backend.persist()
    }

    /// Housekeeping between requests (the embedded backend compacts its graph once deleted
    /// vectors pass the configured share); returns whether something was done.
    pub fn maintain(&self) -> Result<bool> {
        self.backend.maintain()
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

pub use backend::embedded::{index_dir, lexical_dir};

/// Documents and passages stored in a data directory made with `encoder`'s model, read
/// without opening its indexes or taking its lock (for listings of unopened collections).
pub fn count_stored(data_dir: &Path, encoder: &Encoder) -> Result<(usize, usize)> {
    backend::embedded::count_stored(data_dir, &model_identity(encoder))
}
