/* The ping sweeper: ICMP echo to each address with a row, paced, on a loop. */
#include <sys/random.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pgconn.h"
#include "sweeper/sweep_pace.h"
#include "sweeper/sweep_packet.h"
#include "sweeper/sweep_seqmap.h"
#include "sweeper/sweep_socket.h"
#include "sweeper/sweep_store.h"
#include "sweeper/sweeper.h"

/* Most probes sent in one turn of the loop before it polls again. */
#define SWEEPER_SEND_TURN	512

/* Most datagrams read from one socket in one turn of the loop. */
#define SWEEPER_READ_TURN	4096

/* A commit that keeps meeting locked rows is tried this often. */
#define SWEEPER_WRITE_ATTEMPTS	4
#define SWEEPER_WRITE_RETRY_MS	250

/* Dropped replies are logged one by one (debug) up to this many a sweep. */
#define SWEEPER_DROPS_LOGGED	10

/*
 * A sweep is claimed this long after its round starts by the database's
 * clock.  The wait until then is measured from the claim's own answer, so
 * the timer can only be late; the margin covers the rounding of a
 * millisecond.
 */
#define SWEEPER_ROUND_MARGIN_NS	5000000LL

/* A claim that failed (a lock timeout, say) is tried again this late. */
#define SWEEPER_CLAIM_RETRY_MS	1000

/* Where the sweep stands. */
enum sweeper_phase {
	SWEEPER_IDLE,		/* between sweeps */
	SWEEPER_CLAIMING,	/* claiming this round's subnets */
	SWEEPER_LOADING,	/* reading the targets */
	SWEEPER_PROBING,	/* sending probes, reading replies */
	SWEEPER_WRITING,	/* every probe settled: news and pass */
};

/* Where one address stands in the sweep. */
enum sweeper_target_state {
	SWEEPER_TARGET_WAITING,		/* not sent yet, or sent again next */
	SWEEPER_TARGET_IN_FLIGHT,
	SWEEPER_TARGET_ANSWERED,
	SWEEPER_TARGET_SILENT,		/* every probe timed out */
};

/* One address of the sweep. */
struct sweeper_target {
	struct sweep_addr	addr;
	uint8_t			state;		/* enum sweeper_target_state */
	uint8_t			attempts;	/* probes handed to the kernel */
	uint16_t		vrf;		/* index into sweeper.vrfs */
	int32_t			rtt_us;		/* -1 until a valid reply */
	/* Its state when the sweep began, as public.ipam derives it. */
	uint8_t			followed;	/* a state row follows it */
	uint8_t			was_active;
	uint8_t			answered;	/* the last pass */
	int32_t			missed_sweeps;
	int32_t			stored_rtt_us;	/* -1: none */
};

/* One batch of probes of one family, as it is built and sent. */
struct sweeper_batch {
	struct sweep_socket	*sock;
	struct sweep_send	 msgs[SWEEP_SOCKET_BATCH];
	uint8_t			 packets[SWEEP_SOCKET_BATCH][SWEEP_ECHO_LEN];
	uint32_t		 targets[SWEEP_SOCKET_BATCH];
	uint16_t		 sequences[SWEEP_SOCKET_BATCH];
	unsigned		 count;
};

/* The sweeper: its sockets, its connection, the sweep in flight, figures. */
struct sweeper {
	struct event_base	*base;
	struct sweeper_settings	 settings;	/* vrfs is owned */
	bool			 started;
	bool			 stopping;

	/* The sockets, the secret and the randomness of this process. */
	struct sweep_socket	 sock4;
	struct sweep_socket	 sock6;
	struct event		*read4;
	struct event		*read6;
	uint8_t			 key[SWEEP_KEY_LEN];
	uint16_t		 identifier;	/* of raw sockets */
	uint64_t		 random;
	struct sweep_seqmap	*seqmap;
	struct sweep_datagram	 datagrams[SWEEP_SOCKET_BATCH];
	struct sweeper_batch	 batch4;
	struct sweeper_batch	 batch6;

	/* Its own PostgreSQL connection, so it never waits behind applies. */
	struct pgconn		*pg;
	bool			 session_ready;	/* connected, a member */

	/*
	 * The sweep shared with other instances (schema/functions/
	 * 90_sweep.sql): this session's member id, and the rounds of
	 * interval_ms on the database's clock.
	 */
	char			 instance[128];	/* host/pid, for operators */
	int			 member;	/* 0: not a member yet */
	int64_t			 swept_until_ms; /* end of the last round swept */
	int64_t			 swept_from_ms;	/* ... and its start */
	long long		 claimed_interval_ms; /* of the claim in flight */
	int64_t			 round_end_ms;	/* the round being swept */
	int64_t			 next_round_ns;	/* 0: unknown, claim at once */

	struct event		*sweep_timer;	/* the next sweep */
	struct event		*pace_timer;	/* sends and deadlines */
	struct event		*write_timer;	/* a write batch, or the read of
						   the targets, tried again */
	bool			 sweep_due;	/* start as soon as PostgreSQL is */

	/* The sweep in flight. */
	enum sweeper_phase	 phase;
	uint64_t		 number;
	int64_t			 started_ns;
	int64_t			 started_unix_us;
	int64_t			 probe_started_ns;
	int64_t			 probe_ended_ns;
	struct sweeper_target	*targets;
	size_t			 count;
	size_t			 count_v6;
	size_t			 skipped;
	char			**vrfs;
	size_t			 vrf_count;
	uint32_t		*order;		/* targets in a random order */
	size_t			 next_fresh;
	uint32_t		*resend;	/* a ring of targets to send first */
	size_t			 resend_head;
	size_t			 resend_len;
	size_t			 unsettled;	/* neither answered nor silent */
	struct sweep_bucket	 bucket;
	struct sweeper_counts	 counts;
	unsigned		 drops_logged;

	/*
	 * Writing: settled targets, grouped by routing domain; the news
	 * (those whose state changed) is gathered as they settle, and written
	 * with the pass of the subnets probed in one statement once every
	 * probe is settled (schema/functions/90_sweep.sql), so that an
	 * interrupted sweep leaves nothing of itself.
	 */
	uint32_t		*settled;	/* vrf v's from vrf_first[v] on */
	size_t			*vrf_first;
	size_t			*vrf_settled;	/* how many of each are settled */
	size_t			*vrf_examined;	/* how many of each are decided */
	bool			 writing;	/* the commit is in flight or waits */
	unsigned		 write_attempts;
	unsigned		 load_attempts;	/* of the targets, this sweep */
	uint64_t		 batch_up;	/* of the news gathered */
	uint64_t		 batch_down;
	uint64_t		 rows_changed;
	uint64_t		 went_up;
	uint64_t		 went_down;
	struct sweep_store_arrays arrays;

	struct sweeper_stats	 stats;
};

static void	sweeper_turn(struct sweeper *sweeper);
static bool	sweeper_has_work(const struct sweeper *sweeper);
static void	sweeper_write_ready(struct sweeper *sweeper);
static void	sweeper_write_batch(struct sweeper *sweeper);
static void	sweeper_begin(struct sweeper *sweeper);
static void	sweeper_load(struct sweeper *sweeper);
static bool	sweeper_write_conflict(const char *sqlstate);

/* The monotonic clock in nanoseconds. */
static int64_t
sweeper_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The wall clock in microseconds since 1970. */
static int64_t
sweeper_unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/*
 * When a datagram arrived, on the monotonic clock: read now_ns with the
 * wall clock at wall_ns, its kernel timestamp (a wall clock time) says
 * how long ago.  A loop busy elsewhere reads replies late; they came
 * when they came.  Without a timestamp, or with one from the future (the
 * wall clock stepped back meanwhile), now.
 */
static int64_t
sweeper_arrival_ns(const struct sweep_datagram *dg, int64_t now_ns,
    int64_t wall_ns)
{
	int64_t age;

	if (dg->arrived_ns <= 0 || dg->arrived_ns >= wall_ns)
		return now_ns;
	age = wall_ns - dg->arrived_ns;
	return age < now_ns ? now_ns - age : now_ns;
}

/* Arms a timer to fire after ns nanoseconds (0: at the next turn). */
static void
sweeper_arm(struct event *timer, int64_t ns)
{
	struct timeval tv;

	if (ns < 0)
		ns = 0;
	tv.tv_sec = (time_t)(ns / 1000000000LL);
	tv.tv_usec = (suseconds_t)((ns % 1000000000LL) / 1000);
	evtimer_add(timer, &tv);
}

