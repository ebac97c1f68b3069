//! The accept loop both of the agent's HTTP listeners (`/metrics`, the blocklist feed) run, made
//! so that a host on the LAN cannot turn them against the sensor.
//!
//! A connection from outside the listener's `allow_from` networks is closed before a byte of it
//! is read; at most [`Limits::max_connections`] are served at once (more are closed at once, so
//! a crowd of slow clients holds a bounded number of tasks and buffers); a request head must
//! arrive within [`Limits::head_timeout`] and fit in [`Limits::max_head_bytes`] (hyper answers
//! 431 otherwise); no connection outlives [`Limits::lifetime`]. Request bodies are never read.
//! Refusals are counted in `ids2_http_refused_connections_total{listener,reason}` and logged at
//! 1, 2, 4, 8… so a flood cannot flood the journal.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Connections served at once per listener: a Prometheus server and a firewall or two need a few.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send a whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read (hyper's smallest allowed buffer is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest a connection is kept, idle keep-alive included; then it is closed gracefully.
pub const LIFETIME: Duration = Duration::from_secs(30);
/// How long a connection past its lifetime, or open at shutdown, may take to finish the
/// response in flight.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Which listener, the `listener` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `metrics.listen`.
    Metrics,
    /// `blocking.feed_listen`.
    Blocklist,
}

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Listener::Metrics => "metrics",
            Listener::Blocklist => "blocklist",
        }
    }
}

/// Why a connection was closed unserved, the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source is outside `allow_from`.
    Source,
    /// [`Limits::max_connections`] were being served.
    Busy,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Source => "source",
            Refusal::Busy => "busy",
        }
    }
}

/// Refused connections, by listener and reason; one instance serves both listeners so the
/// family is rendered once.
#[derive(Debug, Default)]
pub struct ListenStats {
    refused: [[AtomicU64; 2]; 2],
}

impl ListenStats {
    /// Connections `listener` refused for `reason`.
    pub fn refused(&self, listener: Listener, reason: Refusal) -> u64 {
        self.refused[listener as usize][reason as usize].load(Ordering::Relaxed)
    }

    fn count(&self, listener: Listener, reason: Refusal) -> u64 {
        self.refused[listener as usize][reason as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The family in Prometheus text format 0.0.4, for the agent's `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "ids2_http_refused_connections_total";
        let _ = writeln!(
            out,
            "# HELP {name} Connections to the agent's HTTP listeners closed unserved: source outside allow_from, or the listener busy.\n# TYPE {name} counter"
        );
        for listener in [Listener::Metrics, Listener::Blocklist] {
            for reason in [Refusal::Source, Refusal::Busy] {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",reason=\"{}\"}} {}",
                    listener.label(),
                    reason.label(),
                    self.refused(listener, reason)
                );
            }
        }
    }
}

/// What a listener lets in.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Source networks served; empty means any.
    pub allow_from: Vec<IpNet>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request head.
    pub head_timeout: Duration,
    /// Largest request head (at least 8 KiB, hyper's floor).
    pub max_head_bytes: usize,
    /// Longest life of a connection.
    pub lifetime: Duration,
    /// Where refusals are counted.
    pub stats: Arc<ListenStats>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Limits {
    /// The default limits, serving `allow_from` (empty: any source).
    pub fn new(allow_from: Vec<IpNet>) -> Self {
        Self {
            allow_from,
            max_connections: MAX_CONNECTIONS,
            head_timeout: HEAD_TIMEOUT,
            max_head_bytes: MAX_HEAD_BYTES,
            lifetime: LIFETIME,
            stats: Arc::default(),
        }
    }

    /// True when `peer` may connect; an IPv4 client of a dual-stack socket arrives as
    /// `::ffff:a.b.c.d` and is matched as the IPv4 address it is.
    pub fn admits(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow_from.is_empty() || self.allow_from.iter().any(|n| n.contains(&peer))
    }
}

/// Answers one request; never reads the body.
pub type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Serves `handler` on `listener` under `limits` until `stop` turns true; connections still
/// open [`CLOSE_GRACE`] later are dropped.
pub async fn serve(
    listener: TcpListener,
    which: Listener,
    limits: Limits,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tracing::warn!(listener = which.label(), error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !limits.admits(peer.ip()) {
                    refuse(&limits, which, Refusal::Source, peer);
                    continue;
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    refuse(&limits, which, Refusal::Busy, peer);
                    continue;
                };
                let (handler, limits) = (handler.clone(), limits.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let resp = handler(&req);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.head_timeout)
                        .max_buf_size(limits.max_head_bytes.max(8192))
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    // A client that hangs up mid-request is its own problem, not ours.
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = tokio::time::sleep(limits.lifetime) => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // The guard `wait_for` returns is not `Send`: dropped inside, never held by select.
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => break,
        }
    }
    // Responses in flight may finish; idle keep-alive connections are not waited for long.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

fn refuse(limits: &Limits, which: Listener, reason: Refusal, peer: SocketAddr) {
    let n = limits.stats.count(which, reason);
    if n.is_power_of_two() {
        tracing::warn!(
            listener = which.label(),
            reason = reason.label(),
            %peer,
            refused_total = n,
            "connection closed unserved (see ids2_http_refused_connections_total)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_from_matches_mapped_ipv4_and_empty_means_any() {
        let any = Limits::default();
        assert!(any.admits("203.0.113.1".parse().unwrap()));
        let lan = Limits::new(vec![
            "192.168.1.0/24".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(lan.admits("192.168.1.20".parse().unwrap()));
        assert!(lan.admits("::ffff:192.168.1.20".parse().unwrap()));
        assert!(lan.admits("::1".parse().unwrap()));
        assert!(!lan.admits("192.168.2.1".parse().unwrap()));
        assert!(!lan.admits("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn refusals_render_per_listener_and_reason() {
        let s = ListenStats::default();
        s.count(Listener::Blocklist, Refusal::Busy);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains(
            "ids2_http_refused_connections_total{listener=\"blocklist\",reason=\"busy\"} 1\n"
        ));
        assert_eq!(out.matches("# TYPE").count(), 1);
    }
}
