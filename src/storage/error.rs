//! Why a storage call failed.

use std::path::PathBuf;

use crate::index::IndexError;
use crate::lexical::LexicalError;

use super::embedded::store::StoreError;

/// Storage failures. `InvalidRequest` is the caller's doing, `Unavailable` a retryable outage,
/// `CollectionNotFound` a collection deleted under the request; the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A value the storage cannot hold (NUL in PostgreSQL text, a value past one of its
    /// limits).
    #[error("{0}")]
    InvalidRequest(String),
    /// The collection was deleted (by another request, or another process sharing its
    /// database) while this request ran.
    #[error("no collection named {0:?}")]
    CollectionNotFound(String),
    /// A write to storage opened read-only.
    #[error("the data directory {0} is open read-only here (another process holds it)")]
    ReadOnly(PathBuf),
    /// The storage cannot be reached now (a database that is down or restarting, no read
    /// connection free for too long); the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The SQLite store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The vector index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The lexical index failed.
    #[error(transparent)]
    Lexical(#[from] LexicalError),
    /// The database failed (a bad statement, a constraint, a schema problem).
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] super::postgres::PgError),
    /// A file operation of the catalog failed.
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
    /// A collection's settings record is unreadable.
    #[error("collection {name:?}: {path} is not a valid settings file: {message}")]
    Manifest {
        /// The collection.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// Result alias for storage.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
