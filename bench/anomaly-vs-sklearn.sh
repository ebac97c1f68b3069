#!/usr/bin/env bash
# Anomaly detection: ids2's Isolation Forest against scikit-learn's on the same labelled flows.
#
# 1. Builds the labelled set with the integration test (real Suricata over the corpus' benign
#    captures; attack traffic between two network namespaces) — needs root, suricata, tcpdump.
# 2. Splits the benign flows (every other one trains, the rest are held out), exports the
#    feature matrices with `ids2-agent anomaly features` (with ids2's scores).
# 3. Runs sklearn's IsolationForest (same trees, same samples per tree, one thread) and the
#    criterion bench for ids2's scoring, and prints AUC, precision/recall and flows/s for both.
#
# Usage: bench/anomaly-vs-sklearn.sh   (env: THRESHOLD, default the config default 0.6)
set -euo pipefail
cd "$(dirname "$0")/.."

THRESHOLD=${THRESHOLD:-0.6}
TREES=100
SAMPLES=256
DATA=$PWD/target/anomaly-bench
mkdir -p "$DATA"

# Python with scikit-learn: the project venv when present, else one under target/.
VENV=/opt/ids2-venv
[[ -x $VENV/bin/python ]] || VENV=$PWD/target/anomaly-venv
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import sklearn, numpy' 2>/dev/null ||
  "$VENV/bin/pip" install -q scikit-learn numpy

echo "== labelled flows (integration test, kept in $DATA)"
rm -f "$DATA"/benign.json "$DATA"/attack.json
IDS2_ANOMALY_DATASET_OUT=$DATA cargo test -q -p ids2-agent --test anomaly \
  model_trained_on_benign_flows_ranks_lab_attacks_higher -- --nocapture 2>&1 |
  grep -E 'AUC|SKIP|panicked' || true
[[ -s $DATA/benign.json && -s $DATA/attack.json ]] || {
  echo "no labelled flows: the test needs root, suricata, tcpdump, ping and ../shared/corpus" >&2
  exit 1
}
awk 'NR % 2 == 1' "$DATA/benign.json" > "$DATA/train.json"
awk 'NR % 2 == 0' "$DATA/benign.json" > "$DATA/held.json"

cargo build -q -p ids2-agent
AGENT=$PWD/target/debug/ids2-agent
"$AGENT" anomaly train --eve "$DATA/train.json" --out "$DATA/model.json" \
  --trees $TREES --sample-size $SAMPLES
for set in train held attack; do
  "$AGENT" anomaly features --eve "$DATA/$set.json" --model "$DATA/model.json" > "$DATA/$set.csv"
done

echo "== quality and scikit-learn throughput (one thread)"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  "$VENV/bin/python" bench/anomaly_sklearn.py "$DATA" $TREES $SAMPLES "$THRESHOLD" | tee "$DATA/sklearn.txt"

echo "== ids2 throughput (criterion, one thread)"
IDS2_ANOMALY_BENCH_DIR=$DATA cargo bench -q -p ids2-agent --bench anomaly -- --noplot 2>&1 |
  tee "$DATA/criterion.txt" | grep -E '^anomaly/|thrpt'

# criterion prints "thrpt:  [low mid high]" with a unit per value; take the middle one.
thrpt() {
  awk -v b="^anomaly/$1" '$0 ~ b {on=1} on && /thrpt:/ {print $(NF-3), $(NF-2); exit}' "$DATA/criterion.txt"
}
python3 - "$(thrpt 'score_one ')" "$(thrpt score_batch)" "$DATA/sklearn.txt" <<'PY'
import sys
def rate(s):
    value, unit = s.split()
    return float(value) * {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}[unit]
one, batch = rate(sys.argv[1]), rate(sys.argv[2])
line = next(l.split() for l in open(sys.argv[3]) if l.startswith("sklearn_flows_per_sec"))
sk = dict(zip(line[1::2], map(float, line[2::2])))
print("scoring throughput, flows/s on one core (ids2 / sklearn = ratio):")
print(f"  one flow per call : {one:12,.0f} / {sk['one_per_call']:10,.0f} = {one / sk['one_per_call']:6.1f}x")
print(f"  labelled set batch: {batch:12,.0f} / {sk['dataset_batch']:10,.0f} = {batch / sk['dataset_batch']:6.1f}x")
print(f"  large batch       : {batch:12,.0f} / {sk['large_batch']:10,.0f} = {batch / sk['large_batch']:6.1f}x")
PY
