//! Resource samples: host CPU and memory and the pipeline processes' share of them.
//! [`SampleSource`] is the seam: the agent uses [`SysinfoSource`], tests inject samples.

use std::sync::Arc;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Which process a per-process figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessKind {
    /// Suricata.
    Suricata,
    /// Vector.
    Vector,
    /// ids2-agent itself.
    Agent,
}

impl ProcessKind {
    /// All kinds.
    pub const ALL: [ProcessKind; 3] = [
        ProcessKind::Suricata,
        ProcessKind::Vector,
        ProcessKind::Agent,
    ];

    /// The `process` label value.
    pub fn label(self) -> &'static str {
        match self {
            ProcessKind::Suricata => "suricata",
            ProcessKind::Vector => "vector",
            ProcessKind::Agent => "agent",
        }
    }
}

/// One process's use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// Which process.
    pub kind: ProcessKind,
    /// CPU use as a ratio of all host cores (0–1).
    pub cpu: f64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
}

/// One sample of the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Host CPU use as a ratio of all cores (0–1).
    pub host_cpu: f64,
    /// Host memory in use (total − available) as a ratio of total (0–1).
    pub host_memory: f64,
    /// The pipeline processes that are running.
    pub processes: Vec<ProcessSample>,
}

/// Where samples come from.
pub trait SampleSource: Send {
    /// Takes a sample; CPU figures cover the time since the previous call.
    fn sample(&mut self) -> Sample;
}

/// The pids to sample, asked afresh each time (processes restart).
pub type PidSource = Arc<dyn Fn() -> Vec<(ProcessKind, u32)> + Send + Sync>;

/// Samples through sysinfo (`/proc`), refreshing only what it reports.
pub struct SysinfoSource {
    sys: System,
    pids: PidSource,
}

impl SysinfoSource {
    /// A source for the pids `pids` returns. The first sample's CPU figures are 0 (CPU use is
    /// a difference between two readings).
    pub fn new(pids: PidSource) -> Result<Self, sysinfo::Error> {
        let mut sys = System::new()?;
        sys.refresh_cpu_usage();
        Ok(Self { sys, pids })
    }

    /// The CPUs the host has, which [`ProcessSample::cpu`] shares are fractions of. A container
    /// with a CPU quota can be allowed fewer than this.
    pub fn cpu_count(&self) -> usize {
        self.sys.cpus().len().max(1)
    }
}

impl SampleSource for SysinfoSource {
    fn sample(&mut self) -> Sample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let wanted = (self.pids)();
        let pids: Vec<Pid> = wanted.iter().map(|(_, p)| Pid::from_u32(*p)).collect();
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let cores = self.cpu_count() as f64;
        let total = self.sys.total_memory();
        let host_memory = if total == 0 {
            0.0
        } else {
            total.saturating_sub(self.sys.available_memory()) as f64 / total as f64
        };
        let processes = wanted
            .iter()
            .filter_map(|&(kind, pid)| {
                let p = self.sys.process(Pid::from_u32(pid))?;
                Some(ProcessSample {
                    kind,
                    cpu: f64::from(p.cpu_usage()) / 100.0 / cores,
                    rss_bytes: p.memory(),
                })
            })
            .collect();
        Sample {
            host_cpu: (f64::from(self.sys.global_cpu_usage()) / 100.0).clamp(0.0, 1.0),
            host_memory: host_memory.clamp(0.0, 1.0),
            processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        let mut src = SysinfoSource::new(Arc::new(move || vec![(ProcessKind::Agent, me)])).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let s = src.sample();
        assert!((0.0..=1.0).contains(&s.host_cpu));
        assert!(s.host_memory > 0.0 && s.host_memory <= 1.0, "{s:?}");
        let agent = s
            .processes
            .iter()
            .find(|p| p.kind == ProcessKind::Agent)
            .unwrap();
        assert!(agent.rss_bytes > 1_000_000, "{agent:?}");
    }

    #[test]
    fn a_dead_pid_is_left_out() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut src =
            SysinfoSource::new(Arc::new(move || vec![(ProcessKind::Vector, pid)])).unwrap();
        assert!(src.sample().processes.is_empty());
    }
}
