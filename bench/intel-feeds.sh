#!/usr/bin/env bash
# Intel feeds at scale, one run, side by side: for 10k, 100k and 1M IP indicators and 100k
# domains, the time `ids2-agent intel update` takes (parse, compile, `suricata -T`, swap,
# record) and Suricata's load time and peak memory reading the compiled sets (`suricata -r` over
# one small capture: start-up dominates); then packets per second over the whole corpus
# (`suricata -r`) with the 1M-address set loaded versus no intel rules, whole runs and with each
# config's start-up (timed on the small capture) taken out.
#
# Usage: bench/intel-feeds.sh [AGENT]   (AGENT defaults to target/release/ids2-agent, then
# target/debug/ids2-agent). Needs suricata, GNU time (/usr/bin/time) and ../shared/corpus.
# Indicators are drawn from 10.0.0.0/8 and example domains, so the corpus traffic (public and
# documentation addresses) does not match them: the cost measured is the lookup, not alerting.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
agent=${1:-}
if [[ -z $agent ]]; then
  for a in "$here/target/release/ids2-agent" "$here/target/debug/ids2-agent"; do
    [[ -x $a ]] && agent=$a && break
  done
fi
[[ -x ${agent:-} ]] || { echo "no ids2-agent binary: cargo build --release -p ids2-agent" >&2; exit 2; }
corpus=${IDS2_CORPUS:-$here/../shared/corpus}/pcaps
[[ -d $corpus ]] || { echo "needs the corpus at $corpus" >&2; exit 2; }
command -v suricata >/dev/null || { echo "needs suricata" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 2; }

work=$(mktemp -d /tmp/ids2-intel-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
one_pcap=$corpus/tls_tls-pre-1970__input.pcap

gen() { # gen KIND COUNT FILE
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    for i in range(n):
        if kind == "ip":
            f.write(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
        else:
            f.write(f"host{i}.bench{i % 97}.example\n")
EOF
}

config() { # config DIR KIND FEEDFILE
  cat > "$1/config.yaml" <<EOF
sensor: {id: bench}
opensearch: {domain: ids2, region: eu-west-1, endpoint: 'https://os.example'}
capture: {interface: lo, workers: 1, cpu_cores: [0]}
logs: {path: $1/logs}
suricata: {memory_mb: 512, rules_dir: $1/rules, socket_path: $1/suricata.socket}
history: {repo: $1/history.git}
paths: {rendered_dir: $1/rendered, vector_data_dir: $1/vector}
fleet: {rules: {scheduled: false}}
intel:
  dir: $1/intel
  max_indicators_per_feed: 2000000
  feeds:
    - {name: bench, source: 'file://$3', format: plain, kind: $2}
EOF
  mkdir -p "$1/logs" "$1/rules"
  "$agent" render --config "$1/config.yaml" --out "$1/rendered" >/dev/null
}

run_r() { # run_r DIR OUT PCAPS... ; prints "seconds maxrss_kib"
  local dir=$1 out=$2; shift 2
  mkdir -p "$out"
  /usr/bin/time -f '%e %M' -o "$out/time" suricata -c "$dir/rendered/current/suricata.yaml" \
    -r "$@" -l "$out" -k none --runmode single \
    --set unix-command.enabled=no >/dev/null 2>"$out/stderr"
  cat "$out/time"
}

printf '%-14s %12s %12s %14s %14s\n' set indicators update_s suricata_load_s suricata_rss_MiB
for spec in ip:10000 ip:100000 ip:1000000 domain:100000; do
  kind=${spec%%:*} n=${spec##*:}
  d=$work/$kind-$n
  mkdir -p "$d"
  gen "$kind" "$n" "$d/feed.txt"
  config "$d" "$kind" "$d/feed.txt"
  start=$(date +%s.%N)
  "$agent" intel update --config "$d/config.yaml" >"$d/update.out"
  end=$(date +%s.%N)
  read -r secs rss < <(run_r "$d" "$d/r1" "$one_pcap")
  printf '%-14s %12s %12.2f %14s %14d\n' "$kind" "$n" "$(echo "$end - $start" | bc)" "$secs" $((rss / 1024))
done

# Throughput over the whole corpus, same config with and without the 1M-address set.
d=$work/ip-1000000
base=$work/none
mkdir -p "$base"
mkdir -p "$work/corpus"
cp "$corpus"/*.pcap "$work/corpus/"
packets=$(python3 - "$work/corpus" <<'EOF'
import os, struct, sys
total = 0
for name in os.listdir(sys.argv[1]):
    with open(os.path.join(sys.argv[1], name), "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            continue
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            e = ">"
        else:
            continue  # pcapng: not counted
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            incl = struct.unpack(e + "IIII", h)[2]
            f.seek(incl, 1)
            total += 1
print(total)
EOF
)
cp -a "$d/rendered" "$base/rendered"
# The same rendered config without the intel rule file.
sed -i "\|$d/intel/current/intel.rules|d" "$base/rendered/current/suricata.yaml"
read -r t_none _ < <(run_r "$base" "$work/r-none" "$work/corpus")
read -r t_1m _ < <(run_r "$d" "$work/r-1m" "$work/corpus")
# Start-up alone (rules, and the 1M set, loaded; one small capture), to take out of the corpus
# runs: what is left is the per-packet cost with and without the lookups.
read -r s_none _ < <(run_r "$base" "$work/s-none" "$one_pcap")
read -r s_1m _ < <(run_r "$d" "$work/s-1m" "$one_pcap")
echo
echo "corpus: $packets packets (classic pcap files; pcapng not counted) in $(ls "$work/corpus" | wc -l) files"
printf '%-22s %8s %10s %12s %18s\n' config run_s startup_s packets/s "packets/s_after_start"
for row in "no intel rules:$t_none:$s_none" "1M addresses loaded:$t_1m:$s_1m"; do
  IFS=: read -r name t s <<<"$row"
  printf '%-22s %8.2f %10.2f %12.0f %18.0f\n' "$name" "$t" "$s" "$(echo "$packets / $t" | bc -l)" \
    "$(echo "$packets / ($t - $s)" | bc -l)"
done
