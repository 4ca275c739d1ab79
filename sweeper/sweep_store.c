/* The ping sweeper's SQL: round claims, targets, results, array literals. */
#include <sys/socket.h>

#include <arpa/inet.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sweeper/sweep_store.h"

/*
 * The sweeper's session: its writes need not wait for the disk (a lost
 * result is measured again by the next sweep); it waits at most 200 ms
 * for a row the apply path holds (then skips such rows) so that it can
 * never be part of a deadlock; and its statements, set-based joins of
 * thousands of rows, are planned as such (with a GiST index on the
 * addresses the planner would probe it once per row, 15 times slower).
 * The session is also what keeps this instance a member of the shared
 * sweep: the server's TCP keepalives end it about 25 s after the host
 * vanished (the default is two hours), so that another member takes its
 * subnets over; they do nothing on a Unix socket.
 */
const char sweep_store_session_sql[] =
	"SET synchronous_commit = off; SET lock_timeout = '200ms'; "
	"SET enable_nestloop = off; SET enable_bitmapscan = off; "
	"SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
	"SET tcp_keepalives_count = 3";

const char sweep_store_join_sql[] =
	"SELECT ipamd.sweep_join($1, $2, $3)";

const char sweep_store_claim_sql[] =
	"SELECT fresh, round_end_ms, next_in_ms, members, subnets\n"
	"FROM ipamd.sweep_claim($1, $2, $3, $4)";

/*
 * The addresses of the subnets leased to this member for the round;
 * a subnet that stopped allowing pings since the claim is left out.
 */
const char sweep_store_targets_sql[] =
	"SELECT a.vrf, host(a.ip_address), a.active\n"
	"FROM ipamd.sweep_lease l\n"
	"JOIN ipam_state.subnet s ON s.id = l.subnet_id\n"
	"JOIN ipam_state.address a ON a.subnet_id = l.subnet_id\n"
	"WHERE l.member = $1 AND l.expires_at = ipamd.sweep_time($2)\n"
	"    AND s.ping AND NOT s.deleted";

/* The new values of the sweeper's columns, from the row and its result. */
#define SWEEP_NEW_ACTIVE						\
	"r.rtt_us IS NOT NULL OR (a.active AND a.missed_sweeps + 1 < $5)"
#define SWEEP_NEW_MISSED						\
	"CASE WHEN r.rtt_us IS NOT NULL THEN 0 ELSE a.missed_sweeps + 1 END"
#define SWEEP_NEW_CHECKED						\
	"$6::timestamptz + r.checked_us * interval '1 microsecond'"
#define SWEEP_NEW_SEEN							\
	"CASE WHEN r.rtt_us IS NOT NULL THEN $6::timestamptz +\n"	\
	"\t\t(r.checked_us + r.rtt_us) * interval '1 microsecond'\n"	\
	"\t\tELSE a.last_seen_at END"
#define SWEEP_NEW_RTT							\
	"coalesce(r.rtt_us, a.rtt_us)"

/*
 * One UPDATE of the rows of the batch that still exist and whose values
 * change, setting only the sweeper's five columns from their stored
 * values.  The rows are found through the primary key (= ANY), and
 * matched by key, so that a row the apply path updates meanwhile is
 * followed to its newest version, whose derived columns are left as
 * they are.  The result: rows changed, rows that went up, rows that went
 * down (against the state read when the sweep began).
 */
#define SWEEP_STORE_WRITE(lock)						\
	"WITH upd AS (\n"						\
	"\tUPDATE ipam_state.address a\n"				\
	"\tSET active = " SWEEP_NEW_ACTIVE ",\n"			\
	"\t    missed_sweeps = " SWEEP_NEW_MISSED ",\n"			\
	"\t    last_checked_at = " SWEEP_NEW_CHECKED ",\n"		\
	"\t    last_seen_at = " SWEEP_NEW_SEEN ",\n"			\
	"\t    rtt_us = " SWEEP_NEW_RTT "\n"				\
	"\tFROM unnest($2::inet[], $3::bigint[], $4::integer[],\n"	\
	"\t    $7::boolean[]) AS r(ip, checked_us, rtt_us, was_active)\n" \
	"\tWHERE a.vrf = $1 AND a.ip_address = ANY ($2::inet[])\n"	\
	"\t    AND a.ip_address = r.ip\n"				\
	"\t    AND (a.active, a.missed_sweeps, a.last_checked_at,\n"	\
	"\t\ta.last_seen_at, a.rtt_us) IS DISTINCT FROM\n"		\
	"\t\t(" SWEEP_NEW_ACTIVE ",\n"					\
	"\t\t" SWEEP_NEW_MISSED ",\n"					\
	"\t\t" SWEEP_NEW_CHECKED ",\n"					\
	"\t\t" SWEEP_NEW_SEEN ",\n"					\
	"\t\t" SWEEP_NEW_RTT ")\n"					\
	lock								\
	"\tRETURNING a.active AND NOT r.was_active AS up,\n"		\
	"\t    r.was_active AND NOT a.active AS down\n"			\
	")\n"								\
	"SELECT count(*), count(*) FILTER (WHERE up),\n"		\
	"    count(*) FILTER (WHERE down)\n"				\
	"FROM upd"

