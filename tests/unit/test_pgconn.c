/*
 * Unit tests of the connection: its error text cut where a character
 * begins; the order of several hosts after attempts that timed out; a
 * query whose send finds the server gone answers from the loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
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

/*
 * A server of the test's own that speaks just enough of the protocol to
 * let a client in (trust: AuthenticationOk, ReadyForQuery), then, when
 * told, closes its side for writing and never reads again.
 */
struct fake_server {
	int		 listener;
	int		 port;
	int		 go[2];		/* test -> server: close your side */
	int		 done[2];	/* server -> test: closed */
	pthread_t	 thread;
};

static bool
fake_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = read(fd, p, len)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void *
fake_server_run(void *arg)
{
	static const char hello[] = {
		'R', 0, 0, 0, 8, 0, 0, 0, 0,	/* AuthenticationOk */
		'Z', 0, 0, 0, 5, 'I',		/* ReadyForQuery, idle */
	};
	struct fake_server *fake = arg;
	unsigned char head[4];
	char *startup, c;
	uint32_t len;
	int fd;

	if ((fd = accept(fake->listener, NULL, NULL)) == -1)
		return NULL;
	if (fake_read_all(fd, head, 4)) {
		len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
		    (uint32_t)head[2] << 8 | head[3];
		if (len >= 8 && len < 10000 &&
		    (startup = malloc(len - 4)) != NULL) {
			if (fake_read_all(fd, startup, len - 4) &&
			    write(fd, hello, sizeof(hello)) ==
			    (ssize_t)sizeof(hello) &&
			    read(fake->go[0], &c, 1) == 1) {
				shutdown(fd, SHUT_WR);
				(void)write(fake->done[1], "x", 1);
				/* Never reads: the client's send fills up. */
				(void)read(fake->go[0], &c, 1);
			}
			free(startup);
		}
	}
	close(fd);
	return NULL;
}

static void
fake_server_start(struct fake_server *fake)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t addrlen = sizeof(addr);

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fake->listener = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fake->listener != -1);
	assert_int_equal(bind(fake->listener, (struct sockaddr *)&addr,
	    sizeof(addr)), 0);
	assert_int_equal(listen(fake->listener, 1), 0);
	assert_int_equal(getsockname(fake->listener, (struct sockaddr *)&addr,
	    &addrlen), 0);
	fake->port = ntohs(addr.sin_port);
	assert_int_equal(pipe(fake->go), 0);
	assert_int_equal(pipe(fake->done), 0);
	assert_int_equal(pthread_create(&fake->thread, NULL, fake_server_run,
	    fake), 0);
}

static void
fake_server_stop(struct fake_server *fake)
{
	close(fake->go[1]);
	pthread_join(fake->thread, NULL);
	close(fake->go[0]);
	close(fake->done[0]);
	close(fake->done[1]);
	close(fake->listener);
}

/* What the connection's owner and the query's caller were told, when. */
struct told {
	struct event_base	*base;
	struct fake_server	*fake;
	bool			 asking;	/* inside pgconn_query() */
	int			 rc;
	int			 answers, answers_inside;
	bool			 answer_null;
	int			 downs, downs_inside;
	int			 ups;
};

static void
told_answer(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct told *told = arg;

	(void)pg;
	(void)error;
	told->answers++;
	told->answers_inside += told->asking;
	told->answer_null = result == NULL;
}

static void
told_down(struct pgconn *pg, const char *reason, void *arg)
{
	struct told *told = arg;

	(void)pg;
	(void)reason;
	told->downs++;
	told->downs_inside += told->asking;
	event_base_loopbreak(told->base);
}

/* The client's end of the connection to the fake server. */
static int
told_client_socket(const struct told *told)
{
	struct sockaddr_in peer;
	socklen_t len;
	int fd;

	for (fd = 3; fd < 4096; fd++) {
		len = sizeof(peer);
		if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
		    peer.sin_family == AF_INET &&
		    ntohs(peer.sin_port) == told->fake->port)
			return fd;
	}
	fail_msg("no socket connected to port %d", told->fake->port);
	return -1;
}

/*
 * Up: the server closes its side and reads no more, and the client's
 * socket is filled.  A query then has to wait for room in it, so libpq
 * reads, finds the end of the stream and fails inside pgconn_query().
 */
static void
told_up(struct pgconn *pg, void *arg)
{
	static const char junk[4096];
	struct told *told = arg;
	const char *params[1] = { "one" };
	char c;
	int fd;

	told->ups++;
	assert_int_equal(write(told->fake->go[1], "x", 1), 1);
	assert_int_equal(read(told->fake->done[0], &c, 1), 1);
	usleep(100 * 1000);	/* the end of the stream arrives */
	/* Nonblocking (libpq's): written until it would wait. */
	fd = told_client_socket(told);
	while (write(fd, junk, sizeof(junk)) > 0)
		continue;
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	told->asking = true;
	told->rc = pgconn_query(pg, "SELECT length($1)", 1, params,
	    told_answer, told);
	told->asking = false;
}

/* Runs a connection to the fake server up to its loss. */
static void
told_run(struct told *told)
{
	struct fake_server fake;
	struct pgconn_settings settings = {
		.application_name = "test_pgconn",
		.connect_timeout_ms = 5000,
		.reconnect_min_ms = 60000,
		.reconnect_max_ms = 60000,
	};
	struct pgconn_callbacks callbacks = { told_up, told_down, NULL };
	struct timeval limit = { 20, 0 };
	char conninfo[256];
	struct pgconn *pg;

	fake_server_start(&fake);
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d "
	    "user=u dbname=d sslmode=disable gssencmode=disable", fake.port);
	settings.conninfo = conninfo;
	memset(told, 0, sizeof(*told));
	told->base = event_base_new();
	told->fake = &fake;
	told->rc = -2;
	callbacks.arg = told;
	pg = pgconn_new(told->base, &settings, &callbacks);
	pgconn_start(pg);
	event_base_loopexit(told->base, &limit);
	event_base_dispatch(told->base);

	assert_int_equal(told->ups, 1);
	assert_int_equal(told->downs, 1);
	assert_false(pgconn_is_up(pg));
	assert_false(pgconn_is_busy(pg));
	pgconn_free(pg);
	event_base_free(told->base);
	fake_server_stop(&fake);
}

/*
 * Neither the query's callback nor the owner's down runs inside
 * pgconn_query(): a caller that notes the query in flight after the
 * call (a load, a rebuild step) is not left waiting for an answer that
 * came before.  libpq 15 flushes inside PQsendQueryParams(), so the
 * query is refused (-1, never answered); a libpq that leaves the flush
 * to PQflush() has it sent (0) and failed from the loop.
 */
static void
test_a_query_finding_the_server_gone_answers_from_the_loop(void **state)
{
	struct told told;

	(void)state;
	told_run(&told);
	assert_int_equal(told.downs_inside, 0);
	assert_int_equal(told.answers_inside, 0);
	if (told.rc == 0) {
		assert_int_equal(told.answers, 1);
		assert_true(told.answer_null);
	} else {
		assert_int_equal(told.rc, -1);
		assert_int_equal(told.answers, 0);
	}
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
		cmocka_unit_test(
		    test_a_query_finding_the_server_gone_answers_from_the_loop),
	};

	return cmocka_run_group_tests_name("pgconn", tests, NULL, NULL);
}
