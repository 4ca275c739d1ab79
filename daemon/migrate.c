/*
 * Schema migrations: numbered SQL files applied in order, each once, then
 * the function files (schema/functions/NN_name.sql) run again whenever
 * their text changed since they last ran.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "common/fnv.h"
#include "common/log.h"
#include "daemon/migrate.h"

/* The advisory lock every instance takes around migrations. */
#define MIGRATE_LOCK_SQL	"SELECT pg_advisory_lock(7369746)"
#define MIGRATE_UNLOCK_SQL	"SELECT pg_advisory_unlock(7369746)"

/*
 * How long a migration or function file waits for a table's lock.  A
 * statement waiting for an exclusive lock (ALTER TABLE, a view replaced)
 * holds up every later one on that table, the apply's of every instance
 * included, for as long as the session before it (a pg_dump, a long
 * report) keeps its own: given up after this, and tried again.
 */
#define MIGRATE_LOCK_TIMEOUT	"SET LOCAL lock_timeout = '5s';\n"

/* One migration file. */
struct migrate_file {
	int	 version;
	char	*name;		/* file name without .sql */
	char	*sql;
};

/* One function file: code, re-created whenever its text changes. */
struct migrate_code {
	char	*name;		/* file name without .sql */
	char	*sql;
	char	 digest[17];	/* FNV-1a of the text, in hex */
	bool	 run;		/* its recorded digest differs */
};

struct migrate {
	struct migrate_file	 files[MIGRATE_SCHEMA_VERSION];
	struct migrate_code	*code;		/* sorted by name */
	size_t			 code_count;
	size_t			 code_next;
	struct pgconn		*pg;
	migrate_done_cb		*done;
	void			*arg;
	int			 release;	/* of the function files */
	char			 release_digest[17];	/* as RELEASE names it */
	char			 files_digest[17];	/* of the files read */
	int			 current;	/* version found in the database */
	int			 next;		/* next file to apply */
	bool			 has_records;	/* the record tables exist */
	bool			 has_code_records;
	char			 role[128];	/* current_user, for errors */
};

static void	migrate_step(struct migrate *migrate);
static void	migrate_code_step(struct migrate *migrate);
static void	migrate_records_cb(struct pgconn *pg, PGresult *result,
		    const char *error, void *arg);

/* Reads a whole file into a new string. */
static char *
migrate_read(const char *path, char *err, size_t errlen)
{
	FILE *file;
	char *text = NULL;
	size_t size = 0;
	long length;

	if ((file = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(file, 0, SEEK_END) == 0 && (length = ftell(file)) >= 0 &&
	    fseek(file, 0, SEEK_SET) == 0 &&
	    (text = malloc((size_t)length + 1)) != NULL) {
		size = fread(text, 1, (size_t)length, file);
		text[size] = '\0';
	}
	if (text == NULL || ferror(file)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(text);
		text = NULL;
	}
	fclose(file);
	return text;
}

/* Orders function files by name. */
static int
migrate_code_compare(const void *a, const void *b)
{
	return strcmp(((const struct migrate_code *)a)->name,
	    ((const struct migrate_code *)b)->name);
}

/* The FNV-1a digest of a text, as 16 hex digits. */
static void
migrate_digest(const char *text, char out[17])
{
	uint64_t hash = fnv1a64(FNV1A64_START, text, strlen(text));

	snprintf(out, 17, "%016llx", (unsigned long long)hash);
}

/*
 * Reads the function files of schema_dir/functions (NN_name.sql), sorted
 * by name.  A missing folder is an error: the functions are the code the
 * daemon calls.
 */
static int
migrate_read_code(struct migrate *migrate, const char *schema_dir, char *err,
    size_t errlen)
{
	struct dirent *entry;
	char path[4096];
	size_t capacity = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/functions", schema_dir);
	if ((dir = opendir(path)) == NULL) {
		snprintf(err, errlen, "schema folder %s: %s", path,
		    strerror(errno));
		return -1;
	}
	while ((entry = readdir(dir)) != NULL) {
		const char *name = entry->d_name;
		size_t len = strlen(name);
		struct migrate_code *code;

		if (len < 8 || !isdigit((unsigned char)name[0]) ||
		    !isdigit((unsigned char)name[1]) || name[2] != '_' ||
		    strcmp(name + len - 4, ".sql") != 0)
			continue;
		/* The name goes into the record's SQL: letters, digits, _ only. */
		if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		    len - 4) {
			snprintf(err, errlen, "schema folder %s/functions: "
			    "file name %s has characters other than a-z, 0-9 "
			    "and _", schema_dir, name);
			closedir(dir);
			return -1;
		}
		if (migrate->code_count == capacity) {
			capacity = capacity ? capacity * 2 : 16;
			code = realloc(migrate->code, capacity * sizeof(*code));
			if (code == NULL)
				fatal("migrate: realloc");
			migrate->code = code;
		}
		code = &migrate->code[migrate->code_count];
		memset(code, 0, sizeof(*code));
		snprintf(path, sizeof(path), "%s/functions/%s", schema_dir,
		    name);
		if ((code->sql = migrate_read(path, err, errlen)) == NULL) {
			closedir(dir);
			return -1;
		}
		if ((code->name = strndup(name, len - 4)) == NULL)
			fatal("migrate: strndup");
		migrate_digest(code->sql, code->digest);
		migrate->code_count++;
	}
	closedir(dir);
	if (migrate->code_count == 0) {
		snprintf(err, errlen, "schema folder %s/functions holds no "
		    "function file", schema_dir);
		return -1;
	}
	qsort(migrate->code, migrate->code_count, sizeof(*migrate->code),
	    migrate_code_compare);
	return 0;
}

