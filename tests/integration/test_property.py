"""Property test: random histories of servers, subnets and marks (IPv4 and
IPv6, nested subnets, two vrfs, pool edits, deletes, re-creates, duplicate
and stale deliveries, Kafka tombstones), published across three partitions
per topic in a random interleaving.  Once the daemon has caught up, `ipam`
equals the independent oracle (oracle.py); the same after a rebuild that
starts from a corrupted table.

The addresses are data only: the sweeper is off, nothing is probed.
IPAM_TEST_SEED=<n> replays one history."""

import ipaddress
import json
import os
import random
import re
import subprocess
import time
import zlib

import harness
import oracle
from harness import BINARY, Daemon, Database, Kafka, Topics, wait_until

PARTITIONS = 3
VRFS = ("", "blue")

# The subnets a history draws from, nested on purpose, in both vrfs (the
# same CIDR in "" and "blue" are different subnets).
CIDRS = (
    "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.192/30",
    "10.1.3.0/24", "10.2.0.0/24", "192.168.10.0/24", "192.168.10.64/26",
    "172.16.0.0/12", "172.16.5.0/24", "198.51.100.0/24", "203.0.113.0/28",
    "203.0.113.0/31", "203.0.113.4/32", "203.0.113.8/30",
    "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64",
    "2001:db8:1:2::80/121", "fd00:1::/64",
)

# Where servers, marks and pools crowd together: small windows that cross
# the nested subnets' edges.  The last two lie in no subnet at all.
HOT = (
    ("10.1.0.0", "10.1.0.40"), ("10.1.2.0", "10.1.2.255"),
    ("10.1.3.245", "10.1.4.10"), ("10.2.0.0", "10.2.0.255"),
    ("192.168.10.0", "192.168.10.255"), ("172.16.0.0", "172.16.0.30"),
    ("172.16.5.0", "172.16.5.80"), ("198.51.100.0", "198.51.100.60"),
    ("203.0.113.0", "203.0.113.15"),
    ("2001:db8::", "2001:db8::20"), ("2001:db8:1::", "2001:db8:1::40"),
    ("2001:db8:1:2::", "2001:db8:1:2::ff"), ("fd00:1::", "fd00:1::30"),
    ("100.64.0.1", "100.64.0.20"), ("2001:db8:ffff::1", "2001:db8:ffff::10"),
)

PLATFORMS = ("r640", "r650", "sr630", "dl360", None)
MAKERS = ("Dell", "Lenovo", "HPE", None)


def partition_of(key):
    """One key always lands in one partition."""
    return zlib.crc32(key.encode()) % PARTITIONS


def seeds():
    """The seeds of this run: IPAM_TEST_SEED replays one; otherwise
    IPAM_TEST_ROUNDS (default given by the test) random ones."""
    if os.environ.get("IPAM_TEST_SEED"):
        return [int(os.environ["IPAM_TEST_SEED"])]
    rounds = int(os.environ.get("IPAM_TEST_ROUNDS") or 0)
    return [random.randrange(1 << 31) for _ in range(rounds)] or None


def announce(seed):
    print("seed %d (replay with IPAM_TEST_SEED=%d)" % (seed, seed), flush=True)


