"""Helpers for the integration tests: real PostgreSQL, real Kafka, the real
daemon binary.  Each test gets its own database and its own topics, so tests
never see each other's data.  Run with Debian's python3 (psycopg2 and
confluent_kafka come from Debian's packages)."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

import psycopg2
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

# Secret files (tokens, passwords) the tests write are the owner's only,
# as the daemon requires of them.
os.umask(0o077)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = os.path.join(ROOT, "schema")
# The schema version this tree migrates to: its highest numbered migration.
LATEST_SCHEMA = max(int(name[:3]) for name in os.listdir(SCHEMA_DIR)
                    if re.match(r"\d{3}_.*\.sql$", name))
BINARY = os.environ.get("IPAM_SYNCD_BIN", os.path.join(ROOT, "build", "ipam-syncd"))


def require_services():
    """Fails with a clear message when the services' environment is missing."""
    missing = [v for v in ("PGHOST", "PGPORT", "KAFKA_BOOTSTRAP_SERVERS")
               if not os.environ.get(v)]
    if missing:
        raise SystemExit("integration tests need %s: run them through scripts/test "
                         "(or eval \"$(scripts/services env)\")" % ", ".join(missing))


def bootstrap():
    return os.environ["KAFKA_BOOTSTRAP_SERVERS"]


def unique(prefix):
    """A name no other test uses: prefix, pid and random hex."""
    return "%s_%d_%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])


def refuse_times_before_2000(db):
    """Makes the API's CSV refuse to render a time before 2000 (an error
    raised while a page is read): a row given such a time fails the page
    that holds it, to cut a streamed export mid-way."""
    db.query("""CREATE OR REPLACE FUNCTION ipamd.api_time(t timestamptz)
        RETURNS text LANGUAGE plpgsql STABLE AS $$
        BEGIN
            IF t < '2000-01-01' THEN
                RAISE EXCEPTION 'no time before 2000';
            END IF;
            RETURN to_char(t AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
        END $$""")


def wait_until(predicate, timeout=30.0, what="condition", interval=0.05):
    """Polls predicate until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)"
                         % (timeout, what, last))


def free_port():
    """An ephemeral port free now: for a port nobody is to listen on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_GIVEN_PORTS = set()


def quiet_port():
    """A free port below the ephemeral range (as scripts/services picks),
    so that no client connection takes it while a listener is closed.
    Never the same port twice in one test process: two listeners asked
    for one after the other must not share a port that was free for both.
    Ask while a listener already started holds its own, so that its
    ports are seen as taken."""
    rng = random.SystemRandom()
    while True:
        port = rng.randint(20000, 32000)
        if port in _GIVEN_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN_PORTS.add(port)
        return port


class Database:
    """A fresh database on the shared PostgreSQL, dropped at close()."""

    def __init__(self, name=None, host=None, port=None):
        self.name = name or unique("ipamtest")
        self.host = host or os.environ["PGHOST"]
        self.port = int(port or os.environ["PGPORT"])
        self.user = os.environ.get("PGUSER", "postgres")
        admin = self._connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute('CREATE DATABASE "%s"' % self.name)
        admin.close()
        self.conn = None

    def _connect(self, dbname):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                dbname=dbname, connect_timeout=5)

    def conninfo(self):
        return "host=%s port=%d user=%s dbname=%s" % (self.host, self.port,
                                                       self.user, self.name)

    def query(self, sql, args=None):
        """Runs one statement in its own transaction; returns rows or []."""
        for attempt in range(2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self._connect(self.name)
                    self.conn.autocommit = True
                with self.conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall() if cur.description else []
            except psycopg2.OperationalError:
                self.conn = None
                if attempt:
                    raise
        return []

    def scalar(self, sql, args=None):
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    def table_exists(self, name):
        return self.scalar("SELECT to_regclass(%s) IS NOT NULL", (name,))

    def migrate_to(self, last):
        """Applies the migrations up to version `last` as the daemon does
        (each file, then its record), and no function file: a database
        an older ipam-syncd left, for the tests of an upgrade."""
        self.query("CREATE TABLE public.ipam_schema_migration (version integer "
                   "PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL "
                   "DEFAULT now())")
        for name in sorted(os.listdir(SCHEMA_DIR)):
            version = name.split("_", 1)[0]
            if name.endswith(".sql") and version.isdigit() and int(version) <= last:
                with open(os.path.join(SCHEMA_DIR, name)) as f:
                    self.query(f.read() + "\n;SELECT 1")
                self.query("INSERT INTO public.ipam_schema_migration (version, name) "
                           "VALUES (%s, %s)", (int(version), name[:-4]))

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        try:
            admin = self._connect("postgres")
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name)
            admin.close()
        except psycopg2.Error:
            pass


