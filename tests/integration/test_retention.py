"""Retention ([retention], daemon/retention.c, schema/functions/97_retention.sql):
ipamd.audit, ipamd.dead_letter and ipamd.request pruned by age, exactly the
rows older than the setting, 0 keeping forever, a reload taking effect, two
daemons pruning one database at once, and a prune of 200,000 rows that the
apply never waits for."""

import json
import re
import signal
import threading

import psycopg2

import harness
from harness import Daemon, Database, Kafka, Topics, wait_caught_up, wait_until

# The application_name of the retention job's PostgreSQL session.
RETENTION_APP = "ipam-syncd retention"


def server_event(sid, ip, version=1):
    return json.dumps({"specversion": "1.0", "id": "e-%s-%d" % (sid, version),
                       "source": "/tests/retention", "type": "ipam.server.upserted",
                       "subject": sid, "entityversion": version,
                       "data": {"hostname": "h" + sid, "ip_address": ip}})


def subnet_event(sid, cidr):
    return json.dumps({"specversion": "1.0", "id": "s-" + sid,
                       "source": "/tests/retention", "type": "ipam.subnet.upserted",
                       "subject": sid, "data": {"name": "n" + sid, "cidr": cidr,
                                                "static_ip_pools": []}})


def metric(daemon, name, labels=""):
    """One sample of the daemon's /metrics, or None when absent."""
    status, text = daemon.http_get("/metrics")
    assert status == 200
    match = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(match.group(1)) if match else None


def pruned(daemon, table):
    return metric(daemon, "ipam_syncd_retention_rows_pruned_total",
                  '{table="%s"}' % table)


def wait_next_run(daemon, timeout=60):
    """Waits until a retention run that starts after this call has ended."""
    before = metric(daemon, "ipam_syncd_retention_runs_total") or 0
    wait_until(lambda: (metric(daemon, "ipam_syncd_retention_runs_total") or 0)
               >= before + 2, timeout, "a whole retention run after now")


def retention(daemon, **days):
    """Rewrites the [retention] section and reloads it with SIGHUP."""
    sections = daemon.sections
    sections.setdefault("retention", {}).update({k: str(v) for k, v in days.items()})
    daemon.write_config(sections)
    daemon.signal(signal.SIGHUP)


def ids(db, table):
    return [r[0] for r in db.query("SELECT id FROM ipamd.%s ORDER BY id" % table)]


