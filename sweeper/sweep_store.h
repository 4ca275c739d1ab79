/* The ping sweeper's SQL: round claims, targets, results, array literals. */
#ifndef IPAM_SWEEPER_SWEEP_STORE_H
#define IPAM_SWEEPER_SWEEP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sweeper/sweep_packet.h"

/* The settings of the sweeper's own session (several statements). */
extern const char sweep_store_session_sql[];

/*
 * Joins the shared sweep (schema/functions/90_sweep.sql): $1 the instance
 * (host/pid), $2 the configured list of routing domains ("-" is the
 * default one), $3 interval_ms, $4 the address families it has a socket
 * for (an integer[] of 4 and 6: only subnets of those are leased to it).
 * One row: the member's id.  The session
 * stays a member until it ends.
 */
extern const char sweep_store_join_sql[];

/*
 * Claims this member's subnets for the current round: $1 member, $2 the
 * routing domains, $3 interval_ms, $4 the end of the last round swept
 * (milliseconds since 1970, 0: none).  One row: fresh (a round not swept
 * yet), round_end_ms, next_in_ms (until the next round), members (live),
 * subnets (leased now).  A session that is no member raises IPM02.
 */
extern const char sweep_store_claim_sql[];

/*
 * The targets: the addresses of the subnets leased to member $1 for the
 * round that ends at $2 (milliseconds since 1970) whose family is in $3
 * (an integer[] of 4 and 6: those the member has a socket for); their
 * leases are marked probed.  Rows: vrf, address as text, and its state as
 * public.ipam derives it: active, answered (the last pass),
 * missed_sweeps, rtt_us (NULL: none), followed (a state row follows the
 * row in its present subnet).
 */
extern const char sweep_store_targets_sql[];

/*
 * Writes the state rows of the addresses whose state changed (the news)
 * and counts the pass of the subnets probed, in one statement
 * (ipamd.sweep_commit(), schema/functions/90_sweep.sql): $1 member, $2
 * the round's end, $3 the pass's time (a timestamptz: when the sweep
 * began probing), then the news as parallel arrays: $4 text[] routing
 * domains, $5 inet[] addresses, $6 integer[] round-trip times (NULL: no
 * reply), $7 boolean[] active, $8 integer[] missed_sweeps.  One row: state
 * rows written, subnets counted, state rows of gone addresses forgotten.
 */
extern const char sweep_store_commit_sql[];

/* Why an address from the table is not probed. */
enum sweep_target_verdict {
	SWEEP_TARGET_OK,
	SWEEP_TARGET_INVALID,		/* not an address (cannot happen) */
	SWEEP_TARGET_UNPROBEABLE,	/* unspecified, multicast, broadcast,
					   link-local or IPv4-mapped */
};

/* Parses an address as host() writes it and says whether it is probed. */
enum sweep_target_verdict sweep_target_parse(const char *text,
	    struct sweep_addr *addr);

/* A growing text buffer; aborts when memory runs out. */
struct sweep_text {
	char	*data;
	size_t	 len;
	size_t	 size;
};

/* Empties a buffer, keeping its memory. */
void	sweep_text_clear(struct sweep_text *text);

/* Appends formatted text. */
void	sweep_text_printf(struct sweep_text *text, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Frees a buffer. */
void	sweep_text_free(struct sweep_text *text);

/* What a sweep read of an address's state. */
struct sweep_prior {
	bool	followed;	/* a state row follows it in its subnet */
	bool	active;
	bool	answered;	/* it answered the last pass */
	int32_t	missed_sweeps;
	int32_t	rtt_us;		/* the stored one; -1: none */
};

/* Round trip times closer than this to the stored one are never news. */
#define SWEEP_RTT_SLACK_US	10000

/*
 * Whether a measured round trip time is news against the stored one: more
 * than twice or less than half of it, and more than SWEEP_RTT_SLACK_US
 * away (or none stored).
 */
bool	sweep_rtt_moved(int32_t stored_us, int32_t measured_us);

/*
 * An address's state after a pass: a reply (rtt_us >= 0) makes it active
 * with no missed sweep; silence counts one more missed sweep and makes it
 * inactive once down_after are missed.  Returns whether that is news, a
 * state row to write: a first check (or one in a new subnet), a reply
 * after silence, a silence after a reply, active turning, a round trip
 * time that moved (sweep_rtt_moved()).
 */
bool	sweep_store_next(const struct sweep_prior *prior, int32_t rtt_us,
	    long long down_after, bool *active, int32_t *missed_sweeps);

/* One state row to write, as the write statement's arrays take it. */
struct sweep_result {
	const char		*vrf;		/* its routing domain */
	const struct sweep_addr	*addr;
	int64_t			 rtt_us;	/* -1: no reply */
	bool			 active;
	int32_t			 missed_sweeps;
};

/* The array parameters of a sweep's news, as PostgreSQL array literals. */
struct sweep_store_arrays {
	struct sweep_text	vrfs;		/* $4 */
	struct sweep_text	addresses;	/* $5 */
	struct sweep_text	rtts;		/* $6 */
	struct sweep_text	active;		/* $7 */
	struct sweep_text	missed;		/* $8 */
	size_t			count;
};

/* Starts the arrays of a batch ("{"), adds a result, closes them ("}"). */
void	sweep_store_arrays_begin(struct sweep_store_arrays *arrays);
void	sweep_store_arrays_add(struct sweep_store_arrays *arrays,
	    const struct sweep_result *result);
void	sweep_store_arrays_end(struct sweep_store_arrays *arrays);

/* Frees the arrays' memory. */
void	sweep_store_arrays_free(struct sweep_store_arrays *arrays);

/*
 * Writes a time as a timestamptz literal PostgreSQL reads exactly
 * ("2024-05-01 12:00:00.123456+00").
 */
void	sweep_store_timestamp(int64_t unix_us, char *buf, size_t buflen);

#endif
