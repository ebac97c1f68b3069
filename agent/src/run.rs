//! `ids2-agent run`: the daemon. Composes the runtime — metrics endpoint, pipeline backend,
//! supervised tasks (EVE reader, resource controller, connectivity, config watcher, reload
//! worker, watchdog) — and shuts it down in order on SIGTERM/SIGINT.
//!
//! [`run_with`] is the seam for the wiring the lead adds: another [`Backend`]/[`Limiter`]
//! (systemd) and another [`Reloader`] (render → `suricata -T` → swap → git).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Mutex};

use crate::config::{self, ConfigError, Settings};
use crate::connectivity::{self, Checkers, Connectivity, ConnectivityError};
use crate::eve::EveReader;
use crate::metrics::{self, Metrics, ServeError};
use crate::pipeline::{Backend, BoxFuture, Component, ProcessBackend};
use crate::resources::{
    Controller, ControllerParams, Limiter, OutputProfile, ProcessKind, SysinfoSource, Throttle,
    ThrottleActions,
};
use crate::supervisor::{
    self, ApplyOutcome, Backoff, ConfigWatcher, Reloader, Supervisor, ValidateOnly,
};

/// Which pipeline backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Suricata and Vector as children of the agent.
    Process,
    /// Suricata and Vector as systemd units.
    Systemd,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "process" => Ok(Self::Process),
            "systemd" => Ok(Self::Systemd),
            other => Err(format!(
                "unknown backend {other:?}; expected process or systemd"
            )),
        }
    }
}

