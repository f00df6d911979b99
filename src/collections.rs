//! Named collections: one server, many corpora, each isolated in its own storage, sharing one
//! encoder.
//!
//! [`Collections`] is a cache of engines over a [`Catalog`] (a data directory's folders, or a
//! shared database's rows): it knows no storage. Engines are opened on first use; past a
//! bound on open collections ([`Collections::with_max_open`]) the least recently used is
//! closed (its index saved first), so that a server with many collections holds the files of
//! only so many, and pays at start only for those it is asked about.
//! The catalog is the truth: a name this process does not know is looked up there before it is
//! called unknown, and with a shared catalog (other replicas create and delete collections
//! too) every use of a named collection asks it.
//!
//! # Locks
//!
//! In the storage lock order ([`crate::storage`]): a collection's *gate* (an async mutex per
//! collection) serialises opening and deleting it; the open runs on the blocking pool while
//! requests for the same collection await the gate without holding a runtime thread, and
//! requests for other collections, `/health` included, never meet it. The *map* of slots is a
//! `parking_lot` mutex held only to look up, insert or remove a slot, never across I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::chunk::ChunkOptions;
use crate::embed::Encoder;
use crate::engine::{CollectionStats, Engine, EngineError, EngineOptions, model_identity};
use crate::progress::NoProgress;
use crate::storage::snapshot::SnapshotError;
use crate::storage::{Catalog, ChunkSettings, CollectionRecord, ModelIdentity, StorageError};

pub use crate::storage::DEFAULT_COLLECTION;

/// Longest collection name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a collection call failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The name breaks the naming rule.
    #[error(
        "collection name {0:?} is invalid: use 1 to {MAX_NAME_CHARS} characters of A-Z, a-z, 0-9, '_' and '-'"
    )]
    InvalidName(String),
    /// No collection has this name.
    #[error("no collection named {0:?}")]
    NotFound(String),
    /// A collection with this name exists already.
    #[error("a collection named {0:?} exists already")]
    Exists(String),
    /// The default collection is the data directory itself and cannot be deleted.
    #[error("the default collection cannot be deleted; delete its documents instead")]
    DefaultIsPermanent,
    /// The chunking settings are out of range.
    #[error("{0}")]
    InvalidSettings(String),
    /// The storage, or opening the collection's engine, failed.
    #[error("collection {name:?}: {source}")]
    Engine {
        /// The collection.
        name: String,
        /// The cause.
        #[source]
        source: EngineError,
    },
}

/// Result alias for collections.
pub type Result<T, E = CollectionError> = std::result::Result<T, E>;

/// Whether `name` may name a collection: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(CollectionError::InvalidName(name.to_string()))
    }
}

/// What a new collection may choose; everything else follows the server's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionSettings {
    /// Passage size in model tokens (the server's when absent).
    pub chunk_tokens: Option<usize>,
    /// Tokens neighbouring passages share (the server's when absent).
    pub chunk_overlap: Option<usize>,
}

/// A collection's description, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339), if known (the default collection predates the record).
    pub created: Option<String>,
    /// Documents in it.
    pub documents: usize,
    /// Passages in it.
    pub chunks: usize,
    /// How its documents are cut into passages.
    pub chunk: ChunkOptions,
    /// Whether its engine is open (an unopened collection costs no memory).
    pub loaded: bool,
}

/// One named collection: its record, and its engine while open.
struct Slot {
    record: CollectionRecord,
    /// Its engine while open (a brief lock: read, set or taken, never held across work).
    engine: Mutex<Option<Arc<Engine>>>,
    /// When it was last asked for, on the collections' clock (for closing the least recently
    /// used).
    last_used: AtomicU64,
    /// Serialises opening and deleting the collection (lock 1 of the storage lock order).
    gate: tokio::sync::Mutex<()>,
    /// Set by a delete, under the gate: the slot is dead, whatever its engine.
    deleted: AtomicBool,
    /// Documents and passages, counted from the storage while the engine is not open and the
    /// catalog is not shared: nothing writes an unopened collection then, so the count stays
    /// true; it spares `/info` and `/metrics` a store open per collection on every call.
    stored_counts: OnceLock<(usize, usize)>,
}

