//! The frozen graph: a flat, read-only HNSW graph laid out for searching, and its persisted
//! form (a segment's files are its arrays).
//!
//! The builder ([`super::build`]) makes it. It keeps the links in plain arrays — layer 0 in
//! one contiguous `u32` array with a fixed stride, as hnswlib does — numbers nodes by
//! ascending vector id, holds each vector as 8-bit codes ([`ScalarQuantizer`]), marks visited
//! nodes in a reusable epoch-stamped array, and prefetches a node's neighbours before scoring
//! them. The few candidates it returns are rescored in f32 by the caller.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::VectorId;
use super::kernels::{CodeScore, Dispatched, prefetch};
use super::quant::{QuantizedQuery, ScalarQuantizer};
use super::visited::Visited;

/// Marks a node without upper layers in [`FrozenGraph::upper_at`].
const NO_UPPER: u32 = u32::MAX;

/// The links and codes of a frozen graph.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenGraph {
    pub(crate) dimension: usize,
    /// Vector ids in ascending order; a node's number is its position here.
    pub(crate) ids: Vec<VectorId>,
    /// Each node's top layer.
    pub(crate) levels: Vec<u8>,
    /// Layer 0: per node, a count and then up to `stride0 - 1` neighbours.
    pub(crate) links0: Vec<u32>,
    pub(crate) stride0: usize,
    /// Where a node's upper layers start in `upper` ([`NO_UPPER`]: it has none). Each layer
    /// takes `stride_up` entries: a count and up to `stride_up - 1` neighbours.
    pub(crate) upper_at: Vec<u32>,
    pub(crate) upper: Vec<u32>,
    pub(crate) stride_up: usize,
    /// Where every search starts: a node of the top layer.
    pub(crate) entry: u32,
    pub(crate) max_level: u8,
    pub(crate) quantizer: ScalarQuantizer,
    /// `dimension` codes per node.
    pub(crate) codes: Vec<u8>,
}

/// Reusable per-thread search state: a visited mark per node (the epoch of the search that
/// last saw it, so starting a search costs nothing) and the two heaps.
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<(i32, u32)>,
    results: BinaryHeap<Reverse<(i32, u32)>>,
    fresh: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            visited: Visited::new(),
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            fresh: Vec::new(),
        })
    };
}

impl Scratch {
    /// Starts a search over `n` nodes: nothing is visited.
    fn begin(&mut self, n: usize) {
        self.visited.begin(n);
        self.candidates.clear();
        self.results.clear();
    }
}

/// Why a graph read from disk cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("frozen graph: {0}")]
pub struct Malformed(pub String);

