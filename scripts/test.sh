#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing:
# Debian's prometheus and prometheus-node-exporter (the collector is tested against real ones)
# and prometheus-alertmanager (alerts are delivered to a real one).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if ((${#need[@]})); then
  echo "Installing test dependencies: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

exec cargo test --workspace "$@"
