/* Unit tests of the sweeper's SQL side: targets, news, arrays, times, tables. */
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>

#include "sweeper/sweep_store.h"
#include "test_support.h"

/* An address as host() writes it, and what the sweeper makes of it. */
struct target_row {
	const char			*text;
	enum sweep_target_verdict	 verdict;
	int				 family;
};

static const struct target_row target_rows[] = {
	{ "127.0.0.1", SWEEP_TARGET_OK, AF_INET },
	{ "10.1.2.3", SWEEP_TARGET_OK, AF_INET },
	{ "192.0.2.255", SWEEP_TARGET_OK, AF_INET },
	{ "223.255.255.254", SWEEP_TARGET_OK, AF_INET },
	{ "0.0.0.0", SWEEP_TARGET_UNPROBEABLE, AF_INET },
	{ "0.1.2.3", SWEEP_TARGET_UNPROBEABLE, AF_INET },
	{ "224.0.0.1", SWEEP_TARGET_UNPROBEABLE, AF_INET },
	{ "239.255.255.255", SWEEP_TARGET_UNPROBEABLE, AF_INET },
	{ "255.255.255.255", SWEEP_TARGET_UNPROBEABLE, AF_INET },
	{ "::1", SWEEP_TARGET_OK, AF_INET6 },
	{ "2001:db8::1", SWEEP_TARGET_OK, AF_INET6 },
	{ "fd00::5", SWEEP_TARGET_OK, AF_INET6 },
	{ "fec0::1", SWEEP_TARGET_OK, AF_INET6 },
	{ "::", SWEEP_TARGET_UNPROBEABLE, AF_INET6 },
	{ "ff02::1", SWEEP_TARGET_UNPROBEABLE, AF_INET6 },
	{ "fe80::1", SWEEP_TARGET_UNPROBEABLE, AF_INET6 },
	{ "febf::1", SWEEP_TARGET_UNPROBEABLE, AF_INET6 },
	{ "::ffff:10.0.0.1", SWEEP_TARGET_UNPROBEABLE, AF_INET6 },
	{ "", SWEEP_TARGET_INVALID, 0 },
	{ "10.0.0.1/32", SWEEP_TARGET_INVALID, 0 },
	{ "example.net", SWEEP_TARGET_INVALID, 0 },
};

/* An address is probed, skipped, or refused, as its row says. */
static void
test_target_parse(void **state)
{
	const struct target_row	*row = *state;
	struct sweep_addr	 addr;

	assert_int_equal(sweep_target_parse(row->text, &addr), row->verdict);
	if (row->verdict != SWEEP_TARGET_INVALID)
		assert_int_equal(addr.family, row->family);
}

/* The arrays of a batch are PostgreSQL array literals, NULL for silence. */
static void
test_arrays(void **state)
{
	struct sweep_store_arrays	arrays;
	struct sweep_addr		v4, v6;
	struct sweep_result		result;

	memset(&arrays, 0, sizeof(arrays));
	assert_int_equal(sweep_target_parse("127.77.0.1", &v4), SWEEP_TARGET_OK);
	assert_int_equal(sweep_target_parse("2001:db8::7", &v6), SWEEP_TARGET_OK);

	sweep_store_arrays_begin(&arrays);
	sweep_store_arrays_end(&arrays);
	assert_string_equal(arrays.vrfs.data, "{}");
	assert_string_equal(arrays.addresses.data, "{}");
	assert_string_equal(arrays.rtts.data, "{}");
	assert_string_equal(arrays.active.data, "{}");
	assert_string_equal(arrays.missed.data, "{}");

	/* Used again, the arrays start afresh. */
	sweep_store_arrays_begin(&arrays);
	result.vrf = "";
	result.addr = &v4;
	result.rtt_us = 57;
	result.active = true;
	result.missed_sweeps = 0;
	sweep_store_arrays_add(&arrays, &result);
	/* A routing domain's name is quoted, its quotes and backslashes escaped. */
	result.vrf = "bl\"u,e\\";
	result.addr = &v6;
	result.rtt_us = -1;
	result.active = false;
	result.missed_sweeps = 3;
	sweep_store_arrays_add(&arrays, &result);
	sweep_store_arrays_end(&arrays);
	assert_int_equal(arrays.count, 2);
	assert_string_equal(arrays.vrfs.data, "{\"\",\"bl\\\"u,e\\\\\"}");
	assert_string_equal(arrays.addresses.data, "{127.77.0.1,2001:db8::7}");
	assert_string_equal(arrays.rtts.data, "{57,NULL}");
	assert_string_equal(arrays.active.data, "{t,f}");
	assert_string_equal(arrays.missed.data, "{0,3}");
	sweep_store_arrays_free(&arrays);
}

/* A pass's outcome for an address, and what the sweeper makes of it. */
struct next_row {
	const char		*name;
	struct sweep_prior	 prior;
	int32_t			 rtt_us;	/* -1: silent */
	long long		 down_after;
	bool			 news;
	bool			 active;
	int32_t			 missed_sweeps;
};

