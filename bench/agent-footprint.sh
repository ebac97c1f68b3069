#!/usr/bin/env bash
# Steady-state footprint of ids2-agent (issue 5's benchmark): the release agent runs with all
# its tasks on and Suricata as a child (process backend) capturing on a veth inside a network
# namespace made here, with light traffic from a second namespace. Reports, from /proc:
#   - the agent's peak RSS (VmHWM) and the largest VmRSS seen while sampling each second,
#   - its CPU share of one core over a 60 s window at rest (no scrapes),
#   - metrics scrape latency p50/p99 over N sequential scrapes on loopback (curl).
# Targets: RSS <= 20 MB, <= 1% of one core at rest.
#
# Needs root, suricata, curl, ip. Usage: sudo bench/agent-footprint.sh [window_secs] [scrapes]
# IDS2_AGENT_BIN overrides the agent binary (default: cargo build --release, target/release);
# IDS2_FOOTPRINT_ARCHIVE=auto adds the embedded ECS archive (default never, as on the sensor).
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=${1:-60}
SCRAPES=${2:-500}
# On the sensor Vector ships and the agent's embedded ECS archive is off; `auto` (no Vector on
# PATH here, so on) measures the agent that maps events itself.
ARCHIVE=${IDS2_FOOTPRINT_ARCHIVE:-never}
case $ARCHIVE in never | auto | always) ;; *)
  echo "agent-footprint: IDS2_FOOTPRINT_ARCHIVE must be never, auto or always" >&2; exit 2 ;;
esac
for tool in suricata curl ip; do
  command -v "$tool" >/dev/null || { echo "agent-footprint: needs $tool" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "agent-footprint: needs root (network namespaces, af-packet)" >&2; exit 2; }

BIN=${IDS2_AGENT_BIN:-}
if [[ -z $BIN ]]; then
  cargo build --release -p ids2-agent >&2
  BIN=$PWD/target/release/ids2-agent
fi

