"""Order, versions and poison messages end to end: stale events said and
counted, a recreated topic and added partitions reported, a message with
binary headers kept whole, a database that refuses every apply made not
ready (and the events kept), one audit image shape for apply and rebuild.
The real binary against the real PostgreSQL and Kafka."""

import base64
import json
import re
import time

import harness
from harness import Daemon, Database, Kafka, Topics, wait_until
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from test_property import RebuildDaemon
from test_sync import Run, event

IMAGE_KEYS = {"subnet_id", "status", "ip_type", "server_id", "hostname",
              "mac_address", "platform", "manufacturer", "description"}


def metric(daemon, name, labels=""):
    """One sample of the daemon's /metrics, as a number (None: absent)."""
    status, body = daemon.http_get("/metrics")
    assert status == 200, body
    pattern = r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels))
    found = re.search(pattern, body, re.M)
    return float(found.group(1)) if found else None


def lags(daemon):
    """The lag of every partition, from the daemon's /metrics."""
    status, body = daemon.http_get("/metrics")
    assert status == 200, body
    return [float(v) for v in re.findall(
        r"^ipam_syncd_consumer_lag_messages\{[^}]*\} (\S+)$", body, re.M)]


def admin():
    return AdminClient({"bootstrap.servers": harness.bootstrap()})


def test_stale_events_are_logged_and_counted():
    """A versioned event no newer than the stored one changes nothing, and
    says so: a log line with the key and both versions, a counter per
    topic.  A Kafka tombstone forgets the version: a lower one applies."""
    run = Run()
    try:
        run.subnet("1", "127.92.0.0/24", ["127.92.0.1-127.92.0.3"], 1)
        run.server("90", "127.92.0.1", 12)
        run.server("90", "127.92.0.2", 7)          # stale: 7 <= 12
        run.settle()
        assert run.row("127.92.0.1")["server_id"] == "90"
        assert run.row("127.92.0.2")["status"] == "available"
        # Stale against the stored version, or against the one before it
        # in the same batch: either way the log names both.
        run.daemon.wait_log(r"stale: server 90 version 7 \(%s\[0\]@1\) "
                            r"changes nothing: version 12 (is stored|came "
                            r"before it)" % re.escape(run.topics.servers))
        labels = '{topic="%s"}' % run.topics.servers
        assert metric(run.daemon, "ipam_syncd_stale_events_total", labels) == 1

        # Issue case 1: tombstone, then a lower version: it applies.
        run.send(run.topics.servers, "90", None)
        run.server("90", "127.92.0.2", 1)
        run.settle()
        assert run.row("127.92.0.1")["status"] == "available"
        assert run.row("127.92.0.2")["server_id"] == "90"
        assert metric(run.daemon, "ipam_syncd_stale_events_total", labels) == 1
    finally:
        run.close()


def test_unversioned_events_follow_kafka_order():
    """Issue case 2: an event without a version applies in Kafka order; its
    offset is no version.  Server 7 arrives ten times on one topic (offsets
    0-9), then once on a second server topic at offset 0: that last event
    is the newest and wins."""
    db = Database()
    topics = Topics()
    extra = topics.prefix + ".servers2"
    client = admin()
    client.create_topics([NewTopic(extra, num_partitions=1,
                                   replication_factor=1)])[extra].result(timeout=30)
    kafka = Kafka()
    daemon = Daemon(db, topics, config={"consumer": {
        "topics": topics.config_value() + ", %s:server:cloudevents" % extra}})
    try:
        daemon.start().wait_ready()
        kafka.send(topics.subnets, "1", event(
            "subnet.upserted", "1", {"name": "n", "cidr": "127.93.0.0/24",
                                     "static_ip_pools": []}))
        for i in range(10):
            kafka.send(topics.servers, "7", event(
                "server.upserted", "7", {"hostname": "a%d" % i,
                                         "ip_address": "127.93.0.%d" % (i + 1)},
                event_id="a%d" % i))
        kafka.flush()
        harness.wait_caught_up(db, daemon.group, 11)
        kafka.send(extra, "7", event("server.upserted", "7", {
            "hostname": "b", "ip_address": "127.93.0.20"}, event_id="b"))
        kafka.flush()
        harness.wait_caught_up(db, daemon.group, 12)
        rows = db.query("SELECT host(ip_address), hostname FROM ipam")
        assert rows == [("127.93.0.20", "b")], rows
        assert db.scalar("SELECT version FROM ipam_state.server "
                         "WHERE id = '7'") is None
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def recreate(topic):
    """Deletes a topic and makes it again, empty."""
    client = admin()
    client.delete_topics([topic])[topic].result(timeout=30)
    wait_until(lambda: topic not in client.list_topics(timeout=10).topics,
               30, "the topic to be gone")
    wait_until(lambda: _create(client, topic), 60, "the topic made again")


def test_recreated_topic_is_reported_not_skipped():
    """Issue case 9: 100 events committed, the topic deleted and made again,
    50 new events: the stored offset lies beyond the new log.  The daemon
    says so (log, /readyz, a counter), skips nothing, and a rebuild applies
    what the topic holds now."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.94.0.0/24", ["127.94.0.1-127.94.0.200"], None)
        for i in range(100):
            run.server("old-%d" % i, "127.94.0.%d" % (i + 1), None)
        run.settle()
        assert run.count("status = 'allocated'") == 100

        servers = run.topics.servers
        recreate(servers)
        for i in range(50):
            run.kafka.send(servers, "new-%d" % i,
                           event("server.upserted", "new-%d" % i,
                                 {"hostname": "new-%d" % i,
                                  "ip_address": "127.94.0.%d" % (101 + i)}))
        run.kafka.flush()
        run.daemon.wait_log(r"kafka: %s\[0\]: the stored offset 100 is "
                            r"outside the partition's log" % re.escape(servers),
                            timeout=90)
        status, body = run.daemon.http_get("/readyz")
        assert status == 503 and "outside the partition's log" in body, body
        assert metric(run.daemon, "ipam_syncd_offsets_out_of_range_total") == 1
        skipped = metric(run.daemon, "ipam_syncd_messages_total",
                         '{topic="%s",result="skipped"}' % servers)
        assert skipped == 0, skipped
        assert run.count("hostname LIKE 'new-%'") == 0
        assert run.daemon.stop() == 0

        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert run.count("hostname LIKE 'new-%'") == 50
        assert run.count("hostname LIKE 'old-%'") == 0
        wait_until(lambda: rebuild.http_get("/readyz")[0] == 200, 30,
                   "the rebuilt daemon to be ready")
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_topic_made_again_with_as_many_records_is_reported_not_skipped():
    """100 events committed; the topic deleted and made again, and 120 new
    events in it before the daemon starts again: the stored offset lies
    inside the new log, but the record before it is not the one applied.
    The daemon says so (log, /readyz, the counter) and skips nothing; a
    restart on the same topic checks that record and goes on; deleting
    the partition's row applies the new topic from its start."""
    run = Run()
    again = None
    try:
        run.subnet("1", "127.93.1.0/24", ["127.93.1.1-127.93.1.250"], None)
        for i in range(100):
            run.server("old-%d" % i, "127.93.1.%d" % (i + 1), None)
        run.settle()
        servers = run.topics.servers
        assert run.db.scalar(
            "SELECT last_fingerprint IS NOT NULL FROM ipam_state.consumer_offset "
            "WHERE topic = %s", (servers,))
        assert run.daemon.stop() == 0
        # The same topic: the record before the stored offset is known again.
        again = Daemon(run.db, run.topics, group=run.daemon.group).start()
        again.wait_ready()
        run.server("old-100", "127.93.1.101", None)
        run.kafka.flush()
        wait_until(lambda: run.row("127.93.1.101") is not None
                   and run.row("127.93.1.101")["server_id"] == "old-100",
                   60, "the next event applied")
        assert metric(again, "ipam_syncd_offsets_out_of_range_total") == 0
        assert again.stop() == 0
        again.close()
        again = None

        recreate(servers)
        for i in range(120):
            run.kafka.send(servers, "new-%d" % i,
                           event("server.upserted", "new-%d" % i,
                                 {"hostname": "new-%d" % i,
                                  "ip_address": "127.93.1.%d" % (121 + i)}))
        run.kafka.flush()
        again = Daemon(run.db, run.topics, group=run.daemon.group).start()
        again.wait_log(r"kafka: %s\[0\]: the record before the stored offset "
                       r"101 is not the one applied \(another key or value at "
                       r"offset 100\)" % re.escape(servers), timeout=90)
        wait_until(lambda: again.http_get("/readyz") == (
            503, "%s[0]: the record before the stored offset is not the one "
            "applied (the topic was made again; see the log)\n" % servers), 30,
            "/readyz to name the topic made again")
        assert metric(again, "ipam_syncd_offsets_out_of_range_total") == 1
        skipped = metric(again, "ipam_syncd_messages_total",
                         '{topic="%s",result="skipped"}' % servers)
        assert not skipped, skipped
        assert run.count("hostname LIKE 'new-%'") == 0
        assert run.db.scalar("SELECT next_offset FROM ipam_state.consumer_offset "
                             "WHERE topic = %s", (servers,)) == 101
        assert again.stop() == 0
        again.close()

        run.db.query("DELETE FROM ipam_state.consumer_offset WHERE topic = %s",
                     (servers,))
        again = Daemon(run.db, run.topics, group=run.daemon.group).start()
        wait_until(lambda: run.count("hostname LIKE 'new-%'") == 120, 90,
                   "the new topic applied from its start")
        assert again.stop() == 0
    finally:
        if again:
            again.close()
        run.close()


