//! What the storage layer stores and hands back: documents, passages and their places, the
//! model that made the vectors, and the filters that restrict a query. Every backend speaks
//! these types; the engine, the service and the API import them from here.

use serde_json::{Map, Value};

pub use crate::chunk::PageRange;
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
    /// The encoder's precision (`f32` or `int8`): int8 vectors lie a little away from f32
    /// ones (cosine ≥ 0.99), so a collection's queries are embedded as its passages were.
    pub precision: String,
}

/// The precision of a store that predates the record (every vector then was f32).
pub const DEFAULT_PRECISION: &str = "f32";

impl ModelIdentity {
    /// `name (fingerprint, dim N, precision)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, dim {}, {})",
            self.name, self.fingerprint, self.dimension, self.precision
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
    /// Heading path of its section, outermost first (empty: none).
    pub section: &'a [String],
    /// The PDF pages it lies on.
    pub pages: Option<PageRange>,
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
    /// Its title (given in its metadata, or found by extraction), shown with its passages.
    pub title: Option<&'a str>,
    /// Whether its passages were embedded after `title`: then they are indexed by words after
    /// it too ([`crate::chunk::contextual_text`]).
    pub title_in_context: bool,
    /// The format it was extracted from (`pdf`, `html`, ...), `None` for text given as text.
    pub format: Option<&'a str>,
}

impl NewDocument<'_> {
    /// The title its passages were embedded and are indexed after, if any.
    pub fn context_title(&self) -> Option<&str> {
        self.title.filter(|_| self.title_in_context)
    }
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
    /// Its title, if it has one (`None` for documents stored before titles were kept).
    pub title: Option<String>,
    /// The format it was extracted from, if it came from a file.
    pub format: Option<String>,
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
    /// Its title, if it has one.
    pub title: Option<String>,
    /// The format it was extracted from, if it came from a file.
    pub format: Option<String>,
}

/// The stored state of a document, for change detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentState {
    /// Hash of the stored text.
    pub content_hash: String,
    /// Stored metadata.
    pub metadata: Map<String, Value>,
    /// The stored format (`None`: plain text, or stored before formats were kept).
    pub format: Option<String>,
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
    /// Where it lies, to cite it.
    pub citation: Citation,
}

/// Where a passage lies in its document, as an answer cites it: what a reader needs to find
/// it in the original file. Empty for passages of plain text stored before it existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Citation {
    /// Its document's title.
    pub title: Option<String>,
    /// Heading path of its section, outermost first (empty: none).
    pub section: Vec<String>,
    /// The PDF pages it lies on.
    pub pages: Option<PageRange>,
}

impl Citation {
    /// The heading path as shown to people, `Install › From source`, if there is one.
    pub fn section_label(&self) -> Option<String> {
        (!self.section.is_empty()).then(|| self.section.join(crate::extract::SECTION_SEPARATOR))
    }
}

/// A heading path as stored: a JSON array of strings, `None` when empty.
pub fn section_to_json(section: &[String]) -> Option<String> {
    (!section.is_empty()).then(|| Value::from(section.to_vec()).to_string())
}

/// A stored heading path read back (`None`, or anything but an array of strings: empty).
pub fn section_from_json(stored: Option<&str>) -> Vec<String> {
    stored
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default()
}

/// A stored page range read back: both ends or none.
pub fn pages_from_columns(first: Option<i64>, last: Option<i64>) -> Option<PageRange> {
    let first = u32::try_from(first?).ok()?;
    let last = u32::try_from(last?).ok()?;
    Some(PageRange { first, last })
}

/// One passage of a document, located by UTF-8 byte offsets into the document's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSpan {
    /// The chunk's id.
    pub chunk_id: ChunkId,
    /// Its position in the document, from 0.
    pub index: usize,
    /// Byte offset of its start in the document.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
    /// Heading path of its section (empty: none).
    pub section: Vec<String>,
    /// The PDF pages it lies on.
    pub pages: Option<PageRange>,
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
