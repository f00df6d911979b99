//! `/documents`: ingest, list, read and delete documents.

use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, ApiQuery, ErrorBody};
use crate::api::middleware::Deadline;
use crate::api::responses::{
    Common, DocumentsUpload, Overloaded, QueryString, UnknownCollection, UnknownId,
};
use crate::api::routes::jobs;
use crate::api::state::AppState;
use crate::api::types::{
    ChunkSpanResponse, DeleteResponse, DocumentChunksResponse, DocumentList, DocumentResponse,
    DocumentsBody, IngestResponse, JobResponse, ListParams, ReadParams, consistency,
};
use crate::api::upload::{FileBody, Files, IngestBody, UploadForm, UploadParams, UploadQuery};
use crate::collections::DEFAULT_COLLECTION;

/// Ingests documents: as JSON (one document or `{"documents": [...]}`), as one file in the
/// body (PDF, HTML, Markdown, Word, text: `?id=NAME`, metadata as `?metadata=<JSON>` or
/// `?meta.KEY=VALUE`), or as several files in `multipart/form-data` (each part's file name is
/// its id; a `metadata` field applies to all). Each document is committed whole, unchanged
/// ones are skipped, changed ones replaced; a file that cannot be read refuses the request
/// before anything is stored.
#[utoipa::path(
    post,
    path = "/documents",
    tag = "documents",
    params(UploadQuery),
    request_body(content(
        (DocumentsBody = "application/json"),
        (UploadForm = "multipart/form-data"),
        (FileBody = "application/pdf"),
        (FileBody = "text/html"),
        (FileBody = "text/markdown"),
        (FileBody = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (FileBody = "text/plain"),
        (FileBody = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "What happened to each document", body = IngestResponse),
        (status = 202, description = "Files ingested as a job (over the server's threshold, or `wait=false`): follow it at `GET /jobs/{id}`", body = JobResponse,
            headers(("Location" = String, description = "The job's address"))),
        DocumentsUpload,
        Overloaded,
        Common,
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    deadline: Option<Extension<Deadline>>,
    ApiQuery(query): ApiQuery<Vec<(String, String)>>,
    body: IngestBody,
) -> Result<Response, ApiError> {
    ingest_into(state, DEFAULT_COLLECTION, deadline, query, body).await
}

/// `POST /documents` into one collection.
#[utoipa::path(
    post,
    path = "/collections/{name}/documents",
    tag = "documents",
    params(("name" = String, Path, description = "Collection name: 1 to 64 characters of A-Z a-z 0-9 _ -", pattern = "^[A-Za-z0-9_-]{1,64}$"), UploadQuery),
    request_body(content(
        (DocumentsBody = "application/json"),
        (UploadForm = "multipart/form-data"),
        (FileBody = "application/pdf"),
        (FileBody = "text/html"),
        (FileBody = "text/markdown"),
        (FileBody = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (FileBody = "text/plain"),
        (FileBody = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "What happened to each document", body = IngestResponse),
        (status = 202, description = "Files ingested as a job (over the server's threshold, or `wait=false`): follow it at `GET /jobs/{id}`", body = JobResponse,
            headers(("Location" = String, description = "The job's address"))),
        UnknownCollection,
        DocumentsUpload,
        Overloaded,
        Common,
    )
)]
pub async fn ingest_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    deadline: Option<Extension<Deadline>>,
    ApiQuery(query): ApiQuery<Vec<(String, String)>>,
    body: IngestBody,
) -> Result<Response, ApiError> {
    ingest_into(state, &name, deadline, query, body).await
}

async fn ingest_into(
    state: AppState,
    collection: &str,
    deadline: Option<Extension<Deadline>>,
    query: Vec<(String, String)>,
    body: IngestBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let params = UploadParams::parse(query)?;
    let service = state.service()?;
    let inputs = match body {
        IngestBody::Json(body) => {
            if !params.is_empty() {
                return Err(ApiError::invalid(
                    "id, metadata and wait query parameters are for files; a JSON body carries its own",
                ));
            }
            body.into_inputs()
        }
        IngestBody::Files(files)
            if params.wait == Some(false) || files.bytes() > state.config().job_threshold_bytes =>
        {
            return start_job(state, collection, files, params).await;
        }
        IngestBody::Files(files) => {
            let limits = state.config().extract_limits;
            tokio::task::spawn_blocking(move || files.into_documents(params, &limits))
                .await
                .map_err(ApiError::internal)??
        }
    };
    let outcome = service
        .ingest(
            collection,
            inputs,
            deadline.map(|Extension(Deadline(at))| at),
        )
        .await?;
    Ok(Json(IngestResponse::new(
        outcome,
        started.elapsed().as_secs_f64() * 1000.0,
    ))
    .into_response())
}

/// Stages the files as a job and starts it: `202` with the job, and its address in
/// `Location`.
async fn start_job(
    state: AppState,
    collection: &str,
    files: Files,
    params: UploadParams,
) -> Result<Response, ApiError> {
    // The collection must exist now, not when the job gets to it.
    state.service()?.stats(collection).await?;
    let jobs = state.jobs()?.clone();
    let (staged, metadata) = files.into_staged(&params)?;
    let collection_name = collection.to_string();
    let job = tokio::task::spawn_blocking(move || jobs.create(&collection_name, staged, metadata))
        .await
        .map_err(ApiError::internal)??;
    let record = job.record();
    tokio::spawn(jobs::run(state.clone(), job, state.config().extract_limits));
    let location = format!("/jobs/{}", record.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(JobResponse::from(record)),
    )
        .into_response())
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
        chunks: spans.into_iter().map(ChunkSpanResponse::from).collect(),
    }))
}
