//! `semdex query`: the nearest passages to a question, as a table or JSON.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use semdex::api::types::{HighlightBody, SearchResponse, SearchResult};
use semdex::engine::{Budget, GroupBy, SearchRequest, Shaping};
use semdex::filter::MetadataFilter;
use semdex::storage::ChunkFilter;
use serde_json::{Map, Value, json};

use super::{EngineArgs, GlobalArgs};

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The question.
    pub question: String,
    /// How many passages.
    #[arg(short, default_value_t = 5)]
    pub k: usize,
    /// HNSW search breadth for this query.
    #[arg(long)]
    pub ef: Option<usize>,
    /// Exact search instead of HNSW.
    #[arg(long)]
    pub exact: bool,
    /// Only passages of this document (repeatable).
    #[arg(long = "doc")]
    pub doc_ids: Vec<String>,
    /// Only documents whose metadata KEY equals VALUE (VALUE read as JSON if it parses, else
    /// as a string; repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Only documents whose metadata passes this filter, written as POST /search's
    /// `filter.metadata`, e.g. '{"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}'
    /// (all of --filter, --meta and --doc must hold).
    #[arg(long, value_name = "JSON")]
    pub filter: Option<String>,
    /// Which retrievers answer: hybrid (embeddings and BM25, fused), dense or lexical.
    #[arg(long, default_value = "hybrid")]
    pub mode: semdex::engine::SearchMode,
    #[command(flatten)]
    pub hybrid: super::HybridArgs,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Print JSON (the shape of POST /search) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The collection to search.
    #[arg(long, env = "SEMDEX_COLLECTION", default_value = semdex::collections::DEFAULT_COLLECTION)]
    pub collection: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// How the ranked passages are shaped (POST /search's options of the same names).
#[derive(Args, Debug)]
pub struct ShapeArgs {
    /// Group passages by "doc_id" or a metadata key; -k then counts groups.
    #[arg(long, value_name = "doc_id|KEY")]
    pub group_by: Option<String>,
    /// Passages per group (1..=100).
    #[arg(long, default_value_t = 1)]
    pub group_size: usize,
    /// Re-rank by maximal marginal relevance: 0 keeps the ranking, 1 values only being
    /// unlike the passages above.
    #[arg(long, value_name = "0..1")]
    pub diversity: Option<f32>,
    /// Neighbouring passages on each side of each hit, merged into windows (0..=10).
    #[arg(long, default_value_t = 0)]
    pub expand: usize,
    /// Fill the contexts in rank order with at most this many model tokens.
    #[arg(long, conflicts_with = "max_chars")]
    pub max_tokens: Option<usize>,
    /// Fill the contexts in rank order with at most this many characters.
    #[arg(long)]
    pub max_chars: Option<usize>,
    /// Mark the sentences that best answer the question.
    #[arg(long)]
    pub highlights: bool,
}

impl ShapeArgs {
    /// The engine's shaping (checked by the engine with the rest of the request).
    fn shaping(&self) -> anyhow::Result<Shaping> {
        Ok(Shaping {
            group_by: self
                .group_by
                .as_deref()
                .map(GroupBy::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--group-by: {e}"))?,
            group_size: self.group_size,
            diversity: self.diversity,
            expand: self.expand,
            budget: match (self.max_tokens, self.max_chars) {
                (Some(tokens), _) => Some(Budget::Tokens(tokens)),
                (None, Some(chars)) => Some(Budget::Chars(chars)),
                (None, None) => None,
            },
            highlights: self.highlights,
        })
    }
}

pub fn run(global: &GlobalArgs, args: QueryArgs) -> anyhow::Result<()> {
    let request = SearchRequest {
        k: args.k,
        ef: args.ef,
        exact: args.exact,
        filter: ChunkFilter {
            doc_ids: (!args.doc_ids.is_empty()).then(|| args.doc_ids.clone()),
            metadata: metadata_filter(&args)?,
        },
        mode: args.mode,
        shape: args.shape.shaping()?,
        ..args.hybrid.request()
    };
    let engine = args
        .engine
        .open_for_reading(global)?
        .engine(&args.collection, None)?;
    let started = Instant::now();
    let results = engine.search(&args.question, &request)?;
    let response = SearchResponse::new(
        results,
        &request.shape,
        started.elapsed().as_secs_f64() * 1000.0,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(());
    }
    if response.results.is_empty() {
        println!("no passages (is the data directory empty?)");
    }
    let group_of = group_heads(&response);
    for (rank, r) in response.results.iter().enumerate() {
        if let Some(head) = group_of.get(&rank) {
            println!("{head}");
        }
        print_result(rank, r);
    }
    if let Some(contexts) = &response.contexts {
        println!("contexts:");
        for c in contexts {
            let passages: Vec<String> = c.results.iter().map(|p| (p + 1).to_string()).collect();
            println!(
                "  {} [{}..{}]{} (passages {})",
                c.doc_id,
                c.start,
                c.end,
                if c.trimmed { " trimmed" } else { "" },
                passages.join(", ")
            );
            for line in textwrap(&c.text, 96) {
                println!("      {line}");
            }
        }
    }
    if let Some(budget) = &response.budget {
        println!("({} of {} {} used)", budget.used, budget.limit, budget.unit);
    }
    println!(
        "({} results in {:.1} ms, {} mode, {})",
        response.results.len(),
        response.took_ms,
        response.mode,
        response.strategy
    );
    Ok(())
}

/// A heading line before the first passage of each group.
fn group_heads(response: &SearchResponse) -> std::collections::HashMap<usize, String> {
    let Some(groups) = &response.groups else {
        return Default::default();
    };
    groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let first = *g.results.first()?;
            let key = match &g.key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((
                first,
                format!("group {}: {key} (best {:.4})", i + 1, g.score),
            ))
        })
        .collect()
}

