"""The ping sweeper end to end: the real daemon with its real ICMP sockets,
real PostgreSQL and Kafka.

Every daemon here runs in a network namespace the test makes: it holds lo
and one veth link to a second namespace, the "hosts", which owns the test
addresses (198.18.1.0/24 and 2001:2:0:1::/64, both benchmarking ranges).
Neither namespace has any other route, so nothing the sweeper sends can
leave them.  PostgreSQL and Kafka stay on the host's 127.0.0.1: a relay in
this process listens on their ports inside the daemon's namespace and
forwards every connection to the host.

forge_replies (a C program built next to the tests) watches the requests
that reach the hosts' namespace and answers them, truly or falsely.
Needs root (namespaces, raw sockets), as the tests run here and in CI."""

import ctypes
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import harness
from harness import (Daemon, Database, Kafka, PrivatePostgres, Topics, wait_caught_up,
                     wait_until)
from test_property import RebuildDaemon
from test_sync import event

FORGE = os.environ.get("IPAM_FORGE_REPLIES") or os.path.join(
    os.path.dirname(harness.BINARY), "tests", "integration", "forge_replies")

# The addresses of the link between the two namespaces.
DAEMON_V4, HOSTS_V4 = "198.18.1.1", "198.18.1.2"
DAEMON_V6, HOSTS_V6 = "2001:2:0:1::1", "2001:2:0:1::2"

# Quick sweeps: one a second, each probe waiting 300 ms.
SWEEPER = {"enabled": "true", "interval_ms": "1000", "rate": "2000",
           "timeout_ms": "300", "retries": "0", "down_after": "2"}

SWEEP_LINE = re.compile(
    r"sweeper: sweep (?P<number>\d+): (?P<targets>\d+) targets \((?P<v6>\d+) IPv6, "
    r"(?P<skipped>\d+) skipped\), (?P<replies>\d+) replies, (?P<timeouts>\d+) timeouts, "
    r"(?P<probes>\d+) probes \((?P<retries>\d+) retries\), read (?P<read>[\d.]+) s, "
    r"ICMP (?P<icmp>[\d.]+) s, write (?P<write>[\d.]+) s, total (?P<total>[\d.]+) s, "
    r"(?P<changed>\d+) rows changed \((?P<up>\d+) up, (?P<down>\d+) down\); "
    r"dropped (?P<foreign>\d+) foreign, (?P<unknown_sequence>\d+) unknown sequence, "
    r"(?P<wrong_source>\d+) wrong source, (?P<bad_cookie>\d+) bad cookie, "
    r"(?P<duplicate>\d+) duplicate, (?P<late>\d+) late, (?P<malformed>\d+) malformed; "
    r"(?P<send_errors>\d+) send errors")

CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def add_host(netns, device, address):
    """Gives a device of a namespace one more address (/24 or /64), which
    answers."""
    if ":" in address:
        run("ip", "-n", netns, "-6", "addr", "add", address + "/64", "dev", device, "nodad")
    else:
        run("ip", "-n", netns, "addr", "add", address + "/24", "dev", device)


def in_netns(netns, make):
    """Runs make() in a short-lived thread that entered the namespace; what
    it makes (a socket) stays in that namespace."""
    box = {}

    def work():
        try:
            fd = os.open("/run/netns/" + netns, os.O_RDONLY)
            try:
                if LIBC.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns " + netns)
            finally:
                os.close(fd)
            box["made"] = make()
        except Exception as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["made"]


def listen_in_netns(netns, port):
    """A TCP listener on 127.0.0.1:port inside a namespace."""
    def make():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        return sock
    return in_netns(netns, make)


class Relay:
    """Forwards connections made to 127.0.0.1:port inside a namespace to
    127.0.0.1:port on the host, for each port."""

    def __init__(self, netns, ports):
        self.listeners = [listen_in_netns(netns, port) for port in ports]
        self.open = []
        self.lock = threading.Lock()
        for sock, port in zip(self.listeners, ports):
            threading.Thread(target=self._accept, args=(sock, port), daemon=True).start()

    def _accept(self, listener, port):
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(("127.0.0.1", port), timeout=10)
                outside.settimeout(None)
            except OSError:
                inside.close()
                continue
            with self.lock:
                self.open += [inside, outside]
            for src, dst in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        for sock in self.listeners:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self.lock:
            for sock in self.open:
                sock.close()


class Net:
    """The daemon's namespace and the hosts' namespace, linked by a veth
    pair, with no other route; PostgreSQL and Kafka relayed."""

    def __init__(self, ping_group_range=None, pg_port=None):
        tag = "%d%s" % (os.getpid() % 100000, uuid.uuid4().hex[:4])
        self.daemon_ns, self.hosts_ns = "swd" + tag, "swh" + tag
        run("ip", "netns", "add", self.daemon_ns)
        run("ip", "netns", "add", self.hosts_ns)
        try:
            d, h = ("ip", "-n", self.daemon_ns), ("ip", "-n", self.hosts_ns)
            run(*d, "link", "set", "lo", "up")
            run(*h, "link", "set", "lo", "up")
            run(*d, "link", "add", "d0", "type", "veth", "peer", "name", "h0",
                "netns", self.hosts_ns)
            run(*d, "addr", "add", DAEMON_V4 + "/24", "dev", "d0")
            run(*d, "-6", "addr", "add", DAEMON_V6 + "/64", "dev", "d0", "nodad")
            run(*h, "addr", "add", HOSTS_V4 + "/24", "dev", "h0")
            run(*h, "-6", "addr", "add", HOSTS_V6 + "/64", "dev", "h0", "nodad")
            run(*d, "link", "set", "d0", "up")
            run(*h, "link", "set", "h0", "up")
            if ping_group_range:
                self.sysctl(self.daemon_ns, "net.ipv4.ping_group_range", ping_group_range)
            ports = [pg_port or int(os.environ["PGPORT"]),
                     int(harness.bootstrap().rsplit(":", 1)[1])]
            self.relay = Relay(self.daemon_ns, ports)
        except Exception:
            self.close()
            raise

    @staticmethod
    def sysctl(netns, name, value):
        run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", "%s=%s" % (name, value))

    def add_host(self, address):
        """Gives the hosts' namespace one more address, which answers."""
        add_host(self.hosts_ns, "h0", address)

    def silence(self, on=True):
        """Makes the hosts' namespace ignore echo requests (or answer again)."""
        self.sysctl(self.hosts_ns, "net.ipv4.icmp_echo_ignore_all", int(on))
        self.sysctl(self.hosts_ns, "net.ipv6.icmp.echo_ignore_all", int(on))

    def close(self):
        if getattr(self, "relay", None):
            self.relay.close()
        for netns in (self.daemon_ns, self.hosts_ns):
            subprocess.run(["ip", "netns", "del", netns], stderr=subprocess.DEVNULL)


class NsDaemon(Daemon):
    """The daemon, started inside the daemon's namespace (after an optional
    command prefix such as setpriv)."""

    def __init__(self, net, db, topics, config=None, prefix=()):
        super().__init__(db, topics, config=config)
        self.net = net
        self.prefix = list(prefix)

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.net.daemon_ns] + self.prefix +
            [harness.BINARY, "--config", self.config_path],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        return self

    def sweeps(self):
        """Every sweep line logged so far, as dicts of numbers."""
        return [{k: float(v) if "." in v else int(v) for k, v in m.groupdict().items()}
                for m in SWEEP_LINE.finditer(self.log())]

    def wait_sweeps(self, count, where=lambda s: True, timeout=60):
        """Waits until count more sweeps (matching where) have been logged."""
        start = len([s for s in self.sweeps() if where(s)])
        wait_until(lambda: len([s for s in self.sweeps() if where(s)]) >= start + count
                   or self._died(), timeout, "%d more sweeps" % count)
        if self._died():
            self._fail_died("sweep")
        return [s for s in self.sweeps() if where(s)][start:]

    def reload(self, sweeper):
        """Rewrites the [sweeper] section and sends SIGHUP."""
        sections = dict(self.sections)
        sections["sweeper"] = dict(sections["sweeper"], **sweeper)
        self.write_config(sections)
        count = self.log().count("reload: configuration")
        self.signal(signal.SIGHUP)
        wait_until(lambda: self.log().count("reload: configuration") > count, 30, "reload")


