/* Unit tests of the Debezium decoder over the fixture files. */
#include <stdio.h>
#include <string.h>

#include "test_support.h"

/* A server row's payload, with op c, for the wrapper rows below. */
#define ROW_PAYLOAD	"{\"op\":\"c\",\"after\":{\"id\":7,\"hostname\":\"h\"," \
	"\"ip_address\":null,\"nic_mac\":null,\"device_type\":null," \
	"\"manufacture\":null}}"

/*
 * A message value and what decoding it gives: the id of the server, or
 * (id NULL) text the reason must contain.
 */
struct wrapper_row {
	const char	*name;
	const char	*value;
	const char	*id;
	const char	*error;
};

static const struct wrapper_row wrapper_rows[] = {
	{ "plain wrapper", "{\"schema\":{\"type\":\"struct\"},\"payload\":"
	    ROW_PAYLOAD "}", "7", NULL },
	{ "payload first, white space", " { \"payload\" : " ROW_PAYLOAD
	    " ,\n \"schema\":null } ", "7", NULL },
	{ "braces and quotes inside schema strings",
	    "{\"schema\":{\"doc\":\"a } \\\" ] {\",\"f\":[{\"x\":\"]\"}]},"
	    "\"payload\":" ROW_PAYLOAD "}", "7", NULL },
	{ "member names spelt with escapes", "{\"sch\\u0065ma\":{},"
	    "\"p\\u0061yload\":" ROW_PAYLOAD "}", "7", NULL },
	{ "no wrapper", ROW_PAYLOAD, "7", NULL },
	{ "a third member: the value is the event", "{\"schema\":{},"
	    "\"payload\":" ROW_PAYLOAD ",\"x\":1}", NULL,
	    "op is missing" },
	{ "payload a string", "{\"schema\":{},\"payload\":\"p\"}", NULL,
	    "the change event must be a JSON object, not a string" },
	{ "payload an array", "{\"schema\":{},\"payload\":[1]}", NULL,
	    "the change event must be a JSON object, not an array" },
	{ "schema twice", "{\"schema\":{},\"schema\":{},\"payload\":"
	    ROW_PAYLOAD "}", NULL, "not valid JSON: duplicate object key" },
	{ "a name repeated inside the schema block", "{\"schema\":{\"type\":1,"
	    "\"type\":2},\"payload\":" ROW_PAYLOAD "}", NULL,
	    "not valid JSON: duplicate object key" },
	{ "a name repeated inside the payload", "{\"schema\":{},\"payload\":"
	    "{\"op\":\"c\",\"op\":\"d\"}}", NULL,
	    "not valid JSON: duplicate object key" },
	{ "a broken word in the schema block", "{\"schema\":{\"optional\":tru},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: invalid token" },
	{ "a bad number in the schema block", "{\"schema\":{\"version\":01},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "invalid UTF-8 in the schema block", "{\"schema\":{\"doc\":\"\xff\"},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "unbalanced schema", "{\"schema\":{\"a\":[},\"payload\":"
	    ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "unterminated string", "{\"schema\":\"abc,\"payload\":" ROW_PAYLOAD
	    "}", NULL, "not valid JSON: " },
	{ "a control character in a string", "{\"schema\":\"a\tb\","
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "trailing bytes", "{\"schema\":{},\"payload\":" ROW_PAYLOAD "} x",
	    NULL, "not valid JSON: " },
	{ "a bare string", "\"abc\"", NULL,
	    "not valid JSON: '[' or '{' expected" },
	{ "an escaped op", "{\"op\":\"\\u0063\",\"after\":{\"id\":\"s\\u00e9\","
	    "\"hostname\":\"h\",\"ip_address\":null,\"nic_mac\":null,"
	    "\"device_type\":null,\"manufacture\":null}}", "s\xc3\xa9", NULL },
	{ "an op of two letters", "{\"op\":\"cu\"}", NULL,
	    "op \"cu\" is not one of c, u, r, d, t" },
	{ "an op that is a number", "{\"op\":1}", NULL,
	    "op is an integer; a change event has op c, u, r, d or t" },
};

/* One row: the server the value names, or the reason it is refused. */
static void
test_wrapper(void **state)
{
	const struct wrapper_row	*row = *state;
	struct decode_input		 in;
	struct change			 change;
	char				 err[512];
	enum decode_result		 result;

	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.value = row->value;
	in.value_len = strlen(row->value);
	result = decode_message(DECODE_DEBEZIUM, &in, &change, err,
	    sizeof(err));
	if (row->id != NULL) {
		if (result != DECODE_OK)
			fail_msg("refused: %s", err);
		assert_string_equal(change.id, row->id);
		change_clear(&change);
		return;
	}
	assert_int_equal(result, DECODE_ERROR);
	if (strstr(err, row->error) == NULL)
		fail_msg("reason \"%s\" does not hold \"%s\"", err, row->error);
	assert_true(strncmp(err, "debezium: ", 10) == 0);
}

/*
 * A hostname of 140 characters written as \u00e9 escapes: its length
 * is counted in bytes once the escapes are resolved (280), and it goes
 * past the stack buffer the decoder reads short strings into.
 */
static void
test_escaped_length(void **state)
{
	const char		*head = "{\"op\":\"c\",\"after\":{\"id\":1,"
	    "\"hostname\":\"", *tail = "\",\"ip_address\":null,\"nic_mac\":"
	    "null,\"device_type\":null,\"manufacture\":null}}";
	struct decode_input	 in;
	struct change		 change;
	char			 value[2048], err[512];
	size_t			 i, len;

	(void)state;
	len = (size_t)snprintf(value, sizeof(value), "%s", head);
	for (i = 0; i < 140; i++)
		len += (size_t)snprintf(value + len, sizeof(value) - len,
		    "\\u00e9");
	len += (size_t)snprintf(value + len, sizeof(value) - len, "%s", tail);
	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.value = value;
	in.value_len = len;
	assert_int_equal(decode_message(DECODE_DEBEZIUM, &in, &change, err,
	    sizeof(err)), DECODE_ERROR);
	assert_non_null(strstr(err, "after.hostname is 280 bytes, more than "
	    "the limit of 255"));
}

/* Runs the Debezium message fixtures found under argv[1]. */
int
main(int argc, char **argv)
{
	struct support_cases	cases;
	char			dir[512];
	int			failed;

	if (argc != 2) {
		fprintf(stderr, "usage: %s fixture-folder\n", argv[0]);
		return 2;
	}
	memset(&cases, 0, sizeof(cases));
	snprintf(dir, sizeof(dir), "%s/debezium", argv[1]);
	support_add_message_dir(&cases, dir, DECODE_DEBEZIUM);
	failed = support_run_cases("debezium", &cases);
	support_cases_free(&cases);
	failed += support_run_rows("debezium wrapper", test_wrapper,
	    wrapper_rows, sizeof(wrapper_rows[0]), ROWS(wrapper_rows));
	{
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_escaped_length),
		};

		failed += cmocka_run_group_tests_name("debezium strings",
		    tests, NULL, NULL);
	}
	return failed != 0;
}
