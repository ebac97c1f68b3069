//! The agent's HTTP listeners (`/metrics` and the blocklist feed) under hostile clients, over
//! loopback: they bind where the config says, serve only the configured source networks, and
//! keep bounded resources under slow clients, a crowd of them and an oversized request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ids2_agent::block::{BlockConfig, BlockStats, Blocker, NoReputation};
use ids2_agent::listen::{Limits, ListenStats, Listener, Refusal};
use ids2_agent::metrics::{self, Metrics, MetricsServer};

fn settings(extra: &str) -> ids2_agent::config::Settings {
    ids2_agent::config::from_str(
        &format!("sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n{extra}"),
        Path::new("t.yaml"),
    )
    .unwrap()
}

async fn metrics_server(limits: Limits) -> MetricsServer {
    let s = settings("metrics: {listen: '127.0.0.1:0'}\n");
    metrics::serve(s.metrics_listen, limits, Arc::new(Metrics::new("t")))
        .await
        .unwrap()
}

/// Sends `request` and reads the answer until the server closes (at most `wait`).
fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

const GET: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_where_the_config_says() {
    let server = metrics_server(Limits::default()).await;
    let addr = server.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let answer = tokio::task::spawn_blocking(move || exchange(addr, GET, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Another loopback address reaches the host, not this socket.
    let other: SocketAddr = format!("127.0.0.2:{}", addr.port()).parse().unwrap();
    assert!(TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err());
    server.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_allowed_source_networks_are_served() {
    let s =
        settings("metrics: {listen: '127.0.0.1:0', allow_from: [192.0.2.0/24, '2001:db8::/32']}\n");
    let stats = Arc::new(ListenStats::default());
    let limits = Limits {
        stats: stats.clone(),
        ..Limits::new(s.metrics_allow_from.clone())
    };
    let server = metrics::serve(s.metrics_listen, limits, Arc::new(Metrics::new("t")))
        .await
        .unwrap();
    let addr = server.local_addr();
    let answer = tokio::task::spawn_blocking(move || exchange(addr, GET, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        answer.is_empty(),
        "served a source outside allow_from: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(stats.refused(Listener::Metrics, Refusal::Source), 1);
    let mut text = String::new();
    stats.render(&mut text);
    assert!(text.contains(
        "ids2_http_refused_connections_total{listener=\"metrics\",reason=\"source\"} 1\n"
    ));
    server.shutdown(Duration::from_secs(2)).await;

    // Loopback allowed: served.
    let server = metrics_server(Limits::new(vec!["127.0.0.0/8".parse().unwrap()])).await;
    let addr = server.local_addr();
    let answer = tokio::task::spawn_blocking(move || exchange(addr, GET, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200 "));
    server.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_serves_only_its_allowed_sources() {
    let s = settings(
        "capture: {home_net: [192.168.0.0/16]}\n\
         blocking: {enabled: true, feed_listen: '127.0.0.1:0', feed_allow_from: [10.9.0.0/16]}\n",
    );
    let mut cfg = BlockConfig::from_settings(&s).unwrap().unwrap();
    cfg.discover_host = false;
    cfg.allow_hosts.clear();
    let stats = cfg.feed_limits.stats.clone();
    let (_handle, mut blocker) =
        Blocker::new(cfg, Arc::new(NoReputation), Arc::new(BlockStats::default()));
    let addr = blocker.bind_feed().await.unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(blocker.run(async move {
        let _ = stopped.await;
    }));
    let answer = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            b"GET /blocklist.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(stats.refused(Listener::Blocklist, Refusal::Source), 1);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_a_crowd_of_them_is_bounded() {
    let stats = Arc::new(ListenStats::default());
    let limits = Limits {
        max_connections: 4,
        head_timeout: Duration::from_secs(1),
        stats: stats.clone(),
        ..Limits::default()
    };
    let server = metrics_server(limits).await;
    let addr = server.local_addr();
    let outcome = tokio::task::spawn_blocking(move || {
        // Four clients that send half a request line and then nothing.
        let started = Instant::now();
        let mut slow: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metr").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // A fifth finds the listener busy and is closed unserved, at once.
        let busy = exchange(addr, GET, Duration::from_secs(5));
        // The slow ones are cut off by the head timeout, not kept forever.
        let mut cut_after = Vec::new();
        for s in &mut slow {
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            cut_after.push(started.elapsed());
        }
        // Their slots are free again.
        let after = exchange(addr, GET, Duration::from_secs(5));
        (busy, cut_after, after)
    })
    .await
    .unwrap();
    let (busy, cut_after, after) = outcome;
    assert!(busy.is_empty(), "{}", String::from_utf8_lossy(&busy));
    assert!(stats.refused(Listener::Metrics, Refusal::Busy) >= 1);
    for t in cut_after {
        assert!(t < Duration::from_secs(4), "a slow client was kept {t:?}");
    }
    assert!(
        after.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&after)
    );
    server.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_without_being_read() {
    let server = metrics_server(Limits::default()).await;
    let addr = server.local_addr();
    let (answer, sent) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        // 64 MiB of one header: far more than any socket buffer, so the server must stop
        // reading (and answer) long before the client is done.
        let chunk = [b'a'; 64 * 1024];
        s.write_all(b"X-Big: ").unwrap();
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        (answer, sent)
    })
    .await
    .unwrap();
    assert!(
        sent < 64 << 20,
        "the server read all {sent} bytes of the head"
    );
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // And it still serves.
    let ok = tokio::task::spawn_blocking(move || exchange(addr, GET, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(ok.starts_with(b"HTTP/1.1 200 "));
    server.shutdown(Duration::from_secs(2)).await;
}
