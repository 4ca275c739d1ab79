/* A few PostgreSQL connections of the operator API's own, and a bounded queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/readpool.h"

/* Most queries that may wait for a connection; beyond, the API says 503. */
#define READPOOL_QUEUE_MAX	256

/* Most parameters of one query. */
#define READPOOL_PARAMS_MAX	4

/*
 * The share of one CPU's time the reads may keep PostgreSQL busy, and the
 * most they may bank while idle (seconds of query time).  On a small
 * machine the reads and the apply share the same cores: a storm of readers
 * waits here, in a bounded queue, instead of slowing the apply.
 */
#define READPOOL_SHARE		0.25
#define READPOOL_BURST		0.5

/* A read that waited this long for its turn is answered "too busy". */
#define READPOOL_WAIT_MAX	10.0

/*
 * The most the reads may owe: a read that ran long (up to the statement
 * timeout) holds the others back no longer than a read may wait.
 */
#define READPOOL_DEBT_MAX	(READPOOL_WAIT_MAX * READPOOL_SHARE)

struct readpool_job {
	TAILQ_ENTRY(readpool_job) entry;
	char			*sql;
	char			*params[READPOOL_PARAMS_MAX];
	int			 nparams;
	bool			 first;		/* ahead of the reads */
	pgconn_result_cb	*cb;
	void			*arg;
	struct timespec		 queued;
};

struct readpool {
	struct pgconn		**conns;
	struct readpool_done	**inflight;	/* each connection's query */
	size_t			  count;
	size_t			  waiting;
	double			  budget;	/* seconds of query time left */
	struct timespec		  refilled;
	struct event		 *wake;		/* when the budget allows again */
	char			 *session_sql;
	TAILQ_HEAD(, readpool_job) queue;
};

static void	readpool_next(struct readpool *pool);
static void	readpool_answer(struct readpool *pool, double waited,
		    const char *why);

/* Frees a job. */
static void
readpool_job_free(struct readpool_job *job)
{
	int i;

	free(job->sql);
	for (i = 0; i < job->nparams; i++)
		free(job->params[i]);
	free(job);
}

/* A connection came up: it may take a waiting query. */
static void
readpool_up(struct pgconn *pg, void *arg)
{
	readpool_next(arg);
}

/*
 * A connection went down: pgconn reconnects by itself.  When none is left
 * up, the reads waiting for one are answered now ("PostgreSQL is away"),
 * as a read asked while it is away is refused at once: nothing would take
 * them before PostgreSQL is back, and their clients would be left to the
 * HTTP deadline.  Queries ahead of the reads (a write's outcome) stay:
 * their write answers for itself at its own deadline.
 */
static void
readpool_down(struct pgconn *pg, const char *reason, void *arg)
{
	struct readpool *pool = arg;
	char why[512];

	log_warnx("api: a read connection to PostgreSQL was lost: %s", reason);
	if (readpool_is_up(pool))
		return;
	snprintf(why, sizeof(why), "away (%s)", reason);
	readpool_answer(pool, 0, why);
}

/* A query finished: its connection may take the next one. */
struct readpool_done {
	struct readpool		*pool;
	size_t			 conn;		/* its index in pool->conns */
	bool			 first;		/* a write's: not charged */
	pgconn_result_cb	*cb;
	void			*arg;
	struct timespec		 began;
};

/*
 * Answers with why, as a failed query, the reads that have waited at
 * least waited seconds.  Queries queued ahead of the reads (a write's
 * outcome) are never answered so: their write answers for itself.
 */
static void
readpool_answer(struct readpool *pool, double waited, const char *why)
{
	struct readpool_job *job, *next;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (job = TAILQ_FIRST(&pool->queue); job != NULL; job = next) {
		next = TAILQ_NEXT(job, entry);
		if (job->first || clock_seconds_between(&job->queued, &now) < waited)
			continue;
		TAILQ_REMOVE(&pool->queue, job, entry);
		pool->waiting--;
		job->cb(NULL, NULL, why, job->arg);
		readpool_job_free(job);
		/* The callback may have queued more: start again. */
		next = TAILQ_FIRST(&pool->queue);
	}
}

/* Adds what the time since the last refill earns, up to the burst. */
static void
readpool_refill(struct readpool *pool)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pool->budget += clock_seconds_between(&pool->refilled, &now) *
	    READPOOL_SHARE;
	if (pool->budget > READPOOL_BURST)
		pool->budget = READPOOL_BURST;
	pool->refilled = now;
}

/* The budget allows reads again. */
static void
readpool_wake(evutil_socket_t fd, short events, void *arg)
{
	readpool_next(arg);
}

