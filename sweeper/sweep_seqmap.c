/* The sweeper's probes in flight: 16-bit sequence numbers and deadlines. */
#include <string.h>

#include "sweeper/sweep_seqmap.h"

/* Tells whether the heap entry at i is due before the one at j. */
static bool
sweep_heap_before(const struct sweep_seqmap *map, uint32_t i, uint32_t j)
{
	return map->seqs[map->heap[i]].deadline_ns <
	    map->seqs[map->heap[j]].deadline_ns;
}

/* Swaps two heap entries and records their new places. */
static void
sweep_heap_swap(struct sweep_seqmap *map, uint32_t i, uint32_t j)
{
	uint16_t held = map->heap[i];

	map->heap[i] = map->heap[j];
	map->heap[j] = held;
	map->seqs[map->heap[i]].heap_index = i;
	map->seqs[map->heap[j]].heap_index = j;
}

/* Moves the entry at i up until its parent is due no later. */
static void
sweep_heap_up(struct sweep_seqmap *map, uint32_t i)
{
	while (i > 0 && sweep_heap_before(map, i, (i - 1) / 2)) {
		sweep_heap_swap(map, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* Moves the entry at i down until both children are due no earlier. */
static void
sweep_heap_down(struct sweep_seqmap *map, uint32_t i)
{
	uint32_t child, n = map->in_flight;

	for (;;) {
		child = 2 * i + 1;
		if (child >= n)
			return;
		if (child + 1 < n && sweep_heap_before(map, child + 1, child))
			child++;
		if (!sweep_heap_before(map, child, i))
			return;
		sweep_heap_swap(map, i, child);
		i = child;
	}
}

/* Takes the entry at i out of the heap. */
static void
sweep_heap_remove(struct sweep_seqmap *map, uint32_t i)
{
	uint32_t last = --map->in_flight;

	if (i != last) {
		sweep_heap_swap(map, i, last);
		sweep_heap_down(map, i);
		sweep_heap_up(map, i);
	}
}

/* Empties the map. */
void
sweep_seqmap_init(struct sweep_seqmap *map, uint16_t first)
{
	memset(map, 0, sizeof(*map));
	map->cursor = first;
}

/* Forgets every probe but keeps the cursor. */
void
sweep_seqmap_reset(struct sweep_seqmap *map)
{
	uint32_t i;

	for (i = 0; i < SWEEP_SEQ_COUNT; i++)
		map->seqs[i].state = SWEEP_SEQ_FREE;
	map->in_flight = 0;
}

/* Gives a probe a sequence number. */
int
sweep_seqmap_take(struct sweep_seqmap *map, uint32_t target, int64_t sent_ns,
    int64_t deadline_ns, uint16_t *sequence)
{
	struct sweep_seq *slot;
	uint16_t n = map->cursor;

	if (map->in_flight >= SWEEP_SEQ_COUNT)
		return -1;
	/* Some number is not in flight; the uint16_t wraps past 65,535. */
	while (map->seqs[n].state == SWEEP_SEQ_IN_FLIGHT)
		n++;
	map->cursor = (uint16_t)(n + 1);
	slot = &map->seqs[n];
	slot->sent_ns = sent_ns;
	slot->deadline_ns = deadline_ns;
	slot->target = target;
	slot->state = SWEEP_SEQ_IN_FLIGHT;
	slot->heap_index = map->in_flight;
	map->heap[map->in_flight++] = n;
	sweep_heap_up(map, slot->heap_index);
	*sequence = n;
	return 0;
}

/* The slot of a sequence number. */
const struct sweep_seq *
sweep_seqmap_get(const struct sweep_seqmap *map, uint16_t sequence)
{
	return &map->seqs[sequence];
}

/* Takes a probe in flight out of the heap, into a new state. */
static void
sweep_seqmap_settle(struct sweep_seqmap *map, uint16_t sequence,
    enum sweep_seq_state state)
{
	struct sweep_seq *slot = &map->seqs[sequence];

	if (slot->state != SWEEP_SEQ_IN_FLIGHT)
		return;
	sweep_heap_remove(map, slot->heap_index);
	slot->state = (uint8_t)state;
}

/* A probe in flight got its reply. */
void
sweep_seqmap_answer(struct sweep_seqmap *map, uint16_t sequence)
{
	sweep_seqmap_settle(map, sequence, SWEEP_SEQ_ANSWERED);
}

/* A probe in flight was never sent. */
void
sweep_seqmap_release(struct sweep_seqmap *map, uint16_t sequence)
{
	sweep_seqmap_settle(map, sequence, SWEEP_SEQ_FREE);
}

/* The earliest deadline in flight. */
bool
sweep_seqmap_next_deadline(const struct sweep_seqmap *map,
    int64_t *deadline_ns)
{
	if (map->in_flight == 0)
		return false;
	*deadline_ns = map->seqs[map->heap[0]].deadline_ns;
	return true;
}

/* Takes the earliest probe whose deadline has passed. */
bool
sweep_seqmap_expire(struct sweep_seqmap *map, int64_t now_ns,
    uint16_t *sequence)
{
	uint16_t n;

	if (map->in_flight == 0 || map->seqs[map->heap[0]].deadline_ns > now_ns)
		return false;
	n = map->heap[0];
	sweep_heap_remove(map, 0);
	map->seqs[n].state = SWEEP_SEQ_EXPIRED;
	*sequence = n;
	return true;
}
