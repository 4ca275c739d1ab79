/* Kafka consumption on the event loop: subscribe, decode, batch, apply. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "common/log.h"
#include "consumers/consumer.h"

/* The slow poll that keeps the group membership alive in every state. */
#define CONSUMER_POLL_MS	200

/*
 * A rebuild reads the whole history at once: batches ten times larger
 * collapse more versions of one entity into one change (and nobody waits
 * on its latency).
 */
#define CONSUMER_REBUILD_SCALE	10

/* A client that cannot be destroyed safely (see consumer_free()). */
static rd_kafka_t *consumer_parked_handle;

/* How long destroying the client may take before the exit goes on. */
#define CONSUMER_DESTROY_MS	5000

/* A destroy running on a thread of its own, and its end. */
struct consumer_destroy {
	rd_kafka_t	*rk;
	pthread_mutex_t	 lock;
	pthread_cond_t	 done_cond;
	bool		 done;
	bool		 abandoned;	/* the waiter gave up: free when done */
};

/* Where one assigned partition stands in PostgreSQL. */
struct consumer_partition {
	struct batch_position	 position;
	int			 topic;
	bool			 assigned;
	bool			 out_of_range;	/* its stored offset is not in the log */
	int64_t			 rebuild_low;	/* watermarks when assigned */
	int64_t			 rebuild_high;
};

struct consumer {
	struct event_base	*base;
	struct pgconn		*pg;
	char			*group_id;
	struct consumer_topic	*topics;
	const char		**topic_names;
	size_t			 topic_count;
	size_t			 batch_max_events;
	size_t			 batch_max_bytes;
	long long		 batch_max_wait_ms;
	struct decode_limits	 limits;
	struct debezium_columns	 columns;
	char			*column_strings;	/* owns the column names */

	rd_kafka_t		*rk;
	rd_kafka_queue_t	*queue;
	int			 pipe_read;
	int			 pipe_write;
	struct event		*queue_event;
	struct event		*poll_timer;
	struct event		*linger_timer;

	struct consumer_partition *partitions;
	size_t			 partition_count;

	struct batch		 pending;	/* consumed, not yet sent */
	struct batch		 inflight;	/* being applied, or to retry */
	struct timespec		 pending_since;
	struct applier		*applier;

	bool			 subscribed;
	bool			 ever_assigned;	/* see consumer_free() */
	bool			 db_up;
	bool			 paused;
	bool			 loading;	/* offsets are being read */
	bool			 resync;	/* re-subscribe once offsets are read */
	bool			 stopping;
	bool			 rebuild;	/* filling ipam_state_rebuild */
	bool			 swapping;	/* the swap is under way */
	bool			 rebuild_ready;	/* ipam_state_rebuild was made */
	const char		*schema;	/* the state being filled */
	long long		 stop_deadline_ms;
	consumer_event_cb	*subscribed_cb;
	void			*subscribed_arg;
	consumer_event_cb	*stopped_cb;
	void			*stopped_arg;
	struct consumer_stats	 stats;
	struct timespec		 last_kafka_commit;
	bool			 kafka_commit_due;
};

static void	consumer_drain(struct consumer *consumer);
static void	consumer_flush(struct consumer *consumer);
static void	consumer_finish_stop(struct consumer *consumer);
static void	consumer_load_offsets(struct consumer *consumer);
static void	consumer_out_of_range(struct consumer *consumer,
		    rd_kafka_message_t *message);
static void	consumer_applied(struct applier *applier,
		    enum applier_outcome outcome, const char *error, void *arg);

