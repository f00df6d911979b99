//! `/collections`: create, list, describe and delete named corpora. What lives inside one
//! (documents, search) is served by the document and search routes under
//! `/collections/{name}/…`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::error::{ApiError, ApiJson, ErrorBody};
use crate::api::responses::{Common, JsonBody};
use crate::api::state::AppState;
use crate::api::types::{
    CollectionBody, CollectionList, CollectionResponse, DeleteCollectionResponse,
};

/// Every collection with its size, `default` first.
#[utoipa::path(
    get,
    path = "/collections",
    tag = "collections",
    responses(
        (status = 200, description = "The collections", body = CollectionList),
        Common,
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<CollectionList>, ApiError> {
    let collections = state.service()?.list_collections().await?;
    Ok(Json(CollectionList {
        collections: collections
            .into_iter()
            .map(CollectionResponse::from)
            .collect(),
    }))
}

/// Creates an empty collection, optionally with its own passage size.
#[utoipa::path(
    post,
    path = "/collections",
    tag = "collections",
    request_body = CollectionBody,
    responses(
        (status = 201, description = "Created", body = CollectionResponse),
        (status = 409, description = "A collection with this name exists", body = ErrorBody),
        JsonBody,
        Common,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CollectionBody>,
) -> Result<(StatusCode, Json<CollectionResponse>), ApiError> {
    let settings = body.settings();
    let info = state
        .service()?
        .create_collection(body.name, settings)
        .await?;
    Ok((StatusCode::CREATED, Json(CollectionResponse::from(info))))
}

/// One collection with its size and settings.
#[utoipa::path(
    get,
    path = "/collections/{name}",
    tag = "collections",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The collection", body = CollectionResponse),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
        Common,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CollectionResponse>, ApiError> {
    let info = state.service()?.collection(name).await?;
    Ok(Json(CollectionResponse::from(info)))
}

/// Deletes a collection with its documents, vectors and index files, atomically.
#[utoipa::path(
    delete,
    path = "/collections/{name}",
    tag = "collections",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "Deleted", body = DeleteCollectionResponse),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 409, description = "The default collection cannot be deleted", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeleteCollectionResponse>, ApiError> {
    state.service()?.delete_collection(name.clone()).await?;
    Ok(Json(DeleteCollectionResponse {
        name,
        deleted: true,
    }))
}
