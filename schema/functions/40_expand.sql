-- The expansion stage: a changed subnet touches every address of its old
-- and new cidr that could hold a row: rows already there, live servers
-- and marks, and the pool addresses of every live subnet overlapping it.
-- Each region is looked up as an address range, which the btree indexes
-- on (vrf, address) serve; `<<=` inside a join would scan every row.

CREATE OR REPLACE FUNCTION ipamd.expand_regions(regions ipamd.touch[])
RETURNS ipamd.touch[]
LANGUAGE sql STABLE AS $$
	WITH r AS (
		SELECT u.vrf, u.ip::cidr AS cidr, ipamd.first_addr(u.ip::cidr) AS lo,
		    ipamd.last_addr(u.ip::cidr) AS hi, u.seq, u.topic, u.part,
		    u.off
		FROM unnest(regions) AS u
	), found AS (
		SELECT r.vrf, a.ip_address AS ip, r.seq, r.topic, r.part, r.off
		FROM r JOIN address a
		    ON a.vrf = r.vrf AND a.ip_address BETWEEN r.lo AND r.hi
		UNION ALL
		SELECT r.vrf, x.ip_address, r.seq, r.topic, r.part, r.off
		FROM r JOIN server x
		    ON NOT x.deleted AND x.vrf = r.vrf
			AND x.ip_address BETWEEN r.lo AND r.hi
		UNION ALL
		SELECT r.vrf, m.address, r.seq, r.topic, r.part, r.off
		FROM r JOIN mark m
		    ON NOT m.deleted AND m.vrf = r.vrf
			AND m.address BETWEEN r.lo AND r.hi
		UNION ALL
		SELECT r.vrf, c.f + g.i, r.seq, r.topic, r.part, r.off
		FROM r
		JOIN subnet s
		    ON NOT s.deleted AND s.vrf = r.vrf AND s.cidr && r.cidr
		CROSS JOIN LATERAL unnest(s.pool_first, s.pool_last) AS p(f, l)
		CROSS JOIN LATERAL (SELECT greatest(p.f, r.lo) AS f,
		    least(p.l, r.hi) AS l) c
		CROSS JOIN LATERAL generate_series(0::bigint, c.l - c.f) AS g(i)
		WHERE c.f <= c.l
	)
	SELECT coalesce(array_agg(ROW(f.vrf, f.ip, f.seq, f.topic, f.part,
	    f.off)::ipamd.touch), '{}')
	FROM found f
$$;
