-- Who asked for the change that touched an address: the requester of an
-- operator's import (the ipamrequester of its server and subnet events,
-- docs/EVENTS.md), carried with each touched address to its audit row.
-- NULL for a change nobody named (a producer's own event); a mark request
-- is named through ipamd.request, as before.
ALTER TYPE ipamd.touch ADD ATTRIBUTE requested_by text;
