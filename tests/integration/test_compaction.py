"""Compaction invariance and the order and versions contract (DESIGN.md,
"Order and versions"), against the independent oracle (oracle.py), with the
real daemon, Kafka and PostgreSQL.

A history mixes, per key, versioned and unversioned upserts and deletes,
Kafka tombstones (after which the entity is created again with versions
counting from 1), duplicates, late events (an older version, redelivered or
with other data) and versioned deletes, in structured and binary CloudEvents.
Each history is published three times, to topics of its own:

- full: every record.  A daemon applies it live; `ipam` must equal the
  oracle's derivation of the whole history applied in order, and the
  daemon's stale counter the oracle's count of stale events (each logged
  with its key and both versions).
- compacted: the last record of each key, as Kafka's log compaction leaves
  it.  `--rebuild` on the live daemon's database from these topics must give
  the oracle's derivation of the compacted history.
- compacted without tombstones (as once delete.retention.ms has passed):
  a daemon on a fresh database must give the same.

Live and rebuilt tables must differ exactly where the oracle's full and
compacted derivations differ: nowhere when every key's last record applied
live (most histories), and where a key ends with a stale record in the
histories made to (the documented limit of compaction).

There the compaction is simulated exactly (the oracle picks the last
record per key and the test publishes those to fresh topics).  One more
test leaves it to the broker: topics with cleanup.policy=compact, applied
live, then compacted by the log cleaner (its next pass, within some 15 s),
checked record by record against the simulation, then rebuilt from, offset
gaps and all.

IPAM_TEST_SEED=<n> replays one history (in test_compaction_invariance, an
odd seed is a history whose keys may end with stale records)."""

import ipaddress
import json
import random
import re
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

import harness
import oracle
import test_property
from harness import (Daemon, Database, Kafka, Topics, bootstrap, unique,
                     wait_until)
from test_property import (PARTITIONS, RebuildDaemon, announce, fetch_ipam,
                           partition_of, seeds, wait_caught_up)


# -- histories ----------------------------------------------------------------

