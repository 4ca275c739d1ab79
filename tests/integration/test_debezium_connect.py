"""The real Debezium producer.  Kafka Connect (standalone) runs the Debezium
PostgreSQL connector (pgoutput) on a Django-shaped inventory database, in a
PostgreSQL cluster of the test's own started with wal_level=logical (the
shared cluster stays as it is); the daemon consumes the connector's topics,
and after every scenario its `ipam` view must equal the rows derived in
Python (oracle.py, from DESIGN.md) from the inventory tables themselves,
with no dead letter.

A "lane" is one inventory database with its connector, its topics, its
daemon and its own ipam database.  Lanes are independent: when a scenario
fails, the later scenarios of that lane are not run (their table would
differ already), the other lanes go on, and the test fails at the end with
every failed scenario.  One Connect process serves all lanes of a test.

Needs Java 17 and the jars of scripts/connect install (scripts/services
install fetches them); without them the tests are skipped (exit 77), except
under CI=true, where that is a failure."""

import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

import psycopg2
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import harness
import oracle
from harness import Daemon, Database, PrivatePostgres, quiet_port, unique, wait_until

CONNECT_SCRIPT = os.path.join(harness.ROOT, "scripts", "connect")
SKIP = 77   # ctest's SKIP_RETURN_CODE for these tests

# What a TOASTed column that an UPDATE left unchanged arrives as.
UNAVAILABLE = "__debezium_unavailable_value"

# The marker rows: each settle writes a new tag into both, so that seeing
# the tag in both topics means the connector has sent everything before it.
MARKER_ID = 1000000
MARKER_CIDR = "192.0.2.0/30"    # no pool, no server inside: no row

# The inventory tables as the Django application has them, and the same
# with every column renamed (and a routing domain), which the daemon reads
# through its [debezium] column mapping.
DJANGO = {"server": "overwatch_server", "sid": "id", "hostname": "hostname",
          "ip": "ip_address", "mac": "nic_mac", "platform": "device_type",
          "vendor": "manufacture", "subnet": "overwatch_subnet", "nid": "id",
          "name": "name", "cidr": "cidr", "pools": "static_ip_pools", "vrf": None}
# The same, with the pools in an array column (text[]) instead of jsonb.
DJANGO_ARRAY = dict(DJANGO, pools_type="text[]")
# The same, with numeric ids: Debezium's default decimal.handling.mode,
# precise, sends a numeric(12,2) id as the base64 of its bytes (a Kafka
# Connect Decimal, whose scale only the schema block gives) and a plain
# numeric one as {"scale": s, "value": <base64>}; the ids are their text,
# 7.00 and 7.
DJANGO_NUMERIC = dict(DJANGO, sid_type="numeric(12,2)", nid_type="numeric")
RENAMED = {"server": "hosts", "sid": "host_id", "hostname": "host_name",
           "ip": "mgmt_ip", "mac": "mac", "platform": "model", "vendor": "vendor",
           "subnet": "networks", "nid": "net_id", "name": "label", "cidr": "prefix",
           "pools": "pools", "vrf": "routing_domain"}
RENAMED_MAPPING = {
    "server_id": "host_id", "server_hostname": "host_name", "server_ip_address": "mgmt_ip",
    "server_nic_mac": "mac", "server_device_type": "model", "server_manufacture": "vendor",
    "server_vrf": "routing_domain", "subnet_id": "net_id", "subnet_name": "label",
    "subnet_cidr": "prefix", "subnet_static_ip_pools": "pools",
    "subnet_vrf": "routing_domain"}

# The inventory before the connector exists (vrf, name, cidr, pools): nested
# subnets, a pool given as a CIDR block, IPv6, and in the renamed lane a
# second routing domain.
SUBNETS = (
    ("", "office", "10.10.0.0/16", ["10.10.0.1-10.10.0.30"]),
    ("", "racks", "10.10.1.0/24", ["10.10.1.1-10.10.1.40", "10.10.1.200"]),
    ("", "mgmt", "10.10.9.0/24", ["10.10.9.1-10.10.9.5"]),
    ("", "lab", "10.20.0.0/24", ["10.20.0.0/28"]),
    ("", "v6", "2001:db8:10::/64", ["2001:db8:10::1-2001:db8:10::10"]),
    ("blue", "office-blue", "10.10.0.0/16", ["10.10.0.1-10.10.0.10"]),
)


def initial_servers():
    """(vrf, hostname, ip, mac, platform, vendor): static and dhcp addresses,
    two servers on one address, servers outside every subnet or without an
    address, IPv6."""
    rows = [("", "web-%02d" % i, "10.10.1.%d" % (i + 1), "aa:bb:cc:00:01:%02x" % i,
             "PowerEdge R640", "Dell") for i in range(1, 13)]
    rows += [("", "db-%02d" % i, "10.10.1.%d" % (100 + i), "AA-BB-CC-00-02-%02X" % i,
              "ProLiant DL380", "HPE") for i in range(1, 7)]
    rows += [("", "dhcp-%d" % i, "10.10.3.%d" % i, None, "Latitude 7440", "Dell")
             for i in range(1, 5)]
    rows += [("", "lab-%d" % i, "10.20.0.%d" % i, "aabb.cc00.03%02x" % i, "NUC", "Intel")
             for i in range(1, 6)]
    rows += [
        ("", "gw", "10.10.0.1", "02:00:00:00:00:01", "MX204", "Juniper"),
        ("", "web-dup", "10.10.1.2", "02:00:00:00:00:02", "PowerEdge R640", "Dell"),
        ("", "ipmi-1", "10.10.9.3", "02:00:00:00:00:03", "iDRAC", "Dell"),
        ("", "v6-1", "2001:db8:10::5", "02:00:00:00:00:04", "ThinkSystem SR630", "Lenovo"),
        ("", "v6-2", "2001:db8:10::99", None, "ThinkSystem SR630", "Lenovo"),
        ("", "orphan", "172.16.5.5", None, "Raspberry Pi", "RPi"),
        ("", "noip", None, None, "PowerEdge R640", "Dell"),
        ("blue", "blue-1", "10.10.0.5", "02:00:00:00:0b:01", "PowerEdge R640", "Dell"),
        ("blue", "blue-2", "10.10.1.2", "02:00:00:00:0b:02", "PowerEdge R640", "Dell"),
    ]
    return rows


