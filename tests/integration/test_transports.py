"""The daemon's transports against real services with real certificates:
a test CA made by openssl at test time, a Kafka broker of the test's own
with TLS, mutual-TLS and SASL/PLAIN-over-TLS listeners, and a PostgreSQL
of the test's own with ssl=on (docs/TRANSPORTS.md).

- Kafka over TLS (server authentication): events published over TLS are
  applied, and one API write goes out through the API's producer over TLS.
- Mutual TLS: a listener that requires a client certificate; the daemon
  with its certificate and key applies events.
- A CA that did not sign the broker's certificate: the daemon never
  turns ready, /readyz says no broker is reachable and the log says why
  (certificate verify failed).
- SASL/PLAIN over TLS, the password from a file in $CREDENTIALS_DIRECTORY:
  applied; a wrong password is never ready and the log says the
  authentication failed; a password file others may read is refused.
- SCRAM: with librdkafka < 2.6.1 refused at start (exit 78, one line
  naming the versions) unless [kafka] ipam.scram_broker_below_4 = true;
  with it, SCRAM-SHA-512 over TLS against a Kafka 3.9 broker is applied,
  and a wrong password is never ready, with the reason.
- PostgreSQL with sslmode=verify-full against a certificate for localhost
  signed by the test CA: applied; with another CA the connection is
  refused, /readyz says PostgreSQL is not connected and the log names
  the certificate failure.

Everything listens on 127.0.0.1 and lives in temp directories the test
removes."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from confluent_kafka import Producer

import harness
from harness import (Daemon, Database, PrivatePostgres, Topics, quiet_port,
                     wait_until)
from test_consumer import PrivateKafka
from test_sync import event

KEYSTORE_PASSWORD = "keystore-pass"
SASL_USER = "ipam"
SASL_PASSWORD = "sasl-" + "3" * 20
WRITE_TOKEN = "w-" + "7" * 30


def openssl(directory, *argv):
    subprocess.run(["openssl"] + list(argv), cwd=directory, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class TestCA:
    """A certificate authority of the test's own and the certificates it
    signs, in a temp directory: ca.crt, and for each name a .crt and .key."""

    def __init__(self, directory, name="ca"):
        self.dir = directory
        self.name = name
        self.cert = os.path.join(directory, name + ".crt")
        self.key = os.path.join(directory, name + ".key")
        openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", self.key, "-out", self.cert, "-days", "2",
                "-subj", "/CN=ipam-syncd test CA " + name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name, common_name, alt_names=None):
        """Signs a certificate for common_name (server and client use);
        returns (certificate path, key path)."""
        cert = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
            if alt_names:
                f.write("subjectAltName=%s\n" % ",".join(alt_names))
        openssl(self.dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                key, "-out", csr, "-subj", "/CN=" + common_name)
        openssl(self.dir, "x509", "-req", "-in", csr, "-CA", self.cert,
                "-CAkey", self.key, "-CAcreateserial", "-out", cert,
                "-days", "2", "-extfile", ext)
        return cert, key


# -- Kafka -------------------------------------------------------------------

class TlsKafka(PrivateKafka):
    """A private broker with, besides its PLAINTEXT listener (the test's
    admin client), three more on 127.0.0.1: SSL (server authentication),
    MTLS (a client certificate required) and SASLSSL (SASL/PLAIN over
    TLS), all with a server certificate the test CA signed."""

    def __init__(self, ca, directory, mechanism="PLAIN", version=None):
        cert, key = ca.issue("broker", "localhost",
                             ["IP:127.0.0.1", "DNS:localhost"])
        self.mechanism = mechanism
        self.keystore = os.path.join(directory, "broker.p12")
        openssl(directory, "pkcs12", "-export", "-in", cert, "-inkey", key,
                "-out", self.keystore, "-name", "broker",
                "-passout", "pass:" + KEYSTORE_PASSWORD)
        self.ca = ca
        self.ports = {}
        # scripts/services runs the Kafka of IPAM_SERVICES_KAFKA_VERSION.
        saved = os.environ.pop("IPAM_SERVICES_KAFKA_VERSION", None)
        if version:
            os.environ["IPAM_SERVICES_KAFKA_VERSION"] = version
        try:
            super().__init__()
        finally:
            os.environ.pop("IPAM_SERVICES_KAFKA_VERSION", None)
            if saved is not None:
                os.environ["IPAM_SERVICES_KAFKA_VERSION"] = saved
        try:
            if mechanism.startswith("SCRAM-"):
                self._add_scram_user(version)
            self._add_listeners()
        except BaseException:
            self.close()
            raise

    def _add_listeners(self):
        # Picked while the broker runs, so none is one of its own ports.
        self.ports = {name: quiet_port() for name in ("SSL", "MTLS", "SASLSSL")}
        self._services("kafka-stop")
        path = os.path.join(self.run_dir, "kafka", "server.properties")
        with open(path) as f:
            lines = f.read().splitlines()
        more = "".join(",%s://127.0.0.1:%d" % item for item in self.ports.items())
        edited = []
        for line in lines:
            key = line.split("=", 1)[0]
            if key in ("listeners", "advertised.listeners"):
                line += more
            elif key == "listener.security.protocol.map":
                line += ",SSL:SSL,MTLS:SSL,SASLSSL:SASL_SSL"
            edited.append(line)
        if self.mechanism == "PLAIN":
            jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule '
                    'required user_%s="%s";' % (SASL_USER, SASL_PASSWORD))
        else:
            jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required;'
        lower = self.mechanism.lower()
        edited += [
            "ssl.keystore.type=PKCS12",
            "ssl.keystore.location=" + self.keystore,
            "ssl.keystore.password=" + KEYSTORE_PASSWORD,
            "ssl.key.password=" + KEYSTORE_PASSWORD,
            "ssl.truststore.type=PEM",
            "ssl.truststore.location=" + self.ca.cert,
            "listener.name.mtls.ssl.client.auth=required",
            "sasl.enabled.mechanisms=" + self.mechanism,
            "listener.name.saslssl.sasl.enabled.mechanisms=" + self.mechanism,
            "listener.name.saslssl.%s.sasl.jaas.config=%s" % (lower, jaas),
        ]
        with open(path, "w") as f:
            f.write("\n".join(edited) + "\n")
        self._services("kafka-start")

    def _add_scram_user(self, version):
        """Gives SASL_USER a SCRAM credential (kept in the cluster's
        metadata, so it outlives the restart that adds the listeners)."""
        java = "/usr/lib/jvm/java-17-openjdk-%s/bin/java" % subprocess.run(
            ["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
            text=True).stdout.strip()
        libs = os.path.join(harness.ROOT, ".cache", "kafka-" + version, "libs", "*")
        subprocess.run([java if os.access(java, os.X_OK) else "java", "-Xmx128m",
                        "-cp", libs, "kafka.admin.ConfigCommand",
                        "--bootstrap-server", self.bootstrap(), "--alter",
                        "--add-config", "%s=[iterations=4096,password=%s]"
                        % (self.mechanism, SASL_PASSWORD),
                        "--entity-type", "users", "--entity-name", SASL_USER],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def address(self, listener):
        return "127.0.0.1:%d" % self.ports[listener]

    def sasl_settings(self):
        """The [kafka] settings of the SASLSSL listener, without the password."""
        return {"bootstrap.servers": self.address("SASLSSL"),
                "security.protocol": "SASL_SSL", "ssl.ca.location": self.ca.cert,
                "sasl.mechanisms": self.mechanism, "sasl.username": SASL_USER}


def tls_producer(settings):
    """A producer with the daemon's [kafka] settings (librdkafka names)."""
    settings = dict(settings, **{"linger.ms": 5, "enable.idempotence": True})
    return Producer(settings)


