#!/usr/bin/env bash
# What the evidence ring costs Suricata, side by side in one run: `suricata -r` with the rendered
# config, evidence off versus on (pcap-log lz4, the default) versus on without compression,
# ROUNDS rounds interleaved so machine load hits all three alike, over two inputs: the corpus
# directory as it is (767 small captures: Suricata reopens per file, which costs pcap-log more)
# and the corpus's Ethernet captures joined into one file (closer to one long capture). Prints
# each mode's median CPU seconds (user+system, GNU time), its ratio to off, and the ring bytes
# written per packet read. Offline replay only: it says nothing of live capture at line rate.
#
# Usage: bench/evidence-cost.sh [AGENT]   (AGENT defaults to target/release/ids2-agent, then
# target/debug/ids2-agent). ROUNDS (default 5) sets the rounds. Needs suricata, GNU time
# (/usr/bin/time) and ../shared/corpus.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
agent=${1:-}
if [[ -z $agent ]]; then
  for a in "$here/target/release/ids2-agent" "$here/target/debug/ids2-agent"; do
    [[ -x $a ]] && agent=$a && break
  done
fi
[[ -x ${agent:-} ]] || { echo "no ids2-agent binary: cargo build -p ids2-agent" >&2; exit 2; }
corpus=${IDS2_CORPUS:-$here/../shared/corpus}/pcaps
[[ -d $corpus ]] || { echo "needs the corpus at $corpus" >&2; exit 2; }
command -v suricata >/dev/null || { echo "needs suricata" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 2; }
rounds=${ROUNDS:-5}
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS must be 1 to 99" >&2; exit 2; }

work=$(mktemp -d /tmp/ids2-evidence-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rules"
: >"$work/rules/suricata.rules"

modes=(off lz4 none)
for m in "${modes[@]}"; do
  case $m in
    off) ev="{mode: off}" ;;
    *) ev="{mode: alerts, compression: $m, store_dir: $work/$m/store}" ;;
  esac
  mkdir -p "$work/$m/logs"
  cat >"$work/$m/config.yaml" <<EOF
sensor: {id: bench-evidence}
capture: {interface: lo, workers: 1, cpu_cores: [0], pin_workers: false}
opensearch: {domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}
logs: {path: $work/$m/logs}
suricata: {rules_dir: $work/rules, socket_path: $work/$m/suricata.socket}
paths: {rendered_dir: $work/$m/rendered, vector_data_dir: $work/$m/vector}
history: {repo: $work/$m/history.git}
evidence: $ev
EOF
  "$agent" render --config "$work/$m/config.yaml" --out "$work/$m/rendered" >/dev/null
done

# The Ethernet captures (little-endian microsecond pcap, link type 1) whose records are all whole
# and at most 64 KiB, as one file: each file's records after its 24-byte header, appended.
python3 - "$corpus" "$work/joined.pcap" <<'PY'
import pathlib, struct, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with dst.open("wb") as out:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for f in sorted(src.glob("*.pcap")):
        b = f.read_bytes()
        if len(b) <= 24 or struct.unpack("<II", b[:4] + b[20:24]) != (0xA1B2C3D4, 1):
            continue
        # Only files whose every record is whole: one torn record would end the joined file.
        i = 24
        while i + 16 <= len(b):
            incl, orig = struct.unpack("<II", b[i + 8:i + 16])
            if incl > 65535 or incl > orig or i + 16 + incl > len(b):
                break
            i += 16 + incl
        if i == len(b):
            out.write(b[24:])
PY

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# bench INPUT LABEL: the table for one input.
bench() {
  local input=$1 label=$2 packets=0
  declare -A cpu=()
  for ((r = 1; r <= rounds; r++)); do
    for m in "${modes[@]}"; do
      out=$work/$m/out
      rm -rf "$out" && mkdir -p "$out"
      /usr/bin/time -f "%U %S" -o "$work/time" suricata -c "$work/$m/rendered/current/suricata.yaml" \
        -r "$input" -l "$out" -k none --runmode single --set unix-command.enabled=no \
        >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
      cpu[$m]+="$(awk '{printf "%.3f", $1 + $2}' "$work/time") "
      packets=$(grep -o 'read [0-9]* files\?, [0-9]* packets' "$work/log" | awk '{print $4}')
      find "$out" -name 'ring.*' -printf '%s\n' | awk '{s += $1} END {print s + 0}' >"$work/$m/ring-bytes"
    done
  done
  local base
  base=$(echo "${cpu[off]}" | median)
  echo "suricata -r over $label: $packets packets, $rounds rounds, median CPU seconds"
  printf '%-22s %8s %8s %18s\n' mode cpu-s ratio ring-bytes/packet
  for m in "${modes[@]}"; do
    local c bytes name="pcap-log $m"
    c=$(echo "${cpu[$m]}" | median)
    bytes=$(cat "$work/$m/ring-bytes")
    [[ $m == off ]] && name="off (no pcap-log)"
    awk -v l="$name" -v c="$c" -v b="$base" -v by="$bytes" -v p="$packets" \
      'BEGIN {printf "%-22s %8.3f %8.2f %18.1f\n", l, c, (b > 0 ? c / b : 0), (p > 0 ? by / p : 0)}'
  done
}

bench "$corpus" "the corpus directory (767 captures)"
bench "$work/joined.pcap" "its Ethernet captures joined into one file"
