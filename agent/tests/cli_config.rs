//! The `render`/`apply`/`check-config` commands as an operator runs them: bad input exits 2 and
//! leaves the output directory byte-for-byte as it was; a failed Suricata check exits 1 and
//! keeps the previous generation active.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const GOOD: &str = "sensor: {id: lab-1, name: Lab}\n\
    opensearch: {domain: ids2, region: eu-west-1, \
    endpoint: 'https://search-ids2-x.eu-west-1.es.amazonaws.com'}\n";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml")
}

fn agent() -> Command {
    let mut cmd = Command::cargo_bin("ids2-agent").unwrap();
    // The commands never need a real Suricata unless a test says so; the skipped-check
    // warning is exercised on purpose below.
    cmd.env_remove("IDS2_SURICATA");
    cmd
}

/// An agent that cannot find Suricata: PATH points at an empty directory.
fn agent_without_suricata(empty: &Path) -> Command {
    let mut cmd = agent();
    cmd.env("PATH", empty);
    cmd
}

/// Every entry under `root` (files with contents, symlinks with targets, directories).
fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link {}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                out.insert(
                    rel,
                    format!(
                        "file {}",
                        String::from_utf8_lossy(&fs::read(&path).unwrap())
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A temp dir with a config file and an output dir that already holds one good generation.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let setup = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(setup.empty_bin()).unwrap();
        setup.write_config(GOOD);
        agent_without_suricata(&setup.empty_bin())
            .args(["render", "--config"])
            .arg(setup.config())
            .arg("--out")
            .arg(setup.out())
            .assert()
            .success();
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn empty_bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    fn write_config(&self, text: &str) {
        fs::write(self.config(), text).unwrap();
    }

    /// Runs `render` on the current config file and asserts exit code 2 with nothing changed.
    fn refused(&self, stderr: impl Predicate<str>) -> String {
        let before = snapshot_tree(&self.out());
        let assert = agent_without_suricata(&self.empty_bin())
            .args(["render", "--config"])
            .arg(self.config())
            .arg("--out")
            .arg(self.out())
            .assert()
            .code(2)
            .stderr(stderr);
        assert_eq!(
            snapshot_tree(&self.out()),
            before,
            "output dir changed on bad input"
        );
        String::from_utf8(assert.get_output().stderr.clone()).unwrap()
    }
}

#[test]
fn missing_config_file_exits_2() {
    let setup = Setup::new();
    fs::remove_file(setup.config()).unwrap();
    setup.refused(predicate::str::contains("cannot read config file"));
}

#[test]
fn a_file_that_is_not_utf8_exits_2_naming_the_byte() {
    let setup = Setup::new();
    fs::write(
        setup.config(),
        [GOOD.as_bytes(), b"capture: {interface: eth\xff}\n"].concat(),
    )
    .unwrap();
    setup.refused(predicate::str::contains(
        "not UTF-8 text: byte 0xff at line 3, column 25",
    ));
    // check-config, the operator's first step, says the same with the same code.
    agent()
        .arg("check-config")
        .arg(setup.config())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("save the file as UTF-8"));
}

#[test]
fn yaml_syntax_error_shows_line_and_column() {
    let setup = Setup::new();
    setup.write_config(&format!("{GOOD}capture:\n  home_net: [10.0.0.0/8\n"));
    setup.refused(predicate::str::is_match(r"YAML syntax error at line \d+, column \d+").unwrap());
}

#[test]
fn unknown_key_gets_a_hint() {
    let setup = Setup::new();
    setup.write_config(&format!("{GOOD}capture: {{interfce: eth1}}\n"));
    setup.refused(
        predicate::str::contains("capture.interfce")
            .and(predicate::str::contains("did you mean `interface`")),
    );
}

#[test]
fn three_bad_values_all_reported() {
    let setup = Setup::new();
    setup.write_config(&format!(
        "{GOOD}capture: {{workers: 0}}\nsuricata: {{memory_mb: 5}}\n\
         resources: {{cpu_max_percent: 150}}\n"
    ));
    setup.refused(
        predicate::str::contains("3 problems")
            .and(predicate::str::contains("capture.workers"))
            .and(predicate::str::contains("suricata.memory_mb"))
            .and(predicate::str::contains("resources.cpu_max_percent")),
    );
}

#[test]
fn inline_secret_refused_without_echoing_it() {
    let setup = Setup::new();
    setup.write_config(
        "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1, \
         endpoint: 'https://h.example', auth: {method: basic, username: u, \
         password: hunter2-inline}}\n",
    );
    let stderr = setup.refused(predicate::str::contains("opensearch.auth.password"));
    assert!(!stderr.contains("hunter2-inline"), "{stderr}");
}

#[test]
fn missing_endpoint_refused_by_name() {
    let setup = Setup::new();
    setup.write_config("sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n");
    setup.refused(predicate::str::contains("opensearch.endpoint is not set"));
}

