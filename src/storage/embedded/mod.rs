//! The data directory: one process's collections in folders, each a SQLite store beside an
//! HNSW graph and a tantivy index.
//!
//! The data directory itself is the collection `default` (so a directory made before
//! collections existed is that collection, unchanged). Every other collection lives in
//! `collections/NAME/` beneath it: a complete store directory (store, vector index, lexical
//! index, lock) plus `collection.json`, the settings it was created with.
//!
//! Creating and deleting are atomic on disk, by rename: a collection is born in a hidden
//! `.creating-*` folder and renamed into place once its settings are durable, and dies by a
//! rename to a hidden `.deleted-*` folder before its files are removed. A crash at any point
//! leaves it either present and whole or gone; hidden leftovers are cleared at the next open.

mod backend;
mod indexes;
pub mod store;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;

use super::catalog::{Catalog, ChunkSettings, CollectionRecord, DEFAULT_COLLECTION};
use super::types::ModelIdentity;
use super::{Backend, BackendOptions, Result, StorageError};

pub use backend::EmbeddedBackend;

/// Where named collections live inside the data directory.
pub const COLLECTIONS_DIR: &str = "collections";
/// The settings file of a named collection.
const MANIFEST: &str = "collection.json";
/// Prefixes of the hidden folders a create or delete works in.
const CREATING: &str = ".creating-";
const DELETED: &str = ".deleted-";

/// The settings file of a named collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    name: String,
    created: String,
    chunk_tokens: usize,
    chunk_overlap: usize,
}

impl Manifest {
    fn record(&self) -> CollectionRecord {
        CollectionRecord {
            name: self.name.clone(),
            created: self.created.clone(),
            chunk: ChunkSettings {
                chunk_tokens: self.chunk_tokens,
                chunk_overlap: self.chunk_overlap,
            },
        }
    }
}

/// The collections of one data directory.
pub struct EmbeddedCatalog {
    root: PathBuf,
    read_only: bool,
    /// The data directory's write lock, when this catalog took it (its own collection's
    /// backend then opens without taking it again).
    lock: Option<store::DirLock>,
    /// Serialises creates and deletes of collection folders (lock 2 of the storage lock
    /// order): they check, write, fsync and rename, and two of one name must not interleave.
    /// Taken on blocking threads only; nothing else waits for it.
    ddl: Mutex<()>,
}

impl EmbeddedCatalog {
    /// The catalog of the data directory `root`. Unless `read_only`, takes the directory's
    /// write lock (failing with [`store::StoreError::Locked`] when another process holds it)
    /// and clears what an interrupted create or delete left behind.
    pub fn open(root: impl Into<PathBuf>, read_only: bool) -> Result<Self> {
        let root = root.into();
        let lock = if read_only {
            None
        } else {
            Some(store::DirLock::acquire(&root)?)
        };
        Self::with_lock(root, read_only, lock)
    }

    /// The catalog of a data directory whose own collection this process has open already
    /// (its backend holds the directory's write lock unless `read_only`).
    pub fn beside_open_directory(root: impl Into<PathBuf>, read_only: bool) -> Result<Self> {
        Self::with_lock(root.into(), read_only, None)
    }

    fn with_lock(root: PathBuf, read_only: bool, lock: Option<store::DirLock>) -> Result<Self> {
        let catalog = Self {
            root,
            read_only,
            lock,
            ddl: Mutex::new(()),
        };
        if !read_only {
            for entry in catalog.entries()? {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(CREATING) || name.starts_with(DELETED) {
                    let path = entry.path();
                    tracing::info!(path = %path.display(), "removing what an interrupted collection create or delete left");
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
                    }
                }
            }
        }
        Ok(catalog)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of collection `name` (the data directory itself for the default one).
    pub fn dir_of(&self, name: &str) -> PathBuf {
        if name == DEFAULT_COLLECTION {
            self.root.clone()
        } else {
            self.root.join(COLLECTIONS_DIR).join(name)
        }
    }

    fn parent(&self) -> PathBuf {
        self.root.join(COLLECTIONS_DIR)
    }

    fn entries(&self) -> Result<Vec<std::fs::DirEntry>> {
        let parent = self.parent();
        match std::fs::read_dir(&parent) {
            Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .map_err(io_error("", "reading", &parent))
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(StorageError::ReadOnly(self.root.clone()));
        }
        Ok(())
    }
}

