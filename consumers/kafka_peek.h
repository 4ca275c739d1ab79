/* Reading one record at an offset with a handle of its own, off the group. */
#ifndef IPAM_CONSUMERS_KAFKA_PEEK_H
#define IPAM_CONSUMERS_KAFKA_PEEK_H

#include <stdint.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

/* How long a peek waits for the partition to answer before it gives up. */
#define KAFKA_PEEK_MS	15000

/*
 * The answer to a peek, on the loop's thread: record is the first record
 * at or after offset (the caller's for the call only), or NULL, then none
 * says why none was read (the offset is outside the log, the log ends
 * there, no answer in time).
 */
typedef void kafka_peek_cb(void *arg, const char *topic, int32_t partition,
    int64_t offset, const rd_kafka_message_t *record, const char *none);

struct kafka_peek;

/*
 * Makes a peeker from conf, which it owns from now on (even on failure).
 * Its handle reads partitions without joining a group and commits
 * nothing, so the group's members and their positions never see it.
 * Returns NULL with err filled on failure.
 */
struct kafka_peek *kafka_peek_new(struct event_base *base,
		    rd_kafka_conf_t *conf, kafka_peek_cb *cb, void *arg,
		    char *err, size_t errlen);

/*
 * Reads the record at offset of a partition; cb is called once, later
 * (never from here).  A peek of a partition already being read replaces
 * the one before, which is then never answered.
 */
void		 kafka_peek_read(struct kafka_peek *peek, const char *topic,
		    int32_t partition, int64_t offset);

/* Forgets a partition's peek, if any: it is never answered. */
void		 kafka_peek_cancel(struct kafka_peek *peek, const char *topic,
		    int32_t partition);

/*
 * Forgets every peek, never answered, and stops serving the handle on the
 * loop (kafka_peek_free() destroys it): the owner is closing.
 */
void		 kafka_peek_close(struct kafka_peek *peek);

/*
 * Frees the peeker, its peeks unanswered.  Destroying the handle stops
 * its reads and waits at most timeout_ms; past that it is left to the
 * process exit.
 */
void		 kafka_peek_free(struct kafka_peek *peek, long timeout_ms);

#endif