/* Copies a string; aborts when memory runs out. */
static char *
sweeper_strdup(const char *text)
{
	char *copy;

	if ((copy = strdup(text != NULL ? text : "")) == NULL)
		fatal("sweeper: strdup");
	return copy;
}

/* Allocates zeroed memory; aborts when memory runs out. */
static void *
sweeper_calloc(size_t count, size_t size)
{
	void *p;

	if ((p = calloc(count == 0 ? 1 : count, size)) == NULL)
		fatal("sweeper: calloc");
	return p;
}

/* Names this process for the members' table: host name and process id. */
static void
sweeper_name_instance(char *buf, size_t buflen)
{
	char host[64];

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, buflen, "%s/%ld", host, (long)getpid());
}

/* Takes the sweep settings (not the connection's); vrfs is copied. */
static void
sweeper_take_settings(struct sweeper *sweeper,
    const struct sweeper_settings *settings)
{
	free((char *)sweeper->settings.vrfs);
	sweeper->settings = *settings;
	sweeper->settings.vrfs = sweeper_strdup(settings->vrfs);
	sweeper->settings.conninfo = NULL;
	sweeper->settings.password = NULL;
}

/* Adds one sweep's counts to the totals. */
static void
sweeper_add_counts(struct sweeper_counts *total,
    const struct sweeper_counts *one)
{
	total->probes += one->probes;
	total->retries += one->retries;
	total->replies += one->replies;
	total->timeouts += one->timeouts;
	total->send_errors += one->send_errors;
	total->malformed += one->malformed;
	total->foreign += one->foreign;
	total->unknown_sequence += one->unknown_sequence;
	total->wrong_source += one->wrong_source;
	total->bad_cookie += one->bad_cookie;
	total->duplicates += one->duplicates;
	total->late += one->late;
	total->kernel_drops += one->kernel_drops;
}

/* Frees what one sweep holds and goes back to idle. */
static void
sweeper_clear(struct sweeper *sweeper)
{
	size_t i;

	evtimer_del(sweeper->pace_timer);
	evtimer_del(sweeper->write_timer);
	for (i = 0; i < sweeper->vrf_count; i++)
		free(sweeper->vrfs[i]);
	free(sweeper->vrfs);
	free(sweeper->targets);
	free(sweeper->order);
	free(sweeper->resend);
	free(sweeper->settled);
	free(sweeper->vrf_first);
	free(sweeper->vrf_settled);
	free(sweeper->vrf_examined);
	sweeper->vrfs = NULL;
	sweeper->targets = NULL;
	sweeper->order = NULL;
	sweeper->resend = NULL;
	sweeper->settled = NULL;
	sweeper->vrf_first = sweeper->vrf_settled = sweeper->vrf_examined = NULL;
	sweeper->writing = false;
	sweeper->write_attempts = 0;
	sweeper->load_attempts = 0;
	sweeper->arrays.count = 0;
	sweeper->batch_up = sweeper->batch_down = 0;
	sweeper->vrf_count = 0;
	sweeper->count = 0;
	sweeper->phase = SWEEPER_IDLE;
}

/* Arms the timer of the next sweep: the start of the next round. */
static void
sweeper_schedule(struct sweeper *sweeper)
{
	int64_t due = sweeper->next_round_ns == 0 ? 0 :
	    sweeper->next_round_ns + SWEEPER_ROUND_MARGIN_NS;

	if (!sweeper->settings.enabled || sweeper->stopping ||
	    !sweeper->started)
		return;
	evtimer_del(sweeper->sweep_timer);
	sweeper_arm(sweeper->sweep_timer, due - sweeper_now_ns());
}

/* Gives up the sweep in flight (its results are not written). */
static void
sweeper_abandon(struct sweeper *sweeper, const char *why)
{
	if (sweeper->phase == SWEEPER_IDLE)
		return;
	/* Before its round is claimed, no sweep has begun. */
	if (sweeper->phase == SWEEPER_CLAIMING) {
		sweeper_clear(sweeper);
		return;
	}
	/* Stopping or turning off was asked for; anything else is a warning. */
	log_write(sweeper->stopping || !sweeper->settings.enabled ?
	    LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
	    "sweeper: sweep %llu abandoned: %s",
	    (unsigned long long)sweeper->number, why);
	sweeper->stats.sweeps_abandoned++;
	sweeper_add_counts(&sweeper->stats.total, &sweeper->counts);
	sweeper_clear(sweeper);
}

/* PostgreSQL is gone: give the sweep up; the next starts when it is back. */
static void
sweeper_lost(struct sweeper *sweeper, const char *why)
{
	sweeper_abandon(sweeper, why);
	sweeper->sweep_due = true;
}

/* Logs one dropped reply (only the first few of a sweep). */
static void
sweeper_log_drop(struct sweeper *sweeper, const struct sweep_datagram *dg,
    const char *why, unsigned sequence)
{
	char from[INET6_ADDRSTRLEN] = "?";

	if (sweeper->drops_logged >= SWEEPER_DROPS_LOGGED ||
	    log_get_level() < LOG_LEVEL_DEBUG)
		return;
	sweeper->drops_logged++;
	if (dg->from.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&dg->from)->
		    sin_addr, from, sizeof(from));
	else if (dg->from.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&dg->from)->
		    sin6_addr, from, sizeof(from));
	log_debug("sweeper: dropped a reply from %s (sequence %u): %s", from,
	    sequence, why);
}

/* Tells whether a datagram came from the address. */
static bool
sweeper_same_source(const struct sweep_datagram *dg,
    const struct sweep_addr *addr)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&dg->from;
	const struct sockaddr_in6 *sin6 =
	    (const struct sockaddr_in6 *)&dg->from;

	if (dg->from.ss_family != addr->family)
		return false;
	if (addr->family == AF_INET)
		return memcmp(&sin->sin_addr, addr->bytes, 4) == 0;
	return memcmp(&sin6->sin6_addr, addr->bytes, 16) == 0;
}

/* A target's result is final: it joins the results to write. */
static void
sweeper_settle(struct sweeper *sweeper, struct sweeper_target *target,
    enum sweeper_target_state state)
{
	uint16_t vrf = target->vrf;
	size_t at = sweeper->vrf_first[vrf] + sweeper->vrf_settled[vrf]++;

	target->state = state;
	sweeper->settled[at] = (uint32_t)(target - sweeper->targets);
	sweeper->unsettled--;
}

/*
 * Checks one datagram against the probes of the sweep.  It counts only
 * if each check passes, in this order: an echo reply, our identifier, a
 * sequence number of this sweep, from the probed address, carrying that
 * probe's cookie, and the probe still in flight, its deadline not past.
 */
static void
sweeper_reply(struct sweeper *sweeper, const struct sweep_socket *sock,
    const struct sweep_datagram *dg, int64_t now_ns)
{
	struct sweeper_counts *counts = &sweeper->counts;
	const struct sweep_seq *slot;
	struct sweeper_target *target;
	struct sweep_reply reply;
	uint8_t cookie[SWEEP_COOKIE_LEN];
	bool ip_header;

	/* Between sweeps there is nothing to match: the reply is dropped. */
	if (sweeper->phase != SWEEPER_PROBING &&
	    sweeper->phase != SWEEPER_WRITING)
		return;
	ip_header = sock->kind == SWEEP_SOCKET_RAW && sock->family == AF_INET;
	switch (dg->truncated ? SWEEP_PARSE_MALFORMED :
	    sweep_echo_parse(dg->data, dg->len, sock->family, ip_header,
	    &reply)) {
	case SWEEP_PARSE_REPLY:
		break;
	case SWEEP_PARSE_OTHER:
		counts->foreign++;
		return;
	default:
		counts->malformed++;
		sweeper_log_drop(sweeper, dg, "malformed", 0);
		return;
	}
	/* Raw sockets filter others' identifiers out already: checked again. */
	if (reply.identifier != sock->identifier) {
		counts->foreign++;
		return;
	}
	slot = sweep_seqmap_get(sweeper->seqmap, reply.sequence);
	if (slot->state == SWEEP_SEQ_FREE) {
		counts->unknown_sequence++;
		sweeper_log_drop(sweeper, dg, "unknown sequence",
		    reply.sequence);
		return;
	}
	target = &sweeper->targets[slot->target];
	if (!sweeper_same_source(dg, &target->addr)) {
		counts->wrong_source++;
		sweeper_log_drop(sweeper, dg, "not from the probed address",
		    reply.sequence);
		return;
	}
	sweep_cookie(sweeper->key, &target->addr, reply.sequence,
	    slot->sent_ns, cookie);
	if (reply.payload_len != SWEEP_COOKIE_LEN ||
	    !sweep_cookie_equal(reply.payload, cookie)) {
		counts->bad_cookie++;
		sweeper_log_drop(sweeper, dg, "bad cookie", reply.sequence);
		return;
	}
	if (slot->state == SWEEP_SEQ_ANSWERED) {
		counts->duplicates++;
		sweeper_log_drop(sweeper, dg, "duplicate", reply.sequence);
		return;
	}
	/*
	 * Read after its deadline is late, even when the loop has not yet
	 * expired the probe (it will, and send it again or give up).
	 */
	if (slot->state == SWEEP_SEQ_EXPIRED || now_ns > slot->deadline_ns) {
		counts->late++;
		sweeper_log_drop(sweeper, dg, "late", reply.sequence);
		return;
	}
	/* A wall clock stepped forward between arrival and read. */
	if (now_ns < slot->sent_ns)
		now_ns = slot->sent_ns;
	/* The column is an integer: 35 minutes is more than any wait. */
	target->rtt_us = (int32_t)((now_ns - slot->sent_ns) / 1000 > INT32_MAX ?
	    INT32_MAX : (now_ns - slot->sent_ns) / 1000);
	sweep_seqmap_answer(sweeper->seqmap, reply.sequence);
	sweeper_settle(sweeper, target, SWEEPER_TARGET_ANSWERED);
	counts->replies++;
}

