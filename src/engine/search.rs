//! Answering queries: validate, retrieve candidates (dense, lexical or both), fuse them,
//! rescore the best with late interaction, and hydrate the hits from the store.

use std::collections::HashMap;

use rayon::prelude::*;
use serde_json::{Map, Value};

use super::fusion::{self, Fused, Fusion, RescoreWeights};
use super::parallel;
use super::shape::{BudgetUse, Context, Group, Highlight, Shaping};
use super::{Engine, EngineError, MAX_EF, MAX_K, Result};
use crate::embed::l2_normalize;
use crate::index::Hit;
use crate::late::{MaxSim, TokenMatrix};
use crate::storage::{CandidateQuery, Candidates, ChunkFilter, SearchStrategy};

/// Candidates each retriever contributes to a hybrid query (when `k` is smaller): deep enough
/// that a passage ranked well by one retriever and poorly by the other still meets the fusion
/// (measured on SciFact train: 30 loses recall@100, 200 gains nothing over 100).
pub const HYBRID_CANDIDATES: usize = 100;

/// Candidates a hybrid query rescores with late interaction (more when `k` is larger, up to
/// [`MAX_RESCORED`]): the fused top 30 already hold nearly every answer the rescoring can lift
/// (10 to 100 measured within 0.005 nDCG@10 on SciFact train).
pub const RESCORED_CANDIDATES: usize = 30;
/// The most candidates rescored; beyond, a long result list keeps the fused order.
pub const MAX_RESCORED: usize = 200;
/// The fewest passages a thread rescores: below, handing work over costs more than it saves.
const MIN_LATE_PART: usize = 8;
/// The most parts a query's rescoring is split into: two give most of the gain, and each
/// part holds one of the store's few read connections while it runs.
const MAX_LATE_PARTS: usize = 2;

/// Which retrievers answer a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Embedding similarity only.
    Dense,
    /// BM25 over the passages' words only.
    Lexical,
    /// Both, fused: the default, measurably better than either (benches/README.md).
    #[default]
    Hybrid,
}

impl SearchMode {
    /// Every mode, for error messages and `/info`.
    pub const ALL: [SearchMode; 3] = [Self::Hybrid, Self::Dense, Self::Lexical];

    /// A lowercase name for requests, responses and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Lexical => "lexical",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether the query must be embedded.
    pub fn needs_vector(self) -> bool {
        self != Self::Lexical
    }
}

impl std::str::FromStr for SearchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown search mode {s:?}; expected one of \"hybrid\", \"dense\", \"lexical\""
                )
            })
    }
}

/// A query's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// How many passages to return (1..=1000).
    pub k: usize,
    /// HNSW search breadth for this query (default: the index's `ef_search`).
    pub ef: Option<usize>,
    /// Force exact (brute-force) dense search.
    pub exact: bool,
    /// Restrict results to some documents or metadata values.
    pub filter: ChunkFilter,
    /// Which retrievers answer.
    pub mode: SearchMode,
    /// How a hybrid query merges its two lists.
    pub fusion: Fusion,
    /// Weight of the dense list in a hybrid query, 0..=1 (default [`DEFAULT_DENSE_WEIGHT`]).
    pub dense_weight: Option<f32>,
    /// Whether a hybrid query rescores its best candidates with late interaction (when the
    /// query comes with token vectors).
    pub rerank: bool,
    /// What the ranked passages become: groups, a diverse order, windows, a budget,
    /// highlights (none by default).
    pub shape: Shaping,
}

/// The dense list's weight in a hybrid query when the request names none.
pub const DEFAULT_DENSE_WEIGHT: f32 = 0.5;

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            k: 5,
            ef: None,
            exact: false,
            filter: ChunkFilter::default(),
            mode: SearchMode::default(),
            fusion: Fusion::default(),
            dense_weight: None,
            rerank: true,
            shape: Shaping::default(),
        }
    }
}

