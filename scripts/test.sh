#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing:
# Debian's prometheus (with promtool) and prometheus-node-exporter (the collector is tested
# against real ones), prometheus-alertmanager (alerts are delivered to a real one),
# victoria-metrics (the remote store is tested against it and Prometheus), postgresql (the
# shared state is tested against a throw-away cluster the tests create), chromium and
# chromium-driver (the dashboards are tested in a real browser, driven by playwright-core from
# npm, pinned in tests/browser/package-lock.json), and Node.js when the machine has none.
# Extra arguments go to `cargo test`; the browser tests then run against the `novaml` binary
# that `cargo test` built (target/debug/novaml), with screenshots in target/browser-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
  echo "Installing test dependencies: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo test --workspace "$@"

echo "Browser tests of the dashboards (headless Chromium against novaml demo):" >&2
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/browser && node --test --test-reporter=spec dashboards.test.mjs)
