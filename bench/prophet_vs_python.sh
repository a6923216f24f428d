#!/usr/bin/env bash
# Prophet fit + predict: novaml (augurs-prophet + our L-BFGS) vs Python prophet 1.1.6 (cmdstan),
# same series, same horizon, default options, one process each. Python runs before and after
# ours. Needs: pip install prophet==1.1.6 cmdstanpy==1.2.5
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(python3 bench/prophet_vs_python.py 2>/dev/null | grep python_runs)
cargo bench -q -p novaml-forecast --bench prophet >/dev/null
after=$(python3 bench/prophet_vs_python.py 2>/dev/null | grep python_runs)
ns=$(python3 -c "import json; print(json.load(open('target/criterion/prophet/fit_predict_700_hourly_168_ahead/new/estimates.json'))['mean']['point_estimate'])")
printf '%s\n%s\n' "$before" "$after" | python3 -c '
import statistics, sys
ours = float(sys.argv[1]) / 1e9
runs = [float(t) for line in sys.stdin for t in line.split()[1:]]
py = statistics.median(runs)
print(f"python prophet: median {py:.4f} s over {len(runs)} runs")
print(f"novaml prophet: mean {ours:.4f} s (criterion)")
print(f"speed-up: {py / ours:.1f}x")
' "$ns"
