//! The browser page: `GET /` and its two assets, embedded in the binary and served without an
//! API key. The page itself talks only to the public HTTP API, sending the key it is given.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::api::state::AppState;

const INDEX_HTML: &str = include_str!("../page/index.html");
const APP_JS: &str = include_str!("../page/app.js");
const STYLE_CSS: &str = include_str!("../page/style.css");

/// Where the assets live; paths under it (and `/`) need no API key.
const ASSETS: &str = "/assets/";

/// Scripts, styles and requests only from this origin; nothing inline, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A short content hash of both assets: the page links `?v=<hash>`, so a new binary's assets
/// are never mixed with an old cached copy, and the current ones can be cached for good.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new()
        .chain_update(APP_JS)
        .chain_update(STYLE_CSS)
        .finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// The HTML with its asset links pointing at this build's assets.
static PAGE: LazyLock<String> = LazyLock::new(|| INDEX_HTML.replace("{{version}}", &VERSION));

/// The routes of the page (kept out of the OpenAPI description: they are not API).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
}

/// Whether `path` is part of the page, which loads without an API key.
pub fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with(ASSETS)
}

/// The page. Revalidated on every load (it is small), so a new binary shows at once.
pub async fn index(request_headers: HeaderMap) -> Response {
    let mut response = serve(
        &request_headers,
        PAGE.as_str(),
        "text/html; charset=utf-8",
        &format!("\"page-{}\"", *VERSION),
        "no-cache",
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The script.
pub async fn app_js(uri: Uri, headers: HeaderMap) -> Response {
    asset(
        &uri,
        &headers,
        APP_JS,
        "text/javascript; charset=utf-8",
        "js",
    )
}

/// The style sheet.
pub async fn style_css(uri: Uri, headers: HeaderMap) -> Response {
    asset(&uri, &headers, STYLE_CSS, "text/css; charset=utf-8", "css")
}

/// An asset: cached for a year when asked for with this build's `?v=`, else revalidated.
fn asset(uri: &Uri, headers: &HeaderMap, body: &'static str, kind: &str, name: &str) -> Response {
    let current = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.strip_prefix("v=") == Some(VERSION.as_str()))
    });
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    serve(
        headers,
        body,
        kind,
        &format!("\"{name}-{}\"", *VERSION),
        cache,
    )
}

/// A static body with its type, validator and caching policy; 304 when the client has it.
fn serve(
    request_headers: &HeaderMap,
    body: &'static str,
    content_type: &str,
    etag: &str,
    cache_control: &'static str,
) -> Response {
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
