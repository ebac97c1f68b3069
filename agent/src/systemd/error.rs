//! Errors from talking to systemd: each names the unit (or mount path) and carries
//! systemd's own D-Bus error name and message, so the operator sees what systemd said.

use std::path::PathBuf;
use std::time::Duration;

/// Why a systemd operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// The bus could not be reached.
    #[error("cannot connect to systemd over D-Bus at {address}: {dbus} (is the bus running? pass --bus ADDRESS to use another one)")]
    Connect {
        /// The bus address tried ("the system bus" for the default).
        address: String,
        /// zbus's error, which includes the socket error.
        dbus: zbus::Error,
    },
    /// systemd (or the bus) answered a call on a unit with an error.
    #[error("systemd refused to {action} {unit}: {dbus}")]
    Call {
        /// The unit the call was about.
        unit: String,
        /// What we asked for, e.g. "start" or "read the state of".
        action: &'static str,
        /// The D-Bus error: systemd's error name and its message.
        dbus: zbus::Error,
    },
    /// The job systemd queued finished with a result other than "done".
    #[error("{action} of {unit} failed: job result `{result}`{}; see `journalctl -u {unit}`",
        unit_result.as_ref().map(|r| format!(", unit result `{r}`")).unwrap_or_default())]
    JobFailed {
        /// The unit.
        unit: String,
        /// "start", "stop", "restart", "reload" or "mount".
        action: &'static str,
        /// systemd's job result: "failed", "canceled", "timeout", "dependency", ...
        result: String,
        /// The unit's own `Result` property (e.g. "exit-code") when its type has one.
        unit_result: Option<String>,
    },
    /// The job did not finish in time; systemd may still be running it.
    #[error("{action} of {unit} did not finish within {}s; check `systemctl status {unit}`", .waited.as_secs())]
    JobTimeout {
        /// The unit.
        unit: String,
        /// The operation.
        action: &'static str,
        /// How long we waited.
        waited: Duration,
    },
    /// The bus connection closed while a job was running.
    #[error("the D-Bus connection closed while waiting for the {action} job of {unit}")]
    BusClosed {
        /// The unit.
        unit: String,
        /// The operation.
        action: &'static str,
    },
    /// A mount path systemd cannot turn into a mount unit.
    #[error("log tmpfs path `{path}` is not usable: {why}")]
    InvalidMountPath {
        /// The path given.
        path: String,
        /// What is wrong and how to fix it.
        why: String,
    },
    /// A tmpfs size of zero (tmpfs would read it as "unlimited").
    #[error("log tmpfs size must be at least 1 MiB (got {size_mb})")]
    InvalidSize {
        /// The size given.
        size_mb: u32,
    },
    /// A mode with bits beyond the permission bits.
    #[error(
        "log tmpfs mode {mode:o} is not a permission mode (want at most 7777 octal, e.g. 0750)"
    )]
    InvalidMode {
        /// The mode given.
        mode: u32,
    },
    /// A CPU quota of zero would stop the unit from running at all.
    #[error("CPU quota for {unit} must be at least 1% (got 0)")]
    InvalidQuota {
        /// The unit.
        unit: String,
    },
    /// A unit whose type has no resource-control properties.
    #[error("{unit} has no resource-control properties: only .service, .socket, .mount, .swap, .slice and .scope units have them")]
    NoResourceControl {
        /// The unit.
        unit: String,
    },
    /// Something else is already mounted at the path; nothing was changed.
    #[error("{path} is already mounted but not as wanted: {found}; nothing was changed. Unmount it (`systemctl stop {unit}` if systemd mounted it) and run again")]
    MountMismatch {
        /// The mount point.
        path: String,
        /// The mount unit name for the path.
        unit: String,
        /// Every difference found.
        found: String,
    },
    /// systemd reported the mount done but the kernel does not show the wanted tmpfs.
    #[error("{unit} started but {path} is not the wanted tmpfs: {found}")]
    MountNotVerified {
        /// The mount point.
        path: String,
        /// The mount unit.
        unit: String,
        /// What was found instead.
        found: String,
    },
    /// The kernel's view of the mounts could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    ReadMounts {
        /// The mountinfo file or mount point that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl SystemdError {
    /// True when the caller passed something unusable (exit code 2) rather than systemd or
    /// the host failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidMountPath { .. }
                | Self::InvalidSize { .. }
                | Self::InvalidMode { .. }
                | Self::InvalidQuota { .. }
                | Self::NoResourceControl { .. }
        )
    }
}
