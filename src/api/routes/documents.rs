//! `/documents`: ingest, list, read and delete documents.

use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, Path, State};

use crate::api::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::api::middleware::Deadline;
use crate::api::responses::{
    Common, JsonBody, Overloaded, QueryString, UnknownCollection, UnknownId,
};
use crate::api::state::AppState;
use crate::api::types::{
    ChunkSpanResponse, DeleteResponse, DocumentChunksResponse, DocumentList, DocumentResponse,
    DocumentsBody, IngestResponse, ListParams, ReadParams, consistency,
};
use crate::collections::DEFAULT_COLLECTION;

/// Ingests one document or `{"documents": [...]}`; each is committed whole, unchanged ones are
/// skipped, changed ones replaced.
#[utoipa::path(
    post,
    path = "/documents",
    tag = "documents",
    request_body = DocumentsBody,
    responses(
        (status = 200, description = "What happened to each document", body = IngestResponse),
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    deadline: Option<Extension<Deadline>>,
    ApiJson(body): ApiJson<DocumentsBody>,
) -> Result<Json<IngestResponse>, ApiError> {
    ingest_into(state, DEFAULT_COLLECTION, deadline, body).await
}

/// `POST /documents` into one collection.
#[utoipa::path(
    post,
    path = "/collections/{name}/documents",
    tag = "documents",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = DocumentsBody,
    responses(
        (status = 200, description = "What happened to each document", body = IngestResponse),
        UnknownCollection,
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn ingest_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    deadline: Option<Extension<Deadline>>,
    ApiJson(body): ApiJson<DocumentsBody>,
) -> Result<Json<IngestResponse>, ApiError> {
    ingest_into(state, &name, deadline, body).await
}

async fn ingest_into(
    state: AppState,
    collection: &str,
    deadline: Option<Extension<Deadline>>,
    body: DocumentsBody,
) -> Result<Json<IngestResponse>, ApiError> {
    let started = Instant::now();
    let outcome = state
        .service()?
        .ingest(
            collection,
            body.into_inputs(),
            deadline.map(|Extension(Deadline(at))| at),
        )
        .await?;
    Ok(Json(IngestResponse::new(
        outcome,
        started.elapsed().as_secs_f64() * 1000.0,
    )))
}

/// Documents in id order, without their text.
#[utoipa::path(
    get,
    path = "/documents",
    tag = "documents",
    params(ListParams),
    responses(
        (status = 200, description = "A page of documents", body = DocumentList),
        QueryString,
        Common,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DocumentList>, ApiError> {
    list_of(state, DEFAULT_COLLECTION, params).await
}

/// `GET /documents` of one collection.
#[utoipa::path(
    get,
    path = "/collections/{name}/documents",
    tag = "documents",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"), ListParams),
    responses(
        (status = 200, description = "A page of documents", body = DocumentList),
        UnknownCollection,
        QueryString,
        Common,
    )
)]
pub async fn list_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DocumentList>, ApiError> {
    list_of(state, &name, params).await
}

async fn list_of(
    state: AppState,
    collection: &str,
    params: ListParams,
) -> Result<Json<DocumentList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    let offset = params.offset.unwrap_or(0);
    let reads = consistency(params.consistency.as_deref())?;
    let page = state
        .service()?
        .documents(collection, limit, offset, reads)
        .await?;
    Ok(Json(DocumentList::new(page, limit, offset)))
}

/// One whole document.
#[utoipa::path(
    get,
    path = "/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id"), ReadParams),
    responses(
        (status = 200, description = "The document", body = DocumentResponse),
        UnknownId,
        QueryString,
        Common,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(read): ApiQuery<ReadParams>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let reads = consistency(read.consistency.as_deref())?;
    let document = state
        .service()?
        .document(DEFAULT_COLLECTION, id, reads)
        .await?;
    Ok(Json(DocumentResponse::from(document)))
}

/// `GET /documents/{id}` of one collection.
#[utoipa::path(
    get,
    path = "/collections/{name}/documents/{id}",
    tag = "documents",
    params(
        ("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("id" = String, Path, description = "Document id"),
        ReadParams,
    ),
    responses(
        (status = 200, description = "The document", body = DocumentResponse),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 404, description = "No such collection or document", body = ErrorBody),
        (status = 422, description = "An invalid collection name or consistency", body = ErrorBody),
        Common,
    )
)]
pub async fn get_in(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(read): ApiQuery<ReadParams>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let reads = consistency(read.consistency.as_deref())?;
    let document = state.service()?.document(&name, id, reads).await?;
    Ok(Json(DocumentResponse::from(document)))
}

/// Deletes a document; its passages stop appearing in results at once.
#[utoipa::path(
    delete,
    path = "/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        UnknownId,
        Common,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let deleted_chunks = state
        .service()?
        .delete(DEFAULT_COLLECTION, id.clone())
        .await?;
    Ok(Json(DeleteResponse { id, deleted_chunks }))
}

/// `DELETE /documents/{id}` in one collection.
#[utoipa::path(
    delete,
    path = "/collections/{name}/documents/{id}",
    tag = "documents",
    params(
        ("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("id" = String, Path, description = "Document id"),
    ),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        (status = 404, description = "No such collection or document", body = ErrorBody),
        (status = 422, description = "An invalid collection name", body = ErrorBody),
        Common,
    )
)]
pub async fn delete_in(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let deleted_chunks = state.service()?.delete(&name, id.clone()).await?;
    Ok(Json(DeleteResponse { id, deleted_chunks }))
}

/// Where a document's passages lie: chunk ids and UTF-8 byte offsets into its text, in order.
#[utoipa::path(
    get,
    path = "/documents/{id}/chunks",
    tag = "documents",
    params(("id" = String, Path, description = "Document id"), ReadParams),
    responses(
        (status = 200, description = "The document's passages", body = DocumentChunksResponse),
        UnknownId,
        QueryString,
        Common,
    )
)]
pub async fn chunks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(read): ApiQuery<ReadParams>,
) -> Result<Json<DocumentChunksResponse>, ApiError> {
    chunks_of(state, DEFAULT_COLLECTION, id, read).await
}

/// `GET /documents/{id}/chunks` of one collection.
#[utoipa::path(
    get,
    path = "/collections/{name}/documents/{id}/chunks",
    tag = "documents",
    params(
        ("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("id" = String, Path, description = "Document id"),
        ReadParams,
    ),
    responses(
        (status = 200, description = "The document's passages", body = DocumentChunksResponse),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 404, description = "No such collection or document", body = ErrorBody),
        (status = 422, description = "An invalid collection name or consistency", body = ErrorBody),
        Common,
    )
)]
pub async fn chunks_in(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    ApiQuery(read): ApiQuery<ReadParams>,
) -> Result<Json<DocumentChunksResponse>, ApiError> {
    chunks_of(state, &name, id, read).await
}

async fn chunks_of(
    state: AppState,
    collection: &str,
    id: String,
    read: ReadParams,
) -> Result<Json<DocumentChunksResponse>, ApiError> {
    let reads = consistency(read.consistency.as_deref())?;
    let spans = state
        .service()?
        .document_chunks(collection, id.clone(), reads)
        .await?;
    Ok(Json(DocumentChunksResponse {
        id,
        chunks: spans
            .into_iter()
            .map(|s| ChunkSpanResponse {
                chunk_id: s.chunk_id,
                index: s.index,
                start: s.start,
                end: s.end,
            })
            .collect(),
    }))
}
