//! `ids2-agent apply` and its git history, verified with the real `git` CLI: one commit per
//! effective change, none for a no-op or a refused change, and a push to a configured remote.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

struct Sensor {
    dir: tempfile::TempDir,
}

impl Sensor {
    fn new() -> Option<Self> {
        if Std::new("git").arg("--version").output().is_err() {
            eprintln!("SKIP: needs the git CLI to verify the history; CI installs it");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // PATH for the agent: git (pushes run it) but no Suricata.
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let git = String::from_utf8(
            Std::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        std::os::unix::fs::symlink(git.trim(), bin.join("git")).unwrap();
        Some(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes config.yaml with the given extra YAML and history settings inside the temp dir.
    fn config(&self, extra: &str, remote: Option<&Path>) -> PathBuf {
        let remote = remote
            .map(|r| format!(", remote: '{}'", r.display()))
            .unwrap_or_default();
        let text = format!(
            "sensor: {{id: lab-1}}\n\
             opensearch: {{domain: ids2, region: eu-west-1, \
             endpoint: 'https://search-ids2-x.eu-west-1.es.amazonaws.com'}}\n\
             paths: {{rendered_dir: '{}'}}\n\
             history: {{repo: '{}', branch: dev{remote}}}\n{extra}",
            self.path("rendered").display(),
            self.path("history.git").display(),
        );
        let file = self.path("config.yaml");
        fs::write(&file, text).unwrap();
        file
    }

    /// `apply` with Suricata off PATH, so the check is skipped (the refused-change test below
    /// brings the real one).
    fn apply(&self, config: &Path) -> assert_cmd::assert::Assert {
        Command::cargo_bin("ids2-agent")
            .unwrap()
            .env_remove("IDS2_SURICATA")
            .env("PATH", self.path("bin"))
            .args(["apply", "--config"])
            .arg(config)
            .assert()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Std::new("git")
            .arg("--git-dir")
            .arg(self.path("history.git"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn subjects(&self) -> Vec<String> {
        self.git(&["log", "--format=%s", "dev"])
            .lines()
            .map(String::from)
            .collect()
    }
}

#[test]
fn one_commit_per_effective_change_and_none_for_a_no_op() {
    let Some(s) = Sensor::new() else { return };
    let config = s.config("", None);
    s.apply(&config)
        .success()
        .stdout(predicate::str::contains("history").and(predicate::str::contains("committed")));
    s.apply(&config)
        .success()
        .stdout(predicate::str::contains("no change to record"));
    assert_eq!(s.subjects().len(), 1);

    let config = s.config("suricata: {memory_mb: 768}\n", None);
    s.apply(&config).success();
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].starts_with("apply generation 2"),
        "{subjects:?}"
    );

    // The commit names what changed and the tree holds exactly the active files.
    let message = s.git(&["log", "-1", "--format=%B", "dev"]);
    assert!(message.contains("M config.yaml"), "{message}");
    assert!(message.contains("M suricata.yaml"), "{message}");
    let tree = s.git(&["ls-tree", "-r", "--name-only", "dev"]);
    let active: Vec<_> = tree.lines().collect();
    for name in &active {
        let on_disk = fs::read(s.path("rendered/current").join(name)).unwrap();
        let in_git = Std::new("git")
            .arg("--git-dir")
            .arg(s.path("history.git"))
            .args(["show", &format!("dev:{name}")])
            .output()
            .unwrap()
            .stdout;
        assert_eq!(on_disk, in_git, "{name} differs from the active generation");
    }
    assert!(active.contains(&"rules/ids2.rules"), "{active:?}");
    s.git(&["fsck", "--strict"]);
}

#[test]
fn bad_config_touches_neither_the_files_nor_the_history() {
    let Some(s) = Sensor::new() else { return };
    let config = s.config("capture: {workers: 0}\n", None);
    s.apply(&config).code(2);
    assert!(!s.path("history.git").exists());
    assert!(!s.path("rendered").exists());
}

#[test]
fn a_change_suricata_refuses_is_neither_active_nor_recorded() {
    let suricata = match ids2_agent::suricata::Suricata::locate() {
        Ok(Some(s)) => s,
        _ => {
            eprintln!(
                "SKIP: needs Suricata 7 (`suricata` on PATH or $IDS2_SURICATA); CI installs it"
            );
            return;
        }
    };
    let Some(s) = Sensor::new() else { return };
    let config = s.config("", None);
    s.apply(&config).success();
    let head = s.git(&["rev-parse", "dev"]);
    let current = fs::read_link(s.path("rendered/current")).unwrap();

    let templates = s.path("templates");
    fs::create_dir_all(templates.join("rules")).unwrap();
    fs::write(
        templates.join("rules/ids2.rules"),
        "alert tcp any any -> any any (msg:\"broken\"; no_such_keyword; sid:9000099; rev:1;)\n",
    )
    .unwrap();
    Command::cargo_bin("ids2-agent")
        .unwrap()
        .env("IDS2_SURICATA", suricata.binary())
        .args(["apply", "--config"])
        .arg(&config)
        .arg("--templates")
        .arg(&templates)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no_such_keyword"));
    assert_eq!(
        s.git(&["rev-parse", "dev"]),
        head,
        "a refused change was committed"
    );
    assert_eq!(fs::read_link(s.path("rendered/current")).unwrap(), current);
}

#[test]
fn commits_are_pushed_to_the_configured_remote() {
    let Some(s) = Sensor::new() else { return };
    let remote = s.path("remote.git");
    let init = Std::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(init.success());
    let config = s.config("", Some(&remote));
    s.apply(&config).success();
    let ours = s.git(&["rev-parse", "dev"]);
    let theirs = Std::new("git")
        .arg("--git-dir")
        .arg(&remote)
        .args(["rev-parse", "refs/heads/dev"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(theirs.stdout).unwrap(), ours);
}

#[test]
fn an_unreachable_remote_warns_but_keeps_the_applied_change() {
    let Some(s) = Sensor::new() else { return };
    let config = s.config("", Some(&s.path("no-such-remote.git")));
    s.apply(&config)
        .success()
        .stderr(predicate::str::contains("warning").and(predicate::str::contains("push")));
    assert_eq!(s.subjects().len(), 1, "the commit stays local");
    assert!(s.path("rendered/current/suricata.yaml").is_file());
}
