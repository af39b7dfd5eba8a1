#!/usr/bin/env python3
"""bench/http_feed.py - the measuring half of bench/http_feed.sh."""
import json
import random
import sys
import threading
import time
import urllib.request

n, head_url, head_token, url, token = sys.argv[1:6]
n = int(n)
arrived = {}  # id -> monotonic time the feed answer carrying it arrived
lock = threading.Lock()
stop = False


def reader():
    """One event stream (feed=sse), reconnected with Last-Event-ID."""
    last = "0"
    while not stop:
        rq = urllib.request.Request(
            f"{url}/v1/changes?feed=sse&timeout=300&since=0",
            headers={"Authorization": f"Bearer {token}",
                     "Last-Event-ID": last})
        with urllib.request.urlopen(rq, timeout=60) as r:
            for line in r:
                if line.startswith(b"id: "):
                    last = line[4:].strip().decode()
                elif line.startswith(b"data: "):
                    t = time.monotonic()
                    e = json.loads(line[6:])
                    with lock:
                        arrived.setdefault(e["id"], t)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def put(node_url, node_token, rid, i):
    rq = urllib.request.Request(
        f"{node_url}/v1/collections/feed/records/{rid}",
        data=b'{"n":%d}' % i, method="PUT",
        headers={"Authorization": f"Bearer {node_token}"})
    with urllib.request.urlopen(rq, timeout=30) as r:
        r.read()


def run(label, node_url, node_token):
    lat, puts = [], []
    for i in range(n):
        rid = f"{label}{i}"
        time.sleep(random.uniform(0, 0.05))
        start = time.monotonic()
        put(node_url, node_token, rid, i)
        done = time.monotonic()
        puts.append((done - start) * 1000)
        deadline = done + 10
        while time.monotonic() < deadline:
            with lock:
                if rid in arrived:
                    break
            time.sleep(0.001)
        with lock:
            if rid not in arrived:
                sys.exit(f"http_feed.py: {rid} did not reach the feed in 10 s")
            lat.append(max(0.0, arrived[rid] - done) * 1000)
    print(f"{label:10s}: commit -> SSE event, {n} changes: "
          f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
          f"max {max(lat):.1f} ms (PUT itself: p50 {pct(puts, 50):.1f} ms)")


th = threading.Thread(target=reader, daemon=True)
th.start()
run("local", url, token)
run("replicated", head_url, head_token)
stop = True
