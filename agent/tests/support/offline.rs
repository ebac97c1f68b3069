//! Suricata reading captures offline with a config the agent rendered, for the tests and
//! benches that need real EVE from the corpus.
// Each test binary that includes this uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ids2_agent::apply::{self, Validator};
use ids2_agent::config::Settings;
use ids2_agent::evidence::{pcap, AlertRef};
use ids2_agent::render::RenderOptions;
use ids2_agent::suricata::Suricata;

/// Renders `s` into its `rendered_dir` and checks it with `suricata -T`, with `rules` (when
/// given) as the downloaded rule set in its `rules_dir`; the logs and rules directories made.
pub fn render_checked(suricata: &Suricata, s: &Settings, rules: Option<&str>) {
    fs::create_dir_all(&s.config.logs.path).unwrap();
    fs::create_dir_all(&s.config.suricata.rules_dir).unwrap();
    if let Some(rules) = rules {
        fs::write(
            Path::new(&s.config.suricata.rules_dir).join("suricata.rules"),
            rules,
        )
        .unwrap();
    }
    apply::render_to(
        s,
        &RenderOptions::default(),
        Path::new(&s.config.paths.rendered_dir),
        &Validator::Suricata(suricata.clone()),
    )
    .unwrap();
}

/// Copies `pcaps` into `dir` for `suricata -r dir`, which reads a directory in the order of its
/// files' mtimes: each copy's mtime is set so they are read in the order of their first
/// packets. Replayed out of that order, Suricata's clock runs backwards between captures and its
/// flow manager, seeing the flows of an older capture as years idle, may time one out midway and
/// log it as two flows, depending on how the threads are scheduled. A file this crate's reader
/// cannot read (not a classic pcap) goes last; every corpus capture is a classic pcap.
pub fn stage(pcaps: &[PathBuf], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let first_packet = |p: &PathBuf| {
        let file = fs::File::open(p).unwrap();
        pcap::Reader::new(file)
            .ok()
            .and_then(|mut r| r.next_record())
            .map_or(i64::MAX, |r| r.ts_us)
    };
    let mut ordered: Vec<(i64, &PathBuf)> = pcaps.iter().map(|p| (first_packet(p), p)).collect();
    ordered.sort();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for (i, (_, p)) in ordered.into_iter().enumerate() {
        let copy = dir.join(p.file_name().unwrap());
        fs::copy(p, &copy).unwrap();
        fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(base + Duration::from_secs(i as u64))
            .unwrap();
    }
}

/// `suricata -r input` (a capture or a directory of them) with `config` and `extra`
/// arguments, logging to `out`: one thread, so EVE is in packet order; no checksum checks
/// (captures are often of offloaded traffic); no unix socket. Fails with Suricata's output.
pub fn suricata_r(suricata: &Suricata, config: &Path, input: &Path, out: &Path, extra: &[&OsStr]) {
    let output = Command::new(suricata.binary())
        .arg("-c")
        .arg(config)
        .args(extra)
        .arg("-r")
        .arg(input)
        .arg("-l")
        .arg(out)
        .args(["-k", "none", "--runmode", "single"])
        .args(["--set", "unix-command.enabled=no"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "suricata -r failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The rendered `suricata.yaml` of `s`.
pub fn rendered_yaml(s: &Settings) -> std::path::PathBuf {
    Path::new(&s.config.paths.rendered_dir).join("current/suricata.yaml")
}

/// Alerts grouped by flow (their evidence stem), in the order their flows first alerted.
pub fn by_flow(alerts: impl IntoIterator<Item = AlertRef>) -> Vec<Vec<AlertRef>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<AlertRef>> = HashMap::new();
    for a in alerts {
        let stem = a.stem();
        if !groups.contains_key(&stem) {
            order.push(stem.clone());
        }
        groups.entry(stem).or_default().push(a);
    }
    order
        .into_iter()
        .map(|s| groups.remove(&s).unwrap())
        .collect()
}
