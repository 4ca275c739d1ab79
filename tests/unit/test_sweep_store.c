/* Unit tests of the sweeper's SQL side: targets, arrays, times, columns. */
#include <sys/socket.h>

#include <ctype.h>
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
	assert_string_equal(arrays.addresses.data, "{}");
	assert_string_equal(arrays.checked.data, "{}");
	assert_string_equal(arrays.rtts.data, "{}");
	assert_string_equal(arrays.was_active.data, "{}");

	/* Used again, the arrays start afresh. */
	sweep_store_arrays_begin(&arrays);
	result.addr = &v4;
	result.checked_us = 0;
	result.rtt_us = 57;
	result.was_active = false;
	sweep_store_arrays_add(&arrays, &result);
	result.addr = &v6;
	result.checked_us = 1234567890123LL;
	result.rtt_us = -1;
	result.was_active = true;
	sweep_store_arrays_add(&arrays, &result);
	sweep_store_arrays_end(&arrays);
	assert_int_equal(arrays.count, 2);
	assert_string_equal(arrays.addresses.data, "{127.77.0.1,2001:db8::7}");
	assert_string_equal(arrays.checked.data, "{0,1234567890123}");
	assert_string_equal(arrays.rtts.data, "{57,NULL}");
	assert_string_equal(arrays.was_active.data, "{f,t}");
	sweep_store_arrays_free(&arrays);
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
 * Collects the column names a statement's UPDATE ... SET assigns, as
 * "name," each; fails if the statement has no single SET.
 */
static void
set_columns(const char *sql, char *out, size_t outlen)
{
	const char	*p = strstr(sql, "\tSET "), *end;
	size_t		 n;
	int		 depth;

	assert_non_null(p);
	assert_null(strstr(p + 1, "\tSET "));
	end = strstr(p, "\n\tFROM ");
	assert_non_null(end);
	out[0] = '\0';
	p += 5;
	while (p < end) {
		while (p < end && (isspace((unsigned char)*p) || *p == ','))
			p++;
		n = 0;
		while (p + n < end && (isalnum((unsigned char)p[n]) ||
		    p[n] == '_'))
			n++;
		if (n == 0)
			break;
		snprintf(out + strlen(out), outlen - strlen(out), "%.*s,",
		    (int)n, p);
		/* Skip "= value" up to the next comma outside parentheses. */
		p += n;
		for (depth = 0; p < end && (*p != ',' || depth > 0); p++)
			depth += (*p == '(') - (*p == ')');
	}
}

/* The writes set the sweeper's five columns and nothing else. */
static void
test_write_touches_only_sweeper_columns(void **state)
{
	char	columns[256];

	set_columns(sweep_store_write_sql, columns, sizeof(columns));
	assert_string_equal(columns,
	    "active,missed_sweeps,last_checked_at,last_seen_at,rtt_us,");
	set_columns(sweep_store_write_skip_locked_sql, columns,
	    sizeof(columns));
	assert_string_equal(columns,
	    "active,missed_sweeps,last_checked_at,last_seen_at,rtt_us,");
	/* Only the fallback skips rows another transaction holds. */
	assert_null(strstr(sweep_store_write_sql, "SKIP LOCKED"));
	assert_non_null(strstr(sweep_store_write_skip_locked_sql,
	    "FOR UPDATE SKIP LOCKED"));
	/* Rows whose values stay the same are not written. */
	assert_non_null(strstr(sweep_store_write_sql, "IS DISTINCT FROM"));
	/* Targets come only from subnets that allow pinging. */
	assert_non_null(strstr(sweep_store_targets_sql, "s.ping"));
	/* ... and only from those leased to this member for this round. */
	assert_non_null(strstr(sweep_store_targets_sql, "FROM ipamd.sweep_lease"));
	assert_non_null(strstr(sweep_store_targets_sql,
	    "l.member = $1 AND l.expires_at = ipamd.sweep_time($2)"));
}

/* Runs every table and single test. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_text_grows),
		cmocka_unit_test(test_write_touches_only_sweeper_columns),
	};
	int			failed = 0;

	failed += support_run_rows("target", test_target_parse, target_rows,
	    sizeof(target_rows[0]), ROWS(target_rows));
	failed += support_run_rows("timestamp", test_timestamp, time_rows,
	    sizeof(time_rows[0]), ROWS(time_rows));
	failed += cmocka_run_group_tests_name("store", single, NULL, NULL);
	return failed != 0;
}
