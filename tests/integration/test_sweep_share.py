"""The ping sweep shared by several instances (schema/functions/90_sweep.sql,
docs/OPERATIONS.md "Several instances").

test_sweep_claims_*: the SQL functions alone, with PostgreSQL sessions of
this test as members: in each round every subnet is leased exactly once,
when members join between claims too, and a dead member's share moves at
the next round.

test_shared_sweep_*: three daemons, each in a network namespace of its
own, linked by veth pairs to a bridge in a fourth namespace, the "hosts",
which owns every probed address (198.18.1.0/24 and 2001:2:0:1::/64, both
benchmarking ranges; no namespace has any other route, so nothing leaves
them).  A packet socket on that bridge sees every echo request with its
time and source, so the test counts the probes of each address in each
round of the shared sweep itself, not what the daemons say they did.
Needs root (namespaces, raw and packet sockets), as the tests run here
and in CI."""

import collections
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import psycopg2

import harness
from harness import Daemon, Database, Kafka, Topics, wait_caught_up, wait_until
from test_sweeper import SWEEPER, NsDaemon, Relay, add_host, in_netns, run
from test_sync import event

ETH_P_ALL = 0x0003


def migrated_database():
    """A fresh database with the daemon's schema (the daemon, sweeper off,
    applies its migrations and stops)."""
    db = Database()
    daemon = Daemon(db, Topics()).start()
    try:
        daemon.wait_ready()
        assert daemon.stop() == 0
    finally:
        daemon.close()
    return db


class Member:
    """A PostgreSQL session of the test's own, joined as a sweep member."""

    def __init__(self, db, vrfs="-", interval_ms=1000, families=(4, 6)):
        self.conn = db._connect(db.name)
        self.conn.autocommit = True
        self.vrfs = vrfs
        self.interval_ms = interval_ms
        self.id = self.one("SELECT ipamd.sweep_join(%s, %s, %s, %s)",
                           ("test/%s" % uuid.uuid4().hex[:6], vrfs, interval_ms,
                            list(families)))[0]

    def one(self, sql, args):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()

    def claim(self, swept_until_ms=0, member=None, swept_from_ms=None):
        """This round's claim: fresh, round_end_ms, next_in_ms, members,
        subnets, unswept, clock_back_ms.  The round swept last ends at
        swept_until_ms, and began an interval before unless told."""
        if swept_from_ms is None:
            swept_from_ms = max(swept_until_ms - self.interval_ms, 0)
        row = self.one("SELECT fresh, round_end_ms, next_in_ms, members, subnets, unswept, "
                       "clock_back_ms FROM ipamd.sweep_claim(%s, %s, %s, %s, %s)",
                       (member or self.id, self.vrfs, self.interval_ms, swept_until_ms,
                        swept_from_ms))
        return dict(zip(("fresh", "round_end_ms", "next_in_ms", "members", "subnets",
                         "unswept", "clock_back_ms"), row))

    def leave(self):
        self.conn.close()


def next_round(db, interval_ms=1000, into_ms=100):
    """Sleeps until into_ms after the start of the next round (on the
    database's clock); returns that round's end in milliseconds."""
    now_ms = db.scalar("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    start = now_ms - now_ms % interval_ms + interval_ms
    time.sleep((start + into_ms - now_ms) / 1000.0)
    return start + interval_ms


def leases(db, round_end_ms):
    """The subnets leased for the round that ends at round_end_ms: {subnet: member}."""
    return dict(db.query("SELECT subnet_id, member FROM ipamd.sweep_lease "
                         "WHERE expires_at = ipamd.sweep_time(%s)", (round_end_ms,)))


def live_members(db):
    return {r[0] for r in db.query("SELECT id FROM ipamd.sweep_live_members()")}


def add_subnets(db):
    """40 pinged subnets of the default domain, 10 of blue, and some that
    are never leased: ping off, deleted.  Returns (default, blue) ids."""
    db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping, deleted) "
             "SELECT 'd' || i, 1, '', ('10.0.' || i || '.0/24')::cidr, true, false "
             "FROM generate_series(1, 40) i "
             "UNION ALL SELECT 'b' || i, 1, 'blue', ('10.1.' || i || '.0/24')::cidr, "
             "true, false FROM generate_series(1, 10) i "
             "UNION ALL SELECT 'quiet' || i, 1, '', ('10.2.' || i || '.0/24')::cidr, "
             "false, false FROM generate_series(1, 5) i "
             "UNION ALL SELECT 'gone' || i, 1, '', ('10.3.' || i || '.0/24')::cidr, "
             "true, true FROM generate_series(1, 5) i")
    return {"d%d" % i for i in range(1, 41)}, {"b%d" % i for i in range(1, 11)}


def pinged_subnet(db, sid, cidr, ip):
    """A pinged subnet of the default domain written straight into the
    state, with one available static address."""
    db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping) "
             "VALUES (%s, 1, '', %s, true)", (sid, cidr))
    db.query("INSERT INTO ipam_state.address (ip_address, subnet_id, status, "
             "ip_type) VALUES (%s, %s, 'available', 'static')", (ip, sid))


