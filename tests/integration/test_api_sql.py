"""The read side of the operator API at the SQL level
(schema/functions/95_api.sql): state seeded through real events into the
real daemon, then each ipamd.api_* function called directly and checked
against what Python computes on its own from the same tables and from the
entities the test sent (docs/API.md, docs/STATE.md)."""

import base64
import collections
import csv
import datetime
import io
import ipaddress
import json

import psycopg2

import harness
from test_order import IMAGE_KEYS
from test_sync import Run, event

# The columns of the ipam view, in its order (docs/STATE.md).
COLUMNS = ("vrf", "ip_address", "subnet_id", "status", "ip_type", "active",
           "server_id", "hostname", "mac_address", "platform", "manufacturer",
           "description", "last_seen_at", "last_checked_at", "rtt_us",
           "created_at", "updated_at")
TIMES = ("last_seen_at", "last_checked_at", "created_at", "updated_at")
SORTS = ("address", "-address", "updated_at", "-updated_at")


def connect(db):
    """A connection of the test's own, in autocommit, as the API reads."""
    conn = psycopg2.connect(db.conninfo())
    conn.autocommit = True
    return conn


def call(conn, sql, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def etag_of(conn, vrf, ip):
    """ipamd.address_etag() of an address, called directly.  It reads the
    entity tables by their plain names: the API's functions set
    search_path for it, a direct call must too."""
    with conn.cursor() as cur:
        cur.execute("SET search_path = ipam_state, ipamd, public; "
                    "SELECT ipamd.address_etag(%s, %s::inet)", (vrf, ip))
        value = cur.fetchone()[0]
        cur.execute("RESET search_path")
        return value


def api(conn, name, p=None):
    """One endpoint's function with a parameter object."""
    return call(conn, "SELECT ipamd.%s(%%s::jsonb)" % name, json.dumps(p or {}))


def refused(field, fn, *args):
    """Asserts that fn(*args) raises SQLSTATE 22023 naming field."""
    try:
        fn(*args)
    except psycopg2.Error as error:
        assert error.pgcode == "22023", (error.pgcode, str(error))
        message = error.diag.message_primary
        assert message.startswith(field + ": "), message
        return message
    raise AssertionError("accepted: %r" % (args,))


def rfc3339(value):
    """A timestamp as the API must show it: RFC 3339, UTC, microseconds."""
    if value is None:
        return None
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ip_key(text):
    """The order of inet for host addresses: family, then the address."""
    ip = ipaddress.ip_address(text)
    return (ip.version, int(ip))


def view_rows(conn):
    """Every row of the ipam view as the API must show it (no etag)."""
    with conn.cursor() as cur:
        cur.execute("SELECT %s FROM ipam" % ", ".join(COLUMNS))
        out = []
        for values in cur.fetchall():
            row = dict(zip(COLUMNS, values))
            row["_updated"] = row["updated_at"]
            row["ip_address"] = str(ipaddress.ip_interface(row["ip_address"]).ip)
            for name in TIMES:
                row[name] = rfc3339(row[name])
            out.append(row)
        return out


def sort_key(sort):
    """The Python order of each sort of api_addresses."""
    if sort in ("address", "-address"):
        return lambda r: (r["vrf"], ip_key(r["ip_address"]))
    return lambda r: (r["_updated"], r["vrf"], ip_key(r["ip_address"]))


def expected(rows, p):
    """The rows api_addresses must list for the filters of p, in order,
    computed in Python from the view's rows and the subnets' entities."""
    out = []
    q = (p.get("q") or "").lower()
    since = p.get("changed_since")
    if since is not None:
        since = datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
    for r in rows:
        if "vrf" in p and r["vrf"] != p["vrf"]:
            continue
        if "subnet" in p and r["subnet_id"] != p["subnet"]:
            continue
        if p.get("status") and r["status"] not in p["status"]:
            continue
        if "ip_type" in p and r["ip_type"] != p["ip_type"]:
            continue
        if "active" in p and r["active"] != p["active"]:
            continue
        if q and not (r["ip_address"].startswith(q) or any(
                q in (r[f] or "").lower()
                for f in ("hostname", "mac_address", "description"))):
            continue
        if since is not None and r["_updated"] < since:
            continue
        out.append(r)
    sort = p.get("sort", "address")
    return sorted(out, key=sort_key(sort), reverse=sort.startswith("-"))


def csv_page_all(conn, p, limit):
    """Every CSV page of a listing put end to end, and the number of
    pages: the header on the first only, the cursor beside the body."""
    text, cursor, pages = "", None, 0
    while True:
        q = dict(p, limit=limit)
        if cursor is not None:
            q["cursor"] = cursor
        with conn.cursor() as cur:
            cur.execute("SELECT body, next_cursor FROM "
                        "ipamd.api_addresses_csv_page(%s::jsonb)", (json.dumps(q),))
            body, cursor = cur.fetchone()
        pages += 1
        records = list(csv.reader(io.StringIO(body, newline="")))
        assert body.startswith("vrf,ip_address,") == (pages == 1), (pages, body)
        rows = len(records) - (pages == 1)
        assert rows <= limit, (limit, records)
        text += body
        if cursor is None:
            return text, pages
        assert rows == limit, "a short page before the last"


def page_all(conn, p, limit, between_pages=None):
    """Every item of a listing, page by page; between_pages(n, items) runs
    after page n.  Returns the items and the number of pages."""
    items, cursor, pages = [], None, 0
    while True:
        q = dict(p, limit=limit)
        if cursor is not None:
            q["cursor"] = cursor
        page = api(conn, "api_addresses", q)
        pages += 1
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if cursor is None:
            return items, pages
        assert len(page["items"]) == limit, "a short page before the last"
        if between_pages:
            between_pages(pages, page["items"])


def strip(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}


def mark(run, address, status, version, description=None, vrf=None):
    """A mark event, in a named vrf when given (its id is vrf/address)."""
    key = "%s/%s" % (vrf, address) if vrf else address
    data = {"address": address, "status": status}
    if vrf:
        data["vrf"] = vrf
    if description is not None:
        data["description"] = description
    run.send(run.topics.marks, key, event("mark.set", key, data, version))


def seed_small(run):
    """A state with every kind of row: two vrfs, nested subnets, IPv6,
    static and dhcp rows, marks, shared and marked addresses."""
    run.subnet("1", "192.168.1.0/24", ["192.168.1.1-192.168.1.60"], 1)
    run.subnet("2", "192.168.2.0/24", ["192.168.2.1-192.168.2.20"], 1)
    run.subnet("3", "10.20.0.0/16", ["10.20.4.1-10.20.5.10"], 1)
    run.subnet("4", "10.20.5.0/24", ["10.20.5.30-10.20.5.35"], 1)
    run.subnet("6", "2001:db8::/64", ["2001:db8::1-2001:db8::40"], 1)
    run.subnet("b1", "192.168.1.0/24", ["192.168.1.1-192.168.1.30"], 1, vrf="blue")
    run.server("10", "192.168.1.10", 1, hostname="Web-01", mac="AA:BB:CC:00:00:10")
    run.server("11", "192.168.1.11", 1, hostname="web-02", mac="aa:bb:cc:00:00:11")
    run.server("12", "192.168.1.100", 1, hostname="dhcp_client", mac="aa:bb:cc:00:01:00")
    run.server("13", "192.168.1.12", 1, hostname="db-1", mac="de:ad:be:ef:00:12")
    run.server("14", "192.168.1.12", 1, hostname="db-1-twin")
    run.server("15", "2001:db8::7", 1, hostname="v6-host", mac="aa:bb:cc:00:00:07")
    run.server("16", "10.20.5.31", 1, hostname="nested")
    run.server("17", "10.20.9.9", 1, hostname="outer-dhcp")
    run.server("18", "192.168.1.5", 1, hostname="blue-web", vrf="blue")
    run.server("19", "192.168.2.3", 1, hostname="marked-and-held")
    mark(run, "192.168.1.1", "reserved", 1, description="Gateway for lab 50%")
    mark(run, "192.168.1.2", "quarantine", 1)
    mark(run, "192.168.2.3", "reserved", 1, description="taken anyway")
    mark(run, "192.168.2.200", "reserved", 1, description="dhcp reservation")
    mark(run, "192.168.1.7", "reserved", 1, description="blue gw", vrf="blue")
    run.settle()


def test_address_listing_filters_sorts_pages_and_csv():
    """Filters one by one and combined, each sort, small pages: the items
    are the rows Python selects from the view, in its order, with the
    API's formats; count, CSV and bad parameters."""
    run = Run()
    try:
        seed_small(run)
        conn = connect(run.db)
        # The sweeper's columns, as the sweeper would write them: a state
        # row each (schema/functions/90_sweep.sql).
        run.db.query("INSERT INTO ipamd.sweep_address (vrf, ip_address, row_created_at, "
                     "subnet_id, pass, active, answered, missed_sweeps, rtt_us, "
                     "checked_at, seen_at) "
                     "SELECT vrf, ip_address, created_at, subnet_id, 1, true, true, 0, 42, "
                     "now(), now() FROM ipam_state.address "
                     "WHERE host(ip_address) LIKE '%%1' OR server_id IS NOT NULL")
        # Later changes, so that changed_since has something to split.
        middle = call(conn, "SELECT max(updated_at) FROM ipam")
        run.server("11", "192.168.1.11", 2, hostname="web-02-renamed")
        run.server("20", "192.168.2.4", 1, hostname="late")
        run.settle()
        rows = view_rows(conn)
        assert len(rows) > 150, len(rows)
        assert {r["vrf"] for r in rows} == {"", "blue"}
        assert any(r["active"] for r in rows) and not all(r["active"] for r in rows)
        assert {r["ip_type"] for r in rows} == {"static", "dhcp"}
        etags = dict(((r["vrf"], r["ip_address"]),
                      etag_of(conn, r["vrf"], r["ip_address"])) for r in rows)
        since = rfc3339(middle + datetime.timedelta(microseconds=1))

        filters = [
            {}, {"vrf": ""}, {"vrf": "blue"}, {"vrf": "none"},
            {"subnet": "1"}, {"subnet": "3"}, {"subnet": "4"}, {"subnet": "6"},
            {"subnet": "b1"}, {"subnet": "nope"},
            {"status": ["allocated"]}, {"status": ["reserved", "quarantine"]},
            {"status": []}, {"ip_type": "dhcp"}, {"ip_type": "static"},
            {"active": True}, {"active": False},
            {"q": "192.168.1.1"}, {"q": "2001:DB8::"}, {"q": "WEB"},
            {"q": "aa:bb:cc:00:00"}, {"q": "gateway"}, {"q": "50%"},
            {"q": "_"}, {"q": "%"}, {"q": "10.20.5."},
            {"changed_since": since}, {"changed_since": "2000-01-01T00:00:00+02:00"},
            {"vrf": "", "status": ["available"], "ip_type": "static"},
            {"subnet": "1", "status": ["allocated", "reserved"], "active": True},
            {"q": "web", "status": ["allocated"], "vrf": ""},
            {"changed_since": since, "vrf": "", "ip_type": "static"},
            {"q": "192.168.1.", "vrf": "blue", "active": False},
        ]
        for base in filters:
            for sort in SORTS:
                p = dict(base, sort=sort)
                want = [strip(r) for r in expected(rows, p)]
                for r in want:
                    r["etag"] = etags[(r["vrf"], r["ip_address"])]
                got, pages = page_all(conn, p, 7)
                assert got == want, first_difference(p, got, want)
                assert pages == max(1, -(-len(want) // 7)), (p, pages)
                counted = api(conn, "api_addresses", dict(p, count=True, limit=3))
                assert counted["total"] == len(want), p
                assert counted["items"] == want[:3]
                assert ("next_cursor" in counted) == (len(want) > 3)
                assert "total" not in api(conn, "api_addresses", dict(p, limit=1))
                # CSV pages: put end to end, the whole CSV of this sort.
                whole = api(conn, "api_addresses_csv", p)
                joined, csv_pages = csv_page_all(conn, p, 7)
                assert joined == whole, (p, joined, whole)
                assert csv_pages == pages, (p, csv_pages, pages)
            # CSV: the same rows, every column, as text.
            body = api(conn, "api_addresses_csv", base)
            assert body.endswith("\r\n")
            parsed = list(csv.reader(io.StringIO(body, newline="")))
            assert tuple(parsed[0]) == COLUMNS
            assert parsed[1:] == [csv_line(r) for r in expected(rows, base)], base
        nonempty = [f for f in filters if expected(rows, f)]
        assert len(nonempty) >= len(filters) - 4, "filters that select nothing prove little"

        # The default sort and limit.
        default = api(conn, "api_addresses")
        assert [r["ip_address"] for r in default["items"]] == \
            [r["ip_address"] for r in expected(rows, {})[:100]]
        assert "next_cursor" in default

        # A cursor belongs to its listing; an edited one is refused.
        first = api(conn, "api_addresses", {"vrf": "", "limit": 5})
        cursor = first["next_cursor"]
        again = api(conn, "api_addresses", {"vrf": "", "limit": 5, "cursor": cursor})
        assert again["items"][0]["ip_address"] == \
            expected(rows, {"vrf": ""})[5]["ip_address"]
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert b"192.168" in raw or b"10.20" in raw, raw
        forged = base64.urlsafe_b64encode(raw.replace(b'"",', b'"blue",')).decode().rstrip("=")
        for bad in (cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB"),
                    cursor[1:], "not a cursor", "", "x" * 5000, forged,
                    base64.urlsafe_b64encode(b"[1, \"addresses\"]").decode()):
            message = refused("cursor", api, conn, "api_addresses",
                              {"vrf": "", "limit": 5, "cursor": bad})
            assert message == "cursor: not a cursor of this listing", message
        for other in ({"vrf": "blue", "limit": 5}, {"vrf": "", "sort": "-address"},
                      {"vrf": "", "status": ["available"]}):
            refused("cursor", api, conn, "api_addresses", dict(other, cursor=cursor))
        # The limit may change from page to page.
        assert api(conn, "api_addresses", {"vrf": "", "limit": 1, "cursor": cursor})["items"] \
            == again["items"][:1]

        # Bad parameters name their field.
        for field, p in (("limit", {"limit": 0}), ("limit", {"limit": 1001}),
                         ("limit", {"limit": 2.5}), ("limit", {"limit": "10"}),
                         ("sort", {"sort": "hostname"}),
                         ("status", {"status": ["free"]}),
                         ("status", {"status": [1]}),
                         ("ip_type", {"ip_type": "bogus"}),
                         ("active", {"active": "yes"}),
                         ("changed_since", {"changed_since": "yesterday"}),
                         ("changed_since", {"changed_since": "2026-02-30T00:00:00Z"}),
                         ("vrf", {"vrf": 3})):
            refused(field, api, conn, "api_addresses", p)
            if field != "limit":
                refused(field, api, conn, "api_addresses_csv", p)
        conn.close()
    finally:
        run.close()


def first_difference(p, got, want):
    """Where two listings part, for an assertion's message."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return (p, i, g, w)
    return (p, "lengths", len(got), len(want))


def csv_line(row):
    """A row as the CSV must hold it, text in the view's column order."""
    out = []
    for name in COLUMNS:
        value = row[name]
        if value is None:
            out.append("")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif str(value)[:1] in ("=", "+", "-", "@", "\t", "\r"):
            out.append("'" + str(value))     # never a spreadsheet formula
        else:
            out.append(str(value))
    return out


def test_csv_survives_hostile_hostnames():
    """Commas, quotes, line breaks, leading spaces and other scripts in a
    hostname or a description come back whole through Python's csv
    module; a value a spreadsheet would take for a formula (= + - @ first)
    comes back behind an apostrophe."""
    formulas = {"=1+2", '=HYPERLINK("http://x.invalid/","click")', "+1",
                "-2", "@SUM(A1)"}
    hostile = ["a,b", 'say "hi"', " lead, trail ", '"', '""', ",",
               "ünïcødé 名前", "=1+2", "semi;colon", "back\\slash",
               '=HYPERLINK("http://x.invalid/","click")', "+1", "-2", "@SUM(A1)"]
    # The decoder refuses control characters (a dead letter); should a row
    # ever hold one, the CSV must still carry it, so these are written
    # into rows by hand.
    control = ["line1\nline2", "cr\r\nlf", "tab\there", "\n"]
    run = Run()
    try:
        run.subnet("1", "10.77.0.0/24", ["10.77.0.1-10.77.0.30"], 1)
        for i, name in enumerate(hostile + ["placeholder"] * len(control)):
            run.server(str(100 + i), "10.77.0.%d" % (i + 1), 1, hostname=name)
        mark(run, "10.77.0.29", "reserved", 1, description='desc, with "quotes"')
        mark(run, "10.77.0.30", "reserved", 1, description="placeholder")
        run.settle()
        for i, name in enumerate(control):
            run.db.query("UPDATE ipam_state.address SET hostname = %s "
                         "WHERE ip_address = %s", (name, "10.77.0.%d" % (len(hostile) + i + 1)))
        run.db.query("UPDATE ipam_state.address SET description = %s "
                     "WHERE ip_address = '10.77.0.30'", ("two\nlines, \"quoted\"\r\n",))
        names = hostile + control
        conn = connect(run.db)
        body = api(conn, "api_addresses_csv")
        parsed = list(csv.DictReader(io.StringIO(body, newline="")))
        assert len(parsed) == 30
        by_ip = {r["ip_address"]: r for r in parsed}
        for i, name in enumerate(names):
            shown = "'" + name if name in formulas else name
            assert by_ip["10.77.0.%d" % (i + 1)]["hostname"] == shown, (name, by_ip)
        assert by_ip["10.77.0.29"]["description"] == 'desc, with "quotes"'
        assert by_ip["10.77.0.30"]["description"] == 'two\nlines, "quoted"\r\n'
        rows = sorted(view_rows(conn), key=sort_key("address"))
        assert [list(r.values()) for r in parsed] == [csv_line(r) for r in rows]
        # JSON keeps them as they are too.
        items = api(conn, "api_addresses", {"q": ","})["items"]
        assert [i["ip_address"] for i in items] == \
            [r["ip_address"] for r in expected(rows, {"q": ","})]
        assert {i["hostname"] for i in items} >= {h for h in hostile if "," in h}
        assert [i["hostname"] for i in api(conn, "api_addresses", {"limit": 1000})["items"]
                if i["hostname"] is not None] == names
        conn.close()
    finally:
        run.close()


def test_paging_100k_rows_while_rows_change():
    """Keyset pages over 100,000 rows visit every row exactly once and in
    order, while hostnames change and rows appear and go between pages:
    every row that exists throughout is listed once, and no row twice
    unless its own sort key moved."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "200"}})
    try:
        first = ipaddress.ip_address("10.61.0.1")
        run.subnet("big1", "10.60.0.0/16", ["10.60.0.1-10.60.255.254"], 1)
        last = first + (100000 - 65534 - 1)
        run.subnet("big2", "10.61.0.0/16", ["%s-%s" % (first, last)], 1)
        servers = {}
        for i in range(400):
            ip = str(ipaddress.ip_address("10.60.0.1") + i * 250)
            servers[str(i)] = ip
            run.server(str(i), ip, 1, hostname="h%d" % i)
        run.settle(timeout=300)
        conn = connect(run.db)
        assert call(conn, "SELECT count(*) FROM ipam") == 100000
        before = {(r["vrf"], r["ip_address"]) for r in view_rows(conn)}
        versions = {sid: 1 for sid in servers}
        marked = {}
        added = []

        def churn(page, items):
            """Renames a few servers, reserves addresses the listing has
            just passed, adds dhcp rows ahead of and behind it and deletes
            one, then waits until all is applied."""
            if page % 7:
                return
            for item in items[::200]:
                ip = item["ip_address"]
                marked[ip] = marked.get(ip, 0) + 1
                mark(run, ip, "reserved", marked[ip], description="page %d" % page)
            for sid in list(servers)[page:page + 15]:
                versions[sid] += 1
                run.server(sid, servers[sid], versions[sid],
                           hostname="h%s-v%d" % (sid, versions[sid]))
            if added:
                run.server_deleted(added.pop(0), 2)
            for ip in ("10.60.255.255", "10.61.200.%d" % page, "10.61.255.%d" % page):
                sid = "dhcp-%d-%s" % (page, ip)
                added.append(sid)
                run.server(sid, ip, 1, hostname="new")
            run.settle(timeout=120)

        for sort in ("address", "updated_at", "-address"):
            seen, pages = page_all(conn, {"sort": sort}, 1000,
                                   churn if sort != "-address" else None)
            keys = [(r["vrf"], r["ip_address"]) for r in seen]
            order = sort_key(sort)
            decorated = [order({"vrf": r["vrf"], "ip_address": r["ip_address"],
                                "_updated": datetime.datetime.fromisoformat(
                                    r["updated_at"].replace("Z", "+00:00"))})
                         for r in seen]
            if sort.startswith("-"):
                decorated.reverse()
            assert all(a < b for a, b in zip(decorated, decorated[1:])), \
                "%s: out of order or repeated" % sort
            now = {(r["vrf"], r["ip_address"]) for r in view_rows(conn)}
            missing = (before & now) - set(keys)
            assert not missing, (sort, sorted(missing)[:10])
            if sort != "updated_at":
                # The address never changes: no row twice.
                assert len(keys) == len(set(keys)), sort
            else:
                # Only a row whose updated_at moved may come twice.
                moved = {("", servers[s]) for s, v in versions.items() if v > 1}
                moved |= {("", ip) for ip in marked}
                twice = {k for k, n in collections.Counter(keys).items() if n > 1}
                assert twice <= moved, (twice - moved)
                assert twice, "no renamed row came back: the churn changed nothing"

            assert pages >= 100
        conn.close()
    finally:
        run.close()


def seed_state(db):
    """State rows of the sweeper for every third row, active for two of
    three; one written for an earlier row of the same address (another
    created_at: the view shows it inactive), one written while the
    address lay in another subnet (the view shows it active all the same,
    in its present subnet)."""
    db.query("DELETE FROM ipamd.sweep_address")
    db.query("INSERT INTO ipamd.sweep_address (vrf, ip_address, row_created_at, "
             "subnet_id, pass, active, answered, missed_sweeps, rtt_us, checked_at, seen_at) "
             "SELECT vrf, ip_address, created_at, subnet_id, 1, n % 3 <> 0, n % 3 <> 0, "
             "CASE WHEN n % 3 <> 0 THEN 0 ELSE 4 END, 42, now(), now() "
             "FROM (SELECT a.*, row_number() OVER (ORDER BY vrf, ip_address) n "
             "FROM ipam_state.address a) x WHERE n % 3 = 1 OR n % 9 = 3")
    stale, moved = db.query("SELECT vrf, ip_address FROM ipamd.sweep_address "
                            "WHERE active ORDER BY vrf, ip_address LIMIT 2")
    db.query("UPDATE ipamd.sweep_address SET row_created_at = row_created_at - "
             "interval '1 day' WHERE (vrf, ip_address) = (%s, %s)", stale)
    db.query("UPDATE ipamd.sweep_address SET subnet_id = 'elsewhere' "
             "WHERE (vrf, ip_address) = (%s, %s)", moved)


def test_address_detail_subnets_next_free_and_conflicts():
    """One address with its holders, mark, conflicts and history; subnets
    with statistics equal to what Python counts; the next free addresses;
    the conflicts with their filters."""
    run = Run()
    try:
        seed_small(run)
        # A dhcp server that goes away leaves history and no row.
        run.server("30", "192.168.2.150", 1, hostname="gone")
        run.settle()
        run.server_deleted("30", 2)
        run.settle()
        conn = connect(run.db)

        # Two servers share 192.168.1.12: holders, the conflict, the row.
        detail = call(conn, "SELECT ipamd.api_address('', '192.168.1.12')")
        assert detail["row"]["server_id"] == "13" and detail["row"]["status"] == "allocated"
        assert detail["row"]["ip_address"] == "192.168.1.12"
        assert detail["etag"] == etag_of(conn, "", "192.168.1.12")
        assert [h["id"] for h in detail["holders"]] == ["13", "14"]
        assert detail["holders"][0] == {"id": "13", "hostname": "db-1",
                                        "nic_mac": "de:ad:be:ef:00:12",
                                        "device_type": "PowerEdge R640",
                                        "manufacture": "Dell"}
        assert detail["mark"] is None
        assert [c["kind"] for c in detail["conflicts"]] == ["several_servers"]
        # Its history: the rows that name it and the run of pool
        # addresses that holds it (one audit row for the pool's plain
        # addresses, schema/012_audit_ranges.sql).
        history = run.db.query(
            "SELECT action, before, after, source_topic, source_partition, source_offset, "
            "requested_by, CASE WHEN ip_last IS NOT NULL THEN "
            "ARRAY[host(ip_address), host(ip_last)] END FROM ipamd.audit "
            "WHERE vrf = '' AND ('192.168.1.12' BETWEEN ip_address AND ip_last "
            "OR ip_address = '192.168.1.12' AND ip_last IS NULL) ORDER BY id DESC")
        assert [(h["action"], h["before"], h["after"], h["source_topic"],
                 h["source_partition"], h["source_offset"], h["requested_by"],
                 h.get("run")) for h in detail["history"]] == [tuple(h) for h in history]
        assert history and history[0][2]["server_id"] == "13", history

        # A server on a reserved address: the mark and its conflict.
        marked = call(conn, "SELECT ipamd.api_address('', '192.168.2.3')")
        assert marked["mark"]["status"] == "reserved"
        assert marked["mark"]["description"] == "taken anyway"
        assert marked["mark"]["updated_at"].endswith("Z")
        assert [c["kind"] for c in marked["conflicts"]] == ["server_on_reserved"]
        # The vrf counts: the same address elsewhere is another.
        blue = call(conn, "SELECT ipamd.api_address('blue', '192.168.1.7')")
        assert blue["row"]["status"] == "reserved" and blue["mark"]["description"] == "blue gw"
        assert call(conn, "SELECT ipamd.api_address('', '192.168.1.7')")["mark"] is None
        # History alone, a prefix length given, nothing at all.
        gone = call(conn, "SELECT ipamd.api_address('', '192.168.2.150/24')")
        assert gone["row"] is None and gone["holders"] == [] and gone["mark"] is None
        assert [h["action"] for h in gone["history"]] == ["delete", "insert"]
        assert call(conn, "SELECT ipamd.api_address('', '192.168.9.9')") is None
        assert call(conn, "SELECT ipamd.api_address('red', '192.168.1.12')") is None

        # Subnets: every live one, ordered by vrf and cidr, with counts.
        seed_state(run.db)
        rows = view_rows(conn)
        assert any(r["active"] for r in rows)
        subnets = api(conn, "api_subnets")["items"]
        assert [(s["vrf"], s["id"]) for s in subnets] == [
            ("", "3"), ("", "4"), ("", "1"), ("", "2"), ("", "6"), ("blue", "b1")]
        pools = {"1": ["192.168.1.1-192.168.1.60"], "2": ["192.168.2.1-192.168.2.20"],
                 "3": ["10.20.4.1-10.20.5.10"], "4": ["10.20.5.30-10.20.5.35"],
                 "6": ["2001:db8::1-2001:db8::40"], "b1": ["192.168.1.1-192.168.1.30"]}
        for s in subnets:
            mine = [r for r in rows if r["subnet_id"] == s["id"]]
            want = {k: sum(1 for r in mine if r["status"] == k)
                    for k in ("available", "allocated", "reserved", "quarantine")}
            want["active"] = sum(1 for r in mine if r["active"])
            want["pool_size"] = pool_size(s["id"], pools)
            assert want["pool_size"] == sum(1 for r in mine if r["ip_type"] == "static")
            want["pool"] = {k: sum(1 for r in mine if r["status"] == k
                                   and r["ip_type"] == "static")
                            for k in ("available", "allocated", "reserved", "quarantine")}
            assert sum(want["pool"].values()) == want["pool_size"]
            want["utilisation"] = (round(1 - want["available"] / want["pool_size"], 6)
                                   if want["pool_size"] else 0)
            got = dict(s["stats"])
            assert abs(float(got.pop("utilisation")) - want.pop("utilisation")) < 1e-6, s
            assert got == want, (s["id"], got, want)
            assert s["static_ip_pools"] == pools[s["id"]]
            assert s["ping"] is True and s["name"] == "net-" + s["id"]
            assert api(conn, "api_subnets", {"vrf": s["vrf"]})["items"].count(s) == 1
            assert call(conn, "SELECT ipamd.api_subnet(%s)", s["id"]) == s
        # 11 addresses of subnet 3's pool lie in subnet 4, which has no
        # pool there: they have no row at all.
        assert subnets[0]["stats"]["pool_size"] == 255
        assert [s["id"] for s in api(conn, "api_subnets", {"vrf": "blue"})["items"]] == ["b1"]
        assert api(conn, "api_subnets", {"vrf": "red"})["items"] == []
        assert call(conn, "SELECT ipamd.api_subnet('nope')") is None
        assert call(conn, "SELECT ipamd.api_subnet(NULL)") is None

        # Next free: available static addresses in order, skipping some.
        free = [r["ip_address"] for r in sorted(rows, key=sort_key("address"))
                if r["subnet_id"] == "1" and r["status"] == "available"
                and r["ip_type"] == "static"]
        assert "192.168.1.1" not in free and "192.168.1.10" not in free
        got = call(conn, "SELECT ipamd.api_next_free('1', 5, NULL)")
        assert got == {"subnet_id": "1", "addresses": free[:5]}
        exclude = [free[0], free[2], "192.168.1.200", free[3] + "/24"]
        got = call(conn, "SELECT ipamd.api_next_free('1', 4, %s::inet[])", exclude)
        assert got["addresses"] == [a for a in free if a not in (free[0], free[2], free[3])][:4]
        assert call(conn, "SELECT ipamd.api_next_free('1', 256, '{}')")["addresses"] == free
        assert call(conn, "SELECT ipamd.api_next_free('3', 3, NULL)")["addresses"] == \
            ["10.20.4.1", "10.20.4.2", "10.20.4.3"]
        # Subnet 4's free addresses are its own, not its parent's.
        assert call(conn, "SELECT ipamd.api_next_free('4', 10, NULL)")["addresses"] == \
            ["10.20.5.30", "10.20.5.32", "10.20.5.33", "10.20.5.34", "10.20.5.35"]
        assert call(conn, "SELECT ipamd.api_next_free('6', 2, '{2001:db8::1}')")["addresses"] \
            == ["2001:db8::2", "2001:db8::3"]
        assert call(conn, "SELECT ipamd.api_next_free('nope', 1, NULL)") is None
        for n in (0, 257, None):
            refused("count", call, conn, "SELECT ipamd.api_next_free('1', %s, NULL)", n)

        # Conflicts, with their filters.
        table = run.db.query("SELECT vrf, host(ip_address), subnet_id, kind, detail "
                             "FROM ipam_conflict")
        conflicts = api(conn, "api_conflicts")
        assert "truncated" not in conflicts
        assert sorted(repr((c["vrf"], c["ip_address"], c["subnet_id"], c["kind"], c["detail"]))
                      for c in conflicts["items"]) == sorted(repr(tuple(t)) for t in table)
        kinds = {c["kind"] for c in conflicts["items"]}
        assert {"several_servers", "server_on_reserved", "pool_shadowed"} <= kinds, kinds
        for kind in kinds:
            assert {c["kind"] for c in api(conn, "api_conflicts", {"kind": kind})["items"]} == {kind}
        assert api(conn, "api_conflicts", {"vrf": "blue"})["items"] == []
        refused("kind", api, conn, "api_conflicts", {"kind": "bogus"})
        conn.close()
    finally:
        run.close()


def pool_size(subnet_id, pools):
    """The addresses of a subnet's pools that no more specific subnet of
    the test's state takes (seed_small: subnet 4 inside 3)."""
    nested = {"3": [ipaddress.ip_network("10.20.5.0/24")]}
    count = 0
    for text in pools[subnet_id]:
        a, b = (ipaddress.ip_address(x) for x in text.split("-"))
        for i in range(int(b) - int(a) + 1):
            ip = a + i
            if not any(ip in n for n in nested.get(subnet_id, [])):
                count += 1
    return count


def test_pool_audit_is_one_row_per_run():
    """The plain addresses a pool event writes are audited as runs: one
    row per run of consecutive addresses, split where a server or a mark
    holds an address (those get rows of their own); the history of
    an address finds the run that holds it; a grown pool adds a run for
    its new addresses only; every address's history replays to its row."""
    run = Run()
    try:
        run.server("h1", "10.77.0.2", 1, hostname="early")
        run.server("h2", "10.77.0.50", 1, hostname="dhcp-first")
        mark(run, "10.77.0.60", "reserved", 1, description="held")
        run.settle()
        run.subnet("p", "10.77.0.0/24",
                   ["10.77.0.1-10.77.0.100", "10.77.0.150-10.77.0.160"], 1)
        run.settle()
        topic = run.topics.subnets

        def audit_of(source):
            return run.db.query(
                "SELECT host(ip_address), host(ip_last), action, after->>'status' "
                "FROM ipamd.audit WHERE source_topic = %s ORDER BY ip_address",
                (source,))
        first = audit_of(topic)
        assert first == [
            ("10.77.0.1", None, "insert", "available"),
            ("10.77.0.2", None, "insert", "allocated"),
            ("10.77.0.3", "10.77.0.49", "insert", "available"),
            ("10.77.0.50", None, "insert", "allocated"),
            ("10.77.0.51", "10.77.0.59", "insert", "available"),
            ("10.77.0.60", None, "insert", "reserved"),
            ("10.77.0.61", "10.77.0.100", "insert", "available"),
            ("10.77.0.150", "10.77.0.160", "insert", "available")], first
        conn = connect(run.db)
        held = call(conn, "SELECT ipamd.api_address('', '10.77.0.30')")
        assert held["row"]["status"] == "available"
        assert [(h["action"], h["before"], h["after"]["subnet_id"], h.get("run"))
                for h in held["history"]] == [
            ("insert", None, "p", ["10.77.0.3", "10.77.0.49"])], held["history"]
        single = call(conn, "SELECT ipamd.api_address('', '10.77.0.1')")
        assert [("run" in h, h["action"]) for h in single["history"]] == [
            (False, "insert")], single["history"]
        # Outside every run and row: nothing.
        assert call(conn, "SELECT ipamd.api_address('', '10.77.0.120')") is None

        # The pool grown: its new addresses are one run; the others are
        # not written again.
        run.subnet("p", "10.77.0.0/24",
                   ["10.77.0.1-10.77.0.120", "10.77.0.150-10.77.0.160"], 2)
        run.settle()
        assert len(audit_of(topic)) == len(first) + 1
        grown = run.db.query(
            "SELECT host(ip_address), host(ip_last) FROM ipamd.audit "
            "WHERE source_topic = %s AND source_offset = 1", (topic,))
        assert grown == [("10.77.0.101", "10.77.0.120")], grown
        assert call(conn, "SELECT ipamd.api_address('', '10.77.0.120')")["history"][0][
            "run"] == ["10.77.0.101", "10.77.0.120"]

        # A server takes an address of a run, and leaves it: its history
        # is the run's insert and then its own rows, newest first.
        run.server("h3", "10.77.0.40", 1, hostname="taker")
        run.settle()
        run.server_deleted("h3", 2)
        run.settle()
        taken = call(conn, "SELECT ipamd.api_address('', '10.77.0.40')")
        assert [(h["action"], (h["after"] or {}).get("status"), "run" in h)
                for h in taken["history"]] == [
            ("update", "available", False), ("update", "allocated", False),
            ("insert", "available", True)], taken["history"]

        # Spread over its addresses, the audit replays to every row.
        replayed = {}
        for ip, after in run.db.query(
                "SELECT host(ip_address + g.i), after FROM ipamd.audit u "
                "CROSS JOIN LATERAL generate_series(0, "
                "coalesce(ip_last - ip_address, 0)) AS g(i) ORDER BY id, g.i"):
            replayed[ip] = after
        rows = {ip: status for ip, status in run.db.query(
            "SELECT host(ip_address), status FROM ipam")}
        assert {ip: a["status"] for ip, a in replayed.items() if a} == rows
        assert len(rows) == 131, len(rows)
    finally:
        run.close()


def test_many_new_subnets_in_one_batch_write_plain_pools():
    """Twenty sibling subnets and a /16 holding a more specific /24, all
    new in one batch: the pools of the subnets that hold no other are
    written as plain rows, one audit row per run, however many subnets
    the batch brings; the /16's addresses, past 16 subnets around, are
    looked up one by one by the derivation and audited one by one, and
    so are the /24's (the /16's region meets it too, so which event made
    its rows is the derivation's to choose).  The rows are the same
    either way: the subnet's, available, static."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "3000"}})
    try:
        for n in range(20):
            run.subnet("s%d" % n, "10.79.%d.0/24" % n, ["10.79.%d.1-10.79.%d.100" % (n, n)], 1)
        run.subnet("wide", "10.80.0.0/16", ["10.80.1.1-10.80.1.50"], 1)
        run.subnet("inner", "10.80.0.0/24", ["10.80.0.1-10.80.0.10"], 1)
        run.settle()
        # The batch's line is logged once its commit is answered, which
        # may be just after settle() sees the commit in the database.
        run.daemon.wait_log(r"batch of 22: 22 applied", timeout=15)
        rows = run.db.query("SELECT subnet_id, count(*) FROM ipam WHERE status = "
                            "'available' AND ip_type = 'static' GROUP BY 1")
        want = dict([("s%d" % n, 100) for n in range(20)] + [("wide", 50), ("inner", 10)])
        assert dict(rows) == want, rows
        assert run.db.scalar("SELECT count(*) FROM ipam") == sum(want.values())
        audit = run.db.query(
            "SELECT (after->>'subnet_id'), count(*), count(ip_last), "
            "sum(coalesce(ip_last - ip_address + 1, 1)) FROM ipamd.audit GROUP BY 1")
        by_subnet = {sid: (n, runs, covered) for sid, n, runs, covered in audit}
        for sid, count in want.items():
            if sid in ("wide", "inner"):
                assert by_subnet[sid] == (count, 0, count), (sid, by_subnet[sid])
            else:
                assert by_subnet[sid] == (1, 1, count), (sid, by_subnet[sid])
    finally:
        run.close()


def test_schema_13_keeps_the_history_and_writes_row_images():
    """A database at schema 12, whose audit holds jsonb images, migrated
    to 13: ipamd.audit shows the old rows exactly as they were, the rows
    written from then on hold their images as ipamd.address_image values
    (not jsonb), and both read alike: JSON objects of the nine derived
    fields, in ipamd.audit and in an address's history, old rows and new
    in one chain."""
    db = harness.Database()
    db.migrate_to(12)
    # The history of 10.78.0.5 as schema 12 wrote it: made available by
    # a pool, then reserved.  The row itself is what that left.
    image = dict.fromkeys(IMAGE_KEYS)
    made = dict(image, subnet_id="p", status="available", ip_type="static")
    reserved = dict(made, status="reserved", description="old")
    db.query("INSERT INTO ipamd.audit (vrf, ip_address, action, before, after, "
             "source_topic) VALUES ('', '10.78.0.5', 'insert', NULL, %s, 'old'), "
             "('', '10.78.0.5', 'update', %s, %s, 'old')",
             (json.dumps(made), json.dumps(made), json.dumps(reserved)))
    old = db.query("SELECT id, action, before, after FROM ipamd.audit ORDER BY id")
    run = Run(db=db)
    try:
        assert db.scalar("SELECT max(version) FROM ipam_schema_migration") \
            == harness.LATEST_SCHEMA
        assert db.query("SELECT id, action, before, after FROM ipamd.audit "
                        "ORDER BY id") == old
        run.subnet("p", "10.78.0.0/24", ["10.78.0.1-10.78.0.9"], 1)
        mark(run, "10.78.0.5", "reserved", 1, description="old")
        run.settle()
        run.server("h", "10.78.0.5", 1, hostname="taker")
        run.settle()
        new = db.query("SELECT action, before, after, before_image IS NULL, "
                       "after_image IS NULL FROM ipamd.audit_log "
                       "WHERE source_topic = %s", (run.topics.servers,))
        assert [(a, b, c) for a, _, _, b, c in new] == [("update", False, False)], new
        assert new[0][1] is None and new[0][2] is None, "jsonb images written: %r" % new
        history = call(connect(db), "SELECT ipamd.api_address('', '10.78.0.5')")["history"]
        chain = [(h["action"], h["before"], h["after"]) for h in reversed(history)]
        assert chain[:2] == [("insert", None, made), ("update", made, reserved)], chain
        taken = dict(reserved, status="allocated", server_id="h", hostname="taker",
                     platform="PowerEdge R640", manufacturer="Dell", description=None)
        assert chain[-1] == ("update", reserved, taken), chain
        for _, before, after in chain:
            for one in (before, after):
                assert one is None or set(one) == IMAGE_KEYS, one
    finally:
        run.close()


def test_schema_18_writes_mark_ids_of_ipv4_compatible_addresses_anew():
    """Mark ids written before schema 18 took glibc's dotted quad for an
    address of ::/96 ("::10.0.0.5"); ipam-syncd now writes it as RFC 5952
    does ("::a00:5"), the only key the consumer takes.  Migrated, those
    marks carry the new ids (in a vrf too), the others are left as they
    were, and a tombstone under the new key clears such a mark."""
    db = harness.Database()
    db.migrate_to(17)
    db.query("INSERT INTO ipam_state.mark (id, version, vrf, address, status) "
             "VALUES ('::10.0.0.5', 3, '', '::a00:5', 'reserved'), "
             "('lab/::1.2.3.0', 2, 'lab', '::102:300', 'quarantine'), "
             "('::2', 1, '', '::2', 'reserved'), "
             "('10.0.0.5', 1, '', '10.0.0.5', 'reserved'), "
             "('lab/2001:db8::1', 1, 'lab', '2001:db8::1', 'quarantine'), "
             # Both spellings, as a build between 17 and 18 could leave:
             # the row of the new id is the later and stays.
             "('::0.2.0.3', 1, '', '::2:3', 'reserved'), "
             "('::2:3', 2, '', '::2:3', 'quarantine')")
    run = Run(db=db)
    try:
        assert db.query("SELECT id, host(address), status FROM ipam_state.mark "
                        "ORDER BY id") == [
            ("10.0.0.5", "10.0.0.5", "reserved"), ("::2", "::2", "reserved"),
            ("::2:3", "::0.2.0.3", "quarantine"),
            ("::a00:5", "::10.0.0.5", "reserved"),
            ("lab/2001:db8::1", "2001:db8::1", "quarantine"),
            ("lab/::102:300", "::1.2.3.0", "quarantine")]
        run.send(run.topics.marks, "::a00:5", None)
        run.send(run.topics.marks, "lab/::102:300", None)
        run.settle()
        assert db.query("SELECT id FROM ipam_state.mark WHERE NOT deleted "
                        "ORDER BY id") == [
            ("10.0.0.5",), ("::2",), ("::2:3",), ("lab/2001:db8::1",)]
        assert db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
    finally:
        run.close()


def test_unplaced_stats_dead_letters_requests_and_import_plan():
    """What falls in no subnet, the counts of /stats, dead letters page by
    page with their raw bytes, request outcomes, and an import's dry run."""
    run = Run()
    try:
        seed_small(run)
        # Outside every subnet of their vrf (the blue one is in a subnet of
        # the default vrf only), at a subnet's edges, and IPv6.
        outside = {"40": ("", "172.16.0.5"), "41": ("blue", "192.168.2.5"),
                   "42": ("", "2001:db9::1"), "43": ("", "192.168.0.255"),
                   "44": ("", "192.168.3.0")}
        for sid, (vrf, ip) in outside.items():
            run.server(sid, ip, 1, hostname="lost-" + sid, vrf=vrf or None)
        run.server("45", "192.168.2.255", 1, hostname="edge-inside")
        run.server("46", "10.20.255.255", 1, hostname="edge-inside-2")
        run.send(run.topics.servers, "47", event("server.upserted", "47",
                                                 {"hostname": "no-address"}, 1))
        run.server("30", "192.168.2.150", 1, hostname="gone")
        run.server_deleted("30", 2)
        mark(run, "172.16.0.9", "quarantine", 1)
        mark(run, "10.99.0.1", "reserved", 1, description="far", vrf="blue")
        # Bad messages for the dead letters: not JSON, a key not UTF-8.
        run.send(run.topics.servers, "bad-1", "{not json")
        run.send(run.topics.servers, b"\xff\xfe-bad", b"\x00\x01binary")
        run.send(run.topics.marks, "bad-3", json.dumps({"specversion": "1.0"}))
        run.settle()
        conn = connect(run.db)

        # Unplaced: exactly the servers and marks Python finds outside.
        networks = {}
        for vrf, cidr in run.db.query("SELECT vrf, cidr::text FROM ipam_state.subnet "
                                      "WHERE NOT deleted"):
            networks.setdefault(vrf, []).append(ipaddress.ip_network(cidr))

        def placed(vrf, ip):
            ip = ipaddress.ip_address(ip)
            return any(ip.version == n.version and ip in n for n in networks.get(vrf, []))
        servers = run.db.query("SELECT id, vrf, hostname, host(ip_address) FROM "
                               "ipam_state.server WHERE NOT deleted AND ip_address IS NOT NULL")
        want_servers = sorted(
            ({"id": s[0], "vrf": s[1], "hostname": s[2], "ip_address": s[3]}
             for s in servers if not placed(s[1], s[3])),
            key=lambda s: (s["vrf"], ip_key(s["ip_address"])))
        assert {s["id"] for s in want_servers} == set(outside)
        unplaced = api(conn, "api_unplaced")
        assert unplaced["servers"] == want_servers
        assert unplaced["marks"] == [
            {"vrf": "", "address": "172.16.0.9", "status": "quarantine",
             "description": None, "reason": None, "requested_by": None},
            {"vrf": "blue", "address": "10.99.0.1", "status": "reserved",
             "description": "far", "reason": None, "requested_by": None}]
        assert [s["id"] for s in api(conn, "api_unplaced", {"vrf": "blue"})["servers"]] == ["41"]

        # Stats: the same counts Python makes.
        seed_state(run.db)
        rows = view_rows(conn)
        assert any(r["active"] for r in rows)
        stats = api(conn, "api_stats")
        assert stats["addresses"] == {
            "total": len(rows),
            "available": sum(r["status"] == "available" for r in rows),
            "allocated": sum(r["status"] == "allocated" for r in rows),
            "reserved": sum(r["status"] == "reserved" for r in rows),
            "quarantine": sum(r["status"] == "quarantine" for r in rows),
            "static": sum(r["ip_type"] == "static" for r in rows),
            "dhcp": sum(r["ip_type"] == "dhcp" for r in rows),
            "active": sum(r["active"] for r in rows)}
        assert stats["subnets"] == 6
        assert stats["conflicts"] == run.db.scalar("SELECT count(*) FROM ipam_conflict") > 0
        assert stats["dead_letters"] == 3
        assert stats["unplaced"] == {"servers": 5, "marks": 2}
        assert stats["last_change_at"] == max(r["updated_at"] for r in rows)

        # Dead letters: newest first, a page at a time, raw on request.
        letters = run.db.query("SELECT id, topic, \"offset\", reason, key, value "
                               "FROM ipamd.dead_letter ORDER BY id DESC")
        page = api(conn, "api_dead_letters", {"limit": 2})
        assert [d["id"] for d in page["items"]] == [letters[0][0], letters[1][0]]
        assert "key_base64" not in page["items"][0]
        rest = api(conn, "api_dead_letters", {"limit": 2, "cursor": page["next_cursor"]})
        assert [d["id"] for d in rest["items"]] == [letters[2][0]]
        assert "next_cursor" not in rest
        raw = api(conn, "api_dead_letters", {"raw": True})["items"]
        for got, (lid, topic, offset, reason, key, value) in zip(raw, letters):
            assert (got["id"], got["topic"], got["offset"], got["reason"]) == \
                (lid, topic, offset, reason)
            assert base64.b64decode(got["key_base64"]) == bytes(key)
            assert base64.b64decode(got["value_base64"]) == bytes(value)
            assert got["received_at"].endswith("Z")
        keys = {d["id"]: d["key"] for d in raw}
        assert sorted(k for k in keys.values() if k) == ["bad-1", "bad-3"]
        assert None in keys.values()  # the key that is not UTF-8
        refused("cursor", api, conn, "api_dead_letters", {"cursor": page["next_cursor"][2:]})
        refused("cursor", api, conn, "api_addresses",
                {"cursor": page["next_cursor"]})  # another listing's
        refused("limit", api, conn, "api_dead_letters", {"limit": 5000})

        # Requests: two operators racing for one address.
        for rid, who in (("req-a", "write:alice"), ("req-b", "write:bob")):
            body = {"specversion": "1.0", "id": rid, "source": "/api/v1",
                    "type": "ipam.mark.set", "subject": "192.168.1.40",
                    "ipamrequester": who, "ipamifavailable": True,
                    "data": {"address": "192.168.1.40", "status": "reserved",
                             "description": "by " + who}}
            run.send(run.topics.marks, "192.168.1.40", json.dumps(body))
        run.settle()
        a = call(conn, "SELECT ipamd.api_request('req-a')")
        b = call(conn, "SELECT ipamd.api_request('req-b')")
        assert (a["state"], b["state"]) == ("applied", "refused"), (a, b)
        assert a["requested_by"] == "write:alice" and b["requested_by"] == "write:bob"
        assert a["row"]["status"] == "reserved" and a["row"]["description"] == "by write:alice"
        assert a["row"] == b["row"] == api(conn, "api_addresses", {"q": "192.168.1.40"})["items"][0]
        assert b["detail"] and a["decided_at"].endswith("Z")
        assert call(conn, "SELECT ipamd.api_request('req-unknown')") is None

        # An import's dry run against the live entities, its entities as
        # the daemon sends them: read by the decoder (addresses, MAC
        # addresses and pools as the apply stores them; test_api.py holds
        # the spellings the decoder takes).
        plan = api(conn, "api_import_plan", {
            "servers": [
                # As stored: unchanged.
                {"id": "10", "hostname": "Web-01", "ip_address": "192.168.1.10",
                 "nic_mac": "aa:bb:cc:00:00:10", "device_type": "PowerEdge R640",
                 "manufacture": "Dell", "vrf": ""},
                {"id": "18", "hostname": "blue-web", "ip_address": "192.168.1.5",
                 "device_type": "PowerEdge R640", "manufacture": "Dell", "vrf": "blue"},
                # Changed: hostname; address and vrf.
                {"id": "11", "hostname": "web-02-new", "ip_address": "192.168.1.11",
                 "nic_mac": "aa:bb:cc:00:00:11", "device_type": "PowerEdge R640",
                 "manufacture": "Dell", "vrf": ""},
                {"id": "13", "hostname": "db-1", "ip_address": "192.168.1.13",
                 "nic_mac": "de:ad:be:ef:00:12", "device_type": "PowerEdge R640",
                 "manufacture": "Dell", "vrf": "blue"},
                # New, and one whose server was deleted.
                {"id": "900", "hostname": "new", "ip_address": "192.168.1.50", "vrf": ""},
                {"id": "30", "hostname": "gone", "ip_address": "192.168.2.150", "vrf": ""}],
            "subnets": [
                {"id": "1", "name": "net-1", "cidr": "192.168.1.0/24", "vrf": "",
                 "static_ip_pools": ["192.168.1.1-192.168.1.60"], "ping": True},
                {"id": "b1", "name": "net-b1", "cidr": "192.168.1.0/24", "vrf": "blue",
                 "static_ip_pools": ["192.168.1.1-192.168.1.30"], "ping": True},
                {"id": "2", "name": "net-2", "cidr": "192.168.2.0/24", "vrf": "",
                 "static_ip_pools": ["192.168.2.1-192.168.2.20"], "ping": False},
                {"id": "6", "name": "net-6", "cidr": "2001:db8::/64", "vrf": "",
                 "static_ip_pools": ["2001:db8::1-2001:db8::41"], "ping": True},
                {"id": "new", "name": "n", "cidr": "10.30.0.0/24", "vrf": "",
                 "static_ip_pools": [], "ping": True}]})
        s, n = plan["servers"], plan["subnets"]
        assert (s["create"], s["update"], s["unchanged"]) == (2, 2, 2), s
        assert s["changes"] == [
            {"id": "11", "action": "update", "fields": ["hostname"]},
            {"id": "13", "action": "update", "fields": ["ip_address", "vrf"]},
            {"id": "900", "action": "create", "fields": ["hostname", "ip_address", "vrf"]},
            {"id": "30", "action": "create", "fields": ["hostname", "ip_address", "vrf"]}]
        assert (n["create"], n["update"], n["unchanged"]) == (1, 2, 2), n
        assert [c for c in n["changes"] if c["action"] == "update"] == [
            {"id": "2", "action": "update", "fields": ["ping"]},
            {"id": "6", "action": "update", "fields": ["static_ip_pools"]}]
        assert api(conn, "api_import_plan", {}) == {
            "servers": {"create": 0, "update": 0, "unchanged": 0, "changes": []},
            "subnets": {"create": 0, "update": 0, "unchanged": 0, "changes": []}}
        many = api(conn, "api_import_plan", {"servers": [
            {"id": "n%d" % i, "hostname": "x", "vrf": ""} for i in range(1200)]})["servers"]
        assert many["create"] == 1200 and len(many["changes"]) == 1000
        conn.close()
    finally:
        run.close()


def test_reads_write_nothing_and_are_stable():
    """Every function is declared STABLE and runs in a read-only
    transaction."""
    run = Run()
    try:
        seed_small(run)
        conn = connect(run.db)
        volatile = run.db.query(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'ipamd' AND p.proname LIKE 'api\\_%%' AND p.provolatile = 'v'")
        assert volatile == [], volatile
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            for sql in ("SELECT ipamd.api_addresses('{\"count\": true}')",
                        "SELECT ipamd.api_addresses_csv('{}')",
                        "SELECT ipamd.api_address('', '192.168.1.12')",
                        "SELECT ipamd.api_subnets('{}')", "SELECT ipamd.api_subnet('1')",
                        "SELECT ipamd.api_next_free('1', 3, NULL)",
                        "SELECT ipamd.api_conflicts('{}')",
                        "SELECT ipamd.api_dead_letters('{\"raw\": true}')",
                        "SELECT ipamd.api_unplaced('{}')", "SELECT ipamd.api_stats('{}')",
                        "SELECT ipamd.api_request('x')",
                        "SELECT ipamd.api_import_plan('{\"servers\": [{\"id\": \"10\"}]}')"):
                cur.execute(sql)
                assert cur.fetchone() is not None, sql
        conn.rollback()
        conn.close()
    finally:
        run.close()


if __name__ == "__main__":
    harness.main(globals())
