"""The consumer under load, outages and rebalances, end to end: the real
binary against the real PostgreSQL and Kafka.

- PostgreSQL away for longer than max.poll.interval.ms under a steady load:
  the consumer keeps polling with its partitions paused, is never evicted,
  counts no rebalance, and applies every event exactly once.
- A backlog read in small batches: while the pending batch is full the
  consumer takes no message and librdkafka's prefetch is kept, so every
  message is fetched about once (a pause would throw the prefetch away).
- Three instances of one group rolling-restarted while events flow, then
  one killed: the table equals the oracle, the partitions moved are few,
  no instance loses its partitions or finds its offsets moved under it.
- A topic of 2,000 partitions, one event in each, all applied; then the
  topic deleted under the consumer, and SIGTERM still exits 0 within the
  shutdown deadline.
- The loop never blocks on the broker: /healthz answers within a second
  while the consumer takes an assignment with the broker away.
- Readiness tells the truth: a missing topic, a stopped broker, and an
  instance the group gave no partition.

The brokers that a test stops, cuts or loads with thousands of partitions
are the test's own (scripts/services with a private run directory), so the
shared broker of a parallel ctest run never sees it.  The addresses are
data only: the sweeper is off, nothing is probed."""

import http.client
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import harness
import oracle
from harness import (Daemon, Database, Kafka, PrivatePostgres, Topics, unique,
                     wait_until)
from test_property import (History, RebuildDaemon, assert_matches_oracle,
                           audit_problems, stored_offsets)
from test_property import wait_caught_up as wait_offsets

SERVICES = os.path.join(harness.ROOT, "scripts", "services")

# Where a private broker keeps its data: in memory when the machine has a
# tmpfs, as a broker syncs several small files for every partition it
# makes (2,000 partitions take half a minute on disk here).
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None

# What librdkafka logs when the application stopped polling for longer
# than max.poll.interval.ms and the client left the group on its behalf.
EVICTED = r"[Mm]aximum poll interval"
# What the consumer logs when its stored offsets moved under it (another
# instance applied the partition meanwhile), and when it leaves and
# re-joins the group to load them again.  With one instance, or with
# instances that hand partitions over cooperatively, neither can happen.
MOVED_UNDER = r"offsets moved under us|re-joining the group"
# A partition taken from an instance whose membership is gone (its session
# timed out, its generation is stale): never while it is alive and polling.
LOST = r"kafka: lost "


# -- the daemon's HTTP surface ------------------------------------------------

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}\n]*\})?) (\S+)$", re.M)


class Http:
    """A daemon's /healthz, /readyz and /metrics, at the port read once
    from its log (the log grows large; reading it per request is slow)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.port = daemon.http_port()

    def get(self, path, timeout=10):
        """(status, body text) of one GET on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def metrics(self):
        """Every sample of /metrics: {name{labels}: value}."""
        status, body = self.get("/metrics")
        assert status == 200, (status, body)
        return {name: float(value) for name, value in SAMPLE.findall(body)}

    def metric(self, name):
        """One sample, None when the daemon does not export it."""
        return self.metrics().get(name)


def log_lines(daemon, pattern):
    """The lines of a daemon's log that match a pattern."""
    return [line for line in daemon.log().splitlines() if re.search(pattern, line)]


def notified(daemon, line):
    """Whether the daemon sent this sd_notify line."""
    return any(line in m.split("\n") for m in daemon.notify.texts())


# -- producing a load the oracle can follow --------------------------------

class Feed:
    """Publishes events over the partitions of each topic by a hash of the
    key (so one key keeps one partition and its order), and keeps what the
    checks need: the oracle's events in the order sent, and the number of
    messages (the next offset) of every partition."""

    def __init__(self, topics, partitions):
        self.topics = topics
        self.partitions = partitions
        self.kafka = Kafka()
        self.counts = {}
        self.events = []
        self.topic_of = {"server": topics.servers, "subnet": topics.subnets,
                         "mark": topics.marks}

    def send(self, kind, key, value, ev):
        topic = self.topic_of[kind]
        part = zlib.crc32(key.encode()) % self.partitions
        self.kafka.send(topic, key, value, partition=part)
        self.counts[(topic, part)] = self.counts.get((topic, part), 0) + 1
        self.events.append(ev)

    def flush(self):
        self.kafka.flush()


def cloudevent(kind, key, op, version, data):
    """(value bytes, oracle event) of one CloudEvents upsert or delete."""
    verb = {"server": ("upserted", "deleted"), "subnet": ("upserted", "deleted"),
            "mark": ("set", "cleared")}[kind][op == "delete"]
    body = {"specversion": "1.0", "id": unique("ev"), "source": "/tests/consumer",
            "type": "ipam.%s.%s" % (kind, verb), "subject": key,
            "entityversion": version}
    if data is not None:
        body["data"] = data
    return json.dumps(body), oracle.Event(kind, key, op, version, None, data)


def send_one_server(kafka, subnets_topic, servers_topic, net):
    """Subnet "1" (net.0/24, no pool) and server "1" at net.9, sent."""
    value, _ = cloudevent("subnet", "1", "upsert", 1, {
        "name": "n", "cidr": net + ".0/24", "static_ip_pools": []})
    kafka.send(subnets_topic, "1", value)
    value, _ = cloudevent("server", "1", "upsert", 1, {
        "hostname": "h1", "ip_address": net + ".9"})
    kafka.send(servers_topic, "1", value)
    kafka.flush()


