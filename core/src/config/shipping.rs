//! `shipping`: how events are batched and buffered on their way to OpenSearch, the optional
//! Redis copy, and the local ECS archive the agent writes itself.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::schema::none;
use super::validate::check_abs_path;

/// How events are batched and buffered on their way to OpenSearch, the optional Redis copy, and the
/// agent's own ECS archive.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    /// Most events in one bulk request (1–100000); the byte cap normally closes a batch first.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: u32,
    /// Most MiB in one bulk request (1–100 MiB). Vector holds several batches in memory while
    /// it drains a backlog: 1 MiB keeps its peak RSS near 125 MB where 5 MiB took ~200 MB, at
    /// the same rate (docs/ecs.md). Raise it toward OpenSearch's 5–15 MiB guidance only if the
    /// domain struggles with many sensors' request counts.
    #[serde(default = "default_batch_max_mb")]
    pub batch_max_mb: u32,
    /// Seconds a partial batch waits before it is sent (1–300).
    #[serde(default = "default_batch_timeout_secs")]
    pub batch_timeout_secs: u32,
    /// How bulk bodies travel to OpenSearch: `none` (default) or `gzip`, which made the corpus
    /// mix's bodies 17 times smaller on the sensor's uplink for no Vector CPU measurable here
    /// (docs/ecs.md). AWS OpenSearch domains take gzip bodies; Vector signs the compressed one.
    #[serde(default = "default_compression")]
    pub compression: BulkCompression,
    /// Size of Vector's disk buffer in MiB (256–65536); events wait here while OpenSearch is
    /// unreachable. Vector keeps 128 MiB of it for the data file it writes next, so it holds
    /// this less 128 MiB of events (at 1,000 events/s, 256 lasts about 100 s). Vector's minimum
    /// is 32 bytes over 256 MiB, so 256 renders as that minimum.
    #[serde(default = "default_buffer_max_mb")]
    pub buffer_max_mb: u32,
    /// An optional second copy of every event, pushed to a local Redis list when this is present
    /// (only while Redis answers: Vector starts without the copy otherwise, and the agent
    /// restarts it with the copy once Redis is back).
    #[serde(default)]
    pub redis: Option<Redis>,
    /// The local archive of ECS documents the agent writes itself (the embedded default sink): its
    /// EVE reader maps events with the program `vector.toml` embeds.
    #[serde(default)]
    pub archive: Archive,
    /// `address:port` Vector's Prometheus exporter listens on: Vector's own metrics, among them
    /// its disk buffer's fill, which the agent reads into each heartbeat. It has no
    /// authentication; keep it on loopback.
    #[serde(default = "default_vector_metrics_listen")]
    pub vector_metrics_listen: String,
}

/// The `Content-Encoding` of the bulk requests Vector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkCompression {
    /// Plain JSON bodies.
    None,
    /// gzip-compressed bodies.
    Gzip,
}

/// When the agent's own EVE reader maps events to ECS into a local file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveMode {
    /// Only when the `process` backend finds no `vector` on PATH, so events still land
    /// somewhere on a machine where Vector is not installed.
    Auto,
    /// Always, next to whatever Vector ships (the lab reads its detections from it).
    Always,
    /// Never.
    Never,
}

/// The local ECS archive: one JSON document per line, mapped by the program `vector.toml`
/// embeds, appended by the agent's EVE reader.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// `auto` (default), `always` or `never`.
    #[serde(default = "default_archive_mode")]
    pub mode: ArchiveMode,
    /// The JSON-lines file, an absolute path; appended to, its directory created. Counted in
    /// `ids2_archive_documents_total` and `ids2_archive_failures_total`.
    #[serde(default = "default_archive_path")]
    pub path: String,
    /// EVE event types archived; each must be in `suricata.eve_types` (mapping costs CPU per
    /// event).
    #[serde(default = "default_archive_event_types")]
    pub event_types: Vec<String>,
}

/// Optional Redis sink.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port/db`; no password in the URL (the sensor's Redis listens on loopback).
    #[serde(default = "default_redis_url")]
    pub url: String,
    /// List key the events are pushed to.
    #[serde(default = "default_redis_key")]
    pub key: String,
}

super::schema::default_from_fns! {
    Shipping {
        batch_max_events: default_batch_max_events, batch_max_mb: default_batch_max_mb,
        batch_timeout_secs: default_batch_timeout_secs, compression: default_compression,
        buffer_max_mb: default_buffer_max_mb,
        redis: none, archive: Archive::default,
        vector_metrics_listen: default_vector_metrics_listen,
    }
    Archive {
        mode: default_archive_mode, path: default_archive_path,
        event_types: default_archive_event_types,
    }
}

/// Default address of Vector's metrics: loopback, where the sensor's Prometheus scrapes it.
pub fn default_vector_metrics_listen() -> String {
    "127.0.0.1:9598".into()
}

/// Default bulk size cap in events; the byte cap is what normally closes a batch.
pub fn default_batch_max_events() -> u32 {
    10_000
}

/// Default bulk size: 1 MiB, a sensor's rate at a fraction of the memory of larger batches
/// (measured with `bench/vector-ecs.py --sink-set`).
pub fn default_batch_max_mb() -> u32 {
    1
}

/// Default batch timeout.
pub fn default_batch_timeout_secs() -> u32 {
    5
}