/*
 * Reads what a socket holds, up to a turn's worth; true when it stopped
 * there with more perhaps waiting.
 */
static bool
sweeper_read(struct sweeper *sweeper, struct sweep_socket *sock)
{
	uint32_t drops = sock->drops;
	int64_t now_ns, wall_ns;
	size_t total = 0;
	int got = 0, i;

	while (total < SWEEPER_READ_TURN) {
		got = sweep_socket_receive(sock, sweeper->datagrams,
		    SWEEP_SOCKET_BATCH);
		if (got == -1) {
			log_warn("sweeper: reading the %s socket",
			    sock->family == AF_INET ? "ICMP" : "ICMPv6");
			break;
		}
		if (got == 0)
			break;
		now_ns = sweeper_now_ns();
		wall_ns = sweeper_unix_us() * 1000;
		for (i = 0; i < got; i++)
			sweeper_reply(sweeper, sock, &sweeper->datagrams[i],
			    sweeper_arrival_ns(&sweeper->datagrams[i], now_ns,
			    wall_ns));
		total += (size_t)got;
		if (got < SWEEP_SOCKET_BATCH)
			break;
	}
	/* Replies the kernel had no room for: their addresses look silent. */
	sweeper->counts.kernel_drops += (uint32_t)(sock->drops - drops);
	return got == SWEEP_SOCKET_BATCH;
}

/* The socket has datagrams: read them, and see whether the sweep is over. */
static void
sweeper_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweeper *sweeper = arg;

	sweeper_read(sweeper, fd == sweeper->sock4.fd ? &sweeper->sock4 :
	    &sweeper->sock6);
	if (sweeper->phase != SWEEPER_PROBING)
		return;
	if (sweeper->unsettled == 0) {
		evtimer_del(sweeper->pace_timer);
		sweeper_turn(sweeper);
	} else if (!sweeper_has_work(sweeper))
		sweeper_write_ready(sweeper);	/* only deadlines are left */
}

/* Reads both sockets; true when either may hold more. */
static bool
sweeper_read_all(struct sweeper *sweeper)
{
	bool more = false;

	if (sweeper->sock4.kind != SWEEP_SOCKET_NONE)
		more = sweeper_read(sweeper, &sweeper->sock4);
	if (sweeper->sock6.kind != SWEEP_SOCKET_NONE)
		more = sweeper_read(sweeper, &sweeper->sock6) || more;
	return more;
}

/* Tells whether some target waits to be sent. */
static bool
sweeper_has_work(const struct sweeper *sweeper)
{
	return sweeper->resend_len > 0 || sweeper->next_fresh < sweeper->count;
}

/* Queues a target to be sent before the fresh ones. */
static void
sweeper_push_resend(struct sweeper *sweeper, uint32_t index)
{
	sweeper->resend[(sweeper->resend_head + sweeper->resend_len) %
	    sweeper->count] = index;
	sweeper->resend_len++;
	sweeper->targets[index].state = SWEEPER_TARGET_WAITING;
}

/* The next target to send, without taking it. */
static uint32_t
sweeper_peek(const struct sweeper *sweeper)
{
	if (sweeper->resend_len > 0)
		return sweeper->resend[sweeper->resend_head];
	return sweeper->order[sweeper->next_fresh];
}

/* Takes the target sweeper_peek() named. */
static void
sweeper_pop(struct sweeper *sweeper)
{
	if (sweeper->resend_len > 0) {
		sweeper->resend_head = (sweeper->resend_head + 1) %
		    sweeper->count;
		sweeper->resend_len--;
	} else
		sweeper->next_fresh++;
}

/* Probes whose deadline has passed: sent again, or the address is silent. */
static void
sweeper_expire(struct sweeper *sweeper, int64_t now_ns)
{
	struct sweeper_target *target;
	uint16_t sequence;

	while (sweep_seqmap_expire(sweeper->seqmap, now_ns, &sequence)) {
		target = &sweeper->targets[
		    sweep_seqmap_get(sweeper->seqmap, sequence)->target];
		if (target->state != SWEEPER_TARGET_IN_FLIGHT)
			continue;
		if (target->attempts <= sweeper->settings.retries)
			sweeper_push_resend(sweeper,
			    (uint32_t)(target - sweeper->targets));
		else {
			sweeper_settle(sweeper, target, SWEEPER_TARGET_SILENT);
			sweeper->counts.timeouts++;
		}
	}
}

/* Adds a probe of a target to a batch: sequence number, cookie, packet. */
static void
sweeper_batch_add(struct sweeper *sweeper, struct sweeper_batch *batch,
    uint32_t index, uint16_t sequence, int64_t now_ns)
{
	struct sweeper_target *target = &sweeper->targets[index];
	struct sweep_send *msg = &batch->msgs[batch->count];
	uint8_t cookie[SWEEP_COOKIE_LEN];

	sweep_cookie(sweeper->key, &target->addr, sequence, now_ns, cookie);
	sweep_echo_build(batch->packets[batch->count], target->addr.family,
	    batch->sock->identifier, sequence, cookie);
	memset(&msg->to, 0, sizeof(msg->to));
	if (target->addr.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&msg->to;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, target->addr.bytes, 4);
		msg->to_len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&msg->to;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, target->addr.bytes, 16);
		msg->to_len = sizeof(*sin6);
	}
	msg->data = batch->packets[batch->count];
	msg->len = SWEEP_ECHO_LEN;
	batch->targets[batch->count] = index;
	batch->sequences[batch->count] = sequence;
	batch->count++;
}

/*
 * Sends a built batch.  A probe the kernel refused (no route, say) waits
 * for its deadline like one that got no answer; one the socket had no
 * room for gives its sequence number back and is sent again first.
 * Returns how many probes were handed over; sets *blocked when the
 * socket was full.
 */
static unsigned
sweeper_batch_send(struct sweeper *sweeper, struct sweeper_batch *batch,
    int64_t now_ns, bool *blocked)
{
	struct sweeper_target *target;
	unsigned handled = 0, i;
	bool full = false;

	if (batch->count > 0)
		handled = sweep_socket_send(batch->sock, batch->msgs,
		    batch->count, &full);
	for (i = 0; i < batch->count; i++) {
		target = &sweeper->targets[batch->targets[i]];
		if (i >= handled) {
			sweep_seqmap_release(sweeper->seqmap,
			    batch->sequences[i]);
			sweeper_push_resend(sweeper, batch->targets[i]);
			continue;
		}
		target->state = SWEEPER_TARGET_IN_FLIGHT;
		if (target->attempts++ > 0)
			sweeper->counts.retries++;
		if (batch->msgs[i].error == 0) {
			sweeper->counts.probes++;
			continue;
		}
		sweeper->counts.send_errors++;
		if (sweeper->counts.send_errors == 1) {
			char text[INET6_ADDRSTRLEN];

			inet_ntop(target->addr.family, target->addr.bytes, text,
			    sizeof(text));
			log_warnx("sweeper: sending to %s: %s (counted as "
			    "unanswered; further errors of this sweep are only "
			    "counted)", text, strerror(batch->msgs[i].error));
		}
	}
	if (full)
		*blocked = true;
	return handled;
}

