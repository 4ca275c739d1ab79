"""The benchmark driver behind bench/run: runs each measurement of issue 6
against the real daemon (a Release build), a private PostgreSQL 15 and the
project's Kafka broker, and writes the results table into docs/BENCHMARKS.md.

Run it through bench/run, which builds everything and starts the services.
Debian's python3 (psycopg2, confluent_kafka) is needed."""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg2
from confluent_kafka.admin import AdminClient

import floor
import jdbc_sink
import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("IPAM_BENCH_BUILD", os.path.join(ROOT, "build-bench"))
DAEMON = os.environ.get("IPAM_BENCH_DAEMON", os.path.join(BUILD, "ipam-syncd"))
SRC = os.environ.get("IPAM_BENCH_SRC", ROOT)  # the daemon's sources and schema
LOADGEN = os.path.join(BUILD, "tools", "loadgen")
ORM = os.path.join(BUILD, "tools", "baseline_orm")
SETBASED = os.path.join(ROOT, "bench", "baseline_setbased.sql")
SCHEMA_DIR = os.path.join(SRC, "schema")
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PG_BINDIR = os.environ.get("IPAM_PG_BINDIR", "/usr/lib/postgresql/15/bin")

# The sizes of each measurement, full and --quick.  "budget" bounds the
# seconds spent on the repeats of a measurement (at least one run is always
# made); "cap" bounds one run: a run that reaches it is reported as capped,
# with the rate it had reached.  Together they keep the full run near 20
# minutes on 2 cores however slow the daemon is, and make the runs repeat
# (medians of 3) once it is fast.
SIZES = {
    "full": {
        "tp": dict(servers=100000, subnets=1000, versions=2, repeats=3, cap=240, budget=300),
        "orm_seconds": 10,
        "setbased_budget": 90,
        "rebuild": dict(servers=100000, subnets=1000, versions=10, repeats=3, cap=180,
                        budget=330, prepare_cap=300),
        "latency": dict(servers=10000, subnets=200, rate=1000, duration=20, repeats=3,
                        budget=150),
        "pool_repeats": 3,
        "pool_bits": (16, 112),
        "rows": dict(pools=16, bits=16, cap=300),
        "backlogs": [2000000, 10000000],
        "backlog_window": 30,
        "profile": dict(servers=100000, subnets=1000, versions=2, timing=False),
        "dbz": dict(servers=100000, subnets=1000, versions=2, repeats=3, cap=240, budget=420,
                    jdbc=True, warmup=20000),
        "commit_floor": 5,
        "huge": dict(count=3, bits=12, cap=900),
        "scale": dict(small=(1000, 100), large=(100000, 100), upserts=5),
        "sweep": dict(cidr="127.1.0.0/16", pool="127.1.0.1-127.1.255.254", targets=65534,
                      runs=5, interval_ms=6000),
    },
    "quick": {
        "tp": dict(servers=10000, subnets=100, versions=2, repeats=1, cap=60, budget=60),
        "orm_seconds": 3,
        "setbased_budget": 10,
        "rebuild": dict(servers=3000, subnets=100, versions=10, repeats=1, cap=60,
                        budget=60, prepare_cap=60),
        "latency": dict(servers=2000, subnets=100, rate=1000, duration=4, repeats=1,
                        budget=30),
        "pool_repeats": 1,
        "pool_bits": (22, 118),
        "rows": dict(pools=4, bits=20, cap=60),
        "backlogs": [200000],
        "backlog_window": 6,
        "profile": dict(servers=5000, subnets=100, versions=2, timing=False),
        "dbz": dict(servers=10000, subnets=100, versions=2, repeats=1, cap=60, budget=60,
                    jdbc=False, warmup=0),
        "commit_floor": 2,
        "huge": dict(count=3, bits=18, cap=60),
        "scale": dict(small=(100, 100), large=(10000, 100), upserts=3),
        "sweep": dict(cidr="127.1.0.0/24", pool="127.1.0.1-127.1.0.254", targets=254,
                      runs=5, interval_ms=1000),
    },
}