/// A query as the engine takes it: its text (for the lexical retriever) and, for the modes
/// that need it, its embedding.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The question or text as the user wrote it.
    pub text: &'a str,
    /// Its embedding (any length-normalisation; it is normalised here).
    pub vector: Option<&'a [f32]>,
    /// Its token vectors, for rescoring by late interaction ([`Engine::query_tokens`]).
    pub tokens: Option<&'a TokenMatrix>,
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
    /// The score the ranking is sorted by: the cosine similarity in dense mode, BM25 in
    /// lexical mode, the fused score in hybrid mode.
    pub score: f32,
    /// The parts the score was made of, so that a caller can see why a passage ranked.
    pub scores: HitScores,
    /// Byte offset of the passage in its document.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// The document's metadata.
    pub metadata: Map<String, Value>,
    /// The sentences of the passage that best answer the query, best first (`None` unless
    /// the request asks for highlights).
    pub highlights: Option<Vec<Highlight>>,
    /// Where the passage lies: its document's title, its section, its pages.
    pub citation: crate::storage::Citation,
}

/// A hit's scores from each retriever that saw it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HitScores {
    /// Cosine similarity of the query and passage embeddings.
    pub dense: Option<f32>,
    /// BM25 score, when the passage was among the lexical candidates (or rescored).
    pub lexical: Option<f32>,
    /// Late-interaction (MaxSim) score, when the passage was rescored.
    pub late: Option<f32>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// Best first; when grouped, group after group, each group's hits in rank order.
    pub hits: Vec<SearchHit>,
    /// The groups, best first (empty unless the request groups).
    pub groups: Vec<Group>,
    /// The spans to paste into a prompt, in rank order (empty unless the request expands
    /// hits or sets a budget).
    pub contexts: Vec<Context>,
    /// How much of the request's budget the contexts use.
    pub budget: Option<BudgetUse>,
    /// How the dense part was computed ([`SearchStrategy::Lexical`] when there was none).
    pub strategy: SearchStrategy,
    /// Which retrievers answered.
    pub mode: SearchMode,
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
    if let Some(w) = req.dense_weight.filter(|w| !(0.0..=1.0).contains(w)) {
        return Err(EngineError::InvalidRequest(format!(
            "dense_weight must be between 0 and 1, got {w}"
        )));
    }
    req.shape.validate().map_err(EngineError::InvalidRequest)?;
    // The metadata filter was checked when it was parsed; the id list is bounded here.
    if let Some(ids) = &req.filter.doc_ids {
        crate::filter::check_doc_ids(ids)
            .map_err(|e| EngineError::InvalidRequest(e.within("filter.doc_ids").to_string()))?;
    }
    Ok(())
}

impl Engine {
    /// The `k` passages that best answer `query`, embedding it here when the mode needs it.
    pub fn search(&self, query: &str, req: &SearchRequest) -> Result<SearchResults> {
        if query.trim().is_empty() {
            return Err(EngineError::InvalidRequest(
                "query must not be empty".into(),
            ));
        }
        validate(req)?;
        let embedding = if req.mode.needs_vector() {
            Some(self.encoder.embed_with_tokens(&[query])?.remove(0))
        } else {
            None
        };
        let tokens = embedding.as_ref().and_then(|e| self.query_tokens(e));
        self.search_query(
            &Query {
                text: query,
                vector: embedding.as_ref().map(|e| e.unit.as_slice()),
                tokens: tokens.as_ref(),
            },
            req,
        )
    }

    /// A query's token vectors for late interaction, from an embedding made with its token
    /// states; `None` without them.
    pub fn query_tokens(&self, embedding: &crate::embed::Embedding) -> Option<TokenMatrix> {
        embedding
            .token_states
            .as_ref()
            .map(|states| TokenMatrix::from_states(states, &self.token_filter))
    }

    /// The `k` passages nearest to a query vector: dense retrieval only, whatever the mode.
    pub fn search_vector(&self, vector: &[f32], req: &SearchRequest) -> Result<SearchResults> {
        let dense = SearchRequest {
            mode: SearchMode::Dense,
            ..req.clone()
        };
        self.search_query(
            &Query {
                text: "",
                vector: Some(vector),
                tokens: None,
            },
            &dense,
        )
    }

