//! Shaping a ranked list into the answer a RAG pipeline or an agent wants, after retrieval and
//! rescoring: re-ranked for diversity (maximal marginal relevance over the passages' own
//! vectors), grouped by document or metadata value, expanded into windows of neighbouring
//! passages (merged, never repeating text), fitted to a budget of tokens or characters, and
//! each hit given the sentences that best answer the query (highlights).
//!
//! The steps run in that order, each optional; with none asked for, a search answers exactly
//! as before. The pure parts live in the submodules; this one reads what they need from the
//! backend.

mod budget;
mod group;
mod highlight;
mod mmr;
pub mod sentences;
mod window;

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

pub use budget::{Budget, BudgetUse};
pub use group::GroupBy;
pub use highlight::{CLOSE_TO_BEST, Highlight, MAX_HIGHLIGHTS, TERM_WEIGHT};

use crate::filter::MetadataFilter;
use crate::storage::{CandidateQuery, ChunkFilter, ChunkSpan};

use super::fusion::Fused;
use super::search::{Query, SearchHit, SearchRequest};
use super::{Engine, EngineError, Result};
use budget::{Fill, Measured};
use group::Grouper;
use highlight::{Highlighter, PassageTokens};
use window::{HitPlace, Window};

/// Most passages per group.
pub const MAX_GROUP_SIZE: usize = 100;
/// Most neighbouring passages a hit's window takes on each side.
pub const MAX_EXPAND: usize = 10;
/// Largest `max_tokens` budget.
pub const MAX_BUDGET_TOKENS: usize = 100_000;
/// Largest `max_chars` budget.
pub const MAX_BUDGET_CHARS: usize = 1_000_000;
/// Fewest candidates a grouped query draws its groups from.
pub const MIN_GROUP_POOL: usize = 100;
/// Most candidates a grouped or diversified query considers.
pub const MAX_POOL: usize = 2_000;
/// Candidates considered per passage wanted, when grouping or diversifying: deep enough that
/// a few long documents do not leave groups unfilled, as the chunked BEIR runs aggregate 400
/// passages into 100 documents.
const POOL_PER_PASSAGE: usize = 4;

/// How a ranked list becomes an answer. The default changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaping {
    /// Group the hits; `k` then counts groups.
    pub group_by: Option<GroupBy>,
    /// Hits per group, in rank order (1..=[`MAX_GROUP_SIZE`]; default 1).
    pub group_size: usize,
    /// Weight of diversity in maximal marginal relevance, 0..=1 (`None` or 0: rank order).
    pub diversity: Option<f32>,
    /// Neighbouring passages on each side of each hit, merged into windows (0: none).
    pub expand: usize,
    /// Fill contexts in rank order up to this much text.
    pub budget: Option<Budget>,
    /// Give each hit the sentences that best answer the query.
    pub highlights: bool,
}

impl Default for Shaping {
    fn default() -> Self {
        Self {
            group_by: None,
            group_size: 1,
            diversity: None,
            expand: 0,
            budget: None,
            highlights: false,
        }
    }
}

