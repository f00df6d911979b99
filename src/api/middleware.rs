//! Cross-cutting request handling: logging and metrics, timeouts, JSON error bodies. (API keys
//! are [`super::auth`]'s, request ids [`super::request_id`]'s.)

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// One log line and the Prometheus counters per request, labelled by route template (not raw
/// path) and by method name only for the standard methods, so that requests (before any key
/// is checked) cannot blow up the label set.
pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    let labels = [
        ("route", route.clone()),
        ("method", method.to_string()),
        ("status", status.clone()),
    ];
    metrics::counter!("semdex_http_requests_total", &labels).increment(1);
    metrics::histogram!("semdex_http_request_duration_seconds", &labels).record(seconds);
    tracing::info!(
        method = %method,
        route = %route,
        status = %status,
        latency_ms = format!("{:.2}", seconds * 1000.0),
        "request"
    );
    response
}

/// The `method` label of a request: the standard methods by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// When a request must be answered by: an ingest stops its work there and answers with what it
/// stored (the other routes are cut off at it).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Instant);

/// How long after its deadline an ingest may take to stop (one forward pass, the commit in
/// progress) before it is cut off like any other request.
const WIND_DOWN: std::time::Duration = std::time::Duration::from_secs(15);

/// Bounds how long a request may take. An ingest gets its deadline to answer by itself, with
/// the truth about what it stored, and [`WIND_DOWN`] more before it is cut off.
pub async fn timeout(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limit = state.config().request_timeout;
    req.extensions_mut()
        .insert(Deadline(Instant::now() + limit));
    let answers_itself = req.method() == Method::POST && req.uri().path().ends_with("/documents");
    let cut_off = if answers_itself {
        limit + WIND_DOWN
    } else {
        limit
    };
    match tokio::time::timeout(cut_off, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} s", limit.as_secs_f64()),
            )
        }
        .into_response(),
    }
}

/// Error responses made outside our handlers (axum's 405, body-limit 413, a caught panic)
/// get the same JSON body as ours.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    // A 500 made elsewhere may carry internal detail too: the log gets it, the client does not.
    let error = if status == StatusCode::INTERNAL_SERVER_ERROR {
        ApiError::internal(text)
    } else {
        ApiError::new(status, ApiError::code_for(status), text)
    };
    let mut fixed = error.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// The 404 for unknown routes.
pub async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for name in ["FOO", "get", "X-ATTACK-1", "BREW"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{name}");
        }
    }
}