class History:
    """A random history: per key, a sequence of versioned events; then one
    random interleaving of all keys, with Kafka offsets assigned."""

    def __init__(self, rng, servers=300, subnets=36, marks=50):
        self.rng = rng
        self.hot = [(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in HOT]
        self.serial = 0
        streams = []
        for i in range(subnets):
            streams.append(self.subnet_stream(str(i + 1)))
        for i in range(servers):
            streams.append(self.server_stream(str(i + 1)))
        seen = set()
        for _ in range(marks):
            vrf = rng.choice(VRFS) if rng.random() < 0.3 else ""
            a = self.hot_address()
            if (vrf, a) not in seen:
                seen.add((vrf, a))
                streams.append(self.mark_stream(vrf, a))
        self.messages = self.interleave(streams)

    # -- addresses ---------------------------------------------------------

    def hot_address(self, inside=None):
        """A random address of the hot windows (inside a network if given)."""
        windows = self.hot
        if inside is not None:
            windows = [(max(a, inside.network_address), min(b, inside.broadcast_address))
                       for a, b in self.hot if a.version == inside.version
                       and a <= inside.broadcast_address and b >= inside.network_address]
            if not windows:
                windows = [(inside.network_address, inside.broadcast_address)]
        a, b = self.rng.choice(windows)
        span = min(int(b) - int(a), 1 << 16)
        return ipaddress.ip_address(int(a) + self.rng.randint(0, span)) if a.version == 4 \
            else ipaddress.IPv6Address(int(a) + self.rng.randint(0, span))

    def text(self, a):
        """Addresses as a producer might write them."""
        if a.version == 6 and self.rng.random() < 0.15:
            return a.exploded
        return str(a)

    def pools(self, net):
        """0-4 valid pool entries inside net: ranges, single addresses, blocks."""
        rng, entries = self.rng, []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
            a = self.hot_address(net)
            shape = rng.random()
            if shape < 0.45:
                last = min(int(a) + rng.randint(0, 40), int(net.broadcast_address))
                b = ipaddress.ip_address(last) if a.version == 4 else ipaddress.IPv6Address(last)
                sep = rng.choice(("-", "-", " - "))
                entries.append(self.text(a) + sep + self.text(b))
            elif shape < 0.75:
                entries.append(self.text(a))
            else:
                bits = a.max_prefixlen
                length = max(net.prefixlen, bits - rng.randint(0, 5))
                block = ipaddress.ip_network("%s/%d" % (a, length), strict=False)
                entries.append(str(block))
        return entries

    # -- events ------------------------------------------------------------

    def event(self, kind, key, op, version, data):
        """One message: the oracle's event and its CloudEvents bytes."""
        self.serial += 1
        if op == "tombstone":
            value = None
        else:
            verb = {"server": ("upserted", "deleted"), "subnet": ("upserted", "deleted"),
                    "mark": ("set", "cleared")}[kind][op == "delete"]
            body = {"specversion": "1.0", "id": "ev-%d" % self.serial, "source": "test",
                    "type": "ipam.%s.%s" % (kind, verb), "subject": key,
                    "entityversion": version}
            if data is not None:
                body["data"] = data
            value = json.dumps(body)
        return [oracle.Event(kind, key, op, version, None, data), value]

    def versions(self):
        v = self.rng.randint(1, 3)
        while True:
            yield v
            v += self.rng.randint(1, 3)

    def keyed(self, kind, key, make_data, lengths=(1, 2, 2, 3, 4, 5)):
        """The stream of one key: upserts and deletes with rising versions,
        duplicate and stale deliveries, sometimes a tombstone (after which
        the key may be created again)."""
        rng, versions = self.rng, self.versions()
        stream, segment = [], []
        count = rng.choice(lengths)
        for step in range(count):
            if step and rng.random() < 0.2:
                ev = self.event(kind, key, "delete", next(versions), None)
            else:
                ev = self.event(kind, key, "upsert", next(versions), make_data(step))
            segment.append(ev)
            if rng.random() < 0.08:
                segment.append(list(rng.choice(segment)))       # duplicate
            if len(segment) > 1 and rng.random() < 0.1:
                segment.append(list(rng.choice(segment[:-1])))  # stale
            if rng.random() < 0.04:
                # A Kafka tombstone.  No late delivery of what came before it
                # follows it (that would be a resurrection, not this test).
                stream += segment + [self.event(kind, key, "tombstone", None, None)]
                segment = []
        return stream + segment

    def subnet_stream(self, key):
        rng = self.rng
        vrf = rng.choice(VRFS)
        cidr = rng.choice(CIDRS)
        state = {"cidr": cidr}

        def data(step):
            if step and rng.random() < 0.15:
                state["cidr"] = rng.choice(CIDRS)
            net = ipaddress.ip_network(state["cidr"])
            d = {"name": "net-%s-%d" % (key, step), "cidr": state["cidr"],
                 "static_ip_pools": self.pools(net)}
            if vrf or rng.random() < 0.5:
                d["vrf"] = vrf
            return d
        return self.keyed("subnet", key, data, lengths=(1, 1, 2, 3, 4))

    def server_stream(self, key):
        rng = self.rng
        vrf = "blue" if rng.random() < 0.25 else ""

        def data(step):
            r = rng.random()
            ip = None if r < 0.08 else ("" if r < 0.1 else self.text(self.hot_address()))
            m = rng.getrandbits(48)
            raw = "%012x" % m
            style = rng.random()
            if style < 0.1:
                nic = None
            elif style < 0.6:
                nic = ":".join(raw[i:i + 2] for i in range(0, 12, 2))
            elif style < 0.8:
                nic = "-".join(raw[i:i + 2] for i in range(0, 12, 2)).upper()
            else:
                nic = ".".join(raw[i:i + 4] for i in range(0, 12, 4))
            d = {"hostname": "host-%s-%d" % (key, step), "ip_address": ip,
                 "nic_mac": nic, "device_type": rng.choice(PLATFORMS),
                 "manufacture": rng.choice(MAKERS)}
            v = "blue" if (vrf == "blue") != (rng.random() < 0.05) else ""
            if v or rng.random() < 0.5:
                d["vrf"] = v
            return d
        return self.keyed("server", key, data)

    def mark_stream(self, vrf, a):
        rng = self.rng
        key = (vrf + "/" if vrf else "") + str(a)

        def data(step):
            d = {"address": str(a)}
            if vrf:
                d["vrf"] = vrf
            if rng.random() < 0.6:
                d["status"] = "reserved"
                if rng.random() < 0.8:
                    d["description"] = "reserved %s by op %d" % (a, step)
            else:
                d["status"] = "quarantine"
            return d
        return self.keyed("mark", key, data, lengths=(1, 1, 2, 3))

    # -- order -------------------------------------------------------------

    def interleave(self, streams):
        """A random merge that keeps each key's order; assigns offsets.
        Returns [(topic kind, key, partition, value, oracle event)]."""
        order = [i for i, s in enumerate(streams) for _ in s]
        self.rng.shuffle(order)
        cursors = [0] * len(streams)
        offsets = {}
        out = []
        for i in order:
            ev, value = streams[i][cursors[i]]
            cursors[i] += 1
            part = partition_of(ev.key)
            offset = offsets.get((ev.kind, part), 0)
            offsets[(ev.kind, part)] = offset + 1
            out.append((ev.kind, ev.key, part, value, ev._replace(offset=offset)))
        return out


# -- talking to the daemon ----------------------------------------------------

class Producer:
    """Publishes a history's messages and counts them per partition."""

    def __init__(self, topics):
        self.topics = topics
        self.kafka = Kafka()
        self.counts = {}
        self.events = []
        self.topic_of = {"server": topics.servers, "subnet": topics.subnets,
                         "mark": topics.marks}

    def send(self, messages):
        for kind, key, part, value, ev in messages:
            topic = self.topic_of[kind]
            self.kafka.send(topic, key, value, partition=part)
            assert self.counts.get((topic, part), 0) == ev.offset, "offsets out of step"
            self.counts[(topic, part)] = ev.offset + 1
            self.events.append(ev)
        self.kafka.flush()


class RebuildDaemon(Daemon):
    """harness.Daemon with extra command-line arguments (e.g. --rebuild)."""

    def __init__(self, *args, extra_args=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_args = list(extra_args)

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        env.update(self.extra_env)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINARY, "--config", self.config_path] + self.extra_args,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env)
        return self


