/* Reading one record at an offset with a handle of its own, off the group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumers/kafka_client.h"
#include "consumers/kafka_peek.h"

/*
 * How often the handle's queues are looked at: while a peek waits, and
 * while none does (its log lines and errors are served on the loop).
 */
#define KAFKA_PEEK_POLL_MS	50
#define KAFKA_PEEK_IDLE_MS	1000

/* One partition being read, and since when. */
struct kafka_peek_read {
	rd_kafka_topic_t	*rkt;
	int32_t			 partition;
	int64_t			 offset;
	struct timespec		 began;
	bool			 reading;	/* consume_start done */
};

struct kafka_peek {
	struct event_base	*base;
	rd_kafka_t		*rk;
	rd_kafka_queue_t	*queue;		/* every read's messages */
	struct event		*timer;
	kafka_peek_cb		*cb;
	void			*arg;
	struct kafka_peek_read	*reads;
	size_t			 count;
	size_t			 capacity;
	rd_kafka_topic_t	**topics;	/* made once, kept */
	size_t			 topic_count;
};

/* Routes the handle's log lines into ours (served on our thread). */
static void
kafka_peek_log_cb(const rd_kafka_t *rk, int level, const char *facility,
    const char *message)
{
	log_write(log_level_of_syslog(level), "kafka: check: %s: %s", facility,
	    message);
}

/*
 * The handle's errors (a broker down): the group's client reports the
 * same trouble, so they are only for debugging here.
 */
static void
kafka_peek_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	log_debug("kafka: check: %s: %s", rd_kafka_err2name(err), reason);
}

/* The handle's topic object for a name, made on first use. */
static rd_kafka_topic_t *
kafka_peek_topic(struct kafka_peek *peek, const char *name)
{
	rd_kafka_topic_t **grown;
	size_t i;

	for (i = 0; i < peek->topic_count; i++)
		if (strcmp(rd_kafka_topic_name(peek->topics[i]), name) == 0)
			return peek->topics[i];
	if ((grown = realloc(peek->topics, (peek->topic_count + 1) *
	    sizeof(*grown))) == NULL)
		fatal("kafka: realloc");
	peek->topics = grown;
	if ((grown[peek->topic_count] = rd_kafka_topic_new(peek->rk, name,
	    NULL)) == NULL)
		fatalx("kafka: check: topic %s: %s", name,
		    rd_kafka_err2str(rd_kafka_last_error()));
	return grown[peek->topic_count++];
}

/* The read of a partition, or NULL. */
static struct kafka_peek_read *
kafka_peek_find(struct kafka_peek *peek, const char *topic, int32_t partition)
{
	size_t i;

	for (i = 0; i < peek->count; i++)
		if (peek->reads[i].partition == partition &&
		    strcmp(rd_kafka_topic_name(peek->reads[i].rkt), topic) == 0)
			return &peek->reads[i];
	return NULL;
}

/*
 * Stops reading a partition and forgets its read.  The stop waits for the
 * partition's fetcher (a thread of the handle, no request to a broker).
 */
static void
kafka_peek_drop(struct kafka_peek *peek, struct kafka_peek_read *read)
{
	if (read->reading && rd_kafka_consume_stop(read->rkt,
	    read->partition) == -1)
		log_debug("kafka: check: stop %s[%d]: %s",
		    rd_kafka_topic_name(read->rkt), read->partition,
		    rd_kafka_err2str(rd_kafka_last_error()));
	*read = peek->reads[--peek->count];
}

/*
 * Answers a read and forgets it.  The answer is given after the read is
 * forgotten, so that cb may peek again.
 */
static void
kafka_peek_answer(struct kafka_peek *peek, struct kafka_peek_read *read,
    const rd_kafka_message_t *record, const char *none)
{
	char topic[256];
	int32_t partition = read->partition;
	int64_t offset = read->offset;

	snprintf(topic, sizeof(topic), "%s", rd_kafka_topic_name(read->rkt));
	kafka_peek_drop(peek, read);
	peek->cb(peek->arg, topic, partition, offset, record, none);
}

/*
 * One message of the handle's queue: the record a read waits for, or why
 * there is none.  Errors that may pass (a leader moving, a broker away)
 * are waited out until the read's time is up.
 */
static void
kafka_peek_message(struct kafka_peek *peek, rd_kafka_message_t *message)
{
	struct kafka_peek_read *read;
	char none[320];

	if (message->rkt == NULL || (read = kafka_peek_find(peek,
	    rd_kafka_topic_name(message->rkt), message->partition)) == NULL)
		return;	/* of a read replaced or cancelled */
	/*
	 * What a stopped read left behind is dropped by librdkafka (its
	 * fetch version is old), except an offset reset's error, which
	 * carries none: that one must name the offset asked for.
	 */
	switch (message->err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		if (message->offset >= read->offset)
			kafka_peek_answer(peek, read, message, NULL);
		return;
	case RD_KAFKA_RESP_ERR__PARTITION_EOF:
		snprintf(none, sizeof(none), "the log ends at offset %lld",
		    (long long)message->offset);
		kafka_peek_answer(peek, read, NULL, none);
		return;
	case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
	case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
		if (message->offset != read->offset)
			return;
		snprintf(none, sizeof(none), "outside the log: %s",
		    rd_kafka_message_errstr(message));
		kafka_peek_answer(peek, read, NULL, none);
		return;
	default:
		log_debug("kafka: check %s[%d]: %s",
		    rd_kafka_topic_name(message->rkt), message->partition,
		    rd_kafka_message_errstr(message));
		return;
	}
}

