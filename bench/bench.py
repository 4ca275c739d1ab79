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
import time
import uuid

import psycopg2
from confluent_kafka.admin import AdminClient

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


class Db:
    """One fresh database with a connection kept open for polling."""

    def __init__(self, pg, tag):
        self.pg = pg
        self.name = pg.create_db("b_%s_%s" % (tag, uuid.uuid4().hex[:6]))
        self.conn = pg.connect(self.name)

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
    def __init__(self, tag):
        self.prefix = "bench_%d_%s_%s" % (os.getpid(), tag, uuid.uuid4().hex[:6])
        self.names = [self.prefix + s for s in (".servers", ".subnets", ".marks")]

    def config_value(self):
        return "%s.servers:server:cloudevents, %s.subnets:subnet:cloudevents, " \
               "%s.marks:mark:cloudevents" % ((self.prefix,) * 3)

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


class Daemon:
    """The Release daemon with a generated config."""

    def __init__(self, pg, db, topics, group=None, rebuild=False,
                 log_level="info", extra=None):
        DAEMONS.append(self)
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
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        with open(self.config, "w") as f:
            for section, values in sections.items():
                f.write("[%s]\n" % section)
                for k, v in values.items():
                    f.write("%s = %s\n" % (k, v))
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        self.log_file = open(self.log_path, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [DAEMON, "--config", self.config] + (["--rebuild"] if rebuild else []),
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def vm(self):
        return vm_status(self.proc.pid)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode

    def close(self, keep_log=False):
        self.stop()
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

def apply_until_committed(pg, db, topics, total, cap, rebuild=False, **kw):
    """Starts the daemon on full topics and waits until every event is
    committed or the cap is reached.  Returns (seconds, committed, daemon);
    committed < total means the run was capped."""
    daemon = Daemon(pg, db, topics, rebuild=rebuild, **kw)
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
            db.close()
            share = made["server_events"] / made["total"]
            runs.append(dict(seconds=seconds, events=made["total"], committed=done,
                             capped=capped, server_events=made["server_events"], rows=rows,
                             rate=done / seconds, server_rate=done * share / seconds,
                             first_commit=fc_s,
                             after_first=(done - fc_n) / max(seconds - fc_s, 1e-3),
                             hwm=vm.get("VmHWM"), daemon_cpu=daemon_cpu, pg_cpu=pg_cpu))
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


def run_setbased(pg, cfg):
    db = Db(pg, "setb")
    try:
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-v", "subnets=%d" % cfg["subnets"], "-v", "servers=%d" % cfg["servers"],
             "-v", "versions=%d" % cfg["versions"], "-v", "delete_pct=5",
             "-v", "marks=%d" % cfg["subnets"],
             "-v", "state_sql=%s" % os.path.join(SCHEMA_DIR, "001_state.sql"), "-f", SETBASED,
             pg.conninfo(db.name)], check=True, stdout=subprocess.PIPE,
            text=True).stdout
        result = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        log("baseline (b): %d events' row changes in %.2f s = %.0f events/s"
            % (result["events"], result["seconds"], result["events"] / result["seconds"]))
        return result
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
            daemon.close()
            if not capped:
                after = db.scalar("SELECT count(*) FROM ipam")
                check(after == before, "rebuild changed the row count %s -> %s"
                      % (before, after))
            runs.append(dict(seconds=took, capped=capped, applied=progress[0],
                             hwm=vm.get("VmHWM")))
            log("rebuild run %d: %s" % (r + 1, "%.1f s" % took if not capped else
                "not swapped in within %d s (%d of %d events applied)"
                % (cfg["cap"], progress[0], made["total"])))
            if capped:
                break
        results["rebuild"] = dict(config=cfg, events=made["total"], rows=before,
                                  state_seconds=seconds, runs=runs)
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
            stamp = os.path.join(daemon.dir, "stamps")
            steady = loadgen(topics, no_fill=True, servers=cfg["servers"],
                             subnets=cfg["subnets"], versions=1, rate=cfg["rate"],
                             duration=cfg["duration"], stamp_file=stamp)
            wait_for(lambda: db.committed(daemon.group) >= made["total"] + steady["total"],
                     600, "the steady events", daemon)
            lat = commit_latencies(db, stamp)
            lat_runs.append(dict(events=len(lat), p50=percentile(lat, 50),
                                 p90=percentile(lat, 90), p99=percentile(lat, 99),
                                 max=max(lat), produce_seconds=steady["steady_seconds"]))
            log("latency run %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                % (r + 1, lat_runs[-1]["p50"], lat_runs[-1]["p99"], lat_runs[-1]["max"]))
            if r == 0:
                results["pools"] = measure_pools(db, daemon, topics, size)
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
    out = dict(v4=[], v6=[], bits=[b4, b6])
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


def measure_profile(pg, size, results):
    """Where the apply time goes: the subnets and marks are applied first,
    then the servers (the events there are most of), with auto_explain
    logging every statement inside ipamd.apply_batch that takes 1 ms or
    more (ANALYZE, BUFFERS, nested statements), and the daemon's own
    per-batch timings (log level debug)."""
    cfg = dict(size["profile"])
    if os.environ.get("IPAM_BENCH_PROFILE_TIMING"):
        cfg["timing"] = True    # per-node times, at the cost of clock reads
    topics = Topics("prof")
    db = None
    try:
        base = loadgen(topics, create=True, servers=0, subnets=cfg["subnets"],
                       versions=cfg["versions"])
        db = Db(pg, "prof")
        for setting in ("session_preload_libraries = 'auto_explain'",
                        "auto_explain.log_min_duration = 1",
                        "auto_explain.log_analyze = on", "auto_explain.log_buffers = on",
                        "auto_explain.log_timing = %s" % ("on" if cfg["timing"] else "off"),
                        "auto_explain.log_nested_statements = on"):
            db.query('ALTER DATABASE "%s" SET %s' % (db.name, setting))
        log_path = os.path.join(pg.dir, "postgresql.log")
        t0 = os.path.getsize(log_path)
        seconds, done, daemon = apply_until_committed(pg, db, topics, base["total"], 900,
                                                      log_level="debug")
        daemon.close()
        subnet_phase = parse_auto_explain(log_path, t0)
        t1 = os.path.getsize(log_path)
        servers = loadgen(topics, servers=cfg["servers"], subnets=cfg["subnets"],
                          versions=cfg["versions"], servers_only=True)
        seconds, done, daemon = apply_until_committed(
            pg, db, topics, base["total"] + servers["total"], 900, log_level="debug")
        batches = [float(x) for x in re.findall(r"batch of \d+: .* in ([\d.]+) s", daemon.log())]
        sizes = [int(x) for x in re.findall(r"batch of (\d+):", daemon.log())]
        daemon.close()
        server_phase = parse_auto_explain(log_path, t1)

        def summary(entries):
            total = sum(ms for label, ms, _ in entries if label.startswith("apply_batch"))
            by = {}
            for label, ms, _ in entries:
                if not label.startswith("apply_batch"):
                    by[label] = by.get(label, 0) + ms
            rows = sorted(by.items(), key=lambda kv: -kv[1])
            slowest = max((e for e in entries if e[0].startswith("derive")),
                          key=lambda e: e[1], default=None)
            return dict(total_ms=total, calls=sum(1 for e in entries
                                                   if e[0].startswith("apply_batch")),
                        statements=rows, slowest_derive_plan=slowest[2] if slowest else "")
        results["profile"] = dict(
            config=cfg, subnet_phase=summary(subnet_phase), server_phase=summary(server_phase),
            server_events=servers["total"], server_seconds=seconds,
            batch_seconds=batches, batch_sizes=sizes)
        sp = results["profile"]["server_phase"]
        log("profile: %d server events in %.1f s, %d batches; apply_batch %.0f ms in all"
            % (servers["total"], seconds, len(batches), sp["total_ms"]))
        for label, ms in sp["statements"][:8]:
            log("profile:   %7.0f ms  %4.1f%%  %s" % (ms, 100 * ms / max(sp["total_ms"], 1), label))
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
    kafka = "?"
    m = re.search(r"KAFKA_VERSION=(\S+)", open(os.path.join(ROOT, "scripts", "services")).read())
    if m:
        kafka = m.group(1)
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


def fmt(x, digits=0):
    if x is None or x != x:
        return "—"
    return "{:,.{}f}".format(x, digits)


def render(results, command, quick):
    m = results["machine"]
    out = []
    w = out.append
    w("Results of `%s`%s, %s, commit %s." % (
        command, " (the smoke form: small sizes, not a measurement)" if quick else "",
        time.strftime("%Y-%m-%d"), m["commit"]))
    w("")
    w("Machine: %s CPUs (`nproc`) %s, %s memory, Linux %s; PostgreSQL %s (a private "
      "cluster, default settings, fsync on, `track_commit_timestamp = on`); Kafka %s "
      "(single node, scripts/services); librdkafka %s; libpq %s. The daemon is a "
      "Release build (`-O3`) of the commit above. Medians of the runs; the spread is "
      "in brackets." % (m["nproc"], m["cpu"], m["memory"], m["kernel"], m["postgresql"],
                        m["kafka"], m["librdkafka"], m["libpq"]))
    w("")
    w("| # | measurement | result | target | verdict |")
    w("| --- | --- | --- | --- | --- |")
    t = results.get("throughput")
    if t:
        c = t["config"]
        rates = [r["server_rate"] for r in t["runs"]]
        all_rates = [r["rate"] for r in t["runs"]]
        orm = [o["servers"]["rate"] for o in t["orm"]]
        sb = [s["events"] / s["seconds"] for s in t["setbased"]]
        d, a, b = median(rates), median(orm), median(sb)
        w("| 1 | apply throughput: %s events (%s servers × %d versions, 5%% deleted, %s "
          "subnets v4+v6 with static pools, %s marks), daemon started on full topics → "
          "every offset committed | **%s server events/s** (%s all events/s) [%s–%s] in %s s; "
          "first commit after %s s, %s events/s from there on; CPU: daemon %s s, "
          "PostgreSQL %s s | ≥ 50,000 | %s |" % (
              fmt(t["runs"][0]["events"]), fmt(c["servers"]), c["versions"],
              fmt(c["subnets"]), fmt(int(c["subnets"] * 1.1)), fmt(d), fmt(median(all_rates)),
              fmt(min(rates)), fmt(max(rates)), fmt(median([r["seconds"] for r in t["runs"]]), 1),
              fmt(median([r["first_commit"] for r in t["runs"]]), 1),
              fmt(median([r["after_first"] for r in t["runs"]])) +
              (" (%d of %d runs capped at %d s: the rate reached by then)" % (
                  sum(r["capped"] for r in t["runs"]), len(t["runs"]), c["cap"])
               if any(r["capped"] for r in t["runs"]) else ""),
              fmt(median([r.get("daemon_cpu", float("nan")) for r in t["runs"]]), 1),
              fmt(median([r.get("pg_cpu", float("nan")) for r in t["runs"]]), 1),
              "met" if d >= 50000 else "**missed**"))
        w("| 1a | baseline (a) `bench/baseline_orm`: one transaction per event, ~7 round "
          "trips, one connection (server phase, first %d s) | %s server events/s [%s–%s]; "
          "daemon = **%.1f×** (a) | ≥ 20× | %s |" % (
              size_of(results)["orm_seconds"], fmt(a), fmt(min(orm)), fmt(max(orm)), d / a,
              "met" if d / a >= 20 else "**missed**"))
        w("| 1b | baseline (b) `bench/baseline_setbased.sql`: the same row changes set-based "
          "inside PostgreSQL | %s events/s [%s–%s] (%s s); daemon = **%.0f%%** of (b) | "
          "report | — |" % (fmt(b), fmt(min(sb)), fmt(max(sb)),
                            fmt(median([s["seconds"] for s in t["setbased"]]), 2),
                            100.0 * median(all_rates) / b))
    rb = results.get("rebuild")
    if rb:
        c = rb["config"]
        head = ("| 2 | rebuild of %s events (%s servers × %d versions + subnets + marks) over a "
                "database holding the same state (%s rows), `--rebuild` start → "
                "`rebuild: swapped in` | " % (fmt(rb["events"]), fmt(c["servers"]),
                                              c["versions"], fmt(rb["rows"])))
        done = [r["seconds"] for r in rb["runs"] if not r["capped"]]
        if done:
            w(head + "**%s s** [%s–%s] | ≤ 30 s | %s |" % (
                fmt(median(done), 1), fmt(min(done), 1), fmt(max(done), 1),
                "met" if median(done) <= 30 else "**missed**"))
        else:
            r = rb["runs"][0]
            rate = r["applied"] / r["seconds"] if r["seconds"] else 0
            w(head + "**not swapped in within the %d s cap**: %s events applied (%s events/s; "
              "all of them would take ~%s s) | ≤ 30 s | **missed** |" % (
                  c["cap"], fmt(r["applied"]), fmt(rate),
                  fmt(rb["events"] / rate if rate else float("nan"))))
    lt = results.get("latency")
    if lt:
        p50 = median([r["p50"] for r in lt["runs"]])
        p99 = median([r["p99"] for r in lt["runs"]])
        w("| 3 | latency at a steady %s events/s (server moves, %d s × %d runs), produce → "
          "commit | p50 **%s ms**, p99 **%s ms** [%s–%s], max %s ms | p99 ≤ 50 ms | %s |" % (
              fmt(lt["config"]["rate"]), lt["config"]["duration"], len(lt["runs"]), fmt(p50, 1),
              fmt(p99, 1), fmt(min(r["p99"] for r in lt["runs"]), 1),
              fmt(max(r["p99"] for r in lt["runs"]), 1),
              fmt(max(r["max"] for r in lt["runs"]), 1), "met" if p99 <= 50 else "**missed**"))
    pl = results.get("pools")
    if pl:
        v4 = median([x["ms"] for x in pl["v4"]])
        v6 = median([x["ms"] for x in pl["v6"]])
        n4 = pl["v4"][0]["rows"]
        n6 = pl["v6"][0]["rows"]
        w("| 4 | one subnet event with a %s-address static pool (IPv4 /%d) / %s (IPv6 /%d), "
          "produce → commit, on a running daemon holding state | v4 **%s ms**, v6 **%s ms** "
          "| ≤ 1,000 ms | %s |" % (fmt(n4), pl["bits"][0], fmt(n6), pl["bits"][1], fmt(v4),
                                  fmt(v6), "met" if max(v4, v6) <= 1000 else "**missed**"))
        w("| 4b | a /8 pool (11.0.0.1-11.255.255.254) | refused in %s ms, dead letter: "
          "“%s”, 0 rows | refused quickly | %s |" % (
              fmt(pl["huge"]["ms"]), pl["huge"]["reason"],
              "met" if pl["huge"]["ms"] < 1000 else "**missed**"))
    mm = results.get("memory")
    if mm:
        r = mm["rows"]
        w("| 6 | daemon peak RSS (VmHWM) applying %d subnet events (IPv4 /%d, whole static "
          "pools) into %s rows of `ipam`%s | **%s MiB** | bounded | — |" % (
              r["pools"], r["bits"], fmt(r["rows"]),
              " (capped at %.0f s: %s of %s events)" % (r["seconds"], fmt(r["committed"]),
                                                         fmt(r["events"])) if r["capped"] else "",
              fmt(r["hwm"], 1)))
        for bl in mm["backlogs"]:
            w("| 6b | daemon peak RSS with %s events waiting in Kafka (the first %d s of "
              "consuming them: %s applied) | **%s MiB** | bounded | — |" % (
                  fmt(bl["events"]), bl["window"], fmt(bl["consumed"]), fmt(bl["hwm"], 1)))
        if len(mm["backlogs"]) > 1:
            h = [bl["hwm"] for bl in mm["backlogs"]]
            w("| 6c | peak RSS against the backlog (%s events) | %s | does not grow | %s |" % (
                " vs ".join(fmt(bl["events"]) for bl in mm["backlogs"]),
                " vs ".join("%s MiB" % fmt(x, 1) for x in h),
                "met" if max(h) <= min(h) * 1.25 + 8 else "**missed**"))
    return "\n".join(out)


def size_of(results):
    return SIZES["quick" if results["quick"] else "full"]


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


def main():
    ap = argparse.ArgumentParser(prog="bench/run")
    ap.add_argument("--quick", action="store_true", help="the short smoke form")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/BENCHMARKS.md")
    ap.add_argument("--only", default="throughput,rebuild,latency,memory",
                    help="comma-separated: throughput, rebuild, latency (with pools), "
                    "memory, profile (not in the default set)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--rev", help="(handled by bench/run) the commit measured")
    args = ap.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    only = set(args.only.split(","))
    results = {"quick": args.quick, "machine": machine()}
    pg = PrivatePostgres()
    results["machine"]["postgresql"] = pg.version
    began = time.monotonic()
    try:
        if "throughput" in only:
            measure_throughput(pg, size, results)
        if "rebuild" in only:
            measure_rebuild(pg, size, results)
        if "latency" in only:
            measure_latency_and_pools(pg, size, results)
        if "memory" in only:
            measure_memory(pg, size, results)
        if "profile" in only:
            measure_profile(pg, size, results)
    finally:
        for daemon in DAEMONS:
            if daemon.alive():
                daemon.proc.kill()
                daemon.proc.wait()
            shutil.rmtree(daemon.dir, ignore_errors=True)
        pg.close()
    results["seconds"] = time.monotonic() - began
    table = render(results, args.command, args.quick)
    print(table)
    log("done in %.0f s" % results["seconds"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not args.no_docs:
        write_doc(table)


if __name__ == "__main__":
    try:
        main()
    except Failure as error:
        log("FAILED: %s" % error)
        sys.exit(1)
