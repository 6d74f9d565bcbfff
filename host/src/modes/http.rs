//! The daemon's HTTP listener: `/metrics` (Prometheus text) and `/healthz`
//! (200 while ticks complete and decide; 503, saying why, after too many
//! consecutive failed ticks or when no tick has completed for too long).

use crate::metrics::Metrics;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The most connections served at once. Further ones wait in the
/// kernel's accept queue (holding none of this process's descriptors) until
/// one ends: a flood of idle connections cannot take the descriptors the
/// ticks need. A scrape takes one connection for milliseconds.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a client has to send its request's head once connected (or
/// between requests on a kept-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection stays open, however busy: then it is closed,
/// and a scraper connects again.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// How long to wait after a failed accept (out of descriptors, say) before
/// the next: failing again at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve `metrics` on `listener` until the task is dropped, within
/// [`MAX_CONNECTIONS`], [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`].
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failing_since = None;
                stream
            }
            Err(err) => {
                // Said once per run of failures, not once per try.
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(%err, "cannot accept connections to /metrics and /healthz; trying again every 100 ms");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&request, &metrics)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
    }
}

/// Bind `addr` (so a taken port fails at start, not later).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => match metrics.health() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".into()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("unhealthy: {why}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
