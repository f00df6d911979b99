//! Wire types: the JSON bodies of the HTTP API (and of `semdex query --json`).
//!
//! Engine types never cross the wire directly; these structs are the contract, and their
//! schemas feed `/openapi.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{integers, objects};
use crate::collections::{CollectionInfo, CollectionSettings};
use crate::engine::{
    Budget, BudgetUse, Context, DocumentInput, Fusion, Group, GroupBy, Highlight, HitScores,
    SearchHit, SearchMode, SearchRequest, SearchResults, Shaping, content_hash,
};
use crate::filter::{FilterError, FilterErrorKind, MetadataFilter};
use crate::service::{DocumentPage, IngestOutcome};
use crate::storage::snapshot::SnapshotInfo;
use crate::storage::{ChunkFilter, Consistency, DocumentSummary, StandbyStatus, StoredDocument};

fn default_k() -> usize {
    5
}

/// `POST /search`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// The question or text to find passages for (not blank).
    #[schema(pattern = r"\S")]
    pub query: String,
    /// How many passages (1..=1000).
    #[serde(default = "default_k", deserialize_with = "integers::usize")]
    #[schema(minimum = 1, maximum = 1000)]
    pub k: usize,
    /// HNSW search breadth for this query (1..=10000).
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 1, maximum = 10000)]
    pub ef: Option<usize>,
    /// Exact (brute-force) search instead of HNSW.
    #[serde(default)]
    pub exact: bool,
    /// Restrict to documents or metadata values.
    #[serde(default, deserialize_with = "objects::option_object")]
    pub filter: Option<FilterBody>,
    /// Send each hit's document metadata (default true). Either way a response holds at most
    /// the server's `--max-response-metadata-bytes` of metadata; see `metadata_omitted`.
    #[serde(default = "yes")]
    pub include_metadata: bool,
    /// "hybrid" (default: embeddings and BM25, fused), "dense" or "lexical".
    #[serde(default)]
    #[schema(pattern = "^(hybrid|dense|lexical)$")]
    pub mode: Option<String>,
    /// How hybrid mode merges its lists: "convex" (default; normalised scores) or "rrf".
    #[serde(default)]
    #[schema(pattern = "^(convex|rrf)$")]
    pub fusion: Option<String>,
    /// Weight of the dense list in hybrid mode, 0..=1 (default 0.5).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    pub dense_weight: Option<f64>,
    /// Whether hybrid mode rescores its best candidates by late interaction (default true).
    #[serde(default)]
    pub rerank: Option<bool>,
    /// "eventual" (default: a PostgreSQL standby within the server's lag bound may answer) or
    /// "primary" (sees every write made before the request). Nothing changes without standbys.
    #[serde(default)]
    #[schema(pattern = "^(eventual|primary)$")]
    pub consistency: Option<String>,
    /// Group the passages by "doc_id" or by a metadata key (documents without a string,
    /// number or boolean there are left out); `k` then counts groups, and the answer's
    /// `groups` lists them.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub group_by: Option<String>,
    /// Passages per group, in rank order (1..=100, default 1; with `group_by`).
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 1, maximum = 100)]
    pub group_size: Option<usize>,
    /// Re-rank by maximal marginal relevance over the passages' vectors: 0 (default) keeps
    /// the ranking, 1 values only being unlike the passages above (0..=1).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    pub diversity: Option<f64>,
    /// Add up to this many neighbouring passages on each side of each hit (0..=10), merged
    /// into windows of the document in `contexts`.
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 0, maximum = 10)]
    pub expand: Option<usize>,
    /// Fill `contexts` in rank order with at most this many model tokens (1..=100000), the
    /// last one cut at a sentence boundary. Not with `max_chars`.
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_tokens: Option<usize>,
    /// The same budget in characters (1..=1000000). Not with `max_tokens`.
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_chars: Option<usize>,
    /// Give each hit the sentences that best answer the query (`highlights`).
    #[serde(default)]
    pub highlights: Option<bool>,
}

/// Where a read may be answered from, as a request names it (default: eventual).
pub fn consistency(value: Option<&str>) -> Result<Consistency, crate::api::ApiError> {
    value.map_or(Ok(Consistency::default()), |v| {
        v.parse().map_err(crate::api::ApiError::invalid)
    })
}

/// The query string of the document reads: where they may be answered from.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// "eventual" (default: a PostgreSQL standby within the server's lag bound may answer) or
    /// "primary" (sees every write made before the request).
    #[param(pattern = "^(eventual|primary)$")]
    pub consistency: Option<String>,
}

/// The shaping options of `POST` and `GET /search`, as sent.
struct ShapeOptions<'a> {
    group_by: Option<&'a str>,
    group_size: Option<usize>,
    diversity: Option<f64>,
    expand: Option<usize>,
    max_tokens: Option<usize>,
    max_chars: Option<usize>,
    highlights: Option<bool>,
}

