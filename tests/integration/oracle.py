"""An oracle for the `ipam` table, written from DESIGN.md ("The state model",
derivation rules 1-6) and the event formats alone, independently of the
daemon's code: given the latest version of every entity it computes the rows
the daemon must show, and given the events as consumed it computes those
latest versions by the order and versions contract ("Order and versions":
versioned events apply only when newer, unversioned ones always, a Kafka
tombstone forgets the key), which events of them were stale, and what log
compaction would leave of them.

Entities are plain dicts:
- subnet: vrf, cidr, static_ip_pools (list of "a-b", "a" or "a/n");
- server: vrf, hostname, ip_address, nic_mac, device_type, manufacture;
- mark:   vrf, address, status ("reserved" | "quarantine"), description.
"""

import ipaddress
from collections import namedtuple

# One consumed message.  kind: "server" | "subnet" | "mark"; op: "upsert" |
# "delete" | "tombstone" (a Kafka message with a null value); version: the
# entityversion attribute, or None (an unversioned event: it applies in
# Kafka order); offset: its Kafka offset (informative only: the order of the
# list is the order of application); data: the entity (upserts only).
Event = namedtuple("Event", "kind key op version offset data")

# What is stored for a key: the version (None: unknown, the last applied
# event carried none) and the entity, None for a versioned delete's
# tombstone.  A key that is not stored at all is unknown.
Stored = namedtuple("Stored", "version entity")

# The compared columns of one row, after (vrf, ip_address).
COLUMNS = ("subnet_id", "status", "ip_type", "server_id", "hostname",
           "mac_address", "platform", "manufacturer", "description")
Row = namedtuple("Row", COLUMNS)

KINDS = ("subnet", "server", "mark")

APPLIED, STALE = "applied", "stale"


def step(table, ev):
    """Applies one event to the {key: Stored} of its kind, by the order and
    versions contract (DESIGN.md, "Order and versions"); returns APPLIED or
    STALE.

    - A Kafka tombstone forgets the key, version included.
    - An event without a version always applies: an upsert stores the
      entity with an unknown version, a delete forgets the key.
    - An event with a version applies only if the key is unknown, or its
      stored version is unknown, or the event's version is strictly greater;
      otherwise it is stale and changes nothing.  An applied upsert stores
      the entity with that version; an applied delete stores a tombstone
      with that version."""
    if ev.op == "tombstone":
        table.pop(ev.key, None)
        return APPLIED
    if ev.version is None:
        if ev.op == "upsert":
            table[ev.key] = Stored(None, ev.data)
        else:
            table.pop(ev.key, None)
        return APPLIED
    old = table.get(ev.key)
    if old is not None and old.version is not None and ev.version <= old.version:
        return STALE
    table[ev.key] = Stored(ev.version, ev.data if ev.op == "upsert" else None)
    return APPLIED


def replay(events):
    """Applies events one by one in the order given (only the order within
    each key matters).  Returns (state, verdicts): state is {kind: {key:
    Stored}}, verdicts[i] is APPLIED or STALE for events[i]."""
    state = {kind: {} for kind in KINDS}
    verdicts = [step(state[ev.kind], ev) for ev in events]
    return state, verdicts


def fold(events):
    """The latest version of every entity, from events in the order they
    were consumed.  Returns {kind: {key: Stored}}."""
    return replay(events)[0]


def stale_counts(events):
    """{kind: number of stale events} of a sequential application."""
    counts = {kind: 0 for kind in KINDS}
    for ev, verdict in zip(events, replay(events)[1]):
        if verdict == STALE:
            counts[ev.kind] += 1
    return counts


def compact(events, drop_tombstones=False):
    """What Kafka's log compaction leaves of a history: the last record of
    each (kind, key), in their original order; with drop_tombstones, also
    without the Kafka tombstones themselves (as once delete.retention.ms has
    passed).  Returns the indexes into events of the records kept."""
    last = {}
    for i, ev in enumerate(events):
        last[(ev.kind, ev.key)] = i
    kept = sorted(last.values())
    if drop_tombstones:
        kept = [i for i in kept if events[i].op != "tombstone"]
    return kept


def stale_events(events):
    """[(index, stored version)] of the stale events of a sequential
    application: what the daemon must count and may log."""
    state = {kind: {} for kind in KINDS}
    found = []
    for i, ev in enumerate(events):
        before = state[ev.kind].get(ev.key)
        if step(state[ev.kind], ev) == STALE:
            found.append((i, before.version))
    return found


def stale_last_records(events):
    """The (kind, key) whose last record is stale when the whole history is
    applied in order: the keys where compaction changes the outcome."""
    verdicts = replay(events)[1]
    last = {}
    for ev, verdict in zip(events, verdicts):
        last[(ev.kind, ev.key)] = verdict
    return {k for k, verdict in last.items() if verdict == STALE}


def live(state, kind):
    """{key: entity} of the entities of one kind that are not deleted."""
    return {k: s.entity for k, s in state[kind].items() if s.entity is not None}


def id_order(entity_id):
    """Ids compare by length first, then bytes."""
    raw = entity_id.encode()
    return (len(raw), raw)


def address(text):
    """An address from an event, or None for null / ""."""
    if text is None or text.strip() == "":
        return None
    return ipaddress.ip_address(text.strip())


def mac(text):
    """A MAC in any accepted form as lowercase colon form; None for none."""
    if not text:
        return None
    digits = "".join(c for c in text if c not in ":-.").lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def vrf_of(entity):
    return entity.get("vrf") or ""


