//! Fleet membership: the heartbeat each sensor ships ([`heartbeat`]), rule-set updates
//! that never leave a sensor without working rules ([`rules`]), the fleet policy analysts tune
//! alerts with ([`policy`]), with the client for
//! Suricata's unix-command socket they reload rules through ([`socket`]).

pub mod heartbeat;
pub mod policy;
pub mod rules;
pub mod socket;

pub use heartbeat::{Heartbeat, HeartbeatWriter};
pub use rules::{RuleSetState, RuleUpdater, RulesError, UpdateReport};
pub use socket::{SocketError, SuricataSocket};

use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::supervisor::Supervisor;

/// Starts the fleet tasks under the daemon's supervisor: the heartbeat, the scheduled intel feed
/// updates when `intel.scheduled` is on and a feed is configured (whose per-feed metrics it
/// adds to `/metrics` whenever a feed is configured), the fleet policy fetches when
/// `fleet.policy.enabled` is on and the endpoint is set, and the scheduled rule updates when `fleet.rules.scheduled` is on and Suricata and suricata-update are installed
/// (otherwise that is logged and `ids2-agent rules update` stays available). `started` is the
/// agent's start, for its uptime.
pub fn spawn(
    sup: &mut Supervisor,
    settings: &Arc<Settings>,
    metrics: &Arc<Metrics>,
    started: Instant,
) {
    // The heartbeat's state lives outside the factory so a restarted task keeps its counters.
    let beat = Arc::new(tokio::sync::Mutex::new(Heartbeat::new(
        settings.clone(),
        metrics.clone(),
        started,
    )));
    sup.spawn(
        "heartbeat",
        Box::new(move |shutdown| {
            let beat = beat.clone();
            Box::pin(async move { beat.lock().await.run(shutdown).await })
        }),
    );
    let intel = &settings.config.intel;
    if intel.enabled() {
        // The per-feed families, read from the state file at each scrape: `ids2-agent intel
        // update` run by hand writes it too.
        let (feeds, dir) = (intel.all_feeds(), std::path::PathBuf::from(&intel.dir));
        metrics.add_renderer(Box::new(move |out| {
            let states = ids2_core::heartbeat::IntelFeedState::read_all(&dir);
            crate::intel::feeds::report::render_metrics(
                &feeds,
                &states,
                time::OffsetDateTime::now_utc(),
                out,
            );
        }));
    }
    if intel.enabled() && intel.scheduled {
        // Beside the rule updates: each feed when its interval is due.
        match crate::intel::feeds::FeedUpdater::for_settings(settings) {
            Ok(updater) => sup.spawn(
                "intel-feeds",
                Box::new(move |shutdown| {
                    Box::pin(crate::intel::feeds::run_schedule(updater.clone(), shutdown))
                }),
            ),
            Err(e) => tracing::warn!("scheduled intel feed updates are off: {e}"),
        }
    }
    if settings.config.fleet.policy.enabled && settings.config.opensearch.endpoint.is_none() {
        tracing::info!("fleet policy fetches wait for opensearch.endpoint");
    } else if settings.config.fleet.policy.enabled {
        match policy::PolicyUpdater::for_settings(settings.clone()) {
            Ok(updater) => {
                let m = metrics.clone();
                sup.spawn(
                    "policy",
                    Box::new(move |shutdown| {
                        Box::pin(policy::run_schedule(updater.clone(), m.clone(), shutdown))
                    }),
                );
            }
            Err(e) => tracing::warn!("fleet policy fetches are off: {e}"),
        }
    }
    if !settings.config.fleet.rules.scheduled {
        return;
    }
    match RuleUpdater::for_settings(settings) {
        Ok(updater) => {
            let m = metrics.clone();
            sup.spawn(
                "rules",
                Box::new(move |shutdown| {
                    Box::pin(rules::run_schedule(updater.clone(), m.clone(), shutdown))
                }),
            );
        }
        Err(e) => tracing::warn!("scheduled rule updates are off: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::Backoff;

    #[tokio::test]
    async fn spawned_heartbeat_writes_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "sensor: {{id: lab-1}}\nopensearch: {{domain: ids2, region: eu-west-1}}\n\
             logs: {{path: {0}}}\nfleet: {{heartbeat_secs: 5, offline_after_secs: 10, \
             rules: {{scheduled: false}}}}\n",
            dir.path().display()
        );
        let settings = Arc::new(crate::config::from_str(&text, std::path::Path::new("t")).unwrap());
        let metrics = Arc::new(Metrics::new("t"));
        let mut sup = Supervisor::new(metrics.clone(), Backoff::default());
        spawn(&mut sup, &settings, &metrics, Instant::now());
        let file = dir.path().join(heartbeat::HEARTBEAT_FILE);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while !file.exists() && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sup.shutdown(std::time::Duration::from_secs(2)).await;
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(doc["observer"]["hostname"], "lab-1");
        assert_eq!(metrics.heartbeats.get(&[]), Some(1.0));
    }
}
