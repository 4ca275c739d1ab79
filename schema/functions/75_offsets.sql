-- Where partitions resume: the stored offsets a consumer reads when the
-- group assigns it partitions.

-- The stored next offsets of some partitions of a group, in the state
-- schema target, each with the fingerprint of the record before it (NULL
-- when not known, or written for another offset: one moved by hand).  It
-- first waits for an apply in flight (by this or another
-- instance: a revoked owner's last batch may still move these
-- partitions), then reads what that apply committed.
DROP FUNCTION IF EXISTS ipamd.stored_offsets(text, text, text[], integer[]);
CREATE FUNCTION ipamd.stored_offsets(group_name text,
    target text, topics text[], parts integer[])
RETURNS TABLE (topic text, part integer, next_offset bigint,
    last_fingerprint bigint)
LANGUAGE plpgsql AS $$
BEGIN
	IF target NOT IN ('ipam_state', 'ipam_state_rebuild') THEN
		RAISE EXCEPTION 'unknown state schema %', target;
	END IF;
	PERFORM pg_advisory_xact_lock_shared(7369747);
	RETURN QUERY EXECUTE format('SELECT o.topic, o.partition, '
	    'o.next_offset, CASE WHEN o.fingerprint_of = o.next_offset '
	    'THEN o.last_fingerprint END FROM %I.consumer_offset o '
	    'JOIN unnest($2, $3) AS u(t, p) '
	    'ON o.topic = u.t AND o.partition = u.p '
	    'WHERE o.group_id = $1', target)
	    USING group_name, topics, parts;
END
$$;