class MixedHistory(test_property.History):
    """A random history whose keys mix versioned and unversioned events.
    The address, pool and entity generators are test_property.History's;
    the stream of each key and the wire form are this class's.

    stale_tails: how many keys of each kind end with a stale record (a late
    older upsert after a newer upsert or a versioned delete); every other
    key's last record applies live."""

    def __init__(self, rng, servers, subnets, marks, stale_tails=0, binary=0.15):
        self.rng = rng
        self.hot = [(ipaddress.ip_address(a), ipaddress.ip_address(b))
                    for a, b in test_property.HOT]
        self.serial = 0
        self.binary = binary
        self.tails_left = {kind: stale_tails for kind in oracle.KINDS}
        streams = []
        for i in range(subnets):
            streams.append(self.subnet_stream("net-%d" % (i + 1)))
        for i in range(servers):
            streams.append(self.server_stream("srv-%d" % (i + 1)))
        seen = set()
        for _ in range(marks):
            vrf = rng.choice(test_property.VRFS) if rng.random() < 0.3 else ""
            a = self.hot_address()
            if (vrf, a) not in seen:
                seen.add((vrf, a))
                streams.append(self.mark_stream(vrf, a))
        self.messages = self.interleave(streams)

    def event(self, kind, key, op, version, data):
        """One record: the oracle's event and its value (None for a Kafka
        tombstone; (headers, data) for binary mode; else structured JSON).
        Without a version the event carries no entityversion at all."""
        self.serial += 1
        ev = oracle.Event(kind, key, op, version, None, data)
        if op == "tombstone":
            return [ev, None]
        verb = {"server": ("upserted", "deleted"), "subnet": ("upserted", "deleted"),
                "mark": ("set", "cleared")}[kind][op == "delete"]
        attributes = {"specversion": "1.0", "id": "ev-%d" % self.serial,
                      "source": "test", "type": "ipam.%s.%s" % (kind, verb),
                      "subject": key}
        if version is not None:
            attributes["entityversion"] = version
        # A delete has no data, and an empty value would be a tombstone:
        # only upserts go in binary mode.
        if op == "upsert" and self.rng.random() < self.binary:
            headers = [("ce_" + name, str(value).encode())
                       for name, value in attributes.items()]
            return [ev, (headers, json.dumps(data))]
        body = dict(attributes)
        if data is not None:
            body["data"] = data
        return [ev, json.dumps(body)]

    def keyed(self, kind, key, make_data, lengths=(2, 3, 4, 5, 6)):
        """The stream of one key: upserts and deletes, each with or
        without a version (a key switches now and then), Kafka tombstones
        (the entity is then created again with versions from 1),
        duplicates and late events; then the tail (see finish)."""
        rng = self.rng
        stream, older = [], []
        counter = 0             # the producer's version counter
        versioned = rng.random() < 0.7
        steps = rng.choice(lengths)
        for n in range(steps):
            if rng.random() < 0.15:
                versioned = not versioned
            r = rng.random()
            if n and r < 0.08:
                stream.append(self.event(kind, key, "tombstone", None, None))
                counter = 0
                # Now and then something from before the tombstone still
                # comes late: it applies, the key being forgotten.
                if rng.random() < 0.8:
                    older = []
                continue
            counter += rng.randint(1, 2)
            op = "delete" if n and r < 0.25 else "upsert"
            record = self.event(kind, key, op, counter if versioned else None,
                                make_data(n) if op == "upsert" else None)
            stream.append(record)
            if versioned:
                older.append(record)
            elif op == "delete" and rng.random() < 0.5:
                counter = 0     # an unversioned delete forgets the key too
            if rng.random() < 0.08:
                stream.append(list(record))                 # duplicate
            if older and rng.random() < 0.15:
                stream.append(self.late(kind, key, older, make_data, n))
        return self.finish(kind, key, stream, make_data, steps)

    def late(self, kind, key, older, make_data, n):
        """A late event: an earlier versioned record delivered again, or an
        upsert with an earlier version and other data."""
        earlier = self.rng.choice(older)
        if earlier[0].op != "upsert" or self.rng.random() < 0.5:
            return list(earlier)
        return self.event(kind, key, "upsert", earlier[0].version, make_data(n + 100))

    def finish(self, kind, key, stream, make_data, steps):
        """Makes the key end as asked: with a stale record (while the kind's
        quota of stale tails lasts), or with one that applies."""
        rng = self.rng
        table = {}
        verdicts = [oracle.step(table, record[0]) for record in stream]
        top = max([r[0].version for r in stream if r[0].version is not None] or [0])
        if self.tails_left[kind] > 0 and rng.random() < 0.5:
            self.tails_left[kind] -= 1
            newest = top + 2
            if rng.random() < 0.5:
                stream.append(self.event(kind, key, "upsert", newest,
                                         make_data(steps)))
            else:
                stream.append(self.event(kind, key, "delete", newest, None))
            stream.append(self.event(kind, key, "upsert", newest - 1,
                                     make_data(steps + 1)))
        elif verdicts[-1] == oracle.STALE:
            stream.append(self.event(kind, key, "upsert", top + 1,
                                     make_data(steps)))
        return stream


def renumber(messages):
    """The same records with the offsets they get in topics of their own."""
    offsets, out = {}, []
    for kind, key, part, value, ev in messages:
        offset = offsets.get((kind, part), 0)
        offsets[(kind, part)] = offset + 1
        out.append((kind, key, part, value, ev._replace(offset=offset)))
    return out


def compacted(messages, drop_tombstones=False):
    """What log compaction leaves of messages, with its own offsets."""
    kept = oracle.compact([m[4] for m in messages], drop_tombstones)
    return renumber([messages[i] for i in kept])


# -- publishing and reading ---------------------------------------------------