def delete_records(topic, partition, before):
    """Deletes a partition's records before an offset, as retention does
    (Kafka's DeleteRecords request, version 2, to the single broker, which
    leads every partition here); confluent-kafka 1.7 has no call for it.
    Returns the partition's new log start."""
    import socket
    import struct

    def uvarint(n):
        out = b""
        while True:
            byte, n = n & 0x7f, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    name = topic.encode()
    body = (struct.pack(">hhi", 21, 2, 7) + struct.pack(">h", 4) + b"test" + b"\0"
            + uvarint(2) + uvarint(len(name) + 1) + name
            + uvarint(2) + struct.pack(">iq", partition, before) + b"\0" + b"\0"
            + struct.pack(">i", 30000) + b"\0")
    host, port = bootstrap_address()
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", read_exactly(conn, 4))[0]
        reply = read_exactly(conn, size)
    # correlation id, tagged fields, throttle, 1 topic, its name, 1 partition.
    at = 4 + 1 + 4 + 1
    at += 1 + len(name) + 1
    index, low, error = struct.unpack(">iqh", reply[at:at + 14])
    assert index == partition and error == 0, (index, low, error)
    return low


def bootstrap_address():
    host, port = harness.bootstrap().split(",")[0].rsplit(":", 1)
    return host, int(port)


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def test_stored_offset_whose_record_left_the_log_goes_on():
    """A partition with a stored offset reads the record before it again
    before it starts; when retention has deleted that record (the log
    starts at the stored offset), it goes on from the stored offset
    unchecked: not an offset outside the log, nothing skipped."""
    run = Run()
    again = None
    try:
        run.subnet("1", "127.93.2.0/24", ["127.93.2.1-127.93.2.50"], None)
        for i in range(20):
            run.server("s-%d" % i, "127.93.2.%d" % (i + 1), None)
        run.settle()
        assert run.daemon.stop() == 0
        servers = run.topics.servers
        assert delete_records(servers, 0, 20) == 20
        again = Daemon(run.db, run.topics, group=run.daemon.group).start()
        again.wait_ready()
        again.wait_log(r"kafka: %s\[0\]: the record before the stored offset 20 "
                       r"is not checked: outside the log" % re.escape(servers),
                       timeout=60)
        run.server("s-20", "127.93.2.21", None)
        run.kafka.flush()
        wait_until(lambda: run.row("127.93.2.21") is not None
                   and run.row("127.93.2.21")["server_id"] == "s-20",
                   60, "the next event applied")
        assert metric(again, "ipam_syncd_offsets_out_of_range_total") == 0
        assert again.http_get("/readyz")[0] == 200
        assert again.stop() == 0
    finally:
        if again:
            again.close()
        run.close()


def test_dead_letters_of_a_recreated_topic_are_kept():
    """A topic deleted and made again counts its offsets from 0 again: a
    message refused there at the offset of an old dead letter is kept as
    well, with its own bytes and reason, and a message read again (a
    second rebuild) is still kept once."""
    run = Run()
    rebuild = None
    try:
        servers = run.topics.servers
        run.send(servers, "7", b"old bytes, not JSON")
        run.server("7", "127.93.0.7", None)
        run.settle()
        letters = "SELECT \"offset\", value, reason FROM ipamd.dead_letter " \
                  "WHERE topic = %s ORDER BY id"
        assert [(o, bytes(v)) for o, v, _ in run.db.query(letters, (servers,))] == \
            [(0, b"old bytes, not JSON")]
        assert run.daemon.stop() == 0

        recreate(servers)
        run.kafka.send(servers, "8", b'{"new bytes": "not an event"}')
        for sid in ("8", "9"):
            run.kafka.send(servers, sid, event("server.upserted", sid, {
                "hostname": "new-" + sid, "ip_address": "127.93.0." + sid}))
        run.kafka.flush()
        for rebuilt in (1, 2):
            rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                    extra_args=["--rebuild"]).start()
            rebuild.wait_log(r"rebuild: swapped in", timeout=120)
            assert rebuild.stop() == 0
            rebuild.close()
            rebuild = None
            found = run.db.query(letters, (servers,))
            assert [(o, bytes(v)) for o, v, _ in found] == [
                (0, b"old bytes, not JSON"), (0, b'{"new bytes": "not an event"}')], \
                (rebuilt, found)
            assert "is not a CloudEvents attribute" in found[1][2], found
        assert run.db.scalar("SELECT string_agg(hostname, ',' ORDER BY id) FROM "
                             "ipam_state.server") == "new-8,new-9"
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_requests_of_a_recreated_marks_topic_name_only_their_own_requesters():
    """A marks topic deleted and made again counts its offsets from 0
    again, and its new records take the places of the operator requests
    the old topic held.  Applied over the state (the partition's stored
    offset deleted, as docs/EVENTS.md says), a plain mark there is
    audited with no requester, and a new request with its own requester
    once — not the old request's, not both; the old requests keep their
    outcomes."""
    run = Run()
    try:
        marks = run.topics.marks
        run.subnet("1", "127.96.0.0/24", [], None)
        # Applied first: a subnet in the requests' batch touches their
        # addresses too, and the audit row of an address touched twice in
        # a batch names the event read last, which may be the subnet's
        # (the topics' records arrive in no fixed order).
        run.settle()

        def request(rid, who, address):
            body = {"specversion": "1.0", "id": rid, "source": "/api/v1",
                    "type": "ipam.mark.set", "subject": address,
                    "ipamrequester": who,
                    "data": {"address": address, "status": "reserved",
                             "description": "by " + who}}
            run.send(marks, address, json.dumps(body))

        request("old-1", "write:alice", "127.96.0.10")      # marks@0
        request("old-2", "write:alice", "127.96.0.11")      # marks@1
        run.settle()
        assert run.daemon.stop() == 0

        recreate(marks)
        run.db.query("DELETE FROM ipam_state.consumer_offset "
                       "WHERE topic = %s", (marks,))
        run.kafka.send(marks, "127.96.0.20", event(              # marks@0
            "mark.set", "127.96.0.20",
            {"address": "127.96.0.20", "status": "quarantine"}))
        run.kafka.flush()
        request("new-1", "write:bob", "127.96.0.21")        # marks@1
        run.kafka.flush()
        run.daemon.start()
        wait_until(lambda: run.db.scalar(
            "SELECT next_offset FROM ipam_state.consumer_offset "
            "WHERE topic = %s", (marks,)) == 2, 60, "the new marks applied")

        audit = run.db.query(
            "SELECT host(ip_address), action, source_offset, requested_by "
            "FROM ipamd.audit WHERE source_topic = %s "
            "ORDER BY host(ip_address), id", (marks,))
        assert audit == [
            ("127.96.0.10", "insert", 0, "write:alice"),
            ("127.96.0.11", "insert", 1, "write:alice"),
            ("127.96.0.20", "insert", 0, None),
            ("127.96.0.21", "insert", 1, "write:bob")], audit
        assert run.row("127.96.0.20")["status"] == "quarantine"
        assert run.row("127.96.0.21")["description"] == "by write:bob"
        outcomes = run.db.query(
            "SELECT id, outcome, requested_by, \"offset\" FROM ipamd.request "
            "ORDER BY id")
        assert outcomes == [("new-1", "applied", "write:bob", 1),
                            ("old-1", "applied", "write:alice", None),
                            ("old-2", "applied", "write:alice", None)], outcomes
    finally:
        run.close()


def _create(client, topic):
    """Creates a topic; False while the broker still deletes the old one."""
    try:
        client.create_topics([NewTopic(topic, num_partitions=1,
                                       replication_factor=1)])[topic].result(timeout=30)
        return True
    except Exception:
        return False


