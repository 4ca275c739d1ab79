-- Baseline (b) of the benchmarks: the machine's limit.  The row changes
-- the daemon makes for bench/loadgen's fill, done set-based inside
-- PostgreSQL: one statement per step, no client round trips and no
-- derivation (every address and its subnet is known from loadgen's
-- formulas), into the daemon's own tables (every migration of schema/,
-- applied first), audit rows included, with images as the daemon writes
-- them (ipamd.address_image, schema/013_audit_images.sql).
--
-- Run (bench/run does it on a fresh database, three times):
--   psql -X -q -A -t -v ON_ERROR_STOP=1 -v subnets=1000 -v servers=100000 \
--        -v versions=2 -v delete_pct=5 -v marks=1000 \
--        -v state_sql=STATE -f bench/baseline_setbased.sql DBNAME
-- where STATE is the migrations of schema/ (NNN_*.sql) in one file.
-- It prints one JSON line: the number of events whose row changes were
-- made, the seconds taken, and the seconds of each step.  The input tables
-- (the decoded events) are made first and not timed.
--
-- The row changes, as the daemon makes them for the same events:
--   subnet upsert: the subnet row, its 152 pool rows (insert), their audit
--   mark set:      the mark row, its dhcp address row (insert), its audit
--   mark cleared:  the mark row (tombstone), the address row (delete), audit
--   server move:   the server row (upsert); the old address back to
--                  available (static) or deleted (dhcp); the new address
--                  allocated (update of a pool row, or insert of a dhcp
--                  row); an audit row for each address change
--   server delete: the server row (tombstone), its address freed, audit
-- The deleted servers are every server whose hash falls under delete_pct
-- (loadgen draws them from its seed: the same share, other servers).

SET client_min_messages = warning;
\i :state_sql

-- The input: the decoded events, untimed.
CREATE FUNCTION pg_temp.host(s integer, h integer) RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN s % 2 = 0
	    THEN '10.0.0.0'::inet + ((s / 2 / 128) * 65536 + ((s / 2) % 128) * 512 + h)
	    ELSE ('2001:db8:' || to_hex(s / 2) || '::')::inet + h END
$$;

CREATE TABLE ev_subnet AS
	SELECT s, (s + 1)::text AS id,
	    set_masklen(pg_temp.host(s, 0), CASE WHEN s % 2 = 0 THEN 23 ELSE 64 END)::cidr
		AS cidr,
	    ARRAY[pg_temp.host(s, 1), pg_temp.host(s, 128)] AS pool_first,
	    ARRAY[pg_temp.host(s, 120), pg_temp.host(s, 159)] AS pool_last
	FROM generate_series(0, :subnets - 1) s;

CREATE TABLE ev_mark AS
	SELECT j, pg_temp.host(j % :subnets, 240 + (j / :subnets) % 10) AS ip,
	    CASE WHEN j % 10 < 7 THEN 'reserved' ELSE 'quarantine' END AS status,
	    j % 10 = 0 AS cleared
	FROM generate_series(0, :marks - 1) j;

CREATE TABLE ev_server AS
	SELECT i, v, (i + 1)::text AS id,
	    ((i + (v - 1) * 7919) % :subnets + 1)::text AS subnet_id,
	    pg_temp.host((i + (v - 1) * 7919) % :subnets,
		(i / :subnets) % 115 + 1 + CASE WHEN v % 2 = 0 THEN 115 ELSE 0 END) AS ip,
	    'srv-' || lpad((i + 1)::text, 7, '0') || '-v' || v || '.dc1.example.net'
		AS hostname,
	    '02:00:00:' || to_hex(i % 256) || ':' || to_hex(v) || ':00' AS mac
	FROM generate_series(0, :servers - 1) i, generate_series(1, :versions) v;
ALTER TABLE ev_server ADD PRIMARY KEY (v, i);

CREATE TABLE ev_delete AS
	SELECT i FROM generate_series(0, :servers - 1) i
	WHERE (hashint4(i) & 2147483647) % 100 < :delete_pct;

CREATE TABLE step (name text, seconds double precision);
ANALYZE;
CHECKPOINT;