/// One passage of the table, its highlights between » and «.
fn print_result(rank: usize, r: &SearchResult) {
    let part =
        |name: &str, v: Option<f32>| v.map(|v| format!(" {name} {v:.3}")).unwrap_or_default();
    println!(
        "{:>2}. {:.4}  {} #{} [{}..{}]{}{}{}",
        rank + 1,
        r.score,
        r.doc_id,
        r.chunk_index,
        r.start,
        r.end,
        part("dense", r.scores.dense),
        part("lexical", r.scores.lexical),
        part("rerank", r.scores.rerank),
    );
    if let Some(cited) = citation(r) {
        println!("      {cited}");
    }
    let text = match &r.highlights {
        Some(marks) => marked(&r.text, r.start, marks),
        None => r.text.clone(),
    };
    for line in textwrap(&text, 96) {
        println!("      {line}");
    }
}

/// `text` (found at `offset` in its document) with each highlight between » and «.
fn marked(text: &str, offset: usize, marks: &[HighlightBody]) -> String {
    let mut spans: Vec<(usize, usize)> = marks
        .iter()
        .filter_map(|h| {
            let (s, e) = (h.start.checked_sub(offset)?, h.end.checked_sub(offset)?);
            (text.is_char_boundary(s) && text.is_char_boundary(e) && s <= e && e <= text.len())
                .then_some((s, e))
        })
        .collect();
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len() + 8 * spans.len());
    let mut at = 0;
    for (s, e) in spans {
        if s < at {
            continue;
        }
        out.push_str(&text[at..s]);
        out.push('»');
        out.push_str(&text[s..e]);
        out.push('«');
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

/// The metadata filter of `--filter` and `--meta`, parsed once: both must hold.
fn metadata_filter(args: &QueryArgs) -> anyhow::Result<MetadataFilter> {
    let mut pairs = Map::new();
    for pair in &args.metadata {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--meta {pair:?}: expected KEY=VALUE"))?;
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        pairs.insert(key.to_string(), value);
    }
    let pairs = Value::Object(pairs);
    let meta = MetadataFilter::parse(&pairs).map_err(|e| anyhow::anyhow!("--meta: {e}"))?;
    let Some(text) = &args.filter else {
        return Ok(meta);
    };
    let given: Value = serde_json::from_str(text).context("--filter: not valid JSON")?;
    let filter = MetadataFilter::parse(&given).map_err(|e| anyhow::anyhow!("--filter: {e}"))?;
    if meta.is_empty() {
        return Ok(filter);
    }
    MetadataFilter::parse(&json!({"$and": [given, pairs]}))
        .map_err(|e| anyhow::anyhow!("--filter and --meta together: {e}"))
}

/// Where a hit lies in its file (`Title · Install › From source · pages 3–4`), if known.
fn citation(r: &SearchResult) -> Option<String> {
    let pages = r.pages.map(|p| {
        if p.last > p.first {
            format!("pages {}–{}", p.first, p.last)
        } else {
            format!("page {}", p.first)
        }
    });
    let parts: Vec<&str> = [r.title.as_deref(), r.section.as_deref(), pages.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// Greedy word wrap for the terminal table.
fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