def test_sweep_claims_lease_each_subnet_once_per_round():
    """Members A and B sweep the default domain, C the default one and
    blue: each round leases every pinged live subnet of a swept domain to
    exactly one of them (blue only to C), each a share; a second claim in
    the round gets nothing, even from a member that believes the round
    fresh.  A member D joining after A claimed and before B, C and D do
    leaves no subnet out.  Once B's session ends, the next round gives
    its subnets to the others; the next join forgets B's row.  Without
    C, blue is swept by nobody.  Old leases are forgotten, and a session
    that is no member is refused."""
    db = migrated_database()
    members = []
    try:
        default, blue = add_subnets(db)
        a, b = Member(db), Member(db)
        c = Member(db, vrfs="-, blue")
        members += [a, b, c]

        # Everyone sees everyone.
        end = next_round(db)
        claims = {m.id: m.claim() for m in (a, b, c)}
        held = leases(db, end)
        assert set(held) == default | blue, sorted(set(held) ^ (default | blue))
        assert {held[s] for s in blue} == {c.id}, held
        for m in (a, b, c):
            mine = {s for s, owner in held.items() if owner == m.id}
            assert claims[m.id]["fresh"] and claims[m.id]["subnets"] == len(mine) > 0, \
                (m.id, claims[m.id], len(mine))
            assert claims[m.id]["members"] == 3 and claims[m.id]["round_end_ms"] == end
            assert 0 < claims[m.id]["next_in_ms"] <= 1000
        # The same round again: not fresh; and fresh or not, nothing is left.
        again = a.claim(swept_until_ms=end)
        assert not again["fresh"] and again["subnets"] == 0, again
        assert a.claim()["subnets"] == 0 and c.claim()["subnets"] == 0
        assert leases(db, end) == held

        # D joins between A's claim and the others'.
        end = next_round(db)
        first = a.claim()
        d = Member(db)
        members.append(d)
        later = {m.id: m.claim() for m in (b, c, d)}
        held = leases(db, end)
        assert set(held) == default | blue, sorted(set(held) ^ (default | blue))
        assert first["members"] == 3 and all(x["members"] == 4 for x in later.values())
        assert first["subnets"] + sum(x["subnets"] for x in later.values()) == len(held)

        # B dies: from the next round on its share is the others'.
        b_had = {s for s, owner in held.items() if owner == b.id}
        b.leave()
        wait_until(lambda: b.id not in live_members(db), 10, "B's lock to go")
        end = next_round(db)
        claims = {m.id: m.claim() for m in (a, c, d)}
        held = leases(db, end)
        assert set(held) == default | blue and b.id not in held.values(), held
        assert all(x["members"] == 3 for x in claims.values()), claims
        assert b_had and all(held[s] in (a.id, c.id, d.id) for s in b_had)
        assert db.scalar("SELECT count(*) FROM ipamd.sweep_member WHERE id = %s", (b.id,)) == 1
        e = Member(db)
        assert db.scalar("SELECT count(*) FROM ipamd.sweep_member WHERE id = %s", (b.id,)) == 0
        e.leave()

        # Without C nobody sweeps blue.
        c.leave()
        wait_until(lambda: c.id not in live_members(db), 10, "C's lock to go")
        end = next_round(db)
        a.claim()
        d.claim()
        assert set(leases(db, end)) == default

        # A lease gone for ten rounds is forgotten; a stranger is refused.
        db.query("INSERT INTO ipamd.sweep_lease VALUES ('old', '', 999, "
                 "now() - interval '1 hour', now() - interval '1 hour')")
        a.claim()
        assert db.scalar("SELECT count(*) FROM ipamd.sweep_lease WHERE subnet_id = 'old'") == 0
        try:
            a.claim(member=d.id)
            raise AssertionError("a claim for another session's member was taken")
        except psycopg2.Error as error:
            assert error.pgcode == "IPM02", error
    finally:
        for m in members:
            m.conn.close()
        db.close()


def test_sweep_claims_after_the_database_clock_stepped_back():
    """PostgreSQL's clock stepped back an hour after a round was swept
    (shown here the other way round: the leases and what the member
    remembers moved an hour ahead).  The next claims do not wait for the
    clock to catch up: the member that swept the hour ahead claims the
    round as fresh and says by how much the clock went back, and a
    member that joins takes its share of leases claimed "later" than
    now; between them every subnet is leased for the round.  Within a
    round the clock has not left, nothing changes: not fresh, nothing
    more leased; nor when the member's interval was halved meanwhile (a
    reload), though the shorter round ends before the one it swept: its
    clock did not step back, and the round is not swept twice."""
    db = migrated_database()
    members = []
    try:
        default, _ = add_subnets(db)
        a = Member(db)
        members.append(a)
        end = next_round(db)
        first = a.claim()
        assert first["fresh"] and first["subnets"] == len(default), first
        assert first["clock_back_ms"] == 0, first
        again = a.claim(swept_until_ms=end)
        assert not again["fresh"] and again["subnets"] == 0, again
        assert again["clock_back_ms"] == 0, again
        a.interval_ms = 500
        shorter = a.claim(swept_until_ms=end, swept_from_ms=end - 1000)
        a.interval_ms = 1000
        assert shorter["round_end_ms"] < end, (shorter, end)
        assert not shorter["fresh"] and shorter["clock_back_ms"] == 0, shorter

        hour = 3600 * 1000
        db.query("UPDATE ipamd.sweep_lease SET claimed_at = claimed_at + interval '1 hour', "
                 "expires_at = expires_at + interval '1 hour'")
        b = Member(db)
        members.append(b)
        end = next_round(db)
        joined = b.claim()
        back = a.claim(swept_until_ms=end + hour)
        assert joined["fresh"] and back["fresh"], (joined, back)
        assert hour - 1000 <= back["clock_back_ms"] <= hour, back
        assert joined["clock_back_ms"] == 0, joined
        held = leases(db, end)
        assert set(held) == default, sorted(set(held) ^ default)
        assert joined["subnets"] > 0 and back["subnets"] > 0, (joined, back)
        assert joined["subnets"] + back["subnets"] == len(default), (joined, back)
        assert set(held.values()) == {a.id, b.id}, held
        assert not a.claim(swept_until_ms=end)["fresh"]
        assert b.claim(swept_until_ms=end)["subnets"] == 0
    finally:
        for m in members:
            m.conn.close()
        db.close()


