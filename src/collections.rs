//! Named collections: one server, many corpora, each isolated in its own data directory.
//!
//! The data directory itself is the collection `default` (so a directory made before
//! collections existed is that collection, unchanged). Every other collection lives in
//! `collections/NAME/` beneath it: a complete engine directory (store, vector index, lexical
//! index, lock) plus `collection.json`, the settings it was created with. Ids, passages and
//! indexes are therefore per collection by construction; nothing is shared but the encoder.
//!
//! Creating and deleting are atomic on disk, by rename: a collection is born in a hidden
//! `.creating-*` folder and renamed into place once its settings are durable, and dies by a
//! rename to a hidden `.deleted-*` folder before its files are removed. A crash at any point
//! leaves it either present and whole or gone; hidden leftovers are cleared at the next open.
//!
//! Engines are opened on first use and stay open, so a server with many collections pays at
//! start only for those it is asked about.
//!
//! With PostgreSQL as the storage ([`Storage::Postgres`]) the collections are rows of the
//! database instead of folders (`semdex_collections`, whose delete cascades to the
//! collection's documents and passages), so that every replica sees the same ones: a name
//! this process does not know is looked up there before it is called unknown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use crate::chunk::ChunkOptions;
use crate::embed::Encoder;
#[cfg(feature = "postgres")]
use crate::engine::Storage;
use crate::engine::{Engine, EngineError, EngineOptions, EngineStats};
use crate::progress::NoProgress;

