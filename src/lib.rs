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

/// mimalloc: the forward pass allocates large short-lived buffers per op, and the system
/// allocator's page-fault churn measurably slows it (see benches/README.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
