-- The release of the function files, recorded with each one that runs.
--
-- A function file runs again whenever its text differs from the one
-- recorded, whichever way: an older ipam-syncd started on a database that
-- a newer one migrated put its older functions back, under the newer
-- instances still running, when both were at the same schema version.
-- From here every set of function files carries a release number
-- (schema/functions/RELEASE), raised with any change to them, and an
-- ipam-syncd refuses a database whose functions are of a newer release
-- than its own, as it refuses a newer schema version.  Rows written
-- before this are release 0.  The table is made by ipam-syncd itself
-- beside the migrations (with this column, since this version): here it
-- may be missing (the migrations run alone, as bench/ does).
ALTER TABLE IF EXISTS public.ipam_schema_function
	ADD COLUMN IF NOT EXISTS release integer NOT NULL DEFAULT 0;