impl Slot {
    fn new(record: CollectionRecord) -> Arc<Self> {
        Arc::new(Self {
            record,
            engine: Mutex::new(None),
            last_used: AtomicU64::new(0),
            gate: tokio::sync::Mutex::new(()),
            deleted: AtomicBool::new(false),
            stored_counts: OnceLock::new(),
        })
    }

    /// Its engine, when open and not deleted.
    fn open_engine(&self) -> Option<Arc<Engine>> {
        if self.deleted.load(Ordering::SeqCst) {
            return None;
        }
        self.engine.lock().clone()
    }

    /// Its engine when open, deleted or not (the caller holds the gate).
    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.lock().clone()
    }
}

/// Every collection of one storage, sharing one encoder.
pub struct Collections {
    catalog: Arc<dyn Catalog>,
    encoder: Arc<Encoder>,
    model: ModelIdentity,
    /// The options each collection's engine is opened with (its own chunking substituted).
    template: EngineOptions,
    default: Arc<Engine>,
    /// Named collections this process knows (lock 3 of the storage lock order: brief).
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Named collections open at once, at most (the least recently used is closed past it).
    max_open: usize,
    /// A counter ticking at every use of a collection.
    clock: AtomicU64,
}

impl Collections {
    /// The collections of `catalog` beside `default`, its default collection's engine: reads
    /// every named collection's record (opening none).
    pub fn new(catalog: Arc<dyn Catalog>, default: Arc<Engine>) -> Result<Self> {
        let records = catalog.list().map_err(storage_error(""))?;
        let slots = records
            .into_iter()
            .map(|record| (record.name.clone(), Slot::new(record)))
            .collect();
        Ok(Self {
            encoder: default.encoder().clone(),
            model: model_identity(default.encoder()),
            template: default.options().clone(),
            catalog,
            default,
            slots: Mutex::new(slots),
            max_open: usize::MAX,
            clock: AtomicU64::new(0),
        })
    }

    /// Keeps at most `max_open` named collections open (at least one): opening another closes
    /// the one least recently used, after saving its index. Each open collection holds a dozen
    /// or so file descriptors; the server sizes this from its descriptor limit.
    pub fn with_max_open(mut self, max_open: usize) -> Self {
        self.max_open = max_open.max(1);
        self
    }

    /// The engine of the default collection.
    pub fn default_engine(&self) -> &Arc<Engine> {
        &self.default
    }

