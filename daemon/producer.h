/* The operator API's Kafka producer: idempotent, polled on the loop. */
#ifndef IPAM_DAEMON_PRODUCER_H
#define IPAM_DAEMON_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* A librdkafka property as the operator gave it. */
struct producer_property {
	const char	*name;
	const char	*value;
};

/*
 * Told once per message: error NULL and the partition and offset it got,
 * or the reason it was not delivered (after librdkafka's retries, which
 * idempotence makes safe: never written twice).
 */
typedef void producer_delivery_cb(const char *error, int32_t partition,
    int64_t offset, void *arg);

struct producer;

/*
 * Makes the producer with the operator's [kafka] properties ("name_file"
 * entries are skipped: their secret is already under "name").  Returns
 * NULL with err filled.
 */
struct producer	*producer_new(struct event_base *base,
		    const struct producer_property *properties, size_t count,
		    char *err, size_t errlen);

/*
 * Sends one message (key and value are copied) to topic; cb is called
 * once, from the loop, unless producer_free() comes first.  Returns -1
 * with err filled when it could not even be queued.
 */
int		 producer_send(struct producer *producer, const char *topic,
		    const char *key, const char *value, size_t value_len,
		    producer_delivery_cb *cb, void *arg, char *err,
		    size_t errlen);

/* Messages sent and not yet told about. */
size_t		 producer_outstanding(const struct producer *producer);

/*
 * Waits up to timeout_ms for what is in flight to be delivered or given
 * up; their callbacks run before it returns.
 */
void		 producer_flush(struct producer *producer, int timeout_ms);

/*
 * Waits (at most timeout_ms) for what is in flight, then frees; the
 * deliveries still waiting are not told.
 */
void		 producer_free(struct producer *producer, int timeout_ms);

#endif
