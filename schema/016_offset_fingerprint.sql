-- The record a partition's stored offset follows, known by a fingerprint
-- of its key and value (FNV-1a, consumers/batch.c): a topic deleted and
-- made again that already holds as many records has another record
-- there, and the daemon stops that partition instead of skipping the new
-- records before it (docs/EVENTS.md).  fingerprint_of is the next offset
-- the fingerprint was written with: an offset moved by hand (an UPDATE of
-- next_offset) leaves it behind, and is then not checked, as a NULL
-- fingerprint is not (written before this version, or by a rebuild's
-- folded batch).
ALTER TABLE ipam_state.consumer_offset
	ADD COLUMN IF NOT EXISTS last_fingerprint bigint,
	ADD COLUMN IF NOT EXISTS fingerprint_of bigint;
ALTER TABLE IF EXISTS ipam_state_rebuild.consumer_offset
	ADD COLUMN IF NOT EXISTS last_fingerprint bigint,
	ADD COLUMN IF NOT EXISTS fingerprint_of bigint;
