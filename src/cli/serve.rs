//! `semdex serve`: the HTTP server over the data directory (the seed article on a fresh one).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use semdex::api::openai_tokens::TokenEncoding;
use semdex::api::server::ServerOptions;
use semdex::api::{self, ApiConfig, AppState};
use semdex::queue::{EmbedQueue, QueueOptions};
use semdex::service::{Service, ServiceOptions};
use tokio::sync::watch;

use super::{EngineArgs, GlobalArgs, api_key};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEMDEX_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Require `Authorization: Bearer KEY` on every route but /health and the browser page.
    /// An empty key is refused (it would leave the server open).
    #[arg(long, env = "SEMDEX_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Read the API key from this file (its trailing newline removed), so that it does not
    /// show in `ps`.
    #[arg(long, env = "SEMDEX_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Allowed CORS origin (repeatable or comma-separated; `*` for any).
    #[arg(
        long = "cors-origin",
        env = "SEMDEX_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "SEMDEX_MAX_BODY_BYTES", default_value_t = ApiConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest body of POST /search in bytes.
    #[arg(long, env = "SEMDEX_MAX_SEARCH_BODY_BYTES", default_value_t = ApiConfig::default().max_search_body_bytes)]
    pub max_search_body_bytes: usize,
    /// Most bytes of document metadata in one search response (hits past it carry none and
    /// say `metadata_omitted`).
    #[arg(long, env = "SEMDEX_MAX_RESPONSE_METADATA_BYTES", default_value_t = ApiConfig::default().max_response_metadata_bytes)]
    pub max_response_metadata_bytes: usize,
    /// Most bytes of passage text in one search response (the hits past it are cut and say
    /// `text_truncated`).
    #[arg(long, env = "SEMDEX_MAX_RESPONSE_BYTES", default_value_t = ApiConfig::default().max_response_bytes)]
    pub max_response_bytes: usize,
    /// Bytes of documents being ingested at once before ingest requests are refused with 429.
    #[arg(long, env = "SEMDEX_MAX_INGEST_BYTES", default_value_t = ServiceOptions::default().max_ingest_bytes)]
    pub max_ingest_bytes: usize,
    /// Ingest requests running at once before more are refused with 429.
    #[arg(long, env = "SEMDEX_MAX_INGEST_REQUESTS", default_value_t = ServiceOptions::default().max_ingest_requests)]
    pub max_ingest_requests: usize,
    /// Most inputs in one embedding request.
    #[arg(long, env = "SEMDEX_MAX_INPUTS", default_value_t = ServiceOptions::default().max_inputs)]
    pub max_inputs: usize,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "SEMDEX_REQUEST_TIMEOUT", default_value_t = ApiConfig::default().request_timeout.as_secs())]
    pub request_timeout: u64,
    /// Embedding inputs admitted at once (being tokenized, waiting for the encoder or in a
    /// forward pass) before requests are refused with 429.
    #[arg(long, env = "SEMDEX_MAX_QUEUED_INPUTS", default_value_t = QueueOptions::default().max_queued_inputs)]
    pub max_queued_inputs: usize,
    /// tiktoken encoding of token-id inputs to /v1/embeddings: "cl100k_base" (what LangChain
    /// sends for an unknown model name) or "o200k_base".
    #[arg(long, env = "SEMDEX_OPENAI_TOKEN_ENCODING", default_value_t = TokenEncoding::default())]
    pub openai_token_encoding: TokenEncoding,
    /// Largest snapshot `POST /collections/NAME/snapshots/upload` restores, in bytes.
    #[arg(long, env = "SEMDEX_MAX_SNAPSHOT_BYTES", default_value_t = ApiConfig::default().max_snapshot_bytes)]
    pub max_snapshot_bytes: u64,
    /// Embed each request on its own instead of batching concurrent ones (for comparison).
    #[arg(long)]
    pub no_batching: bool,
    /// Connections served at once; past it a new connection is answered 503 (`/health` still
    /// 200) and closed. Default: half the process's file descriptor limit, at most 1,024.
    #[arg(long, env = "SEMDEX_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request's headers, and a keep-alive connection may
    /// sit idle, before the server closes it.
    #[arg(long, env = "SEMDEX_HEADER_TIMEOUT", default_value_t = ServerOptions::default().header_timeout.as_secs())]
    pub header_timeout: u64,
    /// Named collections open at once; opening another closes the one idle longest (its index
    /// saved first). Default: what the file descriptor limit leaves after the connections, at
    /// about two dozen descriptors per collection.
    #[arg(long, env = "SEMDEX_MAX_OPEN_COLLECTIONS")]
    pub max_open_collections: Option<usize>,
    /// Seconds shutdown waits for requests in flight before it closes the connections left.
    #[arg(long, env = "SEMDEX_SHUTDOWN_GRACE", default_value_t = ServerOptions::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
    /// Ingest uploaded files of more bytes than this (a request's together) as a job: `202`
    /// at once, progress at `GET /jobs/{id}`.
    #[arg(long, env = "SEMDEX_JOB_THRESHOLD_BYTES", default_value_t = ApiConfig::default().job_threshold_bytes)]
    pub job_threshold_bytes: usize,
    /// Bounds on what reading one uploaded file may cost.
    #[command(flatten)]
    pub extract: super::ingest::ExtractArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// File descriptors an open collection may hold: its SQLite writer and readers with their
