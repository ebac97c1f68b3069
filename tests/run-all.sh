#!/usr/bin/env bash
# The project's test command (README "Run all tests"): static checks, then every test.
# Tests that need root, Suricata or another tool skip with a message when it is missing;
# `.ci/install-deps` installs all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== nix static checks (parse, nixpkgs-fmt, deadnix, dashboard metrics)"
.ci/nix-checks

echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
