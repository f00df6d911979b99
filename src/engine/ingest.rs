//! Writing documents: validate, skip unchanged ones, chunk, embed in batches, commit each
//! document (store transaction, then index) as a unit.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sha2::Digest;

use crate::chunk::Chunk;
use crate::index::VectorIndex;
use crate::progress::Progress;
use crate::store::{ChunkSpan, DocumentSummary, NewChunk, NewDocument, Store, StoredDocument};

use super::claims::Claim;

use super::{Engine, EngineError, MAX_ID_BYTES, Result};

/// A document to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentInput {
    /// Stable id: re-ingesting the same id replaces the document.
    pub id: String,
    /// Full text (UTF-8, not blank).
    pub text: String,
    /// User metadata, filterable by key.
    pub metadata: Map<String, Value>,
    /// Where it came from (a path, "stdin", "api"), if known.
    pub source: Option<String>,
}

/// What ingesting a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestStatus {
    /// A new document.
    Created,
    /// An existing document with new text: its chunks were replaced.
    Updated,
    /// Same text, new metadata: metadata replaced, nothing re-embedded.
    MetadataUpdated,
    /// Same text and metadata: nothing done.
    Unchanged,
    /// A DELETE of this id ran while the document was being embedded: the delete comes after
    /// this ingest, so nothing of it is stored.
    Deleted,
}

impl IngestStatus {
    /// A lowercase name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::MetadataUpdated => "metadata_updated",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
        }
    }
}

/// The outcome for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// The document's id.
    pub id: String,
    /// What happened.
    pub status: IngestStatus,
    /// Chunks the document has now.
    pub chunks: usize,
}

/// How often a long ingest commits the lexical index (each commit costs a segment flush).
const LEXICAL_COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Vectors inserted into the HNSW graph per hold of the index's write lock while committing a
/// document (a few milliseconds of work; a 2,000-passage document held it for seconds).
const INDEX_STEP: usize = 64;

/// A document chunked and waiting for its vectors.
struct Pending<'a> {
    /// Held until the document is committed (or abandoned): see [`super::claims`].
    claim: Claim<'a>,
    input: DocumentInput,
    /// The document's title, embedded with each of its passages for context.
    title: Option<String>,
    hash: String,
    chunks: Vec<Chunk>,
    vectors: Vec<Vec<f32>>,
    /// Each embedded chunk's token vectors, packed for the store.
    tokens: Vec<Vec<u8>>,
}

impl Pending<'_> {
    fn complete(&self) -> bool {
        self.vectors.len() == self.chunks.len()
    }
}

/// Chunks flow through here in document order: they are embedded in full batches, and each
/// document is committed as soon as all of its chunks have vectors.
#[derive(Default)]
struct Pipeline<'a> {
    /// Documents waiting, oldest first.
    queue: std::collections::VecDeque<Pending<'a>>,
    /// Chunks of queued documents not yet embedded.
    waiting: usize,
}

/// Hash of a document's text, for change detection.
pub fn content_hash(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks one document; the message names the offending id.
pub fn validate(doc: &DocumentInput) -> Result<()> {
    let id = &doc.id;
    if id.trim().is_empty() {
        return Err(EngineError::InvalidRequest(
            "document id must not be empty".into(),
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(EngineError::InvalidRequest(format!(
            "document id is {} bytes long; the limit is {MAX_ID_BYTES}",
            id.len()
        )));
    }
    if doc.text.trim().is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "document {id:?} has no text"
        )));
    }
    crate::filter::check_metadata(&doc.metadata)
        .map_err(|e| EngineError::InvalidRequest(format!("document {id:?}: {e}")))?;
    Ok(())
}

