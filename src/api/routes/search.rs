//! `POST /search` and `GET /search`: nearest passages to a question.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};

use crate::api::error::{ApiError, ApiJson, ApiQuery};
use crate::api::responses::{Common, JsonBody, Overloaded, QueryString, UnknownCollection};
use crate::api::state::AppState;
use crate::api::types::{SearchBody, SearchParams, SearchResponse, consistency};
use crate::api::{metadata_budget, text_budget};
use crate::collections::DEFAULT_COLLECTION;
use crate::engine::SearchRequest;
use crate::storage::Consistency;

/// Top-k passages for a query, with scores, document ids, offsets and metadata.
#[utoipa::path(
    post,
    path = "/search",
    tag = "search",
    request_body = SearchBody,
    responses(
        (status = 200, description = "Passages, best first", body = SearchResponse),
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn search_post(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = body.to_request()?;
    let reads = consistency(body.consistency.as_deref())?;
    run(
        state,
        DEFAULT_COLLECTION,
        body.query,
        (request, reads),
        body.include_metadata,
    )
    .await
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
        QueryString,
        Overloaded,
        Common,
    )
)]
pub async fn search_get(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = params.to_request()?;
    let reads = consistency(params.consistency.as_deref())?;
    run(
        state,
        DEFAULT_COLLECTION,
        params.q,
        (request, reads),
        params.include_metadata,
    )
    .await
}

/// `POST /search` within one collection.
#[utoipa::path(
    post,
    path = "/collections/{name}/search",
    tag = "search",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = SearchBody,
    responses(
        (status = 200, description = "Passages of this collection, best first", body = SearchResponse),
        UnknownCollection,
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn search_post_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = body.to_request()?;
    let reads = consistency(body.consistency.as_deref())?;
    run(
        state,
        &name,
        body.query,
        (request, reads),
        body.include_metadata,
    )
    .await
}

/// `GET /search` within one collection.
#[utoipa::path(
    get,
    path = "/collections/{name}/search",
    tag = "search",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"), SearchParams),
    responses(
        (status = 200, description = "Passages of this collection, best first", body = SearchResponse),
        UnknownCollection,
        QueryString,
        Overloaded,
        Common,
    )
)]
pub async fn search_get_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = params.to_request()?;
    let reads = consistency(params.consistency.as_deref())?;
    run(
        state,
        &name,
        params.q,
        (request, reads),
        params.include_metadata,
    )
    .await
}

async fn run(
    state: AppState,
    collection: &str,
    query: String,
    (request, reads): (SearchRequest, Consistency),
    include_metadata: bool,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let shape = request.shape.clone();
    let results = state
        .service()?
        .search(collection, query, request, reads)
        .await?;
    let mut response =
        SearchResponse::new(results, &shape, started.elapsed().as_secs_f64() * 1000.0);
    metadata_budget::apply(
        &mut response.results,
        include_metadata,
        state.config().max_response_metadata_bytes,
    );
    text_budget::apply(&mut response.results, state.config().max_response_bytes);
    Ok(Json(response))
}
