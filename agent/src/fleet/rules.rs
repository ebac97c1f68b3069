//! Rule-set updates that never leave a sensor without working rules.
//!
//! One update: `suricata-update` downloads the configured sources into a staging directory
//! beside `suricata.rules_dir` (its own test disabled: `--no-test`), with the SIDs to enable
//! and disable and the thresholds from `fleet.rules`; the staged set is checked with
//! `suricata -T` against the active rendered config; only then is it renamed over
//! `<rules_dir>/suricata.rules` (the previous set kept as `suricata.rules.prev`), recorded in
//! the history on the `<history.branch>-rules` branch (rule count and SID diff in the
//! subject), and the running Suricata told to reload its rules over the unix socket — no
//! restart, so capture never stops. A failed download, an empty or broken set, or a refused
//! check changes nothing: the old rules stay active.
//!
//! The rules have their own branch because `apply` commits exactly the rendered generation
//! as the tree of the config branch; a rules file there would be dropped by the next apply.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::apply::CURRENT;
use crate::config::{RuleThreshold, Settings, ThresholdTrack, ThresholdType, RULE_SOURCE_ET_OPEN};
use crate::gitops::{Author, GitopsError, History};
use crate::metrics::Metrics;
use crate::render::{LOCAL_RULES, LOCAL_RULES_INDEX, SURICATA_YAML};
use crate::suricata::{Suricata, SuricataError};

use super::heartbeat::timestamp;
use super::socket::{SocketError, SuricataSocket};
pub use ids2_core::heartbeat::RuleSetState;
use ids2_core::heartbeat::UNLOADED_SUFFIX;

/// The rule set Suricata loads (`rule-files[0]`, relative to `default-rule-path`).
pub const RULES_FILE: &str = "suricata.rules";
/// The set replaced by the last update.
pub const PREVIOUS_FILE: &str = "suricata.rules.prev";
/// What the agent knows about the active set (read by the heartbeat).
pub use ids2_core::heartbeat::RULE_SET_STATE_FILE as STATE_FILE;
/// Environment variable naming the suricata-update binary (tests, NixOS store paths).
pub const SURICATA_UPDATE_ENV: &str = "IDS2_SURICATA_UPDATE";
/// Position of the downloaded set in `suricata.yaml`'s `rule-files`.
const RULE_SET_INDEX: usize = 0;
/// Longest wait for Suricata to swap in the new detection engine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of a tool's output an error carries.
const TAIL_LINES: usize = 15;

/// The enabled rules of a set by SID: revision and a hash of the rule text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    rules: BTreeMap<u64, (u64, String)>,
}

impl RuleSet {
    /// Parses rule text; commented-out (disabled) rules and lines without a `sid` are skipped.
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let sid = option_number(l, "sid")?;
                let rev = option_number(l, "rev").unwrap_or(0);
                Some((sid, (rev, hex8(l.as_bytes()))))
            })
            .collect();
        Self { rules }
    }

    /// Enabled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is enabled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// SIDs added, removed and changed (same SID, other text) from `old` to `self`.
    pub fn diff(&self, old: &RuleSet) -> SidDiff {
        let added = self
            .rules
            .keys()
            .filter(|s| !old.rules.contains_key(s))
            .count();
        let removed = old
            .rules
            .keys()
            .filter(|s| !self.rules.contains_key(s))
            .count();
        let changed = self
            .rules
            .iter()
            .filter(|(s, v)| old.rules.get(s).is_some_and(|o| o != *v))
            .count();
        SidDiff {
            added,
            removed,
            changed,
        }
    }

    /// One line per rule, `sid<TAB>rev<TAB>hash`: the record committed to the history.
    pub fn manifest(&self) -> String {
        self.rules
            .iter()
            .map(|(sid, (rev, hash))| format!("{sid}\t{rev}\t{hash}\n"))
            .collect()
    }
}

/// The numeric value of a rule option such as `sid:2019401;`.
fn option_number(rule: &str, name: &str) -> Option<u64> {
    rule.split(';').find_map(|opt| {
        let (k, v) = opt.split_once(':')?;
        (k.trim() == name).then(|| v.trim().parse().ok())?
    })
}

fn hex8(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..4])
}

/// How the enabled rules changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SidDiff {
    /// New SIDs.
    pub added: usize,
    /// SIDs no longer enabled.
    pub removed: usize,
    /// SIDs whose rule text changed.
    pub changed: usize,
}