def test_added_partitions_are_reported():
    """Issue case 2: partitions added to a topic move keys; the daemon says
    what that means for producers without versions."""
    run = Run()
    try:
        run.server("1", "127.95.0.1", None)
        run.settle()
        servers = run.topics.servers
        client = admin()
        client.create_partitions([NewPartitions(servers, 3)])[servers].result(
            timeout=30)
        run.daemon.wait_log(r"kafka: %s\[[12]\] is new to a topic whose other "
                            r"partitions were consumed" % re.escape(servers),
                            timeout=60)
    finally:
        run.close()


def test_binary_headers_are_kept_whole():
    """Issue cases 7 and 10: a bad message whose header values hold NUL
    bytes (a binary integer) becomes a dead letter with every header kept
    byte-exact and in order; the stream goes on."""
    run = Run()
    try:
        headers = [("ce_note", b"\x00\x00\x00\x01"), ("trace", b"abc"),
                   ("trace", b"\xff\xfe")]
        headers += [("h%03d" % i, str(i).encode()) for i in range(97)]
        run.send(run.topics.servers, "1", b"{not json", headers=headers)
        run.server("2", "127.96.0.1", 1)
        run.settle()
        rows = run.db.query("SELECT headers, reason FROM ipamd.dead_letter")
        assert len(rows) == 1, rows
        stored, reason = rows[0]
        assert "JSON" in reason or "json" in reason, reason
        assert len(stored) == len(headers), len(stored)
        for (name, value), kept in zip(headers, stored):
            assert kept["key"] == name, kept
            if "base64" in kept:
                assert base64.b64decode(kept["base64"]) == value, kept
            else:
                assert kept["value"].encode() == value, kept
        assert run.db.scalar("SELECT count(*) FROM ipam_state.server") == 1
    finally:
        run.close()


def owning_role(db):
    """A login role of the test's own that owns the database (so that a
    privilege can be taken from the daemon): (role, conninfo)."""
    role = harness.unique("ipamrole")
    db.query('CREATE ROLE "%s" LOGIN' % role)
    db.query('ALTER DATABASE "%s" OWNER TO "%s"' % (db.name, role))
    db.query('GRANT CREATE ON SCHEMA public TO "%s"' % role)
    return role, "host=%s port=%d user=%s dbname=%s" % (db.host, db.port,
                                                         role, db.name)


def refuse_servers(db, role, daemon, kafka, topics, net, count):
    """A subnet net.0/24 applied, then the role's writes to the servers
    revoked and count servers in it sent: waits until the daemon says
    PostgreSQL refuses their batch."""
    kafka.send(topics.subnets, "1", event(
        "subnet.upserted", "1", {"name": "n", "cidr": net + ".0/24",
                                 "static_ip_pools": ["%s.1-%s.9" % (net, net)]}, 1))
    kafka.flush()
    harness.wait_caught_up(db, daemon.group, 1)
    db.query('REVOKE INSERT, UPDATE ON ipam_state.server FROM "%s"' % role)
    for i in range(count):
        kafka.send(topics.servers, str(i), event(
            "server.upserted", str(i), {"hostname": "h%d" % i,
                                        "ip_address": "%s.%d" % (net, i + 1)}, 1))
    kafka.flush()
    daemon.wait_log(r"apply: PostgreSQL refuses the batch: permission "
                    r"denied", timeout=60)


def drop_role(db, role):
    server = db._connect("postgres")
    server.autocommit = True
    with server.cursor() as cur:
        cur.execute('DROP ROLE IF EXISTS "%s"' % role)
    server.close()


def test_database_refusing_every_apply_stops_and_keeps_the_events():
    """Issue case 7: when the database refuses every apply for a reason no
    event causes (here a revoked privilege), the daemon stops consuming,
    says why in one line, turns not ready, dead-letters nothing, keeps its
    watchdog pings, and applies the events once the privilege is back."""
    db = Database()
    role, conninfo = owning_role(db)
    topics = Topics()
    kafka = Kafka()
    # A watchdog of 3 s: a batch stuck for longer withholds the ping.
    daemon = Daemon(db, topics, config={"postgresql": {"conninfo": conninfo}},
                    notify=True, env={"WATCHDOG_USEC": "3000000"})
    try:
        daemon.start().wait_ready()
        refuse_servers(db, role, daemon, kafka, topics, "127.97.0", 5)
        assert daemon.log_contains(r"apply: PostgreSQL refuses the batch: "
                                   r"permission denied for table server "
                                   r".*consuming stops")
        status, body = daemon.http_get("/readyz")
        assert status == 503 and "permission denied" in body, body
        assert metric(daemon, "ipam_syncd_apply_failing") == 1
        # Fetching is paused: the lag gauges stand still, and say so.
        wait_until(lambda: metric(daemon, "ipam_syncd_consumer_lag_stale") == 1,
                   30, "the lag marked stale")
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        assert len(re.findall(r"refuses the batch", daemon.log())) == 1
        # Not stuck: the loop runs and retries, so the watchdog pings go
        # on (a ping is due every 1.5 s) and systemd does not restart a
        # daemon that a restart would not help.
        pings = daemon.notify.texts().count("WATCHDOG=1")
        wait_until(lambda: daemon.notify.texts().count("WATCHDOG=1") >= pings + 1,
                   10, "a watchdog ping")
        assert not daemon.log_contains(r"withholding the watchdog ping")

        db.query('GRANT INSERT, UPDATE ON ipam_state.server TO "%s"' % role)
        harness.wait_caught_up(db, daemon.group, 6, timeout=90)
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == 5
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        daemon.wait_log(r"apply: PostgreSQL accepts the batches again")
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "ready again")
        assert metric(daemon, "ipam_syncd_apply_failing") == 0
        wait_until(lambda: metric(daemon, "ipam_syncd_consumer_lag_stale") == 0,
                   30, "the lag fresh again")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()
        drop_role(db, role)


def test_a_serialization_failure_that_keeps_coming_turns_not_ready():
    """A serialization failure is retried as a passing clash; one that
    comes back every time (here a trigger that raises it for one server)
    turns the daemon not ready after five in a row, naming it, while it
    goes on retrying; once the cause is gone the batch applies, nothing
    dead-lettered, and it is ready again."""
    run = Run()
    try:
        run.subnet("1", "127.91.0.0/24", [], 1)
        run.settle()
        run.db.query("""
            CREATE FUNCTION public.clash() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.hostname = 'stuck' THEN
                    RAISE EXCEPTION 'stuck clashes' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER clash BEFORE INSERT OR UPDATE ON ipam_state.server
                FOR EACH ROW EXECUTE FUNCTION public.clash();""")
        run.server("1", "127.91.0.1", 1, hostname="stuck")
        run.kafka.flush()
        run.daemon.wait_log(r"stuck clashes .*; retrying", timeout=60)
        assert run.daemon.http_get("/readyz")[0] == 200
        run.daemon.wait_log(r"apply: PostgreSQL refuses the batch: .*stuck "
                            r"clashes.*\(5 times in a row\)", timeout=90)
        status, body = run.daemon.http_get("/readyz")
        assert status == 503 and "stuck clashes" in body, body
        assert metric(run.daemon, "ipam_syncd_apply_failing") == 1
        run.db.query("DROP TRIGGER clash ON ipam_state.server")
        run.settle(timeout=90)
        assert run.row("127.91.0.1")["hostname"] == "stuck"
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        wait_until(lambda: run.daemon.http_get("/readyz")[0] == 200, 30,
                   "ready again")
        assert metric(run.daemon, "ipam_syncd_apply_failing") == 0
    finally:
        run.close()


def test_a_reconnect_while_a_refused_batch_waits_sends_no_empty_batch():
    """PostgreSQL refuses every batch (a revoked privilege) and the
    daemon's connections are cut while the refused batch waits to be sent
    again: the batch is read again from the stored offsets, not sent
    emptied (which committed and said PostgreSQL accepted the batches
    again while it still refused them); once the privilege is back every
    event is applied."""
    db = Database()
    role, conninfo = owning_role(db)
    topics = Topics()
    kafka = Kafka()
    daemon = Daemon(db, topics, config={"postgresql": {"conninfo": conninfo}})
    try:
        daemon.start().wait_ready()
        refuse_servers(db, role, daemon, kafka, topics, "127.96.0", 3)
        # Retried after 1, 2, 4 s ...: cut while the batch waits.
        time.sleep(1.5)
        db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND usename = %s", (role,))
        daemon.wait_log(r"PostgreSQL is back", timeout=60)
        # Fetching resumes at once to read the batch again (it waited
        # for the retry's delay, up to 30 s, and sent the batch emptied).
        after = lambda: daemon.log().split("PostgreSQL is back", 1)[1]
        wait_until(lambda: re.search(r"fetching resumed|accepts the batches "
                                     r"again", after()), 60, "the consumer to go on")
        assert re.search(r"fetching resumed|accepts the batches again",
                         after()).group(0) == "fetching resumed", after()
        wait_until(lambda: "fetching paused" in after(), 30,
                   "the batch read again and refused again")
        assert not re.search(r"accepts the batches again|batch of 0:", after()), \
            after()
        status, body = daemon.http_get("/readyz")
        assert status == 503 and "permission denied" in body, body
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        db.query('GRANT INSERT, UPDATE ON ipam_state.server TO "%s"' % role)
        harness.wait_caught_up(db, daemon.group, 4, timeout=90)
        daemon.wait_log(r"apply: PostgreSQL accepts the batches again")
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == 3
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()
        drop_role(db, role)


