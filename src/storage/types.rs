//! What the storage layer stores and hands back: documents, passages and their places, the
//! model that made the vectors, and the filters that restrict a query. Every backend speaks
//! these types; the engine, the service and the API import them from here.

use serde_json::{Map, Value};

use crate::filter::MetadataFilter;

/// Identifies chunks everywhere: in the store, in the index and in results. Never reused.
pub type ChunkId = u64;

/// The model a collection's vectors belong to: a store made with one refuses another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// Human name (the model folder's name).
    pub name: String,
    /// Fingerprint of configuration and weights.
    pub fingerprint: String,
    /// Vector length.
    pub dimension: usize,
}

impl ModelIdentity {
    /// `name (fingerprint, dim N)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, dim {})",
            self.name, self.fingerprint, self.dimension
        )
    }
}

/// A chunk to store with its document.
#[derive(Debug, Clone)]
pub struct NewChunk<'a> {
    /// Position in the document.
    pub index: usize,
    /// Byte offset of its start in the document.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
    /// The chunk's text.
    pub text: &'a str,
    /// Its unit-length embedding.
    pub vector: &'a [f32],
    /// Its token vectors for late interaction, in their stored form.
    pub tokens: Option<&'a [u8]>,
}

/// A document to store.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    /// Stable, caller-chosen id.
    pub id: &'a str,
    /// Where it came from (a path, "stdin", an API call), if known.
    pub source: Option<&'a str>,
    /// The full text.
    pub text: &'a str,
    /// A JSON object of user metadata.
    pub metadata: &'a Map<String, Value>,
    /// Hash of the text, for change detection.
    pub content_hash: &'a str,
    /// The title its passages were embedded and indexed after, if any.
    pub title: Option<&'a str>,
}

/// What a stored document looks like when read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// The document's id.
    pub id: String,
    /// Where it came from.
    pub source: Option<String>,
    /// The full text.
    pub text: String,
    /// User metadata (a JSON object).
    pub metadata: Map<String, Value>,
    /// Hash of the text.
    pub content_hash: String,
    /// When it was (last) ingested, RFC 3339 UTC.
    pub ingested_at: String,
    /// How many chunks it has.
    pub chunks: usize,
}

/// A document without its text, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSummary {
    /// The document's id.
    pub id: String,
    /// Where it came from.
    pub source: Option<String>,
    /// User metadata.
    pub metadata: Map<String, Value>,
    /// When it was (last) ingested.
    pub ingested_at: String,
    /// How many chunks it has.
    pub chunks: usize,
    /// Length of its text in bytes.
    pub bytes: usize,
}

/// The stored state of a document, for change detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentState {
    /// Hash of the stored text.
    pub content_hash: String,
    /// Stored metadata.
    pub metadata: Map<String, Value>,
}

/// A chunk as search results need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// The chunk's id.
    pub chunk_id: ChunkId,
    /// Its document's id.
    pub doc_id: String,
    /// Its position in the document.
    pub index: usize,
    /// Byte offsets in the document.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The chunk's text.
    pub text: String,
    /// Its document's metadata.
    pub metadata: Map<String, Value>,
}

/// One passage of a document, located by UTF-8 byte offsets into the document's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// The chunk's id.
    pub chunk_id: ChunkId,
    /// Its position in the document, from 0.
    pub index: usize,
    /// Byte offset of its start in the document.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
}

/// Restricts which chunks a query may return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkFilter {
    /// Only chunks of these documents.
    pub doc_ids: Option<Vec<String>>,
    /// Only chunks of documents whose metadata passes this (parsed, validated) filter.
    pub metadata: MetadataFilter,
}

impl ChunkFilter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.doc_ids.is_none() && self.metadata.is_empty()
    }
}