def server_churn(first_octets="10.200"):
    """An endless stream of server events (kind, key, value, oracle event)
    in one /16: servers created, moved to another address (a newer
    version) and deleted, with their subnet first.  Every address is used
    once, so a lost or doubled event shows as a wrong row."""
    cidr = first_octets + ".0.0/16"
    value, ev = cloudevent("subnet", "churn", "upsert", 1, {
        "name": "churn", "cidr": cidr,
        "static_ip_pools": ["%s.0.1-%s.0.200" % (first_octets, first_octets)]})
    yield "subnet", "churn", value, ev
    versions, live, made, taken = {}, [], 0, 0

    def address():
        nonlocal taken
        taken += 1
        return "%s.%d.%d" % (first_octets, taken // 250, taken % 250 + 1)

    for step in range(1 << 30):
        phase = step % 10
        if phase < 7 or len(live) < 10:
            made += 1
            key, op = "s%d" % made, "upsert"
            live.append(key)
        elif phase < 9:
            key, op = live[-7], "upsert"
        else:
            key, op = live.pop(-5), "delete"
        versions[key] = versions.get(key, 0) + 1
        data = None if op == "delete" else {
            "hostname": "%s-v%d" % (key, versions[key]), "ip_address": address(),
            "nic_mac": "02:00:00:00:%02x:%02x" % (made // 256 % 256, made % 256)}
        value, ev = cloudevent("server", key, op, versions[key], data)
        yield "server", key, value, ev


class Steady(threading.Thread):
    """Sends messages (kind, key, value, oracle event) through a Feed at a
    steady pace until they run out or stop() is called; hurry() sends what
    is left at once."""

    def __init__(self, feed, messages, per_second, chunk=20):
        super().__init__(daemon=True)
        self.feed = feed
        self.messages = iter(messages)
        self.pause = chunk / float(per_second)
        self.chunk = chunk
        self.stopping = threading.Event()
        self.hurrying = threading.Event()
        self.error = None

    def run(self):
        try:
            done = False
            while not done and not self.stopping.is_set():
                for _ in range(self.chunk):
                    message = next(self.messages, None)
                    if message is None:
                        done = True
                        break
                    self.feed.send(*message)
                self.feed.flush()
                if not self.hurrying.is_set():
                    self.stopping.wait(self.pause)
        except Exception as error:  # reported by stop() / hurry()
            self.error = error

    def _end(self):
        self.join(120)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error

    def stop(self):
        self.stopping.set()
        self._end()

    def hurry(self):
        self.hurrying.set()
        self._end()


def final_problems(db, feed, what, daemons):
    """What is wrong at the end of a run: a daemon evicted from the group,
    losing its partitions, or finding its offsets moved under it; a table
    that differs from the oracle; an audit history with an event applied
    twice or skipped."""
    problems = []
    for daemon in daemons:
        for pattern in (EVICTED, LOST, MOVED_UNDER):
            problems += ["%s: %s" % (daemon.dir, line)
                         for line in log_lines(daemon, pattern)[:1]]
    try:
        assert_matches_oracle(db, feed.events, what)
    except AssertionError as error:
        problems.append(str(error))
    trouble = audit_problems(db, feed.counts)
    if trouble:
        problems.append(trouble)
    return problems


def history_messages(seed, **sizes):
    """A random history of test_property (servers, subnets, marks; nested
    subnets, vrfs, duplicates, stale deliveries, tombstones) as (kind, key,
    value, oracle event), in its interleaved order."""
    history = History(random.Random(seed), **sizes)
    return [(kind, key, value, ev) for kind, key, _, value, ev in history.messages]


# -- a broker of the test's own --------------------------------------------

class PrivateKafka:
    """A single-node broker of the test's own (scripts/services with a
    private run directory), to stop and start at will.  While it lives,
    KAFKA_BOOTSTRAP_SERVERS names it, so Topics, Kafka and Daemon use it.
    settings are broker properties to set (the broker is then restarted
    with them).

    With proxied=True the broker gets a second listener, PROXIED, whose
    advertised address is a KafkaProxy: a client that bootstraps from
    proxy_bootstrap reaches the broker only through the proxy (metadata
    names the proxy), while the test's own clients use the direct one."""

    def __init__(self, proxied=False, settings=None):
        self.run_dir = tempfile.mkdtemp(prefix="ipam-kafka-", dir=SCRATCH)
        self.env = dict(os.environ, IPAM_RUN_DIR=self.run_dir)
        self.saved_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.proxy = None
        try:
            self._services("kafka-start")
            self.port = int(self._services("kafka-port"))
            if proxied or settings:
                self._reconfigure(proxied, dict(settings or {}))
        except BaseException:
            self.close()
            raise
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap()

    def _services(self, command):
        return subprocess.run([SERVICES, command], env=self.env, check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()

    def _reconfigure(self, proxied, settings):
        """Stops the broker, edits its properties, starts it again."""
        # Ports are picked while the broker still holds its own.
        extra = {}
        if proxied:
            inner = harness.quiet_port()
            self.proxy = KafkaProxy(inner)
            extra = {"listeners": ",PROXIED://127.0.0.1:%d" % inner,
                     "advertised.listeners": ",PROXIED://127.0.0.1:%d" % self.proxy.port,
                     "listener.security.protocol.map": ",PROXIED:PLAINTEXT"}
        self._services("kafka-stop")
        path = os.path.join(self.run_dir, "kafka", "server.properties")
        with open(path) as f:
            lines = f.read().splitlines()
        kept = []
        for line in lines:
            key = line.split("=", 1)[0]
            if key in settings:
                continue
            kept.append(line + extra.get(key, ""))
        kept += ["%s=%s" % item for item in settings.items()]
        with open(path, "w") as f:
            f.write("\n".join(kept) + "\n")
        self._services("kafka-start")

    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def proxy_bootstrap(self):
        return "127.0.0.1:%d" % self.proxy.port

    def stop(self):
        self._services("kafka-stop")

    def start(self):
        self._services("kafka-start")

    def close(self):
        if self.saved_bootstrap is not None:
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.saved_bootstrap
        if self.proxy is not None:
            self.proxy.close()
        subprocess.run([SERVICES, "down"], env=self.env, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.run_dir, ignore_errors=True)


class ProxiedConnection:
    """One client connection through the proxy, and its broker side."""

    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.requests = {}      # correlation id -> (api key, api version)
        self.cut = False


class KafkaProxy:
    """A TCP proxy in front of a broker listener that reads the Kafka
    framing (a 4-byte size, then the request header: api key, api version,
    correlation id; a response starts with the correlation id).

    cut() makes the broker away as a stopped one is: every connection gets
    an orderly end after what was already passed on, and new connections
    are refused (the listening socket is closed).  restore() listens again.
    Armed (arm()), the proxy cuts itself right after it has passed on a
    SyncGroup response that carries an assignment, so the consumer acts on
    its new partitions while the broker is away."""

    SYNC_GROUP = 14
    PRODUCE = 0

    def __init__(self, target_port):
        self.target = target_port
        self.port = harness.quiet_port()
        self.lock = threading.Lock()
        self.connections = set()
        self.listener = None
        self.armed = False
        self.cuts = 0
        # Set, produce requests are read and dropped (never answered):
        # the broker is reachable and never gets a message.
        self.drop_produce = False
        self.running = True
        self.restore()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def arm(self):
        with self.lock:
            self.armed = True

    def restore(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        with self.lock:
            self.listener = listener

    def cut(self):
        with self.lock:
            listener, self.listener = self.listener, None
            connections = list(self.connections)
            self.armed = False
            self.cuts += 1
        if listener is not None:
            listener.close()
        for conn in connections:
            self._cut(conn)

    def _cut(self, conn):
        """Ends one connection in order: the client reads what was passed
        on, then end of file (closing at once with its requests unread
        would reset the connection and could lose the response just sent)."""
        conn.cut = True
        for how, sock in ((socket.SHUT_RDWR, conn.upstream),
                          (socket.SHUT_WR, conn.client)):
            try:
                sock.shutdown(how)
            except OSError:
                pass

    def _accept(self):
        while self.running:
            with self.lock:
                listener = self.listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            conn = ProxiedConnection(client, upstream)
            with self.lock:
                if self.listener is None:
                    client.close()
                    upstream.close()
                    continue
                self.connections.add(conn)
            threading.Thread(target=self._requests, args=(conn,), daemon=True).start()
            threading.Thread(target=self._responses, args=(conn,), daemon=True).start()

    @staticmethod
    def _frames(sock):
        """Yields whole frames read from a socket until it ends."""
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 4:
                size = struct.unpack(">i", buf[:4])[0]
                if len(buf) < 4 + size:
                    break
                yield buf[:4 + size]
                buf = buf[4 + size:]

    def _requests(self, conn):
        """Client to broker; after a cut, reads and drops until the client
        has closed, then closes the client side."""
        for frame in self._frames(conn.client):
            if conn.cut:
                continue
            api_key, api_version, correlation = struct.unpack(">hhi", frame[4:12])
            if api_key == self.PRODUCE and self.drop_produce:
                continue
            conn.requests[correlation] = (api_key, api_version)
            try:
                conn.upstream.sendall(frame)
            except OSError:
                self._cut(conn)
        conn.client.close()
        with self.lock:
            self.connections.discard(conn)

    def _responses(self, conn):
        """Broker to client; cuts everything after an awaited SyncGroup."""
        for frame in self._frames(conn.upstream):
            correlation = struct.unpack(">i", frame[4:8])[0]
            api_key, api_version = conn.requests.pop(correlation, (None, None))
            try:
                conn.client.sendall(frame)
            except OSError:
                break
            if (api_key == self.SYNC_GROUP and self.armed
                    and self._assigns(frame, api_version)):
                self.cut()
        self._cut(conn)
        conn.upstream.close()

    @staticmethod
    def _assigns(frame, version):
        """Whether a SyncGroup response succeeded with some partitions (the
        consumer protocol's assignment: version, then a topic array).
        Versions 4 and later (flexible headers) count on success alone."""
        body = frame[8:]
        if version is None:
            return False
        if version >= 4:
            return struct.unpack(">h", body[5:7])[0] == 0
        at = 4 if version >= 1 else 0
        error, size = struct.unpack(">hi", body[at:at + 6])
        if error != 0 or size < 6:
            return False
        return struct.unpack(">i", body[at + 8:at + 12])[0] > 0

    def close(self):
        self.running = False
        self.cut()
        self.acceptor.join(2)


# -- probing the loop ----------------------------------------------------------

class LatencyProbe(threading.Thread):
    """GETs /healthz every `every` seconds and keeps how long each answer
    took; a second thread GETs /readyz and /metrics now and then, so that a
    handler of theirs that blocked the loop would show in /healthz too."""

    def __init__(self, http_surface, every=0.02, timeout=60):
        super().__init__(daemon=True)
        self.http = http_surface
        self.every = every
        self.timeout = timeout
        self.samples = []           # (monotonic start, seconds, status)
        self.failures = []
        self.readyz = []            # (monotonic, status, body)
        self.stopping = threading.Event()
        self.other = threading.Thread(target=self._others, daemon=True)

    def run(self):
        self.other.start()
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                status, _ = self.http.get("/healthz", timeout=self.timeout)
            except OSError as error:
                self.failures.append("%.1f s: %s" % (time.monotonic() - began, error))
                status = None
            self.samples.append((began, time.monotonic() - began, status))
            self.stopping.wait(self.every)

    def _others(self):
        while not self.stopping.is_set():
            try:
                status, body = self.http.get("/readyz", timeout=self.timeout)
                self.readyz.append((time.monotonic(), status, body.strip()))
                self.http.get("/metrics", timeout=self.timeout)
            except OSError:
                pass
            self.stopping.wait(0.25)

    def stop(self):
        self.stopping.set()
        self.join(self.timeout + 5)
        self.other.join(self.timeout + 5)

    def worst(self):
        return max(self.samples, key=lambda s: s[1]) if self.samples else None


# -- 1. PostgreSQL away for longer than max.poll.interval.ms -------------------

def test_postgresql_outage_longer_than_max_poll_interval():
    """Under a steady load, the apply blocked until the pending batch is
    full, then PostgreSQL stopped for 20 s, twice max.poll.interval.ms (10 s;
    session.timeout.ms 6 s): the partitions stay paused throughout, the
    consumer keeps polling so the group never evicts it (no rebalance is
    counted, librdkafka never says the poll interval was exceeded), and
    once PostgreSQL is back every event is applied exactly once."""
    pg = PrivatePostgres().start()
    db = Database(host="127.0.0.1", port=pg.port)
    partitions = 2
    topics = Topics(partitions=partitions)
    feed = Feed(topics, partitions)
    config = {"kafka": {"max.poll.interval.ms": "10000", "session.timeout.ms": "6000"},
              "consumer": {"batch_max_events": "100"}}
    daemon = Daemon(db, topics, config=config).start()
    producer = Steady(feed, server_churn(), per_second=200)
    problems = []
    locker = None
    try:
        surface = Http(daemon)
        wait_until(lambda: surface.metric("ipam_syncd_consumer_assigned_partitions")
                   == 3 * partitions, 60, "all six partitions")
        producer.start()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam WHERE status = "
                                     "'allocated'") > 200, 60, "the stream to flow")

        # The apply waits on a lock while messages keep coming: the pending
        # batch fills, and the consumer stops taking messages (what it has
        # taken stays put for a second while a batch's worth or more waits
        # uncommitted).
        locker = db._connect(db.name)
        locker.cursor().execute("LOCK TABLE ipam_state.server IN ACCESS EXCLUSIVE MODE")
        taken = []

        def stalled():
            m = surface.metrics()
            committed = sum(v for k, v in m.items()
                            if k.startswith("ipam_syncd_messages_total{"))
            taken.append(m["ipam_syncd_messages_consumed_total"])
            return (len(taken) > 4 and len(set(taken[-5:])) == 1
                    and taken[-1] - committed >= 100)
        wait_until(stalled, 30, "the pending batch to fill", interval=0.25)
        try:
            wait_until(lambda: surface.metric("ipam_syncd_consumer_paused") == 1, 10,
                       "consumer_paused 1 while the pending batch is full")
        except AssertionError as error:
            problems.append(str(error))
        rebalances = surface.metric("ipam_syncd_rebalances_total")
        moves = len(re.findall(r"kafka: (revoked|lost) ", daemon.log()))

        # PostgreSQL away (a fast stop ends the locker's session too).
        pg.stop()
        began = time.monotonic()
        samples = []
        while time.monotonic() - began < 20:
            m = surface.metrics()
            samples.append((round(time.monotonic() - began, 1),
                            m.get("ipam_syncd_consumer_paused"),
                            m.get("ipam_syncd_rebalances_total"),
                            m.get("ipam_syncd_consumer_assigned_partitions")))
            assert surface.get("/healthz")[0] == 200
            time.sleep(0.5)
        locker = None
        not_paused = [s for s in samples if s[1] != 1]
        if not_paused:
            problems.append("consumer_paused was not 1 throughout the outage "
                            "(seconds, paused, rebalances, assigned): %r" % not_paused[:5])
        moved = [s for s in samples if s[2] != rebalances or s[3] != 3 * partitions]
        if moved:
            problems.append("rebalances or assignment changed during the outage "
                            "(from %r, 6 partitions): %r" % (rebalances, moved[:5]))
        print("outage: %d samples, paused %s" % (
            len(samples), sorted(set(s[1] for s in samples), key=str)), flush=True)

        pg.start()
        producer.stop()
        try:
            wait_until(lambda: surface.metric("ipam_syncd_consumer_paused") == 0, 30,
                       "consumer_paused 0 once PostgreSQL is back")
        except AssertionError as error:
            problems.append(str(error))
        wait_offsets(db, daemon.group, feed.counts, daemon, timeout=120)
        print("%d messages produced" % len(feed.events), flush=True)
        if surface.metric("ipam_syncd_rebalances_total") != rebalances:
            problems.append("rebalances_total went from %r to %r" % (
                rebalances, surface.metric("ipam_syncd_rebalances_total")))
        if len(re.findall(r"kafka: (revoked|lost) ", daemon.log())) != moves:
            problems.append("partitions were revoked or lost after the first "
                            "assignment")
        problems += final_problems(db, feed, "after the outage", [daemon])
        assert not problems, "\n".join(problems)
        assert daemon.stop() == 0
    finally:
        if producer.is_alive():
            producer.stopping.set()
        if locker is not None:
            locker.close()
        daemon.close()
        pg.close()


def test_a_full_batch_keeps_what_was_fetched():
    """A backlog read with small batches: the pending batch fills behind
    the one in flight again and again.  The consumer then stops taking
    messages and librdkafka's prefetch waits for the next batch; pausing
    the partitions instead throws the prefetch away, fetches it again and
    waits up to a second for the fetch after the resume, which made the
    fetches many times the messages and the apply wait on the broker.
    Every message is fetched about once, and applied exactly once."""
    db = Database()
    topics = Topics(partitions=1)
    feed = Feed(topics, 1)
    churn = server_churn("10.201")
    for _ in range(20000):
        feed.send(*next(churn))
    feed.flush()
    produced = len(feed.events)
    daemon = Daemon(db, topics, config={"consumer": {"batch_max_events": "50"}}).start()
    try:
        surface = Http(daemon)
        full = []

        def caught_up():
            full.append(surface.metric("ipam_syncd_consumer_paused"))
            return sum(stored_offsets(db, daemon.group).values()) == produced
        wait_until(caught_up, 120, "the backlog to be applied", interval=0.05)
        wait_offsets(db, daemon.group, feed.counts, daemon)
        # The fetch count comes with librdkafka's statistics, every second.
        wait_until(lambda: surface.metric("ipam_syncd_kafka_fetched_messages_total")
                   >= produced, 10, "the statistics to count every message")
        time.sleep(2.5)
        fetched = surface.metric("ipam_syncd_kafka_fetched_messages_total")
        batches = surface.metric("ipam_syncd_batches_total")
        pauses = surface.metric("ipam_syncd_kafka_fetch_pauses_total")
        print("%d messages in %d batches: %d fetched, %d pauses, full in %d "
              "of %d samples" % (produced, batches, fetched, pauses,
                                 full.count(1), len(full)), flush=True)
        assert batches >= produced / 50, "batches larger than asked: %r" % batches
        # A batch that waits 2 s (a stalled machine) pauses on purpose,
        # and each such pause may fetch the rest of the topic again; a
        # pause per full batch is what this test is about.
        long_waits = re.findall(r"kafka: fetching paused: full for", daemon.log())
        assert pauses == len(long_waits), \
            "%d pauses, %d of them after a full batch waited 2 s: fetching " \
            "was paused while nothing asked for it" % (pauses, len(long_waits))
        assert pauses * 20 <= batches, \
            "%d pauses in %d batches: the full batches pause fetching" % (
                pauses, batches)
        assert fetched <= produced * (1.2 + pauses), \
            "%d messages fetched for %d produced (%d pauses): the prefetch " \
            "was thrown away and fetched again" % (fetched, produced, pauses)
        problems = final_problems(db, feed, "after the backlog", [daemon])
        assert not problems, "\n".join(problems)
        assert daemon.stop() == 0
    finally:
        daemon.close()


# -- 2. rolling restart of three instances --------------------------------------

def test_rolling_restart_of_three_instances():
    """Three instances of one group on topics of 6 partitions: each in turn
    is stopped (SIGTERM, exit 0) and started again while events flow, then
    one is killed.  The table equals the oracle and the audit history shows
    every event once; the partitions moved stay within what cooperative-
    sticky needs; no instance loses its partitions (its membership dropped
    while alive), finds its stored offsets moved under it (two owners of
    one partition at once) or re-joins the group to reload them."""
    seed = random.randrange(1 << 31)
    print("seed %d" % seed, flush=True)
    partitions = 6
    db, topics = Database(), Topics(partitions=partitions)
    group = unique("g")
    feed = Feed(topics, partitions)
    # A 6 s session, so that the killed instance's partitions move soon.
    config = {"kafka": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
              "consumer": {"batch_max_events": "200"}}
    daemons, surfaces = [], {}

    def start():
        daemon = Daemon(db, topics, group=group, config=config).start()
        daemons.append(daemon)
        surfaces[daemon] = Http(daemon)
        return daemon

    def held(members):
        return [surfaces[d].metric("ipam_syncd_consumer_assigned_partitions")
                for d in members]

    def settle(members, what):
        # The sticky assignor balances: 18 partitions over the members.
        share = 3 * partitions // len(members)
        wait_until(lambda: held(members) == [share] * len(members), 90,
                   "%s: %d partitions each" % (what, share))

    def moves():
        return sum(len(re.findall(r"kafka: (assigned|revoked|lost) ", d.log()))
                   for d in daemons)

    producer = Steady(feed, history_messages(seed, servers=700, subnets=30, marks=60),
                      per_second=200)
    try:
        members = [start(), start(), start()]
        settle(members, "three instances")
        producer.start()
        baseline = moves()
        for i in range(3):
            status = members[i].stop(timeout=30)
            assert status == 0, "instance %d exited %s" % (i, status)
            members[i] = start()
            settle(members, "instance %d back" % i)
            print("instance %d restarted: %d partition moves so far"
                  % (i, moves() - baseline), flush=True)
        members[1].kill()
        members = [members[0], members[2]]
        settle(members, "two instances after the kill")
        producer.hurry()
        wait_offsets(db, group, feed.counts, members[0], timeout=120)
        moved = moves() - baseline
        print("%d messages; %d partition moves" % (len(feed.events), moved), flush=True)

        problems = final_problems(db, feed, "after the rolling restart", daemons)
        # Each partition that moves is logged twice, revoked by its owner
        # (unless killed) and assigned to the next, and cooperative-sticky
        # moves only what must move.  A leave moves the leaver's 6 of the
        # 18 partitions (12 lines), a join takes 6 back (12 lines), or
        # 12 lines in all when the restarted instance joins in the same
        # rebalance as its leave; the kill moves 6 (6 lines).  So 3 x 24
        # + 6 = 78 lines at most (42 when each join rides with its leave).
        # An eager protocol (every partition revoked and assigned again at
        # each change: about 250) or an instance dropping its partitions to
        # re-join would exceed it.
        if moved > 78:
            problems.append("%d partition moves, more than 78" % moved)
        assert not problems, "\n".join(problems)
        for daemon in members:
            assert daemon.stop() == 0
    finally:
        if producer.is_alive():
            producer.stopping.set()
        for daemon in daemons:
            daemon.close()
        db.close()


# -- 3. 2,000 partitions, then the topic deleted --------------------------------

def test_two_thousand_partitions_and_a_deleted_topic():
    """A servers topic of 2,000 partitions with one event in each: all
    2,000 applied.  Then the topic is deleted under the consumer; once the
    daemon has let its partitions go, /readyz names the missing topic, and
    SIGTERM exits 0 within shutdown_timeout_ms."""
    # No client of the test may make the deleted topic again by asking for
    # it (producers and admin clients ask with auto-creation allowed).
    kafka = PrivateKafka(settings={"auto.create.topics.enable": "false"})
    db = Database()
    # Shorter than the default, so that no fixed wait of the teardown
    # (seconds of its own) can hide inside it.
    deadline_ms = 3000
    daemon = None
    try:
        count = 2000
        topics = Topics(partitions=1)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap()})
        admin.create_partitions([NewPartitions(topics.servers, count)])[
            topics.servers].result(timeout=120)
        wait_until(lambda: len(admin.list_topics(topics.servers, timeout=10).topics[
            topics.servers].partitions) == count, 60, "the metadata of 2,000 partitions")
        daemon = Daemon(db, topics, config={
            "daemon": {"shutdown_timeout_ms": str(deadline_ms), "log_level": "info"}}).start()
        surface = Http(daemon)
        producer = Kafka()
        value, _ = cloudevent("subnet", "1", "upsert", 1, {
            "name": "wide", "cidr": "10.210.0.0/16", "static_ip_pools": []})
        producer.send(topics.subnets, "1", value)
        for p in range(count):
            value, _ = cloudevent("server", str(p), "upsert", 1, {
                "hostname": "h%d" % p, "ip_address": "10.210.%d.%d" % (p // 250, p % 250 + 1)})
            producer.send(topics.servers, str(p), value, partition=p)
        # The first write to each new partition waits for the broker to
        # make its log.
        assert producer.producer.flush(180) == 0, "the events were not all acknowledged"
        wait_until(lambda: surface.metric("ipam_syncd_consumer_assigned_partitions")
                   == count + 2, 120, "2,002 partitions assigned")
        counts = {(topics.servers, p): 1 for p in range(count)}
        counts[(topics.subnets, 0)] = 1
        wait_offsets(db, daemon.group, counts, daemon, timeout=180)
        assert db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == count
        assert db.scalar("SELECT count(*) FROM ipam_state.server") == count

        admin.delete_topics([topics.servers])[topics.servers].result(timeout=120)
        wait_until(lambda: topics.servers not in admin.list_topics(timeout=10).topics,
                   60, "the topic to be gone")
        wait_until(lambda: surface.metric("ipam_syncd_consumer_assigned_partitions") == 2,
                   90, "the deleted topic's partitions to be let go")
        problems = []
        answers = []

        def names_it():
            answers.append(surface.get("/readyz"))
            return answers[-1][0] == 503 and topics.servers in answers[-1][1]
        try:
            wait_until(names_it, 30, "/readyz to name the deleted topic")
        except AssertionError:
            problems.append("/readyz does not name the deleted topic: %r"
                            % sorted(set(answers)))
        began = time.monotonic()
        status = daemon.stop(timeout=60)
        elapsed = time.monotonic() - began
        print("SIGTERM to exit: %.2f s (deadline %d ms)" % (elapsed, deadline_ms),
              flush=True)
        if status != 0:
            problems.append("SIGTERM: exit status %s" % status)
        # One second over the deadline for the process to be reaped.
        if elapsed >= deadline_ms / 1000.0 + 1:
            problems.append("SIGTERM: exited after %.1f s, the deadline is %d ms"
                            % (elapsed, deadline_ms))
        assert not problems, "\n".join(problems)
    finally:
        if daemon is not None:
            daemon.close()
        db.close()
        kafka.close()


# -- 4. the loop never blocks on the broker -------------------------------------

def test_loop_never_blocks_while_the_broker_is_away():
    """The daemon reaches the broker only through a proxy that cuts every
    connection the moment the consumer's assignment has passed, and keeps
    the broker away for 8 s.  From the start until the daemon has caught up
    after the broker returned, /healthz is asked every 20 ms (with /readyz
    and /metrics alongside) and every answer must come within 1 s.  Once as
    a rebuild and once in normal operation.

    The one timed assertion of these tests, and a generous one: a loop
    that serves its tick answers /healthz in milliseconds, while a broker
    call that blocks waits for the broker (here up to 8 s) or for its own
    timeout (10 s); 1 s leaves two orders of magnitude for a loaded
    machine."""
    kafka = PrivateKafka(proxied=True)
    proxy = kafka.proxy
    worst = {}
    problems = []
    try:
        topics = Topics(partitions=1)
        feed = Feed(topics, 1)
        for message in history_messages(7, servers=40, subnets=8, marks=8):
            feed.send(*message)
        feed.flush()
        for mode in ("rebuild", "normal"):
            db = Database()
            config = {"kafka": {"bootstrap.servers": kafka.proxy_bootstrap(),
                                "reconnect.backoff.max.ms": "1000"}}
            if mode == "rebuild":
                daemon = RebuildDaemon(db, topics, config=config,
                                       extra_args=["--rebuild"])
            else:
                daemon = Daemon(db, topics, config=config)
            cuts = proxy.cuts
            proxy.arm()
            daemon.start()
            probe = LatencyProbe(Http(daemon))
            probe.start()
            try:
                wait_until(lambda: proxy.cuts > cuts, 60,
                           "the assignment to pass the proxy")
                cut_at = time.monotonic()
                time.sleep(8)
                # The test's premise: the consumer took its partitions while
                # the broker was away (a loop that polls on every tick serves
                # the assignment within one).
                taken = len(log_lines(daemon, r"kafka: assigned "))
                proxy.restore()
                restored_at = time.monotonic()
                if taken != 3:
                    problems.append("%s: %d of 3 partitions assigned while the "
                                    "broker was away" % (mode, taken))
                if mode == "rebuild":
                    daemon.wait_log(r"rebuild: swapped in", 120)
                wait_offsets(db, daemon.group, feed.counts, daemon, timeout=120)
            finally:
                probe.stop()
            began, seconds, _ = probe.worst()
            worst[mode] = seconds
            print("%s: %d /healthz answers, the slowest %.3f s (asked %.1f s after "
                  "the cut; broker away for %.1f s)"
                  % (mode, len(probe.samples), seconds, began - cut_at,
                     restored_at - cut_at), flush=True)
            said = sorted(set((s, b) for t, s, b in probe.readyz
                              if cut_at < t < restored_at))
            print("%s: /readyz while away: %r" % (mode, said), flush=True)
            if probe.failures:
                problems.append("%s: /healthz failed: %r" % (mode, probe.failures[:3]))
            slow = [s for s in probe.samples if s[1] >= 1.0]
            if slow:
                problems.append("%s: %d /healthz answers took 1 s or more, the "
                                "slowest %.1f s" % (mode, len(slow), seconds))
            assert_matches_oracle(db, feed.events, mode)
            assert daemon.stop() == 0
            daemon.close()
            db.close()
        print("slowest /healthz answers: %r" % worst, flush=True)
        assert not problems, "\n".join(problems)
    finally:
        kafka.close()


# -- 5. readiness tells the truth -----------------------------------------------

def test_readiness_names_a_missing_topic():
    """A misspelt topic: /readyz is 503 with the topic's name, the missing
    topics gauge says 1, READY=1 is not sent.  Once the topic exists the
    daemon becomes ready, says READY=1 and consumes it."""
    db, topics = Database(), Topics()
    missing = topics.prefix + ".sevrers"
    value = "%s:server:cloudevents, %s:subnet:cloudevents, %s:mark:cloudevents" % (
        missing, topics.subnets, topics.marks)
    daemon = Daemon(db, topics, notify=True,
                    config={"consumer": {"topics": value}}).start()
    try:
        surface = Http(daemon)
        wait_until(lambda: missing in surface.get("/readyz")[1], 60,
                   "/readyz to name the missing topic")
        # Its other topics assigned, the daemon would be ready but for the
        # missing one: give it a few metadata refreshes (1 s each) to be
        # wrong, then check it still says so.
        wait_until(lambda: surface.metric("ipam_syncd_consumer_assigned_partitions")
                   == 2, 30, "the two existing topics' partitions")
        time.sleep(3)
        status, body = surface.get("/readyz")
        assert status == 503 and missing in body, (status, body)
        assert surface.metric("ipam_syncd_kafka_topics_missing") == 1
        assert not notified(daemon, "READY=1"), daemon.notify.texts()

        admin = AdminClient({"bootstrap.servers": harness.bootstrap()})
        admin.create_topics([NewTopic(missing, num_partitions=1,
                                      replication_factor=1)])[missing].result(timeout=30)
        daemon.notify.wait_for("READY=1", timeout=60)
        # The new topic's partition may be assigned just after READY=1
        # (loading its stored offset for a moment): ready soon after.
        wait_until(lambda: surface.get("/readyz") == (200, "ready\n"), 30, "ready")
        assert surface.metric("ipam_syncd_kafka_topics_missing") == 0
        send_one_server(Kafka(), topics.subnets, missing, "10.220.0")
        wait_until(lambda: db.scalar("SELECT server_id FROM ipam WHERE "
                                     "ip_address = '10.220.0.9'") == "1", 60,
                   "the event on the created topic to be applied")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_readiness_follows_the_broker():
    """Started while its broker is stopped, the daemon is not ready (/readyz
    503 naming the broker, brokers_up 0) and sends no READY=1; once the
    broker is up it is ready and says so.  The broker stopped again: 503
    naming the broker, brokers_up 0, the lag figures marked stale, /healthz
    still 200; started again: ready, fresh, and consuming."""
    kafka = PrivateKafka()
    db, topics = Database(), Topics()
    daemon = None
    try:
        kafka.stop()
        daemon = Daemon(db, topics, notify=True,
                        config={"kafka": {"reconnect.backoff.max.ms": "1000"}}).start()
        surface = Http(daemon)

        def unready_for_the_broker():
            status, body = surface.get("/readyz")
            return status == 503 and "broker" in body
        problems = []

        def gauges(when, up, stale):
            # Whether the topics exist is not known without a broker:
            # never counted missing then (nor when they are there).
            m = surface.metrics()
            got = (m.get("ipam_syncd_kafka_brokers_up"),
                   m.get("ipam_syncd_consumer_lag_stale"),
                   m.get("ipam_syncd_kafka_topics_missing"))
            if got != (up, stale, 0):
                problems.append("%s: kafka_brokers_up, consumer_lag_stale, "
                                "kafka_topics_missing = %r, expected %r (a "
                                "one-broker cluster)" % (when, got, (up, stale, 0)))

        wait_until(unready_for_the_broker, 60, "/readyz to name the broker")
        # A few seconds in which it has every chance to be wrongly ready.
        wait_until(lambda: daemon.log_contains(r"postgresql: connected"), 30,
                   "PostgreSQL connected")
        time.sleep(3)
        assert unready_for_the_broker(), surface.get("/readyz")
        gauges("started without its broker", 0, 1)
        assert not notified(daemon, "READY=1"), daemon.notify.texts()

        kafka.start()
        daemon.notify.wait_for("READY=1", timeout=60)
        wait_until(lambda: surface.get("/readyz") == (200, "ready\n"), 30, "ready")
        gauges("the broker up", 1, 0)

        kafka.stop()
        wait_until(unready_for_the_broker, 60, "/readyz to name the broker again")
        gauges("the broker stopped", 0, 1)
        assert surface.get("/healthz") == (200, "ok\n")

        kafka.start()
        wait_until(lambda: surface.get("/readyz") == (200, "ready\n"), 60, "ready again")
        gauges("the broker started again", 1, 0)
        producer = Kafka()
        value, _ = cloudevent("subnet", "1", "upsert", 1, {
            "name": "n", "cidr": "10.221.0.0/24", "static_ip_pools": ["10.221.0.1"]})
        producer.send(topics.subnets, "1", value)
        producer.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 1, 60,
                   "an event applied after the broker came back")
        assert daemon.stop() == 0
        assert not problems, "\n".join(problems)
    finally:
        if daemon is not None:
            daemon.close()
        db.close()
        kafka.close()


def test_ready_with_more_instances_than_partitions():
    """Four instances of one group on three partitions: the group gives
    one of them nothing, and that one is ready too (READY=1, /readyz 200),
    as are the three that hold a partition."""
    db, topics = Database(), Topics(partitions=1)
    group = unique("g")
    daemons = [Daemon(db, topics, group=group, notify=True).start() for _ in range(4)]
    try:
        surfaces = [Http(d) for d in daemons]

        def held():
            values = [s.metric("ipam_syncd_consumer_assigned_partitions")
                      for s in surfaces]
            return sorted(values) if None not in values else values
        wait_until(lambda: held() == [0, 1, 1, 1], 90,
                   "three partitions over four instances")
        idle = [d for d, s in zip(daemons, surfaces)
                if s.metric("ipam_syncd_consumer_assigned_partitions") == 0]
        for daemon, surface in zip(daemons, surfaces):
            role = "idle" if daemon in idle else "holding"
            wait_until(lambda: surface.get("/readyz")[0] == 200, 30,
                       "the %s instance %s to be ready" % (role, daemon.dir))
            daemon.notify.wait_for("READY=1", timeout=10)
        for daemon in daemons:
            assert daemon.stop() == 0
    finally:
        for daemon in daemons:
            daemon.close()
        db.close()


def test_a_fenced_static_member_stops_and_says_why():
    """Two instances of one group given the same group.instance.id (a
    static member's id copied to a second host): the broker fences the
    first when the second joins, and librdkafka's client of the first can
    consume nothing more, ever.  The fenced instance says why at error
    level and exits with status 78 (EX_CONFIG, which the unit does not
    restart: a restart would fence the other in turn) instead of staying
    up, consuming nothing and ready; the other goes on applying."""
    db, topics, kafka = Database(), Topics(), Kafka()
    group = unique("g")
    config = {"kafka": {"group.instance.id": unique("static")}}
    first = Daemon(db, topics, group=group, config=config).start()
    second = None
    try:
        first.wait_ready()
        second = Daemon(db, topics, group=group, config=config).start()
        wait_until(lambda: first.proc.poll() is not None, 120,
                   "the fenced instance to exit")
        assert first.proc.returncode == 78, (first.proc.returncode, first.log()[-3000:])
        assert first.log_contains(r"<3>kafka: fatal error, the consumer can go on "
                                  r"no more: .*[Ff]enced"), first.log()[-3000:]
        assert first.log_contains(r"<3>kafka: stopping, as the consumer cannot go "
                                  r"on .*; exit status 78, which is not restarted")
        assert first.log_contains(r"<6>stopped")
        second.wait_ready()
        send_one_server(kafka, topics.subnets, topics.servers, "10.221.0")
        wait_until(lambda: db.scalar("SELECT server_id FROM ipam WHERE "
                                     "ip_address = '10.221.0.9'") == "1", 60,
                   "the other instance to apply")
        assert second.stop() == 0
    finally:
        first.close()
        if second is not None:
            second.close()
        db.close()


if __name__ == "__main__":
    harness.main(globals())
