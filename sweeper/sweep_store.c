/* The ping sweeper's SQL: round claims, targets, results, array literals. */
#include <sys/socket.h>

#include <arpa/inet.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sweeper/sweep_store.h"

/*
 * The sweeper's session: its writes need not wait for the disk (a lost
 * result is measured again by the next sweep); it waits at most 200 ms
 * for a state row another session holds (the apply never writes the
 * sweeper's tables; another member whose sweep overran its round might),
 * then tries again later, so that it can never be part of a deadlock; and
 * its statements, set-based joins of
 * thousands of rows, are planned as such (with a GiST index on the
 * addresses the planner would probe it once per row, 15 times slower).
 * No JIT: a plan that needs a nested loop all the same carries the cost
 * PostgreSQL gives a disabled node (10^10), far past jit_above_cost, and
 * compiling each such statement took 0.1-0.2 s of a sweep's reads, for
 * statements that read a few rows.
 * The session is also what keeps this instance a member of the shared
 * sweep: the server's TCP keepalives end it about 25 s after the host
 * vanished (the default is two hours), so that another member takes its
 * subnets over; they do nothing on a Unix socket.
 */
const char sweep_store_session_sql[] =
	"SET synchronous_commit = off; SET lock_timeout = '200ms'; "
	"SET enable_nestloop = off; SET enable_bitmapscan = off; "
	"SET jit = off; SET tcp_keepalives_idle = 10; "
	"SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

const char sweep_store_join_sql[] =
	"SELECT ipamd.sweep_join($1, $2, $3, $4)";

const char sweep_store_claim_sql[] =
	"SELECT fresh, round_end_ms, next_in_ms, members, subnets, unswept,\n"
	"    clock_back_ms\n"
	"FROM ipamd.sweep_claim($1, $2, $3, $4, $5)";

/*
 * The addresses of the subnets leased to this member for the round, of
 * the families it probes, with their state as public.ipam derives it
 * (ipamd.sweep_targets(), schema/functions/90_sweep.sql, which marks
 * those leases probed); a subnet that does not allow pings is left out.
 */
const char sweep_store_targets_sql[] =
	"SELECT vrf, ip, active, answered, missed_sweeps, rtt_us, followed\n"
	"FROM ipamd.sweep_targets($1, $2, $3)";

/* The news of a sweep and its pass, at once (ipamd.sweep_commit()). */
const char sweep_store_commit_sql[] =
	"SELECT written, subnets, forgotten\n"
	"FROM ipamd.sweep_commit($1, $2, $3, $4, $5, $6, $7, $8)";

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

/*
 * Whether a round trip time is news.  rtt_us tells an operator how far
 * or how loaded a host is (the same LAN, another site, a link in
 * trouble), not the jitter of each echo: a reply takes tens of
 * microseconds to several milliseconds more or less depending on what
 * else the sweep has in flight (a sweep at full rate queues thousands of
 * replies), and rewriting the row for that would write most rows every
 * sweep again.  So the stored figure stays until a reply takes more than
 * twice or less than half as long and the two differ by more than
 * SWEEP_RTT_SLACK_US (10 ms): a host that goes from 0.3 ms to 30 ms is
 * news, one that goes from 40 us to 5 ms is not.
 */
bool
sweep_rtt_moved(int32_t stored_us, int32_t measured_us)
{
	int64_t stored = stored_us, measured = measured_us;

	if (stored < 0)
		return true;
	if (measured - stored <= SWEEP_RTT_SLACK_US &&
	    stored - measured <= SWEEP_RTT_SLACK_US)
		return false;
	return measured > 2 * stored || 2 * measured < stored;
}

/* Decides an address's state after a pass, and whether it is news. */
bool
sweep_store_next(const struct sweep_prior *prior, int32_t rtt_us,
    long long down_after, bool *active, int32_t *missed_sweeps)
{
	if (rtt_us >= 0) {
		*active = true;
		*missed_sweeps = 0;
		return !prior->followed || !prior->answered || !prior->active ||
		    sweep_rtt_moved(prior->rtt_us, rtt_us);
	}
	/* A silent pass: one more missed, inactive once down_after are. */
	*missed_sweeps = prior->missed_sweeps < INT32_MAX ?
	    prior->missed_sweeps + 1 : INT32_MAX;
	*active = prior->active && *missed_sweeps < down_after;
	/*
	 * The first silence after a reply is news (last_seen_at stops
	 * moving); later ones are counted by the passes, until active turns.
	 */
	return !prior->followed || prior->answered || *active != prior->active;
}

/* Starts the array literals of a batch. */
void
sweep_store_arrays_begin(struct sweep_store_arrays *arrays)
{
	struct sweep_text *each[] = { &arrays->vrfs, &arrays->addresses,
	    &arrays->rtts, &arrays->active, &arrays->missed };
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
	const char *c;

	if (inet_ntop(result->addr->family, result->addr->bytes, text,
	    sizeof(text)) == NULL)
		fatal("sweeper: inet_ntop");
	/* A routing domain's name may hold anything: quoted, escaped. */
	sweep_text_printf(&arrays->vrfs, "%s\"", comma);
	for (c = result->vrf; *c != '\0'; c++)
		sweep_text_printf(&arrays->vrfs, *c == '"' || *c == '\\' ?
		    "\\%c" : "%c", *c);
	sweep_text_printf(&arrays->vrfs, "\"");
	sweep_text_printf(&arrays->addresses, "%s%s", comma, text);
	if (result->rtt_us < 0)
		sweep_text_printf(&arrays->rtts, "%sNULL", comma);
	else
		sweep_text_printf(&arrays->rtts, "%s%" PRId64, comma,
		    result->rtt_us);
	sweep_text_printf(&arrays->active, "%s%c", comma,
	    result->active ? 't' : 'f');
	sweep_text_printf(&arrays->missed, "%s%" PRId32, comma,
	    result->missed_sweeps);
	arrays->count++;
}

/* Closes the array literals. */
void
sweep_store_arrays_end(struct sweep_store_arrays *arrays)
{
	sweep_text_printf(&arrays->vrfs, "}");
	sweep_text_printf(&arrays->addresses, "}");
	sweep_text_printf(&arrays->rtts, "}");
	sweep_text_printf(&arrays->active, "}");
	sweep_text_printf(&arrays->missed, "}");
}

/* Frees the arrays' memory. */
void
sweep_store_arrays_free(struct sweep_store_arrays *arrays)
{
	sweep_text_free(&arrays->vrfs);
	sweep_text_free(&arrays->addresses);
	sweep_text_free(&arrays->rtts);
	sweep_text_free(&arrays->active);
	sweep_text_free(&arrays->missed);
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
