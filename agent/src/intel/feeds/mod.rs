//! Indicator feeds (`intel.feeds`, `intel.presets`) compiled into Suricata datasets and rules,
//! loaded into the running Suricata without a restart. (The rest of `intel` is the AbuseIPDB
//! lookup of alerts' addresses; this is the other direction: every packet checked against
//! lists.)
//!
//! One update: each due feed is downloaded (`https://`, loopback `http://`, `file://`) and
//! parsed ([`parse`]); invalid and allowlisted entries are counted and dropped; a feed that
//! fails (download, format, too many indicators) keeps its last good list, the others go on.
//! The lists are compiled ([`compile`]) into a new generation under `intel.dir`, checked with
//! `suricata -T` against the active rendered config, and `intel.dir/current` is switched to it
//! atomically. The change is recorded on the `<history.branch>-intel` branch (`+N -M` per feed
//! in the subject) and the running Suricata takes it: `dataset-add` / `dataset-remove` over the
//! unix socket when only entries changed, `reload-rules` when the rules did. The rules read
//! their sets through `current`, so a reload or a restart sees the same lists.

pub mod compile;
pub mod parse;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ids2_core::config::{IntelFeed, Settings};
use ids2_core::heartbeat::IntelFeedState;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::apply::CURRENT;
use crate::fleet::socket::{SocketError, SuricataSocket};
use crate::gitops::{Author, GitopsError, History};
use crate::render::SURICATA_YAML;
use crate::suricata::{Suricata, SuricataError};

/// The state file under `intel.dir` (read by the heartbeat and the next update).
pub use ids2_core::heartbeat::INTEL_STATE_FILE as STATE_FILE;
/// Per-feed normalised lists, inside each generation.
const LISTS_DIR: &str = "lists";
/// Generations of compiled sets, under `intel.dir`.
const GENERATIONS_DIR: &str = "generations";
/// Changed entries above which a rule reload is cheaper than one socket command per entry.
const LIVE_CHANGE_MAX: usize = 20_000;
/// Longest wait for a rule reload.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an update failed as a whole. The previous sets stay active in every case; a single
/// feed's failure is not one of these (it is reported in [`IntelReport::feeds`]).
#[derive(Debug, thiserror::Error)]
pub enum IntelFeedsError {
    /// No rendered config to check against.
    #[error(
        "no active rendered configuration at {}: run `ids2-agent apply` first (the sets are \
         checked against it)", path.display()
    )]
    NoRenderedConfig {
        /// The missing file.
        path: PathBuf,
    },
    /// No feed is configured.
    #[error("no intel feed is configured: list intel.presets or intel.feeds in the config")]
    NoFeeds,
    /// Suricata is not installed or could not be located.
    #[error(
        "suricata is not installed: install it, or set {} to its path",
        crate::suricata::BINARY_ENV
    )]
    NoSuricata,
    /// Suricata could not be located.
    #[error(transparent)]
    Suricata(#[from] SuricataError),
    /// `suricata -T` refused the compiled sets.
    #[error(
        "suricata -T refused the compiled intel sets; the previous ones stay active:\n{reason}"
    )]
    Rejected {
        /// Suricata's error lines.
        reason: String,
    },
    /// The change could not be recorded; the previous generation is active again.
    #[error("cannot record the intel update in the history; the previous sets are active again")]
    History(#[source] GitopsError),
    /// The sets are installed and recorded, but the running Suricata did not take them.
    #[error(
        "the new intel sets are installed and recorded, but Suricata did not load them (it \
         loads them at its next start or rule reload)"
    )]
    Load(#[source] SocketError),
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

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IntelFeedsError {
    let path = path.to_path_buf();
    move |source| IntelFeedsError::Io {
        action,
        path,
        source,
    }
}

/// What happened to one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedOutcome {
    /// The feed.
    pub name: String,
    /// Its state after the update.
    pub state: IntelFeedState,
    /// Entries added and removed, when the feed was fetched and accepted.
    pub change: Option<(usize, usize)>,
    /// Why the feed kept its last good version, when it failed.
    pub error: Option<String>,
}

/// How the running Suricata took the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntelLoad {
    /// Entries added and removed over the socket, no reload.
    Datasets {
        /// `dataset-add` commands.
        added: usize,
        /// `dataset-remove` commands.
        removed: usize,
    },
    /// The rules changed: Suricata reloaded them.
    Reloaded,
    /// No Suricata listens on the socket; it loads the sets when it starts.
    NotRunning,
    /// Nothing changed.
    NotNeeded,
}