def log(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def median(values):
    return statistics.median(values) if values else float("nan")


class PrivatePostgres:
    """A PostgreSQL 15 cluster of the benchmark's own: default settings as
    scripts/services makes them, plus track_commit_timestamp (for the
    latency of each event) and auto_explain available per database (for the
    profile).  Other engineers' tests on the shared cluster cannot disturb
    it, and it cannot disturb them."""

    def __init__(self):
        self.runas = "postgres" if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="ipam-bench-pg.")
        os.chmod(self.dir, 0o700)
        if self.runas:
            shutil.chown(self.dir, user=self.runas, group=self.runas)
        self.data = os.path.join(self.dir, "data")
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run(["initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# bench/bench.py\nlisten_addresses = '127.0.0.1'\n"
                    "port = %d\nunix_socket_directories = '%s'\n"
                    "max_connections = 200\ntrack_commit_timestamp = on\n"
                    % (self.port, self.dir))
        self._run(["pg_ctl", "-D", self.data, "-l",
                   os.path.join(self.dir, "postgresql.log"), "-w", "start"])
        self.version = self.scalar("postgres", "SHOW server_version")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def cpu(self):
        """CPU seconds of the server's processes alive now (backends come
        and go: take it before and after a run, with the run's daemon still
        connected)."""
        return cpu_seconds([self.pid] + children(self.pid))

    def _run(self, argv):
        argv = [os.path.join(PG_BINDIR, argv[0])] + argv[1:]
        if self.runas:
            argv = ["runuser", "-u", self.runas, "--"] + argv
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd="/")

    def conninfo(self, db):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)

    def connect(self, db):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port,
                                user="postgres", dbname=db)
        conn.autocommit = True
        return conn

    def scalar(self, db, sql, args=None):
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                row = cur.fetchone() if cur.description else None
                return row[0] if row else None
        finally:
            conn.close()

    def create_db(self, name):
        self.scalar("postgres", 'CREATE DATABASE "%s"' % name)
        return name

    def drop_db(self, name):
        self.scalar("postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def close(self):
        try:
            self._run(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# bench/run --explain: auto_explain on every fresh database of the run.
EXPLAIN = False


class Db:
    """One fresh database with a connection kept open for polling; or,
    with template, a copy of another (whose connection is closed while
    PostgreSQL copies it)."""

    def __init__(self, pg, tag, template=None):
        self.pg = pg
        self.name = "b_%s_%s" % (tag, uuid.uuid4().hex[:6])
        if template is None:
            pg.create_db(self.name)
        else:
            template.conn.close()
            pg.scalar("postgres", 'CREATE DATABASE "%s" TEMPLATE "%s"' % (self.name,
                                                                       template.name))
            template.conn = pg.connect(template.name)
        self.conn = pg.connect(self.name)
        if EXPLAIN and template is None:
            explain_statements(self)

    def clone(self, tag):
        """A copy of this database as it is now."""
        return Db(self.pg, tag, template=self)

    def empty_state(self):
        """Empties the tables the floor writes (a copy of the daemon's
        tables with none of their rows: the floor's starting point)."""
        self.query("TRUNCATE %s" % ", ".join(floor.TABLES))
        self.query("VACUUM ANALYZE")

    def commit_time(self, sql, args=None):
        """The commit time (epoch seconds, PostgreSQL's clock, which is this
        machine's) of the transaction that wrote the row sql selects: sql
        returns pg_xact_commit_timestamp(xmin) or an aggregate of it."""
        return float(self.scalar("SELECT extract(epoch FROM (%s))" % sql, args) or "nan")

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql, args=None):
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    def committed(self, group, schema="ipam_state"):
        if not self.scalar("SELECT to_regclass(%s) IS NOT NULL",
                           (schema + ".consumer_offset",)):
            return 0
        return int(self.scalar("SELECT coalesce(sum(next_offset), 0) FROM %s."
                               "consumer_offset WHERE group_id = %%s" % schema, (group,)))

    def close(self):
        self.conn.close()
        self.pg.drop_db(self.name)


class Topics:
    """The three topics of one measurement; the servers' may carry
    Debezium events (loadgen --format debezium), the others CloudEvents."""

    def __init__(self, tag, server_format="cloudevents"):
        self.prefix = "bench_%d_%s_%s" % (os.getpid(), tag, uuid.uuid4().hex[:6])
        self.names = [self.prefix + s for s in (".servers", ".subnets", ".marks")]
        self.server_format = server_format

    def config_value(self):
        return "%s.servers:server:%s, %s.subnets:subnet:cloudevents, " \
               "%s.marks:mark:cloudevents" % (self.prefix, self.server_format,
                                               self.prefix, self.prefix)

    def delete(self):
        admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
        for future in admin.delete_topics(self.names, operation_timeout=30).values():
            try:
                future.result(timeout=60)
            except Exception as error:  # a topic never made is no failure
                log("delete topic: %s" % error)


def loadgen(topics, create=False, **opts):
    argv = [LOADGEN, "--prefix", topics.prefix]
    if create:
        argv.append("--create-topics")
    for key, value in opts.items():
        if value is True:
            argv.append("--" + key.replace("_", "-"))
        elif isinstance(value, list):
            for v in value:
                argv += ["--" + key.replace("_", "-"), str(v)]
        elif value is not None and value is not False:
            argv += ["--" + key.replace("_", "-"), str(value)]
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def cpu_seconds(pids):
    """User + system CPU seconds of some processes (gone ones count 0)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def vm_status(pid):
    """VmRSS and VmHWM of a process, in MiB."""
    values = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, kb = line.split()[:2]
                    values[name[:-1]] = int(kb) / 1024.0
    except OSError:
        pass
    return values


# Every daemon started, so that a failure or ^C stops them all.
DAEMONS = []
# --daemon-logs: where every daemon's log is kept, or None.
DAEMON_LOGS = None
DAEMON_SET = {}         # --daemon-set: {section: {key: value}} for every daemon


class Daemon:
    """The Release daemon with a generated config."""

    def __init__(self, pg, db, topics, group=None, rebuild=False,
                 log_level="info", extra=None, env=None):
        DAEMONS.append(self)
        self.number = len(DAEMONS)
        if DAEMON_LOGS:
            log_level = "debug"
        self.dir = tempfile.mkdtemp(prefix="ipam-bench-daemon.")
        self.group = group or "bench"
        self.config = os.path.join(self.dir, "ipam-syncd.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        sections = {
            "daemon": {"schema_dir": SCHEMA_DIR, "log_level": log_level,
                       "shutdown_timeout_ms": "30000"},
            "postgresql": {"conninfo": pg.conninfo(db.name)},
            "consumer": {"group_id": self.group, "topics": topics.config_value()},
            "sweeper": {"enabled": "false"},
            "http": {"listen": "127.0.0.1:0"},
            "kafka": {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]},
        }
        for section, values in list((extra or {}).items()) + list(DAEMON_SET.items()):
            sections.setdefault(section, {}).update(values)
        with open(self.config, "w") as f:
            for section, values in sections.items():
                f.write("[%s]\n" % section)
                for k, v in values.items():
                    f.write("%s = %s\n" % (k, v))
        env = dict({k: v for k, v in os.environ.items() if not k.startswith("IPAM_")},
                   **(env or {}))
        self.log_file = open(self.log_path, "ab")
        self.started = time.monotonic()
        command = [DAEMON, "--config", self.config] + (["--rebuild"] if rebuild else [])
        self.stamper = None
        if DAEMON_LOGS:
            # Each line stamped with the seconds since the start.
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=env)
            self.stamper = threading.Thread(target=self.stamp, daemon=True)
            self.stamper.start()
        else:
            self.proc = subprocess.Popen(command, stdout=self.log_file,
                                         stderr=subprocess.STDOUT, env=env)

    def stamp(self):
        for line in self.proc.stdout:
            self.log_file.write(b"%9.3f " % (time.monotonic() - self.started) + line)
            self.log_file.flush()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def vm(self):
        return vm_status(self.proc.pid)

    def cpu(self):
        """CPU seconds the daemon has used (all its threads)."""
        return cpu_seconds([self.proc.pid])

    def wait_ready(self, timeout=120):
        wait_for(lambda: "ready: " in self.log(), timeout, "the daemon to be ready", self)
        return self

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.stamper:
            self.stamper.join(10)
        self.log_file.close()
        return self.proc.returncode

    def close(self, keep_log=False):
        self.stop()
        if DAEMON_LOGS and os.path.exists(self.log_path):
            shutil.copy(self.log_path, os.path.join(
                DAEMON_LOGS, "daemon-%02d.log" % self.number))
        if not keep_log:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(predicate, timeout, what, daemon=None, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            raise Failure("the daemon exited (%s) while waiting for %s:\n%s"
                          % (daemon.proc.returncode, what, daemon.log()[-3000:]))
        time.sleep(interval)
    raise Failure("timed out after %.0f s waiting for %s%s" % (
        timeout, what, "" if daemon is None else ":\n" + daemon.log()[-3000:]))


def sanity(db, subnets):
    """The state the fill must leave: no dead letters, no conflicts, every
    pool address a row, every live server with an address allocated."""
    dead = db.scalar("SELECT count(*) FROM ipamd.dead_letter")
    check(dead == 0, "%d dead letters: %s" % (dead, db.query(
        "SELECT reason FROM ipamd.dead_letter LIMIT 3")))
    static = db.scalar("SELECT count(*) FROM ipam WHERE ip_type = 'static'")
    check(static == subnets * 152, "%s static rows, expected %d" % (static, subnets * 152))
    live = db.scalar("SELECT count(*) FROM ipam_state.server WHERE NOT deleted "
                     "AND ip_address IS NOT NULL")
    allocated = db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'")
    check(live == allocated, "%s live servers but %s allocated rows" % (live, allocated))


# ---------------------------------------------------------------- 1 throughput

def apply_until_committed(pg, db, topics, total, cap, rebuild=False, on_start=None, **kw):
    """Starts the daemon on full topics and waits until every event is
    committed or the cap is reached.  Returns (seconds, committed, daemon);
    committed < total means the run was capped.  on_start(daemon) is
    called once the daemon runs."""
    daemon = Daemon(pg, db, topics, rebuild=rebuild, **kw)
    if on_start:
        on_start(daemon)
    schema = "ipam_state_rebuild" if rebuild else "ipam_state"
    began = time.monotonic()
    first = []
    last = [0]

    def done():
        n = db.committed(daemon.group, schema)
        last[0] = n
        if n and not first:
            first.append((time.monotonic() - began, n))
        return n >= total or time.monotonic() - began >= cap
    wait_for(done, cap + 60, "%d events committed" % total, daemon, interval=0.1)
    daemon.first_commit = first[0] if first else (0, 0)
    return time.monotonic() - began, last[0], daemon


def measure_throughput(pg, size, results):
    cfg = size["tp"]
    runs, orm_runs = [], []
    began = time.monotonic()
    for r in range(cfg["repeats"]):
        if runs and time.monotonic() - began + runs[-1]["seconds"] + size["orm_seconds"] \
                > cfg["budget"]:
            log("throughput: budget spent after %d runs" % len(runs))
            break
        topics = Topics("tp%d" % r)
        try:
            made = loadgen(topics, create=True, servers=cfg["servers"],
                           subnets=cfg["subnets"], versions=cfg["versions"], seed=r + 1)
            db = Db(pg, "tp")
            pg_cpu = pg.cpu()
            seconds, done, daemon = apply_until_committed(pg, db, topics, made["total"],
                                                          cfg["cap"])
            pg_cpu = pg.cpu() - pg_cpu
            daemon_cpu = cpu_seconds([daemon.proc.pid])
            vm = daemon.vm()
            fc_s, fc_n = daemon.first_commit
            daemon.close()
            capped = done < made["total"]
            if not capped:
                sanity(db, cfg["subnets"])
            rows = db.scalar("SELECT count(*) FROM ipam")
            fl = measure_floor(db) if not capped else None
            db.close()
            share = made["server_events"] / made["total"]
            runs.append(dict(seconds=seconds, events=made["total"], committed=done,
                             capped=capped, server_events=made["server_events"], rows=rows,
                             rate=done / seconds, server_rate=done * share / seconds,
                             first_commit=fc_s,
                             after_first=(done - fc_n) / max(seconds - fc_s, 1e-3),
                             hwm=vm.get("VmHWM"), daemon_cpu=daemon_cpu, pg_cpu=pg_cpu,
                             floor=fl))
            log("throughput run %d: %d of %d events in %.1f s = %.0f events/s%s; CPU s: "
                "daemon %.1f, PostgreSQL %.1f" % (r + 1, done, made["total"], seconds,
                                                  done / seconds, " (capped)" if capped else "",
                                                  daemon_cpu, pg_cpu))

            db = Db(pg, "orm")
            out = subprocess.run([ORM, "--prefix", topics.prefix, "--conninfo",
                                  pg.conninfo(db.name), "--max-server-seconds",
                                  str(size["orm_seconds"])], check=True,
                                 stdout=subprocess.PIPE).stdout
            db.close()
            orm = json.loads(out)
            check(orm["servers"]["events"] > 0, "baseline (a) applied no server event")
            orm_runs.append(orm)
            log("baseline (a) run %d: %.0f server events/s" % (r + 1, orm["servers"]["rate"]))
        finally:
            topics.delete()
    setbased = []
    began = time.monotonic()
    while len(setbased) < cfg["repeats"]:
        setbased.append(run_setbased(pg, cfg))
        if time.monotonic() - began + setbased[-1]["seconds"] * 1.5 > size["setbased_budget"]:
            break
    results["throughput"] = dict(config=cfg, runs=runs, orm=orm_runs, setbased=setbased)


def measure_floor(after, before=None):
    """The floor for the events that made the state of `after`: their
    minimal durable row changes (bench/floor.py), replayed with COPY on a
    copy of `before` (by default: `after` with its tables emptied, for
    events applied to an empty database).  Returns the seconds and rows."""
    made = before is None
    if made:
        before = after.clone("floor")
        before.empty_state()
    try:
        changes = floor.diff(before.conn, after.conn)
        try:
            seconds = floor.replay(before.conn, changes)
        finally:
            changes.close()
        log("floor: %d rows written in %.2f s" % (changes.rows(), seconds))
        return dict(seconds=seconds, rows=changes.rows(), tables=changes.counts())
    finally:
        if made:
            before.close()


def run_setbased(pg, cfg):
    db = Db(pg, "setb")
    # The daemon's tables: every migration, in order (they are plain DDL).
    state = tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="ipam-bench-state.")
    for name in sorted(os.listdir(SCHEMA_DIR)):
        if re.match(r"^\d{3}_.*\.sql$", name):
            with open(os.path.join(SCHEMA_DIR, name)) as f:
                state.write(f.read() + "\n")
    state.flush()
    try:
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-v", "subnets=%d" % cfg["subnets"], "-v", "servers=%d" % cfg["servers"],
             "-v", "versions=%d" % cfg["versions"], "-v", "delete_pct=5",
             "-v", "marks=%d" % cfg["subnets"],
             "-v", "state_sql=%s" % state.name, "-f", SETBASED,
             pg.conninfo(db.name)], check=True, stdout=subprocess.PIPE,
            text=True).stdout
        result = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        log("baseline (b): %d events' row changes in %.2f s = %.0f events/s"
            % (result["events"], result["seconds"], result["events"] / result["seconds"]))
        return result
    finally:
        state.close()
        db.close()


# ------------------------------------------------------- 2 Debezium, JDBC sink

def measure_debezium(pg, size, results):
    """The Debezium server events (loadgen --format debezium: ~3.5 KB each
    with the schema block), applied by the daemon, by the Debezium JDBC
    sink (a peer, on the same topic), and as the floor, in each run.  The
    1,000 subnets (CloudEvents) are applied first, untimed: the JDBC sink
    writes servers only, and both start on the same full server topic."""
    cfg = size["dbz"]
    worker = None
    runs = []
    try:
        if cfg["jdbc"]:
            jdbc_sink.install()
            worker = jdbc_sink.Worker(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
            if cfg["warmup"]:
                # A first, untimed pass: the JVM's JIT compiles the sink's
                # hot paths (the first pass runs ~1.7 times slower).
                debezium_run(pg, dict(cfg, servers=cfg["warmup"]), worker, -1)
        began = time.monotonic()
        for r in range(cfg["repeats"]):
            if runs and time.monotonic() - began > cfg["budget"]:
                log("debezium: budget spent after %d runs" % len(runs))
                break
            runs.append(debezium_run(pg, cfg, worker, r))
    finally:
        if worker:
            worker.close()
    results["debezium"] = dict(config=cfg, runs=runs)


def debezium_run(pg, cfg, worker, r):
    """One run: the daemon (with the floor of its row changes), then the
    JDBC sink, on one topic of Debezium server events."""
    topics = Topics("dbz%d" % r, server_format="debezium")
    db = before = None
    try:
        base = loadgen(topics, create=True, servers=0, subnets=cfg["subnets"], marks=0)
        db = Db(pg, "dbz")
        _, done, daemon = apply_until_committed(pg, db, topics, base["total"], 300)
        daemon.close()
        check(done == base["total"], "the Debezium run's subnets were not applied")
        before = db.clone("dbzfloor")
        made = loadgen(topics, servers=cfg["servers"], subnets=cfg["subnets"],
                       versions=cfg["versions"], servers_only=True, format="debezium",
                       delete_pct=0, seed=max(r, 0) + 1)
        total = base["total"] + made["total"]
        out = dict(events=made["total"], servers=cfg["servers"], warmup=r < 0)
        pg_cpu = pg.cpu()
        t0 = time.time()
        seconds, done, daemon = apply_until_committed(pg, db, topics, total, cfg["cap"])
        out.update(pg_cpu=pg.cpu() - pg_cpu, daemon_cpu=daemon.cpu(),
                   hwm=daemon.vm().get("VmHWM"))
        daemon.close()
        out["capped"] = done < total
        out["applied"] = done - base["total"]
        if out["capped"]:
            out["seconds"] = seconds
        else:
            out["seconds"] = db.commit_time(
                "SELECT max(pg_xact_commit_timestamp(xmin)) FROM ipam_state.consumer_offset") - t0
            dead = db.scalar("SELECT count(*) FROM ipamd.dead_letter")
            check(dead == 0, "%d dead letters in the Debezium run: %s" % (dead, db.query(
                "SELECT reason FROM ipamd.dead_letter LIMIT 3")))
            live = db.scalar("SELECT count(*) FROM ipam_state.server WHERE NOT deleted")
            allocated = db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'")
            check(live == cfg["servers"] == allocated, "Debezium run: %s servers, %s allocated "
                  "rows, expected %d" % (live, allocated, cfg["servers"]))
        out["rate"] = out["applied"] / out["seconds"]
        out["cpu_us"] = out["daemon_cpu"] / max(out["applied"], 1) * 1e6
        label = "warm-up" if r < 0 else "run %d" % (r + 1)
        log("debezium %s: the daemon applied %d events in %.1f s = %.0f events/s%s; "
            "CPU %.2f s (%.1f us an event), PostgreSQL %.1f s"
            % (label, out["applied"], out["seconds"], out["rate"],
               " (capped)" if out["capped"] else "", out["daemon_cpu"], out["cpu_us"],
               out["pg_cpu"]))
        if not out["capped"] and r >= 0:
            out["floor"] = measure_floor(db, before)
        if worker:
            out["jdbc"] = jdbc_run(pg, cfg, worker, topics)
            j = out["jdbc"]
            log("debezium %s: the JDBC sink upserted %d events in %.1f s = %.0f events/s%s;"
                " CPU %.1f s (%.1f us an event)" % (
                    label, j["applied"], j["seconds"], j["rate"],
                    " (capped)" if j["capped"] else "", j["cpu"], j["cpu_us"]))
        return out
    finally:
        for d in (db, before):
            if d:
                d.close()
        topics.delete()


def jdbc_run(pg, cfg, worker, topics):
    """The JDBC sink on the servers topic, into a table of its own in a
    database of its own: from the POST of the connector to the commit of
    the row of the topic's last event (the topic has one partition and the
    sink one task, so every earlier row is committed by then)."""
    db = Db(pg, "jdbc")
    name = "bench-" + uuid.uuid4().hex[:6]
    last, mark = cfg["servers"], "-v%d." % cfg["versions"]
    try:
        cpu0 = cpu_seconds([worker.pid()])
        t0 = time.time()
        worker.post(name, topics.names[0], pg.port, db.name, "servers_jdbc")
        state = {}

        def done():
            trace = worker.failed(name)
            check(trace is None, "the JDBC sink failed: %s" % trace)
            if db.scalar("SELECT to_regclass('servers_jdbc')") is None:
                return False
            host = db.scalar("SELECT hostname FROM servers_jdbc WHERE id = %s", (last,))
            state["capped"] = time.time() - t0 >= cfg["cap"]
            return (host is not None and mark in host) or state["capped"]
        wait_for(done, cfg["cap"] + 120, "the JDBC sink's last row", interval=0.1)
        cpu = cpu_seconds([worker.pid()]) - cpu0
        rows = db.scalar("SELECT count(*) FROM servers_jdbc WHERE hostname LIKE %s",
                         ("%" + mark + "%",))
        worker.delete(name)
        out = dict(capped=state["capped"], cpu=cpu)
        if out["capped"]:
            out["seconds"] = time.time() - t0
            out["applied"] = rows * cfg["versions"]    # about: the versions before
        else:
            check(rows == cfg["servers"], "the JDBC sink left %d final rows of %d"
                  % (rows, cfg["servers"]))
            out["seconds"] = db.commit_time(
                "SELECT pg_xact_commit_timestamp(xmin) FROM servers_jdbc WHERE id = %s",
                (last,)) - t0
            out["applied"] = cfg["servers"] * cfg["versions"]
        out["rate"] = out["applied"] / out["seconds"]
        out["cpu_us"] = cpu / max(out["applied"], 1) * 1e6
        return out
    finally:
        db.close()


# ------------------------------------------------------------------- 2 rebuild

def measure_rebuild(pg, size, results):
    """The database already holds the state: the same events as compaction
    leaves them (the last version of each server) were applied normally
    first.  Then `ipam-syncd --rebuild` reads the full history."""
    cfg = size["rebuild"]
    topics = Topics("rb")
    state = Topics("rbstate")
    db = None
    try:
        made = loadgen(topics, create=True, servers=cfg["servers"],
                       subnets=cfg["subnets"], versions=cfg["versions"])
        compacted = loadgen(state, create=True, servers=cfg["servers"],
                            subnets=cfg["subnets"], versions=cfg["versions"], final_only=True)
        db = Db(pg, "rb")
        seconds, done, daemon = apply_until_committed(pg, db, state, compacted["total"],
                                                      cfg["prepare_cap"], group="state")
        daemon.close()
        check(done == compacted["total"],
              "the state to rebuild over was not ready within %d s (%d of %d events)"
              % (cfg["prepare_cap"], done, compacted["total"]))
        sanity(db, cfg["subnets"])
        before = db.scalar("SELECT count(*) FROM ipam")
        log("rebuild: the state (%d rows) applied in %.1f s" % (before, seconds))
        runs = []
        began = time.monotonic()
        for r in range(cfg["repeats"]):
            if runs and time.monotonic() - began + runs[-1]["seconds"] > cfg["budget"]:
                break
            daemon = Daemon(pg, db, topics, rebuild=True)
            t0 = time.monotonic()
            progress = [0]

            def swapped():
                if "rebuild: swapped in" in daemon.log():
                    return True
                progress[0] = db.committed(daemon.group, "ipam_state_rebuild") \
                    if db.scalar("SELECT to_regnamespace('ipam_state_rebuild') IS NOT NULL") \
                    else progress[0]
                return time.monotonic() - t0 >= cfg["cap"]
            wait_for(swapped, cfg["cap"] + 120, "rebuild: swapped in", daemon, interval=0.05)
            took = time.monotonic() - t0
            capped = "rebuild: swapped in" not in daemon.log()
            vm = daemon.vm()
            folds = re.search(r"rebuild: (\d+) messages read, (\d+) of them folded",
                              daemon.log())
            daemon.close()
            folded = int(folds.group(2)) if folds else None
            if not capped:
                after = db.scalar("SELECT count(*) FROM ipam")
                check(after == before, "rebuild changed the row count %s -> %s"
                      % (before, after))
                # Ten versions of each server: most fold into the last
                # (docs/STATE.md, "Rebuild").  How many depends on how the
                # batches fall; none, or a few, is a rebuild that no longer
                # folds.
                check(folded is not None and folded >= made["total"] // 10,
                      "the rebuild folded %s of its %d events, fewer than a tenth"
                      % (folded, made["total"]))
            runs.append(dict(seconds=took, capped=capped, applied=progress[0],
                             hwm=vm.get("VmHWM"), folded=folded))
            log("rebuild run %d: %s" % (r + 1, "%.1f s" % took if not capped else
                "not swapped in within %d s (%d of %d events applied)"
                % (cfg["cap"], progress[0], made["total"])))
            if capped:
                break
        results["rebuild"] = dict(config=cfg, events=made["total"], rows=before,
                                  state_seconds=seconds, runs=runs,
                                  floor=measure_floor(db))
    finally:
        if db:
            db.close()
        topics.delete()
        state.delete()


# ------------------------------------------------------------------- 3 latency

def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def commit_latencies(db, stamp_file, table="server"):
    """Produce time (from the loadgen's stamps) to the commit time of the
    transaction that last wrote the entity's row (track_commit_timestamp)."""
    stamps = {}
    with open(stamp_file) as f:
        for line in f:
            key, us = line.split()
            stamps[key.split(":", 1)[-1]] = int(us)
    rows = db.query(
        "SELECT id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint "
        "FROM ipam_state.%s WHERE id = ANY(%%s)" % table, (list(stamps),))
    check(len(rows) == len(stamps), "%d of %d stamped rows found" % (len(rows), len(stamps)))
    return [(us - stamps[i]) / 1000.0 for i, us in rows]


def checkpoint_count(db):
    """Checkpoints begun since the cluster started, timed or requested."""
    return db.scalar("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")


def measure_latency_and_pools(pg, size, results):
    cfg = size["latency"]
    lat_runs = []
    began = time.monotonic()
    for r in range(cfg["repeats"]):
        if lat_runs and time.monotonic() - began > cfg["budget"] * (r / (r + 1.0)):
            break
        topics = Topics("lat%d" % r)
        db = None
        daemon = None
        try:
            made = loadgen(topics, create=True, servers=cfg["servers"],
                           subnets=cfg["subnets"], versions=1)
            db = Db(pg, "lat")
            _, done, daemon = apply_until_committed(pg, db, topics, made["total"], 600)
            check(done == made["total"], "the latency run's fill was not applied")
            time.sleep(1)
            # The dirty pages of the fill and of the measurements before
            # (gigabytes, in other databases) written out now, not by a
            # checkpoint spread over the steady stream; the checkpoints
            # that still run during it are counted and reported.
            db.query("CHECKPOINT")
            checkpoints = checkpoint_count(db)
            stamp = os.path.join(daemon.dir, "stamps")
            steady = loadgen(topics, no_fill=True, servers=cfg["servers"],
                             subnets=cfg["subnets"], versions=1, rate=cfg["rate"],
                             duration=cfg["duration"], stamp_file=stamp)
            wait_for(lambda: db.committed(daemon.group) >= made["total"] + steady["total"],
                     600, "the steady events", daemon)
            checkpoints = checkpoint_count(db) - checkpoints
            lat = commit_latencies(db, stamp)
            lat_runs.append(dict(events=len(lat), p50=percentile(lat, 50),
                                 p90=percentile(lat, 90), p99=percentile(lat, 99),
                                 max=max(lat), produce_seconds=steady["steady_seconds"],
                                 checkpoints=checkpoints))
            log("latency run %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d checkpoint(s) "
                "during it" % (r + 1, lat_runs[-1]["p50"], lat_runs[-1]["p99"],
                               lat_runs[-1]["max"], checkpoints))
            if r == 0:
                results["pools"] = measure_pools(db, daemon, topics, size)
                daemon.close()
                results["pools"]["floor"] = pools_floor(db, results["pools"])
                results["commit_floor"] = commit_floor(pg, size["commit_floor"],
                                                       cfg["rate"])
        finally:
            if daemon:
                daemon.close()
            if db:
                db.close()
            topics.delete()
    results["latency"] = dict(config=cfg, runs=lat_runs)


def measure_pools(db, daemon, topics, size):
    """Large static pools on a running daemon with state: 65,534 (IPv4 /16)
    and 65,536 (IPv6 /112) addresses (smaller in --quick), then a /8 pool
    that must be refused."""
    import ipaddress
    b4, b6 = size["pool_bits"]
    out = dict(v4=[], v6=[], bits=[b4, b6], ids=[])
    for r in range(size["pool_repeats"]):
        n4 = ipaddress.ip_network("10.%d.0.0/%d" % (200 + r, b4))
        n6 = ipaddress.ip_network("2001:db8:fff%x::/%d" % (r, b6))
        specs = (("v4", "big4-%d=%s=%s-%s" % (r, n4, n4[1], n4[-2]), n4.num_addresses - 2),
                 ("v6", "big6-%d=%s=%s" % (r, n6, n6), n6.num_addresses))
        for fam, spec, expect in specs:
            stamp = os.path.join(daemon.dir, "stamp-%s-%d" % (fam, r))
            base = db.committed(daemon.group)
            loadgen(topics, no_fill=True, subnet_event=[spec], stamp_file=stamp)
            wait_for(lambda: db.committed(daemon.group) >= base + 1, 300,
                     "the %s pool" % fam, daemon)
            ms = commit_latencies(db, stamp, table="subnet")[0]
            sid = spec.split("=")[0]
            out["ids"].append(sid)
            rows = db.scalar("SELECT count(*) FROM ipam WHERE subnet_id = %s", (sid,))
            check(rows == expect, "%s pool made %s rows, not %d" % (fam, rows, expect))
            out[fam].append(dict(ms=ms, rows=rows))
            log("pool %s: %d rows in %.0f ms" % (fam, rows, ms))
    # A /8 pool: refused at decoding, as a dead letter with its reason.
    base = db.committed(daemon.group)
    t0 = time.time()
    loadgen(topics, no_fill=True, subnet_event=["huge=11.0.0.0/8=11.0.0.1-11.255.255.254"])
    wait_for(lambda: db.committed(daemon.group) >= base + 1, 60, "the /8 pool", daemon)
    row = db.query("SELECT reason, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) "
                   "* 1e6)::bigint FROM ipamd.dead_letter ORDER BY id DESC LIMIT 1")
    check(row, "the /8 pool left no dead letter")
    out["huge"] = dict(reason=row[0][0], ms=(row[0][1] - t0 * 1e6) / 1000.0,
                       rows=db.scalar("SELECT count(*) FROM ipam WHERE subnet_id = 'huge'"))
    check(out["huge"]["rows"] == 0, "the /8 pool made rows")
    log("pool /8: refused in %.0f ms: %s" % (out["huge"]["ms"], out["huge"]["reason"]))
    return out


def pools_floor(db, pools):
    """The floor of the pool events: their rows written with COPY into a
    copy of the database from which they are taken out again (the state
    before them, up to timestamps)."""
    ids = pools["ids"]
    before = db.clone("poolfloor")
    try:
        before.query("DELETE FROM ipam_state.address WHERE subnet_id = ANY(%s)", (ids,))
        before.query("DELETE FROM ipam_state.subnet WHERE id = ANY(%s)", (ids,))
        before.query("VACUUM ANALYZE")
        return measure_floor(db, before)
    finally:
        before.close()


def commit_floor(pg, seconds, rate):
    """The latency floor: a one-row UPDATE and its COMMIT (fsync on, as for
    the daemon), one every 1/rate s from one client, on the same
    PostgreSQL: what a single durable change costs, end to end."""
    db = Db(pg, "commit")
    try:
        db.query("CREATE TABLE t (id integer PRIMARY KEY, v bigint NOT NULL)")
        db.query("INSERT INTO t SELECT i, 0 FROM generate_series(0, 999) i")
        conn = pg.connect(db.name)
        conn.autocommit = False
        lat = []
        start = time.monotonic()
        with conn.cursor() as cur:
            for i in range(int(seconds * rate)):
                due = start + i / float(rate)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                t = time.monotonic()
                cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (i % 1000,))
                conn.commit()
                lat.append((time.monotonic() - t) * 1000.0)
        conn.close()
        out = dict(events=len(lat), p50=percentile(lat, 50), p99=percentile(lat, 99),
                   max=max(lat))
        log("commit floor: p50 %.2f ms, p99 %.2f ms" % (out["p50"], out["p99"]))
        return out
    finally:
        db.close()


