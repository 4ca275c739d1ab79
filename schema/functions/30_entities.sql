-- The entity stage: each net record of a batch decides against the stored
-- entity (ipamd.entity_action), then the entity is written, tombstoned or
-- forgotten, and the addresses it held and holds are returned as touched,
-- for the derivation.  A truncate forgets every entity its topic fed that
-- no later change has touched.
--
-- The three entity functions have the same shape; only the columns
-- differ.  Fields a Debezium TOAST placeholder left out ("keep") are taken
-- from the stored entity.  A stored entity is written through the ctid it
-- was read with (no one else writes the state while the apply lock is
-- held, and ipamd.check_written retries the batch if someone did): an
-- UPDATE, not an INSERT that meets a conflict, which probes the primary
-- key a second time for every row.  A batch holds one record per key, so
-- no row is written twice.

-- Stale records of a stage, at most 20 for the log, and their number per
-- topic.
-- Whether an upsert takes a field from the stored entity: it keeps it
-- (a TOAST placeholder: keep names it), or the batch took it from an
-- earlier event of its own (kb: its version) that the stored entity, or
-- the topic's truncate floor, makes stale, as applying the events one by
-- one would.
CREATE OR REPLACE FUNCTION ipamd.keeps(keep text[], kb jsonb, field text,
    known boolean, old_v bigint, floor_lsn bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT field = ANY (keep) OR (kb ? field
	    AND ((known AND old_v >= (kb->>field)::bigint)
		OR floor_lsn > (kb->>field)::bigint))
$$;

CREATE OR REPLACE FUNCTION ipamd.stale_report(notes jsonb[], counts bigint[],
    topics text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object(
	    'sample', coalesce(to_jsonb(notes[1:20]), '[]'::jsonb),
	    'topics', coalesce((SELECT jsonb_object_agg(t, n) FROM (
		SELECT t, sum(c) AS n FROM unnest(topics, counts) AS u(t, c)
		WHERE c > 0 GROUP BY t) x), '{}'::jsonb))
$$;

-- Says, in one warning a batch, which new entities an update with TOAST
-- placeholders made (or brought back from a delete): the fields it kept
-- have no stored value to keep (the records before it were compacted
-- away, or never read), so they are left empty.  Returns how many.
CREATE OR REPLACE FUNCTION ipamd.warn_unkept(entity text, ids text[],
    fields text[]) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
	IF cardinality(ids) > 0 THEN
		RAISE WARNING '% %: % not sent (a Debezium TOAST placeholder) and no stored % has them: left empty; a compacted Debezium topic needs REPLICA IDENTITY FULL on its table',
		    entity, array_to_string(ids[1:20], ', ')
			|| CASE WHEN cardinality(ids) > 20 THEN format(' (and %s more)',
			cardinality(ids) - 20) ELSE '' END,
		    array_to_string(fields, ', '), entity;
	END IF;
	RETURN coalesce(cardinality(ids), 0);
END
$$;

-- The static pools a subnet record stores, held to its cidr as the decoder
-- holds an event's (consumers/decode_fields.c): every range inside the
-- cidr, and an IPv4 subnet's of /30 or shorter kept off its network and
-- broadcast addresses (a range left empty is dropped).  firsts and lasts
-- are the pools as sent: the record's, which the decoder checked against
-- the cidr it sent (the batch gives back the two addresses it kept them
-- off), or the stored subnet's (a TOAST placeholder), checked against
-- the cidr they were sent with, which this record may change: a range
-- that reaches outside the new cidr refuses the event (SQLSTATE 22023:
-- its batch is split and the event becomes a dead letter with this
-- reason), as the same subnet sent whole would be refused by the
-- decoder.
CREATE OR REPLACE FUNCTION ipamd.subnet_pools(id text, cidr cidr,
    firsts inet[], lasts inet[], OUT pool_first inet[],
    OUT pool_last inet[])
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	bits integer;
	low inet;
	high inet;
	outside record;
BEGIN
	IF cardinality(firsts) = 0 OR cidr IS NULL THEN
		pool_first := firsts;
		pool_last := lasts;
		RETURN;
	END IF;
	bits := CASE family(cidr) WHEN 4 THEN 32 ELSE 128 END;
	low := set_masklen(network(cidr)::inet, bits);
	high := set_masklen(broadcast(cidr), bits);
	SELECT u.f, u.l INTO outside
	FROM unnest(firsts, lasts) AS u(f, l)
	WHERE u.f < low OR u.l > high
	LIMIT 1;
	IF FOUND THEN
		-- Only kept pools can: the decoder refuses any other.
		RAISE EXCEPTION 'subnet %: its static_ip_pools range %-% reaches outside its cidr % (the pools were kept from the stored subnet, as a TOAST placeholder asks: set REPLICA IDENTITY FULL on the table to receive them whole)',
		    id, host(outside.f), host(outside.l), cidr
		    USING ERRCODE = '22023';
	END IF;
	IF family(cidr) = 4 AND masklen(cidr) <= 30 THEN
		low := low + 1;
		high := high - 1;
	END IF;
	SELECT coalesce(array_agg(greatest(u.f, low) ORDER BY u.n), '{}'),
	    coalesce(array_agg(least(u.l, high) ORDER BY u.n), '{}')
	INTO pool_first, pool_last
	FROM unnest(firsts, lasts) WITH ORDINALITY AS u(f, l, n)
	WHERE greatest(u.f, low) <= least(u.l, high);
END
$$;

-- What an entity function gives for a batch without its records: none
-- applied, none stale, nothing touched, an empty report.  PL/pgSQL, so
-- that the report is made once a session, not planned anew each call
-- as the body of an SQL function that is not inlined is (0.4 ms).
CREATE OR REPLACE FUNCTION ipamd.applied_none(OUT applied bigint,
    OUT stale bigint, OUT touched ipamd.touch[], OUT report jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	applied := 0;
	stale := 0;
	touched := '{}';
	report := ipamd.stale_report(NULL, NULL, NULL);
END
$$;

-- Subnets: the touched are regions (vrf, old and new cidr), which the
-- expansion stage turns into addresses.
CREATE OR REPLACE FUNCTION ipamd.apply_subnets(records jsonb,
    OUT applied bigint, OUT stale bigint, OUT regions ipamd.touch[],
    OUT report jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	meant bigint;
	written bigint;
	unkept integer;
BEGIN
	-- No records (a batch of other entities): nothing to read.
	IF jsonb_array_length(records) = 0 THEN
		SELECT * INTO applied, stale, regions, report
		FROM ipamd.applied_none();
		RETURN;
	END IF;
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(records)
		    AS x(seq bigint, id text, gv bigint, lo bigint[],
			reset boolean, op text, v bigint, lsn bigint,
			keep text[], kb jsonb, vrf text, name text, cidr cidr,
			pool_first inet[], pool_last inet[], ping boolean,
			by text, topic text, part integer, off bigint)
	), dec AS (
		SELECT inp.*, s.tid, s.id IS NOT NULL AS known,
		    s.version AS old_v,
		    coalesce(s.deleted, true) AS old_deleted, s.vrf AS old_vrf,
		    s.cidr AS old_cidr, s.name AS old_name,
		    s.pool_first AS old_pool_first, s.pool_last AS old_pool_last,
		    s.pool_sent_first AS old_sent_first,
		    s.pool_sent_last AS old_sent_last,
		    f.lsn AS floor_lsn,
		    ipamd.entity_action(inp.gv, inp.reset, inp.op, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS action,
		    ipamd.stale_events(inp.gv, inp.lo, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS n_stale
		FROM inp
		-- One probe of the primary key a record (see apply_servers).
		LEFT JOIN LATERAL (SELECT s.ctid AS tid, s.id, s.version,
			s.deleted, s.vrf, s.cidr, s.name, s.pool_first,
			s.pool_last, s.pool_sent_first, s.pool_sent_last
		    FROM subnet s WHERE s.id = inp.id OFFSET 0) s ON true
		LEFT JOIN truncation f ON f.topic = inp.topic
	), forgot AS (
		DELETE FROM subnet s USING dec
		WHERE s.ctid = dec.tid AND dec.action = 'forget'
		RETURNING 1
	), w AS (
		SELECT tid, known, id, v AS version, lsn,
		    action = 'delete' AS deleted,
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END AS vrf,
		    CASE WHEN action <> 'upsert' THEN NULL
			WHEN ipamd.keeps(keep, kb, 'name', known, old_v,
			    floor_lsn) THEN old_name
			ELSE name END AS name,
		    CASE WHEN action = 'upsert' THEN cidr END AS cidr,
		    p.pool_first, p.pool_last,
		    -- The pools as sent, kept when the pools held to the
		    -- cidr are not the same (schema/021_subnet_pools_sent.sql).
		    CASE WHEN sent.f <> p.pool_first OR sent.l <> p.pool_last
			THEN sent.f END AS pool_sent_first,
		    CASE WHEN sent.f <> p.pool_first OR sent.l <> p.pool_last
			THEN sent.l END AS pool_sent_last,
		    coalesce(ping, true) AS ping,
		    topic, part, off
		FROM dec
		-- The pools as sent: the record's (the batch writes them so),
		-- or the stored subnet's, as sent or, when not known, as it
		-- holds them.
		CROSS JOIN LATERAL (SELECT
		    CASE WHEN action <> 'upsert' THEN '{}'::inet[]
			WHEN ipamd.keeps(keep, kb, 'pools', known, old_v,
			    floor_lsn)
			THEN coalesce(old_sent_first, old_pool_first, '{}')
			ELSE coalesce(pool_first, '{}') END AS f,
		    CASE WHEN action <> 'upsert' THEN '{}'::inet[]
			WHEN ipamd.keeps(keep, kb, 'pools', known, old_v,
			    floor_lsn)
			THEN coalesce(old_sent_last, old_pool_last, '{}')
			ELSE coalesce(pool_last, '{}') END AS l) sent
		CROSS JOIN LATERAL ipamd.subnet_pools(dec.id,
		    CASE WHEN action = 'upsert' THEN cidr END, sent.f, sent.l) p
		WHERE action IN ('upsert', 'delete')
	), changed AS (
		UPDATE subnet s SET version = w.version, lsn = w.lsn,
		    deleted = w.deleted, vrf = w.vrf, name = w.name,
		    cidr = w.cidr, pool_first = w.pool_first,
		    pool_last = w.pool_last, pool_sent_first = w.pool_sent_first,
		    pool_sent_last = w.pool_sent_last, ping = w.ping,
		    source_topic = w.topic, source_partition = w.part,
		    source_offset = w.off, updated_at = now()
		FROM w
		WHERE s.ctid = w.tid AND w.known
		RETURNING 1
	), added AS (
		INSERT INTO subnet (id, version, lsn, deleted, vrf, name, cidr,
		    pool_first, pool_last, pool_sent_first, pool_sent_last, ping,
		    source_topic, source_partition, source_offset, updated_at)
		SELECT id, version, lsn, deleted, vrf, name, cidr, pool_first,
		    pool_last, pool_sent_first, pool_sent_last, ping,
		    topic, part, off, now()
		FROM w WHERE NOT w.known
		RETURNING 1
	), touched AS (
		SELECT old_vrf AS vrf, old_cidr AS cidr, seq, topic, part, off,
		    by
		FROM dec
		WHERE action <> 'none' AND NOT old_deleted
		UNION ALL
		SELECT coalesce(vrf, ''), cidr, seq, topic, part, off, by
		FROM dec WHERE action = 'upsert'
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT coalesce(sum(n_stale), 0) FROM dec),
	    (SELECT coalesce(array_agg(ROW(r.vrf, r.cidr::inet, r.seq, r.topic,
		r.part, r.off, r.by)::ipamd.touch), '{}') FROM touched r),
	    (SELECT ipamd.stale_report(
		array_agg(ipamd.stale_note('subnet', id, topic, part, off, gv,
		    lsn, floor_lsn, old_v)) FILTER (WHERE n_stale > 0),
		array_agg(n_stale::bigint) FILTER (WHERE n_stale > 0),
		array_agg(topic) FILTER (WHERE n_stale > 0)) FROM dec),
	    (SELECT count(*) FROM dec WHERE action = 'forget')
		+ (SELECT count(*) FROM w WHERE known),
	    (SELECT count(*) FROM forgot) + (SELECT count(*) FROM changed),
	    (SELECT ipamd.warn_unkept('subnet', array_agg(DISTINCT id),
		array_agg(DISTINCT f))
		FROM dec, unnest(dec.keep) AS f
		WHERE action = 'upsert' AND old_deleted)
	INTO applied, stale, regions, report, meant, written, unkept;
	PERFORM ipamd.check_written('subnet', meant, written);
END
$$;

-- Servers: the touched are the old and the new address.
CREATE OR REPLACE FUNCTION ipamd.apply_servers(records jsonb,
    OUT applied bigint, OUT stale bigint, OUT touched ipamd.touch[],
    OUT report jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	meant bigint;
	written bigint;
	unkept integer;
BEGIN
	-- No records (a batch of other entities): nothing to read.
	IF jsonb_array_length(records) = 0 THEN
		SELECT * INTO applied, stale, touched, report
		FROM ipamd.applied_none();
		RETURN;
	END IF;
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(records)
		    AS x(seq bigint, id text, gv bigint, lo bigint[],
			reset boolean, op text, v bigint, lsn bigint,
			keep text[], kb jsonb, vrf text, hostname text, ip inet,
			mac text,
			device_type text, manufacture text, by text, topic text,
			part integer, off bigint)
	), dec AS (
		SELECT inp.*, s.tid, s.id IS NOT NULL AS known,
		    s.version AS old_v,
		    coalesce(s.deleted, true) AS old_deleted, s.vrf AS old_vrf,
		    s.ip_address AS old_ip, s.hostname AS old_hostname,
		    s.nic_mac AS old_mac, s.device_type AS old_device_type,
		    s.manufacture AS old_manufacture, f.lsn AS floor_lsn,
		    ipamd.entity_action(inp.gv, inp.reset, inp.op, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS action,
		    ipamd.stale_events(inp.gv, inp.lo, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS n_stale
		FROM inp
		-- One probe of the primary key a record, whatever the planner
		-- guesses of the records (100): a hash of the whole table for a
		-- batch of 20 cost more than the rest of its apply.
		LEFT JOIN LATERAL (SELECT s.ctid AS tid, s.id, s.version,
			s.deleted, s.vrf, s.ip_address, s.hostname, s.nic_mac,
			s.device_type, s.manufacture
		    FROM server s WHERE s.id = inp.id OFFSET 0) s ON true
		LEFT JOIN truncation f ON f.topic = inp.topic
	), forgot AS (
		DELETE FROM server s USING dec
		WHERE s.ctid = dec.tid AND dec.action = 'forget'
		RETURNING 1
	), w AS (
		SELECT tid, known, id, v AS version, lsn,
		    action = 'delete' AS deleted,
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END AS vrf,
		    CASE WHEN action <> 'upsert' THEN NULL
			WHEN ipamd.keeps(keep, kb, 'hostname', known, old_v,
			    floor_lsn) THEN old_hostname
			ELSE hostname END AS hostname,
		    CASE WHEN action = 'upsert' THEN ip END AS ip_address,
		    CASE WHEN action <> 'upsert' THEN NULL
			WHEN ipamd.keeps(keep, kb, 'nic_mac', known, old_v,
			    floor_lsn) THEN old_mac
			ELSE mac END AS nic_mac,
		    CASE WHEN action <> 'upsert' THEN NULL
			WHEN ipamd.keeps(keep, kb, 'device_type', known, old_v,
			    floor_lsn) THEN old_device_type
			ELSE device_type END AS device_type,
		    CASE WHEN action <> 'upsert' THEN NULL
			WHEN ipamd.keeps(keep, kb, 'manufacture', known, old_v,
			    floor_lsn) THEN old_manufacture
			ELSE manufacture END AS manufacture,
		    topic, part, off
		FROM dec WHERE action IN ('upsert', 'delete')
	), changed AS (
		UPDATE server s SET version = w.version, lsn = w.lsn,
		    deleted = w.deleted, vrf = w.vrf, hostname = w.hostname,
		    ip_address = w.ip_address, nic_mac = w.nic_mac,
		    device_type = w.device_type, manufacture = w.manufacture,
		    source_topic = w.topic, source_partition = w.part,
		    source_offset = w.off, updated_at = now()
		FROM w
		WHERE s.ctid = w.tid AND w.known
		RETURNING 1
	), added AS (
		INSERT INTO server (id, version, lsn, deleted, vrf, hostname,
		    ip_address, nic_mac, device_type, manufacture,
		    source_topic, source_partition, source_offset, updated_at)
		SELECT id, version, lsn, deleted, vrf, hostname, ip_address,
		    nic_mac, device_type, manufacture,
		    topic, part, off, now()
		FROM w WHERE NOT w.known
		RETURNING 1
	), addrs AS (
		SELECT old_vrf AS vrf, old_ip AS ip, seq, topic, part, off, by
		FROM dec
		WHERE action <> 'none' AND NOT old_deleted AND old_ip IS NOT NULL
		UNION ALL
		SELECT coalesce(vrf, ''), ip, seq, topic, part, off, by
		FROM dec WHERE action = 'upsert' AND ip IS NOT NULL
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT coalesce(sum(n_stale), 0) FROM dec),
	    (SELECT coalesce(array_agg(ROW(a.vrf, a.ip, a.seq, a.topic, a.part,
		a.off, a.by)::ipamd.touch), '{}') FROM addrs a),
	    (SELECT ipamd.stale_report(
		array_agg(ipamd.stale_note('server', id, topic, part, off, gv,
		    lsn, floor_lsn, old_v)) FILTER (WHERE n_stale > 0),
		array_agg(n_stale::bigint) FILTER (WHERE n_stale > 0),
		array_agg(topic) FILTER (WHERE n_stale > 0)) FROM dec),
	    (SELECT count(*) FROM dec WHERE action = 'forget')
		+ (SELECT count(*) FROM w WHERE known),
	    (SELECT count(*) FROM forgot) + (SELECT count(*) FROM changed),
	    (SELECT ipamd.warn_unkept('server', array_agg(DISTINCT id),
		array_agg(DISTINCT f))
		FROM dec, unnest(dec.keep) AS f
		WHERE action = 'upsert' AND old_deleted)
	INTO applied, stale, touched, report, meant, written, unkept;
	PERFORM ipamd.check_written('server', meant, written);
END
$$;

-- Marks: the touched are the old and the new address.
CREATE OR REPLACE FUNCTION ipamd.apply_marks_set(records jsonb,
    OUT applied bigint, OUT stale bigint, OUT touched ipamd.touch[],
    OUT report jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	meant bigint;
	written bigint;
BEGIN
	WITH inp AS (
		SELECT * FROM jsonb_to_recordset(records)
		    AS x(seq bigint, id text, gv bigint, lo bigint[],
			reset boolean, op text, v bigint, lsn bigint,
			keep text[], vrf text, address inet, status text,
			description text, reason text, by text, topic text,
			part integer,
			off bigint)
	), dec AS (
		SELECT inp.*, s.tid, s.id IS NOT NULL AS known,
		    s.version AS old_v,
		    coalesce(s.deleted, true) AS old_deleted, s.vrf AS old_vrf,
		    s.address AS old_address, f.lsn AS floor_lsn,
		    ipamd.entity_action(inp.gv, inp.reset, inp.op, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS action,
		    ipamd.stale_events(inp.gv, inp.lo, inp.lsn, f.lsn,
			s.id IS NOT NULL, s.version) AS n_stale
		FROM inp
		-- One probe of the primary key a record (see apply_servers).
		LEFT JOIN LATERAL (SELECT s.ctid AS tid, s.id, s.version,
			s.deleted, s.vrf, s.address
		    FROM mark s WHERE s.id = inp.id OFFSET 0) s ON true
		LEFT JOIN truncation f ON f.topic = inp.topic
	), forgot AS (
		DELETE FROM mark s USING dec
		WHERE s.ctid = dec.tid AND dec.action = 'forget'
		RETURNING 1
	), w AS (
		SELECT tid, known, id, v AS version, lsn,
		    action = 'delete' AS deleted,
		    CASE WHEN action = 'upsert' THEN coalesce(vrf, '')
			ELSE coalesce(old_vrf, vrf, '') END AS vrf,
		    CASE WHEN action = 'upsert' THEN address END AS address,
		    CASE WHEN action = 'upsert' THEN status END AS status,
		    CASE WHEN action = 'upsert' THEN description
			END AS description,
		    CASE WHEN action = 'upsert' THEN reason END AS reason,
		    by AS requested_by,
		    topic, part, off
		FROM dec WHERE action IN ('upsert', 'delete')
	), changed AS (
		UPDATE mark s SET version = w.version, lsn = w.lsn,
		    deleted = w.deleted, vrf = w.vrf, address = w.address,
		    status = w.status, description = w.description,
		    reason = w.reason, requested_by = w.requested_by,
		    source_topic = w.topic, source_partition = w.part,
		    source_offset = w.off, updated_at = now()
		FROM w
		WHERE s.ctid = w.tid AND w.known
		RETURNING 1
	), added AS (
		INSERT INTO mark (id, version, lsn, deleted, vrf, address,
		    status, description, reason, requested_by,
		    source_topic, source_partition, source_offset, updated_at)
		SELECT id, version, lsn, deleted, vrf, address, status,
		    description, reason, requested_by,
		    topic, part, off, now()
		FROM w WHERE NOT w.known
		RETURNING 1
	), addrs AS (
		SELECT old_vrf AS vrf, old_address AS ip, seq, topic, part, off
		FROM dec
		WHERE action <> 'none' AND NOT old_deleted
		    AND old_address IS NOT NULL
		UNION ALL
		SELECT coalesce(vrf, ''), address, seq, topic, part, off
		FROM dec WHERE action = 'upsert'
	)
	SELECT (SELECT count(*) FROM dec WHERE action <> 'none'),
	    (SELECT coalesce(sum(n_stale), 0) FROM dec),
	    (SELECT coalesce(array_agg(ROW(a.vrf, a.ip, a.seq, a.topic, a.part,
		a.off, NULL)::ipamd.touch), '{}') FROM addrs a),
	    (SELECT ipamd.stale_report(
		array_agg(ipamd.stale_note('mark', id, topic, part, off, gv,
		    lsn, floor_lsn, old_v)) FILTER (WHERE n_stale > 0),
		array_agg(n_stale::bigint) FILTER (WHERE n_stale > 0),
		array_agg(topic) FILTER (WHERE n_stale > 0)) FROM dec),
	    (SELECT count(*) FROM dec WHERE action = 'forget')
		+ (SELECT count(*) FROM w WHERE known),
	    (SELECT count(*) FROM forgot) + (SELECT count(*) FROM changed)
	INTO applied, stale, touched, report, meant, written;
	PERFORM ipamd.check_written('mark', meant, written);
END
$$;

-- Why an operator's request may not apply now (NULL: it may): its
-- preconditions against the marks and servers as they stand.
CREATE OR REPLACE FUNCTION ipamd.request_refusal(r jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
	want_vrf text := coalesce(r->>'vrf', '');
	want_ip inet := (r->>'address')::inet;
	holder text;
	etag text;
BEGIN
	IF coalesce((r->>'ifa')::boolean, false) THEN
		SELECT format('%s is %s%s', host(want_ip), m.status,
		    coalesce(' (by ' || m.requested_by || ')', ''))
		INTO holder
		FROM mark m
		WHERE m.vrf = want_vrf AND m.address = want_ip
		    AND NOT m.deleted;
		IF holder IS NOT NULL THEN
			RETURN holder;
		END IF;
		SELECT format('%s is held by server %s', host(want_ip),
		    string_agg(s.id, ', ' ORDER BY ipamd.id_key(s.id)))
		INTO holder
		FROM server s
		WHERE s.vrf = want_vrf AND s.ip_address = want_ip
		    AND NOT s.deleted
		HAVING count(*) > 0;
		IF holder IS NOT NULL THEN
			RETURN holder;
		END IF;
	END IF;
	IF r->>'ifm' IS NOT NULL THEN
		etag := ipamd.address_etag(want_vrf, want_ip);
		IF etag <> r->>'ifm' THEN
			RETURN format('%s changed: its etag is %s, not %s',
			    host(want_ip), etag, r->>'ifm');
		END IF;
	END IF;
	RETURN NULL;
END
$$;

-- Marks: the keys without operator requests are applied set-based; the
-- events of a key with requests one at a time in batch order, each
-- request decided against what its predecessors left and its outcome
-- kept in ipamd.request (a refused one in the audit too).  A request
-- decided before (a replay, a rebuild) keeps its first outcome, and the
-- state follows it.  Servers and truncates of the same batch are applied
-- before the marks: a request is decided against the batch's servers,
-- also those that came after it in Kafka (docs/EVENTS.md).
CREATE OR REPLACE FUNCTION ipamd.apply_marks(records jsonb,
    OUT applied bigint, OUT stale bigint, OUT touched ipamd.touch[],
    OUT report jsonb)
LANGUAGE plpgsql AS $$
DECLARE
	r jsonb;
	one record;
	refusal text;
	known_outcome text;
	known_detail text;
	known_digest text;
BEGIN
	-- No records (a batch of other entities): nothing to read.
	IF jsonb_array_length(records) = 0 THEN
		SELECT * INTO applied, stale, touched, report
		FROM ipamd.applied_none();
		RETURN;
	END IF;
	-- A request kept at the place of one of these records is another
	-- event's: the topic was deleted and made again, and counts its
	-- offsets anew.  Its coordinates no longer name its event, so the
	-- audit must not take its requester for this record's.
	UPDATE ipamd.request q
	SET topic = NULL, partition = NULL, "offset" = NULL
	FROM jsonb_to_recordset(records) AS x(topic text, part integer,
	    off bigint, rid text)
	WHERE q.topic = x.topic AND q.partition = x.part
	    AND q."offset" = x.off AND q.id IS DISTINCT FROM x.rid;
	SELECT * INTO applied, stale, touched, report
	FROM ipamd.apply_marks_set(coalesce((SELECT jsonb_agg(x)
	    FROM jsonb_array_elements(records) AS x
	    WHERE NOT coalesce((x->>'one')::boolean, false)), '[]'));
	FOR r IN
		SELECT x FROM jsonb_array_elements(records) AS x
		WHERE coalesce((x->>'one')::boolean, false)
		ORDER BY (x->>'seq')::bigint
	LOOP
		-- A request decided before (a replay, a rebuild) keeps that
		-- outcome: the state follows what was answered.  Another
		-- request under its id is refused whole (the apply isolates
		-- the event into a dead letter): taken for the first, it would
		-- skip its own preconditions.
		SELECT q.outcome, q.detail, q.digest
		INTO known_outcome, known_detail, known_digest
		FROM ipamd.request q WHERE q.id = r->>'rid';
		-- A digest of another version (consumers/batch.c) says
		-- nothing: taken for a replay, as a request stored before any.
		IF known_digest IS DISTINCT FROM r->>'rdg'
		    AND split_part(known_digest, ':', 1) =
			split_part(r->>'rdg', ':', 1) THEN
			RAISE EXCEPTION 'request %: its CloudEvent id names '
			    'another request, % before; each request needs an '
			    'id of its own (the same id again is taken for a '
			    'replay only when it asks the same)',
			    to_json(r->>'rid'), known_outcome
			    USING ERRCODE = 'raise_exception';
		END IF;
		IF known_outcome IS NOT NULL THEN
			refusal := CASE WHEN known_outcome = 'refused'
			    THEN known_detail END;
		ELSE
			refusal := CASE WHEN r ? 'rid'
			    THEN ipamd.request_refusal(r) END;
		END IF;
		IF refusal IS NULL THEN
			SELECT * INTO one FROM ipamd.apply_marks_set(
			    jsonb_build_array(r));
			applied := applied + one.applied;
			stale := stale + one.stale;
			touched := touched || one.touched;
			report := ipamd.stale_report_merge(report, one.report);
			IF one.stale > 0 THEN
				refusal := 'outdated by a newer version of the mark';
			END IF;
		END IF;
		IF refusal IS NOT NULL AND known_outcome IS NULL AND r ? 'rid' THEN
			-- Not an image: the request and why it was refused.
			INSERT INTO ipamd.audit_log (vrf, ip_address, action,
			    after, source_topic, source_partition,
			    source_offset, requested_by)
			VALUES (coalesce(r->>'vrf', ''), (r->>'address')::inet,
			    'refused', jsonb_build_object('op', r->>'op',
				'status', r->>'status',
				'description', r->>'description',
				'reason', r->>'reason', 'refusal', refusal),
			    r->>'topic', (r->>'part')::integer,
			    (r->>'off')::bigint, r->>'by');
		END IF;
		CONTINUE WHEN NOT r ? 'rid';
		INSERT INTO ipamd.request (id, topic, partition, "offset",
		    requested_by, vrf, address, outcome, detail, digest)
		VALUES (r->>'rid', r->>'topic', (r->>'part')::integer,
		    (r->>'off')::bigint, r->>'by', coalesce(r->>'vrf', ''),
		    (r->>'address')::inet,
		    CASE WHEN refusal IS NULL THEN 'applied' ELSE 'refused' END,
		    refusal, r->>'rdg')
		ON CONFLICT (id) DO NOTHING;
	END LOOP;
END
$$;

-- Truncates (Debezium op t): each raises its topic's floor to its lsn and
-- forgets every entity of that topic older than it (an entity another
-- topic changed last is not this table's any more).  Returns the touched
-- addresses and subnet regions, and how many entities went.
CREATE OR REPLACE FUNCTION ipamd.apply_truncates(records jsonb,
    OUT forgotten bigint, OUT touched ipamd.touch[],
    OUT regions ipamd.touch[])
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	r record;
BEGIN
	forgotten := 0;
	touched := '{}';
	regions := '{}';
	-- The last truncate of each topic in the batch: the highest floor.
	FOR r IN SELECT DISTINCT ON (x.topic) x.*
	    FROM jsonb_to_recordset(records) AS x(seq bigint, entity text,
		lsn bigint, topic text, part integer, off bigint)
	    ORDER BY x.topic, x.lsn DESC
	LOOP
		INSERT INTO truncation AS t (topic, entity, lsn)
		VALUES (r.topic, r.entity, r.lsn)
		ON CONFLICT (topic) DO UPDATE SET lsn = greatest(t.lsn,
		    excluded.lsn), entity = excluded.entity, truncated_at = now();
		IF r.entity = 'server' THEN
			WITH gone AS (
				DELETE FROM server s
				WHERE s.source_topic = r.topic
				    AND (s.lsn IS NULL OR s.lsn < r.lsn)
				RETURNING s.vrf, s.ip_address, s.deleted)
			SELECT touched || coalesce(array_agg(ROW(g.vrf,
			    g.ip_address, r.seq, r.topic, r.part,
			    r.off, NULL)::ipamd.touch) FILTER (WHERE NOT g.deleted
			    AND g.ip_address IS NOT NULL), '{}'), count(*)
			INTO touched, n FROM gone g;
		ELSIF r.entity = 'subnet' THEN
			WITH gone AS (
				DELETE FROM subnet s
				WHERE s.source_topic = r.topic
				    AND (s.lsn IS NULL OR s.lsn < r.lsn)
				RETURNING s.vrf, s.cidr, s.deleted)
			SELECT regions || coalesce(array_agg(ROW(g.vrf,
			    g.cidr::inet, r.seq, r.topic, r.part,
			    r.off, NULL)::ipamd.touch) FILTER (WHERE NOT g.deleted),
			    '{}'), count(*)
			INTO regions, n FROM gone g;
		ELSE
			RAISE EXCEPTION 'a truncate of % entities is not '
			    'supported', r.entity USING ERRCODE = '22023';
		END IF;
		forgotten := forgotten + n;
	END LOOP;
END
$$;