def test_read_only_database_is_not_ready_and_reconnects_ever_slower():
    """PostgreSQL turns read-only (a standby, a primary demoted by a
    failover): every batch is refused (SQLSTATE 25006) on every new
    connection.  The daemon says so once, turns not ready, keeps its
    watchdog pings, makes its connection again with a delay that doubles
    while each new one is refused at once (not every 200 ms forever), and
    applies the events once the database takes writes again."""
    db = Database()
    topics = Topics()
    kafka = Kafka()
    daemon = Daemon(db, topics, notify=True, env={"WATCHDOG_USEC": "3000000"})
    try:
        daemon.start().wait_ready()
        kafka.send(topics.subnets, "1", event(
            "subnet.upserted", "1", {"name": "n", "cidr": "127.91.0.0/24",
                                     "static_ip_pools": ["127.91.0.1-127.91.0.9"]}, 1))
        kafka.flush()
        harness.wait_caught_up(db, daemon.group, 1)
        db.query('ALTER DATABASE "%s" SET default_transaction_read_only = on' % db.name)
        db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = %s AND application_name = 'ipam-syncd'", (db.name,))
        for i in range(3):
            kafka.send(topics.servers, str(i), event(
                "server.upserted", str(i), {"hostname": "h%d" % i,
                                            "ip_address": "127.91.0.%d" % (i + 1)}, 1))
        kafka.flush()
        daemon.wait_log(r"apply: PostgreSQL refuses the batch: .*read-only "
                        r"transaction.*consuming stops", timeout=60)
        # Not ready: "PostgreSQL is not connected" between two attempts,
        # the refusal while connected.
        status, body = daemon.http_get("/readyz")
        assert status == 503 and ("read-only" in body or "not connected" in body), body
        assert metric(daemon, "ipam_syncd_apply_failing") == 1

        def delays():
            return [int(d) for d in re.findall(
                r"postgresql: [^\n]*read-only transaction[^\n]*; retrying in (\d+) ms",
                daemon.log())]
        wait_until(lambda: len(delays()) >= 4, 60, "four reconnects")
        first = delays()[:4]
        assert first == sorted(first) and first[3] >= 4 * first[0], first
        pings = daemon.notify.texts().count("WATCHDOG=1")
        wait_until(lambda: daemon.notify.texts().count("WATCHDOG=1") >= pings + 1,
                   10, "a watchdog ping")
        assert len(re.findall(r"refuses the batch", daemon.log())) == 1

        db.query('ALTER DATABASE "%s" RESET default_transaction_read_only' % db.name)
        harness.wait_caught_up(db, daemon.group, 4, timeout=90)
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == 3
        daemon.wait_log(r"apply: PostgreSQL accepts the batches again")
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 30, "ready again")
        assert metric(daemon, "ipam_syncd_apply_failing") == 0
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_a_statement_timeout_waits_and_never_makes_a_dead_letter():
    """An apply cancelled by statement_timeout (a row lock held past it,
    set for the database as an operator may) is no fault of its events:
    the batch is retried, split down to one event, and that event waits
    (not ready, said once) instead of becoming a dead letter, though a
    dead letter alone would pass the lock; once the lock is gone every
    event is applied and none is a dead letter."""
    import psycopg2
    db, topics, kafka = Database(), Topics(), Kafka()
    daemon = Daemon(db, topics)
    locker = None
    try:
        daemon.start().wait_ready()
        kafka.send(topics.subnets, "1", event(
            "subnet.upserted", "1", {"name": "n", "cidr": "127.92.0.0/24",
                                     "static_ip_pools": ["127.92.0.1-127.92.0.9"]}, 1))
        kafka.send(topics.servers, "0", event(
            "server.upserted", "0", {"hostname": "h0", "ip_address": "127.92.0.1"}, 1))
        kafka.flush()
        harness.wait_caught_up(db, daemon.group, 2)
        db.query('ALTER DATABASE "%s" SET statement_timeout = 400' % db.name)
        db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = %s AND application_name = 'ipam-syncd'", (db.name,))
        # A hand edit holds server 0's row.
        locker = psycopg2.connect(db.conninfo())
        with locker.cursor() as cur:
            cur.execute("SET statement_timeout = 0; SELECT 1 FROM "
                        "ipam_state.server WHERE id = '0' FOR UPDATE")
        kafka.send(topics.servers, "0", event(
            "server.upserted", "0", {"hostname": "h0", "ip_address": "127.92.0.5"}, 2))
        kafka.send(topics.servers, "1", event(
            "server.upserted", "1", {"hostname": "h1", "ip_address": "127.92.0.2"}, 1))
        kafka.flush()
        daemon.wait_log(r"apply: PostgreSQL refuses the batch: .*statement "
                        r"timeout.*consuming stops", timeout=120)
        assert daemon.log_contains(r"apply: batch of 2 rejected .*splitting it")
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        status, body = daemon.http_get("/readyz")
        assert status == 503, body
        assert metric(daemon, "ipam_syncd_apply_failing") == 1

        locker.rollback()
        harness.wait_caught_up(db, daemon.group, 4, timeout=120)
        assert db.query("SELECT host(ip_address) FROM ipam WHERE status = "
                        "'allocated' ORDER BY 1") == [("127.92.0.2",), ("127.92.0.5",)]
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        wait_until(lambda: daemon.http_get("/readyz")[0] == 200, 60, "ready again")
        assert daemon.stop() == 0
    finally:
        if locker is not None:
            locker.close()
        daemon.close()
        db.close()


def test_large_pools_are_applied_a_statement_each():
    """Subnets whose pools together hold more addresses than
    consumer.batch_max_pool_addresses are applied in several statements
    of one batch, so none runs as long as all of them would (three pools
    of a million addresses in one statement outlasted the watchdog)."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "3000",
                                   "batch_max_pool_addresses": "1000"}})
    try:
        for i in (1, 2, 3):
            run.subnet(str(i), "10.%d.0.0/22" % (60 + i),
                       ["10.%d.0.1-10.%d.2.88" % (60 + i, 60 + i)], 1)
        run.settle()
        assert run.count("status = 'available'") == 3 * 600
        # One batch of three events, applied as three statements (the
        # last one's line may come just after its commit shows).
        wait_until(lambda: len(re.findall(r"batch of \d+: ", run.daemon.log())) >= 3,
                   15, "the third statement's line")
        sizes = re.findall(r"batch of (\d+): ", run.daemon.log())
        assert sizes == ["1", "1", "1"], sizes
    finally:
        run.close()


def test_rebuild_writes_the_same_audit_image():
    """Issue case 8: the audit rows a rebuild writes have the shape the
    apply writes: the nine derived fields."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.98.0.0/24", ["127.98.0.1-127.98.0.3"], 1)
        run.server("5", "127.98.0.1", 1)
        run.settle()
        run.db.query("UPDATE ipam_state.address SET hostname = 'wrong' "
                     "WHERE ip_address = '127.98.0.1'")
        assert run.daemon.stop() == 0
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        images = run.db.query("SELECT source_topic, before, after FROM ipamd.audit")
        assert any(t == "(rebuild)" for t, _, _ in images), images
        for topic, before, after in images:
            for image in (before, after):
                if image is not None:
                    assert set(image) == IMAGE_KEYS, (topic, image)
    finally:
        if rebuild:
            rebuild.close()
        run.close()


