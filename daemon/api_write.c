/*
 * The operator API's writes: each becomes CloudEvents published to the
 * inventory topics, checked first by the consumer's own decoder, and the
 * request waits until a daemon has applied them (docs/API.md).
 */
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "common/addr.h"
#include "common/log.h"
#include "consumers/change.h"
#include "consumers/decode.h"
#include "daemon/api_internal.h"

/* How often a waiting write asks whether its events were applied. */
#define API_WRITE_POLL_MS	25

/* Rounds of an allocation whose candidates others took meanwhile. */
#define API_ALLOCATE_ROUNDS	8

/* Longest If-Match value kept (an etag is 22 bytes with its quotes). */
#define API_ETAG_MAX		256

/* Most addresses one allocation may ask for. */
#define API_ALLOCATE_MAX	256

/* Most entities one import may carry. */
#define API_IMPORT_MAX		200000

/*
 * Imports under way at once, dry runs included.  Each holds its parsed
 * body (several times the 32 MiB it may be), its events and librdkafka's
 * copies of them until it is answered, up to api.write_wait_ms and
 * API_IMPORT_ACK_MS more; they run one after another faster than side by
 * side anyway, as the apply takes their events in one stream.
 */
#define API_IMPORTS_MAX		2

/* Errors of an import listed before the rest are only counted. */
#define API_IMPORT_ERRORS	20

/*
 * Entities an import turns into events in one turn of the loop: 200,000
 * at once held the loop for seconds (the consumer, the sweeper, other
 * clients and the watchdog's ping wait meanwhile).
 */
#define API_IMPORT_STEP		2000

enum api_write_kind {
	API_WRITE_MARK,
	API_WRITE_ALLOCATE,
	API_WRITE_IMPORT,
};

/* One event a write publishes. */
struct api_event {
	struct api_write	*write;
	char			*id;		/* CloudEvent id: the request */
	const char		*topic;
	char			*key;
	char			*value;
	char			 vrf[80];
	char			 ip[ADDR_TEXT_MAX];
	bool			 sent;
	bool			 delivered;
	char			*failure;	/* why it was not delivered */
	int32_t			 partition;
	int64_t			 offset;
	json_t			*outcome;	/* ipamd.api_request()'s, once decided */
};

struct api_write {
	struct api_call		*call;
	enum api_write_kind	 kind;
	struct api_event	*events;
	size_t			 count;
	size_t			 capacity;
	size_t			 round_start;	/* first event of this round */
	size_t			 undelivered;	/* of this round, sent */
	struct event		*timer;
	struct event		*expiry;	/* at the deadline */
	struct timespec		 deadline;
	bool			 polling;
	/* An allocation. */
	char			*subnet_id;
	char			*vrf;
	char			*description;
	size_t			 want;
	int			 round;
	json_t			*won;		/* rows of applied reservations */
	/* An import. */
	size_t			 servers;
	size_t			 subnets;
	json_t			*body;		/* the import, while read */
	struct event		*step;		/* reads it, a part a turn */
	size_t			 list;		/* 0 subnets, 1 servers */
	size_t			 item;		/* next of that list */
	size_t			 bad;
	json_t			*errors;
	json_t			*seen;		/* ids of the list: where first */
	json_t			*plan;		/* a dry run: the entities as
						   the decoder reads them */
	const struct api_event	**last;		/* api_import_last() */
	size_t			 last_count;
};

/*
 * Longest progress text of an import's Location (one entry a partition,
 * some 30 bytes: 400 partitions).  The GET of it must fit in the 16 KiB
 * the HTTP server takes for a request line and its headers (daemon/
 * http.c), with 4 KiB left for the headers.
 */
#define API_IMPORT_PROGRESS_MAX	12288

/*
 * How long events just handed to Kafka are given to be acknowledged at
 * least, whatever is left of the write's wait, before it is answered.
 */
#define API_WRITE_GRACE_MS	1000

/*
 * An import's events take the time they take to be acknowledged, up to
 * this long past the write's wait: within the HTTP reply deadline (the
 * wait and 30 s, daemon_http_reply_seconds()), so that a broker that does
 * not answer gets the import its 503 with the counts, not the bare one.
 */
#define API_IMPORT_ACK_MS	28000

/* What a 202 says when the write's wait ran out. */
#define API_WRITE_WAITED "published, not yet applied within api.write_wait_ms"

static void	api_write_poll(evutil_socket_t fd, short events, void *arg);
static void	api_write_expire(evutil_socket_t fd, short events, void *arg);
static void	api_write_expiry_arm(struct api_write *write, long long least_ms);
static long long api_write_left_ms(const struct api_write *write);
static void	api_write_accepted(struct api_write *write, const char *detail);
static void	api_write_failed(struct api_write *write, const PGresult *result,
		    const char *error);
static void	api_allocate_round(struct api_write *write);
static void	api_allocate_partial(struct api_write *write, const char *why);
static void	api_allocate_held(struct api_write *write, json_t *body);
static void	api_write_not_taken(struct api_write *write,
		    const struct api_event *failed);

/* A fresh request id: 96 random bits in hex. */
static void
api_request_id(char *buf, size_t buflen)
{
	unsigned char bytes[12];
	size_t i, off;

	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
		fatal("api: getrandom");
	off = (size_t)snprintf(buf, buflen, "api-");
	for (i = 0; i < sizeof(bytes) && off + 2 < buflen; i++)
		off += (size_t)snprintf(buf + off, buflen - off, "%02x",
		    bytes[i]);
}

/* Now on the wall clock, as CloudEvents' time. */
static void
api_now_text(char *buf, size_t buflen)
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Starts a write of a call. */
static struct api_write *
api_write_new(struct api_call *call, enum api_write_kind kind)
{
	struct api_write *write;
	struct timespec now;

	if ((write = calloc(1, sizeof(*write))) == NULL)
		fatal("api: calloc");
	write->call = call;
	write->kind = kind;
	if ((write->timer = evtimer_new(call->api->base, api_write_poll,
	    write)) == NULL || (write->expiry = evtimer_new(call->api->base,
	    api_write_expire, write)) == NULL)
		fatalx("api: evtimer_new failed");
	clock_gettime(CLOCK_MONOTONIC, &now);
	write->deadline.tv_sec = now.tv_sec + call->api->write_wait_ms / 1000;
	write->deadline.tv_nsec = now.tv_nsec +
	    (call->api->write_wait_ms % 1000) * 1000000L;
	if (write->deadline.tv_nsec >= 1000000000L) {
		write->deadline.tv_sec++;
		write->deadline.tv_nsec -= 1000000000L;
	}
	call->write = write;
	return write;
}

/* Frees a write. */
void
api_write_free(struct api_write *write)
{
	size_t i;

	if (write == NULL)
		return;
	for (i = 0; i < write->count; i++) {
		free(write->events[i].id);
		free(write->events[i].key);
		free(write->events[i].value);
		free(write->events[i].failure);
		json_decref(write->events[i].outcome);
	}
	free(write->events);
	if (write->timer != NULL)
		event_free(write->timer);
	if (write->expiry != NULL)
		event_free(write->expiry);
	if (write->step != NULL)
		event_free(write->step);
	json_decref(write->body);
	json_decref(write->errors);
	json_decref(write->seen);
	json_decref(write->plan);
	free(write->last);
	free(write->subnet_id);
	free(write->vrf);
	free(write->description);
	json_decref(write->won);
	if (write->kind == API_WRITE_IMPORT)
		write->call->api->imports--;
	free(write);
}

/* Forgets the addresses an allocation was trying. */
static void
api_allocating_drop(struct api_write *write)
{
	json_t *allocating = write->call->api->allocating;
	size_t i, j;
	char key[160];

	for (i = write->round_start; i < write->count; i++) {
		snprintf(key, sizeof(key), "%s/%s", write->events[i].vrf,
		    write->events[i].ip);
		for (j = 0; j < json_array_size(allocating); j++)
			if (strcmp(json_string_value(json_array_get(allocating,
			    j)), key) == 0) {
				json_array_remove(allocating, j);
				break;
			}
	}
}

