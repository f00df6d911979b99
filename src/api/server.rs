//! The HTTP server loop, with the connection hygiene a server on the open internet needs:
//! a deadline for a request's headers (a half-sent or dripping header is closed), the same
//! deadline for an idle keep-alive connection, a cap on open connections (past it, a new
//! connection gets a 503 answer and is closed; `/health` is still answered on it), and a
//! shutdown that stops waiting for idle or stalled connections after a grace period.
//!
//! axum's own `serve` takes no such settings, so connections are served here with hyper-util,
//! as axum does, plus a timer and the limits.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::storage::Exhausted;

/// How the server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Connections served at once; past it a connection is answered 503 (`/health` 200) and
    /// closed.
    pub max_connections: usize,
    /// Longest time a client may take to send a request's headers, and longest a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in flight before closing what is left.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains: in-flight requests get
/// up to [`ServerOptions::shutdown_grace`] to finish, idle connections are closed at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    overflow: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    // Dropped to tell every connection to finish; each holds a receiver until it is gone.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut spare = Spare::reserve();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if crate::storage::exhausted(&e) == Some(Exhausted::Descriptors) => {
                // No descriptor for a new connection: free the spare, take the connection to
                // close it at once (else the listener would report it again and again), then
                // hold a spare again.
                tracing::warn!(error = %e, "out of file descriptors: refusing a connection");
                spare.release();
                if let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
                spare = Spare::reserve();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let full = open.load(Ordering::SeqCst) >= options.max_connections;
        let service = if full {
            metrics::counter!("semdex_connections_refused_total").increment(1);
            overflow.clone()
        } else {
            app.clone()
        };
        let guard = OpenConnection::new(open.clone());
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _guard = guard;
            serve_connection(stream, service, options, full, stop).await;
        });
    }
    drop(listener);
    drop(stop_rx);
    // Every connection task holds a receiver: closed() returns once they have all ended.
    let drained = tokio::time::timeout(options.shutdown_grace, stop_tx.closed()).await;
    if drained.is_err() {
        tracing::warn!(
            connections = open.load(Ordering::SeqCst),
            grace_s = options.shutdown_grace.as_secs_f64(),
            "shutdown grace over: closing the connections still open"
        );
    }
    Ok(())
}

/// Serves one connection; on `stop`, finishes the request in flight and closes it.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    options: ServerOptions,
    overflow: bool,
    mut stop: watch::Receiver<()>,
) {
    let service = TowerToHyperService::new(
        app.map_request(|req: Request<Incoming>| req.map(Body::new))
            .map_err(|never: Infallible| match never {}),
    );
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        // A refused connection answers one request and goes.
        .keep_alive(!overflow);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(options.header_timeout))
        .keep_alive_timeout(options.header_timeout);
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                let _ = changed;
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Counts a connection while it is open.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!("semdex_connections_open").increment(1.0);
        Self(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("semdex_connections_open").decrement(1.0);
    }
}

/// A descriptor held in reserve, released when the process runs out so that a pending
/// connection can be accepted and closed instead of spinning the accept loop.
struct Spare(Option<std::fs::File>);

impl Spare {
    fn reserve() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }

    fn release(&mut self) {
        self.0.take();
    }
}

/// The router a connection past the cap gets: `/health` as usual, everything else 503 with
/// `Retry-After`, and the connection closed after the answer.
pub fn overflow_router(app: Router) -> Router {
    let health = app.clone();
    Router::new()
        .route(
            "/health",
            axum::routing::get(move |req: Request| {
                let health = health.clone();
                async move {
                    health
                        .oneshot(req)
                        .await
                        .unwrap_or_else(|never| match never {})
                }
            }),
        )
        .fallback(|| async { super::error::ApiError::too_many_connections() })
        .layer(axum::middleware::map_response(close_connection))
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