def publish(producer, topics, first_octets):
    """Publishes a subnet and two servers; returns the message count."""
    sent = 0
    producer.produce(topics.subnets, key=b"lan", value=event(
        "subnet.upserted", "lan", {"name": "lan", "cidr": first_octets + ".0/24",
                                   "static_ip_pools": [first_octets + ".1-" + first_octets + ".9"]},
        1).encode())
    sent += 1
    for n in (1, 2):
        sid = "s%d" % n
        producer.produce(topics.servers, key=sid.encode(), value=event(
            "server.upserted", sid, {"hostname": "host-" + sid,
                                     "ip_address": "%s.%d" % (first_octets, 100 + n),
                                     "nic_mac": None, "device_type": "vm",
                                     "manufacture": "qemu"}, 1).encode())
        sent += 1
    remaining = producer.flush(60)
    assert remaining == 0, "%d messages were not acknowledged over TLS" % remaining
    return sent


def applied(db, first_octets):
    """The rows the events of publish() make: 9 pool rows, 2 servers."""
    return db.scalar("SELECT count(*) FROM ipam WHERE host(ip_address::inet) "
                     "LIKE %s", (first_octets + ".%",)) == 11 and \
        db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated' AND "
                  "host(ip_address::inet) LIKE %s", (first_octets + ".%",)) == 2


