#!/usr/bin/python3
"""A whole CSV export of the address table: streamed page by page
(GET over HTTP/1.1) against the one-piece answer the daemon still gives
an HTTP/1.0 client (the listing read as one value, as every export was
read before the streamed one), side by side on the same state and the
same daemon build, each on a daemon of its own.  Reports, medians of
the runs, the time to the first byte and to the last, and how much the
daemon's peak RSS grew over the export.

    bench/run --only throughput --no-docs   # builds build-bench/ once
    bench/api_export.py [--subnets N] [--per N] [--repeats N]

The state (N /24 subnets, each with a static pool of its first `per`
addresses) is written with SQL straight into the tables, as the scale
measurement of bench/run does (bench.fill_scale)."""

import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def export(daemon, version):
    """One whole CSV export; returns (status, bytes, lines, first byte s,
    total s, peak RSS growth MiB)."""
    port = int(daemon.log().split("http: listening on 127.0.0.1:")[1].split()[0])
    before = daemon.vm().get("VmHWM", 0.0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    if version == 10:
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    t = time.monotonic()
    conn.request("GET", "/api/v1/addresses?format=csv")
    response = conn.getresponse()
    first = time.monotonic() - t
    size = lines = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        lines += chunk.count(b"\n")    # "\r\n" may straddle two reads
    total = time.monotonic() - t
    conn.close()
    if response.status != 200:
        return response.status, size, lines, first, total, 0.0
    chunked = response.getheader("Transfer-Encoding") == "chunked"
    bench.check(chunked == (version == 11), "HTTP/1.%d chunked: %s" % (version % 10, chunked))
    return 200, size, lines, first, total, daemon.vm().get("VmHWM", 0.0) - before


def main():
    ap = argparse.ArgumentParser(prog="bench/api_export.py")
    ap.add_argument("--subnets", type=int, default=4000)
    ap.add_argument("--per", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pg = bench.PrivatePostgres()
    topics = bench.Topics("export")
    db = None
    runs = {"streamed": [], "one_piece": []}
    try:
        bench.loadgen(topics, create=True, no_fill=True)
        db = bench.Db(pg, "export")
        bench.Daemon(pg, db, topics).wait_ready().close()    # the schema
        bench.fill_scale(db, args.subnets, args.per)
        rows = db.scalar("SELECT count(*) FROM ipam_state.address")
        # The one piece at the default api.statement_timeout_ms (5 s).
        daemon = bench.Daemon(pg, db, topics, extra={"api": {"rate_limit": "0"}}).wait_ready()
        try:
            status, _, _, _, default_s, _ = export(daemon, 10)
        finally:
            daemon.close()
        default = {"status": status, "seconds": default_s}
        bench.log("export one_piece at the default statement timeout: %s in %.1f s"
                  % (default["status"], default_s))
        for run in range(args.repeats):
            for label, version in (("streamed", 11), ("one_piece", 10)):
                # The one piece with time enough to be read whole.
                api = {"rate_limit": "0"}
                if version == 10:
                    api["statement_timeout_ms"] = "600000"
                daemon = bench.Daemon(pg, db, topics, extra={"api": api}).wait_ready()
                try:
                    status, size, lines, first, total, grew = export(daemon, version)
                finally:
                    daemon.close()
                bench.check(status == 200 and lines == rows + 1, "%s: %d lines for %d "
                            "rows (status %d)" % (label, lines, rows, status))
                runs[label].append(dict(bytes=size, first_byte_s=first, total_s=total,
                                        rss_growth_mib=grew))
                bench.log("export %s (run %d): %d rows, %.1f MB, first byte %.2f s, "
                          "all %.2f s, peak RSS +%.1f MiB"
                          % (label, run + 1, rows, size / 1e6, first, total, grew))
    finally:
        if db:
            db.close()
        topics.delete()
        for daemon in bench.DAEMONS:
            if daemon.alive():
                daemon.proc.kill()
                daemon.proc.wait()
        pg.close()

    def med(label, key):
        return statistics.median(r[key] for r in runs[label])
    summary = {label: {key: med(label, key) for key in
                       ("bytes", "first_byte_s", "total_s", "rss_growth_mib")}
               for label in runs}
    print(json.dumps({"rows": rows, "summary": summary, "runs": runs,
                      "one_piece_at_default_timeout": default}, indent=1))
    s, o = summary["streamed"], summary["one_piece"]
    print("export of %d rows (%.0f MB): streamed first byte %.2f s, all %.1f s, "
          "peak RSS +%.1f MiB; one piece first byte %.2f s, all %.1f s, "
          "peak RSS +%.1f MiB (api.statement_timeout_ms 600000; at the default "
          "5000: %s); time %.2f×, memory %.3f× the one piece"
          % (rows, s["bytes"] / 1e6, s["first_byte_s"], s["total_s"], s["rss_growth_mib"],
             o["first_byte_s"], o["total_s"], o["rss_growth_mib"], default["status"],
             s["total_s"] / o["total_s"],
             s["rss_growth_mib"] / o["rss_growth_mib"] if o["rss_growth_mib"] else 0))


if __name__ == "__main__":
    main()
