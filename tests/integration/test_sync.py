"""The sync engine end to end: events through the real Kafka broker into
the real PostgreSQL, checked on the public ipam view and the side tables."""

import ipaddress
import json
import re
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time

import harness
from harness import (Daemon, Database, Kafka, PrivatePostgres, Topics,
                     wait_caught_up, wait_until)

FIXTURES = os.path.join(harness.ROOT, "tests", "fixtures")


def event(kind, subject, data=None, version=None, event_id=None):
    """A structured CloudEvent as producers send it."""
    body = {"specversion": "1.0", "id": event_id or "%s-%s-%s" % (kind, subject, version),
            "source": "/tests/sync", "type": "ipam." + kind, "subject": subject}
    if version is not None:
        body["entityversion"] = version
    if data is not None:
        body["data"] = data
    return json.dumps(body)


class Run:
    """One daemon on one fresh database and set of topics."""

    def __init__(self, partitions=1, config=None, formats=None, db=None, env=None):
        self.db = db or Database()
        self.topics = Topics(partitions=partitions, formats=formats)
        self.kafka = Kafka()
        self.sent = 0
        self.daemon = Daemon(self.db, self.topics, config=config, env=env).start()
        self.daemon.wait_ready()

    def send(self, topic, key, value, headers=None):
        self.kafka.send(topic, key, value, headers=headers)
        self.sent += 1

    def server(self, sid, ip, version, hostname=None, mac=None, vrf=None, **extra):
        data = {"hostname": hostname or "host-" + sid, "ip_address": ip,
                "nic_mac": mac, "device_type": extra.get("device_type", "PowerEdge R640"),
                "manufacture": extra.get("manufacture", "Dell")}
        if vrf:
            data["vrf"] = vrf
        self.send(self.topics.servers, sid, event("server.upserted", sid, data, version))

    def server_deleted(self, sid, version):
        self.send(self.topics.servers, sid, event("server.deleted", sid, None, version))

    def subnet(self, sid, cidr, pools, version, vrf=None, name=None):
        data = {"name": name or "net-" + sid, "cidr": cidr, "static_ip_pools": pools}
        if vrf:
            data["vrf"] = vrf
        self.send(self.topics.subnets, sid, event("subnet.upserted", sid, data, version))

    def subnet_deleted(self, sid, version):
        self.send(self.topics.subnets, sid, event("subnet.deleted", sid, None, version))

    def mark(self, address, status, version, description=None):
        data = {"address": address, "status": status}
        if description is not None:
            data["description"] = description
        self.send(self.topics.marks, address, event("mark.set", address, data, version))

    def mark_cleared(self, address, version):
        self.send(self.topics.marks, address, event("mark.cleared", address, None, version))

    def settle(self, timeout=120):
        """Waits until every message sent so far is committed."""
        self.kafka.flush()
        wait_caught_up(self.db, self.daemon.group, self.sent, timeout)

    def row(self, ip, vrf=""):
        rows = self.db.query(
            "SELECT subnet_id, status, ip_type, server_id, hostname, mac_address, "
            "platform, manufacturer, description FROM ipam "
            "WHERE vrf = %s AND ip_address = %s", (vrf, ip))
        if not rows:
            return None
        keys = ("subnet_id", "status", "ip_type", "server_id", "hostname",
                "mac_address", "platform", "manufacturer", "description")
        return dict(zip(keys, rows[0]))

    def count(self, where="true", args=None):
        return self.db.scalar("SELECT count(*) FROM ipam WHERE " + where, args)

    def close(self):
        status = self.daemon.stop()
        self.daemon.close()
        self.db.close()
        assert status == 0, status


def test_workflows_of_the_earlier_system():
    """The four workflows the ORM signals handled, now from events."""
    run = Run()
    try:
        # A subnet with a static pool creates 50 available static rows.
        run.subnet("1", "192.168.1.0/24", ["192.168.1.1-192.168.1.50"], 1)
        run.settle()
        assert run.count() == 50
        assert run.count("status = 'available' AND ip_type = 'static' AND subnet_id = '1'") == 50
        assert run.row("192.168.1.0") is None and run.row("192.168.1.51") is None

        # A server given .10 allocates it with its device fields.
        run.server("7", "192.168.1.10", 1, hostname="web-01", mac="AA-BB-CC-00-11-22")
        run.settle()
        assert run.row("192.168.1.10") == {
            "subnet_id": "1", "status": "allocated", "ip_type": "static",
            "server_id": "7", "hostname": "web-01", "mac_address": "aa:bb:cc:00:11:22",
            "platform": "PowerEdge R640", "manufacturer": "Dell", "description": None}

        # A reserved mark with a description.
        run.mark("192.168.1.20", "reserved", 1, description="gateway")
        run.settle()
        assert run.row("192.168.1.20")["status"] == "reserved"
        assert run.row("192.168.1.20")["description"] == "gateway"

        # The server moves from .10 to .11: .10 is freed, .11 taken.
        run.server("7", "192.168.1.11", 2, hostname="web-01", mac="aa:bb:cc:00:11:22")
        run.settle()
        freed = run.row("192.168.1.10")
        assert freed["status"] == "available" and freed["ip_type"] == "static"
        assert freed["server_id"] is None and freed["hostname"] is None
        assert freed["mac_address"] is None and freed["platform"] is None
        assert run.row("192.168.1.11")["server_id"] == "7"

        # A dhcp server (outside the pool) gets a dhcp row.
        run.server("8", "192.168.1.100", 1)
        run.settle()
        assert run.row("192.168.1.100")["ip_type"] == "dhcp"
        assert run.row("192.168.1.100")["status"] == "allocated"

        # Deleting servers frees the static address and removes the dhcp one.
        run.server_deleted("7", 3)
        run.server_deleted("8", 2)
        run.settle()
        assert run.row("192.168.1.11")["status"] == "available"
        assert run.row("192.168.1.11")["hostname"] is None
        assert run.row("192.168.1.100") is None
        assert run.count() == 50

        # A stale upsert (older version) cannot bring the server back.
        run.server("7", "192.168.1.12", 2)
        run.settle()
        assert run.row("192.168.1.12")["status"] == "available"

        # Clearing the mark returns .20 to available without a description.
        run.mark_cleared("192.168.1.20", 2)
        run.settle()
        assert run.row("192.168.1.20")["status"] == "available"
        assert run.row("192.168.1.20")["description"] is None

        # Every change is in the audit history with the event that made it
        # (the insert may be that of a run of pool addresses).
        audit = run.db.query(
            "SELECT action, source_topic, source_partition, source_offset, "
            "before->>'status', after->>'status' FROM ipamd.audit "
            "WHERE '192.168.1.10' BETWEEN ip_address AND coalesce(ip_last, ip_address) "
            "ORDER BY id")
        assert [(a[0], a[4], a[5]) for a in audit] == [
            ("insert", None, "available"), ("update", "available", "allocated"),
            ("update", "allocated", "available")], audit
        assert audit[1][1] == run.topics.servers and audit[1][3] == 0
        assert audit[2][1] == run.topics.servers and audit[2][3] == 1
        assert run.db.scalar("SELECT count(*) FROM ipamd.audit WHERE "
                             "ip_address = '192.168.1.100'") == 2
        # The database refuses what must never hold.
        for bad in ("UPDATE ipam_state.address SET status = 'lent' WHERE ip_address = '192.168.1.1'",
                    "UPDATE ipam_state.address SET description = 'x' WHERE ip_address = '192.168.1.1'",
                    "INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type) "
                    "VALUES ('192.168.1.1', '1', 'available', 'static')"):
            try:
                run.db.query(bad)
            except Exception as error:  # psycopg2.IntegrityError and kin
                assert "violates" in str(error), error
            else:
                raise AssertionError("accepted: " + bad)
    finally:
        run.close()


