//! The fleet policy on one sensor: fetched from OpenSearch, checked, applied live.
//!
//! One update: a signed `GET <prefix>-policy/_search` (SigV4 or basic auth, like the health
//! check), each entry validated on its own ([`ids2_core::policy`]: a bad entry is named in the
//! log and skipped, the rest apply), the entries covering this sensor resolved and rendered as
//! Suricata's `threshold.config`, checked with `suricata -T` against the active rendered
//! config, renamed over `<rules_dir>/ids2-policy.threshold.config`, recorded on the
//! `<history.branch>-policy` branch, and Suricata told to reload its rules over the unix socket
//! (a rule reload re-reads the threshold file), so capture never stops. OpenSearch away, a
//! refused check or a failed record changes nothing: the last good policy stays. Expired
//! entries drop out at the next fetch. `enable` entries are written to
//! `<rules_dir>/ids2-policy.enable` for the next rule update (a disabled rule is not in the
//! loaded set; only a rule update can bring it in).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ids2_core::heartbeat::{PolicyState, POLICY_STATE_FILE, UNLOADED_SUFFIX};
use ids2_core::policy::{self, Parsed, PolicyError, Resolved};
use time::OffsetDateTime;

use crate::apply::CURRENT;
use crate::config::Settings;
use crate::connectivity::opensearch::OpenSearchChecker;
use crate::gitops::{Author, GitopsError, History};
use crate::metrics::Metrics;
use crate::render::SURICATA_YAML;
use crate::suricata::{Suricata, SuricataError};

use super::heartbeat::timestamp;
use super::socket::{SocketError, SuricataSocket};

/// The threshold file Suricata reads, in `suricata.rules_dir` (the rendered config points
/// `threshold-file` at it while `fleet.policy.enabled`).
pub const THRESHOLD_FILE: &str = "ids2-policy.threshold.config";
/// SIDs the policy enables, one per line, for the next rule update's enable list.
pub const ENABLE_FILE: &str = "ids2-policy.enable";
/// Longest wait for Suricata to swap in the new detection engine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for OpenSearch's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an update failed. In every case the last good policy is still active.
#[derive(Debug, thiserror::Error)]
pub enum PolicyUpdateError {
    /// No endpoint to fetch from.
    #[error("opensearch.endpoint is not set: the policy is fetched from it (ids2-provision sensor config fills it in)")]
    NoEndpoint,
    /// OpenSearch did not answer usefully.
    #[error("cannot fetch the policy; the last good policy stays: {0}")]
    Fetch(String),
    /// The answer was not a search result.
    #[error("cannot read the policy; the last good policy stays")]
    Parse(#[source] PolicyError),
    /// No rendered config to check against.
    #[error(
        "no active rendered configuration at {}: run `ids2-agent apply` first (the policy is \
         checked against it)", path.display()
    )]
    NoRenderedConfig {
        /// The missing file.
        path: PathBuf,
    },
    /// Suricata could not be located or run.
    #[error(transparent)]
    Suricata(#[from] SuricataError),
    /// Suricata is not installed.
    #[error(
        "suricata is not installed: install it, or set {} to its path",
        crate::suricata::BINARY_ENV
    )]
    NoSuricata,
    /// `suricata -T` refused the rendered threshold file.
    #[error("suricata -T refused the policy's threshold.config; the last good policy stays:\n{0}")]
    Rejected(String),
    /// The change could not be recorded; the previous file was put back.
    #[error("cannot record the policy in the history; the previous policy is active again")]
    History(#[source] GitopsError),
    /// Installed and recorded, but the running Suricata did not reload.
    #[error("the policy is installed and recorded, but Suricata did not reload it (the next update retries)")]
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

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PolicyUpdateError {
    let path = path.to_path_buf();
    move |source| PolicyUpdateError::Io {
        action,
        path,
        source,
    }
}

/// What one update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReport {
    /// The policy now active.
    pub state: PolicyState,
    /// Whether the threshold file changed (and Suricata was reloaded).
    pub changed: bool,
    /// Entries skipped, each with its problems.
    pub skipped: Vec<String>,
    /// Entries dropped because they expired.
    pub expired: Vec<String>,
    /// The history commit, when one was made.
    pub commit: Option<String>,
    /// Whether the running Suricata reloaded (false: not running, it reads the file at start).
    pub reloaded: bool,
}

impl std::fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "policy {} {}: {} entries applied, {} skipped, {} expired",
            self.state.version,
            if self.changed { "applied" } else { "unchanged" },
            self.state.applied,
            self.skipped.len(),
            self.expired.len()
        )?;
        if let Some(c) = &self.commit {
            write!(f, "; recorded as {c}")?;
        }
        if self.changed {
            f.write_str(if self.reloaded {
                "; Suricata reloaded"
            } else {
                "; Suricata is not running: it reads the policy at start"
            })?;
        }
        Ok(())
    }
}

/// Fetches and applies the fleet policy for one sensor.
#[derive(Debug, Clone)]
pub struct PolicyUpdater {
    settings: Arc<Settings>,
    client: Option<OpenSearchChecker>,
    suricata: Option<Suricata>,
    rendered_dir: PathBuf,
}

