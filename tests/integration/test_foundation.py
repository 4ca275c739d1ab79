"""The daemon skeleton against the real PostgreSQL and Kafka: readiness,
notifications, signals, migrations, and waiting for PostgreSQL."""

import collections
import json
import os
import re
import signal
import subprocess
import time

import psycopg2

import harness
from harness import Daemon, Database, Kafka, PrivatePostgres, Topics, wait_until


def schema_dump(db):
    """The schema of a database as text, for comparison (without the random
    key of pg_dump's \\restrict lines)."""
    text = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "-h", db.host, "-p",
         str(db.port), "-U", db.user, db.name],
        check=True, capture_output=True, text=True).stdout
    return "".join(line for line in text.splitlines(True)
                   if not line.startswith(("\\restrict", "\\unrestrict")))


def test_ready_then_sigterm_exits_zero():
    """READY=1 only once connected, migrated and subscribed; SIGTERM exits 0
    with STOPPING=1, leaving the group."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, notify=True).start()
    try:
        daemon.notify.wait_for("READY=1")
        log = daemon.log()
        # READY comes after the three conditions, in that order in the log.
        connected = log.index("postgresql: connected")
        migrated = log.index("schema: applied migration 003_rebuild")
        subscribed = log.index("kafka: subscribed to 3 topics")
        ready = log.index("ready: PostgreSQL connected")
        assert connected < migrated < subscribed < ready, log
        assert db.scalar("SELECT max(version) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        began = time.monotonic()
        status = daemon.stop()
        assert status == 0, "exit status %s\n%s" % (status, daemon.log())
        assert time.monotonic() - began < 15
        texts = daemon.notify.texts()
        assert "STOPPING=1" in texts, texts
        assert texts.index("READY=1") < texts.index("STOPPING=1"), texts
        assert daemon.log_contains(r"kafka: left the group")
        assert daemon.log_contains(r"<6>stopped")
        # Every line carries a journald priority prefix.
        for line in daemon.log().splitlines():
            assert line[:3] in ("<3>", "<4>", "<5>", "<6>", "<7>"), line
    finally:
        daemon.close()
        db.close()


def server_event(event_id, server_id, ip):
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "test",
                       "type": "ipam.server.upserted", "subject": server_id,
                       "data": {"hostname": "h" + server_id, "ip_address": ip}})


def subnet_event(event_id, subnet_id, cidr, pools=()):
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "test",
                       "type": "ipam.subnet.upserted", "subject": subnet_id,
                       "data": {"name": "n" + subnet_id, "cidr": cidr,
                                "static_ip_pools": list(pools)}})


def blocked_apply(db, topics, daemon, kafka):
    """Holds a lock that the next apply waits on, and produces an event so
    that an apply is in flight.  Returns the locking connection."""
    kafka.send(topics.subnets, "1", subnet_event("s1", "1", "10.9.0.0/24",
                                                 ["10.9.0.1-10.9.0.9"]))
    kafka.flush()
    wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 9, 60,
               "the first event to be applied")
    locker = psycopg2.connect(db.conninfo())
    cur = locker.cursor()
    cur.execute("LOCK TABLE ipam_state.server IN ACCESS EXCLUSIVE MODE")
    kafka.send(topics.servers, "5", server_event("e5", "5", "10.9.0.5"))
    kafka.flush()
    wait_until(lambda: db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
        "'ipam-syncd' AND wait_event_type = 'Lock' "
        "AND datname = current_database()"), 60,
        "the apply to wait on the lock")
    return locker


def daemon_sessions(db):
    """The daemon's sessions on the test's database."""
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                     "application_name = 'ipam-syncd' AND datname = current_database()")


def abandoned_apply_rolled_back(db, topics, locker):
    """After the daemon exited with its apply waiting on the test's lock:
    the lock is kept until the server has dropped the daemon's session (it
    checks the client every second), so the apply could not commit, then
    released.  Nothing of the event is applied, no offset of its topic is
    stored."""
    wait_until(lambda: daemon_sessions(db) == 0, 30,
               "the server to drop the exited daemon's session")
    locker.rollback()
    locker.close()
    assert db.scalar("SELECT status FROM ipam WHERE ip_address = '10.9.0.5'") \
        == "available"
    assert db.scalar("SELECT count(*) FROM ipam_state.consumer_offset WHERE "
                     "topic = %s", (topics.servers,)) == 0


def test_second_signal_exits_at_once():
    """While the first signal waits for the apply in flight, a second one
    exits at once.  The abandoned apply rolls back: the test holds the lock
    it waits on until the server has dropped the session, so it cannot
    commit.  After a restart the event is applied exactly once."""
    db, topics, kafka = Database(), Topics(), Kafka()
    # The killed member leaves no goodbye: the group waits for its session
    # to time out before the restarted one gets the partitions.
    fast = {"kafka": {"session.timeout.ms": "6000"}}
    daemon = Daemon(db, topics, config=fast).start()
    try:
        daemon.wait_assigned(1)
        locker = blocked_apply(db, topics, daemon, kafka)
        daemon.signal(signal.SIGINT)
        daemon.wait_log(r"shutdown: waiting for the apply in flight")
        began = time.monotonic()
        daemon.signal(signal.SIGINT)
        status = daemon.proc.wait(10)
        assert time.monotonic() - began < 2
        assert status == 1, status
        assert daemon.log_contains(r"signal 2 again: exiting at once")
        abandoned_apply_rolled_back(db, topics, locker)
        # Restarted, the daemon applies the event exactly once.
        again = Daemon(db, topics, group=daemon.group,
                       config=fast).start().wait_ready()
        wait_until(lambda: db.scalar("SELECT status FROM ipam WHERE "
                                     "ip_address = '10.9.0.5'") == "allocated",
                   60, "the event to be applied after restart")
        status = again.stop()
        assert status == 0, (status, again.log())
        assert db.scalar("SELECT count(*) FROM ipamd.audit WHERE "
                         "ip_address = '10.9.0.5' AND action = 'update'") == 1
        again.close()
    finally:
        daemon.close()
        db.close()


def test_shutdown_is_bounded_when_the_apply_hangs():
    """SIGTERM with an apply stuck on a lock exits 0 once the configured
    shutdown timeout has passed, leaving the apply to be rolled back (the
    test holds its lock until the server has dropped the session)."""
    db, topics, kafka = Database(), Topics(), Kafka()
    daemon = Daemon(db, topics,
                    config={"daemon": {"shutdown_timeout_ms": "1500"}}).start()
    try:
        daemon.wait_assigned(1)
        locker = blocked_apply(db, topics, daemon, kafka)
        began = time.monotonic()
        status = daemon.stop(timeout=20)
        elapsed = time.monotonic() - began
        assert status == 0, (status, daemon.log())
        # The apply may use the timeout but its last quarter, which is
        # kept for leaving the group; then it is abandoned.
        assert 1.1 <= elapsed < 10, elapsed
        assert daemon.log_contains(r"did not finish within 1500 ms")
        abandoned_apply_rolled_back(db, topics, locker)
    finally:
        daemon.close()
        db.close()


def test_migrations_twice_leave_the_same_schema():
    """A second start applies nothing and leaves the schema as it was; two
    instances started together on a fresh database do not race."""
    db, topics = Database(), Topics()
    try:
        first = Daemon(db, topics).start()
        first.wait_ready()
        assert first.stop() == 0
        dump_before = schema_dump(db)
        second = Daemon(db, topics, group=first.group).start()
        second.wait_ready()
        assert second.log_contains(r"schema: at version %d, nothing to apply"
                                   % harness.LATEST_SCHEMA)
        assert not second.log_contains(r"applied migration")
        # The function files ran once; unchanged, they do not run again.
        assert first.log_contains(r"created the functions of 70_apply")
        assert not second.log_contains(r"created the functions")
        assert second.stop() == 0
        assert schema_dump(db) == dump_before
        assert db.scalar("SELECT count(*) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        first.close()
        second.close()

        fresh = Database()
        a = Daemon(fresh, topics).start()
        b = Daemon(fresh, topics, group=a.group).start()
        a.wait_ready()
        b.wait_ready()
        assert fresh.scalar("SELECT count(*) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        applied = [d.log().count("applied migration 001_state") for d in (a, b)]
        assert sorted(applied) == [0, 1], applied
        assert a.stop() == 0 and b.stop() == 0
        assert schema_dump(fresh) == dump_before.replace(db.name, fresh.name)
        a.close()
        b.close()
        fresh.close()
    finally:
        db.close()


def test_scalar_sql_helpers_are_inlined():
    """Every IMMUTABLE or STABLE SQL function of ipamd that is one
    expression (a SELECT without FROM or subqueries) is inlined where it
    is called: a call that is not costs microseconds a row, which a sweep
    pays for each of its targets and a derivation for each of its
    addresses.  PostgreSQL
    does not inline a STRICT one whose body it cannot prove strict (a
    CASE), an IMMUTABLE one whose body is only STABLE, nor one with SET
    clauses or SECURITY DEFINER.  Each is called on the columns of a
    subquery kept apart (OFFSET 0), so that nothing is folded into a
    constant, and EXPLAIN VERBOSE shows the call or its body."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        helpers = db.query(
            "SELECT p.proname, p.prosrc, array_to_string(ARRAY("
            "SELECT format_type(t, NULL) FROM unnest(p.proargtypes) "
            "WITH ORDINALITY AS a(t, n) ORDER BY n), ',') "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "JOIN pg_language l ON l.oid = p.prolang "
            "WHERE n.nspname = 'ipamd' AND l.lanname = 'sql' "
            "AND p.prokind = 'f' AND NOT p.proretset "
            "AND p.provolatile IN ('i', 's') ORDER BY p.proname")
        def top_level(body):
            """The body without what parentheses hold (extract(… FROM …))
            and without IS [NOT] DISTINCT FROM: what is left of FROM is a
            FROM clause."""
            body = re.sub(r"\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b", " ", body,
                          flags=re.I)
            while True:
                flat = re.sub(r"\([^()]*\)", " ", body)
                if flat == body:
                    return body
                body = flat

        # A helper without arguments is folded into a constant, inlined or
        # not: its plan shows no call either way.
        one_expression = [
            (name, types.split(","))
            for name, body, types in helpers
            if types and re.fullmatch(r"\s*SELECT\s.*", body, re.S | re.I)
            and not re.search(r"\bFROM\b", top_level(body), re.I)
            and not re.search(r"\(\s*SELECT\b", body, re.I)
            # Once a request, and STRICT so that a NULL id finds no subnet
            # rather than the first of api_subnet_items(NULL, NULL).
            and name != "api_subnet"]
        names = [name for name, _ in one_expression]
        # The rule covers the helpers the hot paths call.
        for name in ("first_addr", "last_addr", "sweep_edge", "api_host",
                     "audit_image", "id_key"):
            assert name in names, (name, names)
        not_inlined = []
        for name, types in one_expression:
            columns = ", ".join("NULL::%s AS a%d" % (t, i)
                                for i, t in enumerate(types))
            arguments = ", ".join("s.a%d" % i for i in range(len(types)))
            plan = "\n".join(row[0] for row in db.query(
                "EXPLAIN (VERBOSE, COSTS OFF) SELECT ipamd.%s(%s) "
                "FROM (SELECT %s OFFSET 0) s" % (name, arguments, columns)))
            if re.search(r"\bipamd\.%s\(" % name, plan):
                not_inlined.append((name, plan))
        assert not not_inlined, not_inlined
    finally:
        daemon.close()
        db.close()