SELECT clock_timestamp() AS t0 \gset

-- The subnets and their pools.
INSERT INTO ipam_state.subnet (id, version, cidr, pool_first, pool_last, name)
SELECT id, 1, cidr, pool_first, pool_last, 'net-' || id FROM ev_subnet;

WITH ins AS (
	INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type)
	SELECT pg_temp.host(e.s, h), e.id, 'available', 'static'
	FROM ev_subnet e,
	    LATERAL (SELECT generate_series(1, 120) UNION ALL
		SELECT generate_series(128, 159)) g(h)
	RETURNING *)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, after_image)
SELECT vrf, ip_address, 'insert',
    ROW(ins.subnet_id, ins.status, ins.ip_type, ins.server_id, ins.hostname,
	ins.mac_address, ins.platform, ins.manufacturer,
	ins.description)::ipamd.address_image FROM ins;
INSERT INTO step SELECT 'subnets', extract(epoch FROM clock_timestamp() - :'t0');

-- The marks, then a tenth of them cleared.
INSERT INTO ipam_state.mark (id, version, address, status, description)
SELECT host(ip), 1, ip, status,
    CASE WHEN status = 'reserved' THEN 'kept for the load balancer pair ' || j END
FROM ev_mark;

WITH ins AS (
	INSERT INTO ipam_state.address (ip_address, subnet_id, status, ip_type,
	    description)
	SELECT m.ip, (m.j % :subnets + 1)::text, m.status, 'dhcp',
	    CASE WHEN m.status = 'reserved' THEN 'kept for the load balancer pair ' || m.j END
	FROM ev_mark m
	RETURNING *)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, after_image)
SELECT vrf, ip_address, 'insert',
    ROW(ins.subnet_id, ins.status, ins.ip_type, ins.server_id, ins.hostname,
	ins.mac_address, ins.platform, ins.manufacturer,
	ins.description)::ipamd.address_image FROM ins;

UPDATE ipam_state.mark m SET version = 2, deleted = true, status = NULL,
    description = NULL, address = NULL
FROM ev_mark e WHERE e.cleared AND m.id = host(e.ip);

WITH del AS (
	DELETE FROM ipam_state.address a USING ev_mark e
	WHERE e.cleared AND a.vrf = '' AND a.ip_address = e.ip
	RETURNING a.*)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, before_image)
SELECT vrf, ip_address, 'delete',
    ROW(del.subnet_id, del.status, del.ip_type, del.server_id, del.hostname,
	del.mac_address, del.platform, del.manufacturer,
	del.description)::ipamd.address_image FROM del;
INSERT INTO step SELECT 'marks', extract(epoch FROM clock_timestamp() - :'t0');

-- Every version of every server: the entity, the old address freed, the
-- new one allocated.  One statement per step and version, in that order
-- (\gexec runs the columns of each row left to right, skipping nulls).
SELECT format($f$
INSERT INTO ipam_state.server AS s (id, version, hostname, ip_address, nic_mac,
    device_type, manufacture)
SELECT id, v, hostname, ip, mac, 'PowerEdge R640', 'Dell'
FROM ev_server WHERE v = %1$s
ON CONFLICT (id) DO UPDATE SET version = excluded.version,
    hostname = excluded.hostname, ip_address = excluded.ip_address,
    nic_mac = excluded.nic_mac, updated_at = now()
$f$, v),
    CASE WHEN v > 1 THEN format($f$
WITH upd AS (
	UPDATE ipam_state.address a SET status = 'available', server_id = NULL,
	    hostname = NULL, mac_address = NULL, platform = NULL,
	    manufacturer = NULL, updated_at = now()
	FROM ev_server e
	WHERE e.v = %1$s - 1 AND a.vrf = '' AND a.ip_address = e.ip
	    AND a.ip_type = 'static'
	RETURNING a.*),
del AS (
	DELETE FROM ipam_state.address a USING ev_server e
	WHERE e.v = %1$s - 1 AND a.vrf = '' AND a.ip_address = e.ip
	    AND a.ip_type = 'dhcp'
	RETURNING a.*)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, before_image, after_image)