    /// The `k` passages that best answer an already embedded query, by the request's mode.
    pub fn search_query(&self, query: &Query<'_>, req: &SearchRequest) -> Result<SearchResults> {
        validate(req)?;
        let started = std::time::Instant::now();
        // Grouping and diversity choose from a deeper pool than the answer holds.
        let wanted = req.shape.passages(req.k);
        let pool = req.shape.pool(req.k);
        let depth = match req.mode {
            SearchMode::Hybrid => pool.max(HYBRID_CANDIDATES),
            SearchMode::Dense | SearchMode::Lexical => pool,
        };
        let vector = match (req.mode.needs_vector(), query.vector) {
            (false, _) => None,
            (true, Some(vector)) => Some(self.checked_query_vector(vector)?),
            (true, None) => {
                return Err(EngineError::InvalidRequest(format!(
                    "{} search needs the query's embedding",
                    req.mode.as_str()
                )));
            }
        };
        let Candidates {
            dense,
            lexical,
            strategy,
        } = self.backend.candidates(&CandidateQuery {
            text: query.text,
            vector: vector.as_deref(),
            dense_depth: if vector.is_some() { depth } else { 0 },
            lexical_depth: if req.mode == SearchMode::Dense {
                0
            } else {
                depth
            },
            ef: req.ef,
            exact: req.exact,
            filter: &req.filter,
        })?;
        let strategy = strategy.unwrap_or(SearchStrategy::Lexical);
        let retrieved = started.elapsed();
        let mut ranking: Vec<Fused> = match req.mode {
            SearchMode::Dense => as_ranking(&dense, true),
            SearchMode::Lexical => as_ranking(&lexical, false),
            SearchMode::Hybrid => fusion::fuse(
                &dense,
                &lexical,
                req.fusion,
                req.dense_weight.unwrap_or(DEFAULT_DENSE_WEIGHT),
            ),
        };
        let rescore_with = query.tokens.filter(|t| !t.is_empty());
        if let (SearchMode::Hybrid, true, Some(tokens), Some(vector)) =
            (req.mode, req.rerank, rescore_with, vector.as_deref())
        {
            self.rescore(&mut ranking, wanted, vector, query.text, tokens)?;
        }
        let rescored = started.elapsed();
        ranking.truncate(pool);
        let shaped = self.shape(query, req, ranking)?;
        tracing::debug!(
            mode = req.mode.as_str(),
            retrieve_us = retrieved.as_micros() as u64,
            rescore_us = (rescored - retrieved).as_micros() as u64,
            shape_us = (started.elapsed() - rescored).as_micros() as u64,
            "search stages"
        );
        Ok(SearchResults {
            hits: shaped.hits,
            groups: shaped.groups,
            contexts: shaped.contexts,
            budget: shaped.budget,
            strategy,
            mode: req.mode,
        })
    }

    /// The second stage of a hybrid query: the best candidates get all three scores (the
    /// missing dense or BM25 score of a candidate only one retriever found is computed for
    /// it) and are reordered by their weighted sum; a longer list keeps the fused order below
    /// them, with scores under the last rescored one.
    fn rescore(
        &self,
        ranking: &mut Vec<Fused>,
        k: usize,
        vector: &[f32],
        text: &str,
        tokens: &TokenMatrix,
    ) -> Result<()> {
        let depth = k
            .clamp(RESCORED_CANDIDATES, MAX_RESCORED)
            .min(ranking.len());
        let mut tail = ranking.split_off(depth);
        let head = ranking;
        let ids = |head: &[Fused], f: fn(&Fused) -> bool| -> Vec<u64> {
            head.iter().filter(|c| f(c)).map(|c| c.id).collect()
        };
        let no_dense = ids(head, |c| c.dense.is_none());
        let no_lexical = ids(head, |c| c.lexical.is_none());
        let all = ids(head, |_| true);
        // A few dot products, on this thread: the index's lock is not taken in the pool.
        let dense = if no_dense.is_empty() {
            Vec::new()
        } else {
            self.backend.dense_among(vector, &no_dense)?
        };
        let lexical = || -> Result<Vec<Hit>> {
            if no_lexical.is_empty() {
                return Ok(Vec::new());
            }
            Ok(self.backend.lexical_among(text, &no_lexical)?)
        };
        let late = || self.late_scores(&all, tokens);
        // The missing BM25 scores and the late-interaction scores read different data: side
        // by side, when reading is work for this machine's cores.
        let (lexical, late) = if self.backend.reads_are_local() {
            parallel::join(lexical, late)
        } else {
            (lexical(), late())
        };
        let (lexical, late) = (lexical?, late?);
        fill(head, &dense, |c, s| c.dense = Some(s));
        fill(head, &lexical, |c, s| c.lexical = Some(s));
        let late: HashMap<u64, f32> = late.into_iter().map(|h| (h.id, h.score)).collect();
        for c in head.iter_mut() {
            // A passage that matches none of the query's terms scores 0 in BM25.
            c.lexical.get_or_insert(0.0);
            c.late = late.get(&c.id).copied();
        }
        fusion::rescore(head, RescoreWeights::default());
        if !tail.is_empty() {
            // Below the rescored head, in fused order, scaled under its lowest score.
            let floor = head.last().map_or(0.0, |c| c.score).max(0.0);
            let top = tail.first().map_or(1.0, |c| c.score).max(f32::MIN_POSITIVE);
            for c in &mut tail {
                c.score = floor * 0.999 * (c.score / top).clamp(0.0, 1.0);
            }
            head.append(&mut tail);
        }
        Ok(())
    }

