//! Writing documents: validate, skip unchanged ones, chunk, embed in batches, commit each
//! document (store transaction, then index) as a unit.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sha2::Digest;

use crate::chunk::Chunk;
use crate::progress::Progress;
use crate::storage::{
    ChunkSpan, DocumentState, DocumentSummary, NewChunk, NewDocument, Settled, StoredDocument,
    Written,
};

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
    /// Title, sections and pages of an extracted file (offsets into `text`): passages are
    /// cut within sections and carry their heading path and pages. `None` for plain text.
    pub structure: Option<crate::extract::Structure>,
    /// The format the text was extracted from, stored with it; `None` for text given as
    /// text.
    pub format: Option<crate::extract::Format>,
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

impl From<Settled> for IngestStatus {
    fn from(settled: Settled) -> Self {
        match settled {
            Settled::Unchanged => Self::Unchanged,
            Settled::MetadataUpdated => Self::MetadataUpdated,
            Settled::Deleted => Self::Deleted,
        }
    }
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

/// What an ingest that may be told to stop did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ingested {
    /// The documents settled so far (committed, unchanged, deleted meanwhile), in the order
    /// they were settled.
    pub reports: Vec<IngestReport>,
    /// Whether it stopped before every document was settled: the others were not written.
    pub stopped: bool,
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

/// How often a long ingest makes its passages searchable by words (an embedded backend's
/// commit costs a segment flush).
const LEXICAL_COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A document chunked and waiting for its vectors.
struct Pending<'a> {
    /// Held until the document is committed (or abandoned): see [`super::claims`].
    claim: Claim<'a>,
    /// Whether the store held the id when the claim read its state.
    existed: bool,
    input: DocumentInput,
    /// The document's title, stored and shown with its passages.
    title: Option<String>,
    /// Whether each passage is embedded (and indexed) after `title`.
    title_in_context: bool,
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

    /// The title its passages are embedded after, if any.
    fn context_title(&self) -> Option<&str> {
        self.title.as_deref().filter(|_| self.title_in_context)
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

/// Whether a delete of the claimed id came after the claim read its state: one in this
/// process marked the claim, or (another process sharing the storage) the document the claim
/// saw is gone now.
fn deleted_since(claim: &Claim<'_>, existed: bool, now: Option<&DocumentState>) -> bool {
    claim.deleted_since() || (existed && now.is_none())
}

/// The store's view of an input document (`title`: its title, and whether its passages were
/// embedded after it).
fn new_document<'a>(
    input: &'a DocumentInput,
    hash: &'a str,
    title: (Option<&'a str>, bool),
) -> NewDocument<'a> {
    NewDocument {
        id: &input.id,
        source: input.source.as_deref(),
        text: &input.text,
        metadata: &input.metadata,
        content_hash: hash,
        title: title.0,
        title_in_context: title.1 && title.0.is_some(),
        format: input.format.map(crate::extract::Format::as_str),
    }
}

/// The title a document's passages are embedded after: its `title` metadata, else the title
/// extraction found, else a heading first line ([`crate::chunk::document_title`]).
fn document_title(input: &DocumentInput) -> Option<String> {
    let given = input.metadata.get("title").and_then(Value::as_str);
    match (&input.structure, given) {
        (Some(structure), None) => structure
            .title
            .clone()
            .or_else(|| crate::chunk::document_title(&input.text, &input.metadata)),
        _ => crate::chunk::document_title(&input.text, &input.metadata),
    }
}

/// The title a document is shown with when its passages are not embedded after one: its
/// `title` metadata, else the title extraction found (no guess from a first line).
fn shown_title(input: &DocumentInput) -> Option<String> {
    let given = input
        .metadata
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty());
    given
        .map(str::to_string)
        .or_else(|| input.structure.as_ref().and_then(|s| s.title.clone()))
}

