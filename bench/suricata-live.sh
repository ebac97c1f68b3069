#!/usr/bin/env bash
# Live Suricata capacity, and what packet evidence costs it: tcpreplay the corpus (Ethernet pcaps
# of ../shared/corpus/pcaps) into the sensor's eth0 inside a network namespace at rising rates,
# Suricata capturing with the config ids2 renders (af-packet, 2 workers, ids2 rules), with
# evidence off, with the default ring (pcap-log, lz4) and with a plain ring, at each rate side by
# side. Each
# step runs STEP_SECS (bounded) with a fresh Suricata whose exit summary gives packets and kernel
# drops, and GNU time its CPU seconds; a mode's ladder stops at its first step with drops.
# Reports, per mode, the highest rate with zero kernel drops, and the CPU ratio at each rate.
# Needs root, suricata, tcpreplay, GNU time (/usr/bin/time).
# Usage: sudo bench/suricata-live.sh [STEP_SECS]   (default 5, at most 30)
set -euo pipefail
cd "$(dirname "$0")/.."
step_secs=${1:-5}
(( step_secs >= 1 && step_secs <= 30 )) || { echo "STEP_SECS must be 1..30" >&2; exit 2; }
rates=(2000 5000 10000 20000 40000 80000 160000)
corpus=../shared/corpus/pcaps
[[ -d $corpus ]] || { echo "SKIP: $corpus is absent (the shared corpus)"; exit 0; }
[[ $(id -u) == 0 ]] || { echo "SKIP: needs root (network namespaces)"; exit 0; }
for tool in suricata tcpreplay ip; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 0; }
done
[[ -x /usr/bin/time ]] || { echo "SKIP: needs GNU time (/usr/bin/time)"; exit 0; }
agent=${IDS2_AGENT:-target/debug/ids2-agent}
[[ -x $agent ]] || cargo build -q -p ids2-agent

tag=ids2bench-$$
rep=$tag-rep sen=$tag-sen
work=$(mktemp -d /tmp/ids2-bench-live.XXXXXX)
suri_pid=""
cleanup() {
  [[ -n $suri_pid ]] && kill "$suri_pid" 2>/dev/null && wait "$suri_pid" 2>/dev/null || true
  ip netns del "$rep" 2>/dev/null || true
  ip netns del "$sen" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Classic little-endian pcaps with Ethernet link type: what tcpreplay can put on a veth as is.
pcaps=()
for f in "$corpus"/*.pcap; do
  hdr=$(od -An -tx1 -N24 "$f" | tr -d ' \n')
  [[ ${hdr:0:8} == d4c3b2a1 && ${hdr:40:8} == 01000000 ]] && pcaps+=("$f")
done
echo "replaying ${#pcaps[@]} Ethernet pcaps, $step_secs s per step, $(nproc) CPUs"

ip netns add "$rep"
ip netns add "$sen"
ip -n "$rep" link add eth0 type veth peer name eth0 netns "$sen"
ip -n "$rep" link set eth0 up
ip -n "$sen" link set eth0 up

# The example config as shipped (evidence on: the lz4 ring), with evidence off, and with a
# plain (uncompressed) ring.
modes=(off lz4 none)
{ cat agent/config.example.yaml; echo "evidence: {mode: off}"; } >"$work/off.yaml"
cp agent/config.example.yaml "$work/lz4.yaml"
{ cat agent/config.example.yaml; echo "evidence: {compression: none}"; } >"$work/none.yaml"
for mode in "${modes[@]}"; do
  "$agent" render --config "$work/$mode.yaml" --out "$work/$mode" >/dev/null 2>&1
done

# step MODE RATE: one Suricata run; sets actual, pkts, drops, cpu, ring.
step() {
  local mode=$1 rate=$2 logs=$work/logs-$1
  rm -rf "$logs" && mkdir -p "$logs"
  ip netns exec "$sen" /usr/bin/time -f '%U %S' -o "$logs/time" \
    suricata -c "$work/$mode/current/suricata.yaml" -S "$work/$mode/current/rules/ids2.rules" \
    --af-packet=eth0 -l "$logs" --set threading.set-cpu-affinity=no >"$logs/out" 2>&1 &
  suri_pid=$!
  for _ in $(seq 1 600); do
    grep -q "Engine started" "$logs/out" && break
    kill -0 "$suri_pid" 2>/dev/null || { tail -5 "$logs/out" >&2; exit 1; }
    sleep 0.1
  done
  local replay
  replay=$(ip netns exec "$rep" timeout $((step_secs + 30)) tcpreplay -i eth0 -K --pps="$rate" \
    --loop=0 --duration="$step_secs" "${pcaps[@]}" 2>&1 || true)
  sleep 2
  # GNU time's child is Suricata: signal it, and let time write its figures.
  pkill -TERM -P "$suri_pid" 2>/dev/null || kill -TERM "$suri_pid"
  wait "$suri_pid" || true
  suri_pid=""
  actual=$(grep -o '[0-9.]* pps' <<<"$replay" | tail -1 | awk '{printf "%.0f", $1}')
  local summary
  summary=$(grep -o 'eth0: packets: [0-9]*, drops: [0-9]*' "$logs/out" | tail -1)
  pkts=$(awk '{print $3}' <<<"${summary//,/}")
  drops=$(awk '{print $5}' <<<"${summary//,/}")
  # The last line: GNU time puts "Command exited with non-zero status N" before its figures.
  cpu=$(awk 'END {printf "%.2f", $1 + $2}' "$logs/time")
  ring=$(find "$logs" -name 'ring.*' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
}

declare -A best=([off]=0 [lz4]=0 [none]=0) stopped=([off]=0 [lz4]=0 [none]=0)
printf '%10s %5s %12s %12s %12s %8s %12s %8s\n' "target pps" "ring" "replayed pps" "captured" \
  "kernel drops" "CPU s" "ring bytes" "result"
for rate in "${rates[@]}"; do
  declare -A cpus=()
  for mode in "${modes[@]}"; do
    (( stopped[$mode] )) && continue
    step "$mode" "$rate"
    if [[ ${drops:-1} == 0 ]]; then result=ok; best[$mode]=${actual:-0}; else result=drops; stopped[$mode]=1; fi
    printf '%10s %5s %12s %12s %12s %8s %12s %8s\n' "$rate" "$mode" "${actual:-?}" "${pkts:-?}" \
      "${drops:-?}" "${cpu:-?}" "$ring" "$result"
    cpus[$mode]=${cpu:-0}
  done
  for mode in lz4 none; do
    [[ -n ${cpus[$mode]:-} && -n ${cpus[off]:-} ]] || continue
    awk -v a="${cpus[off]}" -v b="${cpus[$mode]}" -v r="$rate" -v m="$mode" \
      'BEGIN { if (a > 0) printf "%10s   Suricata CPU with the %s ring / without: %.2fx\n", r, m, b / a }'
  done
  unset cpus
  (( stopped[off] && stopped[lz4] && stopped[none] )) && break
done
echo "highest replay rate with zero kernel drops (2 workers): evidence off ${best[off]}, lz4 ring ${best[lz4]}, plain ring ${best[none]} packets/s"
