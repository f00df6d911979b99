//! Helpers shared by the integration tests: the real model, loaded once per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use semdex::embed::{Encoder, EncoderOptions};

/// The model folder the tests use: `SEMDEX_MODEL`, else the repository's default.
pub fn model_dir() -> PathBuf {
    std::env::var_os("SEMDEX_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
        })
}

/// The real encoder, shared by every test of one binary (loading it takes a moment).
pub fn encoder() -> Arc<Encoder> {
    static ENCODER: OnceLock<Arc<Encoder>> = OnceLock::new();
    ENCODER
        .get_or_init(|| {
            Arc::new(
                Encoder::load(&model_dir(), EncoderOptions::default())
                    .unwrap_or_else(|e| panic!("{e} (run ./models/fetch.sh first)")),
            )
        })
        .clone()
}

/// Path of a file under tests/data.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

use semdex::engine::{DocumentInput, Engine, EngineOptions};

/// The seed article.
pub fn seed_article() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/putin-kim-summit.txt"),
    )
    .unwrap()
}

/// Opens an engine on `dir` with the shared real encoder.
pub fn engine_with(options: EngineOptions) -> Engine {
    Engine::open(encoder(), options, &semdex::progress::NoProgress).unwrap()
}

/// A plain document without metadata.
pub fn doc(id: &str, text: &str) -> DocumentInput {
    DocumentInput {
        id: id.to_string(),
        text: text.to_string(),
        metadata: serde_json::Map::new(),
        source: None,
    }
}

/// Word windows of the seed article: many distinct, real passages for index tests.
pub fn seed_windows(count: usize, words_per_window: usize) -> Vec<String> {
    let article = seed_article();
    let words: Vec<&str> = article.split_whitespace().collect();
    (0..count)
        .map(|i| {
            let start = (i * 37) % words.len();
            (0..words_per_window)
                .map(|j| words[(start + j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

use semdex::api::{ApiConfig, AppState};
use semdex::queue::{EmbedQueue, QueueOptions};
use semdex::service::{Service, ServiceOptions};

/// A real HTTP server (the full router) on an ephemeral loopback port, in this process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The engine behind it.
    pub engine: std::sync::Arc<Engine>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Starts a server over a fresh data directory holding the seed article.
pub fn start_server(config: ApiConfig, queue: QueueOptions) -> TestServer {
    start_server_with(config, queue, ServiceOptions::default(), encoder())
}

/// Starts a server with explicit service limits and encoder (another model folder, say).
pub fn start_server_with(
    config: ApiConfig,
    queue: QueueOptions,
    service: ServiceOptions,
    encoder: Arc<Encoder>,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(
        Engine::open(
            encoder.clone(),
            EngineOptions::new(dir.path()),
            &semdex::progress::NoProgress,
        )
        .unwrap(),
    );
    engine
        .ingest(
            vec![doc("seed", &seed_article())],
            &semdex::progress::NoProgress,
        )
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config);
    state.set_ready(Service::new(
        Arc::new(semdex::collections::Collections::open(engine.clone()).unwrap()),
        EmbedQueue::start(encoder, queue).unwrap(),
        service,
    ));
    let app = semdex::api::router(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    TestServer {
        base: format!("http://{addr}"),
        engine,
        _runtime: runtime,
        _dir: dir,
    }
}
