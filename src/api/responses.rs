//! The error responses routes share, for `/openapi.json`: every status a route can answer is
//! documented on it (schemathesis checks that no undocumented one comes back).
//!
//! Each type is a set of statuses that arise together: from the layers every route passes
//! through ([`Common`]), from reading a JSON body ([`JsonBody`]) or a query string
//! ([`QueryString`]), from admission control ([`Overloaded`]), and from naming a document
//! ([`UnknownId`]). A route lists its own success and any specific meaning next to them.

use utoipa::IntoResponses;

use super::error::ErrorBody;

/// Statuses any route but `/health` can answer.
#[derive(IntoResponses)]
pub enum Common {
    /// The server has an API key and the request lacks it: send `Authorization: Bearer <key>`.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer")))]
    Unauthorized(#[to_schema] ErrorBody),
    /// A failure on the server's side; the message names the request id (`x-request-id`) under
    /// which the server's log has the details.
    #[response(status = 500)]
    Internal(#[to_schema] ErrorBody),
    /// The model and index are still loading, the request took longer than the server's
    /// timeout, or the server is shutting down; retry later.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// Statuses of reading a JSON request body.
#[derive(IntoResponses)]
pub enum JsonBody {
    /// Not JSON: a syntax error, invalid UTF-8, an empty body, or nesting deeper than 128.
    #[response(status = 400)]
    Malformed(#[to_schema] ErrorBody),
    /// The body is larger than this route's limit (answered before it is read); on
    /// `POST /embed` with `truncate: false`, also an input longer than the model's window.
    #[response(status = 413)]
    TooLarge(#[to_schema] ErrorBody),
    /// The body is not sent as `Content-Type: application/json`.
    #[response(status = 415)]
    NotJson(#[to_schema] ErrorBody),
    /// Well-formed JSON whose shape or values are not acceptable (the message says which).
    #[response(status = 422)]
    Invalid(#[to_schema] ErrorBody),
}

/// Statuses of reading an ingest's body: JSON documents or files.
#[derive(IntoResponses)]
pub enum DocumentsUpload {
    /// Not JSON (a syntax error, invalid UTF-8, an empty body, nesting deeper than 128), a
    /// malformed multipart form, or an unknown query parameter.
    #[response(status = 400)]
    Malformed(#[to_schema] ErrorBody),
    /// The body is larger than the route's limit, or a file inflates past the decompression
    /// limit or has more pages than the page limit.
    #[response(status = 413)]
    TooLarge(#[to_schema] ErrorBody),
    /// A content type not taken here, or a file of none of the formats semdex reads.
    #[response(status = 415)]
    Unsupported(#[to_schema] ErrorBody),
    /// Well-formed JSON whose shape or values are not acceptable, or a file that cannot be read
    /// (encrypted, without a text layer, corrupt, ...): the message says which, and why.
    #[response(status = 422)]
    Invalid(#[to_schema] ErrorBody),
}

/// Statuses of reading a query string.
#[derive(IntoResponses)]
pub enum QueryString {
    /// A parameter is missing or not of its type (e.g. `k=abc`, `k=-1`).
    #[response(status = 400)]
    Malformed(#[to_schema] ErrorBody),
    /// The parameters are well-formed but out of range (the message says which).
    #[response(status = 422)]
    Invalid(#[to_schema] ErrorBody),
}

/// The server is at its limit of admitted work.
#[derive(IntoResponses)]
pub enum Overloaded {
    /// Too much embedding or ingest work is admitted already; retry after `Retry-After`
    /// seconds.
    #[response(
        status = 429,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
    )]
    TooBusy(#[to_schema] ErrorBody),
}

/// The route names a document that does not exist.
#[derive(IntoResponses)]
pub enum UnknownId {
    /// No document with this id.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
}

/// The route names a collection that does not exist.
#[derive(IntoResponses)]
pub enum UnknownCollection {
    /// No collection with this name.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
}
