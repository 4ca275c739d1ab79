/* Unit tests of the SCRAM check: which librdkafka and settings it refuses. */
#include <stdio.h>
#include <string.h>

#include "daemon/kafka_scram.h"
#include "test_support.h"

/* Settings, a librdkafka version, and what the check must answer. */
struct scram_row {
	const char	*label;
	const char	*mechanisms;
	const char	*acknowledged;
	int		 version;
	int		 result;
	const char	*error;		/* a part of the reason, or NULL */
};

static const struct scram_row scram_rows[] = {
	{ "no SASL", NULL, NULL, 0x020002ff, 0, NULL },
	{ "PLAIN", "PLAIN", NULL, 0x020002ff, 0, NULL },
	{ "SCRAM-SHA-512 with 2.0.2", "SCRAM-SHA-512", NULL, 0x020002ff, -1,
	    "librdkafka 2.0.2 cannot log in with SCRAM to Kafka 4.0 or later "
	    "(fixed in librdkafka 2.6.1)" },
	{ "scram-sha-256 in lower case", "scram-sha-256", NULL, 0x020002ff, -1,
	    "kafka.sasl.mechanisms = scram-sha-256: " },
	{ "acknowledged: brokers older than 4.0", "SCRAM-SHA-256", "true",
	    0x020002ff, 0, NULL },
	{ "acknowledged false", "SCRAM-SHA-256", "false", 0x020002ff, -1,
	    "set kafka.ipam.scram_broker_below_4 = true" },
	{ "2.6.0 still refused", "SCRAM-SHA-256", NULL, 0x020600ff, -1,
	    "librdkafka 2.6.0" },
	{ "a 2.6.1 pre-release still refused", "SCRAM-SHA-256", NULL,
	    0x02060100, -1, "librdkafka 2.6.1 cannot" },
	{ "2.6.1 fixed", "SCRAM-SHA-256", NULL, 0x020601ff, 0, NULL },
	{ "2.8.0 fixed", "SCRAM-SHA-512", NULL, 0x020800ff, 0, NULL },
	{ "not true or false", "PLAIN", "yes", 0x020002ff, -2,
	    "kafka.ipam.scram_broker_below_4: \"yes\" is not true or false" },
};

/* One row: the result, and the reason when it refuses. */
static void
test_scram(void **state)
{
	const struct scram_row	*row = *state;
	char			 err[512] = "";

	assert_int_equal(kafka_scram_check(row->mechanisms,
	    row->acknowledged, row->version, err, sizeof(err)), row->result);
	if (row->error != NULL && strstr(err, row->error) == NULL)
		fail_msg("%s: \"%s\" does not hold \"%s\"", row->label, err,
		    row->error);
}

/* Only "ipam." keys are the daemon's own. */
static void
test_own_keys(void **state)
{
	(void)state;
	assert_true(kafka_scram_own_key("ipam.scram_broker_below_4"));
	assert_false(kafka_scram_own_key("sasl.mechanisms"));
	assert_false(kafka_scram_own_key("ipam"));
}

int
main(void)
{
	const struct CMUnitTest	single[] = { cmocka_unit_test(test_own_keys) };
	int			failed = 0;

	failed += support_run_rows("kafka_scram", test_scram, scram_rows,
	    sizeof(scram_rows[0]), ROWS(scram_rows));
	failed += cmocka_run_group_tests_name("kafka_scram_misc", single, NULL,
	    NULL);
	return failed != 0;
}
