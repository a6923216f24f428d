"""Summarises bench/out/tune: per scenario and tuner, the re-measured best configuration's
goodput as a share of the cached grid optimum (mean, min over seeds), and the improvement over
the default with its CI (novaml's tuners)."""

import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench/out/tune"
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    doc = json.load(open(path))
    sc = doc["scenario"]
    tuner = doc["tuner"]
    if tuner == "optuna-tpe":
        best = doc["best_mean"]
    else:
        best = (doc.get("comparison") or {}).get("candidate_mean") or doc["best"]["objective"]
    rows.setdefault((sc, tuner), []).append((doc["seed"], best, doc))

optima = {}
for sc in {k[0] for k in rows}:
    p = os.path.join(os.path.dirname(__file__), "..", "crates", "novaml-tune", "optimum", sc + ".json")
    optima[sc] = json.load(open(p))["objective"]

print(f"{'scenario':10} {'tuner':11} {'seeds':>5} {'share mean':>10} {'share min':>9}  "
      f"{'improvement (CI95), per seed':s}")
summary = {}
for (sc, tuner) in sorted(rows):
    r = rows[(sc, tuner)]
    shares = [b / optima[sc] for _, b, _ in r]
    imp = ""
    if tuner != "optuna-tpe":
        imp = "  ".join(
            f"{d['improvement'] * 100:+.0f}% [{d['improvement_ci95'][0] * 100:+.0f},"
            f"{d['improvement_ci95'][1] * 100:+.0f}]" for _, _, d in r)
    print(f"{sc:10} {tuner:11} {len(r):5d} {statistics.mean(shares):10.3f} {min(shares):9.3f}  {imp}")
    summary[f"{sc}/{tuner}"] = {"shares": shares, "mean": statistics.mean(shares)}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
