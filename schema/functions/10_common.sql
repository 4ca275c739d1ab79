-- What every stage uses: address arithmetic, the order of ids, the audit
-- image of a row, the list of state tables and their statistics.
--
-- The files of this folder are code, not migrations: each runs again
-- whenever its text changes (CREATE OR REPLACE), in the order of their
-- names, after the numbered migrations.  A function whose arguments or
-- result change is dropped first, here, by its old signature.

-- The first address of a prefix, as a host address.  Not STRICT, nor the
-- other SQL helpers whose body holds a CASE: PostgreSQL inlines a STRICT
-- SQL function only when it can prove its body strict, which a CASE is
-- not, and a call that is not inlined costs microseconds a row (NULL in
-- gives NULL out all the same: set_masklen() is strict).
CREATE OR REPLACE FUNCTION ipamd.first_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
	SELECT set_masklen(prefix::inet,
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- The last address of a prefix, as a host address.
CREATE OR REPLACE FUNCTION ipamd.last_addr(prefix cidr) RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
	SELECT set_masklen(broadcast(prefix),
	    CASE family(prefix) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- Orders entity ids: shorter first, then by bytes (numeric order for
-- plain integers).  STABLE as convert_to() is: an IMMUTABLE SQL function
-- is inlined only when its body is immutable too.
CREATE OR REPLACE FUNCTION ipamd.id_key(id text) RETURNS bytea
LANGUAGE sql STABLE STRICT AS $$
	SELECT int4send(octet_length(id)) || convert_to(id, 'UTF8')
$$;

-- The audit image of a row: its derived fields (vrf and address are
-- columns of the audit row; the sweeper's columns and timestamps are not
-- changes the derivation makes), as a row value (schema/013_audit_images.sql;
-- ipamd.audit shows it as a JSON object of these keys).  A plain SQL
-- function, inlined.  Every writer of the audit (apply, pools, rebuild)
-- uses this one shape.
DROP FUNCTION IF EXISTS ipamd.image(text, text, text, text, text, text,
    text, text, text);
CREATE OR REPLACE FUNCTION ipamd.audit_image(subnet_id text, status text,
    ip_type text, server_id text, hostname text, mac_address text,
    platform text, manufacturer text, description text)
RETURNS ipamd.address_image
LANGUAGE sql IMMUTABLE AS $$
	SELECT ROW(subnet_id, status, ip_type, server_id, hostname,
	    mac_address, platform, manufacturer, description)::ipamd.address_image
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

-- The etag of an address (docs/API.md): what an operator acts on — its
-- live mark and its live holders — as a quoted string.  A request with
-- ipamifmatch applies only while it is unchanged.  The tables are those
-- of the search_path: ipam_state, or the copy a rebuild is filling.
CREATE OR REPLACE FUNCTION ipamd.address_etag(vrf text, ip inet) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT '"' || left(md5(concat_ws('|',
	    (SELECT concat_ws('/', m.status, m.description, m.requested_by,
		m.source_topic, m.source_partition, m.source_offset)
	     FROM mark m
	     WHERE m.vrf = $1 AND m.address = $2 AND NOT m.deleted),
	    (SELECT string_agg(s.id, ',' ORDER BY s.id)
	     FROM server s
	     WHERE s.vrf = $1 AND s.ip_address = $2 AND NOT s.deleted))), 20)
	    || '"'
$$;

-- Merges the stale reports of two parts of a stage.
CREATE OR REPLACE FUNCTION ipamd.stale_report_merge(a jsonb, b jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object(
	    'sample', coalesce((SELECT jsonb_agg(x) FROM (
		SELECT x FROM jsonb_array_elements(coalesce(a->'sample', '[]')
		    || coalesce(b->'sample', '[]')) AS x LIMIT 20) s),
		'[]'::jsonb),
	    'topics', coalesce((SELECT jsonb_object_agg(t, n) FROM (
		SELECT t, sum(n::bigint) AS n FROM (
		    SELECT * FROM jsonb_each_text(coalesce(a->'topics', '{}'))
		    UNION ALL
		    SELECT * FROM jsonb_each_text(coalesce(b->'topics', '{}')))
		    AS u(t, n)
		GROUP BY t) g), '{}'::jsonb))
$$;

-- The writes through a ctid (the entity stage, the derivation) reach the
-- rows their statement read.  A row that someone else changed meanwhile
-- (a hand edit made without the apply lock) has a new ctid and is
-- skipped without an error; this turns that into a serialization failure,
-- which the daemon answers by applying the batch again, on fresh rows,
-- instead of losing the write.
CREATE OR REPLACE FUNCTION ipamd.check_written(tbl text, meant bigint,
    written bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF meant <> written THEN
		RAISE EXCEPTION '% of % rows of % changed while the apply wrote them',
		    meant - written, meant, tbl
		    USING ERRCODE = '40001',
		    HINT = 'something wrote the state without the apply lock; the batch is applied again';
	END IF;
END
$$;