/*
 * Reads schema_dir/functions/RELEASE: the release of the function files
 * and the digest of their texts, one line "RELEASE DIGEST" after comment
 * lines (#).  The files' own digest is the FNV-1a of "name digest" lines
 * in name order; a mismatch means the files changed and RELEASE did not
 * (a development tree: warned, and tested by unit_migrate_release).
 */
static int
migrate_read_release(struct migrate *migrate, const char *schema_dir,
    char *err, size_t errlen)
{
	char path[4096], *text, *line, *next, *list;
	size_t i, len = 1;
	int found = 0;

	snprintf(path, sizeof(path), "%s/functions/RELEASE", schema_dir);
	if ((text = migrate_read(path, err, errlen)) == NULL)
		return -1;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		char *end;
		long release;
		size_t used;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		/* Blanks around a line (a CR too) and comment lines aside. */
		line += strspn(line, " \t");
		used = strlen(line);
		while (used > 0 && strchr(" \t\r", line[used - 1]) != NULL)
			line[--used] = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		errno = 0;
		release = isdigit((unsigned char)*line) ? strtol(line, &end, 10) :
		    0;
		if (found || release < 1 || release > INT32_MAX || errno != 0 ||
		    *end != ' ' || strlen(end + 1) != 16 ||
		    strspn(end + 1, "0123456789abcdef") != 16) {
			snprintf(err, errlen, "%s: not one line \"RELEASE "
			    "DIGEST\" (a release from 1, 16 hex digits): \"%.80s\"",
			    path, line);
			free(text);
			return -1;
		}
		migrate->release = (int)release;
		memcpy(migrate->release_digest, end + 1, 17);
		found = 1;
	}
	free(text);
	if (!found) {
		snprintf(err, errlen, "%s: no line \"RELEASE DIGEST\"", path);
		return -1;
	}
	for (i = 0; i < migrate->code_count; i++)
		len += strlen(migrate->code[i].name) + 18;
	if ((list = malloc(len)) == NULL)
		fatal("migrate: malloc");
	list[0] = '\0';
	for (i = 0, len = 0; i < migrate->code_count; i++)
		len += (size_t)sprintf(list + len, "%s %s\n",
		    migrate->code[i].name, migrate->code[i].digest);
	migrate_digest(list, migrate->files_digest);
	free(list);
	if (strcmp(migrate->files_digest, migrate->release_digest) != 0)
		log_warnx("schema: %s names digest %s, the function files' is "
		    "%s: they changed without a new release", path,
		    migrate->release_digest, migrate->files_digest);
	return 0;
}