#define NEVER		{ false, false, false, 0, -1 }
#define UP(rtt)		{ true, true, true, 0, rtt }
#define SILENT(a, m)	{ true, a, false, m, 40 }

static const struct next_row next_rows[] = {
	{ "first check, answered", NEVER, 40, 3, true, true, 0 },
	{ "first check, silent", NEVER, -1, 3, true, false, 1 },
	{ "answers again, same time", UP(40), 55, 3, false, true, 0 },
	{ "answers again, jitter under 10 ms", UP(40), 9000, 3, false, true,
	    0 },
	{ "answers again, 15 ms slower but not twice",
	    { true, true, true, 0, 30000 }, 45000, 3, false, true, 0 },
	{ "answers again, twice as fast, under 10 ms apart",
	    { true, true, true, 0, 19000 }, 9000, 3, false, true, 0 },
	{ "answers again, far slower", UP(300), 30000, 3, true, true, 0 },
	{ "answers again, far faster", { true, true, true, 0, 30000 }, 300,
	    3, true, true, 0 },
	{ "first silence after replies", UP(40), -1, 3, true, true, 1 },
	{ "second silence: counted by the passes", SILENT(true, 1), -1, 3,
	    false, true, 2 },
	{ "the silence that turns it down", SILENT(true, 2), -1, 3, true,
	    false, 3 },
	{ "down_after 1: the first silence turns it down", UP(40), -1, 1,
	    true, false, 1 },
	{ "still silent and down", SILENT(false, 7), -1, 3, false, false, 8 },
	{ "never answered, silent again", SILENT(false, 1), -1, 3, false,
	    false, 2 },
	{ "a reply after silence", SILENT(false, 9), 40, 3, true, true, 0 },
	{ "a reply while still active", SILENT(true, 1), 40, 3, true, true,
	    0 },
	{ "moved to another subnet, answering", { false, true, true, 0, 40 },
	    40, 3, true, true, 0 },
	{ "moved to another subnet, silent", { false, false, false, 5, 40 },
	    -1, 3, true, false, 6 },
	{ "down_after lowered by a reload", SILENT(true, 4), -1, 3, true,
	    false, 5 },
};

/* Each outcome gives the state and says whether it is news. */
static void
test_next(void **state)
{
	const struct next_row	*row = *state;
	bool			 active = !row->active;
	int32_t			 missed = -1;

	assert_int_equal(sweep_store_next(&row->prior, row->rtt_us,
	    row->down_after, &active, &missed), row->news);
	assert_int_equal(active, row->active);
	assert_int_equal(missed, row->missed_sweeps);
}

/* A text buffer grows as far as it must, and clears to empty. */
static void
test_text_grows(void **state)
{
	struct sweep_text	text = { 0 };
	size_t			i;

	for (i = 0; i < 10000; i++)
		sweep_text_printf(&text, "%05zu,", i);
	assert_int_equal(text.len, 60000);
	assert_int_equal(strlen(text.data), 60000);
	assert_memory_equal(text.data + 59994, "09999,", 6);
	sweep_text_clear(&text);
	assert_int_equal(text.len, 0);
	assert_string_equal(text.data, "");
	sweep_text_free(&text);
}

/* A time in microseconds, and the literal PostgreSQL must read. */
struct time_row {
	const char	*expect;
	int64_t		 unix_us;
};

static const struct time_row time_rows[] = {
	{ "1970-01-01 00:00:00.000000+00", 0 },
	{ "2023-11-14 22:13:20.123456+00", 1700000000123456LL },
	{ "2038-01-19 03:14:08.000001+00", 2147483648000001LL },
	{ "1969-12-31 23:59:59.999999+00", -1 },
};

/* Times are written with every microsecond, in UTC. */
static void
test_timestamp(void **state)
{
	const struct time_row	*row = *state;
	char			 buf[64];

	sweep_store_timestamp(row->unix_us, buf, sizeof(buf));
	assert_string_equal(buf, row->expect);
}

/*
 * The targets come from this member's leases (ipamd.sweep_targets(),
 * which marks those probed), and a sweep's news and its pass are one
 * statement: neither is ever written without the other.
 */
static void
test_targets_are_the_leases(void **state)
{
	assert_non_null(strstr(sweep_store_targets_sql,
	    "FROM ipamd.sweep_targets($1, $2, $3)"));
	assert_non_null(strstr(sweep_store_commit_sql,
	    "FROM ipamd.sweep_commit($1, $2, $3, $4, $5, $6, $7, $8)"));
}

/* Runs every table and single test. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_text_grows),
		cmocka_unit_test(test_targets_are_the_leases),
	};
	int			failed = 0;

	failed += support_run_rows("target", test_target_parse, target_rows,
	    sizeof(target_rows[0]), ROWS(target_rows));
	failed += support_run_rows("next", test_next, next_rows,
	    sizeof(next_rows[0]), ROWS(next_rows));
	failed += support_run_rows("timestamp", test_timestamp, time_rows,
	    sizeof(time_rows[0]), ROWS(time_rows));
	failed += cmocka_run_group_tests_name("store", single, NULL, NULL);
	return failed != 0;
}
