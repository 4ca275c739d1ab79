/* The librdkafka consumer on the event loop: handle, wake-up pipe, health. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumers/kafka_client.h"
#include "consumers/kafka_peek.h"

/*
 * The tick: the broker is polled on every one whatever the owner's state
 * (a member that stops polling is evicted after max.poll.interval.ms).
 */
#define KAFKA_TICK_MS		200

/* Messages taken per poll call before the loop gets a turn again. */
#define KAFKA_POLL_BUDGET	2000

/*
 * How long the owner may be full (taking no message, not polling) before
 * fetching is paused and polling goes on: at most this, and at most a
 * quarter of max.poll.interval.ms, so that the group never evicts us.
 */
#define KAFKA_FULL_MAX_MS	2000

/* Statistics: how often, and how old they may be before lag is stale. */
#define KAFKA_STATS_MS		"1000"
#define KAFKA_STATS_STALE_MS	5000

/*
 * How long the seeks of a load are waited for, all at once: served by the
 * client's own threads (the partition's broker thread), no request is sent.
 */
#define KAFKA_SEEK_MS		5000

/*
 * How long destroying the handle may take before the exit goes on: at
 * most this, within the close's deadline, but at least the minimum.
 */
#define KAFKA_DESTROY_MS	5000
#define KAFKA_DESTROY_MIN_MS	200

/* Brokers counted apart in the statistics (more count, but as one). */
#define KAFKA_NODES_MAX		64

/* Log lines of one kind of partition error a minute, then a summary. */
#define KAFKA_ERROR_LOG_PER_MINUTE	10

/* How long a never-assigned member is given to finish joining at close. */
#define KAFKA_JOIN_GRACE_MS	3000

/* What the client does with one partition of one of its topics. */
enum kafka_part_state {
	KAFKA_PART_NONE,	/* not assigned */
	KAFKA_PART_HELD,	/* assigned, paused until released */
	KAFKA_PART_FETCHING,	/* assigned and released */
};

/*
 * With the state: an out-of-range error came for the partition since it
 * was assigned (librdkafka then stopped its fetcher, and no seek starts
 * it again).
 */
#define KAFKA_PART_RESET	0x80

/* One topic: its name, whether it exists, its partitions' states. */
struct kafka_topic {
	char			*name;
	rd_kafka_topic_t	*rkt;		/* keeps it in the statistics */
	bool			 present;	/* has partitions, per statistics */
	size_t			 partitions;	/* how many, per statistics */
	uint8_t			*parts;		/* enum kafka_part_state by partition */
	int64_t			*starts;	/* where each was released */
	size_t			 part_count;
};

/* A destroy running on a thread of its own, and its end. */
struct kafka_destroy {
	rd_kafka_t	*rk;
	pthread_mutex_t	 lock;
	pthread_cond_t	 done_cond;
	bool		 done;
	bool		 abandoned;	/* the waiter gave up: free when done */
};

struct kafka_client {
	struct event_base		*base;
	struct kafka_client_handlers	 handlers;
	rd_kafka_t			*rk;
	rd_kafka_queue_t		*queue;
	int				 pipe_read;
	int				 pipe_write;
	struct event			*queue_event;
	struct event			*again;		/* the next turn */
	struct event			*tick;
	struct kafka_topic		*topics;
	size_t				 topic_count;
	/* The reader of single records, made at the first peek. */
	rd_kafka_conf_t			*peek_conf;
	struct kafka_peek		*peek;

	bool				 subscribed;
	bool				 joined;
	bool				 closed;
	bool				 paused;
	bool				 fetch_paused;	/* as librdkafka has it */
	uint64_t			 pauses;	/* fetch_paused set */
	/*
	 * The owner is full: messages stay in librdkafka's queue, which
	 * keeps its prefetch (a pause throws it away, and the fetch after
	 * the resume starts up to a second later).  Lasting longer than
	 * full_max_ms, it becomes a pause (full_paused).
	 */
	bool				 full;
	bool				 full_paused;
	struct timespec			 full_since;
	long long			 full_max_ms;
	struct timespec			 close_began;	/* once closed */
	long long			 close_deadline_ms;

	/* Rate limit of the per-partition error lines. */
	struct timespec			 error_window;
	unsigned			 errors_logged;
	uint64_t			 errors_unlogged;

	int				 brokers_up;
	uint64_t			 fetched;	/* messages from brokers */
	bool				 stats_known;
	/* Why no broker answers (TLS, authentication), for /readyz. */
	char				 broker_error[320];
	/* A fatal error: the handle is of no more use. */
	char				 fatal_error[512];
	rd_kafka_resp_err_t		 fatal_code;
	struct timespec			 stats_at;

	uint64_t			 errors;
};

static void	kafka_fetching(struct kafka_client *client);

/* A client that cannot be destroyed safely, kept reachable until exit. */
static rd_kafka_t *kafka_parked_handle;