def write_secret(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


def close_all(daemons, dbs, server, work):
    """Stops what a test started: daemons, databases, its broker or
    PostgreSQL, and removes its certificates."""
    for daemon in daemons:
        daemon.close()
    for db in dbs:
        db.close()
    if server is not None:
        server.close()
    shutil.rmtree(work, ignore_errors=True)


def assert_never_ready(daemon, log_pattern, readyz_pattern):
    """The daemon logged why it cannot reach the broker, and /readyz
    answers 503 with the reason; it never said it was ready."""
    daemon.wait_log(log_pattern, 90)
    status, body = daemon.http_get("/readyz")
    assert status == 503, (status, body)
    assert re.search(readyz_pattern, body), body
    assert not daemon.log_contains(r"ready: PostgreSQL connected"), daemon.log()


def test_kafka_tls_server_auth_and_mutual_tls():
    work = tempfile.mkdtemp(prefix="ipam-tls-")
    ca = TestCA(work)
    other = TestCA(work, "other-ca")
    client_cert, client_key = ca.issue("client", "ipam-syncd")
    broker = TlsKafka(ca, work)
    daemons = []
    dbs = []
    try:
        topics = Topics()
        ssl = {"bootstrap.servers": broker.address("SSL"),
               "security.protocol": "SSL", "ssl.ca.location": ca.cert}

        # Server authentication: events in and one API write out, over TLS.
        db = Database()
        dbs.append(db)
        token = write_secret(os.path.join(work, "write.token"), WRITE_TOKEN)
        daemon = Daemon(db, topics, config={"kafka": ssl,
                                            "api": {"write_token_file": token}})
        daemons.append(daemon)
        daemon.start().wait_ready(90)
        publish(tls_producer(ssl), topics, "127.91.0")
        wait_until(lambda: applied(db, "127.91.0"), 60, "events over TLS applied")
        status, body = api_put(daemon, "/api/v1/marks/-/127.91.0.5",
                               {"status": "reserved"})
        assert status == 200, body
        wait_until(lambda: db.scalar("SELECT status FROM ipam WHERE "
                                     "host(ip_address::inet) = '127.91.0.5'")
                   == "reserved", 60, "the API's mark applied")
        assert daemon.stop() == 0

        # Mutual TLS: the listener requires the client's certificate.
        mtls = dict(ssl, **{"bootstrap.servers": broker.address("MTLS"),
                            "ssl.certificate.location": client_cert,
                            "ssl.key.location": client_key})
        topics2 = Topics()
        db = Database()
        dbs.append(db)
        daemon = Daemon(db, topics2, config={"kafka": mtls})
        daemons.append(daemon)
        daemon.start().wait_ready(90)
        publish(tls_producer(mtls), topics2, "127.92.0")
        wait_until(lambda: applied(db, "127.92.0"), 60, "events over mTLS applied")
        assert daemon.stop() == 0

        # A CA that did not sign the broker's certificate.
        db = Database()
        dbs.append(db)
        daemon = Daemon(db, topics, config={"kafka": dict(
            ssl, **{"ssl.ca.location": other.cert})})
        daemons.append(daemon)
        daemon.start()
        assert_never_ready(daemon, r"kafka: _SSL: .*certificate verify failed",
                           r"no Kafka broker is reachable: .*certificate verify failed")
        assert daemon.stop() == 0
    finally:
        close_all(daemons, dbs, broker, work)


def api_put(daemon, path, body):
    """One authenticated API write: (status, parsed JSON)."""
    request = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (daemon.http_port(), path),
        data=json.dumps(body).encode(), method="PUT")
    request.add_header("Authorization", "Bearer " + WRITE_TOKEN)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def assert_sasl_logins(daemons, dbs, topics, settings, good, bad,
                       first_octets, env=None):
    """With the password file good, events published over SASL_SSL are
    applied and the password is never logged; with bad, the daemon is
    never ready and says the authentication failed."""
    db = Database()
    dbs.append(db)
    daemon = Daemon(db, topics, env=env, config={"kafka": dict(
        settings, **{"sasl.password_file": good})})
    daemons.append(daemon)
    daemon.start().wait_ready(90)
    assert SASL_PASSWORD not in daemon.log()
    producer = {k: v for k, v in settings.items() if not k.startswith("ipam.")}
    publish(tls_producer(dict(producer, **{"sasl.password": SASL_PASSWORD})),
            topics, first_octets)
    wait_until(lambda: applied(db, first_octets), 60, "events over SASL_SSL applied")
    assert daemon.stop() == 0

    db = Database()
    dbs.append(db)
    daemon = Daemon(db, topics, env=env, config={"kafka": dict(
        settings, **{"sasl.password_file": bad})})
    daemons.append(daemon)
    daemon.start()
    assert_never_ready(daemon, r"kafka: _AUTHENTICATION: .*[Aa]uthentication failed",
                       r"no Kafka broker is reachable: .*[Aa]uthentication failed")
    assert daemon.stop() == 0