class Topics:
    """The three topics of one test, created with the given partitions."""

    def __init__(self, partitions=1, prefix=None, formats=None):
        self.prefix = prefix or unique("t")
        formats = formats or {}
        self.servers = self.prefix + ".servers"
        self.subnets = self.prefix + ".subnets"
        self.marks = self.prefix + ".marks"
        self.formats = {
            self.servers: ("server", formats.get("server", "cloudevents")),
            self.subnets: ("subnet", formats.get("subnet", "cloudevents")),
            self.marks: ("mark", "cloudevents"),
        }
        admin = AdminClient({"bootstrap.servers": bootstrap()})
        futures = admin.create_topics([NewTopic(t, num_partitions=partitions,
                                                replication_factor=1)
                                       for t in self.formats])
        for future in futures.values():
            future.result(timeout=30)

    def config_value(self):
        return ", ".join("%s:%s:%s" % (t, e, f) for t, (e, f) in self.formats.items())


class Kafka:
    """A producer that waits for every message to be acknowledged."""

    def __init__(self):
        self.producer = Producer({"bootstrap.servers": bootstrap(),
                                  "linger.ms": 5, "enable.idempotence": True})

    def send(self, topic, key, value, headers=None, partition=None):
        """Produces one message; value None is a tombstone."""
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, **kwargs)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self):
        remaining = self.producer.flush(30)
        if remaining:
            raise AssertionError("%d messages were not acknowledged" % remaining)


