/* One PostgreSQL connection driven by libevent: connect, query, reconnect. */
#ifndef IPAM_COMMON_PGCONN_H
#define IPAM_COMMON_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <libpq-fe.h>

struct pgconn;

/* Connection settings; strings are copied by pgconn_new(). */
struct pgconn_settings {
	const char	*conninfo;		/* libpq string; "" uses PG* */
	const char	*password;		/* NULL: libpq's own rules */
	const char	*application_name;
	const char	*session_sql;		/* run on every new connection */
	long long	 connect_timeout_ms;
	long long	 reconnect_min_ms;
	long long	 reconnect_max_ms;
};

/* Told when the connection comes up or goes down (reason says why). */
struct pgconn_callbacks {
	void	(*up)(struct pgconn *pg, void *arg);
	void	(*down)(struct pgconn *pg, const char *reason, void *arg);
	void	*arg;
};

/*
 * Called once per query with its last result, or with result NULL and a
 * reason when the query could not complete (the connection was lost).
 * The result is freed by pgconn after the callback returns.
 */
typedef void pgconn_result_cb(struct pgconn *pg, PGresult *result,
    const char *error, void *arg);

/* Creates a connection handle; nothing happens until pgconn_start(). */
struct pgconn	*pgconn_new(struct event_base *base,
		    const struct pgconn_settings *settings,
		    const struct pgconn_callbacks *callbacks);

/* Starts connecting (and reconnecting with backoff after every loss). */
void		 pgconn_start(struct pgconn *pg);

/* Closes the connection and stops reconnecting. */
void		 pgconn_stop(struct pgconn *pg);

/* Frees the handle, closing the connection; a query in flight is dropped
 * without calling its callback. */
void		 pgconn_free(struct pgconn *pg);

/* Tells whether the connection is up and idle or busy with a query. */
bool		 pgconn_is_up(const struct pgconn *pg);

/* Tells whether a query is in flight. */
bool		 pgconn_is_busy(const struct pgconn *pg);

/* Number of times the connection was lost since start. */
unsigned long	 pgconn_loss_count(const struct pgconn *pg);

/*
 * Sends one query with text parameters (copied by libpq before return).
 * With no parameters the text may hold several statements, run as one
 * implicit transaction; cb gets the last result, or the first error.
 * Returns 0, or -1 when the connection is down or busy or the query
 * could not be sent.  Neither cb nor the owner's down runs before this
 * returns: a send that finds the connection lost is told from the loop.
 */
int		 pgconn_query(struct pgconn *pg, const char *sql, int nparams,
		    const char *const *params, pgconn_result_cb *cb, void *arg);

/*
 * Drops the connection as lost (for example after an error that the
 * caller knows requires it) and schedules a reconnect.
 */
void		 pgconn_reset(struct pgconn *pg, const char *reason);

/* Updates the timeouts from a reloaded config. */
void		 pgconn_set_timeouts(struct pgconn *pg, long long connect_ms,
		    long long reconnect_min_ms, long long reconnect_max_ms);

/* Tells whether an SQLSTATE means the connection must be re-established. */
bool		 pgconn_sqlstate_is_fatal(const char *sqlstate);

/*
 * Writes the error of a result (or of the connection, pg may be NULL) in
 * one line, cut where a character begins when buflen is short.
 */
void		 pgconn_result_error(struct pgconn *pg, const PGresult *result,
		    char *buf, size_t buflen);

/*
 * With several hosts in a conninfo, the lists of host, hostaddr and port
 * that try them from the (turn mod count)th on, after that many attempts
 * timed out (NULL each when unchanged; the caller frees them).  Returns
 * how many lists it set.
 */
int		 pgconn_hosts_turned(const char *conninfo, unsigned turn,
		    char *lists[3]);

#endif
