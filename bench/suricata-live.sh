#!/usr/bin/env bash
# Live Suricata capacity: tcpreplay the corpus (Ethernet pcaps of ../shared/corpus/pcaps) into the
# sensor's eth0 inside a network namespace at rising rates, Suricata capturing with the config
# ids2 renders (af-packet, 2 workers, ids2 rules). Each step runs STEP_SECS (bounded) with a fresh
# Suricata whose exit summary gives packets and kernel drops; the ladder stops at the first step
# with drops. Reports the highest rate with zero kernel drops. Needs root, suricata, tcpreplay.
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

"$agent" render --config agent/config.example.yaml --out "$work/rendered" >/dev/null 2>&1
conf=$work/rendered/current/suricata.yaml
rules=$work/rendered/current/rules/ids2.rules

best=0
printf '%10s %12s %12s %12s %10s\n' "target pps" "replayed pps" "captured" "kernel drops" "result"
for rate in "${rates[@]}"; do
  rm -rf "$work/logs" && mkdir -p "$work/logs"
  ip netns exec "$sen" suricata -c "$conf" -S "$rules" --af-packet=eth0 -l "$work/logs" \
    --set threading.set-cpu-affinity=no >"$work/logs/out" 2>&1 &
  suri_pid=$!
  for _ in $(seq 1 600); do
    grep -q "Engine started" "$work/logs/out" && break
    kill -0 "$suri_pid" 2>/dev/null || { tail -5 "$work/logs/out" >&2; exit 1; }
    sleep 0.1
  done
  replay=$(ip netns exec "$rep" timeout $((step_secs + 30)) tcpreplay -i eth0 -K --pps="$rate" \
    --loop=0 --duration="$step_secs" "${pcaps[@]}" 2>&1 || true)
  sleep 2
  kill -TERM "$suri_pid"
  wait "$suri_pid" || true
  suri_pid=""
  actual=$(grep -o '[0-9.]* pps' <<<"$replay" | tail -1 | awk '{printf "%.0f", $1}')
  summary=$(grep -o 'eth0: packets: [0-9]*, drops: [0-9]*' "$work/logs/out" | tail -1)
  pkts=$(awk '{print $3}' <<<"${summary//,/}")
  drops=$(awk '{print $5}' <<<"${summary//,/}")
  if [[ ${drops:-1} == 0 ]]; then result=ok; best=${actual:-0}; else result=drops; fi
  printf '%10s %12s %12s %12s %10s\n' "$rate" "${actual:-?}" "${pkts:-?}" "${drops:-?}" "$result"
  [[ $result == ok ]] || break
done
echo "highest replay rate with zero kernel drops (2 workers): $best packets/s"
