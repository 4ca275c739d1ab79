/* One PostgreSQL connection driven by libevent: connect, query, reconnect. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "common/pgconn_lookup.h"

/* A connection up this long has held: its loss starts the delay over. */
#define PGCONN_STABLE_MS	10000
/* The longest a lookup of the host names may take (one that hangs). */
#define PGCONN_LOOKUP_MS	60000
#define PGCONN_LOOKUP_TEXT	"60 s"

enum pgconn_state {
	PGCONN_IDLE,		/* not started, or stopped */
	PGCONN_WAITING,		/* waiting for the backoff timer */
	PGCONN_LOOKING_UP,	/* the host names are looked up */
	PGCONN_CONNECTING,	/* PQconnectPoll in progress */
	PGCONN_UP,		/* connected */
};

struct pgconn {
	struct event_base	*base;
	struct pgconn_callbacks	 callbacks;
	char			*conninfo;
	char			*password;
	char			*application_name;
	char			*session_sql;
	long long		 connect_timeout_ms;
	long long		 reconnect_min_ms;
	long long		 reconnect_max_ms;
	long long		 backoff_ms;
	struct timespec		 up_since;	/* when it last came up */

	enum pgconn_state	 state;
	PGconn			*conn;
	struct event		*io;		/* on PQsocket(), re-made as it changes */
	int			 io_fd;
	struct event		*timer;		/* connect timeout and backoff */
	struct event		*later;		/* a loss told from the loop */
	char			 later_why[512];
	unsigned long		 losses;
	unsigned		 host_turn;	/* attempts timed out: which of
						   several hosts is tried first */
	struct pgconn_lookup	*lookup;	/* while looking up */

	/* The query in flight. */
	bool			 busy;
	bool			 flushing;
	PGresult		*last_result;
	pgconn_result_cb	*cb;
	void			*cb_arg;
};

static void	pgconn_io_cb(evutil_socket_t fd, short what, void *arg);
static void	pgconn_lose(struct pgconn *pg, const char *reason);
static void	pgconn_session_cb(struct pgconn *pg, PGresult *result,
		    const char *error, void *arg);

/* Turns milliseconds into a timeval. */
static struct timeval
pgconn_ms(long long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return tv;
}

/* Copies a string, keeping NULL as NULL; aborts on exhaustion. */
static char *
pgconn_strdup(const char *text)
{
	char *copy;

	if (text == NULL)
		return NULL;
	if ((copy = strdup(text)) == NULL)
		fatal("strdup");
	return copy;
}

/* Creates a connection handle. */
struct pgconn *
pgconn_new(struct event_base *base, const struct pgconn_settings *settings,
    const struct pgconn_callbacks *callbacks)
{
	struct pgconn *pg;

	if ((pg = calloc(1, sizeof(*pg))) == NULL)
		fatal("calloc");
	pg->base = base;
	pg->callbacks = *callbacks;
	pg->conninfo = pgconn_strdup(settings->conninfo ? settings->conninfo : "");
	pg->password = pgconn_strdup(settings->password);
	pg->application_name = pgconn_strdup(settings->application_name);
	pg->session_sql = pgconn_strdup(settings->session_sql);
	pg->io_fd = -1;
	pgconn_set_timeouts(pg, settings->connect_timeout_ms,
	    settings->reconnect_min_ms, settings->reconnect_max_ms);
	pg->backoff_ms = pg->reconnect_min_ms;
	return pg;
}

/* Updates the timeouts. */
void
pgconn_set_timeouts(struct pgconn *pg, long long connect_ms,
    long long reconnect_min_ms, long long reconnect_max_ms)
{
	pg->connect_timeout_ms = connect_ms;
	pg->reconnect_min_ms = reconnect_min_ms;
	pg->reconnect_max_ms = reconnect_max_ms;
}

