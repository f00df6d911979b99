//! Approximate search: an HNSW graph in flat arrays, with the vectors added since the last
//! freeze searched exactly beside it.
//!
//! The index has three parts, as segment-based engines do:
//! - the frozen graph ([`FrozenGraph`]): the links in flat arrays and each vector as 8-bit
//!   codes, walked on the codes; its candidates are rescored with the f32 vectors, read from
//!   its segment's file one row at a time (on the heap for a small segment or a graph never
//!   written: [`Rows`]);
//! - the tail: vectors added since the freeze, in f32, every one of them scored per query;
//! - tombstones: removed vectors, never returned, until a compaction rebuilds the graph
//!   without them.
//!
//! A fold ([`HnswIndex::start_fold`], [`FoldJob::run`], [`HnswIndex::finish_fold`]) inserts the
//! tail into a copy of the frozen graph ([`GraphBuilder`], reading the frozen vectors where they
//! lie) and freezes the result into a new segment, off the index's lock: searches and inserts
//! go on meanwhile, and only the swap takes the write lock. On disk (`dir`): `segment/` holds
//! the current segment (the frozen files, checksummed), `state/` the tail, the tombstones and the store
//! generation saved by [`HnswIndex::save`]; opening ([`HnswIndex::load`]) reads the frozen
//! files and leaves a large segment's f32 vectors in their file, so a large index starts in
//! seconds.
//!
//! Locks (parking_lot), in the order they are taken: the owner's lock on the index (a read
//! lock for searches and [`HnswIndex::save`], the write lock for writes and the two ends of a
//! fold), then `segment_writes` (one segment write into a directory at a time, by a save or a
//! fold job, which holds no index lock), then a frozen graph's `home` (held only to read or
//! record where its segment lies, never over other work). A fold job's builder has its own
//! locks (its entry point, then one node's lists at a time), which nothing else sees.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::build::GraphBuilder;
use super::dump::{self, DumpError};
use super::frozen::FrozenGraph;
use super::kernels::dot;
use super::segment::{self, Home, Rows};
use super::{
    Filter, Hit, IndexError, Result, SearchParams, VectorId, VectorIndex, check_new, check_query,
    rank, top_k,
};
use crate::progress::{NoProgress, Progress};

/// Where the current segment lives inside the index directory.
const SEGMENT_DIR: &str = "segment";
/// Where the saved state (tail, tombstones, generation) lives inside the index directory.
const STATE_DIR: &str = "state";
const STATE_META: &str = "state.meta.json";
const TAIL_IDS: &str = "tail.u64";
const TAIL_VECTORS: &str = "tail.f32";
/// The meta file of the layout before frozen graphs (an hnsw_rs dump alone); such an index is
/// rebuilt once.
const LEGACY_META: &str = "hnsw.meta.json";
/// What writes the saved state.
const STATE_WRITER: &str = "semdex index state 1";
/// Vectors inserted per step of a fold (progress moves between steps).
const INSERT_STEP: usize = 2048;
/// Below this many points an exact search runs on one thread.
const PARALLEL_EXACT_FROM: usize = 16_384;
/// A fold is due once the tail holds this many vectors...
const FOLD_FROM: usize = 2048;
/// ... or this share of the frozen graph, whichever is more, up to [`FOLD_AT_MOST`]: each
/// query scores the whole tail, each fold rewrites the whole segment.
const FOLD_SHARE: usize = 64;
const FOLD_AT_MOST: usize = 16_384;
/// Candidates rescored in f32 per result asked for (at least [`RESCORE_AT_LEAST`]): the
/// 8-bit scores rank the true top k within the first few k (benches/README.md).
const RESCORE_PER_RESULT: usize = 4;
const RESCORE_AT_LEAST: usize = 40;

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
    /// Checks the parameters before any graph is built with them.
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

/// Why [`HnswIndex::load`] returned no index.
#[derive(Debug)]
pub enum LoadMiss {
    /// Nothing was ever saved here (or the index held nothing).
    Absent,
    /// Saved files exist but cannot be used (damaged, another format, other parameters); the
    /// reason is for the log.
    Unusable(String),
}

/// A frozen graph with its f32 vectors and, once written, its place on disk.
struct Frozen {
    graph: FrozenGraph,
    rows: Rows,
    /// The segment holding it, once written (behind a lock: [`HnswIndex::save`] records it
    /// through a shared reference).
    home: Mutex<Option<Home>>,
}

impl Frozen {
    /// The f32 vector of `node` (read into `buffer` when the rows are in a file).
    fn row<'a>(&'a self, node: usize, buffer: &'a mut Vec<f32>) -> std::io::Result<&'a [f32]> {
        self.rows.read(self.graph.dimension, node, 1, buffer)
    }
}

/// Vectors in f32 with their ids, in the order added.
#[derive(Debug, Default, Clone)]
struct Vectors {
    ids: Vec<VectorId>,
    data: Vec<f32>,
}

impl Vectors {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn row(&self, at: usize, dimension: usize) -> &[f32] {
        &self.data[at * dimension..(at + 1) * dimension]
    }
}

/// The vectors added since the last freeze, scored exactly.
#[derive(Debug, Default)]
struct Tail {
    vectors: Vectors,
    positions: HashMap<VectorId, usize>,
}

impl Tail {
    fn push(&mut self, id: VectorId, vector: &[f32]) {
        self.positions.insert(id, self.vectors.len());
        self.vectors.ids.push(id);
        self.vectors.data.extend_from_slice(vector);
    }

    /// Drops the first `count` vectors (folded into the graph).
    fn drain_front(&mut self, count: usize, dimension: usize) {
        let count = count.min(self.vectors.len());
        self.vectors.ids.drain(..count);
        self.vectors.data.drain(..count * dimension);
        self.positions = self
            .vectors
            .ids
            .iter()
            .enumerate()
            .map(|(at, id)| (*id, at))
            .collect();
    }
}

/// Distinguishes index instances, so that a fold is only finished on the index it started on.
static LINEAGE: AtomicU64 = AtomicU64::new(1);

/// An HNSW index: a frozen graph, an exactly searched tail and tombstones.
pub struct HnswIndex {
    params: HnswParams,
    dimension: usize,
    frozen: Option<Arc<Frozen>>,
    /// One bit per frozen node: tombstoned.
    deleted: Vec<u64>,
    /// Bits set in `deleted`.
    deleted_count: usize,
    tail: Tail,
    tombstones: HashSet<VectorId>,
    generation: u64,
    lineage: u64,
    /// Serialises segment writes into one directory (a save and a fold).
    segment_writes: Arc<Mutex<()>>,
    /// Segments with more bytes of f32 vectors than this read them from their file
    /// ([`segment::HEAP_ROWS_UP_TO`] unless loaded otherwise).
    rows_on_heap_up_to: u64,
}

/// The ids an index holds, live or tombstoned.
pub struct IndexedIds<'a> {
    frozen: &'a [VectorId],
    tail: &'a [VectorId],
}

