//! semdex: chunk documents, embed them with a local sentence-transformer, index the vectors and
//! answer nearest-passage queries.
//!
//! One module per job, data flowing one way: [`api`] (axum routes and wire types) calls the
//! [`service`] layer (validation, admission, the batching [`queue`], the blocking hops), which
//! drives the [`engine`] (ingest and search orchestration) over [`embed`] (tokenizer, model,
//! pooling), [`chunk`] (token-measured, sentence-aware passages with byte offsets) and
//! [`storage`] (a catalog of collections and one backend per collection: SQLite, HNSW and
//! tantivy in a data directory, or PostgreSQL), over [`index`] (HNSW and exact search) and
//! [`lexical`] (BM25); [`collections`] caches the open engines; [`filter`] is the metadata
//! filter language they share. [`eval`] measures speed and quality offline (cargo feature
//! `eval`); [`hooks`] lets tests pause work at named points.
//!
//! The library chooses no global allocator; the `semdex` binary installs
//! [`alloc::CountingMimalloc`] (cargo feature `mimalloc`).

#![warn(missing_docs)]

pub mod admission;
pub mod api;
pub mod chunk;
pub mod collections;
pub mod embed;
pub mod engine;
#[cfg(feature = "eval")]
pub mod eval;
pub mod extract;
pub mod filter;
pub mod hooks;
pub mod index;
pub mod jobs;
pub mod late;
pub mod lexical;
pub mod mcp;
pub mod progress;
pub mod queue;
pub mod service;
pub mod storage;

#[cfg(feature = "mimalloc")]
pub mod alloc;