def test_kafka_sasl_plain_over_tls():
    work = tempfile.mkdtemp(prefix="ipam-sasl-")
    ca = TestCA(work)
    broker = TlsKafka(ca, work)
    credentials = os.path.join(work, "credentials")
    os.mkdir(credentials, 0o700)
    daemons = []
    dbs = []
    try:
        topics = Topics()
        sasl = broker.sasl_settings()
        write_secret(os.path.join(credentials, "kafka-password"), SASL_PASSWORD)
        write_secret(os.path.join(credentials, "wrong-password"), "not-" + SASL_PASSWORD)
        env = {"CREDENTIALS_DIRECTORY": credentials}

        # The password from a file of $CREDENTIALS_DIRECTORY, as systemd's
        # LoadCredential= gives it.
        assert_sasl_logins(daemons, dbs, topics, sasl, "kafka-password",
                           "wrong-password", "127.93.0", env)

        # A password file others may read is refused at start.
        loose = write_secret(os.path.join(work, "loose-password"), SASL_PASSWORD,
                             0o644)
        db = Database()
        dbs.append(db)
        daemon = Daemon(db, topics, config={"kafka": dict(
            sasl, **{"sasl.password_file": loose})})
        daemons.append(daemon)
        daemon.start()
        status = daemon.proc.wait(60)
        assert status == 78, (status, daemon.log())
        assert daemon.log_contains(re.escape(loose)), daemon.log()
    finally:
        close_all(daemons, dbs, broker, work)


