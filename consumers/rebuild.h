/* The rebuild: fill a fresh state from the beginning, derive, swap it in. */
#ifndef IPAM_CONSUMERS_REBUILD_H
#define IPAM_CONSUMERS_REBUILD_H

#include <stdbool.h>

#include "common/pgconn.h"

/* Where a rebuild stands; each transition is logged once. */
enum rebuild_state {
	REBUILD_OFF,		/* normal operation (or the rebuild is over) */
	REBUILD_PREPARING,	/* making ipam_state_rebuild */
	REBUILD_FILLING,	/* consuming from the beginning into it */
	REBUILD_DERIVING,	/* every partition caught up: deriving rows */
	REBUILD_SWAPPING,	/* swapping it in for ipam_state */
};

/* Told when the fresh state exists, and when it has been swapped in. */
typedef void rebuild_event_cb(void *arg);

struct rebuild;

/*
 * Creates the rebuild's state machine: REBUILD_PREPARING when on, else
 * REBUILD_OFF for good.  prepared and swapped are called on the loop.
 */
struct rebuild	*rebuild_new(struct pgconn *pg, bool on,
		    rebuild_event_cb *prepared, rebuild_event_cb *swapped,
		    void *arg);

/* Frees it. */
void		 rebuild_free(struct rebuild *rebuild);

/* Where it stands. */
enum rebuild_state rebuild_state(const struct rebuild *rebuild);

/* The state schema the applies fill now. */
const char	*rebuild_schema(const struct rebuild *rebuild);

/*
 * Drives the machine: makes the fresh state when PREPARING, and when
 * FILLING and caught_up, derives every row and swaps.  Call it when the
 * connection is idle (it sends at most one statement); a failed step is
 * tried again on a later call.
 */
void		 rebuild_step(struct rebuild *rebuild, bool caught_up);

/*
 * Why its last step failed (making the fresh state, deriving the rows,
 * the swap), until a step succeeds; NULL when none has failed.
 */
const char	*rebuild_failing(const struct rebuild *rebuild);

/* Tells whether a statement of the rebuild is in flight. */
bool		 rebuild_busy(const struct rebuild *rebuild);

/*
 * Starts the filling over: the fresh state is made again (an event
 * refused while folded, consumers/applier.h APPLIER_UNFOLD), then
 * prepared is called again.
 */
void	rebuild_restart(struct rebuild *rebuild);

#endif