class Notify:
    """A fake $NOTIFY_SOCKET: a datagram socket the test owns.  A thread
    reads it, so that every message carries the time it arrived."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []   # (monotonic time of arrival, text)
        self.lock = threading.Lock()
        self.running = True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def pump(self):
        """Kept for callers: the reader thread does the work."""

    def timed(self):
        with self.lock:
            return list(self.messages)

    def texts(self):
        return [m for _, m in self.timed()]

    def wait_for(self, line, timeout=60):
        """Waits for a message holding the line (e.g. READY=1)."""
        def seen():
            return any(line in m.split("\n") for m in self.texts())
        return wait_until(seen, timeout, "notify message %s" % line)

    def close(self):
        self.running = False
        self.reader.join(1)
        self.sock.close()


# Every daemon a test started, so that a failure can show their logs.
STARTED = []


class Daemon:
    """The real ipam-syncd binary with a generated config."""

    def __init__(self, db, topics, directory=None, config=None, notify=False,
                 env=None, group=None):
        STARTED.append(self)
        self.dir = directory or tempfile.mkdtemp(prefix="ipamd-")
        self.config_path = os.path.join(self.dir, "ipam-syncd.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.db = db
        self.topics = topics
        self.group = group or unique("g")
        sections = {
            "daemon": {"schema_dir": SCHEMA_DIR, "log_level": "debug",
                       "shutdown_timeout_ms": "10000"},
            "postgresql": {"conninfo": db.conninfo(), "reconnect_min_ms": "100",
                           "reconnect_max_ms": "1000"},
            "consumer": {"group_id": self.group, "topics": topics.config_value()},
            "sweeper": {"enabled": "false"},
            "http": {"listen": "127.0.0.1:0"},
            "kafka": {"bootstrap.servers": bootstrap(),
                      "topic.metadata.refresh.interval.ms": "1000"},
        }
        for section, values in (config or {}).items():
            sections.setdefault(section, {}).update(values)
        self.write_config(sections)
        self.notify = Notify(self.dir) if notify else None
        self.extra_env = env or {}
        self.proc = None
        self.log_file = None

    def write_config(self, sections):
        self.sections = sections
        with open(self.config_path, "w") as f:
            for section, values in sections.items():
                f.write("[%s]\n" % section)
                for key, value in values.items():
                    f.write("%s = %s\n" % (key, value))

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        env.update(self.extra_env)
        if self.notify:
            env["NOTIFY_SOCKET"] = self.notify.path
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINARY, "--config", self.config_path],
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env)
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_contains(self, pattern):
        return re.search(pattern, self.log()) is not None

    def wait_log(self, pattern, timeout=60):
        """Waits for a log line; fails early if the daemon exits first."""
        wait_until(lambda: self.log_contains(pattern) or self._died(),
                   timeout, "log line /%s/" % pattern)
        if not self.log_contains(pattern):
            self._fail_died(pattern)

    def _died(self):
        return self.proc is not None and self.proc.poll() is not None

    def _fail_died(self, pattern):
        raise AssertionError("daemon exited (status %s) before logging /%s/:\n%s"
                             % (self.proc.returncode, pattern, self.log()[-3000:]))

    def http_port(self, timeout=30):
        """The port the daemon's HTTP server listens on (from its log)."""
        self.wait_log(r"http: listening on ", timeout)
        return int(re.search(r"http: listening on \S+:(\d+)", self.log()).group(1))

    def http_get(self, path, timeout=10):
        """GET from the daemon's HTTP server: (status, body text)."""
        import urllib.error
        import urllib.request
        url = "http://127.0.0.1:%d%s" % (self.http_port(), path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, timeout=60):
        self.wait_log(r"ready: PostgreSQL connected", timeout)
        return self

    def wait_assigned(self, count, timeout=60):
        """Waits until the daemon has logged `count` partition assignments."""
        wait_until(lambda: len(re.findall(r"kafka: assigned ", self.log())) >= count
                   or self._died(), timeout, "%d assignments" % count)
        if self._died():
            self._fail_died("kafka: assigned")

    def signal(self, signo):
        self.proc.send_signal(signo)

    def stop(self, timeout=30):
        """SIGTERM, then the exit status (fails if it does not exit in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not exit within %d s of SIGTERM" % timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        if self.log_file:
            self.log_file.close()
        if self.notify:
            self.notify.close()


def committed_offsets(db, group):
    """Sum of the stored next offsets of a group."""
    return db.scalar("SELECT coalesce(sum(next_offset), 0) FROM ipam_state.consumer_offset "
                     "WHERE group_id = %s", (group,)) if db.table_exists("ipam_state.consumer_offset") else 0


def wait_caught_up(db, group, expected_messages, timeout=120):
    """Waits until the stored offsets cover `expected_messages` messages in all
    (with one partition per topic and no gaps, the sum of next offsets is the
    number of messages consumed)."""
    return wait_until(lambda: committed_offsets(db, group) >= expected_messages,
                      timeout, "offsets to reach %d" % expected_messages)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, to stop and start at will;
    settings are extra server parameters (e.g. {"wal_level": "logical"})."""

    def __init__(self, settings=None):
        self.settings = dict(settings or {})
        self.bindir = os.environ.get("IPAM_PG_BINDIR", "/usr/lib/postgresql/15/bin")
        self.runas = os.environ.get("IPAM_PG_RUNAS") if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="ipam-pg-")
        if self.runas:
            shutil.chown(self.dir, user=self.runas)
        self.data = os.path.join(self.dir, "data")
        self.port = quiet_port()
        self._run(["initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                   "--no-sync"])

    def _run(self, argv):
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.runas:
            argv = ["runuser", "-u", self.runas, "--"] + argv
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd="/")

    def start(self):
        options = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (
            self.port, self.dir)
        options += "".join(" -c %s=%s" % item for item in self.settings.items())
        self._run(["pg_ctl", "-D", self.data, "-w", "-l",
                   os.path.join(self.dir, "log"), "-o", options, "start"])
        return self

    def stop(self, mode="fast"):
        self._run(["pg_ctl", "-D", self.data, "-w", "-m", mode, "stop"])

    def close(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def main(tests):
    """Runs the test functions named on the command line (or all test_*)."""
    require_services()
    names = sys.argv[1:] or sorted(n for n in tests if n.startswith("test_"))
    failed = 0
    for name in names:
        began = time.monotonic()
        del STARTED[:]
        try:
            tests[name]()
        except Exception:
            failed += 1
            traceback.print_exc()
            for daemon in STARTED:
                print("---- log of the daemon in %s (last 60 lines) ----" % daemon.dir)
                try:
                    print("\n".join(daemon.log().splitlines()[-60:]))
                except OSError as error:
                    print(error)
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - began), flush=True)
        else:
            print("PASS %s (%.1f s)" % (name, time.monotonic() - began), flush=True)
    sys.exit(1 if failed else 0)
