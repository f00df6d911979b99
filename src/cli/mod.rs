//! Argument parsing and dispatch; each subcommand lives in its own file.

mod bench;
mod chunk;
mod embed;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use semdex::chunk::{ChunkOptions, Chunker};
use semdex::embed::{BackendKind, DEFAULT_MODEL_DIR, Encoder, EncoderOptions};

/// semdex: a semantic embedding and retrieval server (all-MiniLM-L6-v2 on candle, HNSW index).
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// sentence-transformers model folder (fetch it with ./models/fetch.sh).
    #[arg(long, global = true, env = "SEMDEX_MODEL", default_value = DEFAULT_MODEL_DIR)]
    pub model: PathBuf,
    /// Threads for the forward pass (default: every core).
    #[arg(long, global = true, env = "SEMDEX_THREADS")]
    pub threads: Option<usize>,
    /// Transformer implementation: "packed" (fast, default) or "candle" (stock, padded).
    #[arg(long, global = true, env = "SEMDEX_BACKEND", default_value = "packed")]
    pub backend: BackendKind,
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Chunking options shared by the subcommands that split documents.
#[derive(Args, Debug, Clone)]
pub struct ChunkArgs {
    /// Most model tokens per passage, special tokens included (at most the model's 256).
    #[arg(long, env = "SEMDEX_CHUNK_TOKENS", default_value_t = semdex::chunk::DEFAULT_MAX_TOKENS)]
    pub chunk_tokens: usize,
    /// Tokens neighbouring passages may share.
    #[arg(long, env = "SEMDEX_CHUNK_OVERLAP", default_value_t = semdex::chunk::DEFAULT_OVERLAP)]
    pub chunk_overlap: usize,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Embed texts: one JSON array per input (arguments, or one text per stdin line).
    Embed(embed::EmbedArgs),
    /// Split a document into passages: one JSON object per line.
    Chunk(chunk::ChunkCmdArgs),
    /// Offline measurements: encoder speed, ANN recall, retrieval quality.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl GlobalArgs {
    /// Loads the encoder these options describe.
    pub fn encoder(&self) -> anyhow::Result<Encoder> {
        let options = EncoderOptions {
            backend: self.backend,
            threads: self.threads,
            ..EncoderOptions::default()
        };
        Ok(Encoder::load(&self.model, options)?)
    }
}

impl ChunkArgs {
    /// Builds a chunker sized by `encoder`'s tokenizer.
    pub fn chunker(&self, encoder: &Encoder) -> anyhow::Result<Chunker> {
        let options = ChunkOptions {
            max_tokens: self.chunk_tokens,
            overlap: self.chunk_overlap,
        };
        Chunker::new(encoder.tokenizer().clone(), options).context("invalid chunking options")
    }
}

/// Logs go to stderr, filtered by RUST_LOG or the -v count.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Embed(args) => embed::run(&cli.global, args),
        Command::Chunk(args) => chunk::run(&cli.global, args),
        Command::Bench(command) => bench::run(&cli.global, command),
    }
}
