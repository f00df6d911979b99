//! The service layer: the one place a request becomes work, between the HTTP routes and the
//! engine (the role of text-embeddings-inference's `core::infer::Infer`).
//!
//! It validates what a caller asks for before any expensive step, admits the work against the
//! server's budgets ([`crate::admission`]: refused at once when they are spent, before anything
//! is tokenized or chunked), tokenizes and queues embedding work on the batching queue, and
//! makes every blocking hop (SQLite, the index, the encoder outside the queue, opening a
//! collection) off the async runtime. Blocking work notices when its caller has gone (a
//! [`CancellationToken`] its request's future cancels when dropped) and stops at the next
//! input or group of documents, and it holds its admission until it has really stopped.
//! A route extracts its wire type, makes one call here and formats the answer; it never touches
//! the engine or the queue itself. The service speaks engine types, never HTTP ones.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, AdmissionLimits, Permit, Refused};
use crate::collections::{
    CollectionError, CollectionInfo, CollectionSettings, Collections, DEFAULT_COLLECTION,
};
use crate::embed::{Embedding, TokenizedText};
use crate::engine::{
    CollectionStats, DocumentInput, Engine, EngineError, IngestReport, Ingested, Query, SearchMode,
    SearchRequest, SearchResults, validate_document, validate_search,
};
use crate::progress::NoProgress;
use crate::queue::{EmbedQueue, QueueError};
use crate::storage::snapshot::{SnapshotError, SnapshotInfo};
use crate::storage::{
    ChunkSettings, ChunkSpan, Consistency, DocumentSummary, StorageError, StoredDocument, reading,
};

/// Largest page of a document listing.
pub const MAX_PAGE: usize = 1000;
/// Most documents in one ingest call.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Text bytes of the documents one engine call ingests (its pipeline holds their passages and
/// vectors); an ingest whose caller has gone stops before its next forward pass wherever it
/// is.
const INGEST_GROUP_BYTES: usize = 64 * 1024;

/// Limits of what one call may ask for, and of the ingest work admitted at once (the
/// embedding budget is the batching queue's `max_queued_inputs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOptions {
    /// Most inputs in one embedding call.
    pub max_inputs: usize,
    /// Bytes of documents (text and metadata) being ingested at once; past it, 429. One
    /// request larger than this still runs, alone.
    pub max_ingest_bytes: usize,
    /// Ingest requests running at once; past it, 429.
    pub max_ingest_requests: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            max_inputs: 512,
            max_ingest_bytes: 16 * 1024 * 1024,
            max_ingest_requests: 8,
        }
    }
}

/// Why a call failed. The first six are the caller's doing; the API maps each variant to a
/// status once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request's values are not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// A document id that does not exist.
    #[error("no document with id {0:?}")]
    NotFound(String),
    /// A collection that does not exist.
    #[error("no collection named {0:?}")]
    CollectionNotFound(String),
    /// A collection that exists already, or one that cannot be deleted.
    #[error("{0}")]
    CollectionConflict(String),
    /// An input is longer than the model's window and the caller did not allow truncation.
    #[error(
        "input {index} has {}{tokens} tokens; the model takes at most {max}. Shorten it, or send \"truncate\": true",
        if *.counted_all { "" } else { "at least " }
    )]
    InputTooLong {
        /// Position of the input in the request.
        index: usize,
        /// Its length in model tokens (a lower bound unless `counted_all`).
        tokens: usize,
        /// The model's window.
        max: usize,
        /// Whether the whole input was tokenized (only a prefix is, when it is long).
        counted_all: bool,
    },
    /// Too much work is waiting; retry shortly.
    #[error("{0}")]
    Overloaded(String),
    /// The server is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The storage cannot be reached now (a database that is down or restarting); retry.
    #[error("{0}")]
    Unavailable(String),
    /// The process has no file descriptor left to open what the request needs; retry.
    #[error("{0}")]
    OutOfDescriptors(String),
    /// The disk is full: writes fail until space is freed; reads go on.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The request ran out of time before it stored anything.
    #[error("{0}")]
    TimedOut(String),
    /// This process may not write its storage (it serves a database's standby); send the
    /// write to one that may.
    #[error("{0}")]
    ReadOnly(String),
    /// A snapshot that cannot be restored here: damaged, truncated, of another model, or of a
    /// newer format.
    #[error("{0}")]
    InvalidSnapshot(String),
    /// No kept snapshot of that id.
    #[error("{0}")]
    SnapshotNotFound(String),
    /// The caller stopped waiting; the work was abandoned (nobody sees this answer).
    #[error("the request was abandoned by its caller")]
    Abandoned,
    /// Something failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// What running out of `what` while doing something answers.
    fn exhausted(what: crate::storage::Exhausted, cause: &dyn std::fmt::Display) -> Self {
        match what {
            crate::storage::Exhausted::Descriptors => Self::OutOfDescriptors(format!(
                "the server has no file descriptor left ({cause}); retry shortly"
            )),
            crate::storage::Exhausted::Space => Self::InsufficientStorage(format!(
                "the disk is full ({cause}); writes fail until space is freed, reads go on"
            )),
        }
    }

    /// Names `collection` in a not-found error raised where its name was not known (a write
    /// into a collection deleted under it).
    fn in_collection(self, collection: &str) -> Self {
        match self {
            Self::CollectionNotFound(name) if name.is_empty() => {
                Self::CollectionNotFound(collection.to_string())
            }
            other => other,
        }
    }
}

