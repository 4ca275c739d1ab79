-- A request's digest: what it asks and who asks it (consumers/
-- decode_cloudevents.c), kept with its outcome.  A request is known by
-- its CloudEvent id; an event under an id already decided is a replay
-- only when it asks the same.  Another request under a reused id is
-- refused (a dead letter naming the id), never taken for the first one
-- and so never applied without its preconditions checked.  Requests
-- decided before this schema have none: an event under their id is
-- still taken as their replay.
ALTER TABLE ipamd.request ADD COLUMN digest text;
