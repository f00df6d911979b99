//! `/jobs`: uploads ingested in the background (see [`crate::jobs`]): what each has done, and
//! a way to stop one. Jobs are made by `POST /documents` when the files are larger than the
//! server's threshold or the request says `?wait=false`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::error::ApiError;
use crate::api::responses::Common;
use crate::api::state::AppState;
use crate::api::types::JobResponse;
use crate::extract::ExtractLimits;
use crate::jobs::{Job, JobDocument, JobError, JobFileError, JobState};
use crate::service::ServiceError;

impl From<JobError> for ApiError {
    fn from(err: JobError) -> Self {
        let message = err.to_string();
        match err {
            JobError::NotFound(_) => ApiError::not_found(message),
            JobError::Finished { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            JobError::Io(e) => ApiError::internal(e),
        }
    }
}

/// What a job has done: its state, documents and passages done of its total, the documents
/// stored, and the files it could not read.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "The job's id, as `POST /documents` answered it")),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        (status = 404, description = "No such job", body = crate::api::error::ErrorBody),
        Common,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    let jobs = state.jobs()?.clone();
    let record = tokio::task::spawn_blocking(move || jobs.get(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(record.into()))
}

/// Stops a queued or running job before its next document: what it stored stays. Answers at
/// once; `GET /jobs/{id}` says `cancelled` once it has stopped.
#[utoipa::path(
    delete,
    path = "/jobs/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 202, description = "Asked to stop; the job as it is now", body = JobResponse),
        (status = 404, description = "No such job", body = crate::api::error::ErrorBody),
        (status = 409, description = "The job has already ended", body = crate::api::error::ErrorBody),
        Common,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobResponse>), ApiError> {
    let jobs = state.jobs()?.clone();
    let record = tokio::task::spawn_blocking(move || jobs.cancel(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}

/// Runs a staged job to its end: each file read and ingested in turn (a file that cannot be
/// read is an error of the job, and the others go on), stopping before the next file once
/// cancelled. Whatever happens, the job ends in a finished state on disk.
pub async fn run(state: AppState, job: Arc<Job>, limits: ExtractLimits) {
    let id = job.id();
    let ended = run_files(&state, &job, limits).await;
    let (end, message) = match ended {
        Ok(()) if job.cancelled() => (JobState::Cancelled, None),
        Ok(()) => (JobState::Done, None),
        Err(message) => (JobState::Failed, Some(message)),
    };
    let finished = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || job.finish(end, message)).await
    };
    match finished {
        Ok(Ok(())) => tracing::info!(job = %id, state = ?end, "job ended"),
        Ok(Err(e)) => tracing::error!(job = %id, error = %e, "cannot record the job's end"),
        Err(e) => tracing::error!(job = %id, error = %e, "cannot record the job's end"),
    }
    if let Ok(jobs) = state.jobs() {
        jobs.release(&id);
    }
}

/// The work of [`run`]; `Err` is why the job failed as a whole.
async fn run_files(state: &AppState, job: &Arc<Job>, limits: ExtractLimits) -> Result<(), String> {
    let blocking = |work: Box<dyn FnOnce() -> std::io::Result<()> + Send>| async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("job storage: {e}"))
    };
    let (files, metadata) = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || job.files())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("job storage: {e}"))?
    };
    let collection = job.record().collection;
    let service = state.service().map_err(|e| e.message)?;
    {
        let job = job.clone();
        blocking(Box::new(move || {
            job.update(|r| r.state = JobState::Running)
        }))
        .await?;
    }
    for (index, file) in files.into_iter().enumerate() {
        let name = file.file_name.clone().unwrap_or_else(|| file.id.clone());
        let read = {
            let (job, metadata) = (job.clone(), metadata.clone());
            tokio::task::spawn_blocking(move || {
                // A test may hold the job here (on a blocking thread, never a runtime one).
                crate::hooks::reached("jobs.document", &file.id);
                if job.cancelled() {
                    return Ok(None);
                }
                let bytes = job
                    .file_bytes(index)
                    .map_err(|e| format!("job storage: {e}"))?;
                let hint = crate::api::upload::hint(file.file_name, file.content_type);
                Ok::<_, String>(Some(crate::engine::sources::file_document(
                    file.id, &hint, bytes, metadata, &limits,
                )))
            })
            .await
            .map_err(|e| e.to_string())??
        };
        let Some(read) = read else {
            return Ok(());
        };
        let outcome = match read {
            Ok(doc) => ingest_one(service, &collection, doc).await,
            Err(e) => Err(e.to_string()),
        };
        let job2 = job.clone();
        blocking(Box::new(move || {
            job2.update(|r| {
                r.documents_done += 1;
                match outcome {
                    Ok(done) => {
                        r.passages_done += done.chunks;
                        r.documents.push(done);
                    }
                    Err(message) => r.errors.push(JobFileError {
                        file: name,
                        message,
                    }),
                }
            })
        }))
        .await?;
    }
    Ok(())
}

/// Ingests one document of a job, waiting out a full ingest budget (a job is not in a hurry).
async fn ingest_one(
    service: &crate::service::Service,
    collection: &str,
    doc: crate::engine::DocumentInput,
) -> Result<JobDocument, String> {
    loop {
        // No deadline: a job is not in a hurry, and nothing waits on its answer.
        match service.ingest(collection, vec![doc.clone()], None).await {
            Ok(outcome) => {
                let Some(report) = outcome.reports.into_iter().next() else {
                    return Err("the ingest settled nothing".to_string());
                };
                return Ok(JobDocument {
                    id: report.id,
                    status: report.status.as_str().to_string(),
                    chunks: report.chunks,
                });
            }
            Err(ServiceError::Overloaded(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