impl Shaping {
    /// Checks every bound; the message names the field and its allowed range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.group_size == 0 || self.group_size > MAX_GROUP_SIZE {
            return Err(format!(
                "group_size must be between 1 and {MAX_GROUP_SIZE}, got {}",
                self.group_size
            ));
        }
        if let Some(d) = self.diversity.filter(|d| !(0.0..=1.0).contains(d)) {
            return Err(format!("diversity must be between 0 and 1, got {d}"));
        }
        if self.expand > MAX_EXPAND {
            return Err(format!(
                "expand must be between 0 and {MAX_EXPAND}, got {}",
                self.expand
            ));
        }
        match self.budget {
            Some(Budget::Tokens(n)) if n == 0 || n > MAX_BUDGET_TOKENS => Err(format!(
                "max_tokens must be between 1 and {MAX_BUDGET_TOKENS}, got {n}"
            )),
            Some(Budget::Chars(n)) if n == 0 || n > MAX_BUDGET_CHARS => Err(format!(
                "max_chars must be between 1 and {MAX_BUDGET_CHARS}, got {n}"
            )),
            _ => Ok(()),
        }
    }

    /// Passages the answer holds at most: `k`, or `k` groups of `group_size`.
    pub fn passages(&self, k: usize) -> usize {
        match self.group_by {
            Some(_) => k * self.group_size,
            None => k,
        }
    }

    /// Candidates to retrieve for a query of `k`: more than it returns when groups must be
    /// filled or diversity has something to choose from, and never more than [`MAX_POOL`] (a
    /// grouped answer holds at most that many passages).
    pub fn pool(&self, k: usize) -> usize {
        let want = self.passages(k);
        let deeper = (want * POOL_PER_PASSAGE).min(MAX_POOL).max(want);
        if self.group_by.is_some() {
            deeper.max(MIN_GROUP_POOL)
        } else if self.diverse().is_some() {
            deeper
        } else {
            want
        }
    }

    /// The diversity weight, when it changes anything.
    fn diverse(&self) -> Option<f32> {
        self.diversity.filter(|d| *d > 0.0)
    }

    /// Whether the answer has contexts (windows or a budget).
    fn has_contexts(&self) -> bool {
        self.expand > 0 || self.budget.is_some()
    }
}

/// A group of hits: its key, its best score and its hits in rank order.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The document id, or the metadata value, the group shares.
    pub key: Value,
    /// Its best hit's score.
    pub score: f32,
    /// Its hits, as positions in [`super::SearchResults::hits`].
    pub hits: Vec<usize>,
}

/// A span of one document to paste into a prompt: a hit's passage, or its window of
/// neighbours, merged with every other overlapping one; cut to the budget if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The document.
    pub doc_id: String,
    /// Byte offset of the span in the document.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// The document's text in that span.
    pub text: String,
    /// The hits inside it, as positions in [`super::SearchResults::hits`], best first.
    pub hits: Vec<usize>,
    /// Its best hit's score.
    pub score: f32,
    /// Whether the budget cut it (at sentence boundaries) to less than its window.
    pub trimmed: bool,
}

/// What shaping made of a ranking.
#[derive(Debug, Default)]
pub(super) struct Shaped {
    pub hits: Vec<SearchHit>,
    pub groups: Vec<Group>,
    pub contexts: Vec<Context>,
    pub budget: Option<BudgetUse>,
}

impl Engine {
    /// Turns a ranking (best first, at least [`Shaping::pool`] deep when available) into the
    /// answer `req` asks for.
    pub(super) fn shape(
        &self,
        query: &Query<'_>,
        req: &SearchRequest,
        mut ranking: Vec<Fused>,
    ) -> Result<Shaped> {
        let shaping = &req.shape;
        if let Some(diversity) = shaping.diverse() {
            ranking = self.diversify(ranking, diversity, shaping.passages(req.k))?;
        }
        let mut shaped = match &shaping.group_by {
            None => {
                ranking.truncate(req.k);
                Shaped {
                    hits: self.hydrate(&ranking)?,
                    ..Shaped::default()
                }
            }
            Some(by) => self.group(&ranking, by, req.k, shaping.group_size)?,
        };
        if shaping.has_contexts() {
            self.fill_contexts(&mut shaped, shaping)?;
        }
        if shaping.highlights {
            self.highlight(&mut shaped, query)?;
        }
        Ok(shaped)
    }

