//! The event pipeline's two processes, Suricata and Vector, behind one [`Backend`] trait:
//! `process` (children of the agent, for machines without systemd such as the lab) and
//! `systemd` (units over D-Bus, on top of the `systemd` module); and the embedded default sink
//! ([`Archive`]) for when no Vector ships the events.

mod archive;
mod process;
#[cfg(test)]
pub(crate) mod recorder;
mod systemd;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use archive::{Archive, ArchiveError};
pub use process::{get_nice, ChildSpec, ProcessBackend, LIMITED_NICE};
pub use systemd::{unit, LimitPlan, SystemdBackend, UnitLimit, SURICATA_UNIT, VECTOR_UNIT};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Backend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One of the pipeline's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Captures and writes EVE.
    Suricata,
    /// Tails EVE and ships it.
    Vector,
}

impl Component {
    /// Lower-case name, used in metric labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Component::Suricata => "suricata",
            Component::Vector => "vector",
        }
    }

    /// Both, in start order: Vector first so the consumer is up before events are written.
    pub const START_ORDER: [Component; 2] = [Component::Vector, Component::Suricata];

    /// Both, in stop order: Suricata first so Vector can drain what it wrote.
    pub const STOP_ORDER: [Component; 2] = [Component::Suricata, Component::Vector];
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The program is not installed or not on PATH.
    #[error("{component}: program `{program}` not found (PATH={path}); install it or fix PATH")]
    NotFound {
        /// Which component.
        component: &'static str,
        /// The program name or path tried.
        program: String,
        /// The PATH searched.
        path: String,
    },
    /// Spawning failed for another reason.
    #[error("{component}: cannot start `{program}`")]
    Spawn {
        /// Which component.
        component: &'static str,
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file the child needs (e.g. the OpenSearch password file) could not be read.
    #[error("{component}: cannot read {} for the {var} environment variable", path.display())]
    EnvFile {
        /// Which component.
        component: &'static str,
        /// The variable.
        var: String,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("{component}: cannot signal pid {pid}")]
    Signal {
        /// Which component.
        component: &'static str,
        /// The pid.
        pid: u32,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// The backend was asked about a component it was not set up with.
    #[error("{0}: not managed by this backend")]
    Unknown(&'static str),
    /// The backend's own machinery (e.g. D-Bus) failed.
    #[error("{component}: {message}")]
    Other {
        /// Which component.
        component: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Starts, stops, restarts and reloads the pipeline's processes.
pub trait Backend: Send + Sync {
    /// Starts `c` (and, for the process backend, keeps it running until stopped; the systemd
    /// backend hands the start to systemd and logs the job's result when it ends).
    fn start(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>>;
    /// Stops `c`: a polite signal, then a kill once `timeout` has passed.
    fn stop(&self, c: Component, timeout: Duration) -> BoxFuture<'_, Result<(), BackendError>>;
    /// Stops and starts `c` (a new Suricata config needs this).
    fn restart(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>>;
    /// Asks `c` to reload its configuration in place (Vector: SIGHUP; Suricata: rule reload).
    fn reload(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>>;
    /// The main process id of `c`, when it runs.
    fn pid(&self, c: Component) -> Option<u32>;
}