def test_retention_prunes_exactly_the_old_rows_keeps_with_zero_and_reloads():
    """Rows older than each table's days go, newer ones stay, 0 keeps all;
    shorter days from a reload prune at once."""
    db, topics, kafka = Database(), Topics(), Kafka()
    config = {"retention": {"audit_days": "90", "dead_letter_days": "30",
                            "request_days": "0", "interval_ms": "1000"},
              "consumer": {"batch_max_wait_ms": "20"}}
    daemon = Daemon(db, topics, config=config).start()
    try:
        daemon.wait_ready()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.70.0.0/16"))
        for i in range(30):
            kafka.send(topics.servers, str(i), server_event(str(i), "10.70.0.%d" % (i + 1)))
        for i in range(6):
            kafka.send(topics.servers, "bad%d" % i, "not json %d" % i)
        kafka.flush()
        wait_caught_up(db, daemon.group, 37)
        db.query("INSERT INTO ipamd.request (id, topic, partition, \"offset\", vrf, "
                 "address, outcome) SELECT 'r' || g, 't', 0, g, '', '10.70.0.1', "
                 "'applied' FROM generate_series(1, 10) g")
        audit, dead = ids(db, "audit"), ids(db, "dead_letter")
        assert len(audit) == 30 and len(dead) == 6, (audit, dead)
        # Oldest ids first, as time and ids go together.
        db.query("UPDATE ipamd.audit SET changed_at = now() - interval '100 days' "
                 "WHERE id = ANY(%s)", (audit[:10],))
        db.query("UPDATE ipamd.audit SET changed_at = now() - interval '89 days' "
                 "WHERE id = ANY(%s)", (audit[10:20],))
        db.query("UPDATE ipamd.dead_letter SET received_at = now() - interval '31 days' "
                 "WHERE id = ANY(%s)", (dead[:2],))
        db.query("UPDATE ipamd.dead_letter SET received_at = now() - interval '29 days' "
                 "WHERE id = ANY(%s)", (dead[2:4],))
        db.query("UPDATE ipamd.request SET decided_at = now() - interval '400 days'")

        wait_until(lambda: pruned(daemon, "audit") == 10 and
                   pruned(daemon, "dead_letter") == 2, 60, "the old rows pruned")
        wait_next_run(daemon)
        assert ids(db, "audit") == audit[10:]
        assert ids(db, "dead_letter") == dead[2:]
        assert db.scalar("SELECT count(*) FROM ipamd.request") == 10
        assert pruned(daemon, "audit") == 10 and pruned(daemon, "request") == 0
        assert metric(daemon, "ipam_syncd_retention_errors_total") == 0
        # The oldest audit row left is one of the 89 days old.
        expected = float(db.scalar("SELECT extract(epoch FROM min(changed_at)) "
                                   "FROM ipamd.audit"))
        wait_until(lambda: abs((metric(daemon, "ipam_syncd_retention_oldest_row_"
                                       "timestamp_seconds", '{table="audit"}') or 0)
                               - expected) < 0.01, 60, "the oldest audit row's time")

        # A reload: 30 days for the audit, 365 for requests (all 400 days old).
        retention(daemon, audit_days=30, request_days=365)
        wait_until(lambda: pruned(daemon, "audit") == 20 and
                   pruned(daemon, "request") == 10, 60, "the reloaded days applied")
        wait_next_run(daemon)
        assert ids(db, "audit") == audit[20:]
        assert ids(db, "dead_letter") == dead[2:]
        assert db.scalar("SELECT count(*) FROM ipamd.request") == 0
        assert metric(daemon, "ipam_syncd_retention_seconds",
                      '{table="audit"}') == 30 * 86400
        assert metric(daemon, "ipam_syncd_retention_seconds",
                      '{table="request"}') == 365 * 86400
        assert daemon.log_contains(r"retention: now audit 30 days")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_two_daemons_prune_one_database_at_once():
    """Two instances sharing a database both prune: every old row goes
    once, no newer row goes, neither fails, and their counts add up."""
    db, topics = Database(), Topics()
    config = {"retention": {"audit_days": "0", "dead_letter_days": "0",
                            "request_days": "0", "interval_ms": "1000"}}
    first = Daemon(db, topics, config=config).start()
    second = None
    try:
        first.wait_ready()
        second = Daemon(db, topics, config=config, group=first.group).start()
        second.wait_ready()
        db.query("INSERT INTO ipamd.audit (vrf, ip_address, action) "
                 "SELECT '', '10.71.0.1', 'insert' FROM generate_series(1, 60000)")
        db.query("UPDATE ipamd.audit SET changed_at = now() - interval '200 days' "
                 "WHERE id <= 50000")
        newer = ids(db, "audit")[50000:]
        assert len(newer) == 10000
        for daemon in (first, second):
            retention(daemon, audit_days=90)
        wait_until(lambda: (pruned(first, "audit") or 0) +
                   (pruned(second, "audit") or 0) == 50000, 120, "both pruned")
        wait_next_run(first)
        wait_next_run(second)
        assert ids(db, "audit") == newer
        assert pruned(first, "audit") + pruned(second, "audit") == 50000
        for daemon in (first, second):
            assert metric(daemon, "ipam_syncd_retention_errors_total") == 0
            assert not daemon.log_contains(r"retention: pruning .* failed")
        assert first.stop() == 0 and second.stop() == 0
    finally:
        first.close()
        if second:
            second.close()
        db.close()


