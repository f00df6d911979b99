//! Measuring semdex: encoder speed, retrieval quality and ANN recall, offline.
//!
//! Nothing here is on a serving path; the `semdex bench` subcommands and the criterion benches
//! call into it.

pub mod ingest;
pub mod speed;