impl PolicyUpdater {
    /// The updater for `settings`: the endpoint and auth of `opensearch`, Suricata from
    /// `$IDS2_SURICATA` or `PATH`, checks against `<paths.rendered_dir>/current`.
    pub fn for_settings(settings: Arc<Settings>) -> Result<Self, PolicyUpdateError> {
        let client = match &settings.config.opensearch.endpoint {
            Some(ep) => Some(
                OpenSearchChecker::new(
                    ep,
                    &settings.config.opensearch.region,
                    settings.auth.clone(),
                    FETCH_TIMEOUT,
                    None,
                )
                .map_err(|e| PolicyUpdateError::Fetch(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            client,
            suricata: Suricata::locate()?,
            rendered_dir: PathBuf::from(&settings.config.paths.rendered_dir),
            settings,
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

    /// The policy entries in OpenSearch; an index that does not exist yet is an empty policy.
    pub async fn fetch(&self) -> Result<Parsed, PolicyUpdateError> {
        let client = self.client.as_ref().ok_or(PolicyUpdateError::NoEndpoint)?;
        let index = policy::index(&self.settings.config.opensearch.index_prefix);
        let path = format!(
            "/{index}/_search?size={}&track_total_hits=true",
            policy::MAX_ENTRIES
        );
        let (url, status, body) = client
            .get_json(&path)
            .await
            .map_err(PolicyUpdateError::Fetch)?;
        if status == 404
            && body.pointer("/error/type").and_then(|t| t.as_str())
                == Some("index_not_found_exception")
        {
            return Ok(Parsed::default());
        }
        if !(200..300).contains(&status) {
            let mut text = body.to_string();
            text.truncate(500);
            return Err(PolicyUpdateError::Fetch(format!(
                "{url}: HTTP {status}: {text}"
            )));
        }
        policy::parse_search(&body).map_err(PolicyUpdateError::Parse)
    }

    /// Fetches and applies; the outcome is logged and counted.
    pub async fn update_recorded(
        &self,
        metrics: &Metrics,
    ) -> Result<PolicyReport, PolicyUpdateError> {
        let result = match self.fetch().await {
            Ok(parsed) => {
                let me = self.clone();
                tokio::task::spawn_blocking(move || me.apply(&parsed, OffsetDateTime::now_utc()))
                    .await
                    .unwrap_or_else(|e| Err(PolicyUpdateError::Fetch(format!("apply task: {e}"))))
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(report) => {
                metrics.policy_update_success.set(&[], 1.0);
                metrics
                    .policy_entries
                    .set(&["applied"], report.state.applied as f64);
                metrics
                    .policy_entries
                    .set(&["skipped"], report.skipped.len() as f64);
                for s in &report.skipped {
                    tracing::warn!("{s} (skipped; the rest of the policy applies)");
                }
                tracing::info!("{report}");
            }
            Err(e) => {
                metrics.policy_update_success.set(&[], 0.0);
                let chain =
                    std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                tracing::error!("policy update failed: {chain}");
            }
        }
        result
    }

    /// Resolves `parsed` for this sensor at `now`, then checks, swaps, records and reloads.
    pub fn apply(
        &self,
        parsed: &Parsed,
        now: OffsetDateTime,
    ) -> Result<PolicyReport, PolicyUpdateError> {
        let cfg = &self.settings.config;
        let resolved = policy::resolve(
            &parsed.entries,
            &cfg.sensor.id,
            &cfg.fleet.policy.groups,
            now,
        );
        let skipped: Vec<String> = parsed.skipped.iter().map(ToString::to_string).collect();
        let state = PolicyState {
            version: resolved.version.clone(),
            applied: resolved.applied.len() as u64,
            skipped: skipped.len() as u64,
            updated: timestamp(now),
        };
        let rules_dir = self.rules_dir();
        fs::create_dir_all(&rules_dir).map_err(io("create", &rules_dir))?;
        let active = rules_dir.join(THRESHOLD_FILE);
        let enable_file = rules_dir.join(ENABLE_FILE);
        let enable_text: String = resolved
            .enable
            .iter()
            .map(|(_, sid)| format!("{sid}\n"))
            .collect();
        let unchanged = fs::read_to_string(&active).ok().as_deref()
            == Some(resolved.threshold_config.as_str())
            && fs::read_to_string(&enable_file).unwrap_or_default() == enable_text;
        let previous = PolicyState::read(&rules_dir);
        if unchanged
            && previous
                .as_ref()
                .is_some_and(|p| p.version == state.version)
        {
            write_state(&rules_dir, &state)?;
            return Ok(PolicyReport {
                state,
                changed: false,
                skipped,
                expired: resolved.expired,
                commit: None,
                reloaded: false,
            });
        }
        let current = self.rendered_dir.join(CURRENT);
        let config = current.join(SURICATA_YAML);
        if !config.is_file() {
            return Err(PolicyUpdateError::NoRenderedConfig { path: config });
        }
        let staged = rules_dir.join(format!(".{THRESHOLD_FILE}.new"));
        fs::write(&staged, &resolved.threshold_config).map_err(io("write", &staged))?;
        if let Err(e) = self.check(&config, &staged) {
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        let old = fs::read(&active).ok();
        fs::rename(&staged, &active).map_err(io("swap in", &active))?;
        fs::write(&enable_file, &enable_text).map_err(io("write", &enable_file))?;
        let commit = match self.record(&resolved, &skipped) {
            Ok(c) => c,
            Err(e) => {
                let restored = match &old {
                    Some(bytes) => fs::write(&active, bytes),
                    None => fs::remove_file(&active),
                };
                if let Err(r) = restored {
                    tracing::error!(
                        "cannot put the previous policy back at {}: {r}",
                        active.display()
                    );
                }
                return Err(PolicyUpdateError::History(e));
            }
        };
        write_state(
            &rules_dir,
            &PolicyState {
                version: format!("{}{UNLOADED_SUFFIX}", state.version),
                ..state.clone()
            },
        )?;
        let socket = SuricataSocket::new(&cfg.suricata.socket_path, RELOAD_TIMEOUT);
        let reloaded = match socket.reload_rules() {
            Ok(()) => true,
            Err(e) if e.is_not_running() => false,
            Err(e) => return Err(PolicyUpdateError::Reload(e)),
        };
        write_state(&rules_dir, &state)?;
        Ok(PolicyReport {
            state,
            changed: true,
            skipped,
            expired: resolved.expired,
            commit,
            reloaded,
        })
    }

    /// `suricata -T` on the active rendered config with the staged file as its threshold file.
    fn check(&self, config: &Path, staged: &Path) -> Result<(), PolicyUpdateError> {
        let suricata = self
            .suricata
            .as_ref()
            .ok_or(PolicyUpdateError::NoSuricata)?;
        let mut set = OsString::from("threshold-file=");
        set.push(staged.as_os_str());
        let run = suricata
            .test(config, &["--set".into(), set])
            .map_err(io("run", suricata.binary()))?;
        match run.refused_or_errored() {
            None => Ok(()),
            Some(reason) => Err(PolicyUpdateError::Rejected(reason)),
        }
    }

    /// Commits the threshold file and the list of applied and skipped entries.
    fn record(
        &self,
        resolved: &Resolved,
        skipped: &[String],
    ) -> Result<Option<String>, GitopsError> {
        let h = &self.settings.config.history;
        let history = History::open_or_init(
            Path::new(&h.repo),
            &policy_branch(&h.branch),
            Author {
                name: h.author_name.clone(),
                email: h.author_email.clone(),
            },
        )?;
        let mut entries = String::from("id\tscope\taction\tsid\tauthor\treason\n");
        for e in &resolved.applied {
            entries.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                e.id, e.scope, e.action, e.sid, e.author, e.reason
            ));
        }
        let mut files = vec![
            (
                THRESHOLD_FILE.to_string(),
                resolved.threshold_config.clone().into_bytes(),
            ),
            ("entries.tsv".to_string(), entries.into_bytes()),
        ];
        if !skipped.is_empty() {
            files.push((
                "skipped.txt".to_string(),
                (skipped.join("\n") + "\n").into_bytes(),
            ));
        }
        let subject = format!(
            "policy {} on {}: {} entries applied, {} skipped, {} expired",
            resolved.version,
            self.settings.config.sensor.id,
            resolved.applied.len(),
            skipped.len(),
            resolved.expired.len()
        );
        let commit = history.commit(&files, &subject)?;
        if let Some(remote) = &h.remote {
            if let Err(e) = history.push(remote) {
                tracing::warn!("policy history not pushed (it goes with the next push): {e}");
            }
        }
        Ok(commit.map(|c| c.id))
    }
}

/// The branch policy updates are recorded on.
pub fn policy_branch(config_branch: &str) -> String {
    format!("{config_branch}-policy")
}

fn write_state(rules_dir: &Path, state: &PolicyState) -> Result<(), PolicyUpdateError> {
    let path = rules_dir.join(POLICY_STATE_FILE);
    let tmp = rules_dir.join(format!(".{POLICY_STATE_FILE}.new"));
    let text = serde_json::to_vec(state).expect("the state serialises");
    fs::write(&tmp, text).map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("write", &path))
}

/// The scheduled fetches, as a supervised task: one at start, then every
/// `fleet.policy.interval_secs`.
pub async fn run_schedule(
    updater: PolicyUpdater,
    metrics: Arc<Metrics>,
    mut shutdown: crate::supervisor::Shutdown,
) -> Result<(), crate::supervisor::TaskError> {
    let interval = Duration::from_secs(updater.settings.config.fleet.policy.interval_secs.into());
    loop {
        // A failure is logged and counted; the next interval retries.
        let _ = updater.update_recorded(&metrics).await;
        if !shutdown.sleep(interval).await {
            return Ok(());
        }
    }
}
