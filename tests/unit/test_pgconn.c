/*
 * Unit tests of the connection: its error text cut where a character
 * begins; the order of several hosts after attempts that timed out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/pgconn.h"
#include "common/pgconn_lookup.h"
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

/* Checks the lists for one conninfo and turn (NULL: unchanged). */
static void
check_turned(const char *conninfo, unsigned turn, const char *host,
    const char *hostaddr, const char *port)
{
	const char *want[3] = { host, hostaddr, port };
	char *lists[3];
	int i, set = 0;

	for (i = 0; i < 3; i++)
		set += want[i] != NULL;
	assert_int_equal(pgconn_hosts_turned(conninfo, turn, lists), set);
	for (i = 0; i < 3; i++) {
		if (want[i] == NULL)
			assert_null(lists[i]);
		else
			assert_string_equal(lists[i], want[i]);
		free(lists[i]);
	}
}

/*
 * Several hosts: each attempt that timed out starts the next at the next
 * host, its hostaddr and port along when they are lists of as many.
 */
static void
test_hosts_are_tried_from_the_next_after_a_timeout(void **state)
{
	(void)state;
	check_turned("host=a,b,c dbname=x", 0, NULL, NULL, NULL);
	check_turned("host=a,b,c dbname=x", 1, "b,c,a", NULL, NULL);
	check_turned("host=a,b,c dbname=x", 2, "c,a,b", NULL, NULL);
	check_turned("host=a,b,c dbname=x", 3, NULL, NULL, NULL);
	check_turned("host=a,b port=5432", 1, "b,a", NULL, NULL);
	check_turned("host=a,b port=1,2 hostaddr=10.0.0.1,10.0.0.2", 1, "b,a",
	    "10.0.0.2,10.0.0.1", "2,1");
	check_turned("hostaddr=10.0.0.1,10.0.0.2", 1, NULL, "10.0.0.2,10.0.0.1",
	    NULL);
	check_turned("postgresql://pg1:5433,pg2:5434/ipam", 1, "pg2,pg1", NULL,
	    "5434,5433");
	check_turned("host=only dbname=x", 5, NULL, NULL, NULL);
	check_turned("dbname=x", 1, NULL, NULL, NULL);
	check_turned("not a conninfo", 1, NULL, NULL, NULL);
}

/* A resolver of the tests: db1 has two addresses, db2 one, none else. */
static int
fake_resolve(const char *name, char addresses[][64], int max, char *err,
    size_t errlen)
{
	(void)max;
	if (strcmp(name, "db1") == 0) {
		strcpy(addresses[0], "10.0.0.1");
		strcpy(addresses[1], "fd00::1");
		return 2;
	}
	if (strcmp(name, "db2") == 0) {
		strcpy(addresses[0], "10.0.0.2");
		return 1;
	}
	snprintf(err, errlen, "could not translate host name \"%s\"", name);
	return -1;
}

/* Checks one expansion (want NULL: it fails with error). */
static void
check_expand(const char *hosts, const char *hostaddrs, const char *ports,
    const char *want_hosts, const char *want_hostaddrs,
    const char *want_ports, const char *error)
{
	char *lists[3], err[256];
	int i;

	if (want_hosts == NULL) {
		assert_int_equal(pgconn_hosts_expand(hosts, hostaddrs, ports,
		    fake_resolve, lists, err, sizeof(err)), -1);
		assert_string_equal(err, error);
		return;
	}
	assert_int_equal(pgconn_hosts_expand(hosts, hostaddrs, ports,
	    fake_resolve, lists, err, sizeof(err)), 0);
	assert_string_equal(err, error != NULL ? error : "");
	assert_string_equal(lists[0], want_hosts);
	assert_string_equal(lists[1], want_hostaddrs);
	if (want_ports == NULL)
		assert_null(lists[2]);
	else
		assert_string_equal(lists[2], want_ports);
	for (i = 0; i < 3; i++)
		free(lists[i]);
}

/*
 * Host names are looked up before libpq sees them: one entry per address,
 * the name kept; numeric hosts, socket directories and entries with a
 * hostaddr stay; a name that does not resolve is left out, and only when
 * none is left is it an error.
 */
static void
test_host_names_become_addresses_beside_their_names(void **state)
{
	(void)state;
	assert_true(pgconn_lookup_needed("db1", NULL));
	assert_false(pgconn_lookup_needed("10.1.1.1,::1,/run/postgresql,@abs",
	    NULL));
	assert_false(pgconn_lookup_needed("db1", "10.0.0.9"));
	assert_true(pgconn_lookup_needed("10.1.1.1,db1", "10.1.1.1"));
	assert_false(pgconn_lookup_needed(NULL, NULL));
	assert_false(pgconn_lookup_needed("", NULL));
	check_expand("db1", NULL, "5432", "db1,db1", "10.0.0.1,fd00::1", NULL,
	    NULL);
	check_expand("db1,db2", NULL, "5433,5434", "db1,db1,db2",
	    "10.0.0.1,fd00::1,10.0.0.2", "5433,5433,5434", NULL);
	check_expand("/run/postgresql,db2,127.0.0.1", NULL, NULL,
	    "/run/postgresql,db2,127.0.0.1", ",10.0.0.2,", NULL, NULL);
	check_expand("db1,db2", "10.9.9.9,", NULL, "db1,db2",
	    "10.9.9.9,10.0.0.2", NULL, NULL);
	check_expand("gone,db2", NULL, NULL, "db2", "10.0.0.2", NULL,
	    "could not translate host name \"gone\"");
	check_expand("gone,lost", NULL, NULL, NULL, NULL, NULL,
	    "could not translate host name \"gone\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_message_is_cut_at_a_character),
		cmocka_unit_test(
		    test_hosts_are_tried_from_the_next_after_a_timeout),
		cmocka_unit_test(
		    test_host_names_become_addresses_beside_their_names),
	};

	return cmocka_run_group_tests_name("pgconn", tests, NULL, NULL);
}