/* Cancels a loss waiting to be told from the loop (the connection goes). */
static void
pgconn_later_cancel(struct pgconn *pg)
{
	if (pg->later != NULL)
		evtimer_del(pg->later);
}

/* Removes the socket event. */
static void
pgconn_unwatch(struct pgconn *pg)
{
	if (pg->io != NULL) {
		event_free(pg->io);
		pg->io = NULL;
	}
	pg->io_fd = -1;
}

/* Watches the socket for reading and/or writing, re-reading PQsocket(). */
static void
pgconn_watch(struct pgconn *pg, short what)
{
	int fd = PQsocket(pg->conn);

	if (fd != pg->io_fd || pg->io == NULL) {
		pgconn_unwatch(pg);
		pg->io = event_new(pg->base, fd, what, pgconn_io_cb, pg);
		if (pg->io == NULL)
			fatalx("event_new failed");
		pg->io_fd = fd;
	} else {
		event_del(pg->io);
		event_assign(pg->io, pg->base, fd, what, pgconn_io_cb, pg);
	}
	event_add(pg->io, NULL);
}

/* Closes the libpq connection and its event, or drops a lookup. */
static void
pgconn_close(struct pgconn *pg)
{
	pgconn_later_cancel(pg);
	pgconn_lookup_drop(pg->lookup);
	pg->lookup = NULL;
	pgconn_unwatch(pg);
	if (pg->conn != NULL) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	if (pg->last_result != NULL) {
		PQclear(pg->last_result);
		pg->last_result = NULL;
	}
}

/* Fails the query in flight, if any, with a reason. */
static void
pgconn_fail_query(struct pgconn *pg, const char *reason)
{
	pgconn_result_cb *cb = pg->cb;

	if (!pg->busy)
		return;
	pg->busy = false;
	pg->flushing = false;
	pg->cb = NULL;
	if (pg->last_result != NULL) {
		PQclear(pg->last_result);
		pg->last_result = NULL;
	}
	if (cb != NULL)
		cb(pg, NULL, reason, pg->cb_arg);
}

/* Arms the timer. */
static void
pgconn_arm_timer(struct pgconn *pg, long long ms)
{
	struct timeval tv = pgconn_ms(ms);

	evtimer_del(pg->timer);
	evtimer_add(pg->timer, &tv);
}

/* Tells whether a conninfo names a service (or PGSERVICE does). */
static bool
pgconn_uses_service(const char *conninfo)
{
	PQconninfoOption *options, *o;
	const char *env = getenv("PGSERVICE");
	bool named = env != NULL && *env != '\0';

	if (named || (options = PQconninfoParse(conninfo, NULL)) == NULL)
		return named;
	for (o = options; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "service") == 0 && o->val != NULL &&
		    *o->val != '\0')
			named = true;
	PQconninfoFree(options);
	return named;
}

/* A comma-separated list begun at its entry k, the rest after (freed by caller). */
static char *
pgconn_list_rotate(const char *list, size_t k)
{
	size_t len = strlen(list), head, i;
	const char *p = list;
	char *out;

	if ((out = malloc(len + 2)) == NULL)
		fatal("postgresql: malloc");
	for (i = 0; i < k; i++)
		p = strchr(p, ',') + 1;
	head = (size_t)(p - list);	/* entries 0..k-1 and their comma */
	memcpy(out, p, len - head);
	out[len - head] = ',';
	memcpy(out + len - head + 1, list, head - 1);
	out[len] = '\0';
	return out;
}

/*
 * With several hosts, the order they are tried in after `turn` attempts
 * timed out: libpq goes to the next host only once a host refuses, and a
 * host that drops packets holds an attempt until the connect timeout
 * ends it, so the next attempt starts at the next host.  Fills lists
 * for host, hostaddr and port (NULL: as the conninfo says) and returns
 * how many were set.
 */