impl FrozenGraph {
    /// Checks that every link, level and offset lies in bounds and that ids ascend: what the
    /// search relies on. Files that passed their checksums pass this too unless written by a
    /// faulty build; it runs once per load (a few milliseconds per million nodes).
    pub fn validate(&self) -> Result<(), Malformed> {
        let n = self.ids.len();
        let bad = |what: &str| Err(Malformed(what.to_string()));
        if self.levels.len() != n
            || self.upper_at.len() != n
            || self.links0.len() != n * self.stride0
            || self.codes.len() != n * self.dimension
            || self.quantizer.dimension() != self.dimension
        {
            return bad("array lengths disagree");
        }
        if self.stride0 == 0 || self.stride_up == 0 {
            return bad("zero stride");
        }
        if n > 0 && (self.entry as usize >= n || self.levels[self.entry as usize] != self.max_level)
        {
            return bad("entry point");
        }
        if !self.ids.windows(2).all(|w| w[0] < w[1]) {
            return bad("ids not ascending");
        }
        if n >= u32::MAX as usize {
            return bad("too many nodes");
        }
        let lists_ok = |lists: &[u32], stride: usize| {
            lists.par_chunks(stride).all(|list| {
                let count = list[0] as usize;
                count < stride && list[1..=count].iter().all(|&nb| (nb as usize) < n)
            })
        };
        if !lists_ok(&self.links0, self.stride0) || !lists_ok(&self.upper, self.stride_up) {
            return bad("a neighbour list is out of bounds");
        }
        if !self.upper.len().is_multiple_of(self.stride_up) {
            return bad("upper layers length");
        }
        for (node, (&at, &level)) in self.upper_at.iter().zip(&self.levels).enumerate() {
            let fits = if level == 0 {
                at == NO_UPPER
            } else {
                at != NO_UPPER
                    && (at as usize).is_multiple_of(self.stride_up)
                    && at as usize + usize::from(level) * self.stride_up <= self.upper.len()
            };
            if !fits {
                return Err(Malformed(format!("upper layers of node {node}")));
            }
        }
        if self.levels.iter().any(|&l| l > self.max_level) {
            return bad("a level above the top");
        }
        for (node, &level) in self.levels.iter().enumerate() {
            for layer in 1..=level {
                let list = self.neighbours_up(node as u32, layer);
                if list.iter().any(|&nb| self.levels[nb as usize] < layer) {
                    return Err(Malformed(format!("node {node} links below layer {layer}")));
                }
            }
        }
        Ok(())
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has no nodes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The node of a vector id.
    pub fn node_of(&self, id: VectorId) -> Option<u32> {
        self.ids.binary_search(&id).ok().map(|n| n as u32)
    }

    /// Heap bytes of the links, ids and codes.
    pub fn memory_bytes(&self) -> usize {
        self.ids.len() * 8
            + self.levels.len()
            + (self.links0.len() + self.upper_at.len() + self.upper.len()) * 4
            + self.codes.len()
    }

    #[inline(always)]
    fn code(&self, node: u32) -> &[u8] {
        let at = node as usize * self.dimension;
        &self.codes[at..at + self.dimension]
    }

    #[inline(always)]
    pub(crate) fn neighbours0(&self, node: u32) -> &[u32] {
        let at = node as usize * self.stride0;
        let count = self.links0[at] as usize;
        &self.links0[at + 1..at + 1 + count]
    }

    #[inline(always)]
    pub(crate) fn neighbours_up(&self, node: u32, level: u8) -> &[u32] {
        let at = self.upper_at[node as usize] as usize + (usize::from(level) - 1) * self.stride_up;
        let count = self.upper[at] as usize;
        &self.upper[at + 1..at + 1 + count]
    }

    /// The query's weights for this graph's codes.
    pub fn prepare(&self, query: &[f32]) -> QuantizedQuery {
        self.quantizer.prepare(query)
    }

    /// Up to `ef` nodes for which `keep` holds, nearest to the query by quantised score, in
    /// no particular order: the HNSW search (greedy through the upper layers, a beam of `ef`
    /// on layer 0). Nodes `keep` rejects are walked through but never returned.
    pub fn search(
        &self,
        query: &QuantizedQuery,
        ef: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(i32, u32)> {
        if self.ids.is_empty() || ef == 0 {
            return Vec::new();
        }
        #[cfg(target_arch = "x86_64")]
        if super::kernels::has_vnni() {
            // SAFETY: the CPU has the features `search_vnni` is compiled for.
            return unsafe { self.search_vnni(query, ef, &keep) };
        }
        self.search_with::<Dispatched>(query, ef, &keep)
    }

    /// [`FrozenGraph::search`] compiled for AVX-512 VNNI, its kernel inlined.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn search_vnni(
        &self,
        query: &QuantizedQuery,
        ef: usize,
        keep: &impl Fn(u32) -> bool,
    ) -> Vec<(i32, u32)> {
        self.search_with::<super::kernels::Vnni>(query, ef, keep)
    }

    #[inline(always)]
    fn search_with<S: CodeScore>(
        &self,
        query: &QuantizedQuery,
        ef: usize,
        keep: &impl Fn(u32) -> bool,
    ) -> Vec<(i32, u32)> {
        let q = query.weights.as_slice();
        let mut node = self.entry;
        let mut best = S::score(self.code(node), q);
        for level in (1..=self.max_level).rev() {
            loop {
                let mut moved = false;
                for &nb in self.neighbours_up(node, level) {
                    let score = S::score(self.code(nb), q);
                    if score > best {
                        best = score;
                        node = nb;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        SCRATCH.with_borrow_mut(|s| {
            s.begin(self.ids.len());
            self.beam::<S>(q, node, best, ef, keep, s);
            s.results.drain().map(|Reverse(hit)| hit).collect()
        })
    }

    /// The layer-0 beam search from `entry` (hnswlib's `searchBaseLayerST`).
    #[inline(always)]
    fn beam<S: CodeScore>(
        &self,
        q: &[i8],
        entry: u32,
        entry_score: i32,
        ef: usize,
        keep: &impl Fn(u32) -> bool,
        s: &mut Scratch,
    ) {
        let code_bytes = self.dimension;
        s.visited.visit(entry);
        s.candidates.push((entry_score, entry));
        if keep(entry) {
            s.results.push(Reverse((entry_score, entry)));
        }
        // The worst kept score once `ef` are kept: candidates below it cannot improve them.
        let mut floor = if s.results.len() >= ef {
            s.results.peek().map_or(i32::MIN, |r| r.0.0)
        } else {
            i32::MIN
        };
        let mut fresh = std::mem::take(&mut s.fresh);
        while let Some((score, node)) = s.candidates.pop() {
            if score < floor {
                break;
            }
            // The neighbours not seen yet (the visited marks mostly sit in L2)...
            fresh.clear();
            for &nb in self.neighbours0(node) {
                if s.visited.visit(nb) {
                    fresh.push(nb);
                }
            }
            // ... scored with the next one's codes on their way: one row ahead keeps the
            // line fill buffers from overflowing (more stalled the loop).
            if let Some(&first) = fresh.first() {
                prefetch(self.code(first).as_ptr(), code_bytes);
            }
            for (i, &nb) in fresh.iter().enumerate() {
                if let Some(&ahead) = fresh.get(i + 1) {
                    prefetch(self.code(ahead).as_ptr(), code_bytes);
                }
                let score = S::score(self.code(nb), q);
                if s.results.len() < ef || score > floor {
                    s.candidates.push((score, nb));
                    if keep(nb) {
                        s.results.push(Reverse((score, nb)));
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                        if s.results.len() >= ef {
                            floor = s.results.peek().map_or(i32::MIN, |r| r.0.0);
                        }
                    }
                }
            }
            if let Some(&(_, next)) = s.candidates.peek() {
                let at = next as usize * self.stride0;
                prefetch(self.links0[at..].as_ptr().cast(), self.stride0 * 4);
            }
        }
        s.fresh = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::build::GraphBuilder;

    #[test]
    fn validate_catches_out_of_bounds_links() {
        let dim = 8;
        let vectors: Vec<Vec<f32>> = (0..300)
            .map(|i| {
                let mut v: Vec<f32> = (0..dim)
                    .map(|d| ((i * 7 + d * 13) % 11) as f32 - 5.0)
                    .collect();
                crate::embed::l2_normalize(&mut v);
                v
            })
            .collect();
        let ids: Vec<VectorId> = (0..300).map(|i| i * 3).collect();
        let rows: Vec<f32> = vectors.concat();
        let mut builder = GraphBuilder::new(dim, 8, 50, None, &ids, &rows);
        builder.insert_all(64, |_| {});
        let (frozen, nodes) = builder.finish();
        assert_eq!(nodes.len(), 300);
        assert_eq!(frozen.node_of(6), Some(2));
        assert_eq!(frozen.node_of(7), None);
        frozen.validate().unwrap();
        let mut broken = frozen.clone();
        broken.links0[broken.stride0 + 1] = 300;
        broken.links0[broken.stride0] = broken.links0[broken.stride0].max(1);
        assert!(broken.validate().is_err());
        let mut broken = frozen.clone();
        broken.ids.swap(0, 1);
        assert!(broken.validate().is_err());
        let mut broken = frozen;
        broken.codes.pop();
        assert!(broken.validate().is_err());
    }
}
