-- A mark's id is its address as ipam-syncd writes it, and from schema 18
-- on ipam-syncd writes IPv6 as RFC 5952 does, whatever the C library.
-- glibc wrote an address of ::/96 whose seventh group is not zero with a
-- dotted quad ("::10.0.0.5"); it is now "::a00:5", the only key the
-- consumer takes for it (docs/EVENTS.md).  The ids of such marks are
-- written again, so that requests and tombstones under the new key find
-- them.  Before this version both spellings were read as one mark, so no
-- mark holds the new id yet.
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['ipam_state.mark', 'ipam_state_rebuild.mark']
	LOOP
		CONTINUE WHEN to_regclass(t) IS NULL;
		EXECUTE format($q$
			UPDATE %s m
			SET id = x.vrf_part || '::' || to_hex((x.n >> 16)::integer)
			    || ':' || to_hex((x.n & 65535)::integer)
			FROM (SELECT o.id, substr(o.id, 1, strpos(o.id, '/'))
				AS vrf_part, substr(o.id, strpos(o.id, '/') + 1)::inet
				- '::'::inet AS n
			    FROM %s o
			    WHERE substr(o.id, strpos(o.id, '/') + 1) ~
				'^::[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$') x
			WHERE m.id = x.id$q$, t, t);
	END LOOP;
END
$$;
