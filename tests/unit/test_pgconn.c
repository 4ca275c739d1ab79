/* Unit tests of the connection's error text: cut where a character begins. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/pgconn.h"
#include "consumers/decode_fields.h"
#include "test_support.h"

/*
 * libpq's message for a socket path too long names the path: one of
 * 400 two-byte characters makes a message of over 800 bytes to cut.
 */
static void
test_long_message_is_cut_at_a_character(void **state)
{
	char conninfo[1200] = "host=/tmp/", full[2048], buf[2048];
	const char *message;
	PGconn *conn;
	PGresult *result;
	size_t i, len;

	(void)state;
	for (i = 0; i < 400; i++)
		strcat(conninfo, "\xc3\xa9");
	strcat(conninfo, " connect_timeout=1");
	conn = PQconnectdb(conninfo);
	assert_int_equal(PQstatus(conn), CONNECTION_BAD);
	result = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	message = PQresultErrorMessage(result);
	assert_true(strstr(message, "\xc3\xa9\xc3\xa9") != NULL);
	/* Whole: the message without its last newline. */
	pgconn_result_error(NULL, result, full, sizeof(full));
	len = strlen(full);
	assert_true(len > 800);
	assert_true(full[len - 1] != '\n');
	for (i = 1; i < len + 2; i++) {
		pgconn_result_error(NULL, result, buf, i);
		assert_true(strlen(buf) < i);
		assert_true(fields_utf8_valid(buf, strlen(buf)));
		assert_memory_equal(buf, full, strlen(buf));
		/* At most a character's bytes fewer than there was room for. */
		assert_true(strlen(buf) + 2 >= (i - 1 < len ? i - 1 : len));
	}
	PQclear(result);
	PQfinish(conn);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_message_is_cut_at_a_character),
	};

	return cmocka_run_group_tests_name("pgconn", tests, NULL, NULL);
}
