//! Errors of the `net` module: each names the link or target at fault and what to do.

use std::fmt;

/// Why reading, planning or applying the link policy failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No netlink socket could be opened.
    #[error(
        "cannot open a netlink route socket in this network namespace \
         (the agent needs CAP_NET_ADMIN to manage links)"
    )]
    Connect(#[source] std::io::Error),
    /// A netlink request failed; `what` says which.
    #[error("netlink: {what} failed")]
    Netlink {
        /// The request, e.g. `set eth1 down`.
        what: String,
        /// The kernel's (or the library's) error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The configured capture interface is not on this host; nothing was changed.
    #[error(
        "capture interface `{interface}` does not exist in this network namespace \
         (links here: {}); nothing was changed — set capture.interface to one of them",
        available.join(", ")
    )]
    CaptureMissing {
        /// `capture.interface`.
        interface: String,
        /// Names of the links that do exist.
        available: Vec<String>,
    },
    /// The `gateway` management target was requested but there is no default route to find it.
    #[error(
        "management target `gateway` cannot be checked: this host has no default route; \
         nothing was changed — add a default route or list an address or IP:PORT in \
         network.management_targets"
    )]
    NoGateway,
    /// The change was undone because it failed or cut off a management target.
    #[error("{reason}; every link was restored to its previous state")]
    RolledBack {
        /// What went wrong after the change started.
        reason: RollbackReason,
    },
    /// The change failed and so did restoring the previous state.
    #[error(
        "{reason}; restoring the previous state ALSO failed, the host may be unreachable: {}",
        problems.join("; ")
    )]
    RollbackFailed {
        /// What went wrong after the change started.
        reason: RollbackReason,
        /// Every part of the previous state that could not be put back.
        problems: Vec<String>,
    },
}

/// Why a started change was rolled back.
#[derive(Debug)]
pub enum RollbackReason {
    /// Some management targets did not answer within the rollback timeout.
    Unreachable {
        /// Seconds the guard waited (`network.rollback_timeout_secs`).
        timeout_secs: u64,
        /// Each failed target with the last error seen for it.
        failures: Vec<TargetFailure>,
    },
    /// A netlink request of the change itself failed.
    StepFailed {
        /// The change being made, e.g. `eth1: set down`.
        change: String,
        /// The kernel's error.
        source: rtnetlink::Error,
    },
}

/// A management target that did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFailure {
    /// The target as configured, with how it was checked, e.g. `10.0.0.1:22 (TCP connect)`.
    pub target: String,
    /// The last error seen while checking it.
    pub detail: String,
}

impl fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackReason::Unreachable {
                timeout_secs,
                failures,
            } => {
                write!(
                    f,
                    "management target{} unreachable within {timeout_secs} s after the link change: ",
                    if failures.len() == 1 { "" } else { "s" }
                )?;
                let list: Vec<String> = failures
                    .iter()
                    .map(|t| format!("{} — {}", t.target, t.detail))
                    .collect();
                f.write_str(&list.join("; "))
            }
            RollbackReason::StepFailed { change, source } => {
                write!(f, "link change `{change}` failed: {source}")
            }
        }
    }
}

impl NetError {
    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
        let what = what.into();
        move |source| NetError::Netlink { what, source }
    }
}