impl ShapeOptions<'_> {
    /// The engine's shaping, checked: 422 naming the field and its range. `diversity` is
    /// checked as sent (a tiny negative number must not round to 0 in f32 and pass).
    fn to_shaping(&self) -> Result<Shaping, crate::api::ApiError> {
        let invalid = crate::api::ApiError::invalid;
        if let Some(d) = self.diversity.filter(|d| !(0.0..=1.0).contains(d)) {
            return Err(invalid(format!(
                "diversity must be between 0 and 1, got {d}"
            )));
        }
        let budget = match (self.max_tokens, self.max_chars) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give max_tokens or max_chars, not both".to_string(),
                ));
            }
            (Some(tokens), None) => Some(Budget::Tokens(tokens)),
            (None, Some(chars)) => Some(Budget::Chars(chars)),
            (None, None) => None,
        };
        let shaping = Shaping {
            group_by: self
                .group_by
                .map(GroupBy::parse)
                .transpose()
                .map_err(invalid)?,
            group_size: self.group_size.unwrap_or(1),
            diversity: self.diversity.map(|d| d as f32),
            expand: self.expand.unwrap_or(0),
            budget,
            highlights: self.highlights.unwrap_or(false),
        };
        shaping.validate().map_err(invalid)?;
        Ok(shaping)
    }
}

/// `dense_weight` checked as sent (a tiny negative number must not round to 0 in f32 and pass).
fn dense_weight(weight: Option<f64>) -> Result<Option<f32>, crate::api::ApiError> {
    match weight {
        Some(w) if !(0.0..=1.0).contains(&w) => Err(crate::api::ApiError::invalid(format!(
            "dense_weight must be between 0 and 1, got {w}"
        ))),
        other => Ok(other.map(|w| w as f32)),
    }
}

/// The search options shared by `POST /search` and `GET /search`, checked: an unknown mode or
/// fusion is a 422 that lists the allowed values.
fn search_options(
    mode: Option<&str>,
    fusion: Option<&str>,
) -> Result<(SearchMode, Fusion), crate::api::ApiError> {
    let mode = match mode {
        None => SearchMode::default(),
        Some(m) => m.parse().map_err(crate::api::ApiError::invalid)?,
    };
    let fusion = match fusion {
        None => Fusion::default(),
        Some(f) => f.parse().map_err(crate::api::ApiError::invalid)?,
    };
    Ok((mode, fusion))
}

/// A search filter: `{"doc_ids"?, "metadata"?}`, in a POST body or JSON-encoded in GET's
/// `filter` parameter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Only passages of these documents (at most 10,000 ids).
    #[serde(default)]
    pub doc_ids: Option<Vec<String>>,
    /// Only passages of documents whose metadata passes this filter: `{"KEY": VALUE}` for
    /// equality, `{"KEY": {"$op": OPERAND}}` with `$eq $ne $gt $gte $lt $lte $in $nin $exists`,
    /// and `"$and"` / `"$or"` lists of such objects. Types never coerce; at most 64 clauses and
    /// 1,000 values per `$in` (README, "Filters").
    #[serde(default)]
    #[schema(
        schema_with = super::schemas::metadata_filter,
        example = json!({"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}})
    )]
    pub metadata: Map<String, Value>,
}

impl FilterBody {
    /// The engine's filter, the metadata parsed and checked once here; errors name their
    /// place in the request (`filter.metadata.year: ...`).
    pub fn to_filter(&self) -> Result<ChunkFilter, FilterError> {
        Ok(ChunkFilter {
            doc_ids: self.doc_ids.clone(),
            metadata: MetadataFilter::parse_object(&self.metadata)
                .map_err(|e| e.within("filter.metadata"))?,
        })
    }

    /// A filter sent as JSON text (GET /search's `filter` parameter).
    pub fn from_json(text: &str) -> Result<Self, FilterError> {
        serde_json::from_str(text).map_err(|e| {
            FilterErrorKind::Malformed(format!(
                "expected a JSON object {{\"doc_ids\"?: [...], \"metadata\"?: {{...}}}}: {e}"
            ))
            .at("filter")
        })
    }
}

impl SearchBody {
    /// The engine request this body asks for (422 for an unknown mode or fusion, or a bad filter).
    pub fn to_request(&self) -> Result<SearchRequest, crate::api::ApiError> {
        let (mode, fusion) = search_options(self.mode.as_deref(), self.fusion.as_deref())?;
        Ok(SearchRequest {
            k: self.k,
            ef: self.ef,
            exact: self.exact,
            filter: match &self.filter {
                Some(filter) => filter
                    .to_filter()
                    .map_err(|e| crate::api::ApiError::invalid(e.to_string()))?,
                None => ChunkFilter::default(),
            },
            mode,
            fusion,
            dense_weight: dense_weight(self.dense_weight)?,
            rerank: self.rerank.unwrap_or(true),
            shape: ShapeOptions {
                group_by: self.group_by.as_deref(),
                group_size: self.group_size,
                diversity: self.diversity,
                expand: self.expand,
                max_tokens: self.max_tokens,
                max_chars: self.max_chars,
                highlights: self.highlights,
            }
            .to_shaping()?,
        })
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
    /// The ranking score: cosine similarity (dense), BM25 (lexical) or the fused score
    /// (hybrid).
    pub score: f32,
    /// What the score was made of.
    pub scores: ScoresBody,
    /// Byte offset of the passage in its document.
    pub start: usize,
    /// Byte offset one past the passage's end.
    pub end: usize,
    /// The document's metadata (`{}` when `metadata_omitted`).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Present and true when this hit's metadata was left out: the request said
    /// `include_metadata: false`, or the response's metadata budget was spent on better hits.
    /// `GET /documents/{doc_id}` has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metadata_omitted: bool,
    /// Present and true when `text` is not the whole passage: the response's text budget
    /// (`--max-response-bytes`) was spent on better hits. `start`/`end` still name the whole
    /// passage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text_truncated: bool,
    /// With `highlights: true`: the sentences of the passage that best answer the query,
    /// best first, as byte spans of the document (inside `start..end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlights: Option<Vec<HighlightBody>>,
    /// Its document's title (given as the `title` metadata, or found in the file), when it
    /// has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The headings the passage lies under, outermost first, joined by ` › `
    /// (`Install › From source`), when its document has headings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The PDF pages the passage lies on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PagesBody>,
}

/// The PDF pages a passage lies on, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PagesBody {
    /// Its first page.
    #[schema(minimum = 1)]
    pub first: u32,
    /// Its last page (the first, for a passage on one page).
    #[schema(minimum = 1)]
    pub last: u32,
}

