-- The ping sweep shared among several instances: members, rounds, leases
-- (the tables are schema/005_sweep_share.sql; docs/OPERATIONS.md, "Several
-- instances", says the same for operators).
--
-- Time is cut into rounds of interval_ms counted on the database's clock
-- from 1970, so every instance agrees on them whatever its own clock says.
-- At the start of each round every member calls sweep_claim(), which
-- leases it the subnets it owns for that round; it then probes the
-- addresses whose home subnet it holds, once, and nothing else.
--
-- Why it is exactly once:
-- * At most once.  A claim takes a subnet's lease only if the lease has
--   expired, and sets its expiry to the end of the current round; the
--   check and the write are one INSERT ... ON CONFLICT DO UPDATE ... WHERE,
--   which locks the row and, when another claim got there first, checks
--   that claim's committed row.  So in one round one member at most holds
--   a subnet, whatever the members believe about each other.
-- * At least once.  A member owns subnet s when, of the live members that
--   sweep s's routing domain and have a socket of its address family, it
--   has the highest hashtext(s.id || '/' ||
--   member id) (rendezvous hashing).  When every member sees the same live
--   members, each subnet has one owner and that owner claims it.  When a
--   member joins, the owner of s either stays or becomes the newcomer, and
--   the newcomer sees itself, so one of the two claims s: a join never
--   leaves a subnet out.  When a member dies, only its own subnets move;
--   they may be missed in the round in which it died, and from the first
--   round whose claims all come after its session ended, the next member
--   in the hash order owns and claims them.
-- * Liveness.  A member is live while its sweeper's session holds the
--   advisory lock (7369748, id).  A process that dies loses the lock as
--   soon as the server sees its connection close, which for a killed
--   process is at once; a vanished host is seen when the server's TCP
--   keepalive gives up (the sweeper's session sets it to about 25 s).  A
--   dead member's share is thus swept again from the next round on.
--
-- Simpler-looking designs were weighed against this one: leases renewed
-- by their holder need a lease time longer than a sweep, so a dead
-- holder's share waits more than one interval, and a newcomer gets nothing
-- until some lease lapses; a fixed split by registration order (member k
-- of n takes the subnets whose hash is k modulo n) moves almost every
-- subnet when n changes, so members with different views probe some
-- subnets twice.  Here the lease only guards, and the hash only shares.

-- The routing domains of a [sweeper] vrfs list ("-" is the default one).
CREATE OR REPLACE FUNCTION ipamd.sweep_vrfs(list text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(array_agg(DISTINCT CASE btrim(v) WHEN '-' THEN ''
	    ELSE btrim(v) END), '{}')
	FROM unnest(string_to_array(list, ',')) AS v
	WHERE btrim(v) <> ''
$$;

-- Warns (to the member's log) of each routing domain of a vrfs list that
-- holds no live subnet while others do: a name mistyped, or a comment
-- written after the list, would leave its addresses unprobed in silence.
-- An empty database (a first start, before the topics are read) is no
-- cause.
CREATE OR REPLACE FUNCTION ipamd.sweep_warn_empty(wanted text[])
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
	v text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM ipam_state.subnet s WHERE NOT s.deleted)
	THEN
		RETURN;
	END IF;
	FOR v IN
		SELECT w FROM unnest(wanted) AS w
		WHERE NOT EXISTS (SELECT 1 FROM ipam_state.subnet s
			WHERE s.vrf = w AND NOT s.deleted)
		ORDER BY 1
	LOOP
		RAISE WARNING 'sweeper.vrfs names the routing domain "%", which '
		    'holds no subnet: nothing of it is probed ("-" is the '
		    'default domain; a # comment only starts a line)',
		    CASE v WHEN '' THEN '-' ELSE v END;
	END LOOP;
END
$$;

-- A time in milliseconds since 1970 as a timestamptz, the same way each
-- time, so that a lease's expiry can be found again by equality.
CREATE OR REPLACE FUNCTION ipamd.sweep_time(ms bigint) RETURNS timestamptz
LANGUAGE sql STABLE STRICT AS $$
	SELECT to_timestamp(0) + ms * interval '1 millisecond'
$$;

-- The members whose sweeper session is alive: those whose advisory lock
-- some session of this database holds, with that session's process id.
CREATE OR REPLACE FUNCTION ipamd.sweep_live_members()
RETURNS TABLE (id integer, pid integer)
LANGUAGE sql STABLE AS $$
	SELECT l.objid::bigint::integer, l.pid
	FROM pg_locks l
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
	    AND l.classid = 7369748::oid
	    AND l.database = (SELECT d.oid FROM pg_database d
		WHERE d.datname = current_database())
$$;

-- Makes the calling session a member until it ends: forgets the members
-- whose session is gone (their leases expire by themselves), adds this
-- one, which probes the address families `families` (4, 6: those it has
-- a socket for), and takes its lock.  Returns the member's id.  A member's row is
-- visible to others only once this commits, and by then its lock is held,
-- so no join forgets a member that is still joining.
DROP FUNCTION IF EXISTS ipamd.sweep_join(text, text, bigint);
CREATE OR REPLACE FUNCTION ipamd.sweep_join(instance text, vrf_list text,
    round_ms bigint, families integer[] DEFAULT '{4,6}') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	me integer;
BEGIN
	DELETE FROM ipamd.sweep_member m
	WHERE m.id NOT IN (SELECT l.id FROM ipamd.sweep_live_members() l);
	INSERT INTO ipamd.sweep_member (instance, vrfs, interval_ms, families)
	VALUES (sweep_join.instance, ipamd.sweep_vrfs(vrf_list), round_ms,
	    sweep_join.families)
	RETURNING id INTO me;
	PERFORM pg_advisory_lock(7369748, me);
	PERFORM ipamd.sweep_warn_empty(ipamd.sweep_vrfs(vrf_list));
	RETURN me;
END
$$;

-- Claims the calling member's subnets for the current round.  swept_until_ms
-- is the end of the last round the member swept: a round that starts
-- before it is not fresh, and nothing is claimed.  Returns whether the
-- round is fresh, when it ends and how long until then (both in
-- milliseconds), how many members are live and how many subnets this
-- member leased.  The sweeper then reads the addresses of its leases
-- whose expiry is that round's end.  Raises SQLSTATE IPM02 when the
-- calling session is not that member (or its row was deleted): it must
-- join again.
--
-- On a fresh round it also counts the subnets of the member's domains
-- that no live member can probe (unswept): ping on, but every live member
-- of their domain lacks a socket of their family (IPv6, say); 0 on a
-- round that is not fresh.
--
-- PostgreSQL's clock may step back (an NTP step, a host restored): it
-- then reads before the start of the round the member swept last
-- (swept_from_ms; 0 when none), and leases were claimed after now.
-- Neither holds the sweeps back until the clock has caught up again: a
-- member whose clock reads before the round it swept last claims the
-- current one as fresh, and a lease claimed more than a round later than
-- the clock reads now is taken as one expired.  clock_back_ms says by
-- how much the clock reads before the start of the member's last round
-- (0 when it does not), for the member's log.  An interval changed
-- between two claims is no step: the round swept last began before now
-- whatever its length, and holds the next claim back until it ends.
DROP FUNCTION IF EXISTS ipamd.sweep_claim(integer, text, bigint, bigint);
DROP FUNCTION IF EXISTS ipamd.sweep_claim(integer, text, bigint, bigint,
    bigint);
CREATE FUNCTION ipamd.sweep_claim(me integer, vrf_list text,
    round_ms bigint, swept_until_ms bigint, swept_from_ms bigint)
RETURNS TABLE (fresh boolean, round_end_ms bigint, next_in_ms bigint,
    members integer, subnets integer, unswept integer,
    clock_back_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
	now_ms bigint := floor(extract(epoch FROM now()) * 1000)::bigint;
	start_ms bigint := now_ms - now_ms % round_ms;
	wanted text[] := ipamd.sweep_vrfs(vrf_list);
	before text[];
	live integer[];
	mine boolean;
BEGIN
	SELECT coalesce(array_agg(l.id), '{}'),
	    coalesce(bool_or(l.id = me AND l.pid = pg_backend_pid()), false)
	INTO live, mine
	FROM ipamd.sweep_live_members() l;
	IF NOT mine THEN
		RAISE EXCEPTION 'sweep member % is not this session', me
		    USING ERRCODE = 'IPM02', HINT = 'join again';
	END IF;
	round_end_ms := start_ms + round_ms;
	next_in_ms := round_end_ms - now_ms;
	clock_back_ms := greatest(swept_from_ms - now_ms, 0);
	fresh := start_ms >= swept_until_ms OR clock_back_ms > 0;
	subnets := 0;
	unswept := 0;

	-- Others read a member's domains from its row: kept up to date.
	SELECT m.vrfs INTO before FROM ipamd.sweep_member m WHERE m.id = me;
	UPDATE ipamd.sweep_member m
	SET vrfs = wanted, interval_ms = round_ms,
	    claimed_at = CASE WHEN fresh THEN now() ELSE m.claimed_at END
	WHERE m.id = me;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'sweep member % has no row', me
		    USING ERRCODE = 'IPM02', HINT = 'join again';
	END IF;
	-- A list changed by a reload is looked at as one given at the join.
	IF before IS DISTINCT FROM wanted THEN
		PERFORM ipamd.sweep_warn_empty(wanted);
	END IF;
	SELECT count(*) INTO members
	FROM ipamd.sweep_member m
	WHERE m.id = ANY (live);

	IF fresh THEN
		-- In subnet order, so that two claims that overlap (members
		-- whose views differ) lock rows in one order: no deadlock.
		WITH owned AS (
			SELECT s.id, s.vrf
			FROM ipam_state.subnet s
			WHERE s.ping AND NOT s.deleted AND s.vrf = ANY (wanted)
			    AND me = (SELECT m.id
				FROM ipamd.sweep_member m
				WHERE m.id = ANY (live) AND s.vrf = ANY (m.vrfs)
				    AND family(s.cidr) = ANY (m.families)
				ORDER BY hashtext(s.id || '/' || m.id) DESC, m.id
				LIMIT 1)
			ORDER BY s.id
		), won AS (
			INSERT INTO ipamd.sweep_lease AS l
			    (subnet_id, vrf, member, claimed_at, expires_at)
			SELECT o.id, o.vrf, me, now(),
			    ipamd.sweep_time(round_end_ms)
			FROM owned o
			ON CONFLICT (subnet_id) DO UPDATE
			SET vrf = excluded.vrf, member = excluded.member,
			    claimed_at = excluded.claimed_at,
			    expires_at = excluded.expires_at, probed = false
			-- clock_timestamp(), not now(): a lease another
			-- member claimed while this statement waited for its
			-- row was claimed before this moment, not after.  A
			-- step back shorter than a round leaves the lease to
			-- its member until it expires, a round later at most.
			WHERE l.expires_at <= now()
			    OR l.claimed_at > clock_timestamp()
				+ round_ms * interval '1 millisecond'
			RETURNING 1
		)
		SELECT count(*) INTO subnets FROM won;
		SELECT count(*) INTO unswept
		FROM ipam_state.subnet s
		WHERE s.ping AND NOT s.deleted AND s.vrf = ANY (wanted)
		    AND NOT EXISTS (SELECT 1 FROM ipamd.sweep_member m
			WHERE m.id = ANY (live) AND s.vrf = ANY (m.vrfs)
			    AND family(s.cidr) = ANY (m.families));
	END IF;

	-- A subnet gone (deleted, ping off, its domain no longer swept) for
	-- ten rounds leaves its lease behind: forgotten.  Not the lease of a
	-- live member on a subnet still swept: its sweep may be taking that
	-- long, and its commit counts the pass only of the subnets it still
	-- holds (it would write nothing).
	DELETE FROM ipamd.sweep_lease l
	WHERE l.expires_at < now() - 10 * round_ms * interval '1 millisecond'
	    AND NOT (l.member = ANY (live) AND EXISTS (SELECT 1
		FROM ipam_state.subnet s
		WHERE s.id = l.subnet_id AND s.ping AND NOT s.deleted));
	PERFORM ipamd.sweep_prune(live, round_ms);
	RETURN NEXT;
END
$$;

-- Forgets, a bounded share at a time, the state of subnets no longer
-- swept: deleted, ping off, or of a routing domain no live member sweeps,
-- and not counted a pass for ten rounds.  Their state rows go first,
-- SWEEP_PRUNE_ROWS (5,000) at most a call, then their row of passes once
-- none is left; a subnet swept again later starts as never checked, as a
-- new one does.  Every claim calls it, so a few thousand rows a round
-- keep up with any deletion; the subnets one member prunes are locked
-- (SKIP LOCKED), so members claiming at once never wait on each other.
-- Returns the state rows forgotten.
CREATE OR REPLACE FUNCTION ipamd.sweep_prune(live integer[], round_ms bigint)
RETURNS integer
LANGUAGE plpgsql
SET enable_nestloop = on
AS $$
DECLARE
	gone text[];
	forgotten integer;
BEGIN
	SELECT coalesce(array_agg(g.subnet_id), '{}') INTO gone
	FROM (SELECT p.subnet_id
		FROM ipamd.sweep_subnet p
		-- A subnet gone for ten rounds of this member's; one that
		-- lives on but nobody sweeps (ping off, its domain's members
		-- away) only after a day: a member restarting, or another
		-- whose rounds are longer, must find its state as it was.
		WHERE (p.checked_at < now() - 10 * round_ms *
			interval '1 millisecond'
		    AND NOT EXISTS (SELECT 1 FROM ipam_state.subnet s
			WHERE s.id = p.subnet_id AND NOT s.deleted))
		    OR (p.checked_at < now() - interval '1 day'
		    AND NOT EXISTS (SELECT 1
			FROM ipam_state.subnet s
			JOIN ipamd.sweep_member m ON s.vrf = ANY (m.vrfs)
			WHERE s.id = p.subnet_id AND s.ping AND NOT s.deleted
			    AND m.id = ANY (live)))
		ORDER BY p.subnet_id
		LIMIT 16
		FOR UPDATE OF p SKIP LOCKED) g;
	IF cardinality(gone) = 0 THEN
		RETURN 0;
	END IF;
	DELETE FROM ipamd.sweep_address st
	WHERE st.ctid = ANY (ARRAY(SELECT x.ctid
		FROM ipamd.sweep_address x
		WHERE x.subnet_id = ANY (gone)
		LIMIT 5000));
	GET DIAGNOSTICS forgotten = ROW_COUNT;
	DELETE FROM ipamd.sweep_subnet p
	WHERE p.subnet_id = ANY (gone)
	    AND NOT EXISTS (SELECT 1 FROM ipamd.sweep_address st
		WHERE st.subnet_id = p.subnet_id);
	RETURN forgotten;
END
$$;

-- The sweeper's columns (schema/010_sweep_state.sql holds the tables).
--
-- A sweep writes one row of ipamd.sweep_subnet per subnet it swept, and a
-- row of ipamd.sweep_address only for an address whose state changed:
-- its first check, a reply after silence, a silence after replies,
-- active turning false after down_after missed sweeps, a move to another
-- subnet, a round trip time that moved by a meaningful amount (sweeper/
-- sweep_store.c says which).  So a state row, written at pass `pass` of
-- its subnet, holds for every later pass of that subnet: an address that
-- answered then has answered each pass since (else a row would have been
-- written), and one that was silent has stayed silent, one missed sweep
-- more each pass.  The columns of an address row follow, as long as the
-- row is the one the state was written for (the same created_at: a row
-- deleted and made again starts as never checked) and still lies in the
-- same subnet (else they stay as they were until its new subnet's sweep
-- writes them again):
--   last_checked_at  when the latest pass of its subnet began probing;
--   last_seen_at     when the latest pass it answered began, plus its
--                    round trip time;
--   missed_sweeps    the passes since its last reply (0 while it answers);
--   active, rtt_us   as written.

-- last_seen_at: later_checked_at is when the latest pass after the state
-- row began (NULL: none since).  STABLE as adding an interval to a
-- timestamptz is, so that it is inlined (ipamd.id_key()): it is asked of
-- every row public.ipam shows.
CREATE OR REPLACE FUNCTION ipamd.sweep_seen(answered boolean,
    seen_at timestamptz, rtt_us integer, later_checked_at timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN answered AND later_checked_at IS NOT NULL
	    THEN later_checked_at + rtt_us * interval '1 microsecond'
	    ELSE seen_at END
$$;

-- missed_sweeps: later_passes is how many passes followed the state row
-- (NULL: none).
CREATE OR REPLACE FUNCTION ipamd.sweep_missed(answered boolean,
    missed_sweeps integer, later_passes bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN answered THEN 0
	    ELSE (coalesce(missed_sweeps, 0) + coalesce(later_passes, 0))::integer
	    END
$$;

-- Whether an address row's state row still says whether it answers: it
-- was written in the subnet the row lies in, or the row lies in another
-- that is swept (a pass row: its next sweep writes the state anew), or
-- the row changed within a day (its subnet, just made, may not have been
-- swept yet; the state of a subnet no longer swept is kept as long).
-- Else the row moved into a subnet nobody sweeps (a nested subnet with
-- ping off, say) and its old state would say it answers for ever: it is
-- shown as not active.  state_subnet and home_swept come from the outer
-- joins (NULL: no state row, no pass row).
CREATE OR REPLACE FUNCTION ipamd.sweep_state_holds(state_subnet text,
    home_subnet text, home_swept text, changed_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT state_subnet = home_subnet OR home_swept IS NOT NULL
	    OR changed_at >= now() - interval '1 day'
$$;

-- The sweeper's columns of every address row, with what the sweeper needs
-- besides: missed_sweeps, whether the last pass was answered, and whether
-- a state row follows the row in its present subnet.  The joins are those
-- of public.ipam (ipamd.ipam_view_define()).  Inlined by the planner.
CREATE OR REPLACE FUNCTION ipamd.sweep_rows()
RETURNS TABLE (vrf text, ip_address inet, subnet_id text,
    active boolean, last_seen_at timestamptz, last_checked_at timestamptz,
    rtt_us integer, missed_sweeps integer, answered boolean,
    followed boolean)
LANGUAGE sql STABLE AS $$
	SELECT a.vrf, a.ip_address, a.subnet_id, coalesce(st.active
		AND ipamd.sweep_state_holds(st.subnet_id, a.subnet_id,
		h.subnet_id, a.updated_at), false),
	    ipamd.sweep_seen(st.answered, st.seen_at, st.rtt_us, p.checked_at),
	    coalesce(p.checked_at, st.checked_at), st.rtt_us,
	    ipamd.sweep_missed(st.answered, st.missed_sweeps,
		p.passes - st.pass),
	    coalesce(st.answered, false),
	    coalesce(st.subnet_id = a.subnet_id, false)
	FROM ipam_state.address a
	LEFT JOIN ipamd.sweep_address st ON st.vrf = a.vrf
	    AND st.ip_address = a.ip_address
	    AND st.row_created_at = a.created_at
	LEFT JOIN ipamd.sweep_subnet p ON p.subnet_id = st.subnet_id
	    AND p.subnet_id = a.subnet_id AND p.passes > st.pass
	LEFT JOIN ipamd.sweep_subnet h ON h.subnet_id = a.subnet_id
$$;

-- The network (last: false) or broadcast (last: true) address of a
-- subnet, as an address row holds it (a host, /32 or /128).  Not STRICT,
-- so that it is inlined (ipamd.first_addr()): it is asked of every target
-- of a round.
CREATE OR REPLACE FUNCTION ipamd.sweep_edge(net cidr, last boolean)
RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
	SELECT set_masklen(CASE last WHEN true THEN broadcast(net)
	    WHEN false THEN network(net)::inet END, CASE family(net) WHEN 4
	    THEN 32 ELSE 128 END)
$$;

-- Forgets the state row of the network or broadcast address of an IPv4
-- subnet of /30 or wider among `probed` (probed while its subnet was
-- wider): kept, public.ipam would show it answering at every later pass.
-- Only where the subnet is the address's home: a /31 or /32 inside it
-- may hold its edge as a host, probed as that subnet's.  At most two rows
-- a subnet, each found through its key: nested loops, whatever the
-- session prefers for its large joins (planned without them, this was a
-- scan of every state row).
CREATE OR REPLACE FUNCTION ipamd.sweep_forget_edges(probed text[])
RETURNS void
LANGUAGE sql
SET enable_nestloop = on
AS $$
	DELETE FROM ipamd.sweep_address st
	USING ipam_state.subnet s
	CROSS JOIN LATERAL (VALUES (ipamd.sweep_edge(s.cidr, false)),
	    (ipamd.sweep_edge(s.cidr, true))) AS e(ip)
	JOIN ipam_state.address a ON a.vrf = s.vrf AND a.ip_address = e.ip
	    AND a.subnet_id = s.id
	WHERE s.id = ANY (probed) AND family(s.cidr) = 4
	    AND masklen(s.cidr) <= 30 AND st.vrf = s.vrf
	    AND st.ip_address = e.ip
$$;

-- The targets of member `me` for the round that ends at round_end_ms:
-- the addresses of its leased subnets that allow pings and whose family
-- (4 or 6) is one of `families` (those it has a socket for), with their
-- state as public.ipam derives it (ipamd.sweep_rows()).  The leases of
-- those subnets are marked probed: only their pass is counted
-- (ipamd.sweep_commit()), so a subnet left out (ping off when read, a
-- family the member cannot probe) never looks answered.
CREATE OR REPLACE FUNCTION ipamd.sweep_targets(me integer,
    round_end_ms bigint, families integer[])
RETURNS TABLE (vrf text, ip text, active boolean, answered boolean,
    missed_sweeps integer, rtt_us integer, followed boolean)
LANGUAGE plpgsql AS $$
DECLARE
	probed text[];
BEGIN
	-- In subnet order, as the claims lock the leases: no deadlock.
	WITH marked AS (
		UPDATE ipamd.sweep_lease l
		SET probed = true
		FROM ipam_state.subnet s
		WHERE s.id = l.subnet_id AND l.member = me
		    AND l.expires_at = ipamd.sweep_time(round_end_ms)
		    AND s.ping AND NOT s.deleted
		    AND family(s.cidr) = ANY (families)
		RETURNING l.subnet_id
	)
	SELECT coalesce(array_agg(m.subnet_id), '{}') INTO probed
	FROM marked m;
	-- Not the network and broadcast addresses of an IPv4 subnet of /30
	-- or wider, a server's or a mark's as they may be: an echo request
	-- to the broadcast address reaches every host of a network that
	-- forwards it, and the answer comes from another address.
	PERFORM ipamd.sweep_forget_edges(probed);
	RETURN QUERY
	SELECT a.vrf, host(a.ip_address), a.active, a.answered,
	    a.missed_sweeps, a.rtt_us, a.followed
	FROM ipamd.sweep_rows() a
	JOIN ipam_state.subnet s ON s.id = a.subnet_id
	WHERE a.subnet_id = ANY (probed)
	    AND NOT (family(s.cidr) = 4 AND masklen(s.cidr) <= 30
		AND a.ip_address IN (ipamd.sweep_edge(s.cidr, false),
		    ipamd.sweep_edge(s.cidr, true)));
END
$$;

-- Writes a sweep's news and counts its pass, in one statement, so that
-- both or neither are there: a sweep interrupted before this (PostgreSQL
-- lost, the daemon killed, a failed write) leaves no state row stamped
-- with a pass that is never counted.  The news (sweeper/sweeper.c
-- decides which) is the state rows of the addresses whose state changed,
-- as parallel arrays (domains[i] is ips[i]'s routing domain), written for
-- the pass about to be counted: their subnet's passes so far plus one.
-- Only the subnets of member `me` probed in the round that ends at
-- round_end_ms (ipamd.sweep_targets() marked their leases) count a pass,
-- and only addresses that lie in one of them get news; one whose row is
-- gone meanwhile gets none.  A silent address keeps the round trip time
-- and last_seen_at it had; one that answered was seen at pass_at (when
-- the sweep began probing) plus its round trip time.  Every 64th pass of
-- a subnet also forgets the state rows of its addresses whose row is gone
-- (or was made again: a state row never follows a newer one); there are
-- never more of those than addresses that had a row in the subnet, so
-- once in a while is enough.  Returns the state rows written, the
-- subnets counted and the state rows forgotten.  News is few rows, each
-- found through its key: nested loops, whatever the session prefers for
-- its large joins.
CREATE OR REPLACE FUNCTION ipamd.sweep_commit(me integer,
    round_end_ms bigint, pass_at timestamptz, domains text[], ips inet[],
    rtts integer[], actives boolean[], missed integer[])
RETURNS TABLE (written bigint, subnets integer, forgotten integer)
LANGUAGE plpgsql
SET enable_nestloop = on
AS $$
DECLARE
	probed text[];
	due text[];
BEGIN
	-- The leases held until this commit ends: a claim of one of them by
	-- another member (ipamd.sweep_claim() updates the row) waits for
	-- it, then reads this sweep's news as its targets, or it took the
	-- lease first and this commit writes nothing there.  Without the
	-- lock, a claim made while the news was being written read the
	-- state before it, and its own sweep's news then counted from there
	-- (a silent pass made of an answering one), or was overwritten by
	-- the older news.  In subnet order, as the claims lock the leases.
	SELECT coalesce(array_agg(k.subnet_id ORDER BY k.subnet_id), '{}')
	INTO probed
	FROM (SELECT l.subnet_id
	    FROM ipamd.sweep_lease l
	    WHERE l.member = me
		AND l.expires_at = ipamd.sweep_time(round_end_ms) AND l.probed
	    ORDER BY l.subnet_id
	    FOR SHARE OF l) k;

	WITH r AS (
		SELECT * FROM unnest(domains, ips, rtts, actives, missed)
		    AS r(vrf, ip, rtt_us, active, missed_sweeps)
	), news AS (
		SELECT a.vrf, a.ip_address, a.created_at, a.subnet_id,
		    coalesce(p.passes, 0) + 1 AS pass,
		    -- A row made again since its targets were read is news
		    -- of the row it replaced: silent, it never answered.
		    r.active AND (r.rtt_us IS NOT NULL OR st.vrf IS NOT NULL)
			AS active,
		    r.rtt_us IS NOT NULL AS answered, r.missed_sweeps,
		    coalesce(r.rtt_us, st.rtt_us) AS rtt_us,
		    CASE WHEN r.rtt_us IS NOT NULL
			THEN pass_at + r.rtt_us * interval '1 microsecond'
			ELSE ipamd.sweep_seen(st.answered, st.seen_at,
			    st.rtt_us, later.checked_at) END AS seen_at
		FROM r
		JOIN ipam_state.address a ON a.vrf = r.vrf
		    AND a.ip_address = r.ip
		LEFT JOIN ipamd.sweep_subnet p ON p.subnet_id = a.subnet_id
		LEFT JOIN ipamd.sweep_address st ON st.vrf = a.vrf
		    AND st.ip_address = a.ip_address
		    AND st.row_created_at = a.created_at
		LEFT JOIN ipamd.sweep_subnet later
		    ON later.subnet_id = st.subnet_id
		    AND later.subnet_id = a.subnet_id
		    AND later.passes > st.pass
		WHERE a.subnet_id = ANY (probed)
	), stored AS (
		INSERT INTO ipamd.sweep_address AS st (vrf, ip_address,
		    row_created_at, subnet_id, pass, active, answered,
		    missed_sweeps, rtt_us, checked_at, seen_at)
		SELECT n.vrf, n.ip_address, n.created_at, n.subnet_id, n.pass,
		    n.active, n.answered, n.missed_sweeps, n.rtt_us, pass_at,
		    n.seen_at
		FROM news n
		ON CONFLICT (vrf, ip_address) DO UPDATE
		SET row_created_at = excluded.row_created_at,
		    subnet_id = excluded.subnet_id, pass = excluded.pass,
		    active = excluded.active, answered = excluded.answered,
		    missed_sweeps = excluded.missed_sweeps,
		    rtt_us = excluded.rtt_us, checked_at = excluded.checked_at,
		    seen_at = excluded.seen_at
		RETURNING 1
	)
	SELECT count(*) INTO written FROM stored;

	-- In subnet order, as the claims lock the leases: no deadlock.
	WITH swept AS (
		INSERT INTO ipamd.sweep_subnet AS p (subnet_id, passes,
		    checked_at)
		SELECT u.id, 1, pass_at
		FROM unnest(probed) AS u(id)
		ORDER BY u.id
		ON CONFLICT (subnet_id) DO UPDATE
		SET passes = p.passes + 1, checked_at = excluded.checked_at
		RETURNING p.subnet_id, p.passes
	)
	SELECT count(*), coalesce(array_agg(w.subnet_id)
	    FILTER (WHERE w.passes % 64 = 0), '{}')
	INTO subnets, due
	FROM swept w;
	forgotten := 0;
	IF cardinality(due) > 0 THEN
		DELETE FROM ipamd.sweep_address st
		WHERE st.subnet_id = ANY (due)
		    AND NOT EXISTS (SELECT 1 FROM ipam_state.address a
			WHERE a.vrf = st.vrf AND a.ip_address = st.ip_address
			    AND a.created_at = st.row_created_at);
		GET DIAGNOSTICS forgotten = ROW_COUNT;
	END IF;
	RETURN NEXT;
END
$$;

-- Schema 10's two statements, a sweep's news then its pass, which an
-- interruption between them could leave half done.
DROP FUNCTION IF EXISTS ipamd.sweep_write(text, inet[], integer[],
    boolean[], integer[], timestamptz);
DROP FUNCTION IF EXISTS ipamd.sweep_pass(integer, bigint, timestamptz);

-- (Re)defines public.ipam, the rows as operators see them, with the
-- sweeper's columns derived as above: when this file runs, and when a
-- rebuild swaps its rows in (ipamd.rebuild_swap()).  The joins are
-- written out here, not read through ipamd.sweep_rows(), so that a role
-- allowed to read the view needs no right on the tables behind it.
CREATE OR REPLACE FUNCTION ipamd.ipam_view_define() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	CREATE OR REPLACE VIEW public.ipam AS
		SELECT a.vrf, a.ip_address, a.subnet_id, a.status, a.ip_type,
		    coalesce(st.active AND ipamd.sweep_state_holds(st.subnet_id,
			a.subnet_id, h.subnet_id, a.updated_at), false) AS active,
		    a.server_id,
		    a.hostname, a.mac_address, a.platform, a.manufacturer,
		    a.description,
		    ipamd.sweep_seen(st.answered, st.seen_at, st.rtt_us,
			p.checked_at) AS last_seen_at,
		    coalesce(p.checked_at, st.checked_at) AS last_checked_at,
		    st.rtt_us, a.created_at, a.updated_at
		FROM ipam_state.address a
		LEFT JOIN ipamd.sweep_address st ON st.vrf = a.vrf
		    AND st.ip_address = a.ip_address
		    AND st.row_created_at = a.created_at
		LEFT JOIN ipamd.sweep_subnet p ON p.subnet_id = st.subnet_id
		    AND p.subnet_id = a.subnet_id AND p.passes > st.pass
		LEFT JOIN ipamd.sweep_subnet h ON h.subnet_id = a.subnet_id;
END
$$;

SELECT ipamd.ipam_view_define();
