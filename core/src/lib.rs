//! ids2-core: what the sensor and the operator's laptop must agree on, in one portable crate.
//!
//! The sensor agent (`ids2-agent`) and the operator's tool (`ids2-provision`) both read and
//! write `config.yaml`, and both depend on the shape of the documents the sensor ships: the
//! ECS fields the mapping emits, the heartbeat and the anomaly event. Those definitions live
//! here, once, so the two programs cannot drift apart: [`config`] (types, parsing and
//! validation, pure), [`ecs`] (the emitted ECS fields), [`heartbeat`] and [`anomaly`] (the
//! documents and their field lists), and [`policy`] (the fleet's alert tuning).
//!
//! This crate must never depend on a Linux-only crate (netlink, D-Bus, systemd, nftables,
//! namespaces), nor on `ids2-agent` or `ids2-lab`: `ids2-provision` builds on macOS through
//! it, and `tests/check-portable.sh` resolves its tree for `aarch64-apple-darwin` to prove it.
//! It touches no host: reading a file is the most it does.

pub mod anomaly;
pub mod config;
pub mod ecs;
pub mod heartbeat;
pub mod policy;