impl From<crate::chunk::PageRange> for PagesBody {
    fn from(p: crate::chunk::PageRange) -> Self {
        Self {
            first: p.first,
            last: p.last,
        }
    }
}

/// A sentence that answers the query.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct HighlightBody {
    /// Byte offset of the sentence in the document.
    pub start: usize,
    /// Byte offset one past its end (trailing whitespace excluded).
    pub end: usize,
    /// How well it matches: MaxSim of the query's token vectors with the sentence's, plus
    /// half the share of the query's words it holds (words alone in lexical mode).
    pub score: f32,
}

impl From<Highlight> for HighlightBody {
    fn from(h: Highlight) -> Self {
        Self {
            start: h.start,
            end: h.end,
            score: h.score,
        }
    }
}

/// A group of passages sharing a document or a metadata value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupBody {
    /// The document id or metadata value the group shares.
    #[schema(value_type = Object)]
    pub key: Value,
    /// Its best passage's score.
    pub score: f32,
    /// Its passages, as positions in `results`, in rank order.
    pub results: Vec<usize>,
}

impl From<Group> for GroupBody {
    fn from(g: Group) -> Self {
        Self {
            key: g.key,
            score: g.score,
            results: g.hits,
        }
    }
}

/// A span of one document to paste into a prompt: a hit's passage or its window of
/// neighbours, overlapping windows merged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContextBody {
    /// The document's id.
    pub doc_id: String,
    /// Byte offset of the span in the document.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
    /// The document's text in `start..end`.
    pub text: String,
    /// The passages inside it, as positions in `results`, best first.
    pub results: Vec<usize>,
    /// Its best passage's score.
    pub score: f32,
    /// Whether the budget cut it short (at sentence boundaries).
    pub trimmed: bool,
}

impl From<Context> for ContextBody {
    fn from(c: Context) -> Self {
        Self {
            doc_id: c.doc_id,
            start: c.start,
            end: c.end,
            text: c.text,
            results: c.hits,
            score: c.score,
            trimmed: c.trimmed,
        }
    }
}

/// How much of its budget an answer used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BudgetBody {
    /// "tokens" (the model's tokenizer, special tokens not counted) or "chars".
    #[schema(pattern = "^(tokens|chars)$")]
    pub unit: String,
    /// The budget asked for.
    pub limit: usize,
    /// What the contexts take, at most `limit`.
    pub used: usize,
}

impl From<BudgetUse> for BudgetBody {
    fn from(b: BudgetUse) -> Self {
        Self {
            unit: b.budget.unit().to_string(),
            limit: b.budget.limit(),
            used: b.used,
        }
    }
}

/// A hit's score from each retriever that saw it (`null` where one did not).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct ScoresBody {
    /// Cosine similarity of the query and passage embeddings.
    pub dense: Option<f32>,
    /// BM25 score of the passage's words, if it was among the lexical candidates (or was
    /// rescored).
    pub lexical: Option<f32>,
    /// Late-interaction score (MaxSim over the model's token vectors), if the passage was
    /// rescored in hybrid mode.
    pub rerank: Option<f32>,
}

impl From<HitScores> for ScoresBody {
    fn from(s: HitScores) -> Self {
        Self {
            dense: s.dense,
            lexical: s.lexical,
            rerank: s.late,
        }
    }
}