/* The release of the function files, with RELEASE's digest and theirs. */
int
migrate_release(const struct migrate *migrate, const char **recorded,
    const char **computed)
{
	*recorded = migrate->release_digest;
	*computed = migrate->files_digest;
	return migrate->release;
}

/* Reads the migration files of a folder. */
struct migrate *
migrate_new(const char *schema_dir, char *err, size_t errlen)
{
	struct migrate *migrate;
	struct dirent *entry;
	char path[4096];
	DIR *dir;
	int i;

	if ((migrate = calloc(1, sizeof(*migrate))) == NULL)
		fatal("migrate: calloc");
	if ((dir = opendir(schema_dir)) == NULL) {
		snprintf(err, errlen, "schema folder %s: %s", schema_dir,
		    strerror(errno));
		goto fail;
	}
	while ((entry = readdir(dir)) != NULL) {
		const char *name = entry->d_name;
		size_t len = strlen(name);
		int version;

		if (len < 9 || !isdigit((unsigned char)name[0]) ||
		    !isdigit((unsigned char)name[1]) ||
		    !isdigit((unsigned char)name[2]) || name[3] != '_' ||
		    strcmp(name + len - 4, ".sql") != 0)
			continue;
		version = atoi(name);
		if (version < 1 || version > MIGRATE_SCHEMA_VERSION)
			continue;	/* a newer file is not ours to run */
		if (migrate->files[version - 1].sql != NULL) {
			snprintf(err, errlen,
			    "schema folder %s has two migrations numbered %03d",
			    schema_dir, version);
			closedir(dir);
			goto fail;
		}
		snprintf(path, sizeof(path), "%s/%s", schema_dir, name);
		migrate->files[version - 1].sql = migrate_read(path, err,
		    errlen);
		if (migrate->files[version - 1].sql == NULL) {
			closedir(dir);
			goto fail;
		}
		migrate->files[version - 1].version = version;
		migrate->files[version - 1].name = strndup(name, len - 4);
	}
	closedir(dir);
	for (i = 0; i < MIGRATE_SCHEMA_VERSION; i++) {
		if (migrate->files[i].sql == NULL) {
			snprintf(err, errlen,
			    "schema folder %s lacks migration %03d", schema_dir,
			    i + 1);
			goto fail;
		}
	}
	if (migrate_read_code(migrate, schema_dir, err, errlen) == -1 ||
	    migrate_read_release(migrate, schema_dir, err, errlen) == -1)
		goto fail;
	return migrate;
fail:
	migrate_free(migrate);
	return NULL;
}

/* Frees a migration runner. */
void
migrate_free(struct migrate *migrate)
{
	int i;

	if (migrate == NULL)
		return;
	for (i = 0; i < MIGRATE_SCHEMA_VERSION; i++) {
		free(migrate->files[i].name);
		free(migrate->files[i].sql);
	}
	for (i = 0; i < (int)migrate->code_count; i++) {
		free(migrate->code[i].name);
		free(migrate->code[i].sql);
	}
	free(migrate->code);
	free(migrate);
}

/* Ends the run and reports. */
static void
migrate_finish(struct migrate *migrate, enum migrate_outcome outcome,
    const char *error)
{
	migrate->done(outcome, error, migrate->arg);
}

