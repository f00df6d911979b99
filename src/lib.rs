//! semdex: chunk documents, embed them with a local sentence-transformer, index the vectors and
//! answer nearest-passage queries.
//!
//! The library is organised as one module per job: [`embed`] (tokenizer, model, pooling) and
//! [`chunk`] (token-measured, sentence-aware passages with byte offsets), [`eval`] (speed and
//! quality measurement).

#![warn(missing_docs)]

pub mod api;
pub mod chunk;
pub mod embed;
pub mod engine;
pub mod eval;
pub mod index;
pub mod queue;
pub mod store;

#[cfg(feature = "mimalloc")]
pub mod alloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: alloc::CountingMimalloc = alloc::CountingMimalloc;