impl From<SearchHit> for SearchResult {
    fn from(h: SearchHit) -> Self {
        Self {
            doc_id: h.doc_id,
            chunk_id: h.chunk_id,
            chunk_index: h.chunk_index,
            text: h.text,
            score: h.score,
            scores: h.scores.into(),
            start: h.start,
            end: h.end,
            metadata: h.metadata,
            metadata_omitted: false,
            text_truncated: false,
            highlights: h
                .highlights
                .map(|list| list.into_iter().map(HighlightBody::from).collect()),
            section: h.citation.section_label(),
            pages: h.citation.pages.map(PagesBody::from),
            title: h.citation.title,
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
    /// Which retrievers answered: hybrid, dense or lexical.
    pub mode: String,
    /// How the dense part was answered: exact, exact_filtered, hnsw, hnsw_filtered, or
    /// lexical when there was none.
    pub strategy: String,
    /// With `group_by`: the groups, best first; `results` lists each group's passages
    /// together, in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupBody>>,
    /// With `expand` or a budget: the spans to paste into a prompt, in rank order, never
    /// overlapping; passages left out by the budget are not in `results`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Vec<ContextBody>>,
    /// With `max_tokens` or `max_chars`: how much of it `contexts` use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetBody>,
}

impl SearchResponse {
    /// Wraps engine results, shaped as asked (`shape`), with the time they took.
    pub fn new(results: SearchResults, shape: &Shaping, took_ms: f64) -> Self {
        Self {
            results: results.hits.into_iter().map(SearchResult::from).collect(),
            took_ms,
            mode: results.mode.as_str().to_string(),
            strategy: results.strategy.as_str().to_string(),
            groups: shape
                .group_by
                .is_some()
                .then(|| results.groups.into_iter().map(GroupBody::from).collect()),
            contexts: (shape.expand > 0 || shape.budget.is_some()).then(|| {
                results
                    .contexts
                    .into_iter()
                    .map(ContextBody::from)
                    .collect()
            }),
            budget: results.budget.map(BudgetBody::from),
        }
    }
}

/// GET /search query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The question (not blank).
    #[param(pattern = r"\S")]
    pub q: String,
    /// How many passages (1..=1000).
    #[serde(default = "default_k", deserialize_with = "integers::query_usize")]
    #[param(minimum = 1, maximum = 1000)]
    pub k: usize,
    /// HNSW search breadth (1..=10000).
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 1, maximum = 10000)]
    pub ef: Option<usize>,
    /// Exact search.
    #[serde(default)]
    pub exact: bool,
    /// Send each hit's document metadata (default true).
    #[serde(default = "yes")]
    pub include_metadata: bool,
    /// A filter as JSON text, URL-encoded: the shape of POST's `filter`,
    /// `{"doc_ids"?: [...], "metadata"?: {...}}`.
    #[param(example = r#"{"metadata": {"year": {"$gte": 2020}}}"#)]
    pub filter: Option<String>,
    /// "hybrid" (default), "dense" or "lexical".
    #[param(pattern = "^(hybrid|dense|lexical)$")]
    pub mode: Option<String>,
    /// "convex" (default) or "rrf".
    #[param(pattern = "^(convex|rrf)$")]
    pub fusion: Option<String>,
    /// Weight of the dense list in hybrid mode, 0..=1.
    #[param(minimum = 0, maximum = 1)]
    pub dense_weight: Option<f64>,
    /// Whether hybrid mode rescores by late interaction (default true).
    pub rerank: Option<bool>,
    /// "eventual" (default) or "primary": where the search may be answered from.
    #[param(pattern = "^(eventual|primary)$")]
    pub consistency: Option<String>,
    /// Group by "doc_id" or a metadata key; `k` then counts groups.
    #[param(min_length = 1, max_length = 256)]
    pub group_by: Option<String>,
    /// Passages per group (1..=100, default 1).
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 1, maximum = 100)]
    pub group_size: Option<usize>,
    /// Maximal-marginal-relevance diversity, 0..=1 (default 0: off).
    #[param(minimum = 0, maximum = 1)]
    pub diversity: Option<f64>,
    /// Neighbouring passages on each side of each hit (0..=10).
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 0, maximum = 10)]
    pub expand: Option<usize>,
    /// Budget of model tokens for `contexts` (1..=100000); not with max_chars.
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 1, maximum = 100000)]
    pub max_tokens: Option<usize>,
    /// Budget of characters for `contexts` (1..=1000000); not with max_tokens.
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 1, maximum = 1000000)]
    pub max_chars: Option<usize>,
    /// Give each hit the sentences that best answer the query.
    pub highlights: Option<bool>,
}

impl SearchParams {
    /// The engine request this query string asks for (422 for an unknown mode or fusion, or a
    /// bad filter).
    pub fn to_request(&self) -> Result<SearchRequest, crate::api::ApiError> {
        let (mode, fusion) = search_options(self.mode.as_deref(), self.fusion.as_deref())?;
        let filter = match self.filter.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => FilterBody::from_json(text)
                .and_then(|f| f.to_filter())
                .map_err(|e| crate::api::ApiError::invalid(e.to_string()))?,
            _ => ChunkFilter::default(),
        };
        Ok(SearchRequest {
            k: self.k,
            ef: self.ef,
            exact: self.exact,
            filter,
            mode,
            fusion,
            dense_weight: dense_weight(self.dense_weight)?,
            rerank: self.rerank.unwrap_or(true),
            shape: ShapeOptions {
                group_by: self.group_by.as_deref(),
                group_size: self.group_size,
                diversity: self.diversity,
                expand: self.expand,
                max_tokens: self.max_tokens,
                max_chars: self.max_chars,
                highlights: self.highlights,
            }
            .to_shaping()?,
        })
    }
}

/// One text or many (schema in [`super::schemas`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    /// A single text.
    One(String),
    /// Several texts (at least one).
    Many(Vec<String>),
}

