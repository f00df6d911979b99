//! Approximate search: hnsw_rs over unit vectors with dot-product distance.
//!
//! The graph owns the only in-memory copy of each vector: exact queries (small corpora,
//! selective filters, `exact: true`) score the graph's own points instead of a second matrix.
//! hnsw_rs cannot delete, so removed vectors become tombstones: filtered out of every search
//! (which still returns `k` results) until the owner rebuilds the graph without them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{DistDot, Hnsw, Point};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dump::{self, DumpError};
use super::{
    Filter, Hit, IndexError, Result, SearchParams, VectorId, VectorIndex, check_new, check_query,
    dot, rank, top_k,
};

/// hnsw_rs only dumps graphs built with its maximum layer count.
const MAX_LAYERS: usize = 16;
/// Base name of the dump files.
const BASENAME: &str = "hnsw";
/// The meta file naming the current dump.
const META_FILE: &str = "hnsw.meta.json";
/// The library whose file format the dump is in; a dump by another version is rebuilt.
const DUMP_WRITER: &str = "hnsw_rs 0.3.5";
/// Below this many vectors, inserting in parallel costs more than it saves.
const PARALLEL_INSERT_FROM: usize = 64;
/// Below this many points an exact search runs on one thread.
const PARALLEL_EXACT_FROM: usize = 16_384;

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

/// What a dump records besides hnsw_rs's own files.
#[derive(Debug, Serialize, Deserialize)]
struct DumpMeta {
    writer: String,
    /// The hnsw_rs base name of the files (hnsw_rs may pick another than asked).
    basename: String,
    m: usize,
    ef_construction: usize,
    dimension: usize,
    points: usize,
    generation: u64,
    tombstones: Vec<VectorId>,
}

/// Why [`HnswIndex::load`] returned no graph.
#[derive(Debug)]
pub enum LoadMiss {
    /// No dump was ever written here (or the index held nothing).
    Absent,
    /// A dump exists but cannot be used (damaged, another format, other parameters); the
    /// reason is for the log.
    Unusable(String),
}

/// An HNSW graph with tombstones for deleted vectors.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, DistDot>,
    params: HnswParams,
    dimension: usize,
    indexed: HashSet<VectorId>,
    tombstones: HashSet<VectorId>,
    generation: u64,
    /// The graph's points in one array, built on the first exact query after an insert.
    table: OnceLock<PointTable>,
}

/// Every point of the graph in one array, with an id → position map: exact scans run over a
/// plain slice (in parallel), and selective filters look their few ids up directly, instead
/// of walking hnsw_rs's per-layer lists, whose iterator clones an `Arc` per point. It shares
/// the points (about 32 bytes per vector), never copies a vector.
struct PointTable {
    /// Keeps every point (and so its vector) alive while the table lives.
    _points: Vec<Arc<Point<'static, f32>>>,
    /// Each point's id and the address of its vector, in `points` order: a scan reads this
    /// array and the vectors, without a hop through each `Point`.
    vectors: Vec<(VectorId, VectorPtr)>,
    by_id: HashMap<VectorId, usize>,
}

/// The start of a vector owned by a point of the table.
#[derive(Clone, Copy)]
struct VectorPtr(*const f32);

// SAFETY: the pointee is immutable f32 data owned by an `Arc<Point>` held in the same table.
unsafe impl Send for VectorPtr {}
// SAFETY: as above; shared reads of immutable data.
unsafe impl Sync for VectorPtr {}

impl PointTable {
    /// The vector at position `at`.
    fn vector(&self, at: usize, dimension: usize) -> &[f32] {
        // SAFETY: `vectors[at]` points at the `dimension` floats of `_points[at]`'s vector
        // (checked when the table was built), which hnsw_rs never mutates or moves after
        // insertion, and which `_points[at]` keeps alive for as long as `self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.vectors[at].1.0, dimension) }
    }
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
            generation: 0,
            table: OnceLock::new(),
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

    /// Whether `id` is a live vector of the index.
    pub fn contains(&self, id: VectorId) -> bool {
        self.indexed.contains(&id) && !self.tombstones.contains(&id)
    }

    /// The store generation whose vectors the index holds (saved with the dump, so that a
    /// reload knows whether it is current).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that the index now reflects store generation `generation`.
    pub fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// Bytes of the vectors the graph holds (live and tombstoned), without its links.
    pub fn vector_bytes(&self) -> usize {
        self.indexed.len() * self.dimension * std::mem::size_of::<f32>()
    }

