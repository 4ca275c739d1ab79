/* Schema migrations: numbered SQL files applied in order, each once. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/migrate.h"

/* The advisory lock every instance takes around migrations. */
#define MIGRATE_LOCK_SQL	"SELECT pg_advisory_lock(7369746)"
#define MIGRATE_UNLOCK_SQL	"SELECT pg_advisory_unlock(7369746)"

/* One migration file. */
struct migrate_file {
	int	 version;
	char	*name;		/* file name without .sql */
	char	*sql;
};

struct migrate {
	struct migrate_file	 files[MIGRATE_SCHEMA_VERSION];
	struct pgconn		*pg;
	migrate_done_cb		*done;
	void			*arg;
	int			 current;	/* version found in the database */
	int			 next;		/* next file to apply */
};

static void	migrate_step(struct migrate *migrate);

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
	char message[1024], reason[1200];

	if (result == NULL) {
		migrate_finish(migrate, MIGRATE_LOST, error);
		return false;
	}
	if (PQresultStatus(result) == PGRES_TUPLES_OK ||
	    PQresultStatus(result) == PGRES_COMMAND_OK)
		return true;
	pgconn_result_error(migrate->pg, result, message, sizeof(message));
	snprintf(reason, sizeof(reason), "%s: %s", what, message);
	/* Release the lock before giving up, so another instance can go on. */
	pgconn_reset(migrate->pg, "migration failed");
	migrate_finish(migrate, MIGRATE_FAILED, reason);
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

/* Applies the next pending migration, or releases the lock when done. */
static void
migrate_step(struct migrate *migrate)
{
	struct migrate_file *file;
	char *sql;
	size_t len;
	int rc;

	if (migrate->next > MIGRATE_SCHEMA_VERSION) {
		if (pgconn_query(migrate->pg, MIGRATE_UNLOCK_SQL, 0, NULL,
		    migrate_unlocked_cb, migrate) == -1)
			migrate_finish(migrate, MIGRATE_LOST, "not connected");
		return;
	}
	file = &migrate->files[migrate->next - 1];
	/* The file and its record run as one implicit transaction. */
	len = strlen(file->sql) + strlen(file->name) + 256;
	if ((sql = malloc(len)) == NULL)
		fatal("migrate: malloc");
	snprintf(sql, len, "%s\n;\nINSERT INTO public.ipam_schema_migration "
	    "(version, name) VALUES (%d, '%s')", file->sql, file->version,
	    file->name);
	rc = pgconn_query(migrate->pg, sql, 0, NULL, migrate_applied_cb,
	    migrate);
	free(sql);
	if (rc == -1)
		migrate_finish(migrate, MIGRATE_LOST, "not connected");
}

/* Reads the version the database is at. */
static void
migrate_version_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct migrate *migrate = arg;
	char reason[256];

	if (!migrate_check(migrate, result, error, "reading the schema version"))
		return;
	migrate->current = atoi(PQgetvalue(result, 0, 0));
	if (migrate->current > MIGRATE_SCHEMA_VERSION) {
		snprintf(reason, sizeof(reason),
		    "the database schema is at version %d, newer than this "
		    "ipam-syncd knows (%d): upgrade ipam-syncd",
		    migrate->current, MIGRATE_SCHEMA_VERSION);
		pgconn_reset(pg, "schema too new");
		migrate_finish(migrate, MIGRATE_FAILED, reason);
		return;
	}
	if (migrate->current == MIGRATE_SCHEMA_VERSION)
		log_info("schema: at version %d, nothing to apply",
		    migrate->current);
	migrate->next = migrate->current + 1;
	migrate_step(migrate);
}

/* The lock is held: create the record table if needed and read it. */
static void
migrate_locked_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	static const char sql[] =
	    "CREATE TABLE IF NOT EXISTS public.ipam_schema_migration ("
	    " version integer PRIMARY KEY,"
	    " name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now());"
	    "SELECT coalesce(max(version), 0) FROM public.ipam_schema_migration";
	struct migrate *migrate = arg;

	if (!migrate_check(migrate, result, error, "taking the migration lock"))
		return;
	if (pgconn_query(pg, sql, 0, NULL, migrate_version_cb, migrate) == -1)
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
