/* A few PostgreSQL connections of the operator API's own, and a bounded queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/log.h"
#include "daemon/readpool.h"

/* Most queries that may wait for a connection; beyond, the API says 503. */
#define READPOOL_QUEUE_MAX	256

/* Most parameters of one query. */
#define READPOOL_PARAMS_MAX	4

struct readpool_job {
	TAILQ_ENTRY(readpool_job) entry;
	char			*sql;
	char			*params[READPOOL_PARAMS_MAX];
	int			 nparams;
	pgconn_result_cb	*cb;
	void			*arg;
};

struct readpool {
	struct pgconn		**conns;
	size_t			  count;
	size_t			  waiting;
	char			 *session_sql;
	TAILQ_HEAD(, readpool_job) queue;
};

static void	readpool_next(struct readpool *pool);

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

/* A connection went down: pgconn reconnects by itself. */
static void
readpool_down(struct pgconn *pg, const char *reason, void *arg)
{
	log_warnx("api: a read connection to PostgreSQL was lost: %s", reason);
}

/* A query finished: its connection may take the next one. */
struct readpool_done {
	struct readpool		*pool;
	pgconn_result_cb	*cb;
	void			*arg;
};

static void
readpool_done(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct readpool_done done = *(struct readpool_done *)arg;

	free(arg);
	done.cb(pg, result, error, done.arg);
	readpool_next(done.pool);
}

/* Hands waiting queries to the free connections. */
static void
readpool_next(struct readpool *pool)
{
	struct readpool_done *done;
	struct readpool_job *job;
	size_t i;

	for (i = 0; i < pool->count && !TAILQ_EMPTY(&pool->queue); i++) {
		if (!pgconn_is_up(pool->conns[i]) ||
		    pgconn_is_busy(pool->conns[i]))
			continue;
		job = TAILQ_FIRST(&pool->queue);
		if ((done = malloc(sizeof(*done))) == NULL)
			fatal("readpool: malloc");
		done->pool = pool;
		done->cb = job->cb;
		done->arg = job->arg;
		if (pgconn_query(pool->conns[i], job->sql, job->nparams,
		    (const char *const *)job->params, readpool_done,
		    done) == -1) {
			free(done);
			continue;
		}
		TAILQ_REMOVE(&pool->queue, job, entry);
		pool->waiting--;
		readpool_job_free(job);
	}
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
	    (pool->conns = calloc(count, sizeof(*pool->conns))) == NULL)
		fatal("readpool: calloc");
	TAILQ_INIT(&pool->queue);
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
int
readpool_query(struct readpool *pool, const char *sql, int nparams,
    const char *const *params, pgconn_result_cb *cb, void *arg)
{
	struct readpool_job *job;
	int i;

	if (!readpool_is_up(pool) || pool->waiting >= READPOOL_QUEUE_MAX ||
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
	TAILQ_INSERT_TAIL(&pool->queue, job, entry);
	pool->waiting++;
	readpool_next(pool);
	return 0;
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
	for (i = 0; i < pool->count; i++)
		pgconn_free(pool->conns[i]);
	while ((job = TAILQ_FIRST(&pool->queue)) != NULL) {
		TAILQ_REMOVE(&pool->queue, job, entry);
		readpool_job_free(job);
	}
	free(pool->conns);
	free(pool->session_sql);
	free(pool);
}
