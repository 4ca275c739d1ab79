-- A request's Kafka coordinates name its event only while the topic that
-- holds it lives: a marks topic deleted and made again counts its offsets
-- from 0 again, and another record there would be taken for the old
-- request (the audit named the old requester, or twice a requester when a
-- new request came at the same place).  The apply forgets the coordinates
-- of a request whose place another record now holds
-- (ipamd.apply_marks); the request itself, its outcome and its requester
-- stay, for GET /requests/{id} and for a replay of its event.
ALTER TABLE ipamd.request
	ALTER COLUMN topic DROP NOT NULL,
	ALTER COLUMN partition DROP NOT NULL,
	ALTER COLUMN "offset" DROP NOT NULL;