# The scenarios every lane of test_debezium_connect_changes runs, in order:
# (name, statements); each statement is its own transaction unless a list
# groups several into one.  Names in braces are the lane's table and
# column names.
CHANGES = (
    ("insert, update, move and delete, one row at a time", (
        "INSERT INTO {server} ({hostname}, {ip}, {mac}, {platform}, {vendor}) "
        "VALUES ('web-new', '10.10.1.30', '02:00:00:00:00:30', 'PowerEdge R650', 'Dell')",
        "UPDATE {server} SET {hostname} = 'web-02-renamed', {platform} = 'PowerEdge R750' "
        "WHERE {hostname} = 'web-02'",
        "UPDATE {server} SET {ip} = '10.20.0.9' WHERE {hostname} = 'web-03'",
        "DELETE FROM {server} WHERE {hostname} = 'web-04'",
        "UPDATE {server} SET {ip} = NULL WHERE {hostname} = 'db-01'",
        "UPDATE {server} SET {ip} = '10.10.1.200' WHERE {hostname} = 'orphan'",
        "INSERT INTO {subnet} ({name}, {cidr}, {pools}) "
        "VALUES ('rack-b', '10.10.4.0/24', '[\"10.10.4.1-10.10.4.8\"]')",
        "UPDATE {subnet} SET {pools} = '[\"10.10.1.1-10.10.1.20\", \"10.10.1.200\"]' "
        "WHERE {name} = 'racks'",
        # Its server moves to the enclosing /16, its pool goes.
        "DELETE FROM {subnet} WHERE {name} = 'mgmt'",
    )),
    ("one bulk UPDATE renumbering a /24", (
        ["UPDATE {server} SET {ip} = {ip} + 256 WHERE {ip} << inet '10.10.1.0/24'",
         "UPDATE {subnet} SET {cidr} = '10.10.2.0/24', "
         "{pools} = '[\"10.10.2.1-10.10.2.20\", \"10.10.2.200\"]' WHERE {name} = 'racks'"],
    )),
    ("raw DELETE ... WHERE", (
        "DELETE FROM {server} WHERE {hostname} LIKE 'dhcp-%' "
        "OR {ip} << inet '2001:db8:10::/64'",
    )),
    ("INSERT ... SELECT", (
        "INSERT INTO {server} ({hostname}, {ip}, {mac}, {platform}, {vendor}) "
        "SELECT 'bulk-' || g, inet '10.20.0.20' + g, "
        "('02:00:00:00:10:' || lpad(to_hex(g), 2, '0'))::macaddr, 'ProLiant DL360', 'HPE' "
        "FROM generate_series(1, 40) g",
    )),
    # web-01 and web-dup share an address: with web-01's new id, web-dup
    # holds it.  The office subnet's rows follow its new id.
    ("primary-key changes (UPDATE of id)", (
        "UPDATE {server} SET {sid} = 9001 WHERE {hostname} = 'web-01'",
        "UPDATE {subnet} SET {nid} = 9002 WHERE {name} = 'office'",
    )),
)


def sql(text, names):
    """A statement with the lane's table and column names filled in."""
    return text.format(**names)


