//! Storage: where collections, their documents, passages, vectors and derived indexes live.
//!
//! One layer with one trait per role, its backends side by side (as Qdrant's table of contents
//! → collections → segments):
//!
//! - [`Catalog`] lists, creates, deletes and opens collections: [`embedded::EmbeddedCatalog`]
//!   (a data directory, one folder per collection) and, with the `postgres` feature,
//!   [`postgres::PostgresCatalog`] (rows of a database that many semdex processes share).
//! - [`Backend`] is one open collection: it stores what the engine gives it and answers
//!   candidate queries. [`embedded::EmbeddedBackend`] keeps SQLite, an in-process HNSW graph and
//!   a tantivy index in the collection's folder; [`postgres::PostgresBackend`] keeps everything
//!   in the database.
//! - [`types`] holds what they store and hand back; everything above this layer speaks them.
//!
//! The engine (chunking, embedding, fusion) knows neither backend; the collection cache
//! ([`crate::collections`]) knows neither catalog.
//!
//! # Lock order
//!
//! Every lock a search, a write, a delete and a collection create, delete or open can take, in
//! the one order they are taken. A thread holding a lock may take only locks below it; no lock
//! is held while waiting for one above it. Locks marked *brief* guard a few memory operations
//! and are never held across I/O, a lock wait or a call out of their module.
//!
//! 1. **A collection's gate** (`collections::Slot::gate`, an async mutex): serialises opening
//!    and deleting that collection. Held across the open (seconds to minutes for a graph
//!    rebuild) and the delete; waiters await it without blocking a runtime thread, and the open
//!    itself runs on the blocking pool.
//! 2. **The catalog's lock** ([`embedded::EmbeddedCatalog`]'s DDL mutex): serialises creates
//!    and deletes of folders in one data directory, across their fsyncs; taken only on a
//!    blocking thread. PostgreSQL's catalog relies on the database (a primary key, one
//!    transaction per delete).
//! 3. **The collection map** (`collections::Collections::slots`, a `parking_lot` mutex):
//!    *brief*; name → slot.
//! 4. **A document's write lock**: the embedded backend's write connection (`parking_lot`
//!    mutex, one per collection, held across the SQLite transaction and the derived indexes'
//!    updates of one document), or PostgreSQL's transaction-level advisory lock on
//!    (collection, id) followed by a key-share lock on the collection's row. Writers of one
//!    process take at most one of these at a time.
//! 5. **The read pool** (a connection lent from the embedded backend's pool of SQLite readers):
//!    never waited for while a lock below is held.
//! 6. **The vector index** (`parking_lot` read-write lock): writers hold it for one step of
//!    inserts (64 vectors), unlocking fairly between steps; a search takes it on its own thread,
//!    never inside a job on the search threads (`engine::parallel`), because index inserts run
//!    on rayon and a job waiting for the lock could block the pool the holder needs.
//! 7. **tantivy's writer** (inside [`crate::lexical::LexicalIndex`], a `parking_lot` mutex):
//!    adds, removes and commits of the lexical index.
//! 8. **The claims map** (`engine::claims`, a `parking_lot` mutex): *brief*; the ids ingests are
//!    working on. A delete marks a claim through the callback [`Backend::delete`] calls under
//!    lock 4; an ingest reads its claim's mark under lock 4 without taking this lock (an
//!    atomic). Before this order existed a delete held this lock while waiting for lock 4 and a
//!    writer held lock 4 while waiting for this one: every write hung (issue 21).
//!
//! Outside the order, leaves that take nothing else: the encoder's batching queue, the
//! admission budgets, the graph compaction's try-lock (a compaction that finds one running
//! skips its turn) and the upload jobs' locks ([`crate::jobs`]: the job map and a job's record,
//! *brief*; a job's writer lock, held across its record's file write on a blocking thread by
//! the one task running the job, never while an ingest holds a lock above).

pub mod backend;
pub mod catalog;
pub mod embedded;
mod error;
mod exhausted;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod reads;
pub mod snapshot;
pub mod types;

pub use backend::{
    Backend, BackendOptions, CandidateQuery, Candidates, CollectionStats, Decision, LexicalKind,
    SearchStrategy, Settled, Written, decide,
};
pub use catalog::{Catalog, ChunkSettings, CollectionRecord, DEFAULT_COLLECTION, StandbyStatus};
pub use error::{Result, StorageError};
pub use exhausted::{Exhausted, descriptor_limit, exhausted};
pub use reads::{Consistency, reading};
pub use types::*;