class Forger:
    """forge_replies, watching an interface of a namespace."""

    def __init__(self, netns, interface, *args, seconds=120):
        self.report = None
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, FORGE, "-i", interface, "-t", str(seconds)] +
            list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if "watching" not in line:
            raise AssertionError("forge_replies did not start: %s%s" %
                                 (line, self.proc.stderr.read()))

    def finish(self):
        """Stops it (once); returns its summary."""
        if self.report is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            out, err = self.proc.communicate(timeout=30)
            lines = out.strip().splitlines()
            if not lines:
                raise AssertionError("forge_replies said nothing: %s" % err)
            self.report = json.loads(lines[-1])
        return self.report


class SweepRun:
    """One daemon with the sweeper on, in a namespace, on a fresh database
    and fresh topics."""

    def __init__(self, sweeper=None, prefix=(), ping_group_range=None, start=True,
                 db=None):
        self.net = Net(ping_group_range=ping_group_range, pg_port=db.port if db else None)
        self.db = db or Database()
        self.topics = Topics()
        self.kafka = Kafka()
        self.sent = 0
        self.forgers = []
        self.daemon = NsDaemon(self.net, self.db, self.topics, prefix=prefix,
                               config={"sweeper": dict(SWEEPER, **(sweeper or {}))})
        if start:
            self.daemon.start().wait_ready()

    def forger(self, where, interface, *args):
        """Starts forge_replies in the "hosts" or "daemon" namespace; it is
        stopped at close() if the test has not done so."""
        netns = self.net.hosts_ns if where == "hosts" else self.net.daemon_ns
        self.forgers.append(Forger(netns, interface, *args))
        return self.forgers[-1]

    def send(self, topic, key, value):
        self.kafka.send(topic, key, value)
        self.sent += 1

    def subnet(self, sid, cidr, pools, version=1, ping=None, vrf=None):
        data = {"name": "net-" + sid, "cidr": cidr, "static_ip_pools": pools}
        if ping is not None:
            data["ping"] = ping
        if vrf is not None:
            data["vrf"] = vrf
        self.send(self.topics.subnets, sid, event("subnet.upserted", sid, data, version))

    def server(self, sid, ip, version, hostname=None):
        data = {"hostname": hostname or "host-" + sid, "ip_address": ip,
                "nic_mac": "aa:bb:cc:00:00:%02x" % (int(sid) % 256),
                "device_type": "R640", "manufacture": "Dell"}
        self.send(self.topics.servers, sid, event("server.upserted", sid, data, version))

    def settle(self, timeout=120):
        self.kafka.flush()
        wait_caught_up(self.db, self.daemon.group, self.sent, timeout)

    def state(self, ip, vrf=""):
        """The sweeper's columns of one row, or None: those of public.ipam,
        and missed_sweeps as the sweeper derives it for its next sweep."""
        rows = self.db.query(
            "SELECT i.active, r.missed_sweeps, i.last_seen_at, i.last_checked_at, i.rtt_us "
            "FROM public.ipam i JOIN ipamd.sweep_rows() r "
            "ON r.vrf = i.vrf AND r.ip_address = i.ip_address "
            "WHERE i.vrf = %s AND i.ip_address = %s", (vrf, ip))
        if not rows:
            return None
        return dict(zip(("active", "missed", "seen", "checked", "rtt"), rows[0]))

    def active(self, ips):
        return self.db.scalar("SELECT count(*) FROM public.ipam "
                              "WHERE active AND ip_address = ANY(%s::inet[])", (list(ips),))

    def loopback_pool(self, sid, prefix, count):
        """A subnet prefix.0/24 whose pool is prefix.1 to prefix.count, all
        answering on lo, once every address is active; returns them."""
        ips = ["%s.%d" % (prefix, i) for i in range(1, count + 1)]
        self.subnet(sid, prefix + ".0/24", ["%s-%s" % (ips[0], ips[-1])])
        self.settle()
        self.wait_active(ips)
        return ips

    def wait_active(self, ips, timeout=60):
        wait_until(lambda: self.active(ips) == len(ips), timeout,
                   "%s to be active" % ", ".join(ips))

    def scrape_metrics(self):
        """/metrics of the daemon, read from inside its namespace."""
        port = self.daemon.http_port()
        fetch = subprocess.run(
            ["ip", "netns", "exec", self.net.daemon_ns, "/usr/bin/python3", "-c",
             "import urllib.request; print(urllib.request.urlopen("
             "'http://127.0.0.1:%d/metrics', timeout=10).read().decode())" % port],
            capture_output=True, text=True, timeout=30)
        assert fetch.returncode == 0, fetch.stderr
        return fetch.stdout

    def close(self):
        for forger in self.forgers:
            try:
                forger.finish()
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                forger.proc.kill()
        try:
            status = self.daemon.stop()
            self.daemon.close()
            assert status == 0, "daemon exited %s" % status
        finally:
            self.db.close()
            self.net.close()


def test_loopback_answers_ipv4_and_ipv6():
    """127.77.0.1-20 and ::1 answer: active, with round-trip time and times;
    raw sockets; sweeps one interval apart."""
    run = SweepRun()
    try:
        run.subnet("lo4", "127.77.0.0/24", ["127.77.0.1-127.77.0.20"])
        run.subnet("lo6", "::1/128", ["::1"])
        run.settle()
        ips = ["127.77.0.%d" % i for i in range(1, 21)] + ["::1"]
        run.wait_active(ips)
        for ip in ips:
            row = run.state(ip)
            assert row["missed"] == 0 and row["rtt"] is not None and row["rtt"] >= 0, row
            assert row["seen"] >= row["checked"], row
        assert run.daemon.log_contains(r"sweeper: raw ICMP sockets \(CAP_NET_RAW\)")
        assert not run.daemon.log_contains(r"session settings refused")
        full = run.daemon.wait_sweeps(1, lambda s: s["targets"] == 21)[0]
        assert full["v6"] == 1 and full["replies"] == 21 and full["timeouts"] == 0, full
        assert full["probes"] == 21 and full["send_errors"] == 0, full

        # A sweep starts interval_ms after the previous one started.
        checked = []
        wait_until(lambda: checked.append(run.state("127.77.0.5")["checked"]) or
                   len(set(checked)) >= 4, 30, "three more sweeps")
        times = sorted(set(checked))
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert all(0.8 <= g <= 2.5 for g in gaps), gaps
    finally:
        run.close()