/// journal files, its tantivy segments, its lock (measured: `tests/it/faults.rs`).
const DESCRIPTORS_PER_COLLECTION: usize = 24;

pub fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("semdex-http")
        .build()?;
    runtime.block_on(serve(global.clone(), args))
}

async fn serve(global: GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let config = ApiConfig {
        api_key: api_key::resolve(args.api_key.as_deref(), args.api_key_file.as_deref())?,
        cors_origins: args.cors_origins.clone(),
        max_body_bytes: args.max_body_bytes,
        max_search_body_bytes: args.max_search_body_bytes,
        max_response_metadata_bytes: args.max_response_metadata_bytes,
        max_response_bytes: args.max_response_bytes,
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        openai_token_encoding: args.openai_token_encoding,
        max_snapshot_bytes: args.max_snapshot_bytes,
        extract_limits: args.extract.limits()?,
        job_threshold_bytes: args.job_threshold_bytes,
    };
    let service_options = ServiceOptions {
        max_inputs: args.max_inputs.max(1),
        max_ingest_bytes: args.max_ingest_bytes.max(1),
        max_ingest_requests: args.max_ingest_requests.max(1),
    };
    let queue_options = QueueOptions {
        max_queued_inputs: args.max_queued_inputs.max(1),
        batching: !args.no_batching,
    };
    let state = AppState::new(config);
    let descriptors = semdex::storage::descriptor_limit();
    let server = ServerOptions {
        max_connections: args
            .max_connections
            .unwrap_or_else(|| {
                descriptors.map_or(ServerOptions::default().max_connections, |limit| {
                    (limit / 2).clamp(16, 1024)
                })
            })
            .max(1),
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let max_open_collections = args
        .max_open_collections
        .unwrap_or_else(|| {
            descriptors.map_or(64, |limit| {
                (limit.saturating_sub(server.max_connections + 64) / DESCRIPTORS_PER_COLLECTION)
                    .clamp(4, 1024)
            })
        })
        .max(1);
    // Listen first: /health answers 503 while the model and index load.
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");

    let (failed_tx, mut failed_rx) = watch::channel(None::<String>);
    let failure = failed_tx.subscribe();
    let loader_state = state.clone();
    let engine_args = args.engine.clone();
    let encoding = args.openai_token_encoding;
    let loader = tokio::task::spawn_blocking(move || {
        encoding.warm();
        let loaded = engine_args.open(&global).and_then(|opened| {
            let queue = EmbedQueue::start(opened.default.encoder().clone(), queue_options)
                .context("cannot start the batching thread")?;
            let collections = opened
                .collections()
                .context("cannot read the collections")?
                .with_max_open(max_open_collections);
            Ok((collections, queue))
        });
        match loaded {
            Ok((collections, queue)) => {
                let stats = collections.default_engine().stats().ok();
                let count = collections.list().map_or(1, |l| l.len());
                loader_state.set_ready(Service::new(
                    std::sync::Arc::new(collections),
                    queue,
                    service_options,
                ));
                tracing::info!(
                    documents = stats.as_ref().map_or(0, |s| s.documents),
                    chunks = stats.as_ref().map_or(0, |s| s.chunks),
                    collections = count,
                    "ready"
                );
                true
            }
            Err(e) => {
                let _ = failed_tx.send(Some(format!("{e:#}")));
                false
            }
        }
    });

    let app = api::router(state.clone());
    tracing::info!(
        max_connections = server.max_connections,
        max_open_collections,
        header_timeout_s = server.header_timeout.as_secs(),
        "connection and collection limits"
    );
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down: finishing in-flight requests"),
            _ = async {
                // The loader drops its sender once done; only a reported failure stops us.
                if failed_rx.wait_for(Option::is_some).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {}
        }
    };
    let overflow = api::server::overflow_router(app.clone());
    api::server::serve(listener, app, overflow, server, shutdown).await?;

    if !loader.await? {
        let reason = failure.borrow().clone().unwrap_or_default();
        anyhow::bail!("startup failed: {reason}");
    }
    state
        .service()
        .map_err(|e| anyhow::anyhow!(e.message))?
        .shutdown()
        .await
        .context("saving the index")?;
    tracing::info!("index saved; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
