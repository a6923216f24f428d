#!/usr/bin/env bash
# Reproduction of issue #23's first finding at full size: two local clients open 10,500 sockets
# each and send half a request line (`GET / HTTP/1.1\r\n`), then an operator asks for
# /api/status. Starts `novaml demo` (release build) on a fresh data directory. Prints the
# status answer's code and time while the hogs hold their sockets, how many hog sockets the
# server had closed 15 s later, and the connection metrics. Before the fix /api/status hung for
# ~12 s and host collection failed with "Too many open files"; the target is an answer in
# under a second, the hogs closed by the header-read timeout and no collection error.
#
#   bash bench/hogs.sh [SOCKETS_PER_CLIENT=10500]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10500}
OUT=bench/out/hogs
mkdir -p "$OUT"
cargo build --release -q -p novaml-cli
BIN=target/release/novaml
DATA=$(mktemp -d)
PORT=${PORT:-8692}
"$BIN" demo --listen 127.0.0.1:$PORT --data-dir "$DATA" --for 30m >"$OUT/demo.out" 2>"$OUT/demo.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 1; done
cat > "$OUT/hog.py" <<'PY'
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\n")
        socks.append(s)
    except OSError as e:
        print("connect failed:", e, file=sys.stderr)
        break
print(f"opened {len(socks)}", flush=True)
time.sleep(hold)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        s.recv(1024)  # end of stream, or the 503 over the cap before the close
        closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"closed by the server after {hold:.0f} s: {closed} of {len(socks)}", flush=True)
PY
ulimit -n "$(ulimit -Hn)"
python3 "$OUT/hog.py" $PORT "$N" 15 > "$OUT/hog1.txt" 2>&1 &
H1=$!
python3 "$OUT/hog.py" $PORT "$N" 15 > "$OUT/hog2.txt" 2>&1 &
H2=$!
for at in 3 8 13; do
  sleep $(( at == 3 ? 3 : 5 ))
  echo "operator at ${at} s: $(curl -s -m5 -o /dev/null -w 'GET /api/status -> %{http_code} in %{time_total} s' "http://127.0.0.1:$PORT/api/status" || echo 'no answer within 5 s')"
done
wait $H1 $H2 || true
cat "$OUT/hog1.txt" "$OUT/hog2.txt"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^(novaml_http_connections|process_(open|max)_fds|novaml_collect_errors_total)' || true
echo "collection errors in the log: $(grep -c -i 'too many open files' "$OUT/demo.err" || true)"