def connect_prerequisites():
    """The reason the tests cannot run here, or None."""
    try:
        libs = subprocess.run([CONNECT_SCRIPT, "libs"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    except OSError as error:
        return "scripts/connect cannot run: %s" % error
    if libs.returncode != 0:
        return libs.stderr.strip() or "scripts/connect libs failed"
    if shutil.which("java") is None and not glob.glob("/usr/lib/jvm/java-17-*/bin/java"):
        return "no Java 17 found (scripts/services install installs it)"
    return None


def whole_offsets_map(data):
    """True when data is one whole Java-serialized HashMap of byte arrays
    (what a standalone Connect worker writes as its offsets file) and
    nothing after it; False for a prefix of one, as a kill mid-write
    leaves it."""
    if not data or not data.startswith(b"\xac\xed\x00\x05"):
        return False
    pos = 4
    handles = []

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise EOFError
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    def utf():
        return take(struct.unpack(">H", take(2))[0]).decode()

    def classdesc():
        tag = take(1)[0]
        if tag == 0x70:                     # TC_NULL
            return None
        if tag == 0x71:                     # TC_REFERENCE
            return handles[struct.unpack(">I", take(4))[0] - 0x7E0000]
        if tag != 0x72:                     # TC_CLASSDESC
            raise ValueError("class descriptor tag %#x" % tag)
        desc = {"name": utf()}
        take(8)                             # serialVersionUID
        handles.append(desc)
        desc["flags"] = take(1)[0]
        desc["fields"] = []
        for _ in range(struct.unpack(">H", take(2))[0]):
            code = chr(take(1)[0])
            utf()
            if code in "[L":
                string = take(1)[0]
                if string == 0x74:          # TC_STRING
                    handles.append(utf())
                elif string == 0x71:
                    take(4)
                else:
                    raise ValueError("field class name tag %#x" % string)
            desc["fields"].append(code)
        if take(1)[0] != 0x78:              # no class annotations
            raise ValueError("class annotation")
        desc["super"] = classdesc()
        return desc

    def value():
        tag = take(1)[0]
        if tag == 0x70:
            return None
        if tag == 0x75:                     # TC_ARRAY, of bytes here
            desc = classdesc()
            if desc is None or desc["name"] != "[B":
                raise ValueError("array of %r" % desc)
            handles.append(None)
            take(struct.unpack(">i", take(4))[0])
            return None
        raise ValueError("object tag %#x" % tag)

    try:
        if take(1)[0] != 0x73:              # TC_OBJECT
            return False
        desc = classdesc()
        if desc is None or desc["name"] != "java.util.HashMap" or desc["super"]:
            return False
        handles.append(None)
        sizes = {"F": 4, "I": 4}
        take(sum(sizes[code] for code in desc["fields"]))
        if take(1)[0] != 0x77 or take(1)[0] != 8:   # TC_BLOCKDATA of 8 bytes
            return False
        _, size = struct.unpack(">ii", take(8))
        for _ in range(2 * size):
            value()
        return take(1)[0] == 0x78 and pos == len(data)  # TC_ENDBLOCKDATA, then nothing
    except (EOFError, ValueError, KeyError, IndexError, UnicodeDecodeError):
        return False


class Connect:
    """Kafka Connect standalone (scripts/connect run) with a REST port of its
    own and its offsets in a file, so that a restart resumes.  Connectors
    posted through REST are not kept by a standalone worker: start() posts
    them again after a restart."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ipam-connect-")
        self.port = quiet_port()
        self.worker = os.path.join(self.dir, "worker.properties")
        self.log_path = os.path.join(self.dir, "connect.log")
        self.connectors = {}
        self.proc = None
        self.log_file = None
        converter = "org.apache.kafka.connect.json.JsonConverter"
        with open(self.worker, "w") as f:
            f.write("\n".join((
                "bootstrap.servers=%s" % harness.bootstrap(),
                "key.converter=%s" % converter,
                "value.converter=%s" % converter,
                "offset.storage.file.filename=%s" % os.path.join(self.dir, "offsets"),
                # Offsets flushed often: a SIGKILL then loses half a second
                # at most, whose events are sent again after the restart.
                "offset.flush.interval.ms=500",
                "listeners=http://127.0.0.1:%d" % self.port,
                "rest.advertised.host.name=127.0.0.1",
                "rest.advertised.port=%d" % self.port,
                "plugin.discovery=service_load",
                "task.shutdown.graceful.timeout.ms=5000",
                "")))

    def start(self, timeout=120):
        """Starts the worker, waits for its REST API, posts the connectors."""
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CONNECT_SCRIPT, "run", self.worker],
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.proc.poll() is not None or self._answers(), timeout,
                   "Kafka Connect's REST API on 127.0.0.1:%d" % self.port, interval=0.2)
        if self.proc.poll() is not None:
            raise AssertionError("Kafka Connect exited with status %s:\n%s"
                                 % (self.proc.returncode, self.log_tail()))
        for name, config in self.connectors.items():
            self._post(name, config)
        return self

    def _request(self, method, path, body=None):
        """One REST call: (status, JSON body or error text)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                         data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def _answers(self):
        """True once the REST API serves its version."""
        try:
            status, body = self._request("GET", "/")
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and "version" in body

    def _post(self, name, config):
        """POST /connectors; fails unless created."""
        status, body = self._request("POST", "/connectors", {"name": name, "config": config})
        if status != 201:
            raise AssertionError("POST /connectors %s: %s %s" % (name, status, body))

    def create(self, name, config):
        """Posts a connector (and keeps it, to post it again after a restart)."""
        self.connectors[name] = config
        self._post(name, config)

    def wait_running(self, name, timeout=60):
        """Waits until the connector and its task run; fails at once on FAILED."""
        def state():
            status, body = self._request("GET", "/connectors/%s/status" % name)
            if status != 200:
                return None
            states = [body["connector"]] + body.get("tasks", [])
            failed = [s for s in states if s.get("state") == "FAILED"]
            if failed:
                raise AssertionError("connector %s failed: %s\n%s" % (
                    name, failed[0].get("trace", "")[:3000], self.log_tail()))
            return len(states) > 1 and all(s.get("state") == "RUNNING" for s in states)
        wait_until(state, timeout, "connector %s running" % name, interval=0.2)

    def kill(self):
        """SIGKILL: nothing is flushed, nothing is closed.

        A standalone worker rewrites its offsets file in place (truncated,
        then written in several writes) every offset.flush.interval.ms; a
        kill in between leaves a prefix of it, Connect then starts with no
        offsets and the connectors snapshot again.  A snapshot re-states
        the rows that exist and says nothing of those deleted meanwhile
        (docs/EVENTS.md), which is another scenario than a crash that
        resumes from its offsets: the last whole file read before the kill
        is put back then (a prefix can be as long as an older whole file:
        only its form tells)."""
        path = os.path.join(self.dir, "offsets")
        whole = None
        deadline = time.monotonic() + 10
        while whole is None:
            data = self._offsets(path)
            if whole_offsets_map(data):
                whole = data
            elif time.monotonic() > deadline:
                raise AssertionError("test setup: Connect's offsets file %s never held "
                                     "a whole map in 10 s (%d bytes)"
                                     % (path, len(data or b"")))
            else:
                time.sleep(0.01)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        left = self._offsets(path)
        if not whole_offsets_map(left):
            print("  Connect's offsets file was cut by the kill (%d bytes left); "
                  "the last whole one read (%d bytes) is put back"
                  % (len(left or b""), len(whole)), flush=True)
            with open(path, "wb") as f:
                f.write(whole)

    def forget_offsets(self):
        """Removes the offsets file of a stopped worker: its connectors
        start as new ones, and snapshot again into the same topics."""
        assert self.proc is None or self.proc.poll() is not None, "Connect still runs"
        os.remove(os.path.join(self.dir, "offsets"))

    @staticmethod
    def _offsets(path):
        """The offsets file's bytes, or None."""
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def log_tail(self, lines=60):
        """The last lines of the worker's log."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as error:
            return str(error)

    def close(self, keep):
        """Stops the worker; its folder is removed unless keep."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_file:
            self.log_file.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Inventory:
    """The inventory database of one lane, in the test's own cluster."""

    def __init__(self, pg, names):
        self.names = names
        self.db = Database(host="127.0.0.1", port=pg.port)
        vrf_column = ", %s text NOT NULL DEFAULT ''" % names["vrf"] if names["vrf"] else ""
        self.execute(sql(
            "CREATE TABLE {subnet} (%s, {name} text, {cidr} cidr, "
            "{pools} %s%s)" % (self.id_column("subnet", "nid"), self.pools_type(),
                               vrf_column), names))
        self.execute(sql(
            "CREATE TABLE {server} (%s, {hostname} text, {ip} inet, "
            "{mac} macaddr, {platform} text, {vendor} text%s)" % (
                self.id_column("server", "sid"), vrf_column), names))

    def id_column(self, table, column):
        """The primary key column of a table: serial, or of the type the
        names give (sid_type, nid_type) with a sequence of its own."""
        kind = self.names.get(column + "_type")
        name = self.names[column]
        if kind is None:
            return "%s serial PRIMARY KEY" % name
        sequence = "%s_%s_seq" % (self.names[table], name)
        self.execute("CREATE SEQUENCE %s" % sequence)
        return "%s %s PRIMARY KEY DEFAULT nextval('%s')" % (name, kind, sequence)

    def pools_type(self):
        """The type of the pools column: jsonb, or text[] where names say so."""
        return self.names.get("pools_type", "jsonb")

    def pools_value(self, pools):
        """A list of pool entries as the pools column takes it."""
        return pools if self.pools_type() == "text[]" else json.dumps(pools)

    def execute(self, statement, args=None):
        """Runs one statement (or several: one transaction); returns rows."""
        return self.db.query(statement, args)

    def connection(self):
        """A connection of its own, in a transaction until commit()."""
        return psycopg2.connect(host=self.db.host, port=self.db.port, user=self.db.user,
                                dbname=self.db.name, connect_timeout=5)

    def insert_subnet(self, vrf, name, cidr, pools, subnet_id=None):
        """Inserts a subnet (vrf only where the table has a column for it)."""
        values = {self.names["name"]: name, self.names["cidr"]: cidr,
                  self.names["pools"]: self.pools_value(pools)}
        if subnet_id is not None:
            values[self.names["nid"]] = subnet_id
        if self.names["vrf"]:
            values[self.names["vrf"]] = vrf
        self._insert(self.names["subnet"], values)

    def insert_server(self, vrf, hostname, ip, mac, platform, vendor, server_id=None):
        """Inserts a server (vrf only where the table has a column for it)."""
        n = self.names
        values = {n["hostname"]: hostname, n["ip"]: ip, n["mac"]: mac,
                  n["platform"]: platform, n["vendor"]: vendor}
        if server_id is not None:
            values[n["sid"]] = server_id
        if n["vrf"]:
            values[n["vrf"]] = vrf
        self._insert(n["server"], values)

    def _insert(self, table, values):
        """INSERT of {column: value} into table."""
        columns = list(values)
        self.execute("INSERT INTO %s (%s) VALUES (%s)" % (
            table, ", ".join(columns), ", ".join(["%s"] * len(columns))),
            [values[c] for c in columns])

    def load(self, with_vrf):
        """The initial inventory and the marker rows."""
        for vrf, name, cidr, pools in SUBNETS:
            if vrf and not with_vrf:
                continue
            self.insert_subnet(vrf, name, cidr, pools)
        for row in initial_servers():
            if row[0] and not with_vrf:
                continue
            self.insert_server(*row)
        self.insert_subnet("", "sync-0", MARKER_CIDR, [], subnet_id=MARKER_ID)
        self.insert_server("", "sync-0", None, None, None, None, server_id=MARKER_ID)

    def write_markers(self, tag):
        """Writes tag into both marker rows (creating them again after a
        TRUNCATE), in one transaction."""
        n = self.names
        self.execute(sql(
            "INSERT INTO {server} ({sid}, {hostname}) VALUES (%(id)s, %(tag)s) "
            "ON CONFLICT ({sid}) DO UPDATE SET {hostname} = EXCLUDED.{hostname}; "
            "INSERT INTO {subnet} ({nid}, {name}, {cidr}, {pools}) "
            "VALUES (%(id)s, %(tag)s, %(cidr)s, %(pools)s) "
            "ON CONFLICT ({nid}) DO UPDATE SET {name} = EXCLUDED.{name}", n),
            {"id": MARKER_ID, "tag": tag, "cidr": MARKER_CIDR, "pools": self.pools_value([])})

    def state(self):
        """The inventory as the oracle's state: every row is the latest
        version of its entity."""
        n = dict(self.names)
        n["vrf"] = n["vrf"] or "''"
        servers = {str(r[0]): oracle.Stored(None, {
            "hostname": r[1], "ip_address": r[2], "nic_mac": r[3], "device_type": r[4],
            "manufacture": r[5], "vrf": r[6]}) for r in self.execute(sql(
                "SELECT {sid}, {hostname}, host({ip}), {mac}::text, {platform}, {vendor}, "
                "{vrf} FROM {server}", n))}
        subnets = {str(r[0]): oracle.Stored(None, {
            "name": r[1], "cidr": r[2], "static_ip_pools": r[3], "vrf": r[4]})
            for r in self.execute(sql(
                "SELECT {nid}, {name}, {cidr}::text, {pools}, {vrf} FROM {subnet}", n))}
        return {"server": servers, "subnet": subnets, "mark": {}}

    def close(self):
        """Drops the database."""
        self.db.close()


class TopicReader:
    """Every message of the connector's topics, read from the beginning, so
    that the test can say what Debezium actually sent.  Values and keys are
    unwrapped from the schema envelope when there is one."""

    def __init__(self, topics):
        self.consumer = Consumer({"bootstrap.servers": harness.bootstrap(),
                                  "group.id": unique("reader"),
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in topics])
        self.messages = {t: [] for t in topics}   # topic -> [(offset, key, value)]

    @staticmethod
    def _decode(raw):
        """A key or value as JSON, without its schema envelope."""
        if raw is None:
            return None
        value = json.loads(raw)
        if isinstance(value, dict) and set(value) == {"schema", "payload"}:
            value = value["payload"]
        return value

    def pump(self, timeout=0.2):
        """Reads what has arrived (waiting up to timeout for the first)."""
        for message in self.consumer.consume(1000, timeout):
            if message.error():
                raise AssertionError("reading %s: %s" % (message.topic(), message.error()))
            self.messages[message.topic()].append(
                (message.offset(), self._decode(message.key()), self._decode(message.value())))

    def end(self, topic):
        """The offset after the last message read."""
        messages = self.messages[topic]
        return messages[-1][0] + 1 if messages else 0

    def events(self, topic):
        """The change events (tombstones left out)."""
        return [value for _, _, value in self.messages[topic] if value is not None]

    def close(self):
        """Leaves the topics."""
        self.consumer.close()


class Lane:
    """One inventory database, its connector and topics, and one daemon on a
    database of its own, checked against the derivation."""

    def __init__(self, env, label, names, schemas, mapping=None, with_vrf=False):
        self.env = env
        self.label = label
        self.names = names
        self.schemas = schemas
        self.prefix = unique("dbz")
        self.failure = None
        self.markers = 0
        self.inventory = Inventory(env.pg, names)
        self.inventory.load(with_vrf)
        self.server_topic = "%s.public.%s" % (self.prefix, names["server"])
        self.subnet_topic = "%s.public.%s" % (self.prefix, names["subnet"])
        admin = AdminClient({"bootstrap.servers": harness.bootstrap()})
        futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                                       for t in (self.server_topic, self.subnet_topic)])
        for future in futures.values():
            future.result(timeout=30)
        self.reader = TopicReader((self.server_topic, self.subnet_topic))
        self.db = Database()
        # Static membership: a daemon started again after a SIGKILL takes
        # its place in the group at once, instead of waiting for the dead
        # member's session to end.
        config = {"kafka": {"group.instance.id": unique("dbz"),
                            "session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}}
        if mapping:
            config["debezium"] = mapping
        self.daemon = Daemon(self.db, self, config=config)
        self.daemon.start().wait_ready()

    def config_value(self):
        """consumer.topics for the daemon: the connector's two topics."""
        return "%s:server:debezium, %s:subnet:debezium" % (self.server_topic,
                                                             self.subnet_topic)

    def connector_config(self):
        """The Debezium connector of this lane: its own slot, publication
        and topic prefix, TRUNCATE included, either JSON converter form."""
        converter = "org.apache.kafka.connect.json.JsonConverter"
        schemas = "true" if self.schemas else "false"
        return {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": "127.0.0.1",
            "database.port": str(self.env.pg.port),
            "database.user": "postgres",
            "database.dbname": self.inventory.db.name,
            "topic.prefix": self.prefix,
            "plugin.name": "pgoutput",
            "slot.name": self.prefix,
            "publication.name": self.prefix + "_pub",
            "publication.autocreate.mode": "filtered",
            "table.include.list": "public.%s,public.%s" % (self.names["server"],
                                                            self.names["subnet"]),
            # TRUNCATE is skipped by default.
            "skipped.operations": "none",
            "poll.interval.ms": "100",
            "key.converter": converter,
            "key.converter.schemas.enable": schemas,
            "value.converter": converter,
            "value.converter.schemas.enable": schemas,
        }

    def create_connector(self):
        """Posts the connector: its snapshot starts."""
        self.env.connect.create(self.prefix, self.connector_config())

    def run(self, statements):
        """Runs each statement (or list of statements: one transaction)."""
        for statement in statements:
            group = statement if isinstance(statement, list) else [statement]
            self.inventory.execute("; ".join(sql(s, self.names) for s in group))

    def settle(self, timeout=120):
        """Waits until the connector has sent every change committed so far
        and the daemon has committed them all: a new tag is written into
        both marker rows, and once the reader has seen it on both topics,
        the daemon's stored offsets must reach the end of what was read."""
        self.markers += 1
        tag = "sync-%d" % self.markers
        self.inventory.write_markers(tag)
        columns = {self.server_topic: self.names["hostname"],
                   self.subnet_topic: self.names["name"]}

        def tagged():
            self.reader.pump()
            return all(any(v.get("after") and v["after"].get(column) == tag
                           for v in reversed(self.reader.events(topic)))
                       for topic, column in columns.items())
        wait_until(tagged, timeout, "the connector to send marker %s (lane %s)"
                   % (tag, self.label))
        ends = {topic: self.reader.end(topic) for topic in columns}

        def committed():
            stored = dict(self.db.query(
                "SELECT topic, next_offset FROM ipam_state.consumer_offset "
                "WHERE group_id = %s AND partition = 0", (self.daemon.group,))) \
                if self.db.table_exists("ipam_state.consumer_offset") else {}
            behind = {t: (stored.get(t, 0), end) for t, end in ends.items()
                      if stored.get(t, 0) < end}
            if self.daemon.proc.poll() is not None:
                raise AssertionError("the daemon exited with status %s"
                                     % self.daemon.proc.returncode)
            return not behind or None
        wait_until(committed, timeout, "the daemon to commit offsets %s (lane %s)"
                   % (ends, self.label))

    def check(self):
        """Settles, then compares `ipam` with the derivation from the
        inventory; dead letters are failures too."""
        self.settle()
        expected = oracle.expected_rows(self.inventory.state())
        actual = oracle.normalize_actual(self.db.query(
            "SELECT vrf, host(ip_address), %s FROM ipam" % ", ".join(oracle.COLUMNS)))
        problems = oracle.diff(expected, actual)
        letters = self.db.query(
            "SELECT topic, \"offset\", reason FROM ipamd.dead_letter ORDER BY id")
        if letters:
            problems += "\n%d dead letters, the first: %s" % (
                len(letters), "; ".join("%s@%s: %s" % tuple(r) for r in letters[:3]))
        if problems:
            raise AssertionError(problems)
        if not expected:
            raise AssertionError("the derivation is empty: the scenario checks nothing")

    def step(self, results, scenario, action):
        """Runs one scenario of this lane unless an earlier one failed, and
        records the outcome."""
        if self.failure is not None:
            results.append((self.label, scenario, "not run (after %r failed)"
                            % self.failure))
            return
        began = time.monotonic()
        try:
            action()
        except AssertionError as error:
            self.failure = scenario
            results.append((self.label, scenario, "FAILED: %s" % error))
            print("  FAIL  %-9s %s (%.1f s): %s" % (self.label, scenario,
                                                    time.monotonic() - began,
                                                    str(error).split("\n")[0]), flush=True)
        else:
            results.append((self.label, scenario, "ok"))
            print("  ok    %-9s %s (%.1f s)" % (self.label, scenario,
                                               time.monotonic() - began), flush=True)

    def resent(self):
        """How many change events the reader saw more than once (Connect
        sends again what it had not flushed the offsets of)."""
        seen, again = set(), 0
        for topic in (self.server_topic, self.subnet_topic):
            for _, key, value in self.reader.messages[topic]:
                if value is None:
                    continue
                event = (topic, json.dumps(key, sort_keys=True), value["op"],
                         value["source"]["lsn"])
                again += event in seen
                seen.add(event)
        return again

    def close(self):
        """Stops the daemon (it must exit 0) and drops the databases."""
        self.reader.close()
        status = self.daemon.stop()
        self.daemon.close()
        self.db.close()
        self.inventory.close()
        if status != 0:
            raise AssertionError("the daemon of lane %s exited with %s" % (self.label, status))


class Environment:
    """The test's own PostgreSQL cluster with logical decoding, and one
    Kafka Connect worker."""

    def __enter__(self):
        """Starts the cluster and the worker."""
        # No autovacuum: nothing but the test takes transaction ids while a
        # slot is being created.
        self.pg = PrivatePostgres({"wal_level": "logical", "max_replication_slots": 20,
                                   "max_wal_senders": 20, "autovacuum": "off"}).start()
        self.connect = None
        self.lanes = []
        try:
            self.connect = Connect().start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def lane(self, *args, **kwargs):
        """A new lane, closed with the environment."""
        lane = Lane(self, *args, **kwargs)
        self.lanes.append(lane)
        return lane

    def __exit__(self, kind, value, tb):
        """Stops Connect (keeping its folder and showing its log after a
        failure), the lanes and the cluster."""
        failed = kind is not None
        if failed and self.connect is not None:
            print("---- Kafka Connect's log (%s), last lines ----\n%s"
                  % (self.connect.log_path, self.connect.log_tail()))
        errors = []
        if self.connect is not None:
            self.connect.close(keep=failed)
        for lane in self.lanes:
            try:
                lane.close()
            except AssertionError as error:
                errors.append(str(error))
        self.pg.close()
        if errors and not failed:
            raise AssertionError("; ".join(errors))
        return False


def report(results):
    """Fails with every failed scenario, after all have run."""
    failed = [r for r in results if r[2] != "ok"]
    if failed:
        raise AssertionError("%d of %d scenarios did not pass:\n%s" % (
            len(failed), len(results),
            "\n".join("- [%s] %s: %s" % r for r in failed)))


class Writer(threading.Thread):
    """Random single-row and multi-row changes to one lane's inventory, one
    transaction each, until stopped."""

    ADDRESSES = (["10.10.0.%d" % i for i in range(1, 41)]
                 + ["10.10.2.%d" % i for i in range(1, 61)]
                 + ["10.10.4.%d" % i for i in range(1, 13)]
                 + ["10.20.0.%d" % i for i in range(1, 71)]
                 + ["2001:db8:10::%x" % i for i in range(1, 21)]
                 + ["172.16.5.%d" % i for i in range(1, 5)])
    POOLS = {"racks": (["10.10.2.1-10.10.2.20"], ["10.10.2.1-10.10.2.40", "10.10.2.200"],
                       [], ["10.10.2.0/28"]),
             "rack-b": (["10.10.4.1-10.10.4.8"], ["10.10.4.1"], [])}

    def __init__(self, lane, seed):
        super().__init__(daemon=True)
        self.lane = lane
        self.names = lane.names
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.count = 0
        self.error = None

    def run(self):
        """Changes the inventory until stopped; keeps the first error."""
        conn = self.lane.inventory.connection()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.stopping.is_set():
                    self.change(cur)
                    self.count += 1
                    time.sleep(0.005)
        except Exception:
            self.error = traceback.format_exc()
        finally:
            conn.close()

    def change(self, cur):
        """One random change, in a transaction of its own."""
        n, rng = self.names, self.rng
        cur.execute(sql("SELECT {sid} FROM {server} WHERE {sid} <> %s", n), (MARKER_ID,))
        ids = [r[0] for r in cur.fetchall()]
        pick = rng.random()
        if pick < 0.35 and ids:
            cur.execute(sql("UPDATE {server} SET {ip} = %s WHERE {sid} = %s", n),
                        (rng.choice(self.ADDRESSES + [None]), rng.choice(ids)))
        elif pick < 0.45 and ids:
            cur.execute(sql("UPDATE {server} SET {hostname} = %s, {platform} = %s "
                            "WHERE {sid} = %s", n),
                        ("host-%d" % rng.randrange(10000), rng.choice(("R640", "DL360", None)),
                         rng.choice(ids)))
        elif pick < 0.60:
            cur.execute(sql("INSERT INTO {server} ({hostname}, {ip}, {mac}, {platform}, "
                            "{vendor}) VALUES (%s, %s, %s, 'R650', 'Dell')", n),
                        ("new-%d" % rng.randrange(10000), rng.choice(self.ADDRESSES),
                         "02:00:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256)
                                                              for _ in range(4))))
        elif pick < 0.70 and ids:
            cur.execute(sql("DELETE FROM {server} WHERE {sid} = %s", n), (rng.choice(ids),))
        elif pick < 0.80:
            name = rng.choice(sorted(self.POOLS))
            cur.execute(sql("UPDATE {subnet} SET {pools} = %s WHERE {name} = %s", n),
                        (json.dumps(rng.choice(self.POOLS[name])), name))
        elif pick < 0.90 and ids:
            cur.execute(sql("UPDATE {server} SET {ip} = {ip} + 1 WHERE {sid} = ANY(%s) "
                            "AND family({ip}) = 4 AND {ip} << inet '10.0.0.0/8'", n),
                        (rng.sample(ids, min(3, len(ids))),))
        elif n["vrf"] and ids:
            cur.execute(sql("UPDATE {server} SET {vrf} = %s WHERE {sid} = %s", n),
                        (rng.choice(("", "blue")), rng.choice(ids)))

    def stop(self):
        """Stops the writer; fails if it failed."""
        self.stopping.set()
        self.join(30)
        if self.error:
            raise AssertionError("the writer of lane %s failed:\n%s"
                                 % (self.lane.label, self.error))


def committed_offset_total(lane):
    """The sum of the next offsets the lane's daemon has stored."""
    if not lane.db.table_exists("ipam_state.consumer_offset"):
        return 0
    return lane.db.scalar("SELECT coalesce(sum(next_offset), 0) FROM "
                          "ipam_state.consumer_offset WHERE group_id = %s",
                          (lane.daemon.group,))


def read_total(lane):
    """How many messages the lane's topics hold, as read so far."""
    lane.reader.pump()
    return lane.reader.end(lane.server_topic) + lane.reader.end(lane.subnet_topic)


def crash_and_restart(env, lanes):
    """Connect is killed (SIGKILL) while the inventories change, comes back
    and resumes from its offsets file; each daemon is killed (SIGKILL) while
    it consumes, then started again; the inventories change all along."""
    seed = int(os.environ.get("IPAM_TEST_SEED", random.SystemRandom().randrange(1 << 30)))
    print("  crash scenario seed %d (IPAM_TEST_SEED)" % seed, flush=True)
    writers = [Writer(lane, seed + i) for i, lane in enumerate(lanes)]
    for writer in writers:
        writer.start()
    try:
        # Connect is killed once it has streamed some of the writers' changes.
        marks = {lane.label: read_total(lane) for lane in lanes}
        wait_until(lambda: all(read_total(lane) >= marks[lane.label] + 40 for lane in lanes),
                   60, "the connector to stream the writers' changes")
        env.connect.kill()
        counts = [w.count for w in writers]
        wait_until(lambda: all(w.count >= c + 30 or w.error for w, c in zip(writers, counts)),
                   60, "changes while Connect is down")
        env.connect.start()
        for lane in lanes:
            env.connect.wait_running(lane.prefix)
        # Each daemon is killed once it has committed some of what the
        # restarted connector sends, while the writers go on.
        for lane in lanes:
            before = committed_offset_total(lane)
            wait_until(lambda: committed_offset_total(lane) > before, 60,
                       "the daemon of lane %s to apply events after Connect's restart"
                       % lane.label)
            lane.daemon.kill()
        sent = {lane.label: read_total(lane) for lane in lanes}
        wait_until(lambda: all(read_total(lane) >= sent[lane.label] + 30 for lane in lanes),
                   60, "changes while the daemons are down")
        for lane in lanes:
            lane.daemon.start()
        # The restarted daemons catch up while the changes still come.
        time.sleep(1.0)
    finally:
        for writer in writers:
            writer.stop()
    for writer in writers:
        print("  %s: %d random changes" % (writer.lane.label, writer.count), flush=True)


def test_debezium_connect_changes():
    """The initial snapshot, then single-row changes, a bulk renumbering, a
    raw DELETE ... WHERE, an INSERT ... SELECT and primary-key changes, then
    Connect and the daemon killed mid-stream; on the Django tables without
    the schema envelope, on renamed columns (with a routing domain) with
    it, and with numeric ids (with it)."""
    results = []
    with Environment() as env:
        lanes = [env.lane("django", DJANGO, schemas=False),
                 env.lane("renamed", RENAMED, schemas=True, mapping=RENAMED_MAPPING,
                          with_vrf=True),
                 env.lane("numeric", DJANGO_NUMERIC, schemas=True)]
        for lane in lanes:
            lane.create_connector()
        for lane in lanes:
            env.connect.wait_running(lane.prefix)
        for lane in lanes:
            lane.step(results, "initial snapshot", lane.check)
        numeric = lanes[2]
        numeric.step(results, "the ids arrived as Kafka Connect decimals",
                     lambda: numeric_evidence(numeric))
        for scenario, statements in CHANGES:
            for lane in lanes:
                if lane.failure is None:
                    lane.run(statements)
            for lane in lanes:
                lane.step(results, scenario, lane.check)
        running = [lane for lane in lanes if lane.failure is None]
        crash = None
        if running:
            try:
                crash_and_restart(env, running)
            except AssertionError as error:
                crash = error
        for lane in lanes:
            def recovered():
                if crash is not None:
                    raise crash
                lane.check()
            lane.step(results, "Connect and the daemon killed mid-stream, then restarted",
                      recovered)
            print("  %s: the connector sent %d change events twice"
                  % (lane.label, lane.resent()), flush=True)
        report(results)


def numeric_evidence(lane):
    """The numeric lane's ids must have come as Debezium sends numeric
    columns by default (the base64 of a Connect Decimal's bytes for the
    servers' numeric(12,2), a VariableScaleDecimal object for the subnets'
    numeric), or the lane did not test what it claims."""
    lane.reader.pump()
    servers = [e["after"]["id"] for e in lane.reader.events(lane.server_topic)
               if e.get("after")]
    subnets = [e["after"]["id"] for e in lane.reader.events(lane.subnet_topic)
               if e.get("after")]
    if not (servers and subnets and all(isinstance(i, str) and not i.isdigit()
                                        for i in servers)
            and all(isinstance(i, dict) and set(i) == {"scale", "value"}
                    for i in subnets)):
        raise AssertionError("test setup: the numeric ids did not come as decimals "
                             "(servers %r, subnets %r)" % (servers[:3], subnets[:3]))


def race_snapshot(lane):
    """Creates the lane's connector so that a transaction changing server
    web-05 is open across the snapshot and decoded after it, with an LSN
    lower than the snapshot's.  PostgreSQL builds the slot's snapshot in
    three steps, each waiting for the transactions that hold an xid at its
    start: `blocker` holds the first step, `holder` the second; the change
    made during the second step is decoded (its transaction began after the
    first), precedes the consistent point (the snapshot records' LSN) and
    is invisible to the snapshot.  Returns the open transaction."""
    inventory = lane.inventory
    probe = inventory.db

    def slot_waits_for(xid):
        return probe.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                            "AND NOT granted AND transactionid::text = %s", (str(xid),))

    def xid_of(conn):
        with conn.cursor() as cur:
            cur.execute("SELECT txid_current() % 4294967296")
            return cur.fetchone()[0]

    # Begun before the connector exists (a read: no xid yet).
    change = inventory.connection()
    with change.cursor() as cur:
        cur.execute(sql("SELECT {hostname} FROM {server} WHERE {hostname} = 'web-05'",
                        lane.names))
    blocker = inventory.connection()
    holder = inventory.connection()
    try:
        blocker_xid = xid_of(blocker)
        lane.create_connector()
        wait_until(lambda: slot_waits_for(blocker_xid), 60,
                   "the slot's creation to wait for the blocker")
        holder_xid = xid_of(holder)
        blocker.commit()
        wait_until(lambda: slot_waits_for(holder_xid), 60,
                   "the slot's creation to wait for the holder")
        with change.cursor() as cur:
            cur.execute(sql("UPDATE {server} SET {hostname} = 'web-05-raced', "
                            "{ip} = '10.10.0.25' WHERE {hostname} = 'web-05'", lane.names))
        holder.commit()
    except BaseException:
        change.close()
        raise
    finally:
        blocker.close()
        holder.close()
    return change