/*
 * Sends up to max probes, the targets to send again first, one batch per
 * family.  Returns how many were handed to the kernel.
 */
static unsigned
sweeper_send(struct sweeper *sweeper, unsigned max, bool *blocked)
{
	struct sweeper_batch *batch4 = &sweeper->batch4;
	struct sweeper_batch *batch6 = &sweeper->batch6;
	struct sweeper_batch *batch;
	struct sweeper_target *target;
	int64_t now_ns = sweeper_now_ns(), deadline_ns;
	uint32_t index;
	uint16_t sequence;

	batch4->count = batch6->count = 0;
	batch4->sock = &sweeper->sock4;
	batch6->sock = &sweeper->sock6;
	while (batch4->count + batch6->count < max &&
	    sweeper_has_work(sweeper)) {
		index = sweeper_peek(sweeper);
		target = &sweeper->targets[index];
		batch = target->addr.family == AF_INET ? batch4 : batch6;
		if (batch->count == SWEEP_SOCKET_BATCH)
			break;
		deadline_ns = now_ns + sweep_probe_timeout_ns(
		    sweeper->settings.timeout_ms, target->attempts);
		/* 65,536 probes in flight: wait for answers or deadlines. */
		if (sweep_seqmap_take(sweeper->seqmap, index, now_ns,
		    deadline_ns, &sequence) == -1)
			break;
		sweeper_pop(sweeper);
		sweeper_batch_add(sweeper, batch, index, sequence, now_ns);
	}
	return sweeper_batch_send(sweeper, batch4, now_ns, blocked) +
	    sweeper_batch_send(sweeper, batch6, now_ns, blocked);
}

/* Formats seconds since a monotonic time. */
static double
sweeper_seconds(int64_t from_ns, int64_t to_ns)
{
	return (double)(to_ns - from_ns) / 1e9;
}

/* The sweep is over: figures into the stats and the log, next one armed. */
static void
sweeper_finish(struct sweeper *sweeper)
{
	struct sweeper_stats *stats = &sweeper->stats;
	struct sweeper_counts *c = &sweeper->counts;
	int64_t now_ns = sweeper_now_ns();

	stats->sweeps++;
	stats->targets = sweeper->count;
	stats->targets_v6 = sweeper->count_v6;
	stats->skipped = sweeper->skipped;
	/* A sweep without targets sends nothing and writes nothing. */
	stats->read_seconds = sweeper_seconds(sweeper->started_ns,
	    sweeper->probe_started_ns == 0 ? now_ns :
	    sweeper->probe_started_ns);
	stats->icmp_seconds = sweeper->probe_started_ns == 0 ? 0.0 :
	    sweeper_seconds(sweeper->probe_started_ns, sweeper->probe_ended_ns);
	stats->write_seconds = sweeper->probe_started_ns == 0 ? 0.0 :
	    sweeper_seconds(sweeper->probe_ended_ns, now_ns);
	stats->duration_seconds = sweeper_seconds(sweeper->started_ns, now_ns);
	stats->rows_changed = sweeper->rows_changed;
	stats->went_up = sweeper->went_up;
	stats->went_down = sweeper->went_down;
	stats->last_end_unix_ms = sweeper_unix_us() / 1000;
	stats->last = *c;
	sweeper_add_counts(&stats->total, c);
	log_info("sweeper: sweep %llu: %zu targets (%zu IPv6, %zu skipped), "
	    "%llu replies, %llu timeouts, %llu probes (%llu retries), "
	    "read %.3f s, ICMP %.3f s, write %.3f s, total %.3f s, "
	    "%llu rows changed (%llu up, %llu "
	    "down); dropped %llu foreign, %llu unknown sequence, %llu wrong "
	    "source, %llu bad cookie, %llu duplicate, %llu late, %llu "
	    "malformed; %llu send errors",
	    (unsigned long long)sweeper->number, stats->targets,
	    stats->targets_v6, stats->skipped,
	    (unsigned long long)c->replies, (unsigned long long)c->timeouts,
	    (unsigned long long)c->probes, (unsigned long long)c->retries,
	    stats->read_seconds, stats->icmp_seconds, stats->write_seconds,
	    stats->duration_seconds,
	    (unsigned long long)stats->rows_changed,
	    (unsigned long long)stats->went_up,
	    (unsigned long long)stats->went_down,
	    (unsigned long long)c->foreign,
	    (unsigned long long)c->unknown_sequence,
	    (unsigned long long)c->wrong_source,
	    (unsigned long long)c->bad_cookie,
	    (unsigned long long)c->duplicates, (unsigned long long)c->late,
	    (unsigned long long)c->malformed,
	    (unsigned long long)c->send_errors);
	if (c->kernel_drops > 0)
		log_warnx("sweeper: sweep %llu: the kernel dropped %llu "
		    "replies, its ICMP socket's receive buffer full (%d "
		    "bytes): their addresses were counted silent; raise "
		    "[sweeper] receive_buffer or lower rate",
		    (unsigned long long)sweeper->number,
		    (unsigned long long)c->kernel_drops, sweeper->sock4.rcvbuf);
	/* Its share of the rounds it overran is not probed by anyone. */
	if (sweeper->next_round_ns != 0 && now_ns > sweeper->next_round_ns)
		log_warnx("sweeper: sweep %llu ended %.3f s after its round: "
		    "the next starts late (a sweep takes longer than "
		    "interval_ms)", (unsigned long long)sweeper->number,
		    sweeper_seconds(sweeper->next_round_ns, now_ns));
	sweeper_clear(sweeper);
	sweeper_schedule(sweeper);
}

/* The last probe is settled: the last results go to PostgreSQL. */
static void
sweeper_probing_done(struct sweeper *sweeper)
{
	sweeper->probe_ended_ns = sweeper_now_ns();
	evtimer_del(sweeper->pace_timer);
	sweeper->phase = SWEEPER_WRITING;
	sweeper_write_ready(sweeper);
}

/* Arms the pace timer: the next token, or the next deadline if sooner. */
static void
sweeper_arm_pace(struct sweeper *sweeper, bool blocked, int64_t now_ns)
{
	int64_t wait_ns = -1, deadline_ns;

	if (sweeper_has_work(sweeper) &&
	    sweeper->seqmap->in_flight < SWEEP_SEQ_COUNT) {
		if (blocked)	/* the socket's buffer is full */
			wait_ns = 1000000;
		else {
			wait_ns = sweep_bucket_wait_ns(&sweeper->bucket);
			if (wait_ns > 0)
				wait_ns = sweep_jitter_ns(wait_ns,
				    sweep_random(&sweeper->random));
		}
	}
	if (sweep_seqmap_next_deadline(sweeper->seqmap, &deadline_ns) &&
	    (wait_ns < 0 || deadline_ns - now_ns < wait_ns))
		wait_ns = deadline_ns - now_ns;
	sweeper_arm(sweeper->pace_timer, wait_ns);
}

/*
 * One turn of probing: read the replies waiting (they may have come in
 * time while the loop was busy elsewhere), expire what is due, send what
 * the bucket allows (reading replies after each batch, so that they never
 * pile up in the socket), then wait for the next token or deadline.
 */
static void
sweeper_turn(struct sweeper *sweeper)
{
	int64_t now_ns = sweeper_now_ns();
	uint64_t allowed;
	unsigned sent = 0, handed, reads;
	bool blocked = false;

	/*
	 * Everything that waits, past the turn's bound: whatever is left
	 * unread would be expired before it is judged.  No probe goes out
	 * meanwhile, so the replies are no more than the probes in flight
	 * (SWEEP_SEQ_COUNT at most); a flood of forged ones stops there.
	 */
	for (reads = 0; reads < SWEEP_SEQ_COUNT / SWEEPER_READ_TURN &&
	    sweeper_read_all(sweeper); reads++)
		continue;
	sweeper_expire(sweeper, now_ns);
	sweep_bucket_refill(&sweeper->bucket, now_ns);
	while (sent < SWEEPER_SEND_TURN && !blocked &&
	    sweeper_has_work(sweeper)) {
		allowed = sweep_bucket_available(&sweeper->bucket);
		if (allowed == 0)
			break;
		if (allowed > SWEEPER_SEND_TURN - sent)
			allowed = SWEEPER_SEND_TURN - sent;
		if (allowed > SWEEP_SOCKET_BATCH)
			allowed = SWEEP_SOCKET_BATCH;
		handed = sweeper_send(sweeper, (unsigned)allowed, &blocked);
		if (handed == 0)
			break;
		sweep_bucket_take(&sweeper->bucket, handed);
		sent += handed;
		sweeper_read_all(sweeper);
		now_ns = sweeper_now_ns();
		sweep_bucket_refill(&sweeper->bucket, now_ns);
	}
	if (sweeper->unsettled == 0) {
		sweeper_probing_done(sweeper);
		return;
	}
	/* A whole turn's worth sent: the loop is busy, PostgreSQL waits. */
	if (sent < SWEEPER_SEND_TURN)
		sweeper_write_ready(sweeper);
	sweeper_arm_pace(sweeper, blocked, now_ns);
}

