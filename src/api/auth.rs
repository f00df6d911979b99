//! API keys: `Authorization: Bearer <key>` on every route but `/health` and the browser page.
//!
//! The scheme name is case-insensitive (RFC 7235 §2.1: `bearer`, `BEARER` and `Bearer` are
//! the same scheme), and keys are compared through their SHA-256 digests in constant time. An
//! empty key never authorizes anything: the command line refuses to start with one, since an
//! unset shell variable (`--api-key "$KEY"`) would otherwise turn authentication off silently.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;

/// Requires the configured key, when there is one, on every route but `/health` and the page
/// (`/`, `/assets/*`). CORS preflights are answered before this (the CORS layer answers them
/// alike for every path); any other `OPTIONS` needs the key, so that a client without it
/// cannot learn which routes exist.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = state.config().api_key.as_deref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/health" || super::routes::page::is_public(path) {
        return next.run(req).await;
    }
    if bearer_token(req.headers()).is_some_and(|presented| matches(presented, key)) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API key: send Authorization: Bearer <key>",
        )
        .into_response()
    }
}

/// The token of an `Authorization: Bearer <token>` header, whatever the scheme's case.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `presented` is `key` (compared in constant time; an empty key matches nothing).
fn matches(presented: &str, key: &str) -> bool {
    if key.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(key.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Takes `Allow` off a 401: a client without the key must not learn which methods a path
/// has (the key is checked before routing would answer 405).
pub async fn hide_routes(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().remove(header::ALLOW);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn token(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        bearer_token(&headers).map(str::to_string)
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "bEaReR   k1 ",
            " Bearer k1",
        ] {
            assert_eq!(token(value).as_deref(), Some("k1"), "{value:?}");
        }
        for value in [
            "Basic k1", "Bearer", "Bearer ", "Bearerk1", "k1", "Token k1",
        ] {
            assert_eq!(token(value), None, "{value:?}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn an_empty_key_matches_nothing() {
        assert!(matches("k1", "k1"));
        assert!(!matches("k1", "k2"));
        assert!(!matches("", ""));
    }
}
