#!/usr/bin/env bash
# novaml's models (LSTM, gradient-boosted trees, their ensemble) against a Keras 3 / JAX CPU LSTM
# of the same shape and scikit-learn's HistGradientBoostingRegressor, on every dev trace (the
# Alibaba aggregate and the Bitbrains VMs) with the same split and windows: accuracy (median
# relative MAE vs naive over horizons 1..12) and LSTM training time per epoch, both measured in
# this one run on this machine. About an hour on a 2-core machine (VMS=vm_192 for ~8 minutes).
#
# Needs: pip install keras==3.6.0 jax==0.4.35 jaxlib==0.4.35 (PyPI's torch is the multi-GB CUDA
# build, so JAX on CPU is the practical peer). Run from the repository root with ../shared beside
# it. Writes bench/out/predict_vs_keras.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/vm-traces}
ALI=$DATA/alibaba2018/machine_usage_days_1_to_8_grouped_300_seconds.csv
# Every dev trace by default; VMS="vm_192" (names under bitbrains/) for a quicker run.
# KERAS_SEED=2 (default 1) trains the Keras peer from another seed.
VMS=${VMS:-$(cd "$DATA/bitbrains" && ls vm_*.csv | sed 's/\.csv$//' | tr '\n' ' ')}
mkdir -p bench/out
cargo build --release -q -p novaml-cli
# All six models (naive, seasonal naive, ridge, GBM, LSTM, ensemble); "selected" is the one with
# the lowest validation MAE per series.
./target/release/novaml eval predict --data "$ALI" --column cpu_util_percent \
  --out bench/out/novaml_ali.json > bench/out/novaml_ali.txt
VM_FILES=()
for v in $VMS; do VM_FILES+=("$DATA/bitbrains/$v.csv"); done
./target/release/novaml eval predict --data "${VM_FILES[@]}" --column cpu_pct \
  --out bench/out/novaml_vm.json > bench/out/novaml_vm.txt
python3 - <<'PY'
import json
a = json.load(open("bench/out/novaml_ali.json")); v = json.load(open("bench/out/novaml_vm.json"))
columns = {s["file"]: "cpu_util_percent" for s in a["series"]}
columns.update({s["file"]: "cpu_pct" for s in v["series"]})
a["series"] += v["series"]
json.dump(a, open("bench/out/novaml_predict.json", "w"))
json.dump(columns, open("bench/out/columns.json", "w"))
PY
python3 bench/predict_vs_keras.py bench/out/novaml_predict.json "$(cat bench/out/columns.json)" \
  bench/out/predict_vs_keras.json
