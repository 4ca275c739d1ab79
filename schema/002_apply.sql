-- The apply transaction: one call applies one batch of decoded events.
--
-- The functions name the state tables without a schema: apply_batch()
-- points search_path at the state it is asked to fill (ipam_state, or
-- ipam_state_rebuild during a rebuild) for its own transaction only.
--
-- The daemon collapses the events of one entity key within a batch into
-- at most two: "c", the first event carrying the batch's highest version
-- (an upsert or a versioned delete, applied only if newer than what is
-- stored), and "t", a tombstone (a Kafka null value: it deletes whatever is
-- stored), with where it stood relative to c ('before', 'after', 'only').
-- That is exactly what applying the events one by one would leave.

-- One touched address and the event that touched it last.
CREATE TYPE ipamd.touch AS (
	vrf	text,
	ip	inet,
	seq	bigint,
	topic	text,
	part	integer,
	off	bigint
);

-- The first address of a prefix, as a host address.
CREATE FUNCTION ipamd.first_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT set_masklen(prefix::inet,
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- The last address of a prefix, as a host address.
CREATE FUNCTION ipamd.last_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT set_masklen(broadcast(prefix),
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- Orders entity ids: shorter first, then by bytes (numeric order for
-- plain integers).
CREATE FUNCTION ipamd.id_key(id text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT int4send(octet_length(id)) || convert_to(id, 'UTF8')
$$;

-- The audit image of a row: its derived fields (vrf and address are
-- columns of the audit row; the sweeper's columns and timestamps are not
-- changes the derivation makes).  A plain SQL function, inlined.
CREATE FUNCTION ipamd.image(subnet_id text, status text, ip_type text,
    server_id text, hostname text, mac_address text, platform text,
    manufacturer text, description text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('subnet_id', subnet_id, 'status', status,
	    'ip_type', ip_type, 'server_id', server_id, 'hostname', hostname,
	    'mac_address', mac_address, 'platform', platform,
	    'manufacturer', manufacturer, 'description', description)
$$;

-- Derives the rows of the touched addresses again from the live entities,
-- merges them into address with audit rows, and refreshes the
-- address-level conflicts.  Returns counts and the conflicts it added.
CREATE FUNCTION ipamd.derive(touched ipamd.touch[], with_audit boolean)
RETURNS jsonb
LANGUAGE plpgsql
-- Batches join thousands of rows: let hashes and sorts stay in memory.
SET work_mem = '64MB'
AS $$
DECLARE
	result jsonb;
BEGIN
	WITH t AS (
		SELECT DISTINCT ON (u.vrf, u.ip) u.*
		FROM unnest(touched) AS u
		ORDER BY u.vrf, u.ip, u.seq DESC
	), lengths AS (
		-- The prefix lengths in use: each touched address is looked up
		-- once per length with an equality (hash) join, not a GiST probe.
		SELECT DISTINCT s.vrf, family(s.cidr) AS fam, masklen(s.cidr) AS len
		FROM subnet s
		WHERE NOT s.deleted AND s.vrf IN (SELECT DISTINCT vrf FROM t)
	), keys AS MATERIALIZED (
		SELECT t.vrf, t.ip, m.len, network(set_masklen(t.ip, m.len)) AS net
		FROM t
		JOIN lengths m ON m.vrf = t.vrf AND m.fam = family(t.ip)
	), homes AS (
		SELECT DISTINCT ON (k.vrf, k.ip) k.vrf, k.ip, s.id, s.pool_first,
		    s.pool_last
		FROM keys k
		JOIN subnet s ON NOT s.deleted AND s.vrf = k.vrf AND s.cidr = k.net
		ORDER BY k.vrf, k.ip, k.len DESC, ipamd.id_key(s.id)
	), holders AS (
		SELECT x.vrf, x.ip_address AS ip,
		    array_agg(x.id ORDER BY ipamd.id_key(x.id)) AS ids
		FROM server x
		JOIN t ON x.vrf = t.vrf AND x.ip_address = t.ip
		WHERE NOT x.deleted
		GROUP BY x.vrf, x.ip_address
	), d AS (
		SELECT t.vrf, t.ip, h.id AS subnet_id,
		    (h.id IS NOT NULL AND EXISTS (
			SELECT 1 FROM unnest(h.pool_first, h.pool_last) AS p(f, l)
			WHERE t.ip BETWEEN p.f AND p.l)) AS is_static,
		    sv.id AS server_id, sv.hostname, sv.nic_mac, sv.device_type,
		    sv.manufacture, hs.ids AS server_ids,
		    mk.status AS mark_status, mk.description AS mark_description,
		    t.topic, t.part, t.off
		FROM t
		LEFT JOIN homes h ON h.vrf = t.vrf AND h.ip = t.ip
		LEFT JOIN holders hs ON hs.vrf = t.vrf AND hs.ip = t.ip
		LEFT JOIN server sv ON sv.id = hs.ids[1]
		LEFT JOIN mark mk ON NOT mk.deleted AND mk.vrf = t.vrf
		    AND mk.address = t.ip
	), want AS (
		SELECT d.vrf, d.ip, d.subnet_id,
		    CASE WHEN d.mark_status = 'quarantine' THEN 'quarantine'
			WHEN d.server_id IS NOT NULL THEN 'allocated'
			WHEN d.mark_status = 'reserved' THEN 'reserved'
			ELSE 'available' END AS status,
		    CASE WHEN d.is_static THEN 'static' ELSE 'dhcp' END AS ip_type,
		    d.server_id, d.hostname, d.nic_mac AS mac_address,
		    d.device_type AS platform, d.manufacture AS manufacturer,
		    CASE WHEN d.mark_status = 'reserved' AND d.server_id IS NULL
			THEN d.mark_description END AS description,
		    d.topic, d.part, d.off
		FROM d
		WHERE d.subnet_id IS NOT NULL
		    AND (d.is_static OR d.server_id IS NOT NULL
			OR d.mark_status IS NOT NULL)
	), cur AS (
		SELECT a.*
		FROM address a
		JOIN t ON a.vrf = t.vrf AND a.ip_address = t.ip
	), del AS (
		DELETE FROM address a
		USING t
		WHERE a.vrf = t.vrf AND a.ip_address = t.ip
		    AND NOT EXISTS (SELECT 1 FROM want w
			WHERE w.vrf = t.vrf AND w.ip = t.ip)
		RETURNING a.vrf, a.ip_address,
		    CASE WHEN with_audit THEN ipamd.image(a.subnet_id, a.status,
			a.ip_type, a.server_id, a.hostname, a.mac_address,
			a.platform, a.manufacturer, a.description) END AS before,
		    t.topic, t.part, t.off
	), ins AS (
		INSERT INTO address AS a (vrf, ip_address, subnet_id, status,
		    ip_type, server_id, hostname, mac_address, platform,
		    manufacturer, description)
		SELECT w.vrf, w.ip, w.subnet_id, w.status, w.ip_type, w.server_id,
		    w.hostname, w.mac_address, w.platform, w.manufacturer,
		    w.description
		FROM want w
		WHERE NOT EXISTS (SELECT 1 FROM cur c
		    WHERE c.vrf = w.vrf AND c.ip_address = w.ip)
		RETURNING a.vrf, a.ip_address,
		    CASE WHEN with_audit THEN ipamd.image(a.subnet_id, a.status,
			a.ip_type, a.server_id, a.hostname, a.mac_address,
			a.platform, a.manufacturer, a.description) END AS after
	), upd AS (
		UPDATE address a
		SET subnet_id = w.subnet_id, status = w.status,
		    ip_type = w.ip_type, server_id = w.server_id,
		    hostname = w.hostname, mac_address = w.mac_address,
		    platform = w.platform, manufacturer = w.manufacturer,
		    description = w.description, updated_at = now()
		FROM want w, cur c
		WHERE a.vrf = w.vrf AND a.ip_address = w.ip
		    AND c.vrf = w.vrf AND c.ip_address = w.ip
		    AND (c.subnet_id, c.status, c.ip_type, c.server_id,
			c.hostname, c.mac_address, c.platform, c.manufacturer,
			c.description)
			IS DISTINCT FROM
			(w.subnet_id, w.status, w.ip_type, w.server_id,
			w.hostname, w.mac_address, w.platform, w.manufacturer,
			w.description)
		RETURNING a.vrf, a.ip_address,
		    CASE WHEN with_audit THEN ipamd.image(c.subnet_id, c.status,
			c.ip_type, c.server_id, c.hostname, c.mac_address,
			c.platform, c.manufacturer, c.description) END AS before,
		    CASE WHEN with_audit THEN ipamd.image(a.subnet_id, a.status,
			a.ip_type, a.server_id, a.hostname, a.mac_address,
			a.platform, a.manufacturer, a.description) END AS after,
		    w.topic, w.part, w.off
	), audit AS (
		-- A rebuild writes no history: its rows are not changes.
		INSERT INTO ipamd.audit (vrf, ip_address, action, before, after,
		    source_topic, source_partition, source_offset)
		SELECT * FROM (
		    SELECT del.vrf, del.ip_address, 'delete', del.before,
			NULL::jsonb, del.topic, del.part, del.off FROM del
		    UNION ALL
		    SELECT ins.vrf, ins.ip_address, 'insert', NULL, ins.after,
			w.topic, w.part, w.off
		    FROM ins JOIN want w
			ON w.vrf = ins.vrf AND w.ip = ins.ip_address
		    UNION ALL
		    SELECT upd.vrf, upd.ip_address, 'update', upd.before,
			upd.after, upd.topic, upd.part, upd.off FROM upd) changes
		WHERE with_audit
		RETURNING 1
	), conflict_want AS (
		SELECT d.vrf, d.ip, 'several_servers' AS kind,
		    format('servers %s share %s; %s holds it',
			array_to_string(d.server_ids, ', '), host(d.ip),
			d.server_id) AS detail
		FROM d WHERE cardinality(d.server_ids) > 1
		UNION ALL
		SELECT d.vrf, d.ip,
		    'server_on_' || d.mark_status,
		    format('server %s has %s, which is marked %s', d.server_id,
			host(d.ip), d.mark_status)
		FROM d WHERE d.server_id IS NOT NULL AND d.mark_status IS NOT NULL
	), conflict_gone AS (
		DELETE FROM conflict c
		USING t
		WHERE c.vrf = t.vrf AND c.ip_address = t.ip
		    AND c.kind IN ('several_servers', 'server_on_reserved',
			'server_on_quarantine')
		    AND NOT EXISTS (SELECT 1 FROM conflict_want w
			WHERE w.vrf = c.vrf AND w.ip = c.ip_address
			    AND w.kind = c.kind)
		RETURNING 1
	), conflict_new AS (
		-- Keys that stay are updated in place, so that the delete above
		-- and this upsert never touch the same row.
		INSERT INTO conflict AS c (vrf, ip_address, kind, detail)
		SELECT w.vrf, w.ip, w.kind, w.detail
		FROM conflict_want w
		ON CONFLICT (vrf, (coalesce(host(ip_address), '')),
		    (coalesce(subnet_id, '')), kind)
		DO UPDATE SET detail = excluded.detail
		WHERE c.detail <> excluded.detail
		RETURNING c.vrf, c.ip_address, c.kind, c.detail
	)
	SELECT jsonb_build_object(
	    'touched', (SELECT count(*) FROM t),
	    'inserted', (SELECT count(*) FROM ins),
	    'updated', (SELECT count(*) FROM upd),
	    'deleted', (SELECT count(*) FROM del),
	    'audited', (SELECT count(*) FROM audit),
	    'conflicts_resolved', (SELECT count(*) FROM conflict_gone),
	    'conflicts', coalesce((SELECT jsonb_agg(jsonb_build_object(
		'vrf', n.vrf, 'address', host(n.ip_address), 'kind', n.kind,
		'detail', n.detail)) FROM conflict_new n), '[]'::jsonb))
	INTO result;
	RETURN result;
END
$$;

-- Refreshes the subnet-level conflicts (duplicate subnets, pool addresses
-- shadowed by a more specific nested subnet) of some routing domains.
-- Returns the conflicts it added.
CREATE FUNCTION ipamd.refresh_subnet_conflicts(vrfs text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	result jsonb;
BEGIN
	WITH live AS (
		SELECT * FROM subnet
		WHERE NOT deleted AND vrf = ANY (vrfs)
	), conflict_want AS (
		SELECT s.vrf, s.id AS subnet_id, 'duplicate_subnet' AS kind,
		    format('subnet %s has the same cidr %s as subnet %s, which is '
			'home to its addresses', s.id, s.cidr, first.id) AS detail
		FROM live s
		JOIN LATERAL (SELECT o.id FROM live o
		    WHERE o.cidr = s.cidr AND o.vrf = s.vrf
		    ORDER BY ipamd.id_key(o.id) LIMIT 1) first ON first.id <> s.id
		UNION ALL
		SELECT s.vrf, s.id, 'pool_shadowed',
		    format('static pool %s-%s of subnet %s overlaps more specific '
			'subnet %s (%s), which is home to those addresses',
			host(p.f), host(p.l), s.id, n.id, n.cidr)
		FROM live s
		CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last) AS p(f, l)
		JOIN live n ON n.vrf = s.vrf AND n.cidr << s.cidr
		    AND p.f <= ipamd.last_addr(n.cidr)
		    AND p.l >= ipamd.first_addr(n.cidr)
	), conflict_gone AS (
		DELETE FROM conflict c
		WHERE c.vrf = ANY (vrfs)
		    AND c.kind IN ('duplicate_subnet', 'pool_shadowed')
		    AND NOT EXISTS (SELECT 1 FROM conflict_want w
			WHERE w.vrf = c.vrf AND w.subnet_id = c.subnet_id
			    AND w.kind = c.kind)
		RETURNING 1
	), conflict_new AS (
		-- One row per subnet and kind: the first detail names one case.
		INSERT INTO conflict AS c (vrf, subnet_id, kind, detail)
		SELECT DISTINCT ON (w.vrf, w.subnet_id, w.kind)
		    w.vrf, w.subnet_id, w.kind, w.detail
		FROM conflict_want w
		ORDER BY w.vrf, w.subnet_id, w.kind, w.detail
		ON CONFLICT (vrf, (coalesce(host(ip_address), '')),
		    (coalesce(subnet_id, '')), kind)
		DO UPDATE SET detail = excluded.detail
		WHERE c.detail <> excluded.detail
		RETURNING c.vrf, c.subnet_id, c.kind, c.detail
	)
	SELECT coalesce(jsonb_agg(jsonb_build_object('vrf', n.vrf,
	    'subnet', n.subnet_id, 'kind', n.kind, 'detail', n.detail)),
	    '[]'::jsonb)
	INTO result
	FROM conflict_new n
	WHERE (SELECT count(*) FROM conflict_gone) >= 0;
	RETURN result;
END
$$;

-- Analyzes the state tables of a schema that changed much since their last
-- analyze.  A table filled from empty (a first start, a rebuild) otherwise
-- keeps the planner's picture of an empty table for minutes, and the apply
-- statements then pick plans that are slower by an order of magnitude.
CREATE FUNCTION ipamd.analyze_grown(target text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT c.relname
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = target
		    AND c.relname IN ('subnet', 'server', 'mark', 'address')
		    -- relpages is what the last analyze saw; the file's size is
		    -- now (the statistics counters lag behind a busy session).
		    AND pg_relation_size(c.oid) / 8192 > 2 * greatest(c.relpages, 0) + 16
	LOOP
		EXECUTE format('ANALYZE %I.%I', target, r.relname);
	END LOOP;
END
$$;

-- Applies one batch: offsets (compare-and-set), dead letters, entity
-- changes, the derived rows and conflicts.  It runs as one statement, so
-- it commits or rolls back whole.  Raises SQLSTATE IPM01 when an offset
-- has moved away from what the caller read (another consumer owns it now).
CREATE FUNCTION ipamd.apply_batch(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '64MB'
AS $$
DECLARE
	group_name text := batch->>'group';
	target text := coalesce(batch->>'schema', 'ipam_state');
	with_audit boolean := coalesce((batch->>'audit')::boolean, true);
	with_derive boolean := coalesce((batch->>'derive')::boolean, true);
	o record;
	moved integer;
	touched ipamd.touch[] := '{}';
	more ipamd.touch[];
	subnet_vrfs text[];
	applied bigint := 0;
	stale bigint := 0;
	n_applied bigint;
	n_stale bigint;
	derived jsonb;
	subnet_conflicts jsonb := '[]';
	dead bigint;
	entities jsonb := '{}';
BEGIN
	IF target NOT IN ('ipam_state', 'ipam_state_rebuild') THEN
		RAISE EXCEPTION 'unknown state schema %', target;
	END IF;
	PERFORM set_config('search_path', target || ', ipamd, public', true);

	-- One apply at a time, whoever runs it: a derived row depends on
	-- entities of every topic and partition, so two applies running side
	-- by side (two instances, or a killed instance's statement still
	-- running) would each miss the other's changes.  Every statement
	-- below takes a fresh snapshot, after the lock, so it sees what the
	-- previous holder committed; the offsets are checked after it too.
	PERFORM pg_advisory_xact_lock(7369747);

	FOR o IN SELECT * FROM jsonb_to_recordset(coalesce(batch->'offsets',
	    '[]')) AS x(topic text, part integer, expected bigint, next bigint)
	LOOP
		IF o.expected IS NULL THEN
			INSERT INTO consumer_offset
			    (group_id, topic, partition, next_offset)
			VALUES (group_name, o.topic, o.part, o.next)
			ON CONFLICT DO NOTHING;
		ELSE
			UPDATE consumer_offset
			SET next_offset = o.next, updated_at = now()
			WHERE group_id = group_name AND topic = o.topic
			    AND partition = o.part AND next_offset = o.expected;
		END IF;
		GET DIAGNOSTICS moved = ROW_COUNT;
		IF moved <> 1 THEN
			RAISE EXCEPTION 'offset of %[%] is no longer at %',
			    o.topic, o.part, coalesce(o.expected::text, 'the start')
			    USING ERRCODE = 'IPM01',
			    HINT = 'another consumer has taken the partition';
		END IF;
	END LOOP;

	INSERT INTO ipamd.dead_letter (topic, partition, "offset", key, value,
	    headers, reason)
	SELECT x.topic, x.part, x.off, decode(x.key, 'hex'),
	    decode(x.value, 'hex'), x.headers, x.reason
	FROM jsonb_to_recordset(coalesce(batch->'dead', '[]')) AS x(topic text,
	    part integer, off bigint, key text, value text, headers jsonb,
	    reason text)
	ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS dead = ROW_COUNT;

	-- Subnets.
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(coalesce(batch->'subnets', '[]'))
		    AS x(seq bigint, id text, c_op text, v bigint, t text,
			vrf text, name text, cidr cidr, pool_first inet[],
			pool_last inet[], ping boolean, topic text, part integer,
			off bigint)
	), dec AS (
		SELECT inp.*, s.id IS NOT NULL AS existed, s.version AS old_v,
		    s.deleted AS old_deleted, s.vrf AS old_vrf, s.cidr AS old_cidr,
		    CASE WHEN inp.t IN ('after', 'only') THEN
			    CASE WHEN s.id IS NULL AND inp.v IS NULL THEN 'none'
			    ELSE 'tomb' END
			WHEN inp.c_op IS NOT NULL
			    AND (s.id IS NULL OR inp.v > s.version) THEN inp.c_op
			WHEN inp.t = 'before' AND s.id IS NOT NULL THEN 'tomb'
			ELSE 'none' END AS action
		FROM inp LEFT JOIN subnet s ON s.id = inp.id
	), up AS (
		INSERT INTO subnet AS s (id, version, deleted, vrf, name,
		    cidr, pool_first, pool_last, ping, source_topic,
		    source_partition, source_offset, updated_at)
		SELECT id,
		    CASE WHEN action = 'tomb' THEN greatest(old_v, v) ELSE v END,
		    action <> 'upsert',
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END,
		    CASE WHEN action = 'upsert' THEN name END,
		    CASE WHEN action = 'upsert' THEN cidr END,
		    CASE WHEN action = 'upsert' THEN coalesce(pool_first, '{}')
			ELSE '{}' END,
		    CASE WHEN action = 'upsert' THEN coalesce(pool_last, '{}')
			ELSE '{}' END,
		    coalesce(ping, true), topic, part, off, now()
		FROM dec WHERE action <> 'none'
		ON CONFLICT (id) DO UPDATE SET version = excluded.version,
		    deleted = excluded.deleted, vrf = excluded.vrf,
		    name = excluded.name, cidr = excluded.cidr,
		    pool_first = excluded.pool_first,
		    pool_last = excluded.pool_last, ping = excluded.ping,
		    source_topic = excluded.source_topic,
		    source_partition = excluded.source_partition,
		    source_offset = excluded.source_offset,
		    updated_at = excluded.updated_at
		RETURNING 1
	), regions AS (
		SELECT old_vrf AS vrf, old_cidr AS cidr, seq, topic, part, off
		FROM dec
		WHERE action <> 'none' AND existed AND NOT old_deleted
		UNION ALL
		SELECT coalesce(vrf, ''), cidr, seq, topic, part, off
		FROM dec WHERE action = 'upsert'
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT count(*) FROM dec WHERE action = 'none'),
	    (SELECT coalesce(array_agg(ROW(r.vrf, r.cidr::inet, r.seq, r.topic,
		r.part, r.off)::ipamd.touch), '{}') FROM regions r),
	    (SELECT count(*) FROM up)
	INTO n_applied, n_stale, more, moved;
	applied := applied + n_applied;
	entities := entities || jsonb_build_object('subnet',
	    jsonb_build_array(n_applied, n_stale));
	stale := stale + n_stale;

	-- Servers.
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(coalesce(batch->'servers', '[]'))
		    AS x(seq bigint, id text, c_op text, v bigint, t text,
			vrf text, hostname text, ip inet, mac text,
			device_type text, manufacture text, topic text,
			part integer, off bigint)
	), dec AS (
		SELECT inp.*, s.id IS NOT NULL AS existed, s.version AS old_v,
		    s.deleted AS old_deleted, s.vrf AS old_vrf,
		    s.ip_address AS old_ip,
		    CASE WHEN inp.t IN ('after', 'only') THEN
			    CASE WHEN s.id IS NULL AND inp.v IS NULL THEN 'none'
			    ELSE 'tomb' END
			WHEN inp.c_op IS NOT NULL
			    AND (s.id IS NULL OR inp.v > s.version) THEN inp.c_op
			WHEN inp.t = 'before' AND s.id IS NOT NULL THEN 'tomb'
			ELSE 'none' END AS action
		FROM inp LEFT JOIN server s ON s.id = inp.id
	), up AS (
		INSERT INTO server AS s (id, version, deleted, vrf, hostname,
		    ip_address, nic_mac, device_type, manufacture, source_topic,
		    source_partition, source_offset, updated_at)
		SELECT id,
		    CASE WHEN action = 'tomb' THEN greatest(old_v, v) ELSE v END,
		    action <> 'upsert',
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END,
		    CASE WHEN action = 'upsert' THEN hostname END,
		    CASE WHEN action = 'upsert' THEN ip END,
		    CASE WHEN action = 'upsert' THEN mac END,
		    CASE WHEN action = 'upsert' THEN device_type END,
		    CASE WHEN action = 'upsert' THEN manufacture END,
		    topic, part, off, now()
		FROM dec WHERE action <> 'none'
		ON CONFLICT (id) DO UPDATE SET version = excluded.version,
		    deleted = excluded.deleted, vrf = excluded.vrf,
		    hostname = excluded.hostname,
		    ip_address = excluded.ip_address, nic_mac = excluded.nic_mac,
		    device_type = excluded.device_type,
		    manufacture = excluded.manufacture,
		    source_topic = excluded.source_topic,
		    source_partition = excluded.source_partition,
		    source_offset = excluded.source_offset,
		    updated_at = excluded.updated_at
		RETURNING 1
	), addrs AS (
		SELECT old_vrf AS vrf, old_ip AS ip, seq, topic, part, off
		FROM dec
		WHERE action <> 'none' AND existed AND NOT old_deleted
		    AND old_ip IS NOT NULL
		UNION ALL
		SELECT coalesce(vrf, ''), ip, seq, topic, part, off
		FROM dec WHERE action = 'upsert' AND ip IS NOT NULL
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT count(*) FROM dec WHERE action = 'none'),
	    (SELECT coalesce(array_agg(ROW(a.vrf, a.ip, a.seq, a.topic, a.part,
		a.off)::ipamd.touch), '{}') FROM addrs a),
	    (SELECT count(*) FROM up)
	INTO n_applied, n_stale, touched, moved;
	applied := applied + n_applied;
	entities := entities || jsonb_build_object('server',
	    jsonb_build_array(n_applied, n_stale));
	stale := stale + n_stale;

	-- Marks.
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(coalesce(batch->'marks', '[]'))
		    AS x(seq bigint, id text, c_op text, v bigint, t text,
			vrf text, address inet, status text, description text,
			topic text, part integer, off bigint)
	), dec AS (
		SELECT inp.*, s.id IS NOT NULL AS existed, s.version AS old_v,
		    s.deleted AS old_deleted, s.vrf AS old_vrf,
		    s.address AS old_address,
		    CASE WHEN inp.t IN ('after', 'only') THEN
			    CASE WHEN s.id IS NULL AND inp.v IS NULL THEN 'none'
			    ELSE 'tomb' END
			WHEN inp.c_op IS NOT NULL
			    AND (s.id IS NULL OR inp.v > s.version) THEN inp.c_op
			WHEN inp.t = 'before' AND s.id IS NOT NULL THEN 'tomb'
			ELSE 'none' END AS action
		FROM inp LEFT JOIN mark s ON s.id = inp.id
	), up AS (
		INSERT INTO mark AS s (id, version, deleted, vrf, address,
		    status, description, source_topic, source_partition,
		    source_offset, updated_at)
		SELECT id,
		    CASE WHEN action = 'tomb' THEN greatest(old_v, v) ELSE v END,
		    action <> 'upsert',
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END,
		    CASE WHEN action = 'upsert' THEN address END,
		    CASE WHEN action = 'upsert' THEN status END,
		    CASE WHEN action = 'upsert' THEN description END,
		    topic, part, off, now()
		FROM dec WHERE action <> 'none'
		ON CONFLICT (id) DO UPDATE SET version = excluded.version,
		    deleted = excluded.deleted, vrf = excluded.vrf,
		    address = excluded.address, status = excluded.status,
		    description = excluded.description,
		    source_topic = excluded.source_topic,
		    source_partition = excluded.source_partition,
		    source_offset = excluded.source_offset,
		    updated_at = excluded.updated_at
		RETURNING 1
	), addrs AS (
		SELECT old_vrf AS vrf, old_address AS ip, seq, topic, part, off
		FROM dec
		WHERE action <> 'none' AND existed AND NOT old_deleted
		    AND old_address IS NOT NULL
		UNION ALL
		SELECT coalesce(vrf, ''), address, seq, topic, part, off
		FROM dec WHERE action = 'upsert'
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT count(*) FROM dec WHERE action = 'none'),
	    touched || (SELECT coalesce(array_agg(ROW(a.vrf, a.ip, a.seq,
		a.topic, a.part, a.off)::ipamd.touch), '{}') FROM addrs a),
	    (SELECT count(*) FROM up)
	INTO n_applied, n_stale, touched, moved;
	applied := applied + n_applied;
	entities := entities || jsonb_build_object('mark',
	    jsonb_build_array(n_applied, n_stale));
	stale := stale + n_stale;

	-- A changed subnet touches every address of its old and new cidr that
	-- could hold a row: rows already there, live servers and marks, and
	-- the pool addresses of every live subnet overlapping it.
	-- A rebuild stores the entities only and derives every row once at
	-- the end (ipamd.derive_all): the same rows, far less work.
	IF NOT with_derive THEN
		PERFORM ipamd.analyze_grown(target);
		RETURN jsonb_build_object('applied', applied, 'stale', stale,
		    'dead', dead, 'entities', entities, 'conflicts', '[]'::jsonb);
	END IF;

	IF cardinality(more) > 0 THEN
		WITH r AS (
			SELECT u.vrf, u.ip::cidr AS cidr, u.seq, u.topic, u.part,
			    u.off
			FROM unnest(more) AS u
		), found AS (
			SELECT r.vrf, a.ip_address AS ip, r.seq, r.topic, r.part,
			    r.off
			FROM r JOIN address a
			    ON a.vrf = r.vrf AND a.ip_address <<= r.cidr
			UNION ALL
			SELECT r.vrf, x.ip_address, r.seq, r.topic, r.part, r.off
			FROM r JOIN server x
			    ON NOT x.deleted AND x.vrf = r.vrf
				AND x.ip_address <<= r.cidr
			UNION ALL
			SELECT r.vrf, m.address, r.seq, r.topic, r.part, r.off
			FROM r JOIN mark m
			    ON NOT m.deleted AND m.vrf = r.vrf
				AND m.address <<= r.cidr
			UNION ALL
			SELECT r.vrf, c.f + g.i, r.seq, r.topic, r.part, r.off
			FROM r
			JOIN subnet s
			    ON NOT s.deleted AND s.vrf = r.vrf AND s.cidr && r.cidr
			CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last)
			    AS p(f, l)
			CROSS JOIN LATERAL (SELECT
			    greatest(p.f, ipamd.first_addr(r.cidr)) AS f,
			    least(p.l, ipamd.last_addr(r.cidr)) AS l) c
			CROSS JOIN LATERAL generate_series(0::bigint, c.l - c.f)
			    AS g(i)
			WHERE c.f <= c.l
		)
		SELECT touched || coalesce(array_agg(ROW(f.vrf, f.ip, f.seq,
		    f.topic, f.part, f.off)::ipamd.touch), '{}')
		INTO touched
		FROM found f;

		SELECT array_agg(DISTINCT u.vrf) INTO subnet_vrfs
		FROM unnest(more) AS u;
		subnet_conflicts := ipamd.refresh_subnet_conflicts(subnet_vrfs);
	END IF;

	derived := ipamd.derive(touched, with_audit);
	PERFORM ipamd.analyze_grown(target);
	RETURN derived || jsonb_build_object('applied', applied,
	    'stale', stale, 'dead', dead, 'entities', entities,
	    'conflicts', (derived->'conflicts') || subnet_conflicts);
END
$$;
