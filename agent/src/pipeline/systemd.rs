//! The `systemd` backend: Suricata and Vector as the units [`SURICATA_UNIT`] and
//! [`VECTOR_UNIT`] (the names `nixos/module.nix` gives them and lets the agent manage through
//! its polkit rule), driven over D-Bus with the `systemd` module; and the level-1 limiter as
//! runtime `CPUQuota`/`MemoryHigh` properties on those units.
//!
//! A start is queued and its job awaited in the background rather than in [`Backend::start`]:
//! the units are ordered `After=ids2-agent.service`, and the agent (`Type=notify`) finishes
//! starting only when it sends READY, which it does after starting the pipeline — waiting for
//! the start job there would wait for ourselves. Stop, restart and reload wait for their jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Backend, BackendError, BoxFuture, Component};
use crate::config::Settings;
use crate::resources::{LimitError, Limiter};
use crate::supervisor::{Shutdown, TaskError};
use crate::systemd::{Systemd, SystemdError};

/// Suricata's unit (nixpkgs' `services.suricata`).
pub const SURICATA_UNIT: &str = "suricata.service";
/// Vector's unit (written by `nixos/module.nix`).
pub const VECTOR_UNIT: &str = "vector.service";

/// The unit of a component.
pub fn unit(c: Component) -> &'static str {
    match c {
        Component::Suricata => SURICATA_UNIT,
        Component::Vector => VECTOR_UNIT,
    }
}

/// Share of the host's CPU and memory ceilings each unit may use at level 1, in percent.
/// Together 90 %: the agent and the OS keep the rest of the budget under the ceiling.
const SURICATA_SHARE: u64 = 60;
const VECTOR_SHARE: u64 = 30;

/// The level-1 limits of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitLimit {
    /// `CPUQuota` in percent of one core.
    pub cpu_quota_percent: u32,
    /// `MemoryHigh` in bytes; `None` (left as it is) when the host's memory is unknown.
    pub memory_high_bytes: Option<u64>,
}

/// The level-1 limits of both units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPlan {
    /// Suricata's.
    pub suricata: UnitLimit,
    /// Vector's.
    pub vector: UnitLimit,
}

impl LimitPlan {
    /// Splits the configured ceilings (`resources.cpu_max_percent` of all `cores`,
    /// `resources.ram_max_percent` of `total_memory_bytes`) 60 % to Suricata and 30 % to
    /// Vector, so the pipeline together stays under the ceiling the controller reacts to.
    pub fn for_host(settings: &Settings, cores: usize, total_memory_bytes: u64) -> Self {
        let r = &settings.config.resources;
        let cpu_budget = u64::from(r.cpu_max_percent) * cores.max(1) as u64;
        let memory_budget = total_memory_bytes / 100 * u64::from(r.ram_max_percent);
        let limit = |share: u64| UnitLimit {
            cpu_quota_percent: u32::try_from(cpu_budget * share / 100)
                .unwrap_or(u32::MAX)
                .max(1),
            memory_high_bytes: (memory_budget > 0).then(|| memory_budget / 100 * share),
        };
        Self {
            suricata: limit(SURICATA_SHARE),
            vector: limit(VECTOR_SHARE),
        }
    }

    fn of(&self, c: Component) -> UnitLimit {
        match c {
            Component::Suricata => self.suricata,
            Component::Vector => self.vector,
        }
    }
}

/// Suricata and Vector as systemd units.
pub struct SystemdBackend {
    systemd: Arc<Systemd>,
    plan: LimitPlan,
    /// Main PIDs, kept fresh by [`SystemdBackend::watch_pids`] and after every job, because
    /// [`Backend::pid`] is asked from the synchronous resource sampler.
    pids: Arc<Mutex<HashMap<Component, u32>>>,
}

fn other(c: Component, e: SystemdError) -> BackendError {
    BackendError::Other {
        component: c.name(),
        message: e.to_string(),
    }
}

impl SystemdBackend {
    /// A backend on `systemd` with the level-1 `plan`; reads the units' main PIDs once so a
    /// pipeline already running (the agent restarted) is known as such.
    pub async fn new(systemd: Systemd, plan: LimitPlan) -> Self {
        let backend = Self {
            systemd: Arc::new(systemd),
            plan,
            pids: Arc::new(Mutex::new(HashMap::new())),
        };
        for c in Component::START_ORDER {
            refresh_pid(&backend.systemd, &backend.pids, c).await;
        }
        backend
    }

    /// The plan for this host and `settings`.
    pub fn plan_for(settings: &Settings) -> Result<LimitPlan, sysinfo::Error> {
        let mut sys = sysinfo::System::new()?;
        sys.refresh_memory();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        Ok(LimitPlan::for_host(
            settings,
            sys.cpus().len(),
            sys.total_memory(),
        ))
    }