impl Engine {
    /// Ingests documents. All are validated first (nothing is written if one is invalid);
    /// then each is committed whole — chunks, vectors and index entries — or not at all.
    /// `progress` counts bytes of text.
    pub fn ingest(
        &self,
        docs: Vec<DocumentInput>,
        progress: &dyn Progress,
    ) -> Result<Vec<IngestReport>> {
        if self.options.read_only {
            return Err(EngineError::ReadOnly(self.options.data_dir.clone()));
        }
        let mut ids = HashSet::with_capacity(docs.len());
        for doc in &docs {
            validate(doc)?;
            if !ids.insert(doc.id.as_str()) {
                return Err(EngineError::InvalidRequest(format!(
                    "document id {:?} appears twice in one request",
                    doc.id
                )));
            }
        }
        progress.set_total(docs.iter().map(|d| d.text.len() as u64).sum());
        let batch = self.options.ingest_batch.max(1);
        let mut lexical_committed = std::time::Instant::now();
        let mut reports = Vec::with_capacity(docs.len());
        let mut pipeline = Pipeline::default();
        for input in docs {
            let hash = content_hash(&input.text);
            let (claim, state) = self
                .claims
                .claim(&input.id, || self.reader().document_state(&input.id))?;
            if state.is_some_and(|s| s.content_hash == hash) {
                // Probably nothing to embed; decided under the write connection.
                let mut writer = self.writer_for_update()?;
                if let Some(status) = self.settle_same_text(&mut writer, &claim, &input, &hash)? {
                    drop(writer);
                    progress.advance(input.text.len() as u64);
                    reports.push(IngestReport {
                        chunks: self.chunk_count_if(status, &input.id)?,
                        id: input.id,
                        status,
                    });
                    continue;
                }
            }
            let chunks = self.chunker.chunk(&input.id, &input.text);
            pipeline.waiting += chunks.len();
            let title = self
                .options
                .title_context
                .then(|| crate::chunk::document_title(&input.text, &input.metadata))
                .flatten();
            pipeline.queue.push_back(Pending {
                claim,
                title,
                vectors: Vec::with_capacity(chunks.len()),
                tokens: Vec::with_capacity(chunks.len()),
                input,
                hash,
                chunks,
            });
            while pipeline.waiting >= batch {
                self.embed_next(&mut pipeline, batch, progress)?;
                reports.extend(self.commit_ready(&mut pipeline, progress)?);
                // A long ingest makes its passages searchable by words as it goes.
                if lexical_committed.elapsed() >= LEXICAL_COMMIT_EVERY {
                    self.commit_lexical()?;
                    lexical_committed = std::time::Instant::now();
                }
            }
        }
        while pipeline.waiting > 0 {
            self.embed_next(&mut pipeline, batch, progress)?;
        }
        reports.extend(self.commit_ready(&mut pipeline, progress)?);
        self.commit_lexical()?;
        progress.finish();
        Ok(reports)
    }