/* Checks a result; on failure ends the run and returns false. */
static bool
migrate_check(struct migrate *migrate, PGresult *result, const char *error,
    const char *what)
{
	char message[1024], reason[1600];
	const char *sqlstate;
	bool not_allowed;

	if (result == NULL) {
		migrate_finish(migrate, MIGRATE_LOST, error);
		return false;
	}
	if (PQresultStatus(result) == PGRES_TUPLES_OK ||
	    PQresultStatus(result) == PGRES_COMMAND_OK)
		return true;
	pgconn_result_error(migrate->pg, result, message, sizeof(message));
	sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	/*
	 * A lock not had in time (MIGRATE_LOCK_TIMEOUT): the connection is
	 * made again, which lets the migration lock go, and the migrations
	 * run again once it is back.
	 */
	if (sqlstate != NULL && strcmp(sqlstate, "55P03") == 0) {
		snprintf(reason, sizeof(reason), "%s: %s (another session holds "
		    "a lock on what it changes: a long query, a pg_dump); "
		    "tried again", what, message);
		pgconn_reset(migrate->pg, reason);
		migrate_finish(migrate, MIGRATE_LOST, reason);
		return false;
	}
	/*
	 * A missing right is not a passing fault: say which step needed it
	 * and who may run it, instead of retrying.
	 */
	not_allowed = sqlstate != NULL && strcmp(sqlstate, "42501") == 0;
	if (not_allowed)
		snprintf(reason, sizeof(reason), "%s: %s; role \"%s\" may not "
		    "change the schema: run \"ipam-syncd --migrate\" as the "
		    "schema's owner role (docs/OPERATIONS.md, Roles)", what,
		    message, migrate->role);
	else
		snprintf(reason, sizeof(reason), "%s: %s", what, message);
	/*
	 * Closing the session releases the lock, so another instance can go
	 * on; the daemon exits, so nothing reconnects.
	 */
	pgconn_stop(migrate->pg);
	migrate_finish(migrate, not_allowed ? MIGRATE_NOT_ALLOWED :
	    MIGRATE_FAILED, reason);
	return false;
}

/* The lock is released: the run is over. */
static void
migrate_unlocked_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;

	if (!migrate_check(migrate, result, error, "releasing the lock"))
		return;
	migrate_finish(migrate, MIGRATE_OK, NULL);
}

/* One migration is applied and recorded. */
static void
migrate_applied_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;
	struct migrate_file *file = &migrate->files[migrate->next - 1];
	char what[256];

	snprintf(what, sizeof(what), "migration %s", file->name);
	if (!migrate_check(migrate, result, error, what))
		return;
	log_info("schema: applied migration %s", file->name);
	migrate->next++;
	migrate_step(migrate);
}

/* One function file ran and was recorded. */
static void
migrate_code_ran_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;
	struct migrate_code *code = &migrate->code[migrate->code_next];
	char what[256];

	snprintf(what, sizeof(what), "functions %s", code->name);
	if (!migrate_check(migrate, result, error, what))
		return;
	log_info("schema: created the functions of %s", code->name);
	migrate->code_next++;
	migrate_code_step(migrate);
}

/*
 * Runs the next function file whose text changed, or releases the lock
 * when none is left.
 */
