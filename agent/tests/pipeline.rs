//! The `process` backend with real children: `sleep`, a shell that ignores SIGTERM, real
//! Suricata (unix-socket mode, no capture needed) when installed, and a program that does
//! not exist.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ids2_agent::metrics::Metrics;
use ids2_agent::pipeline::{Backend, BackendError, ChildSpec, Component, ProcessBackend};
use ids2_agent::resources::Limiter;
use ids2_agent::supervisor::Backoff;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn spec(component: Component, program: &str, args: &[&str]) -> ChildSpec {
    ChildSpec {
        component,
        program: program.into(),
        args: args.iter().map(OsString::from).collect(),
        env: Vec::new(),
        env_files: Vec::new(),
        reload_signal: Signal::SIGHUP,
        redis: None,
    }
}

fn backend(specs: Vec<ChildSpec>) -> (ProcessBackend, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new("test"));
    let b = ProcessBackend::new(
        specs,
        metrics.clone(),
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
    );
    (b, metrics)
}

fn alive(pid: u32) -> bool {
    // A reaped child is gone from /proc; a zombie would still be listed as state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

async fn wait_for_new_pid(b: &ProcessBackend, c: Component, old: u32, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(p) = b.pid(c).filter(|p| *p != old) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{c:?} was not restarted within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigkilled_child_is_restarted_and_counted() {
    let (b, metrics) = backend(vec![spec(Component::Suricata, "sleep", &["300"])]);
    b.start(Component::Suricata).await.unwrap();
    let first = b.pid(Component::Suricata).expect("running");
    assert!(alive(first));
    assert_eq!(metrics.process_up.get(&["suricata"]), Some(1.0));

    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    let second = wait_for_new_pid(&b, Component::Suricata, first, Duration::from_secs(5)).await;
    assert!(alive(second));
    assert_eq!(metrics.task_restarts.get(&["suricata"]), Some(1.0));

    kill(Pid::from_raw(second as i32), Signal::SIGKILL).unwrap();
    let third = wait_for_new_pid(&b, Component::Suricata, second, Duration::from_secs(5)).await;
    assert_eq!(metrics.task_restarts.get(&["suricata"]), Some(2.0));

    b.stop(Component::Suricata, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!alive(third), "child left running after stop");
    assert_eq!(b.pid(Component::Suricata), None);
    assert_eq!(metrics.process_up.get(&["suricata"]), Some(0.0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.pid(Component::Suricata),
        None,
        "restarted after an ordered stop"
    );
}

#[tokio::test]
async fn real_suricata_is_restarted_after_sigkill() {
    if which("suricata").is_none() {
        eprintln!("SKIP real_suricata_is_restarted_after_sigkill: needs suricata on PATH (.ci/install-deps installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("suricata.socket");
    let (b, metrics) = backend(vec![spec(
        Component::Suricata,
        "suricata",
        &[
            "-c",
            "/etc/suricata/suricata.yaml",
            &format!("--unix-socket={}", sock.display()),
            "-l",
            dir.path().to_str().unwrap(),
            "-k",
            "none",
        ],
    )]);
    b.start(Component::Suricata).await.unwrap();
    let first = b.pid(Component::Suricata).unwrap();
    // Let it get as far as creating its command socket, so a running Suricata is killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "suricata never created {}",
            sock.display()
        );
        assert_eq!(
            b.pid(Component::Suricata),
            Some(first),
            "suricata exited on its own"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    let second = wait_for_new_pid(&b, Component::Suricata, first, Duration::from_secs(10)).await;
    assert_eq!(metrics.task_restarts.get(&["suricata"]), Some(1.0));
    b.stop(Component::Suricata, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!alive(second));
}

#[tokio::test]
async fn missing_program_is_reported_not_fatal() {
    let (b, metrics) = backend(vec![spec(
        Component::Vector,
        "ids2-test-no-such-vector",
        &[],
    )]);
    let err = b.start(Component::Vector).await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ids2-test-no-such-vector") && msg.contains("PATH="),
        "{msg}"
    );
    assert_eq!(metrics.process_up.get(&["vector"]), Some(0.0));
    assert_eq!(b.pid(Component::Vector), None);
    // Retries go on in the background; stopping ends them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.stop(Component::Vector, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_kills_a_child_that_ignores_sigterm_after_the_grace() {
    let (b, _) = backend(vec![spec(
        Component::Vector,
        "sh",
        &["-c", "trap '' TERM; exec sleep 300"],
    )]);
    b.start(Component::Vector).await.unwrap();
    let pid = b.pid(Component::Vector).unwrap();
    // Give sh time to install the trap before it is tested.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    b.stop(Component::Vector, Duration::from_millis(300))
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "SIGTERM was not given its grace: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!alive(pid));
}

#[tokio::test]
async fn reload_sends_the_reload_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("hup");
    let script = format!(
        "trap 'echo hup > {}' HUP; while :; do sleep 0.05; done",
        mark.display()
    );
    let (b, _) = backend(vec![spec(Component::Vector, "sh", &["-c", &script])]);
    b.start(Component::Vector).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.reload(Component::Vector).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "SIGHUP not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop(Component::Vector, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn limiter_raises_nice_and_restores_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP limiter_raises_nice_and_restores_it: needs root (CAP_SYS_NICE) to lower a nice value back");
        return;
    }
    let (b, _) = backend(vec![spec(Component::Suricata, "sleep", &["300"])]);
    b.start(Component::Suricata).await.unwrap();
    let pid = b.pid(Component::Suricata).unwrap();
    let before = ids2_agent::pipeline::get_nice(pid).unwrap();
    b.limit().await.unwrap();
    assert_eq!(ids2_agent::pipeline::get_nice(pid).unwrap(), 10);
    b.release().await.unwrap();
    assert_eq!(ids2_agent::pipeline::get_nice(pid).unwrap(), before);
    b.stop(Component::Suricata, Duration::from_secs(1))
        .await
        .unwrap();
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
