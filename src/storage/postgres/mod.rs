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
//! Reads may go to hot standbys ([`standby`]): searches, document reads and collection
//! listings run inside a read scope ([`crate::storage::reads`]) that allows it are answered
//! by a standby in rotation (one within the replay-lag bound), every other statement by the
//! primary. A semdex whose own URL names a standby (`pg_is_in_recovery()`) runs read-only: it
//! migrates nothing, waits for the schema the primary made, and refuses writes with
//! [`StorageError::ReadOnlyDatabase`].
//!
//! One file per job: the catalog of collections ([`catalog`]), one collection's backend
//! ([`backend`]), BM25 scoring in SQL ([`bm25`]), the postings' upkeep as documents come and
//! go ([`postings`]), filling the postings of passages an older semdex stored ([`backfill`]),
//! the standbys and their lag ([`standby`]), the schema's migrations and the filter dialect.

mod backend;
mod backfill;
mod bm25;
mod catalog;
mod filter;
mod postings;
mod schema;
mod standby;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::NoTls;
use postgres::error::SqlState;
use r2d2_postgres::PostgresConnectionManager;

use crate::index::HnswParams;
use crate::storage::StorageError;
use crate::storage::types::ModelIdentity;

pub use backend::PostgresBackend;
pub use catalog::PostgresCatalog;
pub use schema::{SCHEMA_VERSION, SCHEMA_WAIT};
pub use standby::PROBE_INTERVAL;

use crate::storage::StandbyStatus;

use crate::storage::reads::{self, Consistency};
use standby::{Standby, Standbys};

/// Result alias for this backend.
type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How long a request waits for a pooled connection (or a new one) before the database is
/// reported unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The same for a standby: a read that cannot have one soon goes to another server.
const STANDBY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Failures of the database that are not the caller's doing and not an outage.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] postgres::Error),
    /// The database's vectors were made with another model.
    #[error(
        "the database holds vectors of model {stored}, not {current}: use the model and --precision it was made with, or another database"
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
    /// A standby whose primary has not made (or upgraded to) this semdex's schema in time.
    #[error(
        "the database is a standby and has schema version {found}, not {wanted}, after waiting {waited_s} s: start a semdex of this version on the primary first"
    )]
    SchemaNotReplicated {
        /// The version found (0: none).
        found: i32,
        /// The version this build needs.
        wanted: i32,
        /// Seconds waited.
        waited_s: u64,
    },
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

/// How to reach a database and its standbys.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// Most connections to each server (the primary, and each standby).
    pub pool_size: u32,
    /// Hot standbys of the database that reads may go to.
    pub standbys: Vec<String>,
    /// Replay lag past which a standby is taken out of rotation.
    pub max_standby_lag: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            standbys: Vec::new(),
            max_standby_lag: Duration::from_secs(5),
        }
    }
}

/// Where a read went: the primary, or the standby of that index.
const PRIMARY_ROUTE: usize = usize::MAX;