def race_evidence(lane):
    """The streamed change of web-05 must carry a lower LSN than its
    snapshot record, or the test did not make the race it claims."""
    events = lane.reader.events(lane.server_topic)
    snapshot = [e["source"]["lsn"] for e in events if e["op"] == "r"
                and e["after"]["hostname"] == "web-05"]
    streamed = [e["source"]["lsn"] for e in events if e["op"] == "u"
                and e["after"]["hostname"] == "web-05-raced"]
    if not (snapshot and streamed and streamed[0] < snapshot[0]):
        raise AssertionError("test setup: no streamed change older than the snapshot "
                             "(snapshot LSNs %s, streamed %s)" % (snapshot, streamed))


def toast_setup(lane):
    """A subnet whose ~3 KB pool list is stored out of line (EXTERNAL: not
    compressed, so TOASTed whatever the compressor makes of it), with a
    server just outside it.  The pools hold the /24's network and
    broadcast addresses, which its pools are kept off; when the cidr grows
    to the /23, the pools kept (the placeholder) hold 10.30.0.255, a plain
    address there, as they would sent whole."""
    names = lane.names
    lane.inventory.execute(sql("ALTER TABLE {subnet} ALTER COLUMN {pools} SET STORAGE EXTERNAL",
                               names))
    lane.inventory.insert_subnet("", "big", "10.30.0.0/24",
                                 ["10.30.0.%d" % i for i in range(0, 256)])
    lane.inventory.insert_server("", "big-edge", "10.30.1.7", None, "R640", "Dell")
    size = lane.inventory.db.scalar(sql(
        "SELECT octet_length({pools}::text) FROM {subnet} WHERE {name} = 'big'", names))
    toast_table = lane.inventory.db.scalar(sql(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = '{subnet}'",
        names))
    chunks = lane.inventory.db.scalar("SELECT count(*) FROM %s" % toast_table)
    if not (size > 2500 and chunks > 0):
        raise AssertionError("test setup: the pools (%d bytes) are not TOASTed "
                             "(%d chunks)" % (size, chunks))


