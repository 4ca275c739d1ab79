-- The order-and-versions rule, written once (docs/STATE.md, "Order and
-- versions").  Every entity stage decides with these two functions.
--
-- The daemon collapses the events of one entity key within a batch into
-- one net record (consumers/batch.c), exactly what applying them one by
-- one would leave:
--   gv     the highest version of the versioned events that came before
--          any reset (NULL: none); they apply only if gv is newer than
--          the stored version
--   lo     the versions of the events of that prefix that raised the
--          highest version so far before gv: each is stale if the
--          stored version is not older
--   reset  a Kafka tombstone or an unversioned event came after the
--          prefix: the record's op is then the key's state whatever is
--          stored
--   op     'upsert', 'delete' (a tombstone with its version, so a late
--          older upsert cannot bring the entity back) or 'forget' (no
--          row at all: a Kafka tombstone or an unversioned delete)
--   lsn    the Debezium position of the event that sets that state
-- A stored version of NULL means the last applied event had none: the
-- next versioned event applies whatever its version.  A truncate of a
-- Debezium table leaves a floor: an event of that topic older than the
-- truncate is stale.

-- What a net record does to the stored entity: 'none', 'upsert',
-- 'delete' or 'forget'.  A plain SQL function, inlined.
CREATE OR REPLACE FUNCTION ipamd.entity_action(gv bigint, reset boolean,
    op text, lsn bigint, floor_lsn bigint, known boolean, stored_v bigint)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
	    WHEN lsn < floor_lsn THEN 'none'
	    WHEN reset THEN CASE WHEN op = 'forget' AND NOT known THEN 'none'
		ELSE op END
	    WHEN gv IS NULL THEN 'none'
	    WHEN NOT known OR stored_v IS NULL OR gv > stored_v THEN op
	    ELSE 'none' END
$$;

-- How many events of a net record are stale against what is stored (the
-- events the batch itself found stale are counted by the daemon).  lo
-- rises strictly (each of its versions raised the highest before it), so
-- the number of its versions at or below the stored one is the bucket
-- width_bucket() finds.  A plain SQL function, inlined: a sub-select here
-- would make it a call of its own per record (a fifth of a server
-- upsert's time).
CREATE OR REPLACE FUNCTION ipamd.stale_events(gv bigint, lo bigint[],
    lsn bigint, floor_lsn bigint, known boolean, stored_v bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
	    WHEN lsn < floor_lsn THEN 1 + coalesce(cardinality(lo), 0)
	    WHEN NOT known OR stored_v IS NULL THEN 0
	    ELSE coalesce((gv <= stored_v)::integer, 0)
		+ CASE WHEN cardinality(lo) > 0
		    THEN width_bucket(stored_v, lo) ELSE 0 END END
$$;

-- One stale record for the log: the key, the event's and the stored
-- version (or the truncate that outdates it).  STABLE as
-- jsonb_build_object() is, so that it is inlined (ipamd.id_key()).
CREATE OR REPLACE FUNCTION ipamd.stale_note(entity text, id text, topic text,
    part integer, off bigint, gv bigint, lsn bigint, floor_lsn bigint,
    stored_v bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('entity', entity, 'id', id, 'topic', topic,
	    'part', part, 'off', off, 'version', coalesce(gv, lsn),
	    'stored', stored_v, 'truncated_at', CASE WHEN lsn < floor_lsn
		THEN floor_lsn END)
$$;
