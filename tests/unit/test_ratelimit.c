/* Unit tests of the operator API's rate limit and of its keyed hash. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include "common/siphash.h"
#include "daemon/ratelimit.h"
#include "test_support.h"

static const unsigned char test_key[RATELIMIT_KEY_LEN] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* An address of either family, from its text. */
static struct sockaddr_storage
address_of(const char *text)
{
	struct sockaddr_storage storage;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;

	memset(&storage, 0, sizeof(storage));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	else
		fail_msg("test setup: %s is no address", text);
	return storage;
}

/* Takes one token at t seconds: whether it was given. */
static bool
take(struct ratelimit *limiter, const char *text, double rate, double t)
{
	struct sockaddr_storage address = address_of(text);
	struct timespec now = { (time_t)t, (long)((t - (double)(time_t)t) *
	    1e9) };

	return ratelimit_take(limiter, (struct sockaddr *)&address, rate,
	    &now);
}

/* How many tokens a client takes at t seconds before it is refused. */
static int
drain(struct ratelimit *limiter, const char *text, double rate, double t)
{
	int taken = 0;

	while (take(limiter, text, rate, t))
		if (++taken > 1000000)
			fail_msg("%s is never refused", text);
	return taken;
}

/* The reference vectors of SipHash-2-4: key 00..0f, message 00.. of a length. */
static void
test_siphash_vectors(void **state)
{
	unsigned char message[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(message); i++)
		message[i] = (unsigned char)i;
	assert_true(siphash24(test_key, message, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(siphash24(test_key, message, 8) == 0x93f5f5799a932462ULL);
	assert_true(siphash24(test_key, message, 15) == 0xa129ca6149be45e5ULL);
	assert_true(siphash24(test_key, message, 63) == 0x958a324ceb064572ULL);
}

/* A burst of twice the rate, then a token for each 1/rate seconds. */
static void
test_burst_then_rate(void **state)
{
	struct ratelimit *limiter = ratelimit_new(64, test_key);

	(void)state;
	assert_int_equal(drain(limiter, "192.0.2.1", 10, 100.0), 20);
	assert_false(take(limiter, "192.0.2.1", 10, 100.05));
	assert_true(take(limiter, "192.0.2.1", 10, 100.11));
	assert_false(take(limiter, "192.0.2.1", 10, 100.12));
	/* Idle long enough, the bucket is full again, and no fuller. */
	assert_int_equal(drain(limiter, "192.0.2.1", 10, 200.0), 20);
	/* A rate of 0 limits nothing. */
	assert_true(take(limiter, "192.0.2.1", 0, 200.0));
	ratelimit_free(limiter);
}

/* Many clients at once, each with a bucket of its own. */
static void
test_clients_apart(void **state)
{
	struct ratelimit *limiter = ratelimit_new(4096, test_key);
	char text[64];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.1", i / 256, i % 256);
		assert_int_equal(drain(limiter, text, 5, 1.0), 10);
	}
	for (i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.1", i / 256, i % 256);
		if (take(limiter, text, 5, 1.0))
			fail_msg("%s got a token again: its bucket was "
			    "another's", text);
	}
	assert_int_equal(drain(limiter, "10.200.0.1", 5, 1.0), 10);
	ratelimit_free(limiter);
}

/* An IPv6 client is its /64; an IPv4-mapped address is the IPv4 one. */
static void
test_what_a_client_is(void **state)
{
	struct ratelimit *limiter = ratelimit_new(64, test_key);

	(void)state;
	assert_int_equal(drain(limiter, "2001:db8:1:2::1", 5, 1.0), 10);
	assert_false(take(limiter, "2001:db8:1:2:ffff:ffff:ffff:ffff", 5, 1.0));
	assert_true(take(limiter, "2001:db8:1:3::1", 5, 1.0));
	assert_int_equal(drain(limiter, "198.51.100.7", 5, 1.0), 10);
	assert_false(take(limiter, "::ffff:198.51.100.7", 5, 1.0));
	assert_true(take(limiter, "198.51.100.8", 5, 1.0));
	ratelimit_free(limiter);
}

/*
 * Full, the table gives a new client the place of the fullest bucket and
 * its tokens: no client gets tokens by sending from more addresses, and
 * clients that emptied their buckets stay refused.
 */
static void
test_full_table(void **state)
{
	struct ratelimit *limiter = ratelimit_new(8, test_key);
	char text[64];
	int i;

	(void)state;
	assert_true(take(limiter, "203.0.113.100", 5, 1.0));
	for (i = 1; i <= 7; i++) {
		snprintf(text, sizeof(text), "203.0.113.%d", i);
		assert_int_equal(drain(limiter, text, 5, 1.0), 10);
	}
	/* The one with nine tokens left gives its place, and them. */
	assert_int_equal(drain(limiter, "203.0.113.200", 5, 1.0), 9);
	for (i = 1; i <= 7; i++) {
		snprintf(text, sizeof(text), "203.0.113.%d", i);
		assert_false(take(limiter, text, 5, 1.0));
	}
	/* Back, it finds every bucket empty: refused, and so is whoever's
	 * place it took. */
	assert_false(take(limiter, "203.0.113.100", 5, 1.0));
	for (i = 1; i <= 7; i++) {
		snprintf(text, sizeof(text), "203.0.113.%d", i);
		assert_false(take(limiter, text, 5, 1.0));
	}
	assert_false(take(limiter, "203.0.113.200", 5, 1.0));
	/* A second on, the buckets have refilled five tokens. */
	assert_int_equal(drain(limiter, "203.0.113.100", 5, 2.0), 5);
	ratelimit_free(limiter);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_clients_apart),
		cmocka_unit_test(test_what_a_client_is),
		cmocka_unit_test(test_full_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
