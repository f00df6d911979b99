//! The database schema, created and upgraded by numbered migrations at start.
//!
//! Each migration runs once, in its own transaction, recorded in `semdex_migrations`; a
//! transaction-level advisory lock makes replicas that start together apply them one at a
//! time (the others wait, then find them applied). The vector column's length is the model's
//! dimension, fixed by the first semdex to create the schema; `semdex_meta` records that
//! model, and a semdex with another one refuses the database.
//!
//! A standby cannot be migrated: a semdex on one waits ([`await_schema`]) until replication
//! brings the schema its primary's semdex made, then makes the same checks without writing.

use std::time::{Duration, Instant};

use postgres::Client;

use crate::index::HnswParams;
use crate::storage::types::{DEFAULT_PRECISION, ModelIdentity};

use super::PgError;

/// Arbitrary key of the advisory lock held while migrating ("semdex" in ASCII).
const MIGRATION_LOCK: i64 = 0x73656d646578;

/// One step of the schema; `{dimension}`, `{m}` and `{ef_construction}` are filled in.
struct Migration {
    version: i32,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add another.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE semdex_meta (
            key   text PRIMARY KEY,
            value text NOT NULL
        );
        CREATE TABLE semdex_collections (
            name       text COLLATE \"C\" PRIMARY KEY,
            settings   jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- The default collection always exists; deleting a collection deletes its documents.
        INSERT INTO semdex_collections (name) VALUES ('default');
        CREATE TABLE semdex_documents (
            collection   text COLLATE \"C\" NOT NULL
                REFERENCES semdex_collections (name) ON DELETE CASCADE,
            id           text COLLATE \"C\" NOT NULL,
            source       text,
            text         text NOT NULL,
            -- jsonb for filters; the text as given for reading back (jsonb rewrites numbers).
            metadata     jsonb NOT NULL DEFAULT '{}',
            metadata_text text NOT NULL DEFAULT '{}',
            content_hash text NOT NULL,
            title        text,
            ingested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (collection, id)
        );
        -- Identity ids are never reused, so a stale id can never name a newer passage.
        CREATE TABLE semdex_chunks (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            collection text COLLATE \"C\" NOT NULL,
            doc_id     text COLLATE \"C\" NOT NULL,
            idx        integer NOT NULL,
            start_byte bigint NOT NULL,
            end_byte   bigint NOT NULL,
            text       text NOT NULL,
            embedding  vector({dimension}) NOT NULL,
            words      tsvector NOT NULL,
            tokens     bytea,
            FOREIGN KEY (collection, doc_id)
                REFERENCES semdex_documents (collection, id) ON DELETE CASCADE
        );
        CREATE INDEX semdex_chunks_by_document ON semdex_chunks (collection, doc_id, idx);
        -- Unit vectors: inner product orders as cosine does, and costs less.
        CREATE INDEX semdex_chunks_embedding ON semdex_chunks
            USING hnsw (embedding vector_ip_ops) WITH (m = {m}, ef_construction = {ef_construction});
        CREATE INDEX semdex_chunks_words ON semdex_chunks USING gin (words);
        -- Token vectors are int8 data: compressing them gains nothing and costs time.
        ALTER TABLE semdex_chunks ALTER COLUMN tokens SET STORAGE EXTERNAL;
    ",
    },
    Migration {
        version: 2,
        // BM25 in SQL, over the terms of semdex's own analyzer (the embedded backend's), in
        // place of `ts_rank`. The postings index carries tf and length, so scoring reads the
        // index alone. `terms` is NULL on a passage whose postings are not written yet (one
        // written by schema 1): [`super::backfill_postings`] writes them at start.
        sql: "
        CREATE TABLE semdex_postings (
            collection text COLLATE \"C\" NOT NULL,
            term       text COLLATE \"C\" NOT NULL,
            chunk_id   bigint NOT NULL REFERENCES semdex_chunks (id) ON DELETE CASCADE,
            tf         integer NOT NULL,
            length     integer NOT NULL,
            PRIMARY KEY (collection, term, chunk_id) INCLUDE (tf, length)
        );
        CREATE INDEX semdex_postings_by_chunk ON semdex_postings (chunk_id);
        -- Passages with postings and their terms in all, per collection: BM25's N and average
        -- length. Each write updates its collection's row last, just before it commits.
        CREATE TABLE semdex_lexical_totals (
            collection text COLLATE \"C\" PRIMARY KEY
                REFERENCES semdex_collections (name) ON DELETE CASCADE,
            passages   bigint NOT NULL,
            terms      bigint NOT NULL
        );
        -- Every collection has its row from the start: a backfill only updates rows, and so
        -- takes no lock on the collection that a concurrent delete of it could wait behind.
        INSERT INTO semdex_lexical_totals (collection, passages, terms)
            SELECT name, 0, 0 FROM semdex_collections;
        ALTER TABLE semdex_chunks ADD COLUMN terms integer;
        -- What the backfill has left to do, found without reading the table.
        CREATE INDEX semdex_chunks_without_postings ON semdex_chunks (id) WHERE terms IS NULL;
        -- The words of schema 1 are no longer written or read here. The column and its index
        -- stay for a semdex of schema 1 still running against the database; new passages
        -- leave the column NULL.
        ALTER TABLE semdex_chunks ALTER COLUMN words DROP NOT NULL;
    ",
    },
    Migration {
        version: 3,
        // Where each passage lies, to cite it: its section's heading path (a JSON array of
        // strings) and its first and last PDF page; each document's format. `title` becomes
        // the document's title whether or not its passages were embedded after it, which
        // `title_in_context` says; NULL there (a document written by schema 2) means that its
        // title, if any, was embedded, as schema 2 stored only such titles. Columns without
        // defaults: added without rewriting the table.
        sql: "
        ALTER TABLE semdex_documents ADD COLUMN format text, ADD COLUMN title_in_context boolean;
        ALTER TABLE semdex_chunks ADD COLUMN section jsonb, ADD COLUMN page_first integer,
            ADD COLUMN page_last integer;
    ",
    },
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 3;

/// Longest a semdex on a standby waits for its primary's schema before it gives up.
pub const SCHEMA_WAIT: Duration = Duration::from_secs(300);
/// How often it looks again meanwhile.
const SCHEMA_POLL: Duration = Duration::from_millis(250);

/// Creates or upgrades the schema, and checks (or records) the model the vectors belong to.
pub fn migrate(
    client: &mut Client,
    model: &ModelIdentity,
    hnsw: HnswParams,
) -> Result<(), PgError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS semdex_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let applied: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM semdex_migrations",
            &[],
        )?
        .get(0);
    if applied > SCHEMA_VERSION {
        return Err(PgError::SchemaTooNew {
            found: applied,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let sql = migration
            .sql
            .replace("{dimension}", &model.dimension.to_string())
            .replace("{m}", &hnsw.m.to_string())
            .replace("{ef_construction}", &hnsw.ef_construction.to_string());
        tx.batch_execute(&sql)?;
        tx.execute(
            "INSERT INTO semdex_migrations (version) VALUES ($1)",
            &[&migration.version],
        )?;
        tracing::info!(version = migration.version, "applied a database migration");
    }
    check_server(&mut tx)?;
    if !check_model(&mut tx, model)? {
        tx.execute(
            "INSERT INTO semdex_meta (key, value) VALUES ('model', $1), ('precision', $2)",
            &[&describe(model), &model.precision],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// On a standby: waits (up to [`SCHEMA_WAIT`]) until the schema its primary's semdex made is
/// this build's, then checks the server and the model as [`migrate`] does, writing nothing.
pub fn await_schema(client: &mut Client, model: &ModelIdentity) -> Result<(), PgError> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        let mut tx = client.build_transaction().read_only(true).start()?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('semdex_migrations') IS NOT NULL", &[])?
            .get(0);
        let found: i32 = if exists {
            tx.query_one(
                "SELECT coalesce(max(version), 0) FROM semdex_migrations",
                &[],
            )?
            .get(0)
        } else {
            0
        };
        if found > SCHEMA_VERSION {
            return Err(PgError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            check_server(&mut tx)?;
            // The model is recorded in the migration's own transaction: present with it.
            if !check_model(&mut tx, model)? {
                return Err(PgError::Corrupt(
                    "the schema is there but semdex_meta names no model".into(),
                ));
            }
            tx.commit()?;
            return Ok(());
        }
        tx.commit()?;
        if started.elapsed() >= SCHEMA_WAIT {
            return Err(PgError::SchemaNotReplicated {
                found,
                wanted: SCHEMA_VERSION,
                waited_s: SCHEMA_WAIT.as_secs(),
            });
        }
        if !logged {
            tracing::info!(
                found,
                wanted = SCHEMA_VERSION,
                "the standby lacks this semdex's schema: waiting for a semdex on the primary to make it"
            );
            logged = true;
        }
        std::thread::sleep(SCHEMA_POLL);
    }
}

/// Whether the database records a model (`false`: none yet); an error when it records
/// another one than `model`.
fn check_model(tx: &mut postgres::Transaction<'_>, model: &ModelIdentity) -> Result<bool, PgError> {
    let stored: Option<String> = tx
        .query_opt("SELECT value FROM semdex_meta WHERE key = 'model'", &[])?
        .map(|row| row.get(0));
    match stored {
        Some(stored) if stored != describe(model) => Err(PgError::ModelMismatch {
            stored,
            current: describe(model),
        }),
        Some(_) => {
            let precision: String = tx
                .query_opt("SELECT value FROM semdex_meta WHERE key = 'precision'", &[])?
                .map_or_else(|| DEFAULT_PRECISION.to_string(), |row| row.get(0));
            if precision != model.precision {
                return Err(PgError::ModelMismatch {
                    stored: format!("{}, {precision}", describe(model)),
                    current: format!("{}, {}", describe(model), model.precision),
                });
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

/// pgvector 0.8 or later (filtered graph scans: `hnsw.iterative_scan`) in a UTF-8 database
/// (text in any script).
fn check_server(tx: &mut postgres::Transaction<'_>) -> Result<(), PgError> {
    let version: String = tx
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
            &[],
        )?
        .get(0);
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    if (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
    ) < (0, 8)
    {
        return Err(PgError::Unsupported(format!(
            "pgvector {version} is installed; semdex needs 0.8 or later (ALTER EXTENSION vector UPDATE)"
        )));
    }
    let encoding: String = tx.query_one("SHOW server_encoding", &[])?.get(0);
    if encoding != "UTF8" {
        return Err(PgError::Unsupported(format!(
            "the database's encoding is {encoding}; semdex needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
        )));
    }
    Ok(())
}

fn describe(model: &ModelIdentity) -> String {
    format!(
        "{} ({}, dim {})",
        model.name, model.fingerprint, model.dimension
    )
}