impl fmt::Display for SidDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{} -{} ~{}", self.added, self.removed, self.changed)
    }
}

/// What an update did to the running Suricata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Suricata reloaded; it reports this many rules loaded and failed.
    Done {
        /// `rules_loaded` from `ruleset-stats`.
        loaded: u64,
        /// `rules_failed` from `ruleset-stats`.
        failed: u64,
    },
    /// No Suricata listens on the socket; it loads the set when it starts.
    NotRunning,
    /// The set did not change and Suricata already runs it.
    NotNeeded,
}

/// The outcome of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    /// The active set now.
    pub state: RuleSetState,
    /// How the enabled rules changed; `None` when the set is unchanged.
    pub diff: Option<SidDiff>,
    /// The history commit recording the change.
    pub commit: Option<String>,
    /// What Suricata did.
    pub reload: Reload,
}

impl fmt::Display for UpdateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.diff {
            None => write!(
                f,
                "rule set unchanged: version {}, {} rules",
                self.state.version, self.state.rules
            )?,
            Some(d) => write!(
                f,
                "rule set updated to version {}: {} rules ({d})",
                self.state.version, self.state.rules
            )?,
        }
        if let Some(c) = &self.commit {
            write!(f, "; recorded as {c}")?;
        }
        match &self.reload {
            Reload::Done { loaded, failed } => write!(
                f,
                "; Suricata reloaded ({loaded} rules loaded, {failed} failed)"
            ),
            Reload::NotRunning => write!(f, "; Suricata is not running: it loads them at start"),
            Reload::NotNeeded => Ok(()),
        }
    }
}

/// Why an update failed. In every case the previous rule set is still active.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// No rendered config to check the rules against.
    #[error(
        "no active rendered configuration at {}: run `ids2-agent apply` first (the rules are \
         checked against it)", path.display()
    )]
    NoRenderedConfig {
        /// The missing file.
        path: PathBuf,
    },
    /// A tool is not installed.
    #[error("{tool} is not installed: install it, or set {env} to its path")]
    MissingTool {
        /// The tool.
        tool: &'static str,
        /// The variable that names it.
        env: &'static str,
    },
    /// Suricata could not be located.
    #[error(transparent)]
    Suricata(#[from] SuricataError),
    /// suricata-update failed (download, extraction, filters).
    #[error("suricata-update failed ({status}); the previous rules stay active:\n{output}")]
    Download {
        /// Exit status.
        status: String,
        /// Its last lines of output.
        output: String,
    },
    /// The new set has no enabled rule: installing it would stop detection.
    #[error(
        "the downloaded rule set has no enabled rule (sources {sources:?}); refusing it, the \
         previous rules stay active"
    )]
    Empty {
        /// The configured sources.
        sources: Vec<String>,
    },
    /// `suricata -T` refused the new set.
    #[error("suricata -T refused the new rule set; the previous rules stay active:\n{reason}")]
    Rejected {
        /// Suricata's error lines.
        reason: String,
    },
    /// The change could not be recorded; the previous set was put back.
    #[error("cannot record the rule update in the history; the previous rules are active again")]
    History(#[source] GitopsError),
    /// The new rules are installed and recorded, but the running Suricata did not reload.
    #[error(
        "the new rules are installed and recorded, but Suricata did not reload them (it loads \
         them at its next start; the next update retries the reload)"
    )]
    Reload(#[source] SocketError),
    /// A file-system step failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RulesError {
    let path = path.to_path_buf();
    move |source| RulesError::Io {
        action,
        path,
        source,
    }
}

/// Runs rule-set updates for one sensor.
#[derive(Debug, Clone)]
pub struct RuleUpdater {
    settings: Settings,
    suricata: Suricata,
    suricata_update: PathBuf,
    rendered_dir: PathBuf,
}

impl RuleUpdater {
    /// Finds Suricata and suricata-update (`$IDS2_SURICATA`, `$IDS2_SURICATA_UPDATE`, else
    /// `PATH`) and checks against `<paths.rendered_dir>/current`.
    pub fn for_settings(settings: &Settings) -> Result<Self, RulesError> {
        let suricata = Suricata::locate()?.ok_or(RulesError::MissingTool {
            tool: "suricata",
            env: crate::suricata::BINARY_ENV,
        })?;
        let suricata_update = locate_suricata_update().ok_or(RulesError::MissingTool {
            tool: "suricata-update",
            env: SURICATA_UPDATE_ENV,
        })?;
        Ok(Self {
            settings: settings.clone(),
            suricata,
            suricata_update,
            rendered_dir: PathBuf::from(&settings.config.paths.rendered_dir),
        })
    }