int
pgconn_hosts_turned(const char *conninfo, unsigned turn, char *lists[3])
{
	static const char *const names[3] = { "host", "hostaddr", "port" };
	const char *values[3] = { NULL, NULL, NULL };
	PQconninfoOption *options, *o;
	size_t n, k, i;
	int set = 0;

	lists[0] = lists[1] = lists[2] = NULL;
	if (turn == 0 || (options = PQconninfoParse(conninfo, NULL)) == NULL)
		return 0;
	for (o = options; o->keyword != NULL; o++)
		for (i = 0; i < 3; i++)
			if (strcmp(o->keyword, names[i]) == 0)
				values[i] = o->val;
	n = pgconn_list_count(values[0]);
	if (n == 0)
		n = pgconn_list_count(values[1]);
	k = n > 1 ? turn % n : 0;
	for (i = 0; k > 0 && i < 3; i++)
		if (pgconn_list_count(values[i]) == n) {
			lists[i] = pgconn_list_rotate(values[i], k);
			set++;
		}
	PQconninfoFree(options);
	return set;
}

/*
 * Starts the connection attempt, with host, hostaddr and port lists that
 * override the conninfo's (NULL each: as it says).
 */
static void
pgconn_connect(struct pgconn *pg, char *const lists[3])
{
	/*
	 * Before dbname: defaults its conninfo may override.  A server gone
	 * without a word (a host down, a network cut) is noticed within a
	 * minute, idle (keepalives) or with a statement sent (its bytes not
	 * acknowledged), instead of the kernel's two hours or fifteen
	 * minutes, during which the apply, a sweep or a read waited.
	 */
	static const char *const liveness[][2] = {
		{ "keepalives", "1" },
		{ "keepalives_idle", "30" },
		{ "keepalives_interval", "10" },
		{ "keepalives_count", "3" },
		{ "tcp_user_timeout", "60000" },
	};
	static const char *const list_names[3] = { "host", "hostaddr",
	    "port" };
	const char *keywords[16];
	const char *values[16];
	size_t i;
	int n = 0;

	/* A service file's settings fill only what is not set: left to it. */
	for (i = 0; !pgconn_uses_service(pg->conninfo) &&
	    i < sizeof(liveness) / sizeof(liveness[0]); i++) {
		keywords[n] = liveness[i][0];
		values[n++] = liveness[i][1];
	}
	keywords[n] = "dbname";
	values[n++] = pg->conninfo;
	/* After dbname: these override the conninfo's own lists. */
	for (i = 0; i < 3; i++)
		if (lists[i] != NULL) {
			keywords[n] = list_names[i];
			values[n++] = lists[i];
		}
	if (pg->password != NULL) {
		keywords[n] = "password";
		values[n++] = pg->password;
	}
	if (pg->application_name != NULL) {
		keywords[n] = "fallback_application_name";
		values[n++] = pg->application_name;
	}
	keywords[n] = NULL;
	values[n] = NULL;

	pg->conn = PQconnectStartParams(keywords, values, 1);
	if (pg->conn == NULL) {
		pgconn_lose(pg, "out of memory");
		return;
	}
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		pgconn_lose(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg->state = PGCONN_CONNECTING;
	pgconn_arm_timer(pg, pg->connect_timeout_ms);
	pgconn_watch(pg, EV_WRITE);
}

/* The host names are looked up: connect to what they gave. */
static void
pgconn_looked_up(struct pgconn_lookup *lookup, void *arg)
{
	struct pgconn *pg = arg;
	char *lists[3], why[512];
	size_t i;
	int rc;

	rc = pgconn_lookup_result(lookup, lists, why, sizeof(why));
	pgconn_lookup_drop(pg->lookup);
	pg->lookup = NULL;
	if (rc == -1)
		pgconn_lose(pg, why);
	else {
		if (why[0] != '\0')
			log_warnx("postgresql: %s; trying the other hosts", why);
		pgconn_connect(pg, lists);
	}
	for (i = 0; i < 3; i++)
		free(lists[i]);
}

/*
 * The host, hostaddr and port lists of the next attempt: the conninfo's,
 * its hosts turned (pgconn_hosts_turned()).  NULL each when not given.
 */
static void
pgconn_lists(const struct pgconn *pg, char *lists[3])
{
	static const char *const names[3] = { "host", "hostaddr", "port" };
	PQconninfoOption *options, *o;
	size_t i;

	pgconn_hosts_turned(pg->conninfo, pg->host_turn, lists);
	if ((options = PQconninfoParse(pg->conninfo, NULL)) != NULL) {
		for (o = options; o->keyword != NULL; o++)
			for (i = 0; i < 3; i++)
				if (lists[i] == NULL &&
				    strcmp(o->keyword, names[i]) == 0 &&
				    o->val != NULL &&
				    (lists[i] = strdup(o->val)) == NULL)
					fatal("postgresql: strdup");
		PQconninfoFree(options);
	}
	/* The hosts PGHOST names, as libpq would take them. */
	if (lists[0] == NULL && getenv("PGHOST") != NULL &&
	    (lists[0] = strdup(getenv("PGHOST"))) == NULL)
		fatal("postgresql: strdup");
}

/* Runs when the connect timeout or the backoff delay expires. */
static void
pgconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pg = arg;
	char *lists[3], why[512];
	size_t i;

	if (pg->state == PGCONN_CONNECTING) {
		const char *host = pg->conn != NULL ? PQhost(pg->conn) : NULL;

		pg->host_turn++;
		snprintf(why, sizeof(why), "connection attempt%s%s timed out",
		    host != NULL && *host != '\0' ? " to " : "",
		    host != NULL ? host : "");
		pgconn_lose(pg, why);
		return;
	}
	if (pg->state == PGCONN_LOOKING_UP) {
		/* The next attempt starts at the next host, as after a connect. */
		pg->host_turn++;
		pgconn_lose(pg, "looking up the host names took longer than "
		    "the resolver should (" PGCONN_LOOKUP_TEXT ")");
		return;
	}
	if (pg->state != PGCONN_WAITING)
		return;
	pgconn_lists(pg, lists);
	/*
	 * Names to look up: on a thread, not here (pgconn_lookup.h).  Its
	 * answer starts the attempt; the resolver's own timeouts bound it,
	 * this one only one that never answers.  Not when PGHOSTADDR or a
	 * service file may give the addresses: libpq reads those, this
	 * does not.  With no thread to be had the attempt waits: handed to
	 * libpq, the names would be looked up on the loop.
	 */
	if (!pgconn_lookup_needed(lists[0], lists[1]) ||
	    getenv("PGHOSTADDR") != NULL || pgconn_uses_service(pg->conninfo))
		pgconn_connect(pg, lists);
	else if ((pg->lookup = pgconn_lookup_start(pg->base, lists[0],
	    lists[1], lists[2], pgconn_looked_up, pg)) != NULL) {
		pg->state = PGCONN_LOOKING_UP;
		pgconn_arm_timer(pg, PGCONN_LOOKUP_MS);
	} else
		pgconn_lose(pg, "no thread free to look the host names up "
		    "(lookups that hang hold them)");
	for (i = 0; i < 3; i++)
		free(lists[i]);
}

