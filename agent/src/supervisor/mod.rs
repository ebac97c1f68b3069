//! Task supervision: every long-running task of the agent runs under a [`Supervisor`] that
//! restarts it with capped exponential backoff when it panics or returns an error, counts the
//! restart in `ids2_task_restarts_total{task}`, and stops all tasks on shutdown.
//!
//! Reloading (SIGHUP, a changed config file) and systemd notification live in the submodules.

mod notify;
mod reload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::Metrics;

pub use notify::{notify_ready, notify_stopping, watchdog_interval, Watchdog};
pub use reload::{
    file_fingerprint, ApplyOutcome, ConfigWatcher, ReloadError, Reloader, ValidateOnly,
};

/// Why a task stopped with an error; the supervisor logs it and restarts the task.
pub type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// A task's body, made afresh for every (re)start.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// Makes a task's future; called again on every restart.
pub type TaskFactory = Box<dyn Fn(Shutdown) -> TaskFuture + Send + Sync>;

/// Capped exponential backoff between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based): initial × 2^attempt, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The shutdown signal as seen by a task: cheap to clone, awaitable.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal that fires when `sender` sends `true` (or is dropped).
    pub fn new(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    /// True once shutdown has begun.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown begins.
    pub async fn requested(&mut self) {
        // A dropped sender means the owner is gone: treat it as shutdown too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d` unless shutdown begins first; returns false when it did.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.requested() => false,
        }
    }
}

/// Owns the agent's tasks and restarts the ones that fail.
pub struct Supervisor {
    metrics: Arc<Metrics>,
    backoff: Backoff,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Supervisor {
    /// A supervisor with no tasks yet.
    pub fn new(metrics: Arc<Metrics>, backoff: Backoff) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            metrics,
            backoff,
            stop,
            tasks: JoinSet::new(),
        }
    }

    /// The signal the supervisor's tasks watch; also usable by code outside it.
    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    /// Starts `name`, made by `factory`, and keeps it running until shutdown: a panic or an
    /// `Err` restarts it after a backoff; returning `Ok` ends it for good.
    pub fn spawn(&mut self, name: &'static str, factory: TaskFactory) {
        let metrics = self.metrics.clone();
        let backoff = self.backoff;
        let mut shutdown = self.shutdown_signal();
        self.tasks.spawn(async move {
            let mut attempt = 0u32;
            loop {
                let started = Instant::now();
                // The body runs in its own task so a panic is caught as a JoinError here.
                let mut body = AbortOnDrop(tokio::spawn(factory(shutdown.clone())));
                let outcome = tokio::select! {
                    r = &mut body.0 => r,
                    _ = shutdown.requested() => {
                        // Give the body a moment to notice the same signal and finish cleanly.
                        let _ = tokio::time::timeout(Duration::from_secs(2), &mut body.0).await;
                        return;
                    }
                };
                let why = match outcome {
                    Ok(Ok(())) => {
                        tracing::info!(task = name, "task finished");
                        return;
                    }
                    Ok(Err(e)) => format!("failed: {e}"),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e)),
                    Err(e) => format!("was cancelled: {e}"),
                };
                if shutdown.is_requested() {
                    return;
                }
                // A task that ran well for longer than the longest backoff starts over at the
                // shortest delay; one that keeps failing backs off further each time.
                if started.elapsed() > backoff.max {
                    attempt = 0;
                }
                let delay = backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                metrics.task_restarts.inc(&[name]);
                tracing::error!(
                    task = name,
                    delay_ms = delay.as_millis() as u64,
                    "task {why}; restarting"
                );
                if !shutdown.sleep(delay).await {
                    return;
                }
            }
        });
    }

    /// Signals every task to stop and waits up to `grace` for them; the rest are aborted.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(
                        left = self.tasks.len(),
                        "tasks did not stop in time; aborting them"
                    );
                    self.tasks.shutdown().await;
                    break;
                }
            }
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<_> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn panicking_task_is_restarted_and_counted() {
        let metrics = Arc::new(Metrics::new("test"));
        let mut sup = Supervisor::new(metrics.clone(), fast());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn(
            "flaky",
            Box::new(move |mut shutdown| {
                let n = r.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if n < 2 {
                        panic!("boom {n}");
                    }
                    shutdown.requested().await;
                    Ok(())
                })
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "task was not restarted twice"
        );
        assert_eq!(metrics.task_restarts.get(&["flaky"]), Some(2.0));
        sup.shutdown(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted after shutdown");
    }

    #[tokio::test]
    async fn erroring_task_restarts_but_ok_task_ends() {
        let metrics = Arc::new(Metrics::new("test"));
        let mut sup = Supervisor::new(metrics.clone(), fast());
        let errs = Arc::new(AtomicU32::new(0));
        let e = errs.clone();
        sup.spawn(
            "err",
            Box::new(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Err("nope".into()) })
            }),
        );
        let oks = Arc::new(AtomicU32::new(0));
        let o = oks.clone();
        sup.spawn(
            "once",
            Box::new(move |_| {
                o.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            }),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        sup.shutdown(Duration::from_secs(2)).await;
        assert!(errs.load(Ordering::SeqCst) >= 3, "error task not retried");
        assert_eq!(oks.load(Ordering::SeqCst), 1, "an Ok task must not restart");
        assert_eq!(metrics.task_restarts.get(&["once"]), None);
        let restarts = metrics.task_restarts.get(&["err"]).unwrap_or(0.0);
        assert!(restarts >= 2.0, "{restarts}");
    }

    #[tokio::test]
    async fn shutdown_aborts_a_task_that_ignores_it() {
        let metrics = Arc::new(Metrics::new("test"));
        let mut sup = Supervisor::new(metrics, fast());
        sup.spawn(
            "stubborn",
            Box::new(|_| {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
            }),
        );
        let t = Instant::now();
        sup.shutdown(Duration::from_millis(200)).await;
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