def test_ipv6_nested_subnets_and_moves():
    """Longest prefix wins, deletion moves addresses to the enclosing subnet,
    a subnet after its servers, pool edits, IPv6 and vrfs."""
    run = Run()
    try:
        # A server whose subnet has not arrived yet has no row...
        run.server("1", "172.16.0.5", 1)
        run.settle()
        assert run.count() == 0
        # ...until the subnet arrives.
        run.subnet("s172", "172.16.0.0/24", [], 1)
        run.settle()
        assert run.row("172.16.0.5")["ip_type"] == "dhcp"

        run.subnet("outer", "10.1.0.0/16", ["10.1.0.10-10.1.0.20", "10.1.2.1-10.1.2.9"], 1)
        run.subnet("inner", "10.1.2.0/24", ["10.1.2.1-10.1.2.5"], 1)
        run.server("2", "10.1.2.3", 1)
        run.server("3", "10.1.2.7", 1)
        run.server("4", "10.1.5.5", 1)
        run.settle()
        assert run.row("10.1.2.3")["subnet_id"] == "inner"
        assert run.row("10.1.2.3")["ip_type"] == "static"
        # .7 is in outer's pool, but its home is inner, where it is not pooled.
        assert run.row("10.1.2.7")["subnet_id"] == "inner"
        assert run.row("10.1.2.7")["ip_type"] == "dhcp"
        assert run.row("10.1.2.8") is None
        assert run.row("10.1.5.5")["subnet_id"] == "outer"
        assert run.count("subnet_id = 'inner'") == 6   # 5 pool + server at .7

        # Deleting the nested subnet moves its addresses to the enclosing one.
        run.subnet_deleted("inner", 2)
        run.settle()
        assert run.row("10.1.2.3")["subnet_id"] == "outer"
        assert run.row("10.1.2.3")["ip_type"] == "static"   # in outer's pool
        assert run.row("10.1.2.8")["status"] == "available"
        assert run.count("subnet_id = 'inner'") == 0

        # Pool edits: rows appear and go.
        run.subnet("outer", "10.1.0.0/16", ["10.1.0.10-10.1.0.12"], 2)
        run.settle()
        assert run.row("10.1.0.13") is None
        assert run.row("10.1.2.8") is None
        assert run.row("10.1.2.3")["ip_type"] == "dhcp"     # the server keeps it
        assert run.count("subnet_id = 'outer' AND ip_type = 'static'") == 3

        # IPv6 with a CIDR pool, and a server there.
        run.subnet("v6", "2001:db8:1::/64", ["2001:db8:1::/124"], 1)
        run.server("6", "2001:db8:1::abcd", 1)
        run.settle()
        assert run.count("family(ip_address) = 6 AND ip_type = 'static'") == 16
        assert run.row("2001:db8:1::abcd")["status"] == "allocated"
        # A /31 keeps both addresses; a /30 loses network and broadcast.
        run.subnet("p2p", "192.0.2.0/31", ["192.0.2.0/31"], 1)
        run.subnet("p30", "192.0.2.4/30", ["192.0.2.4/30"], 1)
        run.settle()
        assert run.count("subnet_id = 'p2p'") == 2
        assert sorted(r[0] for r in run.db.query(
            "SELECT host(ip_address) FROM ipam WHERE subnet_id = 'p30'")) == \
            ["192.0.2.5", "192.0.2.6"]

        # The same address in another vrf is another row.
        run.subnet("blue", "10.1.0.0/16", [], 1, vrf="blue")
        run.server("9", "10.1.2.3", 1, vrf="blue")
        run.settle()
        assert run.row("10.1.2.3", vrf="blue")["server_id"] == "9"
        assert run.row("10.1.2.3")["server_id"] == "2"
    finally:
        run.close()