def test_a_large_prune_does_not_block_the_apply():
    """While 200,000 old audit rows are pruned, events are applied one
    after another, and the apply never waits for the retention's locks."""
    db, topics, kafka = Database(), Topics(), Kafka()
    config = {"retention": {"audit_days": "0", "interval_ms": "1000"},
              "consumer": {"batch_max_wait_ms": "10"}}
    daemon = Daemon(db, topics, config=config).start()
    seeded = 200000
    try:
        daemon.wait_ready()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.72.0.0/16"))
        kafka.flush()
        wait_caught_up(db, daemon.group, 1)
        db.query("INSERT INTO ipamd.audit_log (vrf, ip_address, action, after) "
                 "SELECT '', '10.72.255.1', 'insert', "
                 "jsonb_build_object('hostname', repeat('x', 200), 'n', g) "
                 "FROM generate_series(1, %d) g" % seeded)
        db.query("UPDATE ipamd.audit SET changed_at = now() - interval '365 days'")
        last_seeded = db.scalar("SELECT max(id) FROM ipamd.audit")

        def old_left():
            return db.scalar("SELECT count(*) FROM ipamd.audit WHERE id <= %s",
                             (last_seeded,))

        blocked = []
        stop = threading.Event()

        def watch():
            # Any moment the apply's session waits for the retention's.
            while not stop.is_set():
                with db_watch.cursor() as cur:
                    cur.execute(
                    "SELECT a.pid FROM pg_stat_activity a "
                    "WHERE a.datname = current_database() "
                    "AND a.application_name = 'ipam-syncd' AND EXISTS ("
                    "SELECT 1 FROM pg_stat_activity r WHERE r.application_name = %s "
                    "AND r.pid = ANY (pg_blocking_pids(a.pid)))", (RETENTION_APP,))
                    blocked.extend(cur.fetchall())

        db_watch = psycopg2.connect(host=db.host, port=db.port, user=db.user,
                                    dbname=db.name)
        db_watch.autocommit = True
        watcher = threading.Thread(target=watch)
        watcher.start()
        retention(daemon, audit_days=90)
        inside = 0
        sent = 1
        i = 0
        while True:
            before = old_left()
            if before == 0:
                break
            kafka.send(topics.servers, str(i), server_event(
                str(i), "10.72.%d.%d" % (i // 250, i % 250 + 1)))
            kafka.flush()
            sent += 1
            wait_caught_up(db, daemon.group, sent)
            after = old_left()
            # Applied while the prune had begun and was not over.
            if before < seeded and after > 0:
                inside += 1
            i += 1
        stop.set()
        watcher.join()
        db_watch.close()
        assert inside >= 1, "no event was applied while the prune ran"
        assert blocked == [], blocked
        # Counted when the loop reads the last prune's answer, which may
        # be just after its commit shows.
        wait_until(lambda: pruned(daemon, "audit") == seeded, 30, "the prune counted")
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == i
        assert db.scalar("SELECT count(*) FROM ipamd.audit") == i
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_retention_functions_at_the_sql_level():
    """ipamd.retention_prune() and retention_figures() by themselves: a
    batch is bounded, 0 days keeps, a table another session prunes is left
    (NULL), an unknown table is refused, the oldest rows and the request
    outcomes are found through indexes, and the figures count what is
    there."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, config={"retention": {"audit_days": "0",
                                                      "dead_letter_days": "0",
                                                      "request_days": "0"}}).start()
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
        db.query("INSERT INTO ipamd.audit (vrf, ip_address, action) "
                 "SELECT '', '10.73.0.1', 'insert' FROM generate_series(1, 12000)")
        db.query("UPDATE ipamd.audit SET changed_at = now() - interval '10 days' "
                 "WHERE id <= (SELECT min(id) + 10999 FROM ipamd.audit)")
        db.query("INSERT INTO ipamd.request (id, topic, partition, \"offset\", vrf, "
                 "address, outcome, decided_at) SELECT 'r' || g, 't', 0, g, '', "
                 "'10.73.0.1', 'applied', now() - (g - 0.5) * interval '1 day' "
                 "FROM generate_series(1, 20) g")
        db.query("INSERT INTO ipamd.dead_letter (topic, partition, \"offset\", reason, "
                 "received_at) VALUES ('t', 0, 1, 'r', now() - interval '3 days'), "
                 "('t', 0, 2, 'r', now())")
        db.query("ANALYZE ipamd.audit; ANALYZE ipamd.request")
        prune = "SELECT ipamd.retention_prune(%s, %s, %s)"
        assert db.scalar(prune, ("audit", 0, 5000)) == 0
        assert db.scalar(prune, ("audit", 5, 5000)) == 5000
        # Another session holds the audit's lock: the table is left to it.
        holder = psycopg2.connect(host=db.host, port=db.port, user=db.user,
                                  dbname=db.name)
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7369749, 1)")
            assert db.scalar(prune, ("audit", 5, 5000)) is None
            # 10.5 to 19.5 days old: ten of them.
            assert db.scalar(prune, ("request", 10, 5000)) == 10
        holder.rollback()
        holder.close()
        assert db.scalar(prune, ("audit", 5, 5000)) == 5000
        assert db.scalar(prune, ("audit", 5, 5000)) == 1000
        assert db.scalar(prune, ("audit", 5, 5000)) == 0
        assert db.scalar("SELECT count(*) FROM ipamd.audit") == 1000
        assert db.scalar("SELECT count(*) FROM ipamd.request") == 10
        assert db.scalar(prune, ("dead_letter", 2, 5000)) == 1
        try:
            db.scalar(prune, ("address", 5, 5000))
            raise AssertionError("an unknown table was accepted")
        except psycopg2.Error as error:
            assert "unknown table" in str(error), error
        # The lookups go through indexes, never a scan of the table.
        for sql in ("SELECT h.id FROM ipamd.audit h ORDER BY h.id LIMIT 5000",
                    "SELECT r.id FROM ipamd.request r WHERE r.decided_at < now() "
                    "ORDER BY r.decided_at LIMIT 5000",
                    "SELECT min(r.decided_at) FROM ipamd.request r"):
            plan = "\n".join(r[0] for r in db.query(
                "SET enable_seqscan = off; EXPLAIN " + sql))
            assert "Seq Scan" not in plan and "Index" in plan, (sql, plan)
        figures = db.scalar("SELECT ipamd.retention_figures()")
        assert figures["dead_letters"] == 1 and figures["conflicts"] == {}
        assert abs(figures["oldest"]["request"] - float(db.scalar(
            "SELECT extract(epoch FROM min(decided_at)) FROM ipamd.request"))) < 0.001

        # A clock set a year ahead for a while, then right again: the
        # rows it stamped in the future go with their older neighbours
        # (ids follow time), and never stop the prune, nor hide the
        # oldest row from the figures.
        db.query("DELETE FROM ipamd.audit_log")
        for days, count in ((365, 4), (-10, 6), (0, 2)):
            db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, changed_at) "
                     "SELECT '', '10.73.0.2', 'insert', now() + %s * interval '1 day' "
                     "FROM generate_series(1, %s)", (days, count))
        oldest = db.scalar("SELECT extract(epoch FROM now() - interval '10 days')")
        figures = db.scalar("SELECT ipamd.retention_figures()")
        assert abs(figures["oldest"]["audit"] - float(oldest)) < 5, figures
        # A window of nothing but future rows goes when the row after it
        # is old; then the old ones; the two of now stay.
        assert db.scalar(prune, ("audit", 5, 3)) == 3
        assert db.scalar(prune, ("audit", 5, 5000)) == 7
        assert db.scalar(prune, ("audit", 5, 5000)) == 0
        assert db.scalar("SELECT count(*) FROM ipamd.audit") == 2
        # Future rows followed only by recent ones stay (nothing is old).
        db.query("DELETE FROM ipamd.audit_log")
        for days, count in ((365, 3), (0, 2)):
            db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, changed_at) "
                     "SELECT '', '10.73.0.2', 'insert', now() + %s * interval '1 day' "
                     "FROM generate_series(1, %s)", (days, count))
        assert db.scalar(prune, ("audit", 5, 3)) == 0
        assert db.scalar(prune, ("audit", 5, 5000)) == 0
        # A clock set behind: a row stamped in the past goes alone; the
        # recent rows before it stay.
        db.query("DELETE FROM ipamd.audit_log")
        for days, count in ((0, 3), (-400, 1), (0, 2)):
            db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, changed_at) "
                     "SELECT '', '10.73.0.2', 'insert', now() + %s * interval '1 day' "
                     "FROM generate_series(1, %s)", (days, count))
        assert db.scalar(prune, ("audit", 5, 5000)) == 1
        assert db.scalar("SELECT count(*) FROM ipamd.audit") == 5
    finally:
        daemon.close()
        db.close()

def test_retention_and_the_sweep_members_never_share_a_lock():
    """Sweep members hold an advisory lock each for their session, the
    retention one per table for a batch: neither is mistaken for the
    other.  A member's lock does not leave a table to "another pruner"
    (member 1, the first instance's sweeper on a new database, once kept
    the audit from ever being pruned), and a batch in flight is not
    counted as a live sweep member."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, config={"retention": {"audit_days": "0",
                                                      "dead_letter_days": "0",
                                                      "request_days": "0"}}).start()
    members, pruner = [], None
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
        connect = lambda: psycopg2.connect(host=db.host, port=db.port, user=db.user,
                                           dbname=db.name)
        for _ in range(3):
            member = connect()
            member.autocommit = True
            with member.cursor() as cur:
                cur.execute("SELECT ipamd.sweep_join('test', '-', 1000)")
                members.append((member, cur.fetchone()[0]))
        ids_ = sorted(m for _, m in members)
        # Ids 1 to 3, the second keys of the retention's three tables.
        assert ids_ == [1, 2, 3], ids_
        db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, changed_at) "
                 "SELECT '', '10.74.0.1', 'insert', now() - interval '10 days' "
                 "FROM generate_series(1, 30)")
        db.query("INSERT INTO ipamd.dead_letter (topic, partition, \"offset\", reason, "
                 "received_at) VALUES ('t', 0, 1, 'r', now() - interval '3 days')")
        db.query("INSERT INTO ipamd.request (id, topic, partition, \"offset\", vrf, "
                 "address, outcome, decided_at) VALUES ('r1', 't', 0, 1, '', "
                 "'10.74.0.1', 'applied', now() - interval '3 days')")
        prune = "SELECT ipamd.retention_prune(%s, %s, %s)"
        # A batch in flight (its transaction still open) ...
        pruner = connect()
        with pruner.cursor() as cur:
            cur.execute(prune, ("audit", 5, 10))
            assert cur.fetchone()[0] == 10
            # ... is no sweep member: the members are the three sessions.
            live = sorted(r[0] for r in db.query(
                "SELECT id FROM ipamd.sweep_live_members()"))
            assert live == ids_, live
        pruner.commit()
        assert db.scalar(prune, ("audit", 5, 5000)) == 20
        assert db.scalar(prune, ("dead_letter", 2, 5000)) == 1
        assert db.scalar(prune, ("request", 2, 5000)) == 1
    finally:
        if pruner is not None:
            pruner.close()
        for member, _ in members:
            member.close()
        daemon.close()
        db.close()


