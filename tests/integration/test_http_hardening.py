"""The HTTP server's limits against the real daemon, while events flow: a
slowloris, a descriptor storm beyond the connection cap, CONNECT and other
methods answered at once, oversize bodies refused before they are sent,
accept errors that pause the listener without flooding the log; and the
route hook for the operator API through http_probe (daemon/http.c on a loop
of its own, with handlers that answer at once, later or never)."""

import json
import os
import random
import re
import resource
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import Daemon, Database, Kafka, Topics, wait_until
import harness

PROBE = os.environ.get("IPAM_HTTP_PROBE")

# Hundreds of client sockets: this process's own soft limit goes to its hard.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))


def server_event(sid, ip):
    return json.dumps({"specversion": "1.0", "id": "e-%s" % sid,
                       "source": "/tests/http", "type": "ipam.server.upserted",
                       "subject": sid, "entityversion": 1,
                       "data": {"hostname": "h" + sid, "ip_address": ip}})


def subnet_event(sid, cidr):
    return json.dumps({"specversion": "1.0", "id": "s-" + sid, "source": "/tests/http",
                       "type": "ipam.subnet.upserted", "subject": sid,
                       "data": {"name": "n" + sid, "cidr": cidr,
                                "static_ip_pools": []}})


class LimitedDaemon(Daemon):
    """The daemon under RLIMIT_NOFILE = nofile (soft and hard, as `ulimit -n`
    sets both), so that it cannot raise its own."""

    def __init__(self, *args, nofile, **kwargs):
        super().__init__(*args, **kwargs)
        self.nofile = nofile

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPAM_")}
        env.update(self.extra_env)
        self.log_file = open(self.log_path, "ab")
        limit = self.nofile
        self.proc = subprocess.Popen(
            [harness.BINARY, "--config", self.config_path],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                  (limit, limit)))
        return self


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def connection_cap(daemon):
    daemon.wait_log(r"http: at most \d+ connections")
    return int(re.search(r"http: at most (\d+) connections", daemon.log()).group(1))