/* Milliseconds since an instant. */
static long long
consumer_ms_since(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - since->tv_sec) * 1000 +
	    (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Finds the index of a topic by name; -1 when it is not one of ours. */
static int
consumer_topic_index(const struct consumer *consumer, const char *name)
{
	size_t i;

	for (i = 0; i < consumer->topic_count; i++) {
		if (strcmp(consumer->topics[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* Finds a partition's slot, creating it when asked. */
static struct consumer_partition *
consumer_partition(struct consumer *consumer, int topic, int32_t partition,
    bool create)
{
	struct consumer_partition *grown, *slot;
	size_t i;

	for (i = 0; i < consumer->partition_count; i++) {
		slot = &consumer->partitions[i];
		if (slot->topic == topic && slot->position.partition == partition)
			return slot;
	}
	if (!create)
		return NULL;
	grown = realloc(consumer->partitions,
	    (consumer->partition_count + 1) * sizeof(*grown));
	if (grown == NULL)
		fatal("consumer: realloc");
	consumer->partitions = grown;
	slot = &consumer->partitions[consumer->partition_count++];
	memset(slot, 0, sizeof(*slot));
	slot->topic = topic;
	slot->position.topic = consumer->topics[topic].name;
	slot->position.partition = partition;
	return slot;
}

/* The applier asks where a partition stands; NULL when not ours now. */
static const struct batch_position *
consumer_position_get(void *arg, int topic, int32_t partition)
{
	struct consumer_partition *slot;

	slot = consumer_partition(arg, topic, partition, false);
	return slot != NULL && slot->assigned ? &slot->position : NULL;
}

/* The applier reports a committed offset. */
static void
consumer_position_set(void *arg, int topic, int32_t partition,
    int64_t next_offset)
{
	struct consumer_partition *slot;

	slot = consumer_partition(arg, topic, partition, true);
	slot->position.stored = true;
	slot->position.next_offset = next_offset;
	((struct consumer *)arg)->kafka_commit_due = true;
}

/*
 * Tells Kafka too where the partitions stand, at most once a second, so
 * that lag tools see it.  PostgreSQL stays the truth: nothing reads these
 * commits back.
 */
static void
consumer_commit_to_kafka(struct consumer *consumer)
{
	rd_kafka_topic_partition_list_t *list;
	size_t i;

	if (!consumer->kafka_commit_due || consumer->rk == NULL ||
	    consumer_ms_since(&consumer->last_kafka_commit) < 1000)
		return;
	list = rd_kafka_topic_partition_list_new(
	    (int)consumer->partition_count);
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (slot->assigned && slot->position.stored)
			rd_kafka_topic_partition_list_add(list,
			    consumer->topics[slot->topic].name,
			    slot->position.partition)->offset =
			    slot->position.next_offset;
	}
	if (list->cnt > 0)
		rd_kafka_commit(consumer->rk, list, 1);
	rd_kafka_topic_partition_list_destroy(list);
	consumer->kafka_commit_due = false;
	clock_gettime(CLOCK_MONOTONIC, &consumer->last_kafka_commit);
}

/* Routes librdkafka's log lines into ours (they arrive on our thread). */
static void
consumer_log_cb(const rd_kafka_t *rk, int level, const char *facility,
    const char *message)
{
	enum log_level ours = level <= 3 ? LOG_LEVEL_ERR :
	    level == 4 ? LOG_LEVEL_WARNING : level <= 6 ? LOG_LEVEL_INFO :
	    LOG_LEVEL_DEBUG;

	log_write(ours, "kafka: %s: %s", facility, message);
}

/* Reports client-level errors (brokers down, authentication, ...). */
static void
consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct consumer *consumer = opaque;

	consumer->stats.kafka_errors++;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		log_warnx("kafka: all brokers are down; waiting for them (%s)",
		    reason);
	else if (rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_errx("kafka: fatal error: %s", reason);
	else
		log_warnx("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Pauses or resumes every assigned partition. */
static void
consumer_set_paused(struct consumer *consumer, bool paused)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	consumer->paused = paused;
	if (consumer->rk == NULL || !consumer->subscribed)
		return;
	err = rd_kafka_assignment(consumer->rk, &list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (list->cnt > 0) {
		if (paused)
			rd_kafka_pause_partitions(consumer->rk, list);
		else
			rd_kafka_resume_partitions(consumer->rk, list);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * Notes where a partition ends now: a rebuild has caught up once every
 * partition has been applied up to that point.  The query blocks briefly,
 * once per partition, and only in rebuild mode.
 */
static void
consumer_rebuild_target(struct consumer *consumer,
    struct consumer_partition *slot)
{
	rd_kafka_resp_err_t err;
	int64_t low = 0, high = 0;

	err = rd_kafka_query_watermark_offsets(consumer->rk,
	    consumer->topics[slot->topic].name, slot->position.partition, &low,
	    &high, 10000);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* Unknown: consumer_check_rebuild() asks again. */
		log_warnx("rebuild: end of %s[%d] unknown (%s)",
		    consumer->topics[slot->topic].name, slot->position.partition,
		    rd_kafka_err2str(err));
		low = high = INT64_MAX;
	}
	slot->rebuild_low = low;
	slot->rebuild_high = high;
	log_info("rebuild: %s[%d] holds offsets %lld to %lld",
	    consumer->topics[slot->topic].name, slot->position.partition,
	    (long long)low, (long long)high);
}

/* The swap is done (or failed: then it is tried again). */
static void
consumer_swapped_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct consumer *consumer = arg;
	char message[512];

	consumer->swapping = false;
	if (result == NULL)
		return;	/* the connection went; checked again once it is back */
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(pg, result, message, sizeof(message));
		log_errx("rebuild: swap failed: %s; trying again", message);
		return;
	}
	consumer->rebuild = false;
	consumer->schema = "ipam_state";
	applier_set_target(consumer->applier, consumer->schema, false);
	log_info("rebuild: swapped in the rebuilt state (%s); carrying on",
	    PQgetvalue(result, 0, 0));
	consumer_flush(consumer);
}

/* Every row is derived: swap the rebuilt state in. */
static void
consumer_derived_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct consumer *consumer = arg;
	char message[512];

	if (result == NULL) {
		consumer->swapping = false;	/* checked again once it is back */
		return;
	}
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(pg, result, message, sizeof(message));
		log_errx("rebuild: deriving the rows failed: %s; trying again",
		    message);
		consumer->swapping = false;
		return;
	}
	log_info("rebuild: rows derived; swapping the rebuilt state in");
	if (pgconn_query(pg, "SELECT ipamd.rebuild_swap()", 0, NULL,
	    consumer_swapped_cb, consumer) == -1)
		consumer->swapping = false;
}

/* Derives and swaps the rebuilt state in once every partition caught up. */
static void
consumer_check_rebuild(struct consumer *consumer)
{
	size_t i;

	if (!consumer->rebuild || consumer->swapping || consumer->stopping ||
	    !consumer->ever_assigned || !consumer->db_up || consumer->loading ||
	    applier_busy(consumer->applier) || consumer->inflight.count > 0 ||
	    pgconn_is_busy(consumer->pg))
		return;
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (!slot->assigned)
			continue;
		if (slot->rebuild_high == INT64_MAX)
			consumer_rebuild_target(consumer, slot);
		if (slot->position.stored ?
		    slot->position.next_offset < slot->rebuild_high :
		    slot->rebuild_low < slot->rebuild_high)
			return;
	}
	if (pgconn_query(consumer->pg, "SELECT ipamd.derive_all()", 0, NULL,
	    consumer_derived_cb, consumer) == 0) {
		consumer->swapping = true;
		log_info("rebuild: caught up; deriving every row");
	}
}

/* Tells whether some partition of a topic has a stored offset. */
static bool
consumer_topic_consumed(const struct consumer *consumer, int topic)
{
	size_t i;

	for (i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].topic == topic &&
		    consumer->partitions[i].position.stored)
			return true;
	return false;
}

/* Takes partitions: start each at its offset stored in PostgreSQL. */
static void
consumer_assign(struct consumer *consumer,
    rd_kafka_topic_partition_list_t *list)
{
	rd_kafka_error_t *error;
	int i;

	for (i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		struct consumer_partition *slot;
		int topic = consumer_topic_index(consumer, tp->topic);

		if (topic < 0)
			continue;
		slot = consumer_partition(consumer, topic, tp->partition, true);
		slot->assigned = true;
		slot->out_of_range = false;
		if (!slot->position.stored && !consumer->rebuild &&
		    consumer_topic_consumed(consumer, topic))
			log_warnx("kafka: %s[%d] is new to a topic whose other "
			    "partitions were consumed: partitions were added, "
			    "and keys may have moved between partitions.  Events "
			    "with a version are still ordered by it; events "
			    "without one apply in the order they are consumed, "
			    "so an older event still waiting in its old "
			    "partition can win over a newer one "
			    "(docs/EVENTS.md)", tp->topic, tp->partition);
		tp->offset = slot->position.stored ? slot->position.next_offset :
		    RD_KAFKA_OFFSET_BEGINNING;
		if (consumer->rebuild)
			consumer_rebuild_target(consumer, slot);
		log_info("kafka: assigned %s[%d] from offset %s%lld",
		    tp->topic, tp->partition,
		    slot->position.stored ? "" : "(beginning) ",
		    slot->position.stored ? (long long)tp->offset : 0LL);
	}
	error = rd_kafka_incremental_assign(consumer->rk, list);
	if (error != NULL) {
		log_errx("kafka: assign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	consumer->ever_assigned = true;
	if (consumer->paused && list->cnt > 0)
		rd_kafka_pause_partitions(consumer->rk, list);
	consumer->stats.assigned += list->cnt;
}

/* Gives partitions up: what was consumed of them and not sent is dropped. */
static void
consumer_revoke(struct consumer *consumer,
    rd_kafka_topic_partition_list_t *list, bool lost)
{
	rd_kafka_error_t *error;
	int i;

	for (i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		struct consumer_partition *slot;
		int topic = consumer_topic_index(consumer, tp->topic);

		if (topic < 0)
			continue;
		batch_drop_partition(&consumer->pending, topic, tp->partition);
		if ((slot = consumer_partition(consumer, topic, tp->partition,
		    false)) != NULL)
			slot->assigned = false;
		log_info("kafka: %s %s[%d]", lost ? "lost" : "revoked",
		    tp->topic, tp->partition);
	}
	error = rd_kafka_incremental_unassign(consumer->rk, list);
	if (error != NULL) {
		log_errx("kafka: unassign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	consumer->stats.assigned -= (size_t)list->cnt <= consumer->stats.assigned ?
	    (size_t)list->cnt : consumer->stats.assigned;
}

/* The rebalance callback; runs inside a poll, on the loop's thread. */
static void
consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	struct consumer *consumer = opaque;

	consumer->stats.rebalances++;
	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		consumer_assign(consumer, partitions);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		consumer_revoke(consumer, partitions,
		    rd_kafka_assignment_lost(rk));
		break;
	default:
		log_errx("kafka: rebalance failed: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
		break;
	}
}

/* Sets one librdkafka property, naming it in err on failure. */
static int
consumer_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
    char *err, size_t errlen)
{
	char reason[512];

	if (rd_kafka_conf_set(conf, name, value, reason, sizeof(reason)) !=
	    RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka.%s: %s", name, reason);
		return -1;
	}
	return 0;
}

/* Copies the Debezium column names into one block the consumer owns. */
static void
consumer_copy_columns(struct consumer *consumer,
    const struct debezium_columns *columns)
{
	const char *const *src = (const char *const *)columns;
	const char **dst = (const char **)&consumer->columns;
	size_t count = sizeof(*columns) / sizeof(char *), i, total = 0;
	char *p;

	for (i = 0; i < count; i++)
		total += strlen(src[i] ? src[i] : "") + 1;
	if ((consumer->column_strings = malloc(total)) == NULL)
		fatal("consumer: malloc");
	p = consumer->column_strings;
	for (i = 0; i < count; i++) {
		size_t len = strlen(src[i] ? src[i] : "") + 1;

		memcpy(p, src[i] ? src[i] : "", len);
		dst[i] = p;
		p += len;
	}
}

/* Creates a consumer. */
struct consumer *
consumer_new(struct event_base *base, struct pgconn *pg,
    const struct consumer_settings *settings, char *err, size_t errlen)
{
	struct applier_positions positions;
	struct consumer *consumer;
	rd_kafka_conf_t *conf = NULL;
	char reason[512];
	int fds[2];
	size_t i;

	if ((consumer = calloc(1, sizeof(*consumer))) == NULL)
		fatal("consumer: calloc");
	consumer->base = base;
	consumer->pg = pg;
	consumer->pipe_read = consumer->pipe_write = -1;
	if ((consumer->group_id = strdup(settings->group_id)) == NULL)
		fatal("consumer: strdup");
	consumer->topic_count = settings->topic_count;
	consumer->topics = calloc(settings->topic_count,
	    sizeof(*consumer->topics));
	consumer->topic_names = calloc(settings->topic_count,
	    sizeof(*consumer->topic_names));
	if (consumer->topics == NULL || consumer->topic_names == NULL)
		fatal("consumer: calloc");
	for (i = 0; i < settings->topic_count; i++) {
		consumer->topics[i] = settings->topics[i];
		if ((consumer->topics[i].name = strdup(settings->topics[i].name))
		    == NULL)
			fatal("consumer: strdup");
		consumer->topic_names[i] = consumer->topics[i].name;
	}
	consumer->limits = settings->limits;
	consumer->rebuild = settings->rebuild;
	consumer->schema = settings->rebuild ? "ipam_state_rebuild" :
	    "ipam_state";
	consumer_copy_columns(consumer, &settings->columns);
	consumer_set_batch_limits(consumer, settings->batch_max_events,
	    settings->batch_max_bytes, settings->batch_max_wait_ms);
	batch_init(&consumer->pending, consumer->topic_names,
	    consumer->topic_count);
	batch_init(&consumer->inflight, consumer->topic_names,
	    consumer->topic_count);

	conf = rd_kafka_conf_new();
	/* Offsets live in PostgreSQL; the group only assigns partitions. */
	if (consumer_conf_set(conf, "group.id", settings->group_id, err,
	    errlen) == -1 ||
	    consumer_conf_set(conf, "enable.auto.commit", "false", err,
	    errlen) == -1 ||
	    consumer_conf_set(conf, "enable.auto.offset.store", "false", err,
	    errlen) == -1 ||
	    /*
	     * A stored offset outside the log (the topic was deleted and
	     * made again, or its records expired unread) is an error to
	     * report, never a silent jump: librdkafka then stops fetching
	     * that partition.  New partitions start at the beginning
	     * explicitly (consumer_assign()).
	     */
	    consumer_conf_set(conf, "auto.offset.reset", "error", err,
	    errlen) == -1 ||
	    consumer_conf_set(conf, "partition.assignment.strategy",
	    "cooperative-sticky", err, errlen) == -1 ||
	    consumer_conf_set(conf, "queued.max.messages.kbytes", "16384", err,
	    errlen) == -1 ||
	    consumer_conf_set(conf, "log.queue", "true", err, errlen) == -1 ||
	    /* A topic created after the start is found within seconds. */
	    consumer_conf_set(conf, "topic.metadata.refresh.interval.ms",
	    "5000", err, errlen) == -1 ||
	    consumer_conf_set(conf, "client.id", "ipam-syncd", err,
	    errlen) == -1)
		goto fail;
	for (i = 0; i < settings->property_count; i++) {
		size_t len = strlen(settings->properties[i].name);

		/* "name_file" holds a secret already read into "name". */
		if (len > 5 && strcmp(settings->properties[i].name + len - 5,
		    "_file") == 0)
			continue;
		if (consumer_conf_set(conf, settings->properties[i].name,
		    settings->properties[i].value, err, errlen) == -1)
			goto fail;
	}
	rd_kafka_conf_set_log_cb(conf, consumer_log_cb);
	rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
	rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance_cb);
	rd_kafka_conf_set_opaque(conf, consumer);

	consumer->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason,
	    sizeof(reason));
	if (consumer->rk == NULL) {
		snprintf(err, errlen, "kafka: %s", reason);
		goto fail;
	}
	conf = NULL;	/* owned by the handle now */
	rd_kafka_set_log_queue(consumer->rk, NULL);
	rd_kafka_poll_set_consumer(consumer->rk);
	consumer->queue = rd_kafka_queue_get_consumer(consumer->rk);

	/* librdkafka writes to the pipe when the queue becomes non-empty. */
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	consumer->pipe_read = fds[0];
	consumer->pipe_write = fds[1];
	rd_kafka_queue_io_event_enable(consumer->queue, consumer->pipe_write,
	    "1", 1);

	positions.get = consumer_position_get;
	positions.set = consumer_position_set;
	positions.arg = consumer;
	consumer->applier = applier_new(base, pg, settings->group_id,
	    &positions, consumer_applied, consumer);
	applier_set_target(consumer->applier, consumer->schema,
	    consumer->rebuild);
	return consumer;
fail:
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	consumer_free(consumer);
	return NULL;
}

/* Drains the wake-up pipe, then the queue. */
static void
consumer_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct consumer *consumer = arg;
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	consumer_drain(consumer);
}

/* The slow poll: serves callbacks and catches anything the pipe missed. */
static void
consumer_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct consumer *consumer = arg;

	consumer_drain(consumer);
	consumer_check_rebuild(consumer);
	if (!consumer->stopping)
		consumer_commit_to_kafka(consumer);
	if (consumer->stopping && consumer_ms_since(&consumer->pending_since) >
	    consumer->stop_deadline_ms) {
		/* pending_since holds the stop time while stopping. */
		log_warnx("shutdown: the apply in flight did not finish within "
		    "%lld ms; leaving it to be rolled back",
		    consumer->stop_deadline_ms);
		consumer_finish_stop(consumer);
	}
}