    /// Checks against the generations in `dir` instead of `paths.rendered_dir`.
    pub fn with_rendered_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.rendered_dir = dir.into();
        self
    }

    fn rules_dir(&self) -> PathBuf {
        PathBuf::from(&self.settings.config.suricata.rules_dir)
    }

    /// [`Self::update`], with the outcome recorded in the metrics and logged.
    pub fn update_recorded(&self, metrics: &Metrics) -> Result<UpdateReport, RulesError> {
        let result = self.update();
        let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
        metrics.rules_last_update.set(&[], now);
        match &result {
            Ok(report) => {
                metrics.rules_update_success.set(&[], 1.0);
                let loaded = match report.reload {
                    Reload::Done { loaded, .. } => loaded,
                    _ => report.state.rules,
                };
                metrics.rules_loaded.set(&[], loaded as f64);
                tracing::info!("{report}");
            }
            Err(e) => {
                metrics.rules_update_success.set(&[], 0.0);
                let chain =
                    std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                tracing::error!("rule update failed: {chain}");
            }
        }
        result
    }

    /// Downloads, checks, swaps, records and reloads; see the module docs.
    pub fn update(&self) -> Result<UpdateReport, RulesError> {
        let current = self.rendered_dir.join(CURRENT);
        let config = current.join(SURICATA_YAML);
        if !config.is_file() {
            return Err(RulesError::NoRenderedConfig { path: config });
        }
        let rules_dir = self.rules_dir();
        fs::create_dir_all(&rules_dir).map_err(io("create", &rules_dir))?;
        let cache = PathBuf::from(&self.settings.config.fleet.rules.cache_dir);
        fs::create_dir_all(&cache).map_err(io("create", &cache))?;
        // Same file system as the rules: the swap is a rename.
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&rules_dir)
            .map_err(io("create a staging directory in", &rules_dir))?;
        let staged = self.download(staging.path(), &cache)?;
        let bytes = fs::read(&staged).map_err(io("read", &staged))?;
        let new_set = RuleSet::parse(&String::from_utf8_lossy(&bytes));
        let sources = self.settings.config.fleet.rules.sources.clone();
        if new_set.is_empty() {
            return Err(RulesError::Empty { sources });
        }
        let version = hex::encode(&Sha256::digest(&bytes)[..8]);
        let state = RuleSetState {
            version: version.clone(),
            rules: new_set.len() as u64,
            updated: timestamp(OffsetDateTime::now_utc()),
            sources,
        };
        let active = rules_dir.join(RULES_FILE);
        let old_bytes = match fs::read(&active) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &active)(e)),
        };
        let previous_state = RuleSetState::read(&rules_dir);
        if old_bytes.as_deref() == Some(bytes.as_slice()) {
            // Nothing new. A reload that failed last time is retried now.
            let reload = match &previous_state {
                Some(p) if p.version == version => Reload::NotNeeded,
                _ => self.reload()?,
            };
            write_state(&rules_dir, &state)?;
            return Ok(UpdateReport {
                state,
                diff: None,
                commit: None,
                reload,
            });
        }

        self.check(&current, &staged)?;

        let old_set = RuleSet::parse(&String::from_utf8_lossy(
            old_bytes.as_deref().unwrap_or_default(),
        ));
        let diff = new_set.diff(&old_set);
        let previous = rules_dir.join(PREVIOUS_FILE);
        if old_bytes.is_some() {
            let _ = fs::remove_file(&previous);
            // A hard link keeps the old set without a moment where suricata.rules is missing.
            fs::hard_link(&active, &previous).map_err(io("keep the previous set as", &previous))?;
        }
        fs::rename(&staged, &active).map_err(io("swap in", &active))?;
        sync_dir(&rules_dir)?;

        let commit = match self.record(&new_set, &state, &diff) {
            Ok(c) => c,
            Err(e) => {
                self.restore(old_bytes.is_some(), &active, &previous);
                return Err(RulesError::History(e));
            }
        };
        // Written before the reload: if the reload fails, the state names a version Suricata
        // may not run yet, and the next update's reload check sees a version to reload.
        let pending = RuleSetState {
            version: format!("{version}{UNLOADED_SUFFIX}"),
            ..state.clone()
        };
        write_state(&rules_dir, &pending)?;
        let reload = self.reload()?;
        write_state(&rules_dir, &state)?;
        Ok(UpdateReport {
            state,
            diff: Some(diff),
            commit,
            reload,
        })
    }

    /// Runs suricata-update into `staging/out`; returns the merged rules file.
    fn download(&self, staging: &Path, cache: &Path) -> Result<PathBuf, RulesError> {
        let r = &self.settings.config.fleet.rules;
        let out = staging.join("out");
        let conf = staging.join("conf");
        fs::create_dir_all(&conf).map_err(io("create", &conf))?;
        let write = |name: &str, text: String| -> Result<PathBuf, RulesError> {
            let path = conf.join(name);
            fs::write(&path, text).map_err(io("write", &path))?;
            Ok(path)
        };
        let sids = |list: &[u32]| list.iter().map(|s| format!("{s}\n")).collect::<String>();
        // An empty config file keeps the host's /etc/suricata/update.yaml out of the update.
        let update_yaml = write("update.yaml", "{}\n".into())?;
        // The fleet policy's `enable` entries join the configured ones.
        let mut enable_sids = r.enable_sids.clone();
        let policy_enable = self.rules_dir().join(super::policy::ENABLE_FILE);
        if let Ok(text) = fs::read_to_string(&policy_enable) {
            enable_sids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        enable_sids.sort_unstable();
        enable_sids.dedup();
        let enable = write("enable.conf", sids(&enable_sids))?;
        let disable = write("disable.conf", sids(&r.disable_sids))?;
        let modify = write("modify.conf", modify_conf(&r.thresholds))?;

        let mut cmd = Command::new(&self.suricata_update);
        cmd.arg("--config")
            .arg(&update_yaml)
            .arg("--data-dir")
            .arg(cache)
            .arg("--output")
            .arg(&out)
            .arg("--suricata")
            .arg(self.suricata.binary())
            .args(["--no-test", "--no-reload", "--now", "--fail"])
            .arg("--enable-conf")
            .arg(&enable)
            .arg("--disable-conf")
            .arg(&disable)
            .arg("--modify-conf")
            .arg(&modify);
        let mut urls = 0;
        for source in &r.sources {
            if source == RULE_SOURCE_ET_OPEN {
                cmd.arg("--etopen");
                urls += 1;
            } else if source.contains("://") {
                cmd.arg("--url").arg(source);
                urls += 1;
            } else {
                cmd.arg("--local").arg(source);
            }
        }
        if urls == 0 {
            // suricata-update adds ET Open when no URL is given, which an offline site with
            // only local sources cannot download: give it an empty file as the one URL.
            let none = write("no-download.rules", String::new())?;
            let mut url = OsString::from("file://");
            url.push(none.as_os_str());
            cmd.arg("--url").arg(url);
        }
        let output = cmd.output().map_err(io("run", &self.suricata_update))?;
        let merged = out.join(RULES_FILE);
        if !output.status.success() || !merged.is_file() {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(RulesError::Download {
                status: output.status.to_string(),
                output: tail(&text),
            });
        }
        Ok(merged)
    }

    /// `suricata -T` on the active rendered config with the staged set in place of the
    /// active one (the local rules stay those of the current generation).
    fn check(&self, current: &Path, staged: &Path) -> Result<(), RulesError> {
        let mut set_rules = OsString::from(format!("rule-files.{RULE_SET_INDEX}="));
        set_rules.push(staged.as_os_str());
        let mut set_local = OsString::from(format!("rule-files.{LOCAL_RULES_INDEX}="));
        set_local.push(current.join(LOCAL_RULES).as_os_str());
        let run = self
            .suricata
            .test(
                &current.join(SURICATA_YAML),
                &["--set".into(), set_rules, "--set".into(), set_local],
            )
            .map_err(io("run", self.suricata.binary()))?;
        match run.refused() {
            None => Ok(()),
            Some(reason) => Err(RulesError::Rejected { reason }),
        }
    }

    /// Commits the manifest and the rule configuration on the rules branch.
    fn record(
        &self,
        set: &RuleSet,
        state: &RuleSetState,
        diff: &SidDiff,
    ) -> Result<Option<String>, GitopsError> {
        let h = &self.settings.config.history;
        let history = History::open_or_init(
            Path::new(&h.repo),
            &rules_branch(&h.branch),
            Author {
                name: h.author_name.clone(),
                email: h.author_email.clone(),
            },
        )?;
        let r = &self.settings.config.fleet.rules;
        let config = serde_yaml_ng::to_string(r).expect("config types always serialise");
        let files = vec![
            ("ruleset.tsv".to_string(), set.manifest().into_bytes()),
            ("rules-config.yaml".to_string(), config.into_bytes()),
        ];
        let subject = format!(
            "rules update on {}: {} rules ({diff}), version {}",
            self.settings.config.sensor.id, state.rules, state.version
        );
        let commit = history.commit(&files, &subject)?;
        if let Some(remote) = &h.remote {
            if let Err(e) = history.push(remote) {
                tracing::warn!("rule history not pushed (it goes with the next push): {e}");
            }
        }
        Ok(commit.map(|c| c.id))
    }

    /// Puts the previous set back after a failed record.
    fn restore(&self, had_previous: bool, active: &Path, previous: &Path) {
        let result = if had_previous {
            fs::rename(previous, active)
        } else {
            fs::remove_file(active)
        };
        if let Err(e) = result {
            tracing::error!(
                "cannot put the previous rule set back at {}: {e}",
                active.display()
            );
        }
    }

    fn reload(&self) -> Result<Reload, RulesError> {
        let socket =
            SuricataSocket::new(&self.settings.config.suricata.socket_path, RELOAD_TIMEOUT);
        match socket.reload_rules() {
            Ok(()) => {}
            Err(e) if e.is_not_running() => return Ok(Reload::NotRunning),
            Err(e) => return Err(RulesError::Reload(e)),
        }
        let (loaded, failed) = socket.ruleset_stats().map_err(RulesError::Reload)?;
        Ok(Reload::Done { loaded, failed })
    }
}

