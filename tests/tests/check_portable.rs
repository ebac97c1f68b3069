//! `tests/check-portable.sh`, the test command's proof that `ids2-provision` builds on macOS,
//! must be able to fail: on a copy of this workspace it passes, and fails naming the crate once
//! a Linux-only dependency (or the agent itself) is planted in `provision/Cargo.toml`, or the lab
//! in the agent's.
//! Resolution only (`cargo tree`, `cargo update --offline` for the planted edge): nothing is
//! built, and every crate involved is already in Cargo.lock.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// A copy of the checkout's files (tracked and new, not ignored: no target/) in a temp dir.
fn copy_workspace() -> tempfile::TempDir {
    let root = workspace();
    let out = Command::new("git")
        .args(["ls-files", "-z", "-co", "--exclude-standard"])
        .current_dir(&root)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files in {}", root.display());
    let copy = tempfile::tempdir().unwrap();
    for file in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(file).unwrap());
        let (from, to) = (root.join(rel), copy.path().join(rel));
        // A file deleted but not yet staged is still listed; it is not part of the tree.
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    copy
}

/// Runs the check on `dir`: (passed, output).
fn check(dir: &Path) -> (bool, String) {
    let out = Command::new(workspace().join("tests/check-portable.sh"))
        .arg(dir)
        .output()
        .expect("the check runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Adds `line` to `table` of the copy's `crate_dir/Cargo.toml` and records the new edge in its
/// Cargo.lock (offline: every crate planted is already locked).
fn plant(dir: &Path, crate_dir: &str, table: &str, line: &str) {
    let manifest = dir.join(crate_dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let planted = text.replacen(&format!("{table}\n"), &format!("{table}\n{line}\n"), 1);
    assert_ne!(planted, text, "{crate_dir}/Cargo.toml has a {table} table");
    std::fs::write(&manifest, planted).unwrap();
    let status = Command::new(env!("CARGO"))
        .args(["update", "--offline", "--workspace", "--quiet"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "cargo update --offline --workspace");
}

#[test]
fn the_portability_check_passes_here_and_fails_on_a_planted_linux_only_dependency() {
    let copy = copy_workspace();
    let (ok, out) = check(copy.path());
    assert!(ok, "the unmodified workspace passes:\n{out}");
    assert!(
        out.contains("ids2-provision for aarch64-apple-darwin:")
            && out.contains("ids2-provision for x86_64-apple-darwin:"),
        "{out}"
    );

    plant(
        copy.path(),
        "provision",
        "[dependencies]",
        r#"rtnetlink = "0.24.0""#,
    );
    let (ok, out) = check(copy.path());
    assert!(!ok, "a netlink dependency must fail the check:\n{out}");
    assert!(
        out.contains(
            "FAIL: ids2-provision for aarch64-apple-darwin depends on Linux-only crates: rtnetlink"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "ids2-provision for x86_64-apple-darwin depends on Linux-only crates: rtnetlink"
        ),
        "{out}"
    );
}

#[test]
fn the_portability_check_fails_when_provision_depends_on_the_agent_again() {
    let copy = copy_workspace();
    plant(
        copy.path(),
        "provision",
        "[dependencies]",
        r#"ids2-agent = { path = "../agent" }"#,
    );
    let (ok, out) = check(copy.path());
    assert!(!ok, "provision on the agent must fail the check:\n{out}");
    for crate_name in ["ids2-agent", "rtnetlink", "zbus", "sd-notify"] {
        assert!(
            out.lines().any(
                |l| l.contains("FAIL: ids2-provision for aarch64-apple-darwin")
                    && l.split_whitespace().any(|w| w == crate_name)
            ),
            "{crate_name} not named:\n{out}"
        );
    }
}

#[test]
fn the_portability_check_fails_when_the_agent_depends_on_the_lab() {
    let copy = copy_workspace();
    // Even a test-only edge: the lab's code would be one `use` away from the sensor.
    plant(
        copy.path(),
        "agent",
        "[dev-dependencies]",
        r#"ids2-lab = { path = "../lab" }"#,
    );
    let (ok, out) = check(copy.path());
    assert!(!ok, "the agent on the lab must fail the check:\n{out}");
    assert!(
        out.contains("FAIL: ids2-agent depends on ids2-lab"),
        "{out}"
    );
}