SELECT vrf, ip_address, 'update', NULL,
    ROW(upd.subnet_id, upd.status, upd.ip_type, upd.server_id, upd.hostname,
	upd.mac_address, upd.platform, upd.manufacturer,
	upd.description)::ipamd.address_image FROM upd
UNION ALL
SELECT vrf, ip_address, 'delete',
    ROW(del.subnet_id, del.status, del.ip_type, del.server_id, del.hostname,
	del.mac_address, del.platform, del.manufacturer,
	del.description)::ipamd.address_image, NULL FROM del
$f$, v) END,
    format($f$
WITH ins AS (
	INSERT INTO ipam_state.address AS a (ip_address, subnet_id, status,
	    ip_type, server_id, hostname, mac_address, platform, manufacturer)
	SELECT e.ip, e.subnet_id, 'allocated', 'dhcp', e.id, e.hostname, e.mac,
	    'PowerEdge R640', 'Dell'
	FROM ev_server e WHERE e.v = %1$s
	ON CONFLICT (vrf, ip_address) DO UPDATE SET status = 'allocated',
	    server_id = excluded.server_id, hostname = excluded.hostname,
	    mac_address = excluded.mac_address, platform = excluded.platform,
	    manufacturer = excluded.manufacturer, updated_at = now()
	RETURNING a.*)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, after_image)
SELECT vrf, ip_address, 'update',
    ROW(ins.subnet_id, ins.status, ins.ip_type, ins.server_id, ins.hostname,
	ins.mac_address, ins.platform, ins.manufacturer,
	ins.description)::ipamd.address_image FROM ins
$f$, v)
FROM generate_series(1, :versions) v ORDER BY v \gexec
INSERT INTO step SELECT 'servers', extract(epoch FROM clock_timestamp() - :'t0');

-- The deletes: the tombstone and the address freed.
UPDATE ipam_state.server s SET version = :versions + 1, deleted = true,
    hostname = NULL, ip_address = NULL, nic_mac = NULL
FROM ev_delete d WHERE s.id = (d.i + 1)::text;

WITH gone AS (
	SELECT e.ip FROM ev_server e JOIN ev_delete d ON d.i = e.i
	WHERE e.v = :versions),
upd AS (
	UPDATE ipam_state.address a SET status = 'available', server_id = NULL,
	    hostname = NULL, mac_address = NULL, platform = NULL,
	    manufacturer = NULL, updated_at = now()
	FROM gone g WHERE a.vrf = '' AND a.ip_address = g.ip
	    AND a.ip_type = 'static'
	RETURNING a.*),
del AS (
	DELETE FROM ipam_state.address a USING gone g
	WHERE a.vrf = '' AND a.ip_address = g.ip AND a.ip_type = 'dhcp'
	RETURNING a.*)
INSERT INTO ipamd.audit_log (vrf, ip_address, action, before_image, after_image)
SELECT vrf, ip_address, 'update', NULL,
    ROW(upd.subnet_id, upd.status, upd.ip_type, upd.server_id, upd.hostname,
	upd.mac_address, upd.platform, upd.manufacturer,
	upd.description)::ipamd.address_image FROM upd
UNION ALL
SELECT vrf, ip_address, 'delete',
    ROW(del.subnet_id, del.status, del.ip_type, del.server_id, del.hostname,
	del.mac_address, del.platform, del.manufacturer,
	del.description)::ipamd.address_image, NULL FROM del;
INSERT INTO step SELECT 'deletes', extract(epoch FROM clock_timestamp() - :'t0');

SELECT json_build_object(
    'events', :subnets + :marks + (:marks + 9) / 10 + :servers * :versions
	+ (SELECT count(*) FROM ev_delete),
    'seconds', extract(epoch FROM clock_timestamp() - :'t0'),
    'rows', (SELECT count(*) FROM ipam_state.address),
    'audit', (SELECT count(*) FROM ipamd.audit_log),
    'steps', (SELECT json_object_agg(name, round(seconds::numeric, 3)) FROM step));
