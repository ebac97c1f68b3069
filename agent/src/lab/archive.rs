//! The lab's local archive (the embedded default sink when Vector is absent): each EVE alert
//! mapped to an ECS document by the same VRL program `vector.toml` embeds, one JSON document
//! per line.
//!
//! The program is compiled here with the `vrl` crate until the ECS module's `Mapper` is merged;
//! it is the very program `render::ecs_program` renders, so the documents equal Vector's.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use vrl::compiler::{runtime::Runtime, Program, TargetValue, TimeZone};

use super::LabError;
use crate::config::Settings;
use crate::render;

/// ECS documents appended to a JSONL file.
pub struct Archive {
    program: Program,
    out: BufWriter<File>,
    path: PathBuf,
    written: u64,
}

impl Archive {
    /// Compiles the settings' ECS program and creates (truncates) `path`.
    pub fn create(settings: &Settings, path: &Path) -> Result<Self, LabError> {
        let source = render::ecs_program(settings).map_err(|e| LabError::Ecs(e.to_string()))?;
        let program = vrl::compiler::compile(&source, &vrl::stdlib::all())
            .map_err(|d| LabError::Ecs(vrl::diagnostic::Formatter::new(&source, d).to_string()))?
            .program;
        let file = File::create(path).map_err(|source| LabError::Io {
            action: "create",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            program,
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            written: 0,
        })
    }

    /// Maps one EVE line and appends the document; flushed so a reader sees it at once.
    pub fn append(&mut self, eve_line: &str) -> Result<serde_json::Value, LabError> {
        let mut event = vrl::value::ObjectMap::new();
        event.insert("message".into(), vrl::value::Value::from(eve_line));
        let mut target = TargetValue {
            value: vrl::value::Value::Object(event),
            metadata: vrl::value::Value::Object(Default::default()),
            secrets: Default::default(),
        };
        Runtime::default()
            .resolve(&mut target, &self.program, &TimeZone::default())
            .map_err(|e| LabError::Ecs(format!("the ECS program failed on an EVE line: {e}")))?;
        let doc: serde_json::Value = target
            .value
            .try_into()
            .map_err(|e| LabError::Ecs(format!("the ECS document is not JSON: {e:?}")))?;
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