def check_config(daemon):
    """ipam-syncd --check-config on the daemon's file: exit status, output."""
    return subprocess.run([harness.BINARY, "--check-config", "--config",
                           daemon.config_path], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_scram_refused_with_librdkafka_before_2_6_1():
    """librdkafka < 2.6.1 cannot log in with SCRAM to Kafka >= 4.0: the
    daemon refuses SCRAM at start with one line naming the versions
    (exit 78, a configuration error), unless the operator says the
    brokers are older than 4.0."""
    version = subprocess.run([harness.BINARY, "--version"], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
    librdkafka = tuple(int(n) for n in
                       re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", version).groups())
    if librdkafka >= (2, 6, 1):
        print("SKIP: librdkafka %d.%d.%d can do SCRAM with any broker" % librdkafka)
        return
    work = tempfile.mkdtemp(prefix="ipam-scram-")
    db = Database()
    topics = Topics()
    daemons = []
    try:
        password = write_secret(os.path.join(work, "kafka-password"), SASL_PASSWORD)
        scram = {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                 "sasl.username": SASL_USER, "sasl.password_file": password}
        daemon = Daemon(db, topics, config={"kafka": scram})
        daemons.append(daemon)
        daemon.start()
        assert daemon.proc.wait(60) == 78, daemon.log()
        line = ("kafka.sasl.mechanisms = SCRAM-SHA-512: librdkafka %d.%d.%d cannot "
                "log in with SCRAM to Kafka 4.0 or later (fixed in librdkafka 2.6.1)"
                % librdkafka)
        assert [l for l in daemon.log().splitlines() if line in l], daemon.log()
        checked = check_config(daemon)
        assert checked.returncode == 78 and line in checked.stdout, checked.stdout

        # Acknowledged: the configuration passes.
        daemon.sections["kafka"]["ipam.scram_broker_below_4"] = "true"
        daemon.write_config(daemon.sections)
        checked = check_config(daemon)
        assert checked.returncode == 0, checked.stdout
        daemon.sections["kafka"]["ipam.scram_broker_below_4"] = "yes"
        daemon.write_config(daemon.sections)
        checked = check_config(daemon)
        assert checked.returncode == 78 and \
            'ipam.scram_broker_below_4: "yes" is not true or false' in checked.stdout, \
            checked.stdout
    finally:
        close_all(daemons, [db], None, work)


def test_scram_over_tls_with_kafka_3_9():
    """SCRAM-SHA-512 over TLS against a Kafka 3.9 broker (older than 4.0,
    so librdkafka 2.0.2 can log in), the brokers' version acknowledged:
    events applied; a wrong password never ready, with the reason."""
    work = tempfile.mkdtemp(prefix="ipam-scram39-")
    ca = TestCA(work)
    broker = TlsKafka(ca, work, mechanism="SCRAM-SHA-512", version="3.9.1")
    daemons = []
    dbs = []
    try:
        topics = Topics()
        scram = broker.sasl_settings()
        password = write_secret(os.path.join(work, "kafka-password"), SASL_PASSWORD)
        wrong = write_secret(os.path.join(work, "wrong-password"), "not-" + SASL_PASSWORD)
        assert_sasl_logins(daemons, dbs, topics,
                           dict(scram, **{"ipam.scram_broker_below_4": "true"}),
                           password, wrong, "127.95.0")
    finally:
        close_all(daemons, dbs, broker, work)


# -- PostgreSQL --------------------------------------------------------------

def postgresql_keepalive_timers(daemon, port):
    """The keepalive timers (seconds) of the daemon's TCP connections to
    PostgreSQL's port, as ss shows them ("" for a socket without one)."""
    out = subprocess.run(["ss", "-tnpoH", "state", "established", "dport",
                          "=", ":%d" % port], capture_output=True, text=True,
                         check=True).stdout
    timers = []
    for line in out.splitlines():
        if "pid=%d," % daemon.proc.pid not in line:
            continue
        # "1min3sec", "28sec", and below ten seconds "4.936ms" (which
        # is seconds, as ss prints them).
        found = re.search(r"timer:\(keepalive,(?:(\d+)min)?([\d.]+)(sec|ms)",
                          line)
        if not found:
            timers.append("")
            continue
        value = float(found.group(2))
        if found.group(3) == "ms" and "." not in found.group(2):
            value /= 1000
        timers.append(int(found.group(1) or 0) * 60 + value)
    return timers


def test_postgresql_connections_notice_a_silent_server():
    """Every connection to PostgreSQL over TCP (the apply's, the API's
    reads, the sweeper's) has keepalives on, the first probe within 30 s,
    so that a server gone without a word is noticed in a minute, not the
    kernel's two hours; the conninfo's own setting still wins, and so
    does a service file's."""
    db = Database()
    daemon = None
    services = os.path.join(tempfile.mkdtemp(prefix="ipamd-pgservice-"),
                            "pg_service.conf")
    with open(services, "w") as f:
        f.write("[ipamtest]\nhost=%s\nport=%d\nuser=%s\ndbname=%s\n"
                "keepalives_idle=5\n" % (db.host, db.port, db.user, db.name))
    try:
        for conninfo, most in ((db.conninfo(), 30),
                               (db.conninfo() + " keepalives_idle=7", 7),
                               ("service=ipamtest", 5)):
            daemon = Daemon(db, Topics(), config={"postgresql": {
                "conninfo": conninfo}}, env={"PGSERVICEFILE": services}).start()
            daemon.wait_ready()
            timers = postgresql_keepalive_timers(daemon, db.port)
            print("%r: keepalive timers %r" % (conninfo, timers), flush=True)
            assert len(timers) >= 2, timers
            assert all(t != "" and t <= most for t in timers), timers
            assert daemon.stop() == 0
            daemon.close()
            daemon = None
    finally:
        if daemon is not None:
            daemon.close()
        db.close()


def test_postgresql_verify_full():
    work = tempfile.mkdtemp(prefix="ipam-pgtls-")
    ca = TestCA(work)
    other = TestCA(work, "other-ca")
    cert, key = ca.issue("postgres", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    pg = PrivatePostgres(settings={"ssl": "on"})
    # The server reads its key and certificate from its data directory,
    # as the user it runs as, and refuses a key others may read.
    for path, name in ((cert, "server.crt"), (key, "server.key")):
        target = os.path.join(pg.data, name)
        shutil.copy(path, target)
        os.chmod(target, 0o600)
        if pg.runas:
            shutil.chown(target, user=pg.runas)
    pg.start()
    topics = Topics()
    daemons = []
    db = Database(host="127.0.0.1", port=pg.port)
    try:
        tls = "host=localhost port=%d user=%s dbname=%s sslmode=verify-full " \
              "sslrootcert=%s" % (pg.port, db.user, db.name, ca.cert)
        daemon = Daemon(db, topics, config={"postgresql": {"conninfo": tls}})
        daemons.append(daemon)
        daemon.start().wait_ready(90)
        # The daemon's own session is encrypted: PostgreSQL says so.
        assert db.scalar("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a "
                         "USING (pid) WHERE s.ssl AND a.datname = %s AND "
                         "a.application_name LIKE 'ipam-syncd%%'", (db.name,)) >= 1
        producer = Producer({"bootstrap.servers": harness.bootstrap()})
        publish(producer, topics, "127.94.0")
        wait_until(lambda: applied(db, "127.94.0"), 60,
                   "events applied over a verify-full connection")
        assert daemon.stop() == 0

        # A root certificate that did not sign the server's: refused.
        wrong = tls.replace(ca.cert, other.cert)
        daemon = Daemon(db, topics, config={"postgresql": {"conninfo": wrong}})
        daemons.append(daemon)
        daemon.start()
        # localhost looked up before libpq sees it: named by its address.
        daemon.wait_log(r"postgresql: connection to server at "
                        r"\"(localhost|127\.0\.0\.1|::1)\".*"
                        r"SSL error: certificate verify failed; retrying", 60)
        status, body = daemon.http_get("/readyz")
        assert status == 503 and "PostgreSQL is not connected" in body, (status, body)
        assert not daemon.log_contains(r"ready: PostgreSQL connected")
        assert daemon.stop() == 0
    finally:
        close_all(daemons, [db], pg, work)


if __name__ == "__main__":
    harness.main(globals())
