//! `history`: the git repository that records every applied change.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::none;
use super::validate::check_abs_path;

/// The git history of applied configurations.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Path of the (bare) repository that records every applied change.
    #[serde(default = "default_history_repo")]
    pub repo: String,
    /// Optional remote (URL or path) each commit is pushed to.
    #[serde(default)]
    pub remote: Option<String>,
    /// Branch commits land on.
    #[serde(default = "default_history_branch")]
    pub branch: String,
    /// Commit author name.
    #[serde(default = "default_author_name")]
    pub author_name: String,
    /// Commit author e-mail.
    #[serde(default = "default_author_email")]
    pub author_email: String,
}

super::schema::default_from_fns! {
    History {
        repo: default_history_repo, remote: none, branch: default_history_branch,
        author_name: default_author_name, author_email: default_author_email,
    }
}

/// Default history repository.
pub fn default_history_repo() -> String {
    "/var/lib/ids2/history.git".into()
}

/// Default history branch.
pub fn default_history_branch() -> String {
    "dev".into()
}

/// Default commit author name.
pub fn default_author_name() -> String {
    "ids2-agent".into()
}

/// Default commit author e-mail.
pub fn default_author_email() -> String {
    "ids2-agent@localhost".into()
}

impl History {
    /// Checks the repository path, branch and author.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let h = self;
        check_abs_path("history.repo", &h.repo, p);
        let branch_ok = !h.branch.is_empty()
            && !h.branch.starts_with(['-', '/', '.'])
            && !h.branch.ends_with(['/', '.'])
            && !h.branch.contains("..")
            && !h.branch.contains("//")
            && !h.branch.ends_with(".lock")
            && h.branch
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_./".contains(ch));
        if !branch_ok {
            p.push(Problem::new(
                "history.branch",
                &h.branch,
                "expected a git branch name such as dev or sensors/lab-1",
            ));
        }
        if h.author_name.trim().is_empty() || h.author_name.contains(['<', '>', '\n']) {
            p.push(Problem::new(
                "history.author_name",
                &h.author_name,
                "expected a non-empty name without '<', '>' or newlines",
            ));
        }
        if !h.author_email.contains('@') || h.author_email.contains(['<', '>', ' ', '\n']) {
            p.push(Problem::new(
                "history.author_email",
                &h.author_email,
                "expected an e-mail address such as ids2@sensor.lan",
            ));
        }
        if let Some(remote) = &h.remote {
            if remote.trim().is_empty() {
                p.push(Problem::at(
                    "history.remote",
                    "must not be empty; leave it out for no remote",
                ));
            }
        }
    }
}
