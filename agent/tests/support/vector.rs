//! The real Vector on what the agent renders: `vector validate` parses the config with
//! Vector's own loader, checks every component's options and compiles each VRL program with
//! Vector's VRL. Found by `ids2_agent::vector::locate` ($IDS2_VECTOR, PATH, the shared build);
//! without one the check is skipped with a message (CI has it).
// Each test binary that includes this uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The Vector to run, or `None` after printing why the check is skipped.
pub fn located() -> Option<PathBuf> {
    match ids2_agent::vector::locate() {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("SKIP: `vector validate` needs Vector: {why}; CI has it");
            None
        }
    }
}

/// `vector validate` on `text`, with the environment the agent gives Vector. Environment checks
/// (data directory, files, health checks) are left out: the paths are the sensor's. Returns
/// Vector's verdict and output; `None` when Vector is not available.
pub fn check(text: &str) -> Option<(bool, String)> {
    check_merged(&[text])
}

/// [`check`] on several files that Vector merges into one config, as it merges its
/// `--config` files (`vector.toml` and the Redis copy's `vector-redis.toml`).
pub fn check_merged(texts: &[&str]) -> Option<(bool, String)> {
    let vector = located()?;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.path().join(format!("part{i}.toml"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let (var, on) = ids2_agent::vector::INTERPOLATION_ENV;
    let out = Command::new(vector)
        .args(["validate", "--no-environment"])
        .args(&paths)
        .env(var, on)
        // Referenced by basic auth; the value is never in the file.
        .env("IDS2_OPENSEARCH_PASSWORD", "placeholder")
        .output()
        .expect("run vector validate");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), output))
}

/// Fails the test, with Vector's output, when the real Vector refuses `text` (`label` names the
/// variant); prints a skip message when Vector is not available.
pub fn validate(label: &str, text: &str) {
    validate_merged(label, &[text]);
}

/// [`validate`] on files Vector merges into one config.
pub fn validate_merged(label: &str, texts: &[&str]) {
    if let Some((ok, output)) = check_merged(texts) {
        assert!(ok, "Vector refuses the {label} config:\n{output}");
    }
}