def sweep_state(db, ips):
    """{ip: (active, last_seen_at, last_checked_at, missed_sweeps)} as
    public.ipam and ipamd.sweep_rows() derive them."""
    return {r[0]: r[1:] for r in db.query(
        "SELECT host(i.ip_address), i.active, i.last_seen_at, i.last_checked_at, "
        "r.missed_sweeps FROM public.ipam i JOIN ipamd.sweep_rows() r "
        "ON r.vrf = i.vrf AND r.ip_address = i.ip_address "
        "WHERE i.ip_address = ANY(%s::inet[])", (list(ips),))}


def commit(member, end, news, pass_at="now()"):
    """ipamd.sweep_commit() of member for the round ending at end, news
    [(ip, rtt_us or None, active, missed)] of the default domain."""
    return member.one(
        "SELECT written, subnets, forgotten FROM ipamd.sweep_commit(%s, %s, " + pass_at +
        ", %s::text[], %s::inet[], %s::integer[], %s::boolean[], %s::integer[])",
        (member.id, end, [""] * len(news), [n[0] for n in news], [n[1] for n in news],
         [n[2] for n in news], [n[3] for n in news]))


def sweep(member, end, families, news):
    """One sweep of member: its targets read (families it probes), then its
    news and pass; returns the targets {ip: row}."""
    with member.conn.cursor() as cur:
        cur.execute("SELECT ip, active, answered, missed_sweeps, rtt_us, followed "
                    "FROM ipamd.sweep_targets(%s, %s, %s)", (member.id, end, families))
        targets = {r[0]: r[1:] for r in cur.fetchall()}
    commit(member, end, news)
    return targets


def test_sweep_pass_counts_only_the_subnets_probed():
    """A pass is counted only for the subnets whose addresses a sweep
    probed: not an IPv6 subnet of a member without an IPv6 socket, not a
    subnet whose ping was off when the targets were read and on again when
    the pass was counted.  So an address of those that answered once
    keeps its last_seen_at and last_checked_at, as the sweeps that never
    probed it leave them, instead of looking answered at every pass."""
    db = migrated_database()
    member = None
    try:
        db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping) VALUES "
                 "('v4', 1, '', '10.8.0.0/24', true), ('v6', 1, '', '2001:db8:8::/64', true), "
                 "('flip', 1, '', '10.8.1.0/24', true)")
        db.query("INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type) "
                 "VALUES ('10.8.0.1', 'v4', 'available', 'static'), "
                 "('2001:db8:8::1', 'v6', 'available', 'static'), "
                 "('10.8.1.1', 'flip', 'available', 'static')")
        ips = ["10.8.0.1", "2001:db8:8::1", "10.8.1.1"]
        member = Member(db)

        # A first sweep by a member with both sockets: each answers once.
        end = next_round(db)
        assert member.claim()["subnets"] == 3
        targets = sweep(member, end, [4, 6], [(ip, 100, True, 0) for ip in ips])
        assert set(targets) == set(ips), targets
        first = sweep_state(db, ips)
        assert all(first[ip][0] and first[ip][1] is not None for ip in ips), first

        # Then sweeps by a member without an IPv6 socket, while flip's
        # ping is off when the targets are read and on again at the pass.
        for _ in range(3):
            end = next_round(db)
            assert member.claim()["subnets"] == 3
            db.query("UPDATE ipam_state.subnet SET ping = false WHERE id = 'flip'")
            with member.conn.cursor() as cur:
                cur.execute("SELECT ip FROM ipamd.sweep_targets(%s, %s, %s)",
                            (member.id, end, [4]))
                assert [r[0] for r in cur.fetchall()] == ["10.8.0.1"]
            db.query("UPDATE ipam_state.subnet SET ping = true WHERE id = 'flip'")
            assert commit(member, end, [])[1] == 1
        passes = dict(db.query("SELECT subnet_id, passes FROM ipamd.sweep_subnet"))
        assert passes == {"v4": 4, "v6": 1, "flip": 1}, passes
        now = sweep_state(db, ips)
        # The one probed each time answered each time (no news needed) ...
        assert now["10.8.0.1"][1] > first["10.8.0.1"][1], (first, now)
        assert now["10.8.0.1"][2] > first["10.8.0.1"][2], (first, now)
        # ... the others were never probed again: nothing moved.
        for ip in ("2001:db8:8::1", "10.8.1.1"):
            assert now[ip] == first[ip], (ip, first[ip], now[ip])
    finally:
        if member:
            member.leave()
        db.close()


