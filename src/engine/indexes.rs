//! The engine's two indexes over the same vectors: exact (flat) and approximate (HNSW), kept in
//! step, loaded from the dump plus the store's changes since, or rebuilt from stored vectors.

use std::collections::HashSet;
use std::path::Path;

use indicatif::ProgressBar;

use crate::index::{FlatIndex, HnswIndex, HnswParams, IdVectors, VectorId, VectorIndex};
use crate::store::Store;

use super::Result;

/// Vectors inserted per call while building, so the progress bar moves.
const BUILD_STEP: usize = 2048;

/// A copy of every live vector, for rebuilding the graph off the lock.
pub(super) type Snapshot = IdVectors;

pub(super) struct Indexes {
    pub exact: FlatIndex,
    pub ann: HnswIndex,
}

impl Indexes {
    /// Reads every stored vector into the exact index, then loads the graph's dump and brings
    /// it up to date, or rebuilds the graph when there is no usable dump.
    pub fn open(
        store: &Store,
        dir: &Path,
        dimension: usize,
        params: HnswParams,
        progress: &ProgressBar,
    ) -> Result<Self> {
        let mut exact = FlatIndex::new(dimension);
        let mut pending: IdVectors = Vec::with_capacity(BUILD_STEP);
        let mut failure = None;
        store.for_each_vector(|id, vector| {
            pending.push((id, vector));
            if pending.len() == BUILD_STEP && failure.is_none() {
                failure = add_owned(&mut exact, &pending).err();
                pending.clear();
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        add_owned(&mut exact, &pending)?;

        let live: HashSet<VectorId> = exact.iter().map(|(id, _)| id).collect();
        if let Some(mut ann) = HnswIndex::load(dir, dimension, params) {
            let missing: Vec<VectorId> = live
                .iter()
                .copied()
                .filter(|id| !ann.indexed_ids().contains(id))
                .collect();
            let gone: Vec<VectorId> = ann
                .indexed_ids()
                .iter()
                .copied()
                .filter(|id| !live.contains(id))
                .collect();
            // A dump far behind the store makes a worse graph than a fresh build.
            if missing.len() <= live.len() / 2 {
                let items: Vec<(VectorId, &[f32])> = missing
                    .iter()
                    .filter_map(|&id| exact.get(id).map(|v| (id, v)))
                    .collect();
                ann.add(&items)?;
                ann.remove(&gone);
                tracing::info!(
                    vectors = ann.len(),
                    caught_up = missing.len(),
                    removed = gone.len(),
                    "loaded the HNSW index from its dump"
                );
                return Ok(Self { exact, ann });
            }
        }
        let snapshot: Snapshot = exact.iter().map(|(id, v)| (id, v.to_vec())).collect();
        if !snapshot.is_empty() {
            tracing::info!(
                vectors = snapshot.len(),
                "building the HNSW index from stored vectors"
            );
        }
        let ann = Self::build_graph(&snapshot, dimension, params, progress)?;
        Ok(Self { exact, ann })
    }

    /// Builds a graph over `items`, advancing `progress` (its length is set here).
    pub fn build_graph(
        items: &[(VectorId, Vec<f32>)],
        dimension: usize,
        params: HnswParams,
        progress: &ProgressBar,
    ) -> Result<HnswIndex> {
        let mut ann = HnswIndex::new(dimension, params, items.len())?;
        progress.set_length(items.len() as u64);
        for step in items.chunks(BUILD_STEP) {
            let refs: Vec<(VectorId, &[f32])> =
                step.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            ann.add(&refs)?;
            progress.inc(step.len() as u64);
        }
        progress.finish_and_clear();
        Ok(ann)
    }

    /// Every live vector, copied.
    pub fn snapshot(&self) -> Snapshot {
        self.exact.iter().map(|(id, v)| (id, v.to_vec())).collect()
    }

    /// Swaps in a graph built from `snapshot`, first replaying what changed since.
    pub fn replace_graph(&mut self, mut fresh: HnswIndex, snapshot: &Snapshot) -> Result<()> {
        let before: HashSet<VectorId> = snapshot.iter().map(|(id, _)| *id).collect();
        let added: Vec<(VectorId, &[f32])> = self
            .exact
            .iter()
            .filter(|(id, _)| !before.contains(id))
            .collect();
        fresh.add(&added)?;
        let removed: Vec<VectorId> = before
            .iter()
            .copied()
            .filter(|id| !self.exact.contains(*id))
            .collect();
        fresh.remove(&removed);
        self.ann = fresh;
        Ok(())
    }

    /// Adds vectors to both indexes.
    pub fn add(&mut self, items: &[(VectorId, &[f32])]) -> Result<()> {
        self.exact.add(items)?;
        self.ann.add(items)?;
        Ok(())
    }

    /// Removes vectors from both indexes.
    pub fn remove(&mut self, ids: &[VectorId]) {
        self.exact.remove(ids);
        self.ann.remove(ids);
    }

    /// Writes the graph's dump.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.ann.save(dir)?;
        Ok(())
    }
}

fn add_owned(index: &mut FlatIndex, items: &[(VectorId, Vec<f32>)]) -> Result<()> {
    let refs: Vec<(VectorId, &[f32])> = items.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.add(&refs)?;
    Ok(())
}
