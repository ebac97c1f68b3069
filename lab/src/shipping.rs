//! Where the lab's sensor ships besides its ECS archive: when the real Vector and the
//! osmem-server OpenSearch-API **emulator** are both found, the agent's Vector ships every EVE
//! event to the emulator, as a sensor ships to its OpenSearch domain.
//!
//! The emulator runs on the host's loopback; the sensor reaches it at [`SENSOR_ENDPOINT`] on its
//! own loopback (plain `http://` is accepted for loopback only), carried out of the namespace by
//! a relay ([`crate::agent::Relay::out_of`]). The sensor's config points at it the way the
//! shipping tests do ([`crate::ship::opensearch_yaml`]: basic auth the emulator ignores), and
//! `ids2-provision opensearch setup --templates-only` installs the index templates first when
//! it is found beside the agent.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::agent::Relay;
use crate::osmem::{self, Osmem};
use crate::{ship, LabError};

/// The emulator's address as the sensor sees it, inside its namespace. The namespace is the
/// lab's own and fresh, so nothing else holds the port.
pub const SENSOR_ENDPOINT: &str = "http://127.0.0.1:9200";
/// The index prefix the lab's sensor ships under.
pub const INDEX_PREFIX: &str = "ids2";
/// How long the lab waits, at the end, for the archived alerts to be indexed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the lab ships to, prepared before the namespaces exist.
pub struct Shipping {
    os: Osmem,
    vector: PathBuf,
    /// The `opensearch:` line of the sensor's config.
    pub opensearch_yaml: String,
    /// How the index templates were installed, or why not.
    pub templates: String,
    relay: Option<Relay>,
}

/// What reached the emulator by the end of the run.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// The emulator's URL on the host.
    pub url: String,
    /// The Vector the agent ran.
    pub vector: PathBuf,
    /// Documents per index.
    pub indices: BTreeMap<String, u64>,
    /// The archived alerts (by `event.id`) found in the alert indices.
    pub alerts_indexed: usize,
    /// The archived alerts.
    pub alerts_archived: usize,
}

impl Shipping {
    /// Finds Vector and the emulator, starts the emulator and installs the index templates
    /// (with `ids2-provision` beside `agent`); `Err` says why the lab keeps the archive only.
    pub fn prepare(agent: &Path, work: &Path) -> Result<Self, String> {
        let vector = ids2_agent::vector::locate()?;
        let server = osmem::locate()?;
        let os = Osmem::start(&server).map_err(|e| e.to_string())?;
        let opensearch_yaml = ship::opensearch_yaml(SENSOR_ENDPOINT, INDEX_PREFIX, work)
            .map_err(|e| e.to_string())?;
        let provision =
            agent.with_file_name(format!("ids2-provision{}", std::env::consts::EXE_SUFFIX));
        let templates = if provision.is_file() {
            let out = Command::new(&provision)
                .args(["opensearch", "setup", "--endpoint", os.url()])
                .args(["--templates-only", "--index-prefix", INDEX_PREFIX])
                .args(["--auth", "basic", "--username", "ids2", "--password-file"])
                .arg(work.join("opensearch-password"))
                .output()
                .map_err(|e| format!("{}: {e}", provision.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "ids2-provision opensearch setup --templates-only failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            "index templates installed by ids2-provision opensearch setup".to_string()
        } else {
            format!(
                "no index templates ({} not found; the emulator maps fields as it sees them)",
                provision.display()
            )
        };
        Ok(Self {
            os,
            vector,
            opensearch_yaml,
            templates,
            relay: None,
        })
    }

    /// Opens [`SENSOR_ENDPOINT`] in the sensor namespace `ns`.
    pub fn connect(&mut self, ns: &str) -> Result<(), LabError> {
        let inside: SocketAddr = SENSOR_ENDPOINT
            .trim_start_matches("http://")
            .parse()
            .expect("a valid socket address");
        self.relay = Some(Relay::out_of(ns, inside, self.os.addr())?);
        Ok(())
    }

    /// The environment that makes the agent run this Vector.
    pub fn agent_env(&self) -> Vec<(&str, &OsStr)> {
        vec![(ids2_agent::vector::PROGRAM_ENV, self.vector.as_os_str())]
    }

    /// The emulator's URL on the host.
    pub fn url(&self) -> &str {
        self.os.url()
    }

    /// Waits until every alert in `archived` (their `event.id`s) is indexed, or
    /// [`DELIVERY_TIMEOUT`]; then what the emulator holds. Suricata's stats records, every few
    /// seconds, push the last alerts out of Vector's disk buffer (vectordotdev/vector#22946).
    pub fn delivered(&self, archived: &BTreeSet<String>) -> Result<Shipped, LabError> {
        let alerts = format!("{INDEX_PREFIX}-suricata.alert-*");
        let fail = |e: &dyn std::fmt::Display| LabError::Metrics(format!("the emulator: {e}"));
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let indexed = loop {
            let ids: BTreeSet<String> = ship::indexed_ids(&self.os, &alerts)
                .map_err(|e| fail(&e))?
                .into_values()
                .flatten()
                .collect();
            let n = archived.intersection(&ids).count();
            if n == archived.len() || Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        Ok(Shipped {
            url: self.os.url().to_string(),
            vector: self.vector.clone(),
            indices: self
                .os
                .indices(&format!("{INDEX_PREFIX}-*"))
                .map_err(|e| fail(&e))?,
            alerts_indexed: indexed,
            alerts_archived: archived.len(),
        })
    }
}
