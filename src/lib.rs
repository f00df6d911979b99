//! semdex: chunk documents, embed them with a local sentence-transformer, index the vectors and
//! answer nearest-passage queries.
//!
//! One module per job, data flowing one way: [`api`] (axum routes and wire types) calls the
//! [`service`] layer (validation, admission, the batching [`queue`], the blocking hops), which
//! drives the [`engine`] (ingest and search orchestration) over [`embed`] (tokenizer, model,
//! pooling), [`chunk`] (token-measured, sentence-aware passages with byte offsets), [`store`]
//! (SQLite, the source of truth) and [`index`] (HNSW and exact search); [`filter`] is the
//! metadata filter language they share. [`eval`] measures speed and quality offline (cargo
//! feature `eval`).
//!
//! The library chooses no global allocator; the `semdex` binary installs
//! [`alloc::CountingMimalloc`] (cargo feature `mimalloc`).

#![warn(missing_docs)]

pub mod admission;
pub mod api;
pub mod cancel;
pub mod chunk;
pub mod collections;
pub mod embed;
pub mod engine;
#[cfg(feature = "eval")]
pub mod eval;
pub mod filter;
pub mod index;
pub mod late;
pub mod lexical;
pub mod mcp;
pub mod progress;
pub mod queue;
pub mod service;
pub mod store;

#[cfg(feature = "mimalloc")]
pub mod alloc;
