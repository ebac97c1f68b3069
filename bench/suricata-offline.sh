#!/usr/bin/env bash
# Offline Suricata throughput: `suricata -r` over every corpus pcap (../shared/corpus/pcaps) with
# the config ids2 renders (agent/config.example.yaml, local ids2 rules) versus Suricata's stock
# /etc/suricata/suricata.yaml (with no rules, then with the same ids2 rules). Prints packets/s per
# run (wall time, start-up included; best of RUNS; pcap-file mode needs --runmode autofp, so
# the rendered config's af-packet `workers` runmode is overridden). Needs suricata and a built ids2-agent
# (cargo build -p ids2-agent). Usage: bench/suricata-offline.sh [RUNS]   (default 3, at most 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
(( runs >= 1 && runs <= 10 )) || { echo "RUNS must be 1..10" >&2; exit 2; }
corpus=../shared/corpus/pcaps
[[ -d $corpus ]] || { echo "SKIP: $corpus is absent (the shared corpus)"; exit 0; }
command -v suricata >/dev/null || { echo "SKIP: suricata is not installed"; exit 0; }
agent=${IDS2_AGENT:-target/debug/ids2-agent}
[[ -x $agent ]] || cargo build -q -p ids2-agent

work=$(mktemp -d /tmp/ids2-bench-offline.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$agent" render --config agent/config.example.yaml --out "$work/rendered" >/dev/null 2>&1
ours=$work/rendered/current/suricata.yaml
rules=$work/rendered/current/rules/ids2.rules
stock=/etc/suricata/suricata.yaml

# The pcaps' total, counted once by Suricata itself (its exit summary line).
run() { # name, then suricata arguments; prints "name packets seconds pps"
  local name=$1 best="" pkts=0
  shift
  for ((i = 0; i < runs; i++)); do
    rm -rf "$work/logs" && mkdir -p "$work/logs"
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$(suricata -r "$corpus" -l "$work/logs" -k none \
      --runmode autofp --set threading.set-cpu-affinity=no "$@" 2>&1) || { echo "$out" | tail -5 >&2; return 1; }
    t1=$(date +%s.%N)
    pkts=$(grep -o 'read [0-9]* files, [0-9]* packets' <<<"$out" | awk '{print $4}' | tail -1)
    best=$(awk -v a="$t1" -v b="$t0" -v best="$best" \
      'BEGIN { s = a - b; if (best == "" || s < best) best = s; print best }')
  done
  awk -v n="$name" -v p="$pkts" -v s="$best" \
    'BEGIN { printf "%-36s %8d packets %7.2f s %10.0f packets/s\n", n, p, s, p / s }'
}

echo "suricata -r $corpus ($(ls "$corpus" | wc -l) files), best of $runs, $(nproc) CPUs"
run "stock suricata.yaml, no rules" -c "$stock" -S /dev/null
run "stock suricata.yaml + ids2 rules" -c "$stock" -S "$rules"
run "ids2 rendered config + ids2 rules" -c "$ours" -S "$rules"
