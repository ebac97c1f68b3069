//! systemd readiness and watchdog notifications (sd_notify), sent only when systemd asked for
//! them by setting `NOTIFY_SOCKET` (and `WATCHDOG_USEC` for the watchdog).

use std::time::Duration;

use sd_notify::NotifyState;

use super::Shutdown;

/// Tells systemd the agent is up (`READY=1`); a no-op without `NOTIFY_SOCKET`.
pub fn notify_ready() {
    send(&[NotifyState::Ready]);
}

/// Tells systemd the agent is shutting down (`STOPPING=1`).
pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises;
/// `None` when systemd runs no watchdog for us.
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os("NOTIFY_SOCKET")?;
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// The watchdog pinger, run as a supervised task: if the runtime stalls, the pings stop and
/// systemd restarts the agent.
pub struct Watchdog {
    /// Time between `WATCHDOG=1` messages.
    pub interval: Duration,
}

impl Watchdog {
    /// Pings until shutdown.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), super::TaskError> {
        loop {
            send(&[NotifyState::Watchdog]);
            if !shutdown.sleep(self.interval).await {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    // One test touches NOTIFY_SOCKET/WATCHDOG_USEC: the process environment is shared by the
    // tests of this binary, so everything that reads it runs here, in sequence.
    #[tokio::test]
    async fn ready_and_watchdog_reach_a_real_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // No other test of this crate reads these variables, and nextest runs each test in
        // its own process.
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "400000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        assert_eq!(watchdog_interval(), Some(Duration::from_millis(200)));
        notify_ready();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(
            Watchdog {
                interval: Duration::from_millis(50),
            }
            .run(Shutdown::new(rx)),
        );
        let got = tokio::task::spawn_blocking(move || {
            let mut pings = 0;
            let mut buf = [0u8; 256];
            while pings < 2 {
                let n = sock.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"WATCHDOG=1\n");
                pings += 1;
            }
            pings
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        std::env::remove_var("NOTIFY_SOCKET");
        assert_eq!(watchdog_interval(), None);
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
    }
}