class SwapAnswerCutter:
    """A TCP proxy in front of PostgreSQL that forwards every connection,
    but closes the one that asked for ipamd.rebuild_swap(…) when its
    answer comes (the statement has then committed): the swap's answer
    is lost with the connection, once."""

    def __init__(self, host, port):
        import socket
        import threading
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            armed = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, armed, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, armed, False),
                             daemon=True).start()

    def _pump(self, source, sink, armed, upstream):
        import socket
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if upstream and b"rebuild_swap(" in data and not self.cut.is_set():
                armed.set()
            if not upstream and data and armed.is_set():
                with self.lock:
                    first = not self.cut.is_set()
                    self.cut.set()
                if first:
                    for s in (source, sink):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    data = b""
            if not data:
                for s in (source, sink):
                    try:
                        s.close()
                    except OSError:
                        pass
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self):
        self.listener.close()


def test_rebuild_swap_whose_answer_is_lost_goes_on():
    """The swap commits and its answer is lost with the connection: once
    PostgreSQL is reached again the daemon asks the swap again before it
    reads any offset (the rebuilt schema it would read them from is the
    live one now), learns it is done, and applies what comes next."""
    run = Run()
    rebuild = cutter = None
    try:
        run.subnet("1", "127.93.0.0/24", ["127.93.0.1-127.93.0.20"], 1)
        run.server("5", "127.93.0.1", 1)
        run.mark("127.93.0.2", "reserved", 1, description="kept")
        run.settle()
        rows = ("SELECT host(ip_address), status, server_id, description "
                "FROM ipam ORDER BY 1")
        before = run.db.query(rows)
        assert run.daemon.stop() == 0
        cutter = SwapAnswerCutter(run.db.host, run.db.port)
        conninfo = "host=127.0.0.1 port=%d user=%s dbname=%s" % (
            cutter.port, run.db.user, run.db.name)
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                config={"postgresql": {"conninfo": conninfo}},
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: the connection went during the swap",
                         timeout=120)
        rebuild.wait_log(r"rebuild: swapped in the rebuilt state "
                         r"\(.*\"already\": true", timeout=60)
        assert run.db.scalar("SELECT to_regnamespace('ipam_state_rebuild') "
                             "IS NULL")
        assert run.db.query(rows) == before
        # It goes on: the next event is applied to the live state.
        run.server("6", "127.93.0.3", 1)
        run.kafka.flush()
        harness.wait_caught_up(run.db, run.daemon.group, run.sent, timeout=60)
        assert run.row("127.93.0.3")["server_id"] == "6"
        assert not rebuild.log_contains(r"ipam_state_rebuild\.consumer_offset"), \
            "offsets were read from the schema swapped away"
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        if cutter:
            cutter.close()
        run.close()


