#!/usr/bin/env bash
# novaml's tuners against random search and Optuna's TPE, at equal budget, over seeds, on the
# transfer engine's scenarios. Every tuner's best configuration is re-measured 3 times, in
# rounds with the default and the scenario's exhaustive-grid optimum configuration
# (crates/novaml-tune/optimum/, recomputed by `novaml tune-grid`); the figure is the best's
# mean as a share of the optimum's mean from the same rounds.
#
# The rl tuner starts each session with the experience of the random-search sessions of the
# *other* scenarios (same seed), never of the scenario it is tested on.
#
# Usage: bash bench/tune_vs_optuna.sh [BUDGET=30] [SEEDS=5] [SCENARIOS="wan-100m wan-1g lan-10g"]
# Needs: pip install optuna==4.1.0. Takes ~30-40 min on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-30}
SEEDS=${2:-5}
SCENARIOS=${3:-"wan-100m wan-1g lan-10g"}
cargo build --release -q -p novaml-cli
BIN=target/release/novaml
OUT=bench/out/tune
rm -rf "$OUT" && mkdir -p "$OUT"
for seed in $(seq 1 "$SEEDS"); do
  for sc in $SCENARIOS; do
    "$BIN" tune --scenario "$sc" --tuner random --budget "$BUDGET" --seed "$seed" --repeats 3 \
      --state "$OUT/exp/$sc-$seed" --out "$OUT/$sc-random-$seed.json"
  done
  for sc in $SCENARIOS; do
    mkdir -p "$OUT/rl/$sc-$seed"
    for other in $SCENARIOS; do
      [ "$other" = "$sc" ] || cat "$OUT/exp/$other-$seed/experience.jsonl" >> "$OUT/rl/$sc-$seed/experience.jsonl"
    done
    "$BIN" tune --scenario "$sc" --tuner rl --budget "$BUDGET" --seed "$seed" --repeats 3 \
      --state "$OUT/rl/$sc-$seed" --out "$OUT/$sc-rl-$seed.json"
    "$BIN" tune --scenario "$sc" --tuner bo --budget "$BUDGET" --seed "$seed" --repeats 3 \
      --state "$OUT/bo-state" --out "$OUT/$sc-bo-$seed.json"
    python3 bench/tune_optuna.py --bin "$BIN" --scenario "$sc" --seed "$seed" \
      --budget "$BUDGET" --repeats 3 --out "$OUT/$sc-tpe-$seed.json"
  done
done
python3 bench/tune_summary.py "$OUT"