#[test]
fn unchanged_render_touches_nothing_and_warns_about_skipped_check() {
    let setup = Setup::new();
    let before = snapshot_tree(&setup.out());
    agent_without_suricata(&setup.empty_bin())
        .args(["render", "--config"])
        .arg(setup.config())
        .arg("--out")
        .arg(setup.out())
        .assert()
        .success()
        .stdout(predicate::str::contains("unchanged"))
        .stderr(predicate::str::contains("skipped the `suricata -T` check"));
    assert_eq!(snapshot_tree(&setup.out()), before);
}

#[test]
fn changed_config_makes_a_new_generation() {
    let setup = Setup::new();
    setup.write_config(&format!("{GOOD}suricata: {{memory_mb: 768}}\n"));
    agent_without_suricata(&setup.empty_bin())
        .args(["render", "--no-validate", "--config"])
        .arg(setup.config())
        .arg("--out")
        .arg(setup.out())
        .assert()
        .success()
        .stdout(predicate::str::contains("generation 2 is current"))
        .stderr(predicate::str::contains("--no-validate"));
    assert_eq!(
        fs::read_link(setup.out().join("current")).unwrap(),
        Path::new("generations/2")
    );
    let config = fs::read_to_string(setup.out().join("current/config.yaml")).unwrap();
    assert!(config.contains("memory_mb: 768"), "{config}");
}

#[test]
fn apply_defaults_to_the_configs_rendered_dir() {
    let setup = Setup::new();
    let rendered = setup.dir.path().join("rendered");
    setup.write_config(&format!(
        "{GOOD}paths: {{rendered_dir: {}}}\nhistory: {{repo: {}}}\n",
        rendered.display(),
        setup.dir.path().join("history.git").display()
    ));
    agent_without_suricata(&setup.empty_bin())
        .args(["apply", "--config"])
        .arg(setup.config())
        .assert()
        .success()
        .stdout(predicate::str::contains("generation 1 is current"));
    assert!(rendered.join("current/suricata.yaml").is_file());
}

#[test]
fn a_missing_ids2_suricata_binary_is_an_error() {
    let setup = Setup::new();
    setup.write_config(&format!("{GOOD}suricata: {{memory_mb: 640}}\n"));
    let before = snapshot_tree(&setup.out());
    agent()
        .env("IDS2_SURICATA", setup.dir.path().join("no-such-suricata"))
        .args(["render", "--config"])
        .arg(setup.config())
        .arg("--out")
        .arg(setup.out())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("IDS2_SURICATA="));
    assert_eq!(snapshot_tree(&setup.out()), before);
}

#[test]
fn example_config_renders() {
    let dir = tempfile::tempdir().unwrap();
    agent_without_suricata(dir.path())
        .args(["render", "--config"])
        .arg(example())
        .arg("--out")
        .arg(dir.path().join("out"))
        .assert()
        .success()
        .stdout(predicate::str::contains("generation 1 is current"));
    let toml = fs::read_to_string(dir.path().join("out/current/vector.toml")).unwrap();
    assert!(toml.contains("https://search-ids2-example.eu-west-1.es.amazonaws.com"));
}

#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["render", "--help"],
        &["apply", "--help"],
        &["check-config", "--help"],
    ] {
        agent()
            .args(args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage"));
    }
}

#[test]
fn failed_suricata_check_keeps_previous_files_and_exits_1() {
    let suricata = match ids2_agent::suricata::Suricata::locate() {
        Ok(Some(s)) => s,
        _ => {
            eprintln!(
                "SKIP: needs Suricata 7 (`suricata` on PATH or $IDS2_SURICATA); CI installs it"
            );
            return;
        }
    };
    let setup = Setup::new();
    let before = snapshot_tree(&setup.out());
    let templates = setup.dir.path().join("templates");
    fs::create_dir_all(templates.join("rules")).unwrap();
    fs::write(
        templates.join("rules/ids2.rules"),
        "alert tcp any any -> any any (msg:\"broken\"; no_such_keyword; sid:9000099; rev:1;)\n",
    )
    .unwrap();
    agent()
        .env("IDS2_SURICATA", suricata.binary())
        .args(["render", "--config"])
        .arg(setup.config())
        .arg("--out")
        .arg(setup.out())
        .arg("--templates")
        .arg(&templates)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("suricata -T rejected")
                .and(predicate::str::contains("no_such_keyword")),
        );
    assert_eq!(
        snapshot_tree(&setup.out()),
        before,
        "the previous generation must stay current and untouched"
    );

    // The same templates with a valid rule pass the real check and become current.
    fs::write(
        templates.join("rules/ids2.rules"),
        "alert tcp any any -> any any (msg:\"ok\"; content:\"x\"; sid:9000099; rev:1;)\n",
    )
    .unwrap();
    agent()
        .env("IDS2_SURICATA", suricata.binary())
        .args(["render", "--config"])
        .arg(setup.config())
        .arg("--out")
        .arg(setup.out())
        .arg("--templates")
        .arg(&templates)
        .assert()
        .success()
        .stdout(predicate::str::contains("generation 2 is current"));
}