/// The branch rule updates are recorded on.
pub fn rules_branch(config_branch: &str) -> String {
    format!("{config_branch}-rules")
}

/// suricata-update `modify` lines that give each listed rule exactly the configured threshold:
/// the first removes a threshold the rule ships with, the second inserts ours before `sid`.
pub fn modify_conf(thresholds: &[RuleThreshold]) -> String {
    let mut out = String::new();
    for t in thresholds {
        let kind = match t.kind {
            ThresholdType::Limit => "limit",
            ThresholdType::Threshold => "threshold",
            ThresholdType::Both => "both",
        };
        let track = match t.track {
            ThresholdTrack::BySrc => "by_src",
            ThresholdTrack::ByDst => "by_dst",
        };
        out.push_str(&format!(
            "{sid} \"\\s*threshold\\s*:[^;]*;\" \"\"\n{sid} \";\\s*sid\\s*:\" \"; threshold: type {kind}, track {track}, count {count}, seconds {seconds}; sid:\"\n",
            sid = t.sid,
            count = t.count,
            seconds = t.seconds,
        ));
    }
    out
}

fn write_state(rules_dir: &Path, state: &RuleSetState) -> Result<(), RulesError> {
    let path = rules_dir.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    crate::files::write_atomic(&path, &json).map_err(io("replace", &path))
}

