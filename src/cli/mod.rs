//! Argument parsing and dispatch; each subcommand lives in its own file.

mod api_key;
mod bench;
mod chunk;
mod embed;
mod ingest;
mod mcp;
mod query;
mod serve;
mod snapshot;

use std::path::PathBuf;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use semdex::chunk::{ChunkOptions, Chunker};
use semdex::collections::{CollectionError, CollectionSettings, Collections, DEFAULT_COLLECTION};
use semdex::embed::{
    BackendKind, DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MODEL_DIR, Encoder, EncoderOptions, Precision,
};
use semdex::engine::{Engine, EngineOptions, model_identity};
use semdex::index::HnswParams;
use semdex::progress::Progress;
use semdex::storage::embedded::EmbeddedCatalog;
use semdex::storage::embedded::store::StoreError;
use semdex::storage::{Catalog, StorageError};

/// semdex: a semantic embedding and retrieval server (all-MiniLM-L6-v2 on semdex's own CPU
/// kernels, HNSW and BM25 indexes).
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
    /// Number format of the dense layers: "f32" (the vectors sentence-transformers makes,
    /// default) or "int8" (faster on CPUs with VNNI or AMX; vectors within cosine 0.99 of
    /// f32's). Vectors of one precision must not be searched with queries of the other.
    #[arg(long, global = true, env = "SEMDEX_PRECISION", default_value = "f32")]
    pub precision: Precision,
    /// Most tokens in one forward pass; the server's batching queue gathers concurrent
    /// requests up to the same budget.
    #[arg(long, global = true, env = "SEMDEX_MAX_BATCH_TOKENS", default_value_t = DEFAULT_MAX_BATCH_TOKENS)]
    pub max_batch_tokens: usize,
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
    /// Keep each document whole as one passage (embedded up to the model's 256 tokens).
    #[arg(long, env = "SEMDEX_WHOLE_DOCUMENTS")]
    pub whole_documents: bool,
    /// Embed and index each passage after its document's title (the `title` metadata field,
    /// or a heading first line), so that passages that never name their subject still match it.
    #[arg(long, env = "SEMDEX_TITLE_CONTEXT")]
    pub title_context: bool,
}

/// How hybrid search fuses its lists (for `query` and the benchmarks).
#[derive(Args, Debug, Clone)]
pub struct HybridArgs {
    /// Hybrid fusion: "convex" (normalised scores) or "rrf" (reciprocal rank).
    #[arg(long, default_value = "convex")]
    pub fusion: semdex::engine::Fusion,
    /// Weight of the dense list in hybrid fusion, 0..=1.
    #[arg(long, default_value_t = semdex::engine::DEFAULT_DENSE_WEIGHT)]
    pub dense_weight: f32,
}

impl HybridArgs {
    /// A search request with these fusion settings and defaults for the rest.
    pub fn request(&self) -> semdex::engine::SearchRequest {
        semdex::engine::SearchRequest {
            fusion: self.fusion,
            dense_weight: Some(self.dense_weight),
            ..Default::default()
        }
    }
}