/* The linger is over: send what is pending. */
static void
consumer_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	consumer_flush(arg);
}

/* The applier is done with the batch in flight. */
static void
consumer_applied(struct applier *applier, enum applier_outcome outcome,
    const char *error, void *arg)
{
	struct consumer *consumer = arg;

	switch (outcome) {
	case APPLIER_DONE:
		break;
	case APPLIER_LOST:
		/* Kept in inflight; consumer_db_up() retries it. */
		log_info("apply: connection lost with %zu events in flight; "
		    "they are retried once PostgreSQL is back",
		    consumer->inflight.count);
		break;
	case APPLIER_MOVED:
		log_warnx("kafka: offsets moved under us (%s); reading them "
		    "again and re-joining the group", error);
		batch_clear(&consumer->inflight);
		batch_clear(&consumer->pending);
		consumer->resync = true;
		if (consumer->db_up)
			consumer_load_offsets(consumer);
		break;
	}
	if (consumer->stopping) {
		consumer_finish_stop(consumer);
		return;
	}
	if (outcome == APPLIER_DONE) {
		consumer_check_rebuild(consumer);
		consumer_flush(consumer);
		consumer_drain(consumer);
	}
}

/*
 * Reads every header of a message into a new array (*out, the caller
 * frees it) and their JSON text for a dead letter (*json, likewise);
 * returns how many there are.
 */