def test_network_and_broadcast_addresses_are_never_probed():
    """Servers on the network and broadcast addresses of an IPv4 /24 have
    rows (dhcp) but are never probed: an echo request to a broadcast
    address reaches every host of the network.  The /31's two addresses
    and the server between are."""
    run = SweepRun()
    try:
        run.subnet("b", "127.78.0.0/24", [])
        run.subnet("p", "127.78.1.0/31", [])
        for sid, ip in (("1", "127.78.0.0"), ("2", "127.78.0.255"),
                        ("3", "127.78.0.7"), ("4", "127.78.1.0"),
                        ("5", "127.78.1.1")):
            run.server(sid, ip, 1)
        run.settle()
        probed = ["127.78.0.7", "127.78.1.0", "127.78.1.1"]
        run.wait_active(probed)
        sweeps = run.daemon.wait_sweeps(2, lambda s: s["targets"] == 3)
        assert all(s["replies"] == 3 for s in sweeps), sweeps
        for ip in ("127.78.0.0", "127.78.0.255"):
            row = run.state(ip)
            assert row["active"] is False and row["checked"] is None, (ip, row)

        # 127.78.1.255 of a /22, probed and answering; then a /24 takes
        # it: it is that one's broadcast address, and its state goes.
        run.subnet("w", "127.78.0.0/22", [], version=1)
        run.server("6", "127.78.1.255", 1)
        run.settle()
        run.wait_active(["127.78.1.255"])
        run.subnet("x", "127.78.1.0/24", [], version=1)
        run.settle()
        wait_until(lambda: run.state("127.78.1.255")["checked"] is None, 30,
                   "the broadcast address's state gone")
        run.daemon.wait_sweeps(2)
        row = run.state("127.78.1.255")
        assert row["active"] is False and row["checked"] is None, row

        # The /22's broadcast address as a host of a /31 inside it (a
        # point-to-point link): probed as the /31's, and its state kept;
        # with nothing changing, the sweeps write no row.
        run.subnet("q", "127.78.3.254/31", [], version=1)
        run.server("7", "127.78.3.255", 1)
        run.settle()
        run.wait_active(["127.78.3.255"])
        sweeps = run.daemon.wait_sweeps(3, lambda s: s["targets"] == 4)
        assert all(s["changed"] == 0 for s in sweeps[1:]), sweeps
        assert run.state("127.78.3.255")["active"] is True
    finally:
        run.close()


def test_replies_the_kernel_drops_are_counted_and_said():
    """An ICMP receive buffer far too small for a burst of replies (4 KiB
    asked for, probes sent as fast as the pace allows): the kernel drops
    replies, so their addresses look silent.  The sweep says how many in
    a warning naming the buffer, and ipam_syncd_sweep_kernel_drops_total
    counts them; with the default buffer nothing is dropped."""
    run = SweepRun(sweeper={"receive_buffer": "4096", "rate": "1000000"})
    try:
        run.subnet("burst", "127.78.0.0/22", ["127.78.0.1-127.78.3.254"])
        run.settle()
        run.daemon.wait_log(r"sweeper: sweep \d+: the kernel dropped "
                            r"[1-9]\d* replies, its ICMP socket's "
                            r"receive buffer full \(\d+ bytes\)", timeout=60)
        assert run.daemon.log_contains(r"sweeper: receive buffer \d+ bytes a "
                                       r"socket \(asked for 4096\)")
        text = run.scrape_metrics()
        drops = re.search(r"^ipam_syncd_sweep_kernel_drops_total (\d+)$",
                          text, re.M)
        assert drops and int(drops.group(1)) > 0, text
        print("dropped: %s" % drops.group(1), flush=True)
    finally:
        run.close()
    run = SweepRun(sweeper={"rate": "1000000"})
    try:
        run.subnet("burst", "127.78.0.0/22", ["127.78.0.1-127.78.3.254"])
        run.settle()
        run.daemon.wait_sweeps(2, lambda s: s["targets"] == 1022)
        assert not run.daemon.log_contains(r"the kernel dropped"), \
            [l for l in run.daemon.log().splitlines() if "dropped" in l][:3]
    finally:
        run.close()


def test_sweeps_without_news_write_no_address_row():
    """Once every address answers, a sweep changes no state: it writes no
    address row (their row versions stay the same) and no state row except
    for a round trip time that moved by a meaningful amount, while
    last_checked_at and last_seen_at of every row in public.ipam still move
    with each sweep."""
    run = SweepRun()
    try:
        ips = run.loopback_pool("lo", "127.76.0", 50)
        run.daemon.wait_sweeps(1, lambda s: s["targets"] == 50 and s["changed"] == 0)

        def rows():
            return {r[0]: r[1:] for r in run.db.query(
                "SELECT host(a.ip_address), a.xmin::text, a.ctid::text, st.xmin::text, "
                "st.rtt_us, i.last_checked_at, i.last_seen_at "
                "FROM ipam_state.address a JOIN public.ipam i "
                "ON i.vrf = a.vrf AND i.ip_address = a.ip_address "
                "JOIN ipamd.sweep_address st ON st.vrf = a.vrf "
                "AND st.ip_address = a.ip_address WHERE a.subnet_id = 'lo'")}
        before = rows()
        assert sorted(before) == sorted(ips), before
        sweeps = run.daemon.wait_sweeps(3, lambda s: s["targets"] == 50)
        after = rows()
        assert all(s["replies"] == 50 and s["up"] == 0 and s["down"] == 0 for s in sweeps), \
            sweeps
        for ip in ips:
            (xmin, ctid, state_xmin, rtt, checked, seen) = before[ip]
            (xmin2, ctid2, state_xmin2, rtt2, checked2, seen2) = after[ip]
            # Not one new version of the address row.
            assert (xmin2, ctid2) == (xmin, ctid), (ip, before[ip], after[ip])
            # A state row is written again only for a new round trip time.
            assert state_xmin2 == state_xmin or rtt2 != rtt, (ip, before[ip], after[ip])
            assert checked2 > checked and seen2 > seen, (ip, before[ip], after[ip])
        # The sweep lines count only state rows: those of new round trip times.
        rewritten = sum(1 for ip in ips if after[ip][2] != before[ip][2])
        assert sum(s["changed"] for s in sweeps) >= rewritten, (sweeps, rewritten)
    finally:
        run.close()


