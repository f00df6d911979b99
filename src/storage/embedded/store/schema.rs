//! Database settings and schema migrations.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// The newest schema this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// Per-connection settings: WAL for concurrent readers, NORMAL sync (durable against process
/// crashes; a power cut may lose the last commits but never corrupts), foreign keys on.
pub fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // No memory map (SQLite's default): every pooled connection's map kept each page it ever
    // touched resident, 1.2-1.6 GB on SciFact and 1.2 GB at a million passages after 1,000
    // searches, for 0.4 ms a hybrid search that reads token vectors (benches/README.md).
    conn.pragma_update(None, "mmap_size", 0)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Indexes that only make reads faster, created on every open: stores made before them get
/// them too, without a version bump (older builds open the store as before). A no-op once
/// they exist.
const READ_INDEXES: &str =
    // Metadata filters scan this instead of the documents' rows, whose texts they do not need.
    "CREATE INDEX IF NOT EXISTS documents_by_metadata ON documents (metadata);
     -- Every open counts the token vectors (are any missing?): through this index instead
     -- of the table's leaf pages, which hold the start of each blob (10 s from a cold disk
     -- at a million passages, 20 ms through the index).
     CREATE INDEX IF NOT EXISTS token_vectors_by_chunk ON token_vectors (chunk_id);";

/// Creates or upgrades the schema.
pub fn migrate(conn: &mut Connection, dir: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            dir: dir.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        conn.execute_batch(READ_INDEXES)?;
        return Ok(());
    }
    let tx = conn.transaction()?;
    if version < 1 {
        create_v1(&tx)?;
    }
    if version < 2 {
        // Version 2: each passage's token vectors for late interaction, beside (not inside)
        // the chunks table, so that scans of chunks stay small. Passages stored by version 1
        // have none until the engine fills them in.
        // And each document's title, which its passages are embedded and indexed after.
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS token_vectors (
                 chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
                 data     BLOB NOT NULL
             );
             ALTER TABLE documents ADD COLUMN title TEXT;",
        )?;
    }
    if version < 3 {
        // Version 3: where each passage lies, to cite it (its section's heading path as a JSON
        // array, its first and last PDF page), and each document's format. `title` becomes
        // the document's title whether or not its passages were embedded after it, which
        // `title_in_context` says; NULL there (a document stored by version 2) means that its
        // title, if any, was embedded, as version 2 stored only such titles. Passages stored
        // before have no section and no pages.
        tx.execute_batch(
            "ALTER TABLE documents ADD COLUMN format TEXT;
             ALTER TABLE documents ADD COLUMN title_in_context INTEGER;
             ALTER TABLE chunks ADD COLUMN section TEXT;
             ALTER TABLE chunks ADD COLUMN page_first INTEGER;
             ALTER TABLE chunks ADD COLUMN page_last INTEGER;",
        )?;
    }
    tx.execute_batch(READ_INDEXES)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// The first schema: documents, chunks with their vectors, and the meta table.
fn create_v1(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (
             key   TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');
         CREATE TABLE IF NOT EXISTS documents (
             row          INTEGER PRIMARY KEY,
             id           TEXT NOT NULL UNIQUE,
             source       TEXT,
             text         TEXT NOT NULL,
             metadata     TEXT NOT NULL DEFAULT '{}',
             content_hash TEXT NOT NULL,
             ingested_at  TEXT NOT NULL
         );
         -- AUTOINCREMENT: chunk ids are never reused, so a stale index entry can never
         -- point at a newer chunk.
         CREATE TABLE IF NOT EXISTS chunks (
             id        INTEGER PRIMARY KEY AUTOINCREMENT,
             doc_row   INTEGER NOT NULL REFERENCES documents(row) ON DELETE CASCADE,
             idx       INTEGER NOT NULL,
             start     INTEGER NOT NULL,
             end       INTEGER NOT NULL,
             text      TEXT NOT NULL,
             embedding BLOB NOT NULL
         );
         CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (doc_row, idx);",
    )?;
    Ok(())
}
