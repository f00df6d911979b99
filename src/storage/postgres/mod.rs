//! PostgreSQL: documents, passages, vectors (pgvector, HNSW) and BM25 postings in one database
//! that any number of semdex processes share.
//!
//! Nothing is kept in the process but a bounded pool of connections: a document written
//! through one replica is found through every other at once. Each document is written in one
//! transaction under an advisory lock on its id, so a killed semdex leaves no partial
//! document and concurrent writers of one id (in any replica) end with one version. A
//! database that cannot be reached gives [`StorageError::Unavailable`] (the API's 503 with
//! `Retry-After`); the pool replaces broken connections, so service resumes when it returns.
//!
//! One file per job: the catalog of collections ([`catalog`]), one collection's backend
//! ([`backend`]), BM25 scoring in SQL ([`bm25`]), the postings' upkeep as documents come and
//! go ([`postings`]), filling the postings of passages an older semdex stored ([`backfill`]),
//! the schema's migrations and the filter dialect.

mod backend;
mod backfill;
mod bm25;
mod catalog;
mod filter;
mod postings;
mod schema;

use std::sync::Arc;
use std::time::Duration;

use postgres::NoTls;
use postgres::error::SqlState;
use r2d2_postgres::PostgresConnectionManager;

use crate::index::HnswParams;
use crate::storage::StorageError;
use crate::storage::types::ModelIdentity;

pub use backend::PostgresBackend;
pub use catalog::PostgresCatalog;
pub use schema::SCHEMA_VERSION;

/// Result alias for this backend.
type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How long a request waits for a pooled connection (or a new one) before the database is
/// reported unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Failures of the database that are not the caller's doing and not an outage.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] postgres::Error),
    /// The database's vectors were made with another model.
    #[error(
        "the database holds vectors of model {stored}, not {current}: use the model it was made with, or another database"
    )]
    ModelMismatch {
        /// The model recorded in the database.
        stored: String,
        /// The model in use now.
        current: String,
    },
    /// The schema was written by a newer semdex.
    #[error("the database has schema version {found}; this semdex knows up to {supported}")]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// The URL cannot be parsed.
    #[error("database URL: {0}")]
    BadUrl(String),
    /// A stored value is not what the schema promises.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The server lacks something semdex needs (pgvector 0.8, a UTF-8 database).
    #[error("the database is not usable: {0}")]
    Unsupported(String),
}

impl From<postgres::Error> for StorageError {
    /// Sorts a driver error: an outage or a conflict worth retrying (no connection, a closed
    /// one, a server shutting down or starting, a deadlock, a failover) is
    /// [`StorageError::Unavailable`]; a value the database cannot take from the caller (a
    /// character outside the server's encoding, a value past one of its limits)
    /// is [`StorageError::InvalidRequest`]; a write into a collection another replica deleted
    /// is [`StorageError::CollectionNotFound`]; the rest is ours.
    fn from(err: postgres::Error) -> Self {
        if is_retryable(&err) {
            return StorageError::Unavailable(err.to_string());
        }
        match err.code() {
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                StorageError::CollectionNotFound(String::new())
            }
            Some(code)
                if [
                    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                    SqlState::UNTRANSLATABLE_CHARACTER,
                    SqlState::PROGRAM_LIMIT_EXCEEDED,
                ]
                .contains(code) =>
            {
                StorageError::InvalidRequest(format!("the database refused a value: {err}"))
            }
            _ => StorageError::Postgres(PgError::Query(err)),
        }
    }
}

/// Whether a driver error is worth a retry: the database is unreachable now, or the
/// statement lost a conflict (deadlock, serialisation) or hit a standby after a failover.
fn is_retryable(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::QUERY_CANCELED,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                ]
                .contains(code)
        }
        // No SQLSTATE: an I/O failure of the connection is an outage; a conversion or
        // protocol error is a bug of ours, not worth a retry.
        None => std::error::Error::source(err)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()),
    }
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Connection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// A PostgreSQL database holding semdex's collections: a bounded pool of connections.
pub struct Database {
    pool: Pool,
    /// The URL without its password, for logs and `/info`.
    display: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects (lazily: connections open as they are needed, at most `pool_size`), then
    /// creates or upgrades the schema for `model` and checks the database was made with it.
    pub fn connect(
        url: &str,
        pool_size: u32,
        model: &ModelIdentity,
        hnsw: HnswParams,
    ) -> Result<Arc<Self>> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| PgError::BadUrl(e.to_string()))?;
        let display = redact(url);
        let mut config = config;
        if config.get_application_name().is_none() {
            config.application_name("semdex");
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // A connection broken by a database restart is found and replaced before use.
            .test_on_check_out(true)
            .thread_pool(crate::storage::embedded::store::helper_threads())
            .build_unchecked(manager);
        let database = Self { pool, display };
        let mut client = database.client()?;
        schema::migrate(&mut client, model, hnsw)?;
        backfill::backfill_postings(&mut client)?;
        drop(client);
        tracing::info!(url = %database.display, pool_size, "connected to PostgreSQL");
        Ok(Arc::new(database))
    }

    /// The URL without its password.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// Documents and passages of a collection.
    pub fn counts(&self, collection: &str) -> Result<(usize, usize)> {
        let row = self.client()?.query_one(
            "SELECT (SELECT count(*) FROM semdex_documents WHERE collection = $1),
                    (SELECT count(*) FROM semdex_chunks WHERE collection = $1)",
            &[&collection],
        )?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    /// A connection from the pool; [`StorageError::Unavailable`] when none can be had.
    fn client(&self) -> Result<Connection> {
        self.pool
            .get()
            .map_err(|e| StorageError::Unavailable(format!("PostgreSQL at {}: {e}", self.display)))
    }
}

/// Replaces `url`'s password with `***`.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or("");
                if user_info.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    format!("{scheme}://{user_info}@{host}")
                }
            }
            None => url.to_string(),
        },
        None => "(key=value connection string)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/semdex"),
            "postgres://app:***@db:5432/semdex"
        );
        assert_eq!(
            redact("postgres://app@db/semdex"),
            "postgres://app@db/semdex"
        );
        assert_eq!(redact("host=db user=app"), "(key=value connection string)");
    }
}