/* Starts connecting. */
void
pgconn_start(struct pgconn *pg)
{
	if (pg->timer == NULL &&
	    (pg->timer = evtimer_new(pg->base, pgconn_timer_cb, pg)) == NULL)
		fatalx("evtimer_new failed");
	if (pg->state != PGCONN_IDLE)
		return;
	pg->state = PGCONN_WAITING;
	pgconn_arm_timer(pg, 0);
}

/*
 * Marks the connection lost: fails the query in flight, tells the owner
 * once (only if it had been up) and schedules the next attempt.
 */
static void
pgconn_lose(struct pgconn *pg, const char *reason)
{
	bool was_up = pg->state == PGCONN_UP;
	struct timespec now;
	char why[512];
	size_t len;

	snprintf(why, sizeof(why), "%s", reason ? reason : "unknown error");
	len = strlen(why);
	while (len > 0 && (why[len - 1] == '\n' || why[len - 1] == ' '))
		why[--len] = '\0';
	pgconn_close(pg);
	pg->state = PGCONN_WAITING;
	if (was_up) {
		pg->losses++;
		/*
		 * A connection lost soon after it came up (a read-only
		 * server that refuses the first write, a proxy that lets
		 * go) goes on doubling the delay; one that held starts it
		 * over.
		 */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - pg->up_since.tv_sec) * 1000 +
		    (now.tv_nsec - pg->up_since.tv_nsec) / 1000000 >=
		    PGCONN_STABLE_MS)
			pg->backoff_ms = pg->reconnect_min_ms;
	}
	log_warnx("postgresql: %s; retrying in %lld ms", why, pg->backoff_ms);
	pgconn_arm_timer(pg, pg->backoff_ms);
	pg->backoff_ms *= 2;
	if (pg->backoff_ms > pg->reconnect_max_ms)
		pg->backoff_ms = pg->reconnect_max_ms;
	pgconn_fail_query(pg, why);
	if (was_up && pg->callbacks.down != NULL)
		pg->callbacks.down(pg, why, pg->callbacks.arg);
}

