/* A few PostgreSQL connections of the operator API's own, and a bounded queue. */
#ifndef IPAM_DAEMON_READPOOL_H
#define IPAM_DAEMON_READPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "common/pgconn.h"

struct readpool;

/*
 * The reads may keep PostgreSQL busy a quarter of one CPU's time on
 * average (bursts of half a second): beyond, they wait in the queue, so
 * that readers never slow the apply much.
 *
 * Opens count connections with settings (its session_sql is replaced by
 * one that makes every transaction read-only, bounds statements by
 * statement_timeout_ms and sets the search path to the live state).
 */
struct readpool	*readpool_new(struct event_base *base,
		    const struct pgconn_settings *settings, size_t count,
		    long long statement_timeout_ms);

/* Sets the connect and reconnect timeouts of every connection. */
void		 readpool_set_timeouts(struct readpool *pool,
		    long long connect_ms, long long reconnect_min_ms,
		    long long reconnect_max_ms);

/* Tells whether at least one connection is up. */
bool		 readpool_is_up(const struct readpool *pool);

/*
 * Runs one query with text parameters on the first free connection, or
 * queues it until one is free.  cb is called exactly once, as pgconn's
 * (result NULL and error set when it could not run), unless
 * readpool_free() comes first.  Returns -1 (and calls nothing) when no
 * connection is up or the queue is full.
 */
int		 readpool_query(struct readpool *pool, const char *sql,
		    int nparams, const char *const *params,
		    pgconn_result_cb *cb, void *arg);

/*
 * Like readpool_query(), behind the other writes' queries and ahead of
 * every waiting read, whatever the reads' share has left (and not
 * charged to it) and however many reads wait: for the short queries a
 * write waits on, so that a storm of reads never delays them.
 */
int		 readpool_query_first(struct readpool *pool, const char *sql,
		    int nparams, const char *const *params,
		    pgconn_result_cb *cb, void *arg);

/*
 * The error a read is answered with when it waited too long for its turn
 * (the result is NULL); readpool_too_busy() tells it.
 */
#define READPOOL_TOO_BUSY	"too many reads are waiting"
bool		 readpool_too_busy(const char *error);

/* Requests waiting for a connection now. */
size_t		 readpool_waiting(const struct readpool *pool);

/* Closes the connections and frees; queued queries are dropped unanswered. */
void		 readpool_free(struct readpool *pool);

#endif