def test_a_small_batch_reads_only_what_it_names():
    """A batch of a few server events finds its servers by the primary
    key, whatever the planner guesses of a batch's records (100): with a
    few thousand servers it hashed the whole table for each batch, more
    than the rest of a small batch's apply (docs/BENCHMARKS.md, row 4).
    Subnets and marks alike (an operator's reservation is a batch of one
    mark).  And a batch without servers, subnets or marks runs no
    statement of theirs.  The plans are those of every statement inside
    ipamd.apply_batch, as auto_explain gives them."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    conn = None
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
        db.query("INSERT INTO ipam_state.server (id, version, hostname, "
                 "ip_address, source_topic, source_partition, source_offset) "
                 "SELECT 's' || i, 1, 'h' || i, '10.9.0.0'::inet + i, 't', 0, i "
                 "FROM generate_series(1, 5000) i")
        # Subnets and marks deleted long ago: rows that only their own
        # entity stage reads.
        db.query("INSERT INTO ipam_state.subnet (id, version, deleted, "
                 "source_topic, source_partition, source_offset) "
                 "SELECT 'n' || i, 1, true, 't', 0, i "
                 "FROM generate_series(1, 5000) i")
        db.query("INSERT INTO ipam_state.mark (id, version, deleted, "
                 "source_topic, source_partition, source_offset) "
                 "SELECT 'm' || i, 1, true, 't', 0, i "
                 "FROM generate_series(1, 5000) i")
        for table in ("server", "subnet", "mark"):
            db.query("ANALYZE ipam_state." + table)
        conn = db._connect(db.name)
        conn.notices = collections.deque(maxlen=100000)
        cur = conn.cursor()
        cur.execute("LOAD 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on",
                        "auto_explain.log_level = notice",
                        "client_min_messages = notice"):
            cur.execute("SET " + setting)
        conn.commit()

        def apply(batch):
            """The batch's result and the plans of its statements; rolled
            back."""
            conn.notices.clear()
            cur.execute("SELECT ipamd.apply_batch(%s)", (json.dumps(batch),))
            result = cur.fetchone()[0]
            conn.rollback()
            return result, "\n".join(conn.notices)

        def move(seq, server, ip):
            return {"seq": seq, "id": server, "topic": "t", "part": 0,
                    "off": 10000 + seq, "gv": 2, "lo": [], "reset": False,
                    "op": "upsert", "v": 2, "lsn": None, "vrf": "", "ip": ip,
                    "hostname": server, "mac": None, "device_type": None,
                    "manufacture": None, "keep": []}

        result, plans = apply({"group": "g", "servers": [
            move(1, "s17", "10.9.100.1"), move(2, "s18", "10.9.100.2")]})
        assert result["entities"]["server"] == [2, 0], result
        assert "Index Scan using server_pkey on server" in plans, plans
        assert not re.search(r"Seq Scan on server\b", plans), plans
        # An entity function reads its records with this column list.
        assert "x(seq bigint, id text" in plans, plans
        # A subnet and a mark: their entity stages probe their keys too.
        subnet = {"seq": 1, "id": "n17", "topic": "t", "part": 0, "off": 20001,
                  "gv": 2, "lo": [], "reset": False, "op": "upsert", "v": 2,
                  "lsn": None, "vrf": "", "name": "n17", "cidr": "10.9.200.0/24",
                  "pool_first": [], "pool_last": [], "ping": True, "keep": []}
        mark = {"seq": 2, "id": "m17", "topic": "t", "part": 0, "off": 20002,
                "gv": 2, "lo": [], "reset": False, "op": "upsert", "v": 2,
                "lsn": None, "vrf": "", "address": "10.9.200.7",
                "status": "reserved", "description": "d", "reason": None,
                "keep": []}
        result, plans = apply({"group": "g", "subnets": [subnet],
                               "marks": [mark]})
        assert result["entities"]["subnet"] == [1, 0], result
        assert result["entities"]["mark"] == [1, 0], result
        entity_plans = "\n".join(p for p in plans.split("NOTICE:  ")
                                 if "x(seq bigint, id text" in p)
        for table in ("subnet", "mark"):
            assert "Index Scan using %s_pkey on %s" % (table, table) \
                in entity_plans, entity_plans
            assert not re.search(r"Seq Scan on %s\b" % table, entity_plans), \
                entity_plans
        result, plans = apply({"group": "g"})
        assert result["applied"] == 0, result
        assert "x(seq bigint, id text" not in plans, plans
        assert "UPDATE ipamd.request" not in plans, plans
    finally:
        if conn is not None:
            conn.close()
        daemon.close()
        db.close()


def test_a_migration_waiting_for_a_lock_holds_no_one_up_for_long():
    """A migration that needs a table another session holds (a long
    report, a pg_dump) waits 5 s for it, then gives up and tries again:
    meanwhile other sessions' statements on that table, queued behind
    the migration's ALTER, go on within seconds instead of waiting for
    the report.  Once the table is free the migrations end and the
    daemon is ready."""
    db, topics = Database(), Topics()
    db.migrate_to(15)   # schema 16 alters consumer_offset
    reader = psycopg2.connect(host=db.host, port=db.port, user=db.user,
                              dbname=db.name)
    reader.cursor().execute("SELECT count(*) FROM ipam_state.consumer_offset")
    daemon = Daemon(db, topics).start()
    other = None
    try:
        daemon.wait_log(r"schema: connection lost during migrations "
                        r"\(migration 016_offset_fingerprint: .*lock timeout.*"
                        r"another session holds a lock", timeout=60)
        other = psycopg2.connect(host=db.host, port=db.port, user=db.user,
                                 dbname=db.name)
        other.autocommit = True
        cur = other.cursor()
        cur.execute("SET statement_timeout = '20s'")
        for _ in range(3):
            # Behind the retried ALTER at worst 5 s; never the reader's time.
            cur.execute("SELECT count(*) FROM ipam_state.consumer_offset")
            assert cur.fetchone()[0] == 0
            time.sleep(1)
        assert db.scalar("SELECT max(version) FROM public.ipam_schema_migration") == 15
        reader.rollback()
        daemon.wait_ready(timeout=60)
        assert db.scalar("SELECT max(version) FROM public.ipam_schema_migration") == \
            harness.LATEST_SCHEMA
        assert daemon.stop() == 0
    finally:
        reader.close()
        if other:
            other.close()
        daemon.close()
        db.close()


def test_newer_database_is_refused():
    """A database whose schema is newer than the binary is refused clearly."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
        db.query("INSERT INTO ipam_schema_migration (version, name) "
                 "VALUES (99, '099_future')")
        again = Daemon(db, topics, group=daemon.group).start()
        status = again.proc.wait(30)
        assert status == 69, status     # EX_UNAVAILABLE: restarting cannot help
        assert again.log_contains(
            r"the database schema is at version 99, newer than this ipam-syncd "
            r"knows \(%d\): upgrade ipam-syncd" % harness.LATEST_SCHEMA), again.log()
        again.close()
    finally:
        daemon.close()
        db.close()