# ------------------------------------------------------- three 1M-address pools

def measure_huge_pools(pg, size, results):
    """Three subnet events whose static pools are whole IPv4 /12s
    (1,048,574 addresses each, the most one event may hold being 1,048,576),
    produced together so that they fall into one batch, on a daemon run as
    systemd runs it with WatchdogSec=30 (WATCHDOG_USEC=30000000 and a
    $NOTIFY_SOCKET of ours).  Reports produce → commit of each subnet row,
    how many transactions held them, the rows, and the pings: the longest
    gap between two, and whether the daemon withheld them (systemd would
    then have killed it 30 s after the last one)."""
    import ipaddress
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import harness      # its fake $NOTIFY_SOCKET, which keeps each message's time
    cfg = size["huge"]
    topics = Topics("huge")
    notify_dir = tempfile.mkdtemp(prefix="ipam-bench-notify.")
    notify = harness.Notify(notify_dir)
    db = daemon = None
    try:
        loadgen(topics, create=True, no_fill=True)
        db = Db(pg, "huge")
        watchdog_s = 30
        daemon = Daemon(pg, db, topics, env={"NOTIFY_SOCKET": notify.path,
                                              "WATCHDOG_USEC": str(watchdog_s * 1000000)})
        daemon.wait_ready()
        specs, ids = [], []
        for k in range(cfg["count"]):
            net = ipaddress.ip_network("10.%d.0.0/%d" % (16 * (k + 1), cfg["bits"]))
            ids.append("huge%d" % k)
            specs.append("%s=%s=%s-%s" % (ids[-1], net, net[1], net[-2]))
        expect = ipaddress.ip_network("10.16.0.0/%d" % cfg["bits"]).num_addresses - 2
        stamp = os.path.join(daemon.dir, "stamps")
        t_produce = time.monotonic()
        loadgen(topics, no_fill=True, subnet_event=specs, stamp_file=stamp)
        state = {}

        def done():
            state["committed"] = db.committed(daemon.group)
            return state["committed"] >= len(specs) or \
                time.monotonic() - t_produce > cfg["cap"] or not daemon.alive()
        wait_for(done, cfg["cap"] + 60, "the large pools", interval=0.2)
        t_end = time.monotonic()
        alive = daemon.alive()
        applied = state["committed"] >= len(specs)
        out = dict(count=len(specs), addresses=expect, bits=cfg["bits"], applied=applied,
                   alive=alive, watchdog_s=watchdog_s,
                   withheld="withholding the watchdog ping" in daemon.log())
        if applied:
            ms = commit_latencies(db, stamp, table="subnet")
            out["ms"] = sorted(ms)
            out["transactions"] = db.scalar(
                "SELECT count(DISTINCT xmin::text) FROM ipam_state.subnet WHERE id = ANY(%s)",
                (ids,))
            rows = db.scalar("SELECT count(*) FROM ipam_state.address WHERE subnet_id = ANY(%s)",
                             (ids,))
            check(rows == expect * len(specs), "the large pools made %s rows, not %d"
                  % (rows, expect * len(specs)))
            out["rows"] = rows
        else:
            out["seconds"] = t_end - t_produce
        pings = [t for t, m in notify.timed() if "WATCHDOG=1" in m.split("\n")]
        edges = [t_produce] + [t for t in pings if t_produce <= t <= t_end] + [t_end]
        out["max_gap"] = max(b - a for a, b in zip(edges, edges[1:]))
        out["pings"] = len([t for t in pings if t_produce <= t <= t_end])
        out["killed"] = out["max_gap"] > watchdog_s
        out["hwm"] = daemon.vm().get("VmHWM")
        daemon.close()
        daemon = None
        if applied:
            out["floor"] = measure_floor(db)
        log("large pools: %s; longest gap between watchdog pings %.1f s%s" % (
            "applied, produce → commit %s ms in %s transaction(s)" % (
                ", ".join("%.0f" % x for x in out["ms"]), out["transactions"])
            if applied else "not applied within %.0f s" % out["seconds"],
            out["max_gap"], ", pings withheld" if out["withheld"] else ""))
        results["huge"] = out
    finally:
        if daemon:
            daemon.close()
        if db:
            db.close()
        notify.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
        topics.delete()


