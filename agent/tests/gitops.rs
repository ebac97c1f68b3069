//! Config history: gix writes, the real `git` CLI verifies (log, ls-tree, fsck, push).
//!
//! Every test skips with a message when `git` is not installed (CI installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use ids2_agent::gitops::{Author, ChangeKind, GitopsError, History};

fn git_available() -> bool {
    let ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: this test needs the `git` CLI (Debian package `git`) to verify");
    }
    ok
}

/// Runs git against the bare repository `repo` and returns stdout; panics with stderr on failure.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = git_output(repo, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn git_output(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs")
}

fn author() -> Author {
    Author {
        name: "ids2 test".into(),
        email: "ids2-test@sensor.lan".into(),
    }
}

fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(p, d)| (p.to_string(), d.as_bytes().to_vec()))
        .collect()
}

fn new_history(dir: &tempfile::TempDir) -> (History, PathBuf) {
    let repo = dir.path().join("history.git");
    let h = History::open_or_init(&repo, "dev", author()).expect("open_or_init");
    (h, repo)
}

fn subjects(repo: &Path) -> Vec<String> {
    git(repo, &["log", "--format=%s", "refs/heads/dev"])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn first_commit_creates_the_branch_and_head_names_it() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    assert_eq!(
        git(&repo, &["rev-parse", "--is-bare-repository"]).trim(),
        "true"
    );
    assert_eq!(
        git(&repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/dev"
    );
    assert!(
        !git_output(&repo, &["rev-parse", "--verify", "-q", "refs/heads/dev"])
            .status
            .success()
    );
    assert_eq!(h.head().unwrap(), None);

    let info = h
        .commit(&files(&[("suricata.yaml", "a: 1\n")]), "apply generation 1")
        .unwrap()
        .expect("first commit");
    assert_eq!(git(&repo, &["rev-parse", "refs/heads/dev"]).trim(), info.id);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]).trim(), info.id);
    assert_eq!(h.head().unwrap().as_deref(), Some(info.id.as_str()));
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%P"]).trim(),
        "ids2 test <ids2-test@sensor.lan>|ids2 test <ids2-test@sensor.lan>|"
    );
    assert_eq!(info.message, "apply generation 1\n\nA suricata.yaml\n");
}

#[test]
fn one_commit_per_effective_change_and_none_for_a_no_op() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    let one = files(&[("suricata.yaml", "a: 1\n"), ("vector.toml", "x = 1\n")]);
    let two = files(&[("suricata.yaml", "a: 2\n"), ("vector.toml", "x = 1\n")]);
    let two_reordered = vec![two[1].clone(), two[0].clone()];

    assert!(h.commit(&one, "first").unwrap().is_some());
    assert!(h.commit(&one, "same again").unwrap().is_none());
    assert!(h.commit(&two, "second").unwrap().is_some());
    assert!(h
        .commit(&two_reordered, "same, other order")
        .unwrap()
        .is_none());
    assert_eq!(subjects(&repo), ["second", "first"]);

    // A reopened history sees the same head and still makes no commit for the same files.
    drop(h);
    let again = History::open_or_init(&repo, "dev", author()).unwrap();
    assert!(again.commit(&two, "after reopen").unwrap().is_none());
    let log = again.log(10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].id, git(&repo, &["rev-parse", "dev"]).trim());
    assert!(log[0].message.starts_with("second\n"));
    assert_eq!(again.log(1).unwrap().len(), 1);
    assert_eq!(subjects(&repo), ["second", "first"]);
}

