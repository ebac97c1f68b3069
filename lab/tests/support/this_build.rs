//! Finds the `ids2-agent` binary of this very build for the lab's tests that run the real
//! agent (`lab.rs`, `spoofed_flood.rs`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `ids2-agent` binary of this very build, never built here: cargo gives a test only its
/// own package's binaries (`CARGO_BIN_EXE_ids2-lab`), and the test command
/// (`cargo nextest run --workspace`) builds `ids2-agent` into the same directory with the same
/// features. (A `cargo build -p ids2-agent` inside the test once re-resolved features and
/// rebuilt half the tree, ~110 s of each clean CI run.) A missing or stale binary — one older
/// than a source of the agent, its core or its templates, as after
/// `cargo nextest run -p ids2-lab` alone — fails the test with the command that builds it,
/// rather than testing yesterday's agent.
pub fn agent_of_this_build() -> PathBuf {
    let lab = Path::new(env!("CARGO_BIN_EXE_ids2-lab"));
    let agent = lab.with_file_name(format!("ids2-agent{}", std::env::consts::EXE_SUFFIX));
    let built = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(agent_built) = built(&agent) else {
        panic!(
            "{} is missing: build it with the lab (`cargo build -p ids2-agent`, or run the \
             tests with --workspace)",
            agent.display()
        );
    };
    // Sources rather than the agent's rlibs: `cargo nextest run -p ids2-agent` leaves a
    // second, newer rlib of other features beside the one a workspace build links.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = ["agent/src", "core/src", "templates"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let mut newest_input = SystemTime::UNIX_EPOCH;
    // The scenario files are the lab's, not the agent's (it must not embed them).
    let scenarios = root.join("templates/scenarios");
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path == scenarios {
                continue;
            } else if path.is_dir() {
                dirs.push(path);
            } else if let Some(t) = built(&path) {
                newest_input = newest_input.max(t);
            }
        }
    }
    assert!(
        agent_built >= newest_input,
        "{} is older than the agent's code: rebuild it (`cargo build -p ids2-agent`, or run the \
         tests with --workspace)",
        agent.display()
    );
    agent
}
