"""ipamctl against the real daemon: the operator API over real PostgreSQL and
Kafka, driven only through the ipamctl binary.  An inventory as the replaced
app kept it (CSV with a BOM and CRLF, JSON pools) imported and counted; the
round trips of reserve, quarantine, release and allocate; the history naming
who asked; a conflict (exit 3) and the API's errors (exit 1) as documented in
ipamctl(1)."""

import http.server
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import psycopg2
from confluent_kafka import Consumer, TopicPartition

import harness
from harness import Daemon, Database, Topics, free_port, wait_until

IPAMCTL = os.environ.get("IPAMCTL_BIN",
                         os.path.join(harness.ROOT, "build", "ipamctl", "ipamctl"))

# The exit statuses of ipamctl(1).
OK, REFUSED, USAGE, CONFLICT, UNREACHABLE, ACCEPTED = 0, 1, 2, 3, 4, 5


class Ctl:
    """Runs the real ipamctl against one daemon, with a write token."""

    def __init__(self, daemon, directory):
        self.daemon = daemon
        self.url = "http://127.0.0.1:%d" % daemon.http_port()
        self.write_token = os.path.join(directory, "write.token")
        self.read_token = os.path.join(directory, "read.token")

    def run(self, *args, token="write", requester="alice", url=None):
        """ipamctl ARGS: (exit status, stdout, stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAMCTL_")}
        env["USER"] = "nobody-from-env"
        env.pop("NO_COLOR", None)
        argv = [IPAMCTL, "--url", url or self.url]
        if token is not None:
            argv += ["--token-file", self.write_token if token == "write"
                     else self.read_token]
        if requester is not None:
            argv += ["--requester", requester]
        done = subprocess.run(argv + list(args), capture_output=True, text=True,
                              env=env, timeout=300)
        return done.returncode, done.stdout, done.stderr

    def run_on_terminal(self, *args, env_extra=None):
        """ipamctl ARGS with stdout on a pseudo-terminal: (status, output)."""
        import pty
        leader, follower = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAMCTL_")}
        env.pop("NO_COLOR", None)
        env["TERM"] = "xterm"
        env.update(env_extra or {})
        try:
            done = subprocess.run([IPAMCTL, "--url", self.url, "--token-file",
                                   self.write_token] + list(args), stdout=follower,
                                  stderr=subprocess.PIPE, env=env, timeout=60)
            os.close(follower)
            follower = None
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return done.returncode, b"".join(chunks).decode().replace("\r\n", "\n")
        finally:
            if follower is not None:
                os.close(follower)
            os.close(leader)

    def ok(self, *args, **kwargs):
        """Runs and requires exit status 0; returns stdout."""
        status, out, err = self.run(*args, **kwargs)
        assert status == OK, (args, status, out, err)
        return out

    def json(self, *args, **kwargs):
        """Runs with --json and requires exit status 0; returns the JSON."""
        return json.loads(self.ok("--json", *args, **kwargs))

    def api(self, path):
        """The API's own answer to a GET (status, JSON), with the write token."""
        with open(self.write_token) as f:
            token = f.read().strip()
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def start(directory, config=None):
    """A database, topics and a daemon with read and write tokens (and
    config's sections over the harness's)."""
    db, topics = Database(), Topics()
    write_token = os.path.join(directory, "write.token")
    read_token = os.path.join(directory, "read.token")
    with open(write_token, "w") as f:
        f.write("w-%s\n" % harness.unique("tok"))
    with open(read_token, "w") as f:
        f.write("r-%s\n" % harness.unique("tok"))
    sections = {k: dict(v) for k, v in (config or {}).items()}
    sections.setdefault("api", {}).update({"write_token_file": write_token,
                                           "read_token_file": read_token})
    daemon = Daemon(db, topics, config=sections)
    daemon.start()
    daemon.wait_ready()
    # Writes wait until their events are applied: the consumer must own
    # the three topics' partitions first.
    daemon.wait_assigned(3)
    return db, topics, daemon, Ctl(daemon, directory)


def high_watermarks(topics):
    """The number of messages in each of the test's topics."""
    consumer = Consumer({"bootstrap.servers": harness.bootstrap(),
                         "group.id": harness.unique("wm")})
    try:
        return {t: consumer.get_watermark_offsets(TopicPartition(t, 0), timeout=30)[1]
                for t in (topics.servers, topics.subnets, topics.marks)}
    finally:
        consumer.close()


def status_counts(db):
    return dict(db.query("SELECT status, count(*) FROM public.ipam GROUP BY status"))


def mark_of(db, ip):
    rows = db.query("SELECT status, description FROM public.ipam "
                    "WHERE vrf = '' AND ip_address = %s::inet", (ip,))
    return rows[0] if rows else None


# The seed: 654 static pool addresses in six subnets (one without a pool),
# 105 servers: 72 in pools, 33 in subnets but outside their pools.  Rows:
# 654 + 33 = 687; allocated 105; available 654 - 72 = 582.
SEED_SUBNETS = [
    # id, name, cidr, static_ip_pools as the CSV cell has it, ping
    ("s-a", "Servers A", "10.60.0.0/24", '["10.60.0.10-10.60.0.215"]', "true"),
    ("s-b", "Servers B", "10.60.1.0/24",
     "10.60.1.20-10.60.1.119;10.60.1.200-10.60.1.249", "yes"),
    ("s-c", "Servers C", "10.60.2.0/23", "10.60.2.10-10.60.3.13", ""),
    ("s-d", "Lab \"small\"", "10.60.4.0/26", "10.60.4.8/29", "1"),
    ("s-e", "Lab, east", "10.60.5.0/27", '["10.60.5.1-10.60.5.30"]', "false"),
    ("s-f", "Loose", "10.60.6.0/24", "", ""),
]
SEED_POOL_SIZE = 206 + 150 + 260 + 8 + 30


def seed_server_addresses():
    """The 105 servers' addresses: 72 in pools, then 33 outside them."""
    inside = (["10.60.0.%d" % i for i in range(10, 40)]
              + ["10.60.1.%d" % i for i in range(20, 42)]
              + ["10.60.2.%d" % i for i in range(250, 256)]
              + ["10.60.3.%d" % i for i in range(0, 6)]
              + ["10.60.4.%d" % i for i in range(8, 16)])
    outside = (["10.60.0.%d" % i for i in range(220, 240)]
               + ["10.60.6.%d" % i for i in range(10, 23)])
    assert len(inside) == 72 and len(outside) == 33
    return inside + outside