    /// MaxSim of the query's token vectors with each of these passages that has stored ones.
    /// With local reads the passages are split in up to [`MAX_LATE_PARTS`] parts on the search
    /// threads, each read through its own connection: reading and scoring about a megabyte is
    /// most of a rescoring's time.
    fn late_scores(&self, ids: &[u64], tokens: &TokenMatrix) -> Result<Vec<Hit>> {
        let most_parts = if self.backend.reads_are_local() {
            MAX_LATE_PARTS
        } else {
            1
        };
        let parts = most_parts.min(ids.len().div_ceil(MIN_LATE_PART)).max(1);
        let score_part = |part: &[u64]| -> Result<Vec<Hit>> {
            let mut scorer = MaxSim::new(tokens);
            let mut hits = Vec::with_capacity(part.len());
            self.backend.visit_token_vectors(part, &mut |id, bytes| {
                if let Some(score) = scorer.score_stored(bytes) {
                    hits.push(Hit { id, score });
                }
            })?;
            Ok(hits)
        };
        if parts == 1 {
            // On this thread: a parallel iterator would hand even one part to the pool.
            return score_part(ids);
        }
        let scored: Vec<Vec<Hit>> = parallel::install(|| {
            ids.par_chunks(ids.len().div_ceil(parts))
                .map(score_part)
                .collect::<Result<_>>()
        })?;
        Ok(scored.into_iter().flatten().collect())
    }

    /// Checks a query vector's length and values and returns it at unit length.
    fn checked_query_vector(&self, vector: &[f32]) -> Result<Vec<f32>> {
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
        Ok(query)
    }

    /// Turns a ranking into passages, in order; chunks deleted meanwhile are dropped.
    pub(super) fn hydrate(&self, ranking: &[Fused]) -> Result<Vec<SearchHit>> {
        let ids: Vec<u64> = ranking.iter().map(|h| h.id).collect();
        let mut records = self.backend.chunks_by_ids(&ids)?;
        Ok(ranking
            .iter()
            .filter_map(|h| {
                records.remove(&h.id).map(|r| SearchHit {
                    doc_id: r.doc_id,
                    chunk_id: r.chunk_id,
                    chunk_index: r.index,
                    text: r.text,
                    score: h.score,
                    scores: HitScores {
                        dense: h.dense,
                        lexical: h.lexical,
                        late: h.late,
                    },
                    start: r.start,
                    end: r.end,
                    metadata: r.metadata,
                    highlights: None,
                    citation: r.citation,
                })
            })
            .collect())
    }
}

/// Copies the scores of `found` into the matching candidates.
fn fill(candidates: &mut [Fused], found: &[Hit], set: impl Fn(&mut Fused, f32)) {
    let scores: HashMap<u64, f32> = found.iter().map(|h| (h.id, h.score)).collect();
    for c in candidates.iter_mut() {
        if let Some(&s) = scores.get(&c.id) {
            set(c, s);
        }
    }
}

/// One retriever's hits as a ranking of their own scores.
fn as_ranking(hits: &[Hit], dense: bool) -> Vec<Fused> {
    hits.iter()
        .map(|h| Fused {
            id: h.id,
            score: h.score,
            dense: dense.then_some(h.score),
            lexical: (!dense).then_some(h.score),
            late: None,
        })
        .collect()
}
