-- The expansion stage: a changed subnet touches every address of its old
-- and new cidr that could hold a row: rows already there, live servers
-- and marks, and the pool addresses of every live subnet overlapping it.
-- Each region is looked up on its own (LATERAL), as an address range the
-- btree indexes on (vrf, address) serve, and its overlapping subnets
-- through the GiST index on cidr: the cost follows the region, not the
-- tables (a join of all regions at once was planned as a scan of every
-- address row).

CREATE OR REPLACE FUNCTION ipamd.expand_regions(regions ipamd.touch[])
RETURNS ipamd.touch[]
LANGUAGE sql STABLE AS $$
	WITH r AS (
		SELECT u.vrf, u.ip::cidr AS cidr, ipamd.first_addr(u.ip::cidr) AS lo,
		    ipamd.last_addr(u.ip::cidr) AS hi, u.seq, u.topic, u.part,
		    u.off
		FROM unnest(regions) AS u
	), found AS (
		SELECT r.vrf, x.ip, r.seq, r.topic, r.part, r.off
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
			UNION ALL
			SELECT c.f + g.i
			FROM subnet s
			CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last)
			    AS p(f, l)
			CROSS JOIN LATERAL (SELECT greatest(p.f, r.lo) AS f,
			    least(p.l, r.hi) AS l) c
			CROSS JOIN LATERAL generate_series(0::bigint, c.l - c.f)
			    AS g(i)
			WHERE NOT s.deleted AND s.vrf = r.vrf AND s.cidr && r.cidr
			    AND c.f <= c.l
		) x
	)
	SELECT coalesce(array_agg(ROW(f.vrf, f.ip, f.seq, f.topic, f.part,
	    f.off)::ipamd.touch), '{}')
	FROM found f
$$;