/* Tells whether an allocation is trying "vrf/ip" now. */
static bool
api_allocating_has(const struct api *api, const char *key)
{
	size_t i;

	for (i = 0; i < json_array_size(api->allocating); i++)
		if (strcmp(json_string_value(json_array_get(api->allocating,
		    i)), key) == 0)
			return true;
	return false;
}

/*
 * Answers a write whose events Kafka has not all acknowledged (they are
 * kept trying until the exit, or their message.timeout.ms): 503 that
 * says how many of each, with the requests to follow; why begins the
 * detail.  Only an allocation's round in progress counts: the others are
 * decided, and `allocated` says what they reserved.
 */
static void
api_write_unsure(struct api_write *write, const char *why, bool stopping)
{
	struct api_call *call = write->call;
	size_t i, first, acked = 0, unsure = 0, sent = 0;
	json_t *body, *ids;

	first = write->kind == API_WRITE_ALLOCATE ? write->round_start : 0;
	for (i = first; i < write->count; i++) {
		if (!write->events[i].sent)
			continue;
		sent++;
		if (!write->events[i].delivered)
			unsure++;
		else if (write->events[i].failure == NULL)
			acked++;
	}
	if (write->kind == API_WRITE_ALLOCATE)
		api_allocating_drop(write);
	body = json_object();
	ids = json_array();
	for (i = first; i < write->count; i++)
		if (write->events[i].sent && write->events[i].id != NULL &&
		    (!write->events[i].delivered ||
		    write->events[i].failure == NULL))
			json_array_append_new(ids,
			    json_string(write->events[i].id));
	json_object_set_new(body, "error", json_string("unavailable"));
	json_object_set_new(body, "detail", json_sprintf("%s: Kafka "
	    "acknowledged %zu of the %zu events handed to it (those are "
	    "applied %s) and not the other %zu, which may or may not be "
	    "published%s", why, acked, sent, stopping ? "by the drain or by "
	    "the next start" : "as they are consumed", unsure,
	    write->kind == API_WRITE_IMPORT ? "; sending the import "
	    "again changes nothing twice" : "; GET /api/v1/requests/{id} of "
	    "each tells (404 until it is applied)"));
	json_object_set_new(body, "published", json_integer((json_int_t)acked));
	json_object_set_new(body, "unacknowledged",
	    json_integer((json_int_t)unsure));
	api_allocate_held(write, body);
	if (json_array_size(ids) > 0)
		json_object_set_new(body, "requests", ids);
	else
		json_decref(ids);
	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "Retry-After", "5");
	api_reply_json(call, 503, body);
}

/*
 * The daemon stops before the write was applied.  Every event Kafka
 * acknowledged: 202, it is applied by the drain or by the next start.
 * None handed to Kafka: 503, nothing was published; 409 with what it
 * holds for an allocation whose earlier rounds reserved addresses (only
 * its round in progress counts here: the others are decided).  Else
 * (events Kafka has not acknowledged, kept trying until the exit) 503
 * that says how many of each, with the requests to follow.
 */
void
api_write_halt(struct api_call *call)
{
	struct api_write *write = call->write;
	size_t i, first, acked = 0, unsure = 0;

	api_write_stop(call);
	first = write->kind == API_WRITE_ALLOCATE ? write->round_start : 0;
	for (i = first; i < write->count; i++) {
		if (!write->events[i].sent)
			continue;
		if (!write->events[i].delivered)
			unsure++;
		else if (write->events[i].failure == NULL)
			acked++;
	}
	if (unsure == 0 && acked > 0) {
		api_write_accepted(write, "published; the daemon is stopping "
		    "before it was applied");
		return;
	}
	if (unsure == 0 && write->kind == API_WRITE_ALLOCATE &&
	    json_array_size(write->won) > 0) {
		api_allocate_partial(write, "the daemon is stopping");
		return;
	}
	if (unsure == 0) {
		api_error(call, 503, "unavailable", NULL, "the daemon is "
		    "stopping: %s", first > 0 ? "the allocation holds nothing" :
		    "nothing was published");
		return;
	}
	api_write_unsure(write, "the daemon is stopping", true);
}

/* The daemon stops: nothing more will call back. */
void
api_write_stop(struct api_call *call)
{
	if (call->write == NULL)
		return;
	evtimer_del(call->write->timer);
	evtimer_del(call->write->expiry);
	if (call->write->step != NULL)
		event_del(call->write->step);
	if (call->write->kind == API_WRITE_ALLOCATE)
		api_allocating_drop(call->write);
}

/*
 * A server or subnet as the decoder read it, for a dry run's plan:
 * addresses, prefixes, MAC addresses and pools in the form it stores.
 */
static json_t *
api_plan_entity(const struct change *change)
{
	char first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX];
	json_t *entity = json_object(), *pools;
	size_t i;

	json_object_set_new(entity, "id", json_string(change->id));
	json_object_set_new(entity, "vrf", json_string(change->vrf != NULL ?
	    change->vrf : ""));
	if (change->entity == CHANGE_SERVER) {
		json_object_set_new(entity, "hostname",
		    json_string(change->hostname));
		if (change->has_ip) {
			addr_format(&change->ip, first, sizeof(first));
			json_object_set_new(entity, "ip_address",
			    json_string(first));
		}
		json_object_set_new(entity, "nic_mac",
		    json_string(change->nic_mac));
		json_object_set_new(entity, "device_type",
		    json_string(change->device_type));
		json_object_set_new(entity, "manufacture",
		    json_string(change->manufacture));
		return entity;
	}
	json_object_set_new(entity, "name", json_string(change->name));
	addr_format(&change->cidr.addr, first, sizeof(first));
	json_object_set_new(entity, "cidr", json_sprintf("%s/%d", first,
	    change->cidr.length));
	pools = json_array();
	for (i = 0; i < change->pool_count; i++) {
		addr_format(&change->pools[i].first, first, sizeof(first));
		addr_format(&change->pools[i].last, last, sizeof(last));
		json_array_append_new(pools, json_sprintf("%s-%s", first, last));
	}
	json_object_set_new(entity, "static_ip_pools", pools);
	json_object_set_new(entity, "ping", json_boolean(change->ping));
	return entity;
}

/*
 * Checks an event with the consumer's own decoder, so that the API never
 * publishes what the daemon would dead-letter.  Returns -1 with the
 * decoder's reason.  With plan, the server or subnet read is added to it
 * (api_plan_entity()).
 */
static int
api_event_check(const struct api *api, enum change_entity entity,
    const char *key, const char *value, json_t *plan, char *reason,
    size_t reasonlen)
{
	struct decode_input input;
	struct change change;
	enum decode_result result;

	memset(&input, 0, sizeof(input));
	input.entity = entity;
	input.key = key;
	input.key_len = strlen(key);
	input.value = value;
	input.value_len = strlen(value);
	input.limits = &api->limits;
	memset(&change, 0, sizeof(change));
	result = decode_message(DECODE_CLOUDEVENTS, &input, &change, reason,
	    reasonlen);
	if (result == DECODE_OK && plan != NULL)
		json_array_append_new(plan, api_plan_entity(&change));
	change_clear(&change);
	return result == DECODE_OK ? 0 : -1;
}

/* Adds an event (takes value) to a write. */
static struct api_event *
api_event_add(struct api_write *write, const char *topic, const char *key,
    char *value, const char *id)
{
	struct api_event *event;

	if (write->count == write->capacity) {
		write->capacity = write->capacity ? write->capacity * 2 : 4;
		if ((write->events = reallocarray(write->events,
		    write->capacity, sizeof(*write->events))) == NULL)
			fatal("api: reallocarray");
	}
	event = &write->events[write->count++];
	memset(event, 0, sizeof(*event));
	event->write = write;
	event->topic = topic;
	if ((event->key = strdup(key)) == NULL ||
	    (id != NULL && (event->id = strdup(id)) == NULL))
		fatal("api: strdup");
	event->value = value;
	return event;
}

