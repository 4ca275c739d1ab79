-- The entity tables, the derived IPAM rows and the bookkeeping of delivery.
--
-- Entities keep the latest version the daemon was told about; a delete is
-- a tombstone row (deleted = true) with its version, so that a late, older
-- upsert cannot bring the entity back.  The rows of ipam_state.address are
-- derived from the live entities and never edited by hand.
--
-- Schema ipam_state holds everything a rebuild makes again (entities,
-- derived rows, conflicts, consumed offsets): a rebuild fills a fresh copy,
-- ipam_state_rebuild, and swaps the two.  Schema ipamd holds what lasts:
-- the functions, the audit history and the dead letters.

CREATE SCHEMA ipamd;
CREATE SCHEMA ipam_state;

CREATE TABLE ipam_state.subnet (
	id		text PRIMARY KEY,
	version		bigint NOT NULL,
	deleted		boolean NOT NULL DEFAULT false,
	vrf		text NOT NULL DEFAULT '',
	name		text,
	cidr		cidr,
	pool_first	inet[] NOT NULL DEFAULT '{}',
	pool_last	inet[] NOT NULL DEFAULT '{}',
	ping		boolean NOT NULL DEFAULT true,
	source_topic	text,
	source_partition integer,
	source_offset	bigint,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CHECK (deleted OR cidr IS NOT NULL),
	CHECK (cardinality(pool_first) = cardinality(pool_last))
);
CREATE INDEX subnet_cidr_idx ON ipam_state.subnet USING gist (cidr inet_ops)
	WHERE NOT deleted;
CREATE INDEX subnet_vrf_cidr_idx ON ipam_state.subnet (vrf, cidr)
	WHERE NOT deleted;

CREATE TABLE ipam_state.server (
	id		text PRIMARY KEY,
	version		bigint NOT NULL,
	deleted		boolean NOT NULL DEFAULT false,
	vrf		text NOT NULL DEFAULT '',
	hostname	text,
	ip_address	inet,
	nic_mac		text,
	device_type	text,
	manufacture	text,
	source_topic	text,
	source_partition integer,
	source_offset	bigint,
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX server_address_idx ON ipam_state.server (vrf, ip_address)
	WHERE NOT deleted AND ip_address IS NOT NULL;

-- A mark is keyed by its address ("vrf/address" in a named vrf).
CREATE TABLE ipam_state.mark (
	id		text PRIMARY KEY,
	version		bigint NOT NULL,
	deleted		boolean NOT NULL DEFAULT false,
	vrf		text NOT NULL DEFAULT '',
	address		inet,
	status		text CHECK (status IN ('reserved', 'quarantine')),
	description	text,
	source_topic	text,
	source_partition integer,
	source_offset	bigint,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CHECK (deleted OR (address IS NOT NULL AND status IS NOT NULL)),
	CHECK (description IS NULL OR status = 'reserved')
);
CREATE INDEX mark_address_idx ON ipam_state.mark (vrf, address) WHERE NOT deleted;

-- The derived rows: one per (vrf, ip_address).  The sweeper owns active,
-- last_seen_at, last_checked_at, rtt_us and missed_sweeps; the derivation
-- never writes them for a row that survives.
CREATE TABLE ipam_state.address (
	vrf		text NOT NULL DEFAULT '',
	ip_address	inet NOT NULL,
	subnet_id	text NOT NULL,
	status		text NOT NULL
	    CHECK (status IN ('available', 'allocated', 'reserved', 'quarantine')),
	ip_type		text NOT NULL CHECK (ip_type IN ('static', 'dhcp')),
	active		boolean NOT NULL DEFAULT false,
	server_id	text,
	hostname	text,
	mac_address	text,
	platform	text,
	manufacturer	text,
	description	text,
	last_seen_at	timestamptz,
	last_checked_at	timestamptz,
	rtt_us		integer,
	missed_sweeps	integer NOT NULL DEFAULT 0,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (vrf, ip_address),
	CHECK (masklen(ip_address) = CASE family(ip_address) WHEN 4 THEN 32
	    ELSE 128 END),
	CHECK (description IS NULL OR status = 'reserved'),
	CHECK (status <> 'allocated' OR server_id IS NOT NULL),
	CHECK (server_id IS NOT NULL OR (hostname IS NULL AND mac_address IS NULL
	    AND platform IS NULL AND manufacturer IS NULL))
);
CREATE INDEX address_subnet_idx ON ipam_state.address (subnet_id);

-- Conflicts are reported, never silently resolved.  Address-level kinds
-- carry the address; subnet-level kinds carry the subnet.
CREATE TABLE ipam_state.conflict (
	vrf		text NOT NULL DEFAULT '',
	ip_address	inet,
	subnet_id	text,
	kind		text NOT NULL CHECK (kind IN ('several_servers',
	    'server_on_reserved', 'server_on_quarantine', 'pool_shadowed',
	    'duplicate_subnet')),
	detail		text NOT NULL,
	first_seen_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX conflict_key_idx ON ipam_state.conflict
	(vrf, coalesce(host(ip_address), ''), coalesce(subnet_id, ''), kind);

-- Every change to an address row, in the transaction that made it.
CREATE TABLE ipamd.audit (
	id		bigserial PRIMARY KEY,
	changed_at	timestamptz NOT NULL DEFAULT now(),
	vrf		text NOT NULL,
	ip_address	inet NOT NULL,
	action		text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
	before		jsonb,
	after		jsonb,
	source_topic	text,
	source_partition integer,
	source_offset	bigint
);
CREATE INDEX audit_address_idx ON ipamd.audit (vrf, ip_address);

-- Messages that could not be decoded or failed validation, kept whole.
CREATE TABLE ipamd.dead_letter (
	id		bigserial PRIMARY KEY,
	received_at	timestamptz NOT NULL DEFAULT now(),
	topic		text NOT NULL,
	partition	integer NOT NULL,
	"offset"	bigint NOT NULL,
	key		bytea,
	value		bytea,
	headers		jsonb,
	reason		text NOT NULL,
	UNIQUE (topic, partition, "offset")
);

-- The consumed offsets: the truth about where each partition resumes.
CREATE TABLE ipam_state.consumer_offset (
	group_id	text NOT NULL,
	topic		text NOT NULL,
	partition	integer NOT NULL,
	next_offset	bigint NOT NULL,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (group_id, topic, partition)
);

-- The public face, with the field names of the earlier IPAM table.
CREATE VIEW public.ipam AS
	SELECT vrf, ip_address, subnet_id, status, ip_type, active, server_id,
	    hostname, mac_address, platform, manufacturer, description,
	    last_seen_at, last_checked_at, rtt_us, created_at, updated_at
	FROM ipam_state.address;

CREATE VIEW public.ipam_conflict AS
	SELECT vrf, ip_address, subnet_id, kind, detail, first_seen_at
	FROM ipam_state.conflict;
