//! `/documents`: ingest, list, read and delete documents.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use tokio::task;

use crate::api::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::api::state::AppState;
use crate::api::types::{
    ChunkSpanResponse, DeleteResponse, DocumentBody, DocumentChunksResponse, DocumentList,
    DocumentResponse, DocumentSummaryResponse, DocumentsBody, IngestResponse, IngestedDocument,
    ListParams,
};
use crate::engine::{DocumentInput, content_hash};

/// Most documents in one request.
const MAX_DOCUMENTS: usize = 10_000;
/// Largest page of a listing.
const MAX_PAGE: usize = 1000;

/// Ingests one document or `{"documents": [...]}`; each is committed whole, unchanged ones are
/// skipped, changed ones replaced.
#[utoipa::path(
    post,
    path = "/documents",
    tag = "documents",
    request_body = DocumentsBody,
    responses(
        (status = 200, description = "What happened to each document", body = IngestResponse),
        (status = 422, description = "Empty text, bad id, duplicate ids; nothing was written", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DocumentsBody>,
) -> Result<Json<IngestResponse>, ApiError> {
    let started = Instant::now();
    let docs = match body {
        DocumentsBody::Many { documents } => documents,
        DocumentsBody::One(doc) => vec![doc],
    };
    if docs.is_empty() {
        return Err(ApiError::invalid("documents must not be empty"));
    }
    if docs.len() > MAX_DOCUMENTS {
        return Err(ApiError::invalid(format!(
            "{} documents in one request; the limit is {MAX_DOCUMENTS}",
            docs.len()
        )));
    }
    let inputs: Vec<DocumentInput> = docs.into_iter().map(to_input).collect();
    let engine = state.services()?.engine.clone();
    let writer = engine.clone();
    let reports =
        task::spawn_blocking(move || writer.ingest(inputs, &indicatif::ProgressBar::hidden()))
            .await??;
    compact_in_background(engine);
    Ok(Json(IngestResponse {
        documents: reports
            .into_iter()
            .map(|r| IngestedDocument {
                id: r.id,
                status: r.status.as_str().to_string(),
                chunks: r.chunks,
            })
            .collect(),
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

fn to_input(doc: DocumentBody) -> DocumentInput {
    // Without an id, the text's hash names the document: posting it again is a no-op.
    let id = doc
        .id
        .unwrap_or_else(|| format!("doc-{}", &content_hash(&doc.text)[..16]));
    DocumentInput {
        id,
        text: doc.text,
        metadata: doc.metadata,
        source: Some("api".into()),
    }
}

fn compact_in_background(engine: std::sync::Arc<crate::engine::Engine>) {
    task::spawn_blocking(move || {
        if let Err(e) = engine.maintain() {
            tracing::warn!(error = %e, "index compaction failed");
        }
    });
}

/// Documents in id order, without their text.
#[utoipa::path(
    get,
    path = "/documents",
    tag = "documents",
    params(ListParams),
    responses((status = 200, description = "A page of documents", body = DocumentList))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DocumentList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    let engine = state.services()?.engine.clone();
    let (docs, total) = task::spawn_blocking(move || {
        Ok::<_, crate::engine::EngineError>((
            engine.documents(limit, offset)?,
            engine.stats()?.documents,
        ))
    })
    .await??;
    Ok(Json(DocumentList {
        documents: docs
            .into_iter()
            .map(|d| DocumentSummaryResponse {
                id: d.id,
                source: d.source,
                metadata: d.metadata,
                ingested_at: d.ingested_at,
                chunks: d.chunks,
                bytes: d.bytes,
            })
            .collect(),
        limit,
        offset,
        total,
    }))
}

/// One whole document.
#[utoipa::path(
    get,
    path = "/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document", body = DocumentResponse),
        (status = 404, description = "No such document", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DocumentResponse>, ApiError> {
    let engine = state.services()?.engine.clone();
    let d = task::spawn_blocking(move || engine.document(&id)).await??;
    Ok(Json(DocumentResponse {
        id: d.id,
        source: d.source,
        text: d.text,
        metadata: d.metadata,
        content_hash: d.content_hash,
        ingested_at: d.ingested_at,
        chunks: d.chunks,
    }))
}

/// Deletes a document; its passages stop appearing in results at once.
#[utoipa::path(
    delete,
    path = "/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        (status = 404, description = "No such document", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let engine = state.services()?.engine.clone();
    let writer = engine.clone();
    let doc_id = id.clone();
    let deleted_chunks = task::spawn_blocking(move || writer.delete(&doc_id)).await??;
    compact_in_background(engine);
    Ok(Json(DeleteResponse { id, deleted_chunks }))
}

/// Where a document's passages lie: chunk ids and UTF-8 byte offsets into its text, in order.
#[utoipa::path(
    get,
    path = "/documents/{id}/chunks",
    tag = "documents",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document's passages", body = DocumentChunksResponse),
        (status = 404, description = "No such document", body = ErrorBody),
    )
)]
pub async fn chunks(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DocumentChunksResponse>, ApiError> {
    let engine = state.services()?.engine.clone();
    let doc_id = id.clone();
    let spans = task::spawn_blocking(move || engine.document_chunks(&doc_id)).await??;
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
