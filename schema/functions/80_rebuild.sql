-- Rebuild: fill a fresh copy of ipam_state from the beginning of every
-- topic, then swap it in, in one transaction, so that readers never see a
-- half-built state and deletes that compaction has dropped leave nothing.

-- Drops any earlier attempt and makes ipam_state_rebuild, empty, with the
-- same columns, constraints and indexes as ipam_state, and what LIKE
-- leaves out: the tables' storage parameters (the address table's
-- fillfactor, which keeps derived updates HOT) and the indexes' names
-- (LIKE makes up its own, and a later migration names the index it
-- changes).
CREATE OR REPLACE FUNCTION ipamd.rebuild_begin() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t text;
	options text[];
	made text[];
	live text[];
	n integer;
BEGIN
	SET LOCAL client_min_messages = warning;
	DROP SCHEMA IF EXISTS ipam_state_rebuild CASCADE;
	CREATE SCHEMA ipam_state_rebuild;
	FOREACH t IN ARRAY ipamd.state_tables() LOOP
		EXECUTE format('CREATE TABLE ipam_state_rebuild.%I '
		    '(LIKE ipam_state.%I INCLUDING ALL)', t, t);
		SELECT c.reloptions INTO options FROM pg_class c
		WHERE c.oid = format('ipam_state.%I', t)::regclass;
		IF options IS NOT NULL THEN
			EXECUTE format('ALTER TABLE ipam_state_rebuild.%I SET (%s)',
			    t, array_to_string(options, ', '));
		END IF;
	END LOOP;
	-- Each index under the name of the live one it copies (the same
	-- definition, paired one to one in name order): every copy first
	-- under a name of no one's, then under the live one's, so that no
	-- made-up name stands in the way of another's.
	SELECT coalesce(array_agg(r.relname::text ORDER BY l.relname), '{}'),
	    coalesce(array_agg(l.relname::text ORDER BY l.relname), '{}')
	INTO made, live
	FROM unnest(ipamd.state_tables()) AS t(name)
	CROSS JOIN LATERAL (SELECT i.*, row_number() OVER (
		PARTITION BY i.definition ORDER BY i.relname) AS k
	    FROM ipamd.rebuild_indexes('ipam_state', t.name) i) l
	JOIN LATERAL (SELECT i.*, row_number() OVER (
		PARTITION BY i.definition ORDER BY i.relname) AS k
	    FROM ipamd.rebuild_indexes('ipam_state_rebuild', t.name) i) r
	    ON r.definition = l.definition AND r.k = l.k
	WHERE r.relname <> l.relname;
	FOR n IN 1 .. cardinality(made) LOOP
		EXECUTE format('ALTER INDEX ipam_state_rebuild.%I RENAME TO %I',
		    made[n], 'rebuild_index_' || n);
	END LOOP;
	FOR n IN 1 .. cardinality(made) LOOP
		EXECUTE format('ALTER INDEX ipam_state_rebuild.%I RENAME TO %I',
		    'rebuild_index_' || n, live[n]);
	END LOOP;
END
$$;

-- The indexes of a table of a schema, each with its definition without
-- its name, schema and table ("USING btree (vrf, ip_address)", UNIQUE
-- kept), by which a copy's index is matched with the live one's.
CREATE OR REPLACE FUNCTION ipamd.rebuild_indexes(schema_name text,
    table_name text) RETURNS TABLE (relname name, definition text)
LANGUAGE sql STABLE AS $$
	SELECT ic.relname, regexp_replace(pg_get_indexdef(i.indexrelid),
	    '^CREATE (UNIQUE )?INDEX \S+ ON \S+ ', '\1')
	FROM pg_index i
	JOIN pg_class ic ON ic.oid = i.indexrelid
	WHERE i.indrelid = format('%I.%I', schema_name, table_name)::regclass
$$;

-- Derives every row of ipam_state_rebuild from its entities at once: the
-- pool addresses of every live subnet, and every address a live server or
-- mark names.  A rebuild applies its batches without deriving; this is its
-- last step before the swap.
--
-- Most pool addresses are plain, as for a batch (schema/functions/
-- 40_expand.sql): no server or mark has them, and no other subnet of the
-- same cidr or a more specific one overlaps their subnet, so their row is
-- the subnet's, available, static.  They are written straight from the
-- pools; the derivation looks up the rest (the addresses of servers and
-- marks, and the pools of subnets that others overlap), one by one.
CREATE OR REPLACE FUNCTION ipamd.derive_all() RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '256MB'
-- As for a batch (ipamd.apply_batch): no JIT.
SET jit = off
AS $$
DECLARE
	touched ipamd.touch[];
	ids text[];
	derived jsonb;
	filled bigint;
