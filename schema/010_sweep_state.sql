-- The sweeper's state in narrow tables of its own (schema/functions/
-- 90_sweep.sql derives the columns operators see from them).
--
-- Until schema 9 every sweep wrote active, missed_sweeps, last_checked_at,
-- last_seen_at and rtt_us into every address row it probed: 65,534 row
-- versions for a /16 whose hosts all answered as before, each contending
-- with the apply for the same rows.  From here a sweep writes one row per
-- subnet it swept (sweep_subnet: when, and how many sweeps so far), and a
-- row of sweep_address only for an address whose state changes; the
-- columns of public.ipam follow from the two.  The address rows are never
-- written by the sweeper again.
--
-- Both tables live in ipamd, like the leases: a rebuild swaps ipam_state
-- and must not take the sweeper's state with it.  A state row belongs to
-- one address row, the one whose created_at it holds: an address row that
-- is deleted and made again later starts as never checked, as it did when
-- the columns were the row's own.

-- One row per subnet ever swept: passes counts its complete sweeps, and
-- checked_at is when the last of them began probing.
CREATE TABLE ipamd.sweep_subnet (
	subnet_id	text PRIMARY KEY,
	passes		bigint NOT NULL,
	checked_at	timestamptz NOT NULL
);

-- An address's state as of pass `pass` of its subnet, written when it
-- changed.  answered: it answered that pass (and, as no row was written
-- since, every later pass of subnet_id); else it was silent from that
-- pass on, missed_sweeps counting the passes up to that one.
CREATE TABLE ipamd.sweep_address (
	vrf		text NOT NULL,
	ip_address	inet NOT NULL,
	row_created_at	timestamptz NOT NULL,	-- the address row's created_at
	subnet_id	text NOT NULL,
	pass		bigint NOT NULL,
	active		boolean NOT NULL,
	answered	boolean NOT NULL,
	missed_sweeps	integer NOT NULL,
	rtt_us		integer,
	checked_at	timestamptz NOT NULL,
	seen_at		timestamptz,
	PRIMARY KEY (vrf, ip_address),
	CHECK (NOT answered OR (rtt_us IS NOT NULL AND seen_at IS NOT NULL
	    AND missed_sweeps = 0))
);
CREATE INDEX sweep_address_subnet_idx ON ipamd.sweep_address (subnet_id);

-- What the sweeps wrote so far moves over; an address never checked gets
-- no row.  The columns of ipam_state.address stay (rebuild_swap still
-- carries them) but nothing writes or reads them any more.
INSERT INTO ipamd.sweep_address (vrf, ip_address, row_created_at,
    subnet_id, pass, active, answered, missed_sweeps, rtt_us, checked_at,
    seen_at)
SELECT a.vrf, a.ip_address, a.created_at, a.subnet_id, 0, a.active,
    a.missed_sweeps = 0 AND a.last_seen_at IS NOT NULL
	AND a.rtt_us IS NOT NULL,
    CASE WHEN a.missed_sweeps = 0 AND (a.last_seen_at IS NULL
	OR a.rtt_us IS NULL) THEN 1 ELSE a.missed_sweeps END,
    a.rtt_us, a.last_checked_at, a.last_seen_at
FROM ipam_state.address a
WHERE a.last_checked_at IS NOT NULL;
