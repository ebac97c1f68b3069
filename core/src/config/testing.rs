//! Helpers the sections' tests share: a minimal valid config and ways to list the problems
//! of a variation of it.

use std::path::Path;

use super::validate::validate;
use super::{from_str, Config, ConfigError, Problem};

/// The smallest valid file: the two required sections.
pub const MINIMAL: &str = "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n";

/// [`MINIMAL`], parsed (every default filled in).
pub fn base() -> Config {
    serde_yaml_ng::from_str(MINIMAL).unwrap()
}

/// The key paths of the problems of [`base`] after `edit`.
pub fn problems_after(edit: impl FnOnce(&mut Config)) -> Vec<String> {
    let mut c = base();
    edit(&mut c);
    match validate(c) {
        Ok(_) => Vec::new(),
        Err(p) => p.into_iter().map(|p| p.path).collect(),
    }
}

/// The problems of [`MINIMAL`] followed by `extra` (more sections as YAML text).
pub fn problems_with(extra: &str) -> Vec<Problem> {
    match from_str(&format!("{MINIMAL}{extra}"), Path::new("t.yaml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("{other}"),
    }
}

/// The key paths of `p`.
pub fn paths(p: &[Problem]) -> Vec<&str> {
    p.iter().map(|p| p.path.as_str()).collect()
}
