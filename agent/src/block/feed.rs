//! The HTTP feed of block decisions (hyper 1, HTTP/1.1): `/blocklist.txt` for pfSense and
//! OPNsense URL tables, `/blocklist.json` with reasons, alerts and expiry; behind the limits of
//! [`crate::listen`].

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::table::Table;
use crate::listen::{self, Limits, Listener};

fn respond(req: &Request<Incoming>, table: &Mutex<Table>) -> Response<Full<Bytes>> {
    let now = Instant::now().into_std();
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/blocklist.txt") => {
            let t = table.lock().unwrap_or_else(|e| e.into_inner());
            (StatusCode::OK, "text/plain; charset=utf-8", t.text(now))
        }
        (&Method::GET | &Method::HEAD, "/blocklist.json") => {
            let t = table.lock().unwrap_or_else(|e| e.into_inner());
            (StatusCode::OK, "application/json", t.json(now).to_string())
        }
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the feed is at /blocklist.txt and /blocklist.json\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Serves `table` on `listener` under `limits` until `stop` turns true.
pub(super) async fn serve(
    listener: TcpListener,
    limits: Limits,
    table: Arc<Mutex<Table>>,
    stop: watch::Receiver<bool>,
) {
    let handler: listen::Handler = Arc::new(move |req: &Request<Incoming>| respond(req, &table));
    listen::serve(listener, Listener::Blocklist, limits, handler, stop).await;
}
