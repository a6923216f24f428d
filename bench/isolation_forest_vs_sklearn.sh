#!/usr/bin/env bash
# Isolation forest fit + score, novaml vs scikit-learn, same data, single thread each.
# scikit-learn runs 5 times before and 5 times after novaml's criterion benchmark, and the ratio
# uses the median of all 10, so a change in the machine's speed during the run (shared CPUs) hits
# both sides alike. Needs scikit-learn (pip install scikit-learn==1.5.2).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(python3 bench/isolation_forest_vs_sklearn.py 5)
cargo bench -q -p novaml-anomaly --bench isolation_forest -- isolation_forest >/dev/null
after=$(python3 bench/isolation_forest_vs_sklearn.py 5)
py=$(printf '%s\n%s\n' "$before" "$after" | python3 -c '
import statistics, sys
runs = [float(t) for line in sys.stdin if line.startswith("sklearn_runs") for t in line.split()[1:]]
print(f"sklearn_fit_score_seconds runs={len(runs)} best={min(runs):.4f} median={statistics.median(runs):.4f}")
')
ns=$(python3 -c "import json; print(json.load(open('target/criterion/isolation_forest/fit_score_100k_x8_single_thread/new/estimates.json'))['mean']['point_estimate'])")
echo "$py"
python3 - "$ns" "$py" <<'PY'
import sys
ours = float(sys.argv[1]) / 1e9
sk = float(sys.argv[2].split("median=")[1])
print(f"novaml_fit_score_seconds mean={ours:.4f}")
print(f"speed-up vs scikit-learn (median): {sk / ours:.1f}x")
PY