def test_retention_reconnects_when_its_server_turns_read_only():
    """The server turns read-only under the sessions it has (a primary
    fenced or demoted): the retention's prune is refused (SQLSTATE 25006)
    and its connection is made again, as the apply's is, so that
    target_session_attrs can reach the new primary; once the server takes
    writes again, the old rows are pruned."""
    pg = harness.PrivatePostgres().start()
    db = Database(host="127.0.0.1", port=pg.port)
    topics = Topics()
    daemon = Daemon(db, topics, config={"retention": {"audit_days": "5",
                                                      "dead_letter_days": "0",
                                                      "request_days": "0",
                                                      "interval_ms": "1000"}})
    try:
        daemon.start().wait_ready()

        def retention_pid():
            return db.scalar("SELECT pid FROM pg_stat_activity WHERE "
                             "application_name = %s", (RETENTION_APP,))
        wait_until(retention_pid, 30, "the retention's session")
        first = retention_pid()
        db.query("ALTER SYSTEM SET default_transaction_read_only = on")
        db.query("SELECT pg_reload_conf()")
        db.query("SET default_transaction_read_only = off")
        db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, changed_at) "
                 "SELECT '', '10.75.0.1', 'insert', now() - interval '10 days' "
                 "FROM generate_series(1, 20)")
        daemon.wait_log(r"retention: pruning ipamd\.audit failed: .*read-only", timeout=30)
        wait_until(lambda: retention_pid() not in (None, first), 30,
                   "the retention's connection made again")
        db.query("ALTER SYSTEM RESET default_transaction_read_only")
        db.query("SELECT pg_reload_conf()")
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipamd.audit") == 0, 60,
                   "the old rows pruned")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()
        pg.close()


if __name__ == "__main__":
    harness.main(globals())