def function_release():
    """The release schema/functions/RELEASE gives the function files."""
    with open(os.path.join(harness.SCHEMA_DIR, "functions", "RELEASE")) as f:
        lines = [l for l in f.read().splitlines() if l and l[0] != "#"]
    return int(lines[0].split()[0])


def functions_digest(db):
    """A digest of the definitions of ipamd's functions."""
    return db.scalar("SELECT md5(string_agg(pg_get_functiondef(p.oid), '' "
                     "ORDER BY p.oid)) FROM pg_proc p JOIN pg_namespace n "
                     "ON n.oid = p.pronamespace WHERE n.nspname = 'ipamd' "
                     "AND p.prokind IN ('f', 'p')")


def test_older_function_release_is_refused():
    """The function files of a newer release are never replaced by an older
    ipam-syncd's at the same schema version: it refuses to start, as on a
    newer schema, and leaves them as they are."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    ours = function_release()
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
        # Every file ran, and its record holds this release.
        assert db.query("SELECT DISTINCT release FROM ipam_schema_function") \
            == [(ours,)]
        # A newer release wrote 70_apply (another text), the others
        # unchanged.
        db.query("UPDATE ipam_schema_function SET release = %d, "
                 "digest = 'from-a-newer-one' WHERE name = '70_apply'"
                 % (ours + 1))
        records = db.query("SELECT name, digest, release, applied_at "
                           "FROM ipam_schema_function ORDER BY name")
        functions = functions_digest(db)
        older = Daemon(db, topics, group=daemon.group).start()
        status = older.proc.wait(30)
        assert status == 69, status     # EX_UNAVAILABLE, as a newer schema
        assert older.log_contains(
            r"the database's functions are of release %d, newer than this "
            r"ipam-syncd's \(%d\): upgrade ipam-syncd" % (ours + 1, ours)), \
            older.log()
        assert not older.log_contains(r"created the functions")
        assert db.query("SELECT name, digest, release, applied_at "
                        "FROM ipam_schema_function ORDER BY name") == records
        assert functions_digest(db) == functions
        older.close()
        # A release behind ours is replaced: the file runs again and
        # records this release.
        db.query("UPDATE ipam_schema_function SET release = %d, "
                 "digest = 'from-an-older-one' WHERE name = '70_apply'"
                 % (ours - 1))
        newer = Daemon(db, topics, group=daemon.group).start()
        newer.wait_ready()
        assert newer.log_contains(r"created the functions of 70_apply")
        assert not newer.log_contains(r"created the functions of 50_derive")
        assert newer.stop() == 0
        assert db.query("SELECT DISTINCT release FROM ipam_schema_function") \
            == [(ours,)]
        newer.close()
    finally:
        daemon.close()
        db.close()


def test_database_not_in_utf8_is_refused():
    """A database in another encoding is refused before anything is made
    in it: its bytes are not the UTF-8 ones ids are ordered by."""
    db, topics = Database(), Topics()
    try:
        admin = db._connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE "%s"' % db.name)
            cur.execute('CREATE DATABASE "%s" ENCODING \'LATIN1\' '
                        'LC_COLLATE \'C\' LC_CTYPE \'C\' TEMPLATE template0' % db.name)
        admin.close()
        daemon = Daemon(db, topics).start()
        status = daemon.proc.wait(30)
        assert status == 69, status     # EX_UNAVAILABLE: restarting cannot help
        assert daemon.log_contains(
            r'schema: database "%s" is encoded LATIN1; ipam-syncd needs UTF8' % db.name), \
            daemon.log()
        daemon.close()
        assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ipam%%'") == 0
        assert db.scalar("SELECT to_regclass('public.ipam_schema_migration')") is None
    finally:
        db.close()


def test_waits_for_postgresql_then_becomes_ready():
    """Started while PostgreSQL is down, the daemon retries with backoff and
    becomes ready once it comes up."""
    pg = PrivatePostgres()
    topics = Topics()
    daemon = None
    try:
        pg.start()
        db = Database(host="127.0.0.1", port=pg.port)
        pg.stop()
        daemon = Daemon(db, topics, notify=True).start()
        daemon.wait_log(r"postgresql: .*retrying in \d+ ms")
        time.sleep(1.5)
        assert daemon.proc.poll() is None, daemon.log()
        retries = daemon.log().count("retrying in")
        assert retries >= 2, daemon.log()
        assert "READY=1" not in daemon.notify.texts()
        pg.start()
        daemon.notify.wait_for("READY=1", timeout=30)
        assert db.scalar("SELECT max(version) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        assert daemon.stop() == 0
    finally:
        if daemon:
            daemon.close()
        pg.close()


if __name__ == "__main__":
    harness.main(globals())