/* Finds a topic's index by name; -1 when it is not one of ours. */
static int
kafka_topic_index(const struct kafka_client *client, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < client->topic_count; i++)
		if (strcmp(client->topics[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The state of one partition (NONE when unknown). */
static enum kafka_part_state
kafka_part_get(const struct kafka_client *client, int topic, int32_t partition)
{
	const struct kafka_topic *t;

	if (topic < 0 || (size_t)topic >= client->topic_count || partition < 0)
		return KAFKA_PART_NONE;
	t = &client->topics[topic];
	return (size_t)partition < t->part_count ?
	    (enum kafka_part_state)(t->parts[partition] & ~KAFKA_PART_RESET) :
	    KAFKA_PART_NONE;
}

/* Tells whether an out-of-range error came for a partition. */
static bool
kafka_part_reset(const struct kafka_client *client, int topic,
    int32_t partition)
{
	const struct kafka_topic *t = &client->topics[topic];

	return partition >= 0 && (size_t)partition < t->part_count &&
	    (t->parts[partition] & KAFKA_PART_RESET) != 0;
}

/*
 * Sets the state of one partition, growing the table as needed; the
 * out-of-range mark stays until it is not assigned (or is set with it).
 */
static void
kafka_part_set(struct kafka_client *client, int topic, int32_t partition,
    enum kafka_part_state state)
{
	struct kafka_topic *t = &client->topics[topic];
	int64_t *starts;
	size_t count;
	uint8_t *grown;

	if ((size_t)partition >= t->part_count) {
		for (count = t->part_count ? t->part_count : 16;
		    count <= (size_t)partition; count *= 2)
			;
		if ((grown = realloc(t->parts, count)) == NULL ||
		    (starts = realloc(t->starts, count * sizeof(*starts))) ==
		    NULL)
			fatal("kafka: realloc");
		memset(grown + t->part_count, KAFKA_PART_NONE,
		    count - t->part_count);
		memset(starts + t->part_count, 0,
		    (count - t->part_count) * sizeof(*starts));
		t->parts = grown;
		t->starts = starts;
		t->part_count = count;
	}
	if (state == KAFKA_PART_NONE)
		t->parts[partition] = (uint8_t)state;
	else
		t->parts[partition] = (uint8_t)((unsigned)state |
		    (t->parts[partition] & KAFKA_PART_RESET));
}

/* A list of one partition, for the calls that take lists. */
static rd_kafka_topic_partition_list_t *
kafka_one(const struct kafka_client *client, int topic, int32_t partition,
    int64_t offset)
{
	rd_kafka_topic_partition_list_t *list;

	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, client->topics[topic].name,
	    partition)->offset = offset;
	return list;
}

/* Every assigned partition in a given state (or any, with NONE). */
static rd_kafka_topic_partition_list_t *
kafka_assigned(const struct kafka_client *client, enum kafka_part_state only)
{
	rd_kafka_topic_partition_list_t *list;
	size_t t, p;

	list = rd_kafka_topic_partition_list_new(16);
	for (t = 0; t < client->topic_count; t++) {
		for (p = 0; p < client->topics[t].part_count; p++) {
			enum kafka_part_state state = kafka_part_get(client,
			    (int)t, (int32_t)p);

			if (state != KAFKA_PART_NONE &&
			    (only == KAFKA_PART_NONE || state == only))
				rd_kafka_topic_partition_list_add(list,
				    client->topics[t].name, (int32_t)p);
		}
	}
	return list;
}

/* Routes librdkafka's log lines into ours (they arrive on our thread). */
static void
kafka_log_cb(const rd_kafka_t *rk, int level, const char *facility,
    const char *message)
{
	log_write(log_level_of_syslog(level), "kafka: %s: %s", facility,
	    message);
}

/*
 * The handle hit a fatal error: librdkafka has revoked every partition
 * as lost and will not rejoin the group.  Said once, kept for readiness,
 * and told to the owner, who can only make a new client.
 */
static void
kafka_fatal(struct kafka_client *client)
{
	rd_kafka_resp_err_t err;
	char why[400];

	if (client->fatal_error[0] != '\0')
		return;
	err = rd_kafka_fatal_error(client->rk, why, sizeof(why));
	client->fatal_code = err;
	snprintf(client->fatal_error, sizeof(client->fatal_error), "%s: %s",
	    rd_kafka_err2name(err), err == RD_KAFKA_RESP_ERR_NO_ERROR ?
	    "(no reason given)" : why);
	log_errx("kafka: fatal error, the consumer can go on no more: %s",
	    client->fatal_error);
	if (client->handlers.fatal != NULL)
		client->handlers.fatal(client->handlers.arg,
		    client->fatal_error);
}

/* Reports client-level errors (brokers down, authentication, ...). */
static void
kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka_client *client = opaque;

	client->errors++;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		client->brokers_up = 0;
		log_warnx("kafka: all brokers are down; waiting for them (%s)",
		    reason);
	} else if (err == RD_KAFKA_RESP_ERR__SSL ||
	    err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
		/* Kept for readiness: otherwise it only says "unreachable". */
		snprintf(client->broker_error, sizeof(client->broker_error),
		    "%s", reason);
		log_warnx("kafka: %s: %s", rd_kafka_err2name(err), reason);
	} else if (err == RD_KAFKA_RESP_ERR__FATAL ||
	    rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		kafka_fatal(client);
	else
		log_warnx("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/*
 * Reads the statistics librdkafka emits every second: the brokers that
 * are up, and the topics that have partitions.  They are the one
 * non-blocking view of the cluster the client library offers.
 */
static int
kafka_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	struct kafka_client *client = opaque;
	json_t *root, *brokers, *broker, *topics, *topic, *parts, *p;
	json_int_t nodes[KAFKA_NODES_MAX];
	const char *name, *id;
	int up = 0, index;

	if ((root = json_loadb(json, json_len, 0, NULL)) == NULL)
		return 0;
	/*
	 * Count brokers by node id: the statistics list one broker under
	 * several entries (its address, and a logical one such as the
	 * group coordinator); bootstrap entries have no node id.
	 */
	brokers = json_object_get(root, "brokers");
	json_object_foreach(brokers, name, broker) {
		const char *state = json_string_value(json_object_get(broker,
		    "state"));
		json_int_t node = json_integer_value(json_object_get(broker,
		    "nodeid"));
		int seen;

		if (node < 0 || state == NULL || strcmp(state, "UP") != 0)
			continue;
		for (seen = 0; seen < up && seen < KAFKA_NODES_MAX; seen++)
			if (nodes[seen] == node)
				break;
		if (seen < up)
			continue;
		if (up < KAFKA_NODES_MAX)
			nodes[up] = node;
		up++;
	}
	topics = json_object_get(root, "topics");
	for (index = 0; index < (int)client->topic_count; index++) {
		bool present = false;
		size_t count = 0;

		topic = json_object_get(topics, client->topics[index].name);
		parts = json_object_get(topic, "partitions");
		json_object_foreach(parts, id, p) {
			if (strcmp(id, "-1") != 0) {
				present = true;
				count++;
			}
		}
		client->topics[index].partitions = count;
		if (client->stats_known && present != client->topics[index].present)
			log_info("kafka: topic %s %s", client->topics[index].name,
			    present ? "exists" : "has no partitions (it does "
			    "not exist)");
		client->topics[index].present = present;
	}
	if (client->stats_known && (up > 0) != (client->brokers_up > 0))
		log_info("kafka: %s", up > 0 ? "a broker is reachable again" :
		    "no broker is reachable");
	client->brokers_up = up;
	client->fetched = (uint64_t)json_integer_value(json_object_get(root,
	    "rxmsgs"));
	if (up > 0)
		client->broker_error[0] = '\0';
	client->stats_known = true;
	clock_gettime(CLOCK_MONOTONIC, &client->stats_at);
	json_decref(root);
	return 0;
}

/* Turns a librdkafka list into our partitions (those of our topics). */
static size_t
kafka_parts(const struct kafka_client *client,
    const rd_kafka_topic_partition_list_t *list, struct kafka_partition **out)
{
	struct kafka_partition *parts;
	size_t count = 0;
	int i, topic;

	parts = calloc(list->cnt > 0 ? (size_t)list->cnt : 1, sizeof(*parts));
	if (parts == NULL)
		fatal("kafka: calloc");
	for (i = 0; i < list->cnt; i++) {
		if ((topic = kafka_topic_index(client, list->elems[i].topic)) < 0)
			continue;
		parts[count].topic = topic;
		parts[count].partition = list->elems[i].partition;
		count++;
	}
	*out = parts;
	return count;
}

/*
 * Takes partitions: each is assigned held (paused), so nothing is fetched
 * before the owner knows where it starts (kafka_client_release()).
 */
static void
kafka_assign(struct kafka_client *client,
    rd_kafka_topic_partition_list_t *list)
{
	struct kafka_partition *parts;
	rd_kafka_error_t *error;
	size_t count, i;
	int j;

	for (j = 0; j < list->cnt; j++)
		list->elems[j].offset = RD_KAFKA_OFFSET_BEGINNING;
	error = rd_kafka_incremental_assign(client->rk, list);
	if (error != NULL) {
		log_errx("kafka: assign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	if (list->cnt > 0)
		rd_kafka_pause_partitions(client->rk, list);
	count = kafka_parts(client, list, &parts);
	for (i = 0; i < count; i++)
		kafka_part_set(client, parts[i].topic, parts[i].partition,
		    KAFKA_PART_HELD);
	client->joined = true;
	client->handlers.assigned(client->handlers.arg, parts, count);
	free(parts);
}

/* Gives partitions up. */
static void
kafka_revoke(struct kafka_client *client,
    rd_kafka_topic_partition_list_t *list, bool lost)
{
	struct kafka_partition *parts;
	rd_kafka_error_t *error;
	size_t count, i;

	count = kafka_parts(client, list, &parts);
	for (i = 0; i < count; i++) {
		kafka_part_set(client, parts[i].topic, parts[i].partition,
		    KAFKA_PART_NONE);
		kafka_peek_cancel(client->peek,
		    client->topics[parts[i].topic].name, parts[i].partition);
	}
	client->handlers.revoked(client->handlers.arg, parts, count, lost);
	free(parts);
	error = rd_kafka_incremental_unassign(client->rk, list);
	if (error != NULL) {
		log_errx("kafka: unassign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

/* The rebalance callback; runs inside a poll, on the loop's thread. */
static void
kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	struct kafka_client *client = opaque;

	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		kafka_assign(client, partitions);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		kafka_revoke(client, partitions, rd_kafka_assignment_lost(rk));
		break;
	default:
		/*
		 * Not expected from librdkafka; the partitions are given up
		 * as lost, with the cooperative protocol's unassign:
		 * rd_kafka_assign() is refused under it.  A batch in flight
		 * for them commits only while each offset it stores is still
		 * the one it read (ipamd.apply_batch): under a new owner
		 * that has applied since, it is refused and read again.
		 */
		log_errx("kafka: rebalance failed: %s; giving up %d "
		    "partition(s) as lost", rd_kafka_err2str(err),
		    partitions != NULL ? partitions->cnt : 0);
		if (partitions != NULL)
			kafka_revoke(client, partitions, true);
		break;
	}
}

/* Sets one librdkafka property, naming it in err on failure. */
static int
kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
    char *err, size_t errlen)
{
	char reason[512];

	if (rd_kafka_conf_set(conf, name, value, reason, sizeof(reason)) !=
	    RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka: %s: %s", name, reason);
		return -1;
	}
	return 0;
}

/* Sets the operator's properties (the [kafka] section's) on conf. */
static int
kafka_conf_operator(rd_kafka_conf_t *conf,
    const struct kafka_client_settings *settings, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < settings->property_count; i++) {
		size_t len = strlen(settings->properties[i].name);

		/*
		 * "name_file" holds a secret already read into "name";
		 * "ipam." keys are the daemon's own.
		 */
		if ((len > 5 && strcmp(settings->properties[i].name + len - 5,
		    "_file") == 0) ||
		    strncmp(settings->properties[i].name, "ipam.", 5) == 0)
			continue;
		if (kafka_conf_set(conf, settings->properties[i].name,
		    settings->properties[i].value, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/*
 * Builds the configuration of the reader of single records: no group
 * (nothing joined, nothing committed), an offset outside the log and the
 * end of the log said as such, then the operator's properties (brokers,
 * security).
 */
static rd_kafka_conf_t *
kafka_peek_conf(const struct kafka_client_settings *settings, char *err,
    size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	if (kafka_conf_set(conf, "enable.auto.commit", "false", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "enable.auto.offset.store", "false", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "auto.offset.reset", "error", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "enable.partition.eof", "true", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "log.queue", "true", err, errlen) == -1 ||
	    kafka_conf_set(conf, "client.id", "ipam-syncd-check", err,
	    errlen) == -1 ||
	    /* One record is read: no prefetch (a larger one still comes). */
	    kafka_conf_set(conf, "max.partition.fetch.bytes", "65536", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "queued.min.messages", "1", err,
	    errlen) == -1 ||
	    kafka_conf_operator(conf, settings, err, errlen) == -1 ||
	    /* Nobody reads its statistics: none are queued. */
	    kafka_conf_set(conf, "statistics.interval.ms", "0", err,
	    errlen) == -1) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

/* Builds the handle's configuration: ours first, the operator's after. */
static rd_kafka_conf_t *
kafka_conf(struct kafka_client *client,
    const struct kafka_client_settings *settings, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	/* Offsets live in PostgreSQL; the group only assigns partitions. */
	if (kafka_conf_set(conf, "group.id", settings->group_id, err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "enable.auto.commit", "false", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "enable.auto.offset.store", "false", err,
	    errlen) == -1 ||
	    /*
	     * A start offset outside the log (the topic was deleted and
	     * made again, or its records expired unread) is an error to
	     * report, never a silent jump: librdkafka then stops fetching
	     * that partition.
	     */
	    kafka_conf_set(conf, "auto.offset.reset", "error", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "partition.assignment.strategy",
	    "cooperative-sticky", err, errlen) == -1 ||
	    /* Enough prefetch that the loop does not run dry between fetches. */
	    kafka_conf_set(conf, "queued.max.messages.kbytes", "65536", err,
	    errlen) == -1 ||
	    kafka_conf_set(conf, "log.queue", "true", err, errlen) == -1 ||
	    kafka_conf_set(conf, "statistics.interval.ms", KAFKA_STATS_MS, err,
	    errlen) == -1 ||
	    /* A topic created after the start is found within seconds. */
	    kafka_conf_set(conf, "topic.metadata.refresh.interval.ms",
	    "5000", err, errlen) == -1 ||
	    kafka_conf_set(conf, "client.id", "ipam-syncd", err,
	    errlen) == -1)
		goto fail;
	if (kafka_conf_operator(conf, settings, err, errlen) == -1)
		goto fail;
	rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
	rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
	rd_kafka_conf_set_stats_cb(conf, kafka_stats_cb);
	rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
	rd_kafka_conf_set_opaque(conf, client);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* Creates the client. */
struct kafka_client *
kafka_client_new(struct event_base *base,
    const struct kafka_client_settings *settings,
    const struct kafka_client_handlers *handlers, char *err, size_t errlen)
{
	struct kafka_client *client;
	rd_kafka_conf_t *conf;
	char reason[512], value[32];
	int fds[2];
	size_t i, size;

	if ((client = calloc(1, sizeof(*client))) == NULL)
		fatal("kafka: calloc");
	client->base = base;
	client->handlers = *handlers;
	client->pipe_read = client->pipe_write = -1;
	client->topic_count = settings->topic_count;
	if ((client->topics = calloc(settings->topic_count,
	    sizeof(*client->topics))) == NULL)
		fatal("kafka: calloc");
	for (i = 0; i < settings->topic_count; i++)
		if ((client->topics[i].name = strdup(settings->topics[i])) ==
		    NULL)
			fatal("kafka: strdup");

	if ((conf = kafka_conf(client, settings, err, errlen)) == NULL)
		goto fail;
	if ((client->peek_conf = kafka_peek_conf(settings, err,
	    errlen)) == NULL) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	client->full_max_ms = KAFKA_FULL_MAX_MS;
	size = sizeof(value);
	if (rd_kafka_conf_get(conf, "max.poll.interval.ms", value, &size) ==
	    RD_KAFKA_CONF_OK && atoll(value) / 4 < client->full_max_ms)
		client->full_max_ms = atoll(value) / 4;
	client->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason,
	    sizeof(reason));
	if (client->rk == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "kafka: %s", reason);
		goto fail;
	}
	/* conf is owned by the handle now. */
	rd_kafka_set_log_queue(client->rk, NULL);
	rd_kafka_poll_set_consumer(client->rk);
	client->queue = rd_kafka_queue_get_consumer(client->rk);
	for (i = 0; i < client->topic_count; i++)
		client->topics[i].rkt = rd_kafka_topic_new(client->rk,
		    client->topics[i].name, NULL);

	/*
	 * librdkafka writes to the pipe when the queue goes from empty to
	 * non-empty; the pipe is non-blocking (librdkafka#2932).
	 */
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	client->pipe_read = fds[0];
	client->pipe_write = fds[1];
	rd_kafka_queue_io_event_enable(client->queue, client->pipe_write, "1",
	    1);
	return client;
fail:
	kafka_client_free(client);
	return NULL;
}

/*
 * Logs an error a message carries (a partition gone, a topic deleted:
 * one per partition), at most KAFKA_ERROR_LOG_PER_MINUTE lines a minute;
 * what is left out is counted and said when the next minute starts.
 */
static void
kafka_log_error(struct kafka_client *client, rd_kafka_message_t *message)
{
	if (clock_ms_since(&client->error_window) >= 60000) {
		if (client->errors_unlogged > 0)
			log_warnx("kafka: %llu more errors of partitions in the "
			    "last minute were not logged",
			    (unsigned long long)client->errors_unlogged);
		clock_gettime(CLOCK_MONOTONIC, &client->error_window);
		client->errors_logged = 0;
		client->errors_unlogged = 0;
	}
	if (client->errors_logged >= KAFKA_ERROR_LOG_PER_MINUTE) {
		client->errors_unlogged++;
		return;
	}
	client->errors_logged++;
	log_warnx("kafka: %s[%d]: %s", message->rkt ?
	    rd_kafka_topic_name(message->rkt) : "?", message->partition,
	    rd_kafka_message_errstr(message));
}

/*
 * Hands one message over to the owner, or handles what it reports and
 * destroys it.
 */
static void
kafka_message(struct kafka_client *client, rd_kafka_message_t *message)
{
	const char *name = message->rkt ? rd_kafka_topic_name(message->rkt) :
	    NULL;
	int topic = kafka_topic_index(client, name);
	enum kafka_part_state state;

	state = kafka_part_get(client, topic, message->partition);
	switch (message->err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		/*
		 * A held partition's messages are dropped: its release
		 * seeks, so they are fetched again from where it starts.
		 */
		if (state == KAFKA_PART_FETCHING && message->offset >=
		    client->topics[topic].starts[message->partition]) {
			client->handlers.message(client->handlers.arg, topic,
			    message);
			return;
		}
		break;
	case RD_KAFKA_RESP_ERR__PARTITION_EOF:
		break;
	case RD_KAFKA_RESP_ERR__FATAL:
		/* A consumer's fatal error comes as a message, not to error_cb. */
		client->errors++;
		kafka_fatal(client);
		break;
	case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
		/*
		 * Only a released partition started where the owner said; a
		 * held one is told at its release, which cannot seek.
		 */
		if (state != KAFKA_PART_NONE)
			client->topics[topic].parts[message->partition] |=
			    KAFKA_PART_RESET;
		if (state == KAFKA_PART_FETCHING)
			client->handlers.out_of_range(client->handlers.arg,
			    topic, message->partition,
			    rd_kafka_message_errstr(message));
		break;
	default:
		client->errors++;
		kafka_log_error(client, message);
		break;
	}
	rd_kafka_message_destroy(message);
}

/* Takes what the queue holds, within the budget. */
void
kafka_client_poll(struct kafka_client *client)
{
	struct timeval next = { 0, 0 };
	rd_kafka_message_t *message;
	int taken;

	if (client->rk == NULL || client->closed)
		return;
	if (client->full && !client->full_paused) {
		if (clock_ms_since(&client->full_since) < client->full_max_ms)
			return;
		/* Full too long to stop polling: pause, and poll on. */
		client->full_paused = true;
		kafka_fetching(client);
	}
	for (taken = 0; taken < KAFKA_POLL_BUDGET; taken++) {
		if (client->full && !client->full_paused)
			return;	/* the owner filled up on this turn */
		if ((message = rd_kafka_consumer_poll(client->rk, 0)) == NULL)
			return;
		kafka_message(client, message);
		if (client->closed)
			return;
	}
	/*
	 * The budget ran out with messages left: the pipe only wakes us on
	 * empty-to-non-empty, so come back on the next turn of the loop
	 * (a timer: an event made active from its own callback would run
	 * again in this turn, before any other).
	 */
	evtimer_add(client->again, &next);
}

/* Drains the wake-up pipe, then the queue. */
static void
kafka_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	kafka_client_poll(arg);
}

/* The tick: polls whatever the owner's state. */
static void
kafka_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	kafka_client_poll(arg);
}

/* Subscribes and starts polling. */
void
kafka_client_start(struct kafka_client *client)
{
	struct timeval tick = { 0, KAFKA_TICK_MS * 1000 };
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	size_t i;

	client->queue_event = event_new(client->base, client->pipe_read,
	    EV_READ | EV_PERSIST, kafka_queue_cb, client);
	client->tick = event_new(client->base, -1, EV_PERSIST, kafka_tick_cb,
	    client);
	client->again = evtimer_new(client->base, kafka_tick_cb, client);
	if (client->queue_event == NULL || client->tick == NULL ||
	    client->again == NULL)
		fatalx("kafka: event_new failed");
	event_add(client->queue_event, NULL);
	event_add(client->tick, &tick);

	topics = rd_kafka_topic_partition_list_new((int)client->topic_count);
	for (i = 0; i < client->topic_count; i++)
		rd_kafka_topic_partition_list_add(topics, client->topics[i].name,
		    RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(client->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		fatalx("kafka: subscribe: %s", rd_kafka_err2str(err));
	client->subscribed = true;
	log_info("kafka: subscribed to %zu topics", client->topic_count);
}

/* Names the offset a seek went to. */
static const char *
kafka_offset_text(int64_t offset, char *buf, size_t buflen)
{
	if (offset == RD_KAFKA_OFFSET_BEGINNING)
		return "the beginning";
	snprintf(buf, buflen, "offset %lld", (long long)offset);
	return buf;
}

/*
 * Starts fetching held partitions, each at its offset.  One whose seek
 * failed stays held: resumed, it would fetch from where it stood before
 * (librdkafka drops a failed seek), past what was dropped while it was
 * held.
 */
void
kafka_client_release(struct kafka_client *client,
    const struct kafka_partition *parts, const int64_t *offsets, size_t count,
    enum kafka_release *results)
{
	rd_kafka_topic_partition_list_t *list, *resume;
	rd_kafka_topic_partition_t *elem;
	rd_kafka_error_t *error;
	rd_kafka_resp_err_t err;
	char where[64], why[128];
	size_t *which, i;
	int j;

	if ((which = calloc(count > 0 ? count : 1, sizeof(*which))) == NULL)
		fatal("kafka: calloc");
	list = rd_kafka_topic_partition_list_new((int)count);
	resume = rd_kafka_topic_partition_list_new((int)count);
	for (i = 0; i < count; i++) {
		results[i] = KAFKA_RELEASE_NOT_HELD;
		if (kafka_part_get(client, parts[i].topic,
		    parts[i].partition) != KAFKA_PART_HELD)
			continue;
		which[list->cnt] = i;
		rd_kafka_topic_partition_list_add(list,
		    client->topics[parts[i].topic].name,
		    parts[i].partition)->offset = offsets[i];
	}
	if (list->cnt == 0)
		goto done;
	/*
	 * Seek first, then resume: nothing is fetched from the old place.
	 * The seeks are waited for, all at once (requests to the client's
	 * own threads, not to a broker): once one is done, the partition's
	 * position is unknown until a message is handed or a transaction's
	 * marker passed (librdkafka >= 1.9 resets it).
	 */
	/*
	 * Before 2.1.0 librdkafka waits for the seeks the number of
	 * microseconds it is given, not milliseconds (its #4230): 5 ms, too
	 * short for a broker thread busy with a fetch.
	 */
	error = rd_kafka_seek_partitions(client->rk, list,
	    rd_kafka_version() < 0x020100ff ? KAFKA_SEEK_MS * 1000 :
	    KAFKA_SEEK_MS);
	for (j = 0; j < list->cnt; j++) {
		elem = &list->elems[j];
		i = which[j];
		/*
		 * Not done: still in progress when the wait timed out (it
		 * may yet run, before a later seek), outdated by a
		 * rebalance's pause or resume, the partition's fetcher not
		 * started or stopped (__STATE), or the whole call refused.
		 */
		err = elem->err;
		if (error != NULL &&
		    rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR__TIMED_OUT)
			err = rd_kafka_error_code(error);
		if (err == RD_KAFKA_RESP_ERR__STATE &&
		    kafka_part_reset(client, parts[i].topic,
		    parts[i].partition)) {
			results[i] = KAFKA_RELEASE_OUT_OF_RANGE;
			continue;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			results[i] = KAFKA_RELEASE_FAILED;
			if (err == RD_KAFKA_RESP_ERR__IN_PROGRESS)
				snprintf(why, sizeof(why), "not done within "
				    "%d ms", KAFKA_SEEK_MS);
			else
				snprintf(why, sizeof(why), "%s",
				    rd_kafka_err2str(err));
			log_warnx("kafka: seek of %s[%d] to %s: %s; it stays "
			    "held and is sought again", elem->topic,
			    elem->partition, kafka_offset_text(offsets[i],
			    where, sizeof(where)), why);
			continue;
		}
		results[i] = KAFKA_RELEASED;
		rd_kafka_topic_partition_list_add(resume, elem->topic,
		    elem->partition);
		kafka_part_set(client, parts[i].topic, parts[i].partition,
		    KAFKA_PART_FETCHING);
		/*
		 * Messages fetched before the seek may still be queued:
		 * below the start they are dropped (the owner skips them
		 * anyway).
		 */
		client->topics[parts[i].topic].starts[parts[i].partition] =
		    offsets[i] >= 0 ? offsets[i] : 0;
	}
	if (error != NULL)
		rd_kafka_error_destroy(error);
	if (!client->fetch_paused && resume->cnt > 0)
		rd_kafka_resume_partitions(client->rk, resume);
done:
	rd_kafka_topic_partition_list_destroy(resume);
	rd_kafka_topic_partition_list_destroy(list);
	free(which);
}

/* A peek's answer: to the owner, by topic index. */
static void
kafka_peeked(void *arg, const char *topic, int32_t partition, int64_t offset,
    const rd_kafka_message_t *record, const char *none)
{
	struct kafka_client *client = arg;
	int index;

	if ((index = kafka_topic_index(client, topic)) >= 0)
		client->handlers.peeked(client->handlers.arg, index, partition,
		    offset, record, none);
}

/* Reads the record at an offset of a partition, off the group. */
bool
kafka_client_peek(struct kafka_client *client, int topic, int32_t partition,
    int64_t offset)
{
	char err[512];

	if (client->rk == NULL || client->closed || topic < 0 ||
	    (size_t)topic >= client->topic_count)
		return false;
	if (client->peek == NULL && client->peek_conf != NULL) {
		client->peek = kafka_peek_new(client->base, client->peek_conf,
		    kafka_peeked, client, err, sizeof(err));
		client->peek_conf = NULL;	/* the peeker's, even on failure */
		if (client->peek == NULL)
			log_warnx("%s; the records before stored offsets are "
			    "not checked", err);
	}
	if (client->peek == NULL)
		return false;
	kafka_peek_read(client->peek, client->topics[topic].name, partition,
	    offset);
	return true;
}

/* Holds a partition again. */
void
kafka_client_hold(struct kafka_client *client, int topic, int32_t partition)
{
	rd_kafka_topic_partition_list_t *list;

	if (kafka_part_get(client, topic, partition) != KAFKA_PART_FETCHING)
		return;
	list = kafka_one(client, topic, partition, RD_KAFKA_OFFSET_INVALID);
	rd_kafka_pause_partitions(client->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	kafka_part_set(client, topic, partition, KAFKA_PART_HELD);
}

/*
 * Pauses or resumes every released partition, as the owner's pause and
 * a fullness that lasted too long ask.
 */
static void
kafka_fetching(struct kafka_client *client)
{
	rd_kafka_topic_partition_list_t *list;
	bool paused = client->paused || client->full_paused;

	if (client->fetch_paused == paused || client->rk == NULL)
		return;
	client->fetch_paused = paused;
	list = kafka_assigned(client, KAFKA_PART_FETCHING);
	if (paused)
		client->pauses++;
	if (list->cnt > 0) {
		if (paused)
			rd_kafka_pause_partitions(client->rk, list);
		else
			rd_kafka_resume_partitions(client->rk, list);
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (client->full_paused && paused && !client->paused)
		log_debug("kafka: fetching paused: full for %lld ms",
		    clock_ms_since(&client->full_since));
	else
		log_debug("kafka: fetching %s", paused ? "paused" : "resumed");
}

/* Pauses or resumes every released partition. */
void
kafka_client_set_paused(struct kafka_client *client, bool paused)
{
	if (client->paused == paused)
		return;
	client->paused = paused;
	kafka_fetching(client);
}

/* Takes no message until told otherwise, or takes them again. */
void
kafka_client_set_full(struct kafka_client *client, bool full)
{
	if (client->full == full || client->rk == NULL)
		return;
	client->full = full;
	if (full) {
		clock_gettime(CLOCK_MONOTONIC, &client->full_since);
		return;
	}
	client->full_paused = false;
	kafka_fetching(client);
	/* What waited in the queue: the pipe wakes only on empty. */
	if (client->queue_event != NULL)
		event_active(client->queue_event, EV_READ, 0);
}

/* The last known watermarks of a partition (never a broker request). */
bool
kafka_client_watermarks(const struct kafka_client *client, int topic,
    int32_t partition, int64_t *low, int64_t *high)
{
	*low = *high = -1;
	if (client->rk == NULL || topic < 0 ||
	    (size_t)topic >= client->topic_count)
		return false;
	if (rd_kafka_get_watermark_offsets(client->rk,
	    client->topics[topic].name, partition, low, high) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR || *high < 0) {
		*low = *high = -1;
		return false;
	}
	return true;
}

/*
 * Where librdkafka's consumer stands in a partition: the offset after the
 * last message it handed over, or past an offset it never hands over (a
 * transaction's commit or abort marker) once it has read that far.  False
 * while it has handed over nothing since the partition was assigned.
 */
bool
kafka_client_position(const struct kafka_client *client, int topic,
    int32_t partition, int64_t *next)
{
	rd_kafka_topic_partition_list_t *list;
	bool known;

	*next = -1;
	if (client->rk == NULL || topic < 0 ||
	    (size_t)topic >= client->topic_count)
		return false;
	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, client->topics[topic].name,
	    partition);
	known = rd_kafka_position(client->rk, list) ==
	    RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err ==
	    RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].offset >= 0;
	if (known)
		*next = list->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(list);
	return known;
}

/*
 * Tells whether a partition of a topic is assigned: the group found the
 * topic, whatever the statistics (which follow a metadata refresh) say.
 */
static bool
kafka_topic_held(const struct kafka_client *client, size_t topic)
{
	size_t p;

	for (p = 0; p < client->topics[topic].part_count; p++)
		if (client->topics[topic].parts[p] != KAFKA_PART_NONE)
			return true;
	return false;
}

bool
kafka_client_partitions(const struct kafka_client *client, size_t *total,
    size_t *held)
{
	size_t i, p;

	*total = *held = 0;
	if (!client->stats_known)
		return false;
	for (i = 0; i < client->topic_count; i++) {
		if (!client->topics[i].present)
			return false;
		*total += client->topics[i].partitions;
		for (p = 0; p < client->topics[i].part_count; p++)
			if (client->topics[i].parts[p] != KAFKA_PART_NONE)
				(*held)++;
	}
	return true;
}

/* The cluster as the client sees it. */
void
kafka_client_health(const struct kafka_client *client,
    struct kafka_client_health *health)
{
	size_t i;

	memset(health, 0, sizeof(*health));
	health->known = client->stats_known;
	health->brokers_up = client->brokers_up;
	health->fetched = client->fetched;
	health->pauses = client->pauses;
	health->broker_error = client->broker_error[0] != '\0' ?
	    client->broker_error : NULL;
	health->fatal_error = client->fatal_error[0] != '\0' ?
	    client->fatal_error : NULL;
	health->fatal_code = (int)client->fatal_code;
	health->stale = !client->stats_known || client->brokers_up == 0 ||
	    clock_ms_since(&client->stats_at) > KAFKA_STATS_STALE_MS;
	health->joined = client->joined;
	health->fetch_paused = client->fetch_paused;
	/* With no broker, whether a topic exists is not known: none missing. */
	for (i = 0; client->brokers_up > 0 && i < client->topic_count; i++) {
		if (client->topics[i].present || kafka_topic_held(client, i))
			continue;
		if (health->missing_topic == NULL)
			health->missing_topic = client->topics[i].name;
		health->topics_missing++;
	}
}

/* Takes partitions assigned while closing, so that the close goes on. */
static void
kafka_close_assign(rd_kafka_t *rk,
    const rd_kafka_topic_partition_list_t *partitions)
{
	rd_kafka_error_t *error;

	if (partitions == NULL)
		return;
	error = rd_kafka_incremental_assign(rk, partitions);
	if (error != NULL) {
		log_warnx("kafka: close: assign: %s",
		    rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

/* Leaves the group within a deadline, then stops polling. */
void
kafka_client_close(struct kafka_client *client, long long deadline_ms)
{
	rd_kafka_queue_t *queue;
	rd_kafka_error_t *error;
	struct timespec began;

	if (client->rk == NULL || client->closed)
		return;
	client->closed = true;
	clock_gettime(CLOCK_MONOTONIC, &client->close_began);
	client->close_deadline_ms = deadline_ms;
	if (client->tick != NULL)
		event_del(client->tick);
	if (client->queue_event != NULL)
		event_del(client->queue_event);
	if (client->again != NULL)
		event_del(client->again);
	kafka_peek_close(client->peek);
	if (!client->subscribed)
		return;

	/*
	 * librdkafka 2.0.2 aborts when a cooperative-sticky member is
	 * destroyed before its first assignment (librdkafka#4312, fixed in
	 * 2.3.0).  A join in progress usually completes within a second:
	 * give it that chance, serving callbacks only.
	 */
	clock_gettime(CLOCK_MONOTONIC, &began);
	while (!client->joined && clock_ms_since(&began) < KAFKA_JOIN_GRACE_MS &&
	    clock_ms_since(&began) < deadline_ms) {
		rd_kafka_message_t *message;

		message = rd_kafka_consumer_poll(client->rk, 50);
		if (message != NULL)
			rd_kafka_message_destroy(message);
	}

	/* rdkafka.h: release the consumer queue before closing. */
	rd_kafka_queue_io_event_enable(client->queue, -1, NULL, 0);
	rd_kafka_queue_destroy(client->queue);
	client->queue = NULL;

	/* Close through a queue of our own, so that leaving cannot hang us. */
	queue = rd_kafka_queue_new(client->rk);
	error = rd_kafka_consumer_close_queue(client->rk, queue);
	if (error != NULL) {
		log_warnx("kafka: close: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else {
		while (!rd_kafka_consumer_closed(client->rk) &&
		    clock_ms_since(&began) < deadline_ms) {
			rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 100);

			if (event == NULL)
				continue;
			if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE &&
			    rd_kafka_event_error(event) ==
			    RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
				kafka_revoke(client,
				    rd_kafka_event_topic_partition_list(event),
				    false);
			/*
			 * Partitions the group gave just before the close:
			 * librdkafka waits for the assign call before it can
			 * leave, and, the group closing, takes it as an
			 * unassign (nothing is fetched).
			 */
			else if (rd_kafka_event_type(event) ==
			    RD_KAFKA_EVENT_REBALANCE &&
			    rd_kafka_event_error(event) ==
			    RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
				kafka_close_assign(client->rk,
				    rd_kafka_event_topic_partition_list(event));
			rd_kafka_event_destroy(event);
		}
		if (!rd_kafka_consumer_closed(client->rk))
			log_warnx("kafka: leaving the group did not finish "
			    "within %lld ms; the group will notice after "
			    "session.timeout.ms", deadline_ms);
		else
			log_info("kafka: left the group");
	}
	rd_kafka_queue_destroy(queue);
}

/* Destroys a handle on its own thread (see kafka_destroy_within()). */
static void *
kafka_destroy_thread(void *arg)
{
	struct kafka_destroy *destroy = arg;
	bool abandoned;

	rd_kafka_destroy_flags(destroy->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	pthread_mutex_lock(&destroy->lock);
	destroy->done = true;
	abandoned = destroy->abandoned;
	pthread_cond_signal(&destroy->done_cond);
	pthread_mutex_unlock(&destroy->lock);
	if (abandoned)
		free(destroy);
	return NULL;
}

/*
 * Destroys a handle, waiting at most timeout_ms; tells whether it ended.
 * librdkafka's destroy joins its threads with no deadline, and after a
 * topic was deleted under the consumer it has been seen to wait forever;
 * the state is in PostgreSQL, so the exit must not wait on it.  This is
 * the one place a thread of our own runs: only a thread can put a
 * deadline on a call that blocks.  The record reader's handle
 * (consumers/kafka_peek.c) goes the same way.
 */
bool
kafka_destroy_within(rd_kafka_t *rk, long timeout_ms)
{
	struct kafka_destroy *destroy;
	struct timespec deadline;
	pthread_t thread;
	bool done;

	if ((destroy = calloc(1, sizeof(*destroy))) == NULL)
		fatal("kafka: calloc");
	destroy->rk = rk;
	pthread_mutex_init(&destroy->lock, NULL);
	pthread_cond_init(&destroy->done_cond, NULL);
	if (pthread_create(&thread, NULL, kafka_destroy_thread, destroy) != 0) {
		free(destroy);
		rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		return true;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&destroy->lock);
	while (!destroy->done && pthread_cond_timedwait(&destroy->done_cond,
	    &destroy->lock, &deadline) == 0)
		;
	done = destroy->done;
	destroy->abandoned = !done;
	pthread_mutex_unlock(&destroy->lock);
	if (done) {
		pthread_join(thread, NULL);
		free(destroy);
	} else
		pthread_detach(thread);
	return done;
}

/*
 * How long destroying the handle may take: what is left of the close's
 * deadline (the daemon's shutdown timeout), at least a moment, at most
 * KAFKA_DESTROY_MS.
 */
static long
kafka_destroy_ms(const struct kafka_client *client)
{
	long long left = KAFKA_DESTROY_MS;

	if (client->closed && client->close_deadline_ms > 0)
		left = client->close_deadline_ms -
		    clock_ms_since(&client->close_began);
	if (left < KAFKA_DESTROY_MIN_MS)
		left = KAFKA_DESTROY_MIN_MS;
	return (long)(left < KAFKA_DESTROY_MS ? left : KAFKA_DESTROY_MS);
}

/* Frees the client. */
void
kafka_client_free(struct kafka_client *client)
{
	size_t i;

	if (client == NULL)
		return;
	if (client->queue_event != NULL)
		event_free(client->queue_event);
	if (client->again != NULL)
		event_free(client->again);
	if (client->tick != NULL)
		event_free(client->tick);
	kafka_peek_free(client->peek, kafka_destroy_ms(client));
	if (client->peek_conf != NULL)
		rd_kafka_conf_destroy(client->peek_conf);
	if (client->queue != NULL) {
		rd_kafka_queue_io_event_enable(client->queue, -1, NULL, 0);
		rd_kafka_queue_destroy(client->queue);
	}
	for (i = 0; i < client->topic_count; i++)
		if (client->topics[i].rkt != NULL)
			rd_kafka_topic_destroy(client->topics[i].rkt);
	if (client->rk != NULL && client->subscribed && !client->joined) {
		/*
		 * Never assigned: destroying would abort (librdkafka#4312).
		 * The process is about to exit; keep the handle reachable so
		 * that leak checkers do not report what exit() reclaims.
		 */
		kafka_parked_handle = client->rk;
		log_debug("kafka: no assignment was ever received; the client "
		    "is left to the process exit");
	} else if (client->rk != NULL &&
	    !kafka_destroy_within(client->rk, kafka_destroy_ms(client))) {
		kafka_parked_handle = client->rk;
		log_warnx("kafka: the client did not shut down within %ld ms; "
		    "exiting without waiting for it (the state and the offsets "
		    "are in PostgreSQL)", kafka_destroy_ms(client));
	}
	if (client->pipe_read != -1)
		close(client->pipe_read);
	if (client->pipe_write != -1)
		close(client->pipe_write);
	for (i = 0; i < client->topic_count; i++) {
		free(client->topics[i].name);
		free(client->topics[i].parts);
		free(client->topics[i].starts);
	}
	free(client->topics);
	free(client);
}

/* Errors the client reported. */
uint64_t
kafka_client_errors(const struct kafka_client *client)
{
	return client->errors;
}