impl<'a> IndexedIds<'a> {
    /// Every id, frozen ones first.
    pub fn iter(&self) -> impl Iterator<Item = &'a VectorId> + 'a {
        self.frozen.iter().chain(self.tail.iter())
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.frozen.len() + self.tail.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the saved state records.
#[derive(Debug, Serialize, Deserialize)]
struct StateMeta {
    writer: String,
    dimension: usize,
    m: usize,
    ef_construction: usize,
    /// The segment folder the state goes with (`None`: the index had no frozen graph).
    segment: Option<String>,
    generation: u64,
    tombstones: Vec<VectorId>,
    tail: usize,
}

impl HnswIndex {
    /// An empty index; room is made for `capacity` vectors (a hint: it grows past them).
    pub fn new(dimension: usize, params: HnswParams, capacity: usize) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            dimension,
            frozen: None,
            deleted: Vec::new(),
            deleted_count: 0,
            tail: Tail {
                vectors: Vectors {
                    ids: Vec::with_capacity(capacity),
                    data: Vec::with_capacity(capacity * dimension),
                },
                positions: HashMap::with_capacity(capacity),
            },
            tombstones: HashSet::new(),
            generation: 0,
            lineage: LINEAGE.fetch_add(1, Ordering::Relaxed),
            segment_writes: Arc::new(Mutex::new(())),
            rows_on_heap_up_to: segment::HEAP_ROWS_UP_TO,
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

    /// Vectors held that were removed and are only filtered out.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Ids held, live or tombstoned.
    pub fn indexed_ids(&self) -> IndexedIds<'_> {
        IndexedIds {
            frozen: self.frozen.as_ref().map_or(&[], |f| &f.graph.ids),
            tail: &self.tail.vectors.ids,
        }
    }

    /// Vectors in the frozen graph.
    pub fn frozen_len(&self) -> usize {
        self.frozen.as_ref().map_or(0, |f| f.graph.len())
    }

    /// Vectors added since the last freeze (searched exactly).
    pub fn tail_len(&self) -> usize {
        self.tail.vectors.len()
    }

    fn holds(&self, id: VectorId) -> bool {
        self.tail.positions.contains_key(&id)
            || self
                .frozen
                .as_ref()
                .is_some_and(|f| f.graph.node_of(id).is_some())
    }

    /// Whether `id` is a live vector of the index.
    pub fn contains(&self, id: VectorId) -> bool {
        !self.tombstones.contains(&id) && self.holds(id)
    }

    /// The store generation whose vectors the index holds (saved with it, so that a reload
    /// knows whether it is current).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that the index now reflects store generation `generation`.
    pub fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// Bytes of vector data held in memory: the frozen graph's 8-bit codes, the tail's f32
    /// vectors, and the f32 copy of a graph frozen in memory (a written one maps them).
    pub fn vector_bytes(&self) -> usize {
        self.frozen
            .as_ref()
            .map_or(0, |f| f.graph.codes.len() + f.rows.heap_bytes())
            + self.tail.vectors.data.len() * 4
    }

    /// Bytes the index holds in memory: vector data, links, ids and bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        let frozen = self
            .frozen
            .as_ref()
            .map_or(0, |f| f.graph.memory_bytes() + f.rows.heap_bytes());
        let tail = self.tail.vectors.data.len() * 4 + self.tail.vectors.len() * (8 + 24);
        frozen + tail + self.deleted.len() * 8 + self.tombstones.len() * 16
    }

    /// Whether the tail has grown enough to be folded into the graph.
    pub fn fold_due(&self) -> bool {
        let share = (self.frozen_len() / FOLD_SHARE).min(FOLD_AT_MOST);
        self.tail_len() >= FOLD_FROM.max(share)
    }

    fn is_deleted(&self, node: u32) -> bool {
        self.deleted
            .get(node as usize / 64)
            .is_some_and(|w| w & (1 << (node % 64)) != 0)
    }

    fn mark_deleted(&mut self, node: u32) {
        let word = node as usize / 64;
        if self.deleted.len() <= word {
            self.deleted.resize(word + 1, 0);
        }
        let bit = 1 << (node % 64);
        if self.deleted[word] & bit == 0 {
            self.deleted[word] |= bit;
            self.deleted_count += 1;
        }
    }

    /// Rebuilds the frozen nodes' tombstone bits and drops tombstones of ids no longer held.
    fn reconcile_tombstones(&mut self) {
        self.deleted = vec![0; self.frozen_len().div_ceil(64)];
        self.deleted_count = 0;
        let tombstones = std::mem::take(&mut self.tombstones);
        for id in tombstones {
            let node = self.frozen.as_ref().and_then(|f| f.graph.node_of(id));
            if let Some(node) = node {
                self.mark_deleted(node);
                self.tombstones.insert(id);
            } else if self.tail.positions.contains_key(&id) {
                self.tombstones.insert(id);
            }
        }
    }

    /// Folds the tail into the graph now (all of it, on this thread and rayon's): a freshly
    /// built index is frozen this way. With `home`, the graph is written there as the current
    /// segment and its f32 vectors read from there (see `Rows`); without, all of it stays in
    /// memory.
    /// `progress` counts the vectors inserted.
    pub fn freeze(&mut self, home: Option<&Path>, progress: &dyn Progress) -> Result<()> {
        let homed = self.frozen.as_ref().is_none_or(|f| f.home.lock().is_some());
        if self.tail.vectors.len() == 0 && (home.is_none() || homed) {
            return Ok(());
        }
        // The index is not searched while it is frozen here: the job takes the tail's vectors
        // instead of copying them.
        let mut tail = std::mem::take(&mut self.tail.vectors);
        self.tail.positions.clear();
        let mut keep = tail.ids.iter().map(|id| !self.tombstones.contains(id));
        tail.data.retain({
            let d = self.dimension;
            let mut at = 0usize;
            let mut kept = true;
            move |_| {
                if at.is_multiple_of(d) {
                    kept = keep.next().unwrap_or(false);
                }
                at += 1;
                kept
            }
        });
        tail.ids.retain(|id| !self.tombstones.contains(id));
        let mut job = self.fold_job(tail, 0);
        match job.run_with(home, progress) {
            Ok(folded) => self.finish_fold(folded),
            Err(e) => {
                // Nothing is lost: the tail gets its vectors back, and the next fold starts
                // from the frozen graph again.
                self.tail.vectors = std::mem::take(&mut job.items);
                self.tail.drain_front(0, self.dimension);
                self.reconcile_tombstones();
                Err(e)
            }
        }
    }

    /// Starts folding the tail into the graph: a job holding a copy of the tail's live vectors
    /// and the frozen graph, to be run with no lock held. Searches
    /// are unaffected; vectors added meanwhile stay in the tail.
    pub fn start_fold(&mut self) -> FoldJob {
        let d = self.dimension;
        let mut items = Vectors::default();
        for (at, &id) in self.tail.vectors.ids.iter().enumerate() {
            if !self.tombstones.contains(&id) {
                items.ids.push(id);
                items.data.extend_from_slice(self.tail.vectors.row(at, d));
            }
        }
        let taken = self.tail.vectors.len();
        self.fold_job(items, taken)
    }