static size_t
consumer_headers(rd_kafka_message_t *message, struct decode_header **out,
    char **json)
{
	rd_kafka_headers_t *kafka_headers = NULL;
	struct decode_header *headers = NULL;
	const char *name;
	const void *value;
	size_t i, count, size;

	*out = NULL;
	*json = NULL;
	if (rd_kafka_message_headers(message, &kafka_headers) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	count = rd_kafka_header_cnt(kafka_headers);
	if (count > 0 && (headers = calloc(count, sizeof(*headers))) == NULL)
		fatal("consumer: calloc");
	for (i = 0; i < count && rd_kafka_header_get_all(kafka_headers, i,
	    &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		headers[i].name = name;
		headers[i].value = value;
		headers[i].value_len = size;
	}
	if ((*json = decode_headers_json(headers, i)) == NULL)
		fatal("consumer: decode_headers_json");
	*out = headers;
	return i;
}

/* Decodes one message into the pending batch. */
static void
consumer_take(struct consumer *consumer, rd_kafka_message_t *message)
{
	struct decode_header *headers;
	struct decode_input input;
	struct change change;
	char *headers_text;
	char reason[1024];
	int topic;

	topic = consumer_topic_index(consumer,
	    rd_kafka_topic_name(message->rkt));
	if (topic < 0)
		return;
	memset(&input, 0, sizeof(input));
	input.entity = consumer->topics[topic].entity;
	input.key = message->key;
	input.key_len = message->key_len;
	input.value = message->payload;
	input.value_len = message->len;
	input.limits = &consumer->limits;
	input.columns = &consumer->columns;
	input.header_count = consumer_headers(message, &headers,
	    &headers_text);
	input.headers = headers;

	consumer->stats.messages++;
	if (consumer->pending.count == 0)
		clock_gettime(CLOCK_MONOTONIC, &consumer->pending_since);
	memset(&change, 0, sizeof(change));
	switch (decode_message(consumer->topics[topic].format, &input, &change,
	    reason, sizeof(reason))) {
	case DECODE_OK:
		batch_add_change(&consumer->pending, topic, message->partition,
		    message->offset, &change, message->key, message->key_len,
		    message->payload, message->len, headers_text);
		break;
	case DECODE_SKIP:
		/* Nothing to apply, but the offset still moves past it. */
		batch_add_skip(&consumer->pending, topic, message->partition,
		    message->offset);
		break;
	case DECODE_ERROR:
		consumer->stats.decode_errors++;
		batch_add_dead(&consumer->pending, topic, message->partition,
		    message->offset, reason, message->key, message->key_len,
		    message->payload, message->len, headers_text);
		break;
	}
	free(headers_text);
	free(headers);
}

/*
 * Serves callbacks (rebalance, logs, errors) without taking messages: any
 * message polled now is dropped, which is safe because positions live in
 * PostgreSQL and it is consumed again by whoever owns the partition next.
 */
static void
consumer_serve_callbacks(struct consumer *consumer, int timeout_ms)
{
	rd_kafka_message_t *message;

	message = rd_kafka_consumer_poll(consumer->rk, timeout_ms);
	if (message != NULL)
		rd_kafka_message_destroy(message);
}

/*
 * A partition's stored offset lies outside its log: say what happened
 * and what to do, once per assignment.  librdkafka fetches nothing more
 * of it, so nothing is skipped; the daemon is not ready meanwhile.
 */
static void
consumer_out_of_range(struct consumer *consumer, rd_kafka_message_t *message)
{
	struct consumer_partition *slot;
	const char *name;
	int topic;

	if (message->rkt == NULL)
		return;
	name = rd_kafka_topic_name(message->rkt);
	if ((topic = consumer_topic_index(consumer, name)) < 0 ||
	    (slot = consumer_partition(consumer, topic, message->partition,
	    false)) == NULL || slot->out_of_range)
		return;
	slot->out_of_range = true;
	consumer->stats.out_of_range++;
	log_errx("kafka: %s[%d]: the stored offset %lld is outside the "
	    "partition's log (%s): the topic was deleted and made again, or "
	    "its records expired before they were consumed; nothing more of "
	    "this partition is consumed.  To rebuild the state from what the "
	    "topics hold now, run ipam-syncd --rebuild; to accept the loss "
	    "and go on from the start of the log, delete the partition's row "
	    "from ipam_state.consumer_offset and restart (docs/EVENTS.md)",
	    name, message->partition,
	    slot->position.stored ? (long long)slot->position.next_offset :
	    -1LL, rd_kafka_message_errstr(message));
}

/* Tells whether the pending batch has reached a bound. */
static bool
consumer_pending_full(const struct consumer *consumer)
{
	size_t scale = consumer->rebuild ? CONSUMER_REBUILD_SCALE : 1;

	return consumer->pending.count >= consumer->batch_max_events * scale ||
	    consumer->pending.bytes >= consumer->batch_max_bytes * scale;
}

/* Takes messages off the queue until it is empty or the batch is full. */
static void
consumer_drain(struct consumer *consumer)
{
	rd_kafka_message_t *message;

	if (consumer->rk == NULL)
		return;
	for (;;) {
		/*
		 * Stop at a full batch while another is in flight: the pipe
		 * only wakes us on empty-to-non-empty, so consumer_applied()
		 * drains again.  The slow poll keeps serving callbacks.
		 */
		if (consumer_pending_full(consumer) &&
		    (applier_busy(consumer->applier) ||
		    consumer->inflight.count > 0 || !consumer->db_up)) {
			if (!consumer->paused && !consumer->db_up)
				consumer_set_paused(consumer, true);
			break;
		}
		if (consumer->stopping)
			message = NULL;
		else
			message = rd_kafka_consumer_poll(consumer->rk, 0);
		if (message == NULL)
			break;
		if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(message);
			continue;
		}
		if (message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
			consumer_out_of_range(consumer, message);
			rd_kafka_message_destroy(message);
			continue;
		}
		if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			consumer->stats.kafka_errors++;
			log_warnx("kafka: %s", rd_kafka_message_errstr(message));
			rd_kafka_message_destroy(message);
			continue;
		}
		consumer_take(consumer, message);
		rd_kafka_message_destroy(message);
		if (consumer_pending_full(consumer))
			consumer_flush(consumer);
	}
	if (consumer->stopping) {
		consumer_serve_callbacks(consumer, 0);
		return;
	}
	consumer_flush(consumer);
}