/*
 * Builds a mark request event: set (status and data) or cleared, with
 * the requester and preconditions; value is the caller's to free.
 */
static char *
api_mark_event(const char *id, const char *vrf, const char *ip,
    const char *requester, json_t *data, bool if_available,
    const char *if_match, char *mark_id, size_t mark_idlen)
{
	json_t *event = json_object();
	struct ip_addr parsed;
	char now[40], *text, written[ADDR_TEXT_MAX], reason[128];

	/*
	 * The key is the address as the consumer writes it back (an
	 * allocation's candidates come in PostgreSQL's text, "::0.0.0.2"
	 * for ::2): any other spelling is refused there (docs/EVENTS.md).
	 */
	if (addr_parse(ip, &parsed, reason, sizeof(reason)) == 0) {
		addr_format(&parsed, written, sizeof(written));
		ip = written;
	}
	snprintf(mark_id, mark_idlen, "%s%s%s", vrf, *vrf ? "/" : "", ip);
	api_now_text(now, sizeof(now));
	json_object_set_new(event, "specversion", json_string("1.0"));
	json_object_set_new(event, "id", json_string(id));
	json_object_set_new(event, "source", json_string("/api/v1"));
	json_object_set_new(event, "type", json_string(data != NULL ?
	    "ipam.mark.set" : "ipam.mark.cleared"));
	json_object_set_new(event, "subject", json_string(mark_id));
	json_object_set_new(event, "time", json_string(now));
	json_object_set_new(event, "ipamrequester", json_string(requester));
	if (if_available)
		json_object_set_new(event, "ipamifavailable", json_true());
	if (if_match != NULL)
		json_object_set_new(event, "ipamifmatch", json_string(if_match));
	if (data != NULL) {
		json_object_set_new(data, "address", json_string(ip));
		if (*vrf != '\0')
			json_object_set_new(data, "vrf", json_string(vrf));
		json_object_set(event, "data", data);
	}
	text = json_dumps(event, JSON_COMPACT);
	json_decref(event);
	if (text == NULL)
		fatalx("api: json_dumps failed");
	return text;
}

/* One event delivered, or given up by the producer. */
static void
api_event_delivered(const char *error, int32_t partition, int64_t offset,
    void *arg)
{
	struct api_event *event = arg;
	struct api_write *write = event->write;
	struct api_call *call = write->call;
	struct timeval now = { 0, 0 };
	size_t i;

	call->pending--;
	if (call->req == NULL) {
		api_call_release(call);
		return;
	}
	event->delivered = true;
	event->partition = partition;
	event->offset = offset;
	if (error != NULL && (event->failure = strdup(error)) == NULL)
		fatal("api: strdup");
	if (error == NULL)
		call->api->stats.events_published++;
	/* Counted, not looked for: an import sends 200,000. */
	if (--write->undelivered > 0)
		return;		/* the others are still on their way */
	for (i = write->round_start; i < write->count; i++)
		if (write->events[i].failure != NULL) {
			api_write_not_taken(write, &write->events[i]);
			return;
		}
	if (!write->polling) {
		write->polling = true;
		evtimer_add(write->timer, &now);
		/* Acknowledged: back to the wait itself, without the grace. */
		evtimer_del(write->expiry);
		api_write_expiry_arm(write, 0);
	}
}

/*
 * Answers a write of which Kafka did not take an event (failed, the
 * first such): nothing of it was published, or only a part, which the
 * answer says; an allocation keeps what earlier rounds won.  A failure
 * reported after a send may be a time-out of an event Kafka wrote after
 * all: a request's id is given to follow.
 */
static void
api_write_not_taken(struct api_write *write, const struct api_event *failed)
{
	struct api_call *call = write->call;
	json_t *body, *ids;
	char why[1024];
	size_t i, sent = 0;

	/* Of this round: an allocation's earlier rounds are decided. */
	for (i = write->round_start; i < write->count; i++)
		if (write->events[i].sent && write->events[i].failure == NULL)
			sent++;
	snprintf(why, sizeof(why), "Kafka did not take %s (%s)",
	    failed->id != NULL ? failed->id : "an event", failed->failure);
	if (write->kind == API_WRITE_ALLOCATE && (sent > 0 ||
	    json_array_size(write->won) > 0)) {
		api_allocate_partial(write, why);
		return;
	}
	if (write->kind == API_WRITE_ALLOCATE)
		api_allocating_drop(write);
	body = json_object();
	json_object_set_new(body, "error", json_string("unavailable"));
	json_object_set_new(body, "published", json_integer((json_int_t)sent));
	if (write->kind == API_WRITE_IMPORT && sent > 0)
		json_object_set_new(body, "detail", json_sprintf("%s: %zu of "
		    "the import's %zu events were published and are applied; "
		    "send the import again for the rest (it changes nothing "
		    "twice)", why, sent, write->count));
	else if (failed->sent && failed->id != NULL) {
		json_object_set_new(body, "detail", json_sprintf("%s: it may "
		    "have been written all the same; GET /api/v1/requests/%s "
		    "tells whether it was applied", why, failed->id));
		ids = json_array();
		json_array_append_new(ids, json_string(failed->id));
		json_object_set_new(body, "requests", ids);
	} else
		json_object_set_new(body, "detail", json_sprintf("%s: nothing "
		    "was published", why));
	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "Retry-After", "5");
	api_reply_json(call, 503, body);
}

/*
 * Publishes the events of this round; answers 503 when Kafka or
 * PostgreSQL is away, before anything is published.
 */
static void
api_write_publish(struct api_write *write)
{
	struct api_call *call = write->call;
	struct api *api = call->api;
	char err[512];
	size_t i;

	if (api->producer != NULL && !readpool_is_up(api->pool) &&
	    write->kind == API_WRITE_ALLOCATE && json_array_size(write->won) >
	    0) {
		api_allocate_partial(write, "PostgreSQL is away");
		return;
	}
	if (api->producer == NULL || !readpool_is_up(api->pool)) {
		if (write->kind == API_WRITE_ALLOCATE &&
		    json_array_size(write->won) > 0) {
			api_allocate_partial(write, api->producer == NULL ?
			    "this daemon has no Kafka producer" :
			    "PostgreSQL is away");
			return;
		}
		if (write->kind == API_WRITE_ALLOCATE)
			api_allocating_drop(write);
		api_error(call, 503, "unavailable", NULL, "%s", api->producer ==
		    NULL ? "this daemon has no Kafka producer" :
		    "PostgreSQL is away: nothing was published");
		return;
	}
	write->undelivered = 0;
	for (i = write->round_start; i < write->count; i++) {
		if (producer_send(api->producer, write->events[i].topic,
		    write->events[i].key, write->events[i].value,
		    strlen(write->events[i].value), api_event_delivered,
		    &write->events[i], err, sizeof(err)) == -1) {
			/* Those already queued still report; say it now. */
			log_warnx("api: %s", err);
			write->events[i].delivered = true;
			if ((write->events[i].failure = strdup(err)) == NULL)
				fatal("api: strdup");
			continue;
		}
		write->events[i].sent = true;
		write->undelivered++;
		call->pending++;
	}
	if (write->undelivered > 0) {
		/*
		 * A reservation's events are acknowledged in milliseconds:
		 * one still out when the wait runs out is answered then,
		 * not at its message.timeout.ms; a second at least, for a
		 * wait shorter than that or an allocation's later round
		 * published after it.  An import's many events take longer,
		 * API_IMPORT_ACK_MS past the wait at the most.
		 */
		/* An earlier round's may be pending: set it anew. */
		evtimer_del(write->expiry);
		api_write_expiry_arm(write, write->kind == API_WRITE_IMPORT ?
		    api_write_left_ms(write) + API_IMPORT_ACK_MS :
		    API_WRITE_GRACE_MS);
		return;		/* the deliveries finish the round */
	}
	api_write_not_taken(write, &write->events[write->round_start]);
}