    fn fold_job(&mut self, items: Vectors, taken: usize) -> FoldJob {
        let base = self.frozen.clone();
        let mut tombstones: Vec<VectorId> = self.tombstones.iter().copied().collect();
        tombstones.sort_unstable();
        FoldJob {
            params: self.params,
            dimension: self.dimension,
            base,
            items,
            taken,
            generation: self.generation,
            tombstones,
            lineage: self.lineage,
            segment_writes: self.segment_writes.clone(),
            rows_on_heap_up_to: self.rows_on_heap_up_to,
        }
    }

    /// Swaps in the graph a [`FoldJob`] made: the tail loses the vectors folded in (those
    /// added since the job started stay), tombstones carry over.
    pub fn finish_fold(&mut self, folded: Folded) -> Result<()> {
        if folded.lineage != self.lineage || folded.taken > self.tail.vectors.len() {
            return Err(IndexError::Params(
                "a fold finished on another index than it started on".into(),
            ));
        }
        self.frozen = Some(Arc::new(folded.frozen));
        self.tail.drain_front(folded.taken, self.dimension);
        self.reconcile_tombstones();
        Ok(())
    }

    /// Opens the index saved by [`HnswIndex::save`] into `dir`: the frozen graph's files are
    /// verified and read, its f32 vectors left in their file when large (see `Rows`); the
    /// saved tail and tombstones are restored when they go with that graph. A missing, damaged
    /// or foreign save is a [`LoadMiss`] (the caller rebuilds), never a crash.
    pub fn load(
        dir: &Path,
        dimension: usize,
        params: HnswParams,
    ) -> std::result::Result<Self, LoadMiss> {
        Self::load_with_rows_on_heap_up_to(dir, dimension, params, segment::HEAP_ROWS_UP_TO)
    }

    /// [`HnswIndex::load`], with the f32 vectors of its segments (this one and those its folds
    /// write) on the heap only up to `bytes`, read from their file past it: rows on the heap
    /// rescore for free, rows in a file stay out of the resident set.
    pub(crate) fn load_with_rows_on_heap_up_to(
        dir: &Path,
        dimension: usize,
        params: HnswParams,
        bytes: u64,
    ) -> std::result::Result<Self, LoadMiss> {
        let unusable = |why: String| Err(LoadMiss::Unusable(why));
        let opened = match segment::open(&dir.join(SEGMENT_DIR), dimension, params, bytes) {
            Ok(opened) => opened,
            Err(reason) => return unusable(reason),
        };
        let state = match dump::read::<StateMeta>(&dir.join(STATE_DIR), STATE_META) {
            Ok(state) => state,
            Err(e) => {
                // The state is an optimisation: the store holds what it recorded.
                tracing::warn!(error = %e, "ignoring the index's saved tail; the store's changes are caught up instead");
                None
            }
        };
        let mut index = match Self::new(dimension, params, 0) {
            Ok(index) => index,
            Err(e) => return unusable(e.to_string()),
        };
        index.rows_on_heap_up_to = bytes;
        let segment_name = opened.as_ref().map(|o| o.home.name());
        let state = state.filter(|s| {
            s.meta.writer == STATE_WRITER
                && s.meta.segment == segment_name
                && s.meta.dimension == dimension
                && s.meta.m == params.m
                && s.meta.ef_construction == params.ef_construction
        });
        if opened.is_none() && state.is_none() {
            if dir.join(LEGACY_META).exists() {
                return unusable("it was saved in an older layout".into());
            }
            return Err(LoadMiss::Absent);
        }
        if let Some(opened) = opened {
            index.generation = opened.meta.generation;
            index.tombstones = opened.meta.tombstones.iter().copied().collect();
            index.frozen = Some(Arc::new(Frozen {
                graph: opened.frozen,
                rows: opened.rows,
                home: Mutex::new(Some(opened.home)),
            }));
        }
        if let Some(state) = state {
            let n = state.meta.tail;
            let read = |name: &str, bytes: usize| {
                let path = state.folder.join(name);
                let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if data.len() != bytes {
                    return Err(format!("{} is not {bytes} bytes long", path.display()));
                }
                Ok(data)
            };
            let ids = match read(TAIL_IDS, n * 8) {
                Ok(bytes) => bytemuck::pod_collect_to_vec::<u8, u64>(&bytes),
                Err(reason) => return unusable(reason),
            };
            let data = match read(TAIL_VECTORS, n * dimension * 4) {
                Ok(bytes) => bytemuck::pod_collect_to_vec::<u8, f32>(&bytes),
                Err(reason) => return unusable(reason),
            };
            for (at, id) in ids.iter().enumerate() {
                if index.holds(*id) {
                    return unusable(format!("vector {id} is saved twice"));
                }
                index
                    .tail
                    .push(*id, &data[at * dimension..(at + 1) * dimension]);
            }
            index.generation = state.meta.generation;
            index.tombstones = state.meta.tombstones.into_iter().collect();
        }
        index.reconcile_tombstones();
        Ok(index)
    }

