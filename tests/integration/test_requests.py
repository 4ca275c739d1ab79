"""Operator requests decided at apply time (docs/EVENTS.md): mark events
that carry ipamrequester and preconditions, published straight to Kafka
as the API does, against the real daemon.  Two requests for one address
in one batch or in two: exactly one applies; the audit names both
requesters; an etag that moved refuses; a refused request changes
nothing; outcomes survive a replay."""

import json
import re

import harness
from test_sync import (Run, debezium_server_change, debezium_subnet,
                       debezium_truncate)


def request(run, rid, address, requester, status="reserved", description=None,
            if_available=False, if_match=None, cleared=False, version=None,
            source="/api/v1"):
    """Publishes one request as the API does: a mark event with its
    requester and preconditions, keyed by the address."""
    body = {"specversion": "1.0", "id": rid, "source": source,
            "type": "ipam.mark.cleared" if cleared else "ipam.mark.set",
            "subject": address, "ipamrequester": requester}
    if if_available:
        body["ipamifavailable"] = True
    if if_match is not None:
        body["ipamifmatch"] = if_match
    if version is not None:
        body["entityversion"] = version
    if not cleared:
        body["data"] = {"address": address, "status": status}
        if description is not None:
            body["data"]["description"] = description
    run.send(run.topics.marks, address, json.dumps(body))


def outcome(run, rid):
    rows = run.db.query("SELECT outcome, detail, requested_by FROM ipamd.request "
                        "WHERE id = %s", (rid,))
    return rows[0] if rows else None


def etag(run, address):
    return run.db.scalar("SET search_path = ipam_state, public; "
                         "SELECT ipamd.address_etag('', %s::inet)", (address,))


def test_racing_reservations_one_wins_in_one_batch_and_across_batches():
    run = Run(config={"consumer": {"batch_max_wait_ms": "500"}})
    try:
        run.subnet("1", "127.94.0.0/24", ["127.94.0.1-127.94.0.9"], 1)
        run.settle()
        # Both in one batch (sent together, the batch waits 500 ms).
        request(run, "a1", "127.94.0.1", "write:alice", description="alice's",
                if_available=True)
        request(run, "b1", "127.94.0.1", "write:bob", description="bob's",
                if_available=True)
        run.settle()
        assert outcome(run, "a1")[0] == "applied", outcome(run, "a1")
        assert outcome(run, "b1")[0] == "refused", outcome(run, "b1")
        assert "127.94.0.1 is reserved (by write:alice)" in outcome(run, "b1")[1]
        row = run.row("127.94.0.1")
        assert row["status"] == "reserved" and row["description"] == "alice's"
        audit = run.db.query("SELECT action, requested_by FROM ipamd.audit "
                             "WHERE ip_address = '127.94.0.1' ORDER BY id")
        assert ("update", "write:alice") in audit, audit
        assert ("refused", "write:bob") in audit, audit

        # Across batches: the second comes after the first is applied.
        request(run, "a2", "127.94.0.2", "write:alice", if_available=True)
        run.settle()
        request(run, "b2", "127.94.0.2", "write:bob", if_available=True)
        run.settle()
        assert outcome(run, "a2")[0] == "applied"
        assert outcome(run, "b2")[0] == "refused"

        # A release, then a reservation, in one batch: the release frees
        # it for the one after it.
        request(run, "r1", "127.94.0.1", "write:alice", cleared=True)
        request(run, "b3", "127.94.0.1", "write:bob", description="bob's now",
                if_available=True)
        run.settle()
        assert outcome(run, "r1")[0] == "applied"
        assert outcome(run, "b3")[0] == "applied", outcome(run, "b3")
        assert run.row("127.94.0.1")["description"] == "bob's now"
        assert run.db.scalar("SELECT requested_by FROM ipam_state.mark "
                             "WHERE id = '127.94.0.1'") == "write:bob"
    finally:
        run.close()


def test_server_holds_and_etags_refuse():
    run = Run()
    try:
        run.subnet("1", "127.95.0.0/24", ["127.95.0.1-127.95.0.9"], 1)
        run.server("7", "127.95.0.3", 1)
        run.settle()
        request(run, "s1", "127.95.0.3", "write:carol", if_available=True)
        run.settle()
        assert outcome(run, "s1") == ("refused", "127.95.0.3 is held by server 7",
                                      "write:carol")
        assert run.row("127.95.0.3")["status"] == "allocated"

        # If-Match: the etag seen before a change refuses after it.
        seen = etag(run, "127.95.0.4")
        request(run, "m1", "127.95.0.4", "write:dave", status="quarantine",
                if_match=seen)
        run.settle()
        assert outcome(run, "m1")[0] == "applied"
        assert run.row("127.95.0.4")["status"] == "quarantine"
        assert etag(run, "127.95.0.4") != seen
        request(run, "m2", "127.95.0.4", "write:erin", cleared=True, if_match=seen)
        run.settle()
        state, detail, _ = outcome(run, "m2")
        assert state == "refused" and "changed: its etag is" in detail, detail
        assert run.row("127.95.0.4")["status"] == "quarantine"
        request(run, "m3", "127.95.0.4", "write:erin", cleared=True,
                if_match=etag(run, "127.95.0.4"))
        run.settle()
        assert outcome(run, "m3")[0] == "applied"
        assert run.row("127.95.0.4")["status"] == "available"

        # A request without preconditions always applies, and names its
        # requester in the mark and the audit.
        request(run, "p1", "127.95.0.5", "write:frank", description="plain")
        run.settle()
        assert outcome(run, "p1")[0] == "applied"
        assert run.db.scalar(
            "SELECT requested_by FROM ipamd.audit WHERE ip_address = "
            "'127.95.0.5' ORDER BY id DESC LIMIT 1") == "write:frank"
    finally:
        run.close()