def test_rebuild_keeps_the_sweeper_state():
    """--rebuild swaps in rows derived again, and the rows that survive it
    keep what the sweeper knew, as they always did: active, and no new
    first check (the first sweep after it turns no row up; it may write
    a round trip time that moved, on a loaded machine).  The view
    public.ipam the rebuild defines again shows the sweeper's columns from
    the sweeper's tables once the sweeper has claimed a round."""
    run = SweepRun()
    try:
        ips = run.loopback_pool("lo", "127.75.0", 10)
        before = {ip: run.state(ip) for ip in ips}
        assert run.daemon.stop() == 0
        rebuild = RebuildDaemon(run.db, run.topics, extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: swapped in", timeout=60)
        assert rebuild.stop() == 0
        rebuild.close()

        run.daemon.start().wait_ready()
        sweep = run.daemon.wait_sweeps(1, lambda s: s["targets"] == 10)[0]
        assert sweep["replies"] == 10 and sweep["up"] == 0, sweep
        for ip in ips:
            row = run.state(ip)
            assert row["active"] is True and row["missed"] == 0, (ip, row)
            assert row["checked"] > before[ip]["checked"], (ip, before[ip], row)
    finally:
        run.close()


def test_schema_10_carries_what_the_sweeps_wrote():
    """A database at schema 9, whose address rows hold the sweeper's
    columns, migrated to 10: public.ipam shows the same values, now from
    the sweeper's tables, and missed_sweeps goes on from where it was."""
    db, topics = Database(), Topics()
    daemon = None
    try:
        db.migrate_to(9)
        t = "2026-11-28 10:00:00+00"
        db.query(
            "INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type, active, "
            "missed_sweeps, last_checked_at, last_seen_at, rtt_us) VALUES "
            "('10.9.0.1', 's', 'available', 'static', true, 0, %(t)s, "
            "%(t)s::timestamptz + interval '120 microseconds', 120), "
            "('10.9.0.2', 's', 'available', 'static', false, 5, %(t)s, "
            "%(t)s::timestamptz - interval '1 hour', 300), "
            "('10.9.0.3', 's', 'available', 'static', false, 2, %(t)s, NULL, NULL), "
            "('10.9.0.4', 's', 'available', 'static', false, 0, NULL, NULL, NULL)", {"t": t})
        want = db.query("SELECT host(ip_address), active, missed_sweeps, last_seen_at, "
                        "last_checked_at, rtt_us FROM ipam_state.address ORDER BY 1")
        daemon = Daemon(db, topics).start()
        daemon.wait_ready()
        assert db.scalar("SELECT max(version) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        got = db.query("SELECT host(i.ip_address), i.active, r.missed_sweeps, i.last_seen_at, "
                       "i.last_checked_at, i.rtt_us FROM public.ipam i JOIN ipamd.sweep_rows() r "
                       "ON r.vrf = i.vrf AND r.ip_address = i.ip_address ORDER BY 1")
        assert got == want, (got, want)
        assert db.scalar("SELECT count(*) FROM ipamd.sweep_address") == 3
        # Each state row's subnet has its row of passes (schema 11), none counted yet.
        assert db.query("SELECT subnet_id, passes FROM ipamd.sweep_subnet") == [("s", 0)]
    finally:
        if daemon:
            assert daemon.stop() == 0
            daemon.close()
        db.close()


def test_ping_sockets_without_cap_net_raw():
    """Without CAP_NET_RAW, and with root's group in ping_group_range, the
    daemon uses ping sockets; loopback still answers."""
    run = SweepRun(prefix=["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"],
                   ping_group_range="0 0")
    try:
        assert run.daemon.log_contains(r"sweeper: ping sockets \(net\.ipv4\.ping_group_range\)")
        run.subnet("lo4", "127.78.0.0/24", ["127.78.0.1-127.78.0.5"])
        run.subnet("lo6", "::1/128", ["::1"])
        run.settle()
        run.wait_active(["127.78.0.%d" % i for i in range(1, 6)] + ["::1"])
        sweep = run.daemon.wait_sweeps(1, lambda s: s["targets"] == 6)[0]
        assert sweep["replies"] == 6 and sweep["foreign"] == 0, sweep
    finally:
        run.close()


def test_refuses_to_start_without_any_icmp_socket():
    """Neither CAP_NET_RAW nor a ping_group_range that holds its group: the
    daemon says what to do and exits 77 (EX_NOPERM, which the unit does not
    restart); with the sweeper off it starts."""
    net = Net()
    db = Database()
    topics = Topics()
    try:
        prefix = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]
        daemon = NsDaemon(net, db, topics, prefix=prefix,
                          config={"sweeper": dict(SWEEPER)}).start()
        assert daemon.proc.wait(30) == 77
        assert daemon.log_contains(r"sweeper: cannot open an ICMP socket \(raw socket: "
                                   r"Operation not permitted; ping socket: Permission denied\): "
                                   r"give the daemon CAP_NET_RAW"), daemon.log()
        daemon.close()
        off = NsDaemon(net, db, topics, prefix=prefix,
                       config={"sweeper": {"enabled": "false"}}).start()
        off.wait_ready()
        assert off.log_contains(r"sweeper: off \(\[sweeper\] enabled = false\)")
        assert off.stop() == 0
        off.close()
    finally:
        db.close()
        net.close()


def test_down_after_missed_sweeps_then_up_again():
    """An IPv4 and an IPv6 host answer, fall silent, and answer again:
    active turns false only after down_after missed sweeps, missed_sweeps
    counts them, last_seen_at stays, and a reply brings it back."""
    run = SweepRun({"down_after": "3", "timeout_ms": "200"})
    ips = ["198.18.1.20", "2001:2:0:1::20"]
    try:
        for ip in ips:
            run.net.add_host(ip)
        run.subnet("n4", "198.18.1.0/24", ["198.18.1.20"])
        run.subnet("n6", "2001:2:0:1::/64", ["2001:2:0:1::20"])
        run.settle()
        run.wait_active(ips)

        run.net.silence()
        observed = {ip: [] for ip in ips}
        last_seen = {}

        def watch():
            for ip in ips:
                row = run.state(ip)
                pair = (row["active"], row["missed"])
                if not observed[ip] or observed[ip][-1] != pair:
                    observed[ip].append(pair)
                if row["missed"] == 1:
                    last_seen[ip] = row["seen"]
            return all(observed[ip][-1] == (False, 3) for ip in ips)
        wait_until(watch, 60, "both down", interval=0.02)
        for ip in ips:
            # Hysteresis: still active after one and two missed sweeps.
            assert observed[ip][-3:] == [(True, 1), (True, 2), (False, 3)], observed
            row = run.state(ip)
            assert row["seen"] == last_seen[ip] and row["checked"] > row["seen"], row
        seen_before = {ip: run.state(ip)["seen"] for ip in ips}
        # The sweep's line is logged once its pass is counted, after the
        # rows read above were written.
        wait_until(lambda: any(s["down"] == 2 for s in run.daemon.sweeps()), 10,
                   "the sweep that turned both down")

        # Still silent: missed_sweeps goes on counting, active stays false.
        wait_until(lambda: all(run.state(ip)["missed"] >= 4 for ip in ips), 30, "a 4th miss")
        assert run.active(ips) == 0

        run.net.silence(False)
        run.wait_active(ips)
        for ip in ips:
            row = run.state(ip)
            assert row["missed"] == 0 and row["seen"] > seen_before[ip], row
        wait_until(lambda: any(s["up"] == 2 for s in run.daemon.sweeps()), 10,
                   "the sweep that turned both up")
    finally:
        run.close()


def test_sweeps_go_on_when_the_database_clock_steps_back():
    """PostgreSQL's clock steps back an hour after the sweeps have begun.
    Played here from the other side: every claim is made as if the
    member's last round were an hour later than it was (ipamd.sweep_claim
    wrapped), and the leases were claimed an hour ahead of now.  The
    sweeps do not wait an hour for the clock to catch up: each round is
    claimed and swept, the host that falls silent goes down at once, the
    log says what happened and the metric counts it."""
    run = SweepRun({"down_after": "1", "timeout_ms": "200"})
    ip = "198.18.1.20"
    try:
        run.net.add_host(ip)
        run.subnet("n4", "198.18.1.0/24", [ip])
        run.settle()
        run.wait_active([ip])
        run.db.query(
            "ALTER FUNCTION ipamd.sweep_claim(integer, text, bigint, bigint, bigint) "
            "RENAME TO sweep_claim_before_the_step;"
            "CREATE FUNCTION ipamd.sweep_claim(me integer, vrf_list text, "
            "round_ms bigint, swept_until_ms bigint, swept_from_ms bigint) "
            "RETURNS TABLE (fresh boolean, round_end_ms bigint, next_in_ms bigint, "
            "members integer, subnets integer, unswept integer, clock_back_ms bigint) "
            "LANGUAGE sql AS $$ SELECT * FROM ipamd.sweep_claim_before_the_step("
            "me, vrf_list, round_ms, swept_until_ms + 3600000, "
            "swept_from_ms + 3600000) $$;"
            "UPDATE ipamd.sweep_lease SET claimed_at = claimed_at + interval '1 hour', "
            "expires_at = expires_at + interval '1 hour'")
        run.daemon.wait_log(r"sweeper: PostgreSQL's clock is \d+ ms before the start of "
                            r"the round this instance swept last", 30)
        run.net.silence()
        wait_until(lambda: run.active([ip]) == 0, 30, "the silent host to go down")
        steps = re.search(r"^ipam_syncd_sweep_clock_steps_back_total (\d+)$",
                          run.scrape_metrics(), re.M)
        assert steps and int(steps.group(1)) >= 1, steps
    finally:
        run.close()


