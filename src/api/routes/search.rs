//! `POST /search` and `GET /search`: nearest passages to a question.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};

use crate::api::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::api::state::AppState;
use crate::api::types::{SearchBody, SearchParams, SearchResponse};
use crate::collections::DEFAULT_COLLECTION;
use crate::engine::SearchRequest;

/// Top-k passages for a query, with scores, document ids, offsets and metadata.
#[utoipa::path(
    post,
    path = "/search",
    tag = "search",
    request_body = SearchBody,
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        (status = 422, description = "Empty query, k or ef out of range, bad filter (unknown operator, wrong operand type, over 64 clauses, 1,000 $in values or 10,000 doc_ids)", body = ErrorBody),
        (status = 429, description = "Embedding queue full", body = ErrorBody),
    )
)]
pub async fn search_post(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = body.to_request()?;
    run(state, DEFAULT_COLLECTION, body.query, request).await
}

/// The same as `POST /search`, for curl and browsers: `/search?q=...&k=5`, with the filter as
/// URL-encoded JSON: `&filter={"metadata":{"year":{"$gte":2020}}}`.
#[utoipa::path(
    get,
    path = "/search",
    tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        (status = 422, description = "Empty query, k or ef out of range, bad filter (not JSON, or as for POST)", body = ErrorBody),
        (status = 429, description = "Embedding queue full", body = ErrorBody),
    )
)]
pub async fn search_get(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = params.to_request()?;
    run(state, DEFAULT_COLLECTION, params.q, request).await
}

/// `POST /search` within one collection.
#[utoipa::path(
    post,
    path = "/collections/{name}/search",
    tag = "search",
    params(("name" = String, Path, description = "Collection name")),
    request_body = SearchBody,
    responses(
        (status = 200, description = "Passages of this collection, best first", body = SearchResponse),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 422, description = "Empty query, k or ef out of range, bad filter", body = ErrorBody),
        (status = 429, description = "Embedding queue full", body = ErrorBody),
    )
)]
pub async fn search_post_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = body.to_request()?;
    run(state, &name, body.query, request).await
}

/// `GET /search` within one collection.
#[utoipa::path(
    get,
    path = "/collections/{name}/search",
    tag = "search",
    params(("name" = String, Path, description = "Collection name"), SearchParams),
    responses(
        (status = 200, description = "Passages of this collection, best first", body = SearchResponse),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 422, description = "Empty query, k or ef out of range, bad filter", body = ErrorBody),
        (status = 429, description = "Embedding queue full", body = ErrorBody),
    )
)]
pub async fn search_get_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = params.to_request()?;
    run(state, &name, params.q, request).await
}

async fn run(
    state: AppState,
    collection: &str,
    query: String,
    request: SearchRequest,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let results = state.service()?.search(collection, query, request).await?;
    Ok(Json(SearchResponse::new(
        results,
        started.elapsed().as_secs_f64() * 1000.0,
    )))
}