BEGIN
	PERFORM set_config('search_path', 'ipam_state_rebuild, ipamd, public',
	    true);
	PERFORM pg_advisory_xact_lock(7369747);
	-- Every row is derived here, none kept: a derivation run again (a
	-- swap that failed sends the rebuild back to its batches, which
	-- write no rows) starts from nothing, as the first did: its rows and
	-- the conflicts of addresses (those of subnets are all refreshed
	-- below), which no event since may touch again.
	DELETE FROM address;
	DELETE FROM conflict WHERE kind IN ('several_servers',
	    'server_on_reserved', 'server_on_quarantine');
	WITH alone AS MATERIALIZED (
		-- The live subnets no other live subnet of the same cidr or a
		-- more specific one overlaps (the GiST index on cidr).
		SELECT a.id
		FROM subnet a
		WHERE NOT a.deleted AND NOT EXISTS (SELECT 1 FROM subnet b
		    WHERE NOT b.deleted AND b.vrf = a.vrf AND b.id <> a.id
			AND b.cidr && a.cidr
			AND masklen(b.cidr) >= masklen(a.cidr))
	), pool AS (
		SELECT s.vrf, s.id, p.f + g.i AS ip, o.id IS NOT NULL AS alone
		FROM subnet s
		LEFT JOIN alone o ON o.id = s.id
		CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last) AS p(f, l)
		CROSS JOIN LATERAL generate_series(0::bigint, p.l - p.f) AS g(i)
		WHERE NOT s.deleted
	), classed AS MATERIALIZED (
		SELECT p.*, p.alone AND NOT EXISTS (SELECT 1 FROM server x
			WHERE NOT x.deleted AND x.vrf = p.vrf
			    AND x.ip_address = p.ip)
		    AND NOT EXISTS (SELECT 1 FROM mark m
			WHERE NOT m.deleted AND m.vrf = p.vrf AND m.address = p.ip)
		    AS plain
		FROM pool p
	), written AS (
		-- A row that exists now keeps its created_at, and its
		-- updated_at when it does not change (ipamd.rebuild_carry()).
		INSERT INTO address (vrf, ip_address, subnet_id, status, ip_type,
		    created_at, updated_at)
		SELECT c.vrf, c.ip, c.id, 'available', 'static',
		    coalesce(o.created_at, now()),
		    CASE WHEN (o.subnet_id, o.status, o.ip_type, o.server_id,
			o.hostname, o.mac_address, o.platform, o.manufacturer,
			o.description) IS NOT DISTINCT FROM (c.id, 'available',
			'static', NULL, NULL, NULL, NULL, NULL, NULL)
			THEN o.updated_at ELSE now() END
		FROM classed c
		LEFT JOIN ipam_state.address o ON o.vrf = c.vrf
		    AND o.ip_address = c.ip
		WHERE c.plain
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM written),
	    (SELECT coalesce(array_agg(ROW(a.vrf, a.ip, 0, '(rebuild)', NULL,
		NULL, NULL)::ipamd.touch), '{}')
	    FROM (
		SELECT c.vrf, c.ip FROM classed c WHERE NOT c.plain
		UNION
		SELECT x.vrf, x.ip_address FROM server x
		WHERE NOT x.deleted AND x.ip_address IS NOT NULL
		UNION
		SELECT m.vrf, m.address FROM mark m WHERE NOT m.deleted
	    ) a)
	INTO filled, touched;
	derived := ipamd.derive(touched, false);
	-- The plain pool rows count as derived, as for a batch.
	derived := derived || jsonb_build_object(
	    'touched', (derived->>'touched')::bigint + filled,
	    'inserted', (derived->>'inserted')::bigint + filled);
	SELECT coalesce(array_agg(id), '{}') INTO ids FROM subnet
	WHERE NOT deleted;
	derived := derived || jsonb_build_object('subnet_conflicts',
	    ipamd.refresh_subnet_conflicts(ids));
	-- The derived rows take their times from the rows there now here,
	-- without the locks of the swap, which carries only what changed
	-- in between.
	PERFORM ipamd.rebuild_carry();
	RETURN derived;
END
$$;

