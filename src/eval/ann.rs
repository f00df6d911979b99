//! ANN recall: HNSW against exact search on the same vectors, swept over `ef`, with
//! queries/s, build time and index memory — the figures of ann-benchmarks.

use std::collections::HashSet;
use std::time::Instant;

use rayon::prelude::*;

use crate::index::{
    FlatIndex, Hit, HnswIndex, HnswParams, IdVectors, IndexError, SearchParams, VectorId,
    VectorIndex,
};
use crate::progress::Progress;

/// Settings of a sweep.
#[derive(Debug, Clone)]
pub struct AnnOptions {
    /// Graph parameters (`ef_search` is ignored: `efs` is swept).
    pub params: HnswParams,
    /// Search breadths to measure.
    pub efs: Vec<usize>,
}

/// One `ef` of the sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnnRow {
    /// Search breadth.
    pub ef: usize,
    /// Recall@1 against exact search.
    #[serde(rename = "recall@1")]
    pub recall_1: f64,
    /// Recall@10.
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    /// Recall@100 (searched with k = 100, so ef is at least 100).
    #[serde(rename = "recall@100")]
    pub recall_100: f64,
    /// Queries per second at k = 10, one thread.
    pub qps: f64,
}

/// A whole sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnnReport {
    /// Vectors indexed.
    pub vectors: usize,
    /// Queries run.
    pub queries: usize,
    /// Vector length.
    pub dimension: usize,
    /// HNSW M.
    pub m: usize,
    /// HNSW ef_construction.
    pub ef_construction: usize,
    /// Seconds to build the graph (all threads).
    pub build_seconds: f64,
    /// Heap bytes the graph holds (its copy of the vectors and its links): all the engine
    /// keeps in memory for a data directory's vectors. 0 when the program does not use
    /// [`crate::alloc::CountingMimalloc`] as its allocator.
    pub index_bytes: u64,
    /// Bytes of the raw vectors, for comparison.
    pub vector_bytes: u64,
    /// Exact search queries per second at k = 10, one thread, over a contiguous matrix.
    pub exact_qps: f64,
    /// Exact search queries per second at k = 10 over the graph's own points: what the engine
    /// runs for small corpora and selective filters, since the graph holds its only copy of
    /// the vectors.
    pub exact_graph_qps: f64,
    /// One row per ef.
    pub rows: Vec<AnnRow>,
}

/// Builds HNSW over `base` and measures it against exact search with `queries`.
pub fn benchmark(
    base: &[(VectorId, Vec<f32>)],
    queries: &[Vec<f32>],
    options: &AnnOptions,
    progress: &dyn Progress,
) -> Result<AnnReport, IndexError> {
    let dimension = base.first().map_or(0, |(_, v)| v.len());
    let mut exact = FlatIndex::new(dimension);
    let refs: Vec<(VectorId, &[f32])> = base.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    exact.add(&refs)?;
    let exactly = SearchParams { ef: 0, exact: true };
    let truth: Vec<Vec<Hit>> = queries
        .par_iter()
        .map(|q| exact.search(q, 100, exactly, None))
        .collect::<Result<_, _>>()?;

    let before = live_heap_bytes();
    let started = Instant::now();
    let mut hnsw = HnswIndex::new(dimension, options.params, base.len())?;
    progress.set_total(base.len() as u64);
    for step in refs.chunks(4096) {
        hnsw.add(step)?;
        progress.advance(step.len() as u64);
    }
    progress.finish();
    let build_seconds = started.elapsed().as_secs_f64();
    let index_bytes = live_heap_bytes().saturating_sub(before) as u64;

    let started = Instant::now();
    for q in queries {
        std::hint::black_box(exact.search(q, 10, exactly, None)?);
    }
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for q in queries {
        std::hint::black_box(hnsw.search(q, 10, exactly, None)?);
    }
    let exact_graph_qps = queries.len() as f64 / started.elapsed().as_secs_f64();

    let mut rows = Vec::with_capacity(options.efs.len());
    for &ef in &options.efs {
        let graph = SearchParams { ef, exact: false };
        let started = Instant::now();
        let found: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| hnsw.search(q, 10, graph, None))
            .collect::<Result<_, _>>()?;
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        let wide: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| hnsw.search(q, 100, graph, None))
            .collect::<Result<_, _>>()?;
        rows.push(AnnRow {
            ef,
            recall_1: mean_recall(&found, &truth, 1),
            recall_10: mean_recall(&found, &truth, 10),
            recall_100: mean_recall(&wide, &truth, 100),
            qps,
        });
    }
    Ok(AnnReport {
        vectors: base.len(),
        queries: queries.len(),
        dimension,
        m: options.params.m,
        ef_construction: options.params.ef_construction,
        build_seconds,
        index_bytes,
        vector_bytes: (base.len() * dimension * 4) as u64,
        exact_qps,
        exact_graph_qps,
        rows,
    })
}