impl Inputs {
    /// The texts, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

fn yes() -> bool {
    true
}

/// `POST /embed` (text-embeddings-inference).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EmbedBody {
    /// Text(s) to embed.
    pub inputs: Inputs,
    /// L2-normalise the vectors (the model's own pipeline does).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the model's window instead of refusing them (413).
    #[serde(default)]
    pub truncate: bool,
    /// Which end to cut; only "Right" is supported (in any case).
    #[serde(default)]
    #[schema(pattern = "^[Rr][Ii][Gg][Hh][Tt]$")]
    pub truncation_direction: Option<String>,
}

/// OpenAI's `input`: text(s), or tiktoken token ids (decoded to text, see
/// [`crate::api::openai_tokens`]; schema in [`super::schemas`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OpenAiInput {
    /// One text.
    One(String),
    /// Several texts (at least one).
    Many(Vec<String>),
    /// Token ids of the configured tiktoken encoding: one array, or an array of arrays.
    Tokens(Vec<Value>),
}

/// `POST /v1/embeddings` (OpenAI).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OpenAiEmbeddingsBody {
    /// Text(s) to embed.
    pub input: OpenAiInput,
    /// Model name; any value is accepted and the served model answers.
    #[serde(default)]
    pub model: Option<String>,
    /// "float" (default) or "base64" (little-endian f32).
    #[serde(default)]
    #[schema(pattern = "^(float|base64)$")]
    pub encoding_format: Option<String>,
    /// Shorten vectors to this many dimensions (re-normalised; at most the model's dimension).
    #[serde(default, deserialize_with = "integers::option_usize")]
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Accepted and ignored.
    #[serde(default)]
    pub user: Option<String>,
}

/// A vector as OpenAI sends it: floats, or base64 of little-endian f32.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiVector {
    /// `encoding_format: "float"`.
    Float(Vec<f32>),
    /// `encoding_format: "base64"`.
    Base64(String),
}

/// One vector of an OpenAI response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenAiEmbedding {
    /// Always "embedding".
    pub object: String,
    /// Position of the input.
    pub index: usize,
    /// The vector.
    pub embedding: OpenAiVector,
}

/// Token accounting of an OpenAI response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenAiUsage {
    /// Tokens embedded (after truncation to the model's window).
    pub prompt_tokens: usize,
    /// Same as `prompt_tokens`.
    pub total_tokens: usize,
}

/// `POST /v1/embeddings` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenAiEmbeddingsResponse {
    /// Always "list".
    pub object: String,
    /// One entry per input, in order.
    pub data: Vec<OpenAiEmbedding>,
    /// The served model's name.
    pub model: String,
    /// Token counts.
    pub usage: OpenAiUsage,
}

/// `POST /similarity` inner body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SimilarityInputs {
    /// The sentence to compare against.
    pub source_sentence: String,
    /// Sentences to score (at least one).
    #[schema(min_items = 1)]
    pub sentences: Vec<String>,
}

/// `POST /similarity` (text-embeddings-inference).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SimilarityBody {
    /// The sentences.
    #[serde(deserialize_with = "objects::object")]
    pub inputs: SimilarityInputs,
}

/// A document to ingest.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// Stable id (not blank, at most 512 bytes of UTF-8, unique within a request); when absent,
    /// one is derived from the text's hash.
    #[serde(default)]
    #[schema(pattern = r"\S")]
    pub id: Option<String>,
    /// The text (not blank).
    #[schema(pattern = r"\S")]
    pub text: String,
    /// Metadata to filter on.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// `POST /documents`: one document, or `{"documents": [...]}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DocumentsBody {
    /// Several documents.
    Many {
        /// The documents (1..=10000).
        #[serde(deserialize_with = "objects::objects")]
        #[schema(min_items = 1, max_items = 10000)]
        documents: Vec<DocumentBody>,
    },
    /// One document.
    One(DocumentBody),
}

impl DocumentsBody {
    /// The documents to ingest. A document without an id is named by its text's hash, so
    /// that posting it again is a no-op.
    pub fn into_inputs(self) -> Vec<DocumentInput> {
        let docs = match self {
            Self::Many { documents } => documents,
            Self::One(doc) => vec![doc],
        };
        docs.into_iter()
            .map(|doc| DocumentInput {
                id: doc
                    .id
                    .unwrap_or_else(|| format!("doc-{}", &content_hash(&doc.text)[..16])),
                text: doc.text,
                metadata: doc.metadata,
                source: Some("api".into()),
                structure: None,
                format: None,
            })
            .collect()
    }
}

/// What ingest did to one document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestedDocument {
    /// The document's id.
    pub id: String,
    /// created, updated, metadata_updated or unchanged; or deleted: a DELETE of this id ran
    /// while the document was being embedded, and that delete stands (nothing was stored).
    /// Decided when the document is committed, so two requests with one new id report
    /// `created` once.
    #[schema(pattern = "^(created|updated|metadata_updated|unchanged|deleted)$")]
    pub status: String,
    /// Chunks it has (0 when deleted).
    pub chunks: usize,
}

/// `POST /documents` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    /// One entry per document, in request order: `created`, `updated`, `metadata_updated`,
    /// `unchanged`, `deleted` (a delete of the id came after this ingest: nothing stored), or
    /// `not_stored` (the request ran out of time before it: nothing stored; send it again).
    pub documents: Vec<IngestedDocument>,
    /// Present (true) when the request ran out of time part of the way: the documents before
    /// that point are stored, those `not_stored` are not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// Server-side time.
    pub took_ms: f64,
}

