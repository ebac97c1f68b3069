//! `ids2-agent ecs`: EVE JSON lines in, ECS JSON lines out, bad lines reported and skipped.

use std::io::{self, BufRead, Write};

use super::{EcsError, Mapper};

/// What a stream run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamSummary {
    /// Lines mapped and written.
    pub mapped: u64,
    /// Lines reported on `errors` and skipped.
    pub failed: u64,
}

/// Maps every non-empty line of `input` to one JSON line on `output`. A line that is not valid
/// EVE is reported on `errors` as `line N: <reason>` (N counts from 1) and skipped; the rest
/// still map. Only I/O errors stop the run.
pub fn map_stream(
    mapper: &mut Mapper,
    input: impl BufRead,
    mut output: impl Write,
    mut errors: impl Write,
) -> io::Result<StreamSummary> {
    let mut summary = StreamSummary::default();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let mapped = match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => mapper.map_line(text.trim_end_matches('\r')),
            Err(e) => Err(EcsError::InvalidEvent {
                reason: format!("not UTF-8 text ({e})"),
            }),
        };
        match mapped {
            Ok(doc) => {
                serde_json::to_writer(&mut output, &doc)?;
                output.write_all(b"\n")?;
                summary.mapped += 1;
            }
            Err(e) => {
                writeln!(errors, "line {}: {e}", index + 1)?;
                summary.failed += 1;
            }
        }
    }
    output.flush()?;
    Ok(summary)
}