def test_sweep_longer_than_ten_rounds_still_writes_its_news():
    """A member's sweep takes longer than ten rounds while another member
    claims each round: the other's claims forget old leases, but not the
    one the sweep still holds, so its news is written and its pass
    counted when it ends (with the lease forgotten, the commit would
    find none and write nothing)."""
    db = migrated_database()
    members = []
    try:
        pinged_subnet(db, "long", "10.9.0.0/24", "10.9.0.1")
        members = [Member(db, interval_ms=200), Member(db, interval_ms=200)]
        end = next_round(db, interval_ms=200, into_ms=20)
        owner = next(m for m in members if m.claim()["subnets"] == 1)
        other = next(m for m in members if m is not owner)
        with owner.conn.cursor() as cur:
            cur.execute("SELECT ip FROM ipamd.sweep_targets(%s, %s, %s)",
                        (owner.id, end, [4]))
            assert [r[0] for r in cur.fetchall()] == ["10.9.0.1"]
        # Fifteen rounds go by; the other member claims in each of them.
        for _ in range(15):
            next_round(db, interval_ms=200, into_ms=20)
            assert other.claim()["subnets"] == 0
        written, subnets, _ = commit(owner, end, [("10.9.0.1", 250, True, 0)])
        assert (written, subnets) == (1, 1), (written, subnets)
        state = sweep_state(db, ["10.9.0.1"])["10.9.0.1"]
        assert state[0] is True and state[1] is not None, state
    finally:
        for member in members:
            member.leave()
        db.close()


def test_sweep_claim_of_a_lease_waits_for_the_commit_holding_it():
    """A member's sweep overran its round and writes its news while
    another member, which the membership now gives some of its subnets,
    claims them: the claim waits for that commit, so the new owner reads
    the news as its targets, instead of the state before it (its own
    sweep would then count from a stale pass, or the older news would
    overwrite its newer one)."""
    db = migrated_database()
    members = []
    try:
        ips = {}
        for i in range(12):
            sid = "race%d" % i
            ips[sid] = "10.9.%d.1" % (20 + i)
            pinged_subnet(db, sid, "10.9.%d.0/24" % (20 + i), ips[sid])
        owner = Member(db)
        members.append(owner)
        end = next_round(db)
        assert owner.claim()["subnets"] == len(ips)
        with owner.conn.cursor() as cur:
            cur.execute("SELECT ip FROM ipamd.sweep_targets(%s, %s, %s)",
                        (owner.id, end, [4]))
            assert sorted(r[0] for r in cur.fetchall()) == sorted(ips.values())
        other = Member(db)
        members.append(other)
        # The subnets the next round gives the other member (the claim's
        # own choice: the highest hash of subnet and member).
        moving = {r[0] for r in db.query(
            "SELECT s.id FROM ipam_state.subnet s WHERE s.id LIKE 'race%%' AND "
            "(SELECT m FROM unnest(ARRAY[%s, %s]) m "
            "ORDER BY hashtext(s.id || '/' || m) DESC, m LIMIT 1) = %s",
            (owner.id, other.id, other.id))}
        assert moving, "every subnet stays with its owner; no claim to race"

        end2 = next_round(db)
        # The owner's commit, its transaction still open ...
        owner.conn.autocommit = False
        written, subnets, _ = commit(owner, end,
                                     [(ip, 250, True, 0) for ip in ips.values()])
        assert (written, subnets) == (len(ips), len(ips)), (written, subnets)
        # ... while the other member claims and reads its targets.
        seen = {}

        def claim_and_read():
            seen["claim"] = other.claim()
            with other.conn.cursor() as cur:
                cur.execute("SELECT ip, answered, rtt_us FROM ipamd.sweep_targets(%s, %s, %s)",
                            (other.id, end2, [4]))
                seen["targets"] = {r[0]: r[1:] for r in cur.fetchall()}
        racer = threading.Thread(target=claim_and_read)
        racer.start()
        pid = other.conn.get_backend_pid()
        try:
            wait_until(lambda: "targets" in seen or db.scalar(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                (pid,)), 10, "the claim to wait for a lock or to end")
            assert "targets" not in seen, \
                "the claim did not wait for the commit in flight: %r" % seen
        finally:
            owner.conn.commit()
            owner.conn.autocommit = True
            racer.join(30)
        assert not racer.is_alive()
        assert seen["claim"]["subnets"] == len(moving), (seen["claim"], moving)
        want = {ips[sid]: (True, 250) for sid in moving}
        assert seen["targets"] == want, seen["targets"]
    finally:
        for member in members:
            member.leave()
        db.close()


