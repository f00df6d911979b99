//! Named collections: one server, many corpora, each isolated in its own storage, sharing one
//! encoder.
//!
//! [`Collections`] is a cache of engines over a [`Catalog`] (a data directory's folders, or a
//! shared database's rows): it knows no storage. Engines are opened on first use and stay
//! open, so a server with many collections pays at start only for those it is asked about.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::chunk::ChunkOptions;
use crate::embed::Encoder;
use crate::engine::{CollectionStats, Engine, EngineError, EngineOptions, model_identity};
use crate::progress::NoProgress;
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

/// One named collection: its record, and its engine once opened.
struct Slot {
    record: CollectionRecord,
    /// Set once opened; read without waiting.
    engine: OnceLock<Arc<Engine>>,
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
            engine: OnceLock::new(),
            gate: tokio::sync::Mutex::new(()),
            deleted: AtomicBool::new(false),
            stored_counts: OnceLock::new(),
        })
    }

    /// Its engine, when open and not deleted.
    fn open_engine(&self) -> Option<&Arc<Engine>> {
        self.engine
            .get()
            .filter(|_| !self.deleted.load(Ordering::SeqCst))
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
        })
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
        if let Some(engine) = slot.open_engine() {
            return Ok(engine.clone());
        }
        let _gate = slot.gate.lock().await;
        if slot.deleted.load(Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        if let Some(engine) = slot.engine.get() {
            return Ok(engine.clone());
        }
        let this = self.clone();
        let opening = slot.clone();
        let engine = run_blocking(move || this.open_slot(&opening)).await?;
        let _ = slot.engine.set(engine.clone());
        Ok(engine)
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
        if let Some(engine) = slot.open_engine() {
            return Ok(engine.clone());
        }
        let _gate = slot.gate.blocking_lock();
        if slot.deleted.load(Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        if let Some(engine) = slot.engine.get() {
            return Ok(engine.clone());
        }
        let engine = self.open_slot(&slot)?;
        let _ = slot.engine.set(engine.clone());
        Ok(engine)
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
            .filter_map(|(name, slot)| Some((name.clone(), slot.open_engine()?.clone())))
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
        self.slots.lock().insert(name.to_string(), slot.clone());
        {
            let _gate = slot.gate.blocking_lock();
            if !slot.deleted.load(Ordering::SeqCst) && slot.engine.get().is_none() {
                let engine = self.open_slot(&slot)?;
                let _ = slot.engine.set(engine);
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
        if slot.deleted.swap(true, Ordering::SeqCst) {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        // Whatever happens next, this slot is dead: a later request looks the name up again.
        {
            let mut slots = self.slots.lock();
            if slots.get(name).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(name);
            }
        }
        if let Some(engine) = slot.engine.get() {
            engine.close();
        }
        let deleted = self.catalog.delete(name).map_err(storage_error(name))?;
        if !deleted {
            return Err(CollectionError::NotFound(name.to_string()));
        }
        tracing::info!(collection = name, "collection deleted");
        Ok(())
    }

    /// Saves every open engine's index (at shutdown).
    pub fn persist(&self) -> std::result::Result<(), EngineError> {
        self.default.persist()?;
        let open: Vec<Arc<Engine>> = self
            .slots
            .lock()
            .values()
            .filter_map(|slot| slot.open_engine().cloned())
            .collect();
        for engine in open {
            engine.persist()?;
        }
        Ok(())
    }

    /// Fails when the storage is open read-only here (another process holds it).
    fn check_writable(&self, name: &str) -> Result<()> {
        if self.catalog.is_read_only() {
            return Err(CollectionError::Engine {
                name: name.to_string(),
                source: StorageError::ReadOnly(self.template.data_dir.clone()).into(),
            });
        }
        Ok(())
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
        let (documents, chunks) = match engine {
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
