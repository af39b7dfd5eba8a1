#!/usr/bin/env bash
# tour.sh - a scripted tour of one branchsync node (the head office):
# create it, load a sample infobase, query it, edit it, fingerprint it.
#
#   bash deploy/tour.sh [BUILD_DIR]      (default: build)
#
# Everything happens in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bs="$PWD/$build/tools/branchsync"
[ -x "$bs" ] || { echo "demo: $bs not built (run tools/bootstrap.sh build)" >&2; exit 1; }
work=$(mktemp -d /tmp/branchsync-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export BRANCHSYNC_DIR="$work/head"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "branchsync tour: one node, the head office (data in $work)"
step "$bs" init --name head --role hub --listen tcp://127.0.0.1:7400
step "$bs" id
step "$bs" load customers deploy/sample/customers.jsonl
step "$bs" load products deploy/sample/products.jsonl
step "$bs" load invoices deploy/sample/invoices.jsonl
step "$bs" get customers c001
echo; echo "\$ $bs ls products | head -3"
"$bs" ls products | head -3
step "$bs" put customers c001 '{"city":"Tartu","phone":"+372 5555 0101"}'
step "$bs" get customers c001
step "$bs" del invoices inv-2026-0001
if "$bs" get invoices inv-2026-0001 2>/dev/null; then
  echo "demo: deleted invoice still visible" >&2; exit 1
fi
echo "(inv-2026-0001 is gone: get exits 1 with \"not found\")"
step "$bs" load customers deploy/sample/customers.jsonl
step "$bs" digest
step "$bs" digest products
step "$bs" status
echo; echo "tour complete."
