#!/usr/bin/env bash
# One worker's live detection over a fleet in VictoriaMetrics (issue #19): a local
# victoria-metrics (Debian's), `novaml serve` with `[store] kind = "remote"`, the simulator as
# the fleet (HOSTS × VMS_PER_HOST VMs at a 15 s step, 2 h of history; simulated data), and
# detection every 15 s. After SECONDS (default 240) it prints the series scored, the passes'
# durations (the first warms every detector on the history; the rest consume the new points),
# whether every pass finished within the 15 s step, the worker's CPU share of one core over the
# second half of the run, and its resident memory. The simulator's generation and the remote
# write run in the same process, so the CPU share is the worker's whole cost, not detection's
# alone (`cargo bench -p novaml-anomaly --bench monitor` measures that).
# Usage: bench/fleet_detection.sh [hosts] [vms_per_host] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-250}
vms=${2:-10}
secs=${3:-240}
cargo build --release -q -p novaml-cli
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
vm_port=$(port)
victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$work/vm" \
  -retentionPeriod=100y -dedup.minScrapeInterval=1ms -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
for _ in $(seq 100); do curl -sf "127.0.0.1:$vm_port/health" >/dev/null && break; sleep 0.1; done
cat > "$work/novaml.toml" <<TOML
[store]
kind = "remote"
url = "http://127.0.0.1:$vm_port"
path = "$work/state/novaml.db"

[sources.simulator]
enabled = true
seed = 7
hosts = $hosts
vms_per_host = $vms
step = "15s"
history = "2h"
interval = "15s"

[detect]
enabled = true
interval = "15s"
lookback = "3h"
TOML
NOVAML_LOG=info ./target/release/novaml serve --config "$work/novaml.toml" \
  --listen "127.0.0.1:$(port)" >"$work/serve.log" 2>&1 &
pid=$!
tck=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
peak=0
half=$((secs / 2))
for ((t = 0; t < secs; t += 5)); do
  sleep 5
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  ((rss > peak)) && peak=$rss
  if ((t + 5 >= half)) && [ -z "${t0:-}" ]; then t0=$(ticks); w0=$(date +%s.%N); fi
done
t1=$(ticks); w1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true
python3 - "$work/serve.log" "$t0" "$t1" "$w0" "$w1" "$tck" "$peak" "$rss" "$secs" <<'PY'
import re, statistics, sys
log, t0, t1, w0, w1, tck, peak, rss, secs = sys.argv[1:]
passes = [
    (int(m[1]), int(m[2]), float(m[3]))
    for m in re.finditer(r"Detection pass\. series=(\d+) rows=(\d+) new_incidents=\d+ seconds=([\d.]+)", open(log).read())
]
scored = [p for p in passes if p[0] > 0]
if not scored:
    sys.exit("no detection pass scored anything; see the worker's log")
first, rest = scored[0], scored[1:]
cpu = (float(t1) - float(t0)) / float(tck) / (float(w1) - float(w0))
print(f"series scored by the first pass: {first[0]} ({first[1]} history rows, {first[2]:.1f} s)")
if rest:
    secs_rest = [p[2] for p in rest]
    print(f"later passes: {len(rest)}, median {statistics.median(secs_rest):.2f} s, max {max(secs_rest):.2f} s, "
          f"median rows {statistics.median([p[1] for p in rest]):.0f}; every pass within the 15 s step: {max(secs_rest) < 15}")
print(f"CPU over the second half of {secs} s: {cpu * 100:.1f} % of one core")
print(f"RSS: peak {int(peak) / 1024:.0f} MB, at the end {int(rss) / 1024:.0f} MB")
PY