    /// The ranking in the order maximal marginal relevance picks its first `4 × wanted`
    /// candidates, the rest after them in rank order.
    fn diversify(&self, ranking: Vec<Fused>, diversity: f32, wanted: usize) -> Result<Vec<Fused>> {
        let ids: Vec<u64> = ranking.iter().map(|c| c.id).collect();
        let vectors = self.backend.vectors_by_ids(&ids)?;
        let relevance: Vec<f32> = ranking.iter().map(|c| c.score).collect();
        let by_candidate: Vec<Option<&[f32]>> = ids
            .iter()
            .map(|id| vectors.get(id).map(Vec::as_slice))
            .collect();
        let take = (wanted * POOL_PER_PASSAGE).min(ranking.len());
        let order = mmr::mmr_order(&relevance, &by_candidate, diversity, take);
        let mut picked = vec![false; ranking.len()];
        for &i in &order {
            picked[i] = true;
        }
        let mut slots: Vec<Option<Fused>> = ranking.into_iter().map(Some).collect();
        let mut out: Vec<Fused> = order.iter().filter_map(|&i| slots[i].take()).collect();
        out.extend(slots.into_iter().flatten());
        Ok(out)
    }

    /// The first `k` groups of up to `size` hits along the ranking, hydrating it a batch at a
    /// time until the groups are full or the ranking ends. A metadata key no document of the
    /// collection holds is an invalid request.
    fn group(&self, ranking: &[Fused], by: &GroupBy, k: usize, size: usize) -> Result<Shaped> {
        let mut grouper = Grouper::new(k, size);
        let mut taken: Vec<SearchHit> = Vec::new();
        let mut any_key = false;
        let mut from = 0;
        let mut batch = (k * size * 2).max(32);
        while from < ranking.len() && !grouper.is_complete() {
            let to = (from + batch).min(ranking.len());
            for hit in self.hydrate(&ranking[from..to])? {
                let key = by.key_of(&hit.doc_id, &hit.metadata);
                any_key |= key.is_some();
                if grouper.offer(key, taken.len()) {
                    taken.push(hit);
                }
                if grouper.is_complete() {
                    break;
                }
            }
            from = to;
            batch *= 2;
        }
        if let GroupBy::Metadata(key) = by
            && !any_key
            && !self.has_metadata_key(key)?
        {
            return Err(EngineError::InvalidRequest(format!(
                "group_by: no document in this collection has a metadata key {key:?} (group by \
                 \"doc_id\" or a key the documents' metadata holds)"
            )));
        }
        // The answer lists each group's hits together, groups in order of their best hit.
        let mut slots: Vec<Option<SearchHit>> = taken.into_iter().map(Some).collect();
        let mut hits = Vec::with_capacity(slots.len());
        let mut groups = Vec::new();
        for (key, positions) in grouper.into_groups() {
            let first = hits.len();
            hits.extend(positions.iter().filter_map(|&p| slots[p].take()));
            let members: Vec<usize> = (first..hits.len()).collect();
            let score = hits[first..]
                .iter()
                .map(|h: &SearchHit| h.score)
                .fold(f32::NEG_INFINITY, f32::max);
            groups.push(Group {
                key,
                score,
                hits: members,
            });
        }
        Ok(Shaped {
            hits,
            groups,
            ..Shaped::default()
        })
    }

    /// Whether any document of the collection has metadata at `key` (a filtered lookup of one
    /// passage, made only when no candidate had it).
    fn has_metadata_key(&self, key: &str) -> Result<bool> {
        let mut exists = serde_json::Map::new();
        exists.insert(key.to_string(), json!({ "$exists": true }));
        let metadata = MetadataFilter::parse(&Value::Object(exists))
            .map_err(|e| EngineError::InvalidRequest(format!("group_by: {e}")))?;
        let filter = ChunkFilter {
            doc_ids: None,
            metadata,
        };
        let mut probe = vec![0.0; self.encoder.dimension()];
        probe[0] = 1.0;
        let found = self.backend.candidates(&CandidateQuery {
            text: "",
            vector: Some(&probe),
            dense_depth: 1,
            lexical_depth: 0,
            ef: None,
            exact: true,
            filter: &filter,
        })?;
        Ok(!found.dense.is_empty())
    }