def test_a_request_older_than_its_mark_is_refused_in_the_audit_too():
    """A request whose entityversion is not newer than the stored mark's
    changes nothing and is refused as outdated: in ipamd.request and, as
    every refused request, in the audit with its requester.  A plain mark
    event that is stale beside a request of its key is no request: no
    refused row for it."""
    run = Run(config={"consumer": {"batch_max_wait_ms": "500"}})
    try:
        run.subnet("1", "127.93.0.0/24", ["127.93.0.1-127.93.0.9"], 1)
        run.mark("127.93.0.5", "quarantine", 5)
        run.settle()
        request(run, "o1", "127.93.0.5", "write:oscar", description="mine",
                version=3)
        run.settle()
        assert outcome(run, "o1") == ("refused",
                                      "outdated by a newer version of the mark",
                                      "write:oscar")
        assert run.row("127.93.0.5")["status"] == "quarantine"
        audit = run.db.query("SELECT action, requested_by, after->>'refusal' "
                             "FROM ipamd.audit WHERE ip_address = '127.93.0.5' "
                             "AND action = 'refused'")
        assert audit == [("refused", "write:oscar",
                          "outdated by a newer version of the mark")], audit

        # One batch: a stale plain event of the key (version 4 against the
        # stored 5), then a request of it, so the key's events are applied
        # one at a time.
        run.mark("127.93.0.5", "reserved", 4, description="stale")
        request(run, "o2", "127.93.0.5", "write:olga", description="again",
                version=6)
        run.settle()
        assert outcome(run, "o2")[0] == "applied", outcome(run, "o2")
        assert run.row("127.93.0.5")["description"] == "again"
        run.daemon.wait_log(r"stale: mark 127\.93\.0\.5 version 4 ")
        refused = run.db.query("SELECT requested_by FROM ipamd.audit "
                               "WHERE ip_address = '127.93.0.5' "
                               "AND action = 'refused' ORDER BY id")
        assert refused == [("write:oscar",)], refused
    finally:
        run.close()


def test_outcomes_survive_a_replay():
    """A rebuild replays the requests: the state comes out the same and
    the first outcomes stay."""
    from test_property import RebuildDaemon
    run = Run()
    try:
        run.subnet("1", "127.96.0.0/24", ["127.96.0.1-127.96.0.4"], 1)
        for i, who in enumerate(["alice", "bob", "carol"]):
            request(run, "x%d" % i, "127.96.0.1", "write:" + who,
                    description=who, if_available=True)
        run.settle()
        before = run.db.query("SELECT id, outcome FROM ipamd.request ORDER BY id")
        assert [o for _, o in before] == ["applied", "refused", "refused"]
        rows_before = run.db.query("SELECT * FROM ipam ORDER BY ip_address")
        status = run.daemon.stop()
        assert status == 0, status
        run.daemon.close()
        run.daemon = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                   extra_args=["--rebuild"]).start()
        run.daemon.wait_log(r"rebuild: swapped in", timeout=120)
        assert run.db.query("SELECT id, outcome FROM ipamd.request ORDER BY id") == before
        after = run.db.query("SELECT * FROM ipam ORDER BY ip_address")
        assert [(r[1], r[3], r[11]) for r in after] == \
            [(r[1], r[3], r[11]) for r in rows_before], after
    finally:
        run.close()


