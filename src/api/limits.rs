//! Request body limits, per route: a search needs a question, not 16 MiB.
//!
//! A body whose `Content-Length` is over the route's limit is answered 413 before a byte of it
//! is read; one without a length (chunked) is cut off by axum's `DefaultBodyLimit` as soon as
//! it passes the limit, never buffered whole.
//!
//! Most HTTP clients send the whole body before they read the answer, and a server that closes
//! a connection with unread data makes the kernel reset it, which destroys the 413 on its way.
//! So, as nginx's lingering close does, the rest of an oversized body is read and thrown away
//! in the background (at most [`DRAIN_BYTES`] and [`DRAIN_TIME`]) while the 413 goes out.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use super::error::ApiError;

/// Answers 413 at once when the declared length is over `limit`.
pub async fn reject_declared_oversize(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            tokio::spawn(drain(req.into_body()));
            too_large(limit).into_response()
        }
        _ => next.run(req).await,
    }
}

/// Most bytes of a refused body read and thrown away.
pub const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// Longest time spent reading a refused body.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and discards what the client sends of a refused body, within the bounds above;
/// dropping the body then closes the connection.
async fn drain(mut body: Body) {
    use axum::body::HttpBody;
    let reading = async {
        let mut read = 0;
        while read <= DRAIN_BYTES {
            let frame =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

/// The 413 of a body over `limit`.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than this route's limit of {limit} bytes"),
    )
}

/// `router` with a body limit of `limit` bytes: the early check of the declared length and
/// axum's limit on what is read (which, set closer to the handlers, overrides the global one).
pub fn limit_body<S>(router: OpenApiRouter<S>, limit: usize) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            reject_declared_oversize,
        ))
}
