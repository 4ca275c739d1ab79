/* The rebuild: fill a fresh state from the beginning, derive, swap it in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumers/rebuild.h"

/* How long a failed step waits before it is tried again. */
#define REBUILD_RETRY_MS	5000

/*
 * How long the swap waits for a lock before it gives up (a reader holds
 * public.ipam): doubled with each swap given up so, up to the most, so
 * that reads that take their time let it through in the end, while one
 * idle in a transaction never holds readers up for longer.
 */
#define REBUILD_SWAP_WAIT_MS	2000
#define REBUILD_SWAP_WAIT_MAX_MS	64000

struct rebuild {
	struct pgconn		*pg;
	enum rebuild_state	 state;
	bool			 busy;		/* a statement is in flight */
	bool			 failed;	/* the last step failed ... */
	struct timespec		 failed_at;	/* ... then: tried again later */
	char			 failing[600];	/* ... and why, for /readyz */
	unsigned		 swap_waits;	/* swaps given up on a lock */
	rebuild_event_cb	*prepared;
	rebuild_event_cb	*swapped;
	void			*arg;
};

/* Names a state for the log. */
static const char *
rebuild_state_name(enum rebuild_state state)
{
	switch (state) {
	case REBUILD_OFF:
		return "off";
	case REBUILD_PREPARING:
		return "preparing";
	case REBUILD_FILLING:
		return "filling";
	case REBUILD_DERIVING:
		return "deriving";
	case REBUILD_SWAPPING:
		return "swapping";
	}
	return "?";
}

/* Moves to a state, saying so at debug level. */
static void
rebuild_enter(struct rebuild *rebuild, enum rebuild_state state)
{
	log_debug("rebuild: %s -> %s", rebuild_state_name(rebuild->state),
	    rebuild_state_name(state));
	/* A swap that comes again later starts from the shortest wait. */
	if (state != REBUILD_SWAPPING)
		rebuild->swap_waits = 0;
	rebuild->state = state;
}

/* Creates the state machine. */
struct rebuild *
rebuild_new(struct pgconn *pg, bool on, rebuild_event_cb *prepared,
    rebuild_event_cb *swapped, void *arg)
{
	struct rebuild *rebuild;

	if ((rebuild = calloc(1, sizeof(*rebuild))) == NULL)
		fatal("rebuild: calloc");
	rebuild->pg = pg;
	rebuild->state = on ? REBUILD_PREPARING : REBUILD_OFF;
	rebuild->prepared = prepared;
	rebuild->swapped = swapped;
	rebuild->arg = arg;
	return rebuild;
}

/* Frees it. */
void
rebuild_free(struct rebuild *rebuild)
{
	free(rebuild);
}

/* Where it stands. */
enum rebuild_state
rebuild_state(const struct rebuild *rebuild)
{
	return rebuild->state;
}

/* The state schema the applies fill now. */
const char *
rebuild_schema(const struct rebuild *rebuild)
{
	return rebuild->state == REBUILD_OFF ? "ipam_state" :
	    "ipam_state_rebuild";
}

/* Tells whether a statement is in flight. */
bool
rebuild_busy(const struct rebuild *rebuild)
{
	return rebuild->busy;
}

/* Why the last step failed, while it has not succeeded since; or NULL. */
const char *
rebuild_failing(const struct rebuild *rebuild)
{
	return rebuild->failed ? rebuild->failing : NULL;
}

/*
 * Checks a step's result; false (and the step is tried again later)
 * when it failed.
 */
static bool
rebuild_result_ok(struct rebuild *rebuild, PGresult *result, const char *what)
{
	char message[512];

	rebuild->busy = false;
	if (result == NULL)
		return false;	/* the connection went: tried once it is back */
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(rebuild->pg, result, message,
		    sizeof(message));
		log_errx("rebuild: %s failed: %s; trying again in %d s", what,
		    message, REBUILD_RETRY_MS / 1000);
		snprintf(rebuild->failing, sizeof(rebuild->failing),
		    "%s failed: %s; tried again after %d s", what, message,
		    REBUILD_RETRY_MS / 1000);
		rebuild->failed = true;
		clock_gettime(CLOCK_MONOTONIC, &rebuild->failed_at);
		return false;
	}
	rebuild->failed = false;
	return true;
}

/* The fresh state exists. */
static void
rebuild_begun_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct rebuild *rebuild = arg;

	if (!rebuild_result_ok(rebuild, result, "making the fresh state"))
		return;
	rebuild_enter(rebuild, REBUILD_FILLING);
	rebuild->prepared(rebuild->arg);
}

/* How long the next swap waits for a lock, in milliseconds. */
static unsigned
rebuild_swap_wait_ms(const struct rebuild *rebuild)
{
	return (unsigned)clock_backoff_ms(REBUILD_SWAP_WAIT_MS,
	    REBUILD_SWAP_WAIT_MAX_MS, rebuild->swap_waits);
}

