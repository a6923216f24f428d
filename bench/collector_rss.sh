#!/usr/bin/env bash
# Collector memory while following 10,000 series (target: RSS < 100 MB).
#
# Serves a static exposition payload of N series (default 10,000) on loopback, runs
# `novaml collect --scrape … --follow` at a 1 s interval for D seconds (default 60), and prints
# the peak resident set size (VmHWM) and the samples written.
# Usage: bench/collector_rss.sh [series] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
secs=${2:-60}
cargo build --release -q -p novaml-cli
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$n" > "$work/metrics" <<'PY'
import sys
n = int(sys.argv[1])
print("# TYPE bench_value gauge")
for i in range(n):
    print(f'bench_value{{vm="vm-{i // 10}",disk="d{i % 10}",cluster="bench"}} {i * 0.5}')
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
sleep 1
cat > "$work/novaml.toml" <<TOML
[store]
path = "$work/store.db"
[[sources.scrape]]
name = "bench"
url = "http://127.0.0.1:$port/metrics"
interval = "1s"
timeout = "5s"
TOML
NOVAML_LOG=warn ./target/release/novaml collect --config "$work/novaml.toml" --follow &
pid=$!
sleep "$secs"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true
points=$(python3 -c "import sqlite3,sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('select coalesce(sum(n),0) from chunk').fetchone()[0] + c.execute('select coalesce(sum(n),0) from head').fetchone()[0])" "$work/store.db")
echo "series=$n seconds=$secs peak_rss_mb=$(awk "BEGIN {printf \"%.1f\", $hwm/1024}") current_rss_mb=$(awk "BEGIN {printf \"%.1f\", $rss/1024}") points_written=$points"