    /// The storage the collections live in.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// The engine of collection `name`, opening it on first use. The open runs on tokio's
    /// blocking pool; concurrent callers for the same collection await it (holding no runtime
    /// thread), and a failed open is retried by the next caller.
    pub async fn engine(self: &Arc<Self>, name: &str) -> Result<Arc<Engine>> {
        if name == DEFAULT_COLLECTION {
            return Ok(self.default.clone());
        }
        check_name(name)?;
        let slot = match self.known(name) {
            Some(slot) => slot,
            None => {
                let this = self.clone();
                let owned = name.to_string();
                run_blocking(move || this.find(&owned)).await?
            }
        };
        self.touch(&slot);
        if let Some(engine) = slot.open_engine() {
            return Ok(engine);
        }
        let _gate = slot.gate.lock().await;
        if slot.deleted.load(Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        if let Some(engine) = slot.engine() {
            return Ok(engine);
        }
        let this = self.clone();
        let opening = slot.clone();
        run_blocking(move || this.open_and_make_room(&opening)).await
    }

    /// [`Collections::engine`] for callers outside an async runtime (the command line): the
    /// open runs on the calling thread. Never call it from async code.
    pub fn engine_blocking(&self, name: &str) -> Result<Arc<Engine>> {
        if name == DEFAULT_COLLECTION {
            return Ok(self.default.clone());
        }
        check_name(name)?;
        let slot = match self.known(name) {
            Some(slot) => slot,
            None => self.find(name)?,
        };
        self.touch(&slot);
        if let Some(engine) = slot.open_engine() {
            return Ok(engine);
        }
        let _gate = slot.gate.blocking_lock();
        if slot.deleted.load(Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        if let Some(engine) = slot.engine() {
            return Ok(engine);
        }
        self.open_and_make_room(&slot)
    }

    /// Marks a slot used now.
    fn touch(&self, slot: &Slot) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        slot.last_used.store(now, Ordering::Relaxed);
    }

    /// Opens a slot's engine (the caller holds its gate), then closes the least recently used
    /// others while more than the bound are open. Blocks.
    fn open_and_make_room(&self, slot: &Arc<Slot>) -> Result<Arc<Engine>> {
        let engine = self.open_slot(slot)?;
        *slot.engine.lock() = Some(engine.clone());
        self.close_idle(slot);
        Ok(engine)
    }

    /// Closes open collections, least recently used first, until at most the bound are open;
    /// never `keep`, nor one whose gate is held (opening or being deleted: it is passed over,
    /// not waited for). A closed collection's index is saved first; requests still running on
    /// it finish on the engine they hold. Blocks.
    fn close_idle(&self, keep: &Arc<Slot>) {
        let mut open: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .values()
            .filter(|s| !Arc::ptr_eq(s, keep) && s.engine.lock().is_some())
            .cloned()
            .collect();
        // The slot just opened counts too.
        let mut excess = (open.len() + 1).saturating_sub(self.max_open);
        open.sort_by_key(|s| s.last_used.load(Ordering::Relaxed));
        for slot in open {
            if excess == 0 {
                break;
            }
            let Ok(_gate) = slot.gate.try_lock() else {
                continue;
            };
            let Some(engine) = slot.engine.lock().take() else {
                continue;
            };
            if let Err(e) = engine.persist() {
                tracing::warn!(collection = %slot.record.name, error = %e, "cannot save the index of a collection being closed; the next open catches up from the store");
            }
            tracing::info!(collection = %slot.record.name, "closed a collection idle longest");
            excess -= 1;
        }
    }

    /// Every collection, `default` first, then by name, as the catalog lists them now.
    /// Unopened collections are counted from their storage without opening their indexes.
    pub fn list(&self) -> Result<Vec<CollectionInfo>> {
        if self.slots_are_the_truth() {
            let slots: Vec<Arc<Slot>> = self.slots.lock().values().cloned().collect();
            let mut out = vec![self.info_of_default()?];
            for slot in slots {
                match self.info_of(&slot) {
                    // Deleted since the slots were read.
                    Err(CollectionError::NotFound(_)) => {}
                    info => out.push(info?),
                }
            }
            return Ok(out);
        }
        let records = self.catalog.list().map_err(storage_error(""))?;
        let slots: Vec<Arc<Slot>> = {
            let mut slots = self.slots.lock();
            let live: std::collections::HashSet<&str> =
                records.iter().map(|r| r.name.as_str()).collect();
            slots.retain(|name, _| live.contains(name.as_str()));
            records
                .iter()
                .map(|record| match slots.get(&record.name) {
                    Some(slot) if slot.record.created == record.created => slot.clone(),
                    _ => {
                        let slot = Slot::new(record.clone());
                        slots.insert(record.name.clone(), slot.clone());
                        slot
                    }
                })
                .collect()
        };
        let mut out = vec![self.info_of_default()?];
        for slot in slots {
            out.push(self.info_of(&slot)?);
        }
        Ok(out)
    }

    /// One collection's description.
    pub fn info(&self, name: &str) -> Result<CollectionInfo> {
        if name == DEFAULT_COLLECTION {
            return self.info_of_default();
        }
        check_name(name)?;
        let slot = self.find(name)?;
        self.info_of(&slot)
    }

    /// The stats of every open engine, by collection name (for `/info` and `/metrics`).
    pub fn loaded_stats(&self) -> Vec<(String, std::result::Result<CollectionStats, EngineError>)> {
        let open: Vec<(String, Arc<Engine>)> = self
            .slots
            .lock()
            .iter()
            .filter_map(|(name, slot)| Some((name.clone(), slot.open_engine()?)))
            .collect();
        let mut out = vec![(DEFAULT_COLLECTION.to_string(), self.default.stats())];
        out.extend(
            open.into_iter()
                .map(|(name, engine)| (name, engine.stats())),
        );
        out
    }

    /// Creates an empty collection. Its settings are validated and made durable before the
    /// collection becomes visible, and its engine is opened before this returns. Blocks.
    pub fn create(&self, name: &str, settings: CollectionSettings) -> Result<CollectionInfo> {
        check_name(name)?;
        self.check_writable(name)?;
        let chunk = self.chunk_options(settings);
        crate::chunk::Chunker::new(self.encoder.tokenizer().clone(), chunk)
            .map_err(|e| CollectionError::InvalidSettings(e.to_string()))?;
        if name == DEFAULT_COLLECTION {
            return Err(CollectionError::Exists(name.to_string()));
        }
        let record = self
            .catalog
            .create(
                name,
                ChunkSettings {
                    chunk_tokens: chunk.max_tokens,
                    chunk_overlap: chunk.overlap,
                },
            )
            .map_err(storage_error(name))?
            .ok_or_else(|| CollectionError::Exists(name.to_string()))?;
        let slot = Slot::new(record);
        self.touch(&slot);
        self.slots.lock().insert(name.to_string(), slot.clone());
        {
            let _gate = slot.gate.blocking_lock();
            if let Err(e) = self.open_and_make_room(&slot) {
                // Whole or not at all: a collection that cannot be opened (no descriptor, no
                // space) is taken back, so that the caller's retry finds no half-made one.
                slot.deleted.store(true, Ordering::SeqCst);
                self.slots.lock().remove(name);
                if let Err(undo) = self.catalog.delete(name) {
                    tracing::warn!(collection = name, error = %undo, "cannot take back a collection that failed to open");
                }
                return Err(e);
            }
        }
        tracing::info!(collection = name, "collection created");
        self.info_of(&slot)
    }

    /// Deletes a collection and everything in it. Writes in flight into it finish first (or
    /// fail as not found, once it is closed); once this returns it is gone from listings and
    /// from storage, and searches already running finish on what they hold. Blocks.
    pub fn delete(&self, name: &str) -> Result<()> {
        if name == DEFAULT_COLLECTION {
            return Err(CollectionError::DefaultIsPermanent);
        }
        check_name(name)?;
        self.check_writable(name)?;
        let slot = self.find(name)?;
        let _gate = slot.gate.blocking_lock();
        if !self.retire(&slot) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        let deleted = self.catalog.delete(name).map_err(storage_error(name))?;
        if !deleted {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        tracing::info!(collection = name, "collection deleted");
        Ok(())
    }

    /// Restores a snapshot (read from `snapshot`) as collection `name`, atomically: it is
    /// checked and its indexes built out of sight, then put in place whole; a collection of
    /// that name is refused unless `replace`, and replaced whole with it (writes in flight into
    /// it finish first, as for a delete). Refused before anything changes when the storage
    /// takes no snapshots, the snapshot is of another model, or it is damaged. Blocks.
    pub fn restore(
        &self,
        name: &str,
        snapshot: &mut dyn std::io::Read,
        replace: bool,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<CollectionInfo> {
        if name == DEFAULT_COLLECTION {
            return Err(CollectionError::InvalidSettings(
                "a snapshot restores into a named collection, never over the default one: restore it under a new name".into(),
            ));
        }
        check_name(name)?;
        self.check_writable(name)?;
        let snapshots = self.catalog.snapshots().ok_or_else(|| {
            storage_error(name)(
                SnapshotError::Unsupported(format!(
                    "{} takes no snapshots: back it up with its own tools (README, \"Backups\")",
                    self.catalog.describe()
                ))
                .into(),
            )
        })?;
        if !replace && self.find(name).is_ok() {
            return Err(CollectionError::Exists(name.to_string()));
        }
        let staged = snapshots
            .stage_restore(
                name,
                snapshot,
                &self.model,
                &self.template.backend(),
                &NoProgress,
                cancel,
            )
            .map_err(storage_error(name))?;
        // The replaced collection's engine is retired under its gate, as a delete does, before
        // its folder is swapped.
        let old = if replace { self.find(name).ok() } else { None };
        let _gate = old.as_ref().map(|slot| slot.gate.blocking_lock());
        if let Some(slot) = &old {
            self.retire(slot);
        }
        let record = snapshots
            .install_restore(staged, replace)
            .map_err(storage_error(name))?
            .ok_or_else(|| CollectionError::Exists(name.to_string()))?;
        let slot = Slot::new(record);
        self.slots.lock().insert(name.to_string(), slot.clone());
        tracing::info!(
            collection = name,
            replace,
            "collection restored from a snapshot"
        );
        self.info_of(&slot)
    }

    /// Marks a slot dead (the caller holds its gate), forgets it and closes its engine;
    /// `false` when it was dead already. A later request looks the name up again.
    fn retire(&self, slot: &Arc<Slot>) -> bool {
        if slot.deleted.swap(true, Ordering::SeqCst) {
            return false;
        }
        {
            let mut slots = self.slots.lock();
            if slots
                .get(&slot.record.name)
                .is_some_and(|s| Arc::ptr_eq(s, slot))
            {
                slots.remove(&slot.record.name);
            }
        }
        if let Some(engine) = slot.engine() {
            engine.close();
        }
        true
    }

    /// Saves every open engine's index (at shutdown). A dump that cannot be written (a full
    /// disk) is logged and passed over: the store is the truth, and the next start catches
    /// the index up from it.
    pub fn persist(&self) {
        let open: Vec<(String, Arc<Engine>)> =
            std::iter::once((DEFAULT_COLLECTION.to_string(), self.default.clone()))
                .chain(
                    self.slots
                        .lock()
                        .iter()
                        .filter_map(|(name, slot)| Some((name.clone(), slot.open_engine()?))),
                )
                .collect();
        for (name, engine) in open {
            if let Err(e) = engine.persist() {
                tracing::warn!(collection = %name, error = %e, "cannot save the index; the next start catches it up from the store");
            }
        }
    }

    /// Fails when the storage is open read-only here (another process holds it, or it is a
    /// database's standby).
    fn check_writable(&self, name: &str) -> Result<()> {
        self.catalog.check_writable().map_err(storage_error(name))
    }

    /// Whether this process makes every create and delete of the catalog's collections: then
    /// the slots are the truth, kept by [`Collections::create`] and [`Collections::delete`],
    /// and a name they lack is no collection (asking the catalog would race a delete in
    /// progress and bring its slot back).
    fn slots_are_the_truth(&self) -> bool {
        !self.catalog.is_shared() && !self.catalog.is_read_only()
    }

    /// The slot of `name` when this process may trust what it remembers (an unshared catalog)
    /// and knows it: no blocking work.
    fn known(&self, name: &str) -> Option<Arc<Slot>> {
        if self.catalog.is_shared() {
            return None;
        }
        self.slots.lock().get(name).cloned()
    }

    /// The slot of `name`: from the slots when they are the truth, else after asking the
    /// catalog (another process may have created or deleted it, or deleted it and made another
    /// of the same name: a stale slot goes). Blocks.
    fn find(&self, name: &str) -> Result<Arc<Slot>> {
        if let Some(slot) = self.known(name) {
            return Ok(slot);
        }
        if self.slots_are_the_truth() {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        let record = self.catalog.lookup(name).map_err(storage_error(name))?;
        let mut slots = self.slots.lock();
        let Some(record) = record else {
            slots.remove(name);
            return Err(CollectionError::NotFound(name.to_string()));
        };
        match slots.get(name) {
            Some(slot) if slot.record.created == record.created => Ok(slot.clone()),
            _ => {
                let slot = Slot::new(record);
                slots.insert(name.to_string(), slot.clone());
                Ok(slot)
            }
        }
    }

    /// Opens a slot's engine (the caller holds its gate). Blocks.
    fn open_slot(&self, slot: &Slot) -> Result<Arc<Engine>> {
        let name = &slot.record.name;
        crate::hooks::reached("collections.open", name);
        let mut options = self.template.clone();
        options.chunk = self.chunk_options(CollectionSettings {
            chunk_tokens: Some(slot.record.chunk.chunk_tokens),
            chunk_overlap: Some(slot.record.chunk.chunk_overlap),
        });
        let backend = self
            .catalog
            .open(name, &self.model, &options.backend(), &NoProgress)
            .map_err(storage_error(name))?;
        let engine = Engine::with_backend(self.encoder.clone(), backend, options, &NoProgress)
            .map_err(engine_error(name))?;
        tracing::info!(collection = %name, "collection opened");
        Ok(Arc::new(engine))
    }

    /// Documents and passages of a collection whose engine is not open: counted by the
    /// catalog (a shared one every time: other replicas write it), else once.
    fn count_unopened(&self, slot: &Slot) -> std::result::Result<(usize, usize), StorageError> {
        let name = &slot.record.name;
        if self.catalog.is_shared() {
            return self.catalog.counts(name, &self.model);
        }
        if let Some(counts) = slot.stored_counts.get() {
            return Ok(*counts);
        }
        let counts = self.catalog.counts(name, &self.model)?;
        Ok(*slot.stored_counts.get_or_init(|| counts))
    }

    fn chunk_options(&self, settings: CollectionSettings) -> ChunkOptions {
        let mut chunk = self.template.chunk;
        if let Some(tokens) = settings.chunk_tokens {
            chunk.max_tokens = tokens;
        }
        if let Some(overlap) = settings.chunk_overlap {
            chunk.overlap = overlap;
        }
        chunk.whole_documents = false;
        chunk
    }

    fn info_of_default(&self) -> Result<CollectionInfo> {
        let stats = self
            .default
            .stats()
            .map_err(engine_error(DEFAULT_COLLECTION))?;
        Ok(CollectionInfo {
            name: DEFAULT_COLLECTION.to_string(),
            created: None,
            documents: stats.documents,
            chunks: stats.chunks,
            chunk: self.template.chunk,
            loaded: true,
        })
    }

    fn info_of(&self, slot: &Slot) -> Result<CollectionInfo> {
        let name = &slot.record.name;
        if slot.deleted.load(Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.clone()));
        }
        let engine = slot.open_engine();
        let (documents, chunks) = match &engine {
            Some(engine) => {
                let stats = engine.stats().map_err(engine_error(name))?;
                (stats.documents, stats.chunks)
            }
            None => self.count_unopened(slot).map_err(storage_error(name))?,
        };
        Ok(CollectionInfo {
            name: name.clone(),
            created: Some(slot.record.created.clone()),
            documents,
            chunks,
            chunk: ChunkOptions {
                max_tokens: slot.record.chunk.chunk_tokens,
                overlap: slot.record.chunk.chunk_overlap,
                whole_documents: false,
            },
            loaded: engine.is_some(),
        })
    }
}

/// Runs blocking collection work on tokio's blocking pool.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(CollectionError::Engine {
            name: String::new(),
            source: EngineError::InvalidRequest(format!("collection task failed: {e}")),
        })
    })
}

/// The error of an engine call for collection `name`, for `map_err`.
fn engine_error(name: &str) -> impl FnOnce(EngineError) -> CollectionError + use<> {
    let name = name.to_string();
    move |source| match source {
        EngineError::Storage(StorageError::CollectionNotFound(_)) => {
            CollectionError::NotFound(name)
        }
        source => CollectionError::Engine { name, source },
    }
}

/// The error of a storage call for collection `name`, for `map_err`.
fn storage_error(name: &str) -> impl FnOnce(StorageError) -> CollectionError + use<> {
    let engine = engine_error(name);
    move |source| engine(source.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "default", "Team_42-x", &"n".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "has space",
            "dot.name",
            "slash/x",
            "..",
            "é",
            &"n".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
