-- Order and versions (docs/STATE.md): a stored version may be unknown,
-- Debezium positions are kept apart from versions, and a truncate leaves
-- a floor per topic.
--
-- Until now an event without a version stored its Kafka offset as the
-- version.  Those rows are recognisable (version = source_offset); they
-- now hold no version, and deletes made that way are forgotten, so that
-- the next event of the key applies in Kafka order.

ALTER TABLE ipam_state.subnet ALTER COLUMN version DROP NOT NULL,
	ADD COLUMN lsn bigint;
ALTER TABLE ipam_state.server ALTER COLUMN version DROP NOT NULL,
	ADD COLUMN lsn bigint;
ALTER TABLE ipam_state.mark ALTER COLUMN version DROP NOT NULL,
	ADD COLUMN lsn bigint;

DELETE FROM ipam_state.subnet WHERE deleted AND version = source_offset;
DELETE FROM ipam_state.server WHERE deleted AND version = source_offset;
DELETE FROM ipam_state.mark WHERE deleted AND version = source_offset;
UPDATE ipam_state.subnet SET version = NULL WHERE version = source_offset;
UPDATE ipam_state.server SET version = NULL WHERE version = source_offset;
UPDATE ipam_state.mark SET version = NULL WHERE version = source_offset;

-- The last truncate of a Debezium topic: changes older than it are stale.
CREATE TABLE ipam_state.truncation (
	topic		text PRIMARY KEY,
	entity		text NOT NULL CHECK (entity IN ('server', 'subnet')),
	lsn		bigint NOT NULL,
	truncated_at	timestamptz NOT NULL DEFAULT now()
);
