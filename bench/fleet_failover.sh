#!/usr/bin/env bash
# Three sharded workers over one fleet, one of them killed (issue #19): a local
# victoria-metrics, a throw-away PostgreSQL cluster (the shared state) and an Alertmanager
# (Debian's), a collector (`novaml serve` with the simulator: HOSTS × VMS_PER_HOST VMs at a 15 s
# step, 2 h of history; simulated data) writing to VictoriaMetrics, and three detection workers
# `--shard 0/3 .. 2/3` with `[state] postgres`, alerting to the Alertmanager. After WARM seconds
# worker 1 is killed with `kill -9`, restarted DOWN seconds later, and all run AFTER seconds more.
# Then it prints: series with scores against series in the store; for a sample (every VM whose
# name ends in -3), the source timestamps after each series' first score that have no score
# (gaps); incidents in PostgreSQL, and pairs of them that are one incident recorded twice (same
# series and type, within the 10-minute de-duplication window); incidents notified against
# alerts the Alertmanager holds; each worker's peak RSS and the leases as PostgreSQL has them.
# Usage: bench/fleet_failover.sh [hosts] [vms_per_host] [warm] [down] [after]
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-725}
vms=${2:-10}
warm=${3:-240}
down=${4:-120}
after=${5:-240}
cargo build --release -q -p novaml-cli
bin=$PWD/target/release/novaml
work=$(mktemp -d)
chmod 755 "$work"
# KEEP=1 keeps the logs and data (printed at the end).
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

vm_port=$(port)
victoria-metrics -httpListenAddr="127.0.0.1:$vm_port" -storageDataPath="$work/vm" \
  -retentionPeriod=100y -dedup.minScrapeInterval=1ms -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
wait_http "127.0.0.1:$vm_port/health"

# PostgreSQL refuses to run as root: as root, initdb and postgres run as the postgres user.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; else "$@"; fi; }
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U novaml --auth=trust --no-sync >/dev/null
pg_port=$(port)
as_pg "$pgbin/postgres" -D "$work/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$work/pg" -c fsync=off >"$work/pg.log" 2>&1 &
pg_url="postgres://novaml@127.0.0.1:$pg_port/postgres"
for _ in $(seq 300); do psql "$pg_url" -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done

am_port=$(port)
printf 'route:\n  receiver: none\nreceivers:\n  - name: none\n' >"$work/am.yml"
prometheus-alertmanager --config.file="$work/am.yml" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$work/am.log" 2>&1 &
wait_http "127.0.0.1:$am_port/-/ready"

mkdir -p "$work/c"
cat >"$work/c/novaml.toml" <<TOML
[store]
kind = "remote"
url = "http://127.0.0.1:$vm_port"
path = "$work/c/novaml.db"

[sources.simulator]
enabled = true
seed = 7
hosts = $hosts
vms_per_host = $vms
step = "15s"
history = "2h"
interval = "15s"
TOML
NOVAML_LOG=info "$bin" serve --config "$work/c/novaml.toml" --listen "127.0.0.1:$(port)" \
  >"$work/c/serve.log" 2>&1 &

