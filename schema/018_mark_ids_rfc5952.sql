-- A mark's id is its address as ipam-syncd writes it, and from schema 18
-- on ipam-syncd writes IPv6 as RFC 5952 does, whatever the C library.
-- glibc wrote an address of ::/96 whose seventh group is not zero with a
-- dotted quad ("::10.0.0.5"); it is now "::a00:5", the only key the
-- consumer takes for it (docs/EVENTS.md).  The ids of such marks are
-- written again, so that requests and tombstones under the new key find
-- them.  A release before this one read both spellings as one mark under
-- the dotted id; a build between that wrote the new id already keeps the
-- row of the new id, which is the later, and the dotted one goes.
DO $$
DECLARE
	t text;
	-- The id written anew: the vrf and its '/' (none in the default
	-- vrf), then the address's last two groups in hex.
	written constant text := $w$substr(m.id, 1, strpos(m.id, '/')) || '::' ||
	    to_hex(((substr(m.id, strpos(m.id, '/') + 1)::inet - '::'::inet)
		>> 16)::integer) || ':' ||
	    to_hex(((substr(m.id, strpos(m.id, '/') + 1)::inet - '::'::inet)
		& 65535)::integer)$w$;
	dotted constant text := $d$substr(m.id, strpos(m.id, '/') + 1) ~
	    '^::[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$'$d$;
BEGIN
	FOREACH t IN ARRAY ARRAY['ipam_state.mark', 'ipam_state_rebuild.mark']
	LOOP
		CONTINUE WHEN to_regclass(t) IS NULL;
		EXECUTE format('DELETE FROM %1$s m WHERE %2$s AND EXISTS '
		    '(SELECT 1 FROM %1$s k WHERE k.id = %3$s)', t, dotted,
		    written);
		EXECUTE format('UPDATE %1$s m SET id = %3$s WHERE %2$s', t,
		    dotted, written);
	END LOOP;
END
$$;
