/* The sweeper's probes in flight: 16-bit sequence numbers and deadlines. */
#ifndef IPAM_SWEEPER_SWEEP_SEQMAP_H
#define IPAM_SWEEPER_SWEEP_SEQMAP_H

#include <stdbool.h>
#include <stdint.h>

/* Every 16-bit sequence number is a slot. */
#define SWEEP_SEQ_COUNT		65536

/* Where the probe that last used a sequence number stands. */
enum sweep_seq_state {
	SWEEP_SEQ_FREE,		/* not used since the last reset */
	SWEEP_SEQ_IN_FLIGHT,	/* sent, waiting for its reply or deadline */
	SWEEP_SEQ_ANSWERED,	/* its reply came: a second one is a duplicate */
	SWEEP_SEQ_EXPIRED,	/* its deadline passed: a reply now is late */
};

/* One slot: the probe that holds (or last held) a sequence number. */
struct sweep_seq {
	int64_t		sent_ns;	/* part of the probe's cookie */
	int64_t		deadline_ns;
	uint32_t	target;		/* the caller's index of the address */
	uint32_t	heap_index;	/* position in the deadline heap */
	uint8_t		state;		/* enum sweep_seq_state */
};

/*
 * The map from sequence numbers to probes, with a heap of the deadlines
 * of the probes in flight.  A new probe takes the next sequence number
 * after the last one taken that is not in flight, so numbers wrap around
 * 65,535 and a number is reused as late as possible; with 65,536 probes
 * in flight none is free and the caller must wait.
 */
struct sweep_seqmap {
	struct sweep_seq	seqs[SWEEP_SEQ_COUNT];
	uint16_t		heap[SWEEP_SEQ_COUNT];
	uint32_t		in_flight;	/* also the heap's length */
	uint16_t		cursor;		/* the next number to try */
};

/* Empties the map; the first probe takes sequence number first. */
void	sweep_seqmap_init(struct sweep_seqmap *map, uint16_t first);

/*
 * Forgets every probe (a new sweep begins) but keeps the cursor, so that
 * numbers of the previous sweep are not reused at once.
 */
void	sweep_seqmap_reset(struct sweep_seqmap *map);

/*
 * Gives a probe of target a sequence number, in flight until deadline.
 * Returns 0 with *sequence set, or -1 when all 65,536 are in flight.
 */
int	sweep_seqmap_take(struct sweep_seqmap *map, uint32_t target,
	    int64_t sent_ns, int64_t deadline_ns, uint16_t *sequence);

/* The slot of a sequence number, whatever its state. */
const struct sweep_seq *sweep_seqmap_get(const struct sweep_seqmap *map,
	    uint16_t sequence);

/* A probe in flight got its reply: it leaves the heap, ANSWERED. */
void	sweep_seqmap_answer(struct sweep_seqmap *map, uint16_t sequence);

/* A probe in flight was never sent after all: its number is FREE again. */
void	sweep_seqmap_release(struct sweep_seqmap *map, uint16_t sequence);

/* The earliest deadline of the probes in flight; false when none is. */
bool	sweep_seqmap_next_deadline(const struct sweep_seqmap *map,
	    int64_t *deadline_ns);

/*
 * Takes the probe with the earliest deadline if that deadline is not
 * after now: it becomes EXPIRED.  Returns false when there is none.
 */
bool	sweep_seqmap_expire(struct sweep_seqmap *map, int64_t now_ns,
	    uint16_t *sequence);

#endif
