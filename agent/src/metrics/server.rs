//! The `/metrics` HTTP endpoint: hyper 1, HTTP/1.1, one task per connection, behind the limits
//! of [`crate::listen`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Metrics;
use crate::listen::{self, Limits, Listener};

/// The content type of text format 0.0.4, which promtool and every Prometheus accept.
pub const CONTENT_TYPE_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is taken or not ours.
    #[error("cannot listen for metrics on {addr} (set metrics.listen to a free address:port)")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running endpoint; dropping it does not stop it, [`MetricsServer::shutdown`] does.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets scrapes in flight finish (bounded by `grace`), then returns.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Binds `addr` and serves `metrics` under `limits` (sources, connections, request size and
/// time: see [`crate::listen`]) until shut down.
pub async fn serve(
    addr: SocketAddr,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> Result<MetricsServer, ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let (stop, stopped) = watch::channel(false);
    let handler: listen::Handler = Arc::new(move |req: &Request<Incoming>| respond(req, &metrics));
    let task = tokio::spawn(listen::serve(
        listener,
        Listener::Metrics,
        limits,
        handler,
        stopped,
    ));
    Ok(MetricsServer {
        addr: bound,
        stop,
        task,
    })
}

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, metrics.render()),
        (&Method::GET, "/") => (
            StatusCode::OK,
            "ids2-agent: metrics are at /metrics\n".to_string(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found; try /metrics\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_004));
    resp
}
