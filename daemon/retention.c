/* Retention: old audit rows, dead letters and request outcomes pruned by age. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "daemon/config.h"
#include "daemon/retention.h"

/* Rows one batch removes at most: one short transaction each. */
#define RETENTION_BATCH_ROWS	5000

/* How often the figures for /metrics are read. */
#define RETENTION_FIGURES_MS	15000

const char *const retention_table_names[RETENTION_TABLE_COUNT] = {
	"audit", "dead_letter", "request"
};

const char *const retention_conflict_kinds[RETENTION_CONFLICT_KINDS] = {
	"several_servers", "server_on_reserved", "server_on_quarantine",
	"pool_shadowed", "duplicate_subnet"
};

/*
 * The job's session: it never waits long for a lock (a migration's ALTER
 * TABLE would queue the apply behind it), and no batch runs long.  The
 * functions (schema/functions/97_retention.sql) skip rows others hold.
 */
static const char retention_session_sql[] =
	"SET lock_timeout = '1s'; SET statement_timeout = '60s'";

static const char retention_prune_sql[] =
	"SELECT ipamd.retention_prune($1, $2, $3)";

static const char retention_figures_sql[] =
	"SELECT ipamd.retention_figures()";

/* What the connection is doing. */
enum retention_query {
	RETENTION_IDLE,
	RETENTION_PRUNING,
	RETENTION_READING,
};

struct retention {
	struct event_base	*base;
	struct pgconn		*pg;
	long long		 days[RETENTION_TABLE_COUNT];
	long long		 interval_ms;
	bool			 started;

	enum retention_query	 query;
	bool			 run_due;	/* a run waits for the connection */
	bool			 figures_due;	/* a read waits for it */
	enum retention_table	 table;		/* the run's current table */
	struct timespec		 run_started;

	struct event		*run_timer;
	struct event		*figures_timer;
	struct retention_stats	 stats;
};

static void	retention_next(struct retention *retention);

/* Seconds since the epoch, with a fraction. */
static double
retention_now_unix(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Arms a timer for ms milliseconds. */
static void
retention_arm(struct event *timer, long long ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)((ms % 1000) * 1000) };

	evtimer_add(timer, &tv);
}

/* Fills the settings from a config. */
void
retention_settings_from_config(const struct config *config,
    const char *password, struct retention_settings *settings)
{
	memset(settings, 0, sizeof(*settings));
	settings->days[RETENTION_AUDIT] = config->retention_audit_days;
	settings->days[RETENTION_DEAD_LETTER] =
	    config->retention_dead_letter_days;
	settings->days[RETENTION_REQUEST] = config->retention_request_days;
	settings->interval_ms = config->retention_interval_ms;
	settings->conninfo = config->pg_conninfo;
	settings->password = password;
	settings->pg_connect_timeout_ms = config->pg_connect_timeout_ms;
	settings->pg_reconnect_min_ms = config->pg_reconnect_min_ms;
	settings->pg_reconnect_max_ms = config->pg_reconnect_max_ms;
}

/* Ends a run: it left nothing old behind (complete) or met an error. */
static void
retention_run_end(struct retention *retention, bool complete)
{
	retention->stats.running = false;
	if (!complete) {
		retention->stats.errors++;
		return;
	}
	retention->stats.runs++;
	retention->stats.last_run_unix = retention_now_unix();
	retention->stats.last_run_seconds =
	    clock_seconds_since(&retention->run_started);
	log_debug("retention: run done in %.3f s",
	    retention->stats.last_run_seconds);
}

/*
 * An error that the session cannot outlive (a server turned read-only, a
 * primary demoted while its sessions stayed): the connection is made
 * again, as the apply's is, so that target_session_attrs can find the
 * new primary.  Returns true when it was.
 */
static bool
retention_fatal(struct pgconn *pg, const PGresult *result, const char *why)
{
	if (result == NULL || !pgconn_sqlstate_is_fatal(PQresultErrorField(
	    result, PG_DIAG_SQLSTATE)))
		return false;
	pgconn_reset(pg, why);
	return true;
}

/* One batch is over: the same table again while it removed rows. */
static void
retention_pruned_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct retention *retention = arg;
	enum retention_table table = retention->table;
	char message[512];
	long long removed;

	retention->query = RETENTION_IDLE;
	if (result == NULL) {
		/* The connection went; the run starts again once it is back. */
		retention->stats.running = false;
		retention->run_due = true;
		return;
	}
	if (PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1) {
		pgconn_result_error(pg, result, message, sizeof(message));
		log_warnx("retention: pruning ipamd.%s failed: %s; trying again "
		    "in %lld ms", retention_table_names[table], message,
		    retention->interval_ms);
		retention_run_end(retention, false);
		if (retention_fatal(pg, result, message))
			return;
		retention_next(retention);
		return;
	}
	if (PQgetisnull(result, 0, 0)) {
		/* Another instance prunes this table now: it is theirs. */
		log_debug("retention: another instance prunes ipamd.%s",
		    retention_table_names[table]);
		retention->stats.left_to_others++;
		removed = 0;
	} else
		removed = strtoll(PQgetvalue(result, 0, 0), NULL, 10);
	if (removed > 0) {
		retention->stats.rows_pruned[table] += (uint64_t)removed;
		log_debug("retention: %lld rows of ipamd.%s removed", removed,
		    retention_table_names[table]);
	} else
		retention->table++;
	if (retention->table == RETENTION_TABLE_COUNT)
		retention_run_end(retention, true);
	retention_next(retention);
}

