/* Retention: old audit rows, dead letters and request outcomes pruned by age. */
#ifndef IPAM_DAEMON_RETENTION_H
#define IPAM_DAEMON_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

struct config;
struct retention;

/* The tables pruned, in the order of the arrays below. */
enum retention_table {
	RETENTION_AUDIT,
	RETENTION_DEAD_LETTER,
	RETENTION_REQUEST,
	RETENTION_TABLE_COUNT
};

/* The tables' names ("audit", "dead_letter", "request"). */
extern const char *const retention_table_names[RETENTION_TABLE_COUNT];

/* The kinds of conflict, as ipam_state.conflict's CHECK names them. */
#define RETENTION_CONFLICT_KINDS	5
extern const char *const retention_conflict_kinds[RETENTION_CONFLICT_KINDS];

/* What the job needs; the strings are copied by retention_new(). */
struct retention_settings {
	long long	 days[RETENTION_TABLE_COUNT];	/* 0: keep forever */
	long long	 interval_ms;	/* between runs, once nothing is old */
	/* The job's own PostgreSQL connection. */
	const char	*conninfo;
	const char	*password;	/* NULL: libpq's own rules */
	long long	 pg_connect_timeout_ms;
	long long	 pg_reconnect_min_ms;
	long long	 pg_reconnect_max_ms;
};

/* The job's totals, and the figures it reads from the database. */
struct retention_stats {
	uint64_t	rows_pruned[RETENTION_TABLE_COUNT];
	uint64_t	runs;		/* runs that left nothing old behind */
	uint64_t	errors;		/* runs ended by an error */
	uint64_t	left_to_others;	/* tables another instance was pruning */
	bool		running;	/* a run is under way */
	double		last_run_unix;	/* end of the last complete run; 0: none */
	double		last_run_seconds;
	/* Read every RETENTION_FIGURES_MS while the connection is up. */
	bool		figures_known;
	double		figures_unix;	/* when they were read */
	uint64_t	dead_letters;	/* rows of ipamd.dead_letter */
	uint64_t	conflicts[RETENTION_CONFLICT_KINDS];
	double		oldest_unix[RETENTION_TABLE_COUNT]; /* < 0: empty */
};

/*
 * Fills the settings from a config; the strings point into it and into
 * password (NULL: libpq's own rules).
 */
void		 retention_settings_from_config(const struct config *config,
		    const char *password, struct retention_settings *settings);

/* Creates the job; nothing connects before retention_start(). */
struct retention *retention_new(struct event_base *base,
		    const struct retention_settings *settings);

/*
 * Connects (once the schema is migrated: the job calls its functions),
 * prunes at once, then again every interval_ms, and reads the figures.
 */
void		 retention_start(struct retention *retention);

/*
 * Takes reloaded days and interval (the connection settings are not
 * reloaded): a run under way goes on with the new days; a new interval
 * counts from now.
 */
void		 retention_reload(struct retention *retention,
		    const struct retention_settings *settings);

/* Stops the timers and closes the connection (a batch in flight rolls back). */
void		 retention_stop(struct retention *retention);

/* Frees the job (NULL is allowed). */
void		 retention_free(struct retention *retention);

/* The figures; valid until the job is freed. */
const struct retention_stats *retention_stats(const struct retention *retention);

/* The days each table keeps now (0: forever). */
long long	 retention_days(const struct retention *retention,
		    enum retention_table table);

#endif
