//! The embedded backend: SQLite (the source of truth), an in-process HNSW graph and a tantivy
//! index, in one collection folder that one process writes.
//!
//! Searches run concurrently (a pool of read connections, a read lock on the graph); writers
//! serialise on the store's one write connection, and each document is committed (store
//! transaction, then the graph, then the lexical index) as a unit. The derived indexes are
//! rebuilt or caught up from the store when they are missing or behind. Locks are taken in the
//! order [`crate::storage`] documents: the write connection, then a read connection (only
//! compaction holds both), then the graph, then tantivy's writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::index::{Hit, HnswIndex, SearchParams, VectorIndex};
use crate::lexical::LexicalIndex;
use crate::progress::{NoProgress, Progress};
use crate::storage::backend::{
    Backend, BackendOptions, CandidateQuery, Candidates, CollectionStats, Decision, LexicalKind,
    SearchStrategy, Settled, Written, decide,
};
use crate::storage::types::{
    ChunkRecord, ChunkSpan, DocumentState, DocumentSummary, ModelIdentity, NewChunk, NewDocument,
    StoredDocument,
};
use crate::storage::{Result, StorageError};

use super::indexes;
use super::store::{DirLock, PooledStore, ReadPool, Store};
use super::{index_dir, lexical_dir};

/// Vectors inserted into the HNSW graph per hold of the index's write lock while committing a
/// document (a few milliseconds of work; a 2,000-passage document held it for seconds).
const INDEX_STEP: usize = 64;

/// A data directory's store and derived indexes.
pub struct EmbeddedBackend {
    /// The one write connection: lock 4 of the storage lock order.
    writer: Mutex<Store>,
    readers: ReadPool,
    /// Lock 6. parking_lot's lock, for its fair unlock: a writer adding a long document step
    /// by step hands the lock to waiting searches between steps instead of taking it straight
    /// back.
    index: RwLock<HnswIndex>,
    lexical: LexicalIndex,
    /// Taken with `try_lock` only: one compaction at a time, the others skip their turn.
    compaction: Mutex<()>,
    /// Set under the write connection when the collection is deleted: writes after it fail.
    closed: AtomicBool,
    /// Set when an update of the vector index failed after the store committed (out of
    /// memory, a bug): the index misses some of the store until it is caught up, which every
    /// write tries first; until then it records no generation it does not reflect, so that
    /// a restart catches it up too.
    vectors_stale: AtomicBool,
    /// The same for the lexical index (a full disk, no file descriptor left).
    lexical_stale: AtomicBool,
    dir: PathBuf,
    options: BackendOptions,
    /// Held while the backend lives (absent when read-only).
    _lock: Option<DirLock>,
}

impl EmbeddedBackend {
    /// Opens the collection folder `dir` (creating it and taking its write lock), checks it
    /// was made with `model`, and loads the index from its dump — catching up with the store if
    /// the dump is behind — or rebuilds it from the stored vectors. `progress` shows a rebuild.
    pub fn open(
        dir: &Path,
        model: &ModelIdentity,
        options: BackendOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::open_with(dir, model, options, progress, true)
    }

