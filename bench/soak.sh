#!/usr/bin/env bash
# Soak of `novaml demo` (release build, fresh data directory) under a mixed load (issue #23):
# wrk reads the API at ~100 requests/s over 10 kept-alive connections (status, incidents,
# models, predictions, capacity, tuning, series, an uncached day-long query of every VM series on
# every 20th request, /metrics, a dashboard) while a writer posts operator feedback once a second
# with the token: first for WARMUP seconds (the caches, all bounded, fill: SQLite pages, the 1 s
# response cache, the answer budget; not measured), then for DURATION, measured. The demo's RSS
# is sampled every 30 s from the start of the warm-up (bench/out/soak/rss.csv, t_s < 0 during
# it). Prints RSS at the start and end of the measured load, its growth, the read errors and the
# write answers that were not 200. Target: growth < 5 %, no error.
#
#   bash bench/soak.sh [DURATION=60m] [WARMUP=300]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60m}
WARMUP=${2:-300}
OUT=bench/out/soak
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p novaml-cli
BIN=target/release/novaml
DATA=$(mktemp -d)
PORT=${PORT:-8693}
NOVAML_TOKEN=soak "$BIN" demo --listen 127.0.0.1:$PORT --data-dir "$DATA" --for 600m >"$OUT/demo.out" 2>"$OUT/demo.err" &
PID=$!
trap 'kill $PID $WRITER $SAMPLER 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
WRITER=""; SAMPLER=""
BASE=http://127.0.0.1:$PORT
rss_mb() { echo $(( $(awk '/VmRSS/{print $2}' /proc/$PID/status) / 1024 )); }
# The demo backfills a day of history first: wait until the heavy query has it.
for _ in $(seq 1 120); do
  size=$(curl -s -o /dev/null -w '%{size_download}' "$BASE/api/series/query?match=%7B__name__%3D~%22vm_.%2A%22%7D&from=-86400" || true)
  [ "${size:-0}" -gt 1000000 ] && break
  sleep 1
done
cat > "$OUT/mixed.lua" <<'LUA'
local paths = {
  "/api/status", "/api/incidents?limit=50", "/api/models", "/api/predictions", "/api/capacity",
  "/api/tuning", "/api/series?match=vm_cpu_usage_percent", "/metrics", "/dashboards/anomalies",
  "/api/series/query?match=dwcp_transfer_latency_ms&from=-3600",
}
local n = 0
request = function()
  n = n + 1
  if n % 20 == 0 then
    return wrk.format("GET", "/api/series/query?match=%7B__name__%3D~%22vm_.%2A%22%7D&from=" ..
      string.format("%.6f", -86400 - n * 0.000001))
  end
  return wrk.format("GET", paths[(n % #paths) + 1])
end
delay = function() return 100 end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %.3f %d\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
# The heap figures of /metrics say whether growth is held memory or fragmentation (memory.rs),
# and SQLite's own count how much of the held memory is its page caches and statements.
heap_mb() { curl -s "$BASE/metrics" | awk -v m="$1" '$1 == m { printf "%.1f", $2 / 1048576 }'; }
echo "t_s,rss_mb,heap_in_use_mb,heap_free_mb,sqlite_mb" > "$OUT/rss.csv"
( t=$((-WARMUP)); while true; do
    echo "$t,$(rss_mb),$(heap_mb novaml_heap_in_use_bytes),$(heap_mb novaml_heap_free_bytes),$(heap_mb novaml_sqlite_memory_bytes)" >> "$OUT/rss.csv"
    sleep 30; t=$((t+30)); done ) &
SAMPLER=$!
( ok=0; bad=0
  while true; do
    id=$(curl -s "$BASE/api/incidents?limit=1" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["id"] if v else "")' 2>/dev/null || true)
    if [ -n "$id" ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer soak' -H 'content-type: application/json' \
        -d '{"label":"tp","note":"soak"}' "$BASE/api/incidents/$id/feedback")
      if [ "$code" = 200 ]; then ok=$((ok+1)); else bad=$((bad+1)); echo "write $code" >> "$OUT/writes.err"; fi
      echo "$ok $bad" > "$OUT/writes.txt"
    fi
    sleep 1
  done ) &
WRITER=$!
wrk -t1 -c10 -d"${WARMUP}s" --timeout 10s -s "$OUT/mixed.lua" "$BASE" > /dev/null
start=$(rss_mb)
line=$(wrk -t1 -c10 -d"$DURATION" --timeout 10s -s "$OUT/mixed.lua" "$BASE" | grep '^RESULT')
end=$(rss_mb)
read -r _ n p50 p99 errs <<<"$line"
read -r wok wbad < "$OUT/writes.txt"
growth=$(python3 -c "print(f'{100*($end-$start)/$start:.1f}')")
# Growth is also read from the samples: the median of the last 10 minutes against the first 10
# (a scheduled tuning run holds its 256 MiB payload for ~30 s; one sample can land in it).
trend=$(python3 - "$OUT/rss.csv" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["rss_mb"]]
last = int(rows[-1]["t_s"])
def medians(col):
    pairs = [(int(r["t_s"]), float(r[col])) for r in rows if r.get(col)]
    if not pairs:
        return None
    return (statistics.median(v for t, v in pairs if 0 <= t < 600),
            statistics.median(v for t, v in pairs if t > last - 600))
first, final = medians("rss_mb")
peak = max(int(r["rss_mb"]) for r in rows if int(r["t_s"]) >= 0)
line = f"measured load: median {first:.0f} MB in the first 10 min -> {final:.0f} MB in the last 10 ({100 * (final - first) / first:+.1f} %), peak {peak} MB"
for col, name in (("heap_in_use_mb", "heap in use"), ("heap_free_mb", "heap free"),
                  ("sqlite_mb", "SQLite")):
    m = medians(col)
    if m:
        line += f"; {name} {m[0]:.1f} -> {m[1]:.1f} MB"
print(line)
PY
)
echo "soak $DURATION after ${WARMUP}s warm-up: reads $n (p50 $p50 ms, p99 $p99 ms, errors $errs); writes $wok ok, $wbad not 200; RSS $start MB -> $end MB ($growth %); $trend" | tee "$OUT/summary.txt"
