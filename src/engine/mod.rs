//! Ingest and search orchestration: chunker, encoder and a storage [`backend`] working
//! together.
//!
//! The engine knows nothing of HTTP or JSON formatting, nor which storage it has; the CLI and
//! the service layer call it. It chunks and embeds documents and hands each to its
//! [`Backend`] to commit as a unit; it asks the backend for dense and lexical candidates, fuses
//! them and rescores the best with late interaction. It is `Sync`: searches run concurrently,
//! and a delete during an ingest of its id is not undone ([`claims`]) while the backend
//! serialises writes of one id under its own lock.

mod claims;
pub mod fusion;
mod ingest;
pub(crate) mod parallel;
mod search;
pub mod sources;

use std::path::PathBuf;
use std::sync::Arc;

use crate::chunk::{ChunkError, ChunkOptions, Chunker};
use crate::embed::{EmbedError, Encoder};
use crate::index::HnswParams;
use crate::late::TokenFilter;
use crate::progress::Progress;
use crate::storage::{Backend, BackendOptions, ModelIdentity, StorageError};
pub use crate::storage::{CollectionStats, LexicalKind, SearchStrategy};
pub use fusion::Fusion;
pub use ingest::{
    DocumentInput, IngestReport, IngestStatus, content_hash, validate as validate_document,
};
pub use search::{
    DEFAULT_DENSE_WEIGHT, HYBRID_CANDIDATES, HitScores, MAX_RESCORED, Query, RESCORED_CANDIDATES,
    SearchHit, SearchMode, SearchRequest, SearchResults, validate as validate_search,
};

/// Largest `k` a query may ask for.
pub const MAX_K: usize = 1000;
/// Largest per-query `ef`.
pub const MAX_EF: usize = 10_000;
/// Longest document id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// Engine failures. `InvalidRequest` and `NotFound` are the caller's fault; `Storage` says
/// whose fault its cause is; the rest are ours.
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
    /// Chunking options are invalid.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// The storage failed, or refused (read-only, unavailable, a collection deleted under the
    /// request).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<crate::index::IndexError> for EngineError {
    fn from(err: crate::index::IndexError) -> Self {
        Self::Storage(err.into())
    }
}

impl From<crate::storage::embedded::store::StoreError> for EngineError {
    fn from(err: crate::storage::embedded::store::StoreError) -> Self {
        Self::Storage(err.into())
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How the engine runs; defaults are measured (benches/README.md).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The collection folder [`Engine::open`] opens (a data directory's own collection).
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
    /// writes fail with [`StorageError::ReadOnly`] and the index is never saved.
    pub read_only: bool,
}

impl EngineOptions {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let backend = BackendOptions::default();
        Self {
            data_dir: data_dir.into(),
            hnsw: backend.hnsw,
            chunk: ChunkOptions::default(),
            exact_below: backend.exact_below,
            compact_ratio: backend.compact_ratio,
            ingest_batch: 64,
            read_connections: backend.read_connections,
            title_context: false,
            read_only: backend.read_only,
        }
    }

    /// What the storage of a collection opened with these options is given.
    pub fn backend(&self) -> BackendOptions {
        BackendOptions {
            hnsw: self.hnsw,
            exact_below: self.exact_below,
            compact_ratio: self.compact_ratio,
            read_connections: self.read_connections,
            read_only: self.read_only,
        }
    }
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
    /// Opens the collection folder [`EngineOptions::data_dir`] (the embedded storage),
    /// checks it was made with this encoder's model, and brings its indexes up to date (never
    /// by re-embedding, except for token vectors an older semdex did not store). `progress`
    /// shows a rebuild.
    pub fn open(
        encoder: Arc<Encoder>,
        options: EngineOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let backend = crate::storage::embedded::EmbeddedBackend::open(
            &options.data_dir,
            &model_identity(&encoder),
            options.backend(),
            progress,
        )?;
        Self::with_backend(encoder, Box::new(backend), options, progress)
    }

    /// An engine over storage a [`crate::storage::Catalog`] opened (made with this encoder's
    /// model), filling in token vectors an older semdex did not store.
    pub fn with_backend(
        encoder: Arc<Encoder>,
        backend: Box<dyn Backend>,
        options: EngineOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
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
    pub fn stats(&self) -> Result<CollectionStats> {
        Ok(self.backend.stats()?)
    }

    /// Saves what makes the next start fast (the embedded backend's index dump). A read-only
    /// engine saves nothing.
    pub fn persist(&self) -> Result<()> {
        Ok(self.backend.persist()?)
    }

    /// Refuses writes from now on, once those in flight are done (the collection is being
    /// deleted); reads go on.
    pub fn close(&self) {
        self.backend.close();
    }

    /// Housekeeping between requests (the embedded backend compacts its graph once deleted
    /// vectors pass the configured share); returns whether something was done.
    pub fn maintain(&self) -> Result<bool> {
        Ok(self.backend.maintain()?)
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

pub use crate::storage::embedded::{index_dir, lexical_dir};