/*
 * The timer: takes what the queues hold (what no read waits for is
 * dropped), answers the reads whose time is up, and comes back, soon
 * while any waits.
 */
static void
kafka_peek_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kafka_peek *peek = arg;
	struct timeval soon = { 0, KAFKA_PEEK_POLL_MS * 1000 };
	struct timeval idle = { KAFKA_PEEK_IDLE_MS / 1000, 0 };
	rd_kafka_message_t *message;
	char none[64];
	size_t i;

	rd_kafka_poll(peek->rk, 0);	/* log lines and errors */
	while ((message = rd_kafka_consume_queue(peek->queue, 0)) != NULL) {
		kafka_peek_message(peek, message);
		rd_kafka_message_destroy(message);
	}
	for (i = 0; i < peek->count;) {
		if (clock_ms_since(&peek->reads[i].began) < KAFKA_PEEK_MS) {
			i++;
			continue;
		}
		snprintf(none, sizeof(none), "no answer within %d s",
		    KAFKA_PEEK_MS / 1000);
		kafka_peek_answer(peek, &peek->reads[i], NULL, none);
		i = 0;	/* the answer may have moved or added reads */
	}
	evtimer_add(peek->timer, peek->count > 0 ? &soon : &idle);
}

/* Makes a peeker. */
struct kafka_peek *
kafka_peek_new(struct event_base *base, rd_kafka_conf_t *conf,
    kafka_peek_cb *cb, void *arg, char *err, size_t errlen)
{
	struct kafka_peek *peek;
	char reason[512];

	if ((peek = calloc(1, sizeof(*peek))) == NULL)
		fatal("kafka: calloc");
	peek->base = base;
	peek->cb = cb;
	peek->arg = arg;
	rd_kafka_conf_set_log_cb(conf, kafka_peek_log_cb);
	rd_kafka_conf_set_error_cb(conf, kafka_peek_error_cb);
	rd_kafka_conf_set_opaque(conf, peek);
	if ((peek->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason,
	    sizeof(reason))) == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "kafka: check: %s", reason);
		free(peek);
		return NULL;
	}
	conf = NULL;	/* the handle's now */
	rd_kafka_set_log_queue(peek->rk, NULL);
	peek->queue = rd_kafka_queue_new(peek->rk);
	if ((peek->timer = evtimer_new(base, kafka_peek_timer_cb, peek)) ==
	    NULL)
		fatalx("kafka: evtimer_new failed");
	return peek;
}

/* Reads the record at an offset of a partition. */
void
kafka_peek_read(struct kafka_peek *peek, const char *topic,
    int32_t partition, int64_t offset)
{
	struct timeval now = { 0, 0 };
	struct kafka_peek_read *read, *grown;

	if ((read = kafka_peek_find(peek, topic, partition)) != NULL)
		kafka_peek_drop(peek, read);
	if (peek->count == peek->capacity) {
		peek->capacity = peek->capacity ? peek->capacity * 2 : 8;
		if ((grown = realloc(peek->reads, peek->capacity *
		    sizeof(*grown))) == NULL)
			fatal("kafka: realloc");
		peek->reads = grown;
	}
	read = &peek->reads[peek->count++];
	memset(read, 0, sizeof(*read));
	read->rkt = kafka_peek_topic(peek, topic);
	read->partition = partition;
	read->offset = offset;
	clock_gettime(CLOCK_MONOTONIC, &read->began);
	/* One that fails is answered by the timer when its time is up. */
	if (rd_kafka_consume_start_queue(read->rkt, partition, offset,
	    peek->queue) == -1)
		log_warnx("kafka: check %s[%d] at offset %lld: %s", topic,
		    partition, (long long)offset,
		    rd_kafka_err2str(rd_kafka_last_error()));
	else
		read->reading = true;
	evtimer_add(peek->timer, &now);
}

/* Forgets a partition's peek. */
void
kafka_peek_cancel(struct kafka_peek *peek, const char *topic,
    int32_t partition)
{
	struct kafka_peek_read *read;

	if (peek != NULL &&
	    (read = kafka_peek_find(peek, topic, partition)) != NULL)
		kafka_peek_drop(peek, read);
}

/* Forgets every peek and stops serving the handle on the loop. */
void
kafka_peek_close(struct kafka_peek *peek)
{
	if (peek == NULL)
		return;
	peek->count = 0;	/* the destroy stops their reads */
	if (peek->timer != NULL)
		event_del(peek->timer);
}

/* Frees the peeker. */
void
kafka_peek_free(struct kafka_peek *peek, long timeout_ms)
{
	size_t i;

	if (peek == NULL)
		return;
	kafka_peek_close(peek);
	if (peek->timer != NULL)
		event_free(peek->timer);
	if (peek->queue != NULL)
		rd_kafka_queue_destroy(peek->queue);
	for (i = 0; i < peek->topic_count; i++)
		rd_kafka_topic_destroy(peek->topics[i]);
	if (!kafka_destroy_within(peek->rk, timeout_ms))
		log_warnx("kafka: check: the handle did not shut down within "
		    "%ld ms; exiting without waiting for it", timeout_ms);
	free(peek->topics);
	free(peek->reads);
	free(peek);
}
