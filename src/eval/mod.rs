//! Measuring semdex: encoder speed, retrieval quality and ANN recall, offline.
//!
//! Nothing here is on a serving path; the `semdex bench` subcommands and the criterion benches
//! call into it.

pub mod ann;
pub mod beir;
pub mod context;
pub mod filter;
pub mod ingest;
pub mod metrics;
pub mod plot;
pub mod qa;
pub mod speed;
pub mod sts;
pub mod vecs;