/* Drops the connection on the caller's word and schedules a reconnect. */
void
pgconn_reset(struct pgconn *pg, const char *reason)
{
	if (pg->state == PGCONN_UP || pg->state == PGCONN_CONNECTING ||
	    pg->state == PGCONN_LOOKING_UP)
		pgconn_lose(pg, reason);
}

/* Routes server notices into the log, one line each. */
static void
pgconn_notice(void *arg, const char *message)
{
	char line[1024];
	size_t len;

	snprintf(line, sizeof(line), "%s", message);
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	/* A warning (ours, from a function) is for the operator. */
	if (strncmp(line, "WARNING:", 8) == 0)
		log_warnx("postgresql: %s", line);
	else
		log_debug("postgresql: %s", line);
}

/* Advances a connection attempt. */
static void
pgconn_connect_step(struct pgconn *pg)
{
	switch (PQconnectPoll(pg->conn)) {
	case PGRES_POLLING_READING:
		pgconn_watch(pg, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		pgconn_watch(pg, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		break;
	default:
		pgconn_lose(pg, PQerrorMessage(pg->conn));
		return;
	}
	evtimer_del(pg->timer);
	if (PQsetnonblocking(pg->conn, 1) == -1) {
		pgconn_lose(pg, PQerrorMessage(pg->conn));
		return;
	}
	PQsetNoticeProcessor(pg->conn, pgconn_notice, pg);
	pg->state = PGCONN_UP;
	clock_gettime(CLOCK_MONOTONIC, &pg->up_since);
	log_info("postgresql: connected to %s:%s database %s as %s",
	    PQhost(pg->conn), PQport(pg->conn), PQdb(pg->conn),
	    PQuser(pg->conn));
	/* Between queries, watch for the server closing the connection. */
	pgconn_watch(pg, EV_READ | EV_PERSIST);
	if (pg->session_sql != NULL &&
	    pgconn_query(pg, pg->session_sql, 0, NULL, pgconn_session_cb,
	    NULL) == 0)
		return;	/* up is reported once the session is set */
	if (pg->callbacks.up != NULL)
		pg->callbacks.up(pg, pg->callbacks.arg);
}

/* The session settings are in place: the connection is ready for use. */
static void
pgconn_session_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	char message[512];

	if (result == NULL)
		return;	/* lost again; the next connection tries again */
	if (PQresultStatus(result) != PGRES_COMMAND_OK &&
	    PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(pg, result, message, sizeof(message));
		log_warnx("postgresql: session settings refused: %s", message);
	}
	if (pg->callbacks.up != NULL)
		pg->callbacks.up(pg, pg->callbacks.arg);
}

/* Collects results of the query in flight while they are ready. */
static void
pgconn_collect(struct pgconn *pg)
{
	PGresult *result;
	pgconn_result_cb *cb;
	char why[512];

	for (;;) {
		if (PQisBusy(pg->conn))
			return;
		result = PQgetResult(pg->conn);
		if (result == NULL)
			break;
		if (pg->last_result != NULL)
			PQclear(pg->last_result);
		pg->last_result = result;
	}
	result = pg->last_result;
	pg->last_result = NULL;
	cb = pg->cb;
	pg->cb = NULL;
	pg->busy = false;
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		if (result != NULL)
			PQclear(result);
		snprintf(why, sizeof(why), "%s", PQerrorMessage(pg->conn));
		pg->busy = true;
		pg->cb = cb;
		pgconn_lose(pg, why);
		return;
	}
	if (cb != NULL)
		cb(pg, result, NULL, pg->cb_arg);
	if (result != NULL)
		PQclear(result);
}