NS=ids2fp-$$          # the sensor: agent, Suricata, capture veth
PEER=ids2fpp-$$       # the traffic source
WORK=$(mktemp -d /tmp/ids2-footprint.XXXXXX)
AGENT_PID=""
PING_PID=""
cleanup() {
  [[ -n $PING_PID ]] && kill "$PING_PID" 2>/dev/null || true
  if [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$PEER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns add "$PEER"
ip link add cap0 netns "$NS" type veth peer name src0 netns "$PEER"
ip -n "$NS" link set lo up
ip -n "$NS" addr add 10.99.0.1/24 dev cap0
ip -n "$NS" link set cap0 up
ip -n "$PEER" addr add 10.99.0.2/24 dev src0
ip -n "$PEER" link set src0 up

mkdir -p "$WORK"/{logs,rendered,vector}
# The agent renders, checks (suricata -T) and commits generation 1 itself before starting
# Suricata on it; everything it writes stays under $WORK. One worker on core 0 fits any host.
PORT=19100
cat > "$WORK/config.yaml" <<YAML
sensor: {id: footprint-bench}
capture: {interface: cap0, workers: 1, cpu_cores: [0]}
logs: {path: $WORK/logs}
suricata: {socket_path: $WORK/suricata-command.socket}
paths: {rendered_dir: $WORK/rendered, vector_data_dir: $WORK/vector}
history: {repo: $WORK/history.git}
metrics: {listen: "127.0.0.1:$PORT"}
opensearch: {domain: ids2, region: eu-west-1, endpoint: "https://opensearch.invalid"}
connectivity: {dns_names: [ids2-footprint.invalid]}
shipping: {archive: {mode: $ARCHIVE, path: $WORK/archive/ecs.jsonl}}
fleet: {rules: {cache_dir: $WORK/suricata-update}}
YAML

ip netns exec "$NS" "$BIN" run --config "$WORK/config.yaml" 2>"$WORK/agent.log" &
AGENT_PID=$!
# Light, steady traffic for Suricata to capture: 5 pings a second.
ip netns exec "$PEER" timeout $((WINDOW + 120)) ping -q -i 0.2 10.99.0.1 >/dev/null 2>&1 &
PING_PID=$!

echo "agent pid $AGENT_PID; warming up 15 s (Suricata start, first stats)" >&2
sleep 15
kill -0 "$AGENT_PID" || { cat "$WORK/agent.log" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
hwm_start=$(hwm_kb "$AGENT_PID")
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks "$AGENT_PID"); s0=$(date +%s.%N)
max_rss=0
for ((i = 0; i < WINDOW; i++)); do
  r=$(rss_kb "$AGENT_PID"); (( r > max_rss )) && max_rss=$r
  sleep 1
done
t1=$(ticks "$AGENT_PID"); s1=$(date +%s.%N)
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$AGENT_PID/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$s0" -v e="$s1" \
  'BEGIN {printf "%.3f", (b - a) / hz / (e - s) * 100}')

lat=$(ip netns exec "$NS" bash -c "for ((i = 0; i < $SCRAPES; i++)); do
  curl -s -o /dev/null -m 5 -w '%{time_total}\n' http://127.0.0.1:$PORT/metrics; done" | sort -n)
pct() { awk -v p="$1" '{v[NR] = $1} END {i = int(NR * p + 0.999999); if (i < 1) i = 1; printf "%.2f", v[i] * 1000}'; }
p50=$(pct 0.50 <<<"$lat"); p99=$(pct 0.99 <<<"$lat")

scrape=$(ip netns exec "$NS" curl -s "http://127.0.0.1:$PORT/metrics")
# A family with no series yet (no throttle transition on a quiet host) is no error.
series() { grep -E "$1" <<<"$scrape" || true; }
sur_up=$(series '^ids2_pipeline_process_up\{process="suricata"\}' | awk '{print $2}')
sur_rss=$(series '^ids2_process_resident_memory_bytes\{process="suricata"\}' | awk '{printf "%.1f", $2 / 1048576}')
pkts=$(series '^ids2_suricata_capture_packets_total ' | awk '{print $2}')
eve=$(series '^ids2_eve_events_total' | awk '{s += $2} END {print s + 0}')
level=$(series '^ids2_throttle_level ' | awk '{print $2}')
changes=$(series '^ids2_throttle_transitions_total' | awk '{s += $2} END {print s + 0}')
host_cpu=$(series '^ids2_host_cpu_ratio ' | awk '{printf "%.0f", $2 * 100}')
gens=$(ls "$WORK/rendered/generations" | wc -l)
# What the resident pages are: heap and stacks, or clean pages of the executable.
mib() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$AGENT_PID/status"; }
anon=$(mib RssAnon); file=$(mib RssFile)

cat <<REPORT
ids2-agent footprint ($(uname -m), $(nproc) cores, window ${WINDOW}s, $SCRAPES scrapes, archive $ARCHIVE)
  agent peak RSS (VmHWM):        $((hwm / 1024)).$(((hwm % 1024) * 10 / 1024)) MiB (after start-up and the first apply: $((hwm_start / 1024)).$(((hwm_start % 1024) * 10 / 1024)) MiB)
  agent max VmRSS in window:     $((max_rss / 1024)).$(((max_rss % 1024) * 10 / 1024)) MiB
  agent RSS at the end:          ${anon} MiB anonymous + ${file} MiB file-backed
  agent CPU at rest:             ${cpu}% of one core
  scrape latency p50 / p99:      ${p50} ms / ${p99} ms
  suricata up / RSS:             ${sur_up:-?} / ${sur_rss:-?} MiB
  suricata capture packets:      ${pkts:-none yet}
  EVE lines read:                $eve
  throttle level / changes:      ${level:-?} / $changes (host CPU ${host_cpu:-?}% at the end; each change of EVE profile is an apply)
  generations on disk (3 kept):  $gens
REPORT
