//! The graph builder: HNSW insertion (Malkov and Yashunin's algorithm, with hnswlib's
//! neighbour-selection heuristic) over flat arrays, on all of rayon's threads.
//!
//! It replaced hnsw_rs as the builder because hnsw_rs spent most of a build outside the
//! distance itself: a `HashMap` of visited points per layer search, an `Arc` per candidate,
//! a lock and a heap-allocated `Vec` per neighbour list and per vector. Here the vectors are
//! the f32 rows the index already holds (the segment's, mapped for the fold, and the new
//! ones), layer 0 is one array with a fixed stride, visited nodes are marked in a reusable epoch-stamped
//! array, and each node has a one-byte lock held only to copy or rewrite its lists.
//!
//! Locks, in the order they are taken: `top` (the entry point; held through the whole insert
//! of a node that becomes the new top), then one node's lock at a time, never two, so inserts
//! cannot deadlock. A node is linked from layer 0 up, so that no other insert reaches it
//! before its lists are in place. When every insert is done, nodes that pruning left without
//! a way in are linked again ([`GraphBuilder::finish`]). A builder starts empty or from a
//! frozen graph (a fold inserts the new vectors into it) and ends as a new [`FrozenGraph`].

use std::cell::RefCell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::VectorId;
use super::frozen::FrozenGraph;
use super::kernels::{dot, prefetch};
use super::quant::ScalarQuantizer;
use super::visited::Visited;

/// The highest layer a node may get (levels are stored as `u8`; with `m` ≥ 2 a level above
/// 15 would need more nodes than a `u32` numbers).
const TOP_LEVEL: u8 = 15;

/// A node and its similarity to the vector being inserted (or searched for); ordered by
/// similarity, then node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near {
    score: f32,
    node: u32,
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.score
            .total_cmp(&other.score)
            .then(self.node.cmp(&other.node))
    }
}

/// Per-thread search state, reused across inserts: visited marks, the two heaps and a copy
/// of the list being walked.
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Near>,
    nearest: BinaryHeap<std::cmp::Reverse<Near>>,
    list: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            visited: Visited::new(),
            candidates: BinaryHeap::new(),
            nearest: BinaryHeap::new(),
            list: Vec::new(),
        })
    };
}

impl Scratch {
    fn begin(&mut self, n: usize) {
        self.visited.begin(n);
        self.candidates.clear();
        self.nearest.clear();
    }
}

/// The graph's entry point, once a node is in.
#[derive(Debug, Clone, Copy)]
struct Top {
    entry: u32,
    level: u8,
}

/// An HNSW graph being built; see the module documentation.
pub(crate) struct GraphBuilder<'v> {
    dimension: usize,
    m: usize,
    ef_construction: usize,
    ids: Vec<VectorId>,
    /// The rows of the first `base.len() / dimension` nodes, then those of the others.
    base: &'v [f32],
    added: &'v [f32],
    base_nodes: usize,
    levels: Vec<u8>,
    /// Layer 0: per node, a count and up to `2m` neighbours.
    links0: Vec<AtomicU32>,
    stride0: usize,
    /// Where a node's upper layers start in `upper` (`u32::MAX`: it has none); `m + 1`
    /// entries per layer, a count and the neighbours.
    upper_at: Vec<u32>,
    upper: Vec<AtomicU32>,
    stride_up: usize,
    /// Held to read or write a node's lists.
    locks: Vec<Mutex<()>>,
    /// Held while reading the entry point, and through the whole insert of a node that
    /// becomes the new top (rare: about one node in `m^level`).
    top: Mutex<Option<Top>>,
    /// Nodes already in the graph (the rest wait for [`GraphBuilder::insert_all`]).
    inserted: usize,
}