    /// Windows of neighbouring passages around the hits (or the hits' own passages), merged,
    /// then fitted to the budget: hits left without a context leave the answer.
    fn fill_contexts(&self, shaped: &mut Shaped, shaping: &Shaping) -> Result<()> {
        let places: Vec<HitPlace<'_>> = shaped
            .hits
            .iter()
            .map(|h| HitPlace {
                doc_id: &h.doc_id,
                chunk_index: h.chunk_index,
                start: h.start,
                end: h.end,
            })
            .collect();
        let documents: Vec<&str> = {
            let mut seen = HashSet::new();
            places
                .iter()
                .map(|p| p.doc_id)
                .filter(|d| seen.insert(*d))
                .collect()
        };
        let mut passages: HashMap<String, Vec<ChunkSpan>> = HashMap::new();
        if shaping.expand > 0 {
            for doc in &documents {
                if let Some(spans) = self.backend.document_chunks(doc)? {
                    passages.insert(doc.to_string(), spans);
                }
            }
        }
        let windows = window::windows(&places, &passages, shaping.expand);
        let mut contexts = self.window_texts(&shaped.hits, windows)?;
        if let Some(budget) = shaping.budget {
            let used = self.apply_budget(&mut contexts, &shaped.hits, budget)?;
            shaped.budget = Some(BudgetUse { budget, used });
            drop_hits_outside(shaped, &mut contexts);
        }
        shaped.contexts = contexts;
        Ok(())
    }

    /// Each window with its text: a lone hit's own passage as it is, anything wider read from
    /// its document (once per document); a window whose document has gone keeps its first
    /// hit's passage.
    fn window_texts(&self, hits: &[SearchHit], windows: Vec<Window>) -> Result<Vec<Context>> {
        let mut texts: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(windows.len());
        for w in windows {
            let first = &hits[w.hits[0]];
            let own = w.hits.len() == 1 && (w.start, w.end) == (first.start, first.end);
            let document = if own {
                None
            } else {
                if !texts.contains_key(&w.doc_id) {
                    let text = self.backend.document(&w.doc_id)?.map(|d| d.text);
                    texts.insert(w.doc_id.clone(), text);
                }
                texts[&w.doc_id]
                    .as_deref()
                    .and_then(|t| t.get(w.start..w.end))
            };
            let (start, end, text) = match document {
                Some(text) => (w.start, w.end, text.to_string()),
                None => (first.start, first.end, first.text.clone()),
            };
            let score = w
                .hits
                .iter()
                .map(|&i| hits[i].score)
                .fold(f32::NEG_INFINITY, f32::max);
            out.push(Context {
                doc_id: w.doc_id,
                start,
                end,
                text,
                hits: w.hits,
                score,
                trimmed: false,
            });
        }
        Ok(out)
    }

    /// Fits `contexts` (in rank order) to `budget`: the first that does not fit is cut to the
    /// sentences around its best hit, and those after it are removed. Returns what they cost.
    fn apply_budget(
        &self,
        contexts: &mut Vec<Context>,
        hits: &[SearchHit],
        budget: Budget,
    ) -> Result<usize> {
        let mut measured = Vec::with_capacity(contexts.len());
        for c in contexts.iter() {
            let best = &hits[c.hits[0]];
            let anchor = best.start.clamp(c.start, c.end) - c.start;
            let anchor_end = best.end.clamp(c.start, c.end) - c.start;
            let token_starts = match budget {
                Budget::Tokens(_) => Some(
                    self.encoder
                        .tokenizer()
                        .token_spans(&c.text)?
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect(),
                ),
                Budget::Chars(_) => None,
            };
            measured.push(Measured {
                text: &c.text,
                anchor,
                anchor_end,
                token_starts,
            });
        }
        let (fills, used) = budget::fill(&measured, budget.limit());
        drop(measured);
        let mut kept = Vec::with_capacity(contexts.len());
        for (mut c, fill) in contexts.drain(..).zip(fills) {
            match fill {
                Fill::Whole => kept.push(c),
                Fill::Trimmed(s, e) => {
                    c.text = c.text[s..e].to_string();
                    c.end = c.start + e;
                    c.start += s;
                    c.trimmed = true;
                    kept.push(c);
                }
                Fill::Dropped => {}
            }
        }
        *contexts = kept;
        Ok(used)
    }