def test_sweep_news_of_a_row_made_again_meanwhile_is_not_kept_active():
    """An address answers, then its row is deleted and made again while
    a sweep probes it and it is silent: the sweeper sends "still active,
    one sweep missed" from the old row's state, but the new row never
    answered, so it starts as inactive, not active."""
    db = migrated_database()
    member = None
    try:
        pinged_subnet(db, "again", "10.9.1.0/24", "10.9.1.1")
        member = Member(db)
        end = next_round(db)
        assert member.claim()["subnets"] == 1
        sweep(member, end, [4], [("10.9.1.1", 120, True, 0)])
        assert sweep_state(db, ["10.9.1.1"])["10.9.1.1"][0] is True
        end = next_round(db)
        assert member.claim()["subnets"] == 1
        with member.conn.cursor() as cur:
            cur.execute("SELECT ip, active FROM ipamd.sweep_targets(%s, %s, %s)",
                        (member.id, end, [4]))
            assert cur.fetchall() == [("10.9.1.1", True)]
        db.query("DELETE FROM ipam_state.address WHERE ip_address = '10.9.1.1'")
        db.query("INSERT INTO ipam_state.address (ip_address, subnet_id, status, "
                 "ip_type, created_at, updated_at) VALUES ('10.9.1.1', 'again', "
                 "'available', 'static', now() + interval '1 second', "
                 "now() + interval '1 second')")
        commit(member, end, [("10.9.1.1", None, True, 1)])
        active, seen, checked, missed = sweep_state(db, ["10.9.1.1"])["10.9.1.1"]
        assert (active, seen) == (False, None), (active, seen, checked, missed)
        assert checked is not None
    finally:
        if member:
            member.leave()
        db.close()


def test_an_address_moved_into_a_subnet_nobody_sweeps_is_not_kept_active():
    """An address answers in its subnet, then lies in a nested one with
    ping off (made after it): its state was written for the other subnet
    and nobody writes it again.  For a day after its row changed it shows
    that state (as a subnet no longer swept does), then not active, in
    public.ipam, ipamd.sweep_rows() and the API's count alike, its last
    reply still told; once its new subnet is swept (a pass row), the state
    holds again until that sweep writes it anew."""
    db = migrated_database()
    member = None
    try:
        pinged_subnet(db, "outer", "10.9.2.0/24", "10.9.2.7")
        member = Member(db)
        end = next_round(db)
        assert member.claim()["subnets"] == 1
        sweep(member, end, [4], [("10.9.2.7", 120, True, 0)])

        def seen():
            state = sweep_state(db, ["10.9.2.7"])["10.9.2.7"]
            rows = db.scalar("SELECT count(*) FROM ipamd.api_active_rows() "
                             "WHERE ip_address = '10.9.2.7'")
            assert rows == (1 if state[0] else 0), (state, rows)
            return state
        assert seen()[0] is True
        db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping) "
                 "VALUES ('inner', 1, '', '10.9.2.0/28', false)")
        db.query("UPDATE ipam_state.address SET subnet_id = 'inner', "
                 "updated_at = now() WHERE ip_address = '10.9.2.7'")
        assert seen()[0] is True
        db.query("UPDATE ipam_state.address SET updated_at = now() - interval '25 hours' "
                 "WHERE ip_address = '10.9.2.7'")
        active, last_seen, checked, _ = seen()
        assert active is False and last_seen is not None and checked is not None
        db.query("INSERT INTO ipamd.sweep_subnet (subnet_id, passes, checked_at) "
                 "VALUES ('inner', 1, now())")
        assert seen()[0] is True
    finally:
        if member:
            member.leave()
        db.close()


def test_sweep_claims_lease_ipv6_subnets_only_to_members_with_ipv6():
    """A member without an IPv6 socket is leased no IPv6 subnet: alone, it
    leaves them unleased (and uncounted); once a member with IPv6 is live,
    they go to it, while the IPv4 subnets are shared by both."""
    db = migrated_database()
    members = []
    try:
        db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping) "
                 "SELECT 'v4-' || i, 1, '', ('10.10.' || i || '.0/24')::cidr, true "
                 "FROM generate_series(1, 20) i UNION ALL "
                 "SELECT 'v6-' || i, 1, '', ('2001:db8:' || i || '::/64')::cidr, true "
                 "FROM generate_series(1, 20) i")
        v4 = {"v4-%d" % i for i in range(1, 21)}
        v6 = {"v6-%d" % i for i in range(1, 21)}
        only4 = Member(db, families=(4,))
        members.append(only4)
        end = next_round(db)
        claim = only4.claim()
        # The IPv6 subnets are said to be probed by no one (and one
        # whose ping is off is not counted).
        assert (claim["subnets"], claim["unswept"]) == (20, 20), claim
        assert set(leases(db, end)) == v4
        commit(only4, end, [])
        assert db.scalar("SELECT count(*) FROM ipamd.sweep_subnet") == 0
        assert only4.claim(swept_until_ms=end)["unswept"] == 0  # not fresh
        db.query("UPDATE ipam_state.subnet SET ping = false WHERE id = 'v6-1'")
        end = next_round(db)
        assert only4.claim()["unswept"] == 19
        db.query("UPDATE ipam_state.subnet SET ping = true WHERE id = 'v6-1'")

        both = Member(db)
        members.append(both)
        end = next_round(db)
        assert only4.claim()["unswept"] == 0
        assert both.claim()["unswept"] == 0
        held = leases(db, end)
        assert set(held) == v4 | v6, held
        assert {held[s] for s in v6} == {both.id}, held
        assert {held[s] for s in v4} == {only4.id, both.id}, held
    finally:
        for m in members:
            m.leave()
        db.close()


