/* The operator API's Kafka producer: idempotent, polled on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "common/log.h"
#include "daemon/kafka_scram.h"
#include "daemon/producer.h"

/* Polls this often while messages are in flight, and this often when idle. */
#define PRODUCER_BUSY_POLL_MS	5
#define PRODUCER_IDLE_POLL_MS	500

struct producer {
	rd_kafka_t	*kafka;
	struct event	*poll;
	size_t		 outstanding;
	int		 stopping;
};

/* What one message's delivery tells. */
struct producer_message {
	struct producer		*producer;
	producer_delivery_cb	*cb;
	void			*arg;
};

/* Routes librdkafka's log lines into ours (served by our polls). */
static void
producer_log_cb(const rd_kafka_t *rk, int level, const char *facility,
    const char *message)
{
	log_write(log_level_of_syslog(level), "kafka producer: %s: %s",
	    facility, message);
}

/* Client-level errors: said once each; the messages learn their fate. */
static void
producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	log_warnx("kafka producer: %s", reason);
}

/* One message delivered, or given up. */
static void
producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *message,
    void *opaque)
{
	struct producer_message *sent = message->_private;

	sent->producer->outstanding--;
	if (!sent->producer->stopping)
		sent->cb(message->err ? rd_kafka_err2str(message->err) : NULL,
		    message->partition, message->offset, sent->arg);
	free(sent);
}

/* Serves deliveries and logs; polls fast while messages are in flight. */
static void
producer_poll(evutil_socket_t fd, short events, void *arg)
{
	struct producer *producer = arg;
	struct timeval tv = { 0, 0 };

	rd_kafka_poll(producer->kafka, 0);
	tv.tv_usec = (producer->outstanding > 0 ? PRODUCER_BUSY_POLL_MS :
	    PRODUCER_IDLE_POLL_MS) * 1000;
	evtimer_add(producer->poll, &tv);
}

/* Sets one property, naming it in err on failure. */
static int
producer_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
    char *err, size_t errlen)
{
	char reason[512];

	if (rd_kafka_conf_set(conf, name, value, reason, sizeof(reason)) ==
	    RD_KAFKA_CONF_OK)
		return 0;
	snprintf(err, errlen, "kafka producer: %s: %s", name, reason);
	return -1;
}

/* Consumer-only properties that a producer would only warn about. */
static int
producer_skips(const char *name)
{
	static const char *const skipped[] = { "group.", "auto.offset.",
	    "enable.auto.", "session.timeout.", "heartbeat.", "max.poll.",
	    "partition.assignment.", "fetch.", "queued.", "isolation.",
	    "group.instance.", "enable.partition.eof", "check.crcs", NULL };
	size_t i, len = strlen(name);

	if ((len > 5 && strcmp(name + len - 5, "_file") == 0) ||
	    kafka_scram_own_key(name))
		return 1;
	for (i = 0; skipped[i] != NULL; i++)
		if (strncmp(name, skipped[i], strlen(skipped[i])) == 0)
			return 1;
	return 0;
}

/* Makes the producer. */
struct producer *
producer_new(struct event_base *base,
    const struct producer_property *properties, size_t count, char *err,
    size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct producer *producer;
	struct timeval tv = { 0, 0 };
	char reason[512];
	size_t i;

	if ((producer = calloc(1, sizeof(*producer))) == NULL)
		fatal("producer: calloc");
	/* Never written twice, in order, whatever the retries. */
	if (producer_conf_set(conf, "enable.idempotence", "true", err,
	    errlen) == -1 ||
	    producer_conf_set(conf, "linger.ms", "2", err, errlen) == -1 ||
	    producer_conf_set(conf, "message.timeout.ms", "30000", err,
	    errlen) == -1 ||
	    /* An import publishes its whole inventory at once. */
	    producer_conf_set(conf, "queue.buffering.max.messages", "1000000",
	    err, errlen) == -1 ||
	    producer_conf_set(conf, "log.queue", "true", err, errlen) == -1 ||
	    producer_conf_set(conf, "client.id", "ipam-syncd-api", err,
	    errlen) == -1)
		goto fail;
	for (i = 0; i < count; i++)
		if (!producer_skips(properties[i].name) &&
		    producer_conf_set(conf, properties[i].name,
		    properties[i].value, err, errlen) == -1)
			goto fail;
	rd_kafka_conf_set_log_cb(conf, producer_log_cb);
	rd_kafka_conf_set_error_cb(conf, producer_error_cb);
	rd_kafka_conf_set_dr_msg_cb(conf, producer_dr_cb);
	rd_kafka_conf_set_opaque(conf, producer);
	if ((producer->kafka = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason,
	    sizeof(reason))) == NULL) {
		snprintf(err, errlen, "kafka producer: %s", reason);
		goto fail;
	}
	conf = NULL;	/* the handle owns it now */
	rd_kafka_set_log_queue(producer->kafka, NULL);
	if ((producer->poll = evtimer_new(base, producer_poll, producer)) ==
	    NULL)
		fatalx("producer: evtimer_new failed");
	tv.tv_usec = PRODUCER_IDLE_POLL_MS * 1000;
	evtimer_add(producer->poll, &tv);
	return producer;
fail:
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	free(producer);
	return NULL;
}

/* Sends one message. */
int
producer_send(struct producer *producer, const char *topic, const char *key,
    const char *value, size_t value_len, producer_delivery_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct producer_message *sent;
	struct timeval tv = { 0, PRODUCER_BUSY_POLL_MS * 1000 };
	rd_kafka_resp_err_t rc;

	if ((sent = malloc(sizeof(*sent))) == NULL)
		fatal("producer: malloc");
	sent->producer = producer;
	sent->cb = cb;
	sent->arg = arg;
	rc = rd_kafka_producev(producer->kafka, RD_KAFKA_V_TOPIC(topic),
	    RD_KAFKA_V_KEY(key, strlen(key)),
	    RD_KAFKA_V_VALUE((void *)value, value_len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_OPAQUE(sent), RD_KAFKA_V_END);
	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: %s", rd_kafka_err2str(rc));
		free(sent);
		return -1;
	}
	/*
	 * The first in flight turns the idle poll into a busy one; adding
	 * it again on every send would put the poll off while sends come
	 * faster than it.
	 */
	if (producer->outstanding++ == 0)
		evtimer_add(producer->poll, &tv);
	return 0;
}

/* Messages sent and not yet told about. */
size_t
producer_outstanding(const struct producer *producer)
{
	return producer->outstanding;
}

/* Waits for what is in flight, its callbacks served. */
void
producer_flush(struct producer *producer, int timeout_ms)
{
	if (producer != NULL && producer->kafka != NULL &&
	    producer->outstanding > 0)
		rd_kafka_flush(producer->kafka, timeout_ms);
}

/* Waits for what is in flight, then frees. */
void
producer_free(struct producer *producer, int timeout_ms)
{
	if (producer == NULL)
		return;
	producer->stopping = 1;
	if (producer->kafka != NULL) {
		rd_kafka_flush(producer->kafka, timeout_ms);
		rd_kafka_purge(producer->kafka, RD_KAFKA_PURGE_F_QUEUE |
		    RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(producer->kafka, 0);
		rd_kafka_destroy(producer->kafka);
	}
	if (producer->poll != NULL)
		event_free(producer->poll);
	free(producer);
}
