#!/usr/bin/env bash
# The long fuzz run (issue #20): every fuzz target for MINUTES minutes each (default 10), one
# after the other, then a table of cases run, cases per second and failures per target. The same
# targets run a few seconds each in `./tests/run-all.sh`; here IDS2_FUZZ_SECS stretches them.
# A failing target prints arbtest's seed; replay it with
#   ARBTEST_SEED=0x… cargo test -p CRATE --test TEST -- --exact NAME
# Builds the tests in the dev profile (as CI does; dependencies are optimised there) unless
# FUZZ_PROFILE names another cargo profile (e.g. release).
# Usage: bench/fuzz-long.sh [MINUTES] [TARGET...]   (MINUTES 0.1..600; targets: see below)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
shift || true
awk -v m="$minutes" 'BEGIN { exit !(m >= 0.1 && m <= 600) }' || { echo "MINUTES must be 0.1..600" >&2; exit 2; }
secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
profile=${FUZZ_PROFILE:-dev}

# target label, crate, test binary, test name
targets=(
  "config ids2-core fuzz_config fuzz_config_any_bytes"
  "eve-tailer ids2-agent fuzz fuzz_eve_tailer"
  "ecs ids2-agent fuzz fuzz_ecs_mapping"
  "notify ids2-agent fuzz fuzz_notify_renderers"
  "metrics-http ids2-agent fuzz fuzz_metrics_endpoint"
  "blocklist-http ids2-agent fuzz fuzz_blocklist_endpoint"
)
want=("$@")

cargo test -q --profile "$profile" -p ids2-core --test fuzz_config --no-run
cargo test -q --profile "$profile" -p ids2-agent --test fuzz --no-run

work=$(mktemp -d /tmp/ids2-fuzz-long.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf '%-15s %12s %9s %10s %s\n' target cases seconds cases/s failures > "$work/table"
status=0
for t in "${targets[@]}"; do
  read -r label crate test name <<<"$t"
  if ((${#want[@]})) && [[ " ${want[*]} " != *" $label "* ]]; then continue; fi
  echo "== $label: $minutes min" >&2
  if IDS2_FUZZ_SECS=$secs cargo test -q --profile "$profile" -p "$crate" --test "$test" -- \
      --exact "$name" --nocapture >"$work/$label.log" 2>&1; then
    failures=0
  else
    failures=1
    status=1
    grep -A1 -i 'arbtest failed' "$work/$label.log" >&2 || tail -n 30 "$work/$label.log" >&2
  fi
  line=$(grep -m1 "^fuzz $label: " "$work/$label.log" || true)
  # "fuzz LABEL: N cases in S s (R/s), 0 failures"
  read -r cases s rate < <(sed -E 's/^fuzz [^:]+: ([0-9]+) cases in ([0-9.]+) s \(([0-9]+)\/s\).*/\1 \2 \3/' <<<"${line:-- - -}")
  printf '%-15s %12s %9s %10s %s\n' "$label" "${cases:--}" "${s:--}" "${rate:--}" "$failures" >> "$work/table"
done
cat "$work/table"
exit $status