/* Sends the next batch of the run. */
static void
retention_send_batch(struct retention *retention)
{
	char table[32], days[32], rows[32];
	const char *params[3] = { table, days, rows };

	snprintf(table, sizeof(table), "%s",
	    retention_table_names[retention->table]);
	snprintf(days, sizeof(days), "%lld", retention->days[retention->table]);
	snprintf(rows, sizeof(rows), "%d", RETENTION_BATCH_ROWS);
	if (pgconn_query(retention->pg, retention_prune_sql, 3, params,
	    retention_pruned_cb, retention) == 0)
		retention->query = RETENTION_PRUNING;
}

/* Reads a number member of a JSON object; def when absent or null. */
static double
retention_json_number(json_t *object, const char *name, double def)
{
	json_t *value = json_object_get(object, name);

	return json_is_number(value) ? json_number_value(value) : def;
}

/* The figures are read. */
static void
retention_figures_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct retention *retention = arg;
	struct retention_stats *stats = &retention->stats;
	json_t *root, *conflicts, *oldest;
	char message[512];
	size_t i;

	retention->query = RETENTION_IDLE;
	if (result == NULL) {
		stats->figures_known = false;
		return;
	}
	if (PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1 || (root = json_loads(PQgetvalue(result,
	    0, 0), 0, NULL)) == NULL) {
		pgconn_result_error(pg, result, message, sizeof(message));
		log_warnx("retention: reading the figures failed: %s", message);
		stats->figures_known = false;
		if (retention_fatal(pg, result, message))
			return;
		retention_next(retention);
		return;
	}
	conflicts = json_object_get(root, "conflicts");
	for (i = 0; i < RETENTION_CONFLICT_KINDS; i++)
		stats->conflicts[i] = (uint64_t)retention_json_number(conflicts,
		    retention_conflict_kinds[i], 0);
	stats->dead_letters = (uint64_t)retention_json_number(root,
	    "dead_letters", 0);
	oldest = json_object_get(root, "oldest");
	for (i = 0; i < RETENTION_TABLE_COUNT; i++)
		stats->oldest_unix[i] = retention_json_number(oldest,
		    retention_table_names[i], -1);
	stats->figures_known = true;
	stats->figures_unix = retention_now_unix();
	json_decref(root);
	retention_next(retention);
}

/*
 * Gives the idle connection its next statement: a read of the figures
 * when one is due (between two batches: it never waits a whole run), else
 * the run's next batch, or a run that is due.
 */
static void
retention_next(struct retention *retention)
{
	if (!retention->started || retention->query != RETENTION_IDLE ||
	    !pgconn_is_up(retention->pg) || pgconn_is_busy(retention->pg))
		return;
	if (retention->figures_due) {
		retention->figures_due = false;
		if (pgconn_query(retention->pg, retention_figures_sql, 0, NULL,
		    retention_figures_cb, retention) == 0) {
			retention->query = RETENTION_READING;
			return;
		}
	}
	if (!retention->stats.running && retention->run_due) {
		retention->run_due = false;
		retention->stats.running = true;
		retention->table = RETENTION_AUDIT;
		clock_gettime(CLOCK_MONOTONIC, &retention->run_started);
	}
	if (retention->stats.running)
		retention_send_batch(retention);
}

/* A run is due. */
static void
retention_run_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct retention *retention = arg;

	retention->run_due = true;
	retention_arm(retention->run_timer, retention->interval_ms);
	retention_next(retention);
}

/* A read of the figures is due. */
static void
retention_figures_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct retention *retention = arg;

	retention->figures_due = true;
	retention_next(retention);
}

/*
 * The connection is up: the figures now, and the run that was due (the
 * first one, or one the lost connection cut short).
 */
static void
retention_pg_up(struct pgconn *pg, void *arg)
{
	struct retention *retention = arg;

	retention->figures_due = true;
	retention_next(retention);
}

/* The connection is down: pgconn reconnects by itself. */
static void
retention_pg_down(struct pgconn *pg, const char *reason, void *arg)
{
	struct retention *retention = arg;

	retention->query = RETENTION_IDLE;
	retention->stats.figures_known = false;
	if (retention->stats.running) {
		retention->stats.running = false;
		retention->run_due = true;
	}
	if (retention->started)
		log_warnx("retention: connection to PostgreSQL lost: %s",
		    reason);
}