def pool_addresses(subnet):
    """The set of addresses in a subnet's static pools."""
    net = ipaddress.ip_network(subnet["cidr"].strip())
    result = set()
    for entry in subnet.get("static_ip_pools") or []:
        entry = entry.strip()
        if "/" in entry:
            block = ipaddress.ip_network(entry)
            first, last = block.network_address, block.broadcast_address
        elif "-" in entry:
            a, b = entry.split("-")
            first, last = address(a), address(b)
        else:
            first = last = address(entry)
        for value in range(int(first), int(last) + 1):
            result.add(ipaddress.ip_address(value) if net.version == 4
                       else ipaddress.IPv6Address(value))
    if net.version == 4 and net.prefixlen <= 30:
        result.discard(net.network_address)
        result.discard(net.broadcast_address)
    return result


def expected_rows(state):
    """The expected `ipam` table: {(vrf, ip_address): Row}."""
    subnets = live(state, "subnet")
    servers = live(state, "server")
    marks = live(state, "mark")

    by_vrf = {}     # vrf -> [(subnet id, network, pool set)]
    for sid, sub in subnets.items():
        by_vrf.setdefault(vrf_of(sub), []).append(
            (sid, ipaddress.ip_network(sub["cidr"].strip()), pool_addresses(sub)))

    holders = {}    # (vrf, addr) -> [server id]
    for sid, srv in servers.items():
        a = address(srv.get("ip_address"))
        if a is not None:
            holders.setdefault((vrf_of(srv), a), []).append(sid)
    mark_at = {}    # (vrf, addr) -> mark
    for mark in marks.values():
        mark_at[(vrf_of(mark), address(mark["address"]))] = mark

    candidates = set(holders) | set(mark_at)
    for vrf, subs in by_vrf.items():
        for _, _, pool in subs:
            candidates.update((vrf, a) for a in pool)

    rows = {}
    for vrf, a in candidates:
        home = None
        for sid, net, pool in by_vrf.get(vrf, ()):
            if net.version != a.version or a not in net:
                continue
            if (home is None or net.prefixlen > home[1].prefixlen
                    or (net.prefixlen == home[1].prefixlen
                        and id_order(sid) < id_order(home[0]))):
                home = (sid, net, pool)
        if home is None:
            continue
        static = a in home[2]
        holder_ids = sorted(holders.get((vrf, a), ()), key=id_order)
        mark = mark_at.get((vrf, a))
        if not (static or holder_ids or mark):
            continue
        if mark is not None and mark["status"] == "quarantine":
            status = "quarantine"
        elif holder_ids:
            status = "allocated"
        elif mark is not None:
            status = "reserved"
        else:
            status = "available"
        if holder_ids:
            srv = servers[holder_ids[0]]
            device = (holder_ids[0], srv.get("hostname"), mac(srv.get("nic_mac")),
                      srv.get("device_type"), srv.get("manufacture"))
        else:
            device = (None, None, None, None, None)
        description = (mark.get("description") or None) if status == "reserved" else None
        rows[(vrf, a)] = Row(home[0], status, "static" if static else "dhcp",
                             *device, description)
    return rows


def expected_subnet_conflicts(state):
    """The expected subnet-level conflicts: {(vrf, subnet id, kind)}.  A
    live subnet is a duplicate_subnet when another live subnet of its vrf
    has the same cidr and a lower id; it is pool_shadowed when one of its
    pool entries overlaps a live subnet nested inside it."""
    subnets = live(state, "subnet")
    nets = {sid: (vrf_of(sub), ipaddress.ip_network(sub["cidr"].strip()))
            for sid, sub in subnets.items()}
    result = set()
    for sid, sub in subnets.items():
        vrf, net = nets[sid]
        same = [o for o, (v, n) in nets.items() if v == vrf and n == net]
        if min(same, key=id_order) != sid:
            result.add((vrf, sid, "duplicate_subnet"))
        nested = [n for o, (v, n) in nets.items()
                  if v == vrf and n != net and n.version == net.version
                  and n.subnet_of(net)]
        # The pool as it counts: without an IPv4 subnet's network and
        # broadcast addresses.
        if any(a in n for a in pool_addresses(sub) for n in nested):
            result.add((vrf, sid, "pool_shadowed"))
    return result


def normalize_actual(records):
    """Rows as fetched (vrf, host(ip_address), *COLUMNS) into the oracle's
    shape, so that addresses compare as addresses."""
    return {(r[0], ipaddress.ip_address(r[1])): Row(*r[2:]) for r in records}


def diff(expected, actual, limit=15):
    """A readable account of the first differences, or "" when equal."""
    lines = []
    keys = sorted(set(expected) | set(actual),
                  key=lambda k: (k[0], k[1].version, int(k[1])))
    count = 0
    for key in keys:
        e, a = expected.get(key), actual.get(key)
        if e == a:
            continue
        count += 1
        if count > limit:
            continue
        where = "%s %s" % (key[0] or '""', key[1])
        if a is None:
            lines.append("missing  %s: expected %s" % (where, _show(e)))
        elif e is None:
            lines.append("extra    %s: got %s" % (where, _show(a)))
        else:
            changed = ", ".join("%s: expected %r, got %r" % (c, getattr(e, c), getattr(a, c))
                                for c in COLUMNS if getattr(e, c) != getattr(a, c))
            lines.append("differs  %s: %s\n         expected %s" % (where, changed, _show(e)))
    if not count:
        return ""
    return ("%d of %d expected / %d actual rows differ:\n" % (count, len(expected), len(actual))
            + "\n".join(lines))


def _show(row):
    return ", ".join("%s=%r" % (c, v) for c, v in row._asdict().items() if v is not None)