def test_retries_recover_lost_first_probes():
    """The hosts drop every other request (forge_replies answers only each
    second one): with one retry both families are active every sweep, and
    the retries are counted; a host that answers after the deadline stays
    down, its replies counted as late."""
    run = SweepRun({"retries": "1", "timeout_ms": "200", "down_after": "1"})
    ips = ["198.18.1.30", "2001:2:0:1::30"]
    slow = "198.18.1.31"
    try:
        for ip in ips + [slow]:
            run.net.add_host(ip)
        run.net.silence()
        run.forger("hosts", "h0", "-a", ips[0], "-a", ips[1], "-n", "2")
        # Answered 350 ms after each request: past the first probe's
        # deadline (200 ms), before the sweep ends (the retry's, 500 ms).
        run.forger("hosts", "h0", "-a", slow, "-w", "350")
        run.subnet("n4", "198.18.1.0/24", ["198.18.1.30-198.18.1.31"])
        run.subnet("n6", "2001:2:0:1::/64", [ips[1]])
        run.settle()
        run.wait_active(ips)
        sweeps = run.daemon.wait_sweeps(3, lambda s: s["targets"] == 3)
        for sweep in sweeps:
            # Every probe is sent twice: the first is dropped, the second answered.
            assert sweep["replies"] == 2 and sweep["retries"] == 3, sweep
            assert sweep["probes"] == 6, sweep
        assert sum(s["late"] for s in sweeps) >= 2, sweeps
        assert run.state(slow)["active"] is False and run.state(slow)["seen"] is None
        assert run.active(ips) == 2
        assert all(run.state(ip)["missed"] == 0 for ip in ips)
    finally:
        run.close()


def test_replies_in_time_count_however_late_the_loop_reads_them():
    """The loop the sweeper shares with the apply and the API can be busy
    longer than a probe's wait.  A reply that came in time is in time
    whenever it is read: the kernel's arrival time judges it, and a turn
    reads what waits before it expires anything.  The daemon is stopped
    (SIGSTOP) for 600 ms after every 50 ms it runs, the host answers
    100 ms after each request, the wait is 300 ms with no retry: every
    reply arrives in time while the daemon is stopped, and is read past
    its deadline."""
    run = SweepRun({"retries": "0", "timeout_ms": "300", "down_after": "1"})
    ip = "198.18.1.40"
    stalling = threading.Event()
    try:
        run.net.add_host(ip)
        run.net.silence()
        run.forger("hosts", "h0", "-a", ip, "-w", "100")
        run.subnet("n4", "198.18.1.0/24", [ip])
        run.settle()
        run.wait_active([ip])
        before = len(run.daemon.sweeps())

        def stall():
            while stalling.is_set():
                run.daemon.proc.send_signal(signal.SIGSTOP)
                time.sleep(0.6)
                run.daemon.proc.send_signal(signal.SIGCONT)
                time.sleep(0.05)

        stalling.set()
        stalled = threading.Thread(target=stall)
        stalled.start()
        try:
            wait_until(lambda: len(run.daemon.sweeps()) >= before + 4, 120,
                       "four sweeps while the daemon stalls")
        finally:
            stalling.clear()
            stalled.join()
            run.daemon.proc.send_signal(signal.SIGCONT)
        sweeps = run.daemon.sweeps()[before:]
        assert all(s["replies"] == 1 and s["late"] == 0 and s["timeouts"] == 0
                   for s in sweeps), sweeps
        assert run.state(ip)["active"] is True
        # Its round trip is the host's 100 ms, not the stall's.
        assert 100000 <= run.state(ip)["rtt"] < 300000, run.state(ip)
    finally:
        run.close()


def test_ping_false_subnet_is_never_probed():
    """Rows whose home subnet says ping: false get no echo request, on the
    veth (seen by a capture in the hosts' namespace) or on lo, and neither
    do rows of a routing domain the sweeper is not given; a subnet that
    turns ping back on, and a domain added by a reload, are probed from
    the next sweep."""
    run = SweepRun()
    probed = ["198.18.1.40", "198.18.1.41", "2001:2:0:1::40", "127.89.0.1"]
    quiet = ["198.18.1.70", "198.18.1.71", "2001:2:0:1::170", "127.88.0.1", "127.88.0.2"]
    try:
        for ip in probed[:3] + quiet[:3]:
            run.net.add_host(ip)
        veth = run.forger("hosts", "h0")
        loop = run.forger("daemon", "lo")
        run.subnet("p4", "198.18.1.0/24", ["198.18.1.40-198.18.1.41"])
        run.subnet("q4", "198.18.1.64/26", ["198.18.1.70-198.18.1.71"], ping=False)
        run.subnet("p6", "2001:2:0:1::/64", ["2001:2:0:1::40"])
        run.subnet("q6", "2001:2:0:1::100/120", ["2001:2:0:1::170"], ping=False)
        run.subnet("pl", "127.89.0.0/24", ["127.89.0.1"])
        run.subnet("ql", "127.88.0.0/24", ["127.88.0.1-127.88.0.2"], ping=False)
        run.subnet("blue", "127.87.0.0/24", ["127.87.0.1"], vrf="blue")
        run.settle()
        run.wait_active(probed)
        sweeps = run.daemon.wait_sweeps(3, lambda s: s["targets"] == len(probed))
        assert all(s["replies"] == len(probed) for s in sweeps), sweeps
        seen_veth, seen_loop = set(veth.finish()["to"]), set(loop.finish()["to"])
        assert seen_veth == set(probed[:3]), seen_veth
        assert seen_loop == {"127.89.0.1"}, seen_loop
        never = {"active": False, "missed": 0, "seen": None, "checked": None, "rtt": None}
        for ip in quiet:
            assert run.state(ip) == never, (ip, run.state(ip))
        assert run.state("127.87.0.1", vrf="blue") == never

        run.subnet("q4", "198.18.1.64/26", ["198.18.1.70-198.18.1.71"], version=2, ping=True)
        run.settle()
        run.wait_active(probed + quiet[:2])
        assert run.state(quiet[2])["checked"] is None

        # A domain named wrong (a comment written after the list is part
        # of the name) is warned of; no subnet's domain is.
        assert not run.daemon.log_contains(r"sweeper\.vrfs names")
        run.daemon.reload({"vrfs": "-, blue   # the lab"})
        run.daemon.wait_log(r'WARNING: +sweeper\.vrfs names the routing domain '
                            r'"blue   # the lab", which holds no subnet', 30)
        assert run.state("127.87.0.1", vrf="blue") == never
        run.daemon.reload({"vrfs": "-, blue"})
        wait_until(lambda: run.state("127.87.0.1", vrf="blue")["active"], 30,
                   "the blue row to be probed")
        assert run.daemon.log().count("sweeper.vrfs names") == 1
    finally:
        run.close()


