-- The derivation looks each touched address up once per prefix length in
-- use (schema/functions/50_derive.sql): the distinct lengths of a routing
-- domain's live subnets come from this index, one probe per length,
-- instead of a scan of every live subnet in every batch.
CREATE INDEX subnet_length_idx ON ipam_state.subnet
	(vrf, family(cidr), masklen(cidr)) WHERE NOT deleted;