/* Runs when the socket is ready. */
static void
pgconn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pg = arg;
	int rc;

	if (pg->state == PGCONN_CONNECTING) {
		pgconn_connect_step(pg);
		return;
	}
	if (pg->state != PGCONN_UP)
		return;
	if ((what & EV_WRITE) && pg->flushing) {
		rc = PQflush(pg->conn);
		if (rc == -1) {
			pgconn_lose(pg, PQerrorMessage(pg->conn));
			return;
		}
		pg->flushing = rc == 1;
		pgconn_watch(pg, (pg->flushing ? EV_WRITE : 0) | EV_READ |
		    EV_PERSIST);
	}
	if (what & EV_READ) {
		if (PQconsumeInput(pg->conn) == 0) {
			pgconn_lose(pg, PQerrorMessage(pg->conn));
			return;
		}
		if (pg->busy)
			pgconn_collect(pg);
		else {
			PGnotify *notify;

			/* Nothing was asked: drain notices, notice a closed socket. */
			while ((notify = PQnotifies(pg->conn)) != NULL)
				PQfreemem(notify);
			if (PQstatus(pg->conn) == CONNECTION_BAD)
				pgconn_lose(pg, PQerrorMessage(pg->conn));
		}
	}
}

/* A loss found while sending is told now, from the loop. */
static void
pgconn_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pg = arg;

	(void)fd;
	(void)what;
	if (pg->state == PGCONN_UP)
		pgconn_lose(pg, pg->later_why);
}

/*
 * Marks the connection lost once the caller of pgconn_query() has its
 * answer: telling it there would run the query's callback, and the
 * owner's down, inside the call that asked for the query.
 */
static void
pgconn_lose_later(struct pgconn *pg, const char *reason)
{
	struct timeval now = { 0, 0 };

	if (pg->later == NULL &&
	    (pg->later = evtimer_new(pg->base, pgconn_later_cb, pg)) == NULL)
		fatalx("evtimer_new failed");
	if (!evtimer_pending(pg->later, NULL))
		snprintf(pg->later_why, sizeof(pg->later_why), "%s",
		    reason ? reason : "unknown error");
	pgconn_unwatch(pg);
	evtimer_add(pg->later, &now);
}

/*
 * Sends one query.  Its callback, and the owner's down when the
 * connection turns out lost, run from the loop, never before this
 * returns: a caller may note that the query is in flight after the call.
 */
