//! The collections of a shared database: rows of `semdex_collections`, whose delete cascades
//! to the collection's documents, passages and postings. Every replica sees the same ones.

use std::sync::Arc;

use serde_json::Value;

use crate::progress::Progress;
use crate::storage::catalog::{Catalog, ChunkSettings, CollectionRecord, DEFAULT_COLLECTION};
use crate::storage::types::ModelIdentity;
use crate::storage::{Backend, BackendOptions};

use super::backend::{PostgresBackend, rfc3339};
use super::{Database, Result};

/// The catalog of one PostgreSQL database.
pub struct PostgresCatalog {
    database: Arc<Database>,
    /// Settings a collection recorded without them (made by an older semdex) takes.
    defaults: ChunkSettings,
}

impl PostgresCatalog {
    /// The collections of `database` (connected and migrated by [`Database::connect`]);
    /// `defaults` fill settings a record lacks.
    pub fn new(database: Arc<Database>, defaults: ChunkSettings) -> Self {
        Self { database, defaults }
    }

    /// The database.
    pub fn database(&self) -> &Arc<Database> {
        &self.database
    }

    /// Records a collection with `settings` (a JSON object whose `chunk_tokens` and
    /// `chunk_overlap` are its chunking; other keys are kept for whoever made it, such as the
    /// benchmark's corpus checksum); `None` when the name is taken. The database decides (another
    /// replica may have made it).
    pub fn create_with(&self, name: &str, settings: &Value) -> Result<Option<CollectionRecord>> {
        let row = self.database.client()?.query_opt(
            &format!(
                "INSERT INTO semdex_collections (name, settings) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING {}",
                rfc3339("created_at")
            ),
            &[&name, settings],
        )?;
        Ok(row.map(|r| self.record(name.to_string(), settings, r.get(0))))
    }

    /// The settings a collection was recorded with, or `None` when there is none.
    pub fn settings(&self, name: &str) -> Result<Option<Value>> {
        let row = self.database.client()?.query_opt(
            "SELECT settings FROM semdex_collections WHERE name = $1",
            &[&name],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn record(&self, name: String, settings: &Value, created: String) -> CollectionRecord {
        let setting = |key: &str, default: usize| {
            settings
                .get(key)
                .and_then(Value::as_u64)
                .map_or(default, |v| v as usize)
        };
        CollectionRecord {
            name,
            created,
            chunk: ChunkSettings {
                chunk_tokens: setting("chunk_tokens", self.defaults.chunk_tokens),
                chunk_overlap: setting("chunk_overlap", self.defaults.chunk_overlap),
            },
        }
    }
}

impl Catalog for PostgresCatalog {
    fn describe(&self) -> String {
        format!("PostgreSQL at {}", self.database.display_url())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn is_read_only(&self) -> bool {
        false
    }

    fn list(&self) -> Result<Vec<CollectionRecord>> {
        let rows = self.database.client()?.query(
            &format!(
                "SELECT name, settings, {} FROM semdex_collections WHERE name <> $1 ORDER BY name",
                rfc3339("created_at")
            ),
            &[&DEFAULT_COLLECTION],
        )?;
        Ok(rows
            .iter()
            .map(|r| self.record(r.get(0), &r.get::<_, Value>(1), r.get(2)))
            .collect())
    }

    fn lookup(&self, name: &str) -> Result<Option<CollectionRecord>> {
        let row = self.database.client()?.query_opt(
            &format!(
                "SELECT settings, {} FROM semdex_collections WHERE name = $1",
                rfc3339("created_at")
            ),
            &[&name],
        )?;
        Ok(row.map(|r| self.record(name.to_string(), &r.get::<_, Value>(0), r.get(1))))
    }

    fn create(&self, name: &str, chunk: ChunkSettings) -> Result<Option<CollectionRecord>> {
        let settings = serde_json::json!({
            "chunk_tokens": chunk.chunk_tokens,
            "chunk_overlap": chunk.chunk_overlap,
        });
        self.create_with(name, &settings)
    }

    /// One transaction: the row and every document and passage of the collection. A writer
    /// into it holds a key-share lock on the row ([`PostgresBackend`]), so the delete waits for
    /// writes in flight, and writes that come after it find no row and fail as not found.
    fn delete(&self, name: &str) -> Result<bool> {
        let mut client = self.database.client()?;
        let mut tx = client.transaction()?;
        let deleted = tx.execute("DELETE FROM semdex_collections WHERE name = $1", &[&name])?;
        tx.execute(
            "DELETE FROM semdex_documents WHERE collection = $1",
            &[&name],
        )?;
        tx.commit()?;
        Ok(deleted == 1)
    }

    fn open(
        &self,
        name: &str,
        _model: &ModelIdentity,
        options: &BackendOptions,
        _progress: &dyn Progress,
    ) -> Result<Box<dyn Backend>> {
        Ok(Box::new(PostgresBackend::open(
            self.database.clone(),
            name,
            options,
        )?))
    }

    fn counts(&self, name: &str, _model: &ModelIdentity) -> Result<(usize, usize)> {
        self.database.counts(name)
    }
}
