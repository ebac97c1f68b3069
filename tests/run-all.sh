#!/usr/bin/env bash
# The project's test command (README "Run all tests"): static checks, then every test.
# Tests that need root, Suricata or another tool skip with a message when it is missing;
# `.ci/install-deps` installs all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Quiet builds, and nextest (.config/nextest.toml) lists only slow and failing tests with the
# failures' output again at the end: CI keeps a bounded excerpt of the output, and that excerpt
# must hold the failures.

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --quiet --workspace --all-targets --locked -- -D warnings

echo "== nix static checks (parse, nixpkgs-fmt, deadnix, dashboard metrics)"
.ci/nix-checks

echo "== portability (ids2-provision and ids2-core resolved for macOS; the agent without the lab)"
tests/check-portable.sh

echo "== cargo nextest"
cargo nextest run --cargo-quiet --workspace --locked --no-fail-fast
