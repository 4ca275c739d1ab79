#!/usr/bin/python3
"""Least privilege and start-up: schema/roles.sql's three roles, migrations
by the owner (--migrate), the daemon as the runtime role through a full
apply, an API read on the read-only role and a rebuild; a role without a
right stops with one clear line and its exit status; the exit statuses of
a start that cannot go on; SIGHUP's warning against the running values;
--user leaving root."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import BINARY, ROOT, Daemon, Database, Kafka, Topics, wait_until
from test_property import RebuildDaemon

ROLES_SQL = os.path.join(ROOT, "schema", "roles.sql")
LATEST = harness.LATEST_SCHEMA


def server_event(sid, ip):
    return json.dumps({"specversion": "1.0", "id": "e-" + sid, "source": "/tests/roles",
                       "type": "ipam.server.upserted", "subject": sid,
                       "entityversion": 1,
                       "data": {"hostname": "h" + sid, "ip_address": ip}})


def subnet_event(sid, cidr, pools=()):
    return json.dumps({"specversion": "1.0", "id": "s-" + sid, "source": "/tests/roles",
                       "type": "ipam.subnet.upserted", "subject": sid,
                       "data": {"name": "n" + sid, "cidr": cidr,
                                "static_ip_pools": list(pools)}})


class Roles:
    """schema/roles.sql with role names of this test's own (roles are
    global to the cluster, tests run side by side)."""

    def __init__(self, db):
        self.db = db
        suffix = uuid.uuid4().hex[:8]
        self.owner = "ipam_owner_" + suffix
        self.runtime = "ipam_syncd_" + suffix
        self.reader = "ipam_reader_" + suffix
        with open(ROLES_SQL) as f:
            text = f.read()
        for name, mine in (("ipam_owner", self.owner), ("ipam_syncd", self.runtime),
                           ("ipam_reader", self.reader)):
            text = re.sub(r"\b%s\b" % name, mine, text)
        self.sql = text

    def apply(self):
        """Runs the script as the superuser, as an operator would with psql."""
        conn = psycopg2.connect(host=self.db.host, port=self.db.port,
                                user=self.db.user, dbname=self.db.name)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(self.sql)
        conn.close()

    def conninfo(self, role):
        return "host=%s port=%d user=%s dbname=%s" % (self.db.host, self.db.port,
                                                       role, self.db.name)

    def drop(self):
        conn = psycopg2.connect(host=self.db.host, port=self.db.port,
                                user=self.db.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for role in (self.reader, self.runtime, self.owner):
                cur.execute('DROP ROLE IF EXISTS "%s"' % role)
        conn.close()


class ArgsDaemon(RebuildDaemon):
    """harness.Daemon with extra command-line arguments, and its exit."""

    def exit_status(self, timeout=60):
        return self.proc.wait(timeout)


class SetprivDaemon(ArgsDaemon):
    """ArgsDaemon started as nobody (setpriv), its log written by root."""

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        env.update(self.extra_env)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             BINARY, "--config", self.config_path] + self.extra_args,
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        return self


def as_role(db, topics, roles, role, extra_args=(), config=None, group=None):
    settings = {"postgresql": {"conninfo": roles.conninfo(role)}}
    for section, values in (config or {}).items():
        settings.setdefault(section, {}).update(values)
    return ArgsDaemon(db, topics, config=settings, extra_args=extra_args, group=group)


def drop_database_as_superuser(db, roles):
    db.close()
    roles.drop()


def test_runtime_role_applies_reads_and_rebuilds():
    """The owner migrates, the runtime role starts without DDL, applies,
    the API reads through the read-only role, and a rebuild swaps the state
    in; the reader still reads afterwards."""
    db, topics = Database(), Topics()
    roles = Roles(db)
    daemons = []
    try:
        roles.apply()
        migrate = as_role(db, topics, roles, roles.owner, extra_args=["--migrate"])
        daemons.append(migrate)
        assert migrate.start().exit_status() == 0, migrate.log()
        assert migrate.log_contains(r"applied migration %03d_" % LATEST)
        assert migrate.log_contains(r"--migrate is done")
        assert db.scalar("SELECT nspowner::regrole::text FROM pg_namespace "
                         "WHERE nspname = 'ipamd'") == roles.owner
        roles.apply()

        reader_conninfo = roles.conninfo(roles.reader)
        daemon = as_role(db, topics, roles, roles.runtime, config={
            "api": {"read_conninfo": reader_conninfo, "web_dir": ""}})
        daemons.append(daemon)
        daemon.start().wait_ready()
        assert daemon.log_contains(r"schema: at version %d, nothing to apply" % LATEST)
        assert not daemon.log_contains(r"applied migration|created the functions")
        kafka = Kafka()
        kafka.send(topics.subnets, "1", subnet_event("1", "10.77.0.0/24",
                                                     ["10.77.0.1-10.77.0.3"]))
        kafka.send(topics.servers, "a", server_event("a", "10.77.0.2"))
        kafka.send(topics.servers, "b", server_event("b", "10.77.0.50"))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam") == 4, 60, "4 rows")

        # An API read, served by the read-only role's connections.
        status, body = daemon.http_get("/api/v1/addresses?status=allocated")
        assert status == 200, body
        assert sorted(row["ip_address"] for row in json.loads(body)["items"]) == \
            ["10.77.0.2", "10.77.0.50"], body
        assert db.scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                         "AND datname = %s", (roles.reader, db.name)) >= 1
        # The reader may read, never write.
        reader = psycopg2.connect(reader_conninfo)
        reader.autocommit = True
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM ipam")
            assert cur.fetchone()[0] == 4
            try:
                cur.execute("DELETE FROM ipamd.audit")
                raise AssertionError("the reader deleted audit rows")
            except psycopg2.errors.InsufficientPrivilege:
                pass
        assert daemon.stop() == 0

        rebuild = as_role(db, topics, roles, roles.runtime, extra_args=["--rebuild"],
                          group=daemon.group, config={
                              "api": {"read_conninfo": reader_conninfo, "web_dir": ""}})
        daemons.append(rebuild)
        rebuild.start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        assert db.scalar("SELECT count(*) FROM ipam") == 4
        assert db.scalar("SELECT nspowner::regrole::text FROM pg_namespace "
                         "WHERE nspname = 'ipam_state'") == roles.runtime
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM ipam WHERE status = 'allocated'")
            assert cur.fetchone()[0] == 2
            cur.execute("SELECT count(*) FROM ipam_state.server")
            assert cur.fetchone()[0] == 2
        reader.close()
        status, body = rebuild.http_get("/api/v1/addresses?status=allocated")
        assert status == 200 and len(json.loads(body)["items"]) == 2, body
        assert rebuild.stop() == 0
    finally:
        for d in daemons:
            d.close()
        drop_database_as_superuser(db, roles)


def test_runtime_role_without_rights_says_so_and_exits_77():
    """A due migration the runtime role may not apply, and a role that may
    not even read the records: one error line naming the step and the role,
    exit 77 (EX_NOPERM), no "retrying"."""
    db, topics = Database(), Topics()
    roles = Roles(db)
    daemons = []
    try:
        roles.apply()       # the roles exist; nothing migrated yet
        conn = psycopg2.connect(host=db.host, port=db.port, user=db.user, dbname=db.name)
        conn.autocommit = True
        with conn.cursor() as cur:
            # PostgreSQL 15 grants no CREATE on public: the runtime role may
            # not make the records; take back what roles.sql gave.
            cur.execute('REVOKE CREATE ON SCHEMA public FROM "%s"' % roles.runtime)
        daemon = as_role(db, topics, roles, roles.runtime)
        daemons.append(daemon)
        assert daemon.start().exit_status() == 77, daemon.log()
        log = daemon.log()
        assert re.search(r"<3>schema: creating the migration records "
                         r"\(public.ipam_schema_migration\): .*permission denied for "
                         r"schema public.*; role \"%s\" may not change the schema: run "
                         r"\"ipam-syncd --migrate\" as the schema's owner role"
                         % roles.runtime, log), log
        assert "retrying" not in log, log

        migrate = as_role(db, topics, roles, roles.owner, extra_args=["--migrate"])
        daemons.append(migrate)
        assert migrate.start().exit_status() == 0, migrate.log()
        # Not granted yet (roles.sql not run again): reading the records fails.
        stranger = as_role(db, topics, roles, roles.reader)
        daemons.append(stranger)
        assert stranger.start().exit_status() == 77, stranger.log()
        assert stranger.log_contains(
            r"<3>schema: reading the schema version \(public.ipam_schema_migration\): "
            r".*permission denied for table ipam_schema_migration.*role \"%s\""
            % roles.reader)
        with conn.cursor() as cur:
            cur.execute('SELECT 1')
        conn.close()
    finally:
        for d in daemons:
            d.close()
        drop_database_as_superuser(db, roles)


def test_exit_statuses_of_a_start_that_cannot_go_on():
    """78 for the configuration, 69 for the schema folder, 70 for a
    migration that fails, 64 for the command line, 69 for --migrate without
    PostgreSQL (a newer database: test_foundation)."""
    db, topics = Database(), Topics()
    daemons = []
    try:
        bad = ArgsDaemon(db, topics, config={"http": {"listen": "localhost:19189"}})
        daemons.append(bad)
        assert bad.start().exit_status() == 78, bad.log()
        assert bad.log_contains(r"<3>configuration: .*ipam-syncd.conf:\d+: http.listen: "
                                r"\"localhost:19189\": \"localhost\" is not a numeric address")

        no_schema = ArgsDaemon(db, topics, config={"daemon": {"schema_dir": "/nonexistent"}})
        daemons.append(no_schema)
        assert no_schema.start().exit_status() == 69, no_schema.log()
        assert no_schema.log_contains(r"<3>schema folder /nonexistent: No such file")

        # A migration PostgreSQL refuses: 70, naming the migration.
        broken = os.path.join(no_schema.dir, "schema")
        shutil.copytree(harness.SCHEMA_DIR, broken)
        last = sorted(n for n in os.listdir(broken) if re.match(r"\d{3}_.*\.sql$", n))[-1]
        with open(os.path.join(broken, last), "a") as f:
            f.write("\nSELECT no_such_function_here();\n")
        failing = ArgsDaemon(db, topics, config={"daemon": {"schema_dir": broken}})
        daemons.append(failing)
        assert failing.start().exit_status() == 70, failing.log()
        assert failing.log_contains(r"<3>schema: migration %s: .*no_such_function_here"
                                    % last[:-4])
        assert not failing.log_contains(r"retrying")

        usage = subprocess.run([BINARY, "--rebuild", "--migrate"], capture_output=True)
        assert usage.returncode == 64, usage

        nowhere = ArgsDaemon(db, topics, extra_args=["--migrate"], config={
            "postgresql": {"conninfo": "host=127.0.0.1 port=1 dbname=x",
                           "connect_timeout_ms": "1000"}})
        daemons.append(nowhere)
        assert nowhere.start().exit_status() == 69, nowhere.log()
        assert nowhere.log_contains(r"<3>--migrate: PostgreSQL: .*port 1")
    finally:
        for d in daemons:
            d.close()
        db.close()


def test_sighup_warns_against_the_running_values():
    """A restart-only key changed is named once, in words that read; the
    file restored to what runs warns of nothing."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics)
    try:
        daemon.start().wait_ready()
        sections = daemon.sections
        original = sections["consumer"]["group_id"]
        sections["consumer"]["group_id"] = "another-group"
        sections["consumer"]["max_message_bytes"] = "2048"
        daemon.write_config(sections)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("reload: configuration") >= 1, 30, "reload 1")
        assert daemon.log_contains(
            r"<4>reload: consumer.group_id, consumer.max_message_bytes changed; they take "
            r"effect after a restart"), daemon.log()
        sections["consumer"]["group_id"] = original
        del sections["consumer"]["max_message_bytes"]
        daemon.write_config(sections)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("reload: configuration") >= 2, 30, "reload 2")
        assert daemon.log().count("after a restart") == 1, daemon.log()
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_user_option_leaves_root_and_keeps_cap_net_raw():
    """Started as root with --user nobody: the daemon runs as nobody with
    CAP_NET_RAW alone; without --user it warns that it runs as root."""
    if os.geteuid() != 0:
        print("SKIP: needs root")
        sys.exit(77)
    db, topics = Database(), Topics()
    daemons = []
    schema = None
    try:
        rooted = ArgsDaemon(db, topics)
        daemons.append(rooted)
        rooted.start().wait_ready()
        assert rooted.log_contains(r"<4>running as root: name an unprivileged user")
        assert rooted.stop() == 0

        dropped = ArgsDaemon(db, topics, extra_args=["--user", "nobody"],
                             group=rooted.group)
        daemons.append(dropped)
        # The config is read before the change of user: nobody may not.
        os.chmod(dropped.dir, 0o700)
        os.chmod(dropped.config_path, 0o600)
        dropped.start().wait_ready()
        assert dropped.log_contains(r"running as user nobody")
        assert not dropped.log_contains(r"running as root")
        with open("/proc/%d/status" % dropped.proc.pid) as f:
            status = f.read()
        nobody = str(__import__("pwd").getpwnam("nobody").pw_uid)
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        assert uids == [nobody] * 4, status
        assert re.search(r"^Groups:\s*$", status, re.M), status
        cap_eff = int(re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1), 16)
        assert cap_eff == 1 << 13, hex(cap_eff)      # CAP_NET_RAW alone
        # Every thread left root, librdkafka's included.
        for tid in os.listdir("/proc/%d/task" % dropped.proc.pid):
            with open("/proc/%d/task/%s/status" % (dropped.proc.pid, tid)) as f:
                text = f.read()
            assert re.search(r"^Uid:\s+(.*)$", text, re.M).group(1).split() == [nobody] * 4
        assert dropped.stop() == 0

        unknown = ArgsDaemon(db, topics, extra_args=["--user", "no-such-user-here"],
                             group=rooted.group)
        daemons.append(unknown)
        assert unknown.start().exit_status() == 78, unknown.log()
        assert unknown.log_contains(r"<3>--user: user no-such-user-here: no such user")

        # Started as nobody already (as the unit's DynamicUser=): naming
        # itself is fine; naming another user is a configuration it cannot
        # follow, said at once (78 stops systemd's restarts), not a failed
        # setgroups (which the unit's system call filter would kill).
        # The schema folder, where nobody may read it (the tree may be in
        # a folder of root's alone).
        schema = os.path.join(tempfile.mkdtemp(prefix="ipam-schema-"), "schema")
        os.chmod(os.path.dirname(schema), 0o755)
        shutil.copytree(harness.SCHEMA_DIR, schema)
        for name, wanted in (("nobody", None), ("daemon", 78)):
            started = SetprivDaemon(db, topics, extra_args=["--user", name],
                                    group=rooted.group,
                                    config={"daemon": {"schema_dir": schema}})
            daemons.append(started)
            os.chmod(started.dir, 0o755)
            os.chmod(started.config_path, 0o644)
            started.start()
            if wanted is None:
                started.wait_ready()
                assert not started.log_contains(r"cannot change user"), started.log()
                assert started.stop() == 0
            else:
                assert started.exit_status() == wanted, started.log()
                assert started.log_contains(
                    r"<3>--user / \[daemon\] user daemon: the daemon runs as uid %s, "
                    r"not as root, and cannot change user" % nobody), started.log()
    finally:
        for d in daemons:
            d.close()
        db.close()
        if schema is not None:
            shutil.rmtree(os.path.dirname(schema), ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
