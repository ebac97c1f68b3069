//! Reloading: a changed config file (polled by mtime, confirmed by content hash) or SIGHUP
//! re-validates the config and hands it to a [`Reloader`], which re-renders and applies it.
//!
//! The reloader is a seam: the real render → `suricata -T` → swap → git pipeline lives in the
//! `apply` module and is wired in by `run`; [`ValidateOnly`] is the honest implementation for a
//! build without it — it validates and reports that nothing was applied.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{Shutdown, TaskError};
use crate::config::Settings;
use crate::resources::OutputProfile;

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The rendered files equal the active generation: nothing to reload.
    Unchanged,
    /// A new generation is active; reload the components whose files changed.
    Changed {
        /// The new generation number.
        generation: u64,
        /// `suricata.yaml` or the rules changed: Suricata must restart.
        suricata: bool,
        /// `vector.toml` changed: Vector must reload.
        vector: bool,
    },
    /// The settings were valid but this build cannot render them; nothing on the host changed.
    NotApplied {
        /// Why, for the log.
        reason: String,
    },
}

/// Why an apply failed; the previous generation stays active.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Rendering, validation by `suricata -T` or the swap failed.
    #[error("apply failed: {0}")]
    Apply(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Renders and applies validated settings with an EVE output profile. Called from a blocking
/// thread: it may run `suricata -T` and write files.
pub trait Reloader: Send + Sync {
    /// Applies `settings` rendered with `profile`.
    fn apply(
        &self,
        settings: &Settings,
        profile: OutputProfile,
    ) -> Result<ApplyOutcome, ReloadError>;
}

/// A reloader for a build without the render/apply pipeline: the caller has validated the
/// settings; this reports that nothing was rendered rather than pretending it was.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValidateOnly;

impl Reloader for ValidateOnly {
    fn apply(
        &self,
        _settings: &Settings,
        profile: OutputProfile,
    ) -> Result<ApplyOutcome, ReloadError> {
        Ok(ApplyOutcome::NotApplied {
            reason: format!(
                "config is valid; no renderer is wired into this build, so the {profile:?} \
                 profile was not rendered and the running pipeline is unchanged"
            ),
        })
    }
}

/// Modification time and SHA-256 of a file.
pub fn file_fingerprint(path: &Path) -> std::io::Result<(SystemTime, [u8; 32])> {
    let modified = std::fs::metadata(path)?.modified()?;
    let bytes = std::fs::read(path)?;
    Ok((modified, Sha256::digest(&bytes).into()))
}

/// Polls a config file and sends a message when its content changes. The mtime is checked
/// every poll (cheap); the hash only when the mtime moved, so a `touch` alone reloads nothing.
pub struct ConfigWatcher {
    /// The config file.
    pub path: PathBuf,
    /// Time between polls.
    pub poll: Duration,
    /// Where change notices go.
    pub changed: tokio::sync::mpsc::Sender<()>,
}

impl ConfigWatcher {
    /// Watches until shutdown. A file that vanishes (an editor's rename dance) is waited for.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let mut last = file_fingerprint(&self.path).ok();
        while shutdown.sleep(self.poll).await {
            let Ok(modified) = std::fs::metadata(&self.path).and_then(|m| m.modified()) else {
                continue;
            };
            if last.as_ref().is_some_and(|(m, _)| *m == modified) {
                continue;
            }
            let Ok(now) = file_fingerprint(&self.path) else {
                continue;
            };
            let content_changed = last.as_ref().is_none_or(|(_, h)| *h != now.1);
            last = Some(now);
            if content_changed {
                tracing::info!(path = %self.path.display(), "config file changed");
                if self.changed.send(()).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::{mpsc, watch};

    #[tokio::test]
    async fn content_change_is_reported_but_touch_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(
            ConfigWatcher {
                path: path.clone(),
                poll: Duration::from_millis(20),
                changed: tx,
            }
            .run(Shutdown::new(stop_rx)),
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Same content, new mtime.
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        drop(f);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "a touch must not trigger a reload");

        std::fs::write(&path, "a: 2\n").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(10))
            .unwrap();
        drop(f);
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no change notice within 5 s")
            .unwrap();
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[test]
    fn validate_only_reports_without_applying() {
        let settings = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        match ValidateOnly
            .apply(&settings, OutputProfile::Reduced)
            .unwrap()
        {
            ApplyOutcome::NotApplied { reason } => assert!(reason.contains("Reduced"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
