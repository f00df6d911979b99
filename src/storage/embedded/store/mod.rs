//! The durable store: SQLite (WAL mode), the source of truth for documents, chunks and vectors.
//!
//! Everything the index holds can be rebuilt from here. A document and all of its chunks and
//! vectors are written in one transaction, so a crash (`kill -9` included) leaves whole
//! documents only. The store records the model that made its vectors and refuses to open with
//! another one.

mod filter_sql;
mod lock;
mod pool;
mod schema;
mod spans;
mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::{Map, Value};

use crate::filter::sql::{Params, to_sql};
use crate::storage::types::{
    ChunkFilter, ChunkId, ChunkRecord, Citation, DEFAULT_PRECISION, DocumentState, DocumentSummary,
    ModelIdentity, NewChunk, NewDocument, StoredDocument, pages_from_columns, section_from_json,
    section_to_json,
};

pub use lock::DirLock;
#[cfg(feature = "postgres")]
pub(crate) use pool::helper_threads;
pub use pool::{PooledStore, ReadPool};
pub use vectors::{blob_to_vector, vector_to_blob};

/// Passages without token vectors, counted on the indexes `chunks_by_document` and
/// `token_vectors_by_chunk` (schema.rs).
const COUNT_WITHOUT_TOKEN_VECTORS: &str =
    "SELECT (SELECT COUNT(*) FROM chunks) - (SELECT COUNT(*) FROM token_vectors)";

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "semdex.sqlite3";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, corruption, a full disk).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory cannot be created or read.
    #[error("data directory {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data directory was made with another model; its vectors are useless with this one.
    #[error(
        "data directory {dir} was made with model {stored}, not {current}: use the model and --precision it was made with, or another --data-dir"
    )]
    ModelMismatch {
        /// The data directory.
        dir: PathBuf,
        /// The model recorded in the store.
        stored: String,
        /// The model in use now.
        current: String,
    },
    /// The store was written by a newer semdex.
    #[error("data directory {dir} has schema version {found}; this semdex reads up to {supported}")]
    SchemaTooNew {
        /// The data directory.
        dir: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// A stored value is not what the schema promises.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// No read connection could be had (all busy for too long, or the pool could not open
    /// them).
    #[error("read connections: {0}")]
    Pool(String),
    /// Another process holds the data directory.
    #[error("data directory {dir} is in use by {holder}; stop it first, or use another --data-dir")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as well as can be told ("process 1234").
        holder: String,
    },
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored passage with the context it was embedded after, as derived indexes take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The chunk's id.
    pub id: ChunkId,
    /// The passage.
    pub text: String,
    /// Its document's title, if the passage was embedded after one.
    pub title: Option<String>,
    /// Its section's heading path (empty: none).
    pub section: Vec<String>,
}

impl Passage {
    /// What the lexical index holds for it: the passage after its title and headings, as it
    /// was embedded.
    pub fn indexed_text(&self) -> std::borrow::Cow<'_, str> {
        crate::chunk::contextual_text(self.title.as_deref(), &self.section, &self.text)
    }
}

/// SQL for a document's title when its passages were embedded after it (a document stored by
/// schema 2, whose `title_in_context` is NULL, stored only such titles).
const CONTEXT_TITLE: &str = "CASE WHEN d.title_in_context IS NOT 0 THEN d.title END";

/// What writing a document changed, for the derived indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Ids of the chunks written, in chunk order.
    pub added: Vec<ChunkId>,
    /// Ids of the chunks of the previous version, now gone.
    pub removed: Vec<ChunkId>,
    /// The store's generation after this write (see [`Store::generation`]).
    pub generation: u64,
}