/* The pace timer: a probing turn. */
static void
sweeper_pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweeper *sweeper = arg;

	if (sweeper->phase == SWEEPER_PROBING)
		sweeper_turn(sweeper);
}

/* The write timer: the commit that met locked rows, tried again. */
static void
sweeper_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweeper *sweeper = arg;

	if (sweeper->phase == SWEEPER_WRITING && sweeper->writing)
		sweeper_write_batch(sweeper);
	else if (sweeper->phase == SWEEPER_LOADING)
		sweeper_load(sweeper);
}

/*
 * The address families this instance has a socket for, as a PostgreSQL
 * array: IPv4 always (the sweeper does not start without it), IPv6 when
 * the kernel has it.
 */
static const char *
sweeper_families(const struct sweeper *sweeper)
{
	return sweeper->sock6.kind == SWEEP_SOCKET_NONE ? "{4}" : "{4,6}";
}

/* Finds (or adds) a routing domain's index. */
static uint16_t
sweeper_vrf_index(struct sweeper *sweeper, const char *name)
{
	size_t i;

	for (i = 0; i < sweeper->vrf_count; i++)
		if (strcmp(sweeper->vrfs[i], name) == 0)
			return (uint16_t)i;
	if (sweeper->vrf_count == UINT16_MAX)
		fatalx("sweeper: more than %d routing domains", UINT16_MAX);
	sweeper->vrfs = realloc(sweeper->vrfs,
	    (sweeper->vrf_count + 1) * sizeof(*sweeper->vrfs));
	if (sweeper->vrfs == NULL)
		fatal("sweeper: realloc");
	sweeper->vrfs[sweeper->vrf_count] = sweeper_strdup(name);
	return (uint16_t)sweeper->vrf_count++;
}

/* Turns the rows read into targets; returns how many. */
static size_t
sweeper_parse_targets(struct sweeper *sweeper, PGresult *result)
{
	struct sweeper_target *target;
	enum sweep_target_verdict verdict;
	const char *text;
	int rows = PQntuples(result), row;
	size_t n = 0;

	sweeper->targets = sweeper_calloc((size_t)rows,
	    sizeof(*sweeper->targets));
	for (row = 0; row < rows; row++) {
		target = &sweeper->targets[n];
		text = PQgetvalue(result, row, 1);
		verdict = sweep_target_parse(text, &target->addr);
		if (verdict != SWEEP_TARGET_OK ||
		    (target->addr.family == AF_INET6 &&
		    sweeper->sock6.kind == SWEEP_SOCKET_NONE)) {
			log_debug("sweeper: %s is not probed", text);
			sweeper->skipped++;
			continue;
		}
		target->vrf = sweeper_vrf_index(sweeper,
		    PQgetvalue(result, row, 0));
		target->was_active = PQgetvalue(result, row, 2)[0] == 't';
		target->answered = PQgetvalue(result, row, 3)[0] == 't';
		target->missed_sweeps = atoi(PQgetvalue(result, row, 4));
		target->stored_rtt_us = PQgetisnull(result, row, 5) ? -1 :
		    atoi(PQgetvalue(result, row, 5));
		target->followed = PQgetvalue(result, row, 6)[0] == 't';
		target->rtt_us = -1;
		if (target->addr.family == AF_INET6)
			sweeper->count_v6++;
		n++;
	}
	return n;
}

/* The targets are read: probing starts. */
static void
sweeper_loaded(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct sweeper *sweeper = arg;
	const char *sqlstate;
	char why[512];
	size_t i, j;
	uint32_t held;

	if (sweeper->phase != SWEEPER_LOADING)
		return;
	if (result == NULL) {
		sweeper_lost(sweeper, error);
		return;
	}
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(pg, result, why, sizeof(why));
		/*
		 * Leases another member's claim holds (their views of the
		 * members differ for a moment): read again, as a write is.
		 * The round is claimed: given up, it would go unswept.
		 */
		sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
		if (sweeper_write_conflict(sqlstate) &&
		    ++sweeper->load_attempts < SWEEPER_WRITE_ATTEMPTS) {
			log_debug("sweeper: reading this round's targets: %s; "
			    "trying again", why);
			sweeper_arm(sweeper->write_timer,
			    (int64_t)SWEEPER_WRITE_RETRY_MS * 1000000LL *
			    sweeper->load_attempts);
			return;
		}
		sweeper_abandon(sweeper, why);
		sweeper_schedule(sweeper);
		return;
	}
	sweeper->count = sweeper_parse_targets(sweeper, result);
	sweeper->unsettled = sweeper->count;
	sweep_store_arrays_begin(&sweeper->arrays);
	/* Nothing to probe: no pass to count either (no subnet probed). */
	if (sweeper->count == 0) {
		sweeper_finish(sweeper);
		return;
	}
	/* A random order spreads the probes over every subnet. */
	sweeper->order = sweeper_calloc(sweeper->count,
	    sizeof(*sweeper->order));
	for (i = 0; i < sweeper->count; i++)
		sweeper->order[i] = (uint32_t)i;
	for (i = sweeper->count - 1; i > 0; i--) {
		j = (size_t)(sweep_random(&sweeper->random) % (i + 1));
		held = sweeper->order[i];
		sweeper->order[i] = sweeper->order[j];
		sweeper->order[j] = held;
	}
	sweeper->resend = sweeper_calloc(sweeper->count,
	    sizeof(*sweeper->resend));
	/* Each routing domain gets its part of the settled array. */
	sweeper->settled = sweeper_calloc(sweeper->count,
	    sizeof(*sweeper->settled));
	sweeper->vrf_first = sweeper_calloc(sweeper->vrf_count + 1,
	    sizeof(*sweeper->vrf_first));
	sweeper->vrf_settled = sweeper_calloc(sweeper->vrf_count,
	    sizeof(*sweeper->vrf_settled));
	sweeper->vrf_examined = sweeper_calloc(sweeper->vrf_count,
	    sizeof(*sweeper->vrf_examined));
	for (i = 0; i < sweeper->count; i++)
		sweeper->vrf_first[sweeper->targets[i].vrf + 1]++;
	for (i = 1; i <= sweeper->vrf_count; i++)
		sweeper->vrf_first[i] += sweeper->vrf_first[i - 1];
	sweep_seqmap_reset(sweeper->seqmap);
	sweeper->phase = SWEEPER_PROBING;
	sweeper->probe_started_ns = sweeper_now_ns();
	sweep_bucket_init(&sweeper->bucket, (double)sweeper->settings.rate,
	    sweeper->probe_started_ns);
	log_debug("sweeper: sweep %llu: probing %zu addresses",
	    (unsigned long long)sweeper->number, sweeper->count);
	sweeper_turn(sweeper);
}

/* Reads the addresses of the subnets this round leased to this member. */
static void
sweeper_load(struct sweeper *sweeper)
{
	char member[32], round_end[32];
	/* Only the families it can probe: the others' subnets count no pass. */
	const char *params[3] = { member, round_end,
	    sweeper_families(sweeper) };

	snprintf(member, sizeof(member), "%d", sweeper->member);
	snprintf(round_end, sizeof(round_end), "%lld",
	    (long long)sweeper->round_end_ms);
	sweeper->phase = SWEEPER_LOADING;
	if (pgconn_query(sweeper->pg, sweep_store_targets_sql, 3, params,
	    sweeper_loaded, sweeper) == -1)
		sweeper_lost(sweeper, "PostgreSQL is away");
}

/*
 * Keeps the count of the subnets of this member's domains that no live
 * member can probe, and says when it leaves or reaches 0: they stay
 * unswept, their addresses never active, until a member that can probe
 * them joins.
 */
