//! ids2-provision: the operator's side of ids2.
//!
//! `domain` drives the AWS OpenSearch control plane (create once, never overwrite), `setup`
//! installs index templates, the lifecycle policy and dashboards over the domain's REST API,
//! `sensor` writes a sensor `config.yaml`, `fleet` reads the sensors' heartbeats. The agent library supplies only the config types
//! and the list of ECS fields the mapping emits, so the templates cannot drift from it.

pub mod aws;
pub mod diff;
pub mod domain;
pub mod endpoint;
pub mod fleet;
pub mod mappings;
pub mod objects;
pub mod rest;
pub mod sensor;
pub mod setup;
