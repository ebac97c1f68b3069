//! Config history: every applied set of rendered files becomes one commit in a bare git
//! repository, written with gix (no work tree, no `git` needed), and optionally pushed.
//!
//! The committed tree is exactly the files the caller passes — this module never reads the
//! file system for content — so only rendered files, which carry secrets as environment
//! references, can land in the history.

mod error;
mod summary;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gix::objs::tree::EntryKind;
use gix::refs::transaction::{PreviousValue, RefEdit};
use gix::refs::{FullName, Target};
use gix::ObjectId;

pub use error::GitopsError;
pub use summary::{Change, ChangeKind};

/// How often `commit` re-reads the branch and tries again when another writer moved it.
const MAX_ATTEMPTS: u32 = 16;
/// How long a ref lock held by another writer is waited for, in milliseconds.
const REF_LOCK_TIMEOUT_MS: u32 = 5_000;
/// How long `git push` may run before it is stopped.
const PUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Who commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Author and committer name.
    pub name: String,
    /// Author and committer e-mail.
    pub email: String,
}

/// A commit `History::commit` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit id, hex.
    pub id: String,
    /// The full message: subject, blank line, one line per change.
    pub message: String,
    /// The changed paths, sorted.
    pub changes: Vec<Change>,
}

/// One commit on the branch, as `History::log` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The commit id, hex.
    pub id: String,
    /// The full message.
    pub message: String,
}

/// The history repository and the branch commits land on.
///
/// Holds no open repository: gix built without its `parallel` feature hands out `!Send`
/// handles, and the daemon must be able to move a `History` into blocking tasks. Each call
/// opens the repository afresh, a few small file reads next to writing a commit.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    branch: String,
    branch_ref: FullName,
    author: Author,
}

impl History {
    /// Opens the bare repository at `repo`, or creates it (with `HEAD` on `branch`) when the
    /// path is absent or an empty directory.
    pub fn open_or_init(repo: &Path, branch: &str, author: Author) -> Result<Self, GitopsError> {
        let branch_ref = branch_ref(branch)?;
        let path = repo.to_path_buf();
        let absent_or_empty = match std::fs::read_dir(repo) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if absent_or_empty {
            init(repo, &branch_ref)?;
        } else if !open(repo)?.is_bare() {
            return Err(GitopsError::NotBare { repo: path });
        }
        Ok(History {
            path,
            branch: branch.to_owned(),
            branch_ref,
            author,
        })
    }

