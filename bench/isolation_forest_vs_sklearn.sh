#!/usr/bin/env bash
# Isolation forest fit + score, novaml vs scikit-learn, same data, single thread each, one run.
# Needs scikit-learn (pip install scikit-learn==1.5.2).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(python3 bench/isolation_forest_vs_sklearn.py)
cargo bench -q -p novaml-anomaly --bench isolation_forest -- isolation_forest >/dev/null
ns=$(python3 -c "import json; print(json.load(open('target/criterion/isolation_forest/fit_score_100k_x8_single_thread/new/estimates.json'))['mean']['point_estimate'])")
echo "$py"
python3 - "$ns" "$py" <<'PY'
import sys
ours = float(sys.argv[1]) / 1e9
sk = float(sys.argv[2].split("median=")[1])
print(f"novaml_fit_score_seconds mean={ours:.4f}")
print(f"speed-up vs scikit-learn (median): {sk / ours:.1f}x")
PY
