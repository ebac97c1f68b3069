//! The `process` backend: Suricata and Vector as children of the agent.
//!
//! Each component gets a monitor task that owns the child: it respawns it with capped
//! exponential backoff when it exits (counted in `ids2_task_restarts_total{task}`), and stops
//! it on request with SIGTERM, then SIGKILL after a bounded wait. A program that cannot be
//! found is reported (error log once, `ids2_pipeline_process_up` 0) and retried with backoff,
//! so installing it later brings it up without restarting the agent.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Backend, BackendError, BoxFuture, Component};
use crate::config::{AuthSettings, Settings};
use crate::metrics::Metrics;
use crate::resources::{LimitError, Limiter};
use crate::supervisor::Backoff;
use crate::vector::RedisCopy;

/// How to run one component as a child process.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Which component this is.
    pub component: Component,
    /// Program name (searched on PATH) or path.
    pub program: OsString,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Environment variables set as given.
    pub env: Vec<(String, String)>,
    /// Environment variables whose value is the first line of a file, read at each spawn so a
    /// rotated secret is picked up and never written into a rendered file.
    pub env_files: Vec<(String, PathBuf)>,
    /// The signal that makes the program reload its configuration.
    pub reload_signal: Signal,
    /// Vector's optional Redis copy: its config is added (`--config`) at a spawn only when the
    /// current generation has one and Redis answers then, so a Redis that is down cannot hold
    /// back Vector's start.
    pub redis: Option<RedisCopy>,
}

impl ChildSpec {
    /// Suricata on the rendered config, capturing with af-packet on `capture.interface` and
    /// logging to `logs.path` (where the EVE reader and Vector expect `eve.json`).
    pub fn suricata(settings: &Settings) -> Self {
        let c = &settings.config;
        let conf = Path::new(&c.paths.rendered_dir).join("current/suricata.yaml");
        Self {
            component: Component::Suricata,
            program: "suricata".into(),
            args: vec![
                "-c".into(),
                conf.into(),
                format!("--af-packet={}", c.capture.interface).into(),
                "-l".into(),
                c.logs.path.clone().into(),
            ],
            env: Vec::new(),
            env_files: Vec::new(),
            // SIGUSR2 is Suricata's live rule reload; a changed suricata.yaml needs a restart.
            reload_signal: Signal::SIGUSR2,
            redis: None,
        }
    }

    /// Vector ([`crate::vector::program`]) on the rendered config, expanding its environment
    /// references in every version; with basic auth the password reaches it through
    /// `IDS2_OPENSEARCH_PASSWORD`, the variable the rendered `vector.toml` refers to.
    pub fn vector(settings: &Settings) -> Self {
        let conf = Path::new(&settings.config.paths.rendered_dir).join("current/vector.toml");
        let env_files = match &settings.auth {
            AuthSettings::Basic { password_file, .. } => {
                vec![(
                    "IDS2_OPENSEARCH_PASSWORD".to_string(),
                    password_file.clone(),
                )]
            }
            AuthSettings::AwsSigv4 { .. } => Vec::new(),
        };
        Self {
            component: Component::Vector,
            program: crate::vector::program(),
            args: vec!["--config".into(), conf.into()],
            env: vec![(
                crate::vector::INTERPOLATION_ENV.0.to_string(),
                crate::vector::INTERPOLATION_ENV.1.to_string(),
            )],
            env_files,
            reload_signal: Signal::SIGHUP,
            redis: Some(RedisCopy::new(Path::new(
                &settings.config.paths.rendered_dir,
            ))),
        }
    }
}

enum Cmd {
    Stop {
        timeout: Duration,
        ack: oneshot::Sender<()>,
    },
    Restart {
        ack: oneshot::Sender<()>,
    },
}

struct Slot {
    spec: Arc<ChildSpec>,
    pid: Arc<AtomicU32>,
    monitor: Mutex<Option<mpsc::Sender<Cmd>>>,
    /// Nice values saved by [`Limiter::limit`], per thread id, to restore exactly.
    saved_nice: Mutex<Vec<(u32, i32)>>,
}

/// Suricata and Vector as supervised children.
pub struct ProcessBackend {
    slots: HashMap<Component, Slot>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
}

/// The nice value level 1 of the resource controller gives the pipeline's threads.
pub const LIMITED_NICE: i32 = 10;

impl ProcessBackend {
    /// A backend for `specs` (one per component); nothing runs until [`Backend::start`].
    pub fn new(specs: Vec<ChildSpec>, metrics: Arc<Metrics>, backoff: Backoff) -> Self {
        let slots = specs
            .into_iter()
            .map(|spec| {
                (
                    spec.component,
                    Slot {
                        spec: Arc::new(spec),
                        pid: Arc::new(AtomicU32::new(0)),
                        monitor: Mutex::new(None),
                        saved_nice: Mutex::new(Vec::new()),
                    },
                )
            })
            .collect();
        Self {
            slots,
            metrics,
            backoff,
        }
    }

    /// The standard pair for `settings`: Suricata and Vector.
    pub fn for_settings(settings: &Settings, metrics: Arc<Metrics>) -> Self {
        Self::new(
            vec![ChildSpec::suricata(settings), ChildSpec::vector(settings)],
            metrics,
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        )
    }

