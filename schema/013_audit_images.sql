-- Audit images as rows of a composite type instead of jsonb.
--
-- Every change of an address row writes an audit row with one or two
-- images of its derived fields.  Built with jsonb_build_object(), an image
-- cost about as much as the rest of its audit row (a batch of 5,000 server
-- moves writes 10,000 audit rows and 15,000 images: a quarter of the
-- batch's time in PostgreSQL), and took twice the bytes of a row value.
-- From here the images are stored as ipamd.address_image values, built
-- with ROW(...), and the table is ipamd.audit_log.  The view ipamd.audit
-- shows every row as before, the images as JSON objects of the same keys
-- (to_jsonb() of the row value), so that readers see no change.  The rows
-- written before this migration keep their jsonb images (before, after),
-- and a refused operator request keeps its outcome there too (action
-- 'refused', schema/007_requests.sql): nothing is rewritten, the upgrade
-- is instant whatever the size of the history.
CREATE TYPE ipamd.address_image AS (
	subnet_id	text,
	status		text,
	ip_type		text,
	server_id	text,
	hostname	text,
	mac_address	text,
	platform	text,
	manufacturer	text,
	description	text
);

ALTER TABLE ipamd.audit RENAME TO audit_log;
ALTER TABLE ipamd.audit_log ADD COLUMN before_image ipamd.address_image;
ALTER TABLE ipamd.audit_log ADD COLUMN after_image ipamd.address_image;

-- The history as it was: the same columns in the same order.  A simple
-- view: filters on vrf, ip_address and id reach the table's indexes, and
-- a delete or an update of changed_at goes through to the table.
CREATE VIEW ipamd.audit AS
	SELECT id, changed_at, vrf, ip_address, action,
	    coalesce(to_jsonb(before_image), before) AS before,
	    coalesce(to_jsonb(after_image), after) AS after,
	    source_topic, source_partition, source_offset, requested_by,
	    ip_last
	FROM ipamd.audit_log;