impl IngestResponse {
    /// What one ingest request did and the time it took.
    pub fn new(outcome: IngestOutcome, took_ms: f64) -> Self {
        let timed_out = !outcome.not_stored.is_empty();
        let mut documents: Vec<IngestedDocument> = outcome
            .reports
            .into_iter()
            .map(|r| IngestedDocument {
                id: r.id,
                status: r.status.as_str().to_string(),
                chunks: r.chunks,
            })
            .collect();
        documents.extend(outcome.not_stored.into_iter().map(|id| IngestedDocument {
            id,
            status: "not_stored".to_string(),
            chunks: 0,
        }));
        Self {
            documents,
            timed_out,
            took_ms,
        }
    }
}

/// A stored document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentResponse {
    /// Its id.
    pub id: String,
    /// Where it came from.
    pub source: Option<String>,
    /// Its text.
    pub text: String,
    /// Its metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// SHA-256 of the text.
    pub content_hash: String,
    /// When it was last written (RFC 3339).
    pub ingested_at: String,
    /// Number of chunks.
    pub chunks: usize,
    /// Its title, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The format its text was extracted from (`pdf`, `html`, `markdown`, `docx`, `text`);
    /// absent for text sent as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl From<StoredDocument> for DocumentResponse {
    fn from(d: StoredDocument) -> Self {
        Self {
            id: d.id,
            source: d.source,
            text: d.text,
            metadata: d.metadata,
            content_hash: d.content_hash,
            ingested_at: d.ingested_at,
            chunks: d.chunks,
            title: d.title,
            format: d.format,
        }
    }
}

/// A document in a listing (without its text).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentSummaryResponse {
    /// Its id.
    pub id: String,
    /// Where it came from.
    pub source: Option<String>,
    /// Its metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// When it was last written.
    pub ingested_at: String,
    /// Number of chunks.
    pub chunks: usize,
    /// Length of the text in bytes.
    pub bytes: usize,
    /// Its title, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The format its text was extracted from; absent for text sent as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl From<DocumentSummary> for DocumentSummaryResponse {
    fn from(d: DocumentSummary) -> Self {
        Self {
            id: d.id,
            source: d.source,
            metadata: d.metadata,
            ingested_at: d.ingested_at,
            chunks: d.chunks,
            bytes: d.bytes,
            title: d.title,
            format: d.format,
        }
    }
}

/// `GET /documents` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size (1..=1000, default 100).
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Documents to skip.
    #[serde(default, deserialize_with = "integers::query_option_usize")]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub offset: Option<usize>,
    /// "eventual" (default) or "primary": where the listing may be answered from.
    #[param(pattern = "^(eventual|primary)$")]
    pub consistency: Option<String>,
}

/// `GET /documents` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    /// This page, in id order.
    pub documents: Vec<DocumentSummaryResponse>,
    /// Page size used.
    pub limit: usize,
    /// Offset used.
    pub offset: usize,
    /// Documents in the store.
    pub total: usize,
}

impl DocumentList {
    /// A page as the service returned it, with the paging that was asked for.
    pub fn new(page: DocumentPage, limit: usize, offset: usize) -> Self {
        Self {
            documents: page.documents.into_iter().map(Into::into).collect(),
            limit,
            offset,
            total: page.total,
        }
    }
}

/// `DELETE /documents/{id}` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    /// The deleted document's id.
    pub id: String,
    /// How many chunks went with it.
    pub deleted_chunks: usize,
}

/// `POST /collections`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionBody {
    /// 1 to 64 characters of `A-Z a-z 0-9 _ -`.
    #[schema(example = "product-docs", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// Passage size in model tokens (the server's `--chunk-tokens` when absent): from 8 to the
    /// model's window (256 for all-MiniLM-L6-v2).
    #[schema(minimum = 8, maximum = 256)]
    pub chunk_tokens: Option<usize>,
    /// Tokens neighbouring passages share (the server's `--chunk-overlap` when absent): fewer
    /// than `chunk_tokens` less the model's two special tokens (so at most 253).
    #[schema(minimum = 0, maximum = 253)]
    pub chunk_overlap: Option<usize>,
}

impl CollectionBody {
    /// The settings this body asks for.
    pub fn settings(&self) -> CollectionSettings {
        CollectionSettings {
            chunk_tokens: self.chunk_tokens,
            chunk_overlap: self.chunk_overlap,
        }
    }
}

/// One collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionResponse {
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339); null for `default`, which is the data directory itself.
    pub created: Option<String>,
    /// Documents in it.
    pub documents: usize,
    /// Passages in it.
    pub chunks: usize,
    /// Passage size in model tokens.
    pub chunk_tokens: usize,
    /// Tokens neighbouring passages share.
    pub chunk_overlap: usize,
    /// Whether its indexes are in memory (collections are opened on first use).
    pub loaded: bool,
}

impl From<CollectionInfo> for CollectionResponse {
    fn from(info: CollectionInfo) -> Self {
        Self {
            name: info.name,
            created: info.created,
            documents: info.documents,
            chunks: info.chunks,
            chunk_tokens: info.chunk.max_tokens,
            chunk_overlap: info.chunk.overlap,
            loaded: info.loaded,
        }
    }
}