def test_rebuild_waits_while_another_instance_holds_partitions():
    """A rebuild reads every partition of its topics, and its state
    replaces the live one: while another member of the group holds some,
    it does not swap (the live rows stay whole) and says why; once that
    instance stops, it reads them all and swaps in the same rows."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.94.0.0/24", ["127.94.0.1-127.94.0.20"], 1)
        run.server("5", "127.94.0.1", 1)
        run.mark("127.94.0.2", "reserved", 1, description="kept")
        run.settle()
        rows = ("SELECT host(ip_address), status, server_id, description "
                "FROM ipam ORDER BY 1")
        before = run.db.query(rows)
        assert len(before) == 20, before
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: this instance holds \d of the 3 partitions "
                         r"of its topics; .* stop every other instance",
                         timeout=90)
        assert not rebuild.log_contains(r"rebuild: swapped in"), rebuild.log()
        assert run.db.query(rows) == before
        assert run.daemon.stop() == 0
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert run.db.query(rows) == before
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_rebuild_unfolds_an_event_postgresql_refuses():
    """A rebuild folds the versions of a key as it reads them (only the
    last is kept whole).  When PostgreSQL refuses an event others were
    folded into, those cannot be told apart from it any more, so the
    rebuild builds its fresh state again from the start without folding:
    the refused event becomes a dead letter and the version before it
    applies, as for a daemon that read them one by one."""
    run = Run()
    rebuild = None
    try:
        run.db.query("ALTER TABLE ipam_state.server ADD CONSTRAINT no_evil "
                     "CHECK (hostname IS DISTINCT FROM 'evil')")
        run.subnet("1", "127.95.0.0/24", ["127.95.0.1-127.95.0.20"], 1)
        for i in range(1, 6):
            run.server(str(i), "127.95.0.%d" % i, 1)
        run.server("7", "127.95.0.7", 1, hostname="good")
        run.server("7", "127.95.0.8", 2, hostname="evil")
        run.server("2", "127.95.0.12", 2)
        run.settle()
        live = run.db.query("SELECT host(ip_address), status, server_id, hostname "
                            "FROM ipam ORDER BY ip_address")
        assert run.row("127.95.0.7")["hostname"] == "good"
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 1
        assert run.daemon.stop() == 0
        # One batch for the whole history, so that version 1 of server 7
        # is folded into version 2.
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                config={"consumer": {"batch_max_wait_ms": "2000"}},
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert run.db.query("SELECT host(ip_address), status, server_id, hostname "
                            "FROM ipam ORDER BY ip_address") == live
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 1
        log = rebuild.log()
        assert re.search(r"a batch read while folding was rejected \(.*no_evil", log), \
            log[-3000:]
        assert "building the fresh state again from the beginning" in log
        assert re.search(r"event .*@\d+ rejected: .*no_evil", log), log[-3000:]
        assert rebuild.stop() == 0, rebuild.log()[-3000:]
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_rebuild_steps_refused_are_named_until_it_swaps():
    """A rebuild's step that PostgreSQL refuses (making the fresh state,
    deriving the rows) is tried again after 5 s; meanwhile writes wait,
    so the daemon is not ready: /readyz names the refusal and
    ipam_syncd_apply_failing is 1.  Once the cause is gone the next try
    goes on, swaps in the same rows, and it is ready."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.97.0.0/24", ["127.97.0.1-127.97.0.20"], 1)
        run.server("5", "127.97.0.1", 1, hostname="kept")
        run.server("6", "127.97.0.2", 1, hostname="refused")
        run.settle()
        rows = ("SELECT host(ip_address), status, server_id, hostname "
                "FROM ipam ORDER BY ip_address")
        before = run.db.query(rows)
        assert run.daemon.stop() == 0
        # Copied into the fresh state (LIKE ... INCLUDING ALL); the live
        # row that breaks it is left alone (NOT VALID).
        run.db.query("ALTER TABLE ipam_state.address ADD CONSTRAINT "
                     "no_refused CHECK (hostname IS DISTINCT FROM 'refused') "
                     "NOT VALID")
        # The fresh state is made with DROP SCHEMA IF EXISTS first.
        run.db.query("CREATE FUNCTION public.no_schema_drop() RETURNS "
                     "event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE "
                     "EXCEPTION 'no schema is dropped today'; END $$")
        run.db.query("CREATE EVENT TRIGGER no_schema_drop ON "
                     "ddl_command_start WHEN TAG IN ('DROP SCHEMA') "
                     "EXECUTE FUNCTION public.no_schema_drop()")
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: making the fresh state failed: .*no schema "
                         r"is dropped today", timeout=60)

        def begin_refused():
            status, body = rebuild.http_get("/readyz")
            return status == 503 and re.search(
                r"^rebuild: making the fresh state failed: .*no schema is "
                r"dropped today.*; tried again after 5 s", body)
        wait_until(begin_refused, 30, "/readyz to name the refused fresh state")
        assert metric(rebuild, "ipam_syncd_apply_failing") == 1
        run.db.query("DROP EVENT TRIGGER no_schema_drop")
        rebuild.wait_log(r"rebuild: deriving the rows failed: .*no_refused",
                         timeout=120)

        def refused():
            status, body = rebuild.http_get("/readyz")
            return status == 503 and re.search(
                r"rebuild: deriving the rows failed: .*no_refused.*; "
                r"tried again after 5 s", body)
        wait_until(refused, 30, "/readyz to name the refused derivation")
        assert metric(rebuild, "ipam_syncd_apply_failing") == 1
        # Tried again: a second failure, still not swapped.
        wait_until(lambda: len(re.findall(r"deriving the rows failed",
                                          rebuild.log())) >= 2, 30,
                   "the derivation tried again")
        assert not rebuild.log_contains(r"rebuild: swapped in")
        assert run.db.query(rows) == before
        run.db.query("ALTER TABLE ipam_state_rebuild.address "
                     "DROP CONSTRAINT no_refused")
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert run.db.query(rows) == before
        wait_until(lambda: rebuild.http_get("/readyz")[0] == 200, 30,
                   "ready after the swap")
        assert metric(rebuild, "ipam_syncd_apply_failing") == 0
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_a_rebuild_whose_swap_failed_derives_conflicts_anew():
    """A swap refused sends the rebuild back to its batches, and the rows
    are derived again from what they hold then: an address conflict of
    the first derivation that no event touches again (two servers that
    shared an address, gone from it since) is not carried into the
    state swapped in."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.98.0.0/24", ["127.98.0.1-127.98.0.20"], 1)
        run.server("5", "127.98.0.50", 1)
        run.server("6", "127.98.0.50", 1)
        run.settle()
        conflicts = ("SELECT host(ip_address), kind FROM ipam_conflict "
                     "WHERE ip_address IS NOT NULL ORDER BY 1, 2")
        assert run.db.query(conflicts) == [("127.98.0.50", "several_servers")]
        assert run.daemon.stop() == 0
        run.db.query("CREATE FUNCTION public.no_schema_rename() RETURNS "
                     "event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE "
                     "EXCEPTION 'no schema is renamed today'; END $$")
        run.db.query("CREATE EVENT TRIGGER no_schema_rename ON "
                     "ddl_command_start WHEN TAG IN ('ALTER SCHEMA') "
                     "EXECUTE FUNCTION public.no_schema_rename()")
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: the swap failed: .*no schema is renamed",
                         timeout=60)
        assert run.db.query("SELECT host(ip_address), kind FROM "
                            "ipam_state_rebuild.conflict WHERE ip_address "
                            "IS NOT NULL") == [("127.98.0.50", "several_servers")]
        run.server("5", "127.98.0.51", 2)
        run.server("6", "127.98.0.52", 2)
        run.kafka.flush()
        wait_until(lambda: len(re.findall(r"caught up; deriving every row",
                                          rebuild.log())) >= 2, 60,
                   "the rows derived again after the servers moved")
        rebuild.wait_log(r"rows derived; swapping(.|\n)*rows derived; swapping",
                         timeout=60)
        run.db.query("DROP EVENT TRIGGER no_schema_rename")
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert run.db.query(conflicts) == []
        assert run.db.query("SELECT host(ip_address), server_id FROM ipam "
                            "WHERE server_id IS NOT NULL ORDER BY 1") == [
            ("127.98.0.51", "5"), ("127.98.0.52", "6")]
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_rebuild_swaps_while_events_keep_coming():
    """A rebuild reads every partition up to where it ended when first
    seen; events keep coming meanwhile (producers do not stop for it).
    Once there, it takes no more messages until those it took are
    applied, derives and swaps in, and then goes on with the rest: it
    never waits for a quiet moment that a busy topic does not have."""
    import threading
    run = Run()
    rebuild = None
    stop = threading.Event()
    sent = [0]

    def traffic():
        # Five servers move around a pool, an event every 2 ms or so:
        # never a quiet moment between two batches.
        version = 10
        while not stop.is_set():
            for sid in range(1, 6):
                run.kafka.producer.produce(run.topics.servers, key=str(sid).encode(),
                                           value=event("server.upserted", str(sid), {
                    "hostname": "moving-%d" % sid,
                    "ip_address": "127.99.0.%d" % (1 + (version + sid) % 40)},
                    version).encode())
                sent[0] += 1
                run.kafka.producer.poll(0)
                time.sleep(0.0002)
            version += 1
        run.kafka.producer.flush(30)
    try:
        run.subnet("1", "127.99.0.0/24", ["127.99.0.1-127.99.0.50"], 1)
        for sid in range(1, 6):
            run.server(str(sid), "127.99.0.%d" % (100 + sid), 1)
        run.settle()
        assert run.daemon.stop() == 0
        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        time.sleep(2)
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=90)
        assert thread.is_alive()
        during = sent[0]
        time.sleep(2)
        assert sent[0] > during, "the events stopped coming"
        stop.set()
        thread.join(60)
        harness.wait_caught_up(run.db, run.daemon.group, run.sent + sent[0],
                               timeout=60)
        # Every server where its last event put it.
        rows = {r[0]: r[1] for r in run.db.query(
            "SELECT server_id, host(ip_address) FROM ipam "
            "WHERE server_id IS NOT NULL")}
        last = {r[0]: r[1] for r in run.db.query(
            "SELECT id, host(ip_address) FROM ipam_state.server")}
        assert rows == last and len(rows) == 5, (rows, last)
        assert rebuild.stop() == 0, rebuild.log()[-3000:]
    finally:
        stop.set()
        if rebuild:
            rebuild.close()
        run.close()


def test_transactional_producer_topics_are_caught_up():
    """Events a transactional producer wrote (as Kafka Connect does with
    exactly-once source support): each transaction ends in a commit
    marker, an offset the consumer is never handed.  Once the events are
    applied the lag is 0 on every partition, though the stored offsets
    stop before the markers, and a rebuild catches up and swaps in while
    the topics stay quiet."""
    run = Run()
    rebuild = None
    try:
        producer = Producer({"bootstrap.servers": harness.bootstrap(),
                             "transactional.id": harness.unique("tx")})
        producer.init_transactions(30)
        for version in (1, 2):
            producer.begin_transaction()
            producer.produce(run.topics.subnets, key=b"1", value=event(
                "subnet.upserted", "1", {"name": "tx", "cidr": "127.96.0.0/24",
                                         "static_ip_pools": ["127.96.0.1-127.96.0.9"]}, version))
            producer.produce(run.topics.servers, key=b"5", value=event(
                "server.upserted", "5", {"hostname": "tx-%d" % version,
                                         "ip_address": "127.96.0.%d" % version}, version))
            producer.commit_transaction(30)
        wait_until(lambda: run.row("127.96.0.2") is not None
                   and run.row("127.96.0.2")["hostname"] == "tx-2", 60, "the events applied")
        stored = {t: n for t, _, n in run.db.query(
            "SELECT topic, partition, next_offset FROM ipam_state.consumer_offset")}
        # Two events and two markers in each: applied up to the last event.
        assert stored == {run.topics.subnets: 3, run.topics.servers: 3}, stored

        wait_until(lambda: lags(run.daemon) == [0.0, 0.0, 0.0], 30,
                   "the lag to be 0 everywhere")
        assert run.daemon.stop() == 0

        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert run.row("127.96.0.2")["hostname"] == "tx-2"
        assert run.row("127.96.0.1")["status"] == "available"
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_transactional_topics_stay_caught_up_when_offsets_are_read_again():
    """A partition whose log ends in a transaction's commit marker is
    caught up once its last event is applied, also when its stored offset
    is read again and nothing is handed after it: after a restart, and
    after a reconnect to PostgreSQL (which reads every offset again).
    Else the lag stays 1 a partition for good, and a rebuild read again
    from there never swaps."""
    run = Run()
    again = None
    try:
        producer = Producer({"bootstrap.servers": harness.bootstrap(),
                             "transactional.id": harness.unique("tx")})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(run.topics.subnets, key=b"1", value=event(
            "subnet.upserted", "1", {"name": "tx", "cidr": "127.98.0.0/24",
                                     "static_ip_pools": ["127.98.0.1-127.98.0.9"]}, 1))
        producer.produce(run.topics.servers, key=b"5", value=event(
            "server.upserted", "5", {"hostname": "tx",
                                     "ip_address": "127.98.0.1"}, 1))
        producer.commit_transaction(30)
        wait_until(lambda: run.row("127.98.0.1") is not None
                   and run.row("127.98.0.1")["hostname"] == "tx", 60,
                   "the events applied")

        wait_until(lambda: lags(run.daemon) == [0.0, 0.0, 0.0], 30,
                   "the lag to be 0 everywhere")
        assert run.daemon.stop() == 0
        again = Daemon(run.db, run.topics, group=run.daemon.group).start()
        again.wait_ready()
        again.wait_log(r"kafka: assigned .*\[0\] from offset 1", timeout=60)
        wait_until(lambda: lags(again) == [0.0, 0.0, 0.0], 30,
                   "the lag to be 0 everywhere after a restart")
        run.db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        again.wait_log(r"PostgreSQL is back", timeout=60)
        wait_until(lambda: lags(again) == [0.0, 0.0, 0.0], 30,
                   "the lag to be 0 everywhere after a reconnect")
        assert again.stop() == 0
    finally:
        if again:
            again.close()
        run.close()


def test_a_partition_of_aborted_transactions_alone_is_caught_up():
    """A partition whose only messages are an aborted transaction's (a
    Kafka Connect task with exactly-once support that failed and started
    again) hands the consumer nothing, so no offset is ever stored for
    it: it is caught up at the position past the abort marker, lag 0,
    and a rebuild swaps in instead of waiting for it for good."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.95.9.0/24", ["127.95.9.1-127.95.9.9"], 1)
        run.settle()
        producer = Producer({"bootstrap.servers": harness.bootstrap(),
                             "transactional.id": harness.unique("tx")})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(run.topics.marks, key=b"127.95.9.5", value=event(
            "mark.set", "127.95.9.5", {"address": "127.95.9.5",
                                       "status": "reserved"}, 1))
        producer.abort_transaction(30)
        wait_until(lambda: lags(run.daemon) == [0.0, 0.0, 0.0], 60,
                   "the lag to be 0 everywhere")
        assert run.db.scalar("SELECT count(*) FROM ipam_state.consumer_offset "
                             "WHERE topic = %s", (run.topics.marks,)) == 0
        assert run.row("127.95.9.5")["status"] == "available"
        assert run.daemon.stop() == 0

        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert run.row("127.95.9.5")["status"] == "available"
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def state_shape(db):
    """The state tables and their indexes by name, with their storage
    parameters."""
    return db.query("SELECT c.relname, c.relkind, c.reloptions FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'ipam_state' AND c.relkind IN ('r', 'i') "
                    "ORDER BY c.relname")