#[test]
fn message_lists_each_changed_path_with_line_counts_matching_git() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    h.commit(
        &files(&[
            ("suricata.yaml", "a: 1\nb: 2\nc: 3\n"),
            ("vector.toml", "x = 1\n"),
            ("rules/ids2.rules", "alert ip any any -> any any (sid:1;)\n"),
            ("config.yaml", "unchanged: true\n"),
        ]),
        "first",
    )
    .unwrap()
    .unwrap();
    let info = h
        .commit(
            &files(&[
                ("suricata.yaml", "a: 1\nb: 20\nc: 3\nd: 4\ne: 5\n"),
                ("rules/ids2.rules", "alert ip any any -> any any (sid:2;)\n"),
                ("rules/extra.rules", "# new\n"),
                ("config.yaml", "unchanged: true\n"),
            ]),
            "apply generation 2",
        )
        .unwrap()
        .unwrap();

    let body = git(&repo, &["log", "-1", "--format=%B", "dev"]);
    assert_eq!(
        body.trim_end(),
        "apply generation 2\n\n\
         A rules/extra.rules\n\
         M rules/ids2.rules (+1 -1)\n\
         M suricata.yaml (+3 -1)\n\
         D vector.toml"
    );
    assert_eq!(info.message.trim_end(), body.trim_end());

    // The counts agree with git's own numstat for every modified file.
    let numstat = git(&repo, &["diff", "--numstat", "dev~1", "dev"]);
    let mut checked = 0;
    for change in &info.changes {
        if let ChangeKind::Modified { added, removed } = change.kind {
            let line = numstat
                .lines()
                .find(|l| l.ends_with(&format!("\t{}", change.path)))
                .expect("numstat lists the path");
            assert!(
                line.starts_with(&format!("{added}\t{removed}\t")),
                "{line} vs {change}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

#[test]
fn nested_paths_land_as_real_trees_and_fsck_is_clean() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    // Names chosen so git's tree order (a directory `a` sorts as `a/`) differs from plain
    // name order: `a-b` < `a.b` < `a/` < `a0`.
    let set = files(&[
        ("rules/ids2.rules", "alert ip any any -> any any (sid:1;)\n"),
        ("suricata.yaml", "a: 1\n"),
        ("a0", "0\n"),
        ("a/c", "c\n"),
        ("a.b", "b\n"),
        ("a-b", "-\n"),
        ("deep/er/still/file.txt", "deep\n"),
    ]);
    h.commit(&set, "nested").unwrap().unwrap();
    let top = git(&repo, &["ls-tree", "dev"]);
    assert!(
        top.lines()
            .any(|l| l.starts_with("040000 tree ") && l.ends_with("\trules")),
        "rules is a tree: {top}"
    );
    let names: Vec<&str> = top.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(
        names,
        ["a-b", "a.b", "a", "a0", "deep", "rules", "suricata.yaml"]
    );
    assert_eq!(
        git(&repo, &["cat-file", "blob", "dev:rules/ids2.rules"]),
        "alert ip any any -> any any (sid:1;)\n"
    );

    // More history: modify, delete a whole directory, add it back.
    let mut next = set.clone();
    next.retain(|(p, _)| !p.starts_with("deep/"));
    next[1].1 = b"a: 2\n".to_vec();
    h.commit(&next, "drop deep").unwrap().unwrap();
    assert!(!git(&repo, &["ls-tree", "dev"]).contains("deep"));
    h.commit(&set, "restore deep").unwrap().unwrap();

    let fsck = git_output(&repo, &["fsck", "--strict", "--full", "--no-dangling"]);
    assert!(
        fsck.status.success() && fsck.stdout.is_empty() && fsck.stderr.is_empty(),
        "git fsck --strict: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    assert_eq!(subjects(&repo).len(), 3);
}

#[test]
fn committed_tree_is_exactly_the_files_given() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A secret next to the repository, as on a sensor: it must never be picked up.
    std::fs::write(dir.path().join("opensearch.secret"), "hunter2-secret\n").unwrap();
    let (h, repo) = new_history(&dir);
    let given = files(&[
        ("suricata.yaml", "a: 1\n"),
        (
            "vector.toml",
            "password = \"${IDS2_OPENSEARCH_PASSWORD}\"\n",
        ),
        ("rules/ids2.rules", "# local rules\n"),
    ]);
    h.commit(&given, "apply").unwrap().unwrap();
    let smaller = files(&[("vector.toml", "x = 1\n")]);
    h.commit(&smaller, "smaller").unwrap().unwrap();

    for (rev, expected) in [("dev~1", &given), ("dev", &smaller)] {
        let mut listed: Vec<String> = git(&repo, &["ls-tree", "-r", "--name-only", rev])
            .lines()
            .map(str::to_owned)
            .collect();
        listed.sort();
        let mut wanted: Vec<String> = expected.iter().map(|(p, _)| p.clone()).collect();
        wanted.sort();
        assert_eq!(listed, wanted, "tree of {rev}");
        for (path, data) in expected.iter() {
            let blob = git_output(&repo, &["cat-file", "blob", &format!("{rev}:{path}")]);
            assert_eq!(&blob.stdout, data, "{rev}:{path}");
        }
    }
    let grep = git_output(&repo, &["grep", "-I", "hunter2", "dev", "dev~1"]);
    assert_eq!(
        grep.status.code(),
        Some(1),
        "the secret is nowhere in history"
    );
}

#[test]
fn push_lands_the_commit_on_the_remote_branch() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    let remote = dir.path().join("remote.git");
    let init = Command::new("git")
        .args(["init", "--bare", "--quiet"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(init.success());
    let remote_str = remote.to_str().unwrap();

    let first = h.commit(&files(&[("a", "1\n")]), "first").unwrap().unwrap();
    h.push(remote_str).unwrap();
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/dev"]).trim(),
        first.id
    );

    let second = h
        .commit(&files(&[("a", "2\n")]), "second")
        .unwrap()
        .unwrap();
    h.push(remote_str).unwrap();
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/dev"]).trim(),
        second.id
    );
    assert_eq!(subjects(&remote), ["second", "first"]);
    assert_eq!(git(&repo, &["rev-parse", "dev"]).trim(), second.id);
}

#[test]
fn push_to_a_missing_remote_fails_clearly_and_keeps_the_commit() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    let info = h.commit(&files(&[("a", "1\n")]), "first").unwrap().unwrap();
    let missing = dir.path().join("no-such-remote.git");
    let err = h.push(missing.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, GitopsError::PushFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no-such-remote.git"), "{text}");
    assert!(
        text.contains("does not appear to be a git repository"),
        "git's stderr is in the error: {text}"
    );
    assert!(text.contains("kept locally"), "{text}");
    assert_eq!(h.head().unwrap().as_deref(), Some(info.id.as_str()));
    assert_eq!(git(&repo, &["rev-parse", "dev"]).trim(), info.id);
}

#[test]
fn concurrent_writers_lose_no_commit() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, repo) = new_history(&dir);
    const WRITERS: usize = 4;
    const COMMITS: usize = 5;
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let repo = repo.clone();
                s.spawn(move || {
                    let h = History::open_or_init(&repo, "dev", author()).unwrap();
                    (0..COMMITS)
                        .map(|c| {
                            let set = files(&[("writer", &format!("{w}/{c}\n"))]);
                            h.commit(&set, &format!("writer {w} commit {c}"))
                                .unwrap()
                                .expect("distinct content always commits")
                                .id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let on_branch = git(&repo, &["rev-list", "dev"]);
    let on_branch: Vec<&str> = on_branch.lines().collect();
    assert_eq!(on_branch.len(), WRITERS * COMMITS, "{on_branch:?}");
    for id in &ids {
        assert!(on_branch.contains(&id.as_str()), "commit {id} was lost");
    }
}

#[test]
fn refuses_paths_that_are_not_bare_repositories() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "not a repo").unwrap();
    let err = History::open_or_init(&occupied, "dev", author()).unwrap_err();
    assert!(matches!(err, GitopsError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("occupied"), "{err}");
    assert_eq!(
        std::fs::read_dir(&occupied).unwrap().count(),
        1,
        "left untouched"
    );

    let worktree = dir.path().join("worktree");
    let status = Command::new("git")
        .args(["init", "--quiet"])
        .arg(&worktree)
        .status()
        .unwrap();
    assert!(status.success());
    let err = History::open_or_init(&worktree, "dev", author()).unwrap_err();
    assert!(matches!(err, GitopsError::NotBare { .. }), "{err:?}");

    let fresh = dir.path().join("x.git");
    let err = History::open_or_init(&fresh, "bad..name", author()).unwrap_err();
    assert!(matches!(err, GitopsError::InvalidBranch { .. }), "{err:?}");
    assert!(!fresh.exists(), "nothing created for a bad branch");
}

#[test]
fn bad_paths_and_subjects_are_refused_and_commit_nothing() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, repo) = new_history(&dir);
    let first = h.commit(&files(&[("a", "1\n")]), "first").unwrap().unwrap();
    for bad in ["../escape", "/abs", ".git/config", "a//b"] {
        let err = h.commit(&files(&[(bad, "x\n")]), "bad").unwrap_err();
        assert!(
            matches!(err, GitopsError::InvalidPath { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(bad), "{err}");
    }
    let err = h.commit(&files(&[("b", "1\n")]), "two\nlines").unwrap_err();
    assert!(matches!(err, GitopsError::InvalidSubject { .. }), "{err:?}");
    assert_eq!(git(&repo, &["rev-parse", "dev"]).trim(), first.id);
    assert_eq!(subjects(&repo), ["first"]);
}

#[test]
fn push_never_overwrites_a_remote_branch_that_diverged() {
    if !git_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (h, _) = new_history(&dir);
    // The remote's dev branch was written by someone else (another History on another repo).
    let other = History::open_or_init(&dir.path().join("other.git"), "dev", author()).unwrap();
    let theirs = other
        .commit(&files(&[("theirs", "1\n")]), "theirs")
        .unwrap()
        .unwrap();
    let remote = dir.path().join("remote.git");
    let init = Command::new("git")
        .args(["init", "--bare", "--quiet"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(init.success());
    other.push(remote.to_str().unwrap()).unwrap();

    h.commit(&files(&[("ours", "1\n")]), "ours")
        .unwrap()
        .unwrap();
    let err = h.push(remote.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, GitopsError::PushFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("rejected"), "git's reason: {err}");
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/dev"]).trim(),
        theirs.id
    );
}