/// Checks one document; the message names the offending id.
pub fn validate(doc: &DocumentInput) -> Result<()> {
    let id = &doc.id;
    if id.trim().is_empty() {
        return Err(EngineError::InvalidRequest(
            "document id must not be empty".into(),
        ));
    }
    if id == "." || id == ".." {
        return Err(EngineError::InvalidRequest(format!(
            "document id {id:?} is not allowed: clients and proxies that normalise paths cannot reach /documents/{id}"
        )));
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
    if let Some(structure) = &doc.structure {
        structure
            .check(&doc.text)
            .map_err(|e| EngineError::InvalidRequest(format!("document {id:?}: {e}")))?;
    }
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
        Ok(self.ingest_until(docs, progress, &|| false)?.reports)
    }

    /// [`Engine::ingest`], asking `stop` before every forward pass and every commit: once it
    /// says so, nothing more is embedded or written (its caller has gone, or its time is up),
    /// and what was settled until then is reported. A forward pass is at most the encoder's
    /// token budget, so an ingest stops within one.
    pub fn ingest_until(
        &self,
        docs: Vec<DocumentInput>,
        progress: &dyn Progress,
        stop: &dyn Fn() -> bool,
    ) -> Result<Ingested> {
        self.check_writable()?;
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
        // Every encoder call is one forward pass: passages are at most `chunk.max_tokens`.
        let per_pass =
            (self.encoder.options().max_batch_tokens / self.options.chunk.max_tokens.max(1)).max(1);
        let batch = self.options.ingest_batch.max(1).min(per_pass);
        let mut lexical_committed = std::time::Instant::now();
        let mut reports = Vec::with_capacity(docs.len());
        let mut pipeline = Pipeline::default();
        let stopped = |reports: Vec<IngestReport>| {
            Ok(Ingested {
                reports,
                stopped: true,
            })
        };
        for input in docs {
            if stop() {
                self.backend.flush()?;
                return stopped(reports);
            }
            let hash = content_hash(&input.text);
            crate::hooks::reached("ingest.document", &input.id);
            // Claimed before its state is read: see [`super::claims`].
            let claim = self.claims.claim(&input.id);
            let state = self.backend.document_state(&input.id)?;
            let existed = state.is_some();
            if state.is_some_and(|s| s.content_hash == hash) {
                // Probably nothing to embed; decided under the backend's write lock.
                let doc = new_document(&input, &hash, (None, false));
                if let Written::Settled(settled) = self
                    .backend
                    .write(&doc, None, &|now| deleted_since(&claim, existed, now))?
                {
                    let status = IngestStatus::from(settled);
                    progress.advance(input.text.len() as u64);
                    reports.push(IngestReport {
                        chunks: self.chunk_count_if(status, &input.id)?,
                        id: input.id,
                        status,
                    });
                    continue;
                }
            }
            let chunks =
                self.chunker
                    .chunk_structured(&input.id, &input.text, input.structure.as_ref());
            pipeline.waiting += chunks.len();
            let title_in_context = self.options.title_context;
            let title = if title_in_context {
                document_title(&input)
            } else {
                shown_title(&input)
            };
            pipeline.queue.push_back(Pending {
                claim,
                existed,
                title,
                title_in_context,
                vectors: Vec::with_capacity(chunks.len()),
                tokens: Vec::with_capacity(chunks.len()),
                input,
                hash,
                chunks,
            });
            while pipeline.waiting >= batch {
                if stop() {
                    self.backend.flush()?;
                    return stopped(reports);
                }
                self.embed_next(&mut pipeline, batch, progress)?;
                if stop() {
                    self.backend.flush()?;
                    return stopped(reports);
                }
                reports.extend(self.commit_ready(&mut pipeline, progress)?);
                // A long ingest makes its passages searchable by words as it goes.
                if lexical_committed.elapsed() >= LEXICAL_COMMIT_EVERY {
                    self.backend.flush()?;
                    lexical_committed = std::time::Instant::now();
                }
            }
        }
        while pipeline.waiting > 0 {
            if stop() {
                self.backend.flush()?;
                return stopped(reports);
            }
            self.embed_next(&mut pipeline, batch, progress)?;
        }
        if stop() {
            self.backend.flush()?;
            return stopped(reports);
        }
        reports.extend(self.commit_ready(&mut pipeline, progress)?);
        self.backend.flush()?;
        progress.finish();
        Ok(Ingested {
            reports,
            stopped: false,
        })
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
                crate::chunk::embedding_text(p.context_title(), &p.chunks[c])
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        if let Some(&(d, _)) = slots.first() {
            crate::hooks::reached("ingest.forward_pass", &pipeline.queue[d].input.id);
        }
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

    /// Writes one document as a unit. What it reports is decided by the backend under its
    /// write lock, from what the store holds then: commits are the serial order of writes to
    /// an id.
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
                section: &c.section,
                pages: c.pages,
            })
            .collect();
        let doc = new_document(&p.input, &p.hash, (p.title.as_deref(), p.title_in_context));
        let status = match self.backend.write(&doc, Some(&chunks), &|now| {
            // Under the backend's write lock for the id.
            crate::hooks::reached("ingest.commit", doc.id);
            deleted_since(&p.claim, p.existed, now)
        })? {
            // Deleted meanwhile, or the same text committed by a concurrent ingest.
            Written::Settled(settled) => {
                let status = IngestStatus::from(settled);
                return Ok(IngestReport {
                    chunks: self.chunk_count_if(status, &p.input.id)?,
                    id: p.input.id,
                    status,
                });
            }
            Written::Stored { existed: true } => IngestStatus::Updated,
            Written::Stored { existed: false } => IngestStatus::Created,
            Written::NeedsPassages => {
                return Err(EngineError::InvalidRequest(format!(
                    "document {:?}: the backend refused its passages",
                    p.input.id
                )));
            }
        };
        Ok(IngestReport {
            id: p.input.id,
            status,
            chunks: p.chunks.len(),
        })
    }

    /// The chunk count to report for `status`, `id` (none for a deleted document).
    fn chunk_count_if(&self, status: IngestStatus, id: &str) -> Result<usize> {
        if status == IngestStatus::Deleted {
            return Ok(0);
        }
        Ok(self.backend.document(id)?.map_or(0, |d| d.chunks))
    }

    /// Deletes a document and its chunks; its vectors stop appearing in results at once.
    /// Returns how many chunks it had.
    pub fn delete(&self, id: &str) -> Result<usize> {
        self.check_writable()?;
        // The backend marks the ingests of this id in flight under its write lock for the id,
        // so that their commits do not bring the document back.
        self.backend
            .delete(id, &|| {
                // Under the backend's write lock for the id.
                crate::hooks::reached("delete.commit", id);
                self.claims.mark_deleted(id);
            })?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    /// Fails at once, before any work, on storage opened read-only (a data directory another
    /// process holds, a database that is a standby).
    fn check_writable(&self) -> Result<()> {
        Ok(self.backend.check_writable()?)
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
        let missing = self.backend.count_without_token_vectors()?;
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
            let passages = self.backend.passages_without_token_vectors(batch)?;
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
            self.backend.put_token_vectors(&packed)?;
            progress.advance(packed.len() as u64);
        }
        progress.finish();
        Ok(())
    }

    /// A whole stored document.
    pub fn document(&self, id: &str) -> Result<StoredDocument> {
        self.backend
            .document(id)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }

    /// Documents in id order, without their text.
    pub fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        Ok(self.backend.documents(limit, offset)?)
    }

    /// Where a stored document's passages lie (byte offsets), in order.
    pub fn document_chunks(&self, id: &str) -> Result<Vec<ChunkSpan>> {
        self.backend
            .document_chunks(id)?
            .ok_or_else(|| EngineError::NotFound(id.to_string()))
    }
}
