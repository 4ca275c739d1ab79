"""The operator API (/api/v1, docs/API.md) against the real daemon, the
real PostgreSQL and the real Kafka: reads and their errors, tokens and
scopes, reservations that race, allocations under concurrency, imports,
writes while PostgreSQL is away, and the OpenAPI document against what
the daemon serves."""

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg2

import harness
from harness import Daemon, Database, Kafka, Topics, wait_caught_up, wait_until
from test_property import RebuildDaemon
from test_sync import event

READ_TOKEN = "r-" + "5" * 30
WRITE_TOKEN = "w-" + "7" * 30


class Api:
    """One daemon with tokens, and a small client of its API."""

    def __init__(self, tokens=True, config=None, db=None, topics=None, **daemon_args):
        self.db = db or Database()
        self.topics = topics or Topics()
        self.kafka = Kafka()
        self.sent = 0
        self.dir = tempfile.mkdtemp(prefix="ipamd-api-")
        sections = {"api": {}}
        if tokens:
            for scope, token in (("read", READ_TOKEN), ("write", WRITE_TOKEN)):
                path = os.path.join(self.dir, scope + ".token")
                with open(path, "w") as f:
                    f.write(token + "\n")
                sections["api"][scope + "_token_file"] = path
        for section, values in (config or {}).items():
            sections.setdefault(section, {}).update(values)
        self.daemon = Daemon(self.db, self.topics, directory=self.dir,
                             config=sections, **daemon_args).start()
        self.daemon.wait_ready()
        self.port = self.daemon.http_port()

    def call(self, method, path, body=None, token=WRITE_TOKEN, headers=None,
             raw=False, timeout=30):
        """One request: (status, parsed JSON or text, response headers)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text, got = response.status, response.read().decode(), \
                    response.headers
        except urllib.error.HTTPError as error:
            status, text, got = error.code, error.read().decode(), error.headers
        if raw or not text or got.get("Content-Type", "").startswith("text/csv"):
            return status, text, got
        return status, json.loads(text), got

    def send(self, topic, key, value):
        self.kafka.send(topic, key, value)
        self.sent += 1

    def subnet(self, sid, cidr, pools, vrf=None):
        data = {"name": "net-" + sid, "cidr": cidr, "static_ip_pools": pools}
        if vrf:
            data["vrf"] = vrf
        self.send(self.topics.subnets, sid, event("subnet.upserted", sid, data))

    def server(self, sid, ip, hostname=None):
        data = {"hostname": hostname or "host-" + sid, "ip_address": ip,
                "nic_mac": None, "device_type": "vm", "manufacture": "qemu"}
        self.send(self.topics.servers, sid, event("server.upserted", sid, data))

    def settle(self):
        """Waits until every message this test sent itself is applied."""
        self.kafka.flush()
        wait_caught_up(self.db, self.daemon.group, self.sent)

    def close(self):
        status = self.daemon.stop()
        self.daemon.close()
        self.db.close()
        assert status == 0, status


def test_reads_filters_and_errors():
    api = Api()
    try:
        api.subnet("lan", "127.97.0.0/24", ["127.97.0.1-127.97.0.20"])
        api.server("1", "127.97.0.5", hostname="web-1")
        api.server("2", "127.97.0.200", hostname="odd,name")
        api.server("3", "127.98.0.1")          # in no subnet
        api.settle()

        status, page, _ = api.call("GET", "/api/v1/addresses?limit=5&count=true",
                                   token=READ_TOKEN)
        assert status == 200, page
        assert page["total"] == 21 and len(page["items"]) == 5
        seen = [row["ip_address"] for row in page["items"]]
        while "next_cursor" in page:
            status, page, _ = api.call("GET", "/api/v1/addresses?limit=5&cursor="
                                       + page["next_cursor"], token=READ_TOKEN)
            assert status == 200, page
            seen += [row["ip_address"] for row in page["items"]]
        assert len(seen) == 21 == len(set(seen))

        status, page, _ = api.call("GET", "/api/v1/addresses?status=allocated"
                                   "&status=reserved", token=READ_TOKEN)
        assert sorted(r["server_id"] for r in page["items"]) == ["1", "2"]
        status, page, _ = api.call("GET", "/api/v1/addresses?q=web", token=READ_TOKEN)
        assert [r["hostname"] for r in page["items"]] == ["web-1"]
        status, text, headers = api.call("GET", "/api/v1/addresses?format=csv",
                                         token=READ_TOKEN)
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        assert '"odd,name"' in text and len(text.strip().splitlines()) == 22

        status, detail, headers = api.call("GET", "/api/v1/addresses/-/127.97.0.5",
                                           token=READ_TOKEN)
        assert status == 200, detail
        assert detail["row"]["status"] == "allocated"
        assert [h["id"] for h in detail["holders"]] == ["1"]
        # Its first audit row is an insert: with the pool (a batch of its
        # own) or already allocated (the subnet and server in one batch).
        assert detail["history"] and detail["history"][-1]["action"] == "insert"

        status, subnets, _ = api.call("GET", "/api/v1/subnets", token=READ_TOKEN)
        stats = subnets["items"][0]["stats"]
        assert (stats["pool_size"], stats["allocated"], stats["available"]) == (20, 2, 19), stats
        status, free, _ = api.call("GET", "/api/v1/subnets/lan/next-free?count=3",
                                   token=READ_TOKEN)
        assert free["addresses"] == ["127.97.0.1", "127.97.0.2", "127.97.0.3"]
        status, unplaced, _ = api.call("GET", "/api/v1/unplaced", token=READ_TOKEN)
        assert [s["id"] for s in unplaced["servers"]] == ["3"]
        status, stats, _ = api.call("GET", "/api/v1/stats", token=READ_TOKEN)
        assert stats["addresses"]["allocated"] == 2, stats

        # Errors: each names what was wrong.
        for path, code, field in [
                ("/api/v1/addresses?status=free", 400, "status"),
                ("/api/v1/addresses?limit=0", 400, "limit"),
                ("/api/v1/addresses?limit=ten", 400, "limit"),
                ("/api/v1/addresses?colour=red", 400, "colour"),
                ("/api/v1/addresses?cursor=AAAA", 400, "cursor"),
                ("/api/v1/addresses/-/999.1.1.1", 400, "address"),
                ("/api/v1/addresses/-/127.97.0.99", 404, None),
                ("/api/v1/subnets/nope", 404, None),
                # A NUL would cut the value short: never "lan", ".5".
                ("/api/v1/subnets/lan%00zz", 400, None),
                ("/api/v1/addresses/-/127.97.0.5%00x", 400, None),
                # Escapes that are not two hex digits: never taken as text.
                ("/api/v1/subnets/lan%zz", 400, None),
                ("/api/v1/subnets/lan%4", 400, None),
                ("/api/v1/requests/api-%", 400, None),
                ("/api/v1/addresses?q=web%00x", 400, None),
                # Bytes that are not UTF-8 are named too, escaped.
                ("/api/v1/addresses/-/%FF", 400, "address"),
                # Only a list may be given twice.
                ("/api/v1/addresses?limit=0&limit=5", 400, "limit"),
                ("/api/v1/addresses?count=true&count=false", 400, "count"),
                ("/api/v1/nothing", 404, None)]:
            status, body, _ = api.call("GET", path, token=READ_TOKEN)
            assert status == code, (path, status, body)
            assert body["error"] and body["detail"], body
            if field:
                assert body.get("field") == field, (path, body)
    finally:
        api.close()


def test_tokens_and_scopes():
    api = Api()
    try:
        # Every 401 carries its challenge (RFC 9110, RFC 6750).
        status, _, headers = api.call("GET", "/api/v1/stats", token=None)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        status, _, headers = api.call("GET", "/api/v1/stats", token="wrong")
        assert status == 401, status
        assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        status, _, headers = api.call("GET", "/api/v1/stats", token=None,
                                      headers={"Authorization": "Basic eDp5"})
        assert status == 401, status
        assert headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
        assert api.call("GET", "/api/v1/stats", token=READ_TOKEN)[0] == 200
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.1.1",
                                   {"status": "reserved"}, token=READ_TOKEN)
        assert status == 403 and "only read" in body["detail"], body
        # The caller is known first, then the route and its methods, then
        # whether it may write there: a mistyped path is not a 403.
        status, body, _ = api.call("DELETE", "/api/v1/mraks/-/127.97.1.1",
                                   token=READ_TOKEN)
        assert status == 404 and "no such endpoint" in body["detail"], body
        status, body, headers = api.call("POST", "/api/v1/addresses", {},
                                         token=READ_TOKEN)
        assert status == 405 and headers["Allow"] == "GET, HEAD", body
        assert api.call("DELETE", "/api/v1/mraks/-/127.97.1.1",
                        token="wrong")[0] == 401
        # The OpenAPI document needs no token.
        status, doc, _ = api.call("GET", "/api/v1/openapi.json", token=None)
        assert status == 200 and doc["openapi"].startswith("3.1")

        # A token replaced in its file takes effect with a SIGHUP; the old
        # one is refused from then on.
        rotated = "r-" + "9" * 30
        with open(os.path.join(api.dir, "read.token"), "w") as f:
            f.write(rotated + "\n")
        reloads = api.daemon.log().count("reload: configuration")
        api.daemon.signal(signal.SIGHUP)
        wait_until(lambda: api.daemon.log().count("reload: configuration") > reloads,
                   30, "the reload")
        assert not api.daemon.log_contains(r"read_token_file changed|keeps its tokens")
        assert api.call("GET", "/api/v1/stats", token=READ_TOKEN)[0] == 401
        assert api.call("GET", "/api/v1/stats", token=rotated)[0] == 200
        assert api.call("GET", "/api/v1/stats", token=WRITE_TOKEN)[0] == 200
    finally:
        api.close()
    # No token configured: loopback reads only, no writes.
    api = Api(tokens=False)
    try:
        assert api.call("GET", "/api/v1/stats", token=None)[0] == 200
        # Only when the client names the daemon by loopback: another
        # site's page whose name points at 127.0.0.1 (DNS rebinding)
        # sends its own name.
        for host, expected in (("localhost:%d" % api.port, 200),
                               ("LOCALHOST", 200), ("127.0.0.1", 200),
                               ("127.1.2.3:%d" % api.port, 200),
                               ("[::1]:%d" % api.port, 200),
                               ("evil.example:%d" % api.port, 403),
                               ("localhost.evil.example", 403),
                               ("127.0.0.1.nip.io", 403), ("[::2]", 403),
                               ("localhost:80x", 403)):
            status, body, _ = api.call("GET", "/api/v1/stats", token=None,
                                       headers={"Host": host})
            assert status == expected, (host, status, body)
            if expected == 403:
                assert "DNS rebinding" in body["detail"], body
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.1.1",
                                   {"status": "reserved"}, token=None)
        assert status == 403 and "api.write_token_file" in body["detail"], body
        status, body, _ = api.call("POST", "/api/v1/subnets/lan/alocate",
                                   {"count": 1}, token=None)
        assert status == 404 and "no such endpoint" in body["detail"], body
    finally:
        api.close()


def test_racing_reservations_over_http():
    api = Api()
    try:
        api.subnet("lan", "127.97.2.0/24", ["127.97.2.1-127.97.2.10"])
        api.settle()

        def reserve(who):
            return api.call("PUT", "/api/v1/marks/-/127.97.2.7",
                            {"status": "reserved", "description": who + "'s",
                             "if_available": True},
                            headers={"X-Requester": who})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(reserve, ["alice", "bob"]))
        codes = sorted(r[0] for r in results)
        assert codes == [200, 409], [r[:2] for r in results]
        won = next(r for r in results if r[0] == 200)[1]
        lost = next(r for r in results if r[0] == 409)[1]
        winner = won["description"].split("'")[0]
        assert won["status"] == "reserved"
        assert lost["current"]["description"] == won["description"], lost
        assert "is reserved (by write:%s)" % winner in lost["detail"], lost
        status, detail, _ = api.call("GET", "/api/v1/addresses/-/127.97.2.7",
                                     token=READ_TOKEN)
        requesters = {h["requested_by"] for h in detail["history"]}
        assert {"write:alice", "write:bob"} <= requesters, detail["history"]

        # If-Match: the etag seen before a change refuses after it.
        etag = detail["etag"]
        status, body, _ = api.call("DELETE", "/api/v1/marks/-/127.97.2.7",
                                   headers={"If-Match": etag})
        assert status == 200, body
        assert body["status"] == "available"
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.7",
                                   {"status": "quarantine", "reason": "abuse"},
                                   headers={"If-Match": etag})
        assert status == 409 and "etag" in body["detail"], body
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.7",
                                   {"status": "quarantine", "reason": "abuse"})
        assert status == 200 and body["status"] == "quarantine", body
        status, detail, _ = api.call("GET", "/api/v1/addresses/-/127.97.2.7",
                                     token=READ_TOKEN)
        assert detail["mark"]["reason"] == "abuse", detail["mark"]
        # The etag as a shell leaves it typed on a command line: unquoted,
        # with white space around; the same tag.
        assert detail["etag"].startswith('"') and detail["etag"].endswith('"')
        bare = " %s " % detail["etag"].strip('"')
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.7",
                                   {"status": "quarantine", "reason": "abuse again"},
                                   headers={"If-Match": bare})
        assert status == 200 and body["status"] == "quarantine", body
        status, body, _ = api.call("DELETE", "/api/v1/marks/-/127.97.2.7",
                                   headers={"If-Match": bare})
        assert status == 409 and "etag" in body["detail"], body
        status, detail, _ = api.call("GET", "/api/v1/addresses/-/127.97.2.7",
                                     token=READ_TOKEN)
        assert detail["mark"]["reason"] == "abuse again", detail["mark"]
        # A request not (yet) decided, or unknown: 404.
        status, body, _ = api.call("GET", "/api/v1/requests/api-unknown",
                                   token=READ_TOKEN)
        assert status == 404, body
        status, body, _ = api.call("GET", "/api/v1/requests/" + won["request"]["id"],
                                   token=READ_TOKEN)
        assert status == 200 and body["state"] == "applied", body

        # Bad writes.
        for body, field in [({"status": "free"}, "status"),
                            ({"status": "reserved", "colour": 1}, "colour"),
                            ({"status": "reserved", "if_available": "yes"},
                             "if_available")]:
            status, answer, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.8", body)
            assert status == 400 and answer.get("field") == field, answer
        # A vrf the consumer would refuse is refused here, before Kafka.
        for vrf, why in [("a,b", "vrf \"a,b\" may not contain ','"),
                         ("%20blue", "vrf \" blue\" begins or ends with white space"),
                         ("*", "vrf \"*\" is reserved"),
                         ("blue%07", "holds a control character"),
                         ("%FF", "vrf \"\\xff\" is not valid UTF-8")]:
            status, answer, _ = api.call("PUT", "/api/v1/marks/%s/127.97.2.8" % vrf,
                                         {"status": "reserved"})
            assert status == 400 and answer.get("field") == "vrf" and \
                why in answer["detail"], (vrf, answer)
        status, answer, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.8",
                                     {"status": "quarantine", "description": "x"})
        assert status == 400 and "description is allowed only" in answer["detail"]
        status, answer, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.8",
                                     b"{not json")
        assert status == 400 and "not JSON" in answer["detail"], answer
        status, answer, _ = api.call("PUT", "/api/v1/marks/-/127.97.2.8",
                                     b"x" * (70 * 1024))
        assert status == 413, answer
    finally:
        api.close()


def test_allocate_next_free_under_twenty_clients():
    api = Api()
    try:
        api.subnet("pool", "127.97.3.0/24", ["127.97.3.1-127.97.3.40"])
        api.settle()

        def allocate(i):
            return api.call("POST", "/api/v1/subnets/pool/allocate",
                            {"count": 1, "description": "client %d" % i},
                            headers={"X-Requester": "c%d" % i}, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            results = list(pool.map(allocate, range(20)))
        assert all(r[0] == 201 for r in results), [r[:2] for r in results]
        got = [r[1]["addresses"][0]["ip_address"] for r in results]
        assert len(set(got)) == 20, got
        assert api.db.scalar("SELECT count(*) FROM ipam WHERE status = 'reserved'") == 20

        status, body, _ = api.call("POST", "/api/v1/subnets/pool/allocate",
                                   {"count": 30})
        assert status == 409 and "fewer than the 30" in body["detail"], body
        status, body, _ = api.call("POST", "/api/v1/subnets/none/allocate", {})
        assert status == 404, body

        # More asked than the pool holds, by thirty clients at once: the
        # winners get all they asked for, every other answer holds
        # nothing (no address left reserved by a 409).
        api.subnet("small", "127.97.4.0/24", ["127.97.4.1-127.97.4.10"])
        api.kafka.flush()
        wait_until(lambda: api.db.scalar("SELECT count(*) FROM ipam "
                                         "WHERE subnet_id = 'small'") == 10,
                   what="the small pool")

        def allocate3(i):
            return api.call("POST", "/api/v1/subnets/small/allocate",
                            {"count": 3}, headers={"X-Requester": "d%d" % i},
                            timeout=60)

        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            results = list(pool.map(allocate3, range(30)))
        won = [r for r in results if r[0] == 201]
        lost = [r for r in results if r[0] != 201]
        assert len(won) == 3, [r[:2] for r in results]
        assert all(r[0] == 409 and not r[1].get("allocated") for r in lost), \
            [r[:2] for r in lost]
        assert api.db.scalar("SELECT count(*) FROM ipam WHERE status = 'reserved' "
                             "AND subnet_id = 'small'") == 9

        # Two routing domains with the same prefix: an allocation in one
        # does not keep the other from the addresses it has free.
        for vrf in ("red", "blue"):
            api.subnet("v-" + vrf, "127.97.5.0/24", ["127.97.5.1-127.97.5.4"],
                       vrf=vrf)
        api.kafka.flush()
        wait_until(lambda: api.db.scalar("SELECT count(*) FROM ipam "
                                         "WHERE subnet_id LIKE 'v-%%'") == 8,
                   what="the two pools")
        for attempt in range(4):      # each pool has four
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                results = list(pool.map(lambda vrf: api.call(
                    "POST", "/api/v1/subnets/v-%s/allocate" % vrf, {"count": 1},
                    timeout=60), ("red", "blue")))
            assert [r[0] for r in results] == [201, 201], [r[:2] for r in results]
            assert [r[1]["addresses"][0]["vrf"] for r in results] == ["red", "blue"]
    finally:
        api.close()


def test_allocation_keys_its_marks_as_the_consumer_writes_them():
    """A mark's Kafka key must be its address as the consumer writes it
    back (RFC 5952), and PostgreSQL writes some addresses otherwise (::2
    as "::0.0.0.2", ::a00:5 as "::10.0.0.5"): an allocation's candidates,
    read in PostgreSQL's text, are keyed the consumer's way, and applied."""
    api = Api()
    try:
        api.subnet("low", "::/120", ["::2-::3"])
        api.subnet("compat", "::a00:0/120", ["::a00:5-::a00:5"])
        api.settle()
        for subnet, count in (("low", 2), ("compat", 1)):
            status, body, _ = api.call("POST", "/api/v1/subnets/%s/allocate"
                                       % subnet, {"count": count}, timeout=60)
            assert status == 201, (subnet, status, body)
        assert api.db.query("SELECT id FROM ipam_state.mark ORDER BY id") == [
            ("::2",), ("::3",), ("::a00:5",)]
        assert api.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        status, body, _ = api.call("PUT", "/api/v1/marks/-/::0.0.0.2",
                                   {"status": "quarantine"}, timeout=60)
        assert status == 200, body
        assert api.db.query("SELECT id, status FROM ipam_state.mark "
                            "WHERE id = '::2'") == [("::2", "quarantine")]
    finally:
        api.close()


def test_an_allocation_whose_subnet_went_before_its_answer_names_the_address():
    """An allocation's reservation is applied, then its subnet is deleted
    before the answer reads the outcome (the read held back here), so the
    address has no row any more: the answer names the address it
    reserved (vrf and ip_address), as a mark's answer does, not null."""
    api = Api(config={"api": {"write_wait_ms": "60000",
                              "statement_timeout_ms": "120000"}})
    holder = None
    try:
        api.subnet("lan", "127.97.12.0/24", ["127.97.12.1-127.97.12.9"])
        api.settle()
        # A copy of the reading function under another name (its body
        # names its parameter by the function's name), then the function
        # made one that waits for the test's lock before it reads.
        api.db.query(api.db.scalar(
            "SELECT pg_get_functiondef('ipamd.api_request(text)'::regprocedure)")
            .replace("api_request", "api_request_unheld"))
        api.db.query(
            "CREATE OR REPLACE FUNCTION ipamd.api_request(id text) RETURNS jsonb "
            "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock_shared(4711); "
            "PERFORM pg_advisory_unlock_shared(4711); "
            "RETURN ipamd.api_request_unheld(id); END $$")
        holder = psycopg2.connect(api.db.conninfo())
        holder.autocommit = True
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4711)")
        pool = concurrent.futures.ThreadPoolExecutor(1)
        answer = pool.submit(api.call, "POST", "/api/v1/subnets/lan/allocate",
                             {"count": 1, "description": "mine"}, timeout=120)
        wait_until(lambda: api.db.scalar(
            "SELECT count(*) FROM ipamd.request WHERE outcome = 'applied'") == 1, 60,
            "the reservation to be applied")
        api.send(api.topics.subnets, "lan", event("subnet.deleted", "lan", None, 2))
        api.kafka.flush()
        wait_until(lambda: api.db.scalar("SELECT count(*) FROM ipam") == 0, 60,
                   "the subnet's rows to go")
        assert not answer.done()
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(4711)")
        status, body, _ = answer.result()
        assert status == 201, (status, body)
        assert body["addresses"] == [{"vrf": "", "ip_address": "127.97.12.1"}], body
    finally:
        if holder is not None:
            holder.close()
        api.close()


