//! Vector, the shipper: which program runs and the environment it needs to read the rendered
//! `vector.toml` the same way in every version a sensor may run.
//!
//! The sensor runs `$IDS2_VECTOR`, else `vector` on `PATH` ([`program`]). Tests, benchmarks and
//! the lab find it with [`locate`], which also accepts the shared build beside a checkout
//! (`<workspace>/../shared/vector/vector`): one lookup, one order, everywhere.
//!
//! The agent also reads Vector's Prometheus exporter ([`buffer_use`]) for the heartbeat's
//! shipping backlog: how much of the events sink's disk buffer waits for OpenSearch.

use std::ffi::OsString;
use std::path::PathBuf;

/// Names the Vector program to run instead of `vector` on `PATH`.
pub const PROGRAM_ENV: &str = "IDS2_VECTOR";

/// Vector 0.57 stopped expanding `${VAR}` (and unescaping `$$`) in config files unless this is
/// set; older versions expand always and ignore it. The rendered `vector.toml` needs expansion
/// in all of them: the basic-auth password is only a reference to `IDS2_OPENSEARCH_PASSWORD`,
/// and a literal `$` in a value is written `$$`. The config is written by the agent alone and
/// Vector's environment is set by the agent or its unit, which is what keeps this safe.
pub const INTERPOLATION_ENV: (&str, &str) =
    ("VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION", "true");

/// The sink (and buffer id) that ships events, whose disk buffer is the shipping backlog.
pub const EVENTS_SINK: &str = "opensearch";

/// Bytes waiting in `buffer_id`'s buffer and the buffer's size, from the exporter's text.
/// Vector 0.58 names them `vector_buffer_size_bytes` and `vector_buffer_max_size_bytes`; older
/// releases `vector_buffer_byte_size` and `vector_buffer_max_byte_size`. Either is read;
/// `None` when the exporter lists neither for `buffer_id`.
pub fn parse_buffer_use(text: &str, buffer_id: &str) -> Option<(u64, u64)> {
    let label = format!("buffer_id=\"{buffer_id}\"");
    let (mut bytes, mut max) = (None, None);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !labels.split(',').any(|l| l == label) {
            continue;
        }
        let slot = match name {
            "vector_buffer_size_bytes" | "vector_buffer_byte_size" => &mut bytes,
            "vector_buffer_max_size_bytes" | "vector_buffer_max_byte_size" => &mut max,
            _ => continue,
        };
        // The value, then an optional timestamp.
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *slot = Some(v.max(0.0) as u64);
        }
    }
    // Vector reports the buffer's size from the start but its contents only once an event
    // has passed through it: a buffer that never held one is empty.
    match (bytes, max) {
        (None, None) => None,
        (bytes, max) => Some((bytes.unwrap_or(0), max.unwrap_or(0))),
    }
}

/// Reads [`parse_buffer_use`] for `buffer_id` from Vector's exporter at `addr`.
pub async fn buffer_use(addr: &str, buffer_id: &str) -> Result<(u64, u64), String> {
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| format!("{url}: {e}"))?;
    let text = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    parse_buffer_use(&text, buffer_id)
        .ok_or_else(|| format!("{url}: no buffer size for buffer_id {buffer_id:?}"))
}

/// The shared Vector build beside a checkout of this workspace.
const SHARED_BUILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vector/vector");

/// The program the agent runs: `$IDS2_VECTOR`, else `vector` (searched on `PATH`).
pub fn program() -> OsString {
    std::env::var_os(PROGRAM_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "vector".into())
}

/// Vector for tests, benchmarks and the lab: `$IDS2_VECTOR`, else `vector` on `PATH`, else the
/// shared build beside the workspace. The error says what was tried, for a skip message.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(PROGRAM_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{PROGRAM_ENV}={} is not a file", p.display()))
        };
    }
    if let Some(p) = crate::files::find_program("vector") {
        return Ok(p);
    }
    let shared = PathBuf::from(SHARED_BUILD);
    if shared.is_file() {
        return Ok(shared);
    }
    Err(format!(
        "no Vector: set {PROGRAM_ENV}, put `vector` on PATH, or place the shared build at {}",
        shared.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Vector 0.58's exporter writes them (read off the shared build), and the older
    /// names.
    #[test]
    fn buffer_use_is_read_by_either_name_for_its_buffer_only() {
        let text = "\
# TYPE vector_buffer_size_bytes gauge
vector_buffer_max_size_bytes{buffer_id=\"opensearch\",buffer_type=\"disk\",component_id=\"opensearch\",stage=\"0\"} 268435488 1796284603438
vector_buffer_size_bytes{buffer_id=\"opensearch_heartbeat\",buffer_type=\"disk\",stage=\"0\"} 5 1796284603438
vector_buffer_size_bytes{buffer_id=\"opensearch\",buffer_type=\"disk\",component_id=\"opensearch\",stage=\"0\"} 39780656 1796284603438
";
        assert_eq!(
            parse_buffer_use(text, "opensearch"),
            Some((39_780_656, 268_435_488))
        );
        let old = "vector_buffer_byte_size{buffer_id=\"opensearch\"} 1024\n\
                   vector_buffer_max_byte_size{buffer_id=\"opensearch\"} 4096\n";
        assert_eq!(parse_buffer_use(old, "opensearch"), Some((1024, 4096)));
        assert_eq!(parse_buffer_use(text, "redis"), None);
        let idle = "vector_buffer_max_size_bytes{buffer_id=\"opensearch\"} 268435488\n";
        assert_eq!(parse_buffer_use(idle, "opensearch"), Some((0, 268_435_488)));
    }

    /// The fallback assumes this crate sits one level below the workspace root.
    #[test]
    fn the_crate_sits_one_level_below_the_workspace_root() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
                .expect("the parent directory holds a Cargo.toml");
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }
}