static void
readpool_done(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct readpool_done done = *(struct readpool_done *)arg;
	struct timespec now;

	done.pool->inflight[done.conn] = NULL;
	free(arg);
	clock_gettime(CLOCK_MONOTONIC, &now);
	/*
	 * What the time until now earned is added first (up to the burst),
	 * then the read's cost taken: else a long read would earn back its
	 * own debt.  A write's short queries are not the reads' to pay.
	 */
	readpool_refill(done.pool);
	if (!done.first)
		done.pool->budget -= clock_seconds_between(&done.began, &now);
	if (done.pool->budget < -READPOOL_DEBT_MAX)
		done.pool->budget = -READPOOL_DEBT_MAX;
	done.cb(pg, result, error, done.arg);
	readpool_next(done.pool);
}

/*
 * Answers the reads that waited too long for their turn (a storm of
 * readers): each gets "too busy" instead of waiting on.
 */
static void
readpool_expire(struct readpool *pool)
{
	readpool_answer(pool, READPOOL_WAIT_MAX, READPOOL_TOO_BUSY ": "
	    "try again later");
}

/* Tells whether a read's error is the queue's "too busy". */
bool
readpool_too_busy(const char *error)
{
	return error != NULL && strncmp(error, READPOOL_TOO_BUSY,
	    strlen(READPOOL_TOO_BUSY)) == 0;
}

/*
 * Reads wait (for the budget, or for a connection): wakes when the oldest
 * has waited its most, or sooner when the budget is spent and the share
 * earns it back first.
 */
static void
readpool_sleep(struct readpool *pool)
{
	struct readpool_job *job;
	struct timespec now;
	struct timeval later;
	double wait;

	clock_gettime(CLOCK_MONOTONIC, &now);
	TAILQ_FOREACH(job, &pool->queue, entry)
		if (!job->first)
			break;
	if (job == NULL)
		return;		/* no read waits: a write's queries do not expire */
	wait = READPOOL_WAIT_MAX - clock_seconds_between(&job->queued, &now) + 0.001;
	if (pool->budget <= 0 && -pool->budget / READPOOL_SHARE + 0.001 < wait)
		wait = -pool->budget / READPOOL_SHARE + 0.001;
	if (wait < 0)
		wait = 0;
	later.tv_sec = (time_t)wait;
	later.tv_usec = (suseconds_t)((wait - (double)later.tv_sec) * 1e6);
	evtimer_add(pool->wake, &later);
}

/*
 * Hands waiting queries to the free connections.  The queries ahead of
 * the reads (a write's, first come first served) go whatever the budget
 * and are not charged to it: reads never hold a write back.
 */
static void
readpool_next(struct readpool *pool)
{
	struct readpool_done *done;
	struct readpool_job *job;
	bool spent;
	size_t i;

	readpool_refill(pool);
	readpool_expire(pool);
	spent = pool->budget <= 0;
	for (i = 0; i < pool->count && !TAILQ_EMPTY(&pool->queue); i++) {
		if (!pgconn_is_up(pool->conns[i]) ||
		    pgconn_is_busy(pool->conns[i]))
			continue;
		job = TAILQ_FIRST(&pool->queue);
		if (spent && !job->first)
			break;
		/*
		 * Off the queue before it is sent, back at its head if the
		 * send fails: the connection's loss is told from the loop,
		 * and readpool_down() answers the reads if it was the last.
		 */
		TAILQ_REMOVE(&pool->queue, job, entry);
		pool->waiting--;
		if ((done = malloc(sizeof(*done))) == NULL)
			fatal("readpool: malloc");
		done->pool = pool;
		done->conn = i;
		done->first = job->first;
		done->cb = job->cb;
		done->arg = job->arg;
		clock_gettime(CLOCK_MONOTONIC, &done->began);
		pool->inflight[i] = done;
		if (pgconn_query(pool->conns[i], job->sql, job->nparams,
		    (const char *const *)job->params, readpool_done,
		    done) == -1) {
			pool->inflight[i] = NULL;
			free(done);
			TAILQ_INSERT_HEAD(&pool->queue, job, entry);
			pool->waiting++;
			continue;
		}
		readpool_job_free(job);
	}
	/* Made again each time: a finished read may have spent the budget. */
	evtimer_del(pool->wake);
	readpool_sleep(pool);
}