    /// Loads the dump written by [`HnswIndex::save`] into `dir` after verifying its files; a
    /// missing, damaged or foreign dump is a [`LoadMiss`] (the caller rebuilds), never a crash.
    pub fn load(
        dir: &Path,
        dimension: usize,
        params: HnswParams,
    ) -> std::result::Result<Self, LoadMiss> {
        let dump = match dump::read::<DumpMeta>(dir, META_FILE) {
            Ok(Some(dump)) => dump,
            Ok(None) => return Err(LoadMiss::Absent),
            Err(e) => return Err(LoadMiss::Unusable(e.to_string())),
        };
        let meta = dump.meta;
        let unusable = |why: String| Err(LoadMiss::Unusable(why));
        if meta.writer != DUMP_WRITER {
            return unusable(format!("written by {}, not {DUMP_WRITER}", meta.writer));
        }
        if meta.m != params.m || meta.ef_construction != params.ef_construction {
            return unusable(format!(
                "built with m {} and ef_construction {}, not {} and {}",
                meta.m, meta.ef_construction, params.m, params.ef_construction
            ));
        }
        if meta.dimension != dimension {
            return unusable(format!("of dimension {}, not {dimension}", meta.dimension));
        }
        if meta.points == 0 {
            return Err(LoadMiss::Absent);
        }
        // hnsw_rs asserts on malformed files; the checksums above make that unlikely, and a
        // panic must still mean "rebuild", not a crash.
        let folder = dump.folder;
        let basename = meta.basename.clone();
        let loaded = std::panic::catch_unwind(move || {
            // The loaded graph borrows its loader for its whole life: give the loader a
            // 'static home. One small struct per load; loads happen once per start.
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&folder, &basename)));
            io.load_hnsw::<f32, DistDot>().map_err(|e| e.to_string())
        });
        let graph = match loaded {
            Ok(Ok(graph)) => graph,
            Ok(Err(e)) => return unusable(format!("hnsw_rs could not read it: {e}")),
            Err(_) => return unusable("hnsw_rs panicked while reading it".into()),
        };
        let indexed: HashSet<VectorId> = graph
            .get_point_indexation()
            .into_iter()
            .map(|p| p.get_origin_id() as VectorId)
            .collect();
        if indexed.len() != meta.points
            || graph.get_point_indexation().get_data_dimension() != dimension
        {
            return unusable(format!(
                "it holds {} points, the meta file says {}",
                indexed.len(),
                meta.points
            ));
        }
        Ok(Self {
            graph,
            params,
            dimension,
            indexed,
            tombstones: meta.tombstones.into_iter().collect(),
            generation: meta.generation,
            table: OnceLock::new(),
        })
    }

    /// Writes the graph to a fresh folder in `dir`, flushed and checksummed, then makes it the
    /// current dump atomically; a crash at any point leaves the previous dump usable.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let fail = |e: DumpError| IndexError::Persist {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        };
        if self.indexed.is_empty() {
            // Nothing to keep: a stale dump of a since-emptied index must not come back.
            return match std::fs::remove_file(dir.join(META_FILE)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(fail(DumpError::Io {
                    path: dir.join(META_FILE),
                    source: e,
                })),
            };
        }
        let mut tombstones: Vec<VectorId> = self.tombstones.iter().copied().collect();
        tombstones.sort_unstable();
        let meta = DumpMeta {
            writer: DUMP_WRITER.into(),
            basename: BASENAME.into(),
            m: self.params.m,
            ef_construction: self.params.ef_construction,
            dimension: self.dimension,
            points: self.indexed.len(),
            generation: self.generation,
            tombstones,
        };
        dump::write(dir, META_FILE, &meta, |folder| {
            // hnsw_rs keeps the base name asked for in a fresh folder, which the dump module
            // guarantees; check rather than trust it.
            let basename = self
                .graph
                .file_dump(folder, BASENAME)
                .map_err(|e| e.to_string())?;
            if basename != BASENAME {
                return Err(format!(
                    "hnsw_rs wrote base name {basename:?}, expected {BASENAME:?}"
                ));
            }
            Ok(())
        })
        .map_err(fail)
    }

    /// Exact top-k among `ids` (ascending or not; unknown and deleted ids are skipped): the
    /// fast path for filters that admit few vectors, costing one lookup and one dot product
    /// per admitted id.
    pub fn search_among(&self, query: &[f32], ids: &[VectorId], k: usize) -> Result<Vec<Hit>> {
        check_query(query, self.dimension)?;
        let table = self.table();
        let score = |id: &VectorId| {
            if self.tombstones.contains(id) {
                return None;
            }
            table.by_id.get(id).map(|&at| Hit {
                id: *id,
                score: dot(query, table.vector(at, self.dimension)),
            })
        };
        let hits: Vec<Hit> = if ids.len() >= PARALLEL_EXACT_FROM {
            ids.par_iter().filter_map(score).collect()
        } else {
            ids.iter().filter_map(score).collect()
        };
        Ok(top_k(hits, k))
    }

    /// The vectors of these ids (unknown and deleted ids skipped), copied out of the graph:
    /// what re-ranking by diversity compares passages with.
    pub fn vectors_of(&self, ids: &[VectorId]) -> Vec<(VectorId, Vec<f32>)> {
        let table = self.table();
        ids.iter()
            .filter(|id| !self.tombstones.contains(id))
            .filter_map(|id| {
                let &at = table.by_id.get(id)?;
                Some((*id, table.vector(at, self.dimension).to_vec()))
            })
            .collect()
    }

    /// Exact top-k: every live point that passes `filter` is scored.
    fn search_exact(&self, query: &[f32], k: usize, filter: Option<Filter<'_>>) -> Vec<Hit> {
        let table = self.table();
        let no_tombstones = self.tombstones.is_empty();
        let score = |at: usize| {
            // The vectors lie wherever hnsw_rs allocated them: fetching a few ahead made the
            // scan 1.25× faster (it runs at about half the speed of a contiguous matrix).
            #[cfg(target_arch = "x86_64")]
            if let Some((_, next)) = table.vectors.get(at + 4) {
                // SAFETY: prefetching is a hint that never faults, whatever the address.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch(next.0.cast::<i8>(), _MM_HINT_T0);
                    _mm_prefetch(next.0.cast::<i8>().add(64), _MM_HINT_T0);
                }
            }
            let id = table.vectors[at].0;
            let keep =
                (no_tombstones || !self.tombstones.contains(&id)) && filter.is_none_or(|f| f(id));
            keep.then(|| Hit {
                id,
                score: dot(query, table.vector(at, self.dimension)),
            })
        };
        let n = table.vectors.len();
        let hits: Vec<Hit> = if n >= PARALLEL_EXACT_FROM {
            (0..n).into_par_iter().filter_map(score).collect()
        } else {
            (0..n).filter_map(score).collect()
        };
        top_k(hits, k)
    }

    /// The point table, built from the graph if an insert invalidated it.
    fn table(&self) -> &PointTable {
        self.table.get_or_init(|| {
            // hnsw_rs's point iterator unwraps the entry point: an empty graph has none.
            let points: Vec<Arc<Point<'static, f32>>> = if self.indexed.is_empty() {
                Vec::new()
            } else {
                self.graph
                    .get_point_indexation()
                    .into_iter()
                    .filter(|p| p.get_v().len() == self.dimension)
                    .collect()
            };
            let vectors = points
                .iter()
                .map(|p| (p.get_origin_id() as VectorId, VectorPtr(p.get_v().as_ptr())))
                .collect::<Vec<_>>();
            let by_id = vectors
                .iter()
                .enumerate()
                .map(|(at, (id, _))| (*id, at))
                .collect();
            PointTable {
                _points: points,
                vectors,
                by_id,
            }
        })
    }
}

