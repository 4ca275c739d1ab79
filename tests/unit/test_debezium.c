/* Unit tests of the Debezium decoder over the fixture files. */
#include <stdio.h>
#include <string.h>

#include "test_support.h"

/* A value, and the payload the wrapper scan must find (NULL: none). */
struct span_row {
	const char	*name;
	const char	*value;
	const char	*payload;
};

static const struct span_row span_rows[] = {
	{ "plain wrapper", "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"op\":\"c\"}}",
	    "{\"op\":\"c\"}" },
	{ "payload first, white space", " { \"payload\" : [1, 2] ,\n \"schema\":null } ",
	    "[1, 2]" },
	{ "braces and quotes inside schema strings",
	    "{\"schema\":{\"doc\":\"a } \\\" ] {\",\"f\":[{\"x\":\"]\"}]},"
	    "\"payload\":null}", "null" },
	{ "nested schema arrays", "{\"schema\":{\"fields\":[[[]],{},[{\"a\":[true,"
	    "false,-1.5e3]}]]},\"payload\":\"p\"}", "\"p\"" },
	{ "no wrapper", "{\"op\":\"c\",\"after\":{}}", NULL },
	{ "a third member", "{\"schema\":{},\"payload\":{},\"x\":1}", NULL },
	{ "schema twice", "{\"schema\":{},\"schema\":{},\"payload\":{}}", NULL },
	{ "payload missing", "{\"schema\":{}}", NULL },
	{ "unbalanced schema", "{\"schema\":{\"a\":[},\"payload\":{}}", NULL },
	{ "unterminated string", "{\"schema\":\"abc,\"payload\":{}}", NULL },
	{ "a control character in a string", "{\"schema\":\"a\tb\",\"payload\":{}}",
	    NULL },
	{ "trailing bytes", "{\"schema\":{},\"payload\":{}} x", NULL },
	{ "escaped member name", "{\"sch\\u0065ma\":{},\"payload\":{}}", NULL },
	{ "not an object", "[{\"schema\":{},\"payload\":{}}]", NULL },
};

/* One row: the scan finds exactly the payload, or no wrapper. */
static void
test_payload_span(void **state)
{
	const struct span_row *row = *state;
	size_t offset = 0, span = 0;
	bool found;

	found = decode_debezium_payload_span(row->value, strlen(row->value),
	    &offset, &span);
	if (row->payload == NULL) {
		assert_false(found);
		return;
	}
	assert_true(found);
	assert_int_equal(span, strlen(row->payload));
	assert_memory_equal(row->value + offset, row->payload, span);
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
	failed += support_run_rows("debezium payload span", test_payload_span,
	    span_rows, sizeof(span_rows[0]), ROWS(span_rows));
	return failed != 0;
}
