//! Host links over rtnetlink: only `lo` and the capture interface stay up.
//!
//! The seam is the network namespace: everything here acts on the namespace the process runs
//! in, so tests run the agent inside namespaces they create (`ip netns exec`). [`plan`] is
//! pure; [`apply`] changes links under a rollback guard that restores the previous state when
//! a management target stops answering.

mod error;
mod guard;
mod plan;
mod probe;
mod state;

use std::fmt;

pub use error::{NetError, RollbackReason, TargetFailure};
pub use guard::{apply, Applied, Guard};
pub use plan::{plan, Change, Plan, LOOPBACK};
pub use state::{Address, Gateway, HostState, Link, Netlink};

use crate::config::Settings;

/// What `net status` reports: the links and, given settings, what `net apply` would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Links, addresses and the default gateway.
    pub state: HostState,
    /// The plan against the settings, when settings were given.
    pub plan: Option<Plan>,
}

/// Reads this namespace's links; with settings, also plans the policy (refusing when the
/// capture interface is missing).
pub async fn status(settings: Option<&Settings>) -> Result<Status, NetError> {
    let netlink = Netlink::connect()?;
    let state = netlink.host_state().await?;
    let plan = settings.map(|s| plan(&state.links, s)).transpose()?;
    Ok(Status { state, plan })
}

/// The result of `net apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `--dry-run`: the plan, nothing touched.
    DryRun(Plan),
    /// The plan was applied (or was empty) and the management targets answered.
    Applied(Applied),
}

/// Reads the links, plans the policy and, unless `dry_run`, applies it under the guard
/// configured in `network`.
pub async fn apply_settings(settings: &Settings, dry_run: bool) -> Result<Outcome, NetError> {
    let netlink = Netlink::connect()?;
    let plan = plan(&netlink.links().await?, settings)?;
    if dry_run {
        return Ok(Outcome::DryRun(plan));
    }
    apply(&netlink, &plan, &Guard::from_settings(settings))
        .await
        .map(Outcome::Applied)
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if let Some(plan) = &self.plan {
            write!(f, "\n{plan}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::DryRun(plan) => write!(f, "dry run, nothing changed\n{plan}"),
            Outcome::Applied(applied) if applied.plan.is_empty() => {
                write!(f, "{}", applied.plan)
            }
            Outcome::Applied(applied) => {
                write!(f, "applied {}", applied.plan)?;
                if applied.confirmed.is_empty() {
                    write!(f, "\nno management targets configured: nothing checked")
                } else {
                    write!(
                        f,
                        "\nreachable after the change: {}",
                        applied.confirmed.join(", ")
                    )
                }
            }
        }
    }
}