# ------------------------------------------------- one subnet upsert at scale

def fill_scale(db, subnets, per):
    """Writes the state of `subnets` IPv4 /24 subnets, each with a static
    pool of its first `per` addresses, straight into the daemon's tables
    with SQL (what applying their events would leave: the subnet rows and
    one available static row per pool address).  The address table's
    indexes are dropped while it fills and made again after, then it is
    vacuumed and analysed, as a table of that size would be."""
    base = "'10.0.0.0'::inet + k::bigint * 256"
    db.query("INSERT INTO ipam_state.subnet (id, version, cidr, pool_first, pool_last, name) "
             "SELECT (k + 1)::text, 1, set_masklen(%s, 24)::cidr, ARRAY[%s + 1], "
             "ARRAY[%s + %d], 'scale-' || k FROM generate_series(0, %d) k"
             % (base, base, base, per, subnets - 1))
    indexes = db.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = "
                       "'ipam_state' AND tablename = 'address'")
    pkey = db.query("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE "
                    "conrelid = 'ipam_state.address'::regclass AND contype = 'p'")
    for name, _ in pkey:
        db.query("ALTER TABLE ipam_state.address DROP CONSTRAINT %s" % name)
    for name, _ in indexes:
        if name not in [n for n, _ in pkey]:
            db.query("DROP INDEX ipam_state.%s" % name)
    db.query("INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type) "
             "SELECT %s + h, (k + 1)::text, 'available', 'static' "
             "FROM generate_series(0, %d) k, generate_series(1, %d) h"
             % (base, subnets - 1, per))
    db.query("SET maintenance_work_mem = '512MB'")
    for name, definition in pkey:
        db.query("ALTER TABLE ipam_state.address ADD CONSTRAINT %s %s" % (name, definition))
    for name, definition in indexes:
        if name not in [n for n, _ in pkey]:
            db.query(definition)
    db.query("VACUUM ANALYZE")
    db.query("CHECKPOINT")