/* Opens the connections. */
struct readpool *
readpool_new(struct event_base *base, const struct pgconn_settings *settings,
    size_t count, long long statement_timeout_ms)
{
	struct pgconn_callbacks callbacks = { readpool_up, readpool_down, NULL };
	struct pgconn_settings mine = *settings;
	struct readpool *pool;
	size_t i;

	if ((pool = calloc(1, sizeof(*pool))) == NULL ||
	    (pool->conns = calloc(count, sizeof(*pool->conns))) == NULL ||
	    (pool->inflight = calloc(count, sizeof(*pool->inflight))) == NULL)
		fatal("readpool: calloc");
	TAILQ_INIT(&pool->queue);
	pool->budget = READPOOL_BURST;
	clock_gettime(CLOCK_MONOTONIC, &pool->refilled);
	if ((pool->wake = evtimer_new(base, readpool_wake, pool)) == NULL)
		fatalx("readpool: evtimer_new failed");
	/* Reads never write, never wait long, and see the live state. */
	if (asprintf(&pool->session_sql, "SET default_transaction_read_only = "
	    "on; SET statement_timeout = %lld; SET lock_timeout = %lld; "
	    "SET search_path = ipam_state, public",
	    statement_timeout_ms, statement_timeout_ms) == -1)
		fatal("readpool: asprintf");
	mine.session_sql = pool->session_sql;
	callbacks.arg = pool;
	pool->count = count;
	for (i = 0; i < count; i++) {
		pool->conns[i] = pgconn_new(base, &mine, &callbacks);
		pgconn_start(pool->conns[i]);
	}
	return pool;
}

/* Sets the connect and reconnect timeouts of every connection. */
void
readpool_set_timeouts(struct readpool *pool, long long connect_ms,
    long long reconnect_min_ms, long long reconnect_max_ms)
{
	size_t i;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->count; i++)
		pgconn_set_timeouts(pool->conns[i], connect_ms,
		    reconnect_min_ms, reconnect_max_ms);
}

/* Tells whether at least one connection is up. */
bool
readpool_is_up(const struct readpool *pool)
{
	size_t i;

	for (i = 0; i < pool->count; i++)
		if (pgconn_is_up(pool->conns[i]))
			return true;
	return false;
}

/* Queues a query and starts it when a connection is free. */
static int
readpool_enqueue(struct readpool *pool, bool first, const char *sql,
    int nparams, const char *const *params, pgconn_result_cb *cb, void *arg)
{
	struct readpool_job *job, *ahead;
	int i;

	/* A write's queries are bounded by the writes, not by the queue. */
	if (!readpool_is_up(pool) || (!first &&
	    pool->waiting >= READPOOL_QUEUE_MAX) ||
	    nparams > READPOOL_PARAMS_MAX)
		return -1;
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (job->sql = strdup(sql)) == NULL)
		fatal("readpool: calloc");
	for (i = 0; i < nparams; i++)
		if (params[i] != NULL && (job->params[i] = strdup(params[i])) ==
		    NULL)
			fatal("readpool: strdup");
	job->nparams = nparams;
	job->cb = cb;
	job->arg = arg;
	job->first = first;
	clock_gettime(CLOCK_MONOTONIC, &job->queued);
	/* A write's query goes behind the other writes' and ahead of reads. */
	if (first) {
		TAILQ_FOREACH(ahead, &pool->queue, entry)
			if (!ahead->first)
				break;
		if (ahead != NULL)
			TAILQ_INSERT_BEFORE(ahead, job, entry);
		else
			TAILQ_INSERT_TAIL(&pool->queue, job, entry);
	} else
		TAILQ_INSERT_TAIL(&pool->queue, job, entry);
	pool->waiting++;
	readpool_next(pool);
	return 0;
}

/* Queues a read behind the others. */
int
readpool_query(struct readpool *pool, const char *sql, int nparams,
    const char *const *params, pgconn_result_cb *cb, void *arg)
{
	return readpool_enqueue(pool, false, sql, nparams, params, cb, arg);
}

/* Queues a short query (a write's outcome) ahead of the reads. */
int
readpool_query_first(struct readpool *pool, const char *sql, int nparams,
    const char *const *params, pgconn_result_cb *cb, void *arg)
{
	return readpool_enqueue(pool, true, sql, nparams, params, cb, arg);
}

/* Requests waiting for a connection now. */
size_t
readpool_waiting(const struct readpool *pool)
{
	return pool->waiting;
}

/* Closes the connections and frees. */
void
readpool_free(struct readpool *pool)
{
	struct readpool_job *job;
	size_t i;

	if (pool == NULL)
		return;
	/* A query in flight never calls back now: its record goes here. */
	for (i = 0; i < pool->count; i++) {
		pgconn_free(pool->conns[i]);
		free(pool->inflight[i]);
	}
	while ((job = TAILQ_FIRST(&pool->queue)) != NULL) {
		TAILQ_REMOVE(&pool->queue, job, entry);
		readpool_job_free(job);
	}
	if (pool->wake != NULL)
		event_free(pool->wake);
	free(pool->conns);
	free(pool->inflight);
	free(pool->session_sql);
	free(pool);
}
