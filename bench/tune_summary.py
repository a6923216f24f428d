"""Summarises bench/out/tune: per scenario and tuner, the re-measured best configuration's
goodput as a share of the grid optimum's configuration re-measured in the same rounds (mean
and min over seeds), and the improvement over the default."""

import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench/out/tune"
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*-*-*.json"))):
    doc = json.load(open(path))
    rows.setdefault((doc["scenario"], doc["tuner"]), []).append(doc)

print(f"{'scenario':10} {'tuner':11} {'seeds':>5} {'share mean':>10} {'share min':>9} "
      f"{'>=0.95':>6} {'improvement mean':>16}")
summary = {}
for (sc, tuner) in sorted(rows):
    docs = rows[(sc, tuner)]
    shares = [d["share_of_optimum"] for d in docs]
    imps = [d["improvement"] for d in docs]
    hit = sum(1 for x in shares if x >= 0.95)
    print(f"{sc:10} {tuner:11} {len(docs):5d} {statistics.mean(shares):10.3f} {min(shares):9.3f} "
          f"{hit:>3}/{len(docs):<2} {statistics.mean(imps) * 100:+15.0f}%")
    summary[f"{sc}/{tuner}"] = {
        "seeds": [d["seed"] for d in docs], "shares": shares, "improvements": imps,
        "ci95": [d.get("improvement_ci95") for d in docs],
    }
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