/// A PostgreSQL database holding semdex's collections: a bounded pool of connections to its
/// primary (the server `--database-url` names) and one to each of its standbys.
pub struct Database {
    pool: Pool,
    /// The URL without its password, for logs and `/info`.
    display: String,
    /// The primary's URL names a standby: nothing may be written.
    read_only: bool,
    standbys: Standbys,
    primary_reads: AtomicU64,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.display)
            .field("read_only", &self.read_only)
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
        let options = ConnectOptions {
            pool_size,
            ..ConnectOptions::default()
        };
        Self::open(url, &options, model, hnsw)
    }

    /// Connects to the database at `url` and its standbys. On a primary, creates or upgrades
    /// the schema for `model`; on a standby (the database is read-only then), waits up to
    /// [`SCHEMA_WAIT`] for the schema its primary made. Either way checks the database was
    /// made with `model`. Standbys that do not answer yet are out of rotation until they do.
    pub fn open(
        url: &str,
        options: &ConnectOptions,
        model: &ModelIdentity,
        hnsw: HnswParams,
    ) -> Result<Arc<Self>> {
        let config = parse(url)?;
        let primary = connection_pool(config.clone(), options.pool_size, CONNECT_TIMEOUT);
        let shown = redact(url);
        let mut client = primary
            .get()
            .map_err(|e| StorageError::Unavailable(format!("PostgreSQL at {shown}: {e}")))?;
        let read_only: bool = client.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
        if read_only {
            tracing::info!(url = %shown, "the database is a standby: serving it read-only");
            schema::await_schema(&mut client, model)?;
        } else {
            schema::migrate(&mut client, model, hnsw)?;
            backfill::backfill_postings(&mut client)?;
        }
        drop(client);
        let mut standbys = Vec::with_capacity(options.standbys.len());
        for standby in &options.standbys {
            let standby_config = parse(standby)?;
            standbys.push(Arc::new(Standby::new(
                connection_pool(
                    standby_config.clone(),
                    options.pool_size,
                    STANDBY_CONNECT_TIMEOUT,
                ),
                redact(standby),
                standby_config,
            )));
        }
        let standbys = Standbys::start(standbys, config, options.max_standby_lag);
        for standby in &standbys.list {
            let status = standby.status();
            match &status.reason {
                None => tracing::info!(standby = %status.url, "reading from a standby"),
                Some(reason) => {
                    tracing::warn!(standby = %status.url, %reason, "standby out of rotation for now")
                }
            }
        }
        tracing::info!(url = %shown, pool_size = options.pool_size, read_only, "connected to PostgreSQL");
        Ok(Arc::new(Self {
            pool: primary,
            display: shown,
            read_only,
            standbys,
            primary_reads: AtomicU64::new(0),
        }))
    }

    /// The URL without its password.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// Whether the database is a standby, so that this process may not write.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Fails with [`StorageError::ReadOnlyDatabase`] when this process may not write.
    pub fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(StorageError::ReadOnlyDatabase(self.display.clone()));
        }
        Ok(())
    }

    /// Each standby's state now, in the order they were given.
    pub fn standbys(&self) -> Vec<StandbyStatus> {
        self.standbys.list.iter().map(|s| s.status()).collect()
    }

    /// Reads the primary has answered (those no standby could, or that asked for it).
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    /// Documents and passages of a collection.
    pub fn counts(&self, collection: &str) -> Result<(usize, usize)> {
        let row = self.read(|client| {
            Ok(client.query_one(
                "SELECT (SELECT count(*) FROM semdex_documents WHERE collection = $1),
                        (SELECT count(*) FROM semdex_chunks WHERE collection = $1)",
                &[&collection],
            )?)
        })?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    /// A connection to the primary; [`StorageError::Unavailable`] when none can be had.
    fn client(&self) -> Result<Connection> {
        self.pool
            .get()
            .map_err(|e| StorageError::Unavailable(format!("PostgreSQL at {}: {e}", self.display)))
    }

    /// Runs a read where the current read scope allows: on a standby in rotation for an
    /// eventual read (the one this scope read before, if it is still in rotation), else on the
    /// primary. A standby that cannot be reached is taken out of rotation and the read goes
    /// to the next one, then to the primary; `work` must be a read, safe to run again.
    fn read<T>(&self, mut work: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        let key = self as *const Self as usize;
        if reads::consistency() == Consistency::Eventual && !self.standbys.list.is_empty() {
            let mut failed = Vec::new();
            loop {
                let route = match reads::pinned(key) {
                    Some(PRIMARY_ROUTE) => break,
                    Some(i) if !failed.contains(&i) && self.standbys.list[i].in_rotation() => i,
                    _ => match self.standbys.choose(&failed) {
                        Some(i) => i,
                        None => break,
                    },
                };
                reads::pin(key, route);
                let standby = &self.standbys.list[route];
                let outcome = standby
                    .pool
                    .get()
                    .map_err(|e| StorageError::Unavailable(e.to_string()))
                    .and_then(|mut client| work(&mut client));
                match outcome {
                    Ok(value) => {
                        standby.count_read();
                        return Ok(value);
                    }
                    Err(StorageError::Unavailable(reason)) => {
                        standby.take_out(&reason);
                        failed.push(route);
                    }
                    Err(e) => return Err(e),
                }
            }
            reads::pin(key, PRIMARY_ROUTE);
        }
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        work(&mut self.client()?)
    }
}

/// A connection configuration from a URL, named `semdex` in the server's views.
fn parse(url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| PgError::BadUrl(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("semdex");
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    Ok(config)
}

/// A lazily filled pool of at most `size` connections that waits `timeout` for one.
fn connection_pool(config: postgres::Config, size: u32, timeout: Duration) -> Pool {
    let manager = PostgresConnectionManager::new(config, NoTls);
    r2d2::Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        .connection_timeout(timeout)
        // A connection broken by a database restart is found and replaced before use.
        .test_on_check_out(true)
        .thread_pool(crate::storage::embedded::store::helper_threads())
        .build_unchecked(manager)
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
