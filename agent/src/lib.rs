//! ids2-agent: the sensor's one daemon and its library.
//!
//! Modules follow the layering in DESIGN.md: `config` is pure; `render` turns settings into
//! files; one module per outside system; the runtime composes them; `main.rs` is the CLI.

pub mod anomaly;
pub mod apply;
pub mod config;
pub mod ecs;
pub mod gitops;
pub mod net;
pub mod render;
pub mod suricata;
pub mod systemd;
