#!/usr/bin/env bash
# Chooses the weights of the forecast interval's widening (issue #21) by leave-one-group-out
# cross-validation, and reports the held-out coverage next to the in-sample one: the excess
# spread of the whole history over the backtest window (`SelectConfig::excess`,
# `--interval-excess`) and the seasonal-difference floor (`SelectConfig::floor`,
# `--interval-floor`), each candidate a pair EXCESS,FLOOR.
#
# Groups: the four Bitbrains metrics (8 VMs each, 3 origins of a 20 % tail: 24 forecasts of
# 437 hours), the Alibaba aggregate (5 metrics, 2 origins) and M4 Hourly (414 series, 48 hours).
# For each held-out group, the candidate is the one whose 80 % interval coverage is closest to
# 80 % on the other five (mean of the groups' |coverage − 80 %|); the held-out group's coverage
# at 50/80/95 % with it is reported. Takes ~100 s per candidate on 2 cores.
#
#   bash bench/forecast_intervals.sh [DATA=../shared/data]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=bench/out/forecast_intervals
mkdir -p "$OUT"
cargo build --release -q -p novaml-cli
BIN=target/release/novaml
CANDIDATES=${CANDIDATES:-"0,0 0,0.6 0,0.8 0,1 2,0 2,0.6 2,0.8 4,0 4,0.6 4,0.8 6,0.6 6,0.8 8,0.6 8,0.8"}
for k in $CANDIDATES; do
  # A candidate whose runs are all there is not run again (delete bench/out/forecast_intervals
  # after changing the code).
  [ -s "$OUT/k$k-m4.json" ] && continue
  W="--interval-excess ${k%,*} --interval-floor ${k#*,}"
  for col in cpu_pct mem_usage_kb net_rx_kbps disk_write_kbps; do
    "$BIN" eval forecast --data "$DATA"/vm-traces/bitbrains/vm_*.csv --column "$col" --freq 1h \
      --test-fraction 0.2 --origins 3 $W --out "$OUT/k$k-$col.json" >/dev/null
  done
  for col in cpu_util_percent mem_util_percent net_in net_out disk_io_percent; do
    "$BIN" eval forecast --data "$DATA"/vm-traces/alibaba2018/*.csv --column "$col" --freq 1h \
      --test-fraction 0.2 --origins 2 $W --out "$OUT/k$k-alibaba-$col.json" >/dev/null
  done
  "$BIN" eval forecast --m4 "$DATA/m4" $W --out "$OUT/k$k-m4.json" >/dev/null
  echo "excess,floor = $k done" >&2
done
python3 - "$OUT" $CANDIDATES <<'PY'
import json, sys, glob, os
out, cands = sys.argv[1], sys.argv[2:]
groups = ["cpu_pct", "mem_usage_kb", "net_rx_kbps", "disk_write_kbps", "alibaba", "m4"]
def coverage(k, g):
    """Mean coverage at 50/80/95 % over the group's forecasts."""
    if g == "m4":
        rows = [r["coverage"] for r in json.load(open(f"{out}/k{k}-m4.json"))["series"]]
    else:
        files = glob.glob(f"{out}/k{k}-{g}*.json") if g == "alibaba" else [f"{out}/k{k}-{g}.json"]
        rows = [r["coverage"] for f in files for r in json.load(open(f))["series"]]
    return [sum(r[i] for r in rows) / len(rows) for i in range(3)]
cov = {(k, g): coverage(k, g) for k in cands for g in groups}
def loss(k, gs):
    return sum(abs(cov[(k, g)][1] - 0.8) for g in gs) / len(gs)
print("80 % coverage per candidate (excess,floor) and group:")
print("cand.  " + " ".join(f"{g:>16}" for g in groups))
for k in cands:
    print(f"{k:<6} " + " ".join(f"{100*cov[(k, g)][1]:>15.1f}%" for g in groups))
print("\nleave one group out (candidate chosen on the other five; held-out coverage at 50/80/95 %):")
held = []
for g in groups:
    rest = [x for x in groups if x != g]
    k = min(cands, key=lambda c: (loss(c, rest), c))
    c = cov[(k, g)]
    held.append(c)
    print(f"{g:<16} {k:<7} {100*c[0]:5.1f} / {100*c[1]:5.1f} / {100*c[2]:5.1f} %")
mean = [sum(c[i] for c in held) / len(held) for i in range(3)]
print(f"{'mean held out':<16}         {100*mean[0]:5.1f} / {100*mean[1]:5.1f} / {100*mean[2]:5.1f} %")
k = min(cands, key=lambda c: (loss(c, groups), c))
ins = [sum(cov[(k, g)][i] for g in groups) / len(groups) for i in range(3)]
print(f"{'in-sample':<16} {k:<7} {100*ins[0]:5.1f} / {100*ins[1]:5.1f} / {100*ins[2]:5.1f} % (chosen on all six: the default)")
PY