/// Where the corpus lives when it is not in the data directory.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Keep the corpus in this PostgreSQL database (with pgvector) instead of the data
    /// directory, shared by every semdex given the same URL:
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`. The schema is created and migrated at
    /// start.
    #[cfg(feature = "postgres")]
    #[arg(long, env = "SEMDEX_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most connections this process opens to the database (requests beyond wait for one),
    /// and to each standby.
    #[cfg(feature = "postgres")]
    #[arg(long, env = "SEMDEX_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: u32,
    /// A hot standby of the database (repeatable; in the environment a comma-separated list):
    /// searches, document reads and collection listings go to the standbys in rotation, writes
    /// to --database-url. Reads asking for `consistency: "primary"` go to the primary.
    #[cfg(feature = "postgres")]
    #[arg(
        long = "read-database-url",
        env = "SEMDEX_READ_DATABASE_URL",
        value_delimiter = ',',
        requires = "database_url"
    )]
    pub read_database_urls: Vec<String>,
    /// Seconds a standby's replay may lag the primary before reads stop going to it (it
    /// rejoins once it has caught up).
    #[cfg(feature = "postgres")]
    #[arg(long, env = "SEMDEX_MAX_STANDBY_LAG", default_value_t = 5.0)]
    pub max_standby_lag: f64,
}

impl DatabaseArgs {
    /// The database the arguments name, connected to and migrated here (`None` without
    /// `--database-url`).
    #[cfg(feature = "postgres")]
    pub fn database(
        &self,
        encoder: &Encoder,
        hnsw: HnswParams,
    ) -> anyhow::Result<Option<Arc<semdex::storage::postgres::Database>>> {
        let Some(url) = &self.database_url else {
            return Ok(None);
        };
        if !(self.max_standby_lag.is_finite() && self.max_standby_lag >= 0.0) {
            anyhow::bail!(
                "--max-standby-lag must be a number of seconds, not {}",
                self.max_standby_lag
            );
        }
        let options = semdex::storage::postgres::ConnectOptions {
            pool_size: self.database_pool,
            standbys: self.read_database_urls.clone(),
            max_standby_lag: Duration::from_secs_f64(self.max_standby_lag),
        };
        let database = semdex::storage::postgres::Database::open(
            url,
            &options,
            &model_identity(encoder),
            hnsw,
        )
        .context("cannot open the PostgreSQL database")?;
        Ok(Some(database))
    }

    /// The catalog of collections the arguments name: the database (with `--database-url`),
    /// else `data_dir`, locked for writing unless `read_only`.
    pub fn catalog(
        &self,
        encoder: &Encoder,
        options: &EngineOptions,
    ) -> anyhow::Result<Arc<dyn Catalog>> {
        #[cfg(feature = "postgres")]
        if let Some(database) = self.database(encoder, options.hnsw)? {
            let defaults = semdex::storage::ChunkSettings {
                chunk_tokens: options.chunk.max_tokens,
                chunk_overlap: options.chunk.overlap,
            };
            return Ok(Arc::new(semdex::storage::postgres::PostgresCatalog::new(
                database, defaults,
            )));
        }
        let _ = encoder;
        Ok(Arc::new(EmbeddedCatalog::open(
            &options.data_dir,
            options.read_only,
        )?))
    }

    /// Whether the corpus is in a database rather than the data directory.
    pub fn in_database(&self) -> bool {
        #[cfg(feature = "postgres")]
        if self.database_url.is_some() {
            return true;
        }
        false
    }
}

/// A storage the command line opened: its catalog of collections and its default
/// collection's engine.
pub struct Opened {
    /// The collections' catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The default collection's engine.
    pub default: Arc<Engine>,
}

impl Opened {
    /// The collections of this storage.
    pub fn collections(&self) -> anyhow::Result<Collections> {
        Ok(Collections::new(
            self.catalog.clone(),
            self.default.clone(),
        )?)
    }

    /// The engine of collection `name`: the default one for "default"; with `create`, a
    /// missing collection is made with those settings first.
    pub fn engine(
        &self,
        name: &str,
        create: Option<CollectionSettings>,
    ) -> anyhow::Result<Arc<Engine>> {
        if name == DEFAULT_COLLECTION {
            return Ok(self.default.clone());
        }
        let collections = self.collections()?;
        match (collections.engine_blocking(name), create) {
            (Err(CollectionError::NotFound(_)), Some(settings)) => {
                collections.create(name, settings)?;
                tracing::info!(collection = name, "created the collection");
                Ok(collections.engine_blocking(name)?)
            }
            (engine, _) => Ok(engine?),
        }
    }
}

/// Options of the subcommands that open a data directory.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Data directory: the SQLite store and the index dump.
    #[arg(long, env = "SEMDEX_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Documents ingested when the data directory is empty (the default corpus).
    #[arg(long, env = "SEMDEX_SEEDS", default_value = "seeds")]
    pub seeds: PathBuf,
    /// HNSW links per node (M).
    #[arg(long, env = "SEMDEX_HNSW_M", default_value_t = HnswParams::default().m)]
    pub hnsw_m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, env = "SEMDEX_EF_CONSTRUCTION", default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (per-query `ef` overrides it).
    #[arg(long, env = "SEMDEX_EF_SEARCH", default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
    /// Below this many chunks every query is answered by exact search.
    #[arg(long, env = "SEMDEX_EXACT_BELOW", default_value_t = EngineOptions::new("").exact_below)]
    pub exact_below: usize,
    /// Chunks embedded and committed per group while ingesting.
    #[arg(long, env = "SEMDEX_INGEST_BATCH", default_value_t = EngineOptions::new("").ingest_batch)]
    pub ingest_batch: usize,
    #[command(flatten)]
    pub chunking: ChunkArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

impl EngineArgs {
    /// The engine options these arguments describe.
    pub fn options(&self) -> EngineOptions {
        let mut options = EngineOptions::new(&self.data_dir);
        options.hnsw = HnswParams {
            m: self.hnsw_m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
        };
        options.exact_below = self.exact_below;
        options.ingest_batch = self.ingest_batch.max(1);
        options.chunk = self.chunking.options();
        options.title_context = self.chunking.title_context;
        options
    }

    /// What the engine is opened on, for error messages.
    pub fn describe(&self) -> String {
        if self.database.in_database() {
            "the PostgreSQL database".to_string()
        } else {
            format!("data directory {}", self.data_dir.display())
        }
    }

    /// Loads the model, opens the storage (showing an index rebuild), and ingests the seed
    /// documents if its default collection is empty.
    pub fn open(&self, global: &GlobalArgs) -> anyhow::Result<Opened> {
        let encoder = Arc::new(global.encoder()?);
        let opened = self.open_with(encoder, self.options())?;
        self.seed(&opened)?;
        Ok(opened)
    }

    /// Like [`EngineArgs::open`], but when another process holds the data directory, opens it
    /// read-only instead of failing (for commands that only read, such as `query`).
    pub fn open_for_reading(&self, global: &GlobalArgs) -> anyhow::Result<Opened> {
        let encoder = Arc::new(global.encoder()?);
        let opened = match self.open_with(encoder.clone(), self.options()) {
            Err(e) if is_locked(&e) => {
                tracing::info!("the data directory is in use; reading it read-only");
                let mut options = self.options();
                options.read_only = true;
                self.open_with(encoder, options)
            }
            other => other,
        }?;
        self.seed(&opened)?;
        Ok(opened)
    }

    /// Opens the storage with `options` and its default collection's engine (no seeding).
    pub fn open_with(
        &self,
        encoder: Arc<Encoder>,
        options: EngineOptions,
    ) -> anyhow::Result<Opened> {
        let catalog = self
            .database
            .catalog(&encoder, &options)
            .with_context(|| format!("cannot open {}", self.describe()))?;
        let rebuild = progress_bar("rebuilding index", "vectors");
        let default = catalog
            .open(
                DEFAULT_COLLECTION,
                &model_identity(&encoder),
                &options.backend(),
                &rebuild,
            )
            .map_err(semdex::engine::EngineError::from)
            .and_then(|backend| Engine::with_backend(encoder, backend, options, &rebuild))
            .with_context(|| format!("cannot open {}", self.describe()))?;
        Ok(Opened {
            catalog,
            default: Arc::new(default),
        })
    }

    /// Ingests the seed documents into a freshly opened, empty, writable storage (never into
    /// a database's standby).
    fn seed(&self, opened: &Opened) -> anyhow::Result<()> {
        let engine = &opened.default;
        if engine.stats()?.documents == 0
            && !engine.options().read_only
            && !opened.catalog.is_read_only()
        {
            if self.seeds.exists() {
                tracing::info!(seeds = %self.seeds.display(), "data directory is empty: ingesting the seed documents");
                let summary = ingest::ingest_paths(
                    engine,
                    std::slice::from_ref(&self.seeds),
                    semdex::engine::sources::SourceOptions::default(),
                )?;
                if summary.skipped > 0 {
                    tracing::warn!(
                        skipped = summary.skipped,
                        "some seed files were skipped; serving the rest"
                    );
                }
            } else {
                tracing::warn!(seeds = %self.seeds.display(), "data directory is empty and the seed folder does not exist");
            }
        }
        Ok(())
    }
}

/// Whether opening failed because another process holds the data directory.
fn is_locked(err: &anyhow::Error) -> bool {
    let locked =
        |storage: &StorageError| matches!(storage, StorageError::Store(StoreError::Locked { .. }));
    err.chain().any(|cause| {
        cause.downcast_ref::<StorageError>().is_some_and(locked)
            || matches!(
                cause.downcast_ref::<semdex::engine::EngineError>(),
                Some(semdex::engine::EngineError::Storage(storage)) if locked(storage)
            )
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal), for the library's
/// [`Progress`] reports.
pub struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, delta: u64) {
        self.0.inc(delta);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }

    fn message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }
}

/// A progress bar labelled `label`, counting `unit` ("bytes" formats sizes).
pub fn progress_bar(label: &str, unit: &str) -> Bar {
    let bar = ProgressBar::new(0);
    let template = if unit == "bytes" {
        format!("{label} [{{bar:40}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, eta {{eta}})")
    } else {
        format!("{label} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Bar(bar)
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Embed texts: one JSON array per input (arguments, or one text per stdin line).
    Embed(embed::EmbedArgs),
    /// Split a document into passages: one JSON object per line.
    Chunk(chunk::ChunkCmdArgs),
    /// Ingest files, directories (.txt, .md, .jsonl) or stdin (-) into the data directory.
    Ingest(ingest::IngestArgs),
    /// Ask a question: the nearest passages, as a table or JSON.
    Query(query::QueryArgs),
    /// Serve the HTTP API (search, documents, TEI and OpenAI embeddings, health, metrics).
    Serve(serve::ServeArgs),
    /// Write a consistent snapshot of a collection of the data directory to a tar file (a
    /// running server may keep serving and writing it).
    Snapshot(snapshot::SnapshotArgs),
    /// Restore a snapshot as a collection of the data directory, whole or not at all.
    Restore(snapshot::RestoreArgs),
    /// Serve the Model Context Protocol over stdio: search and documents as tools for a
    /// desktop agent (which starts `semdex mcp` itself).
    Mcp(mcp::McpArgs),
    /// Offline measurements: encoder speed, ANN recall, retrieval quality.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

impl GlobalArgs {
    /// Loads the encoder these options describe.
    pub fn encoder(&self) -> anyhow::Result<Encoder> {
        let options = EncoderOptions {
            backend: self.backend,
            precision: self.precision,
            threads: self.threads,
            max_batch_tokens: self.max_batch_tokens.max(1),
            ..EncoderOptions::default()
        };
        Ok(Encoder::load(&self.model, options)?)
    }
}

impl ChunkArgs {
    /// The chunking options these arguments describe.
    pub fn options(&self) -> ChunkOptions {
        ChunkOptions {
            max_tokens: self.chunk_tokens,
            overlap: self.chunk_overlap,
            whole_documents: self.whole_documents,
        }
    }

    /// Builds a chunker sized by `encoder`'s tokenizer.
    pub fn chunker(&self, encoder: &Encoder) -> anyhow::Result<Chunker> {
        Chunker::new(encoder.tokenizer().clone(), self.options())
            .context("invalid chunking options")
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
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Embed(args) => embed::run(&cli.global, args),
        Command::Chunk(args) => chunk::run(&cli.global, args),
        Command::Ingest(args) => ingest::run(&cli.global, args),
        Command::Query(args) => query::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Snapshot(args) => snapshot::snapshot(args),
        Command::Restore(args) => snapshot::restore(&cli.global, args),
        Command::Mcp(args) => mcp::run(&cli.global, args),
        Command::Bench(command) => bench::run(&cli.global, command),
    }
}