int
pgconn_query(struct pgconn *pg, const char *sql, int nparams,
    const char *const *params, pgconn_result_cb *cb, void *arg)
{
	int rc;

	if (pg->state != PGCONN_UP || pg->busy)
		return -1;
	/* Without parameters, the simple protocol allows several statements. */
	if ((nparams == 0 ? PQsendQuery(pg->conn, sql) :
	    PQsendQueryParams(pg->conn, sql, nparams, NULL, params, NULL, NULL,
	    0)) == 0) {
		pgconn_lose_later(pg, PQerrorMessage(pg->conn));
		return -1;
	}
	pg->busy = true;
	pg->cb = cb;
	pg->cb_arg = arg;
	rc = PQflush(pg->conn);
	if (rc == -1) {
		/* Sent as far as the caller knows: it fails from the loop. */
		pgconn_lose_later(pg, PQerrorMessage(pg->conn));
		return 0;
	}
	pg->flushing = rc == 1;
	pgconn_watch(pg, (pg->flushing ? EV_WRITE : 0) | EV_READ | EV_PERSIST);
	return 0;
}

/* Closes the connection and stops reconnecting. */
void
pgconn_stop(struct pgconn *pg)
{
	if (pg->timer != NULL)
		evtimer_del(pg->timer);
	pgconn_fail_query(pg, "connection closed");
	pgconn_close(pg);
	pg->state = PGCONN_IDLE;
}

/* Frees the handle. */
void
pgconn_free(struct pgconn *pg)
{
	if (pg == NULL)
		return;
	/* Whoever asked the query in flight may be gone already: no callback. */
	pg->cb = NULL;
	pgconn_stop(pg);
	if (pg->timer != NULL)
		event_free(pg->timer);
	if (pg->later != NULL)
		event_free(pg->later);
	free(pg->conninfo);
	if (pg->password != NULL) {
		explicit_bzero(pg->password, strlen(pg->password));
		free(pg->password);
	}
	free(pg->application_name);
	free(pg->session_sql);
	free(pg);
}

/* Tells whether the connection is up. */
bool
pgconn_is_up(const struct pgconn *pg)
{
	return pg->state == PGCONN_UP;
}

/* Tells whether a query is in flight. */
bool
pgconn_is_busy(const struct pgconn *pg)
{
	return pg->busy;
}

/* Number of losses. */
unsigned long
pgconn_loss_count(const struct pgconn *pg)
{
	return pg->losses;
}

/* Tells whether an SQLSTATE means the connection must be re-established. */
bool
pgconn_sqlstate_is_fatal(const char *sqlstate)
{
	if (sqlstate == NULL)
		return false;
	return strncmp(sqlstate, "08", 2) == 0 ||
	    strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 ||
	    strcmp(sqlstate, "57P03") == 0 || strcmp(sqlstate, "25006") == 0;
}

/* Writes the error of a result in one line. */
void
pgconn_result_error(struct pgconn *pg, const PGresult *result, char *buf,
    size_t buflen)
{
	const char *message = NULL, *sqlstate = NULL;
	char suffix[32];
	size_t len;

	if (result != NULL) {
		message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
		sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
		if (message == NULL)
			message = PQresultErrorMessage(result);
	}
	if ((message == NULL || *message == '\0') && pg != NULL &&
	    pg->conn != NULL)
		message = PQerrorMessage(pg->conn);
	if (message == NULL)
		message = "unknown error";
	if (buflen == 0)
		return;
	snprintf(suffix, sizeof(suffix), "%s%s%s", sqlstate ? " (SQLSTATE " :
	    "", sqlstate ? sqlstate : "", sqlstate ? ")" : "");
	/*
	 * A long message is cut where a character begins, so that what is
	 * stored (a dead letter's reason) stays UTF-8; the SQLSTATE stays.
	 */
	len = strlen(message);
	while (len > 0 && message[len - 1] == '\n')
		len--;
	if (len + strlen(suffix) >= buflen) {
		len = buflen > strlen(suffix) ? buflen - 1 - strlen(suffix) : 0;
		while (len > 0 && ((unsigned char)message[len] & 0xc0) == 0x80)
			len--;
	}
	snprintf(buf, buflen, "%.*s%s", (int)len, message, suffix);
}