def test_a_reused_request_id_is_refused_not_taken_for_a_replay():
    """A request is known by its CloudEvent id, and an event under an id
    already decided is its replay only when it asks the same: another
    request under that id (another producer's, its own numbering) is a
    dead letter naming the id, across batches and within one, and never
    applied without its own preconditions checked.  The same request sent
    again keeps its outcome, and a rebuild comes out the same."""
    from test_property import RebuildDaemon
    run = Run(config={"consumer": {"batch_max_wait_ms": "500"}})
    try:
        run.subnet("1", "127.97.0.0/24", ["127.97.0.1-127.97.0.9"], 1)
        run.server("s", "127.97.0.2", 1)
        request(run, "m1", "127.97.0.1", "write:alice", description="alice's",
                if_available=True)
        run.settle()
        assert outcome(run, "m1") == ("applied", None, "write:alice")
        # Another tool's request 1, for an address a server holds.
        request(run, "m1", "127.97.0.2", "write:bob", description="bob's",
                if_available=True, source="/other-tool")
        # The first request once more, as a producer's retry sends it.
        request(run, "m1", "127.97.0.1", "write:alice", description="alice's",
                if_available=True)
        # Within one batch: two requests under one new id.
        request(run, "m2", "127.97.0.3", "write:carol", if_available=True)
        request(run, "m2", "127.97.0.4", "write:carol", if_available=True)
        run.settle()
        dead = run.db.query("SELECT \"offset\", reason FROM ipamd.dead_letter "
                            "ORDER BY \"offset\"")
        assert [o for o, _ in dead] == [1, 4], dead
        for (_, reason), rid, first in zip(dead, ("m1", "m2"), ("applied", "applied")):
            assert ('request "%s": its CloudEvent id names another request, %s before'
                    % (rid, first)) in reason, reason
        assert outcome(run, "m1") == ("applied", None, "write:alice")
        assert outcome(run, "m2") == ("applied", None, "write:carol")
        assert run.row("127.97.0.2")["status"] == "allocated"
        assert run.row("127.97.0.1")["description"] == "alice's"
        assert run.row("127.97.0.3")["status"] == "reserved"
        assert run.row("127.97.0.4")["status"] == "available"
        assert run.db.scalar("SELECT count(*) FROM ipamd.audit WHERE "
                             "requested_by = 'write:bob'") == 0

        rows = run.db.query("SELECT ip_address, status, description FROM ipam "
                            "ORDER BY ip_address")
        assert run.daemon.stop() == 0
        run.daemon.close()
        run.daemon = RebuildDaemon(run.db, run.topics, group=run.daemon.group,
                                   extra_args=["--rebuild"]).start()
        run.daemon.wait_log(r"rebuild: swapped in", timeout=120)
        assert run.db.query("SELECT ip_address, status, description FROM ipam "
                            "ORDER BY ip_address") == rows
        assert run.db.query("SELECT \"offset\", reason FROM ipamd.dead_letter "
                            "ORDER BY \"offset\"") == dead
    finally:
        run.close()


def test_a_stored_digest_is_compared_only_with_one_of_its_version():
    """What a request asks is kept as a digest with its version ("1:…").
    A digest of another version (a later ipam-syncd's, say) says nothing
    about what was asked: the request sent again is its replay and keeps
    its outcome, whatever it asks.  A digest of this version that differs
    refuses it, the same request though it is."""
    run = Run()
    try:
        run.subnet("1", "127.97.1.0/24", ["127.97.1.1-127.97.1.9"], 1)
        request(run, "v1", "127.97.1.5", "write:alice", description="alice's")
        run.settle()
        assert outcome(run, "v1") == ("applied", None, "write:alice")
        digest = run.db.scalar("SELECT digest FROM ipamd.request WHERE id = 'v1'")
        assert digest.startswith("1:") and len(digest) == 18, digest

        run.db.query("UPDATE ipamd.request SET digest = '0:0123456789abcdef' "
                     "WHERE id = 'v1'")
        request(run, "v1", "127.97.1.5", "write:alice", description="alice's")
        run.settle()
        assert run.db.scalar("SELECT count(*) FROM ipamd.dead_letter") == 0
        assert outcome(run, "v1") == ("applied", None, "write:alice")

        run.db.query("UPDATE ipamd.request SET digest = '1:0123456789abcdef' "
                     "WHERE id = 'v1'")
        request(run, "v1", "127.97.1.5", "write:alice", description="alice's")
        run.settle()
        reasons = [r for r, in run.db.query("SELECT reason FROM ipamd.dead_letter")]
        assert len(reasons) == 1 and 'request "v1": its CloudEvent id names another ' \
            'request, applied before' in reasons[0], reasons
    finally:
        run.close()


def test_a_request_after_a_truncate_sees_it_in_one_batch_or_two():
    """The servers table is truncated (Debezium op t), then a request
    reserves, if available, the address a truncated server held: it is
    applied whether the two meet in one batch or not (in one batch the
    marks were decided before the batch's truncate, against the server
    it removes, and refused)."""
    for together in (False, True):
        run = Run(formats={"server": "debezium", "subnet": "debezium"},
                  config={"consumer": {"batch_max_wait_ms": "500"}})
        try:
            run.send(run.topics.subnets, *debezium_subnet(
                1, 100, "c", "127.93.5.0/24", ["127.93.5.1-127.93.5.9"]))
            run.send(run.topics.servers, *debezium_server_change(
                9, 200, "c", "127.93.5.5"))
            run.settle()
            assert run.row("127.93.5.5")["server_id"] == "9"
            run.send(run.topics.servers, None, debezium_truncate("servers", 300))
            if not together:
                run.settle()
            request(run, "after-truncate", "127.93.5.5", "write:ops",
                    description="free again", if_available=True)
            run.settle()
            assert outcome(run, "after-truncate")[0] == "applied", \
                (together, outcome(run, "after-truncate"))
            row = run.row("127.93.5.5")
            assert (row["status"], row["server_id"]) == ("reserved", None), row
            if together:
                # Logged once the commit's answer is read: wait for it.
                run.daemon.wait_log(r"batch of 2: ", timeout=15)
        finally:
            run.close()



if __name__ == "__main__":
    harness.main(globals())