/// The collection the unprefixed routes and commands work on: the data directory itself.
pub const DEFAULT_COLLECTION: &str = "default";
/// Longest collection name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Where named collections live inside the data directory.
pub const COLLECTIONS_DIR: &str = "collections";
/// The settings file of a named collection.
const MANIFEST: &str = "collection.json";
/// Prefixes of the hidden folders a create or delete works in.
const CREATING: &str = ".creating-";
const DELETED: &str = ".deleted-";

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
    /// A file operation failed.
    #[error("collection {name:?}: {action} {path}: {source}")]
    Io {
        /// The collection.
        name: String,
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The settings file is unreadable.
    #[error("collection {name:?}: {path} is not a valid settings file: {message}")]
    Manifest {
        /// The collection.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Opening the collection's engine failed.
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

/// The settings file of a named collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    name: String,
    created: String,
    chunk_tokens: usize,
    chunk_overlap: usize,
}

/// One named collection: its settings, and its engine once opened.
struct Slot {
    manifest: Manifest,
    dir: PathBuf,
    /// `None` until first use. The mutex also makes a load and a delete exclusive.
    engine: Mutex<Option<Arc<Engine>>>,
    /// Documents and passages, counted from the store while the engine is not open. Nothing
    /// writes an unopened collection, so the count stays true until the engine opens; it
    /// spares `/info` and `/metrics` a database open per collection on every call.
    stored_counts: OnceLock<(usize, usize)>,
}

/// Every collection of one data directory, sharing one encoder.
pub struct Collections {
    root: PathBuf,
    encoder: Arc<Encoder>,
    /// The options each collection's engine is opened with (its own directory and chunking
    /// substituted).
    template: EngineOptions,
    default: Arc<Engine>,
    named: RwLock<BTreeMap<String, Arc<Slot>>>,
}

impl Collections {
    /// The collections beside `default`, the engine of the data directory itself: reads
    /// every named collection's settings (opening none) and clears what an interrupted create
    /// or delete left behind.
    pub fn open(default: Arc<Engine>) -> Result<Self> {
        let template = default.options().clone();
        let root = template.data_dir.clone();
        #[cfg(feature = "postgres")]
        if let Storage::Postgres { database, .. } = &template.storage {
            let collections = Self {
                root,
                encoder: default.encoder().clone(),
                template: template.clone(),
                default,
                named: RwLock::new(BTreeMap::new()),
            };
            collections.refresh_from(database)?;
            return Ok(collections);
        }
        let parent = root.join(COLLECTIONS_DIR);
        let mut named = BTreeMap::new();
        let entries = match std::fs::read_dir(&parent) {
            Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .map_err(io_error("", "reading", &parent))?;
        for entry in entries {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            let path = entry.path();
            if name.starts_with(CREATING) || name.starts_with(DELETED) {
                if !template.read_only {
                    tracing::info!(path = %path.display(), "removing what an interrupted collection create or delete left");
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
                    }
                }
                continue;
            }
            if !is_valid_name(name) || !path.join(MANIFEST).is_file() {
                tracing::warn!(path = %path.display(), "not a collection (no valid name or no collection.json): ignored");
                continue;
            }
            let manifest = read_manifest(name, &path)?;
            named.insert(
                name.to_string(),
                Arc::new(Slot {
                    manifest,
                    dir: path,
                    engine: Mutex::new(None),
                    stored_counts: OnceLock::new(),
                }),
            );
        }
        Ok(Self {
            root,
            encoder: default.encoder().clone(),
            template,
            default,
            named: RwLock::new(named),
        })
    }

    /// The engine of the default collection.
    pub fn default_engine(&self) -> &Arc<Engine> {
        &self.default
    }

    /// The engine of collection `name`, opening it on first use.
    pub fn engine(&self, name: &str) -> Result<Arc<Engine>> {
        if name == DEFAULT_COLLECTION {
            return Ok(self.default.clone());
        }
        check_name(name)?;
        let slot = self.find(name)?;
        self.load(name, &slot)
    }

    /// The engine of collection `name` if it is open and known to exist without asking
    /// anyone (no blocking work): never for a named collection in a shared database, which
    /// another replica may have deleted.
    pub fn loaded(&self, name: &str) -> Option<Arc<Engine>> {
        if name == DEFAULT_COLLECTION {
            return Some(self.default.clone());
        }
        #[cfg(feature = "postgres")]
        if self.database().is_some() {
            return None;
        }
        let slot = self.slot(name)?;
        let engine = slot.engine.lock().unwrap_or_else(|p| p.into_inner());
        engine.clone()
    }

    /// Every collection, `default` first, then by name. Unopened collections are counted
    /// from their stores without opening their indexes.
    pub fn list(&self) -> Result<Vec<CollectionInfo>> {
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            // Other replicas create and delete collections too.
            self.refresh_from(database)?;
        }
        let mut out = vec![self.info_of_default()?];
        let slots: Vec<(String, Arc<Slot>)> = self
            .named
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (name, slot) in slots {
            out.push(self.info_of(&name, &slot)?);
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
        self.info_of(name, &slot)
    }

    /// The stats of every open engine, by collection name (for `/info` and `/metrics`).
    pub fn loaded_stats(&self) -> Vec<(String, std::result::Result<EngineStats, EngineError>)> {
        let mut out = vec![(DEFAULT_COLLECTION.to_string(), self.default.stats())];
        let named = self.named.read().unwrap_or_else(|p| p.into_inner());
        for (name, slot) in named.iter() {
            let engine = slot
                .engine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(engine) = engine {
                out.push((name.clone(), engine.stats()));
            }
        }
        out
    }

    /// Creates an empty collection. Its settings are validated and made durable before the
    /// collection becomes visible, and its engine is opened before this returns.
    pub fn create(&self, name: &str, settings: CollectionSettings) -> Result<CollectionInfo> {
        check_name(name)?;
        self.check_writable(name)?;
        let chunk = self.chunk_options(settings);
        crate::chunk::Chunker::new(self.encoder.tokenizer().clone(), chunk)
            .map_err(|e| CollectionError::InvalidSettings(e.to_string()))?;
        if name == DEFAULT_COLLECTION {
            return Err(CollectionError::Exists(name.to_string()));
        }
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            // The database decides whether the name is taken (this process's list may be
            // stale: another replica may have deleted it).
            let settings = serde_json::json!({
                "chunk_tokens": chunk.max_tokens,
                "chunk_overlap": chunk.overlap,
            });
            let created = database
                .create_collection(name, &settings)
                .map_err(engine_error(name))?
                .ok_or_else(|| CollectionError::Exists(name.to_string()))?;
            let slot = Arc::new(Slot {
                manifest: Manifest {
                    name: name.to_string(),
                    created,
                    chunk_tokens: chunk.max_tokens,
                    chunk_overlap: chunk.overlap,
                },
                dir: PathBuf::new(),
                engine: Mutex::new(None),
                stored_counts: OnceLock::new(),
            });
            self.named
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), slot.clone());
            self.load(name, &slot)?;
            tracing::info!(collection = name, "collection created");
            return self.info_of(name, &slot);
        }
        let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
        if named.contains_key(name) {
            return Err(CollectionError::Exists(name.to_string()));
        }
        let parent = self.root.join(COLLECTIONS_DIR);
        std::fs::create_dir_all(&parent).map_err(io_error(name, "creating", &parent))?;
        let staging = parent.join(format!("{CREATING}{name}-{}", unique_suffix()));
        std::fs::create_dir(&staging).map_err(io_error(name, "creating", &staging))?;
        let manifest = Manifest {
            name: name.to_string(),
            created: jiff::Timestamp::now().to_string(),
            chunk_tokens: chunk.max_tokens,
            chunk_overlap: chunk.overlap,
        };
        let placed = (|| {
            let text =
                serde_json::to_vec_pretty(&manifest).map_err(|e| CollectionError::Manifest {
                    name: name.to_string(),
                    path: staging.join(MANIFEST),
                    message: e.to_string(),
                })?;
            write_durably(&staging.join(MANIFEST), &text)
                .map_err(io_error(name, "writing", &staging))?;
            sync_dir(&staging).map_err(io_error(name, "syncing", &staging))?;
            let dir = parent.join(name);
            std::fs::rename(&staging, &dir).map_err(io_error(name, "renaming", &staging))?;
            sync_dir(&parent).map_err(io_error(name, "syncing", &parent))?;
            Ok(dir)
        })();
        let dir = match placed {
            Ok(dir) => dir,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let slot = Arc::new(Slot {
            manifest,
            dir,
            engine: Mutex::new(None),
            stored_counts: OnceLock::new(),
        });
        named.insert(name.to_string(), slot.clone());
        drop(named);
        self.load(name, &slot)?;
        tracing::info!(collection = name, "collection created");
        self.info_of(name, &slot)
    }

    /// Deletes a collection and everything in it. Once this returns it is gone from listings
    /// and from disk; requests already running on it finish on the detached files.
    pub fn delete(&self, name: &str) -> Result<()> {
        if name == DEFAULT_COLLECTION {
            return Err(CollectionError::DefaultIsPermanent);
        }
        check_name(name)?;
        self.check_writable(name)?;
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            // One transaction: the row and every document and passage of the collection (not
            // under this process's lock on the list: a large collection takes a while).
            let deleted = database
                .delete_collection(name)
                .map_err(engine_error(name))?;
            let slot = self
                .named
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            if let Some(slot) = slot {
                slot.engine.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            if !deleted {
                return Err(CollectionError::NotFound(name.to_string()));
            }
            tracing::info!(collection = name, "collection deleted");
            return Ok(());
        }
        let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
        let slot = named
            .get(name)
            .cloned()
            .ok_or_else(|| CollectionError::NotFound(name.to_string()))?;
        // Wait for a load in progress; the engine is dropped once its last request ends.
        let mut engine = slot.engine.lock().unwrap_or_else(|p| p.into_inner());
        let parent = self.root.join(COLLECTIONS_DIR);
        let doomed = parent.join(format!("{DELETED}{name}-{}", unique_suffix()));
        // The rename is the delete: after it (and the directory sync) the collection is gone
        // whatever happens next.
        std::fs::rename(&slot.dir, &doomed).map_err(io_error(name, "renaming", &slot.dir))?;
        sync_dir(&parent).map_err(io_error(name, "syncing", &parent))?;
        named.remove(name);
        engine.take();
        drop(engine);
        drop(named);
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(path = %doomed.display(), error = %e, "cannot remove a deleted collection's files; the next start will");
        }
        tracing::info!(collection = name, "collection deleted");
        Ok(())
    }

    /// Saves every open engine's index (at shutdown).
    pub fn persist(&self) -> std::result::Result<(), EngineError> {
        self.default.persist()?;
        let named = self.named.read().unwrap_or_else(|p| p.into_inner());
        for slot in named.values() {
            let engine = slot
                .engine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(engine) = engine {
                engine.persist()?;
            }
        }
        Ok(())
    }

    /// Fails when the data directory is open read-only here (another process holds it).
    fn check_writable(&self, name: &str) -> Result<()> {
        if self.template.read_only {
            return Err(CollectionError::Engine {
                name: name.to_string(),
                source: EngineError::ReadOnly(self.root.clone()),
            });
        }
        Ok(())
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.named
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn load(&self, name: &str, slot: &Slot) -> Result<Arc<Engine>> {
        let mut engine = slot.engine.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = engine.as_ref() {
            return Ok(engine.clone());
        }
        if self.slot(name).is_none() {
            // Deleted while this caller waited for the lock.
            return Err(CollectionError::NotFound(name.to_string()));
        }
        let mut options = self.template.clone();
        options.data_dir = slot.dir.clone();
        #[cfg(feature = "postgres")]
        if let Storage::Postgres { database, .. } = &self.template.storage {
            options.data_dir = self.root.clone();
            options.storage = Storage::Postgres {
                database: database.clone(),
                collection: name.to_string(),
            };
        }
        options.chunk = self.chunk_options(CollectionSettings {
            chunk_tokens: Some(slot.manifest.chunk_tokens),
            chunk_overlap: Some(slot.manifest.chunk_overlap),
        });
        let opened =
            Engine::open(self.encoder.clone(), options, &NoProgress).map_err(engine_error(name))?;
        tracing::info!(collection = name, "collection opened");
        let opened = Arc::new(opened);
        *engine = Some(opened.clone());
        Ok(opened)
    }

    /// The slot of `name`, looked up in the database when this process does not know it (a
    /// collection another replica created).
    fn find(&self, name: &str) -> Result<Arc<Slot>> {
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            // Another replica may have created or deleted it (or deleted it and made another
            // of the same name): the database decides, and a stale slot goes.
            let created = database
                .collection_created(name)
                .map_err(engine_error(name))?;
            let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
            match created {
                None => {
                    named.remove(name);
                    return Err(CollectionError::NotFound(name.to_string()));
                }
                Some(created) => {
                    if named
                        .get(name)
                        .is_some_and(|slot| slot.manifest.created != created)
                    {
                        named.remove(name);
                    }
                }
            }
        }
        if let Some(slot) = self.slot(name) {
            return Ok(slot);
        }
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            self.refresh_from(database)?;
            if let Some(slot) = self.slot(name) {
                return Ok(slot);
            }
        }
        Err(CollectionError::NotFound(name.to_string()))
    }

    /// Documents and passages of a collection whose engine is not open: counted in the
    /// database (other replicas write it), or once from its store (nothing writes an
    /// unopened folder).
    fn count_unopened(
        &self,
        name: &str,
        slot: &Slot,
    ) -> std::result::Result<(usize, usize), EngineError> {
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database() {
            return database.counts(name);
        }
        let _ = name;
        if let Some(counts) = slot.stored_counts.get() {
            return Ok(*counts);
        }
        let counts = crate::engine::count_stored(&slot.dir, &self.encoder)?;
        Ok(*slot.stored_counts.get_or_init(|| counts))
    }

    /// The database that records the collections, when the storage is PostgreSQL.
    #[cfg(feature = "postgres")]
    fn database(&self) -> Option<&Arc<crate::engine::backend::postgres::Database>> {
        match &self.template.storage {
            Storage::Postgres { database, .. } => Some(database),
            Storage::Embedded => None,
        }
    }

    /// Makes the known collections those the database records: adds new ones, forgets
    /// deleted ones (an open engine of a deleted collection is dropped with its slot).
    #[cfg(feature = "postgres")]
    fn refresh_from(&self, database: &crate::engine::backend::postgres::Database) -> Result<()> {
        let rows = database.collections().map_err(engine_error(""))?;
        let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
        let live: std::collections::HashSet<&str> =
            rows.iter().map(|(name, _, _)| name.as_str()).collect();
        named.retain(|name, _| live.contains(name.as_str()));
        for (name, settings, created) in &rows {
            if name == DEFAULT_COLLECTION || named.contains_key(name) || !is_valid_name(name) {
                continue;
            }
            let setting = |key: &str, default: usize| {
                settings
                    .get(key)
                    .and_then(serde_json::Value::as_u64)
                    .map_or(default, |v| v as usize)
            };
            let manifest = Manifest {
                name: name.clone(),
                created: created.clone(),
                chunk_tokens: setting("chunk_tokens", self.template.chunk.max_tokens),
                chunk_overlap: setting("chunk_overlap", self.template.chunk.overlap),
            };
            named.insert(
                name.clone(),
                Arc::new(Slot {
                    manifest,
                    dir: PathBuf::new(),
                    engine: Mutex::new(None),
                    stored_counts: OnceLock::new(),
                }),
            );
        }
        Ok(())
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

    fn info_of(&self, name: &str, slot: &Slot) -> Result<CollectionInfo> {
        let engine = slot
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (documents, chunks) = match &engine {
            Some(engine) => {
                let stats = engine.stats().map_err(engine_error(name))?;
                (stats.documents, stats.chunks)
            }
            None => self
                .count_unopened(name, slot)
                .map_err(engine_error(name))?,
        };
        Ok(CollectionInfo {
            name: name.to_string(),
            created: Some(slot.manifest.created.clone()),
            documents,
            chunks,
            chunk: ChunkOptions {
                max_tokens: slot.manifest.chunk_tokens,
                overlap: slot.manifest.chunk_overlap,
                whole_documents: false,
            },
            loaded: engine.is_some(),
        })
    }
}

fn read_manifest(name: &str, dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io_error(name, "reading", &path))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| CollectionError::Manifest {
            name: name.to_string(),
            path: path.clone(),
            message: e.to_string(),
        })?;
    if manifest.name != name {
        return Err(CollectionError::Manifest {
            name: name.to_string(),
            path,
            message: format!("it names collection {:?}", manifest.name),
        });
    }
    Ok(manifest)
}

/// The error of a file operation on `path` for collection `name`, for `map_err`.
fn io_error(
    name: &str,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> CollectionError + use<> {
    let (name, path) = (name.to_string(), path.to_path_buf());
    move |source| CollectionError::Io {
        name,
        action,
        path,
        source,
    }
}

/// The error of an engine or database call for collection `name`, for `map_err`.
fn engine_error(name: &str) -> impl FnOnce(EngineError) -> CollectionError + use<> {
    let name = name.to_string();
    move |source| CollectionError::Engine { name, source }
}

/// A suffix no other staging folder of this process or another has.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos}-{}", std::process::id())
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