def measure_scale(pg, size, results, explain=False):
    """One subnet upsert on a daemon holding a small state and a large one
    (the state written with SQL: fill_scale), produce → commit: a changed
    pool of an existing subnet (20 more addresses, version 2) and a new
    subnet with a pool like the others, alternately.  With explain, the
    large state only, and the statements auto_explain logged."""
    import ipaddress
    cfg = size["scale"]
    out = {}
    states = (("small", cfg["small"]), ("large", cfg["large"]))
    for label, (subnets, per) in states[1:] if explain else states:
        topics = Topics("scale")
        db = daemon = None
        try:
            loadgen(topics, create=True, no_fill=True)
            db = Db(pg, "scale")
            Daemon(pg, db, topics).wait_ready().close()    # the schema
            t = time.monotonic()
            fill_scale(db, subnets, per)
            setup = time.monotonic() - t
            rows = db.scalar("SELECT count(*) FROM ipam_state.address")
            log_path = os.path.join(pg.dir, "postgresql.log")
            if explain:
                explain_statements(db)
            since = os.path.getsize(log_path)
            daemon = Daemon(pg, db, topics).wait_ready()
            ms = dict(changed=[], new=[])
            for k in range(cfg["upserts"]):
                for kind in ("changed", "new"):
                    s = (k * 7919) % subnets if kind == "changed" else subnets + k
                    net = ipaddress.ip_address("10.0.0.0") + s * 256
                    last = per + (20 if kind == "changed" else 0)
                    spec = "%d=%s/24=%s-%s" % (s + 1, net, net + 1, net + last)
                    stamp = os.path.join(daemon.dir, "stamp-%s-%d" % (kind, k))
                    committed = db.committed(daemon.group)
                    loadgen(topics, no_fill=True, subnet_event=[spec], event_version=2,
                            stamp_file=stamp)
                    wait_for(lambda: db.committed(daemon.group) > committed, 120,
                             "the subnet upsert", daemon)
                    ms[kind].append(commit_latencies(db, stamp, table="subnet")[0])
            daemon.close()
            daemon = None
            out[label] = dict(subnets=subnets, addresses=rows, setup_seconds=setup,
                              changed=ms["changed"], new=ms["new"],
                              ms=median(ms["changed"] + ms["new"]))
            if explain:
                entries = parse_auto_explain(log_path, since)
                out[label]["statements"] = statement_totals(entries)
                slowest = max(entries, key=lambda e: e[1] if not e[0].startswith(
                    "apply_batch") else 0, default=None)
                out[label]["slowest_plan"] = slowest[2] if slowest else ""
                for name, total in out[label]["statements"][:8]:
                    log("profile scale:   %7.0f ms  %s" % (total, name))
            log("scale %s: %d subnets, %d addresses (written in %.0f s); one subnet upsert: "
                "changed pool %s ms, new subnet %s ms" % (
                    label, subnets, rows, setup, ", ".join("%.0f" % x for x in ms["changed"]),
                    ", ".join("%.0f" % x for x in ms["new"])))
        finally:
            if daemon:
                daemon.close()
            if db:
                db.close()
            topics.delete()
    results["profile_scale" if explain else "scale"] = dict(config=cfg, **out)


