-- The expansion stage: a changed subnet touches every address of its old
-- and new cidr that could hold a row: rows already there, live servers
-- and marks, and the pool addresses of every live subnet overlapping it.
-- Each region is looked up on its own (LATERAL), as an address range the
-- btree indexes on (vrf, address) serve, and its overlapping subnets
-- through the GiST index on cidr: the cost follows the region, not the
-- tables (a join of all regions at once was planned as a scan of every
-- address row).
--
-- Most addresses of a new or grown pool are plain: no row, no server, no
-- mark, no more specific subnet.  Their row is known without the
-- derivation's lookups (the subnet's, available, static), so they are
-- written here, straight from the pool's ranges, and audited as runs: one
-- audit row for each run of consecutive plain addresses, with the image
-- built once per subnet (schema/012_audit_ranges.sql); the derivation
-- gets only the others.  A plain
-- address is one of a subnet met by one region only (so the event that
-- made it is that region's, as the derivation would choose), with no
-- other subnet of the same cidr (which could be its home instead), and
-- no more specific subnet around holding it.  Each of these is decided
-- for all the subnets around at once (window functions, one sort), so a
-- batch of thousands of new subnets writes their pools as plain rows
-- too.  Past 16 subnets around the regions, the addresses of a subnet
-- that holds a more specific one go to the derivation, which looks each
-- one up (the check of each address against the subnets nested in its
-- own is a scan of those around).

-- The arguments and the result changed (the plain pool rows): the old
-- signature goes first.
DROP FUNCTION IF EXISTS ipamd.expand_regions(ipamd.touch[]);

-- Expands the regions of a batch.  others are the addresses the batch's
-- other changes touched (they go to the derivation whatever they are).
-- Writes the plain pool rows (and their audit rows when with_audit) and
-- returns the addresses left for the derivation, and how many rows it
-- wrote.
CREATE OR REPLACE FUNCTION ipamd.expand_regions(regions ipamd.touch[],
    others ipamd.touch[], with_audit boolean, OUT touched ipamd.touch[],
    OUT filled bigint)
LANGUAGE plpgsql AS $$
BEGIN
	-- A region given twice (a subnet's old and new cidr alike, or two
	-- subnets of one cidr) is looked at once, as the latest event: the
	-- derivation keeps an address's latest event too.
	regions := ARRAY(SELECT DISTINCT ON (u.vrf, u.ip::cidr) u
	    FROM unnest(regions) AS u
	    ORDER BY u.vrf, u.ip::cidr, u.seq DESC);
	WITH r AS (
		SELECT u.vrf, u.ip::cidr AS cidr, ipamd.first_addr(u.ip::cidr) AS lo,
		    ipamd.last_addr(u.ip::cidr) AS hi, u.seq, u.topic, u.part,
		    u.off, u.requested_by AS by
		FROM unnest(regions) AS u
	), held AS MATERIALIZED (
		-- What the derivation looks at whatever the pools: rows, live
		-- servers and marks inside the regions.
		SELECT r.vrf, x.ip, r.seq, r.topic, r.part, r.off, r.by
		FROM r
		CROSS JOIN LATERAL (
			SELECT a.ip_address AS ip FROM address a
			WHERE a.vrf = r.vrf AND a.ip_address BETWEEN r.lo AND r.hi
			UNION ALL
			SELECT s.ip_address FROM server s
			WHERE NOT s.deleted AND s.vrf = r.vrf
			    AND s.ip_address BETWEEN r.lo AND r.hi
			UNION ALL
			SELECT m.address FROM mark m
			WHERE NOT m.deleted AND m.vrf = r.vrf
			    AND m.address BETWEEN r.lo AND r.hi
		) x
	), around AS MATERIALIZED (
		-- The live subnets overlapping each region.
		SELECT r.vrf, r.lo, r.hi, r.seq, r.topic, r.part, r.off, r.by,
		    s.id,
		    s.cidr, ipamd.first_addr(s.cidr) AS s_lo,
		    ipamd.last_addr(s.cidr) AS s_hi, s.pool_first, s.pool_last
		FROM r
		CROSS JOIN LATERAL (SELECT s.id, s.cidr, s.pool_first, s.pool_last
		    FROM subnet s
		    WHERE NOT s.deleted AND s.vrf = r.vrf AND s.cidr && r.cidr
		    OFFSET 0) s
	), nesting AS (
		-- Whether a more specific subnet around lies inside each one.
		-- Cidrs nest or lie apart: in the order of first address, then
		-- prefix length, the subnet after one starts inside it exactly
		-- when some subnet does (a second subnet of the same cidr counts
		-- too, which only keeps both from being plain, as below).
		SELECT n.vrf, n.id, coalesce(lead(n.s_lo) OVER (
		    PARTITION BY n.vrf ORDER BY n.s_lo, masklen(n.cidr), n.id)
		    <= n.s_hi, false) AS nested
		FROM (SELECT DISTINCT b.vrf, b.id, b.cidr, b.s_lo, b.s_hi
		    FROM around b) n
	), sole AS MATERIALIZED (
		-- The subnets whose pool addresses can be plain: met by one
		-- region, alone with their cidr, and holding no more specific
		-- subnet unless few are around; and whether one may take some
		-- of their addresses.
		SELECT a.*, count(*) OVER (PARTITION BY a.vrf, a.id) = 1
		    AND min(a.id) OVER (PARTITION BY a.vrf, a.cidr)
			= max(a.id) OVER (PARTITION BY a.vrf, a.cidr)
		    AND (NOT n.nested OR (SELECT count(*) FROM around) <= 16)
		    AS sole, n.nested,
		    ipamd.audit_image(a.id, 'available', 'static', NULL, NULL, NULL,
			NULL, NULL, NULL) AS image
		FROM around a
		JOIN nesting n ON n.vrf = a.vrf AND n.id = a.id
	), segs AS MATERIALIZED (
		-- Their pool ranges inside the regions.
		SELECT a.vrf, a.id, a.cidr, a.image, a.seq, a.topic, a.part,
		    a.off, a.by, a.sole, a.nested, c.f, c.l
		FROM sole a
		CROSS JOIN LATERAL unnest(a.pool_first, a.pool_last) AS p(f, l)
		CROSS JOIN LATERAL (SELECT greatest(p.f, a.lo) AS f,
		    least(p.l, a.hi) AS l) c
		WHERE c.f <= c.l
	), pool AS (
		-- And their addresses.
		SELECT a.vrf, a.f + g.i AS ip, a.seq, a.topic, a.part, a.off,
		    a.by, a.id, a.f, a.sole AS whole,
		    a.sole AND (NOT a.nested OR NOT EXISTS (SELECT 1 FROM around b
			WHERE b.vrf = a.vrf AND masklen(b.cidr) > masklen(a.cidr)
			    AND a.f + g.i BETWEEN b.s_lo AND b.s_hi)) AS sole
		FROM segs a
		CROSS JOIN LATERAL generate_series(0::bigint, a.l - a.f) AS g(i)
	), classed AS MATERIALIZED (
		-- Plain: no row, server, mark, other change of this batch or
		-- more specific subnet has the address.
		SELECT p.*, p.sole AND h.ip IS NULL AND o.ip IS NULL AS plain
		FROM pool p
		LEFT JOIN (SELECT DISTINCT x.vrf, x.ip FROM held x) h
		    ON h.vrf = p.vrf AND h.ip = p.ip
		LEFT JOIN (SELECT DISTINCT x.vrf, x.ip FROM unnest(others) AS x) o
		    ON o.vrf = p.vrf AND o.ip = p.ip
	), written AS (
		INSERT INTO address (vrf, ip_address, subnet_id, status, ip_type)
		SELECT p.vrf, p.ip, p.id, 'available', 'static'
		FROM classed p WHERE p.plain
	), cuts AS (
		-- The addresses of a plain pool's ranges that are not plain, as
		-- offsets in their range, and the ends of every such range.
		SELECT p.vrf, p.id, p.f, p.ip - p.f AS k
		FROM classed p WHERE NOT p.plain AND p.whole AND with_audit
		UNION ALL
		SELECT s.vrf, s.id, s.f, k
		FROM segs s
		CROSS JOIN LATERAL (VALUES (-1::bigint), (s.l - s.f + 1)) AS e(k)
		WHERE s.sole AND with_audit
	), runs AS (
		-- The runs of plain addresses between them.
		SELECT c.vrf, c.id, c.f, c.k + 1 AS lo, lead(c.k) OVER (
		    PARTITION BY c.vrf, c.id, c.f ORDER BY c.k) - 1 AS hi
		FROM cuts c
	), audited AS (
		-- A run of a pool's plain addresses is one audit row, with the
		-- pool's image built once above (schema/012_audit_ranges.sql).
		INSERT INTO ipamd.audit_log (vrf, ip_address, ip_last, action,
		    before_image, after_image, source_topic, source_partition,
		    source_offset, requested_by)
		SELECT s.vrf, s.f + r.lo,
		    CASE WHEN r.hi > r.lo THEN s.f + r.hi END, 'insert', NULL,
		    s.image, s.topic, s.part, s.off, s.by
		FROM runs r
		JOIN segs s ON s.vrf = r.vrf AND s.id = r.id AND s.f = r.f
		WHERE r.hi >= r.lo
	), rest AS (
		-- An address of a more specific subnet's pool may also come
		-- from a wider one: the derivation finds its row as written.
		SELECT h.vrf, h.ip, h.seq, h.topic, h.part, h.off, h.by FROM held h
		UNION ALL
		SELECT p.vrf, p.ip, p.seq, p.topic, p.part, p.off, p.by
		FROM classed p
		WHERE NOT p.plain
	)
	SELECT (SELECT coalesce(array_agg(ROW(f.vrf, f.ip, f.seq, f.topic,
		f.part, f.off, f.by)::ipamd.touch), '{}') FROM rest f),
	    (SELECT count(*) FROM classed p WHERE p.plain)
	INTO touched, filled;
END
$$;