impl Catalog for EmbeddedCatalog {
    fn describe(&self) -> String {
        format!("data directory {}", self.root.display())
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn list(&self) -> Result<Vec<CollectionRecord>> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with(CREATING) || name.starts_with(DELETED) {
                continue;
            }
            let path = entry.path();
            if !crate::collections::is_valid_name(name) || !path.join(MANIFEST).is_file() {
                tracing::warn!(path = %path.display(), "not a collection (no valid name or no collection.json): ignored");
                continue;
            }
            out.push(read_manifest(name, &path)?.record());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn lookup(&self, name: &str) -> Result<Option<CollectionRecord>> {
        let dir = self.dir_of(name);
        if !dir.join(MANIFEST).is_file() {
            return Ok(None);
        }
        Ok(Some(read_manifest(name, &dir)?.record()))
    }

    fn create(&self, name: &str, chunk: ChunkSettings) -> Result<Option<CollectionRecord>> {
        self.check_writable()?;
        let _ddl = self.ddl.lock();
        let dir = self.dir_of(name);
        if dir.exists() {
            return Ok(None);
        }
        let parent = self.parent();
        std::fs::create_dir_all(&parent).map_err(io_error(name, "creating", &parent))?;
        let staging = parent.join(format!("{CREATING}{name}-{}", unique_suffix()));
        std::fs::create_dir(&staging).map_err(io_error(name, "creating", &staging))?;
        let manifest = Manifest {
            name: name.to_string(),
            created: jiff::Timestamp::now().to_string(),
            chunk_tokens: chunk.chunk_tokens,
            chunk_overlap: chunk.chunk_overlap,
        };
        let placed = (|| {
            let text =
                serde_json::to_vec_pretty(&manifest).map_err(|e| StorageError::Manifest {
                    name: name.to_string(),
                    path: staging.join(MANIFEST),
                    message: e.to_string(),
                })?;
            write_durably(&staging.join(MANIFEST), &text)
                .map_err(io_error(name, "writing", &staging))?;
            sync_dir(&staging).map_err(io_error(name, "syncing", &staging))?;
            std::fs::rename(&staging, &dir).map_err(io_error(name, "renaming", &staging))?;
            sync_dir(&parent).map_err(io_error(name, "syncing", &parent))
        })();
        if let Err(e) = placed {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(Some(manifest.record()))
    }

    fn delete(&self, name: &str) -> Result<bool> {
        self.check_writable()?;
        let _ddl = self.ddl.lock();
        let dir = self.dir_of(name);
        if !dir.join(MANIFEST).is_file() {
            return Ok(false);
        }
        let parent = self.parent();
        let doomed = parent.join(format!("{DELETED}{name}-{}", unique_suffix()));
        // The rename is the delete: after it (and the directory sync) the collection is gone
        // whatever happens next. An engine still open on it keeps its open files.
        std::fs::rename(&dir, &doomed).map_err(io_error(name, "renaming", &dir))?;
        sync_dir(&parent).map_err(io_error(name, "syncing", &parent))?;
        if let Err(e) = std::fs::remove_dir_all(&doomed) {
            tracing::warn!(path = %doomed.display(), error = %e, "cannot remove a deleted collection's files; the next start will");
        }
        Ok(true)
    }

    fn open(
        &self,
        name: &str,
        model: &ModelIdentity,
        options: &BackendOptions,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Backend>> {
        let mut options = options.clone();
        options.read_only |= self.read_only;
        let dir = self.dir_of(name);
        // The data directory's own collection: its lock is this catalog's.
        let locked_here = name == DEFAULT_COLLECTION && self.lock.is_some();
        Ok(Box::new(EmbeddedBackend::open_with(
            &dir,
            model,
            options,
            progress,
            !locked_here,
        )?))
    }

    /// Read without the model check or any write: a folder whose store is gone (deleted
    /// meanwhile) is not found, never made anew.
    fn counts(&self, name: &str, _model: &ModelIdentity) -> Result<(usize, usize)> {
        store::Store::counts_in(&self.dir_of(name))?
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
    }
}

fn read_manifest(name: &str, dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io_error(name, "reading", &path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| StorageError::Manifest {
        name: name.to_string(),
        path: path.clone(),
        message: e.to_string(),
    })?;
    if manifest.name != name {
        return Err(StorageError::Manifest {
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
) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
    let (name, path) = (name.to_string(), path.to_path_buf());
    move |source| StorageError::Io {
        name,
        action,
        path,
        source,
    }
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

/// Where the index dump lives inside a collection's folder.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Where the lexical index lives inside a collection's folder.
pub fn lexical_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("lexical")
}