    /// [`EmbeddedBackend::open`], taking the folder's write lock only when `take_lock` (the
    /// catalog holds it already for the data directory's own collection).
    pub(super) fn open_with(
        dir: &Path,
        model: &ModelIdentity,
        options: BackendOptions,
        progress: &dyn Progress,
        take_lock: bool,
    ) -> Result<Self> {
        options.hnsw.validate()?;
        let lock = if options.read_only || !take_lock {
            None
        } else {
            Some(DirLock::acquire(dir)?)
        };
        let writer = Store::open(dir, model)?;
        let readers = ReadPool::open(dir, model, options.read_connections)?;
        let index = indexes::open_vector_index(
            &*readers.get()?,
            &index_dir(dir),
            model.dimension,
            options.hnsw,
            !options.read_only,
            progress,
        )?;
        let (lexical, lexical_current) = indexes::open_lexical_index(
            &*readers.get()?,
            &lexical_dir(dir),
            !options.read_only,
            progress,
        )?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            index: RwLock::new(index),
            lexical,
            compaction: Mutex::new(()),
            closed: AtomicBool::new(false),
            vectors_stale: AtomicBool::new(false),
            lexical_stale: AtomicBool::new(!lexical_current && !options.read_only),
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
        })
    }

    /// A read connection from the pool.
    fn reader(&self) -> Result<PooledStore> {
        Ok(self.readers.get()?)
    }

    /// The write connection; fails on a read-only or closed backend.
    fn writer_for_update(&self) -> Result<MutexGuard<'_, Store>> {
        self.check_writable()?;
        let writer = self.writer.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(StorageError::CollectionNotFound(String::new()));
        }
        Ok(writer)
    }

    /// Catches a stale index up with the store (the caller holds the write connection, so the
    /// store does not move meanwhile). A failure leaves it stale, for the next write or start.
    fn repair(&self, writer: &Store) {
        if self.vectors_stale.load(Ordering::SeqCst) {
            let mut ix = self.write_index();
            match indexes::reconcile_vectors(writer, &mut ix) {
                Ok(()) => {
                    self.vectors_stale.store(false, Ordering::SeqCst);
                    tracing::info!(dir = %self.dir.display(), "the vector index caught up with the store");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "the vector index is still behind the store")
                }
            }
        }
        if self.lexical_stale.load(Ordering::SeqCst) {
            match indexes::reconcile_lexical(writer, &self.lexical) {
                Ok(()) => {
                    self.lexical_stale.store(false, Ordering::SeqCst);
                    tracing::info!(dir = %self.dir.display(), "the lexical index caught up with the store");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "the lexical index is still behind the store")
                }
            }
        }
    }

    /// Applies a committed write to the derived indexes: `removed` passages out, `added` in.
    /// The store holds the write whatever happens here: an index that fails is marked stale
    /// (caught up by the next write or at the next start), and the write is still
    /// acknowledged, since it is stored.
    fn apply(
        &self,
        key: &str,
        generation: u64,
        removed: &[u64],
        added: &[(u64, &[f32])],
        words: &[(u64, &str)],
    ) {
        let vectors = (|| -> Result<()> {
            fail_at("storage.vectors", key)?;
            // The index's write lock is taken per step, not for the whole document: a search
            // waits for one step at most, never for all of a long document's insertions.
            // Between steps a search may see part of the new version (every hit it gets is a
            // committed passage); the old version is gone from the first step.
            self.write_index().remove(removed);
            for step in added.chunks(INDEX_STEP) {
                let mut ix = self.write_index();
                ix.add(step)?;
                // Searches waiting for the lock get it before this loop takes it again.
                parking_lot::RwLockWriteGuard::unlock_fair(ix);
            }
            if !self.vectors_stale.load(Ordering::SeqCst) {
                self.write_index().set_generation(generation);
            }
            Ok(())
        })();
        if let Err(e) = vectors {
            self.vectors_stale.store(true, Ordering::SeqCst);
            tracing::error!(dir = %self.dir.display(), error = %e, "the vector index missed a stored write; catching it up at the next write or start");
        }
        // The lexical index takes the same changes; they become searchable at its next commit
        // ([`Backend::flush`]), and a crash before that is caught up from the store on the
        // next start.
        let lexical = (|| -> Result<()> {
            fail_at("storage.lexical", key)?;
            self.lexical.remove(removed)?;
            self.lexical.add(words)?;
            Ok(())
        })();
        if let Err(e) = lexical {
            self.lexical_stale.store(true, Ordering::SeqCst);
            tracing::error!(dir = %self.dir.display(), error = %e, "the lexical index missed a stored write; catching it up at the next write or start");
        }
    }

    /// Commits the lexical index at `generation`, unless it is stale (it would record a
    /// generation it does not reflect): then it is caught up first, or left uncommitted.
    fn commit_lexical(&self, writer: &Store, generation: u64) {
        self.repair(writer);
        if self.lexical_stale.load(Ordering::SeqCst) {
            return;
        }
        let committed = (|| -> Result<()> {
            fail_at("storage.lexical_commit", &self.dir.to_string_lossy())?;
            Ok(self.lexical.commit(generation)?)
        })();
        if let Err(e) = committed {
            self.lexical_stale.store(true, Ordering::SeqCst);
            tracing::error!(dir = %self.dir.display(), error = %e, "the lexical index could not commit; catching it up at the next write or start");
        }
    }

    fn read_index(&self) -> RwLockReadGuard<'_, HnswIndex> {
        self.index.read()
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, HnswIndex> {
        self.index.write()
    }

    /// Folds the vectors added since the graph was last frozen into it once enough have come,
    /// off the index's lock (searches and writes go on; only the swap takes the write lock).
    /// Called with the compaction lock held; returns whether a fold happened.
    fn fold(&self) -> Result<bool> {
        let due = {
            let ix = self.read_index();
            // The first graph is due once queries stop being exact.
            let first = ix.frozen_len() == 0 && ix.len() >= self.options.exact_below;
            ix.tail_len() > 0 && (ix.fold_due() || first)
        };
        if self.options.read_only || !due {
            return Ok(false);
        }
        let job = self.write_index().start_fold();
        let folded = job.len();
        let done = job.run(Some(&index_dir(&self.dir)))?;
        let mut ix = self.write_index();
        ix.finish_fold(done)?;
        tracing::info!(
            folded,
            frozen = ix.frozen_len(),
            tail = ix.tail_len(),
            "folded new vectors into the HNSW graph"
        );
        Ok(true)
    }

    /// The `depth` passages nearest to a unit query vector among `allowed`, exactly or through
    /// the graph as the corpus size and filter selectivity call for.
    fn dense(
        &self,
        ix: &HnswIndex,
        vector: &[f32],
        depth: usize,
        query: &CandidateQuery<'_>,
        allowed: Option<&[u64]>,
    ) -> Result<(Vec<Hit>, SearchStrategy)> {
        let live = ix.len();
        let ef = query.ef.unwrap_or(ix.params().ef_search);
        let approximate = SearchParams { ef, exact: false };
        let exact = SearchParams { ef, exact: true };
        Ok(match allowed {
            None if query.exact || live < self.options.exact_below => (
                ix.search(vector, depth, exact, None)?,
                SearchStrategy::Exact,
            ),
            None => (
                ix.search(vector, depth, approximate, None)?,
                SearchStrategy::Hnsw,
            ),
            Some(ids) => {
                // Selective filters: scoring the allowed vectors beats walking a graph
                // whose neighbours are mostly excluded.
                let selective =
                    ids.len() <= self.options.exact_below.max(depth) || ids.len() * 10 < live;
                if query.exact || selective {
                    (
                        ix.search_among(vector, ids, depth)?,
                        SearchStrategy::ExactFiltered,
                    )
                } else {
                    let pass = |id: u64| ids.binary_search(&id).is_ok();
                    (
                        ix.search(vector, depth, approximate, Some(&pass))?,
                        SearchStrategy::HnswFiltered,
                    )
                }
            }
        })
    }
}