/// Default bulk compression: none, as before the option existed; the bytes it saves are the
/// uplink's, which only the operator can weigh.
pub fn default_compression() -> BulkCompression {
    BulkCompression::None
}

impl BulkCompression {
    /// The value of the Vector sink's `compression`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }
}

/// Default disk buffer size.
pub fn default_buffer_max_mb() -> u32 {
    256
}

/// Default Redis URL.
pub fn default_redis_url() -> String {
    "redis://127.0.0.1:6379/0".into()
}

/// Default Redis list key.
pub fn default_redis_key() -> String {
    "ids2:eve".into()
}

/// Default archive mode: only when Vector is not installed.
pub fn default_archive_mode() -> ArchiveMode {
    ArchiveMode::Auto
}

/// Default archive file.
pub fn default_archive_path() -> String {
    "/var/lib/ids2/archive/ecs.jsonl".into()
}

/// Default archived event types: the alerts (mapping costs CPU per event).
pub fn default_archive_event_types() -> Vec<String> {
    vec!["alert".into()]
}

impl Shipping {
    /// Checks batching, buffering, Redis and the archive, whose event types must be among
    /// `suricata.eve_types`.
    pub(super) fn validate(&self, eve_types: &[String], p: &mut Vec<Problem>) {
        let s = self;
        if !(1..=100_000).contains(&s.batch_max_events) {
            p.push(Problem::new(
                "shipping.batch_max_events",
                s.batch_max_events,
                "expected 1 to 100000 events",
            ));
        }
        if !(1..=100).contains(&s.batch_max_mb) {
            p.push(Problem::new(
                "shipping.batch_max_mb",
                s.batch_max_mb,
                "expected 1 to 100 MiB (AWS OpenSearch rejects bulk bodies over 10–100 MiB by \
                 instance size; 5–15 is the usual guidance)",
            ));
        }
        if !(1..=300).contains(&s.batch_timeout_secs) {
            p.push(Problem::new(
                "shipping.batch_timeout_secs",
                s.batch_timeout_secs,
                "expected 1 to 300 seconds",
            ));
        }
        // Vector refuses disk buffers under 256 MiB.
        if !(256..=65_536).contains(&s.buffer_max_mb) {
            p.push(Problem::new(
                "shipping.buffer_max_mb",
                s.buffer_max_mb,
                "expected 256 to 65536 MiB (Vector's disk buffer minimum is 256 MiB)",
            ));
        }
        if s.vector_metrics_listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            p.push(Problem::new(
                "shipping.vector_metrics_listen",
                &s.vector_metrics_listen,
                "expected address:port, e.g. 127.0.0.1:9598",
            ));
        }
        if let Some(r) = &s.redis {
            if !r.url.starts_with("redis://") && !r.url.starts_with("rediss://") {
                p.push(Problem::new(
                    "shipping.redis.url",
                    &r.url,
                    "expected redis://HOST:PORT/DB or rediss://…",
                ));
            }
            if r.key.is_empty() {
                p.push(Problem::at("shipping.redis.key", "must not be empty"));
            }
        }
        let a = &s.archive;
        check_abs_path("shipping.archive.path", &a.path, p);
        if a.event_types.is_empty() {
            p.push(Problem::at(
                "shipping.archive.event_types",
                "must name at least one EVE type, e.g. [alert]",
            ));
        }
        for (i, t) in a.event_types.iter().enumerate() {
            if !eve_types.contains(t) {
                p.push(Problem::new(
                    format!("shipping.archive.event_types[{i}]"),
                    t,
                    "is not in suricata.eve_types, so Suricata never writes it; add it there or \
                     remove it here",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{base, paths, problems_after, problems_with};
    use super::BulkCompression;
    use crate::config::Config;

    #[test]
    fn archive_defaults_are_valid_and_bad_values_named_by_key() {
        let c = base();
        assert_eq!(c.shipping.archive.mode, crate::config::ArchiveMode::Auto);
        assert_eq!(c.shipping.archive.event_types, ["alert"]);
        assert!(c.capture.pin_workers);
        assert!(problems_after(|_| {}).is_empty());
        let p = problems_after(|c| {
            c.shipping.archive.path = "archive.jsonl".into();
            c.shipping.archive.event_types = vec!["alert".into(), "smb".into()];
        });
        assert_eq!(
            p,
            ["shipping.archive.path", "shipping.archive.event_types[1]"]
        );
        assert_eq!(
            problems_after(|c| c.shipping.archive.event_types.clear()),
            ["shipping.archive.event_types"]
        );
        assert_eq!(c.shipping.vector_metrics_listen, "127.0.0.1:9598");
        assert_eq!(
            problems_after(|c| c.shipping.vector_metrics_listen = "localhost".into()),
            ["shipping.vector_metrics_listen"]
        );
        let text = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n\
                    shipping: {archive: {mode: sometimes}}\n";
        assert!(serde_yaml_ng::from_str::<Config>(text).is_err());
    }

    #[test]
    fn bulk_compression_defaults_to_none_and_a_bad_value_names_the_accepted_ones() {
        assert_eq!(base().shipping.compression, BulkCompression::None);
        assert!(problems_with("shipping: {compression: gzip}\n").is_empty());
        let p = problems_with("shipping: {compression: zstd}\n");
        assert_eq!(paths(&p), ["shipping.compression"]);
        let text = p[0].to_string();
        assert!(
            text.contains("zstd") && text.contains("none") && text.contains("gzip"),
            "{text}"
        );
    }
}
