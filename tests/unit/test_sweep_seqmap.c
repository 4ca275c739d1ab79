/* Unit tests of the sweeper's sequence map: numbers, wrap-around, deadlines. */
#include <stdlib.h>
#include <string.h>

#include "sweeper/sweep_seqmap.h"
#include "test_support.h"

/* A fresh map on the heap (it is 2 MB), starting at first. */
static struct sweep_seqmap *
map_new(uint16_t first)
{
	struct sweep_seqmap	*map = malloc(sizeof(*map));

	assert_non_null(map);
	sweep_seqmap_init(map, first);
	return map;
}

/* Takes a number for target, in flight until deadline; fails if none. */
static uint16_t
take(struct sweep_seqmap *map, uint32_t target, int64_t deadline)
{
	uint16_t	sequence;

	assert_int_equal(sweep_seqmap_take(map, target, 1000 + target,
	    deadline, &sequence), 0);
	return sequence;
}

/* Numbers follow each other from the first, and wrap past 65,535. */
static void
test_take_in_order(void **state)
{
	struct sweep_seqmap	*map = map_new(65534);

	assert_int_equal(take(map, 0, 10), 65534);
	assert_int_equal(take(map, 1, 10), 65535);
	assert_int_equal(take(map, 2, 10), 0);
	assert_int_equal(take(map, 3, 10), 1);
	assert_int_equal(map->in_flight, 4);
	/* The slot remembers the probe. */
	assert_int_equal(sweep_seqmap_get(map, 0)->target, 2);
	assert_int_equal(sweep_seqmap_get(map, 0)->sent_ns, 1002);
	assert_int_equal(sweep_seqmap_get(map, 0)->state, SWEEP_SEQ_IN_FLIGHT);
	free(map);
}

/*
 * With every number in flight none is given; a number comes free by an
 * answer or an expiry, and only free numbers are reused as the cursor
 * wraps around, the oldest first.
 */
static void
test_wrap_reuses_only_free(void **state)
{
	struct sweep_seqmap	*map = map_new(0);
	uint16_t		 sequence;
	uint32_t		 i;

	for (i = 0; i < SWEEP_SEQ_COUNT; i++)
		assert_int_equal(take(map, i, 100 + i), (uint16_t)i);
	assert_int_equal(sweep_seqmap_take(map, 99999, 0, 1, &sequence), -1);

	sweep_seqmap_answer(map, 40000);
	sweep_seqmap_answer(map, 12);
	assert_true(sweep_seqmap_expire(map, 100, &sequence));
	assert_int_equal(sequence, 0);

	/* The cursor is back at 0: 0, then 12, then 40000, then none. */
	assert_int_equal(take(map, 70000, 5000), 0);
	assert_int_equal(take(map, 70001, 5000), 12);
	assert_int_equal(take(map, 70002, 5000), 40000);
	assert_int_equal(sweep_seqmap_take(map, 70003, 0, 1, &sequence), -1);
	assert_int_equal(sweep_seqmap_get(map, 12)->target, 70001);
	free(map);
}

/* Answered, expired and released slots say so; reset frees them all. */
static void
test_states(void **state)
{
	struct sweep_seqmap	*map = map_new(100);
	uint16_t		 a, b, c, sequence;

	a = take(map, 1, 10);
	b = take(map, 2, 20);
	c = take(map, 3, 30);
	sweep_seqmap_answer(map, a);
	assert_int_equal(sweep_seqmap_get(map, a)->state, SWEEP_SEQ_ANSWERED);
	/* A second answer (a duplicate reply) changes nothing. */
	sweep_seqmap_answer(map, a);
	assert_int_equal(map->in_flight, 2);

	assert_true(sweep_seqmap_expire(map, 25, &sequence));
	assert_int_equal(sequence, b);
	assert_int_equal(sweep_seqmap_get(map, b)->state, SWEEP_SEQ_EXPIRED);
	assert_false(sweep_seqmap_expire(map, 25, &sequence));

	sweep_seqmap_release(map, c);
	assert_int_equal(sweep_seqmap_get(map, c)->state, SWEEP_SEQ_FREE);
	assert_int_equal(map->in_flight, 0);
	assert_false(sweep_seqmap_next_deadline(map, &(int64_t){ 0 }));

	/* After a reset the cursor goes on where it was. */
	sweep_seqmap_reset(map);
	assert_int_equal(sweep_seqmap_get(map, a)->state, SWEEP_SEQ_FREE);
	assert_int_equal(sweep_seqmap_get(map, b)->state, SWEEP_SEQ_FREE);
	assert_int_equal(take(map, 4, 10), 103);
	free(map);
}

/* Deadlines come out in order, whatever order they went in. */
static void
test_deadline_order(void **state)
{
	static const int64_t	deadlines[] = { 50, 10, 30, 20, 40, 10 };
	struct sweep_seqmap	*map = map_new(7);
	uint16_t		 sequence, thirty = 0;
	int64_t			 next;
	size_t			 i;

	for (i = 0; i < ROWS(deadlines); i++) {
		sequence = take(map, (uint32_t)i, deadlines[i]);
		if (deadlines[i] == 30)
			thirty = sequence;
	}
	assert_true(sweep_seqmap_next_deadline(map, &next));
	assert_int_equal(next, 10);
	assert_true(sweep_seqmap_expire(map, 25, &sequence));
	assert_int_equal(sweep_seqmap_get(map, sequence)->deadline_ns, 10);
	assert_true(sweep_seqmap_expire(map, 25, &sequence));
	assert_int_equal(sweep_seqmap_get(map, sequence)->deadline_ns, 10);
	assert_true(sweep_seqmap_expire(map, 25, &sequence));
	assert_int_equal(sweep_seqmap_get(map, sequence)->deadline_ns, 20);
	assert_false(sweep_seqmap_expire(map, 25, &sequence));

	/* An answered probe leaves the heap: 40 is next, not 30. */
	sweep_seqmap_answer(map, thirty);
	assert_true(sweep_seqmap_next_deadline(map, &next));
	assert_int_equal(next, 40);
	free(map);
}

/*
 * Many probes with random deadlines, a random third of them answered:
 * the rest expire in deadline order, each exactly once.
 */
static void
test_deadline_heap_random(void **state)
{
	struct sweep_seqmap	*map = map_new(0);
	static uint8_t		 answered[SWEEP_SEQ_COUNT];
	uint64_t		 random = 42;
	uint16_t		 sequence;
	int64_t			 last = -1, deadline;
	size_t			 i, expired = 0, kept = 0;

	memset(answered, 0, sizeof(answered));
	for (i = 0; i < 50000; i++) {
		random = random * 6364136223846793005ULL + 1442695040888963407ULL;
		deadline = (int64_t)(random >> 40);
		sequence = take(map, (uint32_t)i, deadline);
		if ((random >> 20) % 3 == 0) {
			sweep_seqmap_answer(map, sequence);
			answered[sequence] = 1;
		} else
			kept++;
	}
	while (sweep_seqmap_expire(map, INT64_MAX, &sequence)) {
		deadline = sweep_seqmap_get(map, sequence)->deadline_ns;
		assert_true(deadline >= last);
		assert_false(answered[sequence]);
		last = deadline;
		expired++;
	}
	assert_int_equal(expired, kept);
	assert_int_equal(map->in_flight, 0);
	free(map);
}

/* Runs every test. */
int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_take_in_order),
		cmocka_unit_test(test_wrap_reuses_only_free),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_deadline_order),
		cmocka_unit_test(test_deadline_heap_random),
	};

	return cmocka_run_group_tests_name("seqmap", tests, NULL, NULL) != 0;
}
