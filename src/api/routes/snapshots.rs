//! `/collections/{name}/snapshots`: take, list, download and delete a collection's snapshots,
//! and restore one by uploading it (README, "Backups").

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use crate::api::error::{ApiError, ApiQuery, ErrorBody};
use crate::api::responses::Common;
use crate::api::state::AppState;
use crate::api::types::{
    CollectionResponse, DeleteSnapshotResponse, RestoreParams, SnapshotList, SnapshotResponse,
};

/// Takes a consistent snapshot of a collection while it keeps serving and being written, and
/// keeps it on the server: its store, settings and model, with checksums.
#[utoipa::path(
    post,
    path = "/collections/{name}/snapshots",
    tag = "collections",
    params(("name" = String, Path, description = "Collection name (`default` included)", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Taken", body = SnapshotResponse),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 422, description = "An invalid name, or a storage that takes no snapshots (PostgreSQL)", body = ErrorBody),
        Common,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<SnapshotResponse>), ApiError> {
    let info = state.service()?.create_snapshot(name).await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// The snapshots kept of a collection (also of one deleted since), newest first.
#[utoipa::path(
    get,
    path = "/collections/{name}/snapshots",
    tag = "collections",
    params(("name" = String, Path, description = "Collection name", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The snapshots", body = SnapshotList),
        (status = 422, description = "An invalid name, or a storage that takes no snapshots", body = ErrorBody),
        Common,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SnapshotList>, ApiError> {
    let snapshots = state.service()?.snapshots(name).await?;
    Ok(Json(SnapshotList {
        snapshots: snapshots.into_iter().map(Into::into).collect(),
    }))
}

/// Downloads a snapshot: a tar archive (`application/x-tar`) whose SHA-256 is the listing's
/// `sha256` and the `x-snapshot-sha256` header.
#[utoipa::path(
    get,
    path = "/collections/{name}/snapshots/{id}",
    tag = "collections",
    params(
        ("name" = String, Path, description = "Collection name", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("id" = String, Path, description = "Snapshot id"),
    ),
    responses(
        (status = 200, description = "The archive", content_type = "application/x-tar"),
        (status = 404, description = "No such snapshot", body = ErrorBody),
        (status = 422, description = "An invalid name, or a storage that takes no snapshots", body = ErrorBody),
        Common,
    )
)]
pub async fn download(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (path, info) = state.service()?.snapshot(name.clone(), id.clone()).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "snapshot_not_found",
                format!("no snapshot {id:?} of collection {name:?}"),
            )
        } else {
            ApiError::internal(format!("opening {}: {e}", path.display()))
        }
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_LENGTH, info.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{id}.tar\""),
            ),
            (
                header::HeaderName::from_static("x-snapshot-sha256"),
                info.sha256,
            ),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response())
}

/// Deletes a kept snapshot.
#[utoipa::path(
    delete,
    path = "/collections/{name}/snapshots/{id}",
    tag = "collections",
    params(
        ("name" = String, Path, description = "Collection name", pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("id" = String, Path, description = "Snapshot id"),
    ),
    responses(
        (status = 200, description = "Deleted", body = DeleteSnapshotResponse),
        (status = 404, description = "No such snapshot", body = ErrorBody),
        (status = 422, description = "An invalid name, or a storage that takes no snapshots", body = ErrorBody),
        Common,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<DeleteSnapshotResponse>, ApiError> {
    state.service()?.delete_snapshot(name, id.clone()).await?;
    Ok(Json(DeleteSnapshotResponse { id, deleted: true }))
}

/// Restores an uploaded snapshot (the archive as the body) as collection `{name}`,
/// atomically: it appears whole or not at all. A name in use is refused unless
/// `replace=true`; a snapshot of another model, a damaged or truncated one is refused before
/// anything changes. Read as it arrives, up to `--max-snapshot-bytes`.
#[utoipa::path(
    post,
    path = "/collections/{name}/snapshots/upload",
    tag = "collections",
    params(("name" = String, Path, description = "The collection to restore into (not `default`)", pattern = "^[A-Za-z0-9_-]{1,64}$"), RestoreParams),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "A snapshot archive"),
    responses(
        (status = 201, description = "Restored", body = CollectionResponse),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 409, description = "A collection of that name exists (and `replace` is not set)", body = ErrorBody),
        (status = 413, description = "The body is larger than `--max-snapshot-bytes`", body = ErrorBody),
        (status = 422, description = "Not a snapshot, damaged, truncated, of another model; or an invalid name", body = ErrorBody),
        Common,
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<RestoreParams>,
    body: Body,
) -> Result<(StatusCode, Json<CollectionResponse>), ApiError> {
    let service = state.service()?;
    let limit = state.config().max_snapshot_bytes;
    let mut received = 0u64;
    let stream = body.into_data_stream().map(move |chunk| {
        let bytes = chunk.map_err(std::io::Error::other)?;
        received += bytes.len() as u64;
        if received > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("the upload is larger than --max-snapshot-bytes ({limit} bytes)"),
            ));
        }
        Ok(bytes)
    });
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let info = service
        .restore_snapshot(name, Box::new(reader), params.replace)
        .await?;
    Ok((StatusCode::CREATED, Json(CollectionResponse::from(info))))
}
