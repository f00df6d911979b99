//! Wire types: the JSON bodies of the HTTP API (and of `semdex query --json`).
//!
//! Engine types never cross the wire directly; these structs are the contract, and their
//! schemas feed `/openapi.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::engine::{SearchHit, SearchRequest, SearchResults};
use crate::store::ChunkFilter;

fn default_k() -> usize {
    5
}

/// `POST /search`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// The question or text to find passages for.
    pub query: String,
    /// How many passages (1..=1000).
    #[serde(default = "default_k")]
    pub k: usize,
    /// HNSW search breadth for this query.
    #[serde(default)]
    pub ef: Option<usize>,
    /// Exact (brute-force) search instead of HNSW.
    #[serde(default)]
    pub exact: bool,
    /// Restrict to documents or metadata values.
    #[serde(default)]
    pub filter: Option<FilterBody>,
}

/// A search filter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Only passages of these documents.
    #[serde(default)]
    pub doc_ids: Option<Vec<String>>,
    /// Only passages of documents whose metadata has each key equal to the value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

impl SearchBody {
    /// The engine request this body asks for.
    pub fn to_request(&self) -> SearchRequest {
        let filter = self.filter.clone().unwrap_or_default();
        SearchRequest {
            k: self.k,
            ef: self.ef,
            exact: self.exact,
            filter: ChunkFilter {
                doc_ids: filter.doc_ids,
                metadata: filter.metadata,
            },
        }
    }
}

/// One retrieved passage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// Its document's id.
    pub doc_id: String,
    /// The chunk's id (stable until the document changes).
    pub chunk_id: u64,
    /// The chunk's position in its document, from 0.
    pub chunk_index: usize,
    /// The passage.
    pub text: String,
    /// Cosine similarity with the query.
    pub score: f32,
    /// Byte offset of the passage in its document.
    pub start: usize,
    /// Byte offset one past the passage's end.
    pub end: usize,
    /// The document's metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

impl From<SearchHit> for SearchResult {
    fn from(h: SearchHit) -> Self {
        Self {
            doc_id: h.doc_id,
            chunk_id: h.chunk_id,
            chunk_index: h.chunk_index,
            text: h.text,
            score: h.score,
            start: h.start,
            end: h.end,
            metadata: h.metadata,
        }
    }
}

/// The answer to a search.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// Best first.
    pub results: Vec<SearchResult>,
    /// Server-side time, embedding included.
    pub took_ms: f64,
    /// How the query was answered: exact, exact_filtered, hnsw or hnsw_filtered.
    pub strategy: String,
}

impl SearchResponse {
    /// Wraps engine results with the time they took.
    pub fn new(results: SearchResults, took_ms: f64) -> Self {
        Self {
            results: results.hits.into_iter().map(SearchResult::from).collect(),
            took_ms,
            strategy: results.strategy.as_str().to_string(),
        }
    }
}