    /// Saves the index into `dir` so that [`HnswIndex::load`] restores it: the frozen graph as
    /// a segment unless `dir` already holds it, then the tail, tombstones and generation. Each
    /// part is written to a fresh folder, flushed, checksummed and made current atomically: a
    /// crash at any point leaves the previous save usable, and the store catches up the rest.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let fail = |e: DumpError| IndexError::Persist {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        };
        let _ = std::fs::remove_file(dir.join(LEGACY_META));
        if self.indexed_ids().is_empty() {
            // Nothing to keep: a stale save of a since-emptied index must not come back.
            for meta in [
                dir.join(SEGMENT_DIR).join(segment::SEGMENT_META),
                dir.join(STATE_DIR).join(STATE_META),
            ] {
                match std::fs::remove_file(&meta) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(fail(DumpError::Io {
                            path: meta,
                            source: e,
                        }));
                    }
                }
            }
            return Ok(());
        }
        let segment_name = match &self.frozen {
            Some(frozen) => Some(self.save_segment(frozen, dir)?),
            None => None,
        };
        let mut tombstones: Vec<VectorId> = self.tombstones.iter().copied().collect();
        tombstones.sort_unstable();
        let meta = StateMeta {
            writer: STATE_WRITER.into(),
            dimension: self.dimension,
            m: self.params.m,
            ef_construction: self.params.ef_construction,
            segment: segment_name,
            generation: self.generation,
            tombstones,
            tail: self.tail.vectors.len(),
        };
        dump::write(&dir.join(STATE_DIR), STATE_META, &meta, |folder| {
            let write = |name: &str, bytes: &[u8]| {
                std::fs::write(folder.join(name), bytes).map_err(|e| e.to_string())
            };
            write(TAIL_IDS, bytemuck::cast_slice(&self.tail.vectors.ids))?;
            write(TAIL_VECTORS, bytemuck::cast_slice(&self.tail.vectors.data))
        })
        .map_err(fail)?;
        Ok(())
    }

    /// Writes the frozen graph as the segment of `dir` unless it is already there; returns
    /// the segment's name.
    fn save_segment(&self, frozen: &Frozen, dir: &Path) -> Result<String> {
        let segment_dir = dir.join(SEGMENT_DIR);
        let fail = |reason: String| IndexError::Persist {
            dir: dir.display().to_string(),
            reason,
        };
        let current = frozen.home.lock().clone();
        if let Some(home) = &current
            && home.folder.parent() == Some(segment_dir.as_path())
        {
            return Ok(home.name());
        }
        let _writing = self.segment_writes.lock();
        let tombstones: Vec<VectorId> = {
            let mut t: Vec<VectorId> = self
                .tombstones
                .iter()
                .copied()
                .filter(|id| frozen.graph.node_of(*id).is_some())
                .collect();
            t.sort_unstable();
            t
        };
        let all = frozen.rows.all()?;
        let d = frozen.graph.dimension;
        let row = |node: usize| &all[node * d..(node + 1) * d];
        let home = segment::write(
            &segment_dir,
            self.params,
            &frozen.graph,
            &row,
            self.generation,
            tombstones,
        )
        .map_err(|e| fail(e.to_string()))?;
        let name = home.name();
        if current.is_none() {
            *frozen.home.lock() = Some(home);
        }
        Ok(name)
    }

    /// Exact top-k among `ids` (ascending or not; unknown and deleted ids are skipped): the
    /// fast path for filters that admit few vectors, costing one lookup and one dot product
    /// per admitted id.
    pub fn search_among(&self, query: &[f32], ids: &[VectorId], k: usize) -> Result<Vec<Hit>> {
        check_query(query, self.dimension)?;
        let score = |buffer: &mut Vec<f32>, id: &VectorId| -> Result<Option<Hit>> {
            Ok(self.live_vector(*id, buffer)?.map(|vector| Hit {
                id: *id,
                score: dot(query, vector),
            }))
        };
        let hits: Vec<Option<Hit>> = if ids.len() >= PARALLEL_EXACT_FROM {
            ids.par_iter()
                .map_init(Vec::new, score)
                .collect::<Result<_>>()?
        } else {
            let mut buffer = Vec::new();
            ids.iter()
                .map(|id| score(&mut buffer, id))
                .collect::<Result<_>>()?
        };
        Ok(top_k(hits.into_iter().flatten().collect(), k))
    }

    /// The f32 vector of live `id`, wherever it lies (frozen graph, read into `buffer` when
    /// its rows are in a file, or tail).
    fn live_vector<'a>(
        &'a self,
        id: VectorId,
        buffer: &'a mut Vec<f32>,
    ) -> std::io::Result<Option<&'a [f32]>> {
        if self.tombstones.contains(&id) {
            return Ok(None);
        }
        if let Some(frozen) = &self.frozen
            && let Some(node) = frozen.graph.node_of(id)
        {
            return frozen.row(node as usize, buffer).map(Some);
        }
        Ok(self
            .tail
            .positions
            .get(&id)
            .map(|&at| self.tail.vectors.row(at, self.dimension)))
    }

    /// The vectors of these ids (unknown and deleted ids skipped), copied out of the index:
    /// what re-ranking by diversity compares passages with.
    pub fn vectors_of(&self, ids: &[VectorId]) -> Result<Vec<(VectorId, Vec<f32>)>> {
        let mut buffer = Vec::new();
        let mut vectors = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(vector) = self.live_vector(id, &mut buffer)? {
                vectors.push((id, vector.to_vec()));
            }
        }
        Ok(vectors)
    }

    /// Every live tail vector that passes `filter`, scored exactly.
    fn tail_hits(&self, query: &[f32], filter: Option<Filter<'_>>) -> Vec<Hit> {
        let d = self.dimension;
        let tail = &self.tail.vectors;
        let score = |at: usize| {
            let id = tail.ids[at];
            let keep = !self.tombstones.contains(&id) && filter.is_none_or(|f| f(id));
            keep.then(|| Hit {
                id,
                score: dot(query, tail.row(at, d)),
            })
        };
        if tail.len() >= PARALLEL_EXACT_FROM {
            (0..tail.len()).into_par_iter().filter_map(score).collect()
        } else {
            (0..tail.len()).filter_map(score).collect()
        }
    }

    /// Exact top-k: every live vector that passes `filter` is scored.
    fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Hit>> {
        let mut hits = self.tail_hits(query, filter);
        if let Some(frozen) = &self.frozen {
            let ids = &frozen.graph.ids;
            let d = frozen.graph.dimension;
            // Block by block, so that rows in a file are read a block at a time.
            let score_block = |buffer: &mut Vec<f32>, first: usize| -> Result<Vec<Hit>> {
                let count = segment::SCAN_BLOCK.min(ids.len() - first);
                let keep = |node: usize| {
                    !self.is_deleted(node as u32) && filter.is_none_or(|f| f(ids[node]))
                };
                if !(first..first + count).any(keep) {
                    return Ok(Vec::new());
                }
                let rows = frozen.rows.read(d, first, count, buffer)?;
                Ok((first..first + count)
                    .filter(|&node| keep(node))
                    .map(|node| Hit {
                        id: ids[node],
                        score: dot(query, &rows[(node - first) * d..(node - first + 1) * d]),
                    })
                    .collect())
            };
            let scored: Vec<Vec<Hit>> = if ids.len() >= PARALLEL_EXACT_FROM {
                (0..ids.len())
                    .into_par_iter()
                    .step_by(segment::SCAN_BLOCK)
                    .map_init(Vec::new, score_block)
                    .collect::<Result<_>>()?
            } else {
                let mut buffer = Vec::new();
                (0..ids.len())
                    .step_by(segment::SCAN_BLOCK)
                    .map(|first| score_block(&mut buffer, first))
                    .collect::<Result<_>>()?
            };
            hits.extend(scored.into_iter().flatten());
        }
        Ok(top_k(hits, k))
    }

    /// The frozen graph's best candidates (of `ef` searched) that `filter` admits, the first
    /// `rescore` of them by 8-bit score rescored in f32.
    fn frozen_hits(
        &self,
        frozen: &Frozen,
        query: &[f32],
        ef: usize,
        rescore: usize,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Hit>> {
        let prepared = frozen.graph.prepare(query);
        let ids = &frozen.graph.ids;
        let mut found = if self.deleted_count == 0 && filter.is_none() {
            frozen.graph.search(&prepared, ef, |_| true)
        } else {
            frozen.graph.search(&prepared, ef, |node| {
                !self.is_deleted(node) && filter.is_none_or(|f| f(ids[node as usize]))
            })
        };
        if found.len() > rescore && rescore > 0 {
            found.select_nth_unstable_by(rescore - 1, |a, b| b.cmp(a));
            found.truncate(rescore);
        }
        let d = frozen.graph.dimension;
        let mut hits = Vec::with_capacity(found.len());
        let mut buffer = Vec::new();
        for (i, &(_, node)) in found.iter().enumerate() {
            if let Some(&(_, ahead)) = found.get(i + 1) {
                frozen.rows.prefetch(d, ahead as usize);
            }
            hits.push(Hit {
                id: ids[node as usize],
                score: dot(query, frozen.row(node as usize, &mut buffer)?),
            });
        }
        Ok(hits)
    }
}

