//! Opening the engine's vector index: load the dump, catch up with the store when the dump is
//! behind it, or rebuild from the stored vectors when there is no usable dump.

use std::collections::HashSet;
use std::path::Path;

use crate::index::{HnswIndex, HnswParams, LoadMiss, VectorId, VectorIndex};
use crate::progress::Progress;
use crate::store::Store;

use super::{EngineError, Result};

/// Vectors inserted per call while building, so progress moves.
const BUILD_STEP: usize = 2048;

/// The index for the store behind `store`: its dump when that is current, the dump plus the
/// store's changes since, or a fresh build.
pub(super) fn open_vector_index(
    store: &Store,
    dir: &Path,
    dimension: usize,
    params: HnswParams,
    progress: &dyn Progress,
) -> Result<HnswIndex> {
    let current = store.generation()?;
    match HnswIndex::load(dir, dimension, params) {
        Ok(index) if index.generation() == current => {
            tracing::info!(
                vectors = index.len(),
                generation = current,
                "loaded the HNSW index from its dump"
            );
            return Ok(index);
        }
        Ok(index) => {
            if let Some(index) = catch_up(store, index)? {
                return Ok(index);
            }
        }
        Err(LoadMiss::Absent) => {}
        Err(LoadMiss::Unusable(reason)) => {
            tracing::warn!(%reason, dir = %dir.display(), "ignoring the saved HNSW index; rebuilding it from the store");
        }
    }
    let (_, ids) = store.chunk_ids()?;
    if !ids.is_empty() {
        tracing::info!(
            vectors = ids.len(),
            "building the HNSW index from stored vectors"
        );
    }
    build_from_store(store, dimension, params, ids.len(), progress)
}

/// Brings a dump that is behind the store up to date, or `None` when it is so far behind that a
/// fresh build makes a better graph.
fn catch_up(store: &Store, mut index: HnswIndex) -> Result<Option<HnswIndex>> {
    let (generation, ids) = store.chunk_ids()?;
    let live: HashSet<VectorId> = ids.iter().copied().collect();
    let missing: Vec<VectorId> = ids
        .iter()
        .copied()
        .filter(|id| !index.contains(*id))
        .collect();
    if missing.len() > live.len() / 2 {
        return Ok(None);
    }
    let gone: Vec<VectorId> = index
        .indexed_ids()
        .iter()
        .copied()
        .filter(|id| !live.contains(id))
        .collect();
    for step in missing.chunks(BUILD_STEP) {
        let vectors = store.vectors_by_ids(step)?;
        let items: Vec<(VectorId, &[f32])> =
            vectors.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.add(&items)?;
    }
    index.remove(&gone);
    index.set_generation(generation);
    tracing::info!(
        vectors = index.len(),
        caught_up = missing.len(),
        removed = gone.len(),
        "loaded the HNSW index from its dump and caught up with the store"
    );
    Ok(Some(index))
}

/// A fresh graph over every stored vector, streamed from the store in steps (never all in
/// memory twice), at the store's generation. `expected` sizes the graph and the progress.
pub(super) fn build_from_store(
    store: &Store,
    dimension: usize,
    params: HnswParams,
    expected: usize,
    progress: &dyn Progress,
) -> Result<HnswIndex> {
    let mut index = HnswIndex::new(dimension, params, expected)?;
    progress.set_total(expected as u64);
    let mut pending: Vec<(VectorId, Vec<f32>)> = Vec::with_capacity(BUILD_STEP);
    let flush = |pending: &mut Vec<(VectorId, Vec<f32>)>, index: &mut HnswIndex| {
        let items: Vec<(VectorId, &[f32])> =
            pending.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.add(&items)?;
        progress.advance(items.len() as u64);
        pending.clear();
        Ok::<_, EngineError>(())
    };
    let generation = store.for_each_vector(|id, vector| {
        pending.push((id, vector));
        if pending.len() == BUILD_STEP {
            flush(&mut pending, &mut index)?;
        }
        Ok::<_, EngineError>(())
    })?;
    flush(&mut pending, &mut index)?;
    index.set_generation(generation);
    progress.finish();
    Ok(index)
}
