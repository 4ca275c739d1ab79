-- The read side of the operator API (docs/API.md): one function per
-- endpoint, each returning the endpoint's whole JSON body, so that the
-- daemon only checks the parameters' types, calls the function on a
-- read-only connection and passes the text through.
--
-- Every function here is STABLE and writes nothing.  Address rows are read
-- through the public.ipam view (whose columns stay, whatever table holds
-- them), conflicts through public.ipam_conflict, entities from
-- ipam_state.subnet, .server and .mark.  No function takes a table's or a
-- view's row type as an argument: a rebuild swaps the schema ipam_state
-- and redefines the views, which such a dependency would block.
--
-- The functions that show etags set search_path to the live state, as
-- ipamd.address_etag() reads the entity tables by their plain names: the
-- read connections' own search_path is then of no matter.
--
-- A bad parameter raises SQLSTATE 22023 (invalid_parameter_value) with the
-- message "FIELD: what is wrong"; the daemon answers 400 naming FIELD.

-- Raises the error of a bad parameter: SQLSTATE 22023, "field: what".
CREATE OR REPLACE FUNCTION ipamd.api_refuse(field text, what text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
	    MESSAGE = field || ': ' || what;
END
$$;

-- A time as the API shows it: RFC 3339 in UTC with microseconds, so that a
-- time read from a row and given back (changed_since, a cursor) is exact.
CREATE OR REPLACE FUNCTION ipamd.api_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- An address as a host address (no prefix length), as rows store them.
CREATE OR REPLACE FUNCTION ipamd.api_host(ip inet) RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
	SELECT set_masklen(ip, CASE family(ip) WHEN 4 THEN 32 ELSE 128 END)
$$;

-- One address row as the API shows it, from to_jsonb() of a public.ipam
-- row: every column of the view, the address without its prefix length,
-- the times in RFC 3339 UTC, and the row's etag.  Taking the row as JSON
-- keeps this free of the view's row type and follows the view's columns.
CREATE OR REPLACE FUNCTION ipamd.api_row(r jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
	-- PL/pgSQL, not SQL: a SQL function that uses its argument several
	-- times is not inlined, and its per-call set-up cost ten times this.
	RETURN r || jsonb_build_object(
	    'ip_address', host((r->>'ip_address')::inet),
	    'last_seen_at', ipamd.api_time((r->>'last_seen_at')::timestamptz),
	    'last_checked_at',
		ipamd.api_time((r->>'last_checked_at')::timestamptz),
	    'created_at', ipamd.api_time((r->>'created_at')::timestamptz),
	    'updated_at', ipamd.api_time((r->>'updated_at')::timestamptz),
	    'etag', ipamd.address_etag(r->>'vrf', (r->>'ip_address')::inet));
END
$$;

-- The row of one address as the API shows it, or NULL when it has none.
CREATE OR REPLACE FUNCTION ipamd.api_address_row(vrf text, ip inet)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT ipamd.api_row(to_jsonb(i))
	FROM public.ipam i
	WHERE i.vrf = api_address_row.vrf
	    AND i.ip_address = ipamd.api_host(api_address_row.ip)
$$;

-- One field of a CSV line (RFC 4180): NULL is empty; a field holding a
-- comma, a quote or a line break, and the empty text, is quoted with its
-- quotes doubled.  A spreadsheet takes a cell that begins with = + - @,
-- a tab or a carriage return for a formula, and the values come from any
-- producer: such a field is quoted behind an apostrophe, which shows it
-- as text (OWASP's advice on CSV injection).
CREATE OR REPLACE FUNCTION ipamd.api_csv_field(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN t IS NULL THEN ''
	    WHEN t ~ '^[=+@\t\r-]' THEN '"''' || replace(t, '"', '""') || '"'
	    WHEN t = '' OR t ~ '[",\r\n]' THEN '"' || replace(t, '"', '""') || '"'
	    ELSE t END
$$;

-- Text for a LIKE pattern that matches it literally.
CREATE OR REPLACE FUNCTION ipamd.api_like_literal(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT replace(replace(replace(t, '\', '\\'), '%', '\%'), '_', '\_')
$$;

-- base64url without padding or line breaks.
CREATE OR REPLACE FUNCTION ipamd.api_base64url(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT translate(rtrim(replace(encode(b, 'base64'), E'\n', ''), '='),
	    '+/', '-_')
$$;

-- A listing's cursor: the sort key of the last row sent, with the kind of
-- listing and a digest of its filters, and a check digest so that a
-- cursor edited by hand is refused rather than read.  (The check keeps
-- cursors whole; it is no secret: a forged cursor could only start a
-- listing at a place the filters can reach anyway.)
CREATE OR REPLACE FUNCTION ipamd.api_cursor_make(listing text, key jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT ipamd.api_base64url(convert_to(t || '.' ||
	    left(md5('ipam-syncd cursor ' || t), 16), 'UTF8'))
	FROM (SELECT jsonb_build_array(1, listing, key)::text AS t) x
$$;

-- The sort key inside a cursor made by api_cursor_make for this listing;
-- anything else raises 22023 naming the field cursor.
CREATE OR REPLACE FUNCTION ipamd.api_cursor_read(listing text, cursor text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	b64 text;
	t text;
	parts text[];
	payload jsonb;
BEGIN
	IF cursor IS NULL OR length(cursor) > 4000
	    OR cursor !~ '^[A-Za-z0-9_-]+$' THEN
		PERFORM ipamd.api_refuse('cursor', 'not a cursor of this listing');
	END IF;
	b64 := translate(cursor, '-_', '+/');
	b64 := b64 || repeat('=', (4 - length(b64) % 4) % 4);
	BEGIN
		t := convert_from(decode(b64, 'base64'), 'UTF8');
		parts := regexp_match(t, '^(.*)\.([0-9a-f]{16})$');
		IF parts IS NOT NULL
		    AND parts[2] = left(md5('ipam-syncd cursor ' || parts[1]), 16)
		THEN
			payload := parts[1]::jsonb;
		END IF;
	EXCEPTION WHEN others THEN
		payload := NULL;
	END;
	IF payload IS NULL OR jsonb_typeof(payload) <> 'array'
	    OR payload->>0 IS DISTINCT FROM '1'
	    OR payload->>1 IS DISTINCT FROM listing
	    OR jsonb_typeof(payload->2) IS DISTINCT FROM 'array' THEN
		PERFORM ipamd.api_refuse('cursor', 'not a cursor of this listing');
	END IF;
	RETURN payload->2;
END
$$;

-- A parameter of p as text: NULL when absent or null; a value whose JSON
-- type is not kind ('string', 'boolean', 'number', 'array') is refused.
CREATE OR REPLACE FUNCTION ipamd.api_param(p jsonb, field text, kind text)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF p->field IS NULL OR p->field = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p->field) <> kind THEN
		PERFORM ipamd.api_refuse(field, 'must be '
		    || CASE kind WHEN 'array' THEN 'a list' ELSE 'a ' || kind END);
	END IF;
	RETURN p->>field;
END
$$;

-- A limit parameter: absent gives the default, else 1..1000.
CREATE OR REPLACE FUNCTION ipamd.api_limit(p jsonb, fallback integer)
RETURNS integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
	n numeric := ipamd.api_param(p, 'limit', 'number');
BEGIN
	IF n IS NULL THEN
		RETURN fallback;
	END IF;
	IF n NOT BETWEEN 1 AND 1000 OR n <> trunc(n) THEN
		PERFORM ipamd.api_refuse('limit', 'must be an integer from 1 to 1000');
	END IF;
	RETURN n::integer;
END
$$;

-- The WHERE clause and its arguments of an address listing's filters
-- (api_address_page and api_addresses_csv share them).  The clause refers to
-- the arguments as $1..$9 of EXECUTE ... USING, in the order of the
-- returned fields; a filter that is absent adds nothing, so that each
-- query is planned for what it filters.  A subnet filter also bounds the
-- address range to the subnet's cidr, which the primary key serves.
CREATE OR REPLACE FUNCTION ipamd.api_address_filter(p jsonb,
    OUT clause text, OUT f_vrf text, OUT f_subnet text, OUT f_status text[],
    OUT f_ip_type text, OUT f_active boolean, OUT f_like text,
    OUT f_since timestamptz, OUT f_lo inet, OUT f_hi inet, OUT sort text,
    OUT order_by text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
	conds text[] := '{}';
	q text;
	since text;
	s record;
BEGIN
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		PERFORM ipamd.api_refuse('parameters', 'must be a JSON object');
	END IF;
	f_vrf := ipamd.api_param(p, 'vrf', 'string');
	IF f_vrf IS NOT NULL THEN
		conds := conds || 'i.vrf = $1'::text;
	END IF;

	f_subnet := ipamd.api_param(p, 'subnet', 'string');
	IF f_subnet IS NOT NULL THEN
		SELECT sn.vrf, sn.cidr INTO s FROM ipam_state.subnet sn
		WHERE sn.id = f_subnet AND NOT sn.deleted;
		IF NOT FOUND THEN
			-- No such live subnet: nothing matches.
			conds := conds || 'false'::text;
		ELSE
			f_lo := ipamd.first_addr(s.cidr);
			f_hi := ipamd.last_addr(s.cidr);
			conds := conds || format('i.vrf = %L', s.vrf)
			    || 'i.ip_address BETWEEN $8 AND $9'::text
			    || 'i.subnet_id = $2'::text;
		END IF;
	END IF;

	IF p->'status' IS NOT NULL AND p->'status' <> 'null' THEN
		IF jsonb_typeof(p->'status') = 'string' THEN
			f_status := ARRAY[p->>'status'];
		ELSIF jsonb_typeof(p->'status') = 'array' AND EXISTS (
		    SELECT 1 FROM jsonb_array_elements(p->'status') e
		    WHERE jsonb_typeof(e) <> 'string') THEN
			PERFORM ipamd.api_refuse('status', 'must be a list of strings');
		ELSIF jsonb_typeof(p->'status') = 'array' THEN
			f_status := ARRAY(SELECT jsonb_array_elements_text(p->'status'));
		ELSE
			PERFORM ipamd.api_refuse('status', 'must be a list of strings');
		END IF;
		SELECT 'status: ' || to_json(x)::text || ' is not one of available, '
		    'allocated, reserved, quarantine' INTO q
		FROM unnest(f_status) x
		WHERE x NOT IN ('available', 'allocated', 'reserved', 'quarantine')
		LIMIT 1;
		IF q IS NOT NULL THEN
			PERFORM ipamd.api_refuse('status', substr(q, 9));
		END IF;
		IF cardinality(f_status) > 0 THEN
			conds := conds || 'i.status = ANY ($3)'::text;
		END IF;
	END IF;

	f_ip_type := ipamd.api_param(p, 'ip_type', 'string');
	IF f_ip_type IS NOT NULL THEN
		IF f_ip_type NOT IN ('static', 'dhcp') THEN
			PERFORM ipamd.api_refuse('ip_type', to_json(f_ip_type)::text
			    || ' is not one of static, dhcp');
		END IF;
		conds := conds || 'i.ip_type = $4'::text;
	END IF;

	f_active := ipamd.api_param(p, 'active', 'boolean')::boolean;
	IF f_active IS NOT NULL THEN
		conds := conds || 'i.active = $5'::text;
	END IF;

	-- q: an address prefix as text ("192.168.1."), or a substring of
	-- hostname, MAC address or description, in any case.  The address
	-- and MAC tests, which cost the most per row, are left out when q
	-- holds a character that neither can contain.
	q := ipamd.api_param(p, 'q', 'string');
	IF q IS NOT NULL AND q <> '' THEN
		f_like := ipamd.api_like_literal(q);
		conds := conds || ('(i.hostname ILIKE ''%'' || $6 || ''%'' '
		    'OR i.description ILIKE ''%'' || $6 || ''%'''
		    || CASE WHEN q ~ '^[0-9A-Fa-f:.-]+$'
			THEN ' OR i.mac_address ILIKE ''%'' || $6 || ''%''' ELSE '' END
		    || CASE WHEN q ~ '^[0-9A-Fa-f:.]+$'
			THEN ' OR host(i.ip_address) LIKE lower($6) || ''%''' ELSE '' END
		    || ')')::text;
	END IF;

	since := ipamd.api_param(p, 'changed_since', 'string');
	IF since IS NOT NULL THEN
		-- RFC 3339: a date, T (or a space), a time, and a zone.
		IF since !~* '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$' THEN
			PERFORM ipamd.api_refuse('changed_since',
			    'not an RFC 3339 time (2026-11-28T10:00:00Z)');
		END IF;
		BEGIN
			f_since := since::timestamptz;
		EXCEPTION WHEN others THEN
			PERFORM ipamd.api_refuse('changed_since',
			    'not an RFC 3339 time (2026-11-28T10:00:00Z)');
		END;
		conds := conds || 'i.updated_at >= $7'::text;
	END IF;

	clause := CASE WHEN cardinality(conds) = 0 THEN 'true'
	    ELSE array_to_string(conds, ' AND ') END;

	sort := coalesce(ipamd.api_param(p, 'sort', 'string'), 'address');
	order_by := CASE sort
	    WHEN 'address' THEN 'i.vrf, i.ip_address'
	    WHEN '-address' THEN 'i.vrf DESC, i.ip_address DESC'
	    WHEN 'updated_at' THEN 'i.updated_at, i.vrf, i.ip_address'
	    WHEN '-updated_at'
		THEN 'i.updated_at DESC, i.vrf DESC, i.ip_address DESC' END;
	IF order_by IS NULL THEN
		PERFORM ipamd.api_refuse('sort', to_json(sort)::text
		    || ' is not one of address, -address, updated_at, -updated_at');
	END IF;
END
$$;

-- The keyset of an address listing (GET /addresses, as JSON or CSV
-- pages): the page's size, the listing a cursor belongs to (one sort and
-- one set of filters), the key of p's cursor (NULL without one), and the
-- condition that starts a page after that key, on the arguments $10..$12
-- of the page's query.
--
-- Each sort is a key that is unique: (vrf, ip_address), served by the
-- primary key, or (updated_at, vrf, ip_address), which is sorted from
-- what the filters leave (no index on updated_at: it would keep every
-- derived update from being HOT, schema 9).  A page is the first limit
-- rows after the cursor's key, so rows that change underneath are neither
-- repeated nor skipped, unless their own sort key changes.
CREATE OR REPLACE FUNCTION ipamd.api_address_keyset(p jsonb, sort text,
    OUT lim integer, OUT listing text, OUT after text, OUT c_vrf text,
    OUT c_ip inet, OUT c_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
	key jsonb;
BEGIN
	lim := ipamd.api_limit(p, 100);
	listing := 'addresses ' || sort || ' ' || left(md5((p - 'cursor'
	    - 'limit' - 'count' - 'sort')::text), 12);
	after := '';
	IF ipamd.api_param(p, 'cursor', 'string') IS NULL THEN
		RETURN;
	END IF;
	key := ipamd.api_cursor_read(listing, p->>'cursor');
	BEGIN
		IF sort IN ('address', '-address') THEN
			IF jsonb_array_length(key) <> 2 THEN
				RAISE EXCEPTION 'bad key';
			END IF;
			c_vrf := key->>0;
			c_ip := (key->>1)::inet;
		ELSE
			IF jsonb_array_length(key) <> 3 THEN
				RAISE EXCEPTION 'bad key';
			END IF;
			c_at := (key->>0)::timestamptz;
			c_vrf := key->>1;
			c_ip := (key->>2)::inet;
		END IF;
	EXCEPTION WHEN others THEN
		c_vrf := NULL;
	END;
	IF c_vrf IS NULL OR c_ip IS NULL
	    OR (sort IN ('updated_at', '-updated_at') AND c_at IS NULL) THEN
		PERFORM ipamd.api_refuse('cursor', 'not a cursor of this listing');
	END IF;
	after := CASE sort
	    WHEN 'address' THEN ' AND (i.vrf, i.ip_address) > ($10, $11)'
	    WHEN '-address' THEN ' AND (i.vrf, i.ip_address) < ($10, $11)'
	    WHEN 'updated_at' THEN
		' AND (i.updated_at, i.vrf, i.ip_address) > ($12, $10, $11)'
	    ELSE ' AND (i.updated_at, i.vrf, i.ip_address) < ($12, $10, $11)'
	    END;
END
$$;

-- The cursor of the page after the one that ends with this row.
CREATE OR REPLACE FUNCTION ipamd.api_address_cursor(listing text, sort text,
    vrf text, ip inet, updated_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT ipamd.api_cursor_make(listing,
	    CASE WHEN sort IN ('address', '-address')
	    THEN jsonb_build_array(vrf, host(ip))
	    ELSE jsonb_build_array(ipamd.api_time(updated_at), vrf, host(ip))
	    END)
$$;

-- One keyset page of the address rows that match the filters of p, as
-- the JSON items (csv false) or the CSV lines, the header on the first
-- page only, the one without a cursor (csv true); the cursor of the next
-- page (NULL on the last), and the count of every matching row when p
-- asks for it (JSON only).  One more row than the limit is read to know
-- whether a next page exists.
CREATE OR REPLACE FUNCTION ipamd.api_address_page(p jsonb, csv boolean,
    OUT items jsonb, OUT body text, OUT next_cursor text, OUT total bigint)
LANGUAGE plpgsql STABLE
SET search_path = ipam_state, ipamd, public
AS $$
DECLARE
	f record;
	k record;
	rows_json jsonb[] := '{}';
	lines text[] := '{}';
	n integer := 0;
	r record;
	last record;
BEGIN
	f := ipamd.api_address_filter(p);
	k := ipamd.api_address_keyset(p, f.sort);
	-- Both columns always, of one type each: the record's fields keep
	-- their types from call to call on a session.
	FOR r IN EXECUTE format('SELECT i.vrf, i.ip_address, i.updated_at, '
	    '%s AS line, %s AS j FROM public.ipam i WHERE %s%s ORDER BY %s '
	    'LIMIT %s',
	    CASE WHEN csv THEN ipamd.api_csv_line() ELSE 'NULL::text' END,
	    CASE WHEN csv THEN 'NULL::jsonb' ELSE 'to_jsonb(i)' END,
	    f.clause, k.after, f.order_by, k.lim + 1)
	    USING f.f_vrf, f.f_subnet, f.f_status, f.f_ip_type, f.f_active,
		f.f_like, f.f_since, f.f_lo, f.f_hi, k.c_vrf, k.c_ip, k.c_at
	LOOP
		IF n = k.lim THEN
			-- A row beyond the page: there is a next one.
			next_cursor := ipamd.api_address_cursor(k.listing,
			    f.sort, last.vrf, last.ip_address, last.updated_at);
			EXIT;
		END IF;
		IF csv THEN
			lines := lines || r.line;
		ELSE
			rows_json := rows_json || ipamd.api_row(r.j);
		END IF;
		n := n + 1;
		last := r;
	END LOOP;
	IF csv THEN
		body := CASE WHEN k.c_vrf IS NULL THEN ipamd.api_csv_header()
		    ELSE '' END || array_to_string(lines, '');
		RETURN;
	END IF;
	items := to_jsonb(rows_json);
	IF ipamd.api_param(p, 'count', 'boolean')::boolean THEN
		EXECUTE format('SELECT count(*) FROM public.ipam i WHERE %s',
		    f.clause)
		    INTO total
		    USING f.f_vrf, f.f_subnet, f.f_status, f.f_ip_type, f.f_active,
			f.f_like, f.f_since, f.f_lo, f.f_hi;
	END IF;
END
$$;

-- GET /addresses: one keyset page of the address rows that match the
-- filters of p (docs/API.md), {"items", "next_cursor", "total"}.
CREATE OR REPLACE FUNCTION ipamd.api_addresses(p jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object('next_cursor', pg.next_cursor,
	    'total', pg.total)) || jsonb_build_object('items', pg.items)
	FROM ipamd.api_address_page(p, false) pg
$$;

-- The CSV of the address listings: the header (the ipam view's column
-- names), and the expression of one row's line over public.ipam i, RFC
-- 4180: fields quoted when they need it, lines ending in CRLF.
CREATE OR REPLACE FUNCTION ipamd.api_csv_header() RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT 'vrf,ip_address,subnet_id,status,ip_type,active,server_id,'
	    'hostname,mac_address,platform,manufacturer,description,'
	    'last_seen_at,last_checked_at,rtt_us,created_at,updated_at' || E'\r\n'
$$;

CREATE OR REPLACE FUNCTION ipamd.api_csv_line() RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT 'concat_ws('','', '
	    'ipamd.api_csv_field(i.vrf), host(i.ip_address), '
	    'ipamd.api_csv_field(i.subnet_id), i.status, i.ip_type, '
	    'i.active::text, ipamd.api_csv_field(i.server_id), '
	    'ipamd.api_csv_field(i.hostname), '
	    'ipamd.api_csv_field(i.mac_address), '
	    'ipamd.api_csv_field(i.platform), '
	    'ipamd.api_csv_field(i.manufacturer), '
	    'ipamd.api_csv_field(i.description), '
	    'coalesce(ipamd.api_time(i.last_seen_at), ''''), '
	    'coalesce(ipamd.api_time(i.last_checked_at), ''''), '
	    'coalesce(i.rtt_us::text, ''''), ipamd.api_time(i.created_at), '
	    'ipamd.api_time(i.updated_at)) || E''\r\n'''
$$;

-- GET /addresses as CSV: every row that matches the filters of p (sort as
-- in api_addresses), after the header.
CREATE OR REPLACE FUNCTION ipamd.api_addresses_csv(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	f record;
	body text;
BEGIN
	f := ipamd.api_address_filter(p);
	EXECUTE format('SELECT string_agg(%s, '''' ORDER BY %s) '
	    'FROM public.ipam i WHERE %s', ipamd.api_csv_line(), f.order_by,
	    f.clause)
	    INTO body
	    USING f.f_vrf, f.f_subnet, f.f_status, f.f_ip_type, f.f_active,
		f.f_like, f.f_since, f.f_lo, f.f_hi;
	RETURN ipamd.api_csv_header() || coalesce(body, '');
END
$$;

-- GET /addresses as CSV with limit or cursor: one keyset page of those
-- lines (the header on the first page only), so that the pages put end
-- to end are the whole listing, and the cursor of the next page (NULL on
-- the last).
CREATE OR REPLACE FUNCTION ipamd.api_addresses_csv_page(p jsonb,
    OUT body text, OUT next_cursor text)
LANGUAGE sql STABLE AS $$
	SELECT pg.body, pg.next_cursor FROM ipamd.api_address_page(p, true) pg
$$;

-- GET /addresses/{vrf}/{ip}: the row (or null), its etag, the live servers
-- that hold the address, its live mark, its conflicts and its history
-- (the newest 200 audit rows: its own and the runs of pool addresses
-- that hold it, each of these with its first and last address as "run");
-- NULL when there is none of these (404).
CREATE OR REPLACE FUNCTION ipamd.api_address(vrf text, ip inet) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ipam_state, ipamd, public
AS $$
DECLARE
	a inet := ipamd.api_host(ip);
	row_json jsonb;
	holders jsonb;
	mark jsonb;
	conflicts jsonb;
	history jsonb;
BEGIN
	IF vrf IS NULL THEN
		PERFORM ipamd.api_refuse('vrf', 'missing');
	END IF;
	IF ip IS NULL THEN
		PERFORM ipamd.api_refuse('ip', 'missing');
	END IF;
	row_json := ipamd.api_address_row(vrf, a);
	SELECT coalesce(jsonb_agg(jsonb_build_object('id', s.id,
	    'hostname', s.hostname, 'nic_mac', s.nic_mac,
	    'device_type', s.device_type, 'manufacture', s.manufacture)
	    ORDER BY ipamd.id_key(s.id)), '[]')
	INTO holders
	FROM ipam_state.server s
	WHERE NOT s.deleted AND s.vrf = api_address.vrf AND s.ip_address = a;
	SELECT jsonb_build_object('status', m.status,
	    'description', m.description, 'reason', m.reason,
	    'requested_by', m.requested_by,
	    'updated_at', ipamd.api_time(m.updated_at))
	INTO mark
	FROM ipam_state.mark m
	WHERE NOT m.deleted AND m.vrf = api_address.vrf AND m.address = a;
	SELECT coalesce(jsonb_agg(jsonb_build_object('vrf', c.vrf,
	    'ip_address', host(c.ip_address), 'subnet_id', c.subnet_id,
	    'kind', c.kind, 'detail', c.detail,
	    'first_seen_at', ipamd.api_time(c.first_seen_at))
	    ORDER BY c.kind), '[]')
	INTO conflicts
	FROM public.ipam_conflict c
	WHERE c.vrf = api_address.vrf AND c.ip_address = a;
	SELECT coalesce(jsonb_agg(h.j ORDER BY h.id DESC), '[]')
	INTO history
	FROM (SELECT u.id, jsonb_build_object(
		'changed_at', ipamd.api_time(u.changed_at), 'action', u.action,
		'before', u.before, 'after', u.after,
		'requested_by', u.requested_by, 'source_topic', u.source_topic,
		'source_partition', u.source_partition,
		'source_offset', u.source_offset)
		|| CASE WHEN u.ip_last IS NULL THEN '{}'::jsonb
		    ELSE jsonb_build_object('run', jsonb_build_array(
			host(u.ip_address), host(u.ip_last))) END AS j
	    FROM ipamd.audit u
	    WHERE u.id IN ((SELECT x.id FROM ipamd.audit x
		    WHERE x.vrf = api_address.vrf AND x.ip_address = a
			AND x.ip_last IS NULL
		    ORDER BY x.id DESC LIMIT 200)
		UNION ALL
		(SELECT x.id FROM ipamd.audit x
		    WHERE x.ip_last IS NOT NULL AND x.vrf = api_address.vrf
			AND x.ip_address <= a AND x.ip_last >= a
		    ORDER BY x.id DESC LIMIT 200))
	    ORDER BY u.id DESC
	    LIMIT 200) h;
	IF row_json IS NULL AND mark IS NULL AND holders = '[]'
	    AND history = '[]' THEN
		RETURN NULL;
	END IF;
	RETURN jsonb_build_object('row', row_json,
	    'etag', ipamd.address_etag(vrf, a), 'holders', holders,
	    'mark', mark, 'conflicts', conflicts, 'history', history);
END
$$;

-- The address rows public.ipam shows active (ipamd.ipam_view_define(),
-- schema/functions/90_sweep.sql): those with a state row written for
-- them that says active and still holds (ipamd.sweep_state_holds()).
-- Counting them from the state rows that say so, joined to the address
-- rows they belong to, reads no column of the addresses that are not
-- active, which the view's outer joins read for every row.  Inlined by
-- the planner.
CREATE OR REPLACE FUNCTION ipamd.api_active_rows()
RETURNS TABLE (vrf text, ip_address inet, subnet_id text)
LANGUAGE sql STABLE AS $$
	SELECT a.vrf, a.ip_address, a.subnet_id
	FROM ipamd.sweep_address st
	JOIN ipam_state.address a ON a.vrf = st.vrf
	    AND a.ip_address = st.ip_address
	    AND a.created_at = st.row_created_at
	LEFT JOIN ipamd.sweep_subnet h ON h.subnet_id = a.subnet_id
	WHERE st.active AND ipamd.sweep_state_holds(st.subnet_id, a.subnet_id,
	    h.subnet_id, a.updated_at)
$$;

-- The subnet items of GET /subnets (every live subnet, or those of one
-- vrf) or of GET /subnets/{id} (one id), ordered by vrf and cidr, with
-- their statistics from one grouped pass over their address rows.
--
-- pool_size is the number of the subnet's static rows: the addresses of
-- its static pools that are its own (a pool address inside a more
-- specific nested subnet belongs to that one), each of which has a row.
-- Every available row is static, so utilisation (1 - available /
-- pool_size) lies in 0..1.
CREATE OR REPLACE FUNCTION ipamd.api_subnet_items(only_vrf text, only_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	result jsonb;
BEGIN
	EXECUTE format($q$
		WITH s AS (
			SELECT sn.id, sn.vrf, sn.name, sn.cidr, sn.pool_first,
			    sn.pool_last, sn.ping
			FROM ipam_state.subnet sn
			WHERE NOT sn.deleted %1$s
		), st AS (
			SELECT i.subnet_id,
			    count(*) FILTER (WHERE i.ip_type = 'static') AS pool_size,
			    count(*) FILTER (WHERE i.status = 'available') AS available,
			    count(*) FILTER (WHERE i.status = 'allocated') AS allocated,
			    count(*) FILTER (WHERE i.status = 'reserved') AS reserved,
			    count(*) FILTER (WHERE i.status = 'quarantine') AS quarantine,
			    count(*) FILTER (WHERE i.ip_type = 'static'
				AND i.status = 'allocated') AS pool_allocated,
			    count(*) FILTER (WHERE i.ip_type = 'static'
				AND i.status = 'reserved') AS pool_reserved,
			    count(*) FILTER (WHERE i.ip_type = 'static'
				AND i.status = 'quarantine') AS pool_quarantine
			FROM ipam_state.address i
			WHERE true %2$s
			GROUP BY i.subnet_id
		), up AS (
			SELECT i.subnet_id, count(*) AS active
			FROM ipamd.api_active_rows() i
			WHERE true %2$s
			GROUP BY i.subnet_id
		)
		SELECT coalesce(jsonb_agg(jsonb_build_object(
		    'id', s.id, 'vrf', s.vrf, 'name', s.name,
		    'cidr', s.cidr::text,
		    'static_ip_pools', (SELECT coalesce(jsonb_agg(
			host(pl.f) || '-' || host(pl.l) ORDER BY pl.n), '[]')
			FROM unnest(s.pool_first, s.pool_last)
			    WITH ORDINALITY AS pl(f, l, n)),
		    'ping', s.ping,
		    'stats', jsonb_build_object(
			'pool_size', coalesce(st.pool_size, 0),
			'available', coalesce(st.available, 0),
			'allocated', coalesce(st.allocated, 0),
			'reserved', coalesce(st.reserved, 0),
			'quarantine', coalesce(st.quarantine, 0),
			'active', coalesce(up.active, 0),
			-- The pool alone, status by status: what a bar of the
			-- pool shows (the counts above include dhcp rows).
			'pool', jsonb_build_object(
			    'available', coalesce(st.available, 0),
			    'allocated', coalesce(st.pool_allocated, 0),
			    'reserved', coalesce(st.pool_reserved, 0),
			    'quarantine', coalesce(st.pool_quarantine, 0)),
			'utilisation', CASE WHEN coalesce(st.pool_size, 0) = 0
			    THEN 0
			    ELSE round(1 - st.available::numeric / st.pool_size,
				6) END))
		    ORDER BY s.vrf, s.cidr, ipamd.id_key(s.id)), '[]')
		FROM s
		LEFT JOIN st ON st.subnet_id = s.id
		LEFT JOIN up ON up.subnet_id = s.id
		$q$,
	    CASE WHEN only_id IS NOT NULL THEN 'AND sn.id = $2'
		WHEN only_vrf IS NOT NULL THEN 'AND sn.vrf = $1' ELSE '' END,
	    CASE WHEN only_id IS NOT NULL THEN 'AND i.subnet_id = $2'
		WHEN only_vrf IS NOT NULL THEN 'AND i.vrf = $1' ELSE '' END)
	    INTO result
	    USING only_vrf, only_id;
	RETURN result;
END
$$;

-- GET /subnets: {"items": [...]}, every live subnet (of p's vrf, if any).
CREATE OR REPLACE FUNCTION ipamd.api_subnets(p jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('items',
	    ipamd.api_subnet_items(ipamd.api_param(coalesce(p, '{}'), 'vrf',
		'string'), NULL))
$$;

-- GET /subnets/{id}: the item of one live subnet, or NULL (404).
CREATE OR REPLACE FUNCTION ipamd.api_subnet(id text) RETURNS jsonb
LANGUAGE sql STABLE STRICT AS $$
	SELECT ipamd.api_subnet_items(NULL, id)->0
$$;

-- GET /subnets/{id}/next-free: the first n available static addresses of
-- the subnet in address order, leaving out those of exclude; NULL when no
-- live subnet has that id (404).  The rows are read as a range of the
-- primary key, bounded by the subnet's cidr.
CREATE OR REPLACE FUNCTION ipamd.api_next_free(id text, n integer,
    exclude inet[]) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	s record;
	skip inet[];
	picked jsonb;
BEGIN
	IF n IS NULL OR n NOT BETWEEN 1 AND 256 THEN
		PERFORM ipamd.api_refuse('count', 'must be an integer from 1 to 256');
	END IF;
	SELECT sn.id, sn.vrf, sn.cidr INTO s
	FROM ipam_state.subnet sn
	WHERE sn.id = api_next_free.id AND NOT sn.deleted;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	skip := ARRAY(SELECT ipamd.api_host(e) FROM unnest(exclude) e
	    WHERE e IS NOT NULL);
	SELECT coalesce(jsonb_agg(host(x.ip_address) ORDER BY x.ip_address), '[]')
	INTO picked
	FROM (SELECT i.ip_address
	    FROM public.ipam i
	    WHERE i.vrf = s.vrf
		AND i.ip_address BETWEEN ipamd.first_addr(s.cidr)
		    AND ipamd.last_addr(s.cidr)
		AND i.subnet_id = s.id AND i.status = 'available'
		AND i.ip_type = 'static'
		AND i.ip_address <> ALL (skip)
	    ORDER BY i.ip_address
	    LIMIT n) x;
	RETURN jsonb_build_object('subnet_id', s.id, 'addresses', picked);
END
$$;

-- GET /conflicts: the conflicts now present, of p's vrf and kind if given,
-- at most 10,000 of them ("truncated": true when there are more).
CREATE OR REPLACE FUNCTION ipamd.api_conflicts(p jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	f_vrf text := ipamd.api_param(coalesce(p, '{}'), 'vrf', 'string');
	f_kind text := ipamd.api_param(coalesce(p, '{}'), 'kind', 'string');
	items jsonb;
	n integer;
BEGIN
	IF f_kind NOT IN ('several_servers', 'server_on_reserved',
	    'server_on_quarantine', 'pool_shadowed', 'duplicate_subnet') THEN
		PERFORM ipamd.api_refuse('kind', to_json(f_kind)::text
		    || ' is not one of several_servers, server_on_reserved, '
		    'server_on_quarantine, pool_shadowed, duplicate_subnet');
	END IF;
	SELECT coalesce(jsonb_agg(x.j ORDER BY x.n), '[]'), count(*)
	INTO items, n
	FROM (SELECT row_number() OVER (ORDER BY c.vrf, c.ip_address,
		c.subnet_id, c.kind) AS n,
		jsonb_build_object('vrf', c.vrf,
		'ip_address', host(c.ip_address), 'subnet_id', c.subnet_id,
		'kind', c.kind, 'detail', c.detail,
		'first_seen_at', ipamd.api_time(c.first_seen_at)) AS j
	    FROM public.ipam_conflict c
	    WHERE (f_vrf IS NULL OR c.vrf = f_vrf)
		AND (f_kind IS NULL OR c.kind = f_kind)
	    ORDER BY c.vrf, c.ip_address, c.subnet_id, c.kind
	    LIMIT 10001) x;
	IF n > 10000 THEN
		RETURN jsonb_build_object('items', items - 10000,
		    'truncated', true);
	END IF;
	RETURN jsonb_build_object('items', items);
END
$$;

-- Bytes as text when they are valid UTF-8 (and hold no NUL), else NULL.
CREATE OR REPLACE FUNCTION ipamd.api_utf8(b bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
	RETURN convert_from(b, 'UTF8');
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
	RETURN NULL;
END
$$;

-- GET /dead-letters: one page of the dead letters, newest first (keyset
-- on id); with raw, their key and value in base64.
CREATE OR REPLACE FUNCTION ipamd.api_dead_letters(p jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	lim integer;
	raw boolean;
	before_id bigint;
	key jsonb;
	items jsonb;
	n integer;
	last_id bigint;
BEGIN
	p := coalesce(p, '{}');
	lim := ipamd.api_limit(p, 100);
	raw := coalesce(ipamd.api_param(p, 'raw', 'boolean')::boolean, false);
	IF ipamd.api_param(p, 'cursor', 'string') IS NOT NULL THEN
		key := ipamd.api_cursor_read('dead-letters', p->>'cursor');
		IF jsonb_array_length(key) <> 1
		    OR jsonb_typeof(key->0) <> 'number' THEN
			PERFORM ipamd.api_refuse('cursor',
			    'not a cursor of this listing');
		END IF;
		before_id := (key->>0)::bigint;
	END IF;
	SELECT coalesce(jsonb_agg(x.j ORDER BY x.id DESC)
		FILTER (WHERE x.n <= lim), '[]'),
	    count(*), min(x.id) FILTER (WHERE x.n <= lim)
	INTO items, n, last_id
	FROM (SELECT d.id, row_number() OVER (ORDER BY d.id DESC) AS n,
		jsonb_build_object('id', d.id,
		'received_at', ipamd.api_time(d.received_at), 'topic', d.topic,
		'partition', d.partition, 'offset', d."offset",
		'reason', d.reason, 'headers', d.headers,
		'key', ipamd.api_utf8(d.key), 'keyless', d.key IS NULL)
		|| CASE WHEN raw THEN jsonb_build_object(
		    'key_base64', replace(encode(d.key, 'base64'), E'\n', ''),
		    'value_base64', replace(encode(d.value, 'base64'), E'\n', ''))
		    ELSE '{}' END AS j
	    FROM ipamd.dead_letter d
	    -- Without a cursor, below every id: the bound stays an index
	    -- condition in the plan PL/pgSQL keeps for this statement.
	    WHERE d.id < coalesce(before_id, 9223372036854775807)
	    ORDER BY d.id DESC
	    LIMIT lim + 1) x;
	IF n > lim THEN
		RETURN jsonb_build_object('items', items, 'next_cursor',
		    ipamd.api_cursor_make('dead-letters',
			jsonb_build_array(last_id)));
	END IF;
	RETURN jsonb_build_object('items', items);
END
$$;

-- The live servers (with an address) and live marks whose address lies in
-- no live subnet of their vrf, of one vrf or all.
--
-- One ordered pass, not a lookup per address: subnets (as address ranges),
-- servers and marks are sorted together by vrf and address, and each
-- address is compared with the highest range end among the subnets that
-- start at or before it.  An address lies in some subnet exactly when
-- that end reaches it.  (A GiST probe per server cost 20 us: 2 s for
-- 100,000 servers; the pass costs a sort of them.)
CREATE OR REPLACE FUNCTION ipamd.api_unplaced_rows(only_vrf text)
RETURNS TABLE (kind text, vrf text, address inet, id text)
LANGUAGE sql STABLE
SET work_mem = '64MB'
AS $$
	WITH e AS (
		SELECT n.vrf, ipamd.first_addr(n.cidr) AS address, 0 AS k,
		    ipamd.last_addr(n.cidr) AS reach, NULL::text AS id
		FROM ipam_state.subnet n
		WHERE NOT n.deleted AND (only_vrf IS NULL OR n.vrf = only_vrf)
		UNION ALL
		SELECT s.vrf, s.ip_address, 1, NULL, s.id
		FROM ipam_state.server s
		WHERE NOT s.deleted AND s.ip_address IS NOT NULL
		    AND (only_vrf IS NULL OR s.vrf = only_vrf)
		UNION ALL
		SELECT m.vrf, m.address, 2, NULL, m.id
		FROM ipam_state.mark m
		WHERE NOT m.deleted AND (only_vrf IS NULL OR m.vrf = only_vrf)
	), w AS (
		SELECT e.*, max(e.reach) OVER (PARTITION BY e.vrf
		    ORDER BY e.address, e.k ROWS UNBOUNDED PRECEDING) AS covered
		FROM e
	)
	SELECT CASE w.k WHEN 1 THEN 'server' ELSE 'mark' END, w.vrf,
	    w.address, w.id
	FROM w
	WHERE w.k > 0 AND (w.covered IS NULL OR w.covered < w.address)
$$;

-- GET /unplaced: the servers and marks that fall in no live subnet of
-- their vrf (of p's vrf, if given), which have no row in any view.
CREATE OR REPLACE FUNCTION ipamd.api_unplaced(p jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH u AS (
		SELECT * FROM ipamd.api_unplaced_rows(
		    ipamd.api_param(coalesce(p, '{}'), 'vrf', 'string'))
	)
	SELECT jsonb_build_object(
	    'servers', (SELECT coalesce(jsonb_agg(jsonb_build_object(
		'id', s.id, 'vrf', s.vrf, 'hostname', s.hostname,
		'ip_address', host(s.ip_address))
		ORDER BY s.vrf, s.ip_address, ipamd.id_key(s.id)), '[]')
		FROM u JOIN ipam_state.server s ON s.id = u.id
		WHERE u.kind = 'server'),
	    'marks', (SELECT coalesce(jsonb_agg(jsonb_build_object(
		'vrf', m.vrf, 'address', host(m.address), 'status', m.status,
		'description', m.description, 'reason', m.reason,
		'requested_by', m.requested_by)
		ORDER BY m.vrf, m.address), '[]')
		FROM u JOIN ipam_state.mark m ON m.id = u.id
		WHERE u.kind = 'mark'))
$$;

-- GET /stats: counts of the rows per status and type, of the subnets,
-- conflicts, dead letters and unplaced entities, and the time of the last
-- change of a row.
CREATE OR REPLACE FUNCTION ipamd.api_stats(p jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
	    'addresses', (SELECT jsonb_build_object(
		'total', count(*),
		'available', count(*) FILTER (WHERE i.status = 'available'),
		'allocated', count(*) FILTER (WHERE i.status = 'allocated'),
		'reserved', count(*) FILTER (WHERE i.status = 'reserved'),
		'quarantine', count(*) FILTER (WHERE i.status = 'quarantine'),
		'static', count(*) FILTER (WHERE i.ip_type = 'static'),
		'dhcp', count(*) FILTER (WHERE i.ip_type = 'dhcp'),
		'active', (SELECT count(*) FROM ipamd.api_active_rows() x))
		FROM ipam_state.address i),
	    'subnets', (SELECT count(*) FROM ipam_state.subnet s
		WHERE NOT s.deleted),
	    'conflicts', (SELECT count(*) FROM public.ipam_conflict),
	    'dead_letters', (SELECT count(*) FROM ipamd.dead_letter),
	    'unplaced', (SELECT jsonb_build_object(
		'servers', count(*) FILTER (WHERE u.kind = 'server'),
		'marks', count(*) FILTER (WHERE u.kind = 'mark'))
		FROM ipamd.api_unplaced_rows(NULL) u),
	    'last_change_at', (SELECT ipamd.api_time(max(i.updated_at))
		FROM ipam_state.address i))
	-- p holds no parameter yet.
$$;

-- GET /requests/{id}: the outcome of an operator's request once a daemon
-- has applied its event, with the address's row as it is now; NULL while
-- it is not decided (or unknown).
CREATE OR REPLACE FUNCTION ipamd.api_request(id text) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ipam_state, ipamd, public
AS $$
	SELECT jsonb_build_object('id', r.id, 'state', r.outcome,
	    'detail', r.detail, 'requested_by', r.requested_by,
	    'decided_at', ipamd.api_time(r.decided_at),
	    'vrf', r.vrf, 'address', host(r.address),
	    'row', ipamd.api_address_row(r.vrf, r.address))
	FROM ipamd.request r
	WHERE r.id = api_request.id
$$;

-- Gone: a dry run's plan is read from what the decoder made of each
-- entity (daemon/api_write.c), not normalised here a second time.
DROP FUNCTION IF EXISTS ipamd.api_inet(text, text);
DROP FUNCTION IF EXISTS ipamd.api_mac(text);
DROP FUNCTION IF EXISTS ipamd.api_pools(text, cidr, jsonb);

-- POST /import with dry_run: what importing these servers and subnets
-- would do to the live entities: per kind, how many would be created,
-- updated or left unchanged, and the first 1,000 changes with the names
-- of the fields that differ.  p holds the entities as the decoder read
-- them (daemon/api_write.c: addresses, prefixes, MAC addresses and pools
-- as the apply stores them), so that the plan follows what the import
-- would publish; addresses are compared as inet, empty text as none.
CREATE OR REPLACE FUNCTION ipamd.api_import_plan(p jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	servers jsonb;
	subnets jsonb;
BEGIN
	SELECT ipamd.api_import_counts(array_agg(e.v->>'id' ORDER BY e.n),
	    array_agg(jsonb_build_object(
		'vrf', e.v->>'vrf',
		'hostname', nullif(e.v->>'hostname', ''),
		'ip_address', host((e.v->>'ip_address')::inet),
		'nic_mac', nullif(e.v->>'nic_mac', ''),
		'device_type', nullif(e.v->>'device_type', ''),
		'manufacture', nullif(e.v->>'manufacture', '')) ORDER BY e.n),
	    array_agg(CASE WHEN s.id IS NOT NULL THEN jsonb_build_object(
		'vrf', s.vrf, 'hostname', nullif(s.hostname, ''),
		'ip_address', host(s.ip_address),
		'nic_mac', nullif(s.nic_mac, ''),
		'device_type', nullif(s.device_type, ''),
		'manufacture', nullif(s.manufacture, '')) END ORDER BY e.n))
	INTO servers
	FROM jsonb_array_elements(p->'servers') WITH ORDINALITY AS e(v, n)
	LEFT JOIN ipam_state.server s ON s.id = e.v->>'id' AND NOT s.deleted;

	SELECT ipamd.api_import_counts(array_agg(e.v->>'id' ORDER BY e.n),
	    array_agg(jsonb_build_object('vrf', e.v->>'vrf',
		'name', nullif(e.v->>'name', ''),
		'cidr', ((e.v->>'cidr')::cidr)::text,
		'static_ip_pools', to_jsonb(ARRAY(
		    SELECT host(split_part(x.r, '-', 1)::inet) || '-' ||
			host(split_part(x.r, '-', 2)::inet)
		    FROM jsonb_array_elements_text(e.v->'static_ip_pools')
			WITH ORDINALITY AS x(r, o)
		    ORDER BY x.o)),
		'ping', (e.v->>'ping')::boolean) ORDER BY e.n),
	    array_agg(CASE WHEN s.id IS NOT NULL THEN jsonb_build_object(
		'vrf', s.vrf, 'name', nullif(s.name, ''), 'cidr', s.cidr::text,
		'static_ip_pools', to_jsonb(ARRAY(
		    SELECT host(x.f) || '-' || host(x.l)
		    FROM unnest(s.pool_first, s.pool_last)
			WITH ORDINALITY AS x(f, l, o)
		    ORDER BY x.o)),
		'ping', s.ping) END ORDER BY e.n))
	INTO subnets
	FROM jsonb_array_elements(p->'subnets') WITH ORDINALITY AS e(v, n)
	LEFT JOIN ipam_state.subnet s ON s.id = e.v->>'id' AND NOT s.deleted;

	RETURN jsonb_build_object('servers', servers, 'subnets', subnets);
END
$$;

-- The counts of one kind of an import plan, from its entities in order:
-- id, the fields as imported and as stored (NULL when there is no live
-- entity of that id), compared key by key.
CREATE OR REPLACE FUNCTION ipamd.api_import_counts(ids text[],
    wants jsonb[], haves jsonb[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	WITH u AS (
		SELECT u.n, u.id, u.have IS NULL AS is_new,
		    ARRAY(SELECT w.key FROM jsonb_each(u.want) w
			WHERE CASE WHEN u.have IS NULL THEN w.value <> 'null'
			    ELSE w.value IS DISTINCT FROM u.have->w.key END
			ORDER BY w.key) AS fields
		FROM unnest(ids, wants, haves) WITH ORDINALITY
		    AS u(id, want, have, n)
	), x AS (
		SELECT u.*, count(*) FILTER (WHERE u.is_new
		    OR cardinality(u.fields) > 0) OVER (ORDER BY u.n) AS k
		FROM u
	)
	SELECT jsonb_build_object(
	    'create', count(*) FILTER (WHERE x.is_new),
	    'update', count(*) FILTER (WHERE NOT x.is_new
		AND cardinality(x.fields) > 0),
	    'unchanged', count(*) FILTER (WHERE NOT x.is_new
		AND cardinality(x.fields) = 0),
	    'changes', coalesce(jsonb_agg(jsonb_build_object('id', x.id,
		'action', CASE WHEN x.is_new THEN 'create' ELSE 'update' END,
		'fields', to_jsonb(x.fields)) ORDER BY x.n)
		FILTER (WHERE (x.is_new OR cardinality(x.fields) > 0)
		    AND x.k <= 1000), '[]'))
	FROM x
$$;

-- GET /imports/{progress}, and an import waiting for its events: applied
-- once the stored offset of every partition it wrote to is past the last
-- event it wrote there (p: [{topic, part, off}], a partition may repeat).
CREATE OR REPLACE FUNCTION ipamd.api_import_state(p jsonb, group_name text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ipam_state, ipamd, public
AS $$
	SELECT jsonb_build_object('state',
	    CASE WHEN bool_and(coalesce(o.next_offset > x.off, false))
		THEN 'applied' ELSE 'pending' END,
	    'partitions', jsonb_agg(jsonb_build_object('topic', x.topic,
		'partition', x.part, 'offset', x.off,
		'next_offset', o.next_offset) ORDER BY x.topic, x.part))
	FROM (SELECT e.topic, e.part, max(e.off) AS off
	    FROM jsonb_to_recordset(p) AS e(topic text, part integer, off bigint)
	    GROUP BY e.topic, e.part) x
	LEFT JOIN consumer_offset o ON o.group_id = group_name
	    AND o.topic = x.topic AND o.partition = x.part
$$;