impl Backend for EmbeddedBackend {
    fn stats(&self) -> Result<CollectionStats> {
        let (documents, chunks) = self.reader()?.counts()?;
        let ix = self.read_index();
        Ok(CollectionStats {
            documents,
            chunks,
            indexed: ix.len(),
            tombstones: ix.tombstones(),
            index_kind: ix.kind(),
            hnsw: ix.params(),
            exact_below: self.options.exact_below,
            vector_bytes: ix.vector_bytes(),
            index_memory_bytes: ix.memory_bytes(),
            lexical: self.lexical.stats(),
            lexical_kind: LexicalKind {
                ranking: "tantivy (BM25)",
                analyzer: crate::lexical::analyzer::ANALYZER,
            },
        })
    }

    fn document_state(&self, id: &str) -> Result<Option<DocumentState>> {
        Ok(self.reader()?.document_state(id)?)
    }

    fn write(
        &self,
        doc: &NewDocument<'_>,
        passages: Option<&[NewChunk<'_>]>,
        deleted_since: &dyn Fn(Option<&DocumentState>) -> bool,
    ) -> Result<Written> {
        // Hold the write connection until the index reflects this commit, so that concurrent
        // writers apply their index changes in commit order and the index's generation always
        // names a state the store was in.
        let mut writer = self.writer_for_update()?;
        self.repair(&writer);
        let state = writer.document_state(doc.id)?;
        if deleted_since(state.as_ref()) {
            return Ok(Written::Settled(Settled::Deleted));
        }
        let existed = match decide(state.as_ref(), doc) {
            Decision::Unchanged => return Ok(Written::Settled(Settled::Unchanged)),
            Decision::MetadataOnly => {
                writer.set_metadata(doc.id, doc.metadata)?;
                return Ok(Written::Settled(Settled::MetadataUpdated));
            }
            Decision::Passages { existed } => existed,
        };
        let Some(passages) = passages else {
            return Ok(Written::NeedsPassages);
        };
        fail_at("storage.store", doc.id)?;
        let outcome = writer.put_document(doc, passages)?;
        let items: Vec<(u64, &[f32])> = outcome
            .added
            .iter()
            .copied()
            .zip(passages.iter().map(|p| p.vector))
            .collect();
        let texts: Vec<std::borrow::Cow<'_, str>> = passages
            .iter()
            .map(|p| crate::chunk::contextual_text(doc.context_title(), p.section, p.text))
            .collect();
        let words: Vec<(u64, &str)> = outcome
            .added
            .iter()
            .copied()
            .zip(texts.iter().map(|t| t.as_ref()))
            .collect();
        self.apply(doc.id, outcome.generation, &outcome.removed, &items, &words);
        Ok(Written::Stored { existed })
    }

    fn delete(&self, id: &str, on_deleted: &dyn Fn()) -> Result<Option<usize>> {
        let mut writer = self.writer_for_update()?;
        self.repair(&writer);
        fail_at("storage.store", id)?;
        let Some(outcome) = writer.delete_document(id)? else {
            return Ok(None);
        };
        self.apply(id, outcome.generation, &outcome.removed, &[], &[]);
        self.commit_lexical(&writer, outcome.generation);
        // Committed, and out of both indexes: a writer of this id waiting for the write
        // connection sees the mark.
        on_deleted();
        Ok(Some(outcome.removed.len()))
    }

    fn check_writable(&self) -> Result<()> {
        if self.options.read_only {
            return Err(StorageError::ReadOnly(self.dir.clone()));
        }
        Ok(())
    }

    /// Commits the lexical index. The write connection is held so that the generation recorded
    /// is exactly the one whose passages the index holds.
    fn flush(&self) -> Result<()> {
        if !self.lexical.has_uncommitted() && !self.lexical_stale.load(Ordering::SeqCst) {
            return Ok(());
        }
        let writer = self.writer_for_update()?;
        let generation = writer.generation()?;
        self.commit_lexical(&writer, generation);
        Ok(())
    }

    fn document(&self, id: &str) -> Result<Option<StoredDocument>> {
        Ok(self.reader()?.get_document(id)?)
    }

    fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        Ok(self.reader()?.list_documents(limit, offset)?)
    }

