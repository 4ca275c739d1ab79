-- The subnet-level conflicts: duplicate subnets and pool addresses
-- shadowed by a more specific nested subnet.  They are refreshed for the
-- subnets a batch can have changed them for, not for a whole routing
-- domain: every lookup below is an index probe (the (vrf, cidr) btree for
-- duplicates, the GiST on cidr for nested subnets), so a subnet change
-- costs what it changes, whatever the number of subnets.  The probes are
-- LATERAL subqueries fenced with OFFSET 0, one per changed subnet: as
-- plain joins (or subqueries the planner pulls up into one), a batch of
-- many changed subnets was planned as a join of them with every subnet
-- of the domain, filtered pair by pair (5,000 new subnets: 25 million
-- pairs, 2.4 s for each of the two statements).

-- The subnets whose subnet-level conflicts a change of these regions
-- (old and new cidrs of changed subnets) can change: those whose cidr
-- holds a region or equals it.  A subnet nested inside a region keeps its
-- conflicts: they depend on subnets nested in it.
CREATE OR REPLACE FUNCTION ipamd.subnets_around(regions ipamd.touch[])
RETURNS text[]
LANGUAGE sql STABLE AS $$
	SELECT coalesce(array_agg(DISTINCT s.id), '{}')
	FROM unnest(regions) AS r
	CROSS JOIN LATERAL (SELECT s.id FROM subnet s
	    WHERE NOT s.deleted AND s.vrf = r.vrf
		AND s.cidr >>= r.ip::cidr OFFSET 0) s
$$;

-- Refreshes the subnet-level conflicts of some subnets (and drops those
-- of subnets no longer live).  Returns the conflicts it added.
CREATE OR REPLACE FUNCTION ipamd.refresh_subnet_conflicts(ids text[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	result jsonb;
BEGIN
	WITH s AS (
		SELECT * FROM subnet WHERE id = ANY (ids) AND NOT deleted
	), conflict_want AS (
		SELECT s.vrf, s.id AS subnet_id, 'duplicate_subnet' AS kind,
		    format('subnet %s has the same cidr %s as subnet %s, which is '
			'home to its addresses', s.id, s.cidr, first.id) AS detail
		FROM s
		JOIN LATERAL (SELECT o.id FROM subnet o
		    WHERE NOT o.deleted AND o.vrf = s.vrf AND o.cidr = s.cidr
		    ORDER BY ipamd.id_key(o.id) LIMIT 1) first ON first.id <> s.id
		UNION ALL
		SELECT s.vrf, s.id, 'pool_shadowed',
		    format('static pool %s-%s of subnet %s overlaps more specific '
			'subnet %s (%s), which is home to those addresses',
			host(p.f), host(p.l), s.id, n.id, n.cidr)
		FROM s
		CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last) AS p(f, l)
		CROSS JOIN LATERAL (SELECT n.id, n.cidr FROM subnet n
		    WHERE NOT n.deleted AND n.vrf = s.vrf AND n.cidr << s.cidr
			AND p.f <= ipamd.last_addr(n.cidr)
			AND p.l >= ipamd.first_addr(n.cidr) OFFSET 0) n
	), conflict_gone AS (
		DELETE FROM conflict c
		WHERE c.kind IN ('duplicate_subnet', 'pool_shadowed')
		    AND (c.subnet_id = ANY (ids) OR NOT EXISTS (SELECT 1
			FROM subnet x WHERE x.id = c.subnet_id AND NOT x.deleted))
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
