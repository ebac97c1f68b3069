//! The embedded default sink: the daemon's EVE reader hands every line to this [`LineSink`],
//! which maps the archived event types to ECS with [`ecs::Mapper`] (the very program the
//! rendered `vector.toml` embeds) and appends one JSON document per line to
//! `shipping.archive.path`. It runs when Vector cannot (`auto`: process backend, no `vector` on
//! PATH) or when asked to (`always`), so events land somewhere on any machine.
//!
//! A line that fails to map or write is logged and counted in
//! `ids2_archive_failures_total`; documents written are counted in
//! `ids2_archive_documents_total`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::config::{ArchiveMode, Settings};
use crate::ecs::{self, EcsError};
use crate::eve::LineSink;
use crate::metrics::Metrics;

/// Why the archive cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The ECS program did not compile for these settings.
    #[error("cannot build the ECS mapping for shipping.archive")]
    Ecs(#[from] EcsError),
    /// The archive file or its directory could not be created.
    #[error(
        "cannot open the ECS archive {} (shipping.archive.path): check the directory's \
         permissions or set shipping.archive.mode: never",
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The local ECS archive.
pub struct Archive {
    inner: Mutex<Writer>,
    event_types: Vec<String>,
    written: AtomicU64,
    failed: AtomicU64,
}

struct Writer {
    mapper: ecs::Mapper,
    out: BufWriter<File>,
    path: PathBuf,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    event_type: Option<std::borrow::Cow<'a, str>>,
}

impl Archive {
    /// Whether the archive runs: `always`; `auto` when the process backend will find no Vector.
    pub fn wanted(settings: &Settings, process_backend: bool, vector_installed: bool) -> bool {
        match settings.config.shipping.archive.mode {
            ArchiveMode::Always => true,
            ArchiveMode::Auto => process_backend && !vector_installed,
            ArchiveMode::Never => false,
        }
    }

    /// The EVE reader's checkpoint beside the archive (`<path>.eve-position`): the archive gets
    /// what Suricata wrote while the agent was down.
    pub fn checkpoint_path(settings: &Settings) -> PathBuf {
        let mut p = PathBuf::from(&settings.config.shipping.archive.path).into_os_string();
        p.push(".eve-position");
        PathBuf::from(p)
    }

    /// Compiles the settings' ECS program and opens `shipping.archive.path` for appending
    /// (creating its directory).
    pub fn open(settings: &Settings) -> Result<Self, ArchiveError> {
        let a = &settings.config.shipping.archive;
        let path = PathBuf::from(&a.path);
        let mapper = ecs::Mapper::new(settings)?;
        let open = || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            File::options().create(true).append(true).open(&path)
        };
        let file = open().map_err(|source| ArchiveError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            inner: Mutex::new(Writer {
                mapper,
                out: BufWriter::new(file),
                path,
            }),
            event_types: a.event_types.clone(),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Maps and appends `line` when its type is archived; flushed at once, so a reader of the
    /// file sees each document as soon as the agent has read its event.
    pub fn offer(&self, line: &[u8]) {
        let archived = match serde_json::from_slice::<Head>(line) {
            Ok(Head {
                event_type: Some(t),
            }) => self.event_types.iter().any(|e| *e == t),
            _ => false,
        };
        if !archived {
            return;
        }
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match w.append(line) {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %w.path.display(), "ECS archive: {e}");
            }
        }
    }

    /// Documents written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Lines of an archived type that could not be mapped or written.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// This archive as the EVE reader's sink; its counters are added to `metrics`.
    pub fn into_sink(self, metrics: &Metrics) -> LineSink {
        let archive = Arc::new(self);
        let stats = archive.clone();
        metrics.add_renderer(Box::new(move |out| stats.render(out)));
        Arc::new(move |line: &[u8]| archive.offer(line))
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, v) in [
            (
                "ids2_archive_documents_total",
                "ECS documents appended to the local archive.",
                self.written(),
            ),
            (
                "ids2_archive_failures_total",
                "EVE lines of an archived type that could not be mapped or appended.",
                self.failed(),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
    }
}

impl Writer {
    fn append(&mut self, line: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(line).map_err(|e| format!("EVE line is not UTF-8: {e}"))?;
        let doc = self.mapper.map_line(text).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("cannot append: {e}");
        serde_json::to_writer(&mut self.out, &doc).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(dir: &Path, mode: &str) -> Settings {
        let yaml = format!(
            "sensor: {{id: arch-1}}\n\
             opensearch: {{domain: ids2, region: eu-west-1}}\n\
             suricata: {{eve_types: [alert, dns, stats]}}\n\
             shipping: {{archive: {{mode: {mode}, path: '{}', event_types: [alert, dns]}}}}\n",
            dir.join("sub/ecs.jsonl").display()
        );
        crate::config::from_str(&yaml, Path::new("<test>")).unwrap()
    }

    #[test]
    fn runs_when_vector_cannot_or_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let auto = settings(dir.path(), "auto");
        assert!(Archive::wanted(&auto, true, false));
        assert!(!Archive::wanted(&auto, true, true));
        assert!(!Archive::wanted(&auto, false, false), "systemd runs Vector");
        assert!(Archive::wanted(
            &settings(dir.path(), "always"),
            false,
            true
        ));
        assert!(!Archive::wanted(
            &settings(dir.path(), "never"),
            true,
            false
        ));
    }

    #[test]
    fn archives_the_chosen_types_as_ecs_documents_and_counts_failures() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "always");
        let metrics = Metrics::new("t");
        let archive = Archive::open(&s).unwrap();
        let sink = archive.into_sink(&metrics);
        sink(
            br#"{"timestamp":"2026-11-21T05:00:00.000000+0000","flow_id":1,"event_type":"alert","src_ip":"10.77.0.10","dest_ip":"10.77.0.20","proto":"TCP","alert":{"signature_id":9200001,"signature":"ids2 test","severity":2}}"#,
        );
        sink(br#"{"timestamp":"2026-11-21T05:00:01.000000+0000","event_type":"stats","stats":{}}"#);
        sink(br#"{"timestamp":"2026-11-21T05:00:02.000000+0000","event_type":"dns","src_ip":"10.77.0.10","dest_ip":"10.77.0.20","proto":"UDP","dns":{"type":"query","rrname":"a.lab"}}"#);
        sink(br#"{"event_type":"alert","timestamp":42}"#);
        sink(b"not json");
        let text = std::fs::read_to_string(dir.path().join("sub/ecs.jsonl")).unwrap();
        let docs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2, "{text}");
        assert_eq!(docs[0]["rule"]["id"], "9200001");
        assert_eq!(docs[0]["event"]["dataset"], "suricata.alert");
        assert_eq!(docs[1]["event"]["dataset"], "suricata.dns");
        let out = metrics.render();
        assert!(out.contains("ids2_archive_documents_total 2\n"), "{out}");
        assert!(out.contains("ids2_archive_failures_total 1\n"), "{out}");
    }
}