def test_an_allocation_with_a_bad_description_is_refused_before_any_lookup():
    """A description the reservations could not carry (too long, a control
    character) is the request's own fault: 400 naming the description,
    whether the subnet is missing (not 404), its pool full (not 409) or
    free, and nothing is published."""
    api = Api()
    try:
        api.subnet("full", "127.97.13.0/24", ["127.97.13.1-127.97.13.1"])
        api.subnet("free", "127.97.14.0/24", ["127.97.14.1-127.97.14.9"])
        api.settle()
        status, body, _ = api.call("POST", "/api/v1/subnets/full/allocate", {"count": 1},
                                   timeout=60)
        assert status == 201, (status, body)
        marks = count_messages(api.topics.marks)
        for subnet in ("missing", "full", "free"):
            for description in ("x" * 1025, "line\x01"):
                status, body, _ = api.call("POST", "/api/v1/subnets/%s/allocate" % subnet,
                                           {"count": 1, "description": description})
                assert status == 400, (subnet, description[:8], status, body)
                assert body["field"] == "description" and "description" in body["detail"], body
        status, body, _ = api.call("POST", "/api/v1/subnets/missing/allocate",
                                   {"description": "fine"})
        assert status == 404, (status, body)
        assert count_messages(api.topics.marks) == marks
    finally:
        api.close()