/// Result alias for the service.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl From<EngineError> for ServiceError {
    fn from(err: EngineError) -> Self {
        if let EngineError::Storage(storage) = &err
            && let Some(exhausted) = crate::storage::exhausted(storage)
        {
            return Self::exhausted(exhausted, &err);
        }
        match err {
            EngineError::InvalidRequest(m)
            | EngineError::Storage(StorageError::InvalidRequest(m)) => Self::InvalidRequest(m),
            EngineError::NotFound(id) => Self::NotFound(id),
            EngineError::Storage(StorageError::Unavailable(m)) => Self::Unavailable(m),
            EngineError::Storage(StorageError::CollectionNotFound(name)) => {
                Self::CollectionNotFound(name)
            }
            EngineError::Storage(
                err @ (StorageError::ReadOnly(_) | StorageError::ReadOnlyDatabase(_)),
            ) => Self::ReadOnly(err.to_string()),
            EngineError::Storage(StorageError::Snapshot(err)) => Self::from(err),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<SnapshotError> for ServiceError {
    fn from(err: SnapshotError) -> Self {
        match err {
            SnapshotError::Damaged(_)
            | SnapshotError::OtherModel { .. }
            | SnapshotError::TooNew { .. } => Self::InvalidSnapshot(err.to_string()),
            SnapshotError::NotFound { .. } => Self::SnapshotNotFound(err.to_string()),
            SnapshotError::Unsupported(m) => Self::InvalidRequest(m),
            SnapshotError::Cancelled => Self::Abandoned,
            SnapshotError::Io { .. } => Self::Internal(err.to_string()),
        }
    }
}

impl From<QueueError> for ServiceError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full { .. } => Self::Overloaded(err.to_string()),
            QueueError::Closed => Self::ShuttingDown,
            QueueError::Failed(m) => Self::Internal(format!("embedding failed: {m}")),
        }
    }
}

impl From<Refused> for ServiceError {
    fn from(err: Refused) -> Self {
        match err {
            Refused::Closed => Self::ShuttingDown,
            other => Self::Overloaded(other.to_string()),
        }
    }
}

