//! What every handler can reach: the service (once loaded), the HTTP settings, the metrics.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::jobs::Jobs;
use crate::service::Service;

use super::error::ApiError;
use super::openai_tokens::TokenEncoding;

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
    /// Largest body of `POST /search`, in bytes (413 above): a question and a filter. 1 MiB
    /// holds a filter at its limits (10,000 document ids of up to ~100 bytes, 64 clauses of
    /// 1,000 values) without buffering the 16 MiB an ingest may send.
    pub max_search_body_bytes: usize,
    /// Most bytes of document metadata in one search response; hits past it carry none
    /// (`metadata_omitted`), so that `k` hits of large metadata cannot make a huge answer.
    pub max_response_metadata_bytes: usize,
    /// Most bytes of passage text in one search response; hits past it are cut
    /// (`text_truncated`), so that no answer grows with the size of what was stored.
    pub max_response_bytes: usize,
    /// Longest time a request may take (503 after).
    pub request_timeout: Duration,
    /// The tiktoken encoding that token-id inputs of `/v1/embeddings` are read in.
    pub openai_token_encoding: TokenEncoding,
    /// Largest snapshot an upload may restore, in bytes (413 above).
    pub max_snapshot_bytes: u64,
    /// Bounds on what reading one uploaded file may cost.
    pub extract_limits: crate::extract::ExtractLimits,
    /// Files of more bytes than this (all of a request's together) are ingested as a job
    /// (`202`, `GET /jobs/{id}`) instead of while the client waits.
    pub job_threshold_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            cors_origins: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            max_search_body_bytes: 1024 * 1024,
            max_response_metadata_bytes: 1024 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            openai_token_encoding: TokenEncoding::default(),
            max_snapshot_bytes: 64 << 30,
            extract_limits: crate::extract::ExtractLimits::default(),
            job_threshold_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Shared state of the router; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    service: OnceLock<Service>,
    /// The upload jobs of the service's data directory, once it is ready (`None`: they could
    /// not be opened, and uploads are answered while the client waits).
    jobs: OnceLock<Option<Arc<Jobs>>>,
    config: ApiConfig,
    metrics: PrometheusHandle,
}

impl AppState {
    /// State whose service arrives later through [`AppState::set_ready`]: the server listens
    /// (and answers `/health` 503) while the model and index load.
    pub fn new(config: ApiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                service: OnceLock::new(),
                jobs: OnceLock::new(),
                config,
                metrics: super::metrics::handle(),
            }),
        }
    }

    /// Makes the service available; `/health` turns 200.
    pub fn set_ready(&self, service: Service) {
        // Blocking (the jobs' records are read and interrupted ones marked failed): the
        // service is made ready on a loading thread.
        let data_dir = service.engine().options().data_dir.clone();
        let jobs = Jobs::open(&data_dir)
            .inspect_err(|e| tracing::error!(error = %e, "cannot open the upload jobs"))
            .ok()
            .map(Arc::new);
        let _ = self.inner.jobs.set(jobs);
        let _ = self.inner.service.set(service);
    }

    /// The upload jobs, or 503 while loading (or when they could not be opened).
    pub fn jobs(&self) -> Result<&Arc<Jobs>, ApiError> {
        match self.inner.jobs.get() {
            Some(Some(jobs)) => Ok(jobs),
            Some(None) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "upload jobs are unavailable: the data directory's jobs folder cannot be used",
            )),
            None => Err(ApiError::not_ready()),
        }
    }

    /// The service, or 503 while loading.
    pub fn service(&self) -> Result<&Service, ApiError> {
        self.inner.service.get().ok_or_else(ApiError::not_ready)
    }

    /// The HTTP settings.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The Prometheus registry handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
}