-- Rows of the rebuilt state that exist in the current one keep their
-- created_at (which ties them to their sweep state, ipamd.sweep_address)
-- and, when unchanged, their updated_at; a changed one is updated now,
-- and one that has no current row is made now.
-- Writes only the rows that do not have these yet: run at the end of
-- derive_all() for every row, and again in the swap for the rows the
-- current state changed since (and the changed ones, now the swap's).
-- Returns how many rows it wrote.
CREATE OR REPLACE FUNCTION ipamd.rebuild_carry() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	carried bigint;
	renewed bigint;
BEGIN
	WITH c AS (
		SELECT n.vrf, n.ip_address, o.created_at,
		    CASE WHEN (n.subnet_id, n.status, n.ip_type, n.server_id,
			n.hostname, n.mac_address, n.platform, n.manufacturer,
			n.description) IS NOT DISTINCT FROM
			(o.subnet_id, o.status, o.ip_type, o.server_id,
			o.hostname, o.mac_address, o.platform, o.manufacturer,
			o.description)
			THEN o.updated_at ELSE now() END AS updated_at
		FROM ipam_state_rebuild.address n
		JOIN ipam_state.address o ON n.vrf = o.vrf
		    AND n.ip_address = o.ip_address
		WHERE (n.created_at, n.updated_at) IS DISTINCT FROM
		    (o.created_at, o.updated_at)
	)
	UPDATE ipam_state_rebuild.address n
	SET created_at = c.created_at, updated_at = c.updated_at
	FROM c
	WHERE n.vrf = c.vrf AND n.ip_address = c.ip_address
	    AND (n.created_at, n.updated_at) IS DISTINCT FROM
		(c.created_at, c.updated_at);
	GET DIAGNOSTICS carried = ROW_COUNT;
	-- A row with no current row is new: made now, whatever an earlier
	-- carry gave it from a row deleted since (its sweep state, tied by
	-- created_at, is not its own).
	UPDATE ipam_state_rebuild.address n
	SET created_at = now(), updated_at = now()
	WHERE (n.created_at, n.updated_at) IS DISTINCT FROM (now(), now())
	    AND NOT EXISTS (SELECT 1 FROM ipam_state.address o
		WHERE o.vrf = n.vrf AND o.ip_address = n.ip_address);
	GET DIAGNOSTICS renewed = ROW_COUNT;
	RETURN carried + renewed;
END
$$;

-- Sets lock_timeout to what is left of a wait of wait_ms that began
-- since, for the next statement that takes a lock; none left: SQLSTATE
-- 55P03, as a lock not had in time.  A wait_ms of 0 waits without end,
-- as lock_timeout 0 does.
CREATE OR REPLACE FUNCTION ipamd.lock_wait_left(since timestamptz,
    wait_ms integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	left_ms bigint := wait_ms - floor(extract(epoch FROM
	    clock_timestamp() - since) * 1000)::bigint;
BEGIN
	IF wait_ms <= 0 THEN
		PERFORM set_config('lock_timeout', '0', true);
		RETURN;
	END IF;
	IF left_ms < 1 THEN
		RAISE EXCEPTION 'the locks of the swap were not had within % ms',
		    wait_ms USING ERRCODE = '55P03';
	END IF;
	PERFORM set_config('lock_timeout', left_ms || 'ms', true);
END
$$;

-- Swaps the rebuilt state in: rows that exist in both keep their
-- created_at and, when unchanged, their updated_at (ipamd.rebuild_carry(),
-- for the rows changed since derive_all() carried them), and conflicts
-- that exist in both keep their first_seen_at; every row that differs is
-- written to the audit history as a change made by the rebuild, and the
-- views are pointed at the new tables.  Returns how many rows differed.
-- lock_wait_ms bounds the wait for its locks (0: none, as lock_timeout).
CREATE OR REPLACE FUNCTION ipamd.rebuild_swap(lock_wait_ms integer)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	t text;
	changed bigint;
	waiting timestamptz;
BEGIN
	SET LOCAL client_min_messages = warning;
	-- Wait for an apply in flight to finish, as apply_batch() does.
	PERFORM pg_advisory_xact_lock(7369747);
	-- Asked again after the answer of a swap that committed was lost
	-- with its connection: the rebuilt state is the live one already.
	IF to_regnamespace('ipam_state_rebuild') IS NULL THEN
		RETURN jsonb_build_object('changed', 0, 'already', true);
	END IF;
	-- Readers go on meanwhile: the writes the locks below hold back are
	-- the apply's, which waits for the swap anyway.  The view and the
	-- old tables are taken whole further down.
	PERFORM set_config('lock_timeout', lock_wait_ms || 'ms', true);
	FOREACH t IN ARRAY ipamd.state_tables() LOOP
		EXECUTE format('LOCK TABLE ipam_state.%I IN EXCLUSIVE MODE', t);
	END LOOP;

	PERFORM ipamd.rebuild_carry();
	-- A conflict is the same one while its key stays (its detail may
	-- change, as an apply updates it in place): when it was first seen
	-- is not a thing a rebuild learns again.
	UPDATE ipam_state_rebuild.conflict n
	SET first_seen_at = o.first_seen_at
	FROM ipam_state.conflict o
	WHERE n.vrf = o.vrf
	    AND coalesce(host(n.ip_address), '') = coalesce(host(o.ip_address), '')
	    AND coalesce(n.subnet_id, '') = coalesce(o.subnet_id, '')
	    AND n.kind = o.kind
	    AND n.first_seen_at <> o.first_seen_at;

	WITH o AS (SELECT vrf, ip_address, subnet_id, status, ip_type,
		server_id, hostname, mac_address, platform, manufacturer,
		description FROM ipam_state.address),
	    n AS (SELECT vrf, ip_address, subnet_id, status, ip_type,
		server_id, hostname, mac_address, platform, manufacturer,
		description FROM ipam_state_rebuild.address),
	    diff AS (
		SELECT coalesce(n.vrf, o.vrf) AS vrf,
		    coalesce(n.ip_address, o.ip_address) AS ip_address,
		    CASE WHEN o.vrf IS NULL THEN 'insert'
			WHEN n.vrf IS NULL THEN 'delete' ELSE 'update' END AS action,
		    CASE WHEN o.vrf IS NOT NULL THEN ipamd.audit_image(o.subnet_id,
			o.status, o.ip_type, o.server_id, o.hostname,
			o.mac_address, o.platform, o.manufacturer,
			o.description) END AS before,
		    CASE WHEN n.vrf IS NOT NULL THEN ipamd.audit_image(n.subnet_id,
			n.status, n.ip_type, n.server_id, n.hostname,
			n.mac_address, n.platform, n.manufacturer,
			n.description) END AS after
		FROM o FULL JOIN n
		    ON o.vrf = n.vrf AND o.ip_address = n.ip_address
		WHERE o IS DISTINCT FROM n),
	    written AS (
		INSERT INTO ipamd.audit_log (vrf, ip_address, action,
		    before_image, after_image, source_topic)
		SELECT vrf, ip_address, action, before, after, '(rebuild)'
		FROM diff
		RETURNING 1)
	SELECT count(*) INTO changed FROM written;

	-- The views, then the old tables, taken whole: behind any session
	-- that reads them (one idle in a transaction holds them as long as
	-- it stays so), while every reader that comes after queues behind
	-- the swap.  Within lock_wait_ms for all of them together, or the
	-- swap gives up (55P03) and is asked again a little later with a
	-- longer wait (consumers/rebuild.c): readers never wait longer than
	-- that, while reads that take their time still let it through.  The
	-- views first (defined again as they are, which takes them), so that
	-- a reader of a view, holding it, never waits for a table the swap
	-- holds while the swap waits for the view.
	waiting := clock_timestamp();
	PERFORM ipamd.lock_wait_left(waiting, lock_wait_ms);
	PERFORM ipamd.ipam_view_define();
	PERFORM ipamd.lock_wait_left(waiting, lock_wait_ms);
	CREATE OR REPLACE VIEW public.ipam_conflict AS
		SELECT vrf, ip_address, subnet_id, kind, detail, first_seen_at
		FROM ipam_state.conflict;
	FOREACH t IN ARRAY ipamd.state_tables() LOOP
		PERFORM ipamd.lock_wait_left(waiting, lock_wait_ms);
		EXECUTE format('LOCK TABLE ipam_state.%I IN ACCESS EXCLUSIVE MODE',
		    t);
	END LOOP;

	ALTER SCHEMA ipam_state RENAME TO ipam_state_old;
	ALTER SCHEMA ipam_state_rebuild RENAME TO ipam_state;
	PERFORM ipamd.ipam_view_define();
	CREATE OR REPLACE VIEW public.ipam_conflict AS
		SELECT vrf, ip_address, subnet_id, kind, detail, first_seen_at
		FROM ipam_state.conflict;
	DROP SCHEMA ipam_state_old CASCADE;
	RETURN jsonb_build_object('changed', changed);
END
$$;

-- The swap as instances before function release 15 ask for it (one such
-- may be in the middle of a rebuild while a newer one brings these
-- functions in): waiting for its locks without end, as it did then.
CREATE OR REPLACE FUNCTION ipamd.rebuild_swap() RETURNS jsonb
LANGUAGE sql AS $$
	SELECT ipamd.rebuild_swap(0)
$$;
