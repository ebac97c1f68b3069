//! Errors of the config history, each naming the repository and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while recording or pushing the config history.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    /// The repository could not be created.
    #[error(
        "cannot create the history repository at {repo}; check that its parent directory \
         exists and is writable, or point history.repo elsewhere"
    )]
    Init {
        /// The repository path.
        repo: PathBuf,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// The path cannot be opened as a repository.
    #[error(
        "{repo} cannot be opened as a git repository; if it is not one, move it away (an \
         absent path is created as a new, empty history) or point history.repo elsewhere"
    )]
    Open {
        /// The repository path.
        repo: PathBuf,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// The repository has a work tree; committing behind its back would leave it stale.
    #[error(
        "{repo} is a git repository with a work tree; the history must be a bare repository \
         (create one with `git init --bare`) or point history.repo at a new path"
    )]
    NotBare {
        /// The repository path.
        repo: PathBuf,
    },
    /// The branch name is not a valid git branch name.
    #[error("{branch:?} is not a valid git branch name; use one such as dev or sensors/lab-1")]
    InvalidBranch {
        /// The rejected branch name.
        branch: String,
    },
    /// A file path handed to `commit` cannot be stored as given.
    #[error(
        "cannot record {path:?} in the history: {reason}; pass relative '/'-separated paths \
         without '.', '..', '.git' or empty components, each once"
    )]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The commit subject is empty or spans several lines.
    #[error("commit subject {subject:?} must be one non-empty line")]
    InvalidSubject {
        /// The rejected subject.
        subject: String,
    },
    /// Reading objects or references failed.
    #[error("cannot read {what} in the history repository {repo}; run `git fsck` on it")]
    Read {
        /// The repository path.
        repo: PathBuf,
        /// What was being read.
        what: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// Writing objects or moving the branch failed.
    #[error(
        "cannot write {what} in the history repository {repo}; check free space \
         and permissions, and remove a stale `.lock` file if no other agent is running"
    )]
    Write {
        /// The repository path.
        repo: PathBuf,
        /// What was being written.
        what: String,
        /// What gix reported.
        #[source]
        source: gix::Error,
    },
    /// Other writers kept moving the branch; every attempt lost the race.
    #[error(
        "branch {branch} in {repo} moved under us {attempts} times in a row; another process \
         keeps committing to it — stop it or give this sensor its own branch"
    )]
    Contended {
        /// The repository path.
        repo: PathBuf,
        /// The branch.
        branch: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The `git` program could not be started.
    #[error("cannot run `git` to push {repo}; install git (Debian package `git`)")]
    GitMissing {
        /// The repository path.
        repo: PathBuf,
        /// Why the spawn failed.
        #[source]
        source: std::io::Error,
    },
    /// `git push` ran and failed.
    #[error(
        "`git push {remote} {branch}` from {repo} failed ({status}): {stderr}; the commit is \
         kept locally and goes out with the next successful push — check history.remote and \
         that the remote is reachable and accepts the push"
    )]
    PushFailed {
        /// The repository path.
        repo: PathBuf,
        /// The remote (URL, path or name).
        remote: String,
        /// The branch pushed.
        branch: String,
        /// git's exit status.
        status: String,
        /// git's standard error, trimmed.
        stderr: String,
    },
    /// `git push` did not finish in time and was killed.
    #[error(
        "`git push {remote} {branch}` from {repo} did not finish within {timeout_secs} s and \
         was stopped; the commit is kept locally — check that the remote is reachable"
    )]
    PushTimeout {
        /// The repository path.
        repo: PathBuf,
        /// The remote (URL, path or name).
        remote: String,
        /// The branch pushed.
        branch: String,
        /// The time limit.
        timeout_secs: u64,
    },
}
