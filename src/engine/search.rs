//! Answering queries: validate, embed, pick exact or HNSW search, hydrate hits from the store.

use serde_json::{Map, Value};

use crate::embed::l2_normalize;
use crate::index::{Hit, SearchParams, VectorIndex};
use crate::store::ChunkFilter;

use super::{Engine, EngineError, MAX_EF, MAX_K, Result};

/// A query's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// How many passages to return (1..=1000).
    pub k: usize,
    /// HNSW search breadth for this query (default: the index's `ef_search`).
    pub ef: Option<usize>,
    /// Force exact (brute-force) search.
    pub exact: bool,
    /// Restrict results to some documents or metadata values.
    pub filter: ChunkFilter,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            k: 5,
            ef: None,
            exact: false,
            filter: ChunkFilter::default(),
        }
    }
}

/// How a query was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchStrategy {
    /// Every vector scored (asked for, or the corpus is small).
    Exact,
    /// Every vector the filter allows scored (the filter is selective).
    ExactFiltered,
    /// The HNSW graph.
    Hnsw,
    /// The HNSW graph, skipping what the filter excludes.
    HnswFiltered,
}

impl SearchStrategy {
    /// A lowercase name for responses and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::ExactFiltered => "exact_filtered",
            Self::Hnsw => "hnsw",
            Self::HnswFiltered => "hnsw_filtered",
        }
    }
}

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Its document.
    pub doc_id: String,
    /// The chunk's id.
    pub chunk_id: u64,
    /// Its position in the document.
    pub chunk_index: usize,
    /// The passage.
    pub text: String,
    /// Cosine similarity with the query.
    pub score: f32,
    /// Byte offset of the passage in its document.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// The document's metadata.
    pub metadata: Map<String, Value>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// How it was computed.
    pub strategy: SearchStrategy,
}

/// Checks `k`, `ef` and the filter.
pub fn validate(req: &SearchRequest) -> Result<()> {
    if req.k == 0 || req.k > MAX_K {
        return Err(EngineError::InvalidRequest(format!(
            "k must be between 1 and {MAX_K}, got {}",
            req.k
        )));
    }
    if let Some(ef) = req.ef.filter(|&ef| ef == 0 || ef > MAX_EF) {
        return Err(EngineError::InvalidRequest(format!(
            "ef must be between 1 and {MAX_EF}, got {ef}"
        )));
    }
    // The metadata filter was checked when it was parsed; the id list is bounded here.
    if let Some(ids) = &req.filter.doc_ids {
        crate::filter::check_doc_ids(ids)
            .map_err(|e| EngineError::InvalidRequest(e.within("filter.doc_ids").to_string()))?;
    }
    Ok(())
}

impl Engine {
    /// The `k` passages nearest to `query`.
    pub fn search(&self, query: &str, req: &SearchRequest) -> Result<SearchResults> {
        if query.trim().is_empty() {
            return Err(EngineError::InvalidRequest(
                "query must not be empty".into(),
            ));
        }
        validate(req)?;
        let embedding = self.encoder.embed_one(query)?;
        self.search_vector(&embedding.unit, req)
    }

    /// The `k` passages nearest to a query vector (normalised here if it is not unit length).
    pub fn search_vector(&self, vector: &[f32], req: &SearchRequest) -> Result<SearchResults> {
        validate(req)?;
        let dimension = self.encoder.dimension();
        if vector.len() != dimension {
            return Err(EngineError::InvalidRequest(format!(
                "query vector has {} values; the model's vectors have {dimension}",
                vector.len()
            )));
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(EngineError::InvalidRequest(
                "query vector has a non-finite value".into(),
            ));
        }
        let mut query = vector.to_vec();
        l2_normalize(&mut query);

        let allowed = if req.filter.is_empty() {
            None
        } else {
            Some(self.reader().chunk_ids_matching(&req.filter)?)
        };
        let (hits, strategy) = {
            let ix = self.read_index();
            let live = ix.len();
            let ef = req.ef.unwrap_or(ix.params().ef_search);
            let approximate = SearchParams { ef, exact: false };
            let exact = SearchParams { ef, exact: true };
            match &allowed {
                None if req.exact || live < self.options.exact_below => (
                    ix.search(&query, req.k, exact, None)?,
                    SearchStrategy::Exact,
                ),
                None => (
                    ix.search(&query, req.k, approximate, None)?,
                    SearchStrategy::Hnsw,
                ),
                Some(ids) => {
                    // Selective filters: scoring the allowed vectors beats walking a graph
                    // whose neighbours are mostly excluded.
                    let selective =
                        ids.len() <= self.options.exact_below.max(req.k) || ids.len() * 10 < live;
                    if req.exact || selective {
                        (
                            ix.search_among(&query, ids, req.k)?,
                            SearchStrategy::ExactFiltered,
                        )
                    } else {
                        let pass = |id: u64| ids.binary_search(&id).is_ok();
                        (
                            ix.search(&query, req.k, approximate, Some(&pass))?,
                            SearchStrategy::HnswFiltered,
                        )
                    }
                }
            }
        };
        Ok(SearchResults {
            hits: self.hydrate(&hits)?,
            strategy,
        })
    }

    /// Turns index hits into passages, in hit order; chunks deleted meanwhile are dropped.
    fn hydrate(&self, hits: &[Hit]) -> Result<Vec<SearchHit>> {
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        let mut records = self.reader().chunks_by_ids(&ids)?;
        Ok(hits
            .iter()
            .filter_map(|h| {
                records.remove(&h.id).map(|r| SearchHit {
                    doc_id: r.doc_id,
                    chunk_id: r.chunk_id,
                    chunk_index: r.index,
                    text: r.text,
                    score: h.score,
                    start: r.start,
                    end: r.end,
                    metadata: r.metadata,
                })
            })
            .collect())
    }
}
