/* The apply transaction: one batch in, one PostgreSQL statement, one commit. */
#ifndef IPAM_CONSUMERS_APPLIER_H
#define IPAM_CONSUMERS_APPLIER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/pgconn.h"
#include "consumers/batch.h"

struct applier;

/* How an apply ended. */
enum applier_outcome {
	APPLIER_DONE,		/* every entry is committed; the batch is empty */
	APPLIER_LOST,		/* the connection was lost: retry once it is back */
	APPLIER_MOVED,		/* an offset moved away: another consumer owns it */
	APPLIER_UNFOLD,		/* PostgreSQL refused entries a folding batch
				   took (batch_set_fold()): only reading them
				   again unfolded can tell which event it was */
};

/* Where partitions stand, kept by the consumer. */
struct applier_positions {
	batch_position_fn	*get;
	void			(*set)(void *arg, int topic, int32_t partition,
				    int64_t next_offset);
	void			*arg;
};

/* Told when an apply ends; error says why for LOST and MOVED. */
typedef void applier_done_cb(struct applier *applier,
    enum applier_outcome outcome, const char *error, void *arg);

/* Most topics one daemon consumes (the config refuses more). */
#define APPLIER_MAX_TOPICS	64

/* Histogram bounds: events per committed batch, seconds per apply. */
#define APPLIER_SIZE_BUCKETS	8
#define APPLIER_TIME_BUCKETS	12
extern const double applier_size_bounds[APPLIER_SIZE_BUCKETS];
extern const double applier_time_bounds[APPLIER_TIME_BUCKETS];

/* What became of the messages of one topic. */
struct applier_topic_stats {
	uint64_t	applied;	/* decoded and committed */
	uint64_t	dead_letters;
	uint64_t	skipped;	/* below the stored offset: seen before */
	uint64_t	stale;		/* older than what is stored: no change */
};

/* A cumulative histogram: counts[i] holds observations <= bounds[i]. */
struct applier_histogram {
	uint64_t	counts[APPLIER_TIME_BUCKETS];
	uint64_t	count;
	double		sum;
};

/* Running totals, for logs and metrics. */
struct applier_stats {
	struct applier_topic_stats topics[APPLIER_MAX_TOPICS];
	uint64_t	entity_applied[3];	/* by enum change_entity */
	uint64_t	entity_stale[3];
	struct applier_histogram batch_size;
	struct applier_histogram apply_seconds;
	uint64_t	batches;
	uint64_t	events_applied;
	uint64_t	events_stale;
	uint64_t	events_skipped;	/* below the stored offset: seen before */
	uint64_t	events_folded;	/* into later events of their keys (a
					   rebuild: batch_set_fold()) */
	uint64_t	dead_letters;	/* messages committed as dead letters */
	uint64_t	rows_inserted;
	uint64_t	rows_updated;
	uint64_t	rows_deleted;
	uint64_t	conflicts;
	uint64_t	retries;
	double		last_apply_seconds;
	double		last_commit_unix; /* the last commit, wall clock; 0: none */
};

/* Creates an applier on a connection; nothing is owned but the applier. */
struct applier	*applier_new(struct event_base *base, struct pgconn *pg,
		    const char *group_id, const struct applier_positions *positions,
		    applier_done_cb *done, void *arg);

/* Frees an applier (an apply in flight is abandoned). */
void		 applier_free(struct applier *applier);

/*
 * Applies every entry of a batch, in as few transactions as it can (one,
 * unless PostgreSQL rejects an entry: then it bisects, and the rejected
 * event becomes a dead letter with PostgreSQL's reason).  Committed
 * entries are removed from the batch as they land.  The batch must stay
 * alive and unchanged by others until done is called.  Returns -1 if an
 * apply is already in flight or the connection is down.
 */
int		 applier_apply(struct applier *applier, struct batch *batch);

/*
 * Chooses the state the next applies fill: "ipam_state" (the default), or
 * "ipam_state_rebuild" during a rebuild, which stores entities only.
 */
void		 applier_set_target(struct applier *applier, const char *schema,
		    bool rebuild);

/*
 * Sets how many static pool addresses one statement may expand: a batch
 * whose subnets hold more is applied in several statements.
 */
void		 applier_set_pool_budget(struct applier *applier,
		    uint64_t addresses);

/* Tells whether an apply is in flight. */
bool		 applier_busy(const struct applier *applier);

/* Gives up a batch waiting to be sent again (none is in flight). */
void		 applier_drop(struct applier *applier);

/*
 * Seconds the apply has been stuck: since the database began refusing
 * every batch, or since the statement in flight was sent; 0 when there is
 * neither.  A long batch of several statements is not stuck.
 */
double		 applier_busy_seconds(const struct applier *applier);

/*
 * Why the database refuses every apply (privileges, disk full, a dropped
 * schema: causes no dead letter can fix), or NULL when it does not.
 */
const char	*applier_failing(const struct applier *applier);

/* The running totals. */
const struct applier_stats *applier_stats(const struct applier *applier);

#endif
