//! ANN recall: semdex's index against exact search on the same vectors, swept over `ef`, with
//! queries/s, build time and memory — the figures of ann-benchmarks — and how well the
//! quantised codes rank before the graph is involved.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use crate::index::quant::{BinaryQuantizer, ScalarQuantizer};
use crate::index::{
    FlatIndex, Hit, HnswIndex, HnswParams, IdVectors, IndexError, SearchParams, VectorId,
    VectorIndex, dot, dot_u8_i8,
};
use crate::progress::Progress;

/// Settings of a sweep.
#[derive(Debug, Clone)]
pub struct AnnOptions {
    /// Graph parameters (`ef_search` is ignored: `efs` is swept).
    pub params: HnswParams,
    /// Search breadths to measure.
    pub efs: Vec<usize>,
    /// Threads that search (queries are spread over them); 1 gives per-query speed.
    pub threads: usize,
    /// Freeze the graph into this directory (a segment, as the server writes it) and reopen
    /// it from there before searching, instead of keeping it in memory.
    pub index_dir: Option<std::path::PathBuf>,
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
    /// Recall@100 (searched with k = 100, so ef is at least 100); absent when the ground
    /// truth holds fewer than 100 neighbours per query.
    #[serde(rename = "recall@100", skip_serializing_if = "Option::is_none")]
    pub recall_100: Option<f64>,
    /// Queries per second at k = 10 over all search threads.
    pub qps: f64,
    /// Queries per second of CPU time the search threads ran for: on a shared machine, the
    /// speed without the time other processes took from them (Linux only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_qps: Option<f64>,
}

/// Exact search's speed, the baseline of every row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExactRow {
    /// 1 by definition (0.9999… when the ground truth came from a file and ties differ).
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    /// Queries per second at k = 10 over a contiguous f32 matrix, all search threads.
    pub qps: f64,
    /// Queries per second of the search threads' CPU time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_qps: Option<f64>,
}

/// Recall@10 of a flat scan of quantised codes whose best `k · oversampling` are rescored in
/// f32: how much each code loses, apart from the graph.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantRow {
    /// "int8" (8-bit per-dimension scalar codes, what the index holds) or "binary" (sign bits).
    pub codes: &'static str,
    /// Bytes of code per vector.
    pub bytes_per_vector: usize,
    /// Candidates rescored per result.
    pub oversampling: usize,
    /// Recall@10 after rescoring.
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
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
    /// Threads that searched.
    pub threads: usize,
    /// The SIMD kernels used.
    pub kernels: &'static str,
    /// Seconds to build the index: the graph (all threads), its 8-bit codes (and
    /// writing it, with an index directory); null when an index of the same vectors was
    /// reopened from the index directory instead.
    #[serde(rename = "build_s")]
    pub build_seconds: Option<f64>,
    /// Seconds to open the written index (with an index directory; else absent).
    #[serde(rename = "open_s", skip_serializing_if = "Option::is_none")]
    pub open_seconds: Option<f64>,
    /// Bytes the index holds in memory, by its own count (codes, links, ids).
    pub index_bytes: u64,
    /// Bytes of the raw f32 vectors, for comparison.
    pub vector_bytes: u64,
    /// Exact search.
    pub exact: ExactRow,
    /// One row per ef.
    #[serde(rename = "results")]
    pub rows: Vec<AnnRow>,
    /// Quantised codes alone (flat scans), when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quantisation: Vec<QuantRow>,
}

/// Each query's true nearest neighbours, best first (with their scores, so that ties count).
pub type Truth = Vec<Vec<Hit>>;