/// Why the daemon could not start (once running, failures are logged, counted and retried).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is unreadable or invalid.
    #[error("cannot start with this config")]
    Config(#[from] ConfigError),
    /// The requested backend is not part of this build.
    #[error("the systemd backend is not wired into this build; run with --backend process")]
    BackendUnavailable,
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Metrics(#[from] ServeError),
    /// The connectivity checkers could not be built.
    #[error(transparent)]
    Connectivity(#[from] ConnectivityError),
    /// sysinfo could not read the host.
    #[error("cannot sample resources: {0}")]
    Resources(#[from] sysinfo::Error),
    /// The async runtime or signal handlers could not be set up.
    #[error("runtime setup failed")]
    Runtime(#[source] std::io::Error),
}

/// Loads the config and runs the daemon until SIGTERM/SIGINT.
pub fn run(config_path: &Path, backend: BackendKind) -> Result<(), RunError> {
    let settings = config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
        let process = match backend {
            BackendKind::Process => {
                Arc::new(ProcessBackend::for_settings(&settings, metrics.clone()))
            }
            BackendKind::Systemd => return Err(RunError::BackendUnavailable),
        };
        let parts = Parts {
            backend: process.clone(),
            limiter: process,
            reloader: Arc::new(ValidateOnly),
            metrics,
        };
        run_with(config_path.to_path_buf(), settings, parts).await
    })
}

/// The pluggable parts of the daemon.
pub struct Parts {
    /// Runs Suricata and Vector.
    pub backend: Arc<dyn Backend>,
    /// Throttle level 1.
    pub limiter: Arc<dyn Limiter>,
    /// Renders and applies configs.
    pub reloader: Arc<dyn Reloader>,
    /// The registry the endpoint serves.
    pub metrics: Arc<Metrics>,
}

enum ReloadRequest {
    /// Re-read the config file.
    Config,
    /// Re-render with another EVE profile (from the resource controller).
    Profile(OutputProfile),
}

/// Runs the daemon with the given parts until SIGTERM/SIGINT, then shuts down in order
/// within 10 s: stop intake (tasks), stop Suricata, let Vector drain and stop it, stop
/// serving metrics.
pub async fn run_with(
    config_path: PathBuf,
    settings: Settings,
    parts: Parts,
) -> Result<(), RunError> {
    let Parts {
        backend,
        limiter,
        reloader,
        metrics,
    } = parts;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;

    let server = metrics::serve(settings.metrics_listen, metrics.clone()).await?;
    tracing::info!(addr = %server.local_addr(), "metrics endpoint up");
    let checkers = Checkers::for_settings(&settings)?;

    let settings = Arc::new(settings);
    apply_logged(&reloader, &settings, OutputProfile::Full, &metrics).await;
    for c in Component::START_ORDER {
        if let Err(e) = backend.start(c).await {
            // Never fatal: the backend keeps retrying, the metrics show the component down.
            tracing::error!("{e}");
        }
    }

    let mut sup = Supervisor::new(metrics.clone(), Backoff::default());
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(8);
    spawn_tasks(
        &mut sup,
        &config_path,
        &settings,
        &metrics,
        &backend,
        &limiter,
        &reloader,
        checkers,
        reload_tx.clone(),
        reload_rx,
    )?;

    supervisor::notify_ready();
    tracing::info!(sensor = %settings.config.sensor.id, "ids2-agent running");
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let _ = reload_tx.try_send(ReloadRequest::Config);
            }
        }
    }

    let started = tokio::time::Instant::now();
    supervisor::notify_stopping();
    tracing::info!("shutting down");
    sup.shutdown(Duration::from_secs(3)).await;
    for (c, grace) in Component::STOP_ORDER
        .into_iter()
        .zip([Duration::from_secs(2), Duration::from_secs(3)])
    {
        if let Err(e) = backend.stop(c, grace).await {
            tracing::error!("{e}");
        }
    }
    server.shutdown(Duration::from_millis(500)).await;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn spawn_tasks(
    sup: &mut Supervisor,
    config_path: &Path,
    settings: &Arc<Settings>,
    metrics: &Arc<Metrics>,
    backend: &Arc<dyn Backend>,
    limiter: &Arc<dyn Limiter>,
    reloader: &Arc<dyn Reloader>,
    checkers: Checkers,
    reload_tx: mpsc::Sender<ReloadRequest>,
    reload_rx: mpsc::Receiver<ReloadRequest>,
) -> Result<(), RunError> {
    let logs = settings.config.logs.path.clone();
    let m = metrics.clone();
    sup.spawn(
        "eve",
        Box::new(move |shutdown| Box::pin(EveReader::new(&logs).run(m.clone(), shutdown))),
    );

    let pids_backend = backend.clone();
    let pids: crate::resources::sample::PidSource = Arc::new(move || {
        let mut v = vec![(ProcessKind::Agent, std::process::id())];
        for (kind, c) in [
            (ProcessKind::Suricata, Component::Suricata),
            (ProcessKind::Vector, Component::Vector),
        ] {
            if let Some(pid) = pids_backend.pid(c) {
                v.push((kind, pid));
            }
        }
        v
    });
    // The controller's state lives outside the factory so a restarted task keeps its level.
    let throttle = Arc::new(Mutex::new(Throttle {
        source: SysinfoSource::new(pids)?,
        controller: Controller::new(ControllerParams::from_settings(settings)),
        actions: Arc::new(AgentThrottle {
            limiter: limiter.clone(),
            reload: reload_tx.clone(),
        }),
        metrics: metrics.clone(),
        period: Duration::from_secs(settings.config.resources.sample_secs.into()),
    }));
    sup.spawn(
        "resources",
        Box::new(move |shutdown| {
            let throttle = throttle.clone();
            Box::pin(async move { throttle.lock().await.run(shutdown).await })
        }),
    );

    let checks = Arc::new(Connectivity {
        targets: connectivity::targets(settings),
        checkers,
        metrics: metrics.clone(),
        interval: Duration::from_secs(settings.config.connectivity.interval_secs.into()),
        max_backoff: Duration::from_secs(300),
    });
    sup.spawn(
        "connectivity",
        Box::new(move |shutdown| {
            let checks = checks.clone();
            Box::pin(async move { checks.run(shutdown).await })
        }),
    );

    let (path, tx) = (config_path.to_path_buf(), reload_tx.clone());
    let (changed_tx, changed_rx) = mpsc::channel(1);
    sup.spawn(
        "config-watch",
        Box::new(move |shutdown| {
            Box::pin(
                ConfigWatcher {
                    path: path.clone(),
                    poll: Duration::from_secs(2),
                    changed: changed_tx.clone(),
                }
                .run(shutdown),
            )
        }),
    );
    let changed_rx = Arc::new(Mutex::new(changed_rx));
    sup.spawn(
        "config-forward",
        Box::new(move |mut shutdown| {
            let (rx, tx) = (changed_rx.clone(), tx.clone());
            Box::pin(async move {
                let mut rx = rx.lock().await;
                loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Some(()) => { let _ = tx.send(ReloadRequest::Config).await; }
                            None => return Ok(()),
                        },
                        _ = shutdown.requested() => return Ok(()),
                    }
                }
            })
        }),
    );

    let worker = Arc::new(Mutex::new(ReloadWorker {
        config_path: config_path.to_path_buf(),
        settings: settings.clone(),
        profile: OutputProfile::Full,
        reloader: reloader.clone(),
        backend: backend.clone(),
        metrics: metrics.clone(),
        requests: reload_rx,
    }));
    sup.spawn(
        "reload",
        Box::new(move |shutdown| {
            let worker = worker.clone();
            Box::pin(async move { worker.lock().await.run(shutdown).await })
        }),
    );

    if let Some(interval) = supervisor::watchdog_interval() {
        sup.spawn(
            "watchdog",
            Box::new(move |shutdown| Box::pin(supervisor::Watchdog { interval }.run(shutdown))),
        );
    }
    Ok(())
}

