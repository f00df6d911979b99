//! semdex's integration tests, in one binary (as ripgrep does): the real model, real sockets,
//! real child processes. One binary links candle and axum once instead of once per file.
//!
//! Tests that need the shared data sets beside the repository (`../shared/data`) are
//! `#[ignore]`d so that a fresh clone reports them as ignored, not passed; `.ci/run` runs them
//! with `--ignored` where the data is present.

/// The allocator the binary uses, so that the forward passes run as they do in production.
#[global_allocator]
static GLOBAL: semdex::alloc::CountingMimalloc = semdex::alloc::CountingMimalloc;

mod common;
mod suite;

mod admission;
mod ann_files;
mod ann_scifact;
mod bad_inputs;
mod body_props;
mod chunk_props;
mod cli;
mod collections;
mod concurrent_writers;
mod crash;
mod crash_http;
mod document_chunks;
mod encoder_reference;
mod engine;
mod extract_files;
mod extract_fuzz;
mod faults;
mod filters;
mod http_api;
mod http_hardening;
mod hybrid;
mod ingest_files;
mod jobs_http;
mod openai_tokens;
mod page_routes;
#[cfg(feature = "postgres")]
mod pg;
mod serve_binary;
mod shaping_http;
mod snapshots;
#[cfg(feature = "postgres")]
mod standby;
mod sync_storm;
mod upload_http;