def stored_offsets(db, group):
    if not db.table_exists("ipam_state.consumer_offset"):
        return {}
    return {(t, p): n for t, p, n in db.query(
        "SELECT topic, partition, next_offset FROM ipam_state.consumer_offset "
        "WHERE group_id = %s", (group,))}


def wait_caught_up(db, group, counts, daemon=None, timeout=120):
    """Waits until every partition's stored offset equals its message count."""
    def done():
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError("daemon exited (%s):\n%s"
                                 % (daemon.proc.returncode, daemon.log()[-3000:]))
        stored = stored_offsets(db, group)
        return all(stored.get(k, 0) == n for k, n in counts.items())
    wait_until(done, timeout, "offsets to reach %r" % (counts,), interval=0.2)
    stored = stored_offsets(db, group)
    extra = {k: n for k, n in stored.items() if n != counts.get(k, 0)}
    assert not extra, "stored offsets beyond what was produced: %r" % extra


def fetch_ipam(db):
    return oracle.normalize_actual(db.query(
        "SELECT vrf, host(ip_address), %s FROM ipam" % ", ".join(oracle.COLUMNS)))


def assert_matches_oracle(db, events, what):
    expected = oracle.expected_rows(oracle.fold(events))
    actual = fetch_ipam(db)
    problems = oracle.diff(expected, actual)
    dead = db.query("SELECT topic, partition, \"offset\", reason FROM ipamd.dead_letter "
                    "ORDER BY id LIMIT 5")
    if dead:
        problems += "\ndead letters (the history holds only valid events): %r" % dead
    assert not problems, "%s: ipam differs from the oracle\n%s" % (what, problems)
    # The subnet-level conflicts are refreshed only around the subnets a
    # batch changed: they must still equal a derivation from scratch.
    want = oracle.expected_subnet_conflicts(oracle.fold(events))
    have = set(db.query("SELECT vrf, subnet_id, kind FROM ipam_conflict "
                        "WHERE kind IN ('duplicate_subnet', 'pool_shadowed')"))
    assert have == want, "%s: subnet conflicts differ from the oracle: " \
        "missing %r, extra %r" % (what, sorted(want - have), sorted(have - want))
    print("%s: %d rows and %d subnet conflicts equal the oracle"
          % (what, len(expected), len(want)), flush=True)
    return expected


