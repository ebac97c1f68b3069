//! ids2-agent: the sensor's one daemon and its library.
//!
//! Modules follow the layering in DESIGN.md: `config` is pure; `render` turns settings into
//! files; one module per outside system; the runtime composes them; `main.rs` is the CLI.

pub mod anomaly;
pub mod apply;
pub mod behaviour;
pub mod block;
pub mod config;
pub mod connectivity;
pub mod ecs;
pub mod emulate;
pub mod enrich;
pub mod eve;
pub mod files;
pub mod fleet;
pub mod gitops;
pub mod intel;
pub mod lab;
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