/* Tells whether the write's wait has run out. */
static bool
api_write_expired(const struct api_write *write)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > write->deadline.tv_sec ||
	    (now.tv_sec == write->deadline.tv_sec &&
	    now.tv_nsec >= write->deadline.tv_nsec);
}

/* What is left of the write's wait, in milliseconds (below 0: past). */
static long long
api_write_left_ms(const struct api_write *write)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(write->deadline.tv_sec - now.tv_sec) * 1000 +
	    (write->deadline.tv_nsec - now.tv_nsec) / 1000000;
}

/*
 * Arms the write's own deadline, at least least_ms from now: a poll that
 * waits for a connection (PostgreSQL away) would otherwise hold the
 * answer past it.
 */
static void
api_write_expiry_arm(struct api_write *write, long long least_ms)
{
	struct timeval left = { 0, 0 };
	long long ms;

	if (evtimer_pending(write->expiry, NULL))
		return;
	ms = api_write_left_ms(write);
	if (ms < least_ms)
		ms = least_ms;
	if (ms > 0) {
		left.tv_sec = ms / 1000;
		left.tv_usec = (ms % 1000) * 1000;
	}
	evtimer_add(write->expiry, &left);
}

/* The deadline came while the write is followed: 202 now. */
static void
api_write_expire(evutil_socket_t fd, short events, void *arg)
{
	struct api_write *write = arg;
	char why[128];

	if (write->call->req == NULL)
		return;
	/* Kafka has not acknowledged every event of the round yet. */
	if (!write->polling && write->undelivered > 0) {
		if (write->kind == API_WRITE_IMPORT)
			snprintf(why, sizeof(why), "api.write_wait_ms and %d s "
			    "more ran out", API_IMPORT_ACK_MS / 1000);
		else
			snprintf(why, sizeof(why), "api.write_wait_ms ran out");
		api_write_unsure(write, why, false);
		return;
	}
	/*
	 * An allocation looking for its round's candidates: nothing of the
	 * round is published, what earlier rounds won is told.  The query
	 * may be waiting for a connection, which, PostgreSQL away, would
	 * never answer it.
	 */
	if (!write->polling) {
		snprintf(why, sizeof(why), "no answer within api.write_wait_ms "
		    "(%lld ms)", write->call->api->write_wait_ms);
		api_write_failed(write, NULL, why);
		return;
	}
	api_write_accepted(write, API_WRITE_WAITED);
}

/*
 * The last event of each partition an import wrote to (an array of *n,
 * the write's); NULL while an event is on its way or was not taken
 * (nothing to follow).  Found once: every event is delivered then, and
 * the polls ask for it again and again.  Partitions are few.
 */
static const struct api_event **
api_import_last(struct api_write *write, size_t *n)
{
	const struct api_event *e, **last = NULL;
	size_t i, j;

	*n = 0;
	if (write->last != NULL) {
		*n = write->last_count;
		return write->last;
	}
	for (i = 0; i < write->count; i++)
		if (!write->events[i].delivered ||
		    write->events[i].failure != NULL)
			return NULL;
	for (i = 0; i < write->count; i++) {
		e = &write->events[i];
		for (j = 0; j < *n; j++)
			if (last[j]->partition == e->partition &&
			    strcmp(last[j]->topic, e->topic) == 0)
				break;
		if (j == *n) {
			if ((last = reallocarray(last, *n + 1,
			    sizeof(*last))) == NULL)
				fatal("api: reallocarray");
			last[(*n)++] = e;
		} else if (e->offset > last[j]->offset)
			last[j] = e;
	}
	write->last = last;
	write->last_count = *n;
	return last;
}

/*
 * Where an import's progress is read: "topic:partition:offset" of the last
 * event it wrote to each partition, joined by ',' (GET /imports/{this}).
 * NULL when there is nothing to follow, or when the text would be longer
 * than API_IMPORT_PROGRESS_MAX (*too_long).
 */
static char *
api_import_progress(struct api_write *write, bool *too_long)
{
	const struct api_event **last;
	char *text = NULL, *more;
	size_t j, n;

	if ((last = api_import_last(write, &n)) == NULL)
		return NULL;
	for (j = 0; j < n; j++) {
		if (asprintf(&more, "%s%s%s:%d:%lld", text ? text : "",
		    text ? "," : "", last[j]->topic, (int)last[j]->partition,
		    (long long)last[j]->offset) == -1)
			fatal("api: asprintf");
		free(text);
		text = more;
		if (strlen(text) > API_IMPORT_PROGRESS_MAX) {
			free(text);
			text = NULL;
			*too_long = true;
			break;
		}
	}
	return text;
}

/* The wait ran out (or the client left): 202 and where to look. */
static void
api_write_accepted(struct api_write *write, const char *detail)
{
	struct api_call *call = write->call;
	const char *first = NULL;
	json_t *body = json_object(), *ids = json_array();
	char location[128], *progress = NULL, *where;
	bool too_long = false;
	size_t i;

	if (write->kind == API_WRITE_ALLOCATE)
		api_allocating_drop(write);
	if (write->kind == API_WRITE_IMPORT &&
	    (progress = api_import_progress(write, &too_long)) != NULL) {
		/* Topic names need no escaping: [A-Za-z0-9._-]. */
		if (asprintf(&where, "/api/v1/imports/%s", progress) == -1)
			fatal("api: asprintf");
		evhttp_add_header(evhttp_request_get_output_headers(call->req),
		    "Location", where);
		json_object_set_new(body, "state", json_string("pending"));
		json_object_set_new(body, "detail", json_sprintf("%s; GET %s "
		    "tells when every event of the import is applied", detail,
		    where));
		json_object_set_new(body, "import", json_string(progress));
		free(where);
		free(progress);
		json_decref(ids);
		api_reply_json(call, 202, body);
		return;
	}
	/* An allocation's earlier rounds are decided: `allocated` says them. */
	for (i = write->kind == API_WRITE_ALLOCATE ? write->round_start : 0;
	    i < write->count; i++)
		if (write->events[i].id != NULL) {
			json_array_append_new(ids,
			    json_string(write->events[i].id));
			if (first == NULL)
				first = write->events[i].id;
		}
	json_object_set_new(body, "state", json_string("pending"));
	api_allocate_held(write, body);
	/*
	 * An import not all delivered has nothing to follow, nor one
	 * spread over more partitions than a URL holds.
	 */
	json_object_set_new(body, "detail", write->kind == API_WRITE_IMPORT ?
	    json_sprintf("%s; the import is published whole and is applied "
	    "as the daemon consumes its topics (%s: read the servers and "
	    "subnets back)", detail, too_long ? "its events went to more "
	    "partitions than the URL of its progress can name" : "not all "
	    "of it was taken by Kafka yet, so there is nothing to follow") :
	    json_string(detail));
	if (first != NULL) {
		snprintf(location, sizeof(location), "/api/v1/requests/%s",
		    first);
		evhttp_add_header(evhttp_request_get_output_headers(call->req),
		    "Location", location);
		json_object_set_new(body, "requests", ids);
	} else
		json_decref(ids);
	api_reply_json(call, 202, body);
}

/* What an allocation reserved in its decided rounds, when anything. */
static void
api_allocate_held(struct api_write *write, json_t *body)
{
	if (write->kind == API_WRITE_ALLOCATE &&
	    json_array_size(write->won) > 0)
		json_object_set(body, "allocated", write->won);
}

/*
 * Ends an allocation with what it reserved so far: 409 with those rows
 * (they stay reserved), and why the rest could not be had.  A round is
 * published whole, so this follows only a reservation lost to another
 * instance, or PostgreSQL lost mid-way.
 */
