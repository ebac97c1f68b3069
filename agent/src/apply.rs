//! Render → check → swap: puts a new generation of rendered files in place, or leaves the
//! active one untouched.
//!
//! Layout under the output directory: `generations/<N>/` holds each set of files and
//! `current` is a relative symlink to the active one. A new set is written to a staging dir
//! beside them, checked with `suricata -T`, renamed to `generations/<N>` and only then made
//! current by renaming a fresh symlink over `current` (atomic). Any failure before that rename
//! removes the staging dir and leaves `current` as it was. The last [`KEEP_GENERATIONS`] are
//! kept for rollback.
//!
//! [`apply`] adds the history: once a generation is current its files are committed with
//! [`gitops`]; if that commit fails the previous generation is made current again, so every
//! active configuration is one the history records.
//!
//! [`Applier`] is the daemon's [`Reloader`]: [`apply`] with an EVE profile, then a comparison
//! of the previous and new generation that says which component must reload or restart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::gitops::{Author, CommitInfo, GitopsError, History};
use crate::render::{self, Profile, RenderError, RenderOptions, RenderedSet};
use crate::supervisor::{ApplyOutcome, Pickup, ReloadError, Reloader};
use crate::suricata::{Suricata, SuricataError};

/// Generations kept on disk (the current one included).
pub const KEEP_GENERATIONS: usize = 3;
/// The symlink to the active generation.
pub const CURRENT: &str = "current";
/// The directory of generations.
pub const GENERATIONS: &str = "generations";

/// How candidate files are checked before they become current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    /// `suricata -T` with this binary.
    Suricata(Suricata),
    /// No check (Suricata not installed, or `--no-validate`).
    Skip,
}

