//! The ECS side of the pipeline: what the mapping emits.
pub mod fields;
