#!/usr/bin/env bash
# Load test of the API's read endpoints on loopback: starts `novaml demo` (release build) on a
# fresh data directory, waits until every dashboard has data, then runs wrk (Debian package) with
# 200 connections for DURATION per endpoint while the demo keeps collecting, detecting, training
# and tuning. Prints and saves (bench/out/load/summary.json) p50/p99 latency, requests/s and errors
# per endpoint. Target (issue #7): p99 < 50 ms with no errors.
# Then the uncached heavy run (issue #23): unique `/api/series/query` requests of every VM
# series over a day (~2.2 MB each, so the 1 s cache never answers) at 20, 200 and 400 connections,
# with the demo's RSS before, at its peak and 60 s after (bench/out/load/heavy.json). Targets:
# RSS back within 20 % of its pre-load value within a minute, no errors.
#
#   bash bench/load.sh [DURATION=15s] [CONNECTIONS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15s}
CONNS=${2:-200}
OUT=bench/out/load
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p novaml-cli
BIN=target/release/novaml
DATA=$(mktemp -d)
PORT=${PORT:-8690}
NOVAML_TOKEN=load-test "$BIN" demo --listen 127.0.0.1:$PORT --data-dir "$DATA" --for 30m >"$OUT/demo.out" 2>"$OUT/demo.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
BASE=http://127.0.0.1:$PORT
for _ in $(seq 1 240); do
  if curl -sf "$BASE/api/capacity" >/dev/null && curl -sf "$BASE/api/predictions" | grep -q model \
     && curl -sf "$BASE/api/tuning" | grep -q '"status":"done"' && curl -sf "$BASE/api/incidents?limit=1" | grep -q id; then
    break
  fi
  sleep 1
done
ENDPOINTS=(
  "/api/status"
  "/api/incidents?limit=50"
  "/api/models"
  "/api/predictions"
  "/api/capacity"
  "/api/tuning"
  "/api/series?match=vm_cpu_usage_percent"
  "/api/series/query?match=dwcp_transfer_latency_ms&from=-3600"
  "/metrics"
  "/dashboards/pipeline"
)
cat > "$OUT/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %.3f %.3f %.1f %d\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests / (summary.duration / 1e6), errors))
end
LUA
echo "[" > "$OUT/summary.json"
first=1
printf "%-58s %10s %10s %10s %10s %8s\n" endpoint "req/s" "p50 ms" "p99 ms" "max ms" errors
for ep in "${ENDPOINTS[@]}"; do
  line=$(wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 5s -s "$OUT/report.lua" "$BASE$ep" | grep '^RESULT')
  read -r _ n p50 p99 max rps errs <<<"$line"
  printf "%-58s %10s %10s %10s %10s %8s\n" "$ep" "$rps" "$p50" "$p99" "$max" "$errs"
  [ $first = 1 ] || echo "," >> "$OUT/summary.json"
  first=0
  printf '{"endpoint":"%s","requests":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"max_ms":%s,"errors":%s}' \
    "$ep" "$n" "$rps" "$p50" "$p99" "$max" "$errs" >> "$OUT/summary.json"
done
echo "]" >> "$OUT/summary.json"

# Uncached heavy queries: a unique `from` per request defeats the cache.
cat > "$OUT/heavy.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  local from = -86400 - counter * 0.000001
  return wrk.format("GET", "/api/series/query?match=%7B__name__%3D~%22vm_.%2A%22%7D&from=" .. string.format("%.6f", from))
end
LUA
sed -n '/^done = /,$p' "$OUT/report.lua" >> "$OUT/heavy.lua"
rss_mb() { echo $(( $(awk '/VmRSS/{print $2}' /proc/$PID/status) / 1024 )); }
size=$(curl -s -o /dev/null -w '%{size_download}' "$BASE/api/series/query?match=%7B__name__%3D~%22vm_.%2A%22%7D&from=-86400")
echo "uncached heavy queries ($size bytes each):"
printf "%-12s %10s %10s %10s %8s %10s %10s %10s\n" connections "req/s" "p50 ms" "p99 ms" errors "RSS MB" "peak MB" "after 60s"
echo "[" > "$OUT/heavy.json"
first=1
for c in 20 200 400; do
  before=$(rss_mb)
  peak=$before
  ( while sleep 0.5; do r=$(rss_mb); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" > "$OUT/peak"; done ) &
  SAMPLER=$!
  echo "$before" > "$OUT/peak"
  line=$(wrk -t2 -c"$c" -d"$DURATION" --timeout 5s -s "$OUT/heavy.lua" "$BASE" | grep '^RESULT')
  kill $SAMPLER 2>/dev/null; wait $SAMPLER 2>/dev/null || true
  peak=$(cat "$OUT/peak")
  sleep 60
  after=$(rss_mb)
  read -r _ n p50 p99 max rps errs <<<"$line"
  printf "%-12s %10s %10s %10s %8s %10s %10s %10s\n" "$c" "$rps" "$p50" "$p99" "$errs" "$before" "$peak" "$after"
  [ $first = 1 ] || echo "," >> "$OUT/heavy.json"
  first=0
  printf '{"connections":%s,"answer_bytes":%s,"requests":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"errors":%s,"rss_before_mb":%s,"rss_peak_mb":%s,"rss_after_60s_mb":%s}' \
    "$c" "$size" "$n" "$rps" "$p50" "$p99" "$errs" "$before" "$peak" "$after" >> "$OUT/heavy.json"
done
echo "]" >> "$OUT/heavy.json"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); connections $CONNS, $DURATION each" | tee "$OUT/machine.txt"
