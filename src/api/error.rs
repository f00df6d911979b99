//! Every failure the API reports: a status and a JSON body `{"error": {"code", "message"}}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `invalid_request`.
    pub code: &'static str,
    /// What went wrong, for a human.
    pub message: String,
    /// Seconds after which a retry may succeed (429 and 503).
    pub retry_after: Option<u32>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 422: the request is well-formed but its values are not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 404 for an unknown id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 while the model and index load.
    pub fn not_ready() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the model and index are still loading",
            )
        }
    }

    /// A 500: the cause (SQL, paths, a panic's text) goes to the log, under the request's id;
    /// the client sees the code `internal`, a generic message and that id (also in the
    /// `x-request-id` header) to quote when reporting it.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let message = match super::request_id::current() {
            Some(id) => {
                tracing::error!(error = %err, request_id = %id, "internal error");
                format!("internal error (request id {id}); the details are in the server's log")
            }
            None => {
                tracing::error!(error = %err, "internal error");
                "internal error; the details are in the server's log".to_string()
            }
        };
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The code conventionally used for a status without a more specific one.
    pub fn code_for(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            StatusCode::TOO_MANY_REQUESTS => "overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "error",
        }
    }
}

impl ApiError {
    /// A connection past the server's cap: try again shortly.
    pub fn too_many_connections() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                "the server has as many connections open as it serves; retry shortly",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        match err {
            ServiceError::InvalidRequest(_) => Self::invalid(message),
            ServiceError::NotFound(_) => Self::not_found(message),
            ServiceError::CollectionNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "collection_not_found", message)
            }
            ServiceError::CollectionConflict(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            ServiceError::InputTooLong { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "input_too_long", message)
            }
            ServiceError::Overloaded(_) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message)
            },
            ServiceError::Unavailable(_) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            },
            ServiceError::OutOfDescriptors(_) => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_open_files",
                    message,
                )
            },
            ServiceError::InsufficientStorage(_) => Self {
                retry_after: Some(30),
                ..Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    message,
                )
            },
            ServiceError::TimedOut(_) => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
            },
            ServiceError::ReadOnly(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", message)
            }
            ServiceError::InvalidSnapshot(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_snapshot",
                message,
            ),
            ServiceError::SnapshotNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "snapshot_not_found", message)
            }
            ServiceError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            ServiceError::Abandoned => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "abandoned", message)
            }
            ServiceError::Internal(m) => Self::internal(m),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_request",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => Self::code_for(status),
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s (JSON bodies, the right status), for
/// bodies that are JSON objects: every body of the API is one, and serde would otherwise read
/// a struct from an array of its field values (`["q", 5]` as a search).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Self::Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                ApiError::new(r.status(), ApiError::code_for(r.status()), r.body_text())
            })?;
        let starts_an_object = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !starts_an_object {
            // Malformed JSON is a 400 whatever its shape; well-formed, it is the wrong type.
            let _ = axum::Json::<serde::de::IgnoredAny>::from_bytes(&bytes)?;
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// Whether the content type is JSON: `application/json` or `application/*+json`, with any
/// parameters (as axum's own `Json` decides).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    content_type_essence(headers).is_some_and(|e| is_json_essence(&e))
}

/// The essence of a `Content-Type` header (`text/html` of `text/html; charset=utf-8`),
/// lowercased; `None` when there is none (or it is not text).
pub(super) fn content_type_essence(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether a content type's essence is JSON's.
pub(super) fn is_json_essence(essence: &str) -> bool {
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && !sub.contains('/'))
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}
