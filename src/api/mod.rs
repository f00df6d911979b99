//! The HTTP API (axum): routes, wire types, errors. It only translates between HTTP and the
//! engine; the engine never sees a request or formats JSON.
//!
//! Routes are registered through utoipa-axum, so `/openapi.json` is generated from the same
//! handlers the router serves and cannot drift from them.

mod auth;
pub mod error;
mod integers;
mod limits;
pub(crate) mod metadata_budget;
mod metrics;
mod middleware;
mod objects;
pub mod openai_tokens;
pub mod request_id;
pub mod responses;
pub mod routes;
mod schemas;
pub mod server;
pub mod state;
pub(crate) mod text_budget;
pub mod types;
pub mod upload;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use state::{ApiConfig, AppState};

use routes::{collections, documents, embeddings, jobs, page, search, snapshots, system};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "semdex",
        description = "Semantic embedding and retrieval server: search, documents, TEI- and OpenAI-compatible embeddings."
    ),
    tags(
        (name = "search", description = "Nearest passages"),
        (name = "documents", description = "The corpus"),
        (name = "collections", description = "Named corpora, each searched on its own"),
        (name = "embeddings", description = "Vectors and similarities"),
        (name = "system", description = "Health, information, metrics"),
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI description, before state and middleware; routes with a body
/// limit of their own get it here. The snapshot upload comes apart: its limit is larger than
/// the one every other route shares.
fn routes(config: &ApiConfig) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let search = limits::limit_body(
        OpenApiRouter::new().routes(routes!(search::search_post, search::search_get)),
        config.max_search_body_bytes,
    );
    let (main, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(search)
        .routes(routes!(documents::ingest, documents::list))
        .routes(routes!(documents::get, documents::delete))
        .routes(routes!(documents::chunks))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(collections::get, collections::delete))
        .routes(routes!(search::search_post_in, search::search_get_in))
        .routes(routes!(documents::ingest_in, documents::list_in))
        .routes(routes!(documents::get_in, documents::delete_in))
        .routes(routes!(documents::chunks_in))
        .routes(routes!(snapshots::create, snapshots::list))
        .routes(routes!(snapshots::download, snapshots::delete))
        .routes(routes!(jobs::get, jobs::cancel))
        .routes(routes!(embeddings::embed))
        .routes(routes!(embeddings::similarity))
        .routes(routes!(embeddings::openai))
        .routes(routes!(system::health))
        .routes(routes!(system::info))
        .routes(routes!(system::metrics))
        .split_for_parts();
    let (uploads, upload_spec) = OpenApiRouter::new()
        .routes(routes!(snapshots::upload))
        .split_for_parts();
    let mut spec = spec;
    spec.merge(upload_spec);
    let limit = usize::try_from(config.max_snapshot_bytes).unwrap_or(usize::MAX);
    let uploads = uploads
        // The upload is streamed, never buffered: it checks its own size as it reads.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            limit,
            limits::reject_declared_oversize,
        ));
    (main, uploads, spec)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(&ApiConfig::default()).2
}

/// The complete application: routes, `/openapi.json`, limits, auth, CORS, logging, metrics,
/// request ids and JSON errors everywhere.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let (routes, uploads, spec) = routes(&config);
    let spec = Arc::new(spec);
    let app = routes
        .route(
            "/openapi.json",
            get(
                move |axum::extract::State(state): axum::extract::State<AppState>| {
                    let spec = spec.clone();
                    async move {
                        let dimension = state
                            .service()
                            .ok()
                            .map(|s| s.engine().encoder().dimension());
                        let encoding = state.config().openai_token_encoding;
                        axum::Json(schemas::for_model(&spec, dimension, encoding))
                    }
                },
            ),
        )
        .merge(page::router())
        .nest_service(
            "/mcp",
            crate::mcp::http_service(state.clone(), config.max_body_bytes),
        )
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            config.max_body_bytes,
            limits::reject_declared_oversize,
        ))
        .merge(uploads)
        .fallback(middleware::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .with_state(state);
    let app = match cors(&config.cors_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    let app = app
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                ApiError::internal(format!("the handler panicked: {what}")).into_response_owned()
            },
        ))
        .layer(axum::middleware::from_fn(request_id::assign));
    // axum's method router adds `Allow` around every layer above, to whatever its method
    // fallback answered, the auth layer's 401 included: this outer router takes it off again.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::map_response(auth::hide_routes))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                request_id::HEADER.clone(),
            ])
            .expose_headers([request_id::HEADER.clone(), header::RETRY_AFTER]),
    )
}

impl ApiError {
    fn into_response_owned(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}
