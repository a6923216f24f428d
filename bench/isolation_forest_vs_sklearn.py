#!/usr/bin/env python3
"""scikit-learn's IsolationForest on the data of crates/novaml-anomaly/benches/isolation_forest.rs:
100,000 x 8 (the same formula), 100 trees of 256 samples, single thread (n_jobs=1), fit then
score_samples on all rows. Prints the best and median of the runs in seconds (5, or argv[1]).
Prints each run's time too, so the caller can pool runs made before and after its own."""
import statistics
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest

ROWS, FEATURES = 100_000, 8
i = np.arange(ROWS)[:, None]
j = np.arange(FEATURES)[None, :]
x = 3.0 * np.sin(0.37 * i + 1.3 * j) + ((7919 * i + 104729 * j) % 1000) / 1000.0

times = []
for run in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
    t = time.perf_counter()
    f = IsolationForest(n_estimators=100, max_samples=256, n_jobs=1, random_state=run).fit(x)
    f.score_samples(x)
    times.append(time.perf_counter() - t)
print("sklearn_runs " + " ".join(f"{t:.4f}" for t in times))
print(f"sklearn_fit_score_seconds best={min(times):.4f} median={statistics.median(times):.4f}")