def topic_of(topics, kind):
    return {"server": topics.servers, "subnet": topics.subnets,
            "mark": topics.marks}[kind]


def publish(kafka, topics, messages, counts=None):
    """Produces messages to their partitions and waits for the broker;
    returns counts ({(topic, partition): messages}, updated in place when
    given), checked against the offsets the messages expect."""
    counts = {} if counts is None else counts
    for kind, key, part, value, ev in messages:
        topic = topic_of(topics, kind)
        headers = None
        if isinstance(value, tuple):
            headers, value = value
        kafka.send(topic, key, value, headers=headers, partition=part)
        assert counts.get((topic, part), 0) == ev.offset, "offsets out of step"
        counts[(topic, part)] = ev.offset + 1
    kafka.flush()
    return counts


SAMPLE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(daemon):
    """The samples of /metrics: [(name, {label: value}, float)]."""
    status, text = daemon.http_get("/metrics")
    assert status == 200, "/metrics answered %d" % status
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            samples.append((match.group(1), dict(LABEL.findall(match.group(2) or "")),
                            float(match.group(3))))
    return samples


def stale_by_topic(samples):
    """{family: {topic: value}} of every per-topic stale counter: a family
    whose name says stale, or a sample with result="stale", with a topic
    label."""
    found = {}
    for name, labels, value in samples:
        if "topic" in labels and ("stale" in name or labels.get("result") == "stale"):
            family = found.setdefault(name, {})
            family[labels["topic"]] = family.get(labels["topic"], 0) + value
    return found


def check_stale_counter(daemon, topics, expected, failures, what):
    """The daemon's per-topic stale counter equals the oracle's count
    ({kind: n}).  Waits a little: the figures follow the commit."""
    want = {topic_of(topics, kind): n for kind, n in expected.items()}
    found = {}

    def equal():
        return all({t: int(v.get(t, 0)) for t in want} == want for v in found.values())

    def settled():
        found.clear()
        found.update(stale_by_topic(scrape(daemon)))
        # No such family at all: there is nothing to wait for.
        return not found or equal()
    try:
        wait_until(settled, 5, "the stale counter", interval=0.2)
    except AssertionError:
        pass
    if not found:
        entity = {labels.get("entity"): int(value)
                  for name, labels, value in scrape(daemon)
                  if "stale" in (name + labels.get("result", ""))}
        failures.append("%s: no per-topic stale counter in /metrics (a family "
                        "with 'stale' and a topic label); the oracle counts %r; "
                        "per entity the daemon shows %r" % (what, want, entity))
    elif not equal():
        failures.append("%s: the per-topic stale counter differs from the oracle: "
                        "expected %r, got %r" % (what, want, found))
    else:
        print("%s: stale counter %r equals the oracle" % (what, want), flush=True)


def token(text):
    """A pattern matching text as a whole token of a log line."""
    return r"(?<![\w.:/-])%s(?![\w.:/-])" % re.escape(text)


def check_stale_logged(daemon, events, stale, failures, what):
    """At least one stale event is logged with its key and both versions
    (the log is rate-limited, so not every one), on a line that says it is
    stale (or not newer, older, ignored)."""
    if not stale:
        return
    lines = [l for l in daemon.log().splitlines()
             if re.search(r"stale|not newer|older|ignor", l, re.IGNORECASE)]
    for index, stored_version in stale:
        ev = events[index]
        if any(re.search(token(ev.key), l) and re.search(token(str(ev.version)), l)
               and re.search(token(str(stored_version)), l) for l in lines):
            return
    ev, stored_version = events[stale[0][0]], stale[0][1]
    failures.append("%s: none of the %d stale events is logged with its key and "
                    "both versions (e.g. %s %s: version %s, stored %s); lines "
                    "saying stale: %r" % (what, len(stale), ev.kind, ev.key,
                                          ev.version, stored_version, lines[:3]))