    fn document_chunks(&self, id: &str) -> Result<Option<Vec<ChunkSpan>>> {
        Ok(self.reader()?.document_chunks(id)?)
    }

    fn candidates(&self, query: &CandidateQuery<'_>) -> Result<Candidates> {
        let allowed = if query.filter.is_empty() {
            None
        } else {
            Some(self.reader()?.chunk_ids_matching(query.filter)?)
        };
        let vector = query.vector.filter(|_| query.dense_depth > 0);
        // The index lock is taken here, never inside a job on the search threads
        // (`engine::parallel`): a job that waited for it could block the threads a query
        // holding it needs.
        let ix = vector.map(|_| self.read_index());
        let dense = || match (vector, ix.as_deref()) {
            (Some(vector), Some(ix)) => self
                .dense(ix, vector, query.dense_depth, query, allowed.as_deref())
                .map(|(hits, strategy)| (hits, Some(strategy))),
            _ => Ok((Vec::new(), None)),
        };
        let lexical = || -> Result<Vec<Hit>> {
            if query.lexical_depth == 0 {
                return Ok(Vec::new());
            }
            Ok(self
                .lexical
                .search(query.text, query.lexical_depth, allowed.as_deref())?)
        };
        // A hybrid query's two retrievers share nothing: each gets a core.
        let (dense, lexical) = if vector.is_some() && query.lexical_depth > 0 {
            crate::engine::parallel::join(dense, lexical)
        } else {
            (dense(), lexical())
        };
        let ((dense, strategy), lexical) = (dense?, lexical?);
        Ok(Candidates {
            dense,
            lexical,
            strategy,
        })
    }

    /// Its `lexical_among` (tantivy) and `visit_token_vectors` (the read pool) take no lock a
    /// writer holds; `dense_among` takes the index's and is called on the query's thread.
    fn reads_are_local(&self) -> bool {
        true
    }

    fn dense_among(&self, vector: &[f32], ids: &[u64]) -> Result<Vec<Hit>> {
        Ok(self.read_index().search_among(vector, ids, ids.len())?)
    }

    fn vectors_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, Vec<f32>>> {
        Ok(self.read_index().vectors_of(ids)?.into_iter().collect())
    }

    fn lexical_among(&self, text: &str, ids: &[u64]) -> Result<Vec<Hit>> {
        Ok(self.lexical.score_among(text, ids)?)
    }