def test_a_rebuild_decides_a_request_without_outcome_after_the_other_topics():
    """A request whose outcome is gone (api.request_days) or was never
    decided is decided again when a rebuild replays it: the rebuild reads
    the marks only once servers and subnets are filled, so that the
    request sees the server that holds its address however late in its
    topic, and is refused as it was live, not applied against servers
    read only in part."""
    from test_requests import outcome, request
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.96.5.0/24", ["127.96.5.1-127.96.5.9"], 1)
        # A long servers topic, the holder of .3 at its end.
        for i in range(3000):
            run.server("f%d" % i, None, 1)
        run.server("holder", "127.96.5.3", 1)
        run.settle()
        request(run, "q1", "127.96.5.3", "write:alice", description="alice's",
                if_available=True)
        run.settle()
        assert outcome(run, "q1")[0] == "refused", outcome(run, "q1")
        rows = run.db.query("SELECT ip_address, status, server_id, description "
                            "FROM ipam ORDER BY ip_address")
        assert run.daemon.stop() == 0
        run.db.query("DELETE FROM ipamd.request WHERE id = 'q1'")
        # Small batches: the servers take many, and without the hold the
        # one mark would come in the first.
        config = {"consumer": {"batch_max_events": "50"}}
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                config=config, extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert outcome(run, "q1")[0] == "refused", outcome(run, "q1")
        assert run.db.query("SELECT ip_address, status, server_id, description "
                            "FROM ipam ORDER BY ip_address") == rows
        assert rebuild.log_contains(r"rebuild: the other topics are filled; "
                                    r"reading the 1 partition\(s\) of marks")
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_a_rebuild_keeps_storage_parameters_and_index_names():
    """The rebuilt tables are the live ones' copies in what LIKE leaves
    out too: the address table's fillfactor (derived updates stay HOT)
    and every index's name (a later migration names the index it
    changes)."""
    run = Run()
    rebuild = None
    try:
        run.subnet("1", "127.98.9.0/24", ["127.98.9.1-127.98.9.9"], 1)
        run.server("1", "127.98.9.5", 1)
        run.settle()
        assert run.daemon.stop() == 0
        before = state_shape(run.db)
        assert ("address", "r", ["fillfactor=85"]) in before, before
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=90)
        assert state_shape(run.db) == before
        assert rebuild.stop() == 0
    finally:
        if rebuild:
            rebuild.close()
        run.close()


def test_a_swap_waits_for_a_reader_without_holding_readers_up():
    """A session reads public.ipam and stays idle in its transaction: the
    swap cannot take the view and the old tables, gives up within its
    lock timeout and is asked again (/readyz says why), so that readers
    coming after it are not queued behind it for as long as that session
    stays; once the session ends, the swap goes through."""
    import psycopg2
    run = Run()
    rebuild = None
    blocker = reader = None
    try:
        run.subnet("1", "127.98.8.0/24", ["127.98.8.1-127.98.8.9"], 1)
        run.server("1", "127.98.8.5", 1)
        run.settle()
        assert run.daemon.stop() == 0
        rows = run.db.query("SELECT * FROM ipam ORDER BY ip_address")
        blocker = psycopg2.connect(run.db.conninfo())
        with blocker.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.ipam")
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: the swap waits for a session that holds "
                         r"public.ipam", timeout=90)
        status, body = rebuild.http_get("/readyz")
        assert status == 503 and "the swap waits" in body, (status, body)
        # A reader that comes now is answered, swap or no swap.
        reader = psycopg2.connect(run.db.conninfo())
        reader.autocommit = True
        for _ in range(3):
            with reader.cursor() as cur:
                cur.execute("SET statement_timeout = '30s'")
                cur.execute("SELECT count(*) FROM public.ipam")
                assert cur.fetchone()[0] == len(rows)
            time.sleep(1)
        assert not rebuild.log_contains(r"rebuild: swapped in")
        blocker.rollback()
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert run.db.query("SELECT * FROM ipam ORDER BY ip_address") == rows
        assert rebuild.stop() == 0
    finally:
        for conn in (blocker, reader):
            if conn is not None:
                conn.close()
        if rebuild:
            rebuild.close()
        run.close()


def test_a_swap_in_a_deadlock_with_a_reader_is_tried_again_alone():
    """A reader takes a state table, then the view (as the API's reads
    do), while the swap holds the view and waits for that table: one of
    the two is a deadlock's victim, the swap here (it waited first).  It
    rolled back whole, so the swap alone is tried again, and goes
    through once the reader is done: the rows are not derived twice."""
    import psycopg2
    run = Run()
    rebuild = None
    reader = None
    try:
        run.subnet("1", "127.98.9.0/24", ["127.98.9.1-127.98.9.9"], 1)
        run.server("1", "127.98.9.5", 1)
        run.settle()
        assert run.daemon.stop() == 0
        rows = run.db.query("SELECT * FROM ipam ORDER BY ip_address")
        # PostgreSQL looks for a deadlock once a wait has lasted
        # deadlock_timeout, in the session that waits, and only then: the
        # swap's session looks after 1.5 s, once the reader waits too
        # (and before the swap's own wait of 2 s runs out); the reader's
        # never does while the test runs.
        run.db.query("ALTER DATABASE %s SET deadlock_timeout = '1500ms'" % run.db.name)
        reader = psycopg2.connect(run.db.conninfo())
        with reader.cursor() as cur:
            cur.execute("SET deadlock_timeout = '10min'")
            cur.execute("SELECT count(*) FROM ipam_state.subnet")
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        wait_until(lambda: run.db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query LIKE '%rebuild_swap%'") == 1,
            90, "the swap to wait for the table", interval=0.01)
        with reader.cursor() as cur:
            cur.execute("SET statement_timeout = '30s'")
            cur.execute("SELECT count(*) FROM public.ipam")
            assert cur.fetchone()[0] == len(rows)
        rebuild.wait_log(r"rebuild: the swap met a deadlock with a session", timeout=30)
        reader.rollback()
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert len(re.findall(r"rebuild: rows derived", rebuild.log())) == 1, rebuild.log()
        assert run.db.query("SELECT * FROM ipam ORDER BY ip_address") == rows
        assert rebuild.stop() == 0
    finally:
        if reader is not None:
            reader.close()
        if rebuild:
            rebuild.close()
        run.close()


