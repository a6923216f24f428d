#!/usr/bin/env python3
"""Python prophet 1.1.6 (cmdstan) fit + predict on fixtures/prophet_vm_hourly.csv (700 hourly CPU
values of a real VM), 168 steps ahead, default options: the peer of
crates/novaml-forecast/benches/prophet.rs. Prints each run's seconds and the median of 5."""
import logging
import os
import statistics
import time

import pandas as pd
from prophet import Prophet

logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
df = pd.read_csv(os.path.join(root, "fixtures", "prophet_vm_hourly.csv")).dropna(subset=["y"])
df = pd.DataFrame({"ds": pd.to_datetime(df["ds"], unit="s").astype("datetime64[ns]"), "y": df["y"]})
times = []
for _ in range(5):
    t = time.perf_counter()
    m = Prophet().fit(df)
    future = m.make_future_dataframe(periods=168, freq="h", include_history=False)
    future["ds"] = future["ds"].astype("datetime64[ns]")
    m.predict(future)
    times.append(time.perf_counter() - t)
print("python_runs " + " ".join(f"{t:.4f}" for t in times))
print(f"python_fit_predict_seconds median={statistics.median(times):.4f}")