static void
api_allocate_partial(struct api_write *write, const char *why)
{
	json_t *body = json_object(), *ids = json_array();
	size_t i;

	api_allocating_drop(write);
	/* Published in this round and not decided: they may still win. */
	for (i = write->round_start; i < write->count; i++)
		if (write->events[i].sent && write->events[i].failure == NULL &&
		    write->events[i].outcome == NULL)
			json_array_append_new(ids,
			    json_string(write->events[i].id));
	json_object_set_new(body, "error", json_string("conflict"));
	json_object_set_new(body, "detail", json_sprintf("only %zu of %zu "
	    "addresses could be reserved: %s%s", json_array_size(write->won),
	    write->want, why, json_array_size(ids) > 0 ? "; the requests "
	    "published but not yet applied may still reserve addresses for "
	    "you: GET /api/v1/requests/{id} of each" : ""));
	json_object_set(body, "allocated", write->won);
	if (json_array_size(ids) > 0)
		json_object_set(body, "requests", ids);
	json_decref(ids);
	api_reply_json(write->call, 409, body);
}

/*
 * Answers a write whose query failed: once something was published it
 * can only be followed later (202); an allocation that already holds
 * addresses says which; else the query's own error.
 */
static void
api_write_failed(struct api_write *write, const PGresult *result,
    const char *error)
{
	char why[512];

	if (write->polling) {
		api_write_accepted(write, API_WRITE_WAITED);
		return;
	}
	if (write->kind == API_WRITE_ALLOCATE && json_array_size(write->won) >
	    0) {
		if (result != NULL)
			snprintf(why, sizeof(why), "PostgreSQL: %s",
			    PQresultErrorMessage(result));
		else
			snprintf(why, sizeof(why), "PostgreSQL: %s", error ?
			    error : "connection lost");
		api_allocate_partial(write, why);
		return;
	}
	if (write->kind == API_WRITE_ALLOCATE)
		api_allocating_drop(write);
	api_query_failed(write->call, result, error);
}

/*
 * The common start of a write's query callback: counts it back, frees a
 * call answered meanwhile, answers a failed query.  Returns false when
 * the callback has nothing more to do.
 */
static bool
api_write_result(struct api_write *write, const PGresult *result,
    const char *error)
{
	struct api_call *call = write->call;

	call->pending--;
	if (call->req == NULL) {
		api_call_release(call);
		return false;
	}
	if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK) {
		api_write_failed(write, result, error);
		return false;
	}
	return true;
}

/*
 * The row of an applied request's address, a new reference: the row as
 * it stands, or, when the address has none (its subnet deleted or moved
 * since, in the same batch or before the outcome was read), its vrf and
 * address.
 */
static json_t *
api_outcome_row(const json_t *outcome)
{
	json_t *row = json_object_get(outcome, "row");

	return json_is_object(row) ? json_deep_copy(row) : json_pack(
	    "{s:O?, s:O?}", "vrf", json_object_get(outcome, "vrf"),
	    "ip_address", json_object_get(outcome, "address"));
}

/* A mark request was decided: 200 with the row, or 409 with it. */
static void
api_mark_decided(struct api_write *write)
{
	json_t *outcome = write->events[0].outcome;
	json_t *row = json_object_get(outcome, "row"), *body;
	const char *state = json_string_value(json_object_get(outcome, "state"));

	if (state != NULL && strcmp(state, "applied") == 0) {
		body = api_outcome_row(outcome);
		json_object_set(body, "request", outcome);
		json_object_del(json_object_get(body, "request"), "row");
		api_reply_json(write->call, 200, body);
		return;
	}
	body = json_object();
	json_object_set_new(body, "error", json_string("conflict"));
	json_object_set(body, "detail", json_object_get(outcome, "detail"));
	json_object_set(body, "current", row ? row : json_null());
	json_object_set(body, "request", json_object_get(outcome, "id"));
	api_reply_json(write->call, 409, body);
}

/* An allocation's round was decided: keep the winners, try again for the rest. */
static void
api_allocate_decided(struct api_write *write)
{
	json_t *body;
	const char *state;
	size_t i;

	api_allocating_drop(write);
	for (i = write->round_start; i < write->count; i++) {
		state = json_string_value(json_object_get(
		    write->events[i].outcome, "state"));
		if (state != NULL && strcmp(state, "applied") == 0)
			json_array_append_new(write->won, api_outcome_row(
			    write->events[i].outcome));
	}
	if (json_array_size(write->won) < write->want &&
	    ++write->round < API_ALLOCATE_ROUNDS) {
		write->round_start = write->count;
		api_allocate_round(write);
		return;
	}
	if (json_array_size(write->won) == write->want) {
		body = json_object();
		json_object_set(body, "addresses", write->won);
		api_reply_json(write->call, 201, body);
		return;
	}
	api_allocate_partial(write, "others took the rest");
}

/* The outcomes of the round's requests, as far as they are decided. */
static void
api_write_outcomes(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct api_write *write = arg;
	struct api_call *call = write->call;
	struct timeval again = { 0, API_WRITE_POLL_MS * 1000 };
	json_t *outcome;
	size_t i, decided = 0;
	int row;

	if (!api_write_result(write, result, error))
		return;
	for (row = 0; row < PQntuples(result); row++) {
		if (PQgetisnull(result, row, 1))
			continue;
		for (i = write->round_start; i < write->count; i++)
			if (write->events[i].outcome == NULL &&
			    strcmp(write->events[i].id,
			    PQgetvalue(result, row, 0)) == 0) {
				outcome = json_loads(PQgetvalue(result, row, 1),
				    0, NULL);
				write->events[i].outcome = outcome;
			}
	}
	for (i = write->round_start; i < write->count; i++)
		decided += write->events[i].outcome != NULL;
	if (decided < write->count - write->round_start) {
		if (call->gone || api_write_expired(write))
			api_write_accepted(write, API_WRITE_WAITED);
		else
			evtimer_add(write->timer, &again);
		return;
	}
	write->polling = false;
	if (write->kind == API_WRITE_MARK)
		api_mark_decided(write);
	else
		api_allocate_decided(write);
}

/* Whether an import's events were all applied (the offsets moved past them). */
static void
api_import_applied(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct api_write *write = arg;
	struct api_call *call = write->call;
	struct timeval again = { 0, API_WRITE_POLL_MS * 4 * 1000 };
	json_t *body;

	if (!api_write_result(write, result, error))
		return;
	if (PQntuples(result) != 1 || strcmp(PQgetvalue(result, 0, 0), "t") !=
	    0) {
		if (call->gone || api_write_expired(write))
			api_write_accepted(write, API_WRITE_WAITED);
		else
			evtimer_add(write->timer, &again);
		return;
	}
	body = json_object();
	json_object_set_new(body, "state", json_string("applied"));
	json_object_set_new(body, "servers", json_integer((json_int_t)
	    write->servers));
	json_object_set_new(body, "subnets", json_integer((json_int_t)
	    write->subnets));
	api_reply_json(call, 200, body);
}