# The audit one row per address: a run (schema/012_audit_ranges.sql)
# spread over its addresses.
AUDIT_ROWS = ("(SELECT u.id, u.vrf, u.ip_address + g.i AS ip_address, u.action, "
              "u.before, u.after, u.source_topic, u.source_partition, u.source_offset "
              "FROM ipamd.audit u CROSS JOIN LATERAL generate_series(0, "
              "coalesce(u.ip_last - u.ip_address, 0)) AS g(i)) AS u")


def audit_problems(db, counts, limit=10):
    """What is wrong with the audit history, or "" (at most `limit` items
    each): an event's effect on one address recorded twice; a source that
    names no produced message; a row whose `before` is not its address's
    previous `after` (a change applied twice or skipped); a history that
    does not end in the current table.  A run of pool addresses written as
    one audit row (ip_last set) is read as the insert of each of them."""
    problems = []
    twice = db.query(
        "SELECT source_topic, source_partition, source_offset, vrf, host(ip_address), "
        "count(*) FROM " + AUDIT_ROWS + " WHERE source_topic IS DISTINCT FROM '(rebuild)' "
        "GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1 ORDER BY 1, 2, 3 LIMIT %s", (limit,))
    problems += ["applied twice: %r" % (r,) for r in twice]
    sources = db.query("SELECT DISTINCT source_topic, source_partition, source_offset "
                       "FROM ipamd.audit WHERE source_topic IS DISTINCT FROM '(rebuild)'")
    stray = [r for r in sources if r[2] is None or not 0 <= r[2] < counts.get(r[:2], 0)]
    problems += ["names no produced message: %r" % (r,) for r in stray[:limit]]

    def fields(image):
        return None if image is None else oracle.Row(*(image.get(c) for c in oracle.COLUMNS))
    last, breaks = {}, []
    for vrf, ip, action, before, after, topic, part, offset in db.query(
            "SELECT vrf, host(ip_address), action, before, after, source_topic, "
            "source_partition, source_offset FROM " + AUDIT_ROWS + " ORDER BY id, ip_address"):
        key = (vrf, ipaddress.ip_address(ip))
        expect = "insert" if last.get(key) is None else "update"
        if after is None:
            expect = "delete"
        if fields(before) != last.get(key) or action != expect:
            breaks.append("%s %s at %s[%s]@%s: %s, before %s, previous after %s"
                          % (vrf or '""', ip, topic, part, offset, action,
                             fields(before), last.get(key)))
        last[key] = fields(after)
    problems += ["audit chain broken: " + b for b in breaks[:limit]]
    replayed = {k: v for k, v in last.items() if v is not None}
    ending = oracle.diff(replayed, fetch_ipam(db), limit)
    if ending:
        problems.append("the audit history does not end in the table (expected = "
                        "replayed audit, actual = ipam): " + ending)
    return "\n".join(problems)


def summary(history):
    ops = {}
    for kind, _, _, _, ev in history.messages:
        ops[(kind, ev.op)] = ops.get((kind, ev.op), 0) + 1
    return ", ".join("%s %s %d" % (k, o, n) for (k, o), n in sorted(ops.items()))


