//! What changed between two file sets, and the commit message that says so. Pure.

use std::collections::BTreeMap;
use std::fmt;

use gix::diff::blob::{Algorithm, Diff, InternedInput};

use super::GitopsError;

/// How one path changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The path is new.
    Added,
    /// The path's content changed by this many added and removed lines.
    Modified {
        /// Lines added.
        added: u32,
        /// Lines removed.
        removed: u32,
    },
    /// The path is gone.
    Deleted,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// '/'-separated path relative to the repository root.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ChangeKind::Added => write!(f, "A {}", self.path),
            ChangeKind::Modified { added, removed } => {
                write!(f, "M {} (+{added} -{removed})", self.path)
            }
            ChangeKind::Deleted => write!(f, "D {}", self.path),
        }
    }
}

/// Checks that every path can be stored as a tree entry exactly as given, so the committed
/// tree holds exactly the caller's files.
pub fn validate_paths(files: &[(String, Vec<u8>)]) -> Result<(), GitopsError> {
    let bad = |path: &str, reason| {
        Err(GitopsError::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    let mut paths: Vec<&str> = Vec::with_capacity(files.len());
    for (path, _) in files {
        if path.is_empty() {
            return bad(path, "the path is empty");
        }
        if path.starts_with('/') {
            return bad(path, "the path is absolute");
        }
        if path.contains(['\\', '\0', '\n']) {
            return bad(path, "the path contains a backslash, NUL or newline");
        }
        for component in path.split('/') {
            match component {
                "" => return bad(path, "the path has an empty component"),
                "." | ".." => return bad(path, "the path has a '.' or '..' component"),
                c if c.eq_ignore_ascii_case(".git") => {
                    return bad(path, "the path has a '.git' component");
                }
                _ => {}
            }
        }
        paths.push(path);
    }
    let mut seen = std::collections::BTreeSet::new();
    for path in &paths {
        if !seen.insert(*path) {
            return bad(path, "the path is given twice");
        }
    }
    for path in &paths {
        // Every ancestor directory of a file must not itself be a file.
        let parents = path.match_indices('/').map(|(i, _)| &path[..i]);
        if let Some(dir) = parents.into_iter().find(|d| seen.contains(d)) {
            return bad(dir, "the path is both a file and a directory");
        }
    }
    Ok(())
}

/// Lists the changes from `old` to `new`, sorted by path.
pub fn changes(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, &[u8]>) -> Vec<Change> {
    let mut out = Vec::new();
    for (path, data) in new {
        let kind = match old.get(path) {
            None => ChangeKind::Added,
            Some(before) if before.as_slice() == *data => continue,
            Some(before) => {
                let (added, removed) = line_counts(before, data);
                ChangeKind::Modified { added, removed }
            }
        };
        out.push(Change {
            path: path.clone(),
            kind,
        });
    }
    for path in old.keys().filter(|p| !new.contains_key(*p)) {
        out.push(Change {
            path: path.clone(),
            kind: ChangeKind::Deleted,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Lines added and removed between two blobs, as `git diff --numstat` counts them.
pub fn line_counts(before: &[u8], after: &[u8]) -> (u32, u32) {
    let input = InternedInput::new(before, after);
    let mut diff = Diff::compute(Algorithm::Histogram, &input);
    diff.postprocess_lines(&input);
    (diff.count_additions(), diff.count_removals())
}

/// `subject`, a blank line, then one line per change.
pub fn message(subject: &str, changes: &[Change]) -> String {
    let mut m = format!("{subject}\n\n");
    for c in changes {
        m.push_str(&c.to_string());
        m.push('\n');
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Vec<(String, Vec<u8>)> {
        paths.iter().map(|p| (p.to_string(), Vec::new())).collect()
    }

    #[test]
    fn accepts_nested_relative_paths() {
        validate_paths(&files(&["suricata.yaml", "rules/ids2.rules", "a.b", "a/c"])).unwrap();
    }

    #[test]
    fn rejects_paths_that_cannot_be_stored_as_given() {
        for (paths, reason) in [
            (vec![""], "empty"),
            (vec!["/etc/x"], "absolute"),
            (vec!["a//b"], "empty component"),
            (vec!["a/"], "empty component"),
            (vec!["./a"], "'.'"),
            (vec!["a/../b"], "'..'"),
            (vec![".git/config"], "'.git'"),
            (vec!["x/.GIT/y"], "'.git'"),
            (vec!["a\\b"], "backslash"),
            (vec!["a", "a"], "twice"),
            (vec!["rules", "rules/ids2.rules"], "file and a directory"),
            (vec!["a", "a.b", "a/c"], "file and a directory"),
        ] {
            let err = validate_paths(&files(&paths)).unwrap_err().to_string();
            assert!(err.contains(reason), "{paths:?}: {err}");
        }
    }

    #[test]
    fn counts_lines_like_git_numstat() {
        assert_eq!(line_counts(b"a\nb\nc\n", b"a\nB\nc\nd\n"), (2, 1));
        assert_eq!(line_counts(b"", b"x\ny\n"), (2, 0));
        assert_eq!(line_counts(b"x\ny\n", b""), (0, 2));
        // A missing final newline changes the last line.
        assert_eq!(line_counts(b"a\nb", b"a\nb\n"), (1, 1));
    }

    #[test]
    fn lists_added_modified_deleted_sorted() {
        let old: BTreeMap<String, Vec<u8>> = [
            ("same".to_string(), b"1\n".to_vec()),
            ("mod".to_string(), b"1\n2\n".to_vec()),
            ("gone".to_string(), b"x\n".to_vec()),
        ]
        .into();
        let new: BTreeMap<String, &[u8]> = [
            ("same".to_string(), &b"1\n"[..]),
            ("mod".to_string(), &b"1\n3\n4\n"[..]),
            ("b/new".to_string(), &b"n\n"[..]),
        ]
        .into();
        let c = changes(&old, &new);
        let lines: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["A b/new", "D gone", "M mod (+2 -1)"]);
        assert_eq!(
            message("render: apply", &c),
            "render: apply\n\nA b/new\nD gone\nM mod (+2 -1)\n"
        );
    }
}