    /// Embeds the next `batch` waiting chunks (fewer at the end), in document order.
    fn embed_next(
        &self,
        pipeline: &mut Pipeline<'_>,
        batch: usize,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut slots: Vec<(usize, usize)> = Vec::with_capacity(batch);
        for (d, p) in pipeline.queue.iter().enumerate() {
            for c in p.vectors.len()..p.chunks.len() {
                if slots.len() == batch {
                    break;
                }
                slots.push((d, c));
            }
        }
        let texts: Vec<std::borrow::Cow<'_, str>> = slots
            .iter()
            .map(|&(d, c)| {
                let p = &pipeline.queue[d];
                crate::chunk::with_title(p.title.as_deref(), &p.chunks[c].text)
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let embeddings = self.encoder.embed_with_tokens(&refs)?;
        progress.advance(
            slots
                .iter()
                .map(|&(d, c)| pipeline.queue[d].chunks[c].text.len() as u64)
                .sum(),
        );
        drop(texts);
        for (&(d, _), embedding) in slots.iter().zip(embeddings) {
            let tokens = self.pack_tokens(&embedding);
            pipeline.queue[d].vectors.push(embedding.unit);
            pipeline.queue[d].tokens.push(tokens);
        }
        pipeline.waiting -= slots.len();
        Ok(())
    }

    /// Commits every fully embedded document at the front of the pipeline.
    fn commit_ready(
        &self,
        pipeline: &mut Pipeline<'_>,
        progress: &dyn Progress,
    ) -> Result<Vec<IngestReport>> {
        let mut reports = Vec::new();
        while pipeline.queue.front().is_some_and(Pending::complete) {
            let Some(p) = pipeline.queue.pop_front() else {
                break;
            };
            reports.push(self.commit(p, progress)?);
        }
        Ok(reports)
    }

    /// Writes one document (store transaction, then index) as a unit. What it reports is
    /// decided here, under the write connection, from what the store holds now: commits are
    /// the serial order of writes to an id.
    fn commit(&self, p: Pending<'_>, progress: &dyn Progress) -> Result<IngestReport> {
        // Whitespace between chunks never reaches the encoder; count it now.
        let embedded: usize = p.chunks.iter().map(|c| c.text.len()).sum();
        progress.advance(p.input.text.len().saturating_sub(embedded) as u64);
        let chunks: Vec<NewChunk> = p
            .chunks
            .iter()
            .zip(&p.vectors)
            .zip(&p.tokens)
            .map(|((c, v), t)| NewChunk {
                index: c.index,
                start: c.start,
                end: c.end,
                text: &c.text,
                vector: v,
                tokens: Some(t),
            })
            .collect();
        let doc = NewDocument {
            id: &p.input.id,
            source: p.input.source.as_deref(),
            text: &p.input.text,
            metadata: &p.input.metadata,
            content_hash: &p.hash,
            title: p.title.as_deref(),
        };
        let existed = {
            // Hold the write connection until the index reflects this commit, so that
            // concurrent writers apply their index changes in commit order and the index's
            // generation always names a state the store was in.
            let mut writer = self.writer_for_update()?;
            if let Some(status) = self.settle_same_text(&mut writer, &p.claim, &p.input, &p.hash)? {
                // Deleted meanwhile, or the same text committed by a concurrent ingest.
                drop(writer);
                return Ok(IngestReport {
                    chunks: self.chunk_count_if(status, &p.input.id)?,
                    id: p.input.id,
                    status,
                });
            }
            let existed = writer.document_state(&p.input.id)?.is_some();
            let outcome = writer.put_document(&doc, &chunks)?;
            let items: Vec<(u64, &[f32])> = outcome
                .added
                .iter()
                .copied()
                .zip(p.vectors.iter().map(Vec::as_slice))
                .collect();
            // The index's write lock is taken per step, not for the whole document: a search
            // waits for one step at most, never for all of a long document's insertions.
            // Between steps a search may see part of the new version (every hit it gets is a
            // committed passage); the old version is gone from the first step.
            self.write_index().remove(&outcome.removed);
            for step in items.chunks(INDEX_STEP) {
                let mut ix = self.write_index();
                ix.add(step)?;
                // Searches waiting for the lock get it before this loop takes it again.
                parking_lot::RwLockWriteGuard::unlock_fair(ix);
            }
            self.write_index().set_generation(outcome.generation);
            // The lexical index takes the same changes; they become searchable at its next
            // commit (the end of this ingest call), and a crash before that is caught up
            // from the store on the next start.
            let texts: Vec<std::borrow::Cow<'_, str>> = p
                .chunks
                .iter()
                .map(|c| crate::chunk::with_title(p.title.as_deref(), &c.text))
                .collect();
            let passages: Vec<(u64, &str)> = outcome
                .added
                .iter()
                .copied()
                .zip(texts.iter().map(|t| t.as_ref()))
                .collect();
            self.lexical.remove(&outcome.removed)?;
            self.lexical.add(&passages)?;
            existed
        };
        Ok(IngestReport {
            id: p.input.id,
            status: if existed {
                IngestStatus::Updated
            } else {
                IngestStatus::Created
            },
            chunks: p.chunks.len(),
        })
    }

    /// The status of an ingest that needs no new vectors, decided under the write connection
    /// `writer`: `Deleted` when a delete of the id ran since `claim` read its state; `Unchanged`
    /// or `MetadataUpdated` (written here) when the store holds the same text; `None` when the
    /// text must be embedded and written.
    fn settle_same_text(
        &self,
        writer: &mut Store,
        claim: &Claim<'_>,
        input: &DocumentInput,
        hash: &str,
    ) -> Result<Option<IngestStatus>> {
        if claim.deleted_since() {
            return Ok(Some(IngestStatus::Deleted));
        }
        match writer.document_state(&input.id)? {
            Some(state) if state.content_hash == hash => {
                if state.metadata == input.metadata {
                    Ok(Some(IngestStatus::Unchanged))
                } else {
                    writer.set_metadata(&input.id, &input.metadata)?;
                    Ok(Some(IngestStatus::MetadataUpdated))
                }
            }
            _ => Ok(None),
        }
    }

    /// The chunk count to report for `status`, `id` (none for a deleted document).
    fn chunk_count_if(&self, status: IngestStatus, id: &str) -> Result<usize> {
        if status == IngestStatus::Deleted {
            return Ok(0);
        }
        Ok(self.reader().get_document(id)?.map_or(0, |d| d.chunks))
    }

    /// Deletes a document and its chunks; its vectors stop appearing in results at once.
    /// Returns how many chunks it had.
    pub fn delete(&self, id: &str) -> Result<usize> {
        let mut writer = self.writer_for_update()?;
        let outcome = self
            .claims
            .delete(id, || writer.delete_document(id))?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        let mut ix = self.write_index();
        ix.remove(&outcome.removed);
        ix.set_generation(outcome.generation);
        drop(ix);
        self.lexical.remove(&outcome.removed)?;
        self.lexical.commit(outcome.generation)?;
        Ok(outcome.removed.len())
    }

    /// A passage's token vectors in their stored form (empty when the embedding has none).
    fn pack_tokens(&self, embedding: &crate::embed::Embedding) -> Vec<u8> {
        let matrix = self.query_tokens(embedding).unwrap_or_else(|| {
            crate::late::TokenMatrix::from_states(&Default::default(), &self.token_filter)
        });
        crate::late::PackedTokens::pack(&matrix).to_bytes()
    }

    /// Gives every stored passage that has no token vectors (stored before they existed) its
    /// token vectors, by embedding it again; `progress` counts passages.
    pub(super) fn fill_token_vectors(&self, progress: &dyn Progress) -> Result<()> {
        let missing = self.reader().count_without_token_vectors()?;
        if missing == 0 || self.options.read_only {
            return Ok(());
        }
        tracing::info!(
            passages = missing,
            "computing token vectors for passages stored before late interaction existed"
        );
        progress.set_total(missing as u64);
        let batch = self.options.ingest_batch.max(1);
        loop {
            let passages = self.reader().passages_without_token_vectors(batch)?;
            if passages.is_empty() {
                break;
            }
            let texts: Vec<&str> = passages.iter().map(|(_, t)| t.as_str()).collect();
            let packed: Vec<(u64, Vec<u8>)> = self
                .encoder
                .embed_with_tokens(&texts)?
                .iter()
                .zip(&passages)
                .map(|(e, (id, _))| (*id, self.pack_tokens(e)))
                .collect();
            self.writer_for_update()?.put_token_vectors(&packed)?;
            progress.advance(packed.len() as u64);
        }
        progress.finish();
        Ok(())
    }

    /// Makes the lexical index's pending writes searchable. The write connection is held so
    /// that the generation recorded is exactly the one whose passages the index holds.
    fn commit_lexical(&self) -> Result<()> {
        if !self.lexical.has_uncommitted() {
            return Ok(());
        }
        let writer = self.writer_for_update()?;
        self.lexical.commit(writer.generation()?)?;
        Ok(())
    }

    /// A whole stored document.
    pub fn document(&self, id: &str) -> Result<StoredDocument> {
        self.reader()
            .get_document(id)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    /// Documents in id order, without their text.
    pub fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        Ok(self.reader().list_documents(limit, offset)?)
    }

    /// Where a stored document's passages lie (byte offsets), in order.
    pub fn document_chunks(&self, id: &str) -> Result<Vec<ChunkSpan>> {
        self.reader()
            .document_chunks(id)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }
}