class EventFlow(threading.Thread):
    """Server events, a few every tenth of a second, until stopped: the
    apply goes on while the HTTP server is under attack."""

    def __init__(self, topics, subnet_octet):
        super().__init__(daemon=True)
        self.kafka = Kafka()
        self.topics = topics
        self.octet = subnet_octet
        self.sent = 0
        self.running = True
        self.kafka.send(topics.subnets, "1", subnet_event("1", "10.%d.0.0/16" % self.octet))
        self.kafka.flush()

    def run(self):
        while self.running and self.sent < 60000:
            for _ in range(20):
                i = self.sent
                self.kafka.send(self.topics.servers, str(i), server_event(
                    str(i), "10.%d.%d.%d" % (self.octet, i // 250, i % 250 + 1)))
                self.sent += 1
            self.kafka.producer.poll(0)
            time.sleep(0.1)
        self.kafka.flush()

    def stop(self):
        self.running = False
        self.join(60)
        return self.sent


def applied_servers(db):
    return db.scalar("SELECT count(*) FROM ipam_state.server") or 0


def assert_applied_and_stop(daemon, db, sent):
    """Every event sent was applied, nothing ran out of descriptors, and
    the daemon stops cleanly."""
    wait_until(lambda: applied_servers(db) == sent, 120, "%d servers applied" % sent)
    assert sent >= 1000, sent
    assert not daemon.log_contains(r"Too many open files")
    assert daemon.stop() == 0


def raw_exchange(port, data, timeout=5.0):
    """Sends bytes and reads until the server closes: (response bytes, True
    when the server closed, False when the read timed out)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    response = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return response, True
            response += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        return response, True
    finally:
        sock.close()
    return response, False


def parse_response(response):
    """(status, headers dict in lower case, body bytes) of one response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def healthz(port, timeout=10):
    """One GET /healthz on a connection of its own: its status, or the error."""
    try:
        response, _ = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                   b"Connection: close\r\n\r\n", timeout)
        return parse_response(response)[0] if response else "no answer"
    except OSError as error:
        return "error %s" % error


class Slowloris(threading.Thread):
    """Clients that send a request line, then one header byte every
    `interval` seconds, and open a new connection whenever the server
    closes one.  Records, for every connection, how long it stayed open."""

    def __init__(self, port, clients, interval):
        super().__init__(daemon=True)
        self.port = port
        self.clients = clients
        self.interval = interval
        self.running = True
        self.lifetimes = []        # connections the server closed
        self.answers = {}          # status line -> count
        self.first_round = set()
        self.first_round_closed = 0
        self.opened = 0

    def _open(self, selector, first=False):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        state = {"opened": time.monotonic(), "next": time.monotonic(),
                 "started": False, "first": first}
        selector.register(sock, selectors.EVENT_READ, state)
        self.opened += 1
        return sock

    def _closed(self, selector, sock, state, data):
        selector.unregister(sock)
        sock.close()
        self.lifetimes.append(time.monotonic() - state["opened"])
        line = data.split(b"\r\n", 1)[0].decode("latin-1") if data else "(none)"
        self.answers[line] = self.answers.get(line, 0) + 1
        if state["first"]:
            self.first_round_closed += 1

    def run(self):
        selector = selectors.DefaultSelector()
        for _ in range(self.clients):
            self._open(selector, first=True)
        while self.running:
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                state = key.data
                if now < state["next"]:
                    continue
                try:
                    key.fileobj.send(b"X" if state["started"] else
                                     b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    state["started"] = True
                except BlockingIOError:
                    pass
                except OSError:
                    pass   # the read side sees the close
                state["next"] = now + self.interval
            for key, _ in selector.select(0.1):
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/"):
                    # An answer (408) comes before the close; read to EOF.
                    rest = data
                    if data:
                        key.fileobj.setblocking(True)
                        key.fileobj.settimeout(5)
                        try:
                            while True:
                                more = key.fileobj.recv(4096)
                                if not more:
                                    break
                                rest += more
                        except OSError:
                            pass
                    self._closed(selector, key.fileobj, key.data, rest)
                    self._open(selector)
        self.still_open = [time.monotonic() - k.data["opened"]
                           for k in selector.get_map().values()]
        for key in list(selector.get_map().values()):
            key.fileobj.close()

    def stop(self):
        self.running = False
        self.join(30)


def test_http_slowloris_is_cut_off_while_events_flow():
    """300 clients each sending a header byte every 2 s (under the 10 s per
    read that held them open before): each is closed with a 408 once its
    request's deadline passes, /healthz answers throughout and every event
    is applied."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        flow = EventFlow(topics, 61)
        flow.start()
        loris = Slowloris(port, clients=300, interval=2.0)
        loris.start()
        began = time.monotonic()
        answers = []
        # Well past the 10 s deadline, so that the first 300 must have been
        # cut off by the server for the test to pass.
        while time.monotonic() - began < 28:
            answers.append(healthz(port))
            time.sleep(0.5)
        loris.stop()
        sent = flow.stop()
        assert len(answers) >= 20 and all(a == 200 for a in answers), answers
        assert loris.first_round_closed == 300, (loris.first_round_closed,
                                                 loris.answers)
        assert loris.answers.get("HTTP/1.1 408 Request Timeout", 0) >= 300, loris.answers
        # Generous bounds that show each connection came to an end: the
        # deadline is 10 s; none lived to 25 s.
        assert max(loris.lifetimes) < 25, max(loris.lifetimes)
        assert max(loris.still_open, default=0) < 25, max(loris.still_open)
        assert_applied_and_stop(daemon, db, sent)
    finally:
        daemon.close()
        db.close()


def test_http_descriptor_storm_beyond_the_cap_while_events_flow():
    """Under `ulimit -n 512` the cap is 128 connections; 400 idle
    connections and more: the ones that waited longest are evicted, the
    daemon's descriptors stay well below its limit, /healthz answers and
    every event is applied."""
    db, topics = Database(), Topics()
    daemon = LimitedDaemon(db, topics, nofile=512).start()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        cap = connection_cap(daemon)
        assert cap == (512 - 256) // 2, cap
        assert not daemon.log_contains(r"RLIMIT_NOFILE raised")
        pid = daemon.proc.pid
        baseline = open_fds(pid)
        flow = EventFlow(topics, 62)
        flow.start()
        storm = []
        most_fds = 0
        closed = 0
        answers = []
        began = time.monotonic()
        while time.monotonic() - began < 20:
            # Keep 400 connections open (or trying to be): far beyond the cap.
            while len(storm) < 400:
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                storm.append(sock)
            for sock in list(storm):
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/"):
                    closed += 1
                    storm.remove(sock)
                    sock.close()
            most_fds = max(most_fds, open_fds(pid))
            answers.append(healthz(port))
            time.sleep(0.2)
        sent = flow.stop()
        for sock in storm:
            sock.close()
        assert len(answers) >= 20 and all(a == 200 for a in answers), answers
        assert closed >= 400, closed
        # The HTTP server never holds more than its cap (and one more for
        # a moment while it evicts); the rest is PostgreSQL, Kafka, files.
        assert most_fds <= baseline + cap + 16, (most_fds, baseline, cap)
        assert most_fds < 512 - 100, most_fds
        assert_applied_and_stop(daemon, db, sent)
    finally:
        daemon.close()
        db.close()


def read_reply(sock, timeout):
    """Reads one reply with a Content-Length, or until the server closes:
    the bytes read (b"" when the server closed with nothing said)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if length and len(body) >= int(length.group(1)):
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def trickle(sock, data, seconds, pieces=10):
    """Sends data in pieces over seconds."""
    step = (len(data) + pieces - 1) // pieces
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])
        time.sleep(seconds / pieces)


def test_http_kept_alive_connections_idle_without_charging_the_next_request():
    """On a connection kept alive, the idle time after a reply does not
    count against the next request: one that starts 6 s after the reply
    and takes 6 s to send its body is answered, not cut off with a 408 at
    10 s from the reply.  A connection left idle is closed after its 10 s
    with nothing said (a 408 there would be read as the answer to the
    request its client may be sending at that moment)."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        healthz_request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        for sock in (idle, busy):
            sock.sendall(healthz_request)
            assert read_reply(sock, 10).startswith(b"HTTP/1.1 200"), sock
        answered = time.monotonic()
        body = b"x" * 60000
        time.sleep(6)
        busy.sendall(b"PUT /api/v1/http-hardening HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        trickle(busy, body, 6)
        reply = read_reply(busy, 10)
        assert time.monotonic() - answered > 11
        assert reply.startswith(b"HTTP/1.1 ") and not reply.startswith(b"HTTP/1.1 408"), \
            reply[:200]
        # The idle one was closed meanwhile, with nothing said.
        assert read_reply(idle, 10) == b""
        for sock in (idle, busy):
            sock.close()
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_http_eviction_takes_idle_connections_before_an_upload():
    """At the cap (`ulimit -n 512`: 128 connections), connections that
    have sent nothing are evicted, with nothing said, before one that is
    sending its request: an upload under way while idle sockets pile up
    beyond the cap is answered."""
    db, topics = Database(), Topics()
    daemon = LimitedDaemon(db, topics, nofile=512).start()
    idle = []
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        cap = connection_cap(daemon)
        upload = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = b"x" * 60000
        upload.sendall(b"PUT /api/v1/http-hardening HTTP/1.1\r\nHost: t\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body))
        upload.sendall(body[:1000])
        time.sleep(0.5)
        for _ in range(cap + 72):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            idle.append(sock)
        trickle(upload, body[1000:], 4)
        reply = read_reply(upload, 10)
        assert reply.startswith(b"HTTP/1.1 ") and b"too many connections" not in reply, \
            reply[:200]
        upload.close()
        # Idle connections went, and none was told anything.
        said = 0
        for sock in idle:
            try:
                said += len(sock.recv(4096))
            except (BlockingIOError, InterruptedError, OSError):
                pass
        assert said == 0, said
        assert daemon.http_get("/healthz") == (200, "ok\n")
    finally:
        for sock in idle:
            sock.close()
        daemon.close()
        db.close()


def test_http_connect_and_unknown_methods_are_answered_at_once():
    """CONNECT (before its headers end, or with a body announced), TRACE and
    an unknown method get their answer and a closed connection at once, not
    after a timeout; an allowed method on /healthz that it does not serve
    gets 405 naming what it allows (Allow, a JSON error), and the
    connection goes on."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        cases = [
            (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n", 405),
            (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
             b"Content-Length: 100000\r\n\r\n", 405),
            (b"TRACE / HTTP/1.1\r\nHost: t\r\n", 405),
            (b"BREW /pot HTTP/1.1\r\n", 501),
        ]
        for request, expected in cases:
            began = time.monotonic()
            response, closed = raw_exchange(port, request, timeout=5)
            assert closed, (request, response)
            status, headers, body = parse_response(response)
            assert status == expected, (request, response)
            assert headers["connection"] == "close", headers
            assert "CONNECT" not in headers["allow"] and "GET" in headers["allow"]
            assert json.loads(body)["error"] == "method_not_allowed", body
            assert time.monotonic() - began < 5
        for path in ("/healthz", "/readyz", "/metrics"):
            response, closed = raw_exchange(
                port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 2\r\n\r\nhiGET /healthz HTTP/1.1\r\nHost: t\r\n"
                b"Connection: close\r\n\r\n")
            refusal, _, after = response.partition(b"}\n")
            status, headers, body = parse_response(refusal + b"}\n")
            assert status == 405 and headers["allow"] == "GET, HEAD", response
            assert headers["content-type"] == "application/json", headers
            assert json.loads(body)["error"] == "method_not_allowed", body
            assert closed and after.startswith(b"HTTP/1.1 200"), response
        assert daemon.http_get("/healthz") == (200, "ok\n")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_http_an_empty_line_where_the_request_line_belongs_is_a_bad_request():
    """A bare newline (or CRLF, or a newline ahead of a request) as a
    connection's first bytes: 400 naming the request line, the connection
    closed, and the daemon still serving."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        for request in (b"\n", b"\r\n",
                        b"\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"):
            response, closed = raw_exchange(port, request, timeout=5)
            assert closed and response, (request, response)
            status, headers, body = parse_response(response)
            assert status == 400, (request, response)
            assert json.loads(body)["error"] == "bad_request", body
            assert daemon.http_get("/healthz") == (200, "ok\n")
        # The rule, not only the case: heads made of the bytes a parser
        # splits on, in any order, never stop the daemon.
        seed = int(os.environ.get("IPAM_TEST_SEED", time.time_ns() % 100000))
        rng = random.Random(seed)
        pieces = [b"\r", b"\n", b"\r\n", b" ", b":", b"\t", b"GET", b"/",
                  b"HTTP/1.1", b"Content-Length: 3", b"Host", b"\x00", b"%"]
        for _ in range(400):
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(data)
        assert daemon.http_get("/healthz") == (200, "ok\n"), "seed %d" % seed
        assert daemon.stop() == 0, "seed %d" % seed
    finally:
        daemon.close()
        db.close()


def test_http_head_replies_carry_no_body_on_a_kept_alive_connection():
    """HEAD on every kind of path (the probes, the page's files and its
    404, the API) is answered with headers only, so that a client keeping
    the connection reads the reply to its next request as that reply:
    a body after HEAD's headers was read as the next status line."""
    import http.client
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, config={
        "api": {"web_dir": os.path.join(harness.ROOT, "web")}}).start()
    try:
        daemon.wait_ready()
        conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port(), timeout=10)
        seen = {}
        for path in ("/healthz", "/readyz", "/metrics", "/", "/missing.js",
                     "/api/v1/stats"):
            conn.request("HEAD", path)
            head = conn.getresponse()
            assert head.read() == b"", path
            seen[path] = head.status
            length = head.getheader("Content-Length")
            # The length GET would send, for the files and the probes.
            if path in ("/healthz", "/"):
                conn.request("GET", path)
                got = conn.getresponse()
                assert length == str(len(got.read())), (path, length)
            conn.request("GET", "/healthz")
            after = conn.getresponse()
            assert (after.status, after.read()) == (200, b"ok\n"), path
        conn.close()
        assert seen["/healthz"] == 200 and seen["/metrics"] == 200, seen
        assert seen["/"] == 200 and seen["/missing.js"] == 404, seen
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