# ---------------------------------------------------------------- /16 sweep

def measure_sweep(size, results):
    """The ping sweep of a /16 static pool on loopback against fping, by
    bench/sweep/sweep_bench.py (which runs on the shared cluster of
    scripts/services with the test harness, not on the private one); the
    sweeps after the first are the ones with no state change to make."""
    cfg = size["sweep"]
    if os.geteuid() != 0 or shutil.which("fping") is None:
        log("sweep: skipped (needs root for raw sockets, and fping)")
        results["sweep"] = dict(skipped="needs root and fping")
        return
    os.environ["IPAM_SYNCD_BIN"] = DAEMON
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import harness
    # The watchdog measurement may have imported the harness already, when
    # its BINARY was read from the environment: the daemon measured here
    # is this run's.
    harness.BINARY = DAEMON
    sys.path.insert(0, os.path.join(ROOT, "bench", "sweep"))
    import sweep_bench
    r, failures = sweep_bench.measure(cfg["cidr"], cfg["pool"], cfg["targets"], cfg["runs"],
                                      cfg["interval_ms"])
    check(not failures, "sweep: %s" % "; ".join(failures))
    results["sweep"] = dict(config=cfg, first=r["first"], sweeps=r["sweeps"],
                            fping=[f[0] for f in r["fping"]], targets=r["targets"])


# -------------------------------------------------------------------- 6 memory