def test_conflicts_are_reported():
    """Conflicts go to the conflict table and the log, never resolved silently."""
    run = Run()
    try:
        run.subnet("1", "192.168.7.0/24", ["192.168.7.1-192.168.7.99"], 1)
        run.subnet("2", "192.168.7.0/24", [], 1)          # a duplicate
        run.subnet("3", "192.168.7.64/26", [], 1)          # shadows part of 1's pool
        run.server("10", "192.168.7.5", 1)
        run.server("9", "192.168.7.5", 1)                 # two servers, one address
        run.mark("192.168.7.6", "reserved", 1, description="lab")
        run.server("11", "192.168.7.6", 1)                # a server on a reserved address
        run.mark("192.168.7.7", "quarantine", 1)
        run.server("12", "192.168.7.7", 1)
        run.settle()
        kinds = {(r[0], r[1]) for r in run.db.query(
            "SELECT kind, coalesce(host(ip_address), subnet_id) FROM ipam_conflict")}
        assert kinds == {("several_servers", "192.168.7.5"),
                         ("server_on_reserved", "192.168.7.6"),
                         ("server_on_quarantine", "192.168.7.7"),
                         ("duplicate_subnet", "2"), ("pool_shadowed", "1")}, kinds
        # The lowest id holds a shared address; quarantine outranks allocated.
        assert run.row("192.168.7.5")["server_id"] == "9"
        assert run.row("192.168.7.6")["status"] == "allocated"
        assert run.row("192.168.7.7")["status"] == "quarantine"
        assert run.row("192.168.7.7")["server_id"] == "12"
        run.daemon.wait_log(r"<4>conflict several_servers: servers 9, 10 share 192\.168\.7\.5",
                            timeout=15)
        # Resolving a conflict removes it.
        run.server("10", "192.168.7.50", 2)
        run.settle()
        assert run.db.scalar("SELECT count(*) FROM ipam_conflict WHERE kind = 'several_servers'") == 0
    finally:
        run.close()


def fixture_messages(path):
    with open(path) as f:
        spec = json.load(f)
    for message in spec["messages"]:
        key = message.get("key")
        if key is not None and not isinstance(key, str):
            key = json.dumps(key, separators=(",", ":"))
        if "value_text" in message:
            value = message["value_text"]
        elif message.get("value") is None:
            value = None
        else:
            value = json.dumps(message["value"], separators=(",", ":"))
        yield message.get("entity", spec.get("entity")), key, value, message


def test_debezium_through_kafka():
    """Debezium fixtures (c/u/r/d, tombstones, a primary-key change, with and
    without the schema wrapper, JSON columns as strings) through Kafka."""
    run = Run(formats={"server": "debezium", "subnet": "debezium"})
    try:
        expected_dead = 0
        final = {}
        files = sorted(f for f in os.listdir(os.path.join(FIXTURES, "debezium"))
                       if f.endswith(".json") and f != "column-mapping.json")
        for name in files:
            for entity, key, value, message in fixture_messages(
                    os.path.join(FIXTURES, "debezium", name)):
                # Marks have no Debezium topic; limits and the column
                # mapping here are the defaults.
                if entity == "mark" or "limits" in message or "columns" in message:
                    continue
                topic = run.topics.servers if entity == "server" else run.topics.subnets
                headers = message.get("headers")
                if isinstance(headers, dict):
                    headers = [(k, v.encode()) for k, v in headers.items()]
                run.send(topic, key, value, headers=headers)
                expect = message.get("expect", {})
                if expect.get("result") == "error":
                    expected_dead += 1
                elif expect.get("result", "ok") == "ok" and expect.get("entity") == "server":
                    final[expect["id"]] = expect
        run.settle()
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == expected_dead
        rows = {r[0]: r for r in run.db.query(
            "SELECT id, deleted, hostname, host(ip_address) FROM ipam_state.server")}
        assert final, "the fixtures hold server changes"
        for sid, expect in final.items():
            if expect["op"] == "delete":
                # A delete is a tombstone with its version; the Kafka
                # tombstone after it forgets the entity altogether.
                assert sid not in rows or rows[sid][1], (sid, rows[sid])
                continue
            assert sid in rows, (sid, rows)
            _, deleted, hostname, ip = rows[sid]
            assert not deleted and hostname == expect.get("hostname"), (sid, rows[sid], expect)
            assert ip == expect.get("ip"), (sid, rows[sid], expect)
    finally:
        run.close()


def debezium_change(table, lsn, op, after):
    """A Debezium change of a row of the inventory (no schema wrapper)."""
    return json.dumps({"before": None, "after": after, "op": op,
                       "ts_ms": 1763632000345,
                       "source": {"connector": "postgresql", "db": "inventory",
                                  "schema": "public", "table": table,
                                  "snapshot": "false", "lsn": lsn}})


def debezium_subnet(sid, lsn, op, cidr, pools, vrf=None):
    """A Debezium change of a subnet row; pools None stands for the TOAST
    placeholder of an unchanged pool list."""
    after = {"id": sid, "name": "net-%d" % sid, "cidr": cidr,
             "static_ip_pools": "__debezium_unavailable_value" if pools is None
             else json.dumps(pools)}
    if vrf is not None:
        after["vrf"] = vrf
    return json.dumps({"id": sid}), debezium_change("subnets", lsn, op, after)


def debezium_server_change(sid, lsn, op, ip, hostname=None):
    """A Debezium change of a server row; hostname
    "__debezium_unavailable_value" is the TOAST placeholder."""
    after = {"id": sid, "hostname": hostname or "h%d" % sid, "ip_address": ip,
             "nic_mac": None, "device_type": "vm", "manufacture": "x"}
    return json.dumps({"id": sid}), debezium_change("servers", lsn, op, after)


def debezium_truncate(table, lsn):
    """A Debezium truncate of a table (op t: no row, no key)."""
    return debezium_change(table, lsn, "t", None)