def check_rows(db, expected, failures, what):
    """ipam equals the expected rows, and no event became a dead letter.
    Returns the rows read."""
    actual = fetch_ipam(db)
    problems = oracle.diff(expected, actual)
    if problems:
        failures.append("%s: ipam differs from the oracle\n%s" % (what, problems))
    else:
        print("%s: %d rows equal the oracle" % (what, len(expected)), flush=True)
    dead = db.query("SELECT topic, partition, \"offset\", reason FROM ipamd.dead_letter "
                    "ORDER BY id LIMIT 5")
    if dead:
        failures.append("%s: dead letters (every event is valid): %r" % (what, dead))
    return actual


def differing(a, b):
    """The addresses where two tables differ."""
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


# -- one case -----------------------------------------------------------------

def split(messages, sizes):
    """messages renumbered as one topic's history, cut into parts of the
    given sizes."""
    messages, parts = renumber(messages), []
    for size in sizes:
        parts.append(messages[:size])
        messages = messages[size:]
    assert not messages
    return parts


class LiveRun:
    """One live apply of a history: its topics, database and daemon, and
    the parts it is published in (the daemon catches up after each)."""

    def __init__(self, label, parts, before_part=None):
        self.label = label
        self.parts = parts
        self.before_part = before_part      # called with n before part n
        self.topics = Topics(partitions=PARTITIONS)
        self.db = Database()
        self.daemon = None
        self.counts = {}
        self.rows = None

    def check(self, kafka, failures):
        """Publishes the parts one by one; after each, ipam must equal the
        oracle of what was published; at the end the stale counter must
        equal the oracle's count, and a stale event must be logged."""
        began, done = time.monotonic(), []
        for n, part in enumerate(self.parts):
            if self.before_part:
                self.before_part(n)
            publish(kafka, self.topics, part, self.counts)
            wait_caught_up(self.db, self.daemon.group, self.counts, self.daemon,
                           timeout=60)
            done += [m[4] for m in part]
            self.rows = check_rows(self.db, oracle.expected_rows(oracle.fold(done)),
                                   failures, "%s, part %d of %d"
                                   % (self.label, n + 1, len(self.parts)))
        print("%s: caught up in %.1f s" % (self.label, time.monotonic() - began),
              flush=True)
        check_stale_counter(self.daemon, self.topics, oracle.stale_counts(done),
                            failures, self.label)
        check_stale_logged(self.daemon, done, oracle.stale_events(done), failures,
                           self.label)
        if self.daemon.stop() != 0:
            failures.append("%s: exit status %s" % (self.label,
                                                    self.daemon.proc.returncode))


