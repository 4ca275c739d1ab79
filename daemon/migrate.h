/* Schema migrations: numbered SQL files applied in order, each once. */
#ifndef IPAM_DAEMON_MIGRATE_H
#define IPAM_DAEMON_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/pgconn.h"

/* The highest migration this binary knows; a newer database is refused. */
#define MIGRATE_SCHEMA_VERSION	21

/* How a migration run ended. */
enum migrate_outcome {
	MIGRATE_OK,
	MIGRATE_LOST,		/* the connection went: run again once it is back */
	MIGRATE_FAILED,		/* a migration failed: error says why */
	MIGRATE_TOO_NEW,	/* the database is newer than this binary */
	MIGRATE_NOT_ALLOWED,	/* a migration is due, the role may not run it */
	MIGRATE_UNSUITABLE,	/* the database cannot hold the state (encoding) */
};

typedef void migrate_done_cb(enum migrate_outcome outcome, const char *error,
    void *arg);

struct migrate;

/*
 * Reads the migration files of a folder (NNN_name.sql) and checks that
 * 1..MIGRATE_SCHEMA_VERSION are all there.  Returns NULL with err filled.
 */
struct migrate	*migrate_new(const char *schema_dir, char *err, size_t errlen);

/*
 * The release of the function files (schema/functions/RELEASE), with the
 * digest RELEASE names and the one of the files read: equal unless the
 * files changed without a new release.  A database whose functions are of
 * a newer release is refused (MIGRATE_TOO_NEW).
 */
int		 migrate_release(const struct migrate *migrate,
		    const char **recorded, const char **computed);

/* Frees a migration runner. */
void		 migrate_free(struct migrate *migrate);

/*
 * Applies the pending migrations on an idle, connected pg under an
 * advisory lock, without blocking the loop; done is called once.  When
 * the schema is current it only reads (no DDL), so a role with data
 * rights alone goes through; a role that may not apply what is due gets
 * MIGRATE_NOT_ALLOWED naming the step, the role and the way out.
 */
void		 migrate_run(struct migrate *migrate, struct pgconn *pg,
		    migrate_done_cb *done, void *arg);

#endif