def test_forged_replies_never_make_an_address_active():
    """The probed hosts stay silent while forge_replies answers each request
    four times, each reply wrong in one way (identifier, sequence, cookie,
    source): none of those addresses becomes active.  The kernel's filter
    drops the wrong identifiers; the sweeper counts the other three kinds.
    Its true replies for one control address per family (sent twice) do
    make those active: the forgeries reached the socket."""
    run = SweepRun({"retries": "1", "down_after": "1"})
    forged = ["198.18.1.50", "198.18.1.51", "2001:2:0:1::50"]
    control = ["198.18.1.52", "2001:2:0:1::52"]
    try:
        for ip in forged + control:
            run.net.add_host(ip)
        run.net.silence()
        forger = run.forger("hosts", "h0", "-f", "-s", "198.18.1.99",
                        "-S", "2001:2:0:1::99", "-a", control[0], "-a", control[1], "-d")
        run.subnet("n4", "198.18.1.0/24", ["198.18.1.50-198.18.1.52"])
        run.subnet("n6", "2001:2:0:1::/64", [forged[2], control[1]])
        run.settle()
        never_active = []

        def watch():
            never_active.append(run.active(forged))
            return run.active(control) == 2
        wait_until(watch, 60, "the control addresses")
        sweeps = run.daemon.wait_sweeps(3, lambda s: s["targets"] == 5)
        never_active.append(run.active(forged))
        assert max(never_active) == 0, never_active
        for ip in forged:
            row = run.state(ip)
            assert row["active"] is False and row["seen"] is None and row["missed"] >= 3, row
        for sweep in sweeps:
            assert sweep["replies"] == 2 and sweep["timeouts"] == 3, sweep
            # Three silent addresses, two probes each, one forgery of each
            # kind per probe; one duplicate per control address.
            for kind in ("unknown_sequence", "wrong_source", "bad_cookie"):
                assert sweep[kind] >= 3, (kind, sweep)
            assert sweep["duplicate"] >= 2 and sweep["foreign"] == 0, sweep
        report = forger.finish()
        assert report["forged"] >= 4 * 3 * 3 and report["answered"] >= 2 * 3, report
    finally:
        run.close()


def test_unreachable_addresses_count_as_missed():
    """Addresses with no route (none exists out of the namespace): the
    kernel refuses the requests, the sweep counts them as send errors and
    missed sweeps, says so once, and goes on."""
    run = SweepRun({"down_after": "1"})
    ips = ["203.0.113.1", "203.0.113.2"]
    try:
        run.subnet("u", "203.0.113.0/29", ["203.0.113.1-203.0.113.2"])
        run.subnet("lo", "127.79.0.0/24", ["127.79.0.1"])
        run.settle()
        sweeps = run.daemon.wait_sweeps(2, lambda s: s["targets"] == 3)
        for sweep in sweeps:
            assert sweep["send_errors"] == 2 and sweep["timeouts"] == 2, sweep
            assert sweep["replies"] == 1, sweep
        assert run.daemon.log_contains(r"sweeper: sending to 203\.0\.113\.[12]: "
                                       r"Network is unreachable")
        for ip in ips:
            row = run.state(ip)
            assert row["active"] is False and row["missed"] >= 2, row
            assert row["checked"] is not None and row["seen"] is None, row
        assert run.state("127.79.0.1")["active"] is True
    finally:
        run.close()


def nowhere(net, address):
    """Makes an address of the daemon's link resolve to a MAC nobody has:
    what is sent there is dropped without a word, as by a host powered
    off."""
    run("ip", "-n", net.daemon_ns, "neigh", "add", address, "lladdr",
        "02:00:00:00:00:99", "dev", "d0", "nud", "permanent")


def pg_hosts_run(hosts, check, postgresql=None, setup=None):
    """A daemon in a namespace whose conninfo names PostgreSQL by `hosts`
    (127.0.0.1 among them, relayed); setup(net) first, then check(daemon,
    net) once it runs, and a clean stop."""
    net = Net()
    db, topics = Database(), Topics()
    daemon = None
    try:
        if setup:
            setup(net)
        conninfo = db.conninfo().replace("host=%s" % db.host, "host=" + hosts)
        assert hosts in conninfo, conninfo
        daemon = NsDaemon(net, db, topics, config={"postgresql": dict(
            {"conninfo": conninfo}, **(postgresql or {}))})
        daemon.start()
        check(daemon, net)
        assert daemon.stop() == 0
    finally:
        if daemon:
            daemon.close()
        db.close()
        net.close()


def test_postgresql_hosts_after_one_that_drops_packets_are_reached():
    """Not the sweeper's, but its namespaces: a conninfo with two hosts
    (failover, target_session_attrs) whose first drops every packet (a
    powered-off host).  libpq waits on it until the connect timeout ends
    the attempt; the next attempt starts at the next host, so the daemon
    connects and is ready instead of trying the first host for ever."""
    def check(daemon, net):
        daemon.wait_ready(timeout=90)
        assert daemon.log_contains(r"postgresql: connection attempt to "
                                   r"198\.18\.1\.99 timed out")
    pg_hosts_run("198.18.1.99,127.0.0.1", check,
                 postgresql={"connect_timeout_ms": "1500"},
                 setup=lambda net: nowhere(net, "198.18.1.99"))


