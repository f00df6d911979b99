//! Filtered search: latency and recall@k against exact search, per filter selectivity — the
//! figures that show a selective filter stays fast (it is answered exactly among the passages
//! it admits) and an unselective one stays accurate.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::engine::{Engine, EngineError, SearchRequest, SearchResults};
use crate::eval::speed::{Latency, latency_of};
use crate::filter::MetadataFilter;
use crate::storage::ChunkFilter;
use crate::storage::embedded::store::Store;

/// One filter's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterRow {
    /// A short name ("10 %").
    pub label: String,
    /// The filter, as `filter.metadata` JSON.
    pub filter: String,
    /// Passages it admits.
    pub admitted: usize,
    /// Share of all passages it admits.
    pub share: f64,
    /// How the engine answered it by default.
    pub strategy: String,
    /// Evaluating the filter in SQLite alone (the admitted ids).
    pub filter_only: Latency,
    /// The whole search as the engine answers it (filter, index, hydration).
    pub search: Latency,
    /// The same search forced exact.
    pub exact: Latency,
    /// Mean share of the exact top k that the default search found.
    pub recall: f64,
}

/// Every filter's figures on one corpus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterReport {
    /// Passages in the corpus.
    pub passages: usize,
    /// Queries per filter.
    pub queries: usize,
    /// Results per query.
    pub k: usize,
    /// One row per filter, the unfiltered search first.
    pub rows: Vec<FilterRow>,
}

/// The filters measured: none, then ones admitting about 100 %, 10 %, 1 % and 0.1 % of the
/// documents whose numeric `field` runs over 0..999.
pub fn selectivity_cases(field: &str) -> Vec<(String, Value)> {
    vec![
        ("none".into(), json!({})),
        ("100 %".into(), json!({ field: {"$gte": 0} })),
        ("10 %".into(), json!({ field: {"$lt": 100} })),
        (
            "1 %".into(),
            json!({ field: {"$in": (0..10).collect::<Vec<_>>()} }),
        ),
        ("0.1 %".into(), json!({ field: 0 })),
    ]
}

/// Runs every query under every filter, by default and exactly. `store` is a connection to
/// the engine's data directory, for the admitted counts and the filter's own time.
pub fn benchmark(
    engine: &Engine,
    store: &Store,
    queries: &[Vec<f32>],
    cases: &[(String, Value)],
    k: usize,
) -> Result<FilterReport, EngineError> {
    let passages = engine.stats()?.chunks;
    let mut rows = Vec::with_capacity(cases.len());
    for (label, json) in cases {
        let metadata = MetadataFilter::parse(json)
            .map_err(|e| EngineError::InvalidRequest(format!("{label}: {e}")))?;
        let filter = ChunkFilter {
            doc_ids: None,
            metadata,
        };
        let request = SearchRequest {
            k,
            filter: filter.clone(),
            ..SearchRequest::default()
        };
        let exact = SearchRequest {
            exact: true,
            ..request.clone()
        };
        let admitted = if filter.is_empty() {
            passages
        } else {
            store.chunk_ids_matching(&filter)?.len()
        };
        let mut filter_times = Vec::with_capacity(queries.len());
        let mut search_times = Vec::with_capacity(queries.len());
        let mut exact_times = Vec::with_capacity(queries.len());
        let mut recall_sum = 0.0;
        let mut judged = 0usize;
        let mut strategy = None;
        if let Some(q) = queries.first() {
            // Warm up: caches, pages, the rayon pool.
            engine.search_vector(q, &request)?;
            engine.search_vector(q, &exact)?;
        }
        for q in queries {
            let started = Instant::now();
            if !filter.is_empty() {
                store.chunk_ids_matching(&filter)?;
            }
            filter_times.push(started.elapsed());
            let (found, took) = timed(|| engine.search_vector(q, &request))?;
            search_times.push(took);
            let (truth, took) = timed(|| engine.search_vector(q, &exact))?;
            exact_times.push(took);
            strategy.get_or_insert(found.strategy.as_str());
            let truth: HashSet<u64> = truth.hits.iter().map(|h| h.chunk_id).collect();
            if !truth.is_empty() {
                let hit = found
                    .hits
                    .iter()
                    .filter(|h| truth.contains(&h.chunk_id))
                    .count();
                recall_sum += hit as f64 / truth.len() as f64;
                judged += 1;
            }
        }
        rows.push(FilterRow {
            label: label.clone(),
            filter: json.to_string(),
            admitted,
            share: admitted as f64 / passages.max(1) as f64,
            strategy: strategy.unwrap_or("none").to_string(),
            filter_only: latency_of(&mut filter_times),
            search: latency_of(&mut search_times),
            exact: latency_of(&mut exact_times),
            recall: if judged == 0 {
                1.0
            } else {
                recall_sum / judged as f64
            },
        });
    }
    Ok(FilterReport {
        passages,
        queries: queries.len(),
        k,
        rows,
    })
}

fn timed(
    search: impl FnOnce() -> Result<SearchResults, EngineError>,
) -> Result<(SearchResults, Duration), EngineError> {
    let started = Instant::now();
    let results = search()?;
    Ok((results, started.elapsed()))
}
