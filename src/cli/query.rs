//! `semdex query`: the nearest passages to a question, as a table or JSON.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use semdex::api::types::SearchResponse;
use semdex::engine::SearchRequest;
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
    /// Print JSON (the shape of POST /search) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The collection to search.
    #[arg(long, env = "SEMDEX_COLLECTION", default_value = semdex::collections::DEFAULT_COLLECTION)]
    pub collection: String,
    #[command(flatten)]
    pub engine: EngineArgs,
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
        ..args.hybrid.request()
    };
    let engine = args
        .engine
        .open_for_reading(global)?
        .engine(&args.collection, None)?;
    let started = Instant::now();
    let results = engine.search(&args.question, &request)?;
    let response = SearchResponse::new(results, started.elapsed().as_secs_f64() * 1000.0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(());
    }
    if response.results.is_empty() {
        println!("no passages (is the data directory empty?)");
    }
    let part =
        |name: &str, v: Option<f32>| v.map(|v| format!(" {name} {v:.3}")).unwrap_or_default();
    for (rank, r) in response.results.iter().enumerate() {
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
        for line in textwrap(&r.text, 96) {
            println!("      {line}");
        }
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
fn citation(r: &semdex::api::types::SearchResult) -> Option<String> {
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