static void
sweeper_unswept(struct sweeper *sweeper, int64_t unswept)
{
	int64_t before = sweeper->stats.unswept;

	sweeper->stats.unswept = unswept;
	if (unswept > 0 && before <= 0)
		log_warnx("sweeper: %lld subnets with ping on are probed by no "
		    "live member: none of their domain has a socket of their "
		    "address family (IPv6?)", (long long)unswept);
	else if (unswept == 0 && before > 0)
		log_info("sweeper: every subnet with ping on has a member "
		    "that can probe it again");
}

/*
 * The claim is answered.  A round this member swept already (the timer
 * fired early, or PostgreSQL came back within the round) waits for the
 * next; a fresh one is a sweep of the subnets it leased.
 */
static void
sweeper_claimed(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct sweeper *sweeper = arg;
	const char *sqlstate;
	long long next_in_ms, clock_back_ms;
	int members, subnets;
	char why[512];

	if (sweeper->phase != SWEEPER_CLAIMING)
		return;
	if (result == NULL) {
		sweeper_lost(sweeper, error);
		return;
	}
	if (PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1) {
		sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
		pgconn_result_error(pg, result, why, sizeof(why));
		log_warnx("sweeper: claiming this round's subnets: %s", why);
		sweeper_clear(sweeper);
		/* No member any more: a new session joins, then claims. */
		if ((sqlstate != NULL && strcmp(sqlstate, "IPM02") == 0) ||
		    pgconn_sqlstate_is_fatal(sqlstate)) {
			sweeper->sweep_due = true;
			pgconn_reset(pg, why);
			return;
		}
		/*
		 * A lock timeout, say: tried again within the round, unless
		 * it is short, but never in a tight loop.
		 */
		evtimer_del(sweeper->sweep_timer);
		sweeper_arm(sweeper->sweep_timer,
		    (sweeper->settings.interval_ms < SWEEPER_CLAIM_RETRY_MS ?
		    sweeper->settings.interval_ms : SWEEPER_CLAIM_RETRY_MS) *
		    1000000LL);
		return;
	}
	next_in_ms = strtoll(PQgetvalue(result, 0, 2), NULL, 10);
	members = atoi(PQgetvalue(result, 0, 3));
	subnets = atoi(PQgetvalue(result, 0, 4));
	clock_back_ms = strtoll(PQgetvalue(result, 0, 6), NULL, 10);
	if (clock_back_ms > 0) {
		/*
		 * The claim took the round as fresh all the same: waiting
		 * for the clock to catch up would leave every address's
		 * state as it stands for as long.
		 */
		sweeper->stats.clock_steps_back++;
		log_warnx("sweeper: PostgreSQL's clock is %lld ms before the "
		    "start of the round this instance swept last (it was "
		    "stepped back): this round is swept now",
		    clock_back_ms);
	}
	sweeper->next_round_ns = sweeper_now_ns() + next_in_ms * 1000000LL;
	if (PQgetvalue(result, 0, 0)[0] != 't') {
		sweeper_clear(sweeper);
		sweeper_schedule(sweeper);
		return;
	}
	sweeper_unswept(sweeper, strtoll(PQgetvalue(result, 0, 5), NULL, 10));
	sweeper->round_end_ms = strtoll(PQgetvalue(result, 0, 1), NULL, 10);
	sweeper->swept_until_ms = sweeper->round_end_ms;
	sweeper->swept_from_ms = sweeper->round_end_ms -
	    sweeper->claimed_interval_ms;
	sweeper->number++;
	sweeper->probe_started_ns = sweeper->probe_ended_ns = 0;
	sweeper->count_v6 = sweeper->skipped = 0;
	sweeper->next_fresh = sweeper->resend_head = sweeper->resend_len = 0;
	sweeper->rows_changed = sweeper->went_up = sweeper->went_down = 0;
	sweeper->drops_logged = 0;
	memset(&sweeper->counts, 0, sizeof(sweeper->counts));
	log_debug("sweeper: sweep %llu: member %d of %d live, %d subnets "
	    "leased until the round ends in %lld ms",
	    (unsigned long long)sweeper->number, sweeper->member, members,
	    subnets, next_in_ms);
	if (subnets == 0) {
		sweeper_finish(sweeper);
		return;
	}
	sweeper_load(sweeper);
}

/* Starts a sweep: claims this round's share of the subnets. */
static void
sweeper_begin(struct sweeper *sweeper)
{
	char member[32], interval[32], swept_until[32], swept_from[32];
	const char *params[5] = { member, sweeper->settings.vrfs, interval,
	    swept_until, swept_from };

	if (!sweeper->session_ready || !pgconn_is_up(sweeper->pg) ||
	    pgconn_is_busy(sweeper->pg)) {
		sweeper->sweep_due = true;
		return;
	}
	sweeper->sweep_due = false;
	sweeper->phase = SWEEPER_CLAIMING;
	sweeper->started_ns = sweeper_now_ns();
	sweeper->started_unix_us = sweeper_unix_us();
	snprintf(member, sizeof(member), "%d", sweeper->member);
	snprintf(interval, sizeof(interval), "%lld",
	    sweeper->settings.interval_ms);
	snprintf(swept_until, sizeof(swept_until), "%lld",
	    (long long)sweeper->swept_until_ms);
	snprintf(swept_from, sizeof(swept_from), "%lld",
	    (long long)sweeper->swept_from_ms);
	sweeper->claimed_interval_ms = sweeper->settings.interval_ms;
	if (pgconn_query(sweeper->pg, sweep_store_claim_sql, 5, params,
	    sweeper_claimed, sweeper) == -1) {
		sweeper->phase = SWEEPER_IDLE;
		sweeper->sweep_due = true;
	}
}

/* The sweep timer: start a sweep if PostgreSQL is there, else when it is. */
static void
sweeper_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweeper *sweeper = arg;

	if (sweeper->phase != SWEEPER_IDLE || !sweeper->settings.enabled ||
	    sweeper->stopping)
		return;
	if (!sweeper->session_ready) {
		sweeper->sweep_due = true;
		return;
	}
	sweeper_begin(sweeper);
}

/* Tells whether a failed write is worth trying again (without waiting). */
static bool
sweeper_write_conflict(const char *sqlstate)
{
	/* lock_not_available (lock_timeout), deadlock, serialization. */
	return sqlstate != NULL && (strcmp(sqlstate, "55P03") == 0 ||
	    strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0);
}

/*
 * The commit failed: it is tried again later when it met rows another
 * session holds (another member whose sweep overran its round), else the
 * sweep is given up.  Either way nothing of it was written.
 */
static void
sweeper_write_failed(struct sweeper *sweeper, struct pgconn *pg,
    PGresult *result, const char *error)
{
	const char *sqlstate;
	char why[512];

	if (result == NULL) {
		sweeper_lost(sweeper, error);
		return;
	}
	sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	pgconn_result_error(pg, result, why, sizeof(why));
	if (sweeper_write_conflict(sqlstate) &&
	    ++sweeper->write_attempts < SWEEPER_WRITE_ATTEMPTS) {
		log_debug("sweeper: writing: %s; trying again", why);
		sweeper_arm(sweeper->write_timer,
		    (int64_t)SWEEPER_WRITE_RETRY_MS * 1000000LL *
		    sweeper->write_attempts);
		return;
	}
	if (pgconn_sqlstate_is_fatal(sqlstate))
		pgconn_reset(pg, why);
	sweeper_abandon(sweeper, why);
	sweeper_schedule(sweeper);
}

/* The news is written and the pass counted (or it failed): it is over. */
static void
sweeper_written(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct sweeper *sweeper = arg;

	if (sweeper->phase != SWEEPER_WRITING || !sweeper->writing)
		return;
	if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1) {
		sweeper_write_failed(sweeper, pg, result, error);
		return;
	}
	sweeper->rows_changed = strtoull(PQgetvalue(result, 0, 0), NULL, 10);
	/* Probed, and no lease left to count it: nothing was written. */
	if (sweeper->count > 0 && atoi(PQgetvalue(result, 0, 1)) == 0)
		log_warnx("sweeper: sweep %llu: its subnets' leases were gone "
		    "when it ended (another member took them): its %zu "
		    "results were not written",
		    (unsigned long long)sweeper->number, sweeper->count);
	sweeper->went_up = sweeper->batch_up;
	sweeper->went_down = sweeper->batch_down;
	log_debug("sweeper: sweep %llu: the pass of %s subnets counted, %s "
	    "state rows of gone addresses forgotten",
	    (unsigned long long)sweeper->number, PQgetvalue(result, 0, 1),
	    PQgetvalue(result, 0, 2));
	sweeper_finish(sweeper);
}