def test_postgresql_host_names_are_looked_up_off_the_loop():
    """Not the sweeper's, but its namespaces: the daemon's namespace has
    a resolver that never answers (its nameserver's packets are dropped;
    5 s a lookup), and the conninfo names PostgreSQL by a name first,
    then by address.  The names are looked up on a thread: meanwhile the
    loop answers /healthz at once; the name that does not resolve is left
    out, said, and the daemon connects to the address."""
    etc = []

    def setup(net):
        etc.append("/etc/netns/" + net.daemon_ns)
        os.makedirs(etc[0])
        with open(etc[0] + "/resolv.conf", "w") as f:
            f.write("nameserver 198.18.1.53\noptions timeout:5 attempts:1\n")
        nowhere(net, "198.18.1.53")

    def check(daemon, net):
        probe = subprocess.run(
            ["ip", "netns", "exec", net.daemon_ns, "/usr/bin/python3", "-c",
             "import time, urllib.request\n"
             "late = []\n"
             "end = time.monotonic() + 8\n"
             "while time.monotonic() < end:\n"
             "    began = time.monotonic()\n"
             "    try:\n"
             "        urllib.request.urlopen('http://127.0.0.1:%d/healthz', "
             "timeout=4).read()\n"
             "    except Exception as error:\n"
             "        late.append(repr(error))\n"
             "    if time.monotonic() - began > 3:\n"
             "        late.append('%%.1f s' %% (time.monotonic() - began))\n"
             "    time.sleep(0.1)\n"
             "print(late)\n" % daemon.http_port()],
            capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip() == "[]", probe.stdout
        daemon.wait_ready(timeout=60)
        assert daemon.log_contains(r"postgresql: could not translate host "
                                   r"name \"pg\.ipam-syncd-test\.example\" to "
                                   r"address: .*; trying the other hosts")
    try:
        pg_hosts_run("pg.ipam-syncd-test.example,127.0.0.1", check, setup=setup)
    finally:
        if etc:
            subprocess.run(["rm", "-rf", etc[0]])


def test_off_sends_nothing_and_reload_turns_it_on_and_off():
    """With enabled = false no socket is opened and nothing is sent (a
    capture on lo sees no request); SIGHUP turns the sweeper on, then off
    again, and from then on nothing is sent."""
    run = SweepRun({"enabled": "false"})
    ips = ["127.90.0.1", "127.90.0.2"]
    try:
        assert run.daemon.log_contains(r"sweeper: off")
        capture = run.forger("daemon", "lo")
        run.subnet("lo", "127.90.0.0/24", ["127.90.0.1-127.90.0.2"])
        run.settle()
        time.sleep(2.5)
        assert capture.finish()["requests"] == 0
        assert run.active(ips) == 0

        # receive_buffer takes effect after a restart, as the reload says,
        # even when the reload turns the sweeper on.
        run.daemon.reload({"enabled": "true", "receive_buffer": "65536"})
        assert run.daemon.log_contains(r"sweeper: turned on by reload")
        assert run.daemon.log_contains(
            r"reload: sweeper\.receive_buffer changed; it takes effect after a restart")
        run.daemon.wait_log(r"sweeper: receive buffer \d+ bytes a socket")
        assert run.daemon.log_contains(r"\(asked for 4194304\)")
        assert not run.daemon.log_contains(r"\(asked for 65536\)")
        run.wait_active(ips)

        run.daemon.reload({"enabled": "false"})
        assert run.daemon.log_contains(r"sweeper: turned off by reload")
        capture = run.forger("daemon", "lo")
        time.sleep(2.5)
        assert capture.finish()["requests"] == 0
    finally:
        run.close()


def test_a_read_of_the_targets_meeting_held_leases_is_tried_again():
    """The read of a round's targets fails twice with lock_not_available
    (a trigger stands in for another member's claim holding the leases
    past the lock timeout): it is read again, and the round is swept, not
    abandoned with its subnets claimed and left unprobed."""
    run = SweepRun()
    ips = ["127.91.0.1", "127.91.0.2"]
    try:
        run.db.query("CREATE SEQUENCE public.lease_holds")
        run.db.query(
            "CREATE FUNCTION public.hold_leases() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN IF NEW.probed AND NOT OLD.probed AND "
            "nextval('public.lease_holds') <= 2 THEN RAISE EXCEPTION "
            "'canceling statement due to lock timeout' USING ERRCODE = '55P03'; "
            "END IF; RETURN NEW; END $$")
        run.db.query("CREATE TRIGGER hold_leases BEFORE UPDATE ON ipamd.sweep_lease "
                     "FOR EACH ROW EXECUTE FUNCTION public.hold_leases()")
        run.subnet("lo", "127.91.0.0/24", ["127.91.0.1-127.91.0.2"])
        run.settle()
        run.wait_active(ips)
        assert run.db.scalar("SELECT last_value FROM public.lease_holds") == 3
        assert not run.daemon.log_contains(r"abandoned"), run.daemon.log()[-3000:]
    finally:
        run.close()


def test_postgresql_lost_mid_sweep():
    """PostgreSQL stops while a sweep is probing: the sweep is given up
    (with a warning), the daemon stays up, and once PostgreSQL is back the
    next sweep runs whole and writes its results."""
    pg = PrivatePostgres().start()
    run = None
    try:
        run = SweepRun({"rate": "100"}, db=Database(host="127.0.0.1", port=pg.port))
        ips = ["127.70.0.%d" % i for i in range(1, 201)]
        run.subnet("lo", "127.70.0.0/24", ["127.70.0.1-127.70.0.200"])
        run.settle()
        # 200 addresses at 100 a second: each sweep probes for 2 s.
        probing = run.daemon.log().count("probing 200 addresses")
        wait_until(lambda: run.daemon.log().count("probing 200 addresses") > probing, 60,
                   "a sweep to start probing")
        pg.stop()
        run.daemon.wait_log(r"sweeper: sweep \d+ abandoned: PostgreSQL is away", 30)
        assert run.daemon.proc.poll() is None
        restarted = datetime.datetime.now(datetime.timezone.utc)
        pg.start()
        sweep = run.daemon.wait_sweeps(1, lambda s: s["targets"] == 200, timeout=90)[0]
        assert sweep["replies"] == 200, sweep
        # Its results are written: every address checked by it (a state row
        # for each that is news, the pass for the others), and active.
        assert run.db.scalar("SELECT count(*) FROM public.ipam WHERE active "
                             "AND last_checked_at > %s AND ip_address = ANY(%s::inet[])",
                             (restarted, ips)) == 200
        assert run.active(ips) == 200
    finally:
        if run:
            run.close()
        pg.close()


def test_sweep_whose_session_ends_while_probing_is_given_up():
    """The sweeper's PostgreSQL session ends while a sweep probes (no query
    in flight) and comes back before the probing ends: the sweep is given
    up with a warning, not written under the new session's membership
    (which holds none of its leases), and the next sweep writes whole."""
    run = SweepRun({"rate": "100"})
    try:
        ips = ["127.71.%d.%d" % (i // 250, i % 250 + 1) for i in range(400)]
        run.subnet("lo", "127.71.0.0/23", ["127.71.0.1-127.71.0.250",
                                           "127.71.1.1-127.71.1.150"])
        run.settle()
        # 400 addresses at 100 a second: each sweep probes for 4 s.
        probing = run.daemon.log().count("probing 400 addresses")
        wait_until(lambda: run.daemon.log().count("probing 400 addresses") > probing, 60,
                   "a sweep to start probing")
        ended = run.db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'ipam-syncd-sweeper' "
                              "AND datname = current_database()")
        assert ended == 1, ended
        run.daemon.wait_log(r"sweeper: sweep \d+ abandoned: PostgreSQL is away", 30)
        run.daemon.wait_log(r"sweeper: member \d+ of the shared sweep", 30)
        assert run.daemon.proc.poll() is None
        restarted = datetime.datetime.now(datetime.timezone.utc)
        sweep = run.daemon.wait_sweeps(1, lambda s: s["targets"] == 400, timeout=90)[0]
        assert sweep["replies"] == 400, sweep
        assert run.db.scalar("SELECT count(*) FROM public.ipam WHERE active "
                             "AND last_checked_at > %s AND ip_address = ANY(%s::inet[])",
                             (restarted, ips)) == 400
    finally:
        run.close()


# Triggers of the test's own that record, for every update of an address
# row, which connection made it and which group of columns it changed (the
# sweeper's columns of the table are no longer written by anyone), and
# which connection wrote the sweeper's own tables.
UPDATE_LOG = """
CREATE TABLE public.sweep_test_update (app text, derived boolean, sweeper boolean);
CREATE TABLE public.sweep_test_state (app text, tab text);
CREATE FUNCTION public.sweep_test_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.sweep_test_update VALUES (
        current_setting('application_name'),
        (OLD.subnet_id, OLD.status, OLD.ip_type, OLD.server_id, OLD.hostname,
         OLD.mac_address, OLD.platform, OLD.manufacturer, OLD.description)
        IS DISTINCT FROM
        (NEW.subnet_id, NEW.status, NEW.ip_type, NEW.server_id, NEW.hostname,
         NEW.mac_address, NEW.platform, NEW.manufacturer, NEW.description),
        (OLD.active, OLD.last_seen_at, OLD.last_checked_at, OLD.rtt_us,
         OLD.missed_sweeps)
        IS DISTINCT FROM
        (NEW.active, NEW.last_seen_at, NEW.last_checked_at, NEW.rtt_us,
         NEW.missed_sweeps));
    RETURN NEW;
END
$$;
CREATE TRIGGER sweep_test AFTER UPDATE ON ipam_state.address
    FOR EACH ROW EXECUTE FUNCTION public.sweep_test_log();
CREATE FUNCTION public.sweep_test_state_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.sweep_test_state
    VALUES (current_setting('application_name'), TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER sweep_test AFTER INSERT OR UPDATE OR DELETE ON ipamd.sweep_address
    FOR EACH ROW EXECUTE FUNCTION public.sweep_test_state_log();
CREATE TRIGGER sweep_test AFTER INSERT OR UPDATE OR DELETE ON ipamd.sweep_subnet
    FOR EACH ROW EXECUTE FUNCTION public.sweep_test_state_log();
"""

# Drops what UPDATE_LOG made (the sweeper's tables outlive the test's).
UPDATE_LOG_DROP = """
DROP TRIGGER sweep_test ON ipamd.sweep_address;
DROP TRIGGER sweep_test ON ipamd.sweep_subnet;
"""


def test_sweep_given_up_after_its_news_leaves_nothing():
    """A sweep whose pass cannot be counted (another session holds its
    subnet's row of passes past the sweeper's lock timeout and retries) is
    given up, and leaves none of its news either: no state row stamped
    with a pass that was never counted.  Once the row is free, the sweeps
    count from the last complete one: a silent address has missed exactly
    the passes counted, and last_checked_at is the latest pass's."""
    run = SweepRun()
    blocker = run.db._connect(run.db.name)
    try:
        run.db.query("INSERT INTO ipamd.sweep_subnet VALUES ('u', 0, now())")
        with blocker.cursor() as cur:
            cur.execute("SELECT 1 FROM ipamd.sweep_subnet WHERE subnet_id = 'u' FOR UPDATE")
        run.subnet("lo", "127.78.0.0/24", ["127.78.0.1-127.78.0.2"])
        run.subnet("u", "203.0.113.8/29", ["203.0.113.9"])
        run.settle()
        wait_until(lambda: run.daemon.log_contains(r"sweeper: sweep \d+ abandoned: .*lock"),
                   30, "a sweep given up on the held row")
        assert run.db.scalar("SELECT count(*) FROM ipamd.sweep_address") == 0
        assert run.db.query("SELECT subnet_id, passes FROM ipamd.sweep_subnet") == [("u", 0)]
        blocker.rollback()

        run.daemon.wait_sweeps(3, lambda s: s["targets"] == 3)
        row = run.state("203.0.113.9")
        passes, checked = run.db.query("SELECT passes, checked_at FROM ipamd.sweep_subnet "
                                       "WHERE subnet_id = 'u'")[0]
        assert row["missed"] == passes and row["active"] is False, (row, passes)
        assert row["checked"] == checked, (row, checked)
        assert run.active(["127.78.0.1", "127.78.0.2"]) == 2
    finally:
        blocker.close()
        run.close()


def slow_writer(db, ips, seconds):
    """Changes the hostname of rows in transactions that each hold their
    row locks for 150 ms (less than the sweeper's lock timeout), one after
    the other: an apply path at its slowest.  Returns the last hostname."""
    conn = db._connect(db.name)
    conn.set_session(autocommit=False)
    began, n = time.monotonic(), 0
    with conn.cursor() as cur:
        cur.execute("SET application_name = 'sweep-test-writer'")
        conn.commit()
        while time.monotonic() - began < seconds:
            n += 1
            cur.execute("UPDATE ipam_state.address SET hostname = %s "
                        "WHERE ip_address = ANY(%s::inet[])", ("slow-%d" % n, ips))
            cur.execute("SELECT pg_sleep(0.15)")
            conn.commit()
    conn.close()
    return "slow-%d" % n


def test_sweep_and_apply_never_overwrite_each_other():
    """Sweeps run while the sync engine applies a stream of events to the
    same rows (servers taking, changing and leaving static and dhcp
    addresses): the sweeper never updates an address row (its state is in
    tables of its own, which only it writes), every update the apply makes
    changes only the derived columns, and at the end both sides' values
    are right.  Then a writer that holds row locks for a long time: the
    sweeper neither waits for it nor writes back what it read before the
    writer committed."""
    run = SweepRun({"rate": "400", "down_after": "5"})
    try:
        run.subnet("s", "127.66.0.0/24", ["127.66.0.1-127.66.0.200"])
        run.subnet("d", "127.66.1.0/24", [])
        run.settle()
        static = ["127.66.0.%d" % i for i in range(1, 201)]
        run.wait_active(static)
        run.db.query(UPDATE_LOG)

        # About 12 s of events, enough to keep the apply path busy: 150
        # servers moving over the static pool and in and out of the dhcp
        # subnet (whose rows come and go).
        version = {}
        last = {}
        began = time.monotonic()
        sweeps_before = len(run.daemon.sweeps())
        step = 0
        while time.monotonic() - began < 12:
            for sid in range(1, 151):
                version[sid] = version.get(sid, 0) + 1
                if (step + sid) % 3 == 0:
                    ip = "127.66.1.%d" % ((sid * 7 + step) % 250 + 1)
                else:
                    ip = "127.66.0.%d" % ((sid * 13 + step * 3) % 200 + 1)
                last[sid] = (ip, "h%d-%d" % (sid, step))
                run.server(str(sid), ip, version[sid], hostname=last[sid][1])
            run.kafka.flush()
            step += 1
            time.sleep(0.05)
        run.settle()
        sweeps_during = len(run.daemon.sweeps()) - sweeps_before
        assert sweeps_during >= 6, sweeps_during

        # The derived columns are the events' (the lowest id holds a shared
        # address), and every row is active, checked since the stream began.
        holders = {}
        for sid in sorted(last):
            holders.setdefault(last[sid][0], (str(sid), last[sid][1]))
        rows = run.db.query("SELECT host(ip_address), server_id, hostname, status "
                            "FROM ipam_state.address")
        for ip, server_id, hostname, status in rows:
            if ip in holders:
                assert (server_id, hostname, status) == holders[ip] + ("allocated",), \
                    (ip, server_id, hostname, holders[ip])
            else:
                assert server_id is None and status == "available", (ip, server_id)
        dhcp = {ip for ip in holders if ip.startswith("127.66.1.")}
        assert {r[0] for r in rows if r[0].startswith("127.66.1.")} == dhcp
        run.daemon.wait_sweeps(2)
        assert run.db.scalar("SELECT count(*) FROM public.ipam WHERE NOT active "
                             "OR last_checked_at IS NULL") == 0

        held = sorted(ip for ip in holders if ip.startswith("127.66.0."))[:40]
        checked_before = run.db.scalar("SELECT max(last_checked_at) FROM public.ipam "
                                       "WHERE ip_address = ANY(%s::inet[])", (held,))
        last_hostname = slow_writer(run.db, held, 6)
        assert run.db.scalar("SELECT count(*) FROM ipam_state.address WHERE hostname = %s",
                             (last_hostname,)) == len(held)
        run.daemon.wait_sweeps(2)
        assert run.db.scalar("SELECT count(*) FROM public.ipam "
                             "WHERE ip_address = ANY(%s::inet[]) AND active "
                             "AND last_checked_at > %s", (held, checked_before)) == len(held)

        counts = dict(((app, derived, sweeper), n) for app, derived, sweeper, n in run.db.query(
            "SELECT app, derived, sweeper, count(*) FROM public.sweep_test_update "
            "GROUP BY 1, 2, 3"))
        by_apply = {k: n for k, n in counts.items() if k[0] != "ipam-syncd-sweeper"}
        assert set(k[0] for k in counts) <= {"ipam-syncd", "sweep-test-writer"}, counts
        assert not any(sweeper for _, _, sweeper in by_apply), counts
        assert sum(by_apply.values()) > 1000, counts
        # The sweeper's state: written by the sweeper alone, a pass of each
        # of the two subnets per sweep, and the dhcp rows that came and went.
        state = dict(((app, tab), n) for app, tab, n in run.db.query(
            "SELECT app, tab, count(*) FROM public.sweep_test_state GROUP BY 1, 2"))
        assert set(app for app, _ in state) == {"ipam-syncd-sweeper"}, state
        assert state.get(("ipam-syncd-sweeper", "sweep_subnet"), 0) >= 2 * sweeps_during, state
        assert state.get(("ipam-syncd-sweeper", "sweep_address"), 0) > 0, state
        assert not run.daemon.log_contains(r"deadlock|apply: .*retrying"), \
            "\n".join(l for l in run.daemon.log().splitlines() if "retrying" in l)
        run.db.query(UPDATE_LOG_DROP)
    finally:
        run.close()


if __name__ == "__main__":
    # Network namespaces, raw and packet sockets: root's (sudo scripts/test).
    if os.geteuid() != 0:
        print("SKIP: the sweeper's tests need root (network namespaces, raw sockets)")
        sys.exit(77)
    harness.main(globals())