/* The swap is done (or failed: then the rows are derived again). */
static void
rebuild_swapped_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct rebuild *rebuild = arg;
	const char *sqlstate;

	/*
	 * The connection went with the answer: the swap may have committed.
	 * Asked again once it is back, it says so (ipamd.rebuild_swap()).
	 */
	if (result == NULL) {
		rebuild->busy = false;
		log_warnx("rebuild: the connection went during the swap (%s); "
		    "asking again once it is back", error != NULL ? error :
		    "lost");
		return;
	}
	/*
	 * A lock not had in time (a session reads public.ipam or the state
	 * tables, idle in a transaction, say), or a deadlock with a reader
	 * that took a state table before the view the swap holds (the API's
	 * reads do), leaves the derived rows as they are: the swap rolled
	 * back whole, and it alone is tried again, waiting longer.
	 */
	sqlstate = PQresultStatus(result) == PGRES_TUPLES_OK ? NULL :
	    PQresultErrorField(result, PG_DIAG_SQLSTATE);
	if (sqlstate != NULL && (strcmp(sqlstate, "55P03") == 0 ||
	    strcmp(sqlstate, "40P01") == 0)) {
		rebuild->busy = false;
		rebuild->failed = true;
		clock_gettime(CLOCK_MONOTONIC, &rebuild->failed_at);
		if (strcmp(sqlstate, "40P01") == 0)
			snprintf(rebuild->failing, sizeof(rebuild->failing),
			    "the swap met a deadlock with a session that read "
			    "a state table, then public.ipam or "
			    "public.ipam_conflict; it is tried again in %d s",
			    REBUILD_RETRY_MS / 1000);
		else
			snprintf(rebuild->failing, sizeof(rebuild->failing),
			    "the swap waits for a session that holds "
			    "public.ipam or the state tables (pg_stat_activity "
			    "names one idle in a transaction, or a long read): "
			    "it gave up after %u ms and is tried again in %d s",
			    rebuild_swap_wait_ms(rebuild), REBUILD_RETRY_MS /
			    1000);
		log_warnx("rebuild: %s", rebuild->failing);
		rebuild->swap_waits++;
		return;
	}
	if (!rebuild_result_ok(rebuild, result, "the swap")) {
		rebuild_enter(rebuild, REBUILD_FILLING);
		return;
	}
	log_info("rebuild: swapped in the rebuilt state (%s); carrying on",
	    PQgetvalue(result, 0, 0));
	rebuild_enter(rebuild, REBUILD_OFF);
	rebuild->swapped(rebuild->arg);
}

/* Every row is derived: the swap is next. */
static void
rebuild_derived_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct rebuild *rebuild = arg;

	if (!rebuild_result_ok(rebuild, result, "deriving the rows")) {
		rebuild_enter(rebuild, REBUILD_FILLING);
		return;
	}
	log_info("rebuild: rows derived; swapping the rebuilt state in");
	rebuild_enter(rebuild, REBUILD_SWAPPING);
	rebuild_step(rebuild, true);
}

/* Makes the fresh state again. */
void
rebuild_restart(struct rebuild *rebuild)
{
	if (rebuild->state != REBUILD_FILLING)
		return;
	rebuild->failed = false;
	rebuild_enter(rebuild, REBUILD_PREPARING);
}

/* Drives the machine. */
void
rebuild_step(struct rebuild *rebuild, bool caught_up)
{
	pgconn_result_cb *cb;
	struct timespec now;
	const char *sql, *params[1] = { NULL };
	char wait[16];
	int nparams = 0;

	if (rebuild->busy || !pgconn_is_up(rebuild->pg) ||
	    pgconn_is_busy(rebuild->pg))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (rebuild->failed && (now.tv_sec - rebuild->failed_at.tv_sec) * 1000 +
	    (now.tv_nsec - rebuild->failed_at.tv_nsec) / 1000000 <
	    REBUILD_RETRY_MS)
		return;
	switch (rebuild->state) {
	case REBUILD_PREPARING:
		sql = "SELECT ipamd.rebuild_begin()";
		cb = rebuild_begun_cb;
		break;
	case REBUILD_FILLING:
		if (!caught_up)
			return;
		log_info("rebuild: caught up; deriving every row");
		rebuild_enter(rebuild, REBUILD_DERIVING);
		/* FALLTHROUGH */
	case REBUILD_DERIVING:
		sql = "SELECT ipamd.derive_all()";
		cb = rebuild_derived_cb;
		break;
	case REBUILD_SWAPPING:
		snprintf(wait, sizeof(wait), "%u", rebuild_swap_wait_ms(rebuild));
		params[0] = wait;
		nparams = 1;
		sql = "SELECT ipamd.rebuild_swap($1::integer)";
		cb = rebuild_swapped_cb;
		break;
	default:
		return;
	}
	if (pgconn_query(rebuild->pg, sql, nparams, params, cb, rebuild) == 0)
		rebuild->busy = true;
}