/// A digest of the base set (ids and vector bits), recorded as the generation of a
/// benchmark's saved index so that a later run knows whether it may reuse it.
fn fingerprint(base: &[(VectorId, Vec<f32>)]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (id, v) in base {
        hasher.update(id.to_le_bytes());
        hasher.update(bytemuck::cast_slice::<f32, u8>(v));
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The exact top `k` of every query, computed on all cores.
pub fn exact_truth(
    base: &[(VectorId, Vec<f32>)],
    queries: &[Vec<f32>],
    k: usize,
) -> Result<Truth, IndexError> {
    let exact = flat(base)?;
    let exactly = SearchParams { ef: 0, exact: true };
    queries
        .par_iter()
        .map(|q| exact.search(q, k, exactly, None))
        .collect()
}

/// Ground truth given as positions into `base` (an `.ivecs` file), scored so that ties count.
pub fn truth_from_positions(
    base: &[(VectorId, Vec<f32>)],
    queries: &[Vec<f32>],
    positions: &[Vec<i32>],
) -> Result<Truth, String> {
    if positions.len() < queries.len() {
        return Err(format!(
            "the ground truth has {} rows for {} queries",
            positions.len(),
            queries.len()
        ));
    }
    queries
        .iter()
        .zip(positions)
        .enumerate()
        .map(|(qi, (q, row))| {
            row.iter()
                .map(|&p| {
                    let (id, v) = usize::try_from(p)
                        .ok()
                        .and_then(|p| base.get(p))
                        .ok_or_else(|| {
                            format!(
                                "ground truth of query {} names vector {p}; there are {}",
                                qi + 1,
                                base.len()
                            )
                        })?;
                    Ok(Hit {
                        id: *id,
                        score: dot(q, v),
                    })
                })
                .collect()
        })
        .collect()
}

fn flat(base: &[(VectorId, Vec<f32>)]) -> Result<FlatIndex, IndexError> {
    let dimension = base.first().map_or(0, |(_, v)| v.len());
    let mut exact = FlatIndex::new(dimension);
    let refs: Vec<(VectorId, &[f32])> = base.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    exact.add(&refs)?;
    Ok(exact)
}

/// Nanoseconds the calling thread has run on a CPU (`/proc/thread-self/schedstat`; 0 where
/// there is none).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Speed of one pass over the queries.
struct Timing {
    qps: f64,
    cpu_qps: Option<f64>,
}

/// Runs `search` for every query on `threads` threads; returns the results and their speed,
/// by the clock and by the CPU time the threads were given.
fn timed<T: Send>(
    queries: &[Vec<f32>],
    pool: &rayon::ThreadPool,
    search: impl Fn(&[f32]) -> Result<T, IndexError> + Sync,
) -> Result<(Vec<T>, Timing), IndexError> {
    let cpu = || pool.broadcast(|_| thread_cpu_ns()).iter().sum::<u64>();
    let cpu_before = cpu();
    let started = Instant::now();
    let found: Vec<T> = pool.install(|| {
        queries
            .par_iter()
            .map(|q| search(q))
            .collect::<Result<_, _>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ns = cpu().saturating_sub(cpu_before);
    let n = queries.len() as f64;
    let timing = Timing {
        qps: n / elapsed,
        cpu_qps: (cpu_ns > 0 && cpu_before > 0).then(|| n / (cpu_ns as f64 / 1e9)),
    };
    Ok((found, timing))
}

/// Builds semdex's index over `base` and measures it against exact search with `queries`,
/// whose true neighbours are `truth` (at least 10 per query).
pub fn benchmark(
    base: &[(VectorId, Vec<f32>)],
    queries: &[Vec<f32>],
    truth: &Truth,
    options: &AnnOptions,
    progress: &dyn Progress,
) -> Result<AnnReport, IndexError> {
    let dimension = base.first().map_or(0, |(_, v)| v.len());
    let refs: Vec<(VectorId, &[f32])> = base.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    let threads = options.threads.max(1);

    // An index directory that already holds an index of these very vectors (a previous run's)
    // is opened instead of built: comparisons can then search it round after round.
    let fingerprint = fingerprint(base);
    let reusable = options.index_dir.as_deref().and_then(|dir| {
        let started = Instant::now();
        HnswIndex::load(dir, dimension, options.params)
            .ok()
            .filter(|ix| ix.generation() == fingerprint && ix.len() == base.len())
            .map(|ix| (ix, started.elapsed().as_secs_f64()))
    });
    let (index, build_seconds, open_seconds) = match reusable {
        Some((index, opened)) => (index, None, Some(opened)),
        None => {
            let started = Instant::now();
            let mut index = HnswIndex::new(dimension, options.params, base.len())?;
            index.add(&refs)?;
            index.freeze(options.index_dir.as_deref(), progress)?;
            let built = started.elapsed().as_secs_f64();
            match &options.index_dir {
                Some(dir) => {
                    index.set_generation(fingerprint);
                    index.save(dir)?;
                    drop(index);
                    let started = Instant::now();
                    let index =
                        HnswIndex::load(dir, dimension, options.params).map_err(|miss| {
                            IndexError::Persist {
                                dir: dir.display().to_string(),
                                reason: format!("cannot reopen the index just written: {miss:?}"),
                            }
                        })?;
                    (index, Some(built), Some(started.elapsed().as_secs_f64()))
                }
                None => (index, Some(built), None),
            }
        }
    };

    // A pool of exactly `threads`, also for one: searches that split their own work (exact
    // scans of large sets) then stay on the threads measured.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| IndexError::Params(e.to_string()))?;
    let exact = flat(base)?;
    let exactly = SearchParams { ef: 0, exact: true };
    let (found, timing) = timed(queries, &pool, |q| exact.search(q, 10, exactly, None))?;
    let exact_row = ExactRow {
        recall_10: mean_recall(&found, truth, 10),
        qps: timing.qps,
        cpu_qps: timing.cpu_qps,
    };
    drop(exact);

    let deep = truth.iter().all(|t| t.len() >= 100);
    let mut rows = Vec::with_capacity(options.efs.len());
    for &ef in &options.efs {
        let graph = SearchParams { ef, exact: false };
        // One untimed pass warms the caches (and a mapped index's pages), as a server's are.
        timed(&queries[..queries.len().min(100)], &pool, |q| {
            index.search(q, 10, graph, None)
        })?;
        let (found, timing) = timed(queries, &pool, |q| index.search(q, 10, graph, None))?;
        let recall_100 = if deep {
            let (wide, _) = timed(queries, &pool, |q| index.search(q, 100, graph, None))?;
            Some(mean_recall(&wide, truth, 100))
        } else {
            None
        };
        rows.push(AnnRow {
            ef,
            recall_1: mean_recall(&found, truth, 1),
            recall_10: mean_recall(&found, truth, 10),
            recall_100,
            qps: timing.qps,
            cpu_qps: timing.cpu_qps,
        });
    }
    Ok(AnnReport {
        vectors: base.len(),
        queries: queries.len(),
        dimension,
        m: options.params.m,
        ef_construction: options.params.ef_construction,
        threads,
        kernels: crate::index::kernel_name(),
        build_seconds,
        open_seconds,
        index_bytes: index.memory_bytes() as u64,
        vector_bytes: (base.len() * dimension * 4) as u64,
        exact: exact_row,
        rows,
        quantisation: Vec::new(),
    })
}

/// Recall@10 of flat scans of int8 and binary codes, each query's best `10 · r` candidates
/// rescored in f32, for every oversampling `r` in `oversampling`.
pub fn quantisation(
    base: &[(VectorId, Vec<f32>)],
    queries: &[Vec<f32>],
    truth: &Truth,
    oversampling: &[usize],
) -> Vec<QuantRow> {
    let dimension = base.first().map_or(0, |(_, v)| v.len());
    let scalar = ScalarQuantizer::learn(dimension, base.iter().map(|(_, v)| v.as_slice()));
    let mut codes = vec![0u8; base.len() * dimension];
    codes
        .par_chunks_mut(dimension.max(1))
        .zip(base)
        .for_each(|(out, (_, v))| scalar.encode(v, out));
    let binary = BinaryQuantizer::new(dimension);
    let words = binary.words();
    let mut bits = Vec::with_capacity(base.len() * words);
    for (_, v) in base {
        binary.encode(v, &mut bits);
    }
    let widest = oversampling.iter().copied().max().unwrap_or(1) * 10;
    // Each query's candidates by code score, best first, once; every oversampling is a prefix.
    let by_int8: Vec<Vec<usize>> = queries
        .par_iter()
        .map(|q| {
            let prepared = scalar.prepare(q);
            best_by(base.len(), widest, |i| {
                i64::from(dot_u8_i8(
                    &codes[i * dimension..(i + 1) * dimension],
                    &prepared.weights,
                ))
            })
        })
        .collect();
    let by_bits: Vec<Vec<usize>> = queries
        .par_iter()
        .map(|q| {
            let mut query_bits = Vec::with_capacity(words);
            binary.encode(q, &mut query_bits);
            best_by(base.len(), widest, |i| {
                i64::from(binary.agreement(&bits[i * words..(i + 1) * words], &query_bits))
            })
        })
        .collect();
    let mut rows = Vec::new();
    for (name, bytes, ranked) in [
        ("int8", dimension, &by_int8),
        ("binary", words * 8, &by_bits),
    ] {
        for &r in oversampling {
            let found: Vec<Vec<Hit>> = queries
                .iter()
                .zip(ranked)
                .map(|(q, candidates)| {
                    let hits = candidates
                        .iter()
                        .take(10 * r)
                        .map(|&i| Hit {
                            id: base[i].0,
                            score: dot(q, &base[i].1),
                        })
                        .collect();
                    crate::index::rank(hits, 10)
                })
                .collect();
            rows.push(QuantRow {
                codes: name,
                bytes_per_vector: bytes,
                oversampling: r,
                recall_10: mean_recall(&found, truth, 10),
            });
        }
    }
    rows
}

/// The `keep` positions in `0..n` with the highest `score`, best first.
fn best_by(n: usize, keep: usize, score: impl Fn(usize) -> i64) -> Vec<usize> {
    let mut scored: Vec<(i64, usize)> = (0..n).map(|i| (score(i), i)).collect();
    let keep = keep.min(n);
    if keep > 0 && keep < n {
        scored.select_nth_unstable_by(keep - 1, |a, b| b.0.cmp(&a.0));
    }
    scored.truncate(keep);
    scored.sort_unstable_by_key(|&(score, _)| std::cmp::Reverse(score));
    scored.into_iter().map(|(_, i)| i).collect()
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

/// Base vectors from an `.fvecs` file, numbered from 0 and scaled to unit length (semdex
/// indexes unit vectors and scores by dot product, i.e. cosine).
pub fn read_base(path: &Path) -> Result<IdVectors, super::vecs::VecsError> {
    Ok(super::vecs::read_fvecs(path)?
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            crate::embed::l2_normalize(&mut v);
            (i as VectorId, v)
        })
        .collect())
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
            threads: 1,
            index_dir: None,
        };
        let truth = exact_truth(&base, &queries, 100).unwrap();
        let report = benchmark(
            &base,
            &queries,
            &truth,
            &options,
            &crate::progress::NoProgress,
        )
        .unwrap();
        assert_eq!(report.rows.len(), 2);
        assert!(report.rows[1].recall_10 >= report.rows[0].recall_10 - 0.01);
        assert!(report.rows[1].recall_10 > 0.95, "{:?}", report.rows);
        assert!(report.rows[1].recall_100.unwrap() > 0.9);
        assert!(report.build_seconds.unwrap() > 0.0 && report.exact.qps > 0.0);
        assert!((report.exact.recall_10 - 1.0).abs() < 1e-9);
        let json = serde_json::to_value(&report).unwrap();
        // Written to an index directory, the index is reused by a run on the same vectors.
        let dir = tempfile::tempdir().unwrap();
        let on_disk = AnnOptions {
            index_dir: Some(dir.path().to_path_buf()),
            ..options.clone()
        };
        let on_disk_run = || {
            benchmark(
                &base,
                &queries,
                &truth,
                &on_disk,
                &crate::progress::NoProgress,
            )
            .unwrap()
        };
        let written = on_disk_run();
        assert!(written.build_seconds.is_some() && written.open_seconds.is_some());
        let reused = on_disk_run();
        assert!(reused.build_seconds.is_none());
        assert_eq!(reused.rows[1].recall_10, written.rows[1].recall_10);
        let other = synthetic(500, 16, 8);
        let rebuilt = benchmark(
            &other,
            &queries,
            &exact_truth(&other, &queries, 10).unwrap(),
            &on_disk,
            &crate::progress::NoProgress,
        )
        .unwrap();
        assert!(rebuilt.build_seconds.is_some(), "other vectors: built anew");
        assert!(json["build_s"].as_f64().is_some());
        assert!(json["results"][0]["recall@10"].as_f64().is_some());
        assert!(json["results"][0]["qps"].as_f64().is_some());

        // The same truth from positions (an .ivecs file's content).
        let position: std::collections::HashMap<VectorId, i32> = base
            .iter()
            .enumerate()
            .map(|(p, (id, _))| (*id, p as i32))
            .collect();
        let positions: Vec<Vec<i32>> = truth
            .iter()
            .map(|t| t.iter().take(10).map(|h| position[&h.id]).collect())
            .collect();
        let from_file = truth_from_positions(&base, &queries, &positions).unwrap();
        assert_eq!(from_file[0][..10], truth[0][..10]);
        assert!(truth_from_positions(&base, &queries, &positions[..5]).is_err());
        let beyond = vec![vec![5000]; queries.len()];
        assert!(truth_from_positions(&base, &queries, &beyond).is_err());

        let rows = quantisation(&base, &queries, &truth, &[1, 4]);
        assert_eq!(rows.len(), 4);
        let int8_wide = rows
            .iter()
            .find(|r| r.codes == "int8" && r.oversampling == 4);
        assert!(int8_wide.unwrap().recall_10 > 0.97, "{rows:?}");
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
