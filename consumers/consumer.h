/*
 * The consumer: partitions from the group, their offsets from PostgreSQL,
 * messages decoded into batches, batches to the applier, backpressure.
 */
#ifndef IPAM_CONSUMERS_CONSUMER_H
#define IPAM_CONSUMERS_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/pgconn.h"
#include "consumers/applier.h"
#include "consumers/decode.h"
#include "consumers/kafka_client.h"

/* One topic and what it carries. */
struct consumer_topic {
	const char		*name;
	enum change_entity	 entity;
	enum decode_format	 format;
};

/* What the consumer needs to know; copied by consumer_new(). */
struct consumer_settings {
	const char			*group_id;
	const struct consumer_topic	*topics;
	size_t				 topic_count;
	const struct kafka_property	*properties;	/* passed to librdkafka */
	size_t				 property_count;
	size_t				 batch_max_events;
	size_t				 batch_max_bytes;
	long long			 batch_max_wait_ms;
	uint64_t			 batch_max_pool_addresses;
	struct decode_limits		 limits;
	struct debezium_columns		 columns;
	bool				 rebuild;	/* rebuild, swap, go on */
};

/* Told once the consumer has subscribed (or stopped). */
typedef void consumer_event_cb(void *arg);

/*
 * Told when the consumer can go on no more, and why; configured: a new
 * consumer would fail the same way (two instances share a static id).
 */
typedef void consumer_failed_cb(void *arg, const char *reason,
    bool configured);

/* Running totals, for logs and metrics. */
struct consumer_stats {
	uint64_t	messages;	/* consumed */
	uint64_t	decode_errors;
	uint64_t	kafka_errors;
	uint64_t	rebalances;
	uint64_t	out_of_range;	/* partitions found outside their log */
	uint64_t	seek_failures;	/* seeks failed: sought again */
	uint64_t	snapshots_again; /* Debezium snapshots past a start */
	size_t		assigned;	/* partitions held now */
	size_t		pending;	/* events waiting to be applied */
	bool		paused;		/* fetching paused (backpressure) */
};

struct consumer;

/*
 * Creates a consumer: the librdkafka handle is made here, so a bad Kafka
 * property is reported now (in err).  Nothing is consumed before
 * consumer_start().  Returns NULL on error.
 */
struct consumer	*consumer_new(struct event_base *base, struct pgconn *pg,
		    const struct consumer_settings *settings, char *err,
		    size_t errlen);

/*
 * Subscribes (a rebuild first makes its fresh state); subscribed is
 * called once that is done.  The PostgreSQL connection must be up.
 */
void		 consumer_start(struct consumer *consumer,
		    consumer_event_cb *subscribed, void *arg);

/* PostgreSQL went down: pause consumption (in-flight work is kept). */
void		 consumer_db_down(struct consumer *consumer);

/*
 * PostgreSQL is back: read the offsets of every assigned partition again
 * (a commit lost with the connection may have landed or not), start each
 * where it stands, resume.
 */
void		 consumer_db_up(struct consumer *consumer);

/*
 * Stops consuming, lets the apply in flight finish (or be rolled back by
 * a lost connection), then leaves the group; stopped is called when done.
 * Gives up waiting after deadline_ms.
 */
void		 consumer_stop(struct consumer *consumer, long long deadline_ms,
		    consumer_event_cb *stopped, void *arg);

/*
 * Names who is told when the Kafka client hits a fatal error (it fetches
 * nothing more, ever: only a new one would); consumer_ready() says it too.
 */
void		 consumer_set_failed(struct consumer *consumer,
		    consumer_failed_cb *cb, void *arg);

/* Frees the consumer (after consumer_stop(), or to abandon it). */
void		 consumer_free(struct consumer *consumer);

/* Changes the batch bounds (from a reloaded config). */
void		 consumer_set_batch_limits(struct consumer *consumer,
		    size_t max_events, size_t max_bytes, long long max_wait_ms,
		    uint64_t max_pool_addresses);

/*
 * Tells whether the consumer is ready to do its work, or fills reason:
 * a broker reachable, every topic present, the group joined (with
 * partitions, or none for this instance), no apply refused by the
 * database, no partition outside its log.
 */
bool		 consumer_ready(const struct consumer *consumer, char *reason,
		    size_t reasonlen);

/* The cluster as the client sees it (brokers, missing topics, lag age). */
void		 consumer_health(const struct consumer *consumer,
		    struct kafka_client_health *health);

/* Running totals. */
const struct consumer_stats *consumer_stats(const struct consumer *consumer);

/* The topics, in the order the stats index them. */
size_t		 consumer_topic_count(const struct consumer *consumer);
const char	*consumer_topic_name(const struct consumer *consumer,
		    size_t index);

/*
 * Told about one assigned partition: how far it is applied (the next
 * offset stored in PostgreSQL, or past the offsets the consumer is never
 * handed, such as a transaction's markers, when nothing waits to be
 * applied; -1: none yet) and the watermarks last seen from the broker
 * (-1: not known yet; never a blocking request).
 */
typedef void consumer_partition_fn(void *arg, const char *topic,
    int32_t partition, int64_t stored, int64_t low, int64_t high);

/* Calls fn for every assigned partition. */
void		 consumer_foreach_partition(const struct consumer *consumer,
		    consumer_partition_fn *fn, void *arg);

/* Whether a rebuild is under way (filling, deriving or swapping). */
bool		 consumer_rebuilding(const struct consumer *consumer);

/* Why PostgreSQL refuses a rebuild's step (rebuild_failing()), or NULL. */
const char	*consumer_rebuild_failing(const struct consumer *consumer);

/*
 * Why the database refuses every apply (applier_failing()) or a
 * rebuild's step (rebuild_failing()), or NULL.
 */
const char	*consumer_apply_failing(const struct consumer *consumer);

/* Seconds the apply in flight has been running; 0 when there is none. */
double		 consumer_apply_seconds(const struct consumer *consumer);

/* The applier's running totals. */
const struct applier_stats *consumer_applier_stats(
		    const struct consumer *consumer);

#endif
