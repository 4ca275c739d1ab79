-- Least-privilege roles for ipam-syncd.  Run as a superuser (or the
-- database's owner with CREATEROLE) in the IPAM database, twice: once
-- before "ipam-syncd --migrate" (it makes the roles and lets the owner
-- create schemas) and once after every --migrate (it grants on what the
-- migrations made).  It may be run any number of times.
--
--   psql -d ipam -v ON_ERROR_STOP=1 -f /usr/share/ipam-syncd/schema/roles.sql
--   ipam-syncd --migrate --config /etc/ipam-syncd/migrate.conf   # user=ipam_owner
--   psql -d ipam -v ON_ERROR_STOP=1 -f /usr/share/ipam-syncd/schema/roles.sql
--
-- The roles (give them passwords, or map them in pg_hba.conf / pg_ident):
--   ipam_owner   owns the schemas, tables and functions: runs --migrate.
--   ipam_syncd   the daemon at run time: reads and writes the rows of
--                ipamd and ipam_state, runs the functions.  It owns
--                ipam_state and the two views, because --rebuild builds a
--                fresh ipam_state_rebuild schema (CREATE on the database)
--                and renames it over ipam_state in one transaction; it
--                cannot change ipamd's tables, the functions or the
--                migration records.
--   ipam_reader  reads only: ipam, ipam_conflict, ipam_state, ipamd; for
--                reports and for the API's read connections
--                ([api] read_conninfo = ... user=ipam_reader).
-- ipam_owner is a member of ipam_syncd so that a later migration may
-- alter the tables the runtime role owns.

DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['ipam_owner', 'ipam_syncd', 'ipam_reader'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I LOGIN', r);
		END IF;
	END LOOP;
	EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO ipam_owner',
	    current_database());
	-- --rebuild creates the schema ipam_state_rebuild.
	EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO ipam_syncd',
	    current_database());
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO ipam_reader',
	    current_database());
END
$roles$;

GRANT ipam_syncd TO ipam_owner;
-- CREATE on public: the migration records and the views are there, and
-- a rebuild replaces the views ipam and ipam_conflict.
GRANT USAGE, CREATE ON SCHEMA public TO ipam_owner, ipam_syncd;
GRANT USAGE ON SCHEMA public TO ipam_reader;

-- What a rebuild creates is readable by the reader, whatever its schema's
-- new identity.
ALTER DEFAULT PRIVILEGES FOR ROLE ipam_syncd GRANT USAGE ON SCHEMAS TO ipam_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE ipam_syncd GRANT SELECT ON TABLES TO ipam_reader;

-- After --migrate: grants on what the migrations made.
DO $grants$
DECLARE
	t record;
BEGIN
	IF to_regnamespace('ipamd') IS NULL THEN
		RAISE NOTICE 'ipamd does not exist yet: run ipam-syncd --migrate as ipam_owner, then this file again';
		RETURN;
	END IF;

	-- The migration records: read at every start.
	GRANT SELECT ON public.ipam_schema_migration, public.ipam_schema_function
	    TO ipam_syncd, ipam_reader;

	-- ipamd: audit, dead letters, requests, the shared sweep.
	GRANT USAGE ON SCHEMA ipamd TO ipam_syncd, ipam_reader;
	GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ipamd
	    TO ipam_syncd;
	GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ipamd TO ipam_syncd;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ipamd TO ipam_syncd, ipam_reader;
	GRANT SELECT ON ALL TABLES IN SCHEMA ipamd TO ipam_reader;
	ALTER DEFAULT PRIVILEGES FOR ROLE ipam_owner IN SCHEMA ipamd
	    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ipam_syncd;
	ALTER DEFAULT PRIVILEGES FOR ROLE ipam_owner IN SCHEMA ipamd
	    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ipam_syncd;
	ALTER DEFAULT PRIVILEGES FOR ROLE ipam_owner IN SCHEMA ipamd
	    GRANT SELECT ON TABLES TO ipam_reader;
	ALTER DEFAULT PRIVILEGES FOR ROLE ipam_owner
	    GRANT EXECUTE ON FUNCTIONS TO ipam_syncd, ipam_reader;

	-- ipam_state and the views belong to the runtime role: --rebuild
	-- replaces them whole.
	IF to_regnamespace('ipam_state') IS NOT NULL THEN
		ALTER SCHEMA ipam_state OWNER TO ipam_syncd;
		FOR t IN SELECT c.relname, c.relkind FROM pg_class c
		    WHERE c.relnamespace = 'ipam_state'::regnamespace
		    AND c.relkind IN ('r', 'p', 'S') LOOP
			IF t.relkind = 'S' THEN
				-- Owned by a column: it follows its table.
				CONTINUE;
			END IF;
			EXECUTE format('ALTER TABLE ipam_state.%I OWNER TO ipam_syncd',
			    t.relname);
		END LOOP;
		GRANT USAGE ON SCHEMA ipam_state TO ipam_reader;
		GRANT SELECT ON ALL TABLES IN SCHEMA ipam_state TO ipam_reader;
	END IF;
	ALTER VIEW public.ipam OWNER TO ipam_syncd;
	ALTER VIEW public.ipam_conflict OWNER TO ipam_syncd;
	GRANT SELECT ON public.ipam, public.ipam_conflict TO ipam_reader;
END
$grants$;
