//! Approximate search: hnsw_rs over unit vectors with dot-product distance.
//!
//! hnsw_rs cannot delete, so removed vectors become tombstones: filtered out of every search
//! (which still returns `k` results) until the owner rebuilds the graph without them.

use std::collections::HashSet;
use std::path::Path;

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{DistDot, Hnsw};
use serde::{Deserialize, Serialize};

use super::{Filter, Hit, IndexError, Result, VectorId, VectorIndex, rank};

/// hnsw_rs only dumps graphs built with its maximum layer count.
const MAX_LAYERS: usize = 16;
/// Base name of the dump files in the index directory.
const BASENAME: &str = "hnsw";
const META_FILE: &str = "hnsw.meta.json";
/// Below this many vectors, inserting in parallel costs more than it saves.
const PARALLEL_INSERT_FROM: usize = 64;

/// Graph parameters. Defaults were chosen by measured recall (benches/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node and layer (`M`); layer 0 keeps twice as many.
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Default candidate list size while searching (per query `ef` overrides it).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

impl HnswParams {
    /// Checks the parameters hnsw_rs would otherwise reject by exiting the process.
    pub fn validate(&self) -> Result<()> {
        if !(2..=256).contains(&self.m) {
            return Err(IndexError::Params(format!(
                "m must be in 2..=256, got {}",
                self.m
            )));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(IndexError::Params("ef values must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct DumpMeta {
    m: usize,
    ef_construction: usize,
    dimension: usize,
    points: usize,
    tombstones: Vec<VectorId>,
}

/// An HNSW graph with tombstones for deleted vectors.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, DistDot>,
    params: HnswParams,
    dimension: usize,
    indexed: HashSet<VectorId>,
    tombstones: HashSet<VectorId>,
}

impl HnswIndex {
    /// An empty graph; `capacity` is a sizing hint.
    pub fn new(dimension: usize, params: HnswParams, capacity: usize) -> Result<Self> {
        params.validate()?;
        let graph = Hnsw::new(
            params.m,
            capacity.max(1024),
            MAX_LAYERS,
            params.ef_construction,
            DistDot,
        );
        Ok(Self {
            graph,
            params,
            dimension,
            indexed: HashSet::new(),
            tombstones: HashSet::new(),
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the default search breadth (building parameters are fixed at construction).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// Vectors in the graph that were removed and are only filtered out.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Ids held by the graph, live or tombstoned.
    pub fn indexed_ids(&self) -> &HashSet<VectorId> {
        &self.indexed
    }

    /// Loads a dump written by [`VectorIndex::save`]; `None` when there is none, or when it
    /// was built with other parameters or is unreadable (the caller rebuilds).
    pub fn load(dir: &Path, dimension: usize, params: HnswParams) -> Option<Self> {
        let meta: DumpMeta =
            serde_json::from_slice(&std::fs::read(dir.join(META_FILE)).ok()?).ok()?;
        if meta.m != params.m
            || meta.ef_construction != params.ef_construction
            || meta.dimension != dimension
            || meta.points == 0
        {
            return None;
        }
        // hnsw_rs asserts on malformed files; a bad dump must mean "rebuild", not a crash.
        let loaded = std::panic::catch_unwind(|| {
            // The loaded graph borrows its loader for its whole life: give the loader a
            // 'static home. One small struct per load, loads happen once per start.
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
            io.load_hnsw::<f32, DistDot>().ok()
        })
        .ok()
        .flatten()?;
        let indexed: HashSet<VectorId> = loaded
            .get_point_indexation()
            .into_iter()
            .map(|p| p.get_origin_id() as VectorId)
            .collect();
        if indexed.len() != meta.points
            || loaded.get_point_indexation().get_data_dimension() != dimension
        {
            return None;
        }
        let tombstones = meta.tombstones.into_iter().collect();
        Some(Self {
            graph: loaded,
            params,
            dimension,
            indexed,
            tombstones,
        })
    }
}

impl VectorIndex for HnswIndex {
    fn kind(&self) -> &'static str {
        "hnsw"
    }

    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()> {
        let mut seen = HashSet::with_capacity(items.len());
        for (id, v) in items {
            if v.len() != self.dimension {
                return Err(IndexError::Dimension {
                    expected: self.dimension,
                    got: v.len(),
                });
            }
            if self.indexed.contains(id) || !seen.insert(*id) {
                return Err(IndexError::DuplicateId(*id));
            }
        }
        let batch: Vec<(&[f32], usize)> = items.iter().map(|(id, v)| (*v, *id as usize)).collect();
        if batch.len() >= PARALLEL_INSERT_FROM {
            self.graph.parallel_insert_slice(&batch);
        } else {
            for item in batch {
                self.graph.insert_slice(item);
            }
        }
        self.indexed.extend(items.iter().map(|(id, _)| *id));
        Ok(())
    }

    fn remove(&mut self, ids: &[VectorId]) -> usize {
        ids.iter()
            .filter(|id| self.indexed.contains(id) && self.tombstones.insert(**id))
            .count()
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<Filter<'_>>) -> Vec<Hit> {
        let live = self.len();
        if k == 0 || live == 0 || query.len() != self.dimension {
            return Vec::new();
        }
        let keep = |id: &usize| {
            let id = *id as VectorId;
            !self.tombstones.contains(&id) && filter.is_none_or(|f| f(id))
        };
        let mut ef = ef.max(k);
        loop {
            let neighbours = if self.tombstones.is_empty() && filter.is_none() {
                self.graph.search(query, ef, ef)
            } else {
                self.graph.search_filter(query, ef, ef, Some(&keep))
            };
            let hits: Vec<Hit> = neighbours
                .into_iter()
                .filter(|n| keep(&n.d_id))
                .map(|n| Hit {
                    id: n.d_id as VectorId,
                    score: 1.0 - n.distance,
                })
                .collect();
            // Tombstones and filters can leave fewer than k: widen the search and retry.
            if hits.len() >= k.min(live) || ef >= self.indexed.len() {
                return rank(hits, k);
            }
            ef = (ef * 2).min(self.indexed.len());
        }
    }

    fn len(&self) -> usize {
        self.indexed.len() - self.tombstones.len()
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let fail = |reason: String| IndexError::Persist {
            dir: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        // The meta file goes last: without it a half-written dump is never loaded.
        let meta_path = dir.join(META_FILE);
        match std::fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if self.indexed.is_empty() {
            return Ok(());
        }
        self.graph
            .file_dump(dir, BASENAME)
            .map_err(|e| fail(e.to_string()))?;
        let mut tombstones: Vec<VectorId> = self.tombstones.iter().copied().collect();
        tombstones.sort_unstable();
        let meta = DumpMeta {
            m: self.params.m,
            ef_construction: self.params.ef_construction,
            dimension: self.dimension,
            points: self.indexed.len(),
            tombstones,
        };
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let bytes = serde_json::to_vec(&meta).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, &meta_path).map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FlatIndex;

    fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
                crate::embed::l2_normalize(&mut v);
                v
            })
            .collect()
    }

    #[test]
    fn recall_tombstones_and_dump_round_trip() {
        let dim = 32;
        let vectors = random_unit_vectors(2000, dim, 7);
        let items: Vec<(VectorId, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i as VectorId, v.as_slice()))
            .collect();
        let mut hnsw = HnswIndex::new(dim, HnswParams::default(), 2000).unwrap();
        let mut flat = FlatIndex::new(dim);
        hnsw.add(&items).unwrap();
        flat.add(&items).unwrap();
        assert!(matches!(
            hnsw.add(&items[..1]),
            Err(IndexError::DuplicateId(0))
        ));

        let queries = random_unit_vectors(50, dim, 99);
        let recall = |h: &HnswIndex, f: &FlatIndex| {
            let mut found = 0;
            for q in &queries {
                let truth: HashSet<_> = f.search(q, 10, 0, None).iter().map(|h| h.id).collect();
                found += h
                    .search(q, 10, 64, None)
                    .iter()
                    .filter(|h| truth.contains(&h.id))
                    .count();
            }
            found as f64 / (queries.len() * 10) as f64
        };
        assert!(recall(&hnsw, &flat) > 0.95);

        // Remove the exact top hit of every query: results must skip it and stay k long.
        let doomed: Vec<VectorId> = queries
            .iter()
            .map(|q| flat.search(q, 1, 0, None)[0].id)
            .collect();
        let removed = hnsw.remove(&doomed);
        flat.remove(&doomed);
        assert_eq!(hnsw.len(), flat.len());
        assert_eq!(removed, hnsw.tombstones());
        for q in &queries {
            let hits = hnsw.search(q, 10, 64, None);
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| !doomed.contains(&h.id)));
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
        let even = |id: VectorId| id.is_multiple_of(2);
        let filtered = hnsw.search(&queries[0], 10, 16, Some(&even));
        assert_eq!(filtered.len(), 10);
        assert!(filtered.iter().all(|h| h.id.is_multiple_of(2)));

        let dir = tempfile::tempdir().unwrap();
        hnsw.save(dir.path()).unwrap();
        let loaded = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        assert_eq!(loaded.len(), hnsw.len());
        assert_eq!(loaded.tombstones(), hnsw.tombstones());
        for q in &queries {
            assert_eq!(loaded.search(q, 10, 64, None), hnsw.search(q, 10, 64, None));
        }
        let other = HnswParams {
            m: 8,
            ..HnswParams::default()
        };
        assert!(
            HnswIndex::load(dir.path(), dim, other).is_none(),
            "other params: rebuild"
        );
        std::fs::write(dir.path().join("hnsw.hnsw.graph"), b"garbage").unwrap();
        assert!(HnswIndex::load(dir.path(), dim, HnswParams::default()).is_none());
    }

    #[test]
    fn invalid_params_and_empty_index() {
        assert!(
            HnswIndex::new(
                4,
                HnswParams {
                    m: 300,
                    ..HnswParams::default()
                },
                10
            )
            .is_err()
        );
        let empty = HnswIndex::new(4, HnswParams::default(), 10).unwrap();
        assert!(empty.search(&[1.0, 0.0, 0.0, 0.0], 5, 10, None).is_empty());
        let dir = tempfile::tempdir().unwrap();
        empty.save(dir.path()).unwrap();
        assert!(HnswIndex::load(dir.path(), 4, HnswParams::default()).is_none());
    }
}
