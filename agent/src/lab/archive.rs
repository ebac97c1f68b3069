//! The lab's local archive (the embedded default sink when Vector is absent): each EVE alert
//! mapped to an ECS document by [`ecs::Mapper`], which runs the very program `vector.toml`
//! embeds, one JSON document per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::LabError;
use crate::config::Settings;
use crate::ecs;

/// ECS documents appended to a JSONL file.
pub struct Archive {
    mapper: ecs::Mapper,
    out: BufWriter<File>,
    path: PathBuf,
    written: u64,
}

impl Archive {
    /// Compiles the settings' ECS program and creates (truncates) `path`.
    pub fn create(settings: &Settings, path: &Path) -> Result<Self, LabError> {
        let mapper = ecs::Mapper::new(settings).map_err(|e| LabError::Ecs(e.to_string()))?;
        let file = File::create(path).map_err(|source| LabError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            mapper,
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            written: 0,
        })
    }

    /// Maps one EVE line and appends the document; flushed so a reader sees it at once.
    pub fn append(&mut self, eve_line: &str) -> Result<serde_json::Value, LabError> {
        let doc = self
            .mapper
            .map_line(eve_line)
            .map_err(|e| LabError::Ecs(format!("the ECS program failed on an EVE line: {e}")))?;
        let io = |source| LabError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, &doc).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)?;
        self.written += 1;
        Ok(doc)
    }

    /// Documents written.
    pub fn written(&self) -> u64 {
        self.written
    }
}