def test_a_snapshot_taken_again_is_told_and_the_next_table_of_one_is_not():
    """A topic that carries two tables (a router): the first snapshot's
    first record at offset 0, the second table's first record after
    records of the same snapshot (their lsn; the one right before it a
    dead letter) -- neither is told.  A snapshot taken again after
    streamed changes is told once, naming the topic, partition and offset,
    and counted."""
    run = Run(formats={"server": "debezium", "subnet": "debezium"})
    try:
        def snap(table, sid, lsn, mark, ip=None):
            after = {"id": sid, "hostname": "h%d" % sid,
                     "ip_address": ip or "127.85.0.%d" % sid,
                     "nic_mac": None, "device_type": "vm", "manufacture": "x"}
            body = json.loads(debezium_change(table, lsn, "r", after))
            body["source"]["snapshot"] = mark
            run.send(run.topics.servers, json.dumps({"id": sid}), json.dumps(body))
        snap("servers", 1, 500, "first")
        snap("servers", 2, 500, "true")
        snap("servers", 3, 500, "last_in_data_collection", ip="not an address")
        snap("servers_b", 11, 500, "first_in_data_collection")
        snap("servers_b", 12, 500, "last")
        run.send(run.topics.servers, *debezium_server_change(1, 600, "u", "127.85.0.1",
                                                             hostname="streamed"))
        snap("servers", 1, 700, "first")
        snap("servers", 2, 700, "last_in_data_collection")
        run.settle()
        told = re.findall(r"debezium: %s\[0\]: a snapshot begins at offset (\d+), not at "
                          r"the partition's start" % re.escape(run.topics.servers),
                          run.daemon.log())
        assert told == ["6"], told
        assert metric(run.daemon, "ipam_syncd_debezium_snapshots_again_total") == 1
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter WHERE \"offset\" = 2") == 1
    finally:
        run.close()


def test_a_kept_field_is_not_taken_from_a_stale_event_of_the_batch():
    """A server stored at lsn 200; then, in one batch, a lagging change
    at lsn 100 (sent whole) and one at lsn 300 that keeps its hostname (a
    TOAST placeholder).  One by one, lsn 100 is stale and lsn 300 keeps
    the stored hostname; so it is in one batch (the batch took the
    hostname of lsn 100, which it could not know to be stale).  Also a
    subnet's kept pools, a lagging delete (stale: the stored hostname is
    kept; not stale: none is left), and a change that is not stale
    against an older stored version."""
    run = Run(formats={"server": "debezium", "subnet": "debezium"},
              config={"consumer": {"batch_max_wait_ms": "500"}})
    try:
        run.send(run.topics.subnets, *debezium_subnet(
            1, 100, "c", "127.92.0.0/24", ["127.92.0.1-127.92.0.9"]))
        run.send(run.topics.servers, *debezium_server_change(
            7, 200, "c", "127.92.0.7", hostname="stored-200"))
        run.send(run.topics.servers, *debezium_server_change(
            8, 50, "c", "127.92.0.8", hostname="stored-50"))
        run.send(run.topics.servers, *debezium_server_change(
            10, 200, "c", "127.92.0.10", hostname="stored-200"))
        run.send(run.topics.servers, *debezium_server_change(
            11, 50, "c", "127.92.0.11", hostname="stored-50"))
        run.settle()
        placeholder = "__debezium_unavailable_value"
        run.send(run.topics.servers, *debezium_server_change(
            7, 100, "u", "127.92.0.7", hostname="lagging-100"))
        run.send(run.topics.servers, *debezium_server_change(
            7, 300, "u", "127.92.0.7", hostname=placeholder))
        run.send(run.topics.servers, *debezium_server_change(
            8, 100, "u", "127.92.0.8", hostname="newer-100"))
        run.send(run.topics.servers, *debezium_server_change(
            8, 300, "u", "127.92.0.8", hostname=placeholder))
        # A lagging delete: stale against lsn 200, not against lsn 50.
        for sid in (10, 11):
            run.send(run.topics.servers, json.dumps({"id": sid}),
                     debezium_change("servers", 100, "d", None))
            run.send(run.topics.servers, *debezium_server_change(
                sid, 300, "u", "127.92.0.%d" % sid, hostname=placeholder))
        # Subnet 1 stored at lsn 100: a lagging lsn 60 with other pools,
        # then lsn 300 keeping them.
        run.send(run.topics.subnets, *debezium_subnet(
            1, 60, "u", "127.92.0.0/24", ["127.92.0.1-127.92.0.3"]))
        run.send(run.topics.subnets, *debezium_subnet(
            1, 300, "u", "127.92.0.0/24", None))
        run.settle()
        # Logged once the commit's answer is read: wait for it.
        run.daemon.wait_log(r"batch of [4-9]: ", timeout=15)
        hosts = dict(run.db.query("SELECT id, hostname FROM ipam_state.server"))
        assert hosts == {"7": "stored-200", "8": "newer-100",
                         "10": "stored-200", "11": None}, hosts
        assert run.count("subnet_id = '1' AND ip_type = 'static'") == 9, \
            run.db.query("SELECT host(ip_address) FROM ipam WHERE subnet_id = '1'")
    finally:
        run.close()


