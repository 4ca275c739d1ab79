-- Dead letters told apart by what they hold, not only by where they were.
--
-- A dead letter was unique on (topic, partition, offset), and the apply
-- inserts with ON CONFLICT DO NOTHING, so that a message read again (a
-- rebuild, a batch applied again) is stored once.  A topic deleted and
-- made again counts its offsets from 0 again (docs/EVENTS.md): a message
-- refused there at an offset that an old dead letter holds was not
-- stored, its bytes lost and the old message shown in its place.  From
-- here a dead letter is one per position and content: the same message
-- read again is still stored once, another one at the same position is
-- stored too.
ALTER TABLE ipamd.dead_letter
	DROP CONSTRAINT dead_letter_topic_partition_offset_key;
CREATE UNIQUE INDEX dead_letter_message_idx ON ipamd.dead_letter
	(topic, partition, "offset", md5(coalesce(key, '\x'::bytea)),
	    md5(coalesce(value, '\x'::bytea)));