def test_rebuild_carries_row_times():
    """A rebuilt row that exists now keeps its created_at (its tie to the
    sweeper's state), and its updated_at when unchanged: plain pool rows,
    derived rows, and rows the current state changed between the
    derivation and the swap, which the swap carries again; one deleted
    meanwhile is new.  The derivation run again gives the same rows.
    (Called here at the SQL level, between the steps a rebuild takes.)"""
    run = Run()
    try:
        # Subnet 1 alone: its pool rows plain, but the server's; subnet 3
        # has subnet 4 inside: its pool rows derived one by one.
        run.subnet("1", "127.97.0.0/24", ["127.97.0.1-127.97.0.20"], 1)
        run.subnet("3", "127.97.1.0/24", ["127.97.1.1-127.97.1.5"], 1)
        run.subnet("4", "127.97.1.64/28", ["127.97.1.65-127.97.1.70"], 1)
        run.server("5", "127.97.0.10", 1)
        run.server("6", "127.97.0.200", 1)
        run.settle()
        assert run.daemon.stop() == 0
        db = run.db
        db.query("UPDATE ipam_state.address SET created_at = created_at - interval '3 days', "
                 "updated_at = updated_at - interval '2 days'")
        times = "SELECT host(ip_address), created_at, updated_at FROM %s.address ORDER BY 1"
        before = db.query(times % "ipam_state")
        assert len(before) == 32, before
        db.query("SELECT ipamd.rebuild_begin()")
        for t in ("subnet", "server", "mark"):
            db.query("INSERT INTO ipam_state_rebuild.%s SELECT * FROM ipam_state.%s" % (t, t))
        db.query("SELECT ipamd.derive_all()")
        assert db.query(times % "ipam_state_rebuild") == before
        # Derived again (a swap that failed sends the rebuild back to its
        # batches): the same rows.
        db.query("SELECT ipamd.derive_all()")
        assert db.query(times % "ipam_state_rebuild") == before
        # Changed meanwhile: one row re-made (a new created_at), one
        # edited (a new updated_at, and a content the rebuild undoes).
        db.query("UPDATE ipam_state.address SET created_at = now() - interval '1 hour' "
                 "WHERE ip_address IN ('127.97.0.15', '127.97.1.3')")
        db.query("UPDATE ipam_state.address SET hostname = 'edited', updated_at = now() "
                 "WHERE ip_address = '127.97.0.10'")
        # And one deleted: rebuilt, it is new, whatever was carried.
        db.query("DELETE FROM ipam_state.address WHERE ip_address = '127.97.0.17'")
        swap_began = db.scalar("SELECT now()")
        changed = db.scalar("SELECT ipamd.rebuild_swap(0)->>'changed'")
        assert changed == "2", changed
        after = {ip: (c, u) for ip, c, u in db.query(times % "ipam_state")}
        now = {ip: (c, u) for ip, c, u in before}
        for ip, (c, u) in after.items():
            if ip in ("127.97.0.15", "127.97.1.3"):
                assert c > now[ip][0] and u == now[ip][1], (ip, now[ip], c, u)
            elif ip == "127.97.0.17":
                assert c >= swap_began and u >= swap_began, (ip, swap_began, c, u)
            elif ip == "127.97.0.10":
                # Undone by the rebuild: changed, so a fresh updated_at.
                assert c == now[ip][0] and u > now[ip][1], (ip, now[ip], c, u)
            else:
                assert (c, u) == now[ip], (ip, now[ip], c, u)
        assert db.scalar("SELECT hostname FROM ipam WHERE ip_address = '127.97.0.10'") \
            == "host-5"
    finally:
        run.close()


def test_rebuild_keeps_when_conflicts_were_first_seen():
    """A conflict that the rebuilt state still has keeps its first_seen_at
    (address-level and subnet-level kinds, also one whose detail the
    rebuild changes); one that is new is seen when the rebuild derived it.  (Called
    at the SQL level, between the steps a rebuild takes.)"""
    run = Run()
    try:
        run.subnet("1", "127.98.0.0/24", ["127.98.0.1-127.98.0.20"], 1)
        run.subnet("2", "127.98.0.0/24", [], 1)
        run.server("5", "127.98.0.10", 1)
        run.server("6", "127.98.0.10", 1)
        run.server("7", "127.98.0.11", 1)
        run.mark("127.98.0.11", "reserved", 1, description="kept")
        run.settle()
        assert run.daemon.stop() == 0
        db = run.db
        kinds = "SELECT kind, coalesce(host(ip_address), subnet_id) FROM ipam_state.conflict ORDER BY 1"
        assert db.query(kinds) == [("duplicate_subnet", "2"),
                                   ("server_on_reserved", "127.98.0.11"),
                                   ("several_servers", "127.98.0.10")], db.query(kinds)
        db.query("UPDATE ipam_state.conflict SET first_seen_at = first_seen_at - interval '3 days'")
        seen = "SELECT kind, coalesce(host(ip_address), subnet_id), first_seen_at, detail " \
               "FROM %s.conflict ORDER BY 1, 2"
        before = {(k, key): (t, d) for k, key, t, d in db.query(seen % "ipam_state")}
        db.query("SELECT ipamd.rebuild_begin()")
        for t in ("subnet", "server", "mark"):
            db.query("INSERT INTO ipam_state_rebuild.%s SELECT * FROM ipam_state.%s" % (t, t))
        # What the rebuild finds differs from what the state says: a third
        # server on .10 (the same conflict, another detail) and a second
        # server on .12 (a conflict that is new).
        db.query("UPDATE ipam_state_rebuild.server SET ip_address = '127.98.0.10' WHERE id = '7'")
        db.query("INSERT INTO ipam_state_rebuild.server (id, version, hostname, ip_address) "
                 "VALUES ('8', 1, 'host-8', '127.98.0.12'), ('9', 1, 'host-9', '127.98.0.12')")
        derive_began = db.scalar("SELECT now()")
        db.query("SELECT ipamd.derive_all()")
        db.query("SELECT ipamd.rebuild_swap(0)")
        after = {(k, key): (t, d) for k, key, t, d in db.query(seen % "ipam_state")}
        # Asked again (its answer lost with the connection): swapped
        # already.  Asked as an instance before function release 15 asks.
        assert db.scalar("SELECT ipamd.rebuild_swap()") == {"changed": 0, "already": True}
        assert {(k, key): (t, d) for k, key, t, d in db.query(seen % "ipam_state")} == after
        assert set(after) == set(before) - {("server_on_reserved", "127.98.0.11")} \
            | {("several_servers", "127.98.0.12")}, after
        for key, (t, d) in after.items():
            if key == ("several_servers", "127.98.0.12"):
                assert t >= derive_began, (key, t, derive_began)
            else:
                assert t == before[key][0], (key, before[key], t)
        assert before[("several_servers", "127.98.0.10")][1].startswith("servers 5, 6 share")
        assert after[("several_servers", "127.98.0.10")][1].startswith("servers 5, 6, 7 share")
    finally:
        run.close()


def test_rows_written_outside_the_apply_are_not_skipped():
    """The apply writes the rows it read through their ctid.  A row that
    something else changes meanwhile (a hand edit by a role that may write
    the state) has a new ctid: its write is not skipped, the batch is
    applied again on fresh rows and the event's values land.  Once for an
    entity row (the stage that writes servers), once for an address row
    (the derivation), once for a row inserted with a key the batch
    inserts."""
    run = Run()
    try:
        run.subnet("1", "127.93.0.0/24", ["127.93.0.1-127.93.0.9"], 1)
        run.server("91", "127.93.0.1", 1)
        run.settle()
        retries = metric(run.daemon, "ipam_syncd_apply_retries_total") or 0

        def waiting():
            return run.db.scalar(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0

        def edit_while_applying(statement, then):
            editor = run.db._connect(run.db.name)
            try:
                with editor.cursor() as cur:
                    cur.execute(statement)
                then()
                run.kafka.flush()
                wait_until(waiting, what="the apply waiting for the hand edit")
                editor.commit()
            finally:
                editor.close()
            run.settle()

        def retried():
            nonlocal retries
            now = metric(run.daemon, "ipam_syncd_apply_retries_total")
            assert now > retries, (now, retries)
            retries = now

        # The server row, edited while the stage that writes it waits.
        edit_while_applying(
            "UPDATE ipam_state.server SET hostname = 'by-hand' WHERE id = '91'",
            lambda: run.server("91", "127.93.0.2", 2, hostname="moved"))
        assert run.db.scalar("SELECT version || hostname FROM ipam_state.server "
                             "WHERE id = '91'") == "2moved"
        assert run.row("127.93.0.2")["hostname"] == "moved"
        assert run.row("127.93.0.1")["status"] == "available"
        retried()

        # The address row the server leaves, edited while the derivation
        # waits (the server row is free).
        edit_while_applying(
            "UPDATE ipam_state.address SET hostname = 'by-hand' "
            "WHERE ip_address = '127.93.0.2'",
            lambda: run.server("91", "127.93.0.3", 3, hostname="moved"))
        left = run.row("127.93.0.2")
        assert left["status"] == "available" and left["server_id"] is None \
            and left["hostname"] is None, left
        assert run.row("127.93.0.3")["server_id"] == "91"
        retried()

        # A new server's row, inserted by hand while the stage that
        # inserts it waits: the event lands, no dead letter.
        edit_while_applying(
            "INSERT INTO ipam_state.server (id, version, deleted, vrf, hostname) "
            "VALUES ('92', NULL, false, '', 'by-hand')",
            lambda: run.server("92", "127.93.0.4", 1, hostname="new"))
        assert run.db.scalar("SELECT version || hostname FROM ipam_state.server "
                             "WHERE id = '92'") == "1new"
        assert run.row("127.93.0.4")["server_id"] == "92"
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        retried()
        run.daemon.wait_log(r"rows of address changed while the apply wrote them")
        run.daemon.wait_log(r"rows of server changed while the apply wrote them")
        run.daemon.wait_log(r"a row of server was inserted while the apply wrote it")
    finally:
        run.close()


if __name__ == "__main__":
    harness.main(globals())