/// The outcome of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelReport {
    /// Every configured feed, in config order.
    pub feeds: Vec<FeedOutcome>,
    /// The history commit recording the change.
    pub commit: Option<String>,
    /// What Suricata did.
    pub load: IntelLoad,
}

impl IntelReport {
    /// Feeds that failed this time (and kept their last good version).
    pub fn failed(&self) -> usize {
        self.feeds.iter().filter(|f| f.error.is_some()).count()
    }
}

impl fmt::Display for IntelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.feeds {
            let s = &o.state;
            write!(
                f,
                "{}: {} {} indicators (version {}",
                o.name, s.indicators, s.kind, s.version
            )?;
            if let Some((a, r)) = o.change {
                write!(f, ", +{a} -{r}")?;
            }
            write!(
                f,
                "; {} invalid, {} allowlisted dropped)",
                s.invalid, s.allowlisted
            )?;
            if let Some(e) = &o.error {
                write!(f, "; FAILED, last good version kept: {e}")?;
            }
            writeln!(f)?;
        }
        if let Some(c) = &self.commit {
            writeln!(f, "recorded as {c}")?;
        }
        match &self.load {
            IntelLoad::Datasets { added, removed } => write!(
                f,
                "Suricata updated live: {added} entries added, {removed} removed (no reload)"
            ),
            IntelLoad::Reloaded => write!(f, "Suricata reloaded its rules with the new sets"),
            IntelLoad::NotRunning => {
                write!(
                    f,
                    "Suricata is not running: it loads the sets when it starts"
                )
            }
            IntelLoad::NotNeeded => write!(f, "no change"),
        }
    }
}

/// Runs feed updates for one sensor.
#[derive(Debug, Clone)]
pub struct FeedUpdater {
    settings: Settings,
    suricata: Suricata,
    rendered_dir: PathBuf,
    dir: PathBuf,
}

/// One feed's lists before and after, in config order.
struct Step {
    feed: IntelFeed,
    old: BTreeSet<String>,
    new: BTreeSet<String>,
    state: IntelFeedState,
    change: Option<(usize, usize)>,
    error: Option<String>,
}

impl FeedUpdater {
    /// Finds Suricata (`$IDS2_SURICATA`, else `PATH`); checks against
    /// `<paths.rendered_dir>/current`, compiles into `intel.dir`.
    pub fn for_settings(settings: &Settings) -> Result<Self, IntelFeedsError> {
        let suricata = Suricata::locate()?.ok_or(IntelFeedsError::NoSuricata)?;
        Ok(Self {
            settings: settings.clone(),
            suricata,
            rendered_dir: PathBuf::from(&settings.config.paths.rendered_dir),
            dir: PathBuf::from(&settings.config.intel.dir),
        })
    }