/// Recall@k averaged over queries. Equal scores are interchangeable: a returned vector
/// counts when it is among the true top k or scores at least the k-th true score.
pub fn mean_recall(found: &[Vec<Hit>], truth: &[Vec<Hit>], k: usize) -> f64 {
    let mut total = 0.0;
    for (f, t) in found.iter().zip(truth) {
        let want = k.min(t.len());
        if want == 0 {
            continue;
        }
        let top: HashSet<VectorId> = t.iter().take(want).map(|h| h.id).collect();
        let floor = t[want - 1].score - 1e-6;
        let hits = f
            .iter()
            .take(want)
            .filter(|h| top.contains(&h.id) || h.score >= floor)
            .count();
        total += hits as f64 / want as f64;
    }
    total / found.len().max(1) as f64
}

/// Splits vectors into a base set and every `n / holdout`-th vector as a query.
pub fn hold_out(vectors: IdVectors, holdout: usize) -> (IdVectors, Vec<Vec<f32>>) {
    if holdout == 0 || vectors.len() < 2 {
        return (vectors, Vec::new());
    }
    let stride = (vectors.len() / holdout.min(vectors.len() / 2).max(1)).max(2);
    let mut base = Vec::with_capacity(vectors.len());
    let mut queries = Vec::with_capacity(holdout);
    for (i, item) in vectors.into_iter().enumerate() {
        if i % stride == stride - 1 && queries.len() < holdout {
            queries.push(item.1);
        } else {
            base.push(item);
        }
    }
    (base, queries)
}

/// `n` random unit vectors of length `dim` (Gaussian directions), deterministic for a seed.
pub fn synthetic(n: usize, dim: usize, seed: u64) -> IdVectors {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        // xorshift64*: plenty for benchmark data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| {
                    // Box-Muller: a Gaussian from two uniforms.
                    let (u1, u2) = (uniform(), uniform());
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            crate::embed::l2_normalize(&mut v);
            (i as VectorId, v)
        })
        .collect()
}

/// Live heap bytes, from the counting allocator (0 without it).
fn live_heap_bytes() -> usize {
    #[cfg(feature = "mimalloc")]
    {
        crate::alloc::live_bytes()
    }
    #[cfg(not(feature = "mimalloc"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_on_synthetic_vectors() {
        let vectors = synthetic(3000, 16, 7);
        assert!(
            vectors
                .iter()
                .all(|(_, v)| (v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4)
        );
        let (base, queries) = hold_out(vectors, 100);
        assert_eq!(queries.len(), 100);
        assert_eq!(base.len(), 2900);
        let options = AnnOptions {
            params: HnswParams::default(),
            efs: vec![16, 128],
        };
        let report = benchmark(&base, &queries, &options, &crate::progress::NoProgress).unwrap();
        assert_eq!(report.rows.len(), 2);
        assert!(report.rows[1].recall_10 >= report.rows[0].recall_10 - 0.01);
        assert!(report.rows[1].recall_10 > 0.95, "{:?}", report.rows);
        assert!(report.rows[1].recall_100 > 0.9);
        assert!(report.build_seconds > 0.0 && report.exact_qps > 0.0);
        assert!(report.exact_graph_qps > 0.0);
    }

    #[test]
    fn recall_counts_ties_as_hits() {
        let hit = |id, score| Hit { id, score };
        let truth = vec![vec![hit(1, 0.9), hit(2, 0.8), hit(3, 0.8)]];
        let found = vec![vec![hit(1, 0.9), hit(3, 0.8)]];
        assert_eq!(
            mean_recall(&found, &truth, 2),
            1.0,
            "3 ties with 2 at the cut"
        );
        let found = vec![vec![hit(9, 0.1), hit(1, 0.9)]];
        assert_eq!(mean_recall(&found, &truth, 2), 0.5);
    }
}
