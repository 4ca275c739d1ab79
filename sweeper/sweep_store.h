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
 * default one), $3 interval_ms.  One row: the member's id.  The session
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
 * round that ends at $2 (milliseconds since 1970).  Rows: vrf, address
 * as text, active.
 */
extern const char sweep_store_targets_sql[];

/*
 * Writes the results of one batch of a single routing domain and returns
 * one row: rows changed, rows that went up, rows that went down.
 * $1 vrf, $2 inet[] addresses, $3 bigint[] when each was checked, in
 * microseconds after $6 (a timestamptz), $4 integer[] round-trip times
 * (NULL: no reply), $5 down_after, $7 boolean[] whether each was active
 * when the sweep began (for the counts only).
 */
extern const char sweep_store_write_sql[];

/*
 * The same, skipping the rows another transaction holds instead of
 * waiting for them: the fallback after a lock timeout.
 */
extern const char sweep_store_write_skip_locked_sql[];

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

/* One result, as the write statement's arrays take it. */
struct sweep_result {
	const struct sweep_addr	*addr;
	int64_t			 checked_us;	/* after the sweep's start */
	int64_t			 rtt_us;	/* -1: no reply */
	bool			 was_active;
};

/* The array parameters of one write batch, as PostgreSQL array literals. */
struct sweep_store_arrays {
	struct sweep_text	addresses;	/* $2 */
	struct sweep_text	checked;	/* $3 */
	struct sweep_text	rtts;		/* $4 */
	struct sweep_text	was_active;	/* $7 */
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
