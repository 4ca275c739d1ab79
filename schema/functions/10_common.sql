-- What every stage uses: address arithmetic, the order of ids, the audit
-- image of a row, the list of state tables and their statistics.
--
-- The files of this folder are code, not migrations: each runs again
-- whenever its text changes (CREATE OR REPLACE), in the order of their
-- names, after the numbered migrations.  A function whose arguments or
-- result change is dropped first, here, by its old signature.

-- The first address of a prefix, as a host address.
CREATE OR REPLACE FUNCTION ipamd.first_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT set_masklen(prefix::inet,
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- The last address of a prefix, as a host address.
CREATE OR REPLACE FUNCTION ipamd.last_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT set_masklen(broadcast(prefix),
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- Orders entity ids: shorter first, then by bytes (numeric order for
-- plain integers).
CREATE OR REPLACE FUNCTION ipamd.id_key(id text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT int4send(octet_length(id)) || convert_to(id, 'UTF8')
$$;

-- The audit image of a row: its derived fields (vrf and address are
-- columns of the audit row; the sweeper's columns and timestamps are not
-- changes the derivation makes).  A plain SQL function, inlined.  Every
-- writer of the audit (apply, rebuild) uses this one shape.
CREATE OR REPLACE FUNCTION ipamd.image(subnet_id text, status text,
    ip_type text, server_id text, hostname text, mac_address text,
    platform text, manufacturer text, description text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('subnet_id', subnet_id, 'status', status,
	    'ip_type', ip_type, 'server_id', server_id, 'hostname', hostname,
	    'mac_address', mac_address, 'platform', platform,
	    'manufacturer', manufacturer, 'description', description)
$$;

-- The tables of ipam_state, in the order they are made.
CREATE OR REPLACE FUNCTION ipamd.state_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT ARRAY['subnet', 'server', 'mark', 'address', 'conflict',
	    'consumer_offset', 'truncation']
$$;

-- Analyzes the state tables of a schema that changed much since their last
-- analyze.  A table filled from empty (a first start, a rebuild) otherwise
-- keeps the planner's picture of an empty table for minutes, and the apply
-- statements then pick plans that are slower by an order of magnitude.
CREATE OR REPLACE FUNCTION ipamd.analyze_grown(target text) RETURNS void
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