/* Asks PostgreSQL whether the write's events were applied. */
static void
api_write_poll(evutil_socket_t fd, short events, void *arg)
{
	struct api_write *write = arg;
	struct api_call *call = write->call;
	const struct api_event **last;
	const char *params[2];
	json_t *list = json_array(), *item;
	char *text;
	size_t i, n;
	int rc;

	if (call->req == NULL)
		return;
	if (write->kind == API_WRITE_IMPORT) {
		/*
		 * Applied once the stored offset of each partition passed
		 * its last event (all were delivered: polling began).
		 */
		last = api_import_last(write, &n);
		for (i = 0; i < n; i++) {
			item = json_object();
			json_object_set_new(item, "topic",
			    json_string(last[i]->topic));
			json_object_set_new(item, "part",
			    json_integer(last[i]->partition));
			json_object_set_new(item, "off",
			    json_integer(last[i]->offset));
			json_array_append_new(list, item);
		}
		text = json_dumps(list, JSON_COMPACT);
		params[0] = text;
		params[1] = call->api->group_id;
		/* Counted first: the callback may come before the call returns. */
		call->pending++;
		rc = readpool_query_first(call->api->pool, "SELECT "
		    "ipamd.api_import_state($1::jsonb, $2)->>'state' = "
		    "'applied'", 2, params, api_import_applied, write);
	} else {
		for (i = write->round_start; i < write->count; i++)
			if (write->events[i].outcome == NULL)
				json_array_append_new(list,
				    json_string(write->events[i].id));
		text = json_dumps(list, JSON_COMPACT);
		params[0] = text;
		/* Counted first: the callback may come before the call returns. */
		call->pending++;
		rc = readpool_query_first(call->api->pool, "SELECT id, "
		    "ipamd.api_request(id)::text FROM jsonb_array_elements_text("
		    "$1::jsonb) AS id", 1, params, api_write_outcomes, write);
	}
	free(text);
	json_decref(list);
	if (rc == -1) {
		call->pending--;
		/* Published but cannot be followed now: say where to look. */
		api_write_accepted(write, API_WRITE_WAITED);
	}
}

/* The client left: a write that waits answers 202 now. */
void
api_write_gone(struct api_call *call)
{
	struct timeval now = { 0, 0 };

	/* Pending means no poll is out; one that is out sees gone itself. */
	if (call->write != NULL && evtimer_pending(call->write->timer, NULL)) {
		evtimer_del(call->write->timer);
		evtimer_add(call->write->timer, &now);
	}
}

/* Reads a request's JSON object body; answers 400 and returns NULL when bad. */
static json_t *
api_body(struct api_call *call, const char *const *allowed)
{
	struct evbuffer *buffer = evhttp_request_get_input_buffer(call->req);
	size_t len = evbuffer_get_length(buffer), i;
	json_error_t error;
	const char *name;
	json_t *body, *value;

	if (len == 0) {
		api_error(call, 400, "bad_request", NULL, "a JSON object body "
		    "is required");
		return NULL;
	}
	body = json_loadb((const char *)evbuffer_pullup(buffer, -1), len,
	    JSON_REJECT_DUPLICATES, &error);
	if (body == NULL) {
		api_error(call, 400, "bad_request", NULL, "the body is not JSON: "
		    "%s (line %d, column %d)", error.text, error.line,
		    error.column);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		api_error(call, 400, "bad_request", NULL, "the body must be a "
		    "JSON object");
		return NULL;
	}
	json_object_foreach(body, name, value) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(allowed[i], name) == 0)
				break;
		if (allowed[i] == NULL) {
			api_error(call, 400, "bad_request", name, "%s: unknown "
			    "field", name);
			json_decref(body);
			return NULL;
		}
	}
	return body;
}

/* A field that must be a string or absent; -1 after answering 400. */
static int
api_body_string(struct api_call *call, json_t *body, const char *name,
    const char **out)
{
	json_t *value = json_object_get(body, name);

	*out = NULL;
	if (value == NULL || json_is_null(value))
		return 0;
	if (!json_is_string(value)) {
		api_error(call, 400, "bad_request", name, "%s: must be a string",
		    name);
		return -1;
	}
	*out = json_string_value(value);
	return 0;
}

/*
 * An If-Match value as the etags are written: quoted, as an HTTP client
 * sends it, or bare, as a shell leaves "3f2a…" typed on a command line
 * (then it is quoted here); white space around it is dropped.  NULL when
 * there is none.
 */
static const char *
api_if_match(const char *value, char *buf, size_t buflen)
{
	size_t len;

	if (value == NULL)
		return NULL;
	value += strspn(value, " \t");
	len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len > 0 && value[0] == '"')
		snprintf(buf, buflen, "%.*s", (int)len, value);
	else
		snprintf(buf, buflen, "\"%.*s\"", (int)len, value);
	return buf;
}

/* PUT or DELETE /marks/{vrf}/{ip}. */
void
api_write_mark(struct api_call *call, const char *vrf_segment,
    const char *ip_segment, bool clear)
{
	static const char *const allowed[] = { "status", "description",
	    "reason", "if_available", NULL };
	struct api *api = call->api;
	struct api_write *write;
	const char *status = NULL, *description, *reason, *if_match;
	char tag[API_ETAG_MAX];
	json_t *body = NULL, *data = NULL, *available;
	char vrf[80], ip[ADDR_TEXT_MAX], id[40], mark_id[160], why[1024];
	char *value;

	if (api_query_params_none(call) == -1 ||
	    api_path_address(call, vrf_segment, ip_segment, vrf, sizeof(vrf),
	    ip, sizeof(ip), true) == -1)
		return;
	if (api->marks_topic == NULL) {
		api_error(call, 503, "unavailable", NULL, "no mark topic in "
		    "cloudevents format is configured (api.marks_topic)");
		return;
	}
	if_match = api_if_match(evhttp_find_header(
	    evhttp_request_get_input_headers(call->req), "If-Match"), tag,
	    sizeof(tag));
	available = NULL;
	if (!clear) {
		if ((body = api_body(call, allowed)) == NULL)
			return;
		if (api_body_string(call, body, "status", &status) == -1 ||
		    api_body_string(call, body, "description", &description) ==
		    -1 || api_body_string(call, body, "reason", &reason) == -1)
			goto done;
		available = json_object_get(body, "if_available");
		if (available != NULL && !json_is_boolean(available)) {
			api_error(call, 400, "bad_request", "if_available",
			    "if_available: must be true or false");
			goto done;
		}
		if (status == NULL || (strcmp(status, "reserved") != 0 &&
		    strcmp(status, "quarantine") != 0)) {
			api_error(call, 400, "bad_request", "status", "status: "
			    "must be reserved or quarantine");
			goto done;
		}
		data = json_object();
		json_object_set_new(data, "status", json_string(status));
		if (description != NULL)
			json_object_set_new(data, "description",
			    json_string(description));
		if (reason != NULL)
			json_object_set_new(data, "reason", json_string(reason));
	} else if (evbuffer_get_length(evhttp_request_get_input_buffer(
	    call->req)) > 0) {
		api_error(call, 400, "bad_request", NULL, "DELETE takes no body");
		return;
	}
	api_request_id(id, sizeof(id));
	value = api_mark_event(id, vrf, ip, call->requester, data,
	    json_is_true(available), if_match, mark_id, sizeof(mark_id));
	if (api_event_check(api, CHANGE_MARK, mark_id, value, NULL, why,
	    sizeof(why)) == -1) {
		free(value);
		api_error(call, 400, "bad_request", NULL, "%s", why);
		goto done;
	}
	write = api_write_new(call, API_WRITE_MARK);
	snprintf(api_event_add(write, api->marks_topic, mark_id, value,
	    id)->ip, ADDR_TEXT_MAX, "%s", ip);
	api_write_publish(write);
done:
	json_decref(data);
	json_decref(body);
}