static void
migrate_code_step(struct migrate *migrate)
{
	struct migrate_code *code;
	char *sql;
	size_t len;
	int rc;

	while (migrate->code_next < migrate->code_count &&
	    !migrate->code[migrate->code_next].run)
		migrate->code_next++;
	if (migrate->code_next == migrate->code_count) {
		if (pgconn_query(migrate->pg, MIGRATE_UNLOCK_SQL, 0, NULL,
		    migrate_unlocked_cb, migrate) == -1)
			migrate_finish(migrate, MIGRATE_LOST, "not connected");
		return;
	}
	code = &migrate->code[migrate->code_next];
	/* The file and its record run as one implicit transaction. */
	len = strlen(code->sql) + strlen(code->name) + 512;
	if ((sql = malloc(len)) == NULL)
		fatal("migrate: malloc");
	/*
	 * Function bodies name the state tables without a schema (the apply
	 * picks ipam_state or ipam_state_rebuild): they are checked when
	 * they run, not when they are made.
	 */
	snprintf(sql, len, MIGRATE_LOCK_TIMEOUT
	    "SET LOCAL check_function_bodies = off;\n%s\n;\n"
	    "INSERT INTO public.ipam_schema_function "
	    "(name, digest, release) VALUES ('%s', '%s', %d) "
	    "ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, "
	    "release = excluded.release, applied_at = now()", code->sql,
	    code->name, code->digest, migrate->release);
	rc = pgconn_query(migrate->pg, sql, 0, NULL, migrate_code_ran_cb,
	    migrate);
	free(sql);
	if (rc == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* Counts the function files whose text changed since they last ran. */
static size_t
migrate_code_due(const struct migrate *migrate)
{
	size_t i, due = 0;

	for (i = 0; i < migrate->code_count; i++)
		if (migrate->code[i].run)
			due++;
	return due;
}

/*
 * Everything due is known: nothing (release the lock, no DDL at all), or
 * the record tables if missing, the migrations, then the functions.
 */
static void
migrate_plan(struct migrate *migrate)
{
	static const char records_sql[] =
	    "CREATE TABLE IF NOT EXISTS public.ipam_schema_migration ("
	    " version integer PRIMARY KEY,"
	    " name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now());"
	    "CREATE TABLE IF NOT EXISTS public.ipam_schema_function ("
	    " name text PRIMARY KEY,"
	    " digest text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now(),"
	    " release integer NOT NULL DEFAULT 0)";
	size_t code_due = migrate_code_due(migrate);
	int due = MIGRATE_SCHEMA_VERSION - migrate->current;

	if (due == 0 && code_due == 0) {
		log_info("schema: at version %d, nothing to apply (functions "
		    "current)", migrate->current);
		if (pgconn_query(migrate->pg, MIGRATE_UNLOCK_SQL, 0, NULL,
		    migrate_unlocked_cb, migrate) == -1)
			migrate_finish(migrate, MIGRATE_LOST, "not connected");
		return;
	}
	log_info("schema: at version %d; %d migrations and %zu function "
	    "files to apply as role %s", migrate->current, due, code_due,
	    migrate->role);
	migrate->next = migrate->current + 1;
	migrate->code_next = 0;
	if (migrate->has_records && migrate->has_code_records) {
		migrate_step(migrate);
		return;
	}
	if (pgconn_query(migrate->pg, records_sql, 0, NULL,
	    migrate_records_cb, migrate) == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* Reads the recorded digests and marks the function files that changed. */
static void
migrate_code_digests_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;
	size_t i;
	int row;

	char reason[256];
	int newest = 0;

	if (!migrate_check(migrate, result, error,
	    "reading the function digests (public.ipam_schema_function)"))
		return;
	for (row = 0; row < PQntuples(result); row++)
		if (atoi(PQgetvalue(result, row, 2)) > newest)
			newest = atoi(PQgetvalue(result, row, 2));
	/* Newer functions are not ours to replace with older ones. */
	if (newest > migrate->release) {
		snprintf(reason, sizeof(reason), "the database's functions "
		    "are of release %d, newer than this ipam-syncd's (%d): "
		    "upgrade ipam-syncd", newest, migrate->release);
		pgconn_stop(migrate->pg);
		migrate_finish(migrate, MIGRATE_TOO_NEW, reason);
		return;
	}
	for (i = 0; i < migrate->code_count; i++) {
		struct migrate_code *code = &migrate->code[i];

		code->run = true;
		for (row = 0; row < PQntuples(result); row++) {
			if (strcmp(PQgetvalue(result, row, 0), code->name) == 0 &&
			    strcmp(PQgetvalue(result, row, 1), code->digest) == 0)
				code->run = false;
		}
	}
	migrate_plan(migrate);
}

/* The version is known: refuse a newer database, then read the digests. */
static void
migrate_version_known(struct migrate *migrate)
{
	char reason[256];
	size_t i;

	if (migrate->current > MIGRATE_SCHEMA_VERSION) {
		snprintf(reason, sizeof(reason),
		    "the database schema is at version %d, newer than this "
		    "ipam-syncd knows (%d): upgrade ipam-syncd",
		    migrate->current, MIGRATE_SCHEMA_VERSION);
		pgconn_stop(migrate->pg);
		migrate_finish(migrate, MIGRATE_TOO_NEW, reason);
		return;
	}
	if (!migrate->has_code_records) {
		for (i = 0; i < migrate->code_count; i++)
			migrate->code[i].run = true;
		migrate_plan(migrate);
		return;
	}
	if (pgconn_query(migrate->pg,
	    "SELECT name, digest, coalesce((to_jsonb(f) ->> 'release')::integer,"
	    " 0) FROM public.ipam_schema_function f", 0, NULL,
	    migrate_code_digests_cb, migrate) == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* Reads the version the database is at. */
static void
migrate_version_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;

	if (!migrate_check(migrate, result, error,
	    "reading the schema version (public.ipam_schema_migration)"))
		return;
	migrate->current = atoi(PQgetvalue(result, 0, 0));
	migrate_version_known(migrate);
}

/* The record tables exist now: apply the migrations. */
static void
migrate_records_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;

	if (!migrate_check(migrate, result, error,
	    "creating the migration records (public.ipam_schema_migration)"))
		return;
	migrate->has_records = migrate->has_code_records = true;
	migrate_step(migrate);
}

/* Applies the next pending migration, or goes on to the functions. */
static void
migrate_step(struct migrate *migrate)
{
	struct migrate_file *file;
	char *sql;
	size_t len;
	int rc;

	if (migrate->next > MIGRATE_SCHEMA_VERSION) {
		migrate->code_next = 0;
		migrate_code_step(migrate);
		return;
	}
	file = &migrate->files[migrate->next - 1];
	/* The file and its record run as one implicit transaction. */
	len = strlen(file->sql) + strlen(file->name) + 256;
	if ((sql = malloc(len)) == NULL)
		fatal("migrate: malloc");
	snprintf(sql, len, MIGRATE_LOCK_TIMEOUT "%s\n;\nINSERT INTO "
	    "public.ipam_schema_migration (version, name) VALUES (%d, '%s')",
	    file->sql, file->version, file->name);
	rc = pgconn_query(migrate->pg, sql, 0, NULL, migrate_applied_cb,
	    migrate);
	free(sql);
	if (rc == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/*
 * The lock is held: who are we, and do the record tables exist?  Reading
 * needs no right beyond SELECT on them.
 */
static void
migrate_inspect_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;
	char reason[512];

	if (!migrate_check(migrate, result, error,
	    "looking for the migration records"))
		return;
	snprintf(migrate->role, sizeof(migrate->role), "%s",
	    PQgetvalue(result, 0, 0));
	/*
	 * Ids, hostnames and descriptions are UTF-8 text, and the derivation
	 * breaks ties between ids by their bytes: in another encoding the
	 * bytes differ from those ipamd.id_key() and the daemon compare.
	 */
	if (strcmp(PQgetvalue(result, 0, 3), "UTF8") != 0) {
		snprintf(reason, sizeof(reason), "database \"%s\" is encoded "
		    "%s; ipam-syncd needs UTF8: create it with ENCODING "
		    "'UTF8' (docs/OPERATIONS.md)", PQgetvalue(result, 0, 4),
		    PQgetvalue(result, 0, 3));
		pgconn_stop(pg);
		migrate_finish(migrate, MIGRATE_UNSUITABLE, reason);
		return;
	}
	migrate->has_records = strcmp(PQgetvalue(result, 0, 1), "t") == 0;
	migrate->has_code_records = strcmp(PQgetvalue(result, 0, 2), "t") == 0;
	if (!migrate->has_records) {
		migrate->current = 0;
		migrate_version_known(migrate);
		return;
	}
	if (pgconn_query(pg, "SELECT coalesce(max(version), 0) FROM "
	    "public.ipam_schema_migration", 0, NULL, migrate_version_cb,
	    migrate) == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* The lock is held: look at the database before changing anything. */
static void
migrate_locked_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	static const char sql[] =
	    "SELECT current_user,"
	    " to_regclass('public.ipam_schema_migration') IS NOT NULL,"
	    " to_regclass('public.ipam_schema_function') IS NOT NULL,"
	    " current_setting('server_encoding'), current_database()";
	struct migrate *migrate = arg;

	if (!migrate_check(migrate, result, error, "taking the migration lock"))
		return;
	if (pgconn_query(pg, sql, 0, NULL, migrate_inspect_cb, migrate) == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* Applies the pending migrations. */
void
migrate_run(struct migrate *migrate, struct pgconn *pg, migrate_done_cb *done,
    void *arg)
{
	migrate->pg = pg;
	migrate->done = done;
	migrate->arg = arg;
	/* Silence "relation already exists" notices of IF NOT EXISTS. */
	if (pgconn_query(pg, "SET client_min_messages = warning; "
	    MIGRATE_LOCK_SQL, 0, NULL, migrate_locked_cb, migrate) == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}
