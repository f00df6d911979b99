//! Helpers shared by the integration tests: the real model, loaded once per test binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// The collections of the data directory whose own collection `default` is (opened with
/// [`engine_with`] or [`Engine::open`]).
pub fn collections_beside(default: Arc<Engine>) -> semdex::collections::Collections {
    let options = default.options();
    let catalog = semdex::storage::embedded::EmbeddedCatalog::beside_open_directory(
        &options.data_dir,
        options.read_only,
    )
    .unwrap();
    semdex::collections::Collections::new(Arc::new(catalog), default).unwrap()
}

/// A plain document without metadata.
pub fn doc(id: &str, text: &str) -> DocumentInput {
    DocumentInput {
        id: id.to_string(),
        text: text.to_string(),
        metadata: serde_json::Map::new(),
        source: None,
        structure: None,
        format: None,
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

/// An HTTP client for the tests (two minutes per request: the model is slow in debug builds).
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Sends a request; its status and JSON body (`null` when the body is not JSON).
pub fn send(
    request: reqwest::blocking::RequestBuilder,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(serde_json::Value::Null))
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
    _served: Served,
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
    let served = serve(
        Arc::new(collections_beside(engine.clone())),
        config,
        queue,
        service,
    );
    TestServer {
        base: served.base.clone(),
        engine,
        _served: served,
        _dir: dir,
    }
}

/// A real HTTP server (the full router, two runtime workers) over `collections`, on an
/// ephemeral loopback port, in this process.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The collections behind it.
    pub collections: Arc<semdex::collections::Collections>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Served {
    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Leaves the server's threads behind instead of waiting for them: for a test that
    /// failed because work hung (dropping the runtime would wait for it forever).
    pub fn abandon(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(60));
        }
    }
}

/// Serves `collections` over real HTTP.
pub fn serve(
    collections: Arc<semdex::collections::Collections>,
    config: ApiConfig,
    queue: QueueOptions,
    service: ServiceOptions,
) -> Served {
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
    let encoder = collections.default_engine().encoder().clone();
    state.set_ready(Service::new(
        collections.clone(),
        EmbedQueue::start(encoder, queue).unwrap(),
        service,
    ));
    let app = semdex::api::router(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    Served {
        base: format!("http://{addr}"),
        collections,
        runtime: Some(runtime),
    }
}

/// Starts the real `semdex serve` binary on `data` (ephemeral port, no seeds, no API key)
/// and waits until it is ready; returns the child and its base URL.
pub fn serve_binary(data: &Path) -> (Child, String) {
    serve_binary_with(data, &[])
}

/// [`serve_binary`] with more `serve` arguments (`--database-url URL`, say).
pub fn serve_binary_with(data: &Path, extra: &[&str]) -> (Child, String) {
    serve_binary_env(data, extra, &[])
}

/// [`serve_binary_with`], with more environment variables for the server.
pub fn serve_binary_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .arg("--model")
        .arg(model_dir())
        .args(["serve", "--addr", "127.0.0.1:0", "--seeds"])
        .arg(data.join("no-seeds"))
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("SEMDEX_DATABASE_URL")
        .env_remove("SEMDEX_READ_DATABASE_URL")
        .env_remove("SEMDEX_API_KEY")
        .env_remove("SEMDEX_API_KEY_FILE")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = wait_for_address(&mut child);
    (child, base)
}

/// The base URL of a `semdex serve` child started with `--addr 127.0.0.1:0` and a piped
/// stderr, once it answers `/health` 200.
pub fn wait_for_address(child: &mut Child) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    // The last lines the server logged, for the message of a server that never gets ready.
    let recent: Arc<Mutex<std::collections::VecDeque<String>>> = Arc::default();
    let log = recent.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
            let mut log = log.lock().unwrap();
            if log.len() == 20 {
                log.pop_front();
            }
            log.push_back(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server did not report its address");
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(300);
    let client = reqwest::blocking::Client::new();
    loop {
        let health = client.get(format!("{base}/health")).send();
        if health
            .as_ref()
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        {
            break;
        }
        if Instant::now() >= deadline {
            let answer = health.map_or_else(|e| e.to_string(), |r| r.text().unwrap_or_default());
            let lines: Vec<String> = recent.lock().unwrap().iter().cloned().collect();
            panic!(
                "never became ready: /health answered {answer}; the server's last lines:\n{}",
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    base
}