    fn slot(&self, c: Component) -> Result<&Slot, BackendError> {
        self.slots.get(&c).ok_or(BackendError::Unknown(c.name()))
    }

    fn sender(&self, c: Component) -> Result<Option<mpsc::Sender<Cmd>>, BackendError> {
        let slot = self.slot(c)?;
        let guard = slot.monitor.lock().unwrap_or_else(|e| e.into_inner());
        Ok(guard.as_ref().filter(|tx| !tx.is_closed()).cloned())
    }
}

impl Backend for ProcessBackend {
    fn start(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let slot = self.slot(c)?;
            let first = {
                let mut guard = slot.monitor.lock().unwrap_or_else(|e| e.into_inner());
                if guard.as_ref().is_some_and(|tx| !tx.is_closed()) {
                    return Ok(());
                }
                let (tx, rx) = mpsc::channel(4);
                let (first_tx, first_rx) = oneshot::channel();
                *guard = Some(tx);
                tokio::spawn(
                    Monitor {
                        spec: slot.spec.clone(),
                        pid: slot.pid.clone(),
                        metrics: self.metrics.clone(),
                        backoff: self.backoff,
                        commands: rx,
                    }
                    .run(first_tx),
                );
                first_rx
            };
            first.await.unwrap_or(Ok(()))
        })
    }

    fn stop(&self, c: Component, timeout: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if let Some(tx) = self.sender(c)? {
                let (ack, done) = oneshot::channel();
                if tx.send(Cmd::Stop { timeout, ack }).await.is_ok() {
                    let _ = done.await;
                }
            }
            Ok(())
        })
    }

    fn restart(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            match self.sender(c)? {
                Some(tx) => {
                    let (ack, done) = oneshot::channel();
                    if tx.send(Cmd::Restart { ack }).await.is_ok() {
                        let _ = done.await;
                    }
                    Ok(())
                }
                None => self.start(c).await,
            }
        })
    }

    fn reload(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let slot = self.slot(c)?;
            let Some(pid) = self.pid(c) else {
                // Nothing running: the next start reads the new config anyway.
                return Ok(());
            };
            kill(Pid::from_raw(pid as i32), slot.spec.reload_signal).map_err(|source| {
                BackendError::Signal {
                    component: c.name(),
                    pid,
                    source,
                }
            })
        })
    }

    fn pid(&self, c: Component) -> Option<u32> {
        let pid = self.slots.get(&c)?.pid.load(Ordering::SeqCst);
        (pid != 0).then_some(pid)
    }
}

/// Level 1 for children: raise the nice value of every thread of Suricata and Vector to
/// [`LIMITED_NICE`] and put the saved values back on release. Chosen over SIGSTOP duty cycles
/// (a stopped Suricata drops everything and stays stopped if the agent dies) and over ad-hoc
/// cgroups (state outside the process that must be cleaned up): nice is exactly reversible,
/// leaves nothing behind if the agent dies, and hands the CPU to the agent and the OS first
/// under contention. It does not cap an idle CPU — levels 2 and 3 shed the work itself.
impl Limiter for ProcessBackend {
    fn limit(&self) -> BoxFuture<'_, Result<(), LimitError>> {
        Box::pin(async move {
            for c in Component::STOP_ORDER {
                let (Ok(slot), Some(pid)) = (self.slot(c), self.pid(c)) else {
                    continue;
                };
                let mut saved = slot.saved_nice.lock().unwrap_or_else(|e| e.into_inner());
                for tid in threads(pid) {
                    let Ok(old) = get_nice(tid) else { continue };
                    if !saved.iter().any(|(t, _)| *t == tid) {
                        saved.push((tid, old));
                    }
                    if old < LIMITED_NICE {
                        set_nice(tid, LIMITED_NICE)
                            .map_err(|source| LimitError::Nice { pid: tid, source })?;
                    }
                }
            }
            Ok(())
        })
    }

    fn release(&self) -> BoxFuture<'_, Result<(), LimitError>> {
        Box::pin(async move {
            for slot in self.slots.values() {
                let saved =
                    std::mem::take(&mut *slot.saved_nice.lock().unwrap_or_else(|e| e.into_inner()));
                for (tid, nice) in saved {
                    // A thread that has exited since is fine: there is nothing to restore.
                    match set_nice(tid, nice) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(source) => return Err(LimitError::Nice { pid: tid, source }),
                    }
                }
            }
            Ok(())
        })
    }
}

/// Thread ids of a process; on Linux nice values are per thread.
fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The nice value of one thread.
pub fn get_nice(tid: u32) -> std::io::Result<i32> {
    // getpriority can legitimately return -1, so errno is cleared and checked.
    // SAFETY: plain syscalls on integers; errno is thread-local.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if v == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(v)
    }
}

