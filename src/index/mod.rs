//! Nearest-neighbour indexes over unit-length vectors, scored by cosine similarity.
//!
//! The index is derived data: the store holds every vector and the index can always be rebuilt
//! from it. Implementations sit behind [`VectorIndex`] so that a remote engine can take the
//! approximate role later; [`HnswIndex`] (hnsw_rs) is the embedded default and [`FlatIndex`]
//! is the exact search beside it — ground truth for recall, the fast path for small corpora
//! and selective filters.

mod flat;
mod hnsw;

use std::path::Path;

pub use flat::FlatIndex;
pub use hnsw::{HnswIndex, HnswParams};

/// Identifies an indexed vector (a chunk id).
pub type VectorId = u64;

/// Vectors with their ids, owned: what the store hands out and what builds consume.
pub type IdVectors = Vec<(VectorId, Vec<f32>)>;

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector's id.
    pub id: VectorId,
    /// Cosine similarity with the query (dot product of unit vectors), higher is closer.
    pub score: f32,
}

/// Which vectors a search may return.
pub type Filter<'a> = &'a (dyn Fn(VectorId) -> bool + Sync);

/// Index failures.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector of the wrong length.
    #[error("vector of length {got}, the index holds length {expected}")]
    Dimension {
        /// The index's dimension.
        expected: usize,
        /// The offending length.
        got: usize,
    },
    /// An id already in the index.
    #[error("vector id {0} is already indexed")]
    DuplicateId(VectorId),
    /// Invalid parameters.
    #[error("invalid index parameters: {0}")]
    Params(String),
    /// Saving or loading the index files failed.
    #[error("index files in {dir}: {reason}")]
    Persist {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias for indexes.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// The operations every index offers. Scores are cosine similarities; results are sorted by
/// score, best first, ties broken by ascending id.
pub trait VectorIndex: Send + Sync {
    /// A short name for logs and `/info`.
    fn kind(&self) -> &'static str;

    /// Adds vectors (unit length); ids must be new.
    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()>;

    /// Removes vectors; unknown ids are ignored. Returns how many were removed.
    fn remove(&mut self, ids: &[VectorId]) -> usize;

    /// The `k` nearest live vectors that pass `filter`. `ef` is the search breadth of
    /// approximate indexes (exact ones ignore it).
    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<Filter<'_>>) -> Vec<Hit>;

    /// Live vectors.
    fn len(&self) -> usize;

    /// Whether the index holds no live vector.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the index to `dir` so that it can be loaded instead of rebuilt.
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Sorts hits best first, ties by ascending id, and keeps `k`.
pub(crate) fn rank(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}

/// Dot product; the compiler vectorises this loop.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators break the dependency chain so the loop vectorises.
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}