def test_kept_pools_are_held_to_a_changed_cidr():
    """Pools kept from the stored subnet (a TOAST placeholder) under an
    event that changes the cidr are held to the new cidr as the decoder
    holds pools sent whole: a range reaching outside it refuses the event
    (a dead letter that names it, the subnet as it was), one inside is
    kept off the new network address, and a grown cidr keeps them as they
    were sent (the old broadcast address is a plain one now).  Also
    when the full event and the one that keeps its pools meet in a batch.
    Pools kept by a subnet never stored are left empty, with a warning."""
    run = Run(formats={"server": "debezium", "subnet": "debezium"})
    try:
        def send(*args):
            run.send(run.topics.subnets, *debezium_subnet(*args))
        pools = ["10.40.0.1-10.40.0.254"]
        send(1, 100, "c", "10.40.0.0/24", pools)
        send(2, 110, "c", "10.41.0.0/24", ["10.41.0.128-10.41.0.254"])
        send(3, 120, "c", "10.42.0.0/24", ["10.42.0.0/24"])
        run.settle()
        # Shrunk: .1-.254 reaches past the /25's broadcast address .127.
        send(1, 200, "u", "10.40.0.0/25", None)
        # Shrunk to the half that holds the pool: off its network address.
        send(2, 210, "u", "10.41.0.128/25", None)
        # Grown: the stored pool lies inside.
        send(3, 220, "u", "10.42.0.0/23", None)
        # Whole and kept in one go (one batch, or two): the same outcome.
        send(4, 300, "c", "10.43.0.0/24", ["10.43.0.10-10.43.0.200"])
        send(4, 310, "u", "10.43.0.0/26", None)
        run.settle()
        subnets = {r[0]: r[1:] for r in run.db.query(
            "SELECT id, version, cidr::text, "
            "array(SELECT host(f) || '-' || host(l) FROM unnest(pool_first, pool_last) "
            "AS u(f, l)) FROM ipam_state.subnet")}
        assert subnets["1"] == (100, "10.40.0.0/24", ["10.40.0.1-10.40.0.254"]), subnets
        assert subnets["2"] == (210, "10.41.0.128/25", ["10.41.0.129-10.41.0.254"]), subnets
        # As "10.42.0.0/23" sent whole with its pool 10.42.0.0/24: the
        # /24's broadcast address is a plain one of the /23.
        assert subnets["3"] == (220, "10.42.0.0/23", ["10.42.0.1-10.42.0.255"]), subnets
        assert subnets["4"] == (300, "10.43.0.0/24", ["10.43.0.10-10.43.0.200"]), subnets
        letters = run.db.query("SELECT key, reason FROM ipamd.dead_letter ORDER BY \"offset\"")
        kept = (" (the pools were kept from the stored subnet, as a TOAST placeholder "
                "asks: set REPLICA IDENTITY FULL on the table to receive them whole) "
                "(SQLSTATE 22023)")
        assert [(bytes(k).decode(), r) for k, r in letters] == [
            ('{"id": 1}', "rejected by PostgreSQL: subnet 1: its static_ip_pools range "
             "10.40.0.1-10.40.0.254 reaches outside its cidr 10.40.0.0/25" + kept),
            ('{"id": 4}', "rejected by PostgreSQL: subnet 4: its static_ip_pools range "
             "10.43.0.10-10.43.0.200 reaches outside its cidr 10.43.0.0/26" + kept)], letters
        static = "SELECT count(*) FROM ipam WHERE ip_type = 'static' AND subnet_id = %s"
        assert [run.db.scalar(static, (sid,)) for sid in "1234"] == [254, 126, 255, 191]

        # An update that keeps its pools, of a subnet never stored (the
        # records before it compacted away): nothing to keep, said aloud.
        send(77, 400, "u", "10.47.0.0/24", None)
        run.settle()
        assert run.db.scalar("SELECT cardinality(pool_first) FROM ipam_state.subnet "
                             "WHERE id = '77'") == 0
        run.daemon.wait_log(r"<4>postgresql: WARNING:  subnet 77: pools not sent \(a "
                            r"Debezium TOAST placeholder\) and no stored subnet has them: "
                            r"left empty; a compacted Debezium topic needs REPLICA "
                            r"IDENTITY FULL on its table")
    finally:
        run.close()


