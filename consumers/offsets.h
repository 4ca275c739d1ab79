/* Offsets in PostgreSQL: where each partition resumes. */
#ifndef IPAM_CONSUMERS_OFFSETS_H
#define IPAM_CONSUMERS_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pgconn.h"
#include "consumers/kafka_client.h"

/* Where one partition stands in PostgreSQL. */
struct offsets_stored {
	int64_t	next;		/* the next offset; -1 when none is stored */
	bool	known;		/* the fingerprint of the record before next
				   is known (batch_fingerprint()) ... */
	int64_t	fingerprint;	/* ... and is this */
};

/*
 * Where the partitions asked for stand: stored[i] belongs to parts[i].  ok
 * is false when the query failed (the connection went, or an error: then
 * it is logged); the arrays are the caller's for the duration of the call
 * only.
 */
typedef void offsets_loaded_cb(void *arg, bool ok,
    const struct kafka_partition *parts, const struct offsets_stored *stored,
    size_t count);

/*
 * Reads the stored offsets of some partitions of a group from the state
 * in schema ("ipam_state" or "ipam_state_rebuild"), after any apply in
 * flight has committed.  Returns -1 when the query cannot be sent now (the
 * connection is down or busy).
 */
int	offsets_load(struct pgconn *pg, const char *group_id,
	    const char *schema, const char *const *topic_names,
	    const struct kafka_partition *parts, size_t count,
	    offsets_loaded_cb *cb, void *arg);

#endif