/* When this sweep began probing, the time of its pass, for PostgreSQL. */
static void
sweeper_pass_time(const struct sweeper *sweeper, char *buf, size_t buflen)
{
	sweep_store_timestamp(sweeper->started_unix_us +
	    (sweeper->probe_started_ns - sweeper->started_ns) / 1000, buf,
	    buflen);
}

/*
 * Decides the new state of the settled results of one routing domain not
 * looked at yet, gathering the news into the arrays (counting what goes
 * up or down).
 */
static void
sweeper_gather_news(struct sweeper *sweeper, size_t vrf)
{
	struct sweeper_target *target;
	struct sweep_prior prior;
	struct sweep_result result;
	const uint32_t *settled = sweeper->settled + sweeper->vrf_first[vrf];

	while (sweeper->vrf_examined[vrf] < sweeper->vrf_settled[vrf]) {
		target = &sweeper->targets[
		    settled[sweeper->vrf_examined[vrf]++]];
		prior.followed = target->followed;
		prior.active = target->was_active;
		prior.answered = target->answered;
		prior.missed_sweeps = target->missed_sweeps;
		prior.rtt_us = target->stored_rtt_us;
		result.vrf = sweeper->vrfs[vrf];
		result.addr = &target->addr;
		result.rtt_us = target->state == SWEEPER_TARGET_ANSWERED ?
		    target->rtt_us : -1;
		if (!sweep_store_next(&prior, (int32_t)result.rtt_us,
		    sweeper->settings.down_after, &result.active,
		    &result.missed_sweeps))
			continue;
		if (result.active && !prior.active)
			sweeper->batch_up++;
		else if (!result.active && prior.active)
			sweeper->batch_down++;
		sweep_store_arrays_add(&sweeper->arrays, &result);
	}
}

/*
 * Gathers the news of the results settled since; once every probe is
 * settled, writes it with the pass of the subnets probed, in one
 * statement: a sweep's news and its pass are there together or not at
 * all, so the passes count exactly the sweeps whose state is written.
 */
static void
sweeper_write_ready(struct sweeper *sweeper)
{
	size_t vrf;

	if (sweeper->writing)
		return;
	for (vrf = 0; vrf < sweeper->vrf_count; vrf++)
		sweeper_gather_news(sweeper, vrf);
	if (sweeper->phase != SWEEPER_WRITING)
		return;
	sweep_store_arrays_end(&sweeper->arrays);
	sweeper->writing = true;
	sweeper_write_batch(sweeper);
}

/* Sends the commit sweeper_write_ready() prepared (again after a conflict). */
static void
sweeper_write_batch(struct sweeper *sweeper)
{
	char member[32], round_end[32], base[64];
	const char *params[8];

	if (!pgconn_is_up(sweeper->pg)) {
		sweeper_lost(sweeper, "PostgreSQL is away");
		return;
	}
	snprintf(member, sizeof(member), "%d", sweeper->member);
	snprintf(round_end, sizeof(round_end), "%lld",
	    (long long)sweeper->round_end_ms);
	sweeper_pass_time(sweeper, base, sizeof(base));
	params[0] = member;
	params[1] = round_end;
	params[2] = base;
	params[3] = sweeper->arrays.vrfs.data;
	params[4] = sweeper->arrays.addresses.data;
	params[5] = sweeper->arrays.rtts.data;
	params[6] = sweeper->arrays.active.data;
	params[7] = sweeper->arrays.missed.data;
	if (pgconn_query(sweeper->pg, sweep_store_commit_sql, 8, params,
	    sweeper_written, sweeper) == -1)
		sweeper_lost(sweeper, "PostgreSQL is away");
}

/* The session is a member of the shared sweep: a sweep may start. */
static void
sweeper_joined(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct sweeper *sweeper = arg;
	char why[512];

	/* A lost connection calls sweeper_pg_up() again once it is back. */
	if (sweeper->stopping || !sweeper->settings.enabled || result == NULL)
		return;
	if (PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1) {
		pgconn_result_error(pg, result, why, sizeof(why));
		log_warnx("sweeper: joining the shared sweep: %s", why);
		pgconn_reset(pg, why);
		return;
	}
	sweeper->member = atoi(PQgetvalue(result, 0, 0));
	sweeper->session_ready = true;
	log_info("sweeper: member %d of the shared sweep (%s)",
	    sweeper->member, sweeper->instance);
	if (sweeper->sweep_due && sweeper->phase == SWEEPER_IDLE)
		sweeper_begin(sweeper);
}

/*
 * PostgreSQL is connected, the session set up: it joins the members of
 * the shared sweep, for as long as it lasts.
 */
static void
sweeper_pg_up(struct pgconn *pg, void *arg)
{
	struct sweeper *sweeper = arg;
	char interval[32];
	const char *params[4] = { sweeper->instance, sweeper->settings.vrfs,
	    interval, sweeper_families(sweeper) };

	if (sweeper->stopping || !sweeper->settings.enabled)
		return;
	snprintf(interval, sizeof(interval), "%lld",
	    sweeper->settings.interval_ms);
	/* On failure the connection is gone; it comes back through here. */
	(void)pgconn_query(pg, sweep_store_join_sql, 4, params,
	    sweeper_joined, sweeper);
}

/*
 * PostgreSQL went away: the query in flight has failed already, and the
 * session's membership ended with it.  So did the leases of its sweep: a
 * sweep still probing (no query in flight) is given up here, or its
 * results would be written once a new session is up, under a membership
 * that claimed nothing, and be lost unsaid.
 */
static void
sweeper_pg_down(struct pgconn *pg, const char *reason, void *arg)
{
	struct sweeper *sweeper = arg;

	sweeper->session_ready = false;
	sweeper->member = 0;
	if (sweeper->phase != SWEEPER_IDLE)
		sweeper_lost(sweeper, "PostgreSQL is away");
}

/* Says which sockets are in use. */
static void
sweeper_log_sockets(const struct sweeper *sweeper)
{
	const struct sweep_socket *s4 = &sweeper->sock4, *s6 = &sweeper->sock6;

	if (s4->kind == SWEEP_SOCKET_RAW && (s6->kind == SWEEP_SOCKET_RAW ||
	    s6->kind == SWEEP_SOCKET_NONE))
		log_info("sweeper: raw ICMP sockets (CAP_NET_RAW)%s, "
		    "identifier %u", s6->kind == SWEEP_SOCKET_NONE ?
		    ", IPv4 only" : "", sweeper->identifier);
	else if (s4->kind == SWEEP_SOCKET_PING &&
	    s6->kind != SWEEP_SOCKET_RAW)
		log_info("sweeper: ping sockets (net.ipv4.ping_group_range)%s; "
		    "the kernel sets the identifiers", s6->kind ==
		    SWEEP_SOCKET_NONE ? ", IPv4 only" : "");
	else
		log_info("sweeper: IPv4 %s socket, IPv6 %s socket",
		    sweep_socket_kind_name(s4->kind),
		    sweep_socket_kind_name(s6->kind));
	/* The kernel doubles what is asked for; rmem_max caps it unless root. */
	log_info("sweeper: receive buffer %d bytes a socket (asked for %lld)",
	    s4->rcvbuf, sweeper->settings.receive_buffer);
}

/* Closes the sockets and their events. */
static void
sweeper_close(struct sweeper *sweeper)
{
	if (sweeper->read4 != NULL)
		event_free(sweeper->read4);
	if (sweeper->read6 != NULL)
		event_free(sweeper->read6);
	sweeper->read4 = sweeper->read6 = NULL;
	sweep_socket_close(&sweeper->sock4);
	sweep_socket_close(&sweeper->sock6);
}

/* Adds a read event for an open socket. */
static struct event *
sweeper_watch(struct sweeper *sweeper, struct sweep_socket *sock)
{
	struct event *ev;

	if (sock->kind == SWEEP_SOCKET_NONE)
		return NULL;
	ev = event_new(sweeper->base, sock->fd, EV_READ | EV_PERSIST,
	    sweeper_read_cb, sweeper);
	if (ev == NULL || event_add(ev, NULL) == -1)
		fatalx("sweeper: cannot watch the ICMP socket");
	return ev;
}

