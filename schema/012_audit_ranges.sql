-- One audit row for a run of pool addresses made alike.
--
-- A new or grown static pool writes most of its addresses as plain rows
-- (schema/functions/40_expand.sql): the subnet's, available, static, all
-- with one image.  Until here each got an audit row of its own, as many
-- audit rows as addresses: about half the time of a /12 pool (1,048,574
-- rows).  From here such a run of consecutive addresses, inserted by one
-- event with one image, is one audit row: ip_address is the first address
-- of the run and ip_last the last, and the row stands for the insert of
-- every address from one to the other.  Every other audit row is one
-- address's, with ip_last NULL, as before.  Readers of an address's
-- history look for the rows that name it and for the runs that hold it
-- (ipamd.api_address(), schema/functions/95_api.sql).
ALTER TABLE ipamd.audit ADD COLUMN ip_last inet;

-- A run is an insert of at least two addresses of one family.  NOT VALID:
-- the rows already there have no ip_last, and checking them would read
-- the whole history at the upgrade; the rows written from here are
-- checked.
ALTER TABLE ipamd.audit ADD CONSTRAINT audit_range_check
	CHECK (ip_last IS NULL OR (action = 'insert'
	    AND family(ip_last) = family(ip_address)
	    AND ip_last > ip_address)) NOT VALID;

-- The runs that may hold an address: those of its vrf that begin at or
-- before it.  Runs are few (one per pool range an event filled, split
-- only where an address of the range was not plain).
CREATE INDEX audit_range_idx ON ipamd.audit (vrf, ip_address)
	WHERE ip_last IS NOT NULL;
