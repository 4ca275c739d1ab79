-- What a pass of a subnet means, made exact (schema/functions/
-- 90_sweep.sql).
--
-- A lease now says whether its subnet was probed in its round: the
-- targets of a sweep mark the leases whose addresses they return (ping on,
-- a family the member has a socket for), and only those have their pass
-- counted, together with the sweep's news, in one statement.  Until here
-- a pass was counted for every subnet leased, probed or not (an IPv6
-- subnet of a member without an IPv6 socket, a subnet whose ping was off
-- when the targets were read), and the state rows that follow a subnet's
-- passes showed its silent or unprobed addresses as answering.
ALTER TABLE ipamd.sweep_lease ADD COLUMN probed boolean NOT NULL DEFAULT false;

-- The address families a member has a socket for (4, 6): a subnet is
-- owned only by a member that can probe it, so an instance without IPv6
-- leaves the IPv6 subnets to those with it.
ALTER TABLE ipamd.sweep_member ADD COLUMN families integer[] NOT NULL
    DEFAULT '{4,6}';

-- Every state row's subnet has its row of passes, so that the state of a
-- subnet no longer swept can be found from ipamd.sweep_subnet and pruned.
-- The rows schema 10 carried over from the address table (pass 0) had
-- none until their subnet's first pass.
INSERT INTO ipamd.sweep_subnet (subnet_id, passes, checked_at)
SELECT st.subnet_id, 0, max(st.checked_at)
FROM ipamd.sweep_address st
GROUP BY st.subnet_id
ON CONFLICT (subnet_id) DO NOTHING;

-- The comment of schema/010_sweep_state.sql says that rebuild_swap()
-- still carries the address table's sweeper columns: since 4445344 it
-- carries none of them (only created_at, the tie to the state rows, and
-- an unchanged row's updated_at).  The columns stay, written by nothing.