def test_sweep_interrupted_between_news_and_pass_leaves_nothing():
    """A sweep's news and its pass are one statement: a sweep whose session
    ends after its news is written and before its pass is counted (here
    while the pass waits for a lock) leaves neither, so the next sweep
    counts the same pass number afresh, and a silent host's missed sweeps
    lose none to the interruption."""
    db = migrated_database()
    member = None
    blocker = db._connect(db.name)
    try:
        pinged_subnet(db, "s", "10.7.0.0/24", "10.7.0.1")
        member = Member(db)
        end = next_round(db)
        member.claim()
        sweep(member, end, [4], [("10.7.0.1", 100, True, 0)])
        before = db.query("SELECT * FROM ipamd.sweep_address")

        # The next sweep: silent, its news written, its pass held up.
        end = next_round(db)
        member.claim()
        member.one("SELECT count(*) FROM ipamd.sweep_targets(%s, %s, %s)",
                   (member.id, end, [4]))
        with blocker.cursor() as cur:
            cur.execute("SELECT 1 FROM ipamd.sweep_subnet WHERE subnet_id = 's' FOR UPDATE")
        pid = member.one("SELECT pg_backend_pid()", ())[0]
        failed = []

        def run():
            try:
                commit(member, end, [("10.7.0.1", None, True, 1)])
            except psycopg2.Error as error:
                failed.append(error)
        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: db.scalar("SELECT wait_event_type FROM pg_stat_activity "
                                     "WHERE pid = %s", (pid,)) == "Lock", 10,
                   "the pass to wait for the lock")
        db.query("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(10)
        assert failed, "the commit was not interrupted"
        blocker.rollback()
        assert db.query("SELECT * FROM ipamd.sweep_address") == before
        assert db.scalar("SELECT passes FROM ipamd.sweep_subnet") == 1

        # The next sweeps count from where the last complete one left.
        member.leave()
        member = Member(db)
        for missed in (1, 2):
            end = next_round(db)
            member.claim()
            targets = sweep(member, end, [4], [("10.7.0.1", None, True, missed)]
                            if missed == 1 else [])
            assert targets["10.7.0.1"][2] == missed - 1, targets
        assert db.scalar("SELECT passes FROM ipamd.sweep_subnet") == 3
        assert sweep_state(db, ["10.7.0.1"])["10.7.0.1"][3] == 2
    finally:
        blocker.close()
        if member:
            member.leave()
        db.close()


def test_sweep_state_of_subnets_no_longer_swept_is_pruned():
    """The state of a subnet deleted (or gone) and not counted a pass for
    ten rounds, or of one with ping off or in a domain no live member
    sweeps and not counted a pass for a day, is forgotten by the claims,
    5,000 state rows at most a claim, then its row of passes; a subnet
    still swept keeps its state however old it is, and one nobody sweeps
    for an hour (a member away, ping off for a while) keeps it too."""
    db = migrated_database()
    member = None
    try:
        db.query("INSERT INTO ipam_state.subnet (id, version, vrf, cidr, ping, deleted) "
                 "VALUES ('kept', 1, '', '10.6.0.0/24', true, false), "
                 "('big', 1, '', '10.6.0.0/16', true, true), "
                 "('quiet', 1, '', '10.5.0.0/24', false, false), "
                 "('recent', 1, '', '10.5.1.0/24', false, false), "
                 "('red', 1, 'red', '10.4.0.0/24', true, false)")
        old = "now() - interval '1 hour'"
        older = "now() - interval '2 days'"
        db.query("INSERT INTO ipamd.sweep_subnet VALUES ('kept', 5, " + old + "), "
                 "('big', 5, " + old + "), ('quiet', 5, " + older + "), "
                 "('recent', 5, " + old + "), ('red', 5, " + older + "), "
                 "('nowhere', 5, " + old + ")")
        db.query("INSERT INTO ipamd.sweep_address (vrf, ip_address, row_created_at, subnet_id, "
                 "pass, active, answered, missed_sweeps, rtt_us, checked_at, seen_at) "
                 "SELECT CASE s WHEN 'red' THEN 'red' ELSE '' END, "
                 "('10.' || (6 + n / 65536) || '.0.0')::inet + (n % 65536) + "
                 "CASE s WHEN 'kept' THEN 0 WHEN 'big' THEN 1000 WHEN 'quiet' THEN 20000 "
                 "WHEN 'recent' THEN 30000 WHEN 'red' THEN 40000 ELSE 50000 END, "
                 "now(), s, 5, false, false, 3, NULL, now(), NULL "
                 "FROM unnest(ARRAY['kept', 'big', 'quiet', 'recent', 'red', 'nowhere']) s, "
                 "generate_series(1, CASE s WHEN 'big' THEN 7000 ELSE 10 END) n")

        def left():
            return dict(db.query("SELECT subnet_id, count(*) FROM ipamd.sweep_address "
                                 "GROUP BY 1"))
        member = Member(db)
        member.claim()
        after_one = left()
        assert sum(after_one.values()) == 7050 - 5000, after_one
        for _ in range(3):
            member.claim()
        assert left() == {"kept": 10, "recent": 10}, left()
        assert {r[0] for r in db.query("SELECT subnet_id FROM ipamd.sweep_subnet")} == \
            {"kept", "recent"}
    finally:
        if member:
            member.leave()
        db.close()


class Capture:
    """Every echo request that reaches an interface of a namespace, as
    (time, source, destination), read by a thread from a packet socket."""

    def __init__(self, netns, interface):
        def make():
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((interface, 0))
            sock.settimeout(0.1)
            return sock
        self.sock = in_netns(netns, make)
        self.requests = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                frame, where = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            seen = time.time()
            if where[2] == socket.PACKET_OUTGOING:
                continue
            request = self.parse(frame)
            if request:
                with self.lock:
                    self.requests.append((seen,) + request)

    @staticmethod
    def parse(frame):
        """(source, destination) of an ICMP or ICMPv6 echo request, or None."""
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0800 and frame[23] == 1:
            header = (frame[14] & 0x0F) * 4
            if frame[14 + header] == 8:
                return (socket.inet_ntop(socket.AF_INET, frame[26:30]),
                        socket.inet_ntop(socket.AF_INET, frame[30:34]))
        elif ethertype == 0x86DD and frame[20] == 58 and frame[54] == 128:
            return (socket.inet_ntop(socket.AF_INET6, frame[22:38]),
                    socket.inet_ntop(socket.AF_INET6, frame[38:54]))
        return None

    def since(self, t):
        with self.lock:
            return [r for r in self.requests if r[0] >= t]

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class SharedNet:
    """The hosts' namespace with a bridge, and one namespace per daemon
    linked to it by a veth pair, with no other route; PostgreSQL and
    Kafka relayed into each daemon's namespace."""

    def __init__(self, count):
        tag = "%d%s" % (os.getpid() % 100000, uuid.uuid4().hex[:3])
        self.hosts_ns = "ssh" + tag
        self.daemon_ns = ["ss%d%s" % (i, tag) for i in range(count)]
        self.v4 = ["198.18.1.%d" % (11 + i) for i in range(count)]
        self.v6 = ["2001:2:0:1::%d" % (11 + i) for i in range(count)]
        self.relays = []
        made = []
        try:
            h = ("ip", "-n", self.hosts_ns)
            run("ip", "netns", "add", self.hosts_ns)
            made.append(self.hosts_ns)
            run(*h, "link", "set", "lo", "up")
            # No multicast snooping: neighbour solicitations reach every port.
            run(*h, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            run(*h, "addr", "add", "198.18.1.2/24", "dev", "br0")
            run(*h, "-6", "addr", "add", "2001:2:0:1::2/64", "dev", "br0", "nodad")
            run(*h, "link", "set", "br0", "up")
            ports = [int(os.environ["PGPORT"]), int(harness.bootstrap().rsplit(":", 1)[1])]
            for i, netns in enumerate(self.daemon_ns):
                d = ("ip", "-n", netns)
                run("ip", "netns", "add", netns)
                made.append(netns)
                run(*d, "link", "set", "lo", "up")
                run(*d, "link", "add", "d0", "type", "veth", "peer", "name", "h%d" % i,
                    "netns", self.hosts_ns)
                run(*h, "link", "set", "h%d" % i, "master", "br0")
                run(*h, "link", "set", "h%d" % i, "up")
                run(*d, "addr", "add", self.v4[i] + "/24", "dev", "d0")
                run(*d, "-6", "addr", "add", self.v6[i] + "/64", "dev", "d0", "nodad")
                run(*d, "link", "set", "d0", "up")
                self.relays.append(Relay(netns, ports))
        except Exception:
            self.made = made
            self.close()
            raise
        self.made = made

    def add_host(self, address):
        """Gives the hosts' bridge one more address, which answers."""
        add_host(self.hosts_ns, "br0", address)

    def close(self):
        for relay in self.relays:
            relay.close()
        for netns in getattr(self, "made", []):
            subprocess.run(["ip", "netns", "del", netns], stderr=subprocess.DEVNULL)


class Place:
    """What NsDaemon needs of a network: the namespace it runs in."""

    def __init__(self, netns):
        self.daemon_ns = netns


# Rounds of one second; one probe per address and round (no retries).
ROUND_MS = 1000
SHARED_SWEEPER = dict(SWEEPER, interval_ms=str(ROUND_MS), retries="0", timeout_ms="300")


def rounds_of(requests, first, last):
    """Counts the requests of rounds first..last (numbers on the
    database's clock): {round: Counter(destination)}, {round: {destination:
    set of sources}}."""
    counts = {r: collections.Counter() for r in range(first, last + 1)}
    sources = {r: collections.defaultdict(set) for r in range(first, last + 1)}
    for seen, source, destination in requests:
        r = int(seen * 1000) // ROUND_MS
        if first <= r <= last:
            counts[r][destination] += 1
            sources[r][destination].add(source)
    return counts, sources


def round_now():
    return int(time.time() * 1000) // ROUND_MS


def wait_round(number, into_ms=500):
    """Sleeps until into_ms after the start of round number."""
    delay = (number * ROUND_MS + into_ms) / 1000.0 - time.time()
    if delay > 0:
        time.sleep(delay)


def assert_exactly_once(counts, sources, addresses, why):
    for r in sorted(counts):
        wrong = {a: n for a, n in counts[r].items() if n != 1}
        missing = sorted(set(addresses) - set(counts[r]))
        strangers = sorted(set(counts[r]) - set(addresses))
        assert not wrong and not missing and not strangers, \
            "%s: round %d: probed more than once %s, never %s, not ours %s" % (
                why, r, wrong, missing, strangers)
        shared = {a: s for a, s in sources[r].items() if len(s) > 1}
        assert not shared, "%s: round %d: probed by several instances %s" % (why, r, shared)


def test_shared_sweep_three_instances_probe_each_address_once():
    """Three daemons in one consumer group, each sweeping from a namespace
    of its own: in every round each of 52 addresses (28 subnets, IPv4 and
    IPv6) gets exactly one echo request, from one instance, and each
    instance sends a share.  One is SIGKILLed half way through a round:
    every round that starts one interval after the kill or later again
    probes each address exactly once, from the two that are left, the
    dead one's addresses included; no round ever probes an address
    twice."""
    net = SharedNet(3)
    db = Database()
    topics = Topics()
    kafka = Kafka()
    capture = None
    daemons = []
    try:
        subnets, addresses = [], []
        for i in range(24):
            base = 64 + 8 * i
            pool = ["198.18.1.%d" % (base + 1), "198.18.1.%d" % (base + 2)]
            subnets.append(("v4-%d" % i, "198.18.1.%d/29" % base, pool))
        for i in range(4):
            address = "2001:2:0:1::1:%x" % (i * 16 + 1)
            subnets.append(("v6-%d" % i, "2001:2:0:1::1:%x/124" % (i * 16), [address]))
        for _, _, pool in subnets:
            for address in pool:
                net.add_host(address)
                addresses.append(address)
        capture = Capture(net.hosts_ns, "br0")

        group = harness.unique("g")
        for netns in net.daemon_ns:
            daemons.append(NsDaemon(Place(netns), db, topics,
                                    config={"sweeper": SHARED_SWEEPER,
                                            "consumer": {"group_id": group}}))
            daemons[-1].group = group
        for daemon in daemons:
            daemon.start()
        for daemon in daemons:
            daemon.wait_ready()
        for sid, cidr, pool in subnets:
            kafka.send(topics.subnets, sid, event("subnet.upserted", sid,
                                                  {"name": sid, "cidr": cidr,
                                                   "static_ip_pools": pool}, 1))
        kafka.flush()
        wait_caught_up(db, group, len(subnets))
        wait_until(lambda: db.scalar("SELECT count(*) FROM public.ipam WHERE active")
                   == len(addresses), 60, "every address to be active")
        for daemon in daemons:
            daemon.wait_log(r"sweeper: sweep \d+: member \d+ of 3 live", 30)

        # Three whole rounds with all three.
        first = round_now() + 1
        wait_round(first + 3, into_ms=500)
        counts, sources = rounds_of(capture.since(0), first, first + 2)
        assert_exactly_once(counts, sources, addresses, "three instances")
        senders = collections.Counter(s for r in sources.values()
                                      for srcs in r.values() for s in srcs)
        by_instance = {v4: sum(n for s, n in senders.items() if s in (v4, v6))
                       for v4, v6 in zip(net.v4, net.v6)}
        assert all(n > 0 for n in by_instance.values()), by_instance

        # SIGKILL the second one half way through a round.
        killed_round = round_now()
        dead = daemons[1]
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait()
        killed_at = time.time()
        dead_had = {a for r in sources.values() for a, s in r.items()
                    if s & {net.v4[1], net.v6[1]}}
        assert dead_had

        # Every round that starts one interval after the kill or later.
        after = math.ceil((killed_at * 1000 + ROUND_MS) / ROUND_MS)
        wait_round(after + 4, into_ms=500)
        counts, sources = rounds_of(capture.since(0), after, after + 3)
        assert_exactly_once(counts, sources, addresses, "after the kill")
        gone = {a for r in sources.values() for s in r.values()
                for a in s if a in (net.v4[1], net.v6[1])}
        assert not gone, gone
        # Never twice, the round of the kill and the next included.
        counts, sources = rounds_of(capture.since(0), first, after + 3)
        twice = {r: {a: n for a, n in c.items() if n > 1} for r, c in counts.items()}
        assert not any(twice.values()), (killed_round, twice)
        for daemon in (daemons[0], daemons[2]):
            daemon.wait_log(r"sweeper: sweep \d+: member \d+ of 2 live", 10)
    finally:
        if capture:
            capture.close()
        for daemon in daemons:
            try:
                if daemon.proc and daemon.proc.poll() is None:
                    assert daemon.stop() == 0
            finally:
                daemon.close()
        db.close()
        net.close()


if __name__ == "__main__":
    # Network namespaces, raw and packet sockets: root's (sudo scripts/test).
    if os.geteuid() != 0:
        print("SKIP: the sweeper's tests need root (network namespaces, raw sockets)")
        sys.exit(77)
    harness.main(globals())