/* Creates the job. */
struct retention *
retention_new(struct event_base *base, const struct retention_settings *settings)
{
	struct pgconn_settings pg_settings;
	struct pgconn_callbacks callbacks = { retention_pg_up,
	    retention_pg_down, NULL };
	struct retention *retention;
	size_t i;

	if ((retention = calloc(1, sizeof(*retention))) == NULL)
		fatal("retention: calloc");
	retention->base = base;
	for (i = 0; i < RETENTION_TABLE_COUNT; i++) {
		retention->days[i] = settings->days[i];
		retention->stats.oldest_unix[i] = -1;
	}
	retention->interval_ms = settings->interval_ms > 0 ?
	    settings->interval_ms : 600000;
	memset(&pg_settings, 0, sizeof(pg_settings));
	pg_settings.conninfo = settings->conninfo;
	pg_settings.password = settings->password;
	pg_settings.application_name = "ipam-syncd retention";
	pg_settings.session_sql = retention_session_sql;
	pg_settings.connect_timeout_ms = settings->pg_connect_timeout_ms;
	pg_settings.reconnect_min_ms = settings->pg_reconnect_min_ms;
	pg_settings.reconnect_max_ms = settings->pg_reconnect_max_ms;
	callbacks.arg = retention;
	retention->pg = pgconn_new(base, &pg_settings, &callbacks);
	retention->run_timer = evtimer_new(base, retention_run_timer_cb,
	    retention);
	retention->figures_timer = event_new(base, -1, EV_PERSIST,
	    retention_figures_timer_cb, retention);
	if (retention->pg == NULL || retention->run_timer == NULL ||
	    retention->figures_timer == NULL)
		fatalx("retention: cannot create the connection or timers");
	return retention;
}

/* Connects, prunes at once, then every interval. */
void
retention_start(struct retention *retention)
{
	struct timeval figures = { RETENTION_FIGURES_MS / 1000,
	    (RETENTION_FIGURES_MS % 1000) * 1000 };

	if (retention == NULL || retention->started)
		return;
	retention->started = true;
	retention->run_due = true;
	retention_arm(retention->run_timer, retention->interval_ms);
	event_add(retention->figures_timer, &figures);
	log_info("retention: audit %lld days, dead letters %lld days, "
	    "request outcomes %lld days (0 keeps forever), looked for every "
	    "%lld ms", retention->days[RETENTION_AUDIT],
	    retention->days[RETENTION_DEAD_LETTER],
	    retention->days[RETENTION_REQUEST], retention->interval_ms);
	pgconn_start(retention->pg);
}

/* Takes reloaded days and interval. */
void
retention_reload(struct retention *retention,
    const struct retention_settings *settings)
{
	bool changed = false;
	size_t i;

	if (retention == NULL)
		return;
	pgconn_set_timeouts(retention->pg, settings->pg_connect_timeout_ms,
	    settings->pg_reconnect_min_ms, settings->pg_reconnect_max_ms);
	for (i = 0; i < RETENTION_TABLE_COUNT; i++) {
		changed |= retention->days[i] != settings->days[i];
		retention->days[i] = settings->days[i];
	}
	if (settings->interval_ms > 0 &&
	    settings->interval_ms != retention->interval_ms) {
		retention->interval_ms = settings->interval_ms;
		changed = true;
		if (retention->started)
			retention_arm(retention->run_timer,
			    retention->interval_ms);
	}
	if (!changed)
		return;
	log_info("retention: now audit %lld days, dead letters %lld days, "
	    "request outcomes %lld days, every %lld ms",
	    retention->days[RETENTION_AUDIT],
	    retention->days[RETENTION_DEAD_LETTER],
	    retention->days[RETENTION_REQUEST], retention->interval_ms);
	/* Shorter days may have made rows old: look now. */
	if (retention->started) {
		retention->run_due = true;
		retention_next(retention);
	}
}

/* Stops the timers and closes the connection. */
void
retention_stop(struct retention *retention)
{
	if (retention == NULL || !retention->started)
		return;
	retention->started = false;
	evtimer_del(retention->run_timer);
	event_del(retention->figures_timer);
	pgconn_stop(retention->pg);
	retention->query = RETENTION_IDLE;
	retention->stats.running = false;
	retention->stats.figures_known = false;
}

/* Frees the job. */
void
retention_free(struct retention *retention)
{
	if (retention == NULL)
		return;
	if (retention->run_timer != NULL)
		event_free(retention->run_timer);
	if (retention->figures_timer != NULL)
		event_free(retention->figures_timer);
	pgconn_free(retention->pg);
	free(retention);
}

/* The figures. */
const struct retention_stats *
retention_stats(const struct retention *retention)
{
	return &retention->stats;
}

/* The days a table keeps now. */
long long
retention_days(const struct retention *retention, enum retention_table table)
{
	return retention->days[table];
}
