/* The ping sweeper: ICMP echo to each address with a row, paced, on a loop. */
#ifndef IPAM_SWEEPER_SWEEPER_H
#define IPAM_SWEEPER_SWEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct sweeper;

/*
 * What the sweeper needs of the configuration, filled by the daemon from
 * its [sweeper] and [postgresql] sections; the sweeper copies the strings.
 */
struct sweeper_settings {
	bool		 enabled;
	long long	 interval_ms;	/* a round: a sweep starts at each */
	long long	 rate;		/* echo requests per second */
	long long	 receive_buffer; /* bytes, each ICMP socket */
	long long	 timeout_ms;	/* the first probe's wait for a reply */
	long long	 retries;	/* probes sent again, each waiting 1.5x */
	long long	 down_after;	/* missed sweeps before active = false */
	const char	*vrfs;		/* "-,blue": "-" is the default domain */

	/* The sweeper's own PostgreSQL connection. */
	const char	*conninfo;
	const char	*password;	/* NULL: libpq's own rules */
	long long	 pg_connect_timeout_ms;
	long long	 pg_reconnect_min_ms;
	long long	 pg_reconnect_max_ms;
};

/* How many of each thing happened, in one sweep or since the start. */
struct sweeper_counts {
	uint64_t	probes;		/* echo requests sent, retries included */
	uint64_t	retries;	/* of which retries */
	uint64_t	replies;	/* addresses that answered */
	uint64_t	timeouts;	/* addresses that did not */
	uint64_t	send_errors;	/* requests the kernel refused */
	/* Replies dropped, by the first check they failed. */
	uint64_t	malformed;	/* short, bad header or checksum */
	uint64_t	foreign;	/* another process's identifier */
	uint64_t	unknown_sequence; /* no probe of this sweep has it */
	uint64_t	wrong_source;	/* not from the probed address */
	uint64_t	bad_cookie;	/* payload is not that probe's cookie */
	uint64_t	duplicates;	/* the probe was answered already */
	uint64_t	late;		/* after the probe's deadline */
	uint64_t	kernel_drops;	/* the socket's buffer was full */
};

/* Figures of the last complete sweep, and totals since the start. */
struct sweeper_stats {
	uint64_t		sweeps;		/* complete sweeps */
	uint64_t		sweeps_abandoned; /* lost PostgreSQL, reload, stop */
	uint64_t		clock_steps_back; /* claims that found PostgreSQL's
						   clock before the end of the
						   round swept last */
	size_t			targets;	/* addresses probed */
	size_t			targets_v6;	/* of which IPv6 */
	size_t			skipped;	/* rows no probe can reach */
	double			read_seconds;	/* reading the targets */
	double			icmp_seconds;	/* first probe to last settled */
	double			write_seconds;	/* writing the results */
	double			duration_seconds; /* the whole sweep */
	uint64_t		rows_changed;
	uint64_t		went_up;
	uint64_t		went_down;
	int64_t			last_end_unix_ms; /* 0: no sweep yet */
	int64_t			unswept;	/* subnets of this member's
						   domains no live member can
						   probe (last fresh claim);
						   -1: none claimed yet */
	struct sweeper_counts	last;
	struct sweeper_counts	total;
};

/*
 * Creates the sweeper.  When enabled it opens its sockets now (raw, else
 * ping sockets; the log says which) and fails with err when it cannot;
 * when not, nothing is opened and nothing is ever sent.
 */
struct sweeper	*sweeper_new(struct event_base *base,
		    const struct sweeper_settings *settings, char *err,
		    size_t errlen);

/*
 * Starts sweeping once the schema is in place: connects its own
 * PostgreSQL connection, whose session joins the sweep shared with the
 * other instances (schema/functions/90_sweep.sql), and at the start of
 * each round of interval_ms on the database's clock claims its share of
 * the subnets and probes their addresses.
 */
void		 sweeper_start(struct sweeper *sweeper);

/*
 * Takes reloaded settings: rate, timeout, retries and down_after at once
 * (the sweep in flight goes on with them), the interval's rounds and the
 * vrfs from the next claim.  Turning it off abandons the sweep in flight,
 * closes the sockets and leaves the shared sweep; turning it on opens
 * them (a failure is logged, and it stays off).  The connection settings
 * are not reloaded.
 */
void		 sweeper_reload(struct sweeper *sweeper,
		    const struct sweeper_settings *settings);

/* Stops the timers, abandons the sweep in flight, closes the connection. */
void		 sweeper_stop(struct sweeper *sweeper);

/* Frees the sweeper (NULL is allowed). */
void		 sweeper_free(struct sweeper *sweeper);

/* The figures; valid until the sweeper is freed. */
const struct sweeper_stats *sweeper_stats(const struct sweeper *sweeper);

#endif