def test_pools_kept_or_sent_whole_make_one_table():
    """The rule a TOAST placeholder for pools follows: a subnet's history
    whose unchanged pools come as the placeholder leaves the table that
    the same history sent whole leaves.  Random histories of twin subnets,
    one in vrf "whole" sent whole, one in vrf "kept" with the placeholder
    wherever its pools did not change: cidrs that grow and shrink around
    pools that hold their network and broadcast addresses, in batches of
    one event, a few or as many as come.  A change that keeps pools
    reaching outside its new cidr is a dead letter as it is sent whole.
    IPAM_TEST_SEED replays one history."""
    seed = int(os.environ.get("IPAM_TEST_SEED") or random.randrange(1 << 31))
    print("seed %d (replay with IPAM_TEST_SEED=%d)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    # Within a subnet's /25 block: (offset, prefix length).
    shapes = [(0, 25), (0, 26), (64, 26), (0, 27), (32, 27), (0, 28), (16, 28),
              (0, 29), (0, 30), (4, 30), (0, 31), (0, 32)]

    def pools_in(base, offset, length):
        """Random pools inside a cidr, ends often on its edges."""
        size = 1 << (32 - length)
        pools = []
        for _ in range(rng.randrange(0, 4)):
            a = rng.choice([0, 1, rng.randrange(size)]) % size
            b = rng.choice([size - 1, size - 2, rng.randrange(size)]) % size
            a, b = min(a, b), max(a, b)
            first = ipaddress.ip_address(base + offset + a)
            last = ipaddress.ip_address(base + offset + b)
            pools.append(str(first) if a == b else "%s-%s" % (first, last))
        return pools

    batch = rng.choice([1, 7, 5000])
    print("batches of at most %d event(s)" % batch, flush=True)
    run = Run(formats={"subnet": "debezium"},
              config={"consumer": {"batch_max_wait_ms": "20",
                                   "batch_max_events": str(batch)}})
    try:
        histories = []
        for i in range(24):
            base = int(ipaddress.ip_address("10.61.0.0")) + 128 * i
            offset, length = rng.choice(shapes)
            pools = pools_in(base, offset, length)
            events = [(offset, length, pools, True)]
            for _ in range(rng.randrange(3, 9)):
                if rng.random() < 0.6:
                    offset, length = rng.choice(shapes)
                changed = rng.random() < 0.35
                if changed:
                    # New pools lie inside the cidr: a refused change
                    # keeps the ones before it on both sides alike.
                    pools = pools_in(base, offset, length)
                events.append((offset, length, pools, changed))
            histories.append((base, events))
        # One history known to hold what the rule is about: a whole /25
        # pool (both edges), shrunk with its pools kept (refused), then
        # grown to the /25 again and shrunk within the pool.
        base = int(ipaddress.ip_address("10.61.0.0")) - 128
        histories.append((base, [(0, 25, ["10.60.255.128/25"], True),
                                 (0, 26, ["10.60.255.128/25"], False),
                                 (0, 25, ["10.60.255.128/25"], False),
                                 (0, 27, ["10.60.255.128-10.60.255.150"], True),
                                 (0, 25, ["10.60.255.128-10.60.255.150"], False)]))
        # Each subnet's events in order, the subnets interleaved.
        cursors = [0] * len(histories)
        pending = list(range(len(histories)))
        while pending:
            i = rng.choice(pending)
            v = cursors[i]
            cursors[i] += 1
            if cursors[i] == len(histories[i][1]):
                pending.remove(i)
            base, events = histories[i]
            offset, length, pools, changed = events[v]
            cidr = "%s/%d" % (ipaddress.ip_address(base + offset), length)
            op = "c" if v == 0 else "u"
            lsn = 1000 + v
            run.send(run.topics.subnets, *debezium_subnet(
                i, lsn, op, cidr, pools, vrf="whole"))
            run.send(run.topics.subnets, *debezium_subnet(
                1000 + i, lsn, op, cidr, pools if changed else None,
                vrf="kept"))
        run.settle()

        def twin(sid):
            return str(int(sid) % 1000)
        subnets = {}
        for vrf, sid, version, cidr, first, last in run.db.query(
                "SELECT vrf, id, version, cidr::text, "
                "array(SELECT host(f) FROM unnest(pool_first) f), "
                "array(SELECT host(l) FROM unnest(pool_last) l) "
                "FROM ipam_state.subnet"):
            subnets.setdefault(vrf, {})[twin(sid)] = (version, cidr, first, last)
        assert subnets["whole"] == subnets["kept"], (seed, subnets)
        rows = {}
        for vrf, addr, sid, status, ip_type in run.db.query(
                "SELECT vrf, host(ip_address), subnet_id, status, ip_type FROM ipam"):
            rows.setdefault(vrf, set()).add((addr, twin(sid), status, ip_type))
        assert rows.get("whole") == rows.get("kept"), (
            seed, sorted(rows.get("whole", set()) ^ rows.get("kept", set())))
        refused = {}
        for key, value in run.db.query(
                "SELECT key, value FROM ipamd.dead_letter"):
            change = json.loads(bytes(value).decode())
            sid = json.loads(bytes(key).decode())["id"]
            refused.setdefault(change["after"]["vrf"], set()).add(
                (sid % 1000, change["source"]["lsn"]))
        # A change refused whole is refused kept when it is applied
        # itself; within a batch only the last change of a subnet is
        # (the ones before it took no effect on either side).
        assert refused.get("kept", set()) <= refused.get("whole", set()), (
            seed, refused)
        if batch == 1:
            assert refused.get("whole") == refused.get("kept"), (seed, refused)
        # The histories did what they are for: pools held to cidrs that
        # moved, on edges, and some changes refused.
        assert refused.get("whole"), seed
        assert run.db.scalar("SELECT count(*) FROM ipam_state.subnet "
                             "WHERE pool_sent_first IS NOT NULL") > 0, seed

        # Replayed, the topics build the same state again (a rebuild's
        # batches hold each subnet's whole history).
        state = ("SELECT vrf, id, version, cidr::text, pool_first::text[], "
                 "pool_last::text[], pool_sent_first::text[], "
                 "pool_sent_last::text[] FROM ipam_state.subnet ORDER BY id")
        table = ("SELECT vrf, host(ip_address), subnet_id, status, ip_type "
                 "FROM ipam ORDER BY 1, 2")
        before = (run.db.query(state), run.db.query(table))
        assert run.daemon.stop() == 0
        from test_property import RebuildDaemon
        rebuild = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                extra_args=["--rebuild"]).start()
        try:
            rebuild.wait_log(r"rebuild: swapped in", timeout=120)
            after = (run.db.query(state), run.db.query(table))
        finally:
            assert rebuild.stop() == 0
            rebuild.close()
        assert after == before, seed
    finally:
        run.close()


def test_bad_messages_go_to_dead_letters():
    """Every bad fixture ends in the dead letters with its reason and its
    bytes, while the good events around it are applied."""
    run = Run(config={"consumer": {"max_message_bytes": "4096"}})
    try:
        bad_dir = os.path.join(FIXTURES, "cloudevents", "bad")
        expected = []
        with open(os.path.join(bad_dir, "EXPECTED")) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                name, entity, key, _, reason = line.rstrip("\n").split("\t")
                expected.append((name, entity, None if key == "-" else key, reason))
        topic_of = {"server": run.topics.servers, "subnet": run.topics.subnets,
                    "mark": run.topics.marks}
        run.subnet("1", "10.20.0.0/24", [], 1)
        for number, (name, entity, key, reason) in enumerate(expected):
            with open(os.path.join(bad_dir, name), "rb") as f:
                value = f.read()
            run.send(topic_of[entity], key, value)
            run.server("good-%d" % number, "10.20.0.%d" % (number + 1), 1)
        # Beyond the decoder: too large, and a tombstone without a key.
        run.send(run.topics.servers, "big", b"{" + b" " * 5000 + b"}")
        run.send(run.topics.servers, None, None)
        run.settle()

        letters = {(r[0], r[2]): r for r in run.db.query(
            "SELECT topic, partition, \"offset\", key, value, reason FROM ipamd.dead_letter")}
        assert len(letters) == len(expected) + 2, (len(letters), len(expected))
        by_value = {bytes(r[4]) if r[4] is not None else None: r for r in letters.values()}
        for name, entity, key, reason in expected:
            with open(os.path.join(bad_dir, name), "rb") as f:
                value = f.read()
            letter = by_value.get(value)
            assert letter is not None, name
            assert reason in letter[5], (name, reason, letter[5])
            assert letter[0] == topic_of[entity]
            assert (bytes(letter[3]).decode() if letter[3] is not None else None) == key
        reasons = [r[5] for r in letters.values()]
        assert any("5002 bytes, more than the limit of 4096" in r for r in reasons), reasons
        assert any("tombstone" in r and "key" in r for r in reasons), reasons
        assert run.count("server_id LIKE 'good-%%'") == len(expected)
        run.daemon.wait_log(r"<4>dead letter .*: cloudevents: ", timeout=15)
    finally:
        run.close()