impl From<CollectionError> for ServiceError {
    fn from(err: CollectionError) -> Self {
        if let CollectionError::Engine {
            source: EngineError::Storage(storage),
            ..
        } = &err
            && let Some(exhausted) = crate::storage::exhausted(storage)
        {
            return Self::exhausted(exhausted, &err);
        }
        match err {
            CollectionError::InvalidName(_) | CollectionError::InvalidSettings(_) => {
                Self::InvalidRequest(err.to_string())
            }
            CollectionError::NotFound(name) => Self::CollectionNotFound(name),
            CollectionError::Exists(_) | CollectionError::DefaultIsPermanent => {
                Self::CollectionConflict(err.to_string())
            }
            CollectionError::Engine {
                source:
                    EngineError::Storage(
                        storage @ (StorageError::ReadOnly(_)
                        | StorageError::ReadOnlyDatabase(_)
                        | StorageError::Snapshot(_)),
                    ),
                ..
            } => Self::from(EngineError::Storage(storage)),
            CollectionError::Engine {
                source: EngineError::Storage(StorageError::Unavailable(m)),
                ..
            } => Self::Unavailable(m),
            CollectionError::Engine {
                source: EngineError::Storage(StorageError::CollectionNotFound(_)),
                name,
            } => Self::CollectionNotFound(name),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<task::JoinError> for ServiceError {
    fn from(err: task::JoinError) -> Self {
        Self::Internal(format!("worker task failed: {err}"))
    }
}

/// What an ingest request did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    /// The documents settled (committed, unchanged, or deleted meanwhile), in request order.
    pub reports: Vec<IngestReport>,
    /// The documents not written because the request's time ran out first, in request order.
    pub not_stored: Vec<String>,
}

/// A page of documents and the corpus size.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentPage {
    /// This page, in id order.
    pub documents: Vec<DocumentSummary>,
    /// Documents in the store.
    pub total: usize,
}

/// The collections and the batching queue, behind one set of async calls. Every corpus call
/// names its collection; [`DEFAULT_COLLECTION`] is the data directory itself.
pub struct Service {
    collections: Arc<Collections>,
    queue: EmbedQueue,
    admission: Admission,
    options: ServiceOptions,
}

impl Service {
    /// A service over loaded collections and a started queue. Embedding inputs are admitted
    /// up to the queue's `max_queued_inputs`.
    pub fn new(collections: Arc<Collections>, queue: EmbedQueue, options: ServiceOptions) -> Self {
        let admission = Admission::new(AdmissionLimits {
            inputs: queue.options().max_queued_inputs,
            ingest_bytes: options.max_ingest_bytes,
            ingest_requests: options.max_ingest_requests,
        });
        Self {
            collections,
            queue,
            admission,
            options,
        }
    }

    /// The default collection's engine (for the model and settings in `/info`).
    pub fn engine(&self) -> &Arc<Engine> {
        self.collections.default_engine()
    }

    /// The collections (for per-collection figures in `/info` and `/metrics`).
    pub fn collections(&self) -> &Arc<Collections> {
        &self.collections
    }

    /// The batching queue (for its settings and depth).
    pub fn queue(&self) -> &EmbedQueue {
        &self.queue
    }

    /// The limits in force.
    pub fn options(&self) -> ServiceOptions {
        self.options
    }

    /// The admission budgets (for their sizes and use).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Whether the service can do its work: the batching worker is alive.
    pub fn is_healthy(&self) -> bool {
        self.queue.is_running()
    }

    /// Embeds texts through the batching queue, in order. Unless `truncate`, an input longer
    /// than the model's window is refused rather than silently cut. Admitted before any input
    /// is tokenized; refused at once (overloaded) when the embedding budget is spent.
    pub async fn embed(&self, texts: Vec<String>, truncate: bool) -> Result<Vec<Embedding>> {
        self.embed_inner(texts, truncate, false).await
    }