/* Sends the pending batch when the applier is free and a bound is met. */
static void
consumer_flush(struct consumer *consumer)
{
	long long waited;
	struct timeval tv;

	consumer->stats.pending = consumer->pending.count +
	    consumer->inflight.count;
	if (consumer->pending.count == 0 || consumer->stopping ||
	    !consumer->db_up || consumer->loading || consumer->swapping ||
	    applier_busy(consumer->applier) || consumer->inflight.count > 0)
		return;
	waited = consumer_ms_since(&consumer->pending_since);
	if (!consumer_pending_full(consumer) &&
	    waited < consumer->batch_max_wait_ms) {
		if (!evtimer_pending(consumer->linger_timer, NULL)) {
			tv.tv_sec = 0;
			tv.tv_usec = (consumer->batch_max_wait_ms - waited) * 1000;
			evtimer_add(consumer->linger_timer, &tv);
		}
		return;
	}
	evtimer_del(consumer->linger_timer);
	batch_move(&consumer->inflight, &consumer->pending);
	if (applier_apply(consumer->applier, &consumer->inflight) == -1)
		log_debug("apply: not connected; %zu events wait",
		    consumer->inflight.count);
}

/* Handles the stored offsets read from PostgreSQL. */
static void
consumer_offsets_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct consumer *consumer = arg;
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	char message[512];
	int row;
	size_t i;

	consumer->loading = false;
	if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK) {
		if (result != NULL) {
			pgconn_result_error(pg, result, message, sizeof(message));
			log_errx("consumer: reading offsets: %s", message);
			pgconn_reset(pg, message);
		}
		return;	/* consumer_db_up() tries again */
	}
	for (i = 0; i < consumer->partition_count; i++)
		consumer->partitions[i].position.stored = false;
	for (row = 0; row < PQntuples(result); row++) {
		int topic = consumer_topic_index(consumer,
		    PQgetvalue(result, row, 0));

		if (topic < 0)
			continue;
		consumer_position_set(consumer, topic,
		    (int32_t)atoi(PQgetvalue(result, row, 1)),
		    strtoll(PQgetvalue(result, row, 2), NULL, 10));
	}

	if (consumer->resync && consumer->subscribed) {
		/* Leaving and re-joining assigns again from the fresh offsets. */
		consumer->resync = false;
		rd_kafka_unsubscribe(consumer->rk);
		for (i = 0; i < consumer->partition_count; i++)
			consumer->partitions[i].assigned = false;
		consumer->subscribed = false;
	}
	if (!consumer->subscribed) {
		topics = rd_kafka_topic_partition_list_new(
		    (int)consumer->topic_count);
		for (i = 0; i < consumer->topic_count; i++)
			rd_kafka_topic_partition_list_add(topics,
			    consumer->topics[i].name, RD_KAFKA_PARTITION_UA);
		err = rd_kafka_subscribe(consumer->rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			fatalx("kafka: subscribe: %s", rd_kafka_err2str(err));
		consumer->subscribed = true;
		log_info("kafka: subscribed to %zu topics as group %s",
		    consumer->topic_count, consumer->group_id);
		if (consumer->subscribed_cb != NULL) {
			consumer_event_cb *cb = consumer->subscribed_cb;

			consumer->subscribed_cb = NULL;
			cb(consumer->subscribed_arg);
		}
	}
	if (consumer->paused)
		consumer_set_paused(consumer, false);
	/* Retry what was in flight when the connection went. */
	if (consumer->inflight.count > 0 && !applier_busy(consumer->applier))
		applier_apply(consumer->applier, &consumer->inflight);
	consumer_drain(consumer);
}