def check_case(messages, what, live_parts, must_differ=False, legend=None):
    """Applies a history live (once per entry of live_parts: a label and
    the history cut in parts, each published once the daemon has caught up
    with the previous), rebuilds the first live run's database from the
    compacted history, applies the compacted history without tombstones on
    a fresh database, and compares each with the oracle.  must_differ: the
    history was made to end keys with stale records that change rows.
    Raises with every failure found."""
    full = [m[4] for m in messages]
    with_tombstones = compacted(messages)
    without_tombstones = compacted(messages, drop_tombstones=True)
    short = [m[4] for m in with_tombstones]
    shorter = [m[4] for m in without_tombstones]

    expected_full = oracle.expected_rows(oracle.fold(full))
    expected_short = oracle.expected_rows(oracle.fold(short))
    stale_tails = oracle.stale_last_records(full)
    print("%s: %d records, %d after compaction (%d without tombstones), %d stale "
          "(%r), %d keys end stale, %d expected rows live, %d rebuilt"
          % (what, len(full), len(short), len(shorter),
             sum(oracle.stale_counts(full).values()), oracle.stale_counts(full),
             len(stale_tails), len(expected_full), len(expected_short)), flush=True)

    # The oracle's own promises, before the daemon is asked anything.
    assert expected_full, "the history derives no rows at all"
    assert oracle.expected_rows(oracle.fold(shorter)) == expected_short, \
        "oracle: dropping the tombstones of a compacted history changed its rows"
    assert not any(oracle.stale_counts(short).values()), \
        "oracle: a compacted history has a stale event"
    # Where the last record applied, the whole history and its last record
    # leave the key the same.
    state_full, state_short = oracle.fold(full), oracle.fold(short)
    for kind in oracle.KINDS:
        for key in set(state_full[kind]) | set(state_short[kind]):
            if (kind, key) not in stale_tails:
                assert (oracle.live(state_full, kind).get(key)
                        == oracle.live(state_short, kind).get(key)), \
                    "oracle: %s %s differs after compaction" % (kind, key)
    if not stale_tails:
        assert expected_full == expected_short, "oracle: compaction changed the rows"
    if must_differ:
        assert expected_full != expected_short, \
            "the stale tails of this history change no row: nothing to show"
    for label, parts in live_parts:
        assert [m[4] for part in parts for m in part] == full or \
            oracle.fold([m[4] for part in parts for m in part]) == state_full, \
            "%s: not the same history" % label
    if legend:
        print("legend:\n%s" % legend, flush=True)

    failures = []
    kafka = Kafka()
    runs = [LiveRun(label, parts) for label, parts in live_parts]
    topics_short, topics_shorter = Topics(partitions=PARTITIONS), Topics(partitions=PARTITIONS)
    counts_short = publish(kafka, topics_short, with_tombstones)
    counts_shorter = publish(kafka, topics_shorter, without_tombstones)
    fresh_db = Database()
    daemons = []
    try:
        for run in runs:
            run.daemon = Daemon(run.db, run.topics).start()
            daemons.append(run.daemon)
        fresh = Daemon(fresh_db, topics_shorter).start()
        daemons.append(fresh)
        for run in runs:
            run.daemon.wait_ready()
            run.check(kafka, failures)

        what_fresh = "fresh database, compacted without tombstones"
        wait_caught_up(fresh_db, fresh.group, counts_shorter, fresh, timeout=60)
        check_rows(fresh_db, expected_short, failures, what_fresh)
        check_stale_counter(fresh, topics_shorter, oracle.stale_counts(shorter),
                            failures, what_fresh)
        if fresh.stop() != 0:
            failures.append("%s: exit status %s" % (what_fresh, fresh.proc.returncode))

        # The first live run's database, rebuilt from the compacted topics.
        what_rebuild = "rebuild from the compacted history"
        began = time.monotonic()
        rebuild = RebuildDaemon(runs[0].db, topics_short, group=unique("g"),
                                extra_args=["--rebuild"]).start()
        daemons.append(rebuild)
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        wait_caught_up(runs[0].db, rebuild.group, counts_short, rebuild, timeout=60)
        print("%s: swapped in and caught up in %.1f s"
              % (what_rebuild, time.monotonic() - began), flush=True)
        rebuilt_rows = check_rows(runs[0].db, expected_short, failures, what_rebuild)
        check_stale_counter(rebuild, topics_short, oracle.stale_counts(short),
                            failures, what_rebuild)
        if rebuild.stop() != 0:
            failures.append("%s: exit status %s" % (what_rebuild,
                                                    rebuild.proc.returncode))

        # Live and rebuilt differ exactly where the oracle says compaction
        # changes the outcome: nowhere unless a key ends with a stale record.
        live_rows = runs[0].rows
        got, want = differing(live_rows, rebuilt_rows), differing(expected_full,
                                                                  expected_short)
        if got != want:
            failures.append(
                "live and rebuilt tables differ at %d addresses, the oracle says at "
                "%d (keys whose last record is stale: %s); expected = live, actual = "
                "rebuilt:\n%s"
                % (len(got), len(want), sorted(stale_tails)[:10],
                   oracle.diff(live_rows, rebuilt_rows)))
        elif want:
            print("live and rebuilt differ at the %d addresses the oracle names "
                  "(%d keys end with a stale record)" % (len(want), len(stale_tails)),
                  flush=True)
        else:
            print("live and rebuilt tables are equal", flush=True)
    finally:
        for daemon in daemons:
            daemon.close()
        for run in runs:
            run.db.close()
        fresh_db.close()
    if failures:
        raise AssertionError("%s: %d failed checks:\n%s"
                             % (what, len(failures), "\n\n".join(failures)))