struct AgentThrottle {
    limiter: Arc<dyn Limiter>,
    reload: mpsc::Sender<ReloadRequest>,
}

impl ThrottleActions for AgentThrottle {
    fn set_limited(&self, on: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let r = if on {
                self.limiter.limit().await
            } else {
                self.limiter.release().await
            };
            r.map_err(|e| e.to_string())
        })
    }

    fn set_profile(&self, profile: OutputProfile) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.reload
                .send(ReloadRequest::Profile(profile))
                .await
                .map_err(|_| "the reload worker is gone".to_string())
        })
    }
}

struct ReloadWorker {
    config_path: PathBuf,
    settings: Arc<Settings>,
    profile: OutputProfile,
    reloader: Arc<dyn Reloader>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    requests: mpsc::Receiver<ReloadRequest>,
}

impl ReloadWorker {
    async fn run(
        &mut self,
        mut shutdown: supervisor::Shutdown,
    ) -> Result<(), supervisor::TaskError> {
        loop {
            let req = tokio::select! {
                r = self.requests.recv() => match r { Some(r) => r, None => return Ok(()) },
                _ = shutdown.requested() => return Ok(()),
            };
            match req {
                ReloadRequest::Config => match config::load(&self.config_path) {
                    Ok(new) => {
                        warn_agent_restart_needed(&self.settings, &new);
                        self.settings = Arc::new(new);
                    }
                    Err(e) => {
                        // The running pipeline stays as it was.
                        self.metrics.record_apply(false, unix_now());
                        tracing::error!("config rejected, nothing changed: {e}");
                        continue;
                    }
                },
                ReloadRequest::Profile(p) => self.profile = p,
            }
            let outcome =
                apply_logged(&self.reloader, &self.settings, self.profile, &self.metrics).await;
            if let Some(ApplyOutcome::Changed {
                suricata, vector, ..
            }) = outcome
            {
                if suricata {
                    if let Err(e) = self.backend.restart(Component::Suricata).await {
                        tracing::error!("{e}");
                    }
                }
                if vector {
                    if let Err(e) = self.backend.reload(Component::Vector).await {
                        tracing::error!("{e}");
                    }
                }
            }
        }
    }
}

/// Sections the agent itself reads at start; a reload re-renders the pipeline but these take
/// effect at the agent's next start.
fn warn_agent_restart_needed(old: &Settings, new: &Settings) {
    let (o, n) = (&old.config, &new.config);
    if o.metrics != n.metrics
        || o.logs != n.logs
        || o.resources != n.resources
        || o.connectivity != n.connectivity
        || o.opensearch != n.opensearch
    {
        tracing::warn!("metrics, logs, resources, connectivity or opensearch changed: the agent's own checks use the new values after it restarts");
    }
}

async fn apply_logged(
    reloader: &Arc<dyn Reloader>,
    settings: &Arc<Settings>,
    profile: OutputProfile,
    metrics: &Metrics,
) -> Option<ApplyOutcome> {
    let (r, s) = (reloader.clone(), settings.clone());
    let result = match tokio::task::spawn_blocking(move || r.apply(&s, profile)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("apply panicked: {e}");
            metrics.record_apply(false, unix_now());
            return None;
        }
    };
    match result {
        Ok(ApplyOutcome::NotApplied { reason }) => {
            tracing::info!("{reason}");
            Some(ApplyOutcome::NotApplied { reason })
        }
        Ok(outcome) => {
            metrics.record_apply(true, unix_now());
            tracing::info!(?outcome, ?profile, "applied");
            Some(outcome)
        }
        Err(e) => {
            metrics.record_apply(false, unix_now());
            tracing::error!("{e}; the previous generation stays active");
            None
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
