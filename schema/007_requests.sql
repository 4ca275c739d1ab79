-- The operator API's writes (docs/API.md): who asked for each mark, and
-- what came of every request.
--
-- A request is a mark event published by the API, its CloudEvent id the
-- request id.  Its preconditions are checked when it is applied, in that
-- transaction, which records the outcome here: the API answers from this
-- row, whichever instance applied the event.  The table lives in ipamd: a
-- rebuild replays the same events and must not lose the answers.

ALTER TABLE ipam_state.mark ADD COLUMN requested_by text,
	ADD COLUMN reason text,
	ADD CHECK (reason IS NULL OR status = 'quarantine');

CREATE TABLE ipamd.request (
	id		text PRIMARY KEY,	-- the event's CloudEvent id
	topic		text NOT NULL,
	partition	integer NOT NULL,
	"offset"	bigint NOT NULL,
	requested_by	text,
	vrf		text NOT NULL,
	address		inet NOT NULL,
	outcome		text NOT NULL CHECK (outcome IN ('applied', 'refused')),
	detail		text,
	decided_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_event_idx ON ipamd.request (topic, partition, "offset");

-- The audit names the requester of a change, and keeps the refused
-- requests too (two operators racing for one address: both are there).
ALTER TABLE ipamd.audit ADD COLUMN requested_by text;
ALTER TABLE ipamd.audit DROP CONSTRAINT audit_action_check;
ALTER TABLE ipamd.audit ADD CONSTRAINT audit_action_check
	CHECK (action IN ('insert', 'update', 'delete', 'refused'));

-- Readers page by the time of the last change.
CREATE INDEX address_updated_idx ON ipam_state.address
	(updated_at, vrf, ip_address);
