#!/usr/bin/env bash
# novaml's LSTM against a Keras 3 / JAX CPU LSTM of the same shape on the same data, split and
# windows: accuracy (median relative MAE vs naive over horizons 1..12) and training time per
# epoch, both measured in this one run on this machine.
#
# Needs: pip install keras==3.6.0 jax==0.4.35 jaxlib==0.4.35 (PyPI's torch is the multi-GB CUDA
# build, so JAX on CPU is the practical peer). Run from the repository root with ../shared beside
# it. Writes bench/out/predict_vs_keras.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/vm-traces}
ALI=$DATA/alibaba2018/machine_usage_days_1_to_8_grouped_300_seconds.csv
VM=$DATA/bitbrains/vm_192.csv
mkdir -p bench/out
cargo build --release -q -p novaml-cli
./target/release/novaml eval predict --data "$ALI" --column cpu_util_percent --models naive,lstm \
  --out bench/out/novaml_ali.json > /dev/null
./target/release/novaml eval predict --data "$VM" --column cpu_pct --models naive,lstm \
  --out bench/out/novaml_vm.json > /dev/null
python3 - "$ALI" "$VM" <<'PY'
import json, sys
a = json.load(open("bench/out/novaml_ali.json")); v = json.load(open("bench/out/novaml_vm.json"))
a["series"] += v["series"]
json.dump(a, open("bench/out/novaml_predict.json", "w"))
json.dump({sys.argv[1]: "cpu_util_percent", sys.argv[2]: "cpu_pct"}, open("bench/out/columns.json", "w"))
PY
python3 bench/predict_vs_keras.py bench/out/novaml_predict.json "$(cat bench/out/columns.json)" \
  bench/out/predict_vs_keras.json