impl Validator {
    /// `suricata -T` when Suricata can be found, else [`Validator::Skip`].
    pub fn detect() -> Result<Self, SuricataError> {
        Ok(Suricata::locate()?.map_or(Validator::Skip, Validator::Suricata))
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new generation is current.
    Changed {
        /// Its number (`generations/<N>`).
        generation: u64,
    },
    /// The rendered files equal the current generation's; nothing was written.
    Unchanged,
}

/// Why an apply failed. In every case the previous `current` is still active.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Rendering failed.
    #[error("cannot render the configuration")]
    Render(#[from] RenderError),
    /// Suricata rejected the candidate (or could not be run).
    #[error("the candidate configuration failed its check; the previous files stay active")]
    Check(#[from] SuricataError),
    /// The history could not record the change; the previous generation is current again.
    #[error("cannot record the change in the history; the previous files are active again")]
    History(#[from] GitopsError),
    /// A file-system step failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ApplyError {
    /// True when the operator's input is at fault (exit code 2 at the CLI).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ApplyError::Render(e) if e.is_bad_input())
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError {
    let path = path.to_path_buf();
    move |source| ApplyError::Io {
        action,
        path,
        source,
    }
}

/// Renders the settings into `out_dir` as a new generation and makes it current, unless the
/// files equal the current generation's.
pub fn render_to(
    settings: &Settings,
    opts: &RenderOptions,
    out_dir: &Path,
    validator: &Validator,
) -> Result<Outcome, ApplyError> {
    render_set(settings, opts, out_dir, validator).map(|(outcome, _)| outcome)
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether a new generation became current.
    pub outcome: Outcome,
    /// The history commit, or `None` when the history already held exactly these files.
    pub commit: Option<CommitInfo>,
    /// Why the push to `history.remote` failed, when it did. The commit stays local and goes
    /// out with the next apply's push, so this is a warning, not a failure.
    pub push_error: Option<String>,
}

/// [`render_to`], then one commit of the active files (config.yaml included) to the history
/// repository, then a push when `history.remote` is set.
pub fn apply(
    settings: &Settings,
    opts: &RenderOptions,
    out_dir: &Path,
    validator: &Validator,
) -> Result<Applied, ApplyError> {
    let h = &settings.config.history;
    let history = History::open_or_init(
        Path::new(&h.repo),
        &h.branch,
        Author {
            name: h.author_name.clone(),
            email: h.author_email.clone(),
        },
    )?;
    let previous = current_generation(out_dir);
    let (outcome, set) = render_set(settings, opts, out_dir, validator)?;
    let subject = match &outcome {
        Outcome::Changed { generation } => format!(
            "apply generation {generation} on {}",
            settings.config.sensor.id
        ),
        Outcome::Unchanged => format!(
            "record the active configuration of {}",
            settings.config.sensor.id
        ),
    };
    let commit = match history.commit(&set.files, &subject) {
        Ok(commit) => commit,
        Err(e) => {
            if let (Outcome::Changed { .. }, Some(prev)) = (&outcome, previous) {
                let out_dir = std::path::absolute(out_dir).map_err(io("resolve", out_dir))?;
                swap_current(&out_dir, prev)?;
            }
            return Err(e.into());
        }
    };
    let push_error = h
        .remote
        .as_deref()
        .and_then(|remote| history.push(remote).err())
        .map(|e| e.to_string());
    Ok(Applied {
        outcome,
        commit,
        push_error,
    })
}

/// The daemon's reloader: [`apply`] into one directory of generations, then what changed.
#[derive(Debug, Clone)]
pub struct Applier {
    /// The directory of generations (`paths.rendered_dir` at the agent's start: Suricata and
    /// Vector are started on its `current`, so it does not follow a reloaded config).
    pub out_dir: PathBuf,
    /// Templates override and Suricata's config directory; the profile is set per apply.
    pub render: RenderOptions,
    /// How candidates are checked.
    pub validator: Validator,
}

/// The files of a generation that decide what must reload: `suricata.yaml`, the local rules,
/// `vector.toml`, the Redis copy's `vector-redis.toml` (`None` for a file that is absent).
type Watched = [Option<Vec<u8>>; 4];

fn watched(dir: &Path) -> Watched {
    [
        render::SURICATA_YAML,
        render::LOCAL_RULES,
        render::VECTOR_TOML,
        render::VECTOR_REDIS_TOML,
    ]
    .map(|rel| fs::read(dir.join(rel)).ok())
}

/// How Suricata and Vector pick up the step from `old` to `new`.
fn pickups(old: &Watched, new: &Watched) -> (Pickup, Pickup) {
    let [old_yaml, old_rules, old_vector, old_redis] = old;
    let [new_yaml, new_rules, new_vector, new_redis] = new;
    let suricata = if old_yaml != new_yaml {
        Pickup::Restart
    } else if old_rules != new_rules {
        Pickup::Reload
    } else {
        Pickup::Nothing
    };
    // A reload re-reads the files Vector started with: a Redis copy switched on or off changes
    // which files those are.
    let vector = if old_redis.is_some() != new_redis.is_some() {
        Pickup::Restart
    } else if old_vector != new_vector || old_redis != new_redis {
        Pickup::Reload
    } else {
        Pickup::Nothing
    };
    (suricata, vector)
}

impl Reloader for Applier {
    fn apply(&self, settings: &Settings, profile: Profile) -> Result<ApplyOutcome, ReloadError> {
        let before = watched(&self.out_dir.join(CURRENT));
        let opts = RenderOptions {
            profile,
            ..self.render.clone()
        };
        let applied = apply(settings, &opts, &self.out_dir, &self.validator)
            .map_err(|e| ReloadError::Apply(Box::new(e)))?;
        if let Some(e) = &applied.push_error {
            tracing::warn!("{e}; the commit goes out with the next push");
        }
        if let Some(commit) = &applied.commit {
            tracing::info!(commit = %commit.id, repo = %settings.config.history.repo, "history recorded");
        }
        Ok(match applied.outcome {
            Outcome::Unchanged => ApplyOutcome::Unchanged,
            Outcome::Changed { generation } => {
                let after = watched(&self.out_dir.join(GENERATIONS).join(generation.to_string()));
                let (suricata, vector) = pickups(&before, &after);
                ApplyOutcome::Changed {
                    generation,
                    suricata,
                    vector,
                }
            }
        })
    }

    fn active_generation(&self) -> Option<u64> {
        current_generation(&self.out_dir)
    }
}

/// The generation `current` points at, if any.
fn current_generation(out_dir: &Path) -> Option<u64> {
    fs::read_link(out_dir.join(CURRENT))
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

fn render_set(
    settings: &Settings,
    opts: &RenderOptions,
    out_dir: &Path,
    validator: &Validator,
) -> Result<(Outcome, RenderedSet), ApplyError> {
    let out_dir = std::path::absolute(out_dir).map_err(io("resolve", out_dir))?;
    let opts = RenderOptions {
        rendered_dir: Some(out_dir.clone()),
        ..opts.clone()
    };
    // Rendering is pure: a bad config or template fails here, before anything is written.
    let set = render::render(settings, &opts)?;

    let current = out_dir.join(CURRENT);
    if current.exists() && matches_dir(&set, &current)? {
        return Ok((Outcome::Unchanged, set));
    }

    let generations = out_dir.join(GENERATIONS);
    fs::create_dir_all(&generations).map_err(io("create", &generations))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&out_dir)
        .map_err(io("create a staging directory in", &out_dir))?;
    write_set(&set, staging.path())?;

    if let Validator::Suricata(suricata) = validator {
        let report = suricata.check(
            &staging.path().join(render::SURICATA_YAML),
            &staging.path().join(render::LOCAL_RULES),
            &Path::new(&settings.config.suricata.rules_dir).join("suricata.rules"),
        )?;
        if !report.rule_set_checked {
            tracing::warn!(
                rules_dir = %settings.config.suricata.rules_dir,
                "the downloaded rule set (suricata.rules) is absent; suricata -T checked the \
                 local rules only (run suricata-update)"
            );
        }
    }

    let generation = next_generation(&generations)?;
    let target = generations.join(generation.to_string());
    let staged = staging.keep();
    fs::rename(&staged, &target).map_err(|e| {
        let _ = fs::remove_dir_all(&staged);
        io("move the checked files to", &target)(e)
    })?;
    sync_dir(&generations)?;
    swap_current(&out_dir, generation)?;
    prune(&generations, generation)?;
    Ok((Outcome::Changed { generation }, set))
}

/// True when `dir` holds exactly the files of `set`, byte for byte.
fn matches_dir(set: &RenderedSet, dir: &Path) -> Result<bool, ApplyError> {
    for (rel, bytes) in &set.files {
        match fs::read(dir.join(rel)) {
            Ok(existing) if existing == *bytes => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io("read", &dir.join(rel))(e)),
        }
    }
    let mut on_disk = Vec::new();
    list_files(dir, dir, &mut on_disk)?;
    Ok(on_disk.len() == set.files.len())
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ApplyError> {
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let path = entry.map_err(io("list", dir))?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Writes and fsyncs every file: the swap must never point at data still in the page cache
/// when the Pi loses power.
fn write_set(set: &RenderedSet, dir: &Path) -> Result<(), ApplyError> {
    for (rel, bytes) in &set.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let mut f = fs::File::create(&path).map_err(io("create", &path))?;
        f.write_all(bytes).map_err(io("write", &path))?;
        f.sync_all().map_err(io("sync", &path))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ApplyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// Generation numbers present, ascending.
fn generation_numbers(generations: &Path) -> Result<Vec<u64>, ApplyError> {
    let mut numbers: Vec<u64> = fs::read_dir(generations)
        .map_err(io("list", generations))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

fn next_generation(generations: &Path) -> Result<u64, ApplyError> {
    Ok(generation_numbers(generations)?.last().map_or(1, |n| n + 1))
}

/// Points `current` at `generations/<N>` by renaming a new relative symlink over it.
fn swap_current(out_dir: &Path, generation: u64) -> Result<(), ApplyError> {
    let link = out_dir.join(CURRENT);
    let tmp = out_dir.join(format!(".{CURRENT}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let target = Path::new(GENERATIONS).join(generation.to_string());
    std::os::unix::fs::symlink(&target, &tmp).map_err(io("create the symlink", &tmp))?;
    fs::rename(&tmp, &link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("swap", &link)(e)
    })?;
    sync_dir(out_dir)
}

/// Removes all but the newest [`KEEP_GENERATIONS`], never the current one.
fn prune(generations: &Path, current: u64) -> Result<(), ApplyError> {
    let numbers = generation_numbers(generations)?;
    let cut = numbers.len().saturating_sub(KEEP_GENERATIONS);
    for n in numbers[..cut].iter().filter(|n| **n != current) {
        let dir = generations.join(n.to_string());
        fs::remove_dir_all(&dir).map_err(io("remove the old generation", &dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn settings(memory_mb: u32) -> Settings {
        config::from_str(
            &format!(
                "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1, \
                 endpoint: 'https://h.example'}}\nsuricata: {{memory_mb: {memory_mb}}}\n"
            ),
            Path::new("t.yaml"),
        )
        .unwrap()
    }

    fn current_target(out: &Path) -> PathBuf {
        fs::read_link(out.join(CURRENT)).unwrap()
    }

    #[test]
    fn generations_swap_and_prune() {
        let out = tempfile::tempdir().unwrap();
        let opts = RenderOptions::default();
        for (i, mb) in [256, 384, 512, 640].into_iter().enumerate() {
            let outcome = render_to(&settings(mb), &opts, out.path(), &Validator::Skip).unwrap();
            assert_eq!(
                outcome,
                Outcome::Changed {
                    generation: i as u64 + 1
                }
            );
        }
        assert_eq!(current_target(out.path()), Path::new("generations/4"));
        assert_eq!(
            generation_numbers(&out.path().join(GENERATIONS)).unwrap(),
            [2, 3, 4]
        );
        let yaml = fs::read_to_string(out.path().join("current/suricata.yaml")).unwrap();
        assert!(yaml.contains("memory_mb = 640"), "{yaml}");
        // No staging dirs or temporary links are left behind.
        let names: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [CURRENT, GENERATIONS]);
    }

    #[test]
    fn identical_render_is_unchanged() {
        let out = tempfile::tempdir().unwrap();
        let opts = RenderOptions::default();
        let s = settings(512);
        assert_eq!(
            render_to(&s, &opts, out.path(), &Validator::Skip).unwrap(),
            Outcome::Changed { generation: 1 }
        );
        assert_eq!(
            render_to(&s, &opts, out.path(), &Validator::Skip).unwrap(),
            Outcome::Unchanged
        );
        // A stray file in the current generation makes it differ.
        fs::write(out.path().join("current/extra"), "x").unwrap();
        assert_eq!(
            render_to(&s, &opts, out.path(), &Validator::Skip).unwrap(),
            Outcome::Changed { generation: 2 }
        );
    }

    #[test]
    fn render_error_writes_nothing() {
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("fresh");
        let s = config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let err = render_to(&s, &RenderOptions::default(), &target, &Validator::Skip).unwrap_err();
        assert!(err.is_bad_input(), "{err:?}");
        assert!(!target.exists());
    }

    fn set(yaml: &str, rules: &str, vector: &str) -> Watched {
        let [y, r, v] = [yaml, rules, vector].map(|t| Some(t.as_bytes().to_vec()));
        [y, r, v, None]
    }

    fn with_redis(mut w: Watched, redis: &str) -> Watched {
        w[3] = Some(redis.as_bytes().to_vec());
        w
    }

    #[test]
    fn pickups_follow_the_changed_files() {
        let base = set("y", "r", "v");
        assert_eq!(pickups(&base, &base), (Pickup::Nothing, Pickup::Nothing));
        assert_eq!(
            pickups(&base, &set("y", "r2", "v")),
            (Pickup::Reload, Pickup::Nothing)
        );
        assert_eq!(
            pickups(&base, &set("y2", "r2", "v")),
            (Pickup::Restart, Pickup::Nothing)
        );
        assert_eq!(
            pickups(&base, &set("y", "r", "v2")),
            (Pickup::Nothing, Pickup::Reload)
        );
        // The first generation: everything is new.
        assert_eq!(
            pickups(&[None, None, None, None], &base),
            (Pickup::Restart, Pickup::Reload)
        );
        // The Redis copy switched on or off changes Vector's files: only a restart reads them.
        let redis = with_redis(base.clone(), "k");
        assert_eq!(pickups(&base, &redis), (Pickup::Nothing, Pickup::Restart));
        assert_eq!(pickups(&redis, &base), (Pickup::Nothing, Pickup::Restart));
        assert_eq!(
            pickups(&redis, &with_redis(base.clone(), "k2")),
            (Pickup::Nothing, Pickup::Reload)
        );
    }

    #[test]
    fn applier_reports_what_a_profile_change_touches() {
        let dir = tempfile::tempdir().unwrap();
        let s = config::from_str(
            &format!(
                "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1, \
                 endpoint: 'https://h.example'}}\nhistory: {{repo: '{}'}}\n",
                dir.path().join("history.git").display()
            ),
            Path::new("t.yaml"),
        )
        .unwrap();
        let applier = Applier {
            out_dir: dir.path().join("rendered"),
            render: RenderOptions::default(),
            validator: Validator::Skip,
        };
        assert_eq!(
            applier.apply(&s, Profile::Full).unwrap(),
            ApplyOutcome::Changed {
                generation: 1,
                suricata: Pickup::Restart,
                vector: Pickup::Reload
            }
        );
        assert_eq!(
            applier.apply(&s, Profile::Full).unwrap(),
            ApplyOutcome::Unchanged
        );
        // Fewer EVE types is a suricata.yaml change; Vector's config does not depend on it.
        assert_eq!(
            applier.apply(&s, Profile::Reduced).unwrap(),
            ApplyOutcome::Changed {
                generation: 2,
                suricata: Pickup::Restart,
                vector: Pickup::Nothing
            }
        );
    }
}