    async fn embed_inner(
        &self,
        texts: Vec<String>,
        truncate: bool,
        keep_tokens: bool,
    ) -> Result<Vec<Embedding>> {
        let max_inputs = self.options.max_inputs;
        if texts.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "inputs must not be empty".into(),
            ));
        }
        if texts.len() > max_inputs {
            return Err(ServiceError::InvalidRequest(format!(
                "{} inputs in one request; the limit is {max_inputs}",
                texts.len()
            )));
        }
        let permit = self.admission.admit_inputs(texts.len())?;
        let (embeddings, _permit) = self
            .embed_admitted(texts, truncate, keep_tokens, permit)
            .await?;
        Ok(embeddings)
    }

    /// Tokenizes (only as much of each input as the window holds) and embeds admitted inputs;
    /// hands the permit back for work that follows. `keep_tokens` keeps each input's token
    /// vectors (for late interaction).
    async fn embed_admitted(
        &self,
        texts: Vec<String>,
        truncate: bool,
        keep_tokens: bool,
        permit: Permit,
    ) -> Result<(Vec<Embedding>, Permit)> {
        let encoder = self.engine().encoder().clone();
        let max = encoder.max_tokens();
        let cancel = CancellationToken::new();
        let guard = cancel.clone().drop_guard();
        let (tokenized, permit) = self
            .blocking(move || {
                if let Some(first) = texts.first() {
                    crate::hooks::reached("service.embed", first);
                }
                let mut tokenized: Vec<TokenizedText> = Vec::with_capacity(texts.len());
                for (index, text) in texts.iter().enumerate() {
                    if cancel.is_cancelled() {
                        return Err(ServiceError::Abandoned);
                    }
                    let window = encoder
                        .tokenizer()
                        .encode_window(text)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                    if !truncate && window.tokenized.truncated() {
                        return Err(ServiceError::InputTooLong {
                            index,
                            tokens: window.tokenized.full_len,
                            max,
                            counted_all: window.complete,
                        });
                    }
                    tokenized.push(window.tokenized);
                }
                Ok((tokenized, permit))
            })
            .await?;
        let embeddings = if keep_tokens {
            self.queue.embed_with_tokens(tokenized).await?
        } else {
            self.queue.embed(tokenized).await?
        };
        guard.disarm();
        Ok((embeddings, permit))
    }

    /// The passages that best answer `query` in `collection`: validated first, then
    /// admitted, then (unless the mode is lexical) embedded through the queue, batched with
    /// concurrent requests, then searched, on the servers `consistency` allows.
    pub async fn search(
        &self,
        collection: &str,
        query: String,
        request: SearchRequest,
        consistency: Consistency,
    ) -> Result<SearchResults> {
        if query.trim().is_empty() {
            return Err(ServiceError::InvalidRequest(
                "query must not be empty".into(),
            ));
        }
        // Fail fast, before spending a forward pass.
        validate_search(&request)?;
        let engine = self.engine_of(collection).await?;
        let permit = self.admission.admit_inputs(1)?;
        let (embedding, permit) = if request.mode.needs_vector() {
            // Token vectors serve the rescoring and the highlights.
            let tokens =
                (request.mode == SearchMode::Hybrid && request.rerank) || request.shape.highlights;
            let (mut embeddings, permit) = self
                .embed_admitted(vec![query.clone()], true, tokens, permit)
                .await?;
            let embedding = embeddings
                .pop()
                .ok_or_else(|| ServiceError::Internal("no embedding returned".into()))?;
            (Some(embedding), permit)
        } else {
            (None, permit)
        };
        let cancel = CancellationToken::new();
        let guard = cancel.clone().drop_guard();
        let results = self
            .blocking(move || {
                let _permit = permit;
                if cancel.is_cancelled() {
                    return Err(ServiceError::Abandoned);
                }
                let tokens = embedding.as_ref().and_then(|e| engine.query_tokens(e));
                let query = Query {
                    text: &query,
                    vector: embedding.as_ref().map(|e| e.unit.as_slice()),
                    tokens: tokens.as_ref(),
                };
                Ok(reading(consistency, || {
                    engine.search_query(&query, &request)
                })?)
            })
            .await?;
        guard.disarm();
        Ok(results)
    }

    /// Ingests documents (each committed whole), then compacts the index in the background if
    /// enough of it is deleted vectors. Every document is validated first (nothing is written
    /// if one is invalid); then the request is admitted against the ingest budget (refused at
    /// once when it is spent) and ingested in groups. If the caller goes away (a timeout, a
    /// closed connection) the work stops after the current group: what was committed stays,
    /// and posting the same documents again skips them as unchanged.
    /// By `deadline` (when given) it stops before the next forward pass or commit and reports
    /// what it stored: the documents it did not reach are `not_stored`, and a request that
    /// stored nothing fails as [`ServiceError::TimedOut`]. A caller that goes away stops it the
    /// same way, and its admission is released as soon as it has stopped.
    pub async fn ingest(
        &self,
        collection: &str,
        docs: Vec<DocumentInput>,
        deadline: Option<std::time::Instant>,
    ) -> Result<IngestOutcome> {
        if docs.is_empty() {
            return Err(ServiceError::InvalidRequest(
                "documents must not be empty".into(),
            ));
        }
        if docs.len() > MAX_DOCUMENTS {
            return Err(ServiceError::InvalidRequest(format!(
                "{} documents in one request; the limit is {MAX_DOCUMENTS}",
                docs.len()
            )));
        }
        let mut ids = HashSet::with_capacity(docs.len());
        for doc in &docs {
            validate_document(doc)?;
            if !ids.insert(doc.id.as_str()) {
                return Err(ServiceError::InvalidRequest(format!(
                    "document id {:?} appears twice in one request",
                    doc.id
                )));
            }
        }
        drop(ids);
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        let first = ids.first().cloned().unwrap_or_default();
        let permit = self.admission.admit_ingest(ingest_bytes(&docs))?;
        let engine = self.engine_of(collection).await?;
        let cancel = CancellationToken::new();
        let guard = cancel.clone().drop_guard();
        let ingested = self
            .blocking({
                let engine = engine.clone();
                move || {
                    let _permit = permit;
                    let stop = || {
                        cancel.is_cancelled()
                            || deadline.is_some_and(|d| std::time::Instant::now() >= d)
                            || crate::hooks::injected_failure("service.deadline", &first).is_some()
                    };
                    ingest_in_groups(&engine, docs, &stop)
                }
            })
            .await
            .map_err(|e| e.in_collection(collection))?;
        let _ = guard.disarm();
        compact_in_background(engine);
        if !ingested.stopped {
            return Ok(IngestOutcome {
                reports: ingested.reports,
                not_stored: Vec::new(),
            });
        }
        let settled: HashSet<&str> = ingested.reports.iter().map(|r| r.id.as_str()).collect();
        let not_stored: Vec<String> = ids
            .into_iter()
            .filter(|id| !settled.contains(id.as_str()))
            .collect();
        if ingested.reports.is_empty() {
            return Err(ServiceError::TimedOut(format!(
                "the request ran out of time before it stored anything: none of its {} documents was written",
                not_stored.len()
            )));
        }
        Ok(IngestOutcome {
            reports: ingested.reports,
            not_stored,
        })
    }

    /// Deletes a document; returns how many passages went with it.
    pub async fn delete(&self, collection: &str, id: String) -> Result<usize> {
        let engine = self.engine_of(collection).await?;
        let removed = self
            .blocking({
                let engine = engine.clone();
                move || Ok(engine.delete(&id)?)
            })
            .await
            .map_err(|e| e.in_collection(collection))?;
        compact_in_background(engine);
        Ok(removed)
    }

    /// One whole document, read where `consistency` allows.
    pub async fn document(
        &self,
        collection: &str,
        id: String,
        consistency: Consistency,
    ) -> Result<StoredDocument> {
        let engine = self.engine_of(collection).await?;
        self.blocking(move || Ok(reading(consistency, || engine.document(&id))?))
            .await
    }

    /// Where a document's passages lie, in order, read where `consistency` allows.
    pub async fn document_chunks(
        &self,
        collection: &str,
        id: String,
        consistency: Consistency,
    ) -> Result<Vec<ChunkSpan>> {
        let engine = self.engine_of(collection).await?;
        self.blocking(move || Ok(reading(consistency, || engine.document_chunks(&id))?))
            .await
    }

    /// A page of documents in id order (`limit` in 1..=[`MAX_PAGE`]), read where
    /// `consistency` allows.
    pub async fn documents(
        &self,
        collection: &str,
        limit: usize,
        offset: usize,
        consistency: Consistency,
    ) -> Result<DocumentPage> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(ServiceError::InvalidRequest(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        if i64::try_from(offset).is_err() {
            return Err(ServiceError::InvalidRequest(format!(
                "offset must be at most {}",
                i64::MAX
            )));
        }
        let engine = self.engine_of(collection).await?;
        self.blocking(move || {
            reading(consistency, || {
                Ok(DocumentPage {
                    documents: engine.documents(limit, offset)?,
                    total: engine.stats()?.documents,
                })
            })
        })
        .await
    }

    /// Corpus counts and index settings of a collection.
    pub async fn stats(&self, collection: &str) -> Result<CollectionStats> {
        let engine = self.engine_of(collection).await?;
        self.blocking(move || Ok(engine.stats()?)).await
    }

    /// Every collection with its counts, `default` first (a standby may answer).
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let collections = self.collections.clone();
        self.blocking(move || Ok(reading(Consistency::Eventual, || collections.list())?))
            .await
    }

    /// One collection with its counts (a standby may answer).
    pub async fn collection(&self, name: String) -> Result<CollectionInfo> {
        let collections = self.collections.clone();
        self.blocking(move || Ok(reading(Consistency::Eventual, || collections.info(&name))?))
            .await
    }

    /// Creates an empty collection.
    pub async fn create_collection(
        &self,
        name: String,
        settings: CollectionSettings,
    ) -> Result<CollectionInfo> {
        let collections = self.collections.clone();
        self.blocking(move || Ok(collections.create(&name, settings)?))
            .await
    }

    /// Deletes a collection with everything in it.
    pub async fn delete_collection(&self, name: String) -> Result<()> {
        let collections = self.collections.clone();
        self.blocking(move || Ok(collections.delete(&name)?)).await
    }

    /// Takes a snapshot of a collection while it keeps serving and being written, and keeps
    /// it with the storage.
    pub async fn create_snapshot(&self, collection: String) -> Result<SnapshotInfo> {
        let collections = self.collections.clone();
        self.cancellable(move |cancel| {
            let chunk = collections.info(&collection)?.chunk;
            let chunk = ChunkSettings {
                chunk_tokens: chunk.max_tokens,
                chunk_overlap: chunk.overlap,
            };
            let snapshots = snapshots_of(&collections)?;
            snapshots
                .keep_snapshot(&collection, chunk, cancel)
                .map_err(|e| ServiceError::from(EngineError::from(e)).in_collection(&collection))
        })
        .await
    }

    /// The snapshots kept of a collection (also of one deleted since), newest first.
    pub async fn snapshots(&self, collection: String) -> Result<Vec<SnapshotInfo>> {
        let collections = self.collections.clone();
        self.blocking(move || {
            check_collection_name(&collection)?;
            Ok(snapshots_of(&collections)?
                .kept_snapshots(&collection)
                .map_err(EngineError::from)?)
        })
        .await
    }

    /// A kept snapshot: where its archive is, and what it holds.
    pub async fn snapshot(
        &self,
        collection: String,
        id: String,
    ) -> Result<(std::path::PathBuf, SnapshotInfo)> {
        let collections = self.collections.clone();
        self.blocking(move || {
            check_collection_name(&collection)?;
            Ok(snapshots_of(&collections)?
                .kept_snapshot(&collection, &id)
                .map_err(EngineError::from)?)
        })
        .await
    }

    /// Deletes a kept snapshot.
    pub async fn delete_snapshot(&self, collection: String, id: String) -> Result<()> {
        let collections = self.collections.clone();
        self.blocking(move || {
            check_collection_name(&collection)?;
            if snapshots_of(&collections)?
                .remove_snapshot(&collection, &id)
                .map_err(EngineError::from)?
            {
                Ok(())
            } else {
                Err(SnapshotError::NotFound { collection, id }.into())
            }
        })
        .await
    }

    /// Restores a snapshot read from `snapshot` (an upload, read as it arrives) as collection
    /// `collection`: whole or not at all; an existing one is refused unless `replace`. If the
    /// caller goes away the restore stops and leaves nothing.
    pub async fn restore_snapshot(
        &self,
        collection: String,
        snapshot: Box<dyn std::io::Read + Send>,
        replace: bool,
    ) -> Result<CollectionInfo> {
        let collections = self.collections.clone();
        self.cancellable(move |cancel| {
            let mut snapshot = snapshot;
            Ok(collections.restore(&collection, &mut *snapshot, replace, cancel)?)
        })
        .await
    }

    /// Runs blocking work that stops (at its next step) once the caller has gone.
    async fn cancellable<T: Send + 'static>(
        &self,
        work: impl FnOnce(&CancellationToken) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cancel = CancellationToken::new();
        let guard = cancel.clone().drop_guard();
        let out = self.blocking(move || work(&cancel)).await;
        guard.disarm();
        out
    }

    /// Refuses new work, stops the queue (finishing what is queued) and saves every open index.
    pub async fn shutdown(&self) -> Result<()> {
        self.admission.close();
        let queue = self.queue.clone();
        let collections = self.collections.clone();
        self.blocking(move || {
            queue.shutdown();
            collections.persist();
            Ok(())
        })
        .await
    }

    /// The engine of a collection: at once when it is open, else opened on the blocking pool
    /// (concurrent requests for it wait without holding a runtime thread).
    async fn engine_of(&self, collection: &str) -> Result<Arc<Engine>> {
        if collection == DEFAULT_COLLECTION {
            return Ok(self.engine().clone());
        }
        Ok(self.collections.engine(collection).await?)
    }

    /// Runs blocking work (SQLite, the index, the tokenizer) on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        task::spawn_blocking(work).await?
    }
}