def measure_memory(pg, size, results):
    mem = {}
    # (i) Peak RSS with about a million rows in ipam: IPv4 subnets whose
    # static pools fill them (/16: 65,534 rows each), produced at once.
    cfg = size["rows"]
    topics = Topics("rows")
    db = None
    try:
        import ipaddress
        specs = []
        for k in range(cfg["pools"]):
            net = ipaddress.ip_network("10.%d.0.0/%d" % (100 + k, cfg["bits"]))
            specs.append("rows-%d=%s=%s-%s" % (k, net, net[1], net[-2]))
        made = loadgen(topics, create=True, no_fill=True, subnet_event=specs)
        db = Db(pg, "rows")
        seconds, done, daemon = apply_until_committed(pg, db, topics, made["total"],
                                                      cfg["cap"])
        vm = daemon.vm()
        daemon.close()
        rows = db.scalar("SELECT count(*) FROM ipam")
        mem["rows"] = dict(rows=rows, events=made["total"], committed=done, seconds=seconds,
                           capped=done < made["total"], hwm=vm.get("VmHWM"),
                           rss=vm.get("VmRSS"), pools=cfg["pools"], bits=cfg["bits"])
        log("memory: %d rows in ipam, VmHWM %.1f MiB (apply %.1f s)"
            % (rows, vm.get("VmHWM", 0), seconds))
    finally:
        if db:
            db.close()
        topics.delete()
    # (ii) Peak RSS while consuming a backlog of N events for a fixed window.
    mem["backlogs"] = []
    for n in size["backlogs"]:
        topics = Topics("bl")
        db = None
        try:
            servers = n // 10
            made = loadgen(topics, create=True, servers=servers,
                           subnets=max(100, -(-servers // 115)), versions=10,
                           marks=0, delete_pct=0)
            db = Db(pg, "bl")
            daemon = Daemon(pg, db, topics)
            samples = []
            began = time.monotonic()
            while time.monotonic() - began < size["backlog_window"]:
                time.sleep(1)
                check(daemon.alive(), "the daemon exited:\n" + daemon.log()[-2000:])
                samples.append(daemon.vm().get("VmRSS", 0))
            vm = daemon.vm()
            done = db.committed(daemon.group)
            daemon.close()
            mem["backlogs"].append(dict(events=made["total"], window=size["backlog_window"],
                                        hwm=vm.get("VmHWM"), rss_samples=samples,
                                        consumed=done))
            log("memory: backlog %d events, VmHWM %.1f MiB after %d s (%d applied)"
                % (made["total"], vm.get("VmHWM", 0), size["backlog_window"], done))
        finally:
            if db:
                db.close()
            topics.delete()
    results["memory"] = mem


# ------------------------------------------------------------------- profile

# What each statement inside ipamd.apply_batch is, told by its text.
NESTED = "inside an entity function"
STATEMENT_LABELS = [
    (r"^SELECT ipamd\.apply_batch", "apply_batch, whole call"),
    (r"batch->'servers'", "servers: version-guarded upsert"),
    (r"batch->'subnets'", "subnets: version-guarded upsert"),
    (r"batch->'marks'", "marks: version-guarded upsert"),
    (r"^WITH t AS", "derive: rows of the touched addresses, audit, conflicts"),
    (r"^WITH r AS", "subnets: expand changed cidrs into touched addresses"),
    (r"^WITH live AS", "subnets: subnet-level conflicts"),
    (r"dead_letter", "dead letters"),
    (r"consumer_offset", "offsets compare-and-set"),
    (r"array_agg\(DISTINCT u\.vrf\)", "subnets: vrfs touched"),
    # auto_explain logs a statement inside an entity function as well as
    # the call that ran it: counted in the call, left out of the totals.
    (r"FROM jsonb_to_recordset\(records\)|ipamd\.apply_marks_set\(",
     NESTED),
]


def statement_label(text):
    text = text.strip()
    for pattern, label in STATEMENT_LABELS:
        if re.search(pattern, text, re.M):
            return label
    return "other: " + " ".join(text.split())[:60]


def parse_auto_explain(path, since=0):
    """(label, ms, plan text) of every auto_explain entry after byte offset
    since of the server log."""
    with open(path, errors="replace") as f:
        f.seek(since)
        text = f.read()
    out = []
    for chunk in re.split(r"\n(?=\S.*LOG:  duration: )", text):
        m = re.search(r"LOG:  duration: ([\d.]+) ms  plan:\n\s*Query Text: (.*)", chunk, re.S)
        if not m:
            continue
        body = m.group(2)
        query = body.split("\n\t")[0] if "\n\t" in body else body
        # The query text runs until the plan's first node line.
        qlines = []
        for line in body.split("\n"):
            if re.match(r"\s*(\w[\w ]*)\s+\(cost=|\s*(\w[\w ]*)\s+\(actual", line):
                break
            qlines.append(line)
        out.append((statement_label("\n".join(qlines)), float(m.group(1)), chunk))
    return out


def explain_statements(db, timing=False):
    """auto_explain for the database's next sessions: every statement of
    1 ms or more, nested ones too, with ANALYZE and BUFFERS (per-node times
    only with timing), to the private cluster's log."""
    for setting in ("session_preload_libraries = 'auto_explain'",
                    "auto_explain.log_min_duration = 1",
                    "auto_explain.log_analyze = on", "auto_explain.log_buffers = on",
                    "auto_explain.log_timing = %s" % ("on" if timing else "off"),
                    "auto_explain.log_nested_statements = on"):
        db.query('ALTER DATABASE "%s" SET %s' % (db.name, setting))


def statement_totals(entries):
    """[(label, ms)] of parse_auto_explain's entries, the whole apply_batch
    call and the statements inside the entity functions left out, largest
    first."""
    by = {}
    for label, ms, _ in entries:
        if not label.startswith("apply_batch") and label != NESTED:
            by[label] = by.get(label, 0) + ms
    return sorted(by.items(), key=lambda kv: -kv[1])


def measure_profile_scale(pg, size, results):
    """Row 7's large state only, with auto_explain (explain_statements) on
    the daemon's database during the upserts: which statements grow with
    the tables."""
    measure_scale(pg, size, results, explain=True)


class Perf:
    """perf record (Debian's linux-perf) attached to a running process, with
    call graphs; report() gives the hottest symbols, self time."""

    def __init__(self, pid):
        self.dir = tempfile.mkdtemp(prefix="ipam-bench-perf.")
        self.data = os.path.join(self.dir, "perf.data")
        self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "1999", "-g", "-p",
                                      str(pid), "-o", self.data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def report(self, limit=25):
        """{"samples": N, "dso": [(self %, dso)], "symbols": [(self %, dso,
        symbol)]}, hottest first."""
        def run(sort):
            return subprocess.run(["perf", "report", "-i", self.data, "--stdio",
                                   "--no-children", "-g", "none", "--sort", sort,
                                   "--percent-limit", "0.5"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True).stdout
        symbols, dsos, samples = [], [], 0
        for line in run("dso,symbol").splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
            if m:
                symbol = re.sub(r"(\s+-)+\s*$", "", m.group(3)).strip()
                symbols.append((float(m.group(1)), m.group(2), symbol))
        for line in run("dso").splitlines():
            m = re.match(r"# Samples: (\d+)", line) or re.match(r"# Samples: ([\d.]+)K", line)
            if m:
                samples = int(float(m.group(1)) * (1000 if "K" in line else 1))
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s*$", line)
            if m:
                dsos.append((float(m.group(1)), m.group(2)))
        shutil.rmtree(self.dir, ignore_errors=True)
        return dict(samples=samples, dso=dsos, symbols=symbols[:limit])


def measure_profile_debezium(pg, size, results):
    measure_profile(pg, size, results, server_format="debezium")


def measure_profile(pg, size, results, server_format="cloudevents"):
    """Where the apply time goes: the subnets and marks are applied first,
    then the servers (the events there are most of), with auto_explain
    logging every statement inside ipamd.apply_batch that takes 1 ms or
    more (ANALYZE, BUFFERS, nested statements), the daemon's own per-batch
    timings (log level debug), and perf record on the daemon for its CPU
    (when perf is installed).  server_format "debezium" makes the server
    events Debezium's (~3.5 KB with the schema block)."""
    cfg = dict(size["profile"])
    if os.environ.get("IPAM_BENCH_PROFILE_TIMING"):
        cfg["timing"] = True    # per-node times, at the cost of clock reads
    topics = Topics("prof", server_format=server_format)
    db = None
    try:
        base = loadgen(topics, create=True, servers=0, subnets=cfg["subnets"],
                       versions=cfg["versions"])
        db = Db(pg, "prof")
        explain_statements(db, cfg["timing"])
        log_path = os.path.join(pg.dir, "postgresql.log")
        t0 = os.path.getsize(log_path)
        seconds, done, daemon = apply_until_committed(pg, db, topics, base["total"], 900,
                                                      log_level="debug")
        daemon.close()
        subnet_phase = parse_auto_explain(log_path, t0)
        t1 = os.path.getsize(log_path)
        servers = loadgen(topics, servers=cfg["servers"], subnets=cfg["subnets"],
                          versions=cfg["versions"], servers_only=True, format=server_format,
                          delete_pct=0 if server_format == "debezium" else None)
        perf = []

        def attach(daemon):
            if shutil.which("perf"):
                perf.append(Perf(daemon.proc.pid))
        seconds, done, daemon = apply_until_committed(
            pg, db, topics, base["total"] + servers["total"], 900, log_level="debug",
            on_start=attach)
        for p in perf:
            p.stop()
        daemon_cpu = daemon.cpu()
        batches = [float(x) for x in re.findall(r"batch of \d+: .* in ([\d.]+) s", daemon.log())]
        sizes = [int(x) for x in re.findall(r"batch of (\d+):", daemon.log())]
        daemon.close()
        server_phase = parse_auto_explain(log_path, t1)

        def summary(entries):
            total = sum(ms for label, ms, _ in entries if label.startswith("apply_batch"))
            rows = statement_totals(entries)
            slowest = max((e for e in entries if e[0].startswith("derive")),
                          key=lambda e: e[1], default=None)
            return dict(total_ms=total, calls=sum(1 for e in entries
                                                   if e[0].startswith("apply_batch")),
                        statements=rows, slowest_derive_plan=slowest[2] if slowest else "")
        key = "profile" if server_format == "cloudevents" else "profile_" + server_format
        results[key] = dict(
            config=cfg, subnet_phase=summary(subnet_phase), server_phase=summary(server_phase),
            server_events=servers["total"], server_seconds=seconds, daemon_cpu=daemon_cpu,
            batch_seconds=batches, batch_sizes=sizes,
            perf=perf[0].report() if perf else None)
        sp = results[key]["server_phase"]
        log("profile: %d %s server events in %.1f s, %d batches; apply_batch %.0f ms in all; "
            "daemon CPU %.2f s (%.1f us an event)"
            % (servers["total"], server_format, seconds, len(batches), sp["total_ms"],
               daemon_cpu, daemon_cpu / max(servers["total"], 1) * 1e6))
        for label, ms in sp["statements"][:8]:
            log("profile:   %7.0f ms  %4.1f%%  %s" % (ms, 100 * ms / max(sp["total_ms"], 1), label))
        pf = results[key]["perf"]
        if pf:
            log("profile: perf, %d samples; by object: %s" % (pf["samples"], ", ".join(
                "%s %.1f%%" % (dso, share) for share, dso in pf["dso"])))
            for share, dso, symbol in pf["symbols"]:
                log("profile: perf %5.1f%%  %-22s %s" % (share, dso, symbol[:70]))
    finally:
        if db:
            db.close()
        topics.delete()


# -------------------------------------------------------------------- the doc

def machine():
    def first(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    # The broker scripts/services runs: its default, unless the environment
    # names another (IPAM_SERVICES_KAFKA_VERSION).
    kafka = os.environ.get("IPAM_SERVICES_KAFKA_VERSION", "?")
    m = re.search(r"KAFKA_VERSION=\$\{IPAM_SERVICES_KAFKA_VERSION:-([^}]+)\}|KAFKA_VERSION=(\S+)",
                  open(os.path.join(ROOT, "scripts", "services")).read())
    if m and kafka == "?":
        kafka = m.group(1) or m.group(2)
    return dict(nproc=os.cpu_count(), cpu=cpu, memory=mem, kernel=platform.release(),
                librdkafka=first(["pkg-config", "--modversion", "rdkafka"]),
                libpq=first(["pkg-config", "--modversion", "libpq"]), kafka=kafka,
                commit=describe_source())


def describe_source():
    """The commit measured, and the files changed since when it is the tree."""
    rev = os.environ.get("IPAM_BENCH_REV") or "HEAD"
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev + "^{commit}"],
                         stdout=subprocess.PIPE, text=True).stdout.strip() or "?"
    if os.environ.get("IPAM_BENCH_REV"):
        return sha
    changed = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--", "common", "consumers",
         "daemon", "schema", "CMakeLists.txt"], stdout=subprocess.PIPE, text=True).stdout
    files = [l[3:] for l in changed.splitlines() if l.strip()]
    return sha + (" with uncommitted changes to %s" % ", ".join(files) if files else "")


