//! `/health`, `/info` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::responses::Common;
use crate::api::state::AppState;
use crate::api::types::{
    CollectionInfoEntry, HealthResponse, IndexInfo, InfoResponse, LexicalInfo, QueueInfo,
    SearchInfo,
};
use crate::collections::DEFAULT_COLLECTION;
use crate::engine::{DEFAULT_DENSE_WEIGHT, Fusion, HYBRID_CANDIDATES, SearchMode};

/// 200 once the model and index are loaded and the batching worker runs; 503 before, or if
/// the worker is gone. Never needs an API key.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, description = "Ready", body = HealthResponse),
        (status = 503, description = "Still loading, or unable to embed", body = ErrorBody),
        (status = 500, description = "A failure on the server's side", body = ErrorBody),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    if !state.service()?.is_healthy() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the embedding worker has stopped",
        ));
    }
    Ok(Json(HealthResponse {
        status: "ok".into(),
    }))
}

/// Model, index and batching settings, and corpus size.
#[utoipa::path(
    get,
    path = "/info",
    tag = "system",
    responses(
        (status = 200, description = "Server information", body = InfoResponse),
        Common,
    )
)]
pub async fn info(State(state): State<AppState>) -> Result<Json<InfoResponse>, ApiError> {
    let service = state.service()?;
    let stats = service.stats(DEFAULT_COLLECTION).await?;
    let collections = collection_entries(service).await?;
    let encoder = service.engine().encoder();
    let config = encoder.config();
    let options = service.engine().options();
    let queue = service.queue();
    Ok(Json(InfoResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        model: config.name.clone(),
        model_fingerprint: config.fingerprint.clone(),
        dimension: config.dimension(),
        max_tokens: encoder.max_tokens(),
        pooling: format!("{:?}", config.pooling).to_lowercase(),
        backend: encoder.backend_name().into(),
        kernels: encoder.kernels_name().into(),
        precision: encoder.precision().as_str().into(),
        threads: encoder.threads(),
        documents: stats.documents,
        chunks: stats.chunks,
        chunk_tokens: options.chunk.max_tokens,
        chunk_overlap: options.chunk.overlap,
        index: IndexInfo {
            kind: stats.index_kind.into(),
            vectors: stats.indexed,
            tombstones: stats.tombstones,
            m: stats.hnsw.m,
            ef_construction: stats.hnsw.ef_construction,
            ef_search: stats.hnsw.ef_search,
            exact_below: stats.exact_below,
            bytes_per_vector: stats.index_memory_bytes as f64
                / (stats.indexed + stats.tombstones).max(1) as f64,
            memory_bytes: stats.index_memory_bytes,
        },
        lexical: LexicalInfo {
            kind: stats.lexical_kind.ranking.into(),
            passages: stats.lexical.passages,
            bytes: stats.lexical.bytes,
            analyzer: stats.lexical_kind.analyzer.into(),
        },
        search: SearchInfo {
            modes: SearchMode::ALL
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            default_mode: SearchMode::default().as_str().into(),
            fusion: Fusion::default().as_str().into(),
            dense_weight: DEFAULT_DENSE_WEIGHT,
            hybrid_candidates: HYBRID_CANDIDATES,
        },
        queue: QueueInfo {
            max_batch_tokens: queue.max_batch_tokens(),
            max_batch_size: encoder.options().max_batch_size,
            max_queued_inputs: queue.options().max_queued_inputs,
            batching: queue.options().batching,
            depth: queue.depth(),
        },
        openai_token_encoding: state.config().openai_token_encoding.to_string(),
        collections,
        read_only: service.collections().catalog().is_read_only(),
        standbys: service
            .collections()
            .catalog()
            .standbys()
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Every collection's counts, with index figures for the open ones.
async fn collection_entries(
    service: &crate::service::Service,
) -> Result<Vec<CollectionInfoEntry>, ApiError> {
    let listed = service.list_collections().await?;
    let collections = service.collections().clone();
    let open = tokio::task::spawn_blocking(move || collections.loaded_stats())
        .await
        .map_err(ApiError::internal)?;
    Ok(listed
        .into_iter()
        .map(|c| {
            let stats = open
                .iter()
                .find(|(name, _)| *name == c.name)
                .and_then(|(_, s)| s.as_ref().ok());
            CollectionInfoEntry {
                loaded: c.loaded,
                vectors: stats.map(|s| s.indexed),
                tombstones: stats.map(|s| s.tombstones),
                lexical_passages: stats.map(|s| s.lexical.passages),
                documents: c.documents,
                chunks: c.chunks,
                name: c.name,
            }
        })
        .collect())
}

/// Prometheus text: request counts and latencies per route and status, batch sizes, queue
/// depth, corpus and index size per collection, and each PostgreSQL standby's replay lag.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses(
        (status = 200, description = "Prometheus exposition format", content_type = "text/plain"),
        Common,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(service) = state.service() {
        if let Ok(entries) = collection_entries(service).await {
            metrics::gauge!("semdex_collections").set(entries.len() as f64);
            for entry in entries {
                let label = [("collection", entry.name)];
                metrics::gauge!("semdex_documents", &label).set(entry.documents as f64);
                metrics::gauge!("semdex_chunks", &label).set(entry.chunks as f64);
                if let (Some(vectors), Some(tombstones)) = (entry.vectors, entry.tombstones) {
                    metrics::gauge!("semdex_index_vectors", &label).set(vectors as f64);
                    metrics::gauge!("semdex_index_tombstones", &label).set(tombstones as f64);
                }
            }
        }
        metrics::gauge!("semdex_queue_depth").set(service.queue().depth() as f64);
        let catalog = service.collections().catalog();
        metrics::gauge!("semdex_read_only").set(f64::from(u8::from(catalog.is_read_only())));
        for standby in catalog.standbys() {
            let label = [("standby", standby.url)];
            metrics::gauge!("semdex_standby_in_rotation", &label)
                .set(f64::from(u8::from(standby.in_rotation)));
            if let Some(lag) = standby.replay_lag {
                metrics::gauge!("semdex_standby_replay_lag_seconds", &label).set(lag.as_secs_f64());
            }
            if let Some(bytes) = standby.replay_lag_bytes {
                metrics::gauge!("semdex_standby_replay_lag_bytes", &label).set(bytes as f64);
            }
            metrics::gauge!("semdex_standby_reads", &label).set(standby.reads as f64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