WRITE_TOKEN = "w-" + "9" * 30


def test_http_page_paths_with_percent_encoding_name_no_file():
    """The page's files are named without percent-encoding: "/%00" is not
    the index and "/app.js%00.txt" is not app.js (a decoded %00 ended the
    path early), nor is "/%61pp.js"; the plain names are served."""
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics, config={
        "api": {"web_dir": os.path.join(harness.ROOT, "web")}}).start()
    try:
        daemon.wait_ready()
        for path in ("/%00", "/app.js%00.txt", "/%61pp.js", "/index.html%00"):
            status, body = daemon.http_get(path)
            assert (status, body) == (404, "not found\n"), (path, status, body[:100])
        for path in ("/", "/app.js"):
            assert daemon.http_get(path)[0] == 200, path
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def daemon_with_write_token():
    """A fresh database, the file of WRITE_TOKEN (the caller removes it)
    and a daemon started with it."""
    db = Database()
    token_file = tempfile.NamedTemporaryFile("w", suffix=".token", delete=False)
    token_file.write(WRITE_TOKEN + "\n")
    token_file.close()
    daemon = Daemon(db, Topics(), config={
        "api": {"write_token_file": token_file.name}}).start()
    return db, token_file, daemon


def test_http_oversize_bodies_are_refused_before_they_are_sent():
    """A body over its route's limit (64 KiB; 32 MiB for /api/v1/import)
    gets 413 with a JSON error as soon as the headers are in, before a byte
    of it is sent; a body over 64 KiB without the write token gets 401 as
    soon, so that no client without it makes the server hold 32 MiB; bodies
    at the limit are read; Transfer-Encoding gets 411; heads over 16 KiB
    or over 100 header lines get 431."""
    db, token_file, daemon = daemon_with_write_token()
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        refused = [
            ("/api/v1/addresses", 64 * 1024 + 1),
            ("/api/v1/import", 32 * 1024 * 1024 + 1),
            ("/api/v1/import/servers", 64 * 1024 + 1),  # only the import's path
            ("/api/v1/importzz", 64 * 1024 + 1),
            ("/api/v1/%69mport", 40 * 1024 * 1024),     # the decoded path counts
            ("/healthz", 1 << 40),
        ]
        for path, length in refused:
            request = ("POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                       % (path, length)).encode()
            response, closed = raw_exchange(port, request, timeout=5)
            assert closed, (path, response)
            status, headers, body = parse_response(response)
            assert status == 413, (path, response)
            assert headers["content-type"] == "application/json"
            error = json.loads(body)
            assert error["error"] == "too_large" and str(length) in error["detail"], error
        # Within the import's limit, over 64 KiB: the write token, or 401
        # before the body (none, another token, the token and a second).
        unauthorized = [
            "",
            "Authorization: Bearer r-nope\r\n",
            "Authorization: Bearer %s\r\nAuthorization: Bearer x\r\n" % WRITE_TOKEN,
            "Authorization: Bearer x\r\nAuthorization: Bearer %s\r\n" % WRITE_TOKEN,
        ]
        for auth in unauthorized:
            request = ("POST /api/v1/import HTTP/1.1\r\nHost: t\r\n%s"
                       "Content-Length: %d\r\n\r\n" % (auth, 1024 * 1024)).encode()
            response, closed = raw_exchange(port, request, timeout=5)
            assert closed, (auth, response)
            status, headers, body = parse_response(response)
            assert status == 401 and headers["www-authenticate"] == "Bearer", (auth, response)
            assert json.loads(body)["error"] == "unauthorized", body
        # A client that sends its body without waiting still reads the
        # refusal (the server drops the rest for a while before it closes),
        # also when its refused request follows another on the connection
        # (pipelined): the first's reply, then the refusal.
        oversize = (b"POST /api/v1/addresses HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Length: 8000000\r\n\r\n" + b"b" * 8000000)
        response, closed = raw_exchange(port, oversize, timeout=30)
        assert closed and parse_response(response)[0] == 413, response
        response, closed = raw_exchange(
            port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + oversize, timeout=30)
        assert closed, response[:300]
        first, _, second = response.partition(b"ok\n")
        assert first.startswith(b"HTTP/1.1 200"), response[:300]
        assert parse_response(second)[0] == 413, response[:600]
        # At the limit: read whole and handed on (whatever the route, or the
        # 404 without one, answers; the exact echo is in the probe's test).
        for path, length, auth in (
                ("/api/v1/http-hardening", 64 * 1024,
                 "Authorization: Bearer %s\r\n" % WRITE_TOKEN),
                ("/api/v1/import", 1024 * 1024, "Authorization: Bearer %s\r\n" % WRITE_TOKEN)):
            request = ("PUT %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n" % (path, auth, length)).encode() + \
                b"x" * length
            response, closed = raw_exchange(port, request, timeout=30)
            assert closed and response, path
            status = parse_response(response)[0]
            assert status not in (401, 411, 413, 414, 431, 501, 505), (path, response[:300])
        response, closed = raw_exchange(
            port, b"POST /api/v1/marks HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
        status, _, body = parse_response(response)
        assert closed and status == 411 and json.loads(body)["error"] == "length_required"
        response, closed = raw_exchange(
            port, b"GET /api/v1/addresses HTTP/1.1\r\nHost: t\r\n" +
            b"X-Filler: " + b"y" * 20000 + b"\r\n\r\n")
        assert closed and parse_response(response)[0] == 431, response[:200]
        # Many small headers within the bytes: 100 lines pass (Host and
        # Connection among them), 101 do not
        # (each would be a list entry of evhttp's).
        for lines, refused in ((98, False), (99, True), (2000, True)):
            response, closed = raw_exchange(
                port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" +
                b"a: b\r\n" * lines + b"Connection: close\r\n\r\n")
            status, _, body = parse_response(response)
            if refused:
                assert closed and status == 431, (lines, response[:200])
                assert json.loads(body)["detail"] == "more than 100 header lines", body
            else:
                assert status == 200, (lines, response[:200])
        assert daemon.http_get("/healthz") == (200, "ok\n")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()
        os.unlink(token_file.name)


def test_http_large_bodies_held_at_once_are_bounded():
    """Bodies over 64 KiB (imports, with the write token) are held whole
    before their handler sees them: at most four at once, from their head
    to their reply.  A fifth is refused with 503 and Retry-After as soon
    as its head is in, before its body is sent; once one of the four is
    gone (its client closed mid-body), a new one is taken again."""
    db, token_file, daemon = daemon_with_write_token()
    held = []
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        head = ("POST /api/v1/import HTTP/1.1\r\nHost: t\r\n"
                "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                "Content-Length: 33554431\r\n\r\n" % WRITE_TOKEN).encode()

        def large_bodies():
            status, text = daemon.http_get("/metrics")
            assert status == 200
            match = re.search(r"(?m)^ipam_syncd_http_large_bodies (\d+)$", text)
            return int(match.group(1))

        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(head + b" " * 1000)
            held.append(sock)
        wait_until(lambda: large_bodies() == 4, 30, "four bodies held")
        response, closed = raw_exchange(port, head)
        status, headers, body = parse_response(response)
        assert closed and status == 503, response[:300]
        assert headers.get("retry-after") == "5", headers
        assert json.loads(body)["error"] == "unavailable", body
        assert "4 bodies over 65536 bytes" in json.loads(body)["detail"], body

        held.pop().close()
        wait_until(lambda: large_bodies() == 3, 30, "the closed one to be let go")
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head)
        held.append(sock)
        wait_until(lambda: large_bodies() == 4, 30, "a new one to be taken")
        for sock in held:
            sock.close()
        held = []
        wait_until(lambda: large_bodies() == 0, 30, "every body to be let go")
        assert daemon.http_get("/healthz") == (200, "ok\n")
        assert daemon.stop() == 0
    finally:
        for sock in held:
            sock.close()
        daemon.close()
        db.close()
        os.unlink(token_file.name)


def rss_kib(pid):
    """The resident set of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def replies_until_closed(sock, timeout=30):
    """Every reply until the server closes: their statuses and the last
    one's body."""
    data = b""
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    statuses = [int(m) for m in re.findall(rb"(?m)^HTTP/1\.1 (\d{3}) ", data)]
    return statuses, data.rpartition(b"\r\n\r\n")[2]


def test_http_requests_sent_ahead_of_their_replies_are_bounded():
    """Behind a request its handler holds (or whose reply the client does
    not read), what the client sends waits unread: at most eight requests
    (the held one with them) and 256 KiB; the one past either is refused
    with 429 after the replies before it, and the connection closes. A
    flood of 24 MiB behind a held request leaves the server's memory where
    it was."""
    # Under AddressSanitizer freed memory waits in its quarantine (256 MB)
    # before it is used again: the resident set would count the bytes
    # read and dropped after the refusal.
    asan = os.environ.get("ASAN_OPTIONS")
    probe = Probe(env={"ASAN_OPTIONS": (asan + ":" if asan else "") +
                       "quarantine_size_mb=0"})
    try:
        # Twenty requests behind one held for 2 s: seven wait, the next
        # is refused.
        sock = socket.create_connection(("127.0.0.1", probe.port))
        sock.sendall(b"GET /later?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n" +
                     b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n" * 20)
        statuses, last = replies_until_closed(sock)
        sock.close()
        assert statuses == [200] * 8 + [429], statuses
        error = json.loads(last)
        assert error["error"] == "too_many_requests", error
        assert "more than 8 requests sent ahead" in error["detail"], error
        assert probe.counters()["refused_pipelined"] == 1

        # A flood with bodies behind a reply of 8 MiB the client does not
        # read (the server reads on while it writes): the fifth request
        # passes 256 KiB before the count of eight is reached.
        start = rss_kib(probe.proc.pid)
        sock = socket.create_connection(("127.0.0.1", probe.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)
        filler = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 60000" \
            b"\r\n\r\n" + b"f" * 60000
        sent = 0
        try:
            while sent < 24 * 1024 * 1024:
                sock.sendall(filler * 8)
                sent += len(filler) * 8
        except OSError:
            pass    # the server closed after its refusal
        grown = rss_kib(probe.proc.pid) - start - 8 * 1024 * 1025 // 1024
        statuses, last = replies_until_closed(sock)
        sock.close()
        assert statuses == [200] * 5 + [429], statuses
        assert "more than 262144 bytes sent ahead" in json.loads(last)["detail"], last
        assert grown < 16 * 1024, "the server grew by %d KiB" % grown
        assert probe.counters()["refused_pipelined"] == 2
    finally:
        probe.close()
    # The daemon counts them by that reason.
    db, topics = Database(), Topics()
    daemon = Daemon(db, topics).start()
    try:
        daemon.wait_ready()
        _, text = daemon.http_get("/metrics")
        assert re.search(r'(?m)^ipam_syncd_http_requests_refused_total'
                         r'\{reason="pipelined"\} 0$', text), text
        assert daemon.stop() == 0
    finally:
        daemon.close()
        db.close()


def test_http_accept_errors_pause_the_listener_without_flooding_the_log():
    """With its descriptors exhausted (its soft limit lowered under it while
    it runs under `ulimit -n 512`), the daemon's accept fails with EMFILE:
    the listener pauses, one line is logged, not millions; once descriptors
    are back it accepts again and events are still applied."""
    db, topics, kafka = Database(), Topics(), Kafka()
    daemon = LimitedDaemon(db, topics, nofile=512).start()
    clients = []
    try:
        daemon.wait_ready()
        port = daemon.http_port()
        pid = daemon.proc.pid
        kafka.send(topics.subnets, "1", subnet_event("1", "10.63.0.0/16"))
        kafka.flush()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam_state.subnet") == 1,
                   60, "the subnet")
        highest = max(int(fd) for fd in os.listdir("/proc/%d/fd" % pid))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 1, 512))
        try:
            # Connections wait in the backlog; the accepts that fill the
            # holes under the limit succeed, then accept fails.
            for _ in range(64):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                clients.append(sock)
            daemon.wait_log(r"http: accept: Too many open files", 15)
            # A while under the condition: the listener pauses and retries.
            time.sleep(4)
            log = daemon.log()
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (512, 512))
        assert len(re.findall(r"http: accept", log)) == 1, \
            re.findall(r".*http: accept.*", log)
        assert "Error from accept() call" not in log
        for sock in clients:
            sock.close()
        wait_until(lambda: healthz(port) == 200, 30, "/healthz after the limit is back")
        daemon.wait_log(r"http: accepting again after \d+ failed accepts", 30)
        failed = int(re.search(r"accepting again after (\d+) failed accepts",
                               daemon.log()).group(1))
        # Paused 100 ms, doubling to 2 s: a handful of retries in 4 s, not
        # a busy loop.
        assert 1 <= failed <= 20, failed
        kafka.send(topics.servers, "1", server_event("1", "10.63.0.1"))
        kafka.flush()
        wait_until(lambda: applied_servers(db) == 1, 60, "the server applied")
        assert daemon.stop() == 0
    finally:
        for sock in clients:
            sock.close()
        daemon.close()
        db.close()


