//! `logs`: the tmpfs that holds Suricata's hot logs (EVE, heartbeats, anomaly documents).

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::validate::check_abs_path;

/// The tmpfs that holds Suricata's hot logs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Mount point of the tmpfs (absolute path).
    #[serde(default = "default_logs_path")]
    pub path: String,
    /// Size of the tmpfs in MiB.
    #[serde(default = "default_logs_size_mb")]
    pub size_mb: u32,
    /// Size in MiB at which the agent renames `eve.json` to `eve.json.1` (replacing it) and has
    /// Suricata reopen its logs, so EVE never fills the tmpfs. At most a third of `size_mb`.
    #[serde(default = "default_eve_rotate_mb")]
    pub eve_rotate_mb: u32,
}

super::schema::default_from_fns! {
    Logs {
        path: default_logs_path, size_mb: default_logs_size_mb,
        eve_rotate_mb: default_eve_rotate_mb,
    }
}

/// Default log tmpfs mount point.
pub fn default_logs_path() -> String {
    "/mnt/ram_logs".into()
}

/// Default log tmpfs size.
pub fn default_logs_size_mb() -> u32 {
    256
}

/// Default EVE rotation size: a quarter of the default tmpfs, so the live file, the rotated one
/// and the heartbeat and anomaly files fit with room to spare.
pub fn default_eve_rotate_mb() -> u32 {
    64
}

impl Logs {
    /// Checks the mount point, the size and the EVE rotation size.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        check_abs_path("logs.path", &self.path, p);
        if self.path == "/" {
            p.push(Problem::new(
                "logs.path",
                &self.path,
                "a tmpfs cannot be mounted over /; use e.g. /mnt/ram_logs",
            ));
        }
        if !(16..=8192).contains(&self.size_mb) {
            p.push(Problem::new(
                "logs.size_mb",
                self.size_mb,
                "expected 16 to 8192 MiB",
            ));
        }
        // eve.json and eve.json.1 both live on the tmpfs, beside the heartbeat and anomaly files.
        let most = (self.size_mb / 3).max(1);
        if !(1..=most).contains(&self.eve_rotate_mb) {
            p.push(Problem::new(
                "logs.eve_rotate_mb",
                self.eve_rotate_mb,
                format!(
                    "expected 1 to {most} MiB (a third of logs.size_mb = {}): the live and the \
                     rotated EVE file share the tmpfs",
                    self.size_mb
                ),
            ));
        }
    }
}