fn sync_dir(dir: &Path) -> Result<(), RulesError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

fn locate_suricata_update() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SURICATA_UPDATE_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    crate::files::find_program("suricata-update")
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let t = lines[start..].join("\n");
    if t.is_empty() {
        "(no output)".into()
    } else {
        t
    }
}

/// The delay before the next scheduled update: `interval` after a success, `retry` doubled per
/// consecutive failure (capped at `interval`) after a failure.
pub fn next_delay(interval: Duration, retry: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    retry.saturating_mul(factor).min(interval)
}

/// The delay before the first scheduled update after the agent starts: when the last success
/// is older than `interval` (or unknown), soon (`soon`, letting Suricata start first), else
/// when it comes due.
pub fn first_delay(state: Option<&RuleSetState>, interval: Duration, soon: Duration) -> Duration {
    let Some(updated) = state.and_then(|s| {
        OffsetDateTime::parse(&s.updated, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return soon;
    };
    let age = OffsetDateTime::now_utc() - updated;
    let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
    interval.saturating_sub(age).max(soon)
}

/// The scheduled updates, as a supervised task: the first when due, then every
/// `fleet.rules.interval_secs`, failures retried with backoff.
pub async fn run_schedule(
    updater: RuleUpdater,
    metrics: std::sync::Arc<Metrics>,
    mut shutdown: crate::supervisor::Shutdown,
) -> Result<(), crate::supervisor::TaskError> {
    let r = &updater.settings.config.fleet.rules;
    let interval = Duration::from_secs(r.interval_secs.into());
    let retry = Duration::from_secs(r.retry_initial_secs.into());
    let mut delay = first_delay(
        RuleSetState::read(&updater.rules_dir()).as_ref(),
        interval,
        Duration::from_secs(60),
    );
    let mut failures = 0u32;
    loop {
        tracing::info!(secs = delay.as_secs(), "next rule update");
        if !shutdown.sleep(delay).await {
            return Ok(());
        }
        let (u, m) = (updater.clone(), metrics.clone());
        let ok = tokio::task::spawn_blocking(move || u.update_recorded(&m).is_ok())
            .await
            .unwrap_or(false);
        failures = if ok { 0 } else { failures + 1 };
        delay = next_delay(interval, retry, failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "alert tcp any any -> any 80 (msg:\"a\"; sid:1; rev:1;)\n\
        # alert tcp any any -> any 81 (msg:\"disabled\"; sid:9; rev:1;)\n\
        alert tcp any any -> any 82 (msg:\"b\"; sid:2; rev:1;)\n\
        alert tcp any any -> any 83 (msg:\"c\"; sid:3; rev:1;)\n";
    const NEW: &str = "alert tcp any any -> any 80 (msg:\"a\"; sid:1; rev:1;)\n\
        alert tcp any any -> any 82 (msg:\"b2\"; sid:2; rev:2;)\n\
        alert tcp any any -> any 84 (msg:\"d\"; sid:4; rev:1;)\n\
        alert tcp any any -> any 85 (msg:\"e\"; sid : 5 ; rev:1;)\n";

    #[test]
    fn sid_diff_counts_added_removed_changed() {
        let (old, new) = (RuleSet::parse(OLD), RuleSet::parse(NEW));
        assert_eq!(old.len(), 3, "the commented-out rule is not enabled");
        let d = new.diff(&old);
        assert_eq!((d.added, d.removed, d.changed), (2, 1, 1));
        assert_eq!(d.to_string(), "+2 -1 ~1");
        assert_eq!(new.diff(&new), SidDiff::default());
        assert!(new.manifest().starts_with("1\t1\t"));
        assert_eq!(new.manifest().lines().count(), 4);
    }

    #[test]
    fn modify_lines_replace_the_threshold() {
        let t = RuleThreshold {
            sid: 2019401,
            kind: ThresholdType::Limit,
            track: ThresholdTrack::BySrc,
            count: 1,
            seconds: 3600,
        };
        let conf = modify_conf(&[t]);
        let lines: Vec<&str> = conf.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("2019401 \"\\s*threshold"), "{conf}");
        assert!(
            lines[1].ends_with(
                "\"; threshold: type limit, track by_src, count 1, seconds 3600; sid:\""
            ),
            "{conf}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let (day, five) = (Duration::from_secs(86_400), Duration::from_secs(300));
        assert_eq!(next_delay(day, five, 0), day);
        assert_eq!(next_delay(day, five, 1), five);
        assert_eq!(next_delay(day, five, 2), five * 2);
        assert_eq!(next_delay(day, five, 4), five * 8);
        assert_eq!(next_delay(day, five, 40), day);
    }

    #[test]
    fn first_update_is_due_by_age() {
        let day = Duration::from_secs(86_400);
        let soon = Duration::from_secs(60);
        assert_eq!(first_delay(None, day, soon), soon);
        let state = |updated: OffsetDateTime| RuleSetState {
            version: "v".into(),
            rules: 1,
            updated: timestamp(updated),
            sources: vec![],
        };
        let old = state(OffsetDateTime::now_utc() - time::Duration::days(2));
        assert_eq!(first_delay(Some(&old), day, soon), soon);
        let fresh = state(OffsetDateTime::now_utc() - time::Duration::hours(1));
        let d = first_delay(Some(&fresh), day, soon);
        assert!(
            d > Duration::from_secs(22 * 3600) && d <= Duration::from_secs(23 * 3600),
            "{d:?}"
        );
    }
}