/* Reads the stored offsets of the group. */
static void
consumer_load_offsets(struct consumer *consumer)
{
	const char *params[1] = { consumer->group_id };
	char sql[256];

	if (consumer->loading)
		return;
	snprintf(sql, sizeof(sql), "SELECT topic, partition, next_offset "
	    "FROM %s.consumer_offset WHERE group_id = $1", consumer->schema);
	if (pgconn_query(consumer->pg, sql, 1, params, consumer_offsets_cb,
	    consumer) == 0)
		consumer->loading = true;
}

/* The fresh state exists: read its (empty) offsets and subscribe. */
static void
consumer_rebuild_begun_cb(struct pgconn *pg, PGresult *result,
    const char *error, void *arg)
{
	struct consumer *consumer = arg;
	char message[512];

	if (result == NULL)
		return;	/* consumer_db_up() prepares again */
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		pgconn_result_error(pg, result, message, sizeof(message));
		fatalx("rebuild: cannot prepare the fresh state: %s", message);
	}
	consumer->rebuild_ready = true;
	consumer_load_offsets(consumer);
}

/* Makes the fresh state first when rebuilding, then reads the offsets. */
static void
consumer_prepare(struct consumer *consumer)
{
	if (consumer->rebuild && !consumer->rebuild_ready) {
		pgconn_query(consumer->pg, "SELECT ipamd.rebuild_begin()", 0,
		    NULL, consumer_rebuild_begun_cb, consumer);
		return;
	}
	consumer_load_offsets(consumer);
}

