#!/usr/bin/env bash
# run.sh - ctest's browser.dashboard: the web dashboard in a real headless
# Chromium (Debian's /usr/bin/chromium) driven by playwright-core from npm.
#
#   run.sh SRC_DIR WORK_DIR      (ctest passes both; BS_CLI and BS_DAEMON set)
#
# Installs the test's npm dependencies (npm ci of package-lock.json) into
# WORK_DIR when they are missing, then runs dashboard.test.mjs with node's
# test runner.  A missing chromium, node or npm FAILS the test, naming the
# package to install (tools/bootstrap.sh installs them); only
# BS_BROWSER_SKIP=1, for a developer machine without a browser, turns that
# into a skip (exit 77).
set -euo pipefail
src=$1 work=$2
chromium=${BS_CHROMIUM:-/usr/bin/chromium}

missing() {
  if [ "${BS_BROWSER_SKIP:-}" = 1 ]; then
    echo "browser.dashboard SKIPPED (BS_BROWSER_SKIP=1): $1"
    exit 77
  fi
  echo "browser.dashboard: $1; install it (bash tools/bootstrap.sh does), or set BS_BROWSER_SKIP=1 to skip this test on a developer machine" >&2
  exit 1
}
[ -x "$chromium" ] || missing "no Chromium at $chromium (apt-get install chromium)"
command -v node >/dev/null || missing "no node (apt-get install nodejs)"
command -v npm >/dev/null || missing "no npm (apt-get install npm)"

mkdir -p "$work"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" ||
   [ ! -d "$work/node_modules/playwright-core" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  echo "browser.dashboard: npm ci (playwright-core) in $work"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) ||
    { echo "browser.dashboard: npm ci failed in $work (is the npm registry reachable?)" >&2; exit 1; }
fi
export BS_BROWSER_MODULES="$work/node_modules" BS_CHROMIUM="$chromium"
exec node --test --test-reporter=spec "$src/dashboard.test.mjs"
