/* Unit tests of the sweeper's pacing: token bucket, jitter, backoff. */
#include <stdint.h>

#include "sweeper/sweep_pace.h"
#include "test_support.h"

#define MS	1000000LL	/* nanoseconds */

/* A new bucket holds one token: a sweep starts at the rate, not a burst. */
static void
test_bucket_starts_with_one(void **state)
{
	struct sweep_bucket	bucket;

	sweep_bucket_init(&bucket, 1000.0, 0);
	assert_int_equal(sweep_bucket_available(&bucket), 1);
	assert_int_equal(sweep_bucket_wait_ns(&bucket), 0);
	sweep_bucket_take(&bucket, 1);
	assert_int_equal(sweep_bucket_available(&bucket), 0);
	assert_int_equal(sweep_bucket_wait_ns(&bucket), 1 * MS);
}

/* Tokens accrue with time, up to 20 ms worth, and never below one. */
static void
test_bucket_refill_and_burst(void **state)
{
	struct sweep_bucket	bucket;

	sweep_bucket_init(&bucket, 1000.0, 0);
	sweep_bucket_take(&bucket, 1);
	sweep_bucket_refill(&bucket, 3 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 3);
	sweep_bucket_refill(&bucket, 60000 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 20);
	/* A clock that goes back adds nothing. */
	sweep_bucket_take(&bucket, 20);
	sweep_bucket_refill(&bucket, 1 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 0);

	/* At 10 per second the bucket holds a single token. */
	sweep_bucket_init(&bucket, 10.0, 0);
	sweep_bucket_refill(&bucket, 60000 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 1);
	sweep_bucket_take(&bucket, 1);
	assert_int_equal(sweep_bucket_wait_ns(&bucket), 100 * MS);
	/* Taking more than there is leaves none, not a debt. */
	sweep_bucket_take(&bucket, 3);
	assert_int_equal(sweep_bucket_wait_ns(&bucket), 100 * MS);
}

/* How a pacing loop is driven, and the rate it must keep to. */
struct rate_row {
	const char	*name;
	double		 rate;
	int64_t		 step_ns;	/* how often the loop wakes */
	int64_t		 run_ns;
};

static const struct rate_row rate_rows[] = {
	{ "2000/s woken every ms", 2000, 1 * MS, 1000 * MS },
	{ "2000/s woken every 7 ms", 2000, 7 * MS, 1000 * MS },
	{ "2000/s woken every 19 ms", 2000, 19 * MS, 1000 * MS },
	{ "100000/s woken every ms", 100000, 1 * MS, 1000 * MS },
	{ "3/s woken every 10 ms", 3, 10 * MS, 10000 * MS },
	{ "1000000/s woken every 100 us", 1000000, MS / 10, 200 * MS },
};

/*
 * A loop that takes every token it finds sends the rate times the time,
 * give or take the first token and one burst: never more.
 */
static void
test_bucket_rate(void **state)
{
	const struct rate_row	*row = *state;
	struct sweep_bucket	 bucket;
	uint64_t		 sent = 0, available;
	double			 expected;
	int64_t			 now;

	sweep_bucket_init(&bucket, row->rate, 0);
	for (now = 0; now <= row->run_ns; now += row->step_ns) {
		sweep_bucket_refill(&bucket, now);
		available = sweep_bucket_available(&bucket);
		sweep_bucket_take(&bucket, available);
		sent += available;
	}
	expected = row->rate * (double)row->run_ns / 1e9;
	assert_true((double)sent <= expected + 1.0);
	assert_true((double)sent >= expected - bucket.burst - 1.0);
}

/* A loop that sleeps as long as wait_ns() says also keeps to the rate. */
static void
test_bucket_wait_drives_rate(void **state)
{
	struct sweep_bucket	bucket;
	uint64_t		sent = 0, random = 1;
	int64_t			now = 0, wait;

	sweep_bucket_init(&bucket, 500.0, 0);
	while (now < 2000 * MS) {
		sweep_bucket_refill(&bucket, now);
		if (sweep_bucket_available(&bucket) > 0) {
			sweep_bucket_take(&bucket, 1);
			sent++;
		}
		wait = sweep_bucket_wait_ns(&bucket);
		now += wait > 0 ? sweep_jitter_ns(wait, sweep_random(&random)) :
		    0;
	}
	/* 1,000 in 2 s; jitter makes it bunch, not run faster. */
	assert_true(sent <= 1001);
	assert_true(sent >= 950);
}

/* A reload's new rate takes effect, and the burst follows it. */
static void
test_bucket_set_rate(void **state)
{
	struct sweep_bucket	bucket;

	sweep_bucket_init(&bucket, 100000.0, 0);
	sweep_bucket_refill(&bucket, 1000 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 2000);
	sweep_bucket_set_rate(&bucket, 100.0, 1000 * MS);
	assert_int_equal(sweep_bucket_available(&bucket), 2);
	sweep_bucket_take(&bucket, 1);
	assert_int_equal(sweep_bucket_available(&bucket), 1);
	sweep_bucket_take(&bucket, 1);
	assert_int_equal(sweep_bucket_wait_ns(&bucket), 10 * MS);
}

/* Jitter scales a wait into [0.5, 1.5). */
static void
test_jitter(void **state)
{
	assert_int_equal(sweep_jitter_ns(1000 * MS, 0), 500 * MS);
	assert_int_equal(sweep_jitter_ns(1000 * MS, 1ULL << 63), 1000 * MS);
	assert_int_equal(sweep_jitter_ns(1000 * MS, UINT64_MAX),
	    1500 * MS - 1);
	assert_int_equal(sweep_jitter_ns(0, UINT64_MAX), 0);
	assert_int_equal(sweep_jitter_ns(-5, 12345), 0);
	assert_int_equal(sweep_jitter_ns(1, 0), 1);
}

/* Each retry waits half again as long as the probe before it. */
static void
test_backoff(void **state)
{
	assert_int_equal(sweep_probe_timeout_ns(1000, 0), 1000 * MS);
	assert_int_equal(sweep_probe_timeout_ns(1000, 1), 1500 * MS);
	assert_int_equal(sweep_probe_timeout_ns(1000, 2), 2250 * MS);
	assert_int_equal(sweep_probe_timeout_ns(200, 3), 675 * MS);
	assert_int_equal(sweep_probe_timeout_ns(10, 0), 10 * MS);
}

/* splitmix64 gives its published sequence for seed 0. */
static void
test_random(void **state)
{
	uint64_t	seed = 0;

	assert_true(sweep_random(&seed) == 0xe220a8397b1dcdafULL);
	assert_true(sweep_random(&seed) == 0x6e789e6aa1b965f4ULL);
	assert_true(sweep_random(&seed) == 0x06c45d188009454fULL);
}

/* Runs every table and single test. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_bucket_starts_with_one),
		cmocka_unit_test(test_bucket_refill_and_burst),
		cmocka_unit_test(test_bucket_wait_drives_rate),
		cmocka_unit_test(test_bucket_set_rate),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_random),
	};
	int			failed = 0;

	failed += support_run_rows("rate", test_bucket_rate, rate_rows,
	    sizeof(rate_rows[0]), ROWS(rate_rows));
	failed += cmocka_run_group_tests_name("pace", single, NULL, NULL);
	return failed != 0;
}