/* Loads the stored offsets and subscribes. */
void
consumer_start(struct consumer *consumer, consumer_event_cb *subscribed,
    void *arg)
{
	struct timeval poll = { 0, CONSUMER_POLL_MS * 1000 };

	consumer->subscribed_cb = subscribed;
	consumer->subscribed_arg = arg;
	consumer->db_up = true;
	consumer->queue_event = event_new(consumer->base, consumer->pipe_read,
	    EV_READ | EV_PERSIST, consumer_queue_cb, consumer);
	consumer->poll_timer = event_new(consumer->base, -1, EV_PERSIST,
	    consumer_poll_cb, consumer);
	consumer->linger_timer = evtimer_new(consumer->base, consumer_linger_cb,
	    consumer);
	if (consumer->queue_event == NULL || consumer->poll_timer == NULL ||
	    consumer->linger_timer == NULL)
		fatalx("consumer: event_new failed");
	event_add(consumer->queue_event, NULL);
	event_add(consumer->poll_timer, &poll);
	if (consumer->rebuild)
		log_info("rebuild: building a fresh state from the beginning of "
		    "every topic");
	consumer_prepare(consumer);
}

/* PostgreSQL went down: pause consumption. */
void
consumer_db_down(struct consumer *consumer)
{
	consumer->db_up = false;
	consumer->loading = false;
	consumer_set_paused(consumer, true);
	log_info("kafka: consumption paused while PostgreSQL is away");
}

/* PostgreSQL is back: reload offsets, then retry and resume. */
void
consumer_db_up(struct consumer *consumer)
{
	if (consumer->queue_event == NULL)
		return;	/* not started yet */
	consumer->db_up = true;
	log_info("kafka: PostgreSQL is back; reading offsets and resuming");
	consumer_prepare(consumer);
}

/* Leaves the group, bounded by the stop deadline, and reports. */
static void
consumer_finish_stop(struct consumer *consumer)
{
	rd_kafka_queue_t *queue;
	rd_kafka_error_t *error;
	struct timespec began;
	consumer_event_cb *cb = consumer->stopped_cb;

	if (cb == NULL)
		return;
	consumer->stopped_cb = NULL;
	if (consumer->poll_timer != NULL)
		event_del(consumer->poll_timer);
	if (consumer->queue_event != NULL)
		event_del(consumer->queue_event);
	batch_clear(&consumer->pending);

	/*
	 * librdkafka 2.0.2 aborts when a cooperative-sticky member is
	 * destroyed before its first assignment (librdkafka#4312, fixed in
	 * 2.3.0).  A join in progress usually completes within a second:
	 * give it that chance, serving callbacks only.
	 */
	clock_gettime(CLOCK_MONOTONIC, &began);
	while (consumer->subscribed && !consumer->ever_assigned &&
	    consumer_ms_since(&began) < 3000)
		consumer_serve_callbacks(consumer, 50);

	/* Close through a queue so that leaving the group cannot hang us. */
	clock_gettime(CLOCK_MONOTONIC, &began);
	queue = rd_kafka_queue_new(consumer->rk);
	error = rd_kafka_consumer_close_queue(consumer->rk, queue);
	if (error != NULL) {
		log_warnx("kafka: close: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else {
		while (!rd_kafka_consumer_closed(consumer->rk) &&
		    consumer_ms_since(&began) < 5000) {
			rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 100);

			if (event == NULL)
				continue;
			if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE)
				consumer_revoke(consumer,
				    rd_kafka_event_topic_partition_list(event),
				    false);
			rd_kafka_event_destroy(event);
		}
	}
	rd_kafka_queue_destroy(queue);
	log_info("kafka: left the group");
	cb(consumer->stopped_arg);
}

/* Stops consuming and leaves the group once the apply in flight is over. */
void
consumer_stop(struct consumer *consumer, long long deadline_ms,
    consumer_event_cb *stopped, void *arg)
{
	consumer->stopping = true;
	consumer->stopped_cb = stopped;
	consumer->stopped_arg = arg;
	consumer->stop_deadline_ms = deadline_ms;
	clock_gettime(CLOCK_MONOTONIC, &consumer->pending_since);
	if (consumer->linger_timer != NULL)
		evtimer_del(consumer->linger_timer);
	if (applier_busy(consumer->applier)) {
		log_info("shutdown: waiting for the apply in flight");
		return;
	}
	consumer_finish_stop(consumer);
}