/// `GET /collections`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionList {
    /// Every collection, `default` first, then by name.
    pub collections: Vec<CollectionResponse>,
}

/// `DELETE /collections/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteCollectionResponse {
    /// The deleted collection.
    pub name: String,
    /// Always true: a failed delete answers an error instead.
    pub deleted: bool,
}

/// Where one passage lies in its document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChunkSpanResponse {
    /// The chunk's id (as in search results).
    pub chunk_id: u64,
    /// Its position in the document, from 0.
    pub index: usize,
    /// Byte offset of the passage in the document's text.
    pub start: usize,
    /// Byte offset one past the passage's end.
    pub end: usize,
    /// The headings it lies under, joined by ` › `, when its document has headings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The PDF pages it lies on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PagesBody>,
}

impl From<crate::storage::ChunkSpan> for ChunkSpanResponse {
    fn from(s: crate::storage::ChunkSpan) -> Self {
        Self {
            chunk_id: s.chunk_id,
            index: s.index,
            start: s.start,
            end: s.end,
            section: (!s.section.is_empty())
                .then(|| s.section.join(crate::extract::SECTION_SEPARATOR)),
            pages: s.pages.map(PagesBody::from),
        }
    }
}

/// `GET /documents/{id}/chunks` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentChunksResponse {
    /// The document's id.
    pub id: String,
    /// Its passages in order; `start..end` are UTF-8 byte offsets into its text.
    pub chunks: Vec<ChunkSpanResponse>,
}

/// `GET /health` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// "ok".
    pub status: String,
}

/// Index settings in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IndexInfo {
    /// "hnsw".
    pub kind: String,
    /// Live vectors.
    pub vectors: usize,
    /// Deleted vectors still in the graph.
    pub tombstones: usize,
    /// HNSW M.
    pub m: usize,
    /// HNSW ef_construction.
    pub ef_construction: usize,
    /// Default search ef.
    pub ef_search: usize,
    /// Below this many chunks queries are exact.
    pub exact_below: usize,
    /// Bytes of memory per held vector: its 8-bit codes and its share of the graph's links
    /// (the f32 copy that rescoring reads stays in the segment's file once it is large).
    pub bytes_per_vector: f64,
    /// Bytes of memory the index holds in all.
    pub memory_bytes: usize,
}

/// The lexical index in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LexicalInfo {
    /// How passages are ranked by words: "tantivy (BM25)" in a data directory, "BM25 in SQL
    /// (semdex_postings)" in PostgreSQL; the same formula over the same terms.
    pub kind: String,
    /// Passages indexed.
    pub passages: u64,
    /// Bytes on disk (in PostgreSQL: the postings of every collection, with their indexes).
    pub bytes: u64,
    /// The analyzer (tokenizer, stop words, stemmer) and its version.
    pub analyzer: String,
}

/// Search modes in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchInfo {
    /// The accepted values of `mode`.
    pub modes: Vec<String>,
    /// The mode used when a request names none.
    pub default_mode: String,
    /// The default fusion of hybrid mode.
    pub fusion: String,
    /// The default weight of the dense list in hybrid mode.
    pub dense_weight: f32,
    /// Candidates each retriever contributes to a hybrid query.
    pub hybrid_candidates: usize,
}

/// Batching settings in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    /// Token budget of one batch, which is one forward pass (`--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Most inputs in one forward pass.
    pub max_batch_size: usize,
    /// Inputs that may wait.
    pub max_queued_inputs: usize,
    /// Whether concurrent requests are batched.
    pub batching: bool,
    /// Inputs waiting now.
    pub depth: usize,
}

/// `GET /info` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InfoResponse {
    /// semdex version.
    pub version: String,
    /// Model name.
    pub model: String,
    /// Model fingerprint (configuration and weights).
    pub model_fingerprint: String,
    /// Vector length.
    pub dimension: usize,
    /// Longest input in tokens.
    pub max_tokens: usize,
    /// Pooling mode.
    pub pooling: String,
    /// Transformer implementation.
    pub backend: String,
    /// The CPU kernels the forward pass runs: "amx", "avx512-vnni", "avx512", "avx-vnni",
    /// "avx2" or "portable" (the widest the CPU supports unless `SEMDEX_KERNELS` forces one),
    /// or "candle" for the candle backend.
    pub kernels: String,
    /// Number format of the dense layers, "f32" or "int8": vectors of one precision are not
    /// comparable with the other's.
    pub precision: String,
    /// Forward-pass threads.
    pub threads: usize,
    /// Documents stored.
    pub documents: usize,
    /// Chunks stored.
    pub chunks: usize,
    /// Chunk budget in tokens.
    pub chunk_tokens: usize,
    /// Chunk overlap in tokens.
    pub chunk_overlap: usize,
    /// Index settings.
    pub index: IndexInfo,
    /// The lexical (BM25) index.
    pub lexical: LexicalInfo,
    /// Search modes and their defaults.
    pub search: SearchInfo,
    /// Batching settings.
    pub queue: QueueInfo,
    /// The tiktoken encoding that token-id inputs of `/v1/embeddings` are read in.
    pub openai_token_encoding: String,
    /// Every collection's size, and its index figures once it is open; the top-level counts
    /// above are the `default` collection's.
    pub collections: Vec<CollectionInfoEntry>,
    /// Whether this server refuses writes (its PostgreSQL database is a standby).
    pub read_only: bool,
    /// The PostgreSQL standbys searches and document reads may go to, each with its replay
    /// lag; empty without `--read-database-url`.
    pub standbys: Vec<StandbyInfo>,
}

