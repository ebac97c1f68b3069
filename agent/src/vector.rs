//! Vector, the shipper: which program runs and the environment it needs to read the rendered
//! `vector.toml` the same way in every version a sensor may run.
//!
//! The sensor runs `$IDS2_VECTOR`, else `vector` on `PATH` ([`program`]). Tests, benchmarks and
//! the lab find it with [`locate`], which also accepts the shared build beside a checkout
//! (`<workspace>/../shared/vector/vector`): one lookup, one order, everywhere.

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

/// Overrides the address Vector's Prometheus exporter listens on (default `127.0.0.1:9598`, as
/// the sensor serves it): the rendered `vector.toml` reads it as `${IDS2_VECTOR_METRICS:-…}`, so
/// tests and the lab run several Vectors side by side without a second config.
pub const METRICS_ADDR_ENV: &str = "IDS2_VECTOR_METRICS";

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
    /// The fallback assumes this crate sits one level below the workspace root.
    #[test]
    fn the_crate_sits_one_level_below_the_workspace_root() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
                .expect("the parent directory holds a Cargo.toml");
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }
}
