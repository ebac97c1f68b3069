//! Helpers shared by the test binaries of this crate.

pub mod nixos;
