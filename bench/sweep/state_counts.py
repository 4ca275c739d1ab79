"""What the sweeper's state tables cost the reads that count `active`.

Builds a database with the daemon's schema (the daemon in IPAM_SYNCD_BIN
migrates it, sweeper off) and, by SQL inserts, 4,000 subnets /24 with 250
address rows each (1,000,000 rows), a state row in ipamd.sweep_address for
every one of them (70% answering and active, 30% silent and down) and a
row of passes per subnet; then times, best of --runs:

    count(*) FROM public.ipam, and WHERE active
    ipamd.api_stats('{}'), ipamd.api_subnets('{}')
    the targets of one member holding every subnet (ipamd.sweep_rows())

    state_counts.py [--runs N]

Needs the services' environment (scripts/services env)."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "integration"))
from test_sweep_share import migrated_database  # noqa: E402

QUERIES = [
    ("count(*)", "SELECT count(*) FROM public.ipam"),
    ("count(*) WHERE active", "SELECT count(*) FROM public.ipam WHERE active"),
    ("api_stats", "SELECT ipamd.api_stats('{}') IS NULL"),
    ("api_subnets", "SELECT ipamd.api_subnets('{}') IS NULL"),
    ("targets of every subnet",
     "SELECT count(*) FROM ipamd.sweep_rows() r WHERE r.subnet_id = "
     "ANY (ARRAY(SELECT id FROM ipam_state.subnet))"),
]


def build(db):
    """The rows."""
    db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping) "
             "SELECT 's' || i, 1, '', ('10.' || (i / 256) || '.' || (i % 256) "
             "|| '.0/24')::cidr, true FROM generate_series(0, 3999) i")
    db.query("INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type, "
             "server_id, created_at, updated_at) "
             "SELECT ('10.' || (i / 256) || '.' || (i % 256) || '.0')::inet + h, 's' || i, "
             "CASE WHEN h % 10 = 0 THEN 'allocated' ELSE 'available' END, 'static', "
             "CASE WHEN h % 10 = 0 THEN 'srv' || i || '-' || h END, "
             "'2026-01-01', '2026-01-01' "
             "FROM generate_series(0, 3999) i, generate_series(1, 250) h")
    db.query("INSERT INTO ipamd.sweep_subnet SELECT 's' || i, 10, now() "
             "FROM generate_series(0, 3999) i")
    db.query("INSERT INTO ipamd.sweep_address (vrf, ip_address, row_created_at, subnet_id, "
             "pass, active, answered, missed_sweeps, rtt_us, checked_at, seen_at) "
             "SELECT a.vrf, a.ip_address, a.created_at, a.subnet_id, 3, x.h % 10 < 7, "
             "x.h % 10 < 7, CASE WHEN x.h % 10 < 7 THEN 0 ELSE 5 END, 300, "
             "now() - interval '1 hour', now() - interval '1 hour' "
             "FROM ipam_state.address a, "
             "LATERAL (SELECT a.ip_address - '0.0.0.0'::inet AS h) x")
    db.query("VACUUM ANALYZE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    db = migrated_database()
    try:
        start = time.monotonic()
        build(db)
        print("built %d address rows in %.1f s" % (
            db.scalar("SELECT count(*) FROM ipam_state.address"),
            time.monotonic() - start))
        for name, sql in QUERIES:
            best = None
            for _ in range(args.runs):
                start = time.monotonic()
                db.query(sql)
                took = time.monotonic() - start
                best = took if best is None else min(best, took)
            print("%8.3f s  %s" % (best, name))
    finally:
        db.close()


if __name__ == "__main__":
    main()
