//! ids2-provision: the operator's side of ids2, run from a laptop (Linux or macOS) as
//! `nix run .#provision`.
//!
//! `domain` drives the AWS OpenSearch control plane (create once, never overwrite), `setup`
//! installs index templates, the lifecycle policy and dashboards over the domain's REST API,
//! `sensor` writes a sensor `config.yaml`, `fleet` reads the sensors' heartbeats (and `health` pages on them), `tune` writes the fleet policy, `pcap` fetches packet evidence from a sensor over SSH. The portable
//! core (`ids2-core`) supplies the config types and the field lists of the documents the sensor
//! ships, so the config and the templates cannot drift from the agent.
//!
//! This crate must never depend on `ids2-agent` or `ids2-lab`, nor on any Linux-only crate:
//! operators run it on macOS. `tests/check-portable.sh` (in the test command) resolves its
//! dependency tree for `aarch64-apple-darwin` and `x86_64-apple-darwin` and fails on either.

pub mod aws;
pub mod diff;
pub mod domain;
pub mod endpoint;
pub mod fleet;
pub mod health;
pub mod mappings;
pub mod objects;
pub mod pcap;
pub mod rest;
pub mod sensor;
pub mod setup;
pub mod tune;