impl VectorIndex for HnswIndex {
    fn kind(&self) -> &'static str {
        "hnsw"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()> {
        check_new(items, self.dimension, |id| self.indexed.contains(&id))?;
        let batch: Vec<(&[f32], usize)> = items.iter().map(|(id, v)| (*v, *id as usize)).collect();
        if batch.len() >= PARALLEL_INSERT_FROM {
            self.graph.parallel_insert_slice(&batch);
        } else {
            for item in batch {
                self.graph.insert_slice(item);
            }
        }
        self.indexed.extend(items.iter().map(|(id, _)| *id));
        if !items.is_empty() {
            self.table = OnceLock::new();
        }
        Ok(())
    }

    fn remove(&mut self, ids: &[VectorId]) -> usize {
        ids.iter()
            .filter(|id| self.indexed.contains(id) && self.tombstones.insert(**id))
            .count()
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: SearchParams,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Hit>> {
        check_query(query, self.dimension)?;
        let live = self.len();
        if k == 0 || live == 0 {
            return Ok(Vec::new());
        }
        if params.exact {
            return Ok(self.search_exact(query, k, filter));
        }
        let keep = |id: &usize| {
            let id = *id as VectorId;
            !self.tombstones.contains(&id) && filter.is_none_or(|f| f(id))
        };
        let mut ef = params.ef.max(k);
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
                return Ok(rank(hits, k));
            }
            ef = (ef * 2).min(self.indexed.len());
        }
    }

    fn len(&self) -> usize {
        self.indexed.len() - self.tombstones.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FlatIndex;

    fn approx(ef: usize) -> SearchParams {
        SearchParams { ef, exact: false }
    }

    const EXACT: SearchParams = SearchParams { ef: 0, exact: true };

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
    fn an_empty_index_answers_a_search_among_ids() {
        // Found by schemathesis: a filtered search in a new, empty collection panicked inside
        // hnsw_rs (its point iterator assumes an entry point).
        let index = HnswIndex::new(4, HnswParams::default(), 0).unwrap();
        let query = [0.5, 0.5, 0.5, 0.5];
        assert!(index.search_among(&query, &[1, 2], 3).unwrap().is_empty());
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
                let truth: HashSet<_> = f
                    .search(q, 10, EXACT, None)
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                found += h
                    .search(q, 10, approx(64), None)
                    .unwrap()
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
            .map(|q| flat.search(q, 1, EXACT, None).unwrap()[0].id)
            .collect();
        let removed = hnsw.remove(&doomed);
        flat.remove(&doomed);
        assert_eq!(hnsw.len(), flat.len());
        assert_eq!(removed, hnsw.tombstones());
        for q in &queries {
            let hits = hnsw.search(q, 10, approx(64), None).unwrap();
            assert_eq!(hits.len(), 10);
            // Exact search over the graph's own points agrees with the flat index.
            assert_eq!(
                hnsw.search(q, 10, EXACT, None).unwrap(),
                flat.search(q, 10, EXACT, None).unwrap()
            );
            assert!(hits.iter().all(|h| !doomed.contains(&h.id)));
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
        let even = |id: VectorId| id.is_multiple_of(2);
        let filtered = hnsw
            .search(&queries[0], 10, approx(16), Some(&even))
            .unwrap();
        assert_eq!(filtered.len(), 10);
        assert!(filtered.iter().all(|h| h.id.is_multiple_of(2)));
        let exact_filtered = hnsw.search(&queries[0], 10, EXACT, Some(&even)).unwrap();
        assert_eq!(
            exact_filtered,
            flat.search(&queries[0], 10, EXACT, Some(&even)).unwrap()
        );
        let evens: Vec<VectorId> = (0..2000).step_by(2).chain([5000, doomed[0]]).collect();
        assert_eq!(
            hnsw.search_among(&queries[0], &evens, 10).unwrap(),
            exact_filtered,
            "unknown and deleted ids are skipped"
        );
        assert!(matches!(
            hnsw.search(&queries[0][..5], 10, approx(16), None),
            Err(IndexError::Dimension {
                expected: 32,
                got: 5
            })
        ));

        let dir = tempfile::tempdir().unwrap();
        hnsw.set_generation(41);
        hnsw.save(dir.path()).unwrap();
        let loaded = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        assert_eq!(loaded.len(), hnsw.len());
        assert_eq!(loaded.tombstones(), hnsw.tombstones());
        assert_eq!(loaded.generation(), 41);
        for q in &queries {
            assert_eq!(
                loaded.search(q, 10, approx(64), None).unwrap(),
                hnsw.search(q, 10, approx(64), None).unwrap()
            );
        }
        let other = HnswParams {
            m: 8,
            ..HnswParams::default()
        };
        assert!(
            matches!(
                HnswIndex::load(dir.path(), dim, other),
                Err(LoadMiss::Unusable(_))
            ),
            "other params: rebuild"
        );
        // A damaged data file is refused before hnsw_rs sees it (it would exit the process).
        let data = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .unwrap()
            .join("hnsw.hnsw.data");
        let len = std::fs::metadata(&data).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
        file.set_len(len / 2).unwrap();
        assert!(matches!(
            HnswIndex::load(dir.path(), dim, HnswParams::default()),
            Err(LoadMiss::Unusable(_))
        ));
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
        assert!(
            empty
                .search(&[1.0, 0.0, 0.0, 0.0], 5, approx(10), None)
                .unwrap()
                .is_empty()
        );
        let dir = tempfile::tempdir().unwrap();
        empty.save(dir.path()).unwrap();
        assert!(matches!(
            HnswIndex::load(dir.path(), 4, HnswParams::default()),
            Err(LoadMiss::Absent)
        ));
    }
}