declare -A pid peak
start_worker() {
  local k=$1
  mkdir -p "$work/w$k"
  cat >"$work/w$k/novaml.toml" <<TOML
[store]
kind = "remote"
url = "http://127.0.0.1:$vm_port"
path = "$work/w$k/novaml.db"

[state]
postgres = "$pg_url"

[detect]
enabled = true
interval = "15s"
lookback = "3h"

[[detect.webhooks]]
url = "http://127.0.0.1:$am_port"
format = "alertmanager"
TOML
  NOVAML_LOG=info "$bin" serve --config "$work/w$k/novaml.toml" --listen "127.0.0.1:$(port)" \
    --shard "$k/3" >>"$work/w$k/serve.log" 2>&1 &
  pid[$k]=$!
}
sample_rss() {
  for k in 0 1 2; do
    local r
    r=$(awk '/VmRSS/ {print $2}' "/proc/${pid[$k]}/status" 2>/dev/null || echo 0)
    if ((r > ${peak[$k]:-0})); then peak[$k]=$r; fi
  done
}
run_for() { for ((t = 0; t < $1; t += 5)); do sleep 5; sample_rss; done; }
for k in 0 1 2; do start_worker "$k"; done
echo "collector and three workers started ($hosts × $vms VMs); warming for $warm s" >&2
run_for "$warm"
kill -9 "${pid[1]}"
killed_at=$(date +%s)
echo "worker 1 killed; down for $down s" >&2
run_for "$down"
start_worker 1
echo "worker 1 restarted; running $after s" >&2
run_for "$after"
stop_at=$(date +%s)
for k in 0 1 2; do kill -TERM "${pid[$k]}"; done
for k in 0 1 2; do wait "${pid[$k]}" || true; done
curl -sf "127.0.0.1:$vm_port/internal/force_flush" >/dev/null || true
sleep 2

q() { curl -sfG "127.0.0.1:$vm_port/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$stop_at" |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'; }
series=$(q 'count(count_over_time({__name__!~"novaml.*"}[5m]))')
scored=$(q 'count(count_over_time(novaml_anomaly_score[5m]))')
curl -sfG "127.0.0.1:$vm_port/api/v1/export" --data-urlencode 'match[]={vm=~"sim-vm-.*-3",__name__!~"novaml.*"}' \
  --data-urlencode "end=$stop_at" >"$work/source.jsonl"
curl -sfG "127.0.0.1:$vm_port/api/v1/export" --data-urlencode 'match[]=novaml_anomaly_score{vm=~"sim-vm-.*-3"}' \
  --data-urlencode "end=$stop_at" >"$work/scores.jsonl"
sql() { psql "$pg_url" -qAtc "$1"; }
incidents=$(sql 'select count(*) from incident')
twice=$(sql 'select count(*) from incident a join incident b on a.series = b.series and a.kind = b.kind
  and a.id < b.id and a.start_ts <= b.end_ts + 600000 and b.start_ts <= a.end_ts + 600000')
notified=$(sql 'select count(*) from incident where notified')
alerts=$(curl -sf "127.0.0.1:$am_port/api/v2/alerts" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "leases:"; sql "select shard || '/' || count, holder, heartbeat, scored_until from shard_lease order by shard"
python3 - "$work/source.jsonl" "$work/scores.jsonl" "$stop_at" "$killed_at" <<PY
import json, sys
src, sc, stop, killed = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 1000, int(sys.argv[4]) * 1000
def key(m, drop=()):
    return tuple(sorted((k, v) for k, v in m.items() if k not in drop))
source = {}
for line in open(src):
    r = json.loads(line)
    source[key(r["metric"])] = r["timestamps"]
scores = {}
for line in open(sc):
    r = json.loads(line)
    m = dict(r["metric"]); m["__name__"] = m.pop("metric")
    scores[key(m)] = set(r["timestamps"])
# Points of the last 45 s (three steps) may not have been reached by a pass before the stop.
horizon = stop - 45_000
gaps = gap_series = unscored = 0
for k, ts in source.items():
    got = scores.get(k)
    if not got:
        unscored += 1
        continue
    first = min(got)
    missing = [t for t in ts if first <= t <= horizon and t not in got]
    gaps += len(missing)
    gap_series += bool(missing)
print(f"sample (VMs named *-3): {len(source)} series, {unscored} without scores, "
      f"{gaps} source points after the first score without one, in {gap_series} series")
PY
echo "series in the store (last 5 min): $series; series with scores: $scored"
echo "incidents: $incidents; recorded twice: $twice; notified: $notified; alerts in Alertmanager: $alerts"
for k in 0 1 2; do echo "worker $k/3: peak RSS $((${peak[$k]:-0} / 1024)) MB"; done
grep -h "shard 1/3 is held\|ERROR\|panicked" "$work"/w*/serve.log | head -5 || true