RESULTS_BEGIN, RESULTS_END = "<!-- bench:results -->", "<!-- bench:results-end -->"


def write_doc(table):
    """Writes the table between the results markers, which sit inside the
    bench markers; nothing else of the file is touched.  The text around
    the table (method, profile) is kept as it is."""
    if not os.path.exists(DOC):
        with open(DOC, "w") as f:
            f.write("# Benchmarks\n\nHow fast ipam-syncd applies events, measured by "
                    "`bench/run` against the real services.\n\n%s\n%s\n" % (BEGIN, END))
    with open(DOC) as f:
        text = f.read()
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise Failure("%s lacks the markers %s ... %s" % (DOC, BEGIN, END))
    inner = text[start + len(BEGIN):stop]
    rs, re_ = inner.find(RESULTS_BEGIN), inner.find(RESULTS_END)
    if rs < 0 or re_ < rs:
        inner = "\n%s\n%s\n" % (RESULTS_BEGIN, RESULTS_END) + inner
        rs, re_ = inner.find(RESULTS_BEGIN), inner.find(RESULTS_END)
    inner = inner[:rs + len(RESULTS_BEGIN)] + "\n" + table + "\n" + inner[re_:]
    text = text[:start + len(BEGIN)] + inner + text[stop:]
    with open(DOC, "w") as f:
        f.write(text)


MEASUREMENTS = ("throughput", "debezium", "rebuild", "latency", "huge", "scale", "sweep",
                "memory")


def main():
    ap = argparse.ArgumentParser(prog="bench/run")
    ap.add_argument("--quick", action="store_true",
                    help="the smoke form: small sizes, ratio gates (docs/BENCHMARKS.md)")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/BENCHMARKS.md")
    ap.add_argument("--only", default=",".join(MEASUREMENTS),
                    help="comma-separated: %s (latency includes the pools); profile, "
                    "profile-debezium, profile-scale (not in the default set)"
                    % ", ".join(MEASUREMENTS))
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--explain", action="store_true",
                    help="auto_explain every statement of 1 ms or more in every database "
                    "(slows the run: a profile, not a measurement); the totals per "
                    "measurement are logged and kept in --json")
    ap.add_argument("--daemon-logs", metavar="DIR",
                    help="keep every daemon's log in DIR (daemon-NN.log, in the order "
                    "they started), at log level debug, each line stamped with the "
                    "seconds since its start (a profile: the logging costs a little)")
    ap.add_argument("--daemon-set", metavar="SECTION.KEY=VALUE", action="append",
                    default=[], help="a setting of every daemon's configuration, over "
                    "the bench's own (an experiment: say so with its figures)")
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--rev", help="(handled by bench/run) the commit measured")
    args = ap.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    only = set(args.only.split(","))
    unknown = only - set(MEASUREMENTS) - {"profile", "profile-debezium", "profile-scale"}
    if unknown:
        ap.error("unknown measurement(s): %s" % ", ".join(sorted(unknown)))
    global EXPLAIN, DAEMON_LOGS
    EXPLAIN = args.explain
    for setting in args.daemon_set:
        name, eq, value = setting.partition("=")
        section, dot, key = name.partition(".")
        if not eq or not dot or not section or not key:
            ap.error("--daemon-set %r: expected SECTION.KEY=VALUE" % setting)
        DAEMON_SET.setdefault(section, {})[key] = value
    if args.daemon_logs:
        os.makedirs(args.daemon_logs, exist_ok=True)
        DAEMON_LOGS = args.daemon_logs
    results = {"quick": args.quick, "machine": machine()}
    results["machine"]["jdbc_sink"] = jdbc_sink.VERSION
    pg = PrivatePostgres()
    results["machine"]["postgresql"] = pg.version
    began = time.monotonic()
    steps = (("throughput", measure_throughput), ("debezium", measure_debezium),
             ("rebuild", measure_rebuild), ("latency", measure_latency_and_pools),
             ("huge", measure_huge_pools), ("scale", measure_scale),
             ("memory", measure_memory), ("profile", measure_profile),
             ("profile-debezium", measure_profile_debezium),
             ("profile-scale", measure_profile_scale))
    try:
        pg_log = os.path.join(pg.dir, "postgresql.log")
        for name, step in steps:
            if name in only:
                t, since = time.monotonic(), os.path.getsize(pg_log)
                step(pg, size, results)
                results.setdefault("step_seconds", {})[name] = time.monotonic() - t
                if EXPLAIN:
                    totals = statement_totals(parse_auto_explain(pg_log, since))
                    results.setdefault("explain", {})[name] = totals[:12]
                    for label, ms in totals[:8]:
                        log("explain %s: %8.0f ms  %s" % (name, ms, label))
        if "sweep" in only:
            t = time.monotonic()
            measure_sweep(size, results)
            results.setdefault("step_seconds", {})["sweep"] = time.monotonic() - t
    finally:
        for daemon in DAEMONS:
            if daemon.alive():
                daemon.proc.kill()
                daemon.proc.wait()
            shutil.rmtree(daemon.dir, ignore_errors=True)
        pg.close()
    results["seconds"] = time.monotonic() - began
    table = report.render(results, args.command, args.quick, size)
    print(table)
    log("done in %.0f s (%s)" % (results["seconds"], ", ".join(
        "%s %.0f s" % kv for kv in results.get("step_seconds", {}).items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not args.no_docs:
        write_doc(table)
    if args.quick and only >= set(MEASUREMENTS) - {"sweep", "memory"}:
        lines, ok = report.gates(results)
        for line in lines:
            log(line)
        if not ok:
            raise Failure("a ratio gate failed (see the lines above; the bounds and why "
                          "they are what they are: docs/BENCHMARKS.md, \"Smoke form for CI\")")


if __name__ == "__main__":
    try:
        main()
    except Failure as error:
        log("FAILED: %s" % error)
        sys.exit(1)
