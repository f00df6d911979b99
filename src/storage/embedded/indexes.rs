//! Opening the engine's derived indexes: load the vector index's dump (or the lexical index),
//! catch up with the store when it is behind, or rebuild from the store when there is nothing
//! usable.

use std::collections::HashSet;
use std::path::Path;

use super::store::{Passage, Store};
use crate::index::{HnswIndex, HnswParams, LoadMiss, VectorId, VectorIndex};
use crate::lexical::{LexicalIndex, Opened};
use crate::progress::{NoProgress, Progress};

use crate::storage::{Result, StorageError};

/// Vectors inserted per call while building, so progress moves.
const BUILD_STEP: usize = 2048;

/// The index for the store behind `store`: its dump when that is current, the dump plus the
/// store's changes since, or a fresh build.
pub(super) fn open_vector_index(
    store: &Store,
    dir: &Path,
    dimension: usize,
    params: HnswParams,
    writable: bool,
    progress: &dyn Progress,
) -> Result<HnswIndex> {
    let current = store.generation()?;
    // A loaded index whose exactly searched tail is past its size (a crash, a large catch-up)
    // has it folded into the graph before searches start. A fold that cannot be written (a
    // full disk) leaves the tail as it was, searched exactly: the collection still opens.
    let folded = |mut index: HnswIndex| -> Result<HnswIndex> {
        if writable
            && index.fold_due()
            && let Err(e) = index.freeze(Some(dir), progress)
        {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot fold the index's tail into its graph now; searching it exactly until the next fold");
        }
        Ok(index)
    };
    match HnswIndex::load(dir, dimension, params) {
        Ok(index) if index.generation() == current => {
            tracing::info!(
                vectors = index.len(),
                generation = current,
                "loaded the HNSW index from its dump"
            );
            return folded(index);
        }
        Ok(index) => {
            if let Some(index) = catch_up(store, index)? {
                return folded(index);
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
    build_from_store(
        store,
        dimension,
        params,
        ids.len(),
        writable.then_some(dir),
        progress,
    )
}

/// How the vector index differs from the store: the passages it misses and those it holds
/// that the store no longer has, at the store's generation.
struct Drift {
    generation: u64,
    stored: usize,
    missing: Vec<VectorId>,
    gone: Vec<VectorId>,
}

impl Drift {
    fn between(store: &Store, index: &HnswIndex) -> Result<Self> {
        let (generation, ids) = store.chunk_ids()?;
        let live: HashSet<VectorId> = ids.iter().copied().collect();
        let missing = ids
            .iter()
            .copied()
            .filter(|id| !index.contains(*id))
            .collect();
        let gone = index
            .indexed_ids()
            .iter()
            .copied()
            .filter(|&id| index.contains(id) && !live.contains(&id))
            .collect();
        Ok(Self {
            generation,
            stored: ids.len(),
            missing,
            gone,
        })
    }

    /// Adds the missing vectors (read from the store in steps), removes the gone ones and
    /// records the store's generation.
    fn close(&self, store: &Store, index: &mut HnswIndex) -> Result<()> {
        for step in self.missing.chunks(BUILD_STEP) {
            let vectors = store.vectors_by_ids(step)?;
            let items: Vec<(VectorId, &[f32])> =
                vectors.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            index.add(&items)?;
        }
        index.remove(&self.gone);
        index.set_generation(self.generation);
        Ok(())
    }
}

/// Brings a dump that is behind the store up to date, or `None` when it is so far behind that a
/// fresh build makes a better graph.
fn catch_up(store: &Store, mut index: HnswIndex) -> Result<Option<HnswIndex>> {
    let drift = Drift::between(store, &index)?;
    if drift.missing.len() > drift.stored / 2 {
        return Ok(None);
    }
    drift.close(store, &mut index)?;
    tracing::info!(
        vectors = index.len(),
        caught_up = drift.missing.len(),
        removed = drift.gone.len(),
        "loaded the HNSW index from its dump and caught up with the store"
    );
    Ok(Some(index))
}

/// Makes `index` hold exactly the store's passages (the caller holds the write connection):
/// adds what it misses, removes what the store no longer has, and records the store's
/// generation.
pub(super) fn reconcile_vectors(store: &Store, index: &mut HnswIndex) -> Result<()> {
    Drift::between(store, index)?.close(store, index)
}

/// Makes the lexical index hold exactly the store's passages and commits it at the store's
/// generation (the caller holds the write connection, or nothing writes yet).
pub(super) fn reconcile_lexical(store: &Store, index: &LexicalIndex) -> Result<()> {
    index.rollback()?;
    let (generation, ids) = store.chunk_ids()?;
    let (mut indexed, repeated) = index.ids()?;
    // A passage indexed twice is removed and indexed once again.
    for id in &repeated {
        indexed.remove(id);
    }
    let live: HashSet<VectorId> = ids.iter().copied().collect();
    let missing: Vec<VectorId> = ids.into_iter().filter(|id| !indexed.contains(id)).collect();
    let mut gone: Vec<VectorId> = indexed
        .into_iter()
        .filter(|id| !live.contains(id))
        .collect();
    gone.extend(repeated);
    index.remove(&gone)?;
    for step in missing.chunks(BUILD_STEP) {
        let passages = store.passages_by_ids(step)?;
        add_passages(index, &passages)?;
    }
    index.commit(generation)?;
    if !missing.is_empty() || !gone.is_empty() {
        tracing::info!(
            added = missing.len(),
            removed = gone.len(),
            "the lexical index caught up with the store"
        );
    }
    Ok(())
}

/// A fresh graph over every stored vector, streamed from the store in steps, at the store's
/// generation, frozen into `home` (its segment written there) or in memory. `expected` sizes
/// the graph; `progress` counts the vectors inserted into it.
pub(super) fn build_from_store(
    store: &Store,
    dimension: usize,
    params: HnswParams,
    expected: usize,
    home: Option<&Path>,
    progress: &dyn Progress,
) -> Result<HnswIndex> {
    let mut index = HnswIndex::new(dimension, params, expected)?;
    let mut pending: Vec<(VectorId, Vec<f32>)> = Vec::with_capacity(BUILD_STEP);
    let flush = |pending: &mut Vec<(VectorId, Vec<f32>)>, index: &mut HnswIndex| {
        let items: Vec<(VectorId, &[f32])> =
            pending.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.add(&items)?;
        pending.clear();
        Ok::<_, StorageError>(())
    };
    let generation = store.for_each_vector(|id, vector| {
        pending.push((id, vector));
        if pending.len() == BUILD_STEP {
            flush(&mut pending, &mut index)?;
        }
        Ok::<_, StorageError>(())
    })?;
    flush(&mut pending, &mut index)?;
    index.set_generation(generation);
    if let Err(e) = index.freeze(home, progress) {
        // The graph could not be written (a full disk): it is kept in memory, and written
        // when the index is next saved.
        let Some(dir) = home else {
            return Err(e.into());
        };
        tracing::warn!(error = %e, dir = %dir.display(), "cannot write the rebuilt index; keeping it in memory");
        index.freeze(None, progress)?;
    }
    Ok(index)
}

/// The lexical index for the store behind `store`, brought up to date: as is when current,
/// caught up by chunk id when behind, filled from every stored passage when new or replaced.
/// A read-only engine cannot bring an on-disk index up to date and uses it as it is. On a
/// full disk the catch-up cannot be written: the index is opened as it is and reported not
/// current (`false`), so that the server still starts and serves, and catches it up later.
pub(super) fn open_lexical_index(
    store: &Store,
    dir: &Path,
    writable: bool,
    progress: &dyn Progress,
) -> Result<(LexicalIndex, bool)> {
    let current = store.generation()?;
    let (index, opened) = LexicalIndex::open(dir, writable)?;
    let caught_up = match opened {
        Opened::At(generation) if generation == current => return Ok((index, true)),
        Opened::At(generation) if !writable => {
            tracing::warn!(
                generation,
                current,
                "the lexical index is behind the store and this process may not update it"
            );
            return Ok((index, true));
        }
        Opened::At(_) => reconcile_lexical(store, &index),
        Opened::Empty => {
            let (_, ids) = store.chunk_ids()?;
            if !ids.is_empty() {
                tracing::info!(
                    passages = ids.len(),
                    "building the lexical index from the store"
                );
            }
            fill_lexical(
                store,
                &index,
                ids.len(),
                if ids.len() > BUILD_STEP {
                    progress
                } else {
                    &NoProgress
                },
            )
        }
    };
    match caught_up {
        Ok(()) => Ok((index, true)),
        Err(e) if super::super::exhausted(&e) == Some(super::super::Exhausted::Space) => {
            tracing::warn!(dir = %dir.display(), error = %e, "the disk is full: the lexical index stays behind the store until space is freed");
            Ok((index, false))
        }
        Err(e) => Err(e),
    }
}

/// Adds every stored passage to an empty lexical index and commits it at the store's
/// generation.
fn fill_lexical(
    store: &Store,
    index: &LexicalIndex,
    expected: usize,
    progress: &dyn Progress,
) -> Result<()> {
    progress.set_total(expected as u64);
    let mut pending: Vec<Passage> = Vec::with_capacity(BUILD_STEP);
    let flush = |pending: &mut Vec<Passage>| {
        add_passages(index, pending)?;
        progress.advance(pending.len() as u64);
        pending.clear();
        Ok::<_, StorageError>(())
    };
    let generation = store.for_each_passage(|passage| {
        pending.push(passage);
        if pending.len() == BUILD_STEP {
            flush(&mut pending)?;
        }
        Ok::<_, StorageError>(())
    })?;
    flush(&mut pending)?;
    index.commit(generation)?;
    progress.finish();
    Ok(())
}

/// Indexes stored passages by their words, each after its title and headings, as ingest does.
fn add_passages(index: &LexicalIndex, passages: &[Passage]) -> Result<()> {
    let texts: Vec<std::borrow::Cow<'_, str>> =
        passages.iter().map(Passage::indexed_text).collect();
    let refs: Vec<(VectorId, &str)> = passages
        .iter()
        .zip(&texts)
        .map(|(p, t)| (p.id, t.as_ref()))
        .collect();
    index.add(&refs)?;
    Ok(())
}