def check_history(seed, stale_tails=0):
    """One random history, with the given number of stale tails per kind."""
    announce(seed)
    rng = random.Random(seed)
    history = MixedHistory(rng, servers=rng.randint(45, 60), subnets=rng.randint(14, 18),
                           marks=rng.randint(18, 25), stale_tails=stale_tails)
    messages = history.messages
    cut = sorted(rng.sample(range(1, len(messages)), 2))
    parts = [messages[a:b] for a, b in zip([0] + cut, cut + [len(messages)])]
    check_case(messages, "seed %d" % seed, [("live, in 3 parts", parts)],
               must_differ=stale_tails > 0)


def test_compaction_invariance():
    """Random mixed histories: live equals the oracle of the whole history,
    a rebuild from the compacted topics the oracle of the compacted one, and
    the two are equal when every key's last record applied live; one more
    history (an odd seed) ends keys with stale records, where they differ
    as documented.  Every history runs; the failures are reported together."""
    chosen = seeds() or ([random.randrange(1 << 30) * 2 for _ in range(3)]
                         + [random.randrange(1 << 30) * 2 + 1])
    failed = []
    for seed in chosen:
        try:
            check_history(seed, stale_tails=seed % 2 * 4)
        except AssertionError as error:
            print(error, flush=True)
            failed.append(seed)
    assert not failed, "histories failed: %s (replay with IPAM_TEST_SEED)" % failed


# -- the broker's own compaction ----------------------------------------------

# Topic settings under which the broker's log cleaner compacts every segment
# but the active one at its next pass (every 15 s by default), and keeps
# the tombstones for a day.  segment.ms is set only once the live daemon has
# read everything, so that nothing is compacted before it.
COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0",
           "min.compaction.lag.ms": "0", "delete.retention.ms": "86400000"}


def configure(topics, settings):
    """Sets the whole configuration of the three topics."""
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    futures = admin.alter_configs([ConfigResource("topic", t, set_config=settings)
                                   for t in topics.formats])
    for future in futures.values():
        future.result(timeout=30)


def read_partition(topic, partition, end):
    """[(offset, key)] of a partition, read up to offset end (excluded)."""
    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique("read"),
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, 0)])
    found = []
    try:
        deadline = time.monotonic() + 10
        while (not found or found[-1][0] < end - 1) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                found.append((message.offset(), message.key().decode()))
    finally:
        consumer.close()
    return found


def roll_records(counts_by_kind):
    """One Kafka tombstone per partition of each topic, for a key nothing
    else uses (a no-op for the daemon): appended once segment.ms is short,
    it rolls the segment, so that all the history before it can be
    compacted."""
    keys = {"server": "srv-roll-%d", "subnet": "net-roll-%d", "mark": "192.0.2.%d"}
    records = []
    for kind in oracle.KINDS:
        for part in range(PARTITIONS):
            key = keys[kind] % part
            offset = counts_by_kind.get((kind, part), 0)
            records.append((kind, key, part, None,
                            oracle.Event(kind, key, "tombstone", None, offset, None)))
    return records