/* Publishes one reservation per address of this round's candidates. */
static void
api_allocate_candidates(struct pgconn *pg, PGresult *result,
    const char *error, void *arg)
{
	struct api_write *write = arg;
	struct api_call *call = write->call;
	struct api *api = call->api;
	json_t *found, *addresses, *address, *data;
	struct api_event *event;
	char id[40], mark_id[160], key[160], why[1024], *value;
	size_t i, usable = 0;

	if (!api_write_result(write, result, error))
		return;
	/* No one waits for more: what was won is kept, nothing is asked. */
	if (call->gone) {
		if (json_array_size(write->won) > 0)
			api_allocate_partial(write, "the client left");
		else
			api_error(call, 503, "unavailable", NULL, "the client left "
			    "before anything was published");
		return;
	}
	if (PQntuples(result) != 1 || PQgetisnull(result, 0, 0)) {
		if (json_array_size(write->won) > 0)
			api_allocate_partial(write, "the subnet was deleted");
		else
			api_error(call, 404, "not_found", NULL, "no live subnet "
			    "has the id \"%s\"", write->subnet_id);
		return;
	}
	found = json_loads(PQgetvalue(result, 0, 0), 0, NULL);
	free(write->vrf);
	if ((write->vrf = strdup(json_string_value(json_object_get(found,
	    "vrf")) ?: "")) == NULL)
		fatal("api: strdup");
	addresses = json_object_get(json_object_get(found, "free"),
	    "addresses");
	/*
	 * A round publishes all that is still wanted or nothing, so that a
	 * pool too small for the request answers 409 holding nothing.  The
	 * query left out the addresses other allocations of this daemon were
	 * trying for; those they took since are left out here.
	 */
	json_array_foreach(addresses, i, address) {
		snprintf(key, sizeof(key), "%s/%s", write->vrf,
		    json_string_value(address));
		if (!api_allocating_has(api, key))
			usable++;
	}
	if (usable + json_array_size(write->won) < write->want &&
	    json_array_size(addresses) + json_array_size(write->won) >=
	    write->want && ++write->round < API_ALLOCATE_ROUNDS) {
		/* Taken while the query ran: look again. */
		json_decref(found);
		api_allocate_round(write);
		return;
	}
	if (usable + json_array_size(write->won) < write->want) {
		json_decref(found);
		if (json_array_size(write->won) > 0) {
			api_allocate_partial(write, "others took the rest");
			return;
		}
		api_error(call, 409, "conflict", NULL, "subnet %s has %zu free "
		    "static addresses, fewer than the %zu asked for",
		    write->subnet_id, usable, write->want);
		return;
	}
	json_array_foreach(addresses, i, address) {
		/*
		 * Another allocation may have taken this one since the query
		 * left: the list asked for more than needed for that.
		 */
		snprintf(key, sizeof(key), "%s/%s", write->vrf,
		    json_string_value(address));
		if (api_allocating_has(api, key))
			continue;
		if (write->count - write->round_start + json_array_size(
		    write->won) >= write->want)
			break;
		api_request_id(id, sizeof(id));
		data = json_object();
		json_object_set_new(data, "status", json_string("reserved"));
		if (write->description != NULL)
			json_object_set_new(data, "description",
			    json_string(write->description));
		value = api_mark_event(id, write->vrf, json_string_value(address),
		    call->requester, data, true, NULL, mark_id, sizeof(mark_id));
		json_decref(data);
		if (api_event_check(api, CHANGE_MARK, mark_id, value, NULL, why,
		    sizeof(why)) == -1) {
			free(value);
			json_decref(found);
			api_allocating_drop(write);
			api_error(call, 400, "bad_request", "description", "%s",
			    why);
			return;
		}
		event = api_event_add(write, api->marks_topic, mark_id, value, id);
		snprintf(event->vrf, sizeof(event->vrf), "%s", write->vrf);
		snprintf(event->ip, sizeof(event->ip), "%s",
		    json_string_value(address));
		json_array_append_new(api->allocating, json_string(key));
	}
	json_decref(found);
	api_write_publish(write);
}

/*
 * Looks for the next free addresses: never one this daemon is trying for
 * another allocation, nor one an earlier round lost.
 */
static void
api_allocate_round(struct api_write *write)
{
	struct api_call *call = write->call;
	const char *params[3];
	json_t *exclude = json_array(), *item;
	char n[24], *text, *at;
	size_t i, need;

	/* Pairs of vrf and address: a vrf's addresses may be another's too. */
	json_array_foreach(call->api->allocating, i, item) {
		at = strrchr(json_string_value(item), '/');
		json_array_append_new(exclude, json_pack("[s%s]",
		    json_string_value(item), (size_t)(at -
		    json_string_value(item)), at + 1));
	}
	for (i = 0; i < write->count; i++)
		json_array_append_new(exclude, json_pack("[ss]",
		    write->events[i].vrf, write->events[i].ip));
	text = json_dumps(exclude, JSON_COMPACT);
	json_decref(exclude);
	/* More than needed: others may take some before the answer. */
	need = write->want - json_array_size(write->won) +
	    json_array_size(call->api->allocating);
	snprintf(n, sizeof(n), "%zu", need < API_ALLOCATE_MAX ? need :
	    API_ALLOCATE_MAX);
	params[0] = write->subnet_id;
	params[1] = n;
	params[2] = text;
	/* Counted first: the callback may come before the call returns. */
	call->pending++;
	/* The lookup is waited for no longer than the write. */
	api_write_expiry_arm(write, 0);
	/* A write's query: ahead of the reads, never held back by them. */
	if (readpool_query_first(call->api->pool, "SELECT jsonb_build_object('vrf', "
	    "s.vrf, 'free', ipamd.api_next_free($1, $2::integer, ARRAY(SELECT "
	    "(e->>1)::inet FROM jsonb_array_elements($3::jsonb) e "
	    "WHERE e->>0 = s.vrf)))::text FROM "
	    "ipam_state.subnet s WHERE s.id = $1 AND NOT s.deleted", 3, params,
	    api_allocate_candidates, write) == -1) {
		call->pending--;
		api_write_failed(write, NULL, "no connection of the API is up, "
		    "or too many reads wait");
	}
	free(text);
}

/*
 * Checks what an allocation's reservations take from the request (its
 * description, the requester) before anything is looked up: one of them
 * with an address of the documentation range in the place of those the
 * pool will give, checked by the decoder as they will be.  A fault of
 * the request is a 400 whatever the subnet and its pool, not a 404 or a
 * 409.  Returns -1 when answered.
 */
static int
api_allocate_check(struct api_call *call, const char *description)
{
	json_t *data = json_object();
	char id[40], mark_id[160], why[1024], *value;
	int rc;

	json_object_set_new(data, "status", json_string("reserved"));
	if (description != NULL)
		json_object_set_new(data, "description",
		    json_string(description));
	api_request_id(id, sizeof(id));
	value = api_mark_event(id, "", "192.0.2.1", call->requester, data,
	    true, NULL, mark_id, sizeof(mark_id));
	json_decref(data);
	rc = api_event_check(call->api, CHANGE_MARK, mark_id, value, NULL, why,
	    sizeof(why));
	free(value);
	if (rc == -1)
		api_error(call, 400, "bad_request", strstr(why, "description") ?
		    "description" : NULL, "%s", why);
	return rc;
}

/* POST /subnets/{id}/allocate. */
void
api_write_allocate(struct api_call *call, const char *subnet_id)
{
	static const char *const allowed[] = { "count", "description", NULL };
	struct api_write *write;
	const char *description;
	json_t *body, *count;

	if (api_query_params_none(call) == -1)
		return;
	if (call->api->marks_topic == NULL) {
		api_error(call, 503, "unavailable", NULL, "no mark topic in "
		    "cloudevents format is configured (api.marks_topic)");
		return;
	}
	if ((body = api_body(call, allowed)) == NULL)
		return;
	count = json_object_get(body, "count");
	if (count != NULL && (!json_is_integer(count) ||
	    json_integer_value(count) < 1 ||
	    json_integer_value(count) > API_ALLOCATE_MAX)) {
		json_decref(body);
		api_error(call, 400, "bad_request", "count", "count: an integer "
		    "from 1 to %d", API_ALLOCATE_MAX);
		return;
	}
	if (api_body_string(call, body, "description", &description) == -1 ||
	    api_allocate_check(call, description) == -1) {
		json_decref(body);
		return;
	}
	write = api_write_new(call, API_WRITE_ALLOCATE);
	write->want = count ? (size_t)json_integer_value(count) : 1;
	write->won = json_array();
	if ((write->subnet_id = strdup(subnet_id)) == NULL ||
	    (description != NULL &&
	    (write->description = strdup(description)) == NULL))
		fatal("api: strdup");
	json_decref(body);
	api_allocate_round(write);
}

