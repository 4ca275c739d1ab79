-- Retention: the audit, the dead letters and the outcomes of operator
-- requests are removed by age, a small batch per transaction, on a
-- connection of the retention job's own (daemon/retention.c); and the
-- figures that job reads for /metrics.
--
-- Why small batches: one DELETE of every old row would hold its row
-- locks, and the dead tuples' WAL, for as long as it runs, and a
-- migration's ALTER TABLE queued behind it would queue the apply behind
-- itself.  A batch of a few thousand rows commits in milliseconds.
--
-- Why the oldest rows are found through the primary key: ipamd.audit and
-- ipamd.dead_letter take their id from a sequence in the transaction that
-- writes their time (changed_at, received_at: now()), so the order of ids
-- is the order of times, up to the length of one transaction.  The
-- oldest rows are thus the first ids, and a batch is the first ids that
-- are old enough: an index scan of the primary key, with no index on the
-- time that every apply would have to keep up.  A row out of order by a
-- transaction's length waits behind a newer one until that one is old
-- too: at most one transaction's length later.
--
-- Several instances may share the database: each table's batch takes a
-- transaction-level advisory lock first, and an instance that does not get
-- it leaves the table to the one pruning it (NULL: nothing was done).  The
-- rows are chosen FOR UPDATE SKIP LOCKED, so a row another session holds
-- is left for a later run, never waited for.

-- ipamd.request has a text primary key (the event's id): its outcomes are
-- found by time through this index.  It lives here, not in a numbered
-- migration, because it serves only this file's function; requests are
-- few (one per operator write), so building it at start takes no time.
CREATE INDEX IF NOT EXISTS request_decided_idx
	ON ipamd.request (decided_at);

-- Removes at most batch_rows rows of one table ('audit', 'dead_letter' or
-- 'request') older than days days, in the caller's transaction (one
-- statement: one short transaction).  Returns the number removed, or NULL
-- when another session is pruning that table now.  days <= 0 keeps every
-- row.
CREATE OR REPLACE FUNCTION ipamd.retention_prune(tbl text, days integer,
    batch_rows integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	cutoff timestamptz;
	removed bigint;
BEGIN
	IF tbl NOT IN ('audit', 'dead_letter', 'request') THEN
		RAISE EXCEPTION 'retention: unknown table %', tbl;
	END IF;
	IF days IS NULL OR days <= 0 THEN
		RETURN 0;
	END IF;
	-- 7369749: the retention's lock class, the second key naming the
	-- table.  Not 7369748: each sweep member holds (7369748, its id),
	-- and ipamd.sweep_live_members() counts every holder of that class
	-- as a member (member 1 held the audit's lock for its session: the
	-- audit was never pruned).  The migrations lock 7369746 and the
	-- apply 7369747, each a single bigint key.
	IF NOT pg_try_advisory_xact_lock(7369749, CASE tbl
	    WHEN 'audit' THEN 1 WHEN 'dead_letter' THEN 2 ELSE 3 END) THEN
		RETURN NULL;
	END IF;
	-- The cutoff on the database's clock, as the rows' times are.
	cutoff := clock_timestamp() - make_interval(days => days);
	IF tbl = 'request' THEN
		DELETE FROM ipamd.request
		WHERE id IN (SELECT r.id FROM ipamd.request r
			WHERE r.decided_at < cutoff
			ORDER BY r.decided_at LIMIT batch_rows
			FOR UPDATE SKIP LOCKED);
	ELSE
		-- The first batch_rows ids, and of them the old ones and,
		-- up to the last old one, those stamped in the future: ids
		-- follow time, so a row before an old one is old too.  A
		-- clock set ahead for a while stamped such rows: they go with
		-- their neighbours instead of stopping the prune where they
		-- stand.  A window of nothing but future rows goes when the
		-- first row after it stamped no later than now is old, looked
		-- for among the next 20 windows at most (a longer stretch of
		-- them waits until its own times pass the cutoff).
		EXECUTE format('DELETE FROM ipamd.%1$I WHERE id IN ('
		    'SELECT t.id FROM ipamd.%1$I t WHERE t.id <= ('
		    'SELECT coalesce(max(w.id) FILTER (WHERE w.at < $2), '
		    'CASE WHEN bool_and(w.at > clock_timestamp()) AND ('
		    'SELECT x.at < $2 FROM (SELECT n.id, n.%2$I AS at '
		    'FROM ipamd.%1$I n WHERE n.id > max(w.id) '
		    'ORDER BY n.id LIMIT 20 * $1) x '
		    'WHERE x.at <= clock_timestamp() ORDER BY x.id LIMIT 1) '
		    'THEN max(w.id) END) '
		    'FROM (SELECT h.id, h.%2$I AS at FROM ipamd.%1$I h '
		    'ORDER BY h.id LIMIT $1) w) '
		    'AND (t.%2$I < $2 OR t.%2$I > clock_timestamp()) '
		    'ORDER BY t.id LIMIT $1 FOR UPDATE SKIP LOCKED)',
		    CASE tbl WHEN 'audit' THEN 'audit_log' ELSE tbl END,
		    CASE tbl WHEN 'audit' THEN 'changed_at'
		    ELSE 'received_at' END)
		USING batch_rows, cutoff;
	END IF;
	GET DIAGNOSTICS removed = ROW_COUNT;
	RETURN removed;
END
$$;

-- The figures /metrics shows from the database, each read through an
-- index or from a small table: the conflicts now by kind, the dead
-- letters kept, and the time (seconds since the epoch) of the oldest row
-- of each pruned table (NULL when it is empty): of the audit and the dead
-- letters, the oldest of their first 1,000 ids not stamped in the future
-- (a clock set ahead for a while), else of those ids.
CREATE OR REPLACE FUNCTION ipamd.retention_figures() RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
	SELECT jsonb_build_object(
	    'conflicts', coalesce((SELECT jsonb_object_agg(c.kind, c.n)
		FROM (SELECT kind, count(*) AS n FROM public.ipam_conflict
		    GROUP BY kind) c), '{}'),
	    'dead_letters', (SELECT count(*) FROM ipamd.dead_letter),
	    'oldest', jsonb_build_object(
		'audit', (SELECT extract(epoch FROM coalesce(
		    min(w.at) FILTER (WHERE w.at <= clock_timestamp()),
		    min(w.at))) FROM (SELECT a.changed_at AS at
		    FROM ipamd.audit_log a ORDER BY a.id LIMIT 1000) w),
		'dead_letter', (SELECT extract(epoch FROM coalesce(
		    min(w.at) FILTER (WHERE w.at <= clock_timestamp()),
		    min(w.at))) FROM (SELECT d.received_at AS at
		    FROM ipamd.dead_letter d ORDER BY d.id LIMIT 1000) w),
		'request', (SELECT extract(epoch FROM min(r.decided_at))
		    FROM ipamd.request r)))
$$;
