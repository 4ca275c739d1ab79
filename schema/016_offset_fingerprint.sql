-- The record a partition's stored offset follows, known by a fingerprint
-- of its key and value (FNV-1a, consumers/batch.c): a topic deleted and
-- made again that already holds as many records as the stored offset
-- has another record there, and the daemon stops that partition instead
-- of skipping the new records before it (docs/EVENTS.md).  NULL: not
-- known (written before this version, or by a rebuild's folded batch),
-- then nothing is checked.
ALTER TABLE ipam_state.consumer_offset
	ADD COLUMN IF NOT EXISTS last_fingerprint bigint;
ALTER TABLE IF EXISTS ipam_state_rebuild.consumer_offset
	ADD COLUMN IF NOT EXISTS last_fingerprint bigint;