    /// Gives each hit its highlights: sentences of its passage scored by MaxSim over its stored
    /// token vectors and by the query's terms; within a trimmed context, only those inside it.
    fn highlight(&self, shaped: &mut Shaped, query: &Query<'_>) -> Result<()> {
        let mut highlighter = Highlighter::new(query.text, query.tokens);
        let mut stored: HashMap<u64, Vec<u8>> = HashMap::new();
        if query.tokens.is_some_and(|t| !t.is_empty()) {
            let ids: Vec<u64> = shaped.hits.iter().map(|h| h.chunk_id).collect();
            self.backend.visit_token_vectors(&ids, &mut |id, bytes| {
                stored.insert(id, bytes.to_vec());
            })?;
        }
        let mut bounds: HashMap<usize, (usize, usize)> = HashMap::new();
        for c in &shaped.contexts {
            for &h in &c.hits {
                bounds.insert(h, (c.start, c.end));
            }
        }
        for (position, hit) in shaped.hits.iter_mut().enumerate() {
            let row_starts = match stored.get(&hit.chunk_id) {
                Some(_) => self.kept_token_starts(&hit.text)?,
                None => Vec::new(),
            };
            let tokens = stored.get(&hit.chunk_id).and_then(|bytes| {
                let rows = crate::late::stored_rows(bytes)?;
                // A title embedded before the passage comes first: the passage's rows are the
                // last ones. Fewer rows than tokens (a truncated input) cannot be placed.
                (rows >= row_starts.len()).then(|| PassageTokens {
                    stored: bytes,
                    first_row: rows - row_starts.len(),
                    row_starts: &row_starts,
                })
            });
            let (low, high) = bounds
                .get(&position)
                .copied()
                .unwrap_or((hit.start, hit.end));
            hit.highlights = Some(
                highlighter
                    .highlights(&hit.text, tokens.as_ref())
                    .into_iter()
                    .map(|h| Highlight {
                        start: hit.start + h.start,
                        end: hit.start + h.end,
                        score: h.score,
                    })
                    .filter(|h| h.start >= low && h.end <= high)
                    .collect(),
            );
        }
        Ok(())
    }

    /// Where each token late interaction keeps starts in `text`: the rows its stored token
    /// vectors hold, in order.
    fn kept_token_starts(&self, text: &str) -> Result<Vec<usize>> {
        Ok(self
            .encoder
            .tokenizer()
            .tokens_with_spans(text)?
            .into_iter()
            .filter(|(id, _)| self.token_filter.keep(*id))
            .map(|(_, (start, _))| start)
            .collect())
    }
}

/// Removes the hits that no context holds any more (their window was left out, or cut away)
/// and renumbers the positions groups and contexts hold.
fn drop_hits_outside(shaped: &mut Shaped, contexts: &mut [Context]) {
    let mut keep = vec![false; shaped.hits.len()];
    for c in contexts.iter_mut() {
        c.hits.retain(|&h| {
            let hit = &shaped.hits[h];
            hit.start < c.end && c.start < hit.end
        });
        for &h in &c.hits {
            keep[h] = true;
        }
    }
    let mut renumbered = vec![None; keep.len()];
    let mut next = 0;
    for (old, &kept) in keep.iter().enumerate() {
        if kept {
            renumbered[old] = Some(next);
            next += 1;
        }
    }
    let mut position = 0;
    shaped.hits.retain(|_| {
        position += 1;
        keep[position - 1]
    });
    for c in contexts.iter_mut() {
        c.hits = c.hits.iter().filter_map(|&h| renumbered[h]).collect();
    }
    for g in &mut shaped.groups {
        g.hits = g.hits.iter().filter_map(|&h| renumbered[h]).collect();
    }
    shaped.groups.retain(|g| !g.hits.is_empty());
}
