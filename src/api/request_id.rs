//! Request ids: every response carries `x-request-id`, and every log line of a request names
//! it, so that a client reporting a failure and the operator reading the log speak of the same
//! request.
//!
//! An incoming `x-request-id` (set by a reverse proxy, or the client) is kept when it is sane
//! (1 to 64 characters of `A-Z a-z 0-9 - _ . :`); otherwise the server makes one. The id lives
//! in a tracing span around the request and in a task-local, where
//! [`crate::api::ApiError::internal`] finds it for the message of a 500.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header that carries the id, both ways.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept.
const MAX_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// Gives the request an id (its own, if sane), runs it inside a span and a task-local that
/// carry the id, and sets `x-request-id` on the response.
pub async fn assign(req: Request, next: Next) -> Response {
    let id = incoming(req.headers()).unwrap_or_else(generate);
    let span = tracing::info_span!("request", id = %id);
    let mut response = CURRENT
        .scope(id.clone(), next.run(req))
        .instrument(span)
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The caller's id, when it is one we can log and echo safely.
fn incoming(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&HEADER)?.to_str().ok()?;
    sane(value).then(|| value.to_string())
}

/// 1 to [`MAX_LEN`] characters that need no quoting in logs or headers.
fn sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh id: a random per-process prefix and a counter, unique within the process and
/// unlikely to repeat across restarts.
fn generate() -> String {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        hasher.finish() & 0xffff_ffff_ffff
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:012x}-{n:x}", *PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        for ok in ["abc", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "req:1.2_3"] {
            assert!(sane(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ünï",
            long.as_str(),
        ] {
            assert!(!sane(bad), "{bad:?}");
        }
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(sane(&a), "{a}");
    }

    #[tokio::test]
    async fn the_current_id_is_visible_inside_the_scope_only() {
        assert_eq!(current(), None);
        let seen = CURRENT.scope("id-1".to_string(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("id-1"));
    }
}
