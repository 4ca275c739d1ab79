#!/usr/bin/python3
"""The operator API's reads against the apply (issue 12): the same events
applied twice side by side on the benchmark's own PostgreSQL, once alone and
once while a storm of readers (200 concurrent clients listing addresses with
filters and pages, and reading single addresses) hits the API of the same
daemon.  Reports both apply rates, their ratio, and the reads served.

    bench/run --only throughput --no-docs   # builds build-bench/ once
    bench/api_storm.py [--servers N] [--readers N] [--repeats N]

The daemon's reads run on connections of their own ([api] read_connections)
with a statement timeout; the target is that the storm lowers the apply rate
by at most 10 %."""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def storm(port, readers, stop, counts):
    """readers threads, each with its own keep-alive connection, issuing
    list pages (filters, cursors) and single-address reads until stop."""
    def reader(seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        cursor = None
        while not stop.is_set():
            pick = rng.random()
            if pick < 0.4:
                path = "/api/v1/addresses?limit=100" + (
                    "&cursor=" + cursor if cursor else "")
            elif pick < 0.7:
                path = "/api/v1/addresses?status=%s&limit=50" % rng.choice(
                    ["available", "allocated"])
            elif pick < 0.9:
                path = "/api/v1/addresses?q=host-%d&limit=20" % rng.randrange(1000)
            else:
                path = "/api/v1/subnets"
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                counts["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            counts[response.status // 100] = counts.get(response.status // 100, 0) + 1
            if response.status == 200 and path.startswith("/api/v1/addresses?limit"):
                cursor = json.loads(body).get("next_cursor")
        conn.close()
    threads = [threading.Thread(target=reader, args=(i,), daemon=True)
               for i in range(readers)]
    for t in threads:
        t.start()
    return threads


def one_run(pg, args, readers, run):
    topics = bench.Topics("storm%d" % run)
    try:
        made = bench.loadgen(topics, create=True, servers=args.servers,
                             subnets=args.subnets, versions=2, seed=run + 1)
        db = bench.Db(pg, "storm")
        clients = []

        def start_storm(daemon):
            # Both runs start timing once the daemon is ready.
            daemon.wait_ready()
            if readers:
                port = daemon.log().split("http: listening on 127.0.0.1:")[1].split()[0]
                # The readers stand for other machines: niced, so that their
                # own CPU takes as little as possible from the daemon's.
                clients.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--client", port,
                     "--readers", str(readers)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, preexec_fn=lambda: os.nice(19)))
        # The API allows loopback reads without a token; no rate limit.
        seconds, done, daemon = bench.apply_until_committed(
            pg, db, topics, made["total"], args.cap, on_start=start_storm,
            extra={"api": {"rate_limit": "0", "read_connections": "2"}})
        counts = {"errors": 0}
        for client in clients:
            out, _ = client.communicate(b"", timeout=120)
            counts = json.loads(out)
        daemon.close()
        db.close()
        bench.check(done == made["total"], "the run was capped")
        rate = done / seconds
        bench.log("%s: %d events in %.1f s = %.0f events/s; reads %s"
                  % ("storm" if readers else "alone", done, seconds, rate, counts))
        return rate, counts
    finally:
        topics.delete()


def client(port, readers):
    """The readers of a storm, until stdin closes; prints their counts."""
    stop, counts = threading.Event(), {"errors": 0}
    threads = storm(port, readers, stop, counts)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(30)
    print(json.dumps(counts))


def main():
    ap = argparse.ArgumentParser(prog="bench/api_storm.py")
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--servers", type=int, default=60000)
    ap.add_argument("--subnets", type=int, default=1000)
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cap", type=int, default=600)
    args = ap.parse_args()
    if args.client:
        client(args.client, args.readers)
        return
    pg = bench.PrivatePostgres()
    try:
        alone, stormy, served = [], [], []
        for run in range(args.repeats):
            alone.append(one_run(pg, args, 0, 2 * run)[0])
            rate, counts = one_run(pg, args, args.readers, 2 * run + 1)
            stormy.append(rate)
            served.append(counts)
    finally:
        for daemon in bench.DAEMONS:
            if daemon.alive():
                daemon.proc.kill()
                daemon.proc.wait()
        pg.close()
    a, s = statistics.median(alone), statistics.median(stormy)
    print(json.dumps({"alone_events_per_s": a, "storm_events_per_s": s,
                      "ratio": s / a, "readers": args.readers,
                      "reads": served, "runs": {"alone": alone, "storm": stormy}},
                     indent=1))
    print("apply under a storm of %d readers: %.0f vs %.0f events/s alone = %.2f×"
          % (args.readers, s, a, s / a))


if __name__ == "__main__":
    main()
