-- The apply transaction: one call applies one batch of decoded events.
--
-- The functions name the state tables without a schema: apply_batch()
-- points search_path at the state it is asked to fill (ipam_state, or
-- ipam_state_rebuild during a rebuild) for its own transaction only.

-- Applies one batch: offsets (compare-and-set), dead letters, the entity
-- stage (schema/functions/30_entities.sql), truncates, the expansion of
-- changed subnets, the derived rows and conflicts.  It runs as one
-- statement, so it commits or rolls back whole.  Raises SQLSTATE IPM01
-- when an offset has moved away from what the caller read (another
-- consumer owns it now).
CREATE OR REPLACE FUNCTION ipamd.apply_batch(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '64MB'
-- No JIT for the statements of a batch: their cost estimates grow with
-- the guesses for pools and regions (generate_series, unnest), not with
-- what they do, and compiling them took 0.6-1.6 s for a subnet upsert
-- that reads a few index pages (expand_regions at 10,000 subnets).
SET jit = off
AS $$
DECLARE
	group_name text := batch->>'group';
	target text := coalesce(batch->>'schema', 'ipam_state');
	with_audit boolean := coalesce((batch->>'audit')::boolean, true);
	with_derive boolean := coalesce((batch->>'derive')::boolean, true);
	o record;
	moved integer;
	sub record;
	srv record;
	mrk record;
	trn record;
	touched ipamd.touch[];
	regions ipamd.touch[];
	pools record;
	filled bigint := 0;
	derived jsonb;
	subnet_conflicts jsonb := '[]';
	dead bigint;
	result jsonb;
	err_schema text;
	err_table text;
	err_text text;
BEGIN
	IF target NOT IN ('ipam_state', 'ipam_state_rebuild') THEN
		RAISE EXCEPTION 'unknown state schema %', target;
	END IF;
	PERFORM set_config('search_path', target || ', ipamd, public', true);

	-- One apply at a time, whoever runs it: a derived row depends on
	-- entities of every topic and partition, so two applies running side
	-- by side (two instances, or a killed instance's statement still
	-- running) would each miss the other's changes.  Every statement
	-- below takes a fresh snapshot, after the lock, so it sees what the
	-- previous holder committed; the offsets are checked after it too.
	PERFORM pg_advisory_xact_lock(7369747);

	-- fp: the fingerprint of the record before next (schema/
	-- 016_offset_fingerprint.sql), or none.
	FOR o IN SELECT * FROM jsonb_to_recordset(coalesce(batch->'offsets',
	    '[]')) AS x(topic text, part integer, expected bigint, next bigint,
	    fp bigint)
	LOOP
		IF o.expected IS NULL THEN
			INSERT INTO consumer_offset
			    (group_id, topic, partition, next_offset,
			    last_fingerprint, fingerprint_of)
			VALUES (group_name, o.topic, o.part, o.next, o.fp, o.next)
			ON CONFLICT DO NOTHING;
		ELSE
			UPDATE consumer_offset
			SET next_offset = o.next, last_fingerprint = o.fp,
			    fingerprint_of = o.next, updated_at = now()
			WHERE group_id = group_name AND topic = o.topic
			    AND partition = o.part AND next_offset = o.expected;
		END IF;
		GET DIAGNOSTICS moved = ROW_COUNT;
		IF moved <> 1 THEN
			RAISE EXCEPTION 'offset of %[%] is no longer at %',
			    o.topic, o.part, coalesce(o.expected::text, 'the start')
			    USING ERRCODE = 'IPM01',
			    HINT = 'another consumer has taken the partition';
		END IF;
	END LOOP;

	-- Raw bytes as bytea, headers as a JSON array of text or base64
	-- values: nothing a message holds can make this insert fail.
	INSERT INTO ipamd.dead_letter (topic, partition, "offset", key, value,
	    headers, reason)
	SELECT x.topic, x.part, x.off, decode(x.key, 'hex'),
	    decode(x.value, 'hex'), x.headers, x.reason
	FROM jsonb_to_recordset(coalesce(batch->'dead', '[]')) AS x(topic text,
	    part integer, off bigint, key text, value text, headers jsonb,
	    reason text)
	ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS dead = ROW_COUNT;

	SELECT * INTO sub FROM ipamd.apply_subnets(coalesce(batch->'subnets',
	    '[]'));
	SELECT * INTO srv FROM ipamd.apply_servers(coalesce(batch->'servers',
	    '[]'));
	-- After the servers and subnets: a truncate forgets what is older
	-- than it, also an older change that came in the same batch.  Before
	-- the marks: a request is decided against the batch's servers, those
	-- a truncate removes gone (only servers and subnets are truncated).
	SELECT * INTO trn FROM ipamd.apply_truncates(
	    coalesce(batch->'truncates', '[]'));
	SELECT * INTO mrk FROM ipamd.apply_marks(coalesce(batch->'marks',
	    '[]'));
	touched := srv.touched || mrk.touched || trn.touched;
	regions := sub.regions || trn.regions;

	result := jsonb_build_object(
	    'applied', sub.applied + srv.applied + mrk.applied
		+ jsonb_array_length(coalesce(batch->'truncates', '[]')),
	    'stale', sub.stale + srv.stale + mrk.stale,
	    'dead', dead,
	    'truncated', trn.forgotten,
	    'entities', jsonb_build_object(
		'subnet', jsonb_build_array(sub.applied, sub.stale),
		'server', jsonb_build_array(srv.applied, srv.stale),
		'mark', jsonb_build_array(mrk.applied, mrk.stale)),
	    'stale_reports', jsonb_build_array(sub.report, srv.report,
		mrk.report),
	    -- What the daemon found stale within the batch, for its log.
	    'stale_known', coalesce(batch->'stale_known', '{}'));

	-- A rebuild stores the entities only and derives every row once at
	-- the end (ipamd.derive_all): the same rows, far less work.
	IF NOT with_derive THEN
		PERFORM ipamd.analyze_grown(target);
		RETURN result || jsonb_build_object('conflicts', '[]'::jsonb);
	END IF;

	IF cardinality(regions) > 0 THEN
		-- Many subnets changed at once (a first start, a replay of the
		-- topic): the planner must see what the subnet table holds now,
		-- or it finds each region's subnets by routing domain instead of
		-- through the GiST index on cidr (5,000 new subnets into an
		-- empty table: 2.4 s instead of 0.2).
		IF cardinality(regions) >= 100 THEN
			PERFORM ipamd.analyze_grown(target);
		END IF;
		SELECT * INTO pools FROM ipamd.expand_regions(regions, touched,
		    with_audit);
		touched := touched || pools.touched;
		filled := pools.filled;
		subnet_conflicts := ipamd.refresh_subnet_conflicts(
		    ipamd.subnets_around(regions));
	END IF;

	derived := ipamd.derive(touched, with_audit);
	-- The plain pool rows the expansion wrote count as derived.
	IF filled > 0 THEN
		derived := derived || jsonb_build_object(
		    'touched', (derived->>'touched')::bigint + filled,
		    'inserted', (derived->>'inserted')::bigint + filled,
		    'audited', (derived->>'audited')::bigint
			+ CASE WHEN with_audit THEN filled ELSE 0 END);
	END IF;
	-- An ANALYZE inside the apply holds this batch and every event behind
	-- it: 0.1-0.4 s for an address table of 100,000 rows, which was the
	-- p99 of a steady stream of small batches.  Small batches leave the
	-- statistics to autovacuum (a table analyzed once a tenth of it has
	-- changed); large ones (a first start, a backlog, a pool) still
	-- check, so that a table filled from empty in a few batches is
	-- planned as what it holds now.
	IF cardinality(touched) + filled >= 1000 THEN
		PERFORM ipamd.analyze_grown(target);
	END IF;
	RETURN derived || result || jsonb_build_object('conflicts',
	    (derived->'conflicts') || subnet_conflicts);
EXCEPTION WHEN unique_violation THEN
	-- A key of the state that the batch's reads did not see: a row
	-- inserted without the apply lock while it ran (a batch holds one
	-- record per key).  Like a row changed under a ctid write
	-- (ipamd.check_written): applied again, not lost as a dead letter.
	GET STACKED DIAGNOSTICS err_schema = SCHEMA_NAME,
	    err_table = TABLE_NAME, err_text = MESSAGE_TEXT;
	IF err_schema = target
	    AND err_table IN ('subnet', 'server', 'mark', 'address') THEN
		RAISE EXCEPTION 'a row of % was inserted while the apply wrote it (%)',
		    err_table, err_text
		    USING ERRCODE = '40001',
		    HINT = 'something wrote the state without the apply lock; the batch is applied again';
	END IF;
	RAISE;
END
$$;
