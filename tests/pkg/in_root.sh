#!/bin/sh
# in_root.sh - run inside a clean Debian 12 root (tests/pkg/test_package.c):
# install the package with apt, then start a node from it as the
# `branchsync` user.  Prints KEY=VALUE lines the test checks; exits
# non-zero at the first step that fails.
set -eu
DEB=$1 PORT=$2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/tmp/apt-update.log 2>&1 || { cat /tmp/apt-update.log; exit 1; }
apt-get install -y -qq --no-install-recommends "$DEB" >/tmp/apt.log 2>&1 ||
    { cat /tmp/apt.log; exit 1; }
echo "INSTALLED=$(dpkg-query -W -f='${Status}' branchsync)"
echo "USER=$(id -un branchsync):$(id -gn branchsync)"
echo "DATADIR=$(stat -c '%a %U' /var/lib/branchsync)"
echo "UNIT_EXEC=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/branchsyncd@.service)"
echo "BINS=$(command -v branchsync) $(command -v branchsyncd)"

D=/var/lib/branchsync/head
as_node() { setpriv --reuid branchsync --regid branchsync --init-groups "$@"; }
as_node branchsync init -d "$D" --name head --role hub \
    --listen "tcp://127.0.0.1:$PORT" --http off >/dev/null
echo "KEYMODE=$(stat -c '%a %U' "$D/keys/node.key")"
# (setpriv execs the daemon: $! is its pid)
setpriv --reuid branchsync --regid branchsync --init-groups \
    branchsyncd -d "$D" >/tmp/daemon.log 2>&1 &
pid=$!
i=0
until grep -qs "listening on" /tmp/daemon.log && [ -S "$D/control.sock" ]; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 $pid 2>/dev/null; then
        echo "the daemon did not start:"; cat /tmp/daemon.log; exit 1
    fi
    sleep 0.1
done
echo "DAEMON=up"
as_node branchsync -d "$D" put customers c1 '{"name":"Acme"}'
echo "GET=$(as_node branchsync -d "$D" get customers c1)"
echo "STATUS=$(as_node branchsync -d "$D" status --json | tr -d ' \n' | cut -c1-60)"
kill -TERM $pid
rc=0
wait $pid || rc=$?
echo "DAEMON_EXIT=$rc"