    /// Checks against the generations in `dir` instead of `paths.rendered_dir`.
    pub fn with_rendered_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.rendered_dir = dir.into();
        self
    }

    /// The feeds' states as last recorded.
    pub fn states(&self) -> BTreeMap<String, IntelFeedState> {
        IntelFeedState::read_all(&self.dir)
    }

    /// Fetches every feed (`all`) or the due ones, then compiles, checks, swaps, records and
    /// loads; see the module docs.
    pub async fn update(&self, all: bool) -> Result<IntelReport, IntelFeedsError> {
        let intel = &self.settings.config.intel;
        let feeds = intel.all_feeds();
        if feeds.is_empty() {
            return Err(IntelFeedsError::NoFeeds);
        }
        let current_config = self.rendered_dir.join(CURRENT).join(SURICATA_YAML);
        if !current_config.is_file() {
            return Err(IntelFeedsError::NoRenderedConfig {
                path: current_config,
            });
        }
        let allow = parse::allowlist(&intel.allowlist, &self.settings.config.blocking.allowlist);
        let states = self.states();
        let active = self.dir.join(CURRENT);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(intel.timeout_secs.into()))
            .user_agent(concat!("ids2-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a timeout builds");
        let now = OffsetDateTime::now_utc();
        let mut steps = Vec::new();
        for feed in feeds {
            let old = read_list(&active, &feed.name);
            let previous = states.get(&feed.name).cloned();
            let due = all
                || previous.as_ref().is_none_or(|s| {
                    parse_time(&s.attempted).is_none_or(|t| {
                        now - t >= time::Duration::seconds(feed.interval_secs.into())
                    })
                });
            let mut state = previous.unwrap_or_else(|| IntelFeedState {
                name: feed.name.clone(),
                kind: feed.kind.name().into(),
                version: "none".into(),
                ..Default::default()
            });
            state.kind = feed.kind.name().into();
            if !due {
                steps.push(Step {
                    new: old.clone(),
                    old,
                    feed,
                    state,
                    change: None,
                    error: None,
                });
                continue;
            }
            state.attempted = timestamp(now);
            let fetched = fetch(&client, &feed.source).await;
            let parsed = fetched.and_then(|text| {
                let p = parse::parse(
                    &text,
                    feed.format,
                    feed.column.as_deref(),
                    feed.kind,
                    &allow,
                )
                .map_err(|e| e.to_string())?;
                let cap = intel.max_indicators_per_feed as usize;
                if p.indicators.len() > cap {
                    return Err(format!(
                        "{} indicators, more than intel.max_indicators_per_feed ({cap})",
                        p.indicators.len()
                    ));
                }
                Ok(p)
            });
            match parsed {
                Ok(p) => {
                    let added = p.indicators.difference(&old).count();
                    let removed = old.difference(&p.indicators).count();
                    state.version = version(&p.indicators);
                    state.indicators = p.indicators.len() as u64;
                    state.invalid = p.invalid;
                    state.allowlisted = p.allowlisted;
                    state.other_kind = p.other_kind;
                    state.updated = timestamp(now);
                    state.error = None;
                    steps.push(Step {
                        feed,
                        old,
                        new: p.indicators,
                        state,
                        change: Some((added, removed)),
                        error: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(feed = %feed.name, "intel feed kept its last good version: {e}");
                    state.error = Some(e.clone());
                    state.failures += 1;
                    steps.push(Step {
                        new: old.clone(),
                        old,
                        feed,
                        state,
                        change: None,
                        error: Some(e),
                    });
                }
            }
        }
        self.install(steps).await
    }

    async fn install(&self, steps: Vec<Step>) -> Result<IntelReport, IntelFeedsError> {
        let active = self.dir.join(CURRENT);
        let counts: Vec<(usize, &IntelFeed, usize)> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i, &s.feed, s.new.len()))
            .collect();
        let rules = compile::rules(&counts, &active);
        let old_rules = fs::read_to_string(active.join(compile::RULES_FILE)).ok();
        let lists_changed = steps.iter().any(|s| s.old != s.new);
        let rules_changed = old_rules.as_deref() != Some(rules.as_str());
        let mut report = IntelReport {
            feeds: Vec::new(),
            commit: None,
            load: IntelLoad::NotNeeded,
        };
        if lists_changed || rules_changed {
            let generations = self.dir.join(GENERATIONS_DIR);
            fs::create_dir_all(&generations).map_err(io("create", &generations))?;
            let gen = tempfile::Builder::new()
                .prefix(&format!("{}-", OffsetDateTime::now_utc().unix_timestamp()))
                .tempdir_in(&generations)
                .map_err(io("create a generation in", &generations))?;
            let lists = gen.path().join(LISTS_DIR);
            fs::create_dir_all(&lists).map_err(io("create", &lists))?;
            for s in &steps {
                let set = gen.path().join(compile::set_file(&s.feed.name));
                fs::write(&set, compile::set_text(s.feed.kind, &s.new))
                    .map_err(io("write", &set))?;
                let list = lists.join(format!("{}.txt", s.feed.name));
                let text: String = s.new.iter().map(|v| format!("{v}\n")).collect();
                fs::write(&list, text).map_err(io("write", &list))?;
            }
            let rules_path = gen.path().join(compile::RULES_FILE);
            fs::write(&rules_path, &rules).map_err(io("write", &rules_path))?;
            self.check(&compile::rules(&counts, gen.path()), gen.path())?;
            let gen_path = gen.keep();
            let previous = fs::read_link(&active).ok();
            switch(&self.dir, &gen_path)?;
            match self.record(&steps) {
                Ok(commit) => report.commit = commit,
                Err(e) => {
                    if let Some(prev) = &previous {
                        let _ = switch(&self.dir, &self.dir.join(prev));
                    } else {
                        let _ = fs::remove_file(&active);
                    }
                    let _ = fs::remove_dir_all(&gen_path);
                    return Err(IntelFeedsError::History(e));
                }
            }
            prune(&generations, &gen_path, previous.as_deref());
        }
        let states: BTreeMap<String, IntelFeedState> = steps
            .iter()
            .map(|s| (s.feed.name.clone(), s.state.clone()))
            .collect();
        IntelFeedState::write_all(&self.dir, &states)
            .map_err(io("write the state in", &self.dir))?;
        if lists_changed || rules_changed {
            report.load = self.load(&steps, rules_changed)?;
        }
        report.feeds = steps
            .into_iter()
            .map(|s| FeedOutcome {
                name: s.feed.name,
                state: s.state,
                change: s.change,
                error: s.error,
            })
            .collect();
        Ok(report)
    }

    /// `suricata -T` with the generation's rules alone (`-S`) on the active rendered config.
    fn check(&self, rules: &str, gen: &Path) -> Result<(), IntelFeedsError> {
        let check_rules = gen.join("check.rules");
        fs::write(&check_rules, rules).map_err(io("write", &check_rules))?;
        let run = self
            .suricata
            .test(
                &self.rendered_dir.join(CURRENT).join(SURICATA_YAML),
                &["-S".into(), check_rules.clone().into()],
            )
            .map_err(io("run", self.suricata.binary()));
        let _ = fs::remove_file(&check_rules);
        match run?.refused_or_errored() {
            None => Ok(()),
            Some(reason) => Err(IntelFeedsError::Rejected { reason }),
        }
    }

    /// Commits one line per feed on the intel branch; the subject says what changed.
    fn record(&self, steps: &[Step]) -> Result<Option<String>, GitopsError> {
        let h = &self.settings.config.history;
        let history = History::open_or_init(
            Path::new(&h.repo),
            &intel_branch(&h.branch),
            Author {
                name: h.author_name.clone(),
                email: h.author_email.clone(),
            },
        )?;
        let mut table =
            String::from("feed\tkind\tversion\tindicators\tinvalid\tallowlisted\tsource\n");
        for s in steps {
            table.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                s.feed.name,
                s.feed.kind.name(),
                s.state.version,
                s.new.len(),
                s.state.invalid,
                s.state.allowlisted,
                s.feed.source
            ));
        }
        let config = serde_yaml_ng::to_string(&self.settings.config.intel)
            .expect("config types always serialise");
        let files = vec![
            ("intel.tsv".to_string(), table.into_bytes()),
            ("intel-config.yaml".to_string(), config.into_bytes()),
        ];
        let changes: Vec<String> = steps
            .iter()
            .map(|s| {
                let added = s.new.difference(&s.old).count();
                let removed = s.old.difference(&s.new).count();
                format!("{} +{added} -{removed}", s.feed.name)
            })
            .collect();
        let subject = format!(
            "intel update on {}: {}",
            self.settings.config.sensor.id,
            changes.join(", ")
        );
        let commit = history.commit(&files, &subject)?;
        if let Some(remote) = &h.remote {
            if let Err(e) = history.push(remote) {
                tracing::warn!("intel history not pushed (it goes with the next push): {e}");
            }
        }
        Ok(commit.map(|c| c.id))
    }

    /// Tells the running Suricata: entry by entry when only entries changed, a rule reload
    /// otherwise.
    fn load(&self, steps: &[Step], rules_changed: bool) -> Result<IntelLoad, IntelFeedsError> {
        let socket =
            SuricataSocket::new(&self.settings.config.suricata.socket_path, RELOAD_TIMEOUT);
        let changed: usize = steps
            .iter()
            .map(|s| s.new.symmetric_difference(&s.old).count())
            .sum();
        let live = !rules_changed
            && changed <= LIVE_CHANGE_MAX
            && steps
                .iter()
                .all(|s| s.old == s.new || compile::live_addable(s.feed.kind));
        let result = if live {
            self.load_entries(&socket, steps)
        } else {
            socket.reload_rules().map(|()| IntelLoad::Reloaded)
        };
        match result {
            Ok(load) => Ok(load),
            Err(e) if e.is_not_running() => Ok(IntelLoad::NotRunning),
            Err(e) => Err(IntelFeedsError::Load(e)),
        }
    }

    fn load_entries(
        &self,
        socket: &SuricataSocket,
        steps: &[Step],
    ) -> Result<IntelLoad, SocketError> {
        let (mut added, mut removed) = (0, 0);
        for s in steps {
            let command = |cmd: &str, v: &String| {
                socket.command(
                    cmd,
                    Some(serde_json::json!({
                        "setname": compile::set_name(&s.feed.name),
                        "settype": compile::dataset_type(s.feed.kind),
                        "datavalue": compile::set_line(s.feed.kind, v),
                    })),
                )
            };
            for v in s.new.difference(&s.old) {
                command("dataset-add", v)?;
                added += 1;
            }
            for v in s.old.difference(&s.new) {
                command("dataset-remove", v)?;
                removed += 1;
            }
        }
        Ok(IntelLoad::Datasets { added, removed })
    }
}

