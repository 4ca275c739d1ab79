-- The ping sweep shared among several instances (docs/OPERATIONS.md,
-- "Several instances"; the functions are schema/functions/90_sweep.sql).
--
-- Each instance whose sweeper is on is a member while its sweeper's
-- PostgreSQL session lasts: the session holds the advisory lock
-- (7369748, id), and a member whose lock nobody holds is gone.  Each round
-- of interval_ms (on the database's clock) every subnet that allows
-- pinging is leased to one member, until the round ends, and only that
-- member probes its addresses in that round.
--
-- Both tables live in ipamd, not ipam_state: a rebuild swaps ipam_state
-- and must not take the leases of the running sweeps with it.

CREATE TABLE ipamd.sweep_member (
	id		integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	instance	text NOT NULL,		-- host name and process id
	vrfs		text[] NOT NULL,	-- the routing domains it sweeps
	interval_ms	bigint NOT NULL CHECK (interval_ms > 0),
	joined_at	timestamptz NOT NULL DEFAULT now(),
	claimed_at	timestamptz		-- its last claim
);

-- One row per subnet ever leased; member is the one that probes it until
-- expires_at, the end of the round it was claimed for.
CREATE TABLE ipamd.sweep_lease (
	subnet_id	text PRIMARY KEY,
	vrf		text NOT NULL,
	member		integer NOT NULL,
	claimed_at	timestamptz NOT NULL,
	expires_at	timestamptz NOT NULL
);
CREATE INDEX sweep_lease_member_idx ON ipamd.sweep_lease (member, expires_at);