    fn visit_token_vectors(&self, ids: &[u64], visit: &mut dyn FnMut(u64, &[u8])) -> Result<()> {
        self.reader()?.visit_token_vectors(ids, visit)?;
        Ok(())
    }

    fn chunks_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, ChunkRecord>> {
        Ok(self.reader()?.chunks_by_ids(ids)?)
    }

    /// Waits for the write in flight (the write connection), then refuses every later one.
    fn close(&self) {
        let _writer = self.writer.lock();
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Writes the index dump so that the next start loads instead of rebuilding. A read-only
    /// or closed (deleted) backend saves nothing.
    fn persist(&self) -> Result<()> {
        if self.options.read_only || self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.read_index().save(&index_dir(&self.dir))?;
        Ok(())
    }

    /// Rebuilds the graph without its deleted vectors once they pass the configured share.
    /// Searches and writes go on meanwhile; returns whether a rebuild happened.
    ///
    /// The new graph is built from the store (the old graph holds the only other copy of the
    /// vectors, so memory peaks at two graphs, never three copies). What changed during the
    /// build is replayed with writers paused, and the graphs are swapped.
    fn maintain(&self) -> Result<bool> {
        let Some(_only_one) = self.compaction.try_lock() else {
            return Ok(false);
        };
        if self.options.read_only || self.closed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let (due, held) = {
            let ix = self.read_index();
            let held = ix.indexed_ids().len();
            (
                held > 0 && ix.tombstones() as f64 > self.options.compact_ratio * held as f64,
                held,
            )
        };
        if !due {
            return self.fold();
        }
        let dimension = self.read_index().dimension();
        let home = index_dir(&self.dir);
        let mut fresh = indexes::build_from_store(
            &*self.reader()?,
            dimension,
            self.options.hnsw,
            held,
            (!self.options.read_only).then_some(home.as_path()),
            &NoProgress,
        )?;
        // Writers commit to the store and then to the index under the write connection: holding
        // it makes the index exactly as current as the store while the difference is replayed.
        let writer = self.writer.lock();
        let mut ix = self.write_index();
        if self.vectors_stale.load(Ordering::SeqCst) {
            // The old graph misses writes: the store, not it, says what the new one holds.
            indexes::reconcile_vectors(&writer, &mut fresh)?;
            self.vectors_stale.store(false, Ordering::SeqCst);
        } else if ix.generation() != fresh.generation() {
            let live_now: Vec<u64> = ix
                .indexed_ids()
                .iter()
                .copied()
                .filter(|&id| ix.contains(id))
                .collect();
            let added: Vec<u64> = live_now
                .iter()
                .copied()
                .filter(|&id| !fresh.contains(id))
                .collect();
            let live: std::collections::HashSet<u64> = live_now.into_iter().collect();
            let removed: Vec<u64> = fresh
                .indexed_ids()
                .iter()
                .copied()
                .filter(|id| !live.contains(id))
                .collect();
            let vectors = writer.vectors_by_ids(&added)?;
            let items: Vec<(u64, &[f32])> =
                vectors.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            fresh.add(&items)?;
            fresh.remove(&removed);
        }
        if fresh.generation() != writer.generation()? {
            fresh.set_generation(ix.generation());
        }
        let vectors = fresh.len();
        *ix = fresh;
        drop(ix);
        drop(writer);
        tracing::info!(vectors, "compacted the HNSW graph");
        Ok(true)
    }

    fn passages_without_token_vectors(&self, limit: usize) -> Result<Vec<(u64, String)>> {
        Ok(self.reader()?.passages_without_token_vectors(limit)?)
    }

    fn count_without_token_vectors(&self) -> Result<usize> {
        if self.options.read_only {
            return Ok(0);
        }
        Ok(self.reader()?.count_without_token_vectors()?)
    }

    fn put_token_vectors(&self, items: &[(u64, Vec<u8>)]) -> Result<()> {
        self.writer_for_update()?.put_token_vectors(items)?;
        Ok(())
    }
}

/// The failure a test injected at `point` ([`crate::hooks::inject_failure`]), as a storage
/// error.
fn fail_at(point: &'static str, key: &str) -> Result<()> {
    match crate::hooks::injected_failure(point, key) {
        Some(message) => Err(StorageError::Io {
            name: key.to_string(),
            action: point,
            path: PathBuf::new(),
            source: std::io::Error::other(message),
        }),
        None => Ok(()),
    }
}