def check_broker_compaction(seed):
    """A history applied live to topics with cleanup.policy=compact; once
    the broker has compacted them (their records are then exactly the last
    of each key, at their old offsets, with gaps between), --rebuild from
    the same topics gives the oracle's rows of the compacted history, equal
    to the live rows."""
    announce(seed)
    rng = random.Random(seed)
    history = MixedHistory(rng, servers=rng.randint(45, 60), subnets=rng.randint(14, 18),
                           marks=rng.randint(18, 25))
    messages = history.messages
    last_offsets = {}
    for kind, _, part, _, ev in messages:
        last_offsets[(kind, part)] = ev.offset + 1
    rolls = roll_records(last_offsets)
    everything = messages + rolls
    full = [m[4] for m in everything]
    kept = oracle.compact(full)
    short = [full[i] for i in kept]
    expected_full = oracle.expected_rows(oracle.fold(full))
    expected_short = oracle.expected_rows(oracle.fold(short))
    assert not oracle.stale_last_records(full) and expected_full == expected_short
    print("seed %d: %d records, %d once compacted, %d rows"
          % (seed, len(full), len(short), len(expected_full)), flush=True)

    def before_part(n):
        if n == 1:
            # The live daemon has read the history: let the broker compact.
            configure(run.topics, dict(COMPACT, **{"segment.ms": "100"}))
            time.sleep(1)

    failures, daemons = [], []
    run = LiveRun("live, then compacted by the broker", [messages, rolls], before_part)
    configure(run.topics, COMPACT)
    try:
        run.daemon = Daemon(run.db, run.topics).start()
        daemons.append(run.daemon)
        run.daemon.wait_ready()
        run.check(Kafka(), failures)

        want = {}
        for i in kept:
            want.setdefault((topic_of(run.topics, full[i].kind),
                             everything[i][2]), []).append((full[i].offset, full[i].key))
        began = time.monotonic()

        def compacted_by_broker():
            return all(read_partition(topic, part, run.counts[(topic, part)]) == records
                       for (topic, part), records in want.items())
        wait_until(compacted_by_broker, 90, "the broker to compact the topics",
                   interval=1)
        print("the broker compacted the topics after %.1f s"
              % (time.monotonic() - began), flush=True)

        what = "rebuild from the topics the broker compacted"
        rebuild = RebuildDaemon(run.db, run.topics, group=unique("g"),
                                extra_args=["--rebuild"]).start()
        daemons.append(rebuild)
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        wait_caught_up(run.db, rebuild.group, run.counts, rebuild, timeout=60)
        rebuilt_rows = check_rows(run.db, expected_short, failures, what)
        check_stale_counter(rebuild, run.topics, oracle.stale_counts(short), failures,
                            what)
        if rebuild.stop() != 0:
            failures.append("%s: exit status %s" % (what, rebuild.proc.returncode))
        if run.rows != rebuilt_rows:
            failures.append("live and rebuilt tables differ; expected = live, actual "
                            "= rebuilt:\n%s" % oracle.diff(run.rows, rebuilt_rows))
        else:
            print("live and rebuilt tables are equal", flush=True)
    finally:
        for daemon in daemons:
            daemon.close()
        run.db.close()
    if failures:
        raise AssertionError("seed %d: %d failed checks:\n%s"
                             % (seed, len(failures), "\n\n".join(failures)))


def test_broker_compaction():
    """Compaction by the broker itself, offsets with gaps and all: the
    rebuild from the compacted topics equals the live table."""
    for seed in seeds() or [random.randrange(1 << 30) * 2]:
        check_broker_compaction(seed)


# -- the contract, one line each ----------------------------------------------