    /// The repository path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The branch commits land on.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Records `files` (relative '/'-separated paths and their content) as the branch's new
    /// tree. Returns `None`, and commits nothing, when that tree equals the branch head's.
    ///
    /// The branch is moved with a compare-and-swap on the head this commit was built on, so
    /// a concurrent writer's commit is never overwritten: on a lost race the new head is
    /// re-read and the commit rebuilt on top of it.
    pub fn commit(
        &self,
        files: &[(String, Vec<u8>)],
        subject: &str,
    ) -> Result<Option<CommitInfo>, GitopsError> {
        if subject.trim().is_empty() || subject.contains(['\n', '\r']) {
            return Err(GitopsError::InvalidSubject {
                subject: subject.to_owned(),
            });
        }
        summary::validate_paths(files)?;
        let repo = open(&self.path)?;
        let tree = self.write_tree(&repo, files)?;
        let new_files: BTreeMap<String, &[u8]> = files
            .iter()
            .map(|(p, d)| (p.clone(), d.as_slice()))
            .collect();

        for _ in 0..MAX_ATTEMPTS {
            let head = self.branch_head(&repo)?;
            let old_files = match head {
                Some(id) => {
                    let old_tree = self.commit_tree(&repo, id)?;
                    if old_tree == tree {
                        return Ok(None);
                    }
                    self.tree_files(&repo, old_tree)?
                }
                None => BTreeMap::new(),
            };
            let changes = summary::changes(&old_files, &new_files);
            let message = summary::message(subject, &changes);
            let id = self.write_commit(&repo, tree, head, &message)?;

            let expected = match head {
                Some(previous) => PreviousValue::MustExistAndMatch(Target::Object(previous)),
                None => PreviousValue::MustNotExist,
            };
            let edit = RefEdit::update(
                self.branch_ref.clone(),
                id,
                expected,
                format!("commit: {subject}"),
            );
            match repo.edit_reference(edit) {
                Ok(_) => {
                    return Ok(Some(CommitInfo {
                        id: id.to_string(),
                        message,
                        changes,
                    }));
                }
                // The swap failed: retry only if another writer moved the branch meanwhile.
                Err(source) if self.branch_head(&repo)? == head => {
                    return Err(self.write_error(format!("branch {}", self.branch), source));
                }
                Err(_) => continue,
            }
        }
        Err(GitopsError::Contended {
            repo: self.path.clone(),
            branch: self.branch.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The branch head's commit id, or `None` before the first commit.
    pub fn head(&self) -> Result<Option<String>, GitopsError> {
        let repo = open(&self.path)?;
        Ok(self.branch_head(&repo)?.map(|id| id.to_string()))
    }

    /// The branch's commits, newest first, following first parents, at most `limit`.
    pub fn log(&self, limit: usize) -> Result<Vec<LogEntry>, GitopsError> {
        let repo = open(&self.path)?;
        let mut out = Vec::new();
        let mut next = self.branch_head(&repo)?;
        while let Some(id) = next.filter(|_| out.len() < limit) {
            let commit = repo
                .find_commit(id)
                .map_err(|e| self.read_error(format!("commit {id}"), e))?;
            out.push(LogEntry {
                id: id.to_string(),
                message: commit.message_raw_sloppy().to_string(),
            });
            next = commit.parent_ids().next().map(|p| p.detach());
        }
        Ok(out)
    }

    /// Pushes the branch to `remote` (a URL, a path or a configured remote name).
    ///
    /// gix cannot push yet (gitoxide tracking issue #306), so this runs
    /// `git push <remote> refs/heads/<branch>:refs/heads/<branch>`; the full refspec keeps a
    /// tag of the same name from being pushed instead. The push is a fast-forward: a remote
    /// branch that diverged is refused, never overwritten.
    pub fn push(&self, remote: &str) -> Result<(), GitopsError> {
        let refspec = format!("{0}:{0}", self.branch_ref.as_bstr());
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&self.path)
            .args(["push", "--quiet", "--", remote, &refspec])
            // Never wait for a password or host-key prompt on a sensor without a terminal.
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| GitopsError::GitMissing {
                repo: self.path.clone(),
                source,
            })?;
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        // Drained on its own thread so a chatty git cannot block on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr_pipe.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + PUSH_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(source) => {
                    return Err(GitopsError::GitMissing {
                        repo: self.path.clone(),
                        source,
                    });
                }
            }
        };
        let stderr = reader.join().unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(GitopsError::PushFailed {
                repo: self.path.clone(),
                remote: remote.to_owned(),
                branch: self.branch.clone(),
                status: status.to_string(),
                stderr: one_line(&stderr),
            }),
            Err(()) => Err(GitopsError::PushTimeout {
                repo: self.path.clone(),
                remote: remote.to_owned(),
                branch: self.branch.clone(),
                timeout_secs: PUSH_TIMEOUT.as_secs(),
            }),
        }
    }

    fn branch_head(&self, repo: &gix::Repository) -> Result<Option<ObjectId>, GitopsError> {
        let what = || format!("branch {}", self.branch);
        let reference = repo
            .try_find_reference(self.branch_ref.as_bstr())
            .map_err(|e| self.read_error(what(), e))?;
        match reference {
            None => Ok(None),
            Some(mut r) => r
                .peel_to_id()
                .map(|id| Some(id.detach()))
                .map_err(|e| self.read_error(what(), e)),
        }
    }

    fn commit_tree(&self, repo: &gix::Repository, id: ObjectId) -> Result<ObjectId, GitopsError> {
        repo.find_commit(id)
            .and_then(|c| c.tree_id())
            .map(|t| t.detach())
            .map_err(|e| self.read_error(format!("the tree of commit {id}"), e))
    }

    /// Every file in `tree` with its content, keyed by '/'-separated path.
    fn tree_files(
        &self,
        repo: &gix::Repository,
        tree: ObjectId,
    ) -> Result<BTreeMap<String, Vec<u8>>, GitopsError> {
        let what = || format!("tree {tree}");
        let entries = repo
            .find_tree(tree)
            .and_then(|t| t.traverse().breadthfirst.files())
            .map_err(|e| self.read_error(what(), e))?;
        let mut files = BTreeMap::new();
        for entry in entries.into_iter().filter(|e| !e.mode.is_tree()) {
            let mut blob = repo
                .find_blob(entry.oid)
                .map_err(|e| self.read_error(format!("{} in {}", entry.filepath, what()), e))?;
            files.insert(entry.filepath.to_string(), blob.take_data());
        }
        Ok(files)
    }

    /// Writes the blobs and a tree holding exactly `files`; the editor sorts entries the
    /// way git requires (a directory `a` sorts as `a/`).
    fn write_tree(
        &self,
        repo: &gix::Repository,
        files: &[(String, Vec<u8>)],
    ) -> Result<ObjectId, GitopsError> {
        let mut editor = repo
            .empty_tree()
            .edit()
            .map_err(|e| self.write_error("a tree".into(), e))?;
        for (path, data) in files {
            let blob = repo
                .write_blob(data)
                .map_err(|e| self.write_error(format!("the blob for {path}"), e))?;
            editor
                .upsert(path, EntryKind::Blob, blob)
                .map_err(|e| self.write_error(format!("the tree entry for {path}"), e))?;
        }
        editor
            .write()
            .map(|id| id.detach())
            .map_err(|e| self.write_error("the tree".into(), e))
    }

    fn write_commit(
        &self,
        repo: &gix::Repository,
        tree: ObjectId,
        parent: Option<ObjectId>,
        message: &str,
    ) -> Result<ObjectId, GitopsError> {
        let signature = gix::actor::Signature {
            name: self.author.name.as_str().into(),
            email: self.author.email.as_str().into(),
            time: gix::date::Time::now_local_or_utc(),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        repo.write_object(&commit)
            .map(|id| id.detach())
            .map_err(|e| self.write_error("the commit".into(), e))
    }

    fn read_error(&self, what: String, source: gix::Error) -> GitopsError {
        GitopsError::Read {
            repo: self.path.clone(),
            what,
            source,
        }
    }

    fn write_error(&self, what: String, source: gix::Error) -> GitopsError {
        GitopsError::Write {
            repo: self.path.clone(),
            what,
            source,
        }
    }
}

