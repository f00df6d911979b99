//! Nearest-neighbour indexes over unit-length vectors, scored by cosine similarity.
//!
//! The index is derived data: the store holds every vector and the index can always be rebuilt
//! from it. Implementations sit behind [`VectorIndex`]: [`HnswIndex`] is what the engine
//! serves from — an HNSW graph in flat arrays ([`FrozenGraph`], 8-bit codes in memory, f32
//! vectors mapped from disk for rescoring) answers queries, and vectors
//! added since the last freeze are searched exactly beside it; it answers exact queries too
//! (small corpora, selective filters). [`FlatIndex`] is a plain matrix, the ground truth of
//! recall benchmarks.

mod build;
mod dump;
mod flat;
mod frozen;
mod hnsw;
mod kernels;
pub mod quant;
mod segment;
mod visited;

pub use flat::FlatIndex;
pub use frozen::FrozenGraph;
pub use hnsw::{FoldJob, Folded, HnswIndex, HnswParams, IndexedIds, LoadMiss};
pub use kernels::{dot, dot_u8_i8, kernel_name};

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

/// How one query is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// Candidate list size of approximate indexes (exact search ignores it).
    pub ef: usize,
    /// Score every vector instead of walking a graph.
    pub exact: bool,
}

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
    /// A query vector with a value that is not a finite number.
    #[error("query vector has a non-finite value")]
    NonFinite,
    /// Invalid parameters.
    #[error("invalid index parameters: {0}")]
    Params(String),
    /// Reading the f32 vectors of a segment failed (the file went away or was cut short).
    #[error("reading the index's vectors: {0}")]
    Rows(#[from] std::io::Error),
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

/// The operations every index offers (the contract of Qdrant's vector-index traits: fallible
/// wherever a caller can pass bad data). Scores are cosine similarities; results are sorted by
/// score, best first, ties broken by ascending id.
pub trait VectorIndex: Send + Sync {
    /// A short name for logs and `/info`.
    fn kind(&self) -> &'static str;

    /// The length of the vectors held.
    fn dimension(&self) -> usize;

    /// Adds vectors (unit length). Every id must be new, to the index and within `items`;
    /// on any error nothing is added.
    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()>;

    /// Removes vectors; unknown ids are ignored. Returns how many were removed.
    fn remove(&mut self, ids: &[VectorId]) -> usize;

    /// The `k` nearest live vectors that pass `filter`. A query of the wrong length, or with
    /// a value that is not finite, is an error.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Hit>>;

    /// Live vectors.
    fn len(&self) -> usize;

    /// Whether the index holds no live vector.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a query against an index's dimension.
pub(crate) fn check_query(query: &[f32], dimension: usize) -> Result<()> {
    if query.len() != dimension {
        return Err(IndexError::Dimension {
            expected: dimension,
            got: query.len(),
        });
    }
    if query.iter().any(|v| !v.is_finite()) {
        return Err(IndexError::NonFinite);
    }
    Ok(())
}

/// Checks a batch to add: lengths, and ids new to the index (`known`) and to the batch.
pub(crate) fn check_new(
    items: &[(VectorId, &[f32])],
    dimension: usize,
    known: impl Fn(VectorId) -> bool,
) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (id, v) in items {
        if v.len() != dimension {
            return Err(IndexError::Dimension {
                expected: dimension,
                got: v.len(),
            });
        }
        if known(*id) || !seen.insert(*id) {
            return Err(IndexError::DuplicateId(*id));
        }
    }
    Ok(())
}

/// Top-k without sorting everything: partial selection, then a sort of the k survivors.
pub(crate) fn top_k(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, |a, b| {
            b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
        });
        hits.truncate(k);
    }
    rank(hits, k)
}

/// Sorts hits best first, ties by ascending id, and keeps `k`.
pub(crate) fn rank(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}
