"""The peer of bench/run: Kafka Connect 4.1.1 standalone with the Debezium
JDBC sink connector (scripts/connect run-jdbc), upserting the same
Debezium server events the daemon consumes into a table of its own.

The worker is started once per measurement and left running between the
runs (its JVM start is not timed, as the daemon's build is not); each run
posts a new connector (a new consumer group, reading the topic from its
start) and deletes it afterwards.  The connector's settings are those a
user would pick for this job: upsert mode keyed by the record key, deletes
on, the table made by the connector (schema.evolution=basic), one task
(the topic has one partition; two partitions and two tasks measured no
faster on this 2-core machine), the default batch of 500."""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECT = os.path.join(ROOT, "scripts", "connect")
CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
# The connector's version: the one scripts/connect install-jdbc fetches.
VERSION = re.search(r"^DEBEZIUM_JDBC_VERSION=(\S+)", open(CONNECT).read(), re.M).group(1)
# The full JIT and a parallel collector: the worker runs for minutes and
# is measured for throughput (scripts/connect's defaults favour start-up).
JVM_OPTIONS = "-XX:+UseParallelGC"
HEAP = "1g"


class SinkFailure(Exception):
    pass


def install():
    """Fetches the JDBC sink's jars if they are not cached (a few seconds
    from the local Maven cache, about a minute from Maven Central)."""
    subprocess.run([CONNECT, "install-jdbc"], check=True, stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """One standalone Connect worker with the JDBC sink on its class path."""

    def __init__(self, bootstrap):
        self.dir = tempfile.mkdtemp(prefix="ipam-bench-connect.")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "connect.log")
        worker = os.path.join(self.dir, "worker.properties")
        with open(worker, "w") as f:
            f.write("\n".join((
                "bootstrap.servers=%s" % bootstrap,
                "key.converter=%s" % CONVERTER,
                "value.converter=%s" % CONVERTER,
                "key.converter.schemas.enable=true",
                "value.converter.schemas.enable=true",
                "offset.storage.file.filename=%s" % os.path.join(self.dir, "offsets"),
                "listeners=http://127.0.0.1:%d" % self.port,
                "rest.advertised.host.name=127.0.0.1",
                "rest.advertised.port=%d" % self.port,
                "plugin.discovery=service_load",
                "")))
        env = dict(os.environ, IPAM_CONNECT_HEAP=HEAP, IPAM_CONNECT_JVM_OPTIONS=JVM_OPTIONS)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([CONNECT, "run-jdbc", worker], stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + 120
        while not self._serves_plugin():
            if self.proc.poll() is not None:
                raise SinkFailure("Kafka Connect exited (%s):\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise SinkFailure("Kafka Connect did not serve its REST API within 120 s")
            time.sleep(0.2)

    def log_tail(self, n=3000):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-n:]

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def _serves_plugin(self):
        try:
            status, body = self.request("GET", "/connector-plugins")
        except OSError:
            return False
        return status == 200 and any("JdbcSinkConnector" in p.get("class", "") for p in body)

    def post(self, name, topic, pg_port, db, table):
        """Creates the sink connector for one topic into db.table."""
        config = {
            "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
            "tasks.max": "1",
            "topics": topic,
            "connection.url": "jdbc:postgresql://127.0.0.1:%d/%s" % (pg_port, db),
            "connection.username": "postgres",
            "connection.password": "unused",
            "insert.mode": "upsert",
            "delete.enabled": "true",
            "primary.key.mode": "record_key",
            "schema.evolution": "basic",
            "collection.name.format": table,
        }
        status, body = self.request("POST", "/connectors", {"name": name, "config": config})
        if status != 201:
            raise SinkFailure("POST /connectors %s: %s %s" % (name, status, body))

    def failed(self, name):
        """The trace of a failed connector or task, or None."""
        status, body = self.request("GET", "/connectors/%s/status" % name)
        if status != 200:
            return None
        for state in [body["connector"]] + body.get("tasks", []):
            if state.get("state") == "FAILED":
                return state.get("trace", "FAILED")[:2000]
        return None

    def delete(self, name):
        self.request("DELETE", "/connectors/%s" % name)

    def pid(self):
        return self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)
