//! `ids2-agent run`: the daemon. Composes the runtime — metrics endpoint, pipeline backend,
//! supervised tasks (EVE reader, notifications, blocking, anomaly detection, resource
//! controller, connectivity, config watcher, reload worker, watchdog) — and shuts it down in
//! order on SIGTERM/SIGINT.
//!
//! Start-up: bind the metrics endpoint, apply the config once (render → `suricata -T` → swap →
//! git), start Suricata and Vector on the result, start the tasks, then tell systemd READY.
//! If that first apply fails the agent runs the last good generation (and says so in
//! `ids2_last_apply_success`); with no generation at all it cannot start.
//!
//! [`run_with`] is the seam: tests pass their own [`Backend`], [`Limiter`] and [`Reloader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Mutex};

use crate::apply::{Applier, Validator};
use crate::block::{BlockConfig, BlockError, BlockHandle, BlockStats, Blocker, NoReputation};
use crate::config::{self, ConfigError, Settings};
use crate::connectivity::{self, Checkers, Connectivity, ConnectivityError};
use crate::eve::{EveReader, LineSink, Reopen, Rotation};
use crate::fleet::SuricataSocket;
use crate::intel::{self, Intel, IntelConfig, IntelError, IntelHandle, IntelStats};
use crate::listen::{Limits, ListenStats};
use crate::metrics::{self, Metrics, ServeError};
use crate::notify::{Alert, Notifier, NotifyConfig, NotifyError, NotifyHandle, NotifyStats};
use crate::pipeline::{
    Archive, ArchiveError, Backend, BoxFuture, Component, ProcessBackend, SystemdBackend,
};
use crate::render::{Profile, RenderOptions};
use crate::resources::{
    Controller, ControllerParams, Limiter, ProcessKind, SysinfoSource, Throttle, ThrottleActions,
};
use crate::supervisor::{
    self, ApplyOutcome, Backoff, ConfigWatcher, Pickup, ReloadError, Reloader, Supervisor,
    TaskFactory,
};
use crate::suricata::SuricataError;
use crate::systemd::{Systemd, SystemdError};

