-- Derived updates stay HOT again.
--
-- Schema 7 indexed address.updated_at for the operator API's listings by
-- change time.  Every derived update sets updated_at, so with that index
-- none of them could stay in its page without new index entries (a HOT
-- update): each moved server wrote three index entries per address row.
-- The apply matters more than that listing, which now sorts what its
-- filter leaves (docs/API.md).
DROP INDEX IF EXISTS ipam_state.address_updated_idx;
