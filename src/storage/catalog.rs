//! The catalog: which collections exist, and how to open one. One implementation per kind of
//! storage; the collection cache above it ([`crate::collections`]) knows none of them.

use crate::progress::Progress;

use super::Result;
use super::backend::{Backend, BackendOptions};
use super::types::ModelIdentity;

/// The collection every unprefixed route and command works on. It always exists and cannot
/// be deleted.
pub const DEFAULT_COLLECTION: &str = "default";

/// How a collection's documents are cut into passages, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSettings {
    /// Passage size in model tokens.
    pub chunk_tokens: usize,
    /// Tokens neighbouring passages share.
    pub chunk_overlap: usize,
}

/// A named collection as its catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRecord {
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339). Tells a collection from another of the same name made
    /// after it was deleted.
    pub created: String,
    /// How its documents are chunked.
    pub chunk: ChunkSettings,
}

impl std::fmt::Debug for dyn Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The collections of one storage (a data directory, a database). Calls block (files,
/// fsyncs, network); callers run them on blocking threads.
pub trait Catalog: Send + Sync {
    /// What the storage is, for logs and messages ("data directory data", "PostgreSQL at
    /// postgres://…").
    fn describe(&self) -> String;

    /// Whether other processes create and delete collections here too (a shared database):
    /// then what this process remembers of a named collection may be stale, and every use of
    /// one asks the catalog first.
    fn is_shared(&self) -> bool;

    /// Whether this process may not write (a data directory another process holds).
    fn is_read_only(&self) -> bool;

    /// Every named collection (the default one is not listed), in name order.
    fn list(&self) -> Result<Vec<CollectionRecord>>;

    /// The record of a named collection, or `None` when there is none.
    fn lookup(&self, name: &str) -> Result<Option<CollectionRecord>>;

    /// Records a new collection, durably, before it becomes visible to anyone; `None` when the
    /// name is taken. A crash at any point leaves it whole or absent.
    fn create(&self, name: &str, chunk: ChunkSettings) -> Result<Option<CollectionRecord>>;

    /// Deletes a named collection and everything in it; `false` when there was none. Requests
    /// already running on an open backend of it finish on what they hold.
    fn delete(&self, name: &str) -> Result<bool>;

    /// Opens a collection's storage ([`DEFAULT_COLLECTION`] included), checking it was made
    /// with `model` and bringing its derived indexes up to date (`progress` shows a rebuild).
    fn open(
        &self,
        name: &str,
        model: &ModelIdentity,
        options: &BackendOptions,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Backend>>;

    /// Documents and passages of a named collection, read without opening it.
    fn counts(&self, name: &str, model: &ModelIdentity) -> Result<(usize, usize)>;
}