/// A fold in progress: see [`HnswIndex::start_fold`].
pub struct FoldJob {
    params: HnswParams,
    dimension: usize,
    /// The graph the vectors go into (`None`: a new one).
    base: Option<Arc<Frozen>>,
    items: Vectors,
    /// Tail vectors (live or not) the fold covers.
    taken: usize,
    generation: u64,
    tombstones: Vec<VectorId>,
    lineage: u64,
    segment_writes: Arc<Mutex<()>>,
    rows_on_heap_up_to: u64,
}

/// The graph a [`FoldJob`] made, for [`HnswIndex::finish_fold`].
pub struct Folded {
    frozen: Frozen,
    taken: usize,
    lineage: u64,
}

impl FoldJob {
    /// Vectors this fold inserts.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it inserts none.
    pub fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    /// Inserts the vectors into a copy of the frozen graph (or a new graph) and freezes it:
    /// into a new segment of `home` (written, then its vectors mapped), or in memory. Slow
    /// (seconds to minutes at a million vectors); takes no lock of the index's.
    pub fn run(mut self, home: Option<&Path>) -> Result<Folded> {
        self.run_with(home, &NoProgress)
    }

    fn run_with(&mut self, home: Option<&Path>, progress: &dyn Progress) -> Result<Folded> {
        let d = self.dimension;
        let base = self.base.take();
        let base_nodes = base.as_ref().map_or(0, |b| b.graph.len());
        // The builder reads the base graph's rows where they lie (mapped, if in a file: a
        // fold reads most of them), for as long as the fold runs.
        let base_rows = base.as_ref().map(|b| b.rows.all()).transpose()?;
        progress.set_total(self.items.len() as u64);
        let mut builder = GraphBuilder::new(
            d,
            self.params.m,
            self.params.ef_construction,
            base.as_ref()
                .zip(base_rows.as_deref())
                .map(|(b, rows)| (&b.graph, rows)),
            &self.items.ids,
            &self.items.data,
        );
        builder.insert_all(INSERT_STEP, |count| progress.advance(count as u64));
        let (flat, nodes) = builder.finish();
        progress.finish();
        let items = &self.items;
        let row = |node: usize| -> &[f32] {
            let at = nodes[node] as usize;
            match &base_rows {
                Some(rows) if at < base_nodes => &rows[at * d..(at + 1) * d],
                _ => items.row(at - base_nodes, d),
            }
        };
        let Some(dir) = home.map(|h| h.join(SEGMENT_DIR)) else {
            let mut rows = Vec::with_capacity(flat.len() * d);
            for node in 0..flat.len() {
                rows.extend_from_slice(row(node));
            }
            return Ok(self.folded(Frozen {
                graph: flat,
                rows: Rows::Owned(rows),
                home: Mutex::new(None),
            }));
        };
        let tombstones: Vec<VectorId> = self
            .tombstones
            .iter()
            .copied()
            .filter(|id| flat.node_of(*id).is_some())
            .collect();
        let fail = |reason: String| IndexError::Persist {
            dir: dir.display().to_string(),
            reason,
        };
        let home = {
            let _writing = self.segment_writes.lock();
            segment::write(&dir, self.params, &flat, &row, self.generation, tombstones)
                .map_err(|e| fail(e.to_string()))?
        };
        drop(base_rows);
        drop(base);
        let rows =
            segment::rows_of(&home, flat.len() * d, self.rows_on_heap_up_to).map_err(fail)?;
        Ok(self.folded(Frozen {
            graph: flat,
            rows,
            home: Mutex::new(Some(home)),
        }))
    }

    fn folded(&self, frozen: Frozen) -> Folded {
        Folded {
            frozen,
            taken: self.taken,
            lineage: self.lineage,
        }
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
        check_new(items, self.dimension, |id| self.holds(id))?;
        for (id, vector) in items {
            self.tail.push(*id, vector);
        }
        Ok(())
    }