fn set_nice(tid: u32, nice: i32) -> std::io::Result<()> {
    // SAFETY: a plain syscall on integers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

struct Monitor {
    spec: Arc<ChildSpec>,
    pid: Arc<AtomicU32>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    commands: mpsc::Receiver<Cmd>,
}

/// What to do after a wait between spawns.
enum Next {
    Respawn,
    Exit,
}

impl Monitor {
    fn name(&self) -> &'static str {
        self.spec.component.name()
    }

    async fn run(mut self, first: oneshot::Sender<Result<(), BackendError>>) {
        let mut first = Some(first);
        let mut attempt = 0u32;
        let mut reported_missing = false;
        loop {
            let extra = self.optional_args().await;
            let child = match spawn(&self.spec, &extra) {
                Ok(child) => child,
                Err(e) => {
                    self.metrics.process_up.set(&[self.name()], 0.0);
                    let is_missing = matches!(e, BackendError::NotFound { .. });
                    if !(is_missing && reported_missing) {
                        tracing::error!(component = self.name(), "{e}; will retry");
                    }
                    reported_missing |= is_missing;
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(e));
                    }
                    let delay = self.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    match self.wait_or_command(delay).await {
                        Next::Respawn => continue,
                        Next::Exit => return,
                    }
                }
            };
            reported_missing = false;
            let pid = child.id().unwrap_or(0);
            self.pid.store(pid, Ordering::SeqCst);
            self.metrics.process_up.set(&[self.name()], 1.0);
            tracing::info!(component = self.name(), pid, "started");
            if let Some(tx) = first.take() {
                let _ = tx.send(Ok(()));
            }
            let started = Instant::now();
            let mut child = child;
            tokio::select! {
                status = child.wait() => {
                    self.pid.store(0, Ordering::SeqCst);
                    self.metrics.process_up.set(&[self.name()], 0.0);
                    if started.elapsed() > self.backoff.max {
                        attempt = 0;
                    }
                    let delay = self.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    self.metrics.task_restarts.inc(&[self.name()]);
                    tracing::error!(
                        component = self.name(),
                        status = %status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                        delay_ms = delay.as_millis() as u64,
                        "exited; restarting"
                    );
                    match self.wait_or_command(delay).await {
                        Next::Respawn => continue,
                        Next::Exit => return,
                    }
                }
                cmd = self.commands.recv() => {
                    match cmd {
                        Some(Cmd::Restart { ack }) => {
                            terminate(&mut child, pid, Duration::from_secs(10)).await;
                            self.pid.store(0, Ordering::SeqCst);
                            attempt = 0;
                            let _ = ack.send(());
                        }
                        Some(Cmd::Stop { timeout, ack }) => {
                            terminate(&mut child, pid, timeout).await;
                            self.stopped();
                            let _ = ack.send(());
                            return;
                        }
                        None => {
                            terminate(&mut child, pid, Duration::from_secs(5)).await;
                            self.stopped();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The Redis copy's `--config`, when the spec has one and Redis answers now.
    async fn optional_args(&self) -> Vec<OsString> {
        let Some(redis) = &self.spec.redis else {
            return Vec::new();
        };
        redis.start_args().await.unwrap_or_else(|why| {
            tracing::warn!(component = self.name(), "{why}");
            Vec::new()
        })
    }

    fn stopped(&self) {
        self.pid.store(0, Ordering::SeqCst);
        self.metrics.process_up.set(&[self.name()], 0.0);
        tracing::info!(component = self.name(), "stopped");
    }

    async fn wait_or_command(&mut self, delay: Duration) -> Next {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Next::Respawn,
            cmd = self.commands.recv() => match cmd {
                Some(Cmd::Restart { ack }) => {
                    let _ = ack.send(());
                    Next::Respawn
                }
                Some(Cmd::Stop { ack, .. }) => {
                    self.stopped();
                    let _ = ack.send(());
                    Next::Exit
                }
                None => Next::Exit,
            },
        }
    }
}

fn spawn(spec: &ChildSpec, extra: &[OsString]) -> Result<Child, BackendError> {
    let name = spec.component.name();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .args(extra)
        .stdin(Stdio::null())
        // systemd's notify socket is the agent's, not the children's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        // Own process group: a ^C on the agent's terminal must not reach the children before
        // the agent has stopped them in order.
        .process_group(0)
        .kill_on_drop(true)
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    for (var, path) in &spec.env_files {
        let text = std::fs::read_to_string(path).map_err(|source| BackendError::EnvFile {
            component: name,
            var: var.clone(),
            path: path.clone(),
            source,
        })?;
        cmd.env(var, text.lines().next().unwrap_or(""));
    }
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // If the agent dies without stopping its children (SIGKILL, OOM), they get SIGTERM
            // instead of running on unsupervised.
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BackendError::NotFound {
                component: name,
                program: spec.program.to_string_lossy().into_owned(),
                path: std::env::var("PATH").unwrap_or_default(),
            }
        } else {
            BackendError::Spawn {
                component: name,
                program: spec.program.to_string_lossy().into_owned(),
                source,
            }
        }
    })
}

/// SIGTERM, wait up to `timeout` (Vector drains in that time), then SIGKILL.
async fn terminate(child: &mut Child, pid: u32, timeout: Duration) {
    if pid != 0 {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        tracing::warn!(pid, "did not exit after SIGTERM; killing");
        let _ = child.kill().await;
    }
}
