//! Resource control: sample host and per-process CPU and memory ([`sample`]), decide a throttle
//! level with hysteresis ([`controller`]), and act on it — level 1 limits the pipeline's
//! processes through a [`Limiter`], levels 2 and 3 re-render Suricata with a lighter
//! [`OutputProfile`] through the reload path.

pub mod controller;
pub mod sample;

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::pipeline::BoxFuture;

pub use controller::{Controller, ControllerParams, Level, Transition};
pub use sample::{ProcessKind, ProcessSample, Sample, SampleSource, SysinfoSource};

/// Which EVE outputs Suricata is rendered with; mirrors `render::Profile` (the `apply` wiring
/// maps one onto the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputProfile {
    /// Every configured EVE type.
    Full,
    /// Without the costly ones: flow, netflow, fileinfo.
    Reduced,
    /// Alerts, stats and anomalies only.
    AlertsOnly,
}

/// Why a limit could not be applied or released.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// setpriority failed for a thread.
    #[error("cannot change the nice value of thread {pid} (the agent needs CAP_SYS_NICE to lower it back)")]
    Nice {
        /// The thread id.
        pid: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The backend (e.g. systemd over D-Bus) refused the change.
    #[error("cannot change unit limits: {0}")]
    Backend(String),
}

/// Level 1: limit the pipeline's processes reversibly. The systemd backend lowers the units'
/// `CPUQuota`/`MemoryHigh` (runtime properties); the process backend raises nice values.
pub trait Limiter: Send + Sync {
    /// Applies the limit (idempotent).
    fn limit(&self) -> BoxFuture<'_, Result<(), LimitError>>;
    /// Puts everything back as it was before [`Limiter::limit`].
    fn release(&self) -> BoxFuture<'_, Result<(), LimitError>>;
}

/// Acts on a level change: the limiter for level ≥ 1, the profile for levels 2 and 3.
pub trait ThrottleActions: Send + Sync {
    /// Applies or releases the level-1 limit.
    fn set_limited(&self, on: bool) -> BoxFuture<'_, Result<(), String>>;
    /// Re-renders and reloads with `profile`.
    fn set_profile(&self, profile: OutputProfile) -> BoxFuture<'_, Result<(), String>>;
}

/// The controller loop: sample, decide, act, export. Runs as a supervised task.
pub struct Throttle<S: SampleSource> {
    /// Where samples come from.
    pub source: S,
    /// The decision logic and its state.
    pub controller: Controller,
    /// What a level change does.
    pub actions: Arc<dyn ThrottleActions>,
    /// Where the figures go.
    pub metrics: Arc<Metrics>,
    /// Time between samples.
    pub period: Duration,
}

impl<S: SampleSource> Throttle<S> {
    /// Samples every period until shutdown.
    pub async fn run(
        &mut self,
        mut shutdown: crate::supervisor::Shutdown,
    ) -> Result<(), crate::supervisor::TaskError> {
        let params = self.controller.params();
        self.metrics.cpu_ceiling.set(&[], params.cpu_ceiling);
        self.metrics.memory_ceiling.set(&[], params.memory_ceiling);
        loop {
            let sample = self.source.sample();
            self.step(&sample).await;
            if !shutdown.sleep(self.period).await {
                return Ok(());
            }
        }
    }

    /// One sample: export it, let the controller decide, act on a transition.
    pub async fn step(&mut self, sample: &Sample) -> Option<Transition> {
        export(&self.metrics, sample);
        let t = self.controller.observe(sample)?;
        tracing::warn!(
            from = t.from.0,
            to = t.to.0,
            cpu = sample.host_cpu,
            memory = sample.host_memory,
            "throttle level change"
        );
        self.metrics
            .throttle_transitions
            .inc(&[&t.from.0.to_string(), &t.to.0.to_string()]);
        self.metrics.throttle_level.set(&[], f64::from(t.to.0));
        let limited = t.to.0 >= 1;
        if limited != (t.from.0 >= 1) {
            if let Err(e) = self.actions.set_limited(limited).await {
                tracing::error!("throttle: {e}");
            }
        }
        let profile = t.to.profile();
        if profile != t.from.profile() {
            if let Err(e) = self.actions.set_profile(profile).await {
                tracing::error!("throttle: re-render with {profile:?} failed: {e}");
            }
        }
        Some(t)
    }
}

fn export(metrics: &Metrics, s: &Sample) {
    metrics.host_cpu.set(&[], s.host_cpu);
    metrics.host_memory.set(&[], s.host_memory);
    for kind in ProcessKind::ALL {
        let label = [kind.label()];
        match s.processes.iter().find(|p| p.kind == kind) {
            Some(p) => {
                metrics.process_cpu.set(&label, p.cpu);
                metrics.process_rss.set(&label, p.rss_bytes as f64);
            }
            None => {
                metrics.process_cpu.remove(&label);
                metrics.process_rss.remove(&label);
            }
        }
    }
}