/* Destroys a client on its own thread (see consumer_destroy_within()). */
static void *
consumer_destroy_thread(void *arg)
{
	struct consumer_destroy *destroy = arg;
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
 * Destroys a client, waiting at most timeout_ms; tells whether it ended.
 * librdkafka's destroy joins its threads with no deadline, and after a
 * topic was deleted under the consumer it has been seen to wait forever;
 * the state is in PostgreSQL, so the exit must not wait on it.  This is
 * the one place a thread of our own runs: only a thread can put a
 * deadline on a call that blocks.
 */
static bool
consumer_destroy_within(rd_kafka_t *rk, long timeout_ms)
{
	struct consumer_destroy *destroy;
	struct timespec deadline;
	pthread_t thread;
	bool done;

	if ((destroy = calloc(1, sizeof(*destroy))) == NULL)
		fatal("consumer: calloc");
	destroy->rk = rk;
	pthread_mutex_init(&destroy->lock, NULL);
	pthread_cond_init(&destroy->done_cond, NULL);
	if (pthread_create(&thread, NULL, consumer_destroy_thread,
	    destroy) != 0) {
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

/* Frees the consumer. */
void
consumer_free(struct consumer *consumer)
{
	size_t i;

	if (consumer == NULL)
		return;
	if (consumer->queue_event != NULL)
		event_free(consumer->queue_event);
	if (consumer->poll_timer != NULL)
		event_free(consumer->poll_timer);
	if (consumer->linger_timer != NULL)
		event_free(consumer->linger_timer);
	applier_free(consumer->applier);
	batch_clear(&consumer->pending);
	batch_clear(&consumer->inflight);
	free(consumer->pending.entries);
	free(consumer->inflight.entries);
	if (consumer->queue != NULL) {
		rd_kafka_queue_io_event_enable(consumer->queue, -1, NULL, 0);
		rd_kafka_queue_destroy(consumer->queue);
	}
	if (consumer->rk != NULL && consumer->subscribed &&
	    !consumer->ever_assigned) {
		/*
		 * Never assigned: destroying would abort (librdkafka#4312).
		 * The process is about to exit; keep the handle reachable so
		 * that leak checkers do not report what exit() reclaims.
		 */
		consumer_parked_handle = consumer->rk;
		log_debug("kafka: no assignment was ever received; the client "
		    "is left to the process exit");
	} else if (consumer->rk != NULL &&
	    !consumer_destroy_within(consumer->rk, CONSUMER_DESTROY_MS)) {
		consumer_parked_handle = consumer->rk;
		log_warnx("kafka: the client did not shut down within %d ms; "
		    "exiting without waiting for it (the state and the offsets "
		    "are in PostgreSQL)", CONSUMER_DESTROY_MS);
	}
	if (consumer->pipe_read != -1)
		close(consumer->pipe_read);
	if (consumer->pipe_write != -1)
		close(consumer->pipe_write);
	for (i = 0; i < consumer->topic_count; i++)
		free((char *)consumer->topics[i].name);
	free(consumer->topics);
	free(consumer->topic_names);
	free(consumer->partitions);
	free(consumer->column_strings);
	free(consumer->group_id);
	free(consumer);
}

/* Changes the batch bounds. */
void
consumer_set_batch_limits(struct consumer *consumer, size_t max_events,
    size_t max_bytes, long long max_wait_ms)
{
	consumer->batch_max_events = max_events;
	consumer->batch_max_bytes = max_bytes;
	consumer->batch_max_wait_ms = max_wait_ms;
}

/* Tells whether the consumer has subscribed. */
bool
consumer_is_subscribed(const struct consumer *consumer)
{
	return consumer->subscribed;
}

/* Running totals. */
const struct consumer_stats *
consumer_stats(const struct consumer *consumer)
{
	return &consumer->stats;
}

/* The applier's running totals. */
const struct applier_stats *
consumer_applier_stats(const struct consumer *consumer)
{
	return applier_stats(consumer->applier);
}

/* The number of topics. */
size_t
consumer_topic_count(const struct consumer *consumer)
{
	return consumer->topic_count;
}

/* One topic's name. */
const char *
consumer_topic_name(const struct consumer *consumer, size_t index)
{
	return index < consumer->topic_count ? consumer->topics[index].name :
	    NULL;
}

/* Calls fn for every assigned partition. */
void
consumer_foreach_partition(const struct consumer *consumer,
    consumer_partition_fn *fn, void *arg)
{
	size_t i;

	for (i = 0; i < consumer->partition_count; i++) {
		const struct consumer_partition *slot = &consumer->partitions[i];
		int64_t low = -1, high = -1;

		if (!slot->assigned)
			continue;
		if (rd_kafka_get_watermark_offsets(consumer->rk,
		    consumer->topics[slot->topic].name, slot->position.partition,
		    &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR || high < 0)
			low = high = -1;
		fn(arg, consumer->topics[slot->topic].name,
		    slot->position.partition, slot->position.stored ?
		    slot->position.next_offset : -1, low, high);
	}
}

/* Names a partition whose stored offset is outside its log, or NULL. */
const char *
consumer_out_of_range_partition(const struct consumer *consumer,
    int32_t *partition)
{
	size_t i;

	for (i = 0; i < consumer->partition_count; i++) {
		const struct consumer_partition *slot = &consumer->partitions[i];

		if (slot->assigned && slot->out_of_range) {
			*partition = slot->position.partition;
			return consumer->topics[slot->topic].name;
		}
	}
	return NULL;
}

/* Why the database refuses every apply, or NULL. */
const char *
consumer_apply_failing(const struct consumer *consumer)
{
	return applier_failing(consumer->applier);
}

/* Seconds the apply in flight has been running. */
double
consumer_apply_seconds(const struct consumer *consumer)
{
	return applier_busy_seconds(consumer->applier);
}