    /// Re-reads the main PIDs every `period` until shutdown (systemd restarts a unit that dies
    /// on its own, which changes the PID without a job of ours). Run as a supervised task.
    pub async fn watch_pids(
        self: Arc<Self>,
        period: Duration,
        mut shutdown: Shutdown,
    ) -> Result<(), TaskError> {
        loop {
            for c in Component::START_ORDER {
                refresh_pid(&self.systemd, &self.pids, c).await;
            }
            if !shutdown.sleep(period).await {
                return Ok(());
            }
        }
    }
}

async fn refresh_pid(systemd: &Systemd, pids: &Mutex<HashMap<Component, u32>>, c: Component) {
    let pid = match systemd.main_pid(unit(c)).await {
        Ok(pid) => pid,
        Err(e) => {
            tracing::debug!(unit = unit(c), error = %e, "cannot read the main PID");
            None
        }
    };
    let mut pids = pids.lock().unwrap_or_else(|e| e.into_inner());
    match pid {
        Some(pid) => pids.insert(c, pid),
        None => pids.remove(&c),
    };
}

impl Backend for SystemdBackend {
    fn start(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        let (systemd, pids) = (self.systemd.clone(), self.pids.clone());
        Box::pin(async move {
            tokio::spawn(async move {
                match systemd.start_unit(unit(c)).await {
                    Ok(result) => tracing::info!(unit = unit(c), ?result, "started"),
                    Err(e) => tracing::error!("{e}"),
                }
                refresh_pid(&systemd, &pids, c).await;
            });
            Ok(())
        })
    }

    fn stop(&self, c: Component, timeout: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            // systemd's TimeoutStopSec= ends a stuck stop; this bounds the agent's own wait so
            // its shutdown stays within its budget while systemd finishes the job.
            let result = tokio::time::timeout(timeout, self.systemd.stop_unit(unit(c))).await;
            refresh_pid(&self.systemd, &self.pids, c).await;
            match result {
                Ok(r) => r.map(drop).map_err(|e| other(c, e)),
                Err(_) => {
                    tracing::warn!(
                        unit = unit(c),
                        waited_ms = timeout.as_millis() as u64,
                        "still stopping; systemd finishes the job"
                    );
                    Ok(())
                }
            }
        })
    }

    fn restart(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let result = self.systemd.restart_unit(unit(c)).await;
            refresh_pid(&self.systemd, &self.pids, c).await;
            result.map(drop).map_err(|e| other(c, e))
        })
    }

    fn reload(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.systemd
                .reload_unit(unit(c))
                .await
                .map(drop)
                .map_err(|e| other(c, e))
        })
    }

    fn pid(&self, c: Component) -> Option<u32> {
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c)
            .copied()
    }
}

/// Level 1 for units: runtime `CPUQuota` and `MemoryHigh` (under /run, gone after a reboot)
/// from the [`LimitPlan`]; release sets both back to unlimited. `MemoryHigh` throttles and
/// reclaims, it never kills, so capture keeps running.
impl Limiter for SystemdBackend {
    fn limit(&self) -> BoxFuture<'_, Result<(), LimitError>> {
        Box::pin(async move {
            for c in Component::STOP_ORDER {
                let l = self.plan.of(c);
                self.systemd
                    .set_unit_properties(
                        unit(c),
                        Some(l.cpu_quota_percent),
                        l.memory_high_bytes,
                        true,
                    )
                    .await
                    .map_err(|e| LimitError::Backend(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn release(&self) -> BoxFuture<'_, Result<(), LimitError>> {
        Box::pin(async move {
            for c in Component::STOP_ORDER {
                self.systemd
                    .clear_resource_limits(unit(c), true)
                    .await
                    .map_err(|e| LimitError::Backend(e.to_string()))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_the_ceilings() {
        let s = crate::config::from_str(
            "sensor: {id: t}\nopensearch: {domain: ids2, region: eu-west-1}\n\
             resources: {cpu_max_percent: 70, ram_max_percent: 50}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let gib = 1u64 << 30;
        let plan = LimitPlan::for_host(&s, 4, 8 * gib);
        // 70 % of 4 cores = 280 % of one core; 50 % of 8 GiB = 4 GiB.
        assert_eq!(plan.suricata.cpu_quota_percent, 168);
        assert_eq!(plan.vector.cpu_quota_percent, 84);
        let budget = 8 * gib / 100 * 50;
        assert_eq!(plan.suricata.memory_high_bytes, Some(budget / 100 * 60));
        assert_eq!(plan.vector.memory_high_bytes, Some(budget / 100 * 30));
        // Never a zero quota or threshold (systemd would starve the unit).
        let unknown = LimitPlan::for_host(&s, 0, 0);
        assert_eq!(unknown.vector.cpu_quota_percent, 84 / 4);
        assert_eq!(unknown.vector.memory_high_bytes, None);
    }
}