/// The snapshots of the collections' storage, or why it takes none.
fn snapshots_of(collections: &Collections) -> Result<&dyn crate::storage::snapshot::Snapshots> {
    collections.catalog().snapshots().ok_or_else(|| {
        ServiceError::InvalidRequest(format!(
            "{} takes no snapshots: back it up with its own tools (README, \"Backups\")",
            collections.catalog().describe()
        ))
    })
}

/// A 422 for a name no collection can have.
fn check_collection_name(name: &str) -> Result<()> {
    if crate::collections::is_valid_name(name) {
        Ok(())
    } else {
        Err(CollectionError::InvalidName(name.to_string()).into())
    }
}

/// Rebuilds a collection's graph off the request path once enough of it is deleted vectors.
fn compact_in_background(engine: Arc<Engine>) {
    task::spawn_blocking(move || {
        if let Err(e) = engine.maintain() {
            tracing::warn!(error = %e, "index compaction failed");
        }
    });
}

/// What a request's documents weigh against the ingest budget: text and metadata bytes.
fn ingest_bytes(docs: &[DocumentInput]) -> usize {
    docs.iter()
        .map(|d| {
            let metadata: usize = d
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.to_string().len())
                .sum();
            d.id.len() + d.text.len() + metadata
        })
        .sum()
}

/// Ingests `docs` in groups of about [`INGEST_GROUP_BYTES`] of text, in order, stopping
/// between groups once `cancel` says the caller has gone.
fn ingest_in_groups(
    engine: &Engine,
    docs: Vec<DocumentInput>,
    stop: &dyn Fn() -> bool,
) -> Result<Ingested> {
    let mut reports = Vec::with_capacity(docs.len());
    let mut group = Vec::new();
    let mut group_bytes = 0;
    let mut docs = docs.into_iter().peekable();
    while let Some(doc) = docs.next() {
        group_bytes += doc.text.len();
        group.push(doc);
        let full = docs
            .peek()
            .is_none_or(|next| group_bytes + next.text.len() > INGEST_GROUP_BYTES);
        if full {
            let done = engine.ingest_until(std::mem::take(&mut group), &NoProgress, stop)?;
            reports.extend(done.reports);
            if done.stopped {
                return Ok(Ingested {
                    reports,
                    stopped: true,
                });
            }
            group_bytes = 0;
        }
    }
    Ok(Ingested {
        reports,
        stopped: false,
    })
}
