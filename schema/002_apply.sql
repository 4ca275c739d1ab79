-- The apply transaction's type.  Its functions are code: they live in
-- schema/functions/ and are created again whenever their text changes.
-- (The first releases created them here.)

-- One touched address and the event that touched it last.
CREATE TYPE ipamd.touch AS (
	vrf	text,
	ip	inet,
	seq	bigint,
	topic	text,
	part	integer,
	off	bigint
);