def test_postgresql_restart_mid_stream():
    """PostgreSQL stopped and started again while events flow: the daemon
    pauses, reconnects, and nothing is lost or applied twice."""
    pg = PrivatePostgres().start()
    db = Database(host="127.0.0.1", port=pg.port)
    run = Run(db=db, partitions=2, config={"consumer": {"batch_max_events": "100"}})
    total = 3000
    try:
        run.subnet("1", "10.30.0.0/16", [], 1)
        run.kafka.flush()

        def produce():
            for i in range(total):
                run.server(str(i), "10.30.%d.%d" % (i // 250, i % 250 + 1), 1)
                if i % 200 == 0:
                    run.kafka.flush()
                    time.sleep(0.05)
            run.kafka.flush()

        producer = threading.Thread(target=produce)
        producer.start()
        wait_until(lambda: run.db.scalar("SELECT count(*) FROM ipam") > 200, 60,
                   "some events to be applied")
        pg.stop()
        time.sleep(2)
        assert run.daemon.proc.poll() is None, run.daemon.log()
        pg.start()
        producer.join()
        run.settle(timeout=180)
        assert run.count("status = 'allocated'") == total
        assert run.daemon.log_contains(r"consumption paused while PostgreSQL is away")
        assert run.daemon.log_contains(r"PostgreSQL is back")
        # Each address was inserted exactly once.
        assert run.db.scalar(
            "SELECT count(*) FROM (SELECT ip_address FROM ipamd.audit WHERE action = 'insert' "
            "GROUP BY ip_address HAVING count(*) > 1) twice") == 0
        assert run.db.scalar("SELECT count(*) FROM ipamd.audit") == total
    finally:
        run.close()
        pg.close()


def test_rejected_event_is_isolated():
    """An event PostgreSQL refuses (here a constraint the test adds) is found
    by splitting its batch and becomes a dead letter with PostgreSQL's
    reason and its bytes; every other event of the batch is applied."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "500"}})
    try:
        run.subnet("1", "10.80.0.0/24", [], 1)
        run.settle()
        run.db.query("ALTER TABLE ipam_state.server ADD CONSTRAINT no_evil "
                     "CHECK (hostname IS DISTINCT FROM 'evil')")
        for i in range(40):
            run.server(str(i), "10.80.0.%d" % (i + 1), 1,
                       hostname="evil" if i == 17 else None)
        run.settle()
        assert run.count("status = 'allocated'") == 39
        letters = run.db.query("SELECT \"offset\", convert_from(value, 'UTF8'), reason "
                               "FROM ipamd.dead_letter")
        assert len(letters) == 1, letters
        offset, value, reason = letters[0]
        assert offset == 17 and '"hostname": "evil"' in value, letters
        assert reason.startswith("rejected by PostgreSQL: ") and "no_evil" in reason, reason
        assert run.daemon.log_contains(r"splitting it")
    finally:
        run.close()


def test_a_passing_error_met_while_a_batch_is_split_is_retried_not_dead_lettered():
    """An error of unknown class is retried three times before its chunk
    is split, also when it comes while the batch is being split for
    another event's refusal: the count of failures in a row starts again
    with each new chunk.  Here server "flaky" fails three times (SQLSTATE
    XY001) once "evil" has been refused five times; it is applied, and
    only "evil" becomes a dead letter."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "2000"}})
    try:
        run.subnet("1", "10.82.0.0/24", [], 1)
        run.settle()
        run.db.query("""
            CREATE SEQUENCE public.evil_seen; CREATE SEQUENCE public.flaky_failed;
            CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.hostname = 'evil' THEN
                    PERFORM nextval('public.evil_seen');
                    RAISE EXCEPTION 'evil is refused' USING ERRCODE = 'check_violation';
                END IF;
                IF NEW.hostname = 'flaky'
                    AND (SELECT last_value FROM public.evil_seen) >= 5
                    AND nextval('public.flaky_failed') <= 3 THEN
                    RAISE EXCEPTION 'flaky is busy' USING ERRCODE = 'XY001';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ipam_state.server
                FOR EACH ROW EXECUTE FUNCTION public.refuse();""")
        for i in range(40):
            run.server(str(i), "10.82.0.%d" % (i + 1), 1,
                       hostname={0: "flaky", 1: "evil"}.get(i))
        run.settle()
        # The case happened: flaky failed three times (and then passed).
        assert run.db.scalar("SELECT last_value FROM public.flaky_failed") >= 4
        letters = run.db.query("SELECT \"offset\", reason FROM ipamd.dead_letter")
        assert len(letters) == 1 and letters[0][0] == 1, letters
        assert "evil is refused" in letters[0][1], letters
        assert run.count("status = 'allocated'") == 39
        assert run.row("10.82.0.1")["hostname"] == "flaky"
    finally:
        run.close()


def offset_moved_under_the_daemon(run, offset, net):
    """Moves the stored offset of the servers topic to offset under the
    daemon, sends servers 1..9 (offsets 1..9 after server 0), and waits for
    the refused batch and for the daemon to go on to offset 10."""
    run.db.query("UPDATE ipam_state.consumer_offset SET next_offset = %s "
                 "WHERE topic = %s", (offset, run.topics.servers))
    for i in range(1, 10):
        run.server(str(i), "%s.%d" % (net, i + 1), 1)
    run.kafka.flush()
    run.daemon.wait_log(r"offsets moved under us", 60)
    wait_until(lambda: run.db.scalar(
        "SELECT next_offset FROM ipam_state.consumer_offset WHERE topic = %s",
        (run.topics.servers,)) == 10, 60, "the daemon to go on from the moved offset")


def test_offsets_moved_by_another_owner():
    """When the stored offset moves under the daemon (another instance took
    the partition and went on), its batch is refused, it reads the offsets
    again and re-joins, and goes on from where the other one stopped."""
    run = Run()
    try:
        run.subnet("1", "10.81.0.0/24", [], 1)
        run.server("0", "10.81.0.1", 1)
        run.settle()
        # Another owner applied servers offsets 1..4 (simulated) and moved on.
        offset_moved_under_the_daemon(run, 5, "10.81.0")
        # Offsets 1..4 belong to the other owner: not applied here.
        assert sorted(int(r[0]) for r in run.db.query(
            "SELECT server_id FROM ipam WHERE status = 'allocated'")) == [0, 5, 6, 7, 8, 9]
    finally:
        run.close()


def metric(daemon, name):
    """One sample of the daemon's /metrics, as a number (None: absent)."""
    status, body = daemon.http_get("/metrics")
    assert status == 200, body
    found = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
    return float(found.group(1)) if found else None


def test_a_failed_seek_keeps_the_partition_held():
    """A seek to the stored offset that librdkafka does not do (outdated by
    a rebalance, timed out) leaves the partition held, and it is sought
    again: let go where librdkafka kept it, it would go on past the batch
    dropped for the reload, which a later batch would then commit past.
    The seeks are made to fail by seek_fails.c, loaded into the daemon."""
    library = os.environ.get("IPAM_TEST_SEEK_FAILS_LIB")
    assert library and os.path.exists(library), \
        "IPAM_TEST_SEEK_FAILS_LIB names no library: run through ctest"
    work = tempfile.mkdtemp(prefix="ipam-seek-")
    fails = os.path.join(work, "fails")
    with open(fails, "w") as f:
        f.write("0\n")
    # An ASan build's runtime wants to be first in the preloaded list.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": library, "IPAM_TEST_SEEK_FAILS": fails,
           "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    run = Run(env=env)
    try:
        run.subnet("1", "10.82.0.0/24", [], 1)
        run.server("0", "10.82.0.1", 1)
        run.settle()
        # The offset moves back under the daemon: the next batch is refused,
        # dropped, and fetched again from offset 0 once sought there; the
        # first three seeks fail.
        with open(fails, "w") as f:
            f.write("3\n")
        offset_moved_under_the_daemon(run, 0, "10.82.0")
        assert sorted(int(r[0]) for r in run.db.query(
            "SELECT server_id FROM ipam WHERE status = 'allocated'")) == list(range(10))
        log = run.daemon.log()
        assert re.search(r"kafka: seek of [^ ]+\.servers\[0\] to offset 0: .*; it stays "
                         r"held and is sought again", log), log
        assert "not done within 5000 ms" in log and "Local: Outdated" in log, log
        # Three seeks failed, each of one or more partitions, each counted.
        failed = len(re.findall(r"it stays held and is sought again", log))
        assert failed >= 3, log
        assert metric(run.daemon, "ipam_syncd_kafka_seek_failures_total") == failed
        with open(fails) as f:
            assert f.read().strip() == "0"
        # Each address was inserted once: nothing applied twice either.
        assert run.db.scalar("SELECT count(*) FROM ipamd.audit WHERE action = 'insert'") == 10
        assert run.db.scalar(
            "SELECT count(DISTINCT ip_address) FROM ipamd.audit WHERE action = 'insert'") == 10
    finally:
        run.close()
        shutil.rmtree(work, ignore_errors=True)


def test_kafka_outage():
    """A broker of the test's own goes away: the daemon stays up, says so,
    and carries on when it returns."""
    services = os.path.join(harness.ROOT, "scripts", "services")
    run_dir = tempfile.mkdtemp(prefix="ipam-kafka-")
    env = dict(os.environ, IPAM_RUN_DIR=run_dir)
    subprocess.run([services, "kafka-start"], env=env, check=True)
    try:
        port = subprocess.run([services, "kafka-port"], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:" + port
        run = Run()
        try:
            run.subnet("1", "10.70.0.0/16", [], 1)
            for i in range(100):
                run.server(str(i), "10.70.0.%d" % (i + 1), 1)
            run.settle()
            subprocess.run([services, "kafka-stop"], env=env, check=True)
            run.daemon.wait_log(r"<4>kafka: .*(Connection refused|brokers are down|Disconnected)",
                                timeout=60)
            time.sleep(3)
            assert run.daemon.proc.poll() is None, run.daemon.log()
            assert run.daemon.http_get("/healthz")[0] == 200
            subprocess.run([services, "kafka-start"], env=env, check=True)
            run.kafka = Kafka()
            for i in range(100, 200):
                run.server(str(i), "10.70.0.%d" % (i + 1), 1)
            run.settle(timeout=180)
            assert run.count("status = 'allocated'") == 200
        finally:
            run.close()
    finally:
        subprocess.run([services, "down"], env=env)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