# Each scenario: a server key, and its records as (op, version, last octet
# of its address in 10.50.0.0/24).  The subnet and the marks are fixed.
SCENARIOS = (
    ("tombstone-then-v1", [("upsert", 5, 101), ("tombstone", None, None),
                           ("upsert", 1, 102)]),
    ("unversioned-after-v5", [("upsert", 5, 103), ("upsert", None, 104)]),
    ("v1-after-unversioned", [("upsert", None, 105), ("upsert", None, 106),
                              ("upsert", None, 107), ("upsert", 1, 108)]),
    ("older-after-unversioned", [("upsert", 5, 109), ("upsert", None, 110),
                                 ("upsert", 2, 111)]),
    ("duplicate", [("upsert", 1, 112), ("upsert", 1, 112)]),
    ("unversioned-duplicate", [("upsert", None, 113), ("upsert", None, 113)]),
    ("unversioned-delete-forgets", [("upsert", 7, 114), ("delete", None, None),
                                    ("upsert", 1, 115)]),
    ("delete-then-newer", [("upsert", 1, 116), ("delete", 2, None),
                           ("upsert", 3, 117)]),
    ("tombstone-unknown", [("tombstone", None, None)]),
    ("unversioned-after-delete", [("upsert", 2, 122), ("delete", 5, None),
                                  ("upsert", None, 123)]),
    ("unversioned-delete-unknown", [("delete", None, None), ("upsert", 1, 124)]),
    # The documented limit: a key whose last record is stale live.
    ("late-after-delete", [("upsert", 2, 118), ("delete", 4, None),
                           ("upsert", 3, 119)]),
    ("late-older-upsert", [("upsert", 3, 120), ("upsert", 2, 121)]),
    ("late-after-delete-of-unknown", [("delete", 3, None), ("upsert", 2, 125)]),
)


def scenario_messages():
    """The scenarios as one history, each key its own: the servers' subnet
    (one event), and a subnet and a mark that are tombstoned and created
    again from version 1."""
    history = MixedHistory.__new__(MixedHistory)
    history.rng, history.serial, history.binary = random.Random(1), 0, 0.0
    streams = [[history.event("subnet", "net-s", "upsert", 1, {
        "name": "scenarios", "cidr": "10.50.0.0/24",
        "static_ip_pools": ["10.50.0.1-10.50.0.4"]})]]
    again = {"name": "again", "cidr": "10.51.0.0/24",
             "static_ip_pools": ["10.51.0.1-10.51.0.4"]}
    streams.append([history.event("subnet", "net-again", "upsert", 9, dict(again)),
                    history.event("subnet", "net-again", "tombstone", None, None),
                    history.event("subnet", "net-again", "upsert", 1, dict(again))])
    mark = "10.50.0.2"
    streams.append([
        history.event("mark", mark, "upsert", 4, {"address": mark, "status": "reserved",
                                                  "description": "old"}),
        history.event("mark", mark, "tombstone", None, None),
        history.event("mark", mark, "upsert", 1, {"address": mark,
                                                  "status": "quarantine"})])
    legend = []
    for name, records in SCENARIOS:
        key = "srv-" + name
        stream = []
        for op, version, octet in records:
            data = None
            if op == "upsert":
                data = {"hostname": "%s-v%s" % (name, version), "ip_address":
                        "10.50.0.%d" % octet, "nic_mac": None, "device_type": None,
                        "manufacture": None}
            stream.append(history.event("server", key, op, version, data))
        streams.append(stream)
        legend.append("  %s: %s" % (key, ", ".join(
            "%s%s%s" % (op, "" if v is None else " v%d" % v,
                        "" if o is None else " .%d" % o) for op, v, o in records)))
    streams = [[(ev.kind, ev.key, partition_of(ev.key), value, ev)
                for ev, value in stream] for stream in streams]
    return streams, "\n".join(legend)


def test_compaction_scenarios():
    """Each line of the contract as a small fixed history, through the same
    checks: applied live at once (the events of one key meet in one batch)
    and round by round (the n-th record of every key, then the next: each
    meets what is stored), rebuilt from the compacted topics, and on a fresh
    database."""
    streams, legend = scenario_messages()
    at_once = renumber([m for stream in streams for m in stream])
    rounds = [[stream[n] for stream in streams if n < len(stream)]
              for n in range(max(map(len, streams)))]
    check_case(at_once, "scenarios",
               [("live, at once", [at_once]),
                ("live, round by round", split([m for r in rounds for m in r],
                                               map(len, rounds)))],
               must_differ=True, legend=legend)


if __name__ == "__main__":
    harness.main(globals())
