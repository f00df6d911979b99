//! Tool answers as text a language model reads and cites: every passage under a numbered
//! heading naming its document, where it lies in it (byte offsets, the passage's number, and
//! the section, page or title when the document's metadata gives them) and its score.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::api::types::{CollectionResponse, SearchResponse, SearchResult};
use crate::engine::IngestReport;
use crate::storage::StoredDocument;

/// Metadata keys that tell a reader where a passage comes from, shown beside it.
const PLACE_KEYS: [&str; 7] = [
    "title", "section", "heading", "chapter", "page", "url", "source",
];

/// A search answer: contexts when the request asked for them (expand, a budget), else the
/// passages; groups as headings. Each best sentence is in `**bold**`.
pub fn search(query: &str, collection: &str, response: &SearchResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} passage{} for {query:?} in collection {collection:?} ({} search).",
        response.results.len(),
        if response.results.len() == 1 { "" } else { "s" },
        response.mode
    );
    if response.results.is_empty() {
        out.push_str("Nothing matched; try other words, another mode or no filter.\n");
        return out;
    }
    match &response.contexts {
        Some(contexts) => {
            for (i, c) in contexts.iter().enumerate() {
                let first = &response.results[c.results[0]];
                let passages: Vec<String> = c
                    .results
                    .iter()
                    .map(|&r| format!("#{}", response.results[r].chunk_index))
                    .collect();
                let _ = writeln!(
                    out,
                    "\n[{}] document {:?}, bytes {}..{}, passages {}{}, score {:.3}{}{}",
                    i + 1,
                    c.doc_id,
                    c.start,
                    c.end,
                    passages.join(" "),
                    place(&first.metadata),
                    c.score,
                    if c.trimmed {
                        " (cut to the budget)"
                    } else {
                        ""
                    },
                    best_at(first, c.start, c.end),
                );
                let _ = writeln!(out, "{}", marked(first, &c.text, c.start).trim());
            }
        }
        None => {
            let group_of = group_heads(response);
            for (i, r) in response.results.iter().enumerate() {
                if let Some(head) = group_of.get(&i) {
                    let _ = writeln!(out, "\n{head}");
                }
                let _ = writeln!(
                    out,
                    "\n[{}] document {:?}, passage #{}, bytes {}..{}{}, score {:.3}{}",
                    i + 1,
                    r.doc_id,
                    r.chunk_index,
                    r.start,
                    r.end,
                    place(&r.metadata),
                    r.score,
                    best_at(r, r.start, r.end),
                );
                let _ = writeln!(out, "{}", marked(r, &r.text, r.start).trim());
            }
        }
    }
    if let Some(budget) = &response.budget {
        let _ = writeln!(
            out,
            "\n{} of {} {} used.",
            budget.used, budget.limit, budget.unit
        );
    }
    out
}

/// "Group N: KEY" headings before the first passage of each group.
fn group_heads(response: &SearchResponse) -> std::collections::HashMap<usize, String> {
    let Some(groups) = &response.groups else {
        return Default::default();
    };
    groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let key = match &g.key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((*g.results.first()?, format!("Group {}: {key}", i + 1)))
        })
        .collect()
}

/// ", title \"...\", page 3": where the metadata says a passage comes from.
fn place(metadata: &Map<String, Value>) -> String {
    let mut out = String::new();
    for key in PLACE_KEYS {
        match metadata.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                let _ = write!(out, ", {key} {:?}", s.trim());
            }
            Some(v @ Value::Number(_)) => {
                let _ = write!(out, ", {key} {v}");
            }
            _ => {}
        }
    }
    out
}

/// The hit's top highlight, when it lies in the document's bytes `start..end`.
fn top_highlight(hit: &SearchResult, start: usize, end: usize) -> Option<(usize, usize)> {
    let h = hit.highlights.as_ref()?.first()?;
    (start <= h.start && h.end <= end).then_some((h.start, h.end))
}

/// ", best sentence at bytes a..b (in bold)" for the heading of a hit with a highlight.
fn best_at(hit: &SearchResult, start: usize, end: usize) -> String {
    top_highlight(hit, start, end)
        .map(|(s, e)| format!(", best sentence at bytes {s}..{e} (in bold)"))
        .unwrap_or_default()
}

/// `text` (the document's bytes from `offset`) with the hit's top highlight in `**bold**`.
fn marked(hit: &SearchResult, text: &str, offset: usize) -> String {
    let Some((s, e)) = top_highlight(hit, offset, offset + text.len()) else {
        return text.to_string();
    };
    let (s, e) = (s - offset, e - offset);
    match (text.get(..s), text.get(s..e), text.get(e..)) {
        (Some(before), Some(sentence), Some(after)) => format!("{before}**{sentence}**{after}"),
        _ => text.to_string(),
    }
}

/// What `add_documents` did, per document.
pub fn added(collection: &str, reports: &[IngestReport]) -> String {
    let mut out = format!(
        "{} document{} in collection {collection:?}:\n",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    );
    for r in reports {
        let _ = writeln!(
            out,
            "- {:?}: {} ({} passages)",
            r.id,
            r.status.as_str(),
            r.chunks
        );
    }
    out
}

/// A document, or the span `start..end` of it.
pub fn document(collection: &str, doc: &StoredDocument, start: usize, end: usize) -> String {
    let length = doc.text.len();
    let mut out = format!(
        "Document {:?} in collection {collection:?}{}: bytes {start}..{end} of {length}, {} passages.\n",
        doc.id,
        place(&doc.metadata),
        doc.chunks
    );
    if !doc.metadata.is_empty() {
        let _ = writeln!(
            out,
            "Metadata: {}",
            serde_json::to_string(&doc.metadata).unwrap_or_default()
        );
    }
    out.push('\n');
    out.push_str(&doc.text[start..end]);
    if end < length {
        let _ = write!(
            out,
            "\n\n[{} more bytes: call get_document with start {end}]",
            length - end
        );
    }
    out
}

/// The collections, one a line.
pub fn collections(collections: &[CollectionResponse]) -> String {
    let mut out = format!("{} collections:\n", collections.len());
    for c in collections {
        let _ = writeln!(
            out,
            "- {:?}: {} documents, {} passages (passages of {} tokens)",
            c.name, c.documents, c.chunks, c.chunk_tokens
        );
    }
    out
}