/*
 * Turns one imported entity into its upsert event, checked by the
 * decoder; returns -1 with the reason.
 */
static int
api_import_entity(struct api_write *write, enum change_entity entity,
    json_t *item, char *reason, size_t reasonlen)
{
	struct api *api = write->call->api;
	const char *topic = entity == CHANGE_SERVER ? api->servers_topic :
	    api->subnets_topic;
	json_t *event, *data, *id, *first, *plan;
	char event_id[40], now[40], key[300], *value;

	if (topic == NULL) {
		snprintf(reason, reasonlen, "no %s topic in cloudevents format "
		    "is configured", change_entity_name(entity));
		return -1;
	}
	if (!json_is_object(item)) {
		snprintf(reason, reasonlen, "must be a JSON object");
		return -1;
	}
	id = json_object_get(item, "id");
	if (json_is_integer(id))
		snprintf(key, sizeof(key), "%lld",
		    (long long)json_integer_value(id));
	else if (json_is_string(id) && json_string_length(id) < sizeof(key))
		snprintf(key, sizeof(key), "%s", json_string_value(id));
	else {
		snprintf(reason, reasonlen, "id: required, a string or an "
		    "integer");
		return -1;
	}
	data = json_deep_copy(item);
	json_object_del(data, "id");
	api_request_id(event_id, sizeof(event_id));
	api_now_text(now, sizeof(now));
	event = json_object();
	json_object_set_new(event, "specversion", json_string("1.0"));
	json_object_set_new(event, "id", json_string(event_id));
	json_object_set_new(event, "source", json_string("/api/v1/import"));
	json_object_set_new(event, "type", json_string(entity == CHANGE_SERVER ?
	    "ipam.server.upserted" : "ipam.subnet.upserted"));
	json_object_set_new(event, "subject", json_string(key));
	json_object_set_new(event, "time", json_string(now));
	/* Who imported it: the audit names them with each change it made. */
	json_object_set_new(event, "ipamrequestedby",
	    json_string(write->call->requester));
	json_object_set_new(event, "data", data);
	value = json_dumps(event, JSON_COMPACT);
	json_decref(event);
	if (value == NULL)
		fatalx("api: json_dumps failed");
	if ((first = json_object_get(write->seen, key)) != NULL) {
		snprintf(reason, reasonlen, "id %s is also %s's: an import "
		    "names each entity once", key, json_string_value(first));
		free(value);
		return -1;
	}
	json_object_set_new(write->seen, key, json_sprintf("%s[%zu]",
	    entity == CHANGE_SERVER ? "servers" : "subnets", write->item));
	plan = write->plan == NULL ? NULL : json_object_get(write->plan,
	    entity == CHANGE_SERVER ? "servers" : "subnets");
	if (api_event_check(api, entity, key, value, plan, reason,
	    reasonlen) == -1) {
		free(value);
		return -1;
	}
	/* A dry run publishes nothing: its plan is what it keeps. */
	if (plan != NULL)
		free(value);
	else
		api_event_add(write, topic, key, value, NULL);
	return 0;
}

/* The import is read whole: refused, planned (a dry run) or published. */
static void
api_import_read(struct api_write *write)
{
	struct api_call *call = write->call;
	json_t *answer, *dry = json_object_get(write->body, "dry_run");
	const char *params[1];
	char *text;

	write->servers = write->count - write->subnets;
	if (write->bad > 0) {
		answer = json_object();
		json_object_set_new(answer, "error", json_string("bad_request"));
		json_object_set_new(answer, "detail", json_sprintf("%zu of the "
		    "entities are refused; nothing was published", write->bad));
		json_object_set(answer, "errors", write->errors);
		api_reply_json(call, 400, answer);
		return;
	}
	if (json_is_true(dry)) {
		text = json_dumps(write->plan, JSON_COMPACT);
		params[0] = text;
		api_read(call, "SELECT ipamd.api_import_plan($1::jsonb)::text",
		    1, params);
		free(text);
		return;
	}
	if (write->count == 0) {
		answer = json_object();
		json_object_set_new(answer, "state", json_string("applied"));
		json_object_set_new(answer, "servers", json_integer(0));
		json_object_set_new(answer, "subnets", json_integer(0));
		api_reply_json(call, 200, answer);
		return;
	}
	api_write_publish(write);
}

/*
 * Turns the next API_IMPORT_STEP entities into events, and comes back on
 * the next turn of the loop for the rest.
 */
static void
api_import_step(evutil_socket_t fd, short events, void *arg)
{
	static const char *const lists[] = { "subnets", "servers" };
	struct api_write *write = arg;
	struct api_call *call = write->call;
	struct timeval next = { 0, 0 };
	json_t *list, *item;
	char reason[1024];
	size_t done = 0;

	if (call->req == NULL)
		return;
	if (call->gone) {
		api_error(call, 503, "unavailable", NULL, "the client left "
		    "before anything was published");
		return;
	}
	for (; write->list < 2; write->list++, write->item = 0) {
		list = json_object_get(write->body, lists[write->list]);
		for (; json_is_array(list) && write->item <
		    json_array_size(list); write->item++) {
			if (done++ == API_IMPORT_STEP) {
				/*
				 * A timer, not event_active(): an event made
				 * active from its own callback runs again in
				 * the same turn, before any I/O or timer.
				 */
				event_add(write->step, &next);
				return;
			}
			item = json_array_get(list, write->item);
			if (api_import_entity(write, write->list == 0 ?
			    CHANGE_SUBNET : CHANGE_SERVER, item, reason,
			    sizeof(reason)) == 0)
				continue;
			if (write->bad++ < API_IMPORT_ERRORS)
				json_array_append_new(write->errors, json_sprintf(
				    "%s[%zu]: %s", lists[write->list],
				    write->item, reason));
		}
		if (write->list == 0)
			write->subnets = write->count;
		json_object_clear(write->seen);
	}
	api_import_read(write);
}

/* POST /import: a dry run reads the plan; a real one publishes and waits. */
void
api_write_import(struct api_call *call)
{
	static const char *const allowed[] = { "servers", "subnets",
	    "dry_run", NULL };
	static const char *const lists[] = { "subnets", "servers" };
	struct api_write *write;
	json_t *body, *list, *dry;
	size_t l;

	if (api_query_params_none(call) == -1)
		return;
	if (call->api->imports >= API_IMPORTS_MAX) {
		api_unavailable(call, "5", "%d imports are under way, the most "
		    "at once; nothing of this one was published: send it again "
		    "later", API_IMPORTS_MAX);
		return;
	}
	if ((body = api_body(call, allowed)) == NULL)
		return;
	for (l = 0; l < 2; l++) {
		list = json_object_get(body, lists[l]);
		if (list == NULL || json_is_null(list))
			continue;
		if (!json_is_array(list) || json_array_size(list) >
		    API_IMPORT_MAX) {
			api_error(call, 400, "bad_request", lists[l], "%s: a list "
			    "of at most %d entities", lists[l], API_IMPORT_MAX);
			json_decref(body);
			return;
		}
	}
	dry = json_object_get(body, "dry_run");
	if (dry != NULL && !json_is_boolean(dry)) {
		api_error(call, 400, "bad_request", "dry_run", "dry_run: must be "
		    "true or false");
		json_decref(body);
		return;
	}
	write = api_write_new(call, API_WRITE_IMPORT);
	call->api->imports++;
	write->body = body;
	write->errors = json_array();
	write->seen = json_object();
	if (json_is_true(dry))
		write->plan = json_pack("{s:[], s:[]}", "servers", "subnets");
	if ((write->step = event_new(call->api->base, -1, 0, api_import_step,
	    write)) == NULL)
		fatalx("api: event_new failed");
	api_import_step(-1, 0, write);
}