def check_history(seed):
    """One round: publish a history, compare; corrupt, rebuild, compare."""
    announce(seed)
    rng = random.Random(seed)
    history = History(rng, servers=rng.randint(250, 500), subnets=rng.randint(24, 48),
                      marks=rng.randint(30, 80))
    print("%d messages: %s" % (len(history.messages), summary(history)), flush=True)
    db, topics = Database(), Topics(partitions=PARTITIONS)
    producer = Producer(topics)
    daemon = Daemon(db, topics).start()
    rebuild = None
    try:
        daemon.wait_ready()
        # In three parts, each compared once the daemon has caught up.
        cut = sorted(rng.sample(range(1, len(history.messages)), 2))
        for a, b in zip([0] + cut, cut + [len(history.messages)]):
            began = time.monotonic()
            producer.send(history.messages[a:b])
            wait_caught_up(db, daemon.group, producer.counts, daemon)
            print("caught up with %d messages in %.1f s"
                  % (b, time.monotonic() - began), flush=True)
            expected = assert_matches_oracle(db, producer.events,
                                             "after %d messages" % b)
        assert expected, "the history derived no rows at all"
        problems = audit_problems(db, producer.counts)
        assert not problems, problems

        assert daemon.stop() == 0, daemon.log()[-3000:]
        # Corrupt the live table: a row nothing derives, and a wrong hostname.
        db.query("INSERT INTO ipam_state.address (vrf, ip_address, subnet_id, status, "
                 "ip_type) VALUES ('', '10.99.99.99', '999', 'available', 'static')")
        victim = db.query("SELECT vrf, ip_address FROM ipam_state.address "
                          "WHERE server_id IS NOT NULL LIMIT 1")
        if victim:
            db.query("UPDATE ipam_state.address SET hostname = 'corrupted' "
                     "WHERE vrf = %s AND ip_address = %s", victim[0])
        assert oracle.diff(expected, fetch_ipam(db)), "the corruption did not take"

        # A rebuild folds the versions of a key as it reads them, in
        # batches bounded by what they hold after folding: small bounds
        # make the folds and the keys' versions cross many batches.
        batch_max = rng.choice([2, 5, 40, 5000])
        rebuild = RebuildDaemon(db, topics, group=daemon.group,
                                config={"consumer": {"batch_max_events": str(batch_max)}},
                                extra_args=["--rebuild"]).start()
        began = time.monotonic()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        folded = sum(int(n) for n in re.findall(
            r"\((\d+) of the events folded", rebuild.log()))
        batches = len(re.findall(r"batch of \d+: ", rebuild.log()))
        print("rebuild (batch_max_events %d) swapped in after %.1f s: %d batches, "
              "%d events folded" % (batch_max, time.monotonic() - began, batches, folded),
              flush=True)
        wait_caught_up(db, daemon.group, producer.counts, rebuild)
        assert_matches_oracle(db, producer.events, "after the rebuild")
        # Every message is counted once, folded or not.
        status, body = rebuild.http_get("/metrics")
        assert status == 200, body
        counted = sum(int(float(v)) for v in re.findall(
            r"^ipam_syncd_messages_total\{[^}]*\} (\S+)$", body, re.M))
        assert counted == sum(producer.counts.values()), (counted, producer.counts)
        assert re.search(r"^ipam_syncd_events_folded_total %d$" % folded, body, re.M), \
            (folded, re.findall(r"^ipam_syncd_events_folded.*$", body, re.M))
        assert db.scalar("SELECT count(*) FROM ipam WHERE hostname = 'corrupted' "
                         "OR ip_address = '10.99.99.99'") == 0
        # The rebuild recorded what it changed.
        assert db.scalar("SELECT count(*) FROM ipamd.audit WHERE source_topic = "
                         "'(rebuild)' AND ip_address = '10.99.99.99' AND "
                         "action = 'delete'") == 1
        assert rebuild.stop() == 0, rebuild.log()[-3000:]
    finally:
        daemon.close()
        if rebuild:
            rebuild.close()
        db.close()


def test_random_histories_match_oracle():
    """For several random histories: after catching up, and again after a
    rebuild from a corrupted table, `ipam` equals the oracle exactly."""
    for seed in seeds() or [random.randrange(1 << 31) for _ in range(8)]:
        check_history(seed)


def check_two_instances(seed):
    """One history through two daemons of one group, applying side by side."""
    announce(seed)
    rng = random.Random(seed)
    history = History(rng, servers=rng.randint(250, 400), subnets=rng.randint(24, 40),
                      marks=rng.randint(30, 60))
    db, topics = Database(), Topics(partitions=PARTITIONS)
    producer = Producer(topics)
    first = Daemon(db, topics).start()
    second = Daemon(db, topics, group=first.group).start()
    try:
        first.wait_ready()
        second.wait_ready()
        # Both must hold partitions, or this is a one-instance test.
        wait_until(lambda: "kafka: assigned" in first.log()
                   and "kafka: assigned" in second.log(), 60,
                   "both instances to hold partitions")
        producer.send(history.messages)
        wait_caught_up(db, first.group, producer.counts, first)
        assert_matches_oracle(db, producer.events, "two instances")
        problems = audit_problems(db, producer.counts)
        assert not problems, problems
        assert first.stop() == 0 and second.stop() == 0
    finally:
        first.close()
        second.close()
        db.close()


def test_two_instances_match_oracle():
    """Two instances in one group apply side by side (serialized by the
    apply lock); the table still equals the oracle."""
    for seed in seeds() or [random.randrange(1 << 31) for _ in range(3)]:
        check_two_instances(seed)


if __name__ == "__main__":
    harness.main(globals())