    fn remove(&mut self, ids: &[VectorId]) -> usize {
        let mut removed = 0;
        for &id in ids {
            if self.tombstones.contains(&id) {
                continue;
            }
            let node = self.frozen.as_ref().and_then(|f| f.graph.node_of(id));
            if let Some(node) = node {
                self.mark_deleted(node);
            } else if !self.tail.positions.contains_key(&id) {
                continue;
            }
            self.tombstones.insert(id);
            removed += 1;
        }
        removed
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
            return self.search_exact(query, k, filter);
        }
        let tail = self.tail_hits(query, filter);
        let Some(frozen) = &self.frozen else {
            return Ok(top_k(tail, k));
        };
        let n = frozen.graph.len();
        if params.ef >= n {
            // A breadth covering every vector asks for all of them: scored exactly (a walk
            // finds only what the links lead it to).
            return self.search_exact(query, k, filter);
        }
        let rescore = (k * RESCORE_PER_RESULT).max(RESCORE_AT_LEAST);
        let mut ef = params.ef.max(k);
        loop {
            let mut hits = self.frozen_hits(frozen, query, ef, rescore, filter)?;
            // Tombstones and filters can leave fewer than k: widen the search and retry.
            if hits.len() + tail.len() >= k.min(live) || ef >= n {
                hits.extend_from_slice(&tail);
                return Ok(rank(hits, k));
            }
            ef = (ef * 2).min(n);
        }
    }

    fn len(&self) -> usize {
        self.indexed_ids().len() - self.tombstones.len()
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
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

    fn items(vectors: &[Vec<f32>], first_id: u64) -> Vec<(VectorId, &[f32])> {
        vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (first_id + i as VectorId, v.as_slice()))
            .collect()
    }

    /// Runs a fold as the backend does: started, run off the lock, finished.
    fn fold(index: &mut HnswIndex, home: Option<&Path>) {
        let job = index.start_fold();
        let folded = job.run(home).unwrap();
        index.finish_fold(folded).unwrap();
    }

    #[test]
    fn an_empty_index_answers_every_search() {
        // Found by schemathesis: a filtered search in a new, empty collection panicked inside
        // hnsw_rs (its point iterator assumes an entry point).
        let mut index = HnswIndex::new(4, HnswParams::default(), 0).unwrap();
        let query = [0.5, 0.5, 0.5, 0.5];
        assert!(index.search_among(&query, &[1, 2], 3).unwrap().is_empty());
        index.freeze(None, &NoProgress).unwrap();
        assert!(index.search(&query, 3, approx(8), None).unwrap().is_empty());
        assert!(index.search(&query, 3, EXACT, None).unwrap().is_empty());
    }

    #[test]
    fn the_frozen_search_equals_brute_force_when_ef_covers_every_vector() {
        for (seed, n, dim) in [(1, 150, 16), (2, 220, 24), (3, 90, 8), (4, 300, 48)] {
            let vectors = random_unit_vectors(n, dim, seed);
            let mut index = HnswIndex::new(dim, HnswParams::default(), n).unwrap();
            let mut flat = FlatIndex::new(dim);
            // Ids with gaps and out of order, as chunk ids after deletes can be.
            let items: Vec<(VectorId, &[f32])> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (((i * 7919) % n) as VectorId * 3 + 5, v.as_slice()))
                .collect();
            index.add(&items).unwrap();
            flat.add(&items).unwrap();
            index.freeze(None, &NoProgress).unwrap();
            assert_eq!(index.frozen_len(), n);
            assert_eq!(index.tail_len(), 0);
            for q in &random_unit_vectors(20, dim, seed + 100) {
                for k in [1, 10, n] {
                    assert_eq!(
                        index.search(q, k, approx(n), None).unwrap(),
                        flat.search(q, k, EXACT, None).unwrap(),
                        "seed {seed}, k {k}"
                    );
                }
                let odd = |id: VectorId| id % 2 == 1;
                assert_eq!(
                    index.search(q, 10, approx(n), Some(&odd)).unwrap(),
                    flat.search(q, 10, EXACT, Some(&odd)).unwrap()
                );
                assert_eq!(
                    index.search(q, 10, EXACT, None).unwrap(),
                    flat.search(q, 10, EXACT, None).unwrap()
                );
            }
        }
    }

    #[test]
    fn a_freeze_that_cannot_be_written_keeps_every_vector_once() {
        let vectors = random_unit_vectors(300, 16, 5);
        for first_graph_in_memory in [false, true] {
            let mut index = HnswIndex::new(16, HnswParams::default(), 300).unwrap();
            index.add(&items(&vectors[..100], 0)).unwrap();
            if first_graph_in_memory {
                index.freeze(None, &NoProgress).unwrap();
            }
            index.add(&items(&vectors[100..], 100)).unwrap();
            // A home that is a file: the segment cannot be written there.
            let file = tempfile::NamedTempFile::new().unwrap();
            assert!(index.freeze(Some(file.path()), &NoProgress).is_err());
            assert_eq!(index.len(), 300);
            index.freeze(None, &NoProgress).unwrap();
            assert_eq!(
                (index.len(), index.frozen_len(), index.tail_len()),
                (300, 300, 0)
            );
            for (id, v) in items(&vectors, 0) {
                let hits = index.search(v, 2, approx(64), None).unwrap();
                assert_eq!(hits[0].id, id);
                assert_ne!(hits[1].id, id, "vector {id} is in the graph twice");
            }
        }
    }

    #[test]
    fn tombstones_never_come_back_across_freezes_folds_and_saves() {
        let dim = 32;
        let first = random_unit_vectors(1500, dim, 7);
        let second = random_unit_vectors(700, dim, 8);
        let queries = random_unit_vectors(40, dim, 9);
        let mut index = HnswIndex::new(dim, HnswParams::default(), 1500).unwrap();
        let mut flat = FlatIndex::new(dim);
        index.add(&items(&first, 0)).unwrap();
        flat.add(&items(&first, 0)).unwrap();
        assert!(matches!(
            index.add(&items(&first, 0)[..1]),
            Err(IndexError::DuplicateId(0))
        ));
        index.freeze(None, &NoProgress).unwrap();

        // Each query's exact best vector goes: from the frozen graph here, from the tail later.
        let doomed: Vec<VectorId> = queries
            .iter()
            .map(|q| flat.search(q, 1, EXACT, None).unwrap()[0].id)
            .collect();
        assert_eq!(index.remove(&doomed), flat.remove(&doomed));
        index.add(&items(&second, 10_000)).unwrap();
        flat.add(&items(&second, 10_000)).unwrap();
        assert!(
            matches!(
                index.add(&items(&second, 10_000)[..1]),
                Err(IndexError::DuplicateId(10_000))
            ),
            "the tail's ids are known too"
        );
        let mut gone: HashSet<VectorId> = doomed.iter().copied().collect();
        let tail_doomed: Vec<VectorId> = (10_000..10_700).step_by(3).collect();
        index.remove(&tail_doomed);
        flat.remove(&tail_doomed);
        gone.extend(&tail_doomed);

        let check = |index: &HnswIndex, flat: &FlatIndex, gone: &HashSet<VectorId>, when: &str| {
            assert_eq!(index.len(), flat.len(), "{when}");
            for q in &queries {
                let hits = index.search(q, 10, approx(64), None).unwrap();
                assert_eq!(hits.len(), 10, "{when}");
                assert!(hits.iter().all(|h| !gone.contains(&h.id)), "{when}");
                assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                assert_eq!(
                    index.search(q, 10, EXACT, None).unwrap(),
                    flat.search(q, 10, EXACT, None).unwrap(),
                    "{when}"
                );
                let even = |id: VectorId| id.is_multiple_of(2);
                let filtered = index.search(q, 10, approx(16), Some(&even)).unwrap();
                assert_eq!(filtered.len(), 10);
                assert!(
                    filtered
                        .iter()
                        .all(|h| h.id % 2 == 0 && !gone.contains(&h.id))
                );
                let among: Vec<VectorId> = (0..1500)
                    .chain(10_000..10_700)
                    .chain(20_000..20_002)
                    .collect();
                assert_eq!(
                    index.search_among(q, &among, 10).unwrap(),
                    flat.search(q, 10, EXACT, None).unwrap(),
                    "{when}: deleted ids are skipped"
                );
            }
            // Recall stays high through every stage.
            let mut found = 0;
            for q in &queries {
                let truth: HashSet<VectorId> = flat
                    .search(q, 10, EXACT, None)
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                found += index
                    .search(q, 10, approx(64), None)
                    .unwrap()
                    .iter()
                    .filter(|h| truth.contains(&h.id))
                    .count();
            }
            assert!(found as f64 / (queries.len() * 10) as f64 > 0.95, "{when}");
        };
        check(&index, &flat, &gone, "frozen graph and tail");

        // A fold started before more deletes and finished after them keeps them deleted.
        let job = index.start_fold();
        assert_eq!(job.len(), 700 - tail_doomed.len());
        let late: Vec<VectorId> = vec![10_001, 10_002, doomed[0], 5];
        index.remove(&late);
        flat.remove(&late);
        gone.extend(&late);
        index.add(&items(&queries[..2], 20_000)).unwrap();
        flat.add(&items(&queries[..2], 20_000)).unwrap();
        let folded = job.run(None).unwrap();
        index.finish_fold(folded).unwrap();
        assert_eq!(
            index.tail_len(),
            2,
            "what came during the fold stays in the tail"
        );
        assert_eq!(index.frozen_len(), 1500 + 700 - tail_doomed.len());
        check(&index, &flat, &gone, "after a fold");

        let dir = tempfile::tempdir().unwrap();
        index.set_generation(41);
        index.save(dir.path()).unwrap();
        let loaded = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        assert_eq!(loaded.generation(), 41);
        assert_eq!(loaded.tombstones(), index.tombstones());
        assert_eq!(loaded.tail_len(), 2);
        check(&loaded, &flat, &gone, "reloaded");
        for q in &queries {
            assert_eq!(
                loaded.search(q, 10, approx(64), None).unwrap(),
                index.search(q, 10, approx(64), None).unwrap()
            );
        }
        // Folding the reloaded index grows the graph read from the segment's files.
        let mut loaded = loaded;
        fold(&mut loaded, Some(dir.path()));
        assert_eq!(loaded.tail_len(), 0);
        check(&loaded, &flat, &gone, "folded from the dump");
        loaded.save(dir.path()).unwrap();
        let again = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        check(&again, &flat, &gone, "reloaded after a fold on disk");

        assert!(matches!(
            index.search(&queries[0][..5], 10, approx(16), None),
            Err(IndexError::Dimension {
                expected: 32,
                got: 5
            })
        ));
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
    }

    #[test]
    fn searches_and_writes_go_on_while_folds_run() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};

        let dim = 16;
        let vectors = random_unit_vectors(3000, dim, 21);
        let index = Arc::new(parking_lot::RwLock::new(
            HnswIndex::new(dim, HnswParams::default(), 3000).unwrap(),
        ));
        index.write().add(&items(&vectors[..1000], 0)).unwrap();
        index.write().freeze(None, &NoProgress).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let removed: Arc<Mutex<HashSet<VectorId>>> = Arc::default();
        let deadline = Instant::now() + Duration::from_secs(120);
        // A writer adds the rest and removes every seventh vector, step by step, as the
        // backend does per document; two readers search all along and never see a removed one.
        let writer = {
            let (index, removed, vectors) = (index.clone(), removed.clone(), vectors.clone());
            std::thread::spawn(move || {
                for (step, chunk) in vectors[1000..].chunks(50).enumerate() {
                    let first = 1000 + step as VectorId * 50;
                    let mut ix = index.write();
                    ix.add(&items(chunk, first)).unwrap();
                    let gone: Vec<VectorId> =
                        (first..first + 50).filter(|id| id % 7 == 0).collect();
                    removed.lock().extend(&gone);
                    ix.remove(&gone);
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (index, removed, stop) = (index.clone(), removed.clone(), stop.clone());
                let queries = random_unit_vectors(20, dim, 30 + r);
                std::thread::spawn(move || {
                    let mut searches = 0;
                    while !stop.load(Ordering::Relaxed) {
                        for q in &queries {
                            let ix = index.read();
                            let hits = ix.search(q, 10, approx(32), None).unwrap();
                            let gone = removed.lock();
                            assert!(hits.iter().all(|h| !gone.contains(&h.id)));
                            assert_eq!(hits.len(), 10.min(ix.len()));
                            searches += 1;
                        }
                    }
                    searches
                })
            })
            .collect();
        let mut folds = 0;
        while !writer.is_finished() || index.read().tail_len() > 0 {
            assert!(
                Instant::now() < deadline,
                "folds and writes did not finish in time"
            );
            let job = index.write().start_fold();
            let folded = job.run(None).unwrap();
            index.write().finish_fold(folded).unwrap();
            folds += 1;
        }
        writer.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
        assert!(folds >= 1);
        let ix = index.read();
        let gone = removed.lock();
        assert_eq!(ix.len(), 3000 - gone.len());
        // Every vector was removed while still in the tail: none was folded into the graph.
        assert_eq!(ix.frozen_len() + ix.tail_len(), 3000 - gone.len());
        assert_eq!(ix.tombstones(), 0);
        let mut found = 0;
        for (id, v) in items(&vectors, 0) {
            assert_eq!(ix.contains(id), !gone.contains(&id));
            let hit = ix.search(v, 1, approx(64), None).unwrap()[0];
            assert!(!gone.contains(&hit.id));
            found += usize::from(hit.id == id);
        }
        assert!(
            found as f64 >= 0.99 * ix.len() as f64,
            "{found} live vectors found by themselves"
        );
    }

    /// The folder of the current segment in an index directory.
    fn segment_folder(dir: &Path) -> std::path::PathBuf {
        std::fs::read_dir(dir.join(SEGMENT_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .expect("a segment folder")
    }

    #[test]
    fn a_damaged_or_truncated_segment_is_refused() {
        let dim = 16;
        let vectors = random_unit_vectors(600, dim, 11);
        let queries = random_unit_vectors(10, dim, 12);
        let dir = tempfile::tempdir().unwrap();
        let mut index = HnswIndex::new(dim, HnswParams::default(), 600).unwrap();
        index.add(&items(&vectors[..500], 0)).unwrap();
        index.freeze(Some(dir.path()), &NoProgress).unwrap();
        index.add(&items(&vectors[500..], 500)).unwrap();
        index.save(dir.path()).unwrap();
        let expected: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| index.search(q, 10, approx(64), None).unwrap())
            .collect();
        let folder = segment_folder(dir.path());
        for (file, cut) in [
            ("codes.u8", true),
            ("vectors.f32", true),
            ("links0.u32", false),
            ("ids.u64", false),
        ] {
            let path = folder.join(file);
            let intact = std::fs::read(&path).unwrap();
            let mut damaged = intact.clone();
            if cut {
                damaged.truncate(intact.len() / 2);
            } else {
                damaged[intact.len() / 2] ^= 0x5a;
            }
            std::fs::write(&path, &damaged).unwrap();
            match HnswIndex::load(dir.path(), dim, HnswParams::default()) {
                Err(LoadMiss::Unusable(reason)) => assert!(reason.contains(file), "{reason}"),
                Err(other) => panic!("{file}: {other:?}"),
                Ok(_) => panic!("{file} damaged, yet loaded"),
            }
            std::fs::write(&path, &intact).unwrap();
        }
        // A damaged saved tail costs only the tail: the segment loads at its own generation,
        // for the caller to catch up with the store.
        let state_folder = std::fs::read_dir(dir.path().join(STATE_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .unwrap();
        let tail = state_folder.join(TAIL_VECTORS);
        let intact_tail = std::fs::read(&tail).unwrap();
        std::fs::write(&tail, &intact_tail[..10]).unwrap();
        let partial = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        assert_eq!(partial.frozen_len(), 500);
        assert_eq!(partial.tail_len(), 0);
        std::fs::write(&tail, &intact_tail).unwrap();

        // The intact segment loads again, and a fold grows it from its mapped vectors.
        let mut loaded = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            assert_eq!(&loaded.search(q, 10, approx(64), None).unwrap(), want);
        }
        fold(&mut loaded, Some(dir.path()));
        assert_eq!(loaded.frozen_len(), 600);
        let flat = {
            let mut flat = FlatIndex::new(dim);
            flat.add(&items(&vectors, 0)).unwrap();
            flat
        };
        for q in &queries {
            assert_eq!(
                loaded.search(q, 10, approx(600), None).unwrap(),
                flat.search(q, 10, EXACT, None).unwrap()
            );
        }
    }

    #[test]
    fn rows_read_from_the_segment_file_answer_as_rows_on_the_heap() {
        // Past PARALLEL_EXACT_FROM, so that exact scans read blocks on rayon's threads too.
        let (dim, n) = (8, PARALLEL_EXACT_FROM + 700);
        let vectors = random_unit_vectors(n + 300, dim, 41);
        let queries = random_unit_vectors(12, dim, 42);
        let dir = tempfile::tempdir().unwrap();
        let mut built = HnswIndex::new(dim, HnswParams::default(), n).unwrap();
        built.add(&items(&vectors[..n], 0)).unwrap();
        built.freeze(Some(dir.path()), &NoProgress).unwrap();
        built.remove(&[3, 4096, 9000]);
        built.save(dir.path()).unwrap();
        let params = HnswParams::default();
        let on_heap = HnswIndex::load(dir.path(), dim, params).unwrap();
        let mut in_file =
            HnswIndex::load_with_rows_on_heap_up_to(dir.path(), dim, params, 0).unwrap();
        assert!(matches!(
            on_heap.frozen.as_ref().unwrap().rows,
            Rows::Owned(_)
        ));
        assert!(matches!(
            in_file.frozen.as_ref().unwrap().rows,
            Rows::File(_)
        ));
        assert_eq!(in_file.vector_bytes(), n * dim, "only the codes are held");

        let odd = |id: VectorId| id % 2 == 1;
        let among: Vec<VectorId> = (0..n as VectorId).step_by(3).collect();
        let answers = |index: &HnswIndex| {
            let mut all = Vec::new();
            for q in &queries {
                all.push(index.search(q, 10, approx(64), None).unwrap());
                all.push(index.search(q, 10, approx(64), Some(&odd)).unwrap());
                all.push(index.search(q, 10, EXACT, Some(&odd)).unwrap());
                all.push(index.search_among(q, &among, 10).unwrap());
            }
            (all, index.vectors_of(&[0, 3, 77, 9000, 12_000]).unwrap())
        };
        let expected = answers(&on_heap);
        assert_eq!(answers(&in_file), expected);
        assert_eq!(expected.1.len(), 3, "deleted ids have no vector");
        let mut flat = FlatIndex::new(dim);
        flat.add(&items(&vectors[..n], 0)).unwrap();
        flat.remove(&[3, 4096, 9000]);
        assert_eq!(
            in_file.search(&queries[0], 10, EXACT, None).unwrap(),
            flat.search(&queries[0], 10, EXACT, None).unwrap()
        );

        // A fold grows the graph from the rows in the file, and its new segment's rows are
        // in a file again; a save elsewhere copies them.
        in_file.add(&items(&vectors[n..], n as VectorId)).unwrap();
        fold(&mut in_file, Some(dir.path()));
        assert!(matches!(
            in_file.frozen.as_ref().unwrap().rows,
            Rows::File(_)
        ));
        flat.add(&items(&vectors[n..], n as VectorId)).unwrap();
        let other = tempfile::tempdir().unwrap();
        in_file.save(other.path()).unwrap();
        let copied = HnswIndex::load(other.path(), dim, params).unwrap();
        for q in &queries {
            let want = flat.search(q, 10, EXACT, None).unwrap();
            assert_eq!(in_file.search(q, 10, EXACT, None).unwrap(), want);
            assert_eq!(copied.search(q, 10, EXACT, None).unwrap(), want);
        }

        // A file cut short under a running index is an error to the search, not a crash
        // (a map would have killed the process with SIGBUS).
        let home = in_file.frozen.as_ref().unwrap().home.lock().clone();
        let vectors_file = home.unwrap().folder.join("vectors.f32");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&vectors_file)
            .unwrap();
        file.set_len(0).unwrap();
        assert!(matches!(
            in_file.search(&queries[0], 10, approx(64), None),
            Err(IndexError::Rows(_))
        ));
        assert!(in_file.search(&queries[0], 10, EXACT, None).is_err());
    }

    #[test]
    fn a_segment_of_the_hnsw_rs_builds_opens_as_it_is() {
        // Segments written while hnsw_rs built the graph have the same frozen files, plus
        // hnsw_rs's dump, which is never read (so never checksummed): they open and fold
        // without a rebuild.
        let dim = 16;
        let vectors = random_unit_vectors(300, dim, 31);
        let dir = tempfile::tempdir().unwrap();
        let mut index = HnswIndex::new(dim, HnswParams::default(), 300).unwrap();
        index.add(&items(&vectors[..200], 0)).unwrap();
        index.freeze(Some(dir.path()), &NoProgress).unwrap();
        let meta_path = dir.path().join(SEGMENT_DIR).join(segment::SEGMENT_META);
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        meta["meta"]["writer"] = "semdex frozen graph 1, hnsw_rs 0.3.5 with UnitDot".into();
        meta["meta"]["graph_dump"] = true.into();
        for name in ["hnsw.hnsw.graph", "hnsw.hnsw.data"] {
            std::fs::write(segment_folder(dir.path()).join(name), b"not read").unwrap();
            meta["files"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "name": name, "bytes": 1, "sha256": "00"
                }));
        }
        std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
        let mut loaded = HnswIndex::load(dir.path(), dim, HnswParams::default()).unwrap();
        assert_eq!(loaded.frozen_len(), 200);
        loaded.add(&items(&vectors[200..], 200)).unwrap();
        fold(&mut loaded, Some(dir.path()));
        assert_eq!(loaded.frozen_len(), 300);
        let mut flat = FlatIndex::new(dim);
        flat.add(&items(&vectors, 0)).unwrap();
        for q in &vectors[..20] {
            assert_eq!(
                loaded.search(q, 10, approx(300), None).unwrap(),
                flat.search(q, 10, EXACT, None).unwrap()
            );
        }
        // Another writer's segment is refused (and rebuilt by the caller).
        meta["meta"]["writer"] = "some other writer".into();
        let folder = segment_folder(dir.path());
        let meta_path = folder.parent().unwrap().join(segment::SEGMENT_META);
        let mut current: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        current["meta"]["writer"] = "some other writer".into();
        std::fs::write(&meta_path, serde_json::to_vec(&current).unwrap()).unwrap();
        assert!(matches!(
            HnswIndex::load(dir.path(), dim, HnswParams::default()),
            Err(LoadMiss::Unusable(_))
        ));
    }

    #[test]
    fn invalid_params_and_an_emptied_index() {
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
        let dir = tempfile::tempdir().unwrap();
        let mut index = HnswIndex::new(4, HnswParams::default(), 10).unwrap();
        index.add(&[(1, &[1.0, 0.0, 0.0, 0.0][..])]).unwrap();
        index.freeze(Some(dir.path()), &NoProgress).unwrap();
        index.save(dir.path()).unwrap();
        assert!(HnswIndex::load(dir.path(), 4, HnswParams::default()).is_ok());
        let empty = HnswIndex::new(4, HnswParams::default(), 10).unwrap();
        empty.save(dir.path()).unwrap();
        assert!(matches!(
            HnswIndex::load(dir.path(), 4, HnswParams::default()),
            Err(LoadMiss::Absent)
        ));
        std::fs::write(dir.path().join(LEGACY_META), b"{}").unwrap();
        assert!(matches!(
            HnswIndex::load(dir.path(), 4, HnswParams::default()),
            Err(LoadMiss::Unusable(_))
        ));
    }
}