/// One connection to a data directory's database.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for `model`; refuses a store made with
    /// another model.
    pub fn open(dir: &Path, model: &ModelIdentity) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(dir.join(DATABASE_FILE))?;
        schema::configure(&conn)?;
        let mut store = Self {
            conn,
            dir: dir.to_path_buf(),
        };
        schema::migrate(&mut store.conn, dir)?;
        store.check_model(model)?;
        Ok(store)
    }

    /// Every vector of an existing data directory, read-only and without the model check
    /// (for offline benchmarks that only need the vectors).
    pub fn read_vectors(dir: &Path) -> Result<crate::index::IdVectors> {
        let path = dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(StoreError::Io {
                dir: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no semdex database here",
                ),
            });
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let store = Self {
            conn,
            dir: dir.to_path_buf(),
        };
        let mut out = Vec::new();
        store.for_each_vector(|id, v| {
            out.push((id, v));
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Documents and chunks of the store in `dir`, read through a read-only connection that
    /// creates nothing; `None` when there is no store there.
    pub fn counts_in(dir: &Path) -> Result<Option<(usize, usize)>> {
        let path = dir.join(DATABASE_FILE);
        let conn = match Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(conn) => conn,
            Err(_) if !path.exists() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let store = Self {
            conn,
            dir: dir.to_path_buf(),
        };
        Ok(Some(store.counts()?))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_model(&mut self, model: &ModelIdentity) -> Result<()> {
        let tx = self.conn.transaction()?;
        let stored = stored_model(&tx)?;
        match stored {
            Some(stored) => {
                if stored.fingerprint != model.fingerprint
                    || stored.dimension != model.dimension
                    || stored.precision != model.precision
                {
                    return Err(StoreError::ModelMismatch {
                        dir: self.dir.clone(),
                        stored: stored.describe(),
                        current: model.describe(),
                    });
                }
            }
            None => {
                let mut put =
                    tx.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
                put.execute(params!["model_name", model.name])?;
                put.execute(params!["model_fingerprint", model.fingerprint])?;
                put.execute(params!["dimension", model.dimension.to_string()])?;
                put.execute(params!["precision", model.precision])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A counter bumped by every commit that adds or removes chunks. Derived indexes record
    /// the generation they reflect, so that a restart knows whether a saved index is current
    /// or must catch up with the store.
    pub fn generation(&self) -> Result<u64> {
        read_generation(&self.conn)
    }

    /// The generation and the ids of every stored chunk, read in one transaction so that
    /// they agree.
    pub fn chunk_ids(&self) -> Result<(u64, Vec<ChunkId>)> {
        let tx = self.conn.unchecked_transaction()?;
        let generation = read_generation(&tx)?;
        let ids = tx
            .prepare("SELECT id FROM chunks ORDER BY id")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|i| i as ChunkId))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok((generation, ids))
    }

    /// The stored hash and metadata of a document, if it exists.
    pub fn document_state(&self, id: &str) -> Result<Option<DocumentState>> {
        self.conn
            .prepare_cached("SELECT content_hash, metadata, format FROM documents WHERE id = ?1")?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?
            .map(|(content_hash, metadata, format)| {
                Ok(DocumentState {
                    content_hash,
                    metadata: parse_metadata(&metadata)?,
                    format,
                })
            })
            .transpose()
    }

    /// Writes a document with all of its chunks and vectors in one transaction, replacing any
    /// previous version of it.
    pub fn put_document(
        &mut self,
        doc: &NewDocument<'_>,
        chunks: &[NewChunk<'_>],
    ) -> Result<WriteOutcome> {
        let tx = self.conn.transaction()?;
        let removed = delete_in(&tx, doc.id)?.unwrap_or_default();
        let metadata = Value::Object(doc.metadata.clone()).to_string();
        tx.execute(
            "INSERT INTO documents
                 (id, source, text, metadata, content_hash, title, title_in_context, format,
                  ingested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![
                doc.id,
                doc.source,
                doc.text,
                metadata,
                doc.content_hash,
                doc.title,
                doc.title_in_context,
                doc.format,
            ],
        )?;
        let doc_row = tx.last_insert_rowid();
        let mut added = Vec::with_capacity(chunks.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO chunks
                     (doc_row, idx, start, end, text, embedding, section, page_first, page_last)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut insert_tokens =
                tx.prepare_cached("INSERT INTO token_vectors (chunk_id, data) VALUES (?1, ?2)")?;
            for c in chunks {
                insert.execute(params![
                    doc_row,
                    c.index as i64,
                    c.start as i64,
                    c.end as i64,
                    c.text,
                    vector_to_blob(c.vector),
                    section_to_json(c.section),
                    c.pages.map(|p| p.first),
                    c.pages.map(|p| p.last),
                ])?;
                let id = tx.last_insert_rowid();
                if let Some(tokens) = c.tokens {
                    insert_tokens.execute(params![id, tokens])?;
                }
                added.push(id as ChunkId);
            }
        }
        let generation = bump_generation(&tx)?;
        tx.commit()?;
        Ok(WriteOutcome {
            added,
            removed,
            generation,
        })
    }

    /// Replaces a document's metadata (its text and vectors are unchanged, and so is the
    /// generation: no chunk moved).
    pub fn set_metadata(&mut self, id: &str, metadata: &Map<String, Value>) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE documents SET metadata = ?2, ingested_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1",
            params![id, Value::Object(metadata.clone()).to_string()],
        )?;
        Ok(n > 0)
    }

    /// Deletes a document; returns the ids of its chunks (as `removed`), or `None` if it did
    /// not exist.
    pub fn delete_document(&mut self, id: &str) -> Result<Option<WriteOutcome>> {
        let tx = self.conn.transaction()?;
        let Some(removed) = delete_in(&tx, id)? else {
            return Ok(None);
        };
        let generation = bump_generation(&tx)?;
        tx.commit()?;
        Ok(Some(WriteOutcome {
            added: Vec::new(),
            removed,
            generation,
        }))
    }

    /// A whole document.
    pub fn get_document(&self, id: &str) -> Result<Option<StoredDocument>> {
        self.conn
            .prepare_cached(
                "SELECT d.id, d.source, d.text, d.metadata, d.content_hash, d.ingested_at,
                        (SELECT COUNT(*) FROM chunks c WHERE c.doc_row = d.row), d.title, d.format
                 FROM documents d WHERE d.id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    StoredDocument {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        text: r.get(2)?,
                        metadata: Map::new(),
                        content_hash: r.get(4)?,
                        ingested_at: r.get(5)?,
                        chunks: r.get::<_, i64>(6)? as usize,
                        title: r.get(7)?,
                        format: r.get(8)?,
                    },
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()?
            .map(|(doc, metadata)| {
                Ok(StoredDocument {
                    metadata: parse_metadata(&metadata)?,
                    ..doc
                })
            })
            .transpose()
    }

    /// Documents in id order, without their text.
    pub fn list_documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.source, d.metadata, d.ingested_at, length(CAST(d.text AS BLOB)),
                    (SELECT COUNT(*) FROM chunks c WHERE c.doc_row = d.row), d.title, d.format
             FROM documents d ORDER BY d.id LIMIT ?1 OFFSET ?2",
        )?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
            Ok((
                DocumentSummary {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    metadata: Map::new(),
                    ingested_at: r.get(3)?,
                    bytes: r.get::<_, i64>(4)? as usize,
                    chunks: r.get::<_, i64>(5)? as usize,
                    title: r.get(6)?,
                    format: r.get(7)?,
                },
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (summary, metadata) = row?;
            Ok(DocumentSummary {
                metadata: parse_metadata(&metadata)?,
                ..summary
            })
        })
        .collect()
    }

    /// Number of documents and of chunks.
    pub fn counts(&self) -> Result<(usize, usize)> {
        counts(&self.conn)
    }

    /// SQLite's `quick_check` of the database: `None` when it finds nothing wrong, else what
    /// it found.
    pub fn quick_check(&self) -> Result<Option<String>> {
        let found: Vec<String> = self
            .conn
            .prepare("PRAGMA quick_check")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((found != ["ok"]).then(|| found.join("; ")))
    }

    /// Calls `f` with every stored vector, in chunk-id order (for rebuilding an index), and
    /// returns the generation they belong to (read in the same transaction). An error from
    /// `f` stops the scan and is returned.
    pub fn for_each_vector<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(ChunkId, Vec<f32>) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::from)?;
        let generation = read_generation(&tx)?;
        {
            let mut stmt = tx
                .prepare("SELECT id, embedding FROM chunks ORDER BY id")
                .map_err(StoreError::from)?;
            let mut rows = stmt.query([]).map_err(StoreError::from)?;
            while let Some(row) = rows.next().map_err(StoreError::from)? {
                let (id, vector) = vector_row(row)?;
                f(id, vector)?;
            }
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(generation)
    }

    /// Calls `f` with every stored passage, in chunk-id order (for rebuilding the lexical
    /// index), and returns the generation they belong to (read in the same transaction). An
    /// error from `f` stops the scan and is returned.
    pub fn for_each_passage<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(Passage) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(StoreError::from)?;
        let generation = read_generation(&tx)?;
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT c.id, c.text, {CONTEXT_TITLE}, c.section FROM chunks c
                     JOIN documents d ON d.row = c.doc_row ORDER BY c.id"
                ))
                .map_err(StoreError::from)?;
            let mut rows = stmt.query([]).map_err(StoreError::from)?;
            while let Some(row) = rows.next().map_err(StoreError::from)? {
                f(passage_row(row).map_err(StoreError::from)?)?;
            }
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(generation)
    }

    /// These chunks' passages (missing ids are skipped), in id order.
    pub fn passages_by_ids(&self, ids: &[ChunkId]) -> Result<Vec<Passage>> {
        let mut out = Vec::with_capacity(ids.len());
        for group in ids.chunks(500) {
            let marks = vec!["?"; group.len()].join(",");
            let sql = format!(
                "SELECT c.id, c.text, {CONTEXT_TITLE}, c.section FROM chunks c
                 JOIN documents d ON d.row = c.doc_row WHERE c.id IN ({marks})"
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params_from_iter(group.iter().map(|&i| i as i64)),
                passage_row,
            )?;
            for row in rows {
                out.push(row?);
            }
        }
        out.sort_unstable_by_key(|p| p.id);
        Ok(out)
    }

    /// Hands `visit` the stored token vectors of each of these chunks that has them, in no
    /// particular order, borrowed from SQLite's row (no copy: hybrid search reads about 1 MB
    /// of them per query).
    pub fn visit_token_vectors(
        &self,
        ids: &[ChunkId],
        mut visit: impl FnMut(ChunkId, &[u8]),
    ) -> Result<()> {
        for group in ids.chunks(500) {
            let marks = vec!["?"; group.len()].join(",");
            let sql =
                format!("SELECT chunk_id, data FROM token_vectors WHERE chunk_id IN ({marks})");
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(group.iter().map(|&i| i as i64)))?;
            while let Some(row) = rows.next()? {
                let id = row.get::<_, i64>(0)? as ChunkId;
                if let Ok(bytes) = row.get_ref(1)?.as_blob() {
                    visit(id, bytes);
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` passages that have no token vectors yet (stored before they existed).
    pub fn passages_without_token_vectors(&self, limit: usize) -> Result<Vec<(ChunkId, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.text FROM chunks c
             WHERE NOT EXISTS (SELECT 1 FROM token_vectors t WHERE t.chunk_id = c.id)
             ORDER BY c.id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((r.get::<_, i64>(0)? as ChunkId, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| Ok(r?)).collect()
    }

    /// How many passages have no token vectors yet (`COUNT_WITHOUT_TOKEN_VECTORS`): checked at
    /// every open, so counted on two indexes only. Every token-vector row belongs to one live
    /// chunk (its primary key references the chunk, deleted with it), so the difference of the
    /// counts is exact.
    pub fn count_without_token_vectors(&self) -> Result<usize> {
        Ok(self
            .conn
            .query_row(COUNT_WITHOUT_TOKEN_VECTORS, [], |r| r.get::<_, i64>(0))?
            .max(0) as usize)
    }

    /// Stores token vectors for existing passages (a chunk deleted meanwhile is skipped).
    pub fn put_token_vectors(&mut self, items: &[(ChunkId, Vec<u8>)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO token_vectors (chunk_id, data)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?1)",
            )?;
            for (id, data) in items {
                insert.execute(params![*id as i64, data])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored vectors of these chunks (missing ids are skipped), in id order.
    pub fn vectors_by_ids(&self, ids: &[ChunkId]) -> Result<Vec<(ChunkId, Vec<f32>)>> {
        let mut out = Vec::with_capacity(ids.len());
        for group in ids.chunks(500) {
            let marks = vec!["?"; group.len()].join(",");
            let sql = format!("SELECT id, embedding FROM chunks WHERE id IN ({marks}) ORDER BY id");
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(group.iter().map(|&i| i as i64)))?;
            while let Some(row) = rows.next()? {
                out.push(vector_row(row)?);
            }
        }
        out.sort_unstable_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The chunks with these ids (missing ids are absent from the map).
    pub fn chunks_by_ids(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, ChunkRecord>> {
        let mut out = HashMap::with_capacity(ids.len());
        // SQLite binds at most 32766 parameters; stay far below.
        for group in ids.chunks(500) {
            let marks = vec!["?"; group.len()].join(",");
            let sql = format!(
                "SELECT c.id, d.id, c.idx, c.start, c.end, c.text, d.metadata, d.title,
                        c.section, c.page_first, c.page_last
                 FROM chunks c JOIN documents d ON d.row = c.doc_row WHERE c.id IN ({marks})"
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(group.iter().map(|&i| i as i64)), |r| {
                let chunk_id = r.get::<_, i64>(0)? as ChunkId;
                Ok((
                    ChunkRecord {
                        chunk_id,
                        doc_id: r.get(1)?,
                        index: r.get::<_, i64>(2)? as usize,
                        start: r.get::<_, i64>(3)? as usize,
                        end: r.get::<_, i64>(4)? as usize,
                        text: r.get(5)?,
                        metadata: Map::new(),
                        citation: Citation {
                            title: r.get(7)?,
                            section: section_from_json(r.get::<_, Option<String>>(8)?.as_deref()),
                            pages: pages_from_columns(r.get(9)?, r.get(10)?),
                        },
                    },
                    r.get::<_, String>(6)?,
                ))
            })?;
            for row in rows {
                let (record, metadata) = row?;
                out.insert(
                    record.chunk_id,
                    ChunkRecord {
                        metadata: parse_metadata(&metadata)?,
                        ..record
                    },
                );
            }
        }
        Ok(out)
    }

    /// Ids of the chunks a filter lets through, ascending. The filter is evaluated once per
    /// document; its values are bound parameters (a bounded number of them: `doc_ids` is one
    /// JSON parameter, an `$in` list one per type of value).
    pub fn chunk_ids_matching(&self, filter: &ChunkFilter) -> Result<Vec<ChunkId>> {
        let Some((sql, params)) = matching_sql(filter) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| r.get::<_, i64>(0))?;
        let mut ids = rows
            .map(|r| r.map(|id| id as ChunkId))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // Cheaper here than as SQLite's temporary B-tree.
        ids.sort_unstable();
        Ok(ids)
    }
}

/// The statement selecting the chunk ids a filter admits (in no order), and its parameters;
/// `None` when it admits nothing (an empty `doc_ids`).
///
/// Documents come first, their metadata read from `documents_by_metadata` rather than from
/// rows that also hold the texts, then their chunks from `chunks_by_document`: neither
/// table's rows are read.
fn matching_sql(filter: &ChunkFilter) -> Option<(String, Vec<rusqlite::types::Value>)> {
    let mut params = Params::new(filter_sql::placeholder);
    let mut conditions = Vec::new();
    if let Some(ids) = &filter.doc_ids {
        if ids.is_empty() {
            return None;
        }
        let list = params.bind(Value::from(ids.as_slice()).to_string().into());
        conditions.push(format!("d.id IN (SELECT value FROM json_each({list}))"));
    }
    if !filter.metadata.is_empty() {
        let dialect = filter_sql::Sqlite::new("d.metadata");
        conditions.push(to_sql(&dialect, &filter.metadata, &mut params));
    }
    let documents = if conditions.is_empty() {
        "1".to_string()
    } else {
        conditions.join(" AND ")
    };
    let sql = format!(
        "SELECT c.id FROM documents d CROSS JOIN chunks c ON c.doc_row = d.row WHERE {documents}"
    );
    Some((sql, params.into_values()))
}

fn parse_metadata(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(StoreError::Corrupt(format!(
            "metadata is not a JSON object: {text}"
        ))),
    }
}

/// Deletes a document and its chunks inside `tx`; returns the chunk ids, or None if absent.
fn delete_in(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<Vec<ChunkId>>> {
    let row: Option<i64> = tx
        .prepare_cached("SELECT row FROM documents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let ids = tx
        .prepare_cached("SELECT id FROM chunks WHERE doc_row = ?1 ORDER BY idx")?
        .query_map([row], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|i| i as ChunkId))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.execute("DELETE FROM chunks WHERE doc_row = ?1", [row])?;
    tx.execute("DELETE FROM documents WHERE row = ?1", [row])?;
    Ok(Some(ids))
}

fn counts(conn: &Connection) -> Result<(usize, usize)> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)",
        [],
        |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
    )?)
}

/// What a snapshot records of the store behind `conn` (read in the caller's transaction): its
/// state, and the model it records (`None` for a store that never recorded one).
pub(crate) fn snapshot_state(
    conn: &Connection,
) -> Result<(crate::storage::snapshot::StoreState, Option<ModelIdentity>)> {
    let (documents, chunks) = counts(conn)?;
    let state = crate::storage::snapshot::StoreState {
        schema_version: conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
        generation: read_generation(conn)?,
        documents,
        chunks,
    };
    Ok((state, stored_model(conn)?))
}

/// The model the store records, if it records one.
fn stored_model(conn: &Connection) -> Result<Option<ModelIdentity>> {
    Ok(conn.query_row(
        "SELECT (SELECT value FROM meta WHERE key = 'model_name'),
                (SELECT value FROM meta WHERE key = 'model_fingerprint'),
                (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'dimension'),
                (SELECT value FROM meta WHERE key = 'precision')",
        [],
        |r| {
            Ok(match (r.get(0)?, r.get(1)?, r.get::<_, Option<i64>>(2)?) {
                (Some(name), Some(fingerprint), Some(dimension)) => Some(ModelIdentity {
                    name,
                    fingerprint,
                    dimension: dimension as usize,
                    // A store from before the record holds f32 vectors.
                    precision: r
                        .get::<_, Option<String>>(3)?
                        .unwrap_or_else(|| DEFAULT_PRECISION.into()),
                }),
                _ => None,
            })
        },
    )?)
}

/// Bumps the generation inside `tx` and returns the new value.
fn bump_generation(tx: &rusqlite::Transaction<'_>) -> Result<u64> {
    tx.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'",
        [],
    )?;
    read_generation(tx)
}

fn read_generation(conn: &Connection) -> Result<u64> {
    let g: i64 = conn.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'",
        [],
        |r| r.get(0),
    )?;
    Ok(g as u64)
}

/// A `(chunk id, text, context title, section)` row.
fn passage_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Passage> {
    Ok(Passage {
        id: row.get::<_, i64>(0)? as ChunkId,
        text: row.get(1)?,
        title: row.get(2)?,
        section: section_from_json(row.get::<_, Option<String>>(3)?.as_deref()),
    })
}

/// An `(id, embedding)` row as a chunk id and its vector.
fn vector_row(row: &rusqlite::Row<'_>) -> Result<(ChunkId, Vec<f32>)> {
    let id: i64 = row.get(0)?;
    let blob = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
    let vector = blob_to_vector(blob).ok_or_else(|| {
        StoreError::Corrupt(format!("chunk {id}: embedding of {} bytes", blob.len()))
    })?;
    Ok((id as ChunkId, vector))
}

#[cfg(test)]
mod tests;