/// git's multi-line stderr folded onto one line, so the error reads as one message in logs.
fn one_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn branch_ref(branch: &str) -> Result<FullName, GitopsError> {
    let invalid = || GitopsError::InvalidBranch {
        branch: branch.to_owned(),
    };
    if branch.is_empty() || branch.starts_with("refs/") {
        return Err(invalid());
    }
    FullName::try_from(format!("refs/heads/{branch}")).map_err(|_| invalid())
}

fn open(repo: &Path) -> Result<gix::Repository, GitopsError> {
    gix::open_opts(repo, open_options()).map_err(|source| GitopsError::Open {
        repo: repo.to_path_buf(),
        source,
    })
}

/// Only the repository's own config counts: the history must not change with whoever's
/// `~/.gitconfig` or environment the agent happens to run under.
fn open_options() -> gix::open::Options {
    gix::open::Options::isolated()
        .config_overrides([format!("core.filesRefLockTimeout={REF_LOCK_TIMEOUT_MS}")])
}

fn init(repo: &Path, branch_ref: &FullName) -> Result<(), GitopsError> {
    let init_error = |source| GitopsError::Init {
        repo: repo.to_path_buf(),
        source,
    };
    let handle = gix::ThreadSafeRepository::init_opts(
        repo,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        open_options(),
    )
    .map_err(init_error)?;
    // HEAD names the history branch so `git log` and clones of the bare repository show it.
    let head = RefEdit::update(
        FullName::try_from("HEAD").expect("HEAD is a valid reference name"),
        Target::Symbolic(branch_ref.clone()),
        PreviousValue::Any,
        "",
    );
    handle
        .to_thread_local()
        .edit_reference(head)
        .map_err(init_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_map_to_local_branch_refs() {
        assert_eq!(branch_ref("dev").unwrap().as_bstr(), "refs/heads/dev");
        assert_eq!(
            branch_ref("sensors/lab-1").unwrap().as_bstr(),
            "refs/heads/sensors/lab-1"
        );
        for bad in [
            "",
            "a..b",
            "a b",
            "refs/heads/dev",
            "dev.lock",
            "a~1",
            "x:y",
        ] {
            let err = branch_ref(bad).unwrap_err();
            assert!(
                matches!(err, GitopsError::InvalidBranch { ref branch } if branch == bad),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn git_stderr_is_folded_onto_one_line() {
        assert_eq!(
            one_line(b"fatal: a\nfatal: b\n\n  Please c\n"),
            "fatal: a | fatal: b | Please c"
        );
    }

    #[test]
    fn history_can_be_shared_across_tasks() {
        // The daemon keeps one History in shared state and commits from blocking tasks.
        fn shareable<T: Send + Sync>() {}
        shareable::<History>();
    }
}