def test_import_dry_run_then_for_real():
    api = Api()
    try:
        subnets = [{"id": "s%d" % i, "name": "net %d" % i,
                    "cidr": "127.99.%d.0/24" % i,
                    "static_ip_pools": ["127.99.%d.1-127.99.%d.10" % (i, i)]}
                   for i in range(3)]
        servers = [{"id": str(i), "hostname": "h%d" % i,
                    "ip_address": "127.99.%d.%d" % (i % 3, 5 + i // 3),
                    "nic_mac": None, "device_type": "vm", "manufacture": "x"}
                   for i in range(6)]
        status, plan, _ = api.call("POST", "/api/v1/import",
                                   {"subnets": subnets, "servers": servers,
                                    "dry_run": True})
        assert status == 200, plan
        assert plan["servers"]["create"] == 6 and plan["subnets"]["create"] == 3, plan
        # The path with a last '/' is the import too, its body limit
        # included (a body over 64 KiB: padded with white space).
        padded = json.dumps({"subnets": subnets, "servers": servers,
                             "dry_run": True}) + " " * 70000
        status, same, _ = api.call("POST", "/api/v1/import/", padded.encode())
        assert status == 200 and same == plan, same
        assert api.db.scalar("SELECT count(*) FROM ipam") == 0

        status, body, _ = api.call("POST", "/api/v1/import",
                                   {"subnets": subnets, "servers": servers})
        assert status == 200, body
        assert (body["servers"], body["subnets"]) == (6, 3), body
        assert api.db.scalar("SELECT count(*) FROM ipam") == 30
        assert api.db.scalar("SELECT count(*) FROM ipam WHERE status = 'allocated'") == 6

        bad = [{"id": "9", "hostname": "h", "ip_address": "300.1.1.1"}]
        status, body, _ = api.call("POST", "/api/v1/import", {"servers": bad})
        assert status == 400 and "servers[0]" in body["errors"][0], body
    finally:
        api.close()


def test_an_import_names_its_requester_in_the_audit():
    """The changes an import makes name who imported (X-Requester, with
    the token's scope) in the audit: its subnet's pool rows (one row a
    run of addresses), the address its server takes, and the one it
    leaves when a later import moves it; the address's history says so
    too.  A change a producer made itself names nobody."""
    api = Api()
    try:
        subnets = [{"id": "n", "cidr": "127.97.17.0/24",
                    "static_ip_pools": ["127.97.17.1-127.97.17.9"]}]
        status, body, _ = api.call("POST", "/api/v1/import", {"subnets": subnets},
                                   headers={"X-Requester": "alice"}, timeout=60)
        assert status == 200, body
        servers = [{"id": "s1", "hostname": "web", "ip_address": "127.97.17.3"}]
        status, body, _ = api.call("POST", "/api/v1/import", {"servers": servers},
                                   headers={"X-Requester": "bob"}, timeout=60)
        assert status == 200, body
        servers[0]["ip_address"] = "127.97.17.4"
        status, body, _ = api.call("POST", "/api/v1/import", {"servers": servers},
                                   headers={"X-Requester": "carol"}, timeout=60)
        assert status == 200, body
        api.server("s2", "127.97.17.7", hostname="made-by-a-producer")
        api.kafka.flush()
        wait_until(lambda: api.db.scalar("SELECT count(*) FROM ipamd.audit") == 5, 60,
                   "the producer's server to be applied")
        audit = api.db.query("SELECT host(ip_address), host(ip_last), action, requested_by "
                             "FROM ipamd.audit ORDER BY id")
        assert audit[0] == ("127.97.17.1", "127.97.17.9", "insert", "write:alice"), audit
        assert audit[1] == ("127.97.17.3", None, "update", "write:bob"), audit
        # The move's two rows come in one statement, in either order.
        assert sorted(audit[2:4]) == [
            ("127.97.17.3", None, "update", "write:carol"),
            ("127.97.17.4", None, "update", "write:carol")], audit
        assert audit[4] == ("127.97.17.7", None, "update", None), audit
        status, detail, _ = api.call("GET", "/api/v1/addresses/-/127.97.17.3",
                                     token=READ_TOKEN)
        assert status == 200, detail
        assert [h["requested_by"] for h in detail["history"]] == \
            ["write:carol", "write:bob", "write:alice"], detail["history"]
    finally:
        api.close()


def test_imports_under_way_at_once_are_bounded():
    """Two imports at once, the most: while two wait for their events to
    be applied (the apply held), a third import, or a dry run, is refused
    with 503 and Retry-After, publishing nothing.  Once they are answered
    an import is taken again."""
    api = Api(config={"api": {"write_wait_ms": "60000",
                              "statement_timeout_ms": "120000"}})
    locker = None
    try:
        api.daemon.wait_assigned(3)
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipam_state.server IN ACCESS EXCLUSIVE MODE")

        def one(i):
            return api.call("POST", "/api/v1/import", {"servers": [
                {"id": "s%d" % i, "hostname": "h%d" % i,
                 "ip_address": "127.97.15.%d" % (i + 1)}]}, timeout=120)

        pool = concurrent.futures.ThreadPoolExecutor(2)
        first = [pool.submit(one, i) for i in range(2)]
        wait_until(lambda: count_messages(api.topics.servers) == 2, 60,
                   "both imports' events in Kafka")
        for body in ({"servers": [{"id": "s9", "hostname": "h9",
                                   "ip_address": "127.97.15.9"}]},
                     {"servers": [], "dry_run": True}):
            status, answer, headers = api.call("POST", "/api/v1/import", body)
            assert status == 503 and headers.get("Retry-After") == "5", (status, answer)
            assert answer["detail"].startswith("2 imports are under way"), answer
        assert count_messages(api.topics.servers) == 2
        assert not any(f.done() for f in first)
        locker.rollback()
        for f in first:
            status, answer, _ = f.result()
            assert status == 200 and answer["servers"] == 1, (status, answer)
        status, answer, _ = one(3)
        assert status == 200, (status, answer)
        assert api.db.scalar("SELECT count(*) FROM ipam_state.server") == 3
    finally:
        if locker is not None:
            locker.close()
        api.close()


def test_an_import_over_hundreds_of_partitions_can_be_followed():
    """An import whose events went to 250 partitions, answered 202 while
    the apply is held: its Location names the last event of each (some
    7 KB, past what a request line of 4 KB would carry, within the 16 KB
    of a request's head), and a GET of it says pending, then applied."""
    api = Api(topics=Topics(partitions=250),
              config={"api": {"write_wait_ms": "1000"}})
    locker = None
    try:
        api.daemon.wait_assigned(750, timeout=120)
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipam_state.server IN ACCESS EXCLUSIVE MODE")
        servers = [{"id": "s%d" % i, "hostname": "h%d" % i,
                    "ip_address": "127.97.%d.%d" % (16 + i // 250, i % 250 + 1)}
                   for i in range(5000)]
        status, body, headers = api.call("POST", "/api/v1/import", {"servers": servers},
                                         timeout=120)
        assert status == 202, (status, body)
        where = headers.get("Location")
        assert where == "/api/v1/imports/" + body["import"], (where, body)
        entries = body["import"].split(",")
        assert len(entries) == 250 and len(body["import"]) > 4096, len(body["import"])
        assert {e.rsplit(":", 2)[0] for e in entries} == {api.topics.servers}, entries[:3]
        status, state, _ = api.call("GET", where)
        assert status == 200 and state["state"] == "pending", state
        assert len(state["partitions"]) == 250, state
        locker.rollback()
        wait_until(lambda: api.call("GET", where)[1]["state"] == "applied", 120,
                   "the import to be applied")
        assert api.db.scalar("SELECT count(*) FROM ipam_state.server") == 5000
    finally:
        if locker is not None:
            locker.close()
        api.close()


def test_a_dry_run_plans_what_the_import_publishes():
    """The plan of a dry run reads each entity as the decoder does: every
    spelling the import takes (pools as a string holding the JSON array,
    empty, CIDR blocks, single addresses, ranges that overlap or touch;
    MAC addresses in dash and dot form; IPv6 not in canonical form, an
    IPv4-mapped address; a list given as null) is planned, and once the
    import is applied the same dry run finds every entity unchanged.  An
    id named twice in one list is refused, naming both places."""
    api = Api()
    try:
        subnets = [
            {"id": "a", "name": "as text", "cidr": "127.98.1.0/24",
             "static_ip_pools": '["127.98.1.20-127.98.1.30", "127.98.1.5"]'},
            {"id": "b", "name": "", "cidr": "127.98.2.0/24", "static_ip_pools": ""},
            {"id": "c", "cidr": "127.98.3.0/24", "vrf": "blue",
             "static_ip_pools": ["127.98.3.0/30", "127.98.3.10-127.98.3.12",
                                 "127.98.3.13", "127.98.3.11-127.98.3.20"]},
            {"id": 4, "cidr": "2001:DB8:0:0::/64", "ping": False,
             "static_ip_pools": ["2001:db8::0:a-2001:db8::00ff"]},
        ]
        servers = [
            {"id": "1", "hostname": "dash", "ip_address": "127.98.1.21",
             "nic_mac": "AA-BB-CC-DD-EE-01"},
            {"id": 2, "hostname": "dot", "ip_address": "::ffff:127.98.3.11",
             "nic_mac": "aabb.ccdd.ee02", "vrf": "blue"},
            {"id": "3", "hostname": "six", "ip_address": "2001:DB8:0::000B",
             "device_type": "", "manufacture": "x"},
        ]
        body = {"subnets": subnets, "servers": servers, "dry_run": True}
        status, plan, _ = api.call("POST", "/api/v1/import", body)
        assert status == 200, plan
        assert (plan["subnets"]["create"], plan["servers"]["create"]) == (4, 3), plan
        status, plan, _ = api.call("POST", "/api/v1/import",
                                   {"subnets": subnets, "servers": None, "dry_run": True})
        assert status == 200 and plan["servers"]["create"] == 0, plan

        status, done, _ = api.call("POST", "/api/v1/import",
                                   {"subnets": subnets, "servers": servers})
        assert status == 200 and (done["subnets"], done["servers"]) == (4, 3), done
        status, plan, _ = api.call("POST", "/api/v1/import", body)
        assert status == 200, plan
        for kind, count in (("subnets", 4), ("servers", 3)):
            assert plan[kind]["unchanged"] == count, plan
            assert plan[kind]["changes"] == [], plan
        # One field changed, spelled another way again: one update, naming it.
        subnets[2]["static_ip_pools"] = ["127.98.3.1-127.98.3.2", "127.98.3.10/31"]
        status, plan, _ = api.call("POST", "/api/v1/import",
                                   {"subnets": subnets, "dry_run": True})
        assert status == 200, plan
        assert plan["subnets"]["changes"] == [
            {"id": "c", "action": "update", "fields": ["static_ip_pools"]}], plan

        twice = [{"id": "7", "hostname": "a"}, {"id": "8", "hostname": "b"},
                 {"id": 7, "hostname": "c"}]
        for dry in (True, False):
            status, refused, _ = api.call("POST", "/api/v1/import",
                                          {"servers": twice, "dry_run": dry})
            assert status == 400, refused
            assert refused["errors"] == [
                "servers[2]: id 7 is also servers[0]'s: an import names each "
                "entity once"], refused
        assert api.db.scalar("SELECT count(*) FROM ipam_state.server") == 3
    finally:
        api.close()


def test_the_largest_import_keeps_the_loop_turning():
    """An import of as many servers as one may hold (200,000) is
    published, followed and answered while the loop goes on: the watchdog
    pings (asked for every second) never stop for as long as the shipped
    unit's WatchdogSec=30 allows, so systemd would not kill the daemon for
    it, and every server is applied once.  (Its events were looked for one
    by one at each delivery, and the import read in one turn: the loop
    stood still for over a minute.)"""
    import threading
    api = Api(notify=True, env={"WATCHDOG_USEC": "2000000"})
    try:
        servers = [{"id": "i%d" % i, "hostname": "h%d" % i,
                    "ip_address": "127.%d.%d.%d" % (120 + i // 65536,
                                                    i // 256 % 256, i % 256)}
                   for i in range(200000)]
        # Made before the clock starts: the test's own threads (the
        # watchdog's reader among them) stand still while it is made.
        payload = json.dumps({"servers": servers}).encode()
        answers = []

        def healthz():
            start = time.monotonic()
            try:
                status, _ = api.daemon.http_get("/healthz", timeout=120)
            except OSError as error:
                status = repr(error)
            answers.append((status, time.monotonic() - start))

        # A probe of the loop every second while the import runs.
        done = threading.Event()

        def probe():
            while not done.is_set():
                healthz()
                time.sleep(1)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        started = time.monotonic()
        status, body, _ = api.call("POST", "/api/v1/import", payload,
                                   timeout=300)
        took = time.monotonic() - started
        done.set()
        prober.join()
        slowest = max(t for _, t in answers)
        pings = [t for t, m in api.daemon.notify.timed() if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        print("import answered %d in %.1f s; /healthz slowest %.2f s of %d; "
              "longest gap between watchdog pings %.1f s"
              % (status, took, slowest, len(answers), max(gaps or [0])),
              flush=True)
        assert status in (200, 202), body
        # The shipped WatchdogSec is 30 s: a loop held longer is killed.
        assert max(gaps or [0]) < 30, gaps
        assert slowest < 30, answers
        if status == 202:
            wait_until(lambda: api.call("GET", "/api/v1/imports/" + body["import"],
                                        token=READ_TOKEN)[1]["state"] == "applied",
                       300, "the import applied")
        assert api.db.scalar("SELECT count(*) FROM ipam_state.server") == 200000
        assert api.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
    finally:
        api.close()


def test_write_while_postgresql_is_away():
    """A write while PostgreSQL is away is refused at once (503) and
    publishes nothing; the API's reads come back with it."""
    pg = harness.PrivatePostgres().start()
    db = Database(host="127.0.0.1", port=pg.port)
    api = Api(db=db)
    try:
        api.subnet("lan", "127.97.4.0/24", ["127.97.4.1-127.97.4.5"])
        api.settle()
        marks_before = count_messages(api.topics.marks)
        pg.stop()
        wait_until(lambda: api.call("GET", "/api/v1/stats", token=READ_TOKEN)[0] == 503,
                   30, "reads to fail")
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.4.2",
                                   {"status": "reserved"})
        assert status == 503 and "nothing was published" in body["detail"], body
        assert count_messages(api.topics.marks) == marks_before
        pg.start()
        wait_until(lambda: api.call("GET", "/api/v1/stats", token=READ_TOKEN)[0] == 200,
                   60, "reads to come back")
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.4.2",
                                   {"status": "reserved"})
        assert status == 200, body
        assert count_messages(api.topics.marks) == marks_before + 1
    finally:
        api.close()
        pg.close()


def api_on_private_postgres(net, api_config):
    """A PostgreSQL of the test's own, which it may stop, and a daemon on
    it with one read connection (and api_config), the subnet "lan" net.0/24
    with the pool net.1-net.9 applied: (pg, db, api)."""
    pg = harness.PrivatePostgres().start()
    try:
        db = Database(host="127.0.0.1", port=pg.port)
        api = Api(db=db, config={"api": dict(read_connections="1", **api_config)})
    except BaseException:
        pg.close()
        raise
    try:
        api.subnet("lan", net + ".0/24", ["%s.1-%s.9" % (net, net)])
        api.settle()
    except BaseException:
        api.close()
        pg.close()
        raise
    return pg, db, api


def test_writes_waiting_for_a_connection_are_answered_at_their_deadline():
    """Two writes are published while the API's one read connection is
    held by the first one's poll (a lock stands in its way); PostgreSQL
    then goes away.  The second's poll never got a connection, yet it is
    answered 202 at its api.write_wait_ms, with its request to follow,
    not left to the HTTP deadline's "no reply in time" (which says
    nothing was published); both are applied once PostgreSQL is back."""
    import psycopg2
    pg, db, api = api_on_private_postgres("127.97.6", {"write_wait_ms": "3000"})
    locker = None
    try:
        marks = count_messages(api.topics.marks)
        locker = psycopg2.connect(db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipamd.request IN ACCESS EXCLUSIVE MODE")
        pool = concurrent.futures.ThreadPoolExecutor(2)
        answers = []
        for ip in ("127.97.6.2", "127.97.6.3"):
            answers.append(pool.submit(api.call, "PUT", "/api/v1/marks/-/" + ip,
                                       {"status": "reserved"}, timeout=120))
            wait_until(lambda: count_messages(api.topics.marks) == marks + 1,
                       30, "the write published")
            marks += 1
        time.sleep(0.5)
        pg.stop()
        locker = None
        started = time.monotonic()
        for answer in answers:
            status, body, headers = answer.result()
            assert status == 202, (status, body)
            assert headers["Location"].startswith("/api/v1/requests/"), body
        took = time.monotonic() - started
        print("both answered 202 within %.1f s of the stop" % took, flush=True)
        pg.start()
        wait_until(lambda: db.scalar("SELECT count(*) FROM ipam WHERE status "
                                     "= 'reserved'") == 2, 120, "both applied")
    finally:
        if locker is not None:
            locker.close()
        api.close()
        pg.close()


def test_reads_waiting_for_a_connection_are_answered_when_postgresql_goes_away():
    """A read queued behind the API's one read connection, held by a read
    that a lock stops, is answered 503 naming PostgreSQL as soon as
    PostgreSQL goes away, as a read asked then is: not left waiting for
    a connection until the HTTP deadline (api.statement_timeout_ms plus
    30 s, here ten minutes, longer than the client waits)."""
    import psycopg2
    pg, db, api = api_on_private_postgres("127.97.7", {"statement_timeout_ms": "600000"})
    locker = None
    try:
        locker = psycopg2.connect(db.conninfo())
        locker.autocommit = False
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipam_state.address IN ACCESS EXCLUSIVE MODE")
        watcher = psycopg2.connect(db.conninfo())
        watcher.autocommit = True

        def waiting_on_the_lock():
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock'")
                return cur.fetchone()[0]
        pool = concurrent.futures.ThreadPoolExecutor(2)
        held = pool.submit(api.call, "GET", "/api/v1/addresses?limit=5",
                           token=READ_TOKEN, timeout=120)
        wait_until(lambda: waiting_on_the_lock() == 1, 30, "the first read held")
        queued = pool.submit(api.call, "GET", "/api/v1/addresses?status=available",
                             token=READ_TOKEN, timeout=120)
        wait_until(lambda: "ipam_syncd_api_reads_waiting 1\n" in api.daemon.http_get("/metrics")[1], 30,
                   "the second read queued")
        watcher.close()
        # At once, as a crash: a fast stop ends the locker's session too,
        # and the held read could finish before its own backend ends.
        pg.stop("immediate")
        locker = None
        for answer in (held, queued):
            status, body, _ = answer.result()
            assert status == 503 and "PostgreSQL" in body["detail"], (status, body)
        pg.start()
        wait_until(lambda: api.call("GET", "/api/v1/addresses?limit=5",
                                    token=READ_TOKEN)[0] == 200, 60, "reads back")
    finally:
        if locker is not None:
            locker.close()
        api.close()
        pg.close()


def test_reads_held_when_the_daemon_stops_are_answered():
    """SIGTERM while reads wait for PostgreSQL (one on the API's one read
    connection, held by a lock, one queued behind it): before the daemon
    exits each is answered 503 "the daemon is stopping", with Retry-After,
    not left with a closed connection and no status line."""
    import psycopg2
    api = Api(config={"api": {"read_connections": "1",
                              "statement_timeout_ms": "600000"}})
    locker = None
    try:
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipam_state.address IN ACCESS EXCLUSIVE MODE")
        pool = concurrent.futures.ThreadPoolExecutor(2)
        reads = [pool.submit(api.call, "GET", "/api/v1/addresses?limit=5",
                             token=READ_TOKEN, timeout=120)]
        wait_until(lambda: api.db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND application_name LIKE 'ipam-syncd%%'") == 1, 30, "the first read held")
        reads.append(pool.submit(api.call, "GET", "/api/v1/addresses?status=available",
                                 token=READ_TOKEN, timeout=120))
        wait_until(lambda: "ipam_syncd_api_reads_waiting 1\n" in
                   api.daemon.http_get("/metrics")[1], 30, "the second read queued")
        assert api.daemon.stop() == 0
        for read in reads:
            status, body, headers = read.result()
            assert status == 503 and "stopping" in body["detail"], (status, body)
            assert headers["Retry-After"] == "5", headers
    finally:
        if locker is not None:
            locker.close()
        api.close()


def proxied_api_holding_the_apply(kafka, net, write_wait_ms):
    """A daemon whose Kafka clients reach a private broker through its
    proxy, a subnet "lan" net.0/24 with the pool net.1-net.9 applied, and
    then the apply held by a lock on ipamd.request: (api, the marks
    topic's messages so far, the connection holding the lock)."""
    # The writes' polls wait on that lock: no statement timeout cuts them.
    api = Api(config={"kafka": {"bootstrap.servers": kafka.proxy_bootstrap()},
                      "api": {"write_wait_ms": str(write_wait_ms),
                              "statement_timeout_ms": "600000"}})
    try:
        api.daemon.wait_assigned(3)
        api.subnet("lan", net + ".0/24", ["%s.1-%s.9" % (net, net)])
        api.settle()
        marks = count_messages(api.topics.marks)
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipamd.request IN ACCESS EXCLUSIVE MODE")
    except BaseException:
        api.close()
        raise
    return api, marks, locker


def test_a_write_kafka_never_took_is_not_called_published_at_a_stop():
    """The broker never gets the event of a write (the proxy in front of
    it drops produce requests) when the daemon is told to stop: the write
    is answered 503, not 202 "published", and nothing reaches the topic;
    a write Kafka took before the stop is still answered 202."""
    from test_consumer import PrivateKafka
    kafka = PrivateKafka(proxied=True)
    api = None
    try:
        # Taken by Kafka, not applied: the apply waits on a lock.
        api, marks, locker = proxied_api_holding_the_apply(kafka, "127.97.7",
                                                           60000)
        pool = concurrent.futures.ThreadPoolExecutor(2)
        taken = pool.submit(api.call, "PUT", "/api/v1/marks/-/127.97.7.2",
                            {"status": "reserved"}, timeout=120)
        wait_until(lambda: count_messages(api.topics.marks) == marks + 1, 30,
                   "the first write in the topic")
        kafka.proxy.drop_produce = True
        lost = pool.submit(api.call, "PUT", "/api/v1/marks/-/127.97.7.3",
                           {"status": "reserved"}, timeout=120)
        time.sleep(2)
        api.daemon.proc.send_signal(signal.SIGTERM)
        status, body, headers = taken.result()
        assert status == 202 and headers["Location"], (status, body)
        status, body, _ = lost.result()
        print("the write Kafka never took: %d %s" % (status, body), flush=True)
        assert status == 503 and (body["published"], body["unacknowledged"]) \
            == (0, 1), body
        assert "may or may not be published" in body["detail"], body
        assert len(body["requests"]) == 1, body
        assert api.daemon.proc.wait(60) == 0
        locker.close()
        assert count_messages(api.topics.marks) == marks + 1
    finally:
        if api is not None:
            api.daemon.close()
            api.db.close()
        kafka.close()


def test_a_write_kafka_has_not_acknowledged_is_answered_at_its_wait():
    """The broker never answers a write's produce request (the proxy in
    front of it drops them) and the producer would keep trying for a
    minute (message.timeout.ms): the write is still answered when
    api.write_wait_ms runs out, 503 with the count Kafka has not
    acknowledged and the request to follow, not left to the HTTP
    deadline; so is an import, 28 s later; a write Kafka took meanwhile
    is answered as ever."""
    from test_consumer import PrivateKafka
    kafka = PrivateKafka(proxied=True)
    api = None
    try:
        api = Api(config={"kafka": {"bootstrap.servers": kafka.proxy_bootstrap(),
                                    "message.timeout.ms": "60000"},
                          "api": {"write_wait_ms": "3000"}})
        api.daemon.wait_assigned(3)
        api.subnet("lan", "127.97.11.0/24", ["127.97.11.1-127.97.11.9"])
        api.settle()
        # Through the proxy, a loaded machine may take longer than the
        # short wait to apply it: 202 then, as ever.
        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.11.2",
                                   {"status": "reserved"}, timeout=60)
        assert status in (200, 202), (status, body)
        kafka.proxy.drop_produce = True
        status, body, headers = api.call("PUT", "/api/v1/marks/-/127.97.11.3",
                                         {"status": "reserved"}, timeout=60)
        print("the write Kafka has not acknowledged: %d %s" % (status, body), flush=True)
        assert status == 503 and body["error"] == "unavailable", (status, body)
        assert (body["published"], body["unacknowledged"]) == (0, 1), body
        assert body["detail"].startswith("api.write_wait_ms ran out: ") and \
            "may or may not be published" in body["detail"], body
        assert len(body["requests"]) == 1 and headers["Retry-After"], body
        # An import's events are given 28 s past the wait, and then it is
        # answered the same way, before the HTTP deadline (the wait and
        # 30 s) would cut it off with a bare 503.
        started = time.monotonic()
        servers = [{"id": "k%d" % i, "hostname": "k%d" % i} for i in range(5)]
        status, body, headers = api.call("POST", "/api/v1/import",
                                         {"servers": servers}, timeout=90)
        took = time.monotonic() - started
        print("the import Kafka has not acknowledged: %d %s in %.1f s"
              % (status, body, took), flush=True)
        assert status == 503 and body["error"] == "unavailable", (status, body)
        assert (body["published"], body["unacknowledged"]) == (0, 5), body
        assert body["detail"].startswith("api.write_wait_ms and 28 s more ran out: ") \
            and "sending the import again changes nothing twice" in body["detail"], body
        assert headers["Retry-After"], headers
        kafka.proxy.drop_produce = False
        assert api.daemon.stop() == 0
    finally:
        if api is not None:
            api.daemon.close()
            api.db.close()
        kafka.close()


def allocate_two_behind_bob(api, net, marks):
    """Bob's reservation of net.1 in Kafka, then an allocation of two from
    "lan" (net.0/24, pool net.1-net.9) while the apply is held: its first
    round publishes net.1 and net.2, and only net.2 can win.  The future
    of the allocation's answer, once its first round is in the topic."""
    api.send(api.topics.marks, net + ".1", event(
        "mark.set", net + ".1", {"address": net + ".1", "status": "reserved",
                                 "description": "bob's"}, 1))
    api.kafka.flush()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    answer = pool.submit(api.call, "POST", "/api/v1/subnets/lan/allocate",
                         {"count": 2, "description": "mine"}, timeout=200)
    wait_until(lambda: count_messages(api.topics.marks) == marks + 3, 30,
               "the first round in the topic")
    return answer


def test_an_allocation_kafka_fails_in_a_later_round_keeps_what_it_won():
    """An allocation of two wins one address in its first round (another
    reservation of the other was in Kafka before it) and Kafka takes
    nothing of its second round (the proxy in front of the broker drops
    produce requests): it is answered 409 with the address it holds and
    why the rest could not be had, not 503 as if nothing was published."""
    from test_consumer import PrivateKafka
    kafka = PrivateKafka(proxied=True)
    api = None
    locker = None
    try:
        api, marks, locker = proxied_api_holding_the_apply(kafka, "127.97.8",
                                                           90000)
        answer = allocate_two_behind_bob(api, "127.97.8", marks)
        kafka.proxy.drop_produce = True
        locker.rollback()
        status, body, _ = answer.result()
        print("allocation: %d %s" % (status, body), flush=True)
        assert status == 409, (status, body)
        assert [r["ip_address"] for r in body["allocated"]] == ["127.97.8.2"], body
        assert body["allocated"][0]["description"] == "mine", body
        assert "only 1 of 2" in body["detail"] and "Kafka did not take" in \
            body["detail"], body
        status, detail, _ = api.call("GET", "/api/v1/addresses/-/127.97.8.2",
                                     token=READ_TOKEN)
        assert detail["row"]["status"] == "reserved", detail
    finally:
        if locker is not None:
            locker.close()
        if api is not None:
            api.close()
        kafka.close()


def make_searches_sleep(db, when="true"):
    """Makes the search for an allocation's candidates sleep 120 s first
    when the SQL condition `when` (of its id, n, exclude) holds; the
    search itself is kept as ipamd.api_next_free_awake."""
    search = db.scalar("SELECT pg_get_functiondef('ipamd.api_next_free("
                       "text, integer, inet[])'::regprocedure)")
    db.query(search.replace("ipamd.api_next_free(", "ipamd.api_next_free_awake(")
             .replace("api_next_free.", "api_next_free_awake."))
    db.query("CREATE OR REPLACE FUNCTION ipamd.api_next_free(id text, n integer, "
             "exclude inet[]) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN "
             "IF %s THEN PERFORM pg_sleep(120); END IF; "
             "RETURN ipamd.api_next_free_awake(id, n, exclude); END $$" % when)


def wake_searches(db):
    """Ends the sleeping searches (their connections)."""
    db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()")


def test_an_allocation_stopped_between_rounds_says_what_it_holds():
    """SIGTERM comes while an allocation of two, which won one address in
    its first round (another reservation of the other was in Kafka before
    it), looks for its second round's candidates: it is answered 409 with
    the address it holds and that the daemon is stopping, not 202
    "published" as if its decided reservations were still to be applied.
    The address stays reserved to it."""
    # Its polls wait on the lock held below, and its second search sleeps:
    # no statement timeout cuts either short.
    api = Api(config={"api": {"write_wait_ms": "90000",
                              "statement_timeout_ms": "600000"}})
    locker = None
    try:
        api.daemon.wait_assigned(3)
        api.subnet("lan", "127.97.9.0/24", ["127.97.9.1-127.97.9.9"])
        api.settle()
        marks = count_messages(api.topics.marks)
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipamd.request IN ACCESS EXCLUSIVE MODE")
        answer = allocate_two_behind_bob(api, "127.97.9", marks)
        # The second round's search for candidates sleeps before it looks.
        make_searches_sleep(api.db)
        locker.rollback()
        wait_until(lambda: api.db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
            "AND query LIKE '%api_next_free%'") == 1, 60, "the second round's search")
        assert not answer.done()
        api.daemon.proc.send_signal(signal.SIGTERM)
        status, body, _ = answer.result()
        print("allocation: %d %s" % (status, body), flush=True)
        assert status == 409, (status, body)
        assert [r["ip_address"] for r in body["allocated"]] == ["127.97.9.2"], body
        assert "only 1 of 2" in body["detail"] and \
            "the daemon is stopping" in body["detail"], body
        assert "requests" not in body, body
        assert api.daemon.proc.wait(60) == 0
        assert api.db.query("SELECT host(ip_address), status, description FROM ipam "
                            "WHERE status = 'reserved' ORDER BY 1") == [
            ("127.97.9.1", "reserved", "bob's"), ("127.97.9.2", "reserved", "mine")]
    finally:
        if locker is not None:
            locker.close()
        wake_searches(api.db)
        api.close()


def test_an_allocation_whose_search_outlasts_its_wait_is_answered_then():
    """The search for an allocation's candidates does not answer (it
    sleeps, as a query waiting for a connection while PostgreSQL is away
    would): at api.write_wait_ms the allocation is answered, not left to
    the HTTP deadline's "no reply in time".  In its first round: 503,
    nothing published.  In a later round, after its first won one of two
    addresses: 409 with the address it holds."""
    api = Api(config={"api": {"write_wait_ms": "15000",
                              "statement_timeout_ms": "600000"}})
    locker = None
    try:
        api.daemon.wait_assigned(3)
        api.subnet("lan", "127.97.11.0/24", ["127.97.11.1-127.97.11.9"])
        api.subnet("wan", "127.97.12.0/24", ["127.97.12.1-127.97.12.9"])
        api.settle()
        # The search for candidates in "wan" sleeps; in "lan" only in a
        # later round (whose search leaves out the first round's addresses).
        make_searches_sleep(api.db, "id = 'wan' OR cardinality(exclude) > 0")
        marks = count_messages(api.topics.marks)
        status, body, _ = api.call("POST", "/api/v1/subnets/wan/allocate",
                                   {"count": 1}, timeout=120)
        print("first round: %d %s" % (status, body), flush=True)
        assert status == 503 and body["error"] == "unavailable", (status, body)
        assert "no answer within api.write_wait_ms (15000 ms)" in body["detail"], body
        assert count_messages(api.topics.marks) == marks
        # Its search still holds a read connection: ended.
        wake_searches(api.db)

        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipamd.request IN ACCESS EXCLUSIVE MODE")
        answer = allocate_two_behind_bob(api, "127.97.11", marks)
        locker.rollback()
        status, body, _ = answer.result()
        print("later round: %d %s" % (status, body), flush=True)
        assert status == 409, (status, body)
        assert [r["ip_address"] for r in body["allocated"]] == ["127.97.11.2"], body
        assert "only 1 of 2" in body["detail"] and \
            "no answer within api.write_wait_ms" in body["detail"], body
    finally:
        if locker is not None:
            locker.close()
        wake_searches(api.db)
        api.close()


def test_writes_waiting_when_the_daemon_stops_are_answered():
    """SIGTERM while a write waits to be applied: the client is answered
    (202 with the request to follow: the event is published), a write that
    comes during the drain gets 503 and publishes nothing, and the event is
    applied once.  Twice: with the batch of the event in flight (the drain
    waits for it), and with the event not yet in a batch (a long linger:
    the drain ends at once, and the reply still goes out)."""
    stop_while_a_write_waits(in_flight=True)
    stop_while_a_write_waits(in_flight=False)


def stop_while_a_write_waits(in_flight):
    import psycopg2
    import threading

    api = Api(config=None if in_flight else
              {"consumer": {"batch_max_wait_ms": "3000",
                            "batch_max_events": "1000"}})
    locker = None
    try:
        api.subnet("lan", "127.97.6.0/24", ["127.97.6.1-127.97.6.5"])
        if in_flight:
            api.settle()
        else:
            api.kafka.flush()
            wait_until(lambda: api.db.scalar("SELECT count(*) FROM ipam") == 5,
                       60, "the pool (after the linger)")
        marks_before = count_messages(api.topics.marks)
        if in_flight:
            # The apply of the mark waits behind this lock.
            locker = psycopg2.connect(api.db.conninfo())
            locker.cursor().execute(
                "LOCK TABLE ipam_state.mark IN ACCESS EXCLUSIVE MODE")
        answer = {}

        def put():
            answer["reply"] = api.call("PUT", "/api/v1/marks/-/127.97.6.2",
                                       {"status": "reserved", "description": "gw"})

        client = threading.Thread(target=put)
        client.start()
        wait_until(lambda: count_messages(api.topics.marks) == marks_before + 1,
                   30, "the reservation to be published")
        if in_flight:
            wait_until(lambda: api.db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND wait_event_type = 'Lock'") > 0,
                30, "the apply to wait for the lock")
        api.daemon.signal(signal.SIGTERM)
        client.join(30)
        assert not client.is_alive()
        status, body, headers = answer["reply"]
        assert status == 202, (status, body)
        assert body["state"] == "pending" and "stopping" in body["detail"], body
        request_id = body["requests"][0]
        assert headers["Location"] == "/api/v1/requests/" + request_id

        if in_flight:
            status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.6.3",
                                       {"status": "reserved"})
            assert status == 503 and "nothing was published" in body["detail"], body
            assert count_messages(api.topics.marks) == marks_before + 1
            locker.rollback()
            locker.close()
            locker = None
        assert api.daemon.proc.wait(60) == 0

        sections = api.daemon.sections
        sections["consumer"]["batch_max_wait_ms"] = "10"
        api.daemon = Daemon(api.db, api.topics, config=sections,
                            group=api.daemon.group).start()
        api.daemon.wait_ready()
        api.port = api.daemon.http_port()
        wait_until(lambda: api.call("GET", "/api/v1/requests/" + request_id,
                                    token=READ_TOKEN)[1].get("state") == "applied",
                   60, "the request to be applied")
        assert api.db.scalar("SELECT count(*) FROM ipamd.audit WHERE "
                             "ip_address = '127.97.6.2' AND action = 'update'") == 1
        assert api.db.scalar("SELECT description FROM ipam "
                             "WHERE ip_address = '127.97.6.2'") == "gw"
    finally:
        if locker is not None:
            locker.close()
        api.close()


def count_messages(topic):
    """The number of messages in a one-partition topic (its high watermark)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": harness.bootstrap(),
                         "group.id": harness.unique("count")})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0),
                                                   timeout=10)
        return high
    finally:
        consumer.close()


def test_writes_wait_while_a_rebuild_builds_the_state():
    """A daemon rebuilding the state (here held back by another instance
    of the group) answers writes 503 with Retry-After: it would decide
    them against a state not yet whole, and keep that outcome; reads are
    served from the live state.  Once swapped in, it takes writes."""
    api = Api()
    rebuild = None
    try:
        api.subnet("r", "127.93.1.0/24", ["127.93.1.1-127.93.1.9"])
        api.settle()
        tokens = {"api": {scope + "_token_file": os.path.join(api.dir, scope + ".token")
                          for scope in ("read", "write")}}
        rebuild = RebuildDaemon(api.db, api.topics, group=api.daemon.group,
                                config=tokens, extra_args=["--rebuild"]).start()
        rebuild.wait_log(r"rebuild: this instance holds \d of the 3 partitions", timeout=90)
        other = Api.__new__(Api)
        other.port = rebuild.http_port()
        status, body, headers = other.call("PUT", "/api/v1/marks/-/127.93.1.5",
                                           {"status": "reserved", "description": "x"})
        assert status == 503 and headers.get("Retry-After") == "5", (status, body)
        assert "a rebuild is building the state again" in body["detail"], body
        status, body, _ = other.call("GET", "/api/v1/addresses?subnet=r&count=true",
                                     token=READ_TOKEN)
        assert status == 200 and body["total"] == 9, body
        assert api.daemon.stop() == 0
        rebuild.wait_log(r"rebuild: swapped in", timeout=120)
        status, body, _ = other.call("PUT", "/api/v1/marks/-/127.93.1.5",
                                     {"status": "reserved", "description": "x"})
        assert status == 200 and body["status"] == "reserved", (status, body)
    finally:
        if rebuild:
            rebuild.close()
        api.close()


def test_openapi_document_matches_the_routes():
    """Every path and method of the OpenAPI document is served (nothing
    answers 404 "no such endpoint" or 405), and a route the document does
    not name is not served."""
    api = Api()
    try:
        status, doc, _ = api.call("GET", "/api/v1/openapi.json", token=None)
        assert status == 200
        samples = {"{vrf}": "-", "{ip}": "127.97.5.1", "{id}": "x", "{progress}": "x:0:0"}
        for path, methods in doc["paths"].items():
            concrete = path
            for name, value in samples.items():
                concrete = concrete.replace(name, value)
            for method in methods:
                if method not in ("get", "put", "post", "delete"):
                    continue
                body = {} if method in ("put", "post") else None
                status, answer, _ = api.call(method.upper(), "/api/v1" + concrete,
                                             body)
                assert status != 405, (method, path, answer)
                if status == 404:
                    assert "no such endpoint" not in answer["detail"], (method, path)
        status, answer, _ = api.call("GET", "/api/v1/servers")
        assert status == 404 and "/servers" not in doc["paths"]
    finally:
        api.close()


def test_paging_100k_rows_while_they_change():
    """Keyset pages over 100,000 rows: in address order, every row exactly
    once, while reservations change rows underneath; a status filter
    neither repeats a row nor loses one that kept its status."""
    import ipaddress
    import random
    import threading
    api = Api(config={"api": {"rate_limit": "0"}})
    try:
        first = ipaddress.ip_address("127.64.0.1")
        last = first + 99999
        api.subnet("big", "127.64.0.0/15", ["%s-%s" % (first, last)])
        api.settle()
        assert api.db.scalar("SELECT count(*) FROM ipam") == 100000

        stop = threading.Event()
        changed = set()

        def churn():
            rng = random.Random(7)
            while not stop.is_set():
                ip = str(first + rng.randrange(100000))
                status, _, _ = api.call("PUT", "/api/v1/marks/-/" + ip,
                                        {"status": "reserved",
                                         "description": "churn"})
                if status == 200:
                    changed.add(ip)

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            seen, cursor = [], None
            while True:
                path = "/api/v1/addresses?limit=1000" + (
                    "&cursor=" + cursor if cursor else "")
                status, page, _ = api.call("GET", path, token=READ_TOKEN)
                assert status == 200, page
                seen += [row["ip_address"] for row in page["items"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            available, cursor = [], None
            while True:
                path = "/api/v1/addresses?status=available&limit=1000" + (
                    "&cursor=" + cursor if cursor else "")
                status, page, _ = api.call("GET", path, token=READ_TOKEN)
                assert status == 200, page
                available += [row["ip_address"] for row in page["items"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        finally:
            stop.set()
            worker.join()
        assert changed, "no reservation landed while paging"
        expected = [str(first + i) for i in range(100000)]
        assert seen == expected, "pages skipped, repeated or reordered rows"
        assert len(available) == len(set(available))
        assert set(expected) - changed <= set(available)
    finally:
        api.close()


def test_whole_csv_is_streamed_and_a_failed_page_cuts_it():
    """GET /addresses as a whole CSV comes as one chunked reply, page by
    page: the same bytes as its keyset pages end to end.  A bad filter is
    still a 400 before anything is sent; HEAD still answers with the
    length.  A page that fails once the reply has begun cuts it: the
    client sees an incomplete transfer, never a whole-looking file."""
    api = Api()
    try:
        api.subnet("big", "127.67.0.0/18", ["127.67.0.1-127.67.19.136"])
        api.settle()

        def stream(path):
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
            try:
                conn.request("GET", path,
                             headers={"Authorization": "Bearer " + READ_TOKEN})
                response = conn.getresponse()
                try:
                    return response, response.read().decode()
                except http.client.IncompleteRead as error:
                    return response, error
            finally:
                conn.close()

        response, whole = stream("/api/v1/addresses?format=csv")
        assert response.status == 200, whole
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        assert response.getheader("Content-Type").startswith("text/csv")
        assert "ipam.csv" in response.getheader("Content-Disposition")
        assert whole.count("\r\n") == 5001, whole[:200]
        pages, cursor = "", None
        while cursor != "":
            path = "/api/v1/addresses?format=csv&limit=1000"
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor)
            status, body, headers = api.call("GET", path, token=READ_TOKEN)
            assert status == 200, body
            pages += body
            cursor = headers["Next-Cursor"]
        assert pages == whole

        # In one piece: by updated_at (each page would sort every row),
        # and to an HTTP/1.0 client (no chunks to tell a cut reply).
        status, body, headers = api.call(
            "GET", "/api/v1/addresses?format=csv&sort=updated_at", token=READ_TOKEN)
        assert status == 200 and body.count("\r\n") == 5001
        assert int(headers["Content-Length"]) == len(body.encode())
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
        conn.request("GET", "/api/v1/addresses?format=csv",
                     headers={"Authorization": "Bearer " + READ_TOKEN,
                              "Connection": "keep-alive"})
        response = conn.getresponse()
        assert response.getheader("Transfer-Encoding") is None
        assert int(response.getheader("Content-Length")) == len(whole.encode())
        assert response.read().decode() == whole
        conn.close()

        status, body, headers = api.call("GET", "/api/v1/addresses?format=csv"
                                         "&status=bogus", token=READ_TOKEN)
        assert status == 400 and body["field"] == "status", body
        status, body, headers = api.call("HEAD", "/api/v1/addresses?format=csv",
                                         token=READ_TOKEN)
        assert status == 200 and body == ""
        assert int(headers["Content-Length"]) == len(whole.encode())

        # A client that leaves after the first bytes: the export stops.
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
            conn.request("GET", "/api/v1/addresses?format=csv",
                         headers={"Authorization": "Bearer " + READ_TOKEN})
            response = conn.getresponse()
            assert response.status == 200 and response.read(100)
            response.close()
            conn.close()
        status, body, _ = api.call("GET", "/api/v1/addresses?limit=1",
                                   token=READ_TOKEN)
        assert status == 200, body

        # A row the CSV cannot render, in the fourth page of five.
        api.db.query("UPDATE ipam_state.address SET updated_at = "
                     "'1999-01-01T00:00:00Z' WHERE ip_address = '127.67.13.200'")
        harness.refuse_times_before_2000(api.db)
        response, cut = stream("/api/v1/addresses?format=csv")
        assert response.status == 200
        assert isinstance(cut, http.client.IncompleteRead), cut[-200:]
        got = cut.partial.decode()
        assert got.count("\r\n") == 3001 and whole.startswith(got), len(got)
        api.daemon.wait_log(r"api: /api/v1/addresses\?format=csv: the export "
                            r"stopped after 3 page\(s\): .*no time before 2000")
        # The connection was cut, not the daemon: it answers on.
        status, body, _ = api.call("GET", "/api/v1/addresses?limit=1",
                                   token=READ_TOKEN)
        assert status == 200, body
    finally:
        api.close()


def test_a_reply_that_takes_longer_than_the_idle_timeout_reaches_a_slow_reader_whole():
    """A reply larger than the sockets buffer (10 dead letters of 900 KB,
    raw) read at a slow but steady pace for longer than the connection's
    idle timeout (10 s) arrives whole: the client sends nothing while it
    reads, and that is no idle connection.  A client that stops reading
    altogether is still cut off."""
    api = Api()
    try:
        for i in range(10):
            api.send(api.topics.servers, "bad%d" % i, ("{" + "x" * 900000).encode())
        api.settle()
        request = (b"GET /api/v1/dead-letters?limit=10&raw=true HTTP/1.1\r\n"
                   b"Host: t\r\nAuthorization: Bearer " + READ_TOKEN.encode() +
                   b"\r\n\r\n")

        def read_reply(sock, pause):
            """(Content-Length, body bytes read) until the body is whole or
            the server closes."""
            got, length, head = b"", None, 0
            while length is None or len(got) - head < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
                if length is None and b"\r\n\r\n" in got:
                    head = got.index(b"\r\n\r\n") + 4
                    status = int(got.split(b" ", 2)[1])
                    assert status == 200, got[:head]
                    for line in got[:head].split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                time.sleep(pause)
            return length, len(got) - head

        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.connect(("127.0.0.1", api.port))
        slow.sendall(request)
        began = time.monotonic()
        length, read = read_reply(slow, 0.1)
        took = time.monotonic() - began
        slow.close()
        assert length is not None and length > 9000000, length
        # The precondition of the case: the reading outlasted the timeout.
        assert took > 12, took
        assert read == length, (read, length, took)

        stalled = socket.create_connection(("127.0.0.1", api.port))
        stalled.sendall(request)
        time.sleep(25)
        stalled.settimeout(30)
        length, read = read_reply(stalled, 0)
        stalled.close()
        assert length is not None and read < length, (read, length)
        assert api.daemon.http_get("/healthz") == (200, "ok\n")
    finally:
        api.close()


def test_whole_exports_at_once_are_bounded_so_slow_readers_cannot_hold_the_daemon():
    """Whole CSV exports are paced by their clients: eight clients that
    read nothing hold eight, and a ninth is told 503 with Retry-After
    (pages with limit and cursor still answer, and so do the probes).
    Once one of the eight goes, an export is taken again."""
    api = Api()
    stalled = []
    try:
        api.subnet("big", "127.68.0.0/16", ["127.68.0.1-127.68.255.254"])
        api.settle()
        request = (b"GET /api/v1/addresses?format=csv HTTP/1.1\r\nHost: t\r\n"
                   b"Authorization: Bearer " + READ_TOKEN.encode() + b"\r\n\r\n")
        for _ in range(8):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", api.port))
            sock.sendall(request)
            sock.settimeout(30)
            assert sock.recv(12) == b"HTTP/1.1 200", "an export under way"
            stalled.append(sock)
        status, body, headers = api.call("GET", "/api/v1/addresses?format=csv",
                                         token=READ_TOKEN)
        assert status == 503 and headers["Retry-After"] == "5", (status, body)
        assert "8 whole exports are under way" in body["detail"], body
        status, page, _ = api.call("GET", "/api/v1/addresses?format=csv&limit=10",
                                   token=READ_TOKEN)
        assert status == 200 and page.count("\r\n") == 11, page
        assert api.daemon.http_get("/healthz") == (200, "ok\n")
        stalled.pop().close()

        def taken():
            status, body, _ = api.call("GET", "/api/v1/addresses?format=csv&"
                                       "q=127.68.0.", token=READ_TOKEN)
            # The header and 127.68.0.1 to 127.68.0.255.
            return status == 200 and body.count("\r\n") == 256
        wait_until(taken, 30, "an export taken once one went")
        for sock in stalled:
            sock.close()
        stalled = []

        # A streamed export whose reader pauses longer than the idle
        # timeout (10 s) goes on when it reads again: each page may take
        # as long as any reply may.
        paused = socket.socket()
        paused.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        paused.connect(("127.0.0.1", api.port))
        paused.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        paused.settimeout(60)
        got = paused.recv(4096)
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        time.sleep(15)
        while True:
            chunk = paused.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        paused.close()
        assert got.endswith(b"\r\n0\r\n\r\n"), got[-200:]
        assert b'"",127.68.255.254,' in got, got[-300:]
    finally:
        for sock in stalled:
            sock.close()
        api.close()


def test_read_storm_waits_its_share_and_is_told_when_too_busy():
    """Reads keep PostgreSQL busy only a share of the time: a storm of
    heavy reads (50 concurrent one-piece CSV answers of 60,000 rows, as
    HEAD asks for them) is queued, and the reads that waited too long are
    answered 503 with a Retry-After instead of hanging; whole CSV exports
    streamed meanwhile wait their turn page by page and come whole, never
    cut for the others; and /healthz answers and events are applied."""
    import ipaddress
    api = Api(config={"api": {"rate_limit": "0"}})
    try:
        first = ipaddress.ip_address("127.66.0.1")
        api.subnet("wide", "127.66.0.0/16", ["%s-%s" % (first, first + 59999)])
        api.settle()

        def heavy(_):
            status, _, headers = api.call("HEAD", "/api/v1/addresses?format=csv",
                                          token=READ_TOKEN, timeout=120)
            return status, headers.get("Retry-After")

        begun = threading.Semaphore(0)

        def export(_):
            # Begun before the storm: its head and first page come first.
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=120)
            conn.request("GET", "/api/v1/addresses?format=csv",
                         headers={"Authorization": "Bearer " + READ_TOKEN})
            response = conn.getresponse()
            begun.release()
            try:
                return response.status, response.read().decode().count("\r\n")
            finally:
                conn.close()

        with concurrent.futures.ThreadPoolExecutor(53) as pool:
            whole = pool.map(export, range(2))
            for _ in range(2):
                assert begun.acquire(timeout=60), "an export did not begin"
            storm = pool.map(heavy, range(50))
            # While it lasts: the loop answers and the apply goes on.
            status, _ = api.daemon.http_get("/healthz")
            assert status == 200
            api.server("1", "127.66.0.10")
            api.settle()
            results = list(storm)
            exports = list(whole)
        codes = [code for code, _ in results]
        assert set(codes) <= {200, 503}, codes
        assert 200 in codes, codes
        busy = [after for code, after in results if code == 503]
        assert busy, "no read was told the API is too busy"
        assert all(after == "5" for after in busy), busy
        assert exports == [(200, 60001)] * 2, exports
        assert api.db.scalar("SELECT status FROM ipam WHERE ip_address = "
                             "'127.66.0.10'") == "allocated"
    finally:
        api.close()


def test_reads_that_ran_long_hold_back_neither_writes_nor_reads_past_their_wait():
    """Two reads hold both read connections for 10 s (a lock holds them):
    a third read waiting for a connection is answered within its wait
    (503 "too many reads"), not when a connection frees.  Their time has
    spent the reads' share of PostgreSQL: a write is still answered 200
    once applied, its outcome read ahead of the reads and whatever their
    share has left; and a read that comes then is answered within its
    wait too (200, or 503 "too many reads"), never left to the HTTP
    deadline."""
    api = Api(config={"api": {"statement_timeout_ms": "30000",
                              "write_wait_ms": "15000", "rate_limit": "0"}})
    locker = None
    try:
        api.subnet("lan", "127.97.10.0/24", ["127.97.10.1-127.97.10.9"])
        api.settle()
        locker = psycopg2.connect(api.db.conninfo())
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ipam_state.address IN ACCESS EXCLUSIVE MODE")

        def busy():
            return api.daemon.http_get("/metrics")[1].count(
                "ipam_syncd_api_reads_waiting 1")

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            long_reads = [pool.submit(api.call, "GET", "/api/v1/addresses",
                                      token=READ_TOKEN, timeout=120) for _ in range(2)]
            time.sleep(1)
            third = pool.submit(api.call, "GET", "/api/v1/stats", token=READ_TOKEN,
                                timeout=120)
            wait_until(busy, 10, "the third read to wait for a connection")
            status, body, headers = third.result()
            print("the read waiting for a connection: %d %s" % (status, body), flush=True)
            # Answered while both connections were still held, not when
            # one freed (the lock holds them until released below).
            assert not any(f.done() for f in long_reads), \
                [f.result()[:2] for f in long_reads if f.done()]
            assert status == 503 and "too many reads are waiting" in body["detail"] \
                and headers["Retry-After"], (status, body)
            locker.rollback()
            assert [f.result()[0] for f in long_reads] == [200, 200], \
                [f.result()[:2] for f in long_reads]

        status, body, _ = api.call("PUT", "/api/v1/marks/-/127.97.10.3",
                                   {"status": "reserved"}, timeout=60)
        assert status == 200 and body["status"] == "reserved", (status, body)
        status, body, headers = api.call("GET", "/api/v1/subnets", token=READ_TOKEN,
                                         timeout=120)
        print("the read after them: %d %s" % (status, body), flush=True)
        assert status == 200 or (status == 503 and "too many reads are waiting"
                                 in body["detail"] and headers["Retry-After"]), body
    finally:
        if locker is not None:
            locker.close()
        api.close()


def test_the_rate_limit_keeps_each_client_address_apart():
    """[api] rate_limit = 1: a client sending requests back to back is
    answered 429 with Retry-After once its burst (twice the rate) is spent,
    while a client from another address (127.0.0.2) is served; the refusals
    are counted.  Timing cannot pass this by accident: a refill is a second
    per token, and the requests follow each other far faster."""
    api = Api(config={"api": {"rate_limit": "1"}})

    def get(source):
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/api/v1/subnets",
                         headers={"Authorization": "Bearer " + READ_TOKEN})
            response = conn.getresponse()
            return response.status, response.read().decode(), response.getheader("Retry-After")
        finally:
            conn.close()

    try:
        statuses = []
        while 429 not in statuses and len(statuses) < 20:
            status, body, retry = get("127.0.0.1")
            statuses.append(status)
        assert statuses[-1] == 429 and set(statuses[:-1]) == {200} \
            and len(statuses) >= 3, statuses
        assert retry == "1" and "api.rate_limit" in body, (retry, body)
        status, body, _ = get("127.0.0.2")
        assert status == 200, (status, body)
        metrics = api.daemon.http_get("/metrics")[1]
        refused = [line for line in metrics.splitlines()
                   if line.startswith("ipam_syncd_api_rate_limited_total ")]
        assert refused and int(refused[0].split()[1]) >= 1, refused
    finally:
        api.close()


if __name__ == "__main__":
    harness.main(globals())