def toast_evidence(lane):
    """The update of the cidr must have sent the placeholder for the
    pools (in an array column, an array of it alone), or the test did not
    make the case it claims."""
    events = [e for e in lane.reader.events(lane.subnet_topic)
              if e["op"] == "u" and e["after"]["name"] == "big"]
    placeholder = [UNAVAILABLE] if lane.inventory.pools_type() == "text[]" else UNAVAILABLE
    if not events or events[-1]["after"]["static_ip_pools"] != placeholder:
        raise AssertionError("test setup: the update of the cidr did not send %s for the "
                             "pools (got %r)" % (UNAVAILABLE, [e["after"] for e in events]))


def truncate_evidence(lane):
    """A truncate event must have been sent (skipped.operations=none)."""
    if not any(e["op"] == "t" for e in lane.reader.events(lane.server_topic)):
        raise AssertionError("test setup: no truncate event (op t) was sent")


def test_debezium_connect_edge_cases():
    """Each in a lane of its own: the snapshot/stream race, an unchanged
    TOASTed pool list (jsonb, and text[] with the schema wrapper), TRUNCATE,
    inet values with a netmask."""
    results = []
    with Environment() as env:
        race = env.lane("race", DJANGO, schemas=True)
        toast = env.lane("toast", DJANGO, schemas=False)
        toast_array = env.lane("toast-array", DJANGO_ARRAY, schemas=True)
        truncate = env.lane("truncate", DJANGO, schemas=True)
        masked = env.lane("masked", DJANGO, schemas=False)
        toast_setup(toast)
        toast_setup(toast_array)
        masked.run((
            "INSERT INTO {server} ({hostname}, {ip}, {platform}, {vendor}) VALUES "
            "('masked-1', '10.10.1.50/24', 'R640', 'Dell'), "
            "('masked-2', '10.20.0.3/24', 'R640', 'Dell'), "
            "('masked-v6', '2001:db8:10::7/64', 'R640', 'Dell')",))

        # The race first, alone: every transaction of the cluster with an
        # xid holds up the creation of a slot.
        change = race_snapshot(race)
        try:
            def snapshot_taken():
                race.reader.pump()
                return any(e["source"].get("snapshot") == "last"
                           for t in (race.server_topic, race.subnet_topic)
                           for e in race.reader.events(t))
            wait_until(snapshot_taken, 120, "the race lane's snapshot")
            env.connect.wait_running(race.prefix)
            race.step(results, "snapshot taken while a transaction is open",
                      race.check)
            change.commit()
        finally:
            change.close()

        others = (toast, toast_array, truncate, masked)
        for lane in others:
            lane.create_connector()
        for lane in others:
            env.connect.wait_running(lane.prefix)

        def raced():
            race.check()
            race_evidence(race)
        race.step(results, "a change committed after the snapshot, with a lower LSN", raced)

        for lane in others:
            lane.step(results, "initial snapshot", lane.check)

        for lane in (toast, toast_array):
            def toast_update(lane=lane):
                lane.run(("UPDATE {subnet} SET {cidr} = '10.30.0.0/23' WHERE {name} = 'big'",))
                lane.check()
                toast_evidence(lane)
            lane.step(results, "UPDATE of the cidr only: the TOASTed %s pools are unchanged"
                      % lane.inventory.pools_type(), toast_update)

        def truncated():
            truncate.run(("TRUNCATE {server}",))
            truncate.check()
            truncate_evidence(truncate)
        truncate.step(results, "TRUNCATE of the server table", truncated)

        def masks():
            masked.run((
                "UPDATE {server} SET {ip} = '10.10.0.7/16' WHERE {hostname} = 'gw'",
                "UPDATE {server} SET {ip} = set_masklen({ip}, 24) "
                "WHERE {ip} << inet '10.10.1.0/24' AND family({ip}) = 4",
            ))
            masked.check()
        masked.step(results, "inet values with a netmask, inserted and updated", masks)
        report(results)


