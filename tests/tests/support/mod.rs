//! Helpers shared by the test binaries of this crate.

pub mod nixos;

/// `found`'s value, or `None` after saying why the test skips (an absent tool or input).
pub fn or_skip<T>(found: Result<T, impl std::fmt::Display>) -> Option<T> {
    found.map_err(|why| eprintln!("skipped: {why}")).ok()
}
