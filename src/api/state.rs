//! What every handler can reach: the engine and batching queue (once loaded) and the settings.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task;

use crate::embed::{Embedding, TokenizedText};
use crate::engine::Engine;
use crate::queue::EmbedQueue;

use super::error::ApiError;

/// Limits and access settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// When set, every route but `/health` and the browser page needs
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most inputs in one embedding request.
    pub max_inputs: usize,
    /// Longest time a request may take (503 after).
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            cors_origins: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            max_inputs: 512,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The loaded parts: available once the model and index are ready.
pub struct Services {
    /// The retrieval engine.
    pub engine: Arc<Engine>,
    /// The dynamic batching queue in front of the encoder.
    pub queue: EmbedQueue,
}

/// Shared state of the router; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    services: OnceLock<Services>,
    config: ApiConfig,
    metrics: PrometheusHandle,
}

impl AppState {
    /// State whose services arrive later through [`AppState::set_ready`].
    pub fn new(config: ApiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                services: OnceLock::new(),
                config,
                metrics: super::metrics::handle(),
            }),
        }
    }

    /// Makes the engine and queue available; `/health` turns 200.
    pub fn set_ready(&self, services: Services) {
        let _ = self.inner.services.set(services);
    }

    /// The engine and queue, or 503 while loading.
    pub fn services(&self) -> Result<&Services, ApiError> {
        self.inner.services.get().ok_or_else(ApiError::not_ready)
    }

    /// Whether the model and index are loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.services.get().is_some()
    }

    /// The HTTP settings.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The Prometheus registry handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// Tokenizes `texts` off the async runtime, checks their count and (unless `truncate`)
    /// their length, and embeds them through the batching queue.
    pub async fn embed(
        &self,
        texts: Vec<String>,
        truncate: bool,
    ) -> Result<Vec<Embedding>, ApiError> {
        let services = self.services()?;
        let max_inputs = self.config().max_inputs;
        if texts.is_empty() {
            return Err(ApiError::invalid("inputs must not be empty"));
        }
        if texts.len() > max_inputs {
            return Err(ApiError::invalid(format!(
                "{} inputs in one request; the limit is {max_inputs}",
                texts.len()
            )));
        }
        let encoder = services.engine.encoder().clone();
        let max_tokens = encoder.max_tokens();
        let tokenized: Vec<TokenizedText> = task::spawn_blocking(move || {
            texts
                .iter()
                .map(|t| encoder.tokenizer().encode(t))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(ApiError::internal)?;
        let too_long = tokenized.iter().enumerate().find(|(_, t)| t.truncated());
        if let Some((i, t)) = too_long.filter(|_| !truncate) {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "input_too_long",
                format!(
                    "input {i} has {} tokens; the model takes at most {max_tokens}. Shorten it, or send \"truncate\": true",
                    t.full_len
                ),
            ));
        }
        Ok(services.queue.embed(tokenized).await?)
    }
}