def csv_field(value):
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_seed(directory):
    """servers.csv as a spreadsheet writes it (BOM, CRLF, quoted commas,
    MAC addresses in three spellings) and subnets.csv; returns their paths."""
    servers = os.path.join(directory, "servers.csv")
    subnets = os.path.join(directory, "subnets.csv")
    lines = ["id,hostname,ip_address,nic_mac,device_type,manufacture"]
    for n, ip in enumerate(seed_server_addresses(), start=1):
        mac = ["52:54:00:00:%02x:%02x" % (n // 256, n % 256),
               "52-54-00-01-%02X-%02X" % (n // 256, n % 256),
               "5254.0002.%04x" % n, ""][n % 4]
        maker = ["Dell, Inc.", "HPE", "qemu", ""][n % 4]
        lines.append(",".join(csv_field(v) for v in
                              (str(n), "host-%03d" % n, ip, mac,
                               "vm" if n % 2 else "baremetal", maker)))
    with open(servers, "wb") as f:
        f.write(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    rows = ["id,name,cidr,static_ip_pools,ping"]
    for row in SEED_SUBNETS:
        rows.append(",".join(csv_field(v) for v in row))
    with open(subnets, "w") as f:
        f.write("\n".join(rows) + "\n")
    return servers, subnets


def test_import_of_the_seed_inventory():
    """populate --dry-run publishes nothing and names what would change;
    import gives 687 rows, 582 available and 105 allocated, seen through
    ls, subnets, stats and export as in the database."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start(directory)
    try:
        servers, subnets = write_seed(directory)

        out = ctl.ok("populate", "--servers", servers, "--subnets", subnets,
                     "--dry-run")
        assert "dry run: nothing was published" in out, out
        assert "servers: 105 to create, 0 to update, 0 unchanged" in out, out
        assert "subnets: 6 to create, 0 to update, 0 unchanged" in out, out
        assert high_watermarks(topics) == {topics.servers: 0, topics.subnets: 0,
                                           topics.marks: 0}
        assert db.scalar("SELECT count(*) FROM public.ipam") == 0

        # A file larger than any import is refused before it is all read
        # (/dev/zero never ends), and nothing is published.
        status, out, err = ctl.run("import", "--servers", "/dev/zero")
        assert status != 0 and "larger than 256 MiB" in err, (status, out, err)
        assert high_watermarks(topics)[topics.servers] == 0

        out = ctl.ok("import", "--servers", servers, "--subnets", subnets)
        assert "servers: 105 imported" in out and "subnets: 6 imported" in out, out
        # Applied when the answer came: no wait here.
        assert db.scalar("SELECT count(*) FROM public.ipam") == 687
        assert status_counts(db) == {"available": 582, "allocated": 105}
        marks = high_watermarks(topics)
        assert marks[topics.servers] == 105 and marks[topics.subnets] == 6, marks

        # Every page, followed by ipamctl: the same rows, no repeats.
        listing = ctl.json("ls", "--all", "--limit", "100")
        addresses = [row["ip_address"] for row in listing["items"]]
        assert len(addresses) == 687 and len(set(addresses)) == 687
        assert "next_cursor" not in listing
        assert sum(r["status"] == "available" for r in listing["items"]) == 582
        assert sum(r["status"] == "allocated" for r in listing["items"]) == 105
        counted = ctl.json("ls", "--status", "available", "--count", "--limit", "1")
        assert counted["total"] == 582 and len(counted["items"]) == 1
        counted = ctl.json("ls", "--status", "allocated", "--status", "reserved",
                           "--count")
        assert counted["total"] == 105

        # The other filters and the sort, as the API applies them.
        assert ctl.json("ls", "--type", "dhcp", "--count")["total"] == 33
        assert ctl.json("ls", "--type", "static", "--count")["total"] == 654
        assert ctl.json("ls", "--inactive", "--count")["total"] == 687
        assert ctl.json("ls", "--active", "--count")["total"] == 0
        last = ctl.json("ls", "--sort", "-address", "--limit", "1")["items"]
        assert [r["ip_address"] for r in last] == ["10.60.6.22"], last
        assert ctl.json("ls", "--changed-since", "2999-01-01T00:00:00Z")["items"] == []
        assert ctl.json("ls", "-q", "10.60.4.", "--count")["total"] == 8

        # The CSV fields came through: quoted commas, MAC spellings.
        host = ctl.json("ls", "-q", "host-001")["items"]
        assert [(r["ip_address"], r["manufacturer"], r["mac_address"])
                for r in host] == [("10.60.0.10", "HPE", "52:54:00:01:00:01")], host
        dell = ctl.json("ls", "-q", "host-004")["items"]
        assert dell[0]["manufacturer"] == "Dell, Inc.", dell

        # A human page: a table, and a hint that there is more.
        status, out, err = ctl.run("ls", "--subnet", "s-a", "--status", "allocated",
                                   "--limit", "5")
        assert status == OK, err
        lines = out.splitlines()
        assert lines[0].split() == ["ADDRESS", "STATUS", "TYPE", "ACTIVE", "SUBNET",
                                    "HOSTNAME", "MAC", "DESCRIPTION"], out
        assert len(lines) == 6 and lines[1].split()[:2] == ["10.60.0.10",
                                                            "allocated"], out
        assert "\033[" not in out  # not a terminal: no colour
        assert "there are more (--all for every page)" in err, err
        # On a terminal: a bold header and the status words in colour,
        # unless NO_COLOR says otherwise.
        status, shown = ctl.run_on_terminal("ls", "--subnet", "s-a", "--limit", "3")
        assert status == OK, shown
        lines = shown.splitlines()
        assert lines[0].startswith("\033[1mADDRESS"), lines
        assert lines[1].startswith("10.60.0.10  \033[34mallocated\033[0m  "), lines
        status, shown = ctl.run_on_terminal("ls", "--subnet", "s-a", "--limit", "3",
                                            env_extra={"NO_COLOR": "1"})
        assert status == OK and "\033[" not in shown, shown

        # Subnets and their statistics.
        items = {s["id"]: s for s in ctl.json("subnets")["items"]}
        assert sorted(items) == ["s-a", "s-b", "s-c", "s-d", "s-e", "s-f"]
        assert sum(s["stats"]["pool_size"] for s in items.values()) == SEED_POOL_SIZE
        assert items["s-a"]["stats"]["pool_size"] == 206
        assert items["s-a"]["stats"]["allocated"] == 30 + 20
        assert items["s-e"]["name"] == "Lab, east" and items["s-e"]["ping"] is False
        assert items["s-d"]["name"] == 'Lab "small"'
        table = ctl.ok("subnets")
        assert any(line.split()[:2] == ["s-b", "Servers"] and "150" in line.split()
                   for line in table.splitlines()), table

        stats = ctl.json("stats")
        assert stats["addresses"]["total"] == 687, stats
        assert "addresses.available" in ctl.ok("stats")

        # Export: the view's header and every row, CSV and JSON.
        csv_text = ctl.ok("export", "--csv")
        csv_lines = csv_text.splitlines()
        assert csv_lines[0].startswith("vrf,ip_address,subnet_id,status,"), csv_lines[0]
        assert len(csv_lines) == 688
        exported = json.loads(ctl.ok("export", "--json"))
        assert len(exported) == 687
        assert len(json.loads(ctl.ok("export", "--json", "--subnet", "s-d"))) == 8

        # The same files again: nothing would change.
        out = ctl.ok("import", "--servers", servers, "--subnets", subnets,
                     "--dry-run")
        assert "servers: 0 to create, 0 to update, 105 unchanged" in out, out
        assert "subnets: 0 to create, 0 to update, 6 unchanged" in out, out
    finally:
        daemon.close()
        db.close()


SMALL_SUBNETS = [{"id": "lan", "name": "LAN", "cidr": "10.61.0.0/24",
                  "static_ip_pools": ["10.61.0.10-10.61.0.29"]}]
SMALL_SERVERS = [{"id": "1", "hostname": "web-1", "ip_address": "10.61.0.12"},
                 {"id": "2", "hostname": "db-1", "ip_address": "10.61.0.14"},
                 {"id": "3", "hostname": "stray", "ip_address": "10.99.0.1"}]


def test_export_writes_a_page_at_a_time():
    """export reads 2,510 rows a page of 1000 at a time: the CSV pages put
    end to end are the daemon's one CSV answer, the JSON rows its JSON
    pages, and the CSV pages' cursors come in the Next-Cursor header."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start(directory)
    try:
        subnets = os.path.join(directory, "subnets.json")
        with open(subnets, "w") as f:
            json.dump([{"id": "big", "cidr": "10.61.0.0/20",
                        "static_ip_pools": ["10.61.0.1-10.61.9.206"]}], f)
        ctl.ok("import", "--subnets", subnets)
        assert db.scalar("SELECT count(*) FROM public.ipam") == 2510

        with open(ctl.write_token) as f:
            token = f.read().strip()

        def get(path):
            request = urllib.request.Request(
                ctl.url + path, headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.headers, response.read().decode()

        _, whole = get("/api/v1/addresses?format=csv")
        assert whole.count("\r\n") == 2511, whole[:200]
        # The API's pages: a cursor in the header until the last.
        pages, cursor, text = 0, None, ""
        while True:
            path = "/api/v1/addresses?format=csv&limit=1000"
            if cursor is not None:
                path += "&cursor=" + urllib.parse.quote(cursor)
            headers, body = get(path)
            pages += 1
            text += body
            # Every page names the next; the last one an empty cursor.
            cursor = headers.get("Next-Cursor")
            assert cursor is not None, (pages, dict(headers))
            if cursor == "":
                break
        assert pages == 3 and text == whole, pages
        # The whole listing in one answer names no page.
        assert get("/api/v1/addresses?format=csv")[0].get("Next-Cursor") is None
        assert ctl.ok("export", "--csv") == whole.replace("\r\n", "\n")
        exported = json.loads(ctl.ok("export", "--json"))
        listing = ctl.json("ls", "--all", "--limit", "1000")["items"]
        assert len(exported) == 2510 and exported == listing
        # The filters of ls, on the pages too.
        status, out, _ = ctl.run("export", "--csv", "-q", "10.61.9.")
        assert status == OK and len(out.splitlines()) == 1 + 207, out[:200]
    finally:
        daemon.close()
        db.close()


def start_small(directory):
    """A daemon with a 20-address pool, two servers in it and one in no subnet."""
    db, topics, daemon, ctl = start(directory)
    servers = os.path.join(directory, "servers.json")
    subnets = os.path.join(directory, "subnets.json")
    with open(servers, "w") as f:
        json.dump(SMALL_SERVERS, f)
    with open(subnets, "w") as f:
        json.dump({"subnets": SMALL_SUBNETS}, f)
    ctl.ok("import", "--servers", servers, "--subnets", subnets)
    assert db.scalar("SELECT count(*) FROM public.ipam") == 20
    return db, topics, daemon, ctl


def test_a_walk_of_pages_waits_what_the_daemon_asks():
    """A read the daemon asks to wait (the rate limit's 429 with
    Retry-After) is asked again after the wait: a walk of many pages at
    one request a second goes on to its end instead of stopping halfway
    with what it printed.  Writes are not asked again."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start(directory, config={"api": {"rate_limit": "1"}})
    try:
        kafka = harness.Kafka()
        kafka.send(topics.subnets, "s-slow", json.dumps({
            "specversion": "1.0", "id": harness.unique("ev"),
            "source": "/tests/ipamctl", "type": "ipam.subnet.upserted",
            "subject": "s-slow", "entityversion": 1,
            "data": {"name": "slow", "cidr": "10.63.0.0/28", "ping": False,
                     "static_ip_pools": ["10.63.0.1-10.63.0.8"]}}))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM public.ipam") == 8, 60,
                   "the pool's rows")
        status, out, err = ctl.run("ls", "--all", "--limit", "1")
        assert status == OK, (status, out, err)
        assert sorted(re.findall(r"10\.63\.0\.\d+", out)) == \
            sorted("10.63.0.%d" % i for i in range(1, 9)), out
        assert "ipamctl: the daemon answered 429 and asks to wait 1 s; asking again" \
            in err, err
    finally:
        daemon.close()
        db.close()


def test_reserve_quarantine_release_allocate():
    """Each write is applied when ipamctl returns, prints the row, and is
    named in the history with its requester; preconditions that fail give
    exit status 3 and the row as it now is."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start_small(directory)
    try:
        out = ctl.ok("reserve", "10.61.0.20", "-d", "office gateway")
        assert out.split()[:2] == ["10.61.0.20", "reserved"], out
        assert '"office gateway"' in out
        assert mark_of(db, "10.61.0.20") == ("reserved", "office gateway")

        # show: the mark and the history name the requester.
        out = ctl.ok("show", "10.61.0.20")
        assert "%-16s %s\n" % ("status", "reserved") in out, out
        assert 'mark: reserved "office gateway" by write:alice at ' in out, out
        history = out.split("history (newest first):")[1]
        assert "write:alice" in history, out
        assert "status available -> reserved" in history, out
        detail = ctl.json("show", "10.61.0.20")
        assert detail["mark"]["requested_by"] == "write:alice"
        assert detail["history"][0]["requested_by"] == "write:alice"

        # Someone else, only if available: a conflict, and the row as it is.
        status, out, err = ctl.run("reserve", "10.61.0.20", "--if-available",
                                   "-d", "printer", requester="bob")
        assert status == CONFLICT, (status, out, err)
        assert "conflict (HTTP 409)" in err, err
        assert out.startswith("the address now: 10.61.0.20  reserved"), out
        assert '"office gateway"' in out, out
        assert mark_of(db, "10.61.0.20") == ("reserved", "office gateway")
        # A server holds 10.61.0.12: not available either.
        status, out, err = ctl.run("reserve", "10.61.0.12", "--if-available",
                                   "-d", "x")
        assert status == CONFLICT, (status, out, err)
        assert "allocated" in out and "host web-1" in out, out
        # With --json the API's body is printed as it came.
        status, out, err = ctl.run("--json", "reserve", "10.61.0.20",
                                   "--if-available", "-d", "printer")
        assert status == CONFLICT
        assert json.loads(out)["error"] == "conflict"
        assert json.loads(out)["current"]["description"] == "office gateway"

        # If-Match: a stale etag is a conflict, the current one applies.
        etag = ctl.json("show", "10.61.0.20")["etag"]
        ctl.ok("reserve", "10.61.0.20", "-d", "office gateway 2",
               "--if-match", etag)
        status, out, err = ctl.run("reserve", "10.61.0.20", "-d", "stale",
                                   "--if-match", etag)
        assert status == CONFLICT, (status, out, err)
        assert mark_of(db, "10.61.0.20") == ("reserved", "office gateway 2")

        # An address in no subnet has no row: show says so with its
        # etag, and a conflict there prints that it has none.
        ctl.ok("reserve", "10.98.0.5", "-d", "outside")
        out = ctl.ok("show", "10.98.0.5")
        assert out.startswith("no address row (the address is in no subnet"), out
        etag = ctl.json("show", "10.98.0.5")["etag"]
        assert "%-16s %s\n" % ("etag", etag) in out, out
        status, out, err = ctl.run("reserve", "10.98.0.5", "--if-available",
                                   "-d", "again")
        assert status == CONFLICT, (status, out, err)
        assert out.startswith("the address now: no address row"), out
        # A vrf named ".." is a name, not a step up the path.
        ctl.ok("--vrf", "..", "reserve", "10.98.0.6", "-d", "dots")
        detail = ctl.json("--vrf", "..", "show", "10.98.0.6")
        assert detail["mark"]["description"] == "dots", detail
        assert db.scalar("SELECT vrf FROM ipam_state.mark WHERE id = %s",
                         ("../10.98.0.6",)) == "..", detail

        # Quarantine, with its reason.
        row = ctl.json("quarantine", "10.61.0.21", "-r", "abuse report 4711")
        row = row.get("row", row)
        assert row["status"] == "quarantine", row
        assert mark_of(db, "10.61.0.21")[0] == "quarantine"
        out = ctl.ok("show", "10.61.0.21")
        assert 'mark: quarantine "abuse report 4711" by write:alice at ' in out, out
        assert "status available -> quarantine" in out, out

        # Release: available again, and the history says who.
        out = ctl.ok("release", "10.61.0.20", requester="carol")
        assert out.split()[:2] == ["10.61.0.20", "available"], out
        assert mark_of(db, "10.61.0.20") == ("available", None)
        history = ctl.json("show", "10.61.0.20")["history"]
        assert history[0]["requested_by"] == "write:carol", history[0]
        assert history[0]["after"]["status"] == "available", history[0]
        assert {h["requested_by"] for h in history} >= {"write:alice", "write:carol"}
        ctl.ok("release", "10.61.0.21")

        # Allocate: the first free static addresses, in address order
        # (10.61.0.12 and .14 are the servers').
        out = ctl.ok("allocate", "lan", "-n", "3", "-d", "printers")
        lines = out.splitlines()
        assert [l.split()[0] for l in lines[1:]] == ["10.61.0.10", "10.61.0.11",
                                                     "10.61.0.13"], out
        assert all("reserved" in l and "printers" in l for l in lines[1:]), out
        got = ctl.json("allocate", "lan", "-d", "scanner")["addresses"]
        assert [r["ip_address"] for r in got] == ["10.61.0.15"], got
        assert status_counts(db) == {"available": 14, "allocated": 2, "reserved": 4}
        # More than are free: nothing is reserved, exit 3.
        status, out, err = ctl.run("allocate", "lan", "-n", "15", "-d", "too many")
        assert status == CONFLICT, (status, out, err)
        assert status_counts(db)["reserved"] == 4
    finally:
        daemon.close()
        db.close()


def test_two_operators_race_for_one_address():
    """Two ipamctl reserve --if-available at once: one exit 0, one exit 3,
    and the history names both requesters."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start_small(directory)
    try:
        results = {}
        barrier = threading.Barrier(2)

        def reserve(name):
            barrier.wait()
            results[name] = ctl.run("reserve", "10.61.0.25", "--if-available",
                                    "-d", "for " + name, requester=name)

        threads = [threading.Thread(target=reserve, args=(n,)) for n in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r[0] for r in results.values())
        assert statuses == [OK, CONFLICT], results
        winner = [n for n, r in results.items() if r[0] == OK][0]
        loser = [n for n, r in results.items() if r[0] == CONFLICT][0]
        assert mark_of(db, "10.61.0.25") == ("reserved", "for " + winner)
        assert ("for " + winner) in results[loser][1], results[loser]
        history = ctl.json("show", "10.61.0.25")["history"]
        by = {(h["action"], h["requested_by"]) for h in history}
        assert ("refused", "write:" + loser) in by, history
        assert any(a != "refused" and r == "write:" + winner for a, r in by), history
    finally:
        daemon.close()
        db.close()


def test_errors_and_exit_statuses():
    """A bad address, a bad filter, an unknown address or subnet, a missing
    or read-only token: exit 1 with the API's error and detail; a bad
    command line or import file: exit 2 and nothing sent; no daemon:
    exit 4."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start_small(directory)
    try:
        # The API's own words for a bad address, printed by ipamctl.
        code, body = ctl.api("/api/v1/addresses/-/10.61.0.999")
        assert code == 400 and body["error"] == "bad_request", body
        status, out, err = ctl.run("show", "10.61.0.999")
        assert status == REFUSED, (status, out, err)
        assert "bad_request (HTTP 400)" in err and body["detail"] in err, err
        assert out == ""
        status, out, err = ctl.run("reserve", "not-an-address", "-d", "x")
        assert status == REFUSED and "bad_request" in err, (status, err)

        status, out, err = ctl.run("ls", "--status", "free")
        assert status == REFUSED, (status, err)
        assert "bad_request" in err and "field: status" in err, err

        status, out, err = ctl.run("show", "10.62.0.1")
        assert status == REFUSED and "not_found (HTTP 404)" in err, (status, err)
        status, out, err = ctl.run("allocate", "nosuch", "-d", "x")
        assert status == REFUSED and "not_found" in err, (status, err)

        # Tokens: none on a write, a read token on a write.
        status, out, err = ctl.run("reserve", "10.61.0.22", "-d", "x", token=None)
        assert status == REFUSED and "unauthorized (HTTP 401)" in err, (status, err)
        status, out, err = ctl.run("reserve", "10.61.0.22", "-d", "x", token="read")
        assert status == REFUSED and "forbidden (HTTP 403)" in err, (status, err)
        assert mark_of(db, "10.61.0.22") == ("available", None)
        assert ctl.json("ls", "--limit", "1", token="read")["items"]

        # Usage errors: nothing is sent.
        before = high_watermarks(topics)
        status, out, err = ctl.run("reserve", "10.61.0.22")
        assert status == USAGE and "-d TEXT is required" in err, (status, err)
        bad = os.path.join(directory, "bad.csv")
        with open(bad, "w") as f:
            f.write('id,hostname,ip_address\n9,ok,10.61.0.23\n10,"broken,10.61.0.24\n')
        status, out, err = ctl.run("import", "--servers", bad)
        assert status == USAGE, (status, err)
        assert "bad.csv: line 3, column 4: a quoted field is not closed" in err, err
        with open(bad, "w") as f:
            f.write("id,hostname,ip_address\n9,ok\n")
        status, out, err = ctl.run("populate", "--servers", bad)
        assert status == USAGE and "bad.csv: line 2: 2 fields where the header has 3" \
            in err, (status, err)
        status, out, err = ctl.run("import", "--servers",
                                   os.path.join(directory, "missing.csv"))
        assert status == USAGE and "No such file or directory" in err, (status, err)
        assert high_watermarks(topics) == before

        # An entity the daemon refuses: exit 1 naming the field.
        with open(bad, "w") as f:
            f.write("id,hostname,ip_address\n9,ok,10.61.0.300\n")
        status, out, err = ctl.run("import", "--servers", bad)
        assert status == REFUSED, (status, err)
        assert "servers[0]" in err and '"10.61.0.300" is not an IPv4 or IPv6 address' \
            in err, err
        assert high_watermarks(topics) == before

        # No daemon there.
        status, out, err = ctl.run("ls", url="http://127.0.0.1:%d" % free_port())
        assert status == UNREACHABLE and "cannot reach the daemon" in err, (status, err)

        # The other reads answer.
        unplaced = ctl.json("unplaced")
        assert [s["id"] for s in unplaced["servers"]] == ["3"], unplaced
        out = ctl.ok("unplaced")
        assert "servers in no subnet: 1" in out and "stray" in out, out
        assert ctl.json("conflicts")["items"] == []
        assert ctl.json("conflicts", "--kind", "several_servers")["items"] == []
        status, out, err = ctl.run("conflicts", "--kind", "nonsense")
        assert status == REFUSED and "field: kind" in err, (status, err)
        assert ctl.json("dead-letters")["items"] == []
        assert ctl.ok("dead-letters").splitlines()[0].split()[:2] == ["ID", "RECEIVED"]
    finally:
        daemon.close()
        db.close()


def test_write_not_applied_in_time_exits_5():
    """With the apply held up (the mark table locked) and a short wait, a
    reservation is accepted but not applied: exit status 5 and the request
    to poll, which ipamctl request says is pending (5); once the lock goes,
    it shows it applied (0), and a reservation refused meanwhile refused
    (3), as an import's progress applied."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    db, topics, daemon, ctl = start_small(directory)
    locker = None
    try:
        sections = daemon.sections
        sections["api"]["write_wait_ms"] = "100"
        daemon.write_config(sections)
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reload: configuration .* loaded")
        locker = psycopg2.connect(db.conninfo())
        locker.cursor().execute("LOCK TABLE ipam_state.mark IN ACCESS EXCLUSIVE MODE")

        status, out, err = ctl.run("reserve", "10.61.0.26", "-d", "later")
        assert status == ACCEPTED, (status, out, err)
        found = re.search(r"its outcome: ipamctl request (\S+)", err)
        assert found, err
        request = found.group(1)
        # Not decided yet: the write's own status, pending (5).
        status, out, err = ctl.run("request", request)
        assert status == ACCEPTED and "is not decided yet" in err, (status, out, err)
        # A second reservation of the same address, only if it is free:
        # it will be refused once the first is applied.
        status, out, err = ctl.run("reserve", "10.61.0.26", "-d", "too late",
                                   "--if-available")
        assert status == ACCEPTED, (status, out, err)
        second = re.search(r"its outcome: ipamctl request (\S+)", err).group(1)

        # An import is followed by its progress: the last offset it wrote
        # to each partition, pending while the apply is held up.
        more = os.path.join(directory, "more.json")
        with open(more, "w") as f:
            json.dump([{"id": "4", "hostname": "app-1", "ip_address": "10.61.0.16"},
                       {"id": "5", "hostname": "app-2", "ip_address": "10.61.0.17"}], f)
        status, out, err = ctl.run("import", "--servers", more)
        assert status == ACCEPTED, (status, out, err)
        found = re.search(r"its outcome: ipamctl request (\S+)", err)
        assert found, err
        progress = found.group(1)
        server_topic = topics.servers
        last = {}
        for entry in progress.split(","):
            topic, part, off = entry.split(":")
            assert topic == server_topic, progress
            last[int(part)] = int(off)
        status, out, err = ctl.run("--json", "request", progress)
        assert status == ACCEPTED, (status, out, err)
        state = json.loads(out)
        assert state["state"] == "pending", state
        assert {p["partition"]: p["offset"] for p in state["partitions"]} == last, state
        assert all(p["topic"] == server_topic and (p["next_offset"] or 0) <= p["offset"]
                   for p in state["partitions"]), state
        for bad in ("nosuch:0:1", server_topic + ":0:-1", server_topic + ":0",
                    server_topic + ":0:1,"):
            status, out, err = ctl.run("request", bad)
            assert status == REFUSED and "not the progress of an import" in err, \
                (bad, status, out, err)

        locker.rollback()
        locker.close()
        locker = None

        def outcome():
            code, out, _ = ctl.run("--json", "request", request)
            return json.loads(out) if code == OK and json.loads(out).get(
                "state") != "pending" else None
        decided = wait_until(outcome, 60, "the request's outcome")
        assert decided["state"] == "applied", decided
        assert decided["row"]["status"] == "reserved", decided
        assert mark_of(db, "10.61.0.26") == ("reserved", "later")
        def imported():
            status, out, _ = ctl.run("request", progress)
            return out if status == OK else None
        assert re.search(r"^state\s+applied$", wait_until(
            imported, 60, "the import to be applied"), re.M)
        assert db.scalar("SELECT string_agg(hostname, ',' ORDER BY hostname) FROM "
                         "public.ipam WHERE ip_address IN ('10.61.0.16', '10.61.0.17')") \
            == "app-1,app-2"
        out = ctl.ok("request", request)
        assert re.search(r"^state\s+applied$", out, re.M), out
        # The refused one: its reason, and the status of a conflict (3).
        status, out, err = ctl.run("request", second)
        assert status == CONFLICT and re.search(r"^state\s+refused$", out, re.M), \
            (status, out, err)
        assert "ipamctl: refused: " in err and "10.61.0.26" in err, err
    finally:
        if locker is not None:
            locker.close()
        daemon.close()
        db.close()


class Scripted:
    """An HTTP server that answers each request with the next scripted reply
    and keeps what ipamctl sent: method, path, headers, body."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers),
                                       "body": json.loads(body) if body else None})
                code, reply, headers = owner.replies.pop(0)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ROW = {"vrf": "blue", "ip_address": "10.0.0.5", "subnet_id": "lan",
       "status": "reserved", "ip_type": "static", "active": False,
       "description": "gw", "etag": "\"e1\""}


def test_requests_and_exit_statuses_against_scripted_replies():
    """What ipamctl sends (method, path, query, body, token, requester,
    If-Match) is what docs/API.md says, and each kind of answer gets its
    exit status: 202 is 5 with the request to poll, 5xx and a body that is
    not JSON are 4, 409 is 3, and --all follows next_cursor."""
    directory = tempfile.mkdtemp(prefix="ipamctl-")
    token = os.path.join(directory, "token")
    with open(token, "w") as f:
        f.write("s3cret\n")
    scripted = Scripted([
        (200, ROW, {}),
        (202, {"id": "r-42", "state": "pending"},
         {"Location": "/api/v1/requests/r-42"}),
        (409, {"error": "conflict", "detail": "held", "current": ROW}, {}),
        (503, {"error": "unavailable", "detail": "Kafka is unreachable"}, {}),
        (500, b"<html>boom</html>", {"Content-Type": "text/html"}),
        (201, {"addresses": [ROW]}, {}),
        (200, {"items": [ROW], "next_cursor": "c1"}, {}),
        (200, {"items": [dict(ROW, ip_address="10.0.0.6")]}, {}),
        (200, b"not json", {}),
        (200, {"servers": {"create": 1, "update": 0, "unchanged": 0, "changes": []},
               "subnets": {"create": 0, "update": 0, "unchanged": 0, "changes": []}}, {}),
        (400, {"error": "bad_request", "detail": "2 entities refused",
               "errors": ["servers[0].ip_address: not an address",
                          "subnets[1].cidr: missing"]}, {}),
        (409, {"error": "conflict", "detail": "only 1 of 3 addresses could be "
               "reserved: others took the rest", "allocated": [ROW],
               "requests": ["r-9"]}, {}),
        (202, {"state": "pending", "detail": "published, not yet applied",
               "requests": ["r-7", "r-8"]}, {"Location": "/api/v1/requests/r-7"}),
        (202, {"state": "pending", "detail": "published, not yet applied",
               "allocated": [ROW], "requests": ["r-10"]},
         {"Location": "/api/v1/requests/r-10"}),
        (503, {"error": "unavailable", "detail": "the daemon is stopping",
               "allocated": [ROW], "requests": ["r-11"]}, {}),
        (200, b"<html>a login page</html>", {"Content-Type": "text/html"}),
        (200, b"<html>a login page</html>", {"Content-Type": "text/html"}),
        (201, b"<html>a login page</html>", {"Content-Type": "text/html"}),
        (200, b"<html>a login page</html>", {"Content-Type": "text/html"}),
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPAMCTL_")}
    env.update(IPAMCTL_URL=scripted.url + "/", IPAMCTL_TOKEN_FILE=token, USER="dora")

    def run(*args):
        done = subprocess.run([IPAMCTL] + list(args), capture_output=True,
                              text=True, env=env, timeout=60)
        return done.returncode, done.stdout, done.stderr

    try:
        status, out, err = run("--vrf", "blue", "reserve", "10.0.0.5", "-d", "gw",
                               "--if-available", "--if-match", '"e0"')
        assert status == OK and out == '10.0.0.5 (vrf blue)  reserved  "gw"\n', (out, err)
        sent = scripted.requests[-1]
        assert (sent["method"], sent["path"]) == ("PUT", "/api/v1/marks/blue/10.0.0.5")
        assert sent["body"] == {"status": "reserved", "description": "gw",
                                "if_available": True}
        assert sent["headers"]["Authorization"] == "Bearer s3cret"
        assert sent["headers"]["X-Requester"] == "dora"
        assert sent["headers"]["If-Match"] == '"e0"'

        status, out, err = run("quarantine", "2001:db8::5", "-r", "abuse 4711")
        assert status == ACCEPTED, (status, out, err)
        assert "accepted but not yet applied; its outcome: ipamctl request r-42" in err
        sent = scripted.requests[-1]
        assert (sent["method"], sent["path"]) == ("PUT", "/api/v1/marks/-/2001:db8::5")
        assert sent["body"] == {"status": "quarantine", "reason": "abuse 4711"}

        status, out, err = run("release", "10.0.0.5", "--requester", "eve")
        assert status == CONFLICT and "conflict (HTTP 409): held" in err, (status, err)
        assert out == 'the address now: 10.0.0.5 (vrf blue)  reserved  "gw"\n', out
        sent = scripted.requests[-1]
        assert (sent["method"], sent["path"], sent["body"]) == (
            "DELETE", "/api/v1/marks/-/10.0.0.5", None)
        assert sent["headers"]["X-Requester"] == "eve"

        status, out, err = run("show", "10.0.0.5")
        assert status == UNREACHABLE, (status, err)
        assert "unavailable (HTTP 503): Kafka is unreachable" in err, err
        status, out, err = run("show", "10.0.0.5")
        assert status == UNREACHABLE and "the daemon answered HTTP 500" in err, err

        status, out, err = run("allocate", "lan one", "-n", "2", "-d", "printers")
        assert status == OK, err
        sent = scripted.requests[-1]
        assert (sent["method"], sent["path"]) == ("POST",
                                                  "/api/v1/subnets/lan%20one/allocate")
        assert sent["body"] == {"count": 2, "description": "printers"}

        status, out, err = run("--json", "ls", "--all", "--status", "reserved",
                               "--status", "quarantine", "-q", "web 1", "--active",
                               "--limit", "1", "--vrf", "blue")
        assert status == OK, err
        assert [r["ip_address"] for r in json.loads(out)["items"]] == ["10.0.0.5",
                                                                      "10.0.0.6"]
        first, second = scripted.requests[-2:]
        query = urllib.parse.parse_qs(urllib.parse.urlparse(first["path"]).query)
        assert query == {"vrf": ["blue"], "status": ["reserved", "quarantine"],
                         "active": ["true"], "q": ["web 1"], "limit": ["1"]}, query
        query = urllib.parse.parse_qs(urllib.parse.urlparse(second["path"]).query)
        assert query["cursor"] == ["c1"], query

        status, out, err = run("stats")
        assert status == UNREACHABLE and "is not JSON" in err, (status, err)

        servers = os.path.join(directory, "servers.json")
        with open(servers, "w") as f:
            json.dump([{"id": 7, "hostname": "a", "nic_mac": ""}], f)
        status, out, err = run("populate", "--servers", servers, "--dry-run")
        assert status == OK, err
        sent = scripted.requests[-1]
        assert (sent["method"], sent["path"]) == ("POST", "/api/v1/import")
        assert sent["body"] == {"servers": [{"id": "7", "hostname": "a"}],
                                "subnets": [], "dry_run": True}
        assert "servers: 1 to create, 0 to update, 0 unchanged" in out, out

        # A refused import names every entity at fault.
        status, out, err = run("import", "--servers", servers)
        assert status == REFUSED, (status, err)
        assert err.splitlines() == [
            "ipamctl: bad_request (HTTP 400): 2 entities refused",
            "ipamctl:   servers[0].ip_address: not an address",
            "ipamctl:   subnets[1].cidr: missing"], err

        # An allocation cut short names what it holds.
        status, out, err = run("allocate", "lan", "-n", "3", "-d", "desks")
        assert status == CONFLICT and "only 1 of 3" in err, (status, err)
        assert out.splitlines()[0] == "reserved by this request, and still reserved:", out
        assert "10.0.0.5" in out, out
        assert "published, may still be applied: request r-9" in err, err

        # An allocation not applied in time: every request to follow.
        status, out, err = run("allocate", "lan", "-n", "2", "-d", "spares")
        assert status == ACCEPTED, (status, err)
        assert "their outcomes: ipamctl request r-7; ipamctl request r-8;" in err, err

        # Not applied in time, or cut short by a stop, after a first round
        # reserved an address: that address is named, and stays reserved.
        def allocate_holding(expected_status):
            status, out, err = run("allocate", "lan", "-n", "2", "-d", "spares")
            assert status == expected_status, (status, err)
            held = out.splitlines()
            assert held[0] == "reserved by this request, and still reserved:", out
            assert [line.split()[:3] for line in held[2:]] == [
                ["10.0.0.5", "blue", "reserved"]], out
            return err

        err = allocate_holding(ACCEPTED)
        assert "its outcome: ipamctl request r-10" in err, err
        err = allocate_holding(UNREACHABLE)
        assert "unavailable (HTTP 503): the daemon is stopping" in err, err
        assert "published, may still be applied: request r-11" in err, err

        # A write answered 200 with what is not the API's JSON (a proxy's
        # page, another service) did nothing anyone can tell: it fails.
        for argv in (("reserve", "10.0.0.5", "-d", "x"), ("--json", "release", "10.0.0.5"),
                     ("allocate", "lan", "-d", "x"), ("import", "--servers", servers)):
            status, out, err = run(*argv)
            assert status == UNREACHABLE and "is not JSON" in err, (argv, status, err)
        assert scripted.replies == []
    finally:
        scripted.close()


def test_export_follows_the_pages_and_stops_at_a_failed_one():
    """export --csv writes each page as it comes and follows Next-Cursor;
    export --json follows next_cursor, a row a line; a page that fails
    ends the export with its exit status, what came before it written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPAMCTL_")}

    def export(fmt, replies):
        scripted = Scripted(replies)
        try:
            done = subprocess.run([IPAMCTL, "--url", scripted.url, "export", fmt],
                                  capture_output=True, text=True, env=env, timeout=60)
            return done, [r["path"] for r in scripted.requests]
        finally:
            scripted.close()

    csv_type = {"Content-Type": "text/csv"}
    done, paths = export("--csv", [
        (200, b"vrf,ip_address\r\n,10.0.0.1\r\n", dict(csv_type, **{"Next-Cursor": "c1"})),
        (200, b",10.0.0.2\r\n", dict(csv_type, **{"Next-Cursor": "c2"})),
        (200, b",10.0.0.3\r\n", dict(csv_type, **{"Next-Cursor": ""}))])
    assert done.returncode == OK, done.stderr
    assert done.stdout == "vrf,ip_address\n,10.0.0.1\n,10.0.0.2\n,10.0.0.3\n", done.stdout
    assert paths == ["/api/v1/addresses?limit=1000&format=csv",
                     "/api/v1/addresses?limit=1000&format=csv&cursor=c1",
                     "/api/v1/addresses?limit=1000&format=csv&cursor=c2"], paths

    done, paths = export("--csv", [
        (200, b"vrf,ip_address\r\n,10.0.0.1\r\n", dict(csv_type, **{"Next-Cursor": "c1"})),
        (503, {"error": "unavailable", "detail": "PostgreSQL is away"}, {})])
    assert done.returncode == UNREACHABLE, (done.returncode, done.stderr)
    assert done.stdout == "vrf,ip_address\n,10.0.0.1\n", done.stdout
    assert "PostgreSQL is away" in done.stderr, done.stderr
    assert len(paths) == 2

    # An older daemon answers a page with the whole listing and no
    # Next-Cursor: right as the first answer, refused after it (its rows
    # would come twice).
    done, paths = export("--csv", [
        (200, b"vrf,ip_address\r\n,10.0.0.1\r\n,10.0.0.2\r\n", csv_type)])
    assert done.returncode == OK, done.stderr
    assert done.stdout == "vrf,ip_address\n,10.0.0.1\n,10.0.0.2\n", done.stdout
    done, paths = export("--csv", [
        (200, b"vrf,ip_address\r\n,10.0.0.1\r\n", dict(csv_type, **{"Next-Cursor": "c1"})),
        (200, b"vrf,ip_address\r\n,10.0.0.1\r\n,10.0.0.2\r\n", csv_type)])
    assert done.returncode == UNREACHABLE, (done.returncode, done.stderr)
    assert done.stdout == "vrf,ip_address\n,10.0.0.1\n", done.stdout
    assert "page 2 of the export came whole, with no Next-Cursor" in done.stderr, \
        done.stderr

    # Sorted by updated_at (no index serves it): one answer, no pages.
    scripted = Scripted([(200, b"vrf,ip_address\r\n,10.0.0.1\r\n", csv_type)])
    try:
        done = subprocess.run([IPAMCTL, "--url", scripted.url, "export", "--csv",
                               "--sort", "-updated_at"], capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == OK, done.stderr
        assert [r["path"] for r in scripted.requests] == \
            ["/api/v1/addresses?sort=-updated_at&format=csv"], scripted.requests
    finally:
        scripted.close()

    # The same cursor twice would never end.
    done, paths = export("--csv", [
        (200, b"h\r\n", dict(csv_type, **{"Next-Cursor": "c1"})),
        (200, b"", dict(csv_type, **{"Next-Cursor": "c1"}))])
    assert done.returncode == UNREACHABLE, done.returncode
    assert "the same cursor twice" in done.stderr, done.stderr

    row = dict(ROW)
    done, paths = export("--json", [
        (200, {"items": [row, dict(row, ip_address="10.0.0.6")], "next_cursor": "n1"}, {}),
        (200, {"items": [dict(row, ip_address="10.0.0.7")]}, {})])
    assert done.returncode == OK, done.stderr
    assert [r["ip_address"] for r in json.loads(done.stdout)] == \
        ["10.0.0.5", "10.0.0.6", "10.0.0.7"], done.stdout
    assert done.stdout.count("\n") == 5, done.stdout    # [, a row a line, ]
    assert paths == ["/api/v1/addresses?limit=1000",
                     "/api/v1/addresses?limit=1000&cursor=n1"], paths
    done, _ = export("--json", [(200, {"items": []}, {})])
    assert done.returncode == OK and json.loads(done.stdout) == [], done.stdout
    # Refused at once: nothing written, not even the array's start.
    done, _ = export("--json", [
        (401, {"error": "unauthorized", "detail": "a token is needed"}, {})])
    assert done.returncode == REFUSED and done.stdout == "", (done.returncode,
                                                             done.stdout)
    done, _ = export("--json", [
        (200, {"items": [row], "next_cursor": "n1"}, {}),
        (400, {"error": "bad_request", "field": "cursor",
               "detail": "cursor: not a cursor of this listing"}, {})])
    assert done.returncode == REFUSED, (done.returncode, done.stderr)
    assert done.stdout.startswith("[\n{") and not done.stdout.rstrip().endswith("]"), \
        done.stdout


def test_a_silent_daemon_and_a_full_disk_exit_4():
    """A daemon that takes the connection and then sends nothing (stopped,
    hung) is given up on after --timeout with exit 4 and a sentence that
    says so, not waited for forever; an export whose output cannot all be
    written (a full disk: /dev/full) exits 4, not 0 as if it were whole."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []

    def take():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=take, daemon=True).start()
    scripted = Scripted([(200, b"address,status\n" + b"10.0.0.5,reserved\n" * 2000,
                          {"Content-Type": "text/csv"})])
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPAMCTL_")}
    try:
        done = subprocess.run([IPAMCTL, "--url", "http://127.0.0.1:%d" %
                               listener.getsockname()[1], "--timeout", "2", "stats"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == UNREACHABLE, (done.returncode, done.stderr)
        assert "sent nothing for 2 s (--timeout)" in done.stderr, done.stderr
        with open("/dev/full", "w") as full:
            done = subprocess.run([IPAMCTL, "--url", scripted.url, "export", "--csv"],
                                  stdout=full, stderr=subprocess.PIPE, text=True,
                                  env=env, timeout=60)
        assert done.returncode == UNREACHABLE, (done.returncode, done.stderr)
        assert "standard output" in done.stderr, done.stderr
    finally:
        listener.close()
        for sock in held:
            sock.close()
        scripted.close()

if __name__ == "__main__":
    harness.main(globals())