/// At shutdown, how long the evidence copies still waiting may take once Suricata has stopped
/// (its ring files closed, so every copy is whole); part of the unit's 15 s stop timeout.
const EVIDENCE_DRAIN_BUDGET: Duration = Duration::from_secs(2);

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
    /// The first apply failed and there is no earlier generation to run instead.
    #[error(
        "the first apply failed and no generation is active yet, so there is nothing to run; \
         fix the cause below (`ids2-agent apply --config FILE` reproduces it)"
    )]
    FirstApply(#[source] ReloadError),
    /// `$IDS2_SURICATA` names no binary.
    #[error(transparent)]
    Suricata(#[from] SuricataError),
    /// systemd could not be reached for the systemd backend.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Metrics(#[from] ServeError),
    /// The connectivity checkers could not be built.
    #[error(transparent)]
    Connectivity(#[from] ConnectivityError),
    /// Notifications are configured but cannot be set up (e.g. a secret file is unreadable).
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// Blocking is enabled but its settings cannot be used.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Threat intelligence is configured but cannot be set up (key file, table).
    #[error(transparent)]
    Intel(#[from] IntelError),
    /// The local ECS archive (the embedded default sink) cannot be opened.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// sysinfo could not read the host.
    #[error("cannot sample resources: {0}")]
    Resources(#[from] sysinfo::Error),
    /// The async runtime or signal handlers could not be set up.
    #[error("runtime setup failed")]
    Runtime(#[source] std::io::Error),
}

/// Loads the config and runs the daemon until SIGTERM/SIGINT. `suricata_etc` is Suricata's
/// config directory the rendered `suricata.yaml` refers to.
pub fn run(
    config_path: &Path,
    backend: BackendKind,
    suricata_etc: PathBuf,
) -> Result<(), RunError> {
    let settings = config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
        let validator = Validator::detect()?;
        if validator == Validator::Skip {
            tracing::warn!(
                "suricata is not installed (set {} or add it to PATH): rendered configs are \
                 applied without the `suricata -T` check",
                crate::suricata::BINARY_ENV
            );
        }
        let reloader = Arc::new(Applier {
            out_dir: PathBuf::from(&settings.config.paths.rendered_dir),
            render: RenderOptions {
                suricata_etc,
                ..RenderOptions::default()
            },
            validator,
        });
        let process = backend == BackendKind::Process;
        let (sinks, eve_checkpoint) = if Archive::wanted(
            &settings,
            process,
            crate::files::find_program(&crate::vector::program().to_string_lossy()).is_some(),
        ) {
            let archive = &settings.config.shipping.archive;
            tracing::info!(path = %archive.path, types = ?archive.event_types, "ECS archive on");
            (
                vec![Archive::open(&settings)?.into_sink(&metrics)],
                Some(Archive::checkpoint_path(&settings)),
            )
        } else {
            (Vec::new(), None)
        };
        let parts = match backend {
            BackendKind::Process => {
                let process = Arc::new(ProcessBackend::for_settings(&settings, metrics.clone()));
                Parts {
                    backend: process.clone(),
                    limiter: process,
                    reloader,
                    metrics,
                    tasks: Vec::new(),
                    sinks,
                    eve_checkpoint,
                }
            }
            BackendKind::Systemd => {
                let plan = SystemdBackend::plan_for(&settings)?;
                let units = Arc::new(SystemdBackend::new(Systemd::connect().await?, plan).await);
                let period = Duration::from_secs(settings.config.resources.sample_secs.into());
                let watcher = units.clone();
                let watch: TaskFactory = Box::new(move |shutdown| {
                    Box::pin(watcher.clone().watch_pids(period, shutdown))
                });
                Parts {
                    backend: units.clone(),
                    limiter: units,
                    reloader,
                    metrics,
                    tasks: vec![("unit-pids", watch)],
                    sinks,
                    eve_checkpoint,
                }
            }
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
    /// Further supervised tasks the backend needs (e.g. the systemd backend's PID watcher).
    pub tasks: Vec<(&'static str, TaskFactory)>,
    /// Further receivers of every EVE line the reader reads (the local ECS archive).
    pub sinks: Vec<LineSink>,
    /// Where the EVE reader keeps its position, so those receivers miss nothing written while
    /// the agent was down (Vector keeps its own checkpoints).
    pub eve_checkpoint: Option<PathBuf>,
}

enum ReloadRequest {
    /// Re-read the config file.
    Config,
    /// Re-render with another EVE profile (from the resource controller).
    Profile(Profile),
}

/// Runs the daemon with the given parts until SIGTERM/SIGINT, then shuts down in order
/// within 12 s: stop intake (tasks), stop Suricata, let the EVE reader read what it wrote
/// last, copy the evidence still waiting, let Vector drain and stop it, stop serving metrics.
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
        tasks,
        sinks,
        eve_checkpoint,
    } = parts;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;

    // One set of refusal counters for both HTTP listeners, so the family is rendered once.
    let listen_stats = Arc::<ListenStats>::default();
    let stats = listen_stats.clone();
    metrics.add_renderer(Box::new(move |out| stats.render(out)));
    let limits = Limits {
        stats: listen_stats.clone(),
        ..Limits::new(settings.metrics_allow_from.clone())
    };
    let server = metrics::serve(settings.metrics_listen, limits, metrics.clone()).await?;
    tracing::info!(addr = %server.local_addr(), "metrics endpoint up");
    let checkers = Checkers::for_settings(&settings)?;
    let mut responders = Responders::from_settings(&settings, &metrics)?;
    if let Some(block) = &mut responders.block {
        block.feed_limits.stats = listen_stats;
    }

    let settings = Arc::new(settings);
    let first = match apply_logged(&reloader, &settings, Profile::Full, &metrics).await {
        Ok(outcome) => Some(outcome),
        Err(e) => match reloader.active_generation() {
            Some(generation) => {
                tracing::error!(
                    generation,
                    "starting on the last good generation; fix the config and it is applied \
                     when the file changes or on SIGHUP"
                );
                None
            }
            None => {
                server.shutdown(Duration::from_millis(500)).await;
                return Err(RunError::FirstApply(e));
            }
        },
    };
    // A pipeline that already runs (the agent restarted under systemd) picks up what the first
    // apply changed once the agent is up; one started now reads the new files anyway.
    let running_before: Vec<Component> = Component::START_ORDER
        .into_iter()
        .filter(|c| backend.pid(*c).is_some())
        .collect();
    for c in Component::START_ORDER {
        if let Err(e) = backend.start(c).await {
            // Never fatal: the backend keeps retrying, the metrics show the component down.
            tracing::error!("{e}");
        }
    }

    let mut sup = Supervisor::new(metrics.clone(), Backoff::default());
    // The EVE reader has its own supervisor, stopped after Suricata: it reads what Suricata
    // writes while stopping, so the sinks (the archive) miss nothing.
    let mut eve_sup = Supervisor::new(metrics.clone(), Backoff::default());
    for (name, factory) in tasks {
        sup.spawn(name, factory);
    }
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(8);
    let consumers = spawn_tasks(
        &mut sup,
        &config_path,
        &settings,
        &metrics,
        &backend,
        &limiter,
        &reloader,
        checkers,
        responders,
        reload_tx.clone(),
        reload_rx,
    )?;
    let sink = crate::eve::fan_out(sinks.into_iter().chain(consumers.sinks));
    // The behavioural detector sees every line first-hand and hands its alerts to the same
    // sinks (archive, notifications, blocking); Vector reads them from behaviour.json.
    let sink = Some(crate::behaviour::daemon::sink(
        &settings.config.logs.path,
        sink,
        &metrics,
    ));
    let (logs, m) = (settings.config.logs.path.clone(), metrics.clone());
    let rotate_bytes = u64::from(settings.config.logs.eve_rotate_mb) << 20;
    let socket = SuricataSocket::new(
        &settings.config.suricata.socket_path,
        Duration::from_secs(10),
    );
    let reopen: Reopen = Arc::new(move || {
        socket
            .command("reopen-log-files", None)
            .map(drop)
            .map_err(|e| error_chain(&e))
    });
    eve_sup.spawn(
        "eve",
        Box::new(move |shutdown| {
            let mut reader = EveReader::new(&logs);
            reader.sink = sink.clone();
            reader.checkpoint = eve_checkpoint.clone();
            reader.rotation = Some(Rotation {
                max_bytes: rotate_bytes,
                reopen: reopen.clone(),
            });
            Box::pin(reader.run(m.clone(), shutdown))
        }),
    );

    supervisor::notify_ready();
    tracing::info!(sensor = %settings.config.sensor.id, "ids2-agent running");
    if let Some(ApplyOutcome::Changed {
        generation,
        suricata,
        vector,
    }) = first
    {
        for (c, pickup) in [(Component::Suricata, suricata), (Component::Vector, vector)] {
            if running_before.contains(&c) {
                pick_up(backend.as_ref(), c, pickup, generation).await;
            }
        }
    }
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
    // The 12 s budget (1.5 + 3.5 + 1 + 2 + 3 + 0.5 at worst) favours Suricata: our tasks stop at
    // once, but Suricata flushes its flows and EVE records on exit, which on a loaded host can
    // outlast 2 s, and SIGKILL would lose those records and its exit totals.
    sup.shutdown(Duration::from_millis(1500)).await;
    let mut eve_sup = Some(eve_sup);
    for (c, grace) in Component::STOP_ORDER
        .into_iter()
        .zip([Duration::from_millis(3500), Duration::from_secs(3)])
    {
        if let Err(e) = backend.stop(c, grace).await {
            tracing::error!("{e}");
        }
        if c == Component::Suricata {
            if let Some(eve) = eve_sup.take() {
                eve.shutdown(Duration::from_secs(1)).await;
            }
            if let Some(evidence) = consumers.evidence.clone() {
                let stopped = backend.pid(Component::Suricata).is_none();
                let drained = tokio::task::spawn_blocking(move || {
                    evidence.drain(EVIDENCE_DRAIN_BUDGET, stopped)
                })
                .await;
                match drained {
                    Ok(d) if d.left > 0 => tracing::warn!(
                        kept = d.kept,
                        left = d.left,
                        "evidence: alerted flows left uncopied at shutdown"
                    ),
                    Ok(d) => tracing::info!(kept = d.kept, "evidence: pending flows copied"),
                    Err(e) => tracing::error!("evidence: {e}"),
                }
            }
        }
    }
    server.shutdown(Duration::from_millis(500)).await;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// Notifications and blocking: their settings, counters, and the handles the EVE reader offers
/// alerts to (replaced when a task restarts with a fresh queue).
struct Responders {
    notify: Option<NotifyConfig>,
    block: Option<BlockConfig>,
    /// AbuseIPDB checks, with the cache they fill (also the blocker's reputation source).
    intel: Option<(IntelConfig, Arc<intel::Cache>)>,
    intel_stats: Arc<IntelStats>,
    notify_stats: Arc<NotifyStats>,
    block_stats: Arc<BlockStats>,
    handles: Arc<Handles>,
}

#[derive(Default)]
struct Handles {
    notify: std::sync::Mutex<Option<NotifyHandle>>,
    block: std::sync::Mutex<Option<BlockHandle>>,
    intel: std::sync::Mutex<Option<IntelHandle>>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handles {
    /// Hands an alert line to whichever responders run; never waits (their queues are bounded
    /// and count what does not fit). Lines that are not alerts cost a substring search.
    fn offer(&self, line: &[u8]) {
        let Some(alert) = Alert::from_line(line) else {
            return;
        };
        if let Some(h) = locked(&self.notify).as_ref() {
            h.offer_alert(alert.clone());
        }
        if let Some(h) = locked(&self.intel).as_ref() {
            h.offer_alert(&alert);
        }
        if let Some(h) = locked(&self.block).as_ref() {
            h.offer_alert(alert);
        }
    }
}

impl Responders {
    /// Resolves both sections (reading secret files) and adds their counters to `/metrics`;
    /// the families are served even when a responder is off, as zeros.
    fn from_settings(settings: &Settings, metrics: &Metrics) -> Result<Self, RunError> {
        let notify = Some(NotifyConfig::from_settings(settings)?).filter(NotifyConfig::is_enabled);
        let block = BlockConfig::from_settings(settings)?;
        let (notify_stats, block_stats) =
            (Arc::<NotifyStats>::default(), Arc::<BlockStats>::default());
        let stats = notify_stats.clone();
        metrics.add_renderer(Box::new(move |out| stats.render(out)));
        let stats = block_stats.clone();
        metrics.add_renderer(Box::new(move |out| stats.render(out)));
        let intel = IntelConfig::from_settings(settings)?;
        if let Some(config) = &intel {
            // Vector refuses to start on a missing file table; it starts empty.
            intel::ensure_table(&config.table_path)?;
        }
        let intel = intel.map(|c| {
            let cache = Arc::new(intel::Cache::new(c.cache_ttl));
            (c, cache)
        });
        let intel_stats = Arc::<IntelStats>::default();
        let stats = intel_stats.clone();
        metrics.add_renderer(Box::new(move |out| stats.render(out)));
        Ok(Self {
            notify,
            block,
            intel,
            intel_stats,
            notify_stats,
            block_stats,
            handles: Arc::default(),
        })
    }

    /// The EVE reader's sink for the responders that run, if any.
    fn sink(&self) -> Option<LineSink> {
        if self.notify.is_none() && self.block.is_none() && self.intel.is_none() {
            return None;
        }
        let handles = self.handles.clone();
        Some(Arc::new(move |line: &[u8]| handles.offer(line)))
    }

    fn spawn(self, sup: &mut Supervisor, backend: &Arc<dyn Backend>) {
        let reputation: Arc<dyn crate::block::Reputation> = match &self.intel {
            Some((_, cache)) => cache.clone(),
            None => Arc::new(NoReputation),
        };
        if let Some((config, cache)) = self.intel {
            let (stats, handles) = (self.intel_stats, self.handles.clone());
            let backend = backend.clone();
            // Vector re-reads its file tables when it reloads.
            let reload: intel::ReloadVector = Arc::new(move || {
                let backend = backend.clone();
                Box::pin(async move {
                    backend
                        .reload(Component::Vector)
                        .await
                        .map_err(|e| e.to_string())
                })
            });
            sup.spawn(
                "intel",
                Box::new(move |mut shutdown| {
                    let (handle, checker) =
                        Intel::new(config.clone(), cache.clone(), stats.clone(), reload.clone());
                    *locked(&handles.intel) = Some(handle);
                    Box::pin(async move {
                        checker.run(async move { shutdown.requested().await }).await;
                        Ok(())
                    })
                }),
            );
        }
        if let Some(config) = self.notify {
            let (stats, handles) = (self.notify_stats, self.handles.clone());
            sup.spawn(
                "notify",
                Box::new(move |mut shutdown| {
                    let (config, stats, handles) = (config.clone(), stats.clone(), handles.clone());
                    Box::pin(async move {
                        let (handle, notifier) = Notifier::new(config, stats)?;
                        *locked(&handles.notify) = Some(handle);
                        notifier
                            .run(async move { shutdown.requested().await })
                            .await;
                        Ok(())
                    })
                }),
            );
        }
        if let Some(config) = self.block {
            let (stats, handles) = (self.block_stats, self.handles);
            sup.spawn(
                "block",
                Box::new(move |mut shutdown| {
                    let (config, stats, handles) = (config.clone(), stats.clone(), handles.clone());
                    let reputation = reputation.clone();
                    Box::pin(async move {
                        let (handle, mut blocker) = Blocker::new(config, reputation, stats);
                        let addr = blocker.bind_feed().await?;
                        tracing::info!(%addr, "block feed up");
                        *locked(&handles.block) = Some(handle);
                        blocker
                            .run(async move { shutdown.requested().await })
                            .await?;
                        Ok(())
                    })
                }),
            );
        }
    }
}

/// The EVE line consumers among the daemon's tasks (responders, anomaly detection, evidence)
/// for the reader, and the evidence service, whose last copies follow Suricata's stop.
struct Consumers {
    sinks: Vec<LineSink>,
    evidence: Option<Arc<crate::evidence::EvidenceService>>,
}

/// Spawns the daemon's tasks; returns their EVE line consumers.
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
    responders: Responders,
    reload_tx: mpsc::Sender<ReloadRequest>,
    reload_rx: mpsc::Receiver<ReloadRequest>,
) -> Result<Consumers, RunError> {
    let anomaly = crate::anomaly::daemon::AnomalyService::from_settings(settings, metrics);
    let evidence = crate::evidence::EvidenceService::from_settings(settings, metrics);
    let consumers: Vec<LineSink> = responders
        .sink()
        .into_iter()
        .chain(anomaly.as_ref().map(|a| a.sink()))
        .chain(evidence.as_ref().map(|e| e.sink()))
        .collect();
    responders.spawn(sup, backend);
    if let Some(a) = &anomaly {
        a.spawn(sup);
    }
    if let Some(e) = &evidence {
        e.spawn(sup);
    }

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

    // Cheap while shipping.redis is unset: a file test every period.
    let redis_copy = Arc::new(crate::vector::RedisCopyWatch::new(
        crate::vector::RedisCopy::new(Path::new(&settings.config.paths.rendered_dir)),
        settings.config.shipping.vector_metrics_listen.clone(),
        backend.clone(),
        metrics.clone(),
    ));
    sup.spawn(
        "redis-copy",
        Box::new(move |shutdown| {
            let watch = redis_copy.clone();
            Box::pin(async move { watch.run(shutdown).await })
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
        profile: Profile::Full,
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

    // Heartbeats, and the daily rule update when fleet.rules.scheduled is on.
    crate::fleet::spawn(sup, settings, metrics, std::time::Instant::now());

    if let Some(interval) = supervisor::watchdog_interval() {
        sup.spawn(
            "watchdog",
            Box::new(move |shutdown| Box::pin(supervisor::Watchdog { interval }.run(shutdown))),
        );
    }
    Ok(Consumers {
        sinks: consumers,
        evidence,
    })
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

    fn set_profile(&self, profile: Profile) -> BoxFuture<'_, Result<(), String>> {
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
    profile: Profile,
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
            // A config that fails to apply is not kept: the next profile change re-renders the
            // last good one. The profile is what the controller wants, applied or not.
            let settings = match req {
                ReloadRequest::Config => match config::load(&self.config_path) {
                    Ok(new) => Arc::new(new),
                    Err(e) => {
                        // The running pipeline stays as it was.
                        self.metrics.record_apply(false, unix_now());
                        tracing::error!("config rejected, nothing changed: {e}");
                        continue;
                    }
                },
                ReloadRequest::Profile(p) => {
                    self.profile = p;
                    self.settings.clone()
                }
            };
            let Ok(outcome) =
                apply_logged(&self.reloader, &settings, self.profile, &self.metrics).await
            else {
                continue;
            };
            warn_agent_restart_needed(&self.settings, &settings);
            self.settings = settings;
            if let ApplyOutcome::Changed {
                generation,
                suricata,
                vector,
            } = outcome
            {
                pick_up(
                    self.backend.as_ref(),
                    Component::Suricata,
                    suricata,
                    generation,
                )
                .await;
                pick_up(self.backend.as_ref(), Component::Vector, vector, generation).await;
            }
        }
    }
}

/// Makes `c` pick up generation `generation` as the apply said.
async fn pick_up(backend: &dyn Backend, c: Component, pickup: Pickup, generation: u64) {
    let result = match pickup {
        Pickup::Nothing => return,
        Pickup::Reload => backend.reload(c).await,
        Pickup::Restart => backend.restart(c).await,
    };
    match result {
        Ok(()) => tracing::info!(component = c.name(), generation, ?pickup, "picked up"),
        Err(e) => tracing::error!("{e}"),
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
        || o.notifications != n.notifications
        || o.blocking != n.blocking
        || o.anomaly != n.anomaly
        || o.paths != n.paths
        || o.capture.interface != n.capture.interface
    {
        tracing::warn!(
            "metrics, logs, resources, connectivity, opensearch, notifications, blocking, \
             anomaly, paths or capture.interface changed: the agent's own tasks and the process \
             backend's command lines use the new values after the agent restarts"
        );
    }
}

/// Applies on a blocking thread and records the result in the metrics and the log.
async fn apply_logged(
    reloader: &Arc<dyn Reloader>,
    settings: &Arc<Settings>,
    profile: Profile,
    metrics: &Metrics,
) -> Result<ApplyOutcome, ReloadError> {
    let (r, s) = (reloader.clone(), settings.clone());
    let result = match tokio::task::spawn_blocking(move || r.apply(&s, profile)).await {
        Ok(r) => r,
        Err(e) => Err(ReloadError::Apply(
            format!("the apply thread panicked: {e}").into(),
        )),
    };
    metrics.record_apply(result.is_ok(), unix_now());
    match &result {
        Ok(outcome) => tracing::info!(?outcome, %profile, "applied"),
        Err(e) => tracing::error!("{}; the previous generation stays active", error_chain(e)),
    }
    result
}

/// An error and its causes on one line, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::recorder::Recorder;
    use crate::resources::{LimitError, Sample};

    impl Limiter for Recorder {
        fn limit(&self) -> BoxFuture<'_, Result<(), LimitError>> {
            self.push("limit".into());
            Box::pin(async { Ok(()) })
        }
        fn release(&self) -> BoxFuture<'_, Result<(), LimitError>> {
            self.push("release".into());
            Box::pin(async { Ok(()) })
        }
    }

    /// The names under `eve-log.types` in a rendered suricata.yaml.
    fn eve_types_in(yaml: &str) -> Vec<String> {
        yaml.lines()
            .skip_while(|l| l.trim() != "types:")
            .skip(1)
            .take_while(|l| l.starts_with("        "))
            .filter_map(|l| l.strip_prefix("        - "))
            .map(|t| t.trim_end_matches(':').to_string())
            .collect()
    }

    fn hot() -> Sample {
        Sample {
            host_cpu: 0.95,
            host_memory: 0.2,
            processes: Vec::new(),
        }
    }

    /// Level 2 of the real controller, through the daemon's own throttle actions and reload
    /// worker, re-renders with the reduced profile into a new generation (real render, real
    /// `suricata -T` when installed, real git history) and restarts Suricata for it.
    #[tokio::test]
    async fn throttle_level_2_renders_a_generation_without_the_costly_eve_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            format!(
                "sensor: {{id: lab-1}}\n\
                 opensearch: {{domain: ids2, region: eu-west-1, endpoint: 'https://h.example'}}\n\
                 suricata: {{eve_types: [alert, anomaly, flow, netflow, dns, tls, fileinfo, stats]}}\n\
                 history: {{repo: '{}'}}\n",
                dir.path().join("history.git").display()
            ),
        )
        .unwrap();
        let settings = Arc::new(config::load(&path).unwrap());
        let validator = Validator::detect().unwrap();
        if validator == Validator::Skip {
            eprintln!(
                "note: suricata is not installed; generations are applied without `suricata -T`"
            );
        }
        let out = dir.path().join("rendered");
        let reloader: Arc<dyn Reloader> = Arc::new(Applier {
            out_dir: out.clone(),
            render: RenderOptions::default(),
            validator,
        });
        let metrics = Arc::new(Metrics::new("test"));
        let first = apply_logged(&reloader, &settings, Profile::Full, &metrics)
            .await
            .unwrap();
        assert!(
            matches!(first, ApplyOutcome::Changed { generation: 1, .. }),
            "{first:?}"
        );
        let full = std::fs::read_to_string(out.join("generations/1/suricata.yaml")).unwrap();
        // Suricata calls the fileinfo output `files`.
        for t in ["flow", "netflow", "files", "dns", "alert"] {
            assert!(
                eve_types_in(&full).contains(&t.to_string()),
                "{t} in {full}"
            );
        }

        let pipeline = Arc::new(Recorder::default());
        let (tx, rx) = mpsc::channel(8);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut worker = ReloadWorker {
            config_path: path.clone(),
            settings: settings.clone(),
            profile: Profile::Full,
            reloader: reloader.clone(),
            backend: pipeline.clone(),
            metrics: metrics.clone(),
            requests: rx,
        };
        let worker =
            tokio::spawn(async move { worker.run(supervisor::Shutdown::new(stop_rx)).await });
        let mut throttle = Throttle {
            source: SysinfoSource::new(Arc::new(Vec::new)).unwrap(),
            controller: Controller::new(ControllerParams::from_settings(&settings)),
            actions: Arc::new(AgentThrottle {
                limiter: pipeline.clone(),
                reload: tx,
            }),
            metrics: metrics.clone(),
            period: Duration::from_secs(1),
        };
        let mut levels = Vec::new();
        for _ in 0..4 {
            throttle.step(&hot()).await;
            levels.push(throttle.controller.level().0);
        }
        assert_eq!(levels, [0, 1, 1, 2]);

        let reduced_yaml = out.join("generations/2/suricata.yaml");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !pipeline.calls().contains(&"restart suricata".to_string()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no restart for the reduced generation: {:?}",
                pipeline.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reduced = eve_types_in(&std::fs::read_to_string(&reduced_yaml).unwrap());
        assert_eq!(reduced, ["alert", "anomaly", "dns", "tls", "stats"]);
        assert_eq!(
            std::fs::read_link(out.join(crate::apply::CURRENT)).unwrap(),
            Path::new("generations/2")
        );
        // Level 1 limited the pipeline; Vector's config does not depend on the EVE types.
        assert_eq!(pipeline.calls(), ["limit", "restart suricata"]);
        assert_eq!(metrics.last_apply_success.get(&[]), Some(1.0));

        stop.send(true).unwrap();
        worker.await.unwrap().unwrap();
    }
}
