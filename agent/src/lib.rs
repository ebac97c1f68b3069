//! ids2-agent: the sensor's one daemon and its library, for the Pi (and any Linux host that
//! runs a sensor).
//!
//! Modules follow the layering in DESIGN.md: `config` (the portable core's, [`ids2_core`]) is
//! pure; `render` turns settings into files; one module per outside system; the runtime
//! composes them; `main.rs` is the CLI.
//!
//! This crate must never depend on `ids2-lab` (the lab and the adversary emulator stay off the
//! sensor image; `tests/cli_commands.rs` asserts the binary's subcommands and
//! `tests/check-portable.sh` the dependency tree), nor hold anything `ids2-provision` needs:
//! what both sides share belongs in `ids2-core`, which the operator's tool builds on macOS.

pub mod anomaly;
pub mod apply;
pub mod behaviour;
pub mod block;
pub mod connectivity;
pub mod ecs;
pub mod enrich;
pub mod eve;
pub mod files;
pub mod fleet;
pub mod gitops;
pub mod intel;
pub mod listen;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod pipeline;
pub mod render;
pub mod resources;
pub mod run;
pub mod supervisor;
pub mod suricata;
pub mod systemd;
pub mod vector;

/// The sensor config: the portable core's, so `ids2-provision` reads and writes exactly what
/// the agent validates.
pub use ids2_core::config;
