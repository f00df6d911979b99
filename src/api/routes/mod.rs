//! Handlers, one file per route group.

pub mod collections;
pub mod documents;
pub mod embeddings;
pub mod jobs;
pub mod page;
pub mod search;
pub mod snapshots;
pub mod system;
