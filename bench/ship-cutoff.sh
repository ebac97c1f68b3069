#!/usr/bin/env bash
# How long a sensor can be cut off from OpenSearch at a steady event rate with the default sizes
# (Vector's 256 MiB disk buffer, the 256 MiB log tmpfs, EVE rotation at 64 MiB) before an event
# is lost, and what the operator sees when that limit is passed (tests/examples/ship_cutoff.rs).
# The real agent runs the real Vector against a STAND-IN for OpenSearch's _bulk (it records
# which documents arrived; the osmem-server emulator cannot hold a cut-off's hundreds of
# thousands of documents) behind a proxy the benchmark cuts; the benchmark writes corpus EVE lines (each with its own timestamp) at RATE
# lines/s into the log tmpfs, mounted in a private mount namespace made for the run (root).
# Bounded: the outage ends a minute after the first line is lost or after MAX_SECS (default
# 1800), the drain after 1200 s. It prints how fast the backlog drained once the server was back.
# Usage: sudo bench/ship-cutoff.sh [RATE] [MAX_SECS] [BATCH_MAX_MB] (shipping.batch_max_mb; default:
# the config default)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1000}
max=${2:-1800}
batch=${3:-}
(( rate >= 1 && rate <= 20000 )) || { echo "RATE must be 1..20000 lines/s" >&2; exit 2; }
(( max >= 60 && max <= 3600 )) || { echo "MAX_SECS must be 60..3600" >&2; exit 2; }
[[ -z $batch ]] || (( batch >= 1 && batch <= 100 )) || { echo "BATCH_MAX_MB must be 1..100" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root: the log tmpfs is mounted in a private mount namespace" >&2; exit 2; }
cargo build -q -p ids2-agent -p ids2-e2e --example ship_cutoff
# The sensor's log tmpfs (logs.size_mb default 256), visible only inside the namespace; the
# agent, Vector and the stand-in server are started inside it.
exec unshare --mount --propagation private -- bash -c '
  set -euo pipefail
  logs=$(mktemp -d /tmp/ids2-cutoff-logs.XXXXXX)
  mount -t tmpfs -o size=256m ids2-logs "$logs"
  target/debug/examples/ship_cutoff --logs "$logs" --rate "$1" --max-secs "$2" ${3:+--batch-max-mb "$3"}
  umount "$logs"; rmdir "$logs"' bash "$rate" "$max" "$batch"