/// The branch intel updates are recorded on.
pub fn intel_branch(config_branch: &str) -> String {
    format!("{config_branch}-intel")
}

/// The feed's text: `file://` read from disk, `http(s)://` downloaded.
async fn fetch(client: &reqwest::Client, source: &str) -> Result<String, String> {
    if let Some(path) = source.strip_prefix("file://") {
        return tokio::fs::read(path)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    let response = client
        .get(source)
        .send()
        .await
        .map_err(|e| format!("cannot download {source}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{source} answered HTTP {status}"));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("download of {source} broke off: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A feed's active list (empty before its first good version).
fn read_list(active: &Path, feed: &str) -> BTreeSet<String> {
    fs::read_to_string(active.join(LISTS_DIR).join(format!("{feed}.txt")))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Points `dir/current` at `gen` atomically (a new symlink renamed over the old one).
fn switch(dir: &Path, gen: &Path) -> Result<(), IntelFeedsError> {
    let tmp = dir.join(".current.new");
    let _ = fs::remove_file(&tmp);
    let target = gen.strip_prefix(dir).unwrap_or(gen);
    std::os::unix::fs::symlink(target, &tmp).map_err(io("create", &tmp))?;
    let current = dir.join(CURRENT);
    fs::rename(&tmp, &current).map_err(io("replace", &current))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// Removes generations other than the active and the previous one.
fn prune(generations: &Path, keep: &Path, previous: Option<&Path>) {
    let Ok(entries) = fs::read_dir(generations) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let is_previous = previous.is_some_and(|prev| p.ends_with(prev));
        if p != keep && !is_previous {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

fn version(set: &BTreeSet<String>) -> String {
    let mut h = Sha256::new();
    for v in set {
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Seconds until the next feed is due, from the recorded states (soon for a feed never tried).
pub fn next_due(
    feeds: &[IntelFeed],
    states: &BTreeMap<String, IntelFeedState>,
    soon: Duration,
) -> Duration {
    let now = OffsetDateTime::now_utc();
    feeds
        .iter()
        .map(|f| {
            let interval = Duration::from_secs(f.interval_secs.into());
            match states.get(&f.name).and_then(|s| parse_time(&s.attempted)) {
                None => soon,
                Some(t) => {
                    let age = Duration::try_from(now - t).unwrap_or(Duration::ZERO);
                    interval.saturating_sub(age).max(soon)
                }
            }
        })
        .min()
        .unwrap_or(soon)
}

/// The scheduled updates, as a supervised task: each feed when due (its `interval_secs`).
pub async fn run_schedule(
    updater: FeedUpdater,
    mut shutdown: crate::supervisor::Shutdown,
) -> Result<(), crate::supervisor::TaskError> {
    let feeds = updater.settings.config.intel.all_feeds();
    let soon = Duration::from_secs(60);
    loop {
        let delay = next_due(&feeds, &updater.states(), soon);
        tracing::info!(secs = delay.as_secs(), "next intel feed update");
        if !shutdown.sleep(delay).await {
            return Ok(());
        }
        match updater.update(false).await {
            Ok(report) => tracing::info!("intel update: {report}"),
            Err(e) => {
                let chain =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(": ");
                tracing::error!("intel update failed: {chain}");
                // A failure before any feed was tried leaves `attempted` unchanged: wait a
                // minute rather than retrying at once.
                if !shutdown.sleep(soon).await {
                    return Ok(());
                }
            }
        }
    }
}