class Probe:
    """http_probe: daemon/http.c with route handlers of the test's own."""

    def __init__(self, reply_seconds=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="http-probe-")
        self.log_path = os.path.join(self.dir, "probe.log")
        self.log_file = open(self.log_path, "ab")
        argv = [PROBE] + ([str(reply_seconds)] if reply_seconds else [])
        self.proc = subprocess.Popen(argv, stdout=self.log_file,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        wait_until(lambda: re.search(r"listening on \S+:(\d+)", self.log())
                   or self.proc.poll() is not None, 10, "the probe's port")
        self.port = int(re.search(r"listening on \S+:(\d+)", self.log()).group(1))

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def counters(self):
        response, _ = raw_exchange(self.port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n"
                                   b"Connection: close\r\n\r\n")
        _, _, body = parse_response(response)
        return {k: int(v) for k, v in (line.split() for line in body.decode().splitlines())}

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


def read_responses(sock, count, timeout=10):
    """Reads `count` responses with Content-Length bodies off one socket."""
    sock.settimeout(timeout)
    data = b""
    responses = []
    while len(responses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            status, headers, _ = parse_response(data[:head_end + 4])
            length = int(headers.get("content-length", "0"))
            if len(data) >= head_end + 4 + length:
                responses.append((status, data[head_end + 4:head_end + 4 + length]))
                data = data[head_end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses


def test_http_route_handlers_answer_later_and_hear_of_clients_that_left():
    """The route hook: decoded paths, every served method, bodies read whole,
    replies from a timer on a kept-alive connection, pipelined requests in
    order, a refused request after good ones answered after them; a client
    that leaves while its handler holds the request is told to the handler
    (gone), and so is every held request when the server is freed."""
    if not PROBE:
        raise SystemExit("IPAM_HTTP_PROBE is not set (run through ctest)")
    probe = Probe()
    try:
        port = probe.port
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /later?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 1) == [(200, b"later\n")]
        body = b"z" * 65536
        sock.sendall(b"PATCH /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 65536\r\n\r\n" + body)
        assert read_responses(sock, 1) == [(200, b"65536\n")]
        for method in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"):
            sock.sendall(method + b" /api/v1/a%20b/c?x=1 HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Length: 0\r\n\r\n")
            if method == b"HEAD":
                sock.settimeout(10)
                head = sock.recv(4096)
                assert head.startswith(b"HTTP/1.1 200"), head
                continue
            assert read_responses(sock, 1) == [(200, b"path /api/v1/a b/c\n")], method
        # Pipelined: three requests in one write, answered in order.
        sock.sendall(b"GET /later?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_responses(sock, 3) == [(200, b"later\n"), (200, b"3\n"),
                                           (200, b"path /x\n")]
        # A refused request behind good ones: they are answered first, then
        # the refusal, then the close.
        sock.sendall(b"GET /later?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"CONNECT example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        responses = read_responses(sock, 3)
        assert [r[0] for r in responses] == [200, 405], responses
        assert sock.recv(100) == b""
        sock.close()

        # A client that leaves while the handler holds its request.
        before = probe.counters()
        left = socket.create_connection(("127.0.0.1", port))
        left.sendall(b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_until(lambda: probe.counters()["routed"] > before["routed"], 10, "routed")
        left.close()
        wait_until(lambda: probe.counters()["gone"] == before["gone"] + 1, 10,
                   "the handler told its client left")
        counters = probe.counters()
        assert counters["closed_client_gone"] == before["closed_client_gone"] + 1
        assert counters["connections_open"] == 1, counters   # this scrape

        # Held requests when the server stops: gone for each, exit 0.
        held = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n")
            held.append(s)
        wait_until(lambda: probe.counters()["routed"] >= counters["routed"] + 3, 10,
                   "three held requests")
        probe.proc.send_signal(signal.SIGTERM)
        assert probe.proc.wait(10) == 0, probe.log()[-2000:]
        assert re.search(r"probe: stopped, gone %d, still held 0" % (counters["gone"] + 3),
                         probe.log()), probe.log()[-2000:]
        for s in held:
            s.close()
    finally:
        probe.close()



def test_http_reply_deadline_answers_503_and_tells_the_handler():
    """A handler that holds a request past the reply deadline (1 s here,
    http_set_reply_seconds): the client gets a JSON 503 and a close, the
    handler is told (gone), and its late reply only frees the request."""
    if not PROBE:
        raise SystemExit("IPAM_HTTP_PROBE is not set (run through ctest)")
    probe = Probe(reply_seconds=1)
    try:
        response, closed = raw_exchange(
            probe.port, b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n", timeout=10)
        assert closed, response
        status, headers, body = parse_response(response)
        assert status == 503 and json.loads(body)["error"] == "timeout", response
        counters = probe.counters()
        assert counters["gone"] == 1 and counters["closed_reply_deadline"] == 1, counters
        # A request answered in time on the same server is untouched.
        response, closed = raw_exchange(
            probe.port, b"GET /later?ms=100 HTTP/1.1\r\nHost: t\r\n"
            b"Connection: close\r\n\r\n", timeout=10)
        assert closed and parse_response(response)[0] == 200, response
        probe.proc.send_signal(signal.SIGTERM)
        assert probe.proc.wait(10) == 0, probe.log()[-2000:]
    finally:
        probe.close()


if __name__ == "__main__":
    harness.main(globals())