/// One PostgreSQL standby in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StandbyInfo {
    /// Its URL, without the password.
    pub url: String,
    /// Whether reads go to it now.
    pub in_rotation: bool,
    /// How far its replay is behind the primary, in seconds (null until measured).
    pub replay_lag_seconds: Option<f64>,
    /// How far, in bytes of write-ahead log (null until measured).
    pub replay_lag_bytes: Option<u64>,
    /// Reads it has answered since this server started.
    pub reads: u64,
    /// Why it is out of rotation, when it is.
    pub reason: Option<String>,
}

impl From<StandbyStatus> for StandbyInfo {
    fn from(status: StandbyStatus) -> Self {
        Self {
            url: status.url,
            in_rotation: status.in_rotation,
            replay_lag_seconds: status.replay_lag.map(|lag| lag.as_secs_f64()),
            replay_lag_bytes: status.replay_lag_bytes,
            reads: status.reads,
            reason: status.reason,
        }
    }
}

/// A kept snapshot of a collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotResponse {
    /// Its id (`GET /collections/{name}/snapshots/{id}` downloads it).
    pub id: String,
    /// The collection it was taken of.
    pub collection: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// Size of the archive in bytes.
    pub bytes: u64,
    /// SHA-256 of the archive, lowercase hex: check a download with it.
    pub sha256: String,
    /// Documents it holds.
    pub documents: usize,
    /// Passages it holds.
    pub chunks: usize,
    /// The store's generation at the snapshot's moment.
    pub generation: u64,
    /// The model its vectors belong to (a server with another refuses to restore it).
    pub model: String,
    /// That model's fingerprint.
    pub model_fingerprint: String,
    /// Passage size of the collection.
    pub chunk_tokens: usize,
    /// Passage overlap of the collection.
    pub chunk_overlap: usize,
}

impl From<SnapshotInfo> for SnapshotResponse {
    fn from(info: SnapshotInfo) -> Self {
        let manifest = info.manifest;
        Self {
            id: info.id,
            collection: manifest.collection,
            created: manifest.created,
            bytes: info.bytes,
            sha256: info.sha256,
            documents: manifest.store.documents,
            chunks: manifest.store.chunks,
            generation: manifest.store.generation,
            model: manifest.model.name,
            model_fingerprint: manifest.model.fingerprint,
            chunk_tokens: manifest.chunk_tokens,
            chunk_overlap: manifest.chunk_overlap,
        }
    }
}

/// `GET /collections/{name}/snapshots`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotList {
    /// Newest first.
    pub snapshots: Vec<SnapshotResponse>,
}

/// `DELETE /collections/{name}/snapshots/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteSnapshotResponse {
    /// The deleted snapshot's id.
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// `POST /collections/{name}/snapshots/upload` query string.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RestoreParams {
    /// Replace a collection of that name whole (default false: an existing name is 409).
    #[serde(default)]
    pub replace: bool,
}

/// One collection in `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionInfoEntry {
    /// Its name.
    pub name: String,
    /// Documents in it.
    pub documents: usize,
    /// Passages in it.
    pub chunks: usize,
    /// Whether it is open (collections open on first use).
    pub loaded: bool,
    /// Live vectors in its approximate index (null until it is open).
    pub vectors: Option<usize>,
    /// Deleted vectors its graph still holds (null until it is open).
    pub tombstones: Option<usize>,
    /// Passages in its lexical index (null until it is open).
    pub lexical_passages: Option<u64>,
}

/// An upload job (`202` of `POST /documents`, `GET /jobs/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobResponse {
    /// Its id.
    pub id: String,
    /// The collection it ingests into.
    pub collection: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    #[schema(pattern = "^(queued|running|done|failed|cancelled)$")]
    pub state: String,
    /// Files (documents) it was given.
    pub documents_total: usize,
    /// Files it has finished with, stored or refused.
    pub documents_done: usize,
    /// Passages of the documents it stored.
    pub passages_done: usize,
    /// The documents it stored (or found unchanged), in order.
    pub documents: Vec<IngestedDocument>,
    /// Files it could not ingest, and why.
    pub errors: Vec<JobFileErrorBody>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// A file an upload job could not ingest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobFileErrorBody {
    /// The file's name (or the id it was sent under).
    pub file: String,
    /// What is wrong with it.
    pub message: String,
}

impl From<crate::jobs::JobRecord> for JobResponse {
    fn from(r: crate::jobs::JobRecord) -> Self {
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Self {
            id: r.id,
            collection: r.collection,
            state,
            documents_total: r.documents_total,
            documents_done: r.documents_done,
            passages_done: r.passages_done,
            documents: r
                .documents
                .into_iter()
                .map(|d| IngestedDocument {
                    id: d.id,
                    status: d.status,
                    chunks: d.chunks,
                })
                .collect(),
            errors: r
                .errors
                .into_iter()
                .map(|e| JobFileErrorBody {
                    file: e.file,
                    message: e.message,
                })
                .collect(),
            message: r.message,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        }
    }
}