const char sweep_store_write_sql[] = SWEEP_STORE_WRITE("");

/* The rows it can lock at once, and no others. */
const char sweep_store_write_skip_locked_sql[] = SWEEP_STORE_WRITE(
	"\t    AND a.ctid = ANY (ARRAY(SELECT l.ctid\n"
	"\t\tFROM ipam_state.address l\n"
	"\t\tWHERE l.vrf = $1 AND l.ip_address = ANY ($2::inet[])\n"
	"\t\tFOR UPDATE SKIP LOCKED))\n");

/* Parses an address and says whether it is probed. */
enum sweep_target_verdict
sweep_target_parse(const char *text, struct sweep_addr *addr)
{
	const uint8_t *b = addr->bytes;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	static const uint8_t zero[16];

	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, text, addr->bytes) == 1) {
		addr->family = AF_INET;
		/* 0.0.0.0/8 is "this network", 224/4 multicast. */
		if (b[0] == 0 || (b[0] & 0xf0) == 224 ||
		    (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255))
			return SWEEP_TARGET_UNPROBEABLE;
		return SWEEP_TARGET_OK;
	}
	if (inet_pton(AF_INET6, text, addr->bytes) == 1) {
		addr->family = AF_INET6;
		/* A link-local address needs an interface; rows name none. */
		if (memcmp(b, zero, 16) == 0 || b[0] == 0xff ||
		    (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
		    memcmp(b, mapped, sizeof(mapped)) == 0)
			return SWEEP_TARGET_UNPROBEABLE;
		return SWEEP_TARGET_OK;
	}
	return SWEEP_TARGET_INVALID;
}

/* Empties a buffer. */
void
sweep_text_clear(struct sweep_text *text)
{
	text->len = 0;
	if (text->data != NULL)
		text->data[0] = '\0';
}

/* Appends formatted text. */
void
sweep_text_printf(struct sweep_text *text, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(text->data ? text->data + text->len : NULL,
		    text->size - text->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatalx("sweeper: vsnprintf failed");
		if (text->len + (size_t)n < text->size)
			break;
		text->size = (text->size + (size_t)n + 1) * 2;
		if ((text->data = realloc(text->data, text->size)) == NULL)
			fatal("sweeper: realloc");
	}
	text->len += (size_t)n;
}

/* Frees a buffer. */
void
sweep_text_free(struct sweep_text *text)
{
	free(text->data);
	memset(text, 0, sizeof(*text));
}

/* Starts the array literals of a batch. */
void
sweep_store_arrays_begin(struct sweep_store_arrays *arrays)
{
	struct sweep_text *each[] = { &arrays->addresses, &arrays->checked,
	    &arrays->rtts, &arrays->was_active };
	size_t i;

	for (i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
		sweep_text_clear(each[i]);
		sweep_text_printf(each[i], "{");
	}
	arrays->count = 0;
}

/* Adds one result to each array. */
void
sweep_store_arrays_add(struct sweep_store_arrays *arrays,
    const struct sweep_result *result)
{
	char text[INET6_ADDRSTRLEN];
	const char *comma = arrays->count > 0 ? "," : "";

	if (inet_ntop(result->addr->family, result->addr->bytes, text,
	    sizeof(text)) == NULL)
		fatal("sweeper: inet_ntop");
	sweep_text_printf(&arrays->addresses, "%s%s", comma, text);
	sweep_text_printf(&arrays->checked, "%s%" PRId64, comma,
	    result->checked_us);
	if (result->rtt_us < 0)
		sweep_text_printf(&arrays->rtts, "%sNULL", comma);
	else
		sweep_text_printf(&arrays->rtts, "%s%" PRId64, comma,
		    result->rtt_us);
	sweep_text_printf(&arrays->was_active, "%s%c", comma,
	    result->was_active ? 't' : 'f');
	arrays->count++;
}

/* Closes the array literals. */
void
sweep_store_arrays_end(struct sweep_store_arrays *arrays)
{
	sweep_text_printf(&arrays->addresses, "}");
	sweep_text_printf(&arrays->checked, "}");
	sweep_text_printf(&arrays->rtts, "}");
	sweep_text_printf(&arrays->was_active, "}");
}

/* Frees the arrays' memory. */
void
sweep_store_arrays_free(struct sweep_store_arrays *arrays)
{
	sweep_text_free(&arrays->addresses);
	sweep_text_free(&arrays->checked);
	sweep_text_free(&arrays->rtts);
	sweep_text_free(&arrays->was_active);
	arrays->count = 0;
}

/* Writes a time as a timestamptz literal. */
void
sweep_store_timestamp(int64_t unix_us, char *buf, size_t buflen)
{
	time_t seconds = (time_t)(unix_us / 1000000);
	long micros = (long)(unix_us % 1000000);
	struct tm tm;

	if (micros < 0) {
		micros += 1000000;
		seconds--;
	}
	gmtime_r(&seconds, &tm);
	snprintf(buf, buflen, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, micros);
}
