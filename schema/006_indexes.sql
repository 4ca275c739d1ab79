-- Cheaper writes of the apply and the sweeper.
--
-- The address-level conflicts of the touched addresses are looked up by
-- (vrf, ip_address); the unique key indexes host(ip_address), which such
-- a lookup cannot use.
CREATE INDEX conflict_address_idx ON ipam_state.conflict (vrf, ip_address)
	WHERE ip_address IS NOT NULL;

-- Room in every page of address, so that a row's new version (the
-- sweeper's columns, a status) can stay in its page: a HOT update, no
-- index entries to write.  It applies to pages written from now on.
ALTER TABLE ipam_state.address SET (fillfactor = 85);
