-- A subnet's static pools as they were sent, beside the pools it has.
--
-- The pools of an IPv4 subnet of /30 or shorter are kept off its network
-- and broadcast addresses (pool_first, pool_last: what the derivation
-- reads).  A Debezium update whose pools were not sent (a TOAST
-- placeholder: the column did not change) keeps them from the stored
-- subnet, and when that update changes the cidr they are held to the new
-- one.  Kept as they were held to the old cidr, they had lost the old
-- network and broadcast addresses, which the new cidr may hold as plain
-- addresses: the same row sent whole gave another table.  From here the
-- subnet keeps its pools as sent when they differ from the pools it has
-- (NULL otherwise, as for every subnet stored before this migration,
-- whose pools as sent are not known: theirs are taken for them).
--
-- A rebuild under way has its own subnet table, written by the same
-- functions.
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['ipam_state.subnet',
	    'ipam_state_rebuild.subnet']
	LOOP
		CONTINUE WHEN to_regclass(t) IS NULL;
		EXECUTE format('ALTER TABLE %s '
		    'ADD COLUMN pool_sent_first inet[], '
		    'ADD COLUMN pool_sent_last inet[], '
		    'ADD CONSTRAINT subnet_pool_sent_check CHECK '
		    '(cardinality(pool_sent_first) = '
		    'cardinality(pool_sent_last))', t);
	END LOOP;
END
$$;
