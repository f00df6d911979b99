//! `POST /search` and `GET /search`: nearest passages to a question.

use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::api::error::{ApiError, ApiJson, ApiQuery};
use crate::api::metadata_budget;
use crate::api::responses::{Common, JsonBody, Overloaded, QueryString};
use crate::api::state::AppState;
use crate::api::types::{SearchBody, SearchParams, SearchResponse};
use crate::engine::SearchRequest;

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
    run(state, body.query, request, body.include_metadata).await
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
    run(state, params.q, request, params.include_metadata).await
}

async fn run(
    state: AppState,
    query: String,
    request: SearchRequest,
    include_metadata: bool,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let results = state.service()?.search(query, request).await?;
    let mut response = SearchResponse::new(results, started.elapsed().as_secs_f64() * 1000.0);
    metadata_budget::apply(
        &mut response.results,
        include_metadata,
        state.config().max_response_metadata_bytes,
    );
    Ok(Json(response))
}