def test_debezium_a_snapshot_taken_again_is_told():
    """Connect loses its offsets (its offsets file gone, as a kill that
    cuts it leaves it) and the connector snapshots again into the same
    topics, with a row changed meanwhile: the daemon applies the snapshot,
    and tells it once for each topic, naming the topic and the offset, in
    its log and in ipam_syncd_debezium_snapshots_again_total; the first
    snapshot, at offset 0, is not told."""
    results = []
    told = r"debezium: %s\[\d+\]: a snapshot begins at offset [1-9]\d*, not at the partition's start"
    with Environment() as env:
        lane = env.lane("again", DJANGO, schemas=False)
        lane.create_connector()
        env.connect.wait_running(lane.prefix)
        lane.step(results, "initial snapshot", lane.check)

        def snapshots_again():
            status, body = lane.daemon.http_get("/metrics")
            assert status == 200, body
            found = re.search(r"^ipam_syncd_debezium_snapshots_again_total (\S+)$", body, re.M)
            assert found, "no ipam_syncd_debezium_snapshots_again_total in /metrics"
            return float(found.group(1))

        def first_not_told():
            for topic in (lane.server_topic, lane.subnet_topic):
                assert not lane.daemon.log_contains(told % re.escape(topic)), topic
            assert snapshots_again() == 0
        lane.step(results, "the first snapshot is not told", first_not_told)

        def again():
            env.connect.kill()
            env.connect.forget_offsets()
            lane.run(("UPDATE {server} SET {hostname} = 'renamed-while-down' "
                      "WHERE {hostname} = 'web-05'",))
            env.connect.start()
            env.connect.wait_running(lane.prefix)
            lane.check()
            lane.reader.pump()
            snapshot_records = [e for t in (lane.server_topic, lane.subnet_topic)
                                for e in lane.reader.events(t)
                                if e.get("source", {}).get("snapshot") in ("first",
                                                                           "first_in_data_collection")]
            assert len(snapshot_records) == 4, \
                "test setup: %d records begin a snapshot, not 2 for each of 2 topics" \
                % len(snapshot_records)
            for topic in (lane.server_topic, lane.subnet_topic):
                lane.daemon.wait_log(told % re.escape(topic), 30)
            assert snapshots_again() == 2
        lane.step(results, "a snapshot taken again is applied and told", again)
        report(results)


if __name__ == "__main__":
    harness.require_services()
    missing = connect_prerequisites()
    if missing:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            raise SystemExit("FAIL: Kafka Connect is required in CI: %s" % missing)
        print("SKIP: Kafka Connect with Debezium is not available: %s" % missing, flush=True)
        sys.exit(SKIP)
    harness.main(globals())
