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

/// The rendered mapping run by the real Vector over `lines`: `vector.toml`'s enrichment tables,
/// log schema and the remaps `ecs` and `ecs_protocols`, fed by a `stdin` source in place of the
/// file source and printed as JSON by a `console` sink. The documents as Vector emits them, one
/// per line; `None` (after saying why) when Vector is not available.
pub fn run_mapping(text: &str, lines: &[String]) -> Option<Vec<serde_json::Value>> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let vector = located()?;
    let rendered: toml::Table = text.parse().expect("vector.toml is TOML");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: toml::Table = toml::from_str(
        r#"
        [sources.eve]
        type = "stdin"
        [sinks.out]
        type = "console"
        inputs = ["ecs_protocols"]
        encoding.codec = "json"
        "#,
    )
    .unwrap();
    let data_dir = dir.path().display().to_string();
    cfg.insert("data_dir".into(), data_dir.into());
    for key in ["enrichment_tables", "log_schema"] {
        if let Some(v) = rendered.get(key) {
            cfg.insert(key.into(), v.clone());
        }
    }
    let transforms = &rendered["transforms"];
    let mapping: toml::Table = ["ecs", "ecs_protocols"]
        .into_iter()
        .map(|name| (name.to_string(), transforms[name].clone()))
        .collect();
    cfg.insert("transforms".into(), mapping.into());
    let path = dir.path().join("mapping.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();

    let (var, on) = ids2_agent::vector::INTERPOLATION_ENV;
    let mut child = Command::new(vector)
        .args(["--quiet", "--config"])
        .arg(&path)
        .env(var, on)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vector");
    // Read on threads so that a full pipe never stalls Vector.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    // Vector ends at the end of its input, after the events have left the sink.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Vector did not end within 60 s of the end of its input");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "Vector on the mapping:\n{stderr}");
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("the console sink prints JSON"))
        .collect();
    assert_eq!(docs.len(), lines.len(), "{docs:?}");
    Some(docs)
}

/// The document of `docs` (from [`run_mapping`]) with the `event.id` of `want` (the mapper's
/// document of the same line); fails the test when Vector made none.
pub fn same_event<'a>(
    docs: &'a [serde_json::Value],
    want: &serde_json::Value,
) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["event"]["id"] == want["event"]["id"])
        .unwrap_or_else(|| panic!("Vector made no document of {want}: {docs:#?}"))
}
