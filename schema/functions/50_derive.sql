-- The derivation stage: the rows of the touched addresses, derived again
-- from the live entities (DESIGN's rules 1-8), merged into address with
-- audit rows, and the address-level conflicts refreshed.

-- The prefix lengths of the live subnets of one routing domain, by
-- family: a loose scan of the index subnet_length_idx (schema 008), one
-- probe per distinct length, whatever the number of subnets.
CREATE OR REPLACE FUNCTION ipamd.prefix_lengths(domain text)
RETURNS TABLE (fam integer, len integer)
LANGUAGE sql STABLE AS $$
	WITH RECURSIVE l AS (
		(SELECT family(s.cidr) AS fam, masklen(s.cidr) AS len
		FROM subnet s
		WHERE NOT s.deleted AND s.vrf = domain
		ORDER BY family(s.cidr), masklen(s.cidr)
		LIMIT 1)
		UNION ALL
		SELECT n.fam, n.len
		FROM l
		CROSS JOIN LATERAL (SELECT family(s.cidr) AS fam,
		    masklen(s.cidr) AS len
		    FROM subnet s
		    WHERE NOT s.deleted AND s.vrf = domain
			AND (family(s.cidr), masklen(s.cidr)) > (l.fam, l.len)
		    ORDER BY family(s.cidr), masklen(s.cidr)
		    LIMIT 1) n
	)
	SELECT l.fam, l.len FROM l
$$;

-- Derives the rows of the touched addresses again from the live entities,
-- merges them into address with audit rows, and refreshes the
-- address-level conflicts.  Returns counts and the conflicts it added.
CREATE OR REPLACE FUNCTION ipamd.derive(touched ipamd.touch[], with_audit boolean)
RETURNS jsonb
LANGUAGE plpgsql
-- Batches join thousands of rows: let hashes and sorts stay in memory.
SET work_mem = '64MB'
-- The plan of the statement below is chosen for each large batch (see
-- the body); what this function sets there ends with it.
SET plan_cache_mode = auto
AS $$
DECLARE
	result jsonb;
	meant bigint;
BEGIN
	-- The touched addresses number from one to a whole pool.  A generic
	-- plan guesses ten, which suits a small batch and saves its planning
	-- (about a millisecond); a large batch planned so runs its joins as
	-- nested loops, quadratic in its size (seconds for 10,000), so it
	-- gets a plan of its own, made with its real size.
	IF cardinality(touched) > 100 THEN
		SET LOCAL plan_cache_mode = force_custom_plan;
	END IF;
	WITH t AS (
		SELECT DISTINCT ON (u.vrf, u.ip) u.*
		FROM unnest(touched) AS u
		ORDER BY u.vrf, u.ip, u.seq DESC
	), lengths AS (
		-- The prefix lengths in use: each touched address is looked up
		-- once per length with an equality (hash) join, not a GiST probe.
		SELECT v.vrf, l.fam, l.len
		FROM (SELECT DISTINCT vrf FROM t) v
		CROSS JOIN LATERAL ipamd.prefix_lengths(v.vrf) l
	), keys AS MATERIALIZED (
		SELECT t.vrf, t.ip, m.len, network(set_masklen(t.ip, m.len)) AS net
		FROM t
		JOIN lengths m ON m.vrf = t.vrf AND m.fam = family(t.ip)
	), homes AS (
		-- Joined with the subnet table itself, not with a CTE of the
		-- candidate networks: a CTE's row count is a guess, and a
		-- nested loop over a side guessed at one row rescans the other
		-- for each of its real rows.
		SELECT DISTINCT ON (k.vrf, k.ip) k.vrf, k.ip, s.id, s.pool_first,
		    s.pool_last
		FROM keys k
		JOIN subnet s ON NOT s.deleted AND s.vrf = k.vrf AND s.cidr = k.net
		-- Ties go to the lowest id in ipamd.id_key()'s order (length,
		-- then bytes), spelled out: the function costs a microsecond a
		-- row, a tenth of this statement over 10,000 rows.
		ORDER BY k.vrf, k.ip, k.len DESC, octet_length(s.id),
		    s.id COLLATE "C"
	), held AS MATERIALIZED (
		SELECT x.vrf, x.ip_address AS ip, x.id, x.hostname, x.nic_mac,
		    x.device_type, x.manufacture, octet_length(x.id) AS rank_len,
		    x.id COLLATE "C" AS rank
		FROM server x
		JOIN t ON x.vrf = t.vrf AND x.ip_address = t.ip
		WHERE NOT x.deleted
	), holders AS (
		-- The server that holds each address: the lowest id.
		SELECT DISTINCT ON (h.vrf, h.ip) h.*
		FROM held h
		ORDER BY h.vrf, h.ip, h.rank_len, h.rank
	), shared AS (
		-- Addresses that several servers have: a conflict each.
		SELECT h.vrf, h.ip,
		    array_agg(h.id ORDER BY h.rank_len, h.rank) AS ids
		FROM held h
		GROUP BY h.vrf, h.ip
		HAVING count(*) > 1
	), cur AS MATERIALIZED (
		-- The rows as they stand, found once, one index probe each (a
		-- CTE of its own: inlined into the join below, it could be
		-- planned as a scan of the whole table).  The delete and the
		-- update below reach them by ctid, not by a second probe.  No
		-- one else writes address while the apply lock is held, so the
		-- ctid still names the row (ipamd.check_written below retries
		-- the batch if it does not).
		SELECT a.ctid AS tid, a.vrf, a.ip_address,
		    ipamd.audit_image(a.subnet_id, a.status, a.ip_type,
			a.server_id, a.hostname, a.mac_address, a.platform,
			a.manufacturer, a.description) AS was
		FROM address a
		JOIN t ON a.vrf = t.vrf AND a.ip_address = t.ip
	), d AS (
		SELECT t.vrf, t.ip, h.id AS subnet_id,
		    (h.id IS NOT NULL AND EXISTS (
			SELECT 1 FROM unnest(h.pool_first, h.pool_last) AS p(f, l)
			WHERE t.ip BETWEEN p.f AND p.l)) AS is_static,
		    hs.id AS server_id, hs.hostname, hs.nic_mac, hs.device_type,
		    hs.manufacture, sh.ids AS server_ids,
		    mk.status AS mark_status, mk.description AS mark_description,
		    c.tid, c.was, t.topic, t.part, t.off, t.requested_by AS by
		FROM t
		LEFT JOIN homes h ON h.vrf = t.vrf AND h.ip = t.ip
		LEFT JOIN holders hs ON hs.vrf = t.vrf AND hs.ip = t.ip
		LEFT JOIN shared sh ON sh.vrf = t.vrf AND sh.ip = t.ip
		LEFT JOIN mark mk ON NOT mk.deleted AND mk.vrf = t.vrf
		    AND mk.address = t.ip
		LEFT JOIN cur c ON c.vrf = t.vrf AND c.ip_address = t.ip
	), derived AS (
		-- Each touched address with its row as it stands (tid, was) and
		-- as derived (wanted: whether it has one at all), so that the
		-- writes below read this one set, not a join each.
		SELECT d.vrf, d.ip, d.tid, d.was,
		    d.subnet_id IS NOT NULL AND (d.is_static
			OR d.server_id IS NOT NULL OR d.mark_status IS NOT NULL)
			AS wanted,
		    d.subnet_id,
		    CASE WHEN d.mark_status = 'quarantine' THEN 'quarantine'
			WHEN d.server_id IS NOT NULL THEN 'allocated'
			WHEN d.mark_status = 'reserved' THEN 'reserved'
			ELSE 'available' END AS status,
		    CASE WHEN d.is_static THEN 'static' ELSE 'dhcp' END AS ip_type,
		    d.server_id, d.hostname, d.nic_mac AS mac_address,
		    d.device_type AS platform, d.manufacture AS manufacturer,
		    CASE WHEN d.mark_status = 'reserved' AND d.server_id IS NULL
			THEN d.mark_description END AS description,
		    d.topic, d.part, d.off, d.by
		FROM d
	), imaged AS (
		-- The derived row's image: what the update compares with the
		-- row as it stands, and what the audit keeps as after.
		SELECT w.*, ipamd.audit_image(w.subnet_id, w.status, w.ip_type,
		    w.server_id, w.hostname, w.mac_address, w.platform,
		    w.manufacturer, w.description) AS image
		FROM derived w
	), want AS (
		-- writes: the row as it stands is deleted or changed (image
		-- against image: a NULL field equals a NULL field).
		SELECT w.*, w.tid IS NOT NULL
		    AND (NOT w.wanted OR w.was IS DISTINCT FROM w.image) AS writes
		FROM imaged w
	), del AS (
		DELETE FROM address a
		USING want w
		WHERE a.ctid = w.tid AND NOT w.wanted AND w.writes
		RETURNING a.vrf, a.ip_address, w.was AS before, w.topic, w.part,
		    w.off, w.by
	), ins AS (
		INSERT INTO address AS a (vrf, ip_address, subnet_id, status,
		    ip_type, server_id, hostname, mac_address, platform,
		    manufacturer, description)
		SELECT w.vrf, w.ip, w.subnet_id, w.status, w.ip_type, w.server_id,
		    w.hostname, w.mac_address, w.platform, w.manufacturer,
		    w.description
		FROM want w
		WHERE w.wanted AND w.tid IS NULL
		RETURNING a.vrf, a.ip_address
	), upd AS (
		UPDATE address a
		SET subnet_id = w.subnet_id, status = w.status,
		    ip_type = w.ip_type, server_id = w.server_id,
		    hostname = w.hostname, mac_address = w.mac_address,
		    platform = w.platform, manufacturer = w.manufacturer,
		    description = w.description, updated_at = now()
		FROM want w
		WHERE a.ctid = w.tid AND w.wanted AND w.writes
		RETURNING a.vrf, a.ip_address, w.was AS before, w.image AS after,
		    w.topic, w.part, w.off, w.by
	), audit AS (
		-- A rebuild writes no history: its rows are not changes.
		INSERT INTO ipamd.audit_log (vrf, ip_address, action,
		    before_image, after_image, source_topic, source_partition,
		    source_offset, requested_by)
		SELECT changes.vrf, changes.ip_address, changes.action,
		    changes.before, changes.after, changes.topic, changes.part,
		    changes.off, coalesce(r.requested_by, changes.by) FROM (
		    SELECT del.vrf, del.ip_address, 'delete', del.before,
			NULL::ipamd.address_image, del.topic, del.part, del.off,
			del.by
		    FROM del
		    UNION ALL
		    SELECT ins.vrf, ins.ip_address, 'insert', NULL, w.image,
			w.topic, w.part, w.off, w.by
		    FROM ins JOIN want w
			ON w.vrf = ins.vrf AND w.ip = ins.ip_address
		    UNION ALL
		    SELECT upd.vrf, upd.ip_address, 'update', upd.before,
			upd.after, upd.topic, upd.part, upd.off, upd.by FROM upd)
		    AS changes(vrf, ip_address, action, before, after, topic,
			part, off, by)
		-- A change made by an operator's request names who asked: a
		-- mark request through its outcome, an import's server or
		-- subnet change through its event (by).
		LEFT JOIN ipamd.request r ON r.topic = changes.topic
		    AND r.partition = changes.part AND r."offset" = changes.off
		WHERE with_audit
		RETURNING 1
	), conflict_want AS (
		SELECT d.vrf, d.ip, 'several_servers' AS kind,
		    format('servers %s share %s; %s holds it',
			array_to_string(d.server_ids, ', '), host(d.ip),
			d.server_id) AS detail
		FROM d WHERE d.server_ids IS NOT NULL
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
		'detail', n.detail)) FROM conflict_new n), '[]'::jsonb)),
	    (SELECT count(*) FROM want w WHERE w.writes)
	INTO result, meant;
	PERFORM ipamd.check_written('address', meant,
	    (result->>'updated')::bigint + (result->>'deleted')::bigint);
	RETURN result;
END
$$;
