//! `semdex bench ...`: offline measurements, a table on the terminal or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use semdex::embed::{Encoder, EncoderOptions};
use semdex::eval::speed;

use super::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Encoder throughput (passages/s, tokens/s) per batch size, and short-query latency.
    Encode(EncodeArgs),
    /// Ingest throughput against the bare encoder's on the same chunks.
    Ingest(IngestArgs),
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files, directories or JSON lines to ingest (as `semdex ingest` reads them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only the first N documents.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunking: super::ChunkArgs,
}

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Passages to embed, one per line (default: passages cut from the seed article).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Target length of the generated passages, in model tokens.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// How many passages to generate (or the first N lines of --input).
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batch: Vec<usize>,
    /// Rounds over the short queries for the latency figure.
    #[arg(long, default_value_t = 20)]
    pub query_rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalArgs, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Encode(args) => encode(global, args),
        BenchCommand::Ingest(args) => ingest(global, args),
    }
}

fn encode(global: &GlobalArgs, args: EncodeArgs) -> anyhow::Result<()> {
    let largest = args.batch.iter().copied().max().unwrap_or(1);
    // One call = one forward pass: the batch sizes measured are the batch sizes run.
    let options = EncoderOptions {
        backend: global.backend,
        threads: global.threads,
        max_batch_tokens: usize::MAX,
        max_batch_size: largest,
    };
    let encoder = Encoder::load(&global.model, options)?;
    let passages = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(args.count)
            .map(str::to_string)
            .collect(),
        None => speed::passages_of_tokens(
            encoder.tokenizer(),
            include_str!("../../seeds/putin-kim-summit.txt"),
            args.tokens,
            args.count,
        )?,
    };
    let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
    // Warm up: page in the weights and start the worker threads.
    encoder.embed(&texts[..texts.len().min(4)])?;
    let mut rows = Vec::new();
    for &batch in &args.batch {
        rows.push(speed::throughput(&encoder, &texts, batch)?);
    }
    let latency = speed::query_latency(&encoder, &speed::SHORT_QUERIES, args.query_rounds)?;
    if args.json {
        let out = serde_json::json!({
            "backend": encoder.backend_name(),
            "threads": encoder.threads(),
            "passages": texts.len(),
            "throughput": rows,
            "short_query": latency,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "backend {} on {} threads, {} passages, mean {:.0} tokens",
        encoder.backend_name(),
        encoder.threads(),
        texts.len(),
        rows.first()
            .map_or(0.0, |r| r.tokens as f64 / r.passages.max(1) as f64)
    );
    println!(
        "{:>6} {:>12} {:>12} {:>9}",
        "batch", "passages/s", "tokens/s", "seconds"
    );
    for r in &rows {
        println!(
            "{:>6} {:>12.1} {:>12.0} {:>9.2}",
            r.batch, r.passages_per_s, r.tokens_per_s, r.seconds
        );
    }
    println!(
        "short query (≤16 tokens), {} calls: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        latency.calls, latency.p50_ms, latency.p90_ms, latency.p99_ms
    );
    Ok(())
}

fn ingest(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<()> {
    let mut docs =
        semdex::engine::sources::collect(&args.paths, std::io::stdin().lock())?.documents;
    if let Some(limit) = args.limit {
        docs.truncate(limit);
    }
    let scratch = std::env::temp_dir().join(format!("semdex-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut options = semdex::engine::EngineOptions::new(&scratch);
    options.chunk = args.chunking.options();
    let encoder = std::sync::Arc::new(global.encoder()?);
    let result = semdex::eval::ingest::ingest_speed(encoder, docs, options);
    let _ = std::fs::remove_dir_all(&scratch);
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} documents, {} chunks: encoder alone {:.1} passages/s ({:.1} s), ingest {:.1} passages/s ({:.1} s): ratio {:.3}",
            r.documents,
            r.chunks,
            r.encoder_passages_per_s,
            r.encoder_seconds,
            r.ingest_passages_per_s,
            r.ingest_seconds,
            r.ratio
        );
    }
    Ok(())
}