/*
 * Opens the ICMP and ICMPv6 sockets.  No IPv6 in the kernel is not an
 * error (IPv6 addresses are then not probed); anything else is.
 */
static int
sweeper_open(struct sweeper *sweeper, char *err, size_t errlen)
{
	char why[256];

	if (sweep_socket_open(&sweeper->sock4, AF_INET, sweeper->identifier,
	    (int)sweeper->settings.receive_buffer, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "sweeper: cannot open an ICMP socket "
		    "(%s): give the daemon CAP_NET_RAW, or a group in "
		    "net.ipv4.ping_group_range, or set [sweeper] enabled = "
		    "false", why);
		return -1;
	}
	if (sweep_socket_open(&sweeper->sock6, AF_INET6, sweeper->identifier,
	    (int)sweeper->settings.receive_buffer, why, sizeof(why)) == -1) {
		if (errno != EAFNOSUPPORT) {
			snprintf(err, errlen, "sweeper: cannot open an ICMPv6 "
			    "socket (%s)", why);
			sweep_socket_close(&sweeper->sock4);
			return -1;
		}
		log_warnx("sweeper: no IPv6 here (%s): IPv6 addresses are "
		    "not probed", why);
	}
	sweeper->read4 = sweeper_watch(sweeper, &sweeper->sock4);
	sweeper->read6 = sweeper_watch(sweeper, &sweeper->sock6);
	sweeper_log_sockets(sweeper);
	/* 2 MB: made the first time the sweeper is on, kept from then on. */
	if (sweeper->seqmap == NULL) {
		sweeper->seqmap = sweeper_calloc(1, sizeof(*sweeper->seqmap));
		sweep_seqmap_init(sweeper->seqmap,
		    (uint16_t)sweep_random(&sweeper->random));
	}
	return 0;
}

/* Creates the sweeper. */
struct sweeper *
sweeper_new(struct event_base *base, const struct sweeper_settings *settings,
    char *err, size_t errlen)
{
	struct pgconn_settings pg_settings;
	struct pgconn_callbacks pg_callbacks;
	struct sweeper *sweeper;
	uint8_t seed[SWEEP_KEY_LEN + 2 + 8];

	sweeper = sweeper_calloc(1, sizeof(*sweeper));
	sweeper->base = base;
	sweeper->sock4.fd = sweeper->sock6.fd = -1;
	sweeper->stats.unswept = -1;
	sweeper_take_settings(sweeper, settings);
	sweeper->sweep_timer = evtimer_new(base, sweeper_sweep_cb, sweeper);
	sweeper->pace_timer = evtimer_new(base, sweeper_pace_cb, sweeper);
	sweeper->write_timer = evtimer_new(base, sweeper_write_cb, sweeper);
	if (sweeper->sweep_timer == NULL || sweeper->pace_timer == NULL ||
	    sweeper->write_timer == NULL) {
		snprintf(err, errlen, "sweeper: cannot create timers");
		goto fail;
	}

	/* The secret of the cookies, the identifier, the randomness. */
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		snprintf(err, errlen, "sweeper: getrandom: %s",
		    strerror(errno));
		goto fail;
	}
	memcpy(sweeper->key, seed, SWEEP_KEY_LEN);
	memcpy(&sweeper->identifier, seed + SWEEP_KEY_LEN, 2);
	memcpy(&sweeper->random, seed + SWEEP_KEY_LEN + 2, 8);
	explicit_bzero(seed, sizeof(seed));
	sweeper_name_instance(sweeper->instance, sizeof(sweeper->instance));

	memset(&pg_settings, 0, sizeof(pg_settings));
	pg_settings.conninfo = settings->conninfo;
	pg_settings.password = settings->password;
	pg_settings.application_name = "ipam-syncd-sweeper";
	pg_settings.session_sql = sweep_store_session_sql;
	pg_settings.connect_timeout_ms = settings->pg_connect_timeout_ms;
	pg_settings.reconnect_min_ms = settings->pg_reconnect_min_ms;
	pg_settings.reconnect_max_ms = settings->pg_reconnect_max_ms;
	pg_callbacks.up = sweeper_pg_up;
	pg_callbacks.down = sweeper_pg_down;
	pg_callbacks.arg = sweeper;
	sweeper->pg = pgconn_new(base, &pg_settings, &pg_callbacks);

	if (!settings->enabled) {
		log_info("sweeper: off ([sweeper] enabled = false): no ICMP "
		    "socket is opened and nothing is sent");
		return sweeper;
	}
	if (sweeper_open(sweeper, err, errlen) == -1)
		goto fail;
	return sweeper;
fail:
	sweeper_free(sweeper);
	return NULL;
}

/* Starts sweeping. */
void
sweeper_start(struct sweeper *sweeper)
{
	if (sweeper->started || sweeper->stopping)
		return;
	sweeper->started = true;
	if (!sweeper->settings.enabled)
		return;
	pgconn_start(sweeper->pg);
	sweeper_schedule(sweeper);
}

/* Takes reloaded settings. */
void
sweeper_reload(struct sweeper *sweeper, const struct sweeper_settings *settings)
{
	bool was_enabled = sweeper->settings.enabled;
	char err[512];

	if (sweeper->stopping)
		return;
	/* Other rounds: the next claim says when the next one starts. */
	if (settings->interval_ms != sweeper->settings.interval_ms)
		sweeper->next_round_ns = 0;
	sweeper_take_settings(sweeper, settings);
	pgconn_set_timeouts(sweeper->pg, settings->pg_connect_timeout_ms,
	    settings->pg_reconnect_min_ms, settings->pg_reconnect_max_ms);
	if (!was_enabled && settings->enabled) {
		if (sweeper_open(sweeper, err, sizeof(err)) == -1) {
			log_errx("reload: %s; the sweeper stays off", err);
			sweeper->settings.enabled = false;
			return;
		}
		log_info("sweeper: turned on by reload");
		if (sweeper->started) {
			pgconn_start(sweeper->pg);
			sweeper_schedule(sweeper);
		}
	} else if (was_enabled && !settings->enabled) {
		sweeper_abandon(sweeper, "turned off by reload");
		evtimer_del(sweeper->sweep_timer);
		sweeper->sweep_due = false;
		sweeper->session_ready = false;
		sweeper->member = 0;
		/* A member no more: it counts no unswept subnets. */
		sweeper->stats.unswept = -1;
		pgconn_stop(sweeper->pg);
		sweeper_close(sweeper);
		log_info("sweeper: turned off by reload: sockets closed, "
		    "nothing more is sent");
	} else if (settings->enabled) {
		if (sweeper->phase == SWEEPER_PROBING)
			sweep_bucket_set_rate(&sweeper->bucket,
			    (double)settings->rate, sweeper_now_ns());
		else if (sweeper->phase == SWEEPER_IDLE && !sweeper->sweep_due)
			sweeper_schedule(sweeper);
	}
}

/* Stops the sweeper. */
void
sweeper_stop(struct sweeper *sweeper)
{
	if (sweeper->stopping)
		return;
	sweeper->stopping = true;
	sweeper_abandon(sweeper, "stopping");
	evtimer_del(sweeper->sweep_timer);
	if (sweeper->read4 != NULL)
		event_del(sweeper->read4);
	if (sweeper->read6 != NULL)
		event_del(sweeper->read6);
	pgconn_stop(sweeper->pg);
}

/* Frees the sweeper. */
void
sweeper_free(struct sweeper *sweeper)
{
	if (sweeper == NULL)
		return;
	/* Before the connection goes: no callback may find it half freed. */
	sweeper->stopping = true;
	pgconn_free(sweeper->pg);
	sweeper->pg = NULL;
	if (sweeper->pace_timer != NULL && sweeper->write_timer != NULL)
		sweeper_clear(sweeper);
	sweeper_close(sweeper);
	if (sweeper->sweep_timer != NULL)
		event_free(sweeper->sweep_timer);
	if (sweeper->pace_timer != NULL)
		event_free(sweeper->pace_timer);
	if (sweeper->write_timer != NULL)
		event_free(sweeper->write_timer);
	sweep_store_arrays_free(&sweeper->arrays);
	free(sweeper->seqmap);
	free((char *)sweeper->settings.vrfs);
	explicit_bzero(sweeper->key, sizeof(sweeper->key));
	free(sweeper);
}

/* The figures. */
const struct sweeper_stats *
sweeper_stats(const struct sweeper *sweeper)
{
	return &sweeper->stats;
}