/// A deterministic level for node `node`: `⌊−ln(u) / ln(m)⌋` with `u` uniform in (0, 1],
/// hashed from the node's position (splitmix64), so that a build's levels repeat.
fn random_level(node: usize, m: usize, seed: u64) -> u8 {
    let mut z = (node as u64)
        .wrapping_add(seed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let level = (-u.ln() / (m as f64).ln()).floor();
    level.min(f64::from(TOP_LEVEL)) as u8
}

impl<'v> GraphBuilder<'v> {
    /// A builder holding `base` (a frozen graph and its f32 rows, in node order; `None`:
    /// start empty) and ready to insert `added` (rows of `dimension` f32, with their ids).
    /// Nothing is inserted until [`GraphBuilder::insert_all`].
    pub fn new(
        dimension: usize,
        m: usize,
        ef_construction: usize,
        base: Option<(&FrozenGraph, &'v [f32])>,
        added_ids: &[VectorId],
        added: &'v [f32],
    ) -> Self {
        let base_nodes = base.map_or(0, |(graph, _)| graph.len());
        let n = base_nodes + added_ids.len();
        let stride0 = 2 * m + 1;
        let stride_up = m + 1;
        let mut ids = Vec::with_capacity(n);
        let mut levels = Vec::with_capacity(n);
        if let Some((graph, _)) = base {
            ids.extend_from_slice(&graph.ids);
            levels.extend_from_slice(&graph.levels);
        }
        ids.extend_from_slice(added_ids);
        // Seeded by the base's size, so that the new nodes of successive folds draw new levels.
        levels.extend((base_nodes..n).map(|node| random_level(node, m, base_nodes as u64)));
        let links0: Vec<AtomicU32> = (0..n * stride0).map(|_| AtomicU32::new(0)).collect();
        let mut upper_at = vec![u32::MAX; n];
        let mut upper_len = 0usize;
        for (node, &level) in levels.iter().enumerate() {
            if level > 0 {
                upper_at[node] = upper_len as u32;
                upper_len += usize::from(level) * stride_up;
            }
        }
        let upper: Vec<AtomicU32> = (0..upper_len).map(|_| AtomicU32::new(0)).collect();
        let mut builder = Self {
            dimension,
            m,
            ef_construction: ef_construction.max(1),
            ids,
            base: base.map_or(&[][..], |(_, rows)| rows),
            added,
            base_nodes,
            levels,
            links0,
            stride0,
            upper_at,
            upper,
            stride_up,
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            top: Mutex::new(None),
            inserted: base_nodes,
        };
        if let Some((graph, _)) = base {
            builder.copy_links(graph);
        }
        builder
    }

    /// Copies a frozen graph's links (its nodes are this builder's first ones).
    fn copy_links(&mut self, graph: &FrozenGraph) {
        let this = &*self;
        (0..graph.len() as u32).into_par_iter().for_each(|node| {
            for layer in 0..=graph.levels[node as usize] {
                let list = if layer == 0 {
                    graph.neighbours0(node)
                } else {
                    graph.neighbours_up(node, layer)
                };
                this.write_list(node, layer, &list[..list.len().min(this.cap(layer))]);
            }
        });
        if !graph.is_empty() {
            *self.top.get_mut() = Some(Top {
                entry: graph.entry,
                level: graph.max_level,
            });
        }
    }

    /// Nodes, inserted or not.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// A node's f32 row.
    #[inline(always)]
    fn vector(&self, node: u32) -> &[f32] {
        let d = self.dimension;
        let node = node as usize;
        if node < self.base_nodes {
            &self.base[node * d..(node + 1) * d]
        } else {
            let at = node - self.base_nodes;
            &self.added[at * d..(at + 1) * d]
        }
    }

    /// Where `node`'s list of `layer` starts: a count, then the neighbours.
    #[inline(always)]
    fn list_at(&self, node: u32, layer: u8) -> usize {
        if layer == 0 {
            node as usize * self.stride0
        } else {
            self.upper_at[node as usize] as usize + (usize::from(layer) - 1) * self.stride_up
        }
    }

    #[inline(always)]
    fn slots(&self, layer: u8) -> &[AtomicU32] {
        if layer == 0 {
            &self.links0
        } else {
            &self.upper
        }
    }

    /// `node`'s neighbours on `layer`, as they stand: the caller holds the node's lock, or
    /// no insert is running.
    #[inline(always)]
    fn neighbours(&self, node: u32, layer: u8) -> impl ExactSizeIterator<Item = u32> + '_ {
        let at = self.list_at(node, layer);
        let slots = self.slots(layer);
        let count = slots[at].load(Ordering::Relaxed) as usize;
        slots[at + 1..at + 1 + count]
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
    }

    /// Copies `node`'s neighbours on `layer` into `out` (under its lock).
    #[inline(always)]
    fn read_list(&self, node: u32, layer: u8, out: &mut Vec<u32>) {
        out.clear();
        let _held = self.locks[node as usize].lock();
        out.extend(self.neighbours(node, layer));
    }

    /// Writes `list` as `node`'s neighbours on `layer`; the caller holds the node's lock.
    fn write_list(&self, node: u32, layer: u8, list: &[u32]) {
        let at = self.list_at(node, layer);
        let slots = self.slots(layer);
        for (slot, &nb) in slots[at + 1..].iter().zip(list) {
            slot.store(nb, Ordering::Relaxed);
        }
        slots[at].store(list.len() as u32, Ordering::Relaxed);
    }

    /// Inserts every node not yet in the graph, `step` at a time in parallel, calling
    /// `advance(count)` after each step.
    pub fn insert_all(&mut self, step: usize, mut advance: impl FnMut(usize)) {
        let n = self.len();
        if self.inserted < n && self.top.get_mut().is_none() {
            // The first node becomes the entry point; the others can then go in together.
            self.insert(self.inserted as u32);
            self.inserted += 1;
            advance(1);
        }
        while self.inserted < n {
            let end = (self.inserted + step.max(1)).min(n);
            let this = &*self;
            (this.inserted..end)
                .into_par_iter()
                .for_each(|node| this.insert(node as u32));
            advance(end - self.inserted);
            self.inserted = end;
        }
    }

    /// Inserts one node: a greedy descent to its level, then on each of its layers a beam
    /// search of `ef_construction`, links to the heuristic's choice of `m` of the nodes
    /// found, and links back from them (their lists pruned by the same heuristic when full).
    fn insert(&self, node: u32) {
        let q = self.vector(node);
        let level = self.levels[node as usize];
        let mut top = self.top.lock();
        let Some(Top {
            entry,
            level: top_level,
        }) = *top
        else {
            *top = Some(Top { entry: node, level });
            return;
        };
        let _new_top = if level > top_level {
            Some(top)
        } else {
            drop(top);
            None
        };
        SCRATCH.with_borrow_mut(|s| {
            let mut list = std::mem::take(&mut s.list);
            let mut current = Near {
                score: dot(q, self.vector(entry)),
                node: entry,
            };
            for layer in (level + 1..=top_level).rev() {
                loop {
                    self.read_list(current.node, layer, &mut list);
                    let mut moved = false;
                    for &nb in &list {
                        let score = dot(q, self.vector(nb));
                        if score > current.score {
                            current = Near { score, node: nb };
                            moved = true;
                        }
                    }
                    if !moved {
                        break;
                    }
                }
            }
            s.list = list;
            let layers = level.min(top_level);
            let mut chosen: Vec<Vec<u32>> = vec![Vec::new(); usize::from(layers) + 1];
            for layer in (0..=layers).rev() {
                let mut found = self.search_layer(q, current, layer, s);
                found.sort_unstable_by(|a, b| b.cmp(a));
                current = found[0];
                chosen[usize::from(layer)] = self.select(&found, self.cap(layer));
            }
            // Linked from layer 0 up: once another insert can reach the node on a layer (by
            // a link back), its lists on that layer and those below are in place. Linked top
            // down, an insert could descend to it and search layer 0 from an empty list (and
            // then get a single neighbour), or link back into a list about to be written over.
            for (layer, chosen) in chosen.iter().enumerate() {
                let layer = layer as u8;
                {
                    let _held = self.locks[node as usize].lock();
                    self.write_list(node, layer, chosen);
                }
                for &nb in chosen {
                    self.link_back(nb, node, layer, self.cap(layer));
                }
            }
        });
        if let Some(mut top) = _new_top {
            *top = Some(Top { entry: node, level });
        }
    }

    /// Most links a node keeps on `layer`.
    fn cap(&self, layer: u8) -> usize {
        if layer == 0 { 2 * self.m } else { self.m }
    }

    /// The `ef_construction` nodes nearest to `q` on `layer` found from `start`, unordered.
    fn search_layer(&self, q: &[f32], start: Near, layer: u8, s: &mut Scratch) -> Vec<Near> {
        let ef = self.ef_construction;
        s.begin(self.len());
        s.visited.visit(start.node);
        s.candidates.push(start);
        s.nearest.push(std::cmp::Reverse(start));
        let mut floor = start.score;
        let mut list = std::mem::take(&mut s.list);
        while let Some(candidate) = s.candidates.pop() {
            if candidate.score < floor && s.nearest.len() >= ef {
                break;
            }
            self.read_list(candidate.node, layer, &mut list);
            list.retain(|&nb| s.visited.visit(nb));
            if let Some(&first) = list.first() {
                prefetch(self.vector(first).as_ptr().cast(), self.dimension * 4);
            }
            for (i, &nb) in list.iter().enumerate() {
                if let Some(&ahead) = list.get(i + 1) {
                    prefetch(self.vector(ahead).as_ptr().cast(), self.dimension * 4);
                }
                let score = dot(q, self.vector(nb));
                if s.nearest.len() < ef || score > floor {
                    let near = Near { score, node: nb };
                    s.candidates.push(near);
                    s.nearest.push(std::cmp::Reverse(near));
                    if s.nearest.len() > ef {
                        s.nearest.pop();
                    }
                    floor = s.nearest.peek().map_or(f32::MIN, |r| r.0.score);
                }
            }
        }
        s.list = list;
        s.nearest.drain().map(|r| r.0).collect()
    }

    /// hnswlib's heuristic: from candidates sorted nearest first, keeps up to `cap`, each
    /// nearer to the query than to every one kept before it (so the links spread in
    /// different directions instead of crowding one cluster).
    fn select(&self, sorted: &[Near], cap: usize) -> Vec<u32> {
        if sorted.len() <= cap {
            return sorted.iter().map(|n| n.node).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(cap);
        for candidate in sorted {
            if kept.len() >= cap {
                break;
            }
            let v = self.vector(candidate.node);
            if kept
                .iter()
                .all(|&k| dot(v, self.vector(k)) <= candidate.score)
            {
                kept.push(candidate.node);
            }
        }
        kept
    }

    /// Adds `node` to `nb`'s list on `layer`, pruning the list to `cap` by the heuristic
    /// when it is full.
    fn link_back(&self, nb: u32, node: u32, layer: u8, cap: usize) {
        let _held = self.locks[nb as usize].lock();
        let mut list: Vec<u32> = self.neighbours(nb, layer).collect();
        if list.contains(&node) {
            return;
        }
        if list.len() < cap {
            list.push(node);
            self.write_list(nb, layer, &list);
            return;
        }
        let v = self.vector(nb);
        let mut candidates: Vec<Near> = list
            .iter()
            .chain(std::iter::once(&node))
            .map(|&other| Near {
                score: dot(v, self.vector(other)),
                node: other,
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = self.select(&candidates, cap);
        self.write_list(nb, layer, &chosen);
    }

    /// Which nodes a walk from the entry point reaches on layer 0 (`None`: the graph is
    /// empty).
    fn reached_from_entry(&self) -> Option<Vec<bool>> {
        let top = (*self.top.lock())?;
        let mut reached = vec![false; self.len()];
        reached[top.entry as usize] = true;
        self.mark_reachable(&mut vec![top.entry], &mut reached);
        Some(reached)
    }

    /// Marks every node reachable on layer 0 from those on `stack`.
    fn mark_reachable(&self, stack: &mut Vec<u32>, reached: &mut [bool]) {
        while let Some(node) = stack.pop() {
            for nb in self.neighbours(node, 0) {
                if !reached[nb as usize] {
                    reached[nb as usize] = true;
                    stack.push(nb);
                }
            }
        }
    }

    /// Links the nodes that no walk from the entry point reaches on layer 0 (pruning can take
    /// a node's last in-link away; such a node would never be found), a few passes at most
    /// (a link replaced in one pass can cut another node off). Returns the nodes still
    /// unreachable: none unless every candidate's list is full of nodes linked only from
    /// there.
    fn connect_unreachable(&self) -> usize {
        for _ in 0..4 {
            if self.link_unreachable() == 0 {
                return 0;
            }
        }
        self.reached_from_entry()
            .map_or(0, |reached| reached.iter().filter(|&&r| !r).count())
    }

    /// One pass of [`GraphBuilder::connect_unreachable`]: each node found unreachable is
    /// linked from its nearest reachable node, appended to that node's list when it has room,
    /// else in place of a neighbour that other nodes link to as well. Returns how many were
    /// found.
    fn link_unreachable(&self) -> usize {
        let n = self.len();
        let Some(mut reached) = self.reached_from_entry() else {
            return 0;
        };
        let mut in_degree = vec![0u32; n];
        for node in 0..n as u32 {
            for nb in self.neighbours(node, 0) {
                in_degree[nb as usize] += 1;
            }
        }
        let cap = self.cap(0);
        let mut found = 0;
        for node in 0..n as u32 {
            if reached[node as usize] {
                continue;
            }
            found += 1;
            let v = self.vector(node);
            let score = |other: u32| dot(v, self.vector(other));
            let mut from: Vec<Near> = self
                .neighbours(node, 0)
                .filter(|&nb| reached[nb as usize])
                .map(|nb| Near {
                    score: score(nb),
                    node: nb,
                })
                .collect();
            if from.is_empty() {
                // Its whole component is cut off: the nearest reachable node anywhere.
                from.extend(
                    (0..n as u32)
                        .filter(|&other| reached[other as usize])
                        .map(|other| Near {
                            score: score(other),
                            node: other,
                        })
                        .max(),
                );
            }
            from.sort_unstable_by(|a, b| b.cmp(a));
            let mut linked = false;
            for f in from {
                let mut list: Vec<u32> = self.neighbours(f.node, 0).collect();
                if list.len() < cap {
                    list.push(node);
                } else if let Some(slot) = list
                    .iter()
                    .enumerate()
                    .filter(|&(_, &nb)| in_degree[nb as usize] > 1)
                    .min_by(|a, b| score(*a.1).total_cmp(&score(*b.1)))
                    .map(|(slot, _)| slot)
                {
                    in_degree[list[slot] as usize] -= 1;
                    list[slot] = node;
                } else {
                    continue;
                }
                self.write_list(f.node, 0, &list);
                in_degree[node as usize] += 1;
                linked = true;
                break;
            }
            if linked {
                reached[node as usize] = true;
                self.mark_reachable(&mut vec![node], &mut reached);
            }
        }
        found
    }

    /// The graph as a [`FrozenGraph`] numbered by ascending id, its vectors quantised, and
    /// each new node's builder node (for the caller to copy the f32 rows in that order).
    pub fn finish(self) -> (FrozenGraph, Vec<u32>) {
        let unreachable = self.connect_unreachable();
        if unreachable > 0 {
            tracing::warn!(unreachable, "graph nodes no search can reach");
        }
        let n = self.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.par_sort_unstable_by_key(|&node| self.ids[node as usize]);
        let mut new_of = vec![0u32; n];
        for (at, &old) in order.iter().enumerate() {
            new_of[old as usize] = at as u32;
        }
        let ids: Vec<VectorId> = order.iter().map(|&o| self.ids[o as usize]).collect();
        let levels: Vec<u8> = order.iter().map(|&o| self.levels[o as usize]).collect();
        // Each list renumbered into `slot`: its count, then its neighbours.
        let renumber = |old: u32, layer: u8, slot: &mut [u32]| {
            let list = self.neighbours(old, layer);
            slot[0] = list.len() as u32;
            for (out, nb) in slot[1..].iter_mut().zip(list) {
                *out = new_of[nb as usize];
            }
        };
        let widest0 = (0..n as u32)
            .map(|node| self.neighbours(node, 0).len())
            .max()
            .unwrap_or(0);
        let stride0 = widest0 + 1;
        let mut links0 = vec![0u32; n * stride0];
        links0
            .par_chunks_mut(stride0)
            .zip(&order)
            .for_each(|(slot, &old)| renumber(old, 0, slot));
        let widest_up = (0..n as u32)
            .flat_map(|node| (1..=self.levels[node as usize]).map(move |l| (node, l)))
            .map(|(node, layer)| self.neighbours(node, layer).len())
            .max()
            .unwrap_or(0);
        let stride_up = widest_up + 1;
        let mut upper_at = vec![u32::MAX; n];
        let mut upper = Vec::new();
        for (new, &old) in order.iter().enumerate() {
            if levels[new] == 0 {
                continue;
            }
            upper_at[new] = upper.len() as u32;
            for layer in 1..=levels[new] {
                let start = upper.len();
                upper.resize(start + stride_up, 0);
                renumber(old, layer, &mut upper[start..]);
            }
        }
        let top = *self.top.lock();
        let (entry, max_level) = top.map_or((0, 0), |t| (new_of[t.entry as usize], t.level));
        let d = self.dimension;
        let quantizer = ScalarQuantizer::learn(d, order.iter().map(|&o| self.vector(o)));
        let mut codes = vec![0u8; n * d];
        codes
            .par_chunks_mut(d.max(1))
            .zip(&order)
            .for_each(|(out, &old)| quantizer.encode(self.vector(old), out));
        let graph = FrozenGraph {
            dimension: d,
            ids,
            levels,
            links0,
            stride0,
            upper_at,
            upper,
            stride_up,
            entry,
            max_level,
            quantizer,
            codes,
        };
        (graph, order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
                })
                .collect();
            crate::embed::l2_normalize(&mut v);
            out.extend_from_slice(&v);
        }
        out
    }

    fn exact_top(rows: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(f32, usize)> = rows
            .chunks(dim)
            .enumerate()
            .map(|(i, r)| (dot(q, r), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }

    /// recall@10 of the frozen graph's walk (ef 64, 8-bit scores rescored in f32 as the index
    /// does) against exact search.
    fn recall(graph: &FrozenGraph, rows: &[f32], dim: usize, queries: &[f32]) -> f64 {
        let mut hits = 0usize;
        let mut total = 0usize;
        for q in queries.chunks(dim) {
            let truth: Vec<VectorId> = exact_top(rows, dim, q, 10)
                .into_iter()
                .map(|i| i as VectorId * 3)
                .collect();
            let prepared = graph.prepare(q);
            let mut found: Vec<(f32, VectorId)> = graph
                .search(&prepared, 64, |_| true)
                .into_iter()
                .map(|(_, node)| {
                    let id = graph.ids[node as usize];
                    (dot(q, &rows[(id / 3) as usize * dim..][..dim]), id)
                })
                .collect();
            found.sort_by(|a, b| b.0.total_cmp(&a.0));
            hits += found
                .iter()
                .take(10)
                .filter(|(_, id)| truth.contains(id))
                .count();
            total += 10;
        }
        hits as f64 / total as f64
    }

    #[test]
    fn levels_follow_the_geometric_law_and_repeat() {
        let m = 16;
        let levels: Vec<u8> = (0..100_000).map(|i| random_level(i, m, 7)).collect();
        let above0 = levels.iter().filter(|&&l| l > 0).count() as f64 / levels.len() as f64;
        // P(level ≥ 1) = 1/m.
        assert!((above0 - 1.0 / m as f64).abs() < 0.01, "{above0}");
        assert!(levels.iter().all(|&l| l <= TOP_LEVEL));
        assert_eq!(levels[123], random_level(123, m, 7));
    }

    #[test]
    fn a_built_graph_is_valid_and_finds_the_true_neighbours() {
        let dim = 32;
        let n = 3000;
        let rows = unit_vectors(n, dim, 11);
        let queries = unit_vectors(100, dim, 12);
        // Ids out of order (numbered by ascending id when frozen): node i has id 3·i.
        let mut order: Vec<usize> = (0..n).collect();
        order.reverse();
        let ids: Vec<VectorId> = order.iter().map(|&i| i as VectorId * 3).collect();
        let added: Vec<f32> = order
            .iter()
            .flat_map(|&i| rows[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let mut builder = GraphBuilder::new(dim, 16, 100, None, &ids, &added);
        let mut advanced = 0;
        builder.insert_all(256, |c| advanced += c);
        assert_eq!(advanced, n);
        let (graph, nodes) = builder.finish();
        graph.validate().unwrap();
        assert_eq!(graph.len(), n);
        assert!(graph.ids.windows(2).all(|w| w[0] < w[1]));
        // `nodes` maps each frozen node back to its builder node.
        assert_eq!(nodes[0] as usize, n - 1);
        // Layer 0 holds at most 2m links, upper layers m.
        assert!(graph.stride0 <= 33 && graph.stride_up <= 17);
        let r = recall(&graph, &rows, dim, &queries);
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn a_graph_grows_from_a_frozen_one_and_keeps_finding_its_old_nodes() {
        let dim = 24;
        let rows = unit_vectors(2000, dim, 21);
        let queries = unit_vectors(80, dim, 22);
        let first_ids: Vec<VectorId> = (0..1200).map(|i| i * 3).collect();
        let mut builder = GraphBuilder::new(dim, 8, 80, None, &first_ids, &rows[..1200 * dim]);
        builder.insert_all(100, |_| {});
        let (first, order) = builder.finish();
        assert!(order.iter().enumerate().all(|(a, &b)| a == b as usize));
        let more_ids: Vec<VectorId> = (1200..2000).map(|i| i * 3).collect();
        let mut builder = GraphBuilder::new(
            dim,
            8,
            80,
            Some((&first, &rows[..1200 * dim])),
            &more_ids,
            &rows[1200 * dim..],
        );
        builder.insert_all(100, |_| {});
        let (grown, _) = builder.finish();
        grown.validate().unwrap();
        assert_eq!(grown.len(), 2000);
        let r = recall(&grown, &rows, dim, &queries);
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn inserts_on_many_threads_finish_and_leave_every_node_reachable() {
        // Eight threads on 2-dimensional points: small lists, many full ones, and every
        // insert contending for the same few nodes' locks. A deadlock fails the deadline.
        let n = 6000;
        let rows = unit_vectors(n, 2, 5);
        let ids: Vec<VectorId> = (0..n as VectorId).collect();
        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(8)
                .build()
                .unwrap();
            let graph = pool.install(|| {
                let mut builder = GraphBuilder::new(2, 4, 32, None, &ids, &rows);
                builder.insert_all(500, |_| {});
                builder.finish().0
            });
            let _ = done.send(graph);
        });
        let graph = finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the parallel build did not finish in two minutes");
        worker.join().unwrap();
        graph.validate().unwrap();
        assert_eq!(graph.len(), n);
        assert_eq!(reachable(&graph), n);
    }

    /// Nodes a walk from the entry point reaches on layer 0.
    fn reachable(graph: &FrozenGraph) -> usize {
        let mut reached = vec![false; graph.len()];
        let mut stack = vec![graph.entry];
        reached[graph.entry as usize] = true;
        while let Some(node) = stack.pop() {
            for &nb in graph.neighbours0(node) {
                if !reached[nb as usize] {
                    reached[nb as usize] = true;
                    stack.push(nb);
                }
            }
        }
        reached.iter().filter(|&&r| r).count()
    }

    #[test]
    fn every_node_stays_reachable() {
        // Small sets of random low-dimensional vectors are where pruning cuts nodes off most
        // often (they were, before the repair pass: searches missed nodes of 300).
        for seed in 0..40 {
            let dim = [2, 8, 16][seed as usize % 3];
            let n = 300;
            let rows = unit_vectors(n, dim, seed);
            let ids: Vec<VectorId> = (0..n as VectorId).collect();
            let mut builder = GraphBuilder::new(dim, 16, 200, None, &ids, &rows);
            builder.insert_all(64, |_| {});
            let (graph, _) = builder.finish();
            graph.validate().unwrap();
            assert_eq!(reachable(&graph), n, "seed {seed}, dimension {dim}");
        }
    }

    #[test]
    fn a_node_cut_off_is_linked_again() {
        let dim = 8;
        let n = 500;
        let rows = unit_vectors(n, dim, 3);
        let ids: Vec<VectorId> = (0..n as VectorId).collect();
        let mut builder = GraphBuilder::new(dim, 4, 64, None, &ids, &rows);
        builder.insert_all(100, |_| {});
        // Take every in-link of three nodes away, as pruning can.
        let entry = builder.top.lock().unwrap().entry;
        let cut: Vec<u32> = (0..n as u32).filter(|&x| x != entry).take(3).collect();
        for node in 0..n as u32 {
            let kept: Vec<u32> = builder
                .neighbours(node, 0)
                .filter(|nb| !cut.contains(nb))
                .collect();
            builder.write_list(node, 0, &kept);
        }
        let mut reached = vec![false; n];
        reached[entry as usize] = true;
        builder.mark_reachable(&mut vec![entry], &mut reached);
        assert!(cut.iter().all(|&c| !reached[c as usize]));
        assert_eq!(builder.connect_unreachable(), 0);
        let (graph, _) = builder.finish();
        graph.validate().unwrap();
        assert_eq!(reachable(&graph), n);
    }

    #[test]
    fn empty_and_single_node_builds() {
        let builder = GraphBuilder::new(4, 16, 200, None, &[], &[]);
        let (graph, order) = builder.finish();
        assert!(graph.is_empty() && order.is_empty());
        graph.validate().unwrap();
        let one = [0.5f32, 0.5, 0.5, 0.5];
        let mut builder = GraphBuilder::new(4, 16, 200, None, &[9], &one);
        builder.insert_all(2048, |_| {});
        let (graph, _) = builder.finish();
        graph.validate().unwrap();
        assert_eq!(graph.ids, vec![9]);
        let prepared = graph.prepare(&one);
        assert_eq!(graph.search(&prepared, 4, |_| true).len(), 1);
    }
}
