//! What a shaped answer holds: for questions with known answer strings, the share whose
//! answer lies in the contexts a budget of tokens returns (with and without windows and
//! diversity), and the share whose top highlight holds it, against the whole passage (the
//! ceiling: a highlight is a part of it) and its first sentence (a floor any highlighter must
//! beat).

use serde::Serialize;

use crate::engine::shape::sentences::sentence_spans;
use crate::engine::{Budget, Engine, EngineError, SearchRequest, Shaping};

use super::qa::QaItem;

/// The grid of shapes to measure.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Token budgets.
    pub budgets: Vec<usize>,
    /// Neighbouring passages on each side.
    pub expands: Vec<usize>,
    /// Diversity weights (0: off).
    pub diversities: Vec<f32>,
}

/// One shape's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ContextRow {
    /// The budget, in model tokens.
    pub max_tokens: usize,
    /// Neighbours on each side.
    pub expand: usize,
    /// The diversity weight.
    pub diversity: f32,
    /// Share of questions with an answer string inside the returned contexts.
    pub answered: f64,
    /// Mean tokens the contexts used.
    pub mean_used: f64,
}

/// Where the answer lies within the best passage.
#[derive(Debug, Clone, Serialize)]
pub struct HighlightReport {
    /// Share of questions whose top passage's top highlight holds an answer string.
    pub top_highlight: f64,
    /// Share whose top passage holds one anywhere (the ceiling).
    pub passage: f64,
    /// Share whose top passage's first sentence holds one (the floor).
    pub first_sentence: f64,
    /// Mean length of the top highlight, in bytes, against the passage's.
    pub highlight_bytes: f64,
    /// Mean length of the top passage, in bytes.
    pub passage_bytes: f64,
}

/// The figures of one question set.
#[derive(Debug, Clone, Serialize)]
pub struct ContextReport {
    /// Questions asked.
    pub questions: usize,
    /// The search mode.
    pub mode: String,
    /// One row per shape.
    pub rows: Vec<ContextRow>,
    /// Highlights of the top passage.
    pub highlights: HighlightReport,
}

/// Passages a budgeted query may return: enough that the budget, not `k`, ends the answer.
const BUDGET_K: usize = 100;

/// Asks every question in each shape of `options`, searching as `base` does.
pub fn evaluate(
    engine: &Engine,
    items: &[QaItem],
    base: &SearchRequest,
    options: &ContextOptions,
) -> Result<ContextReport, EngineError> {
    let answers: Vec<Vec<String>> = items
        .iter()
        .map(|i| i.answers.iter().map(|a| a.to_lowercase()).collect())
        .collect();
    let holds = |text: &str, answers: &[String]| {
        let text = text.to_lowercase();
        answers.iter().any(|a| text.contains(a.as_str()))
    };
    let n = items.len().max(1) as f64;
    let mut rows = Vec::new();
    for &max_tokens in &options.budgets {
        for &expand in &options.expands {
            for &diversity in &options.diversities {
                let request = SearchRequest {
                    k: BUDGET_K,
                    shape: Shaping {
                        expand,
                        diversity: Some(diversity),
                        budget: Some(Budget::Tokens(max_tokens)),
                        ..Shaping::default()
                    },
                    ..base.clone()
                };
                let (mut answered, mut used) = (0usize, 0usize);
                for (item, answers) in items.iter().zip(&answers) {
                    let r = engine.search(&item.question, &request)?;
                    answered += usize::from(r.contexts.iter().any(|c| holds(&c.text, answers)));
                    used += r.budget.map_or(0, |b| b.used);
                }
                rows.push(ContextRow {
                    max_tokens,
                    expand,
                    diversity,
                    answered: answered as f64 / n,
                    mean_used: used as f64 / n,
                });
            }
        }
    }
    let request = SearchRequest {
        k: 1,
        shape: Shaping {
            highlights: true,
            ..Shaping::default()
        },
        ..base.clone()
    };
    let (mut top, mut passage, mut first) = (0usize, 0usize, 0usize);
    let (mut highlight_bytes, mut passage_bytes) = (0usize, 0usize);
    for (item, answers) in items.iter().zip(&answers) {
        let r = engine.search(&item.question, &request)?;
        let Some(hit) = r.hits.first() else { continue };
        passage += usize::from(holds(&hit.text, answers));
        passage_bytes += hit.text.len();
        if let Some(&(s, e)) = sentence_spans(&hit.text).first() {
            first += usize::from(holds(&hit.text[s..e], answers));
        }
        if let Some(h) = hit.highlights.as_ref().and_then(|h| h.first()) {
            let text = &hit.text[h.start - hit.start..h.end - hit.start];
            top += usize::from(holds(text, answers));
            highlight_bytes += text.len();
        }
    }
    Ok(ContextReport {
        questions: items.len(),
        mode: base.mode.as_str().to_string(),
        rows,
        highlights: HighlightReport {
            top_highlight: top as f64 / n,
            passage: passage as f64 / n,
            first_sentence: first as f64 / n,
            highlight_bytes: highlight_bytes as f64 / n,
            passage_bytes: passage_bytes as f64 / n,
        },
    })
}
