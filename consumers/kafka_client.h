/* The librdkafka consumer on the event loop: handle, wake-up pipe, health. */
#ifndef IPAM_CONSUMERS_KAFKA_CLIENT_H
#define IPAM_CONSUMERS_KAFKA_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

/* A librdkafka property, passed through as it is. */
struct kafka_property {
	const char	*name;
	const char	*value;
};

/* What the client needs; copied by kafka_client_new(). */
struct kafka_client_settings {
	const char			*group_id;
	const char *const		*topics;	/* indexes name topics */
	size_t				 topic_count;
	const struct kafka_property	*properties;
	size_t				 property_count;
};

/* One partition of one of the client's topics (by index). */
struct kafka_partition {
	int		topic;
	int32_t		partition;
};

/*
 * What the owner is told.  Every call runs on the loop's thread, from
 * kafka_client_poll().
 */
struct kafka_client_handlers {
	/*
	 * A message, handed over: the owner destroys it with
	 * rd_kafka_message_destroy(), before kafka_client_free().
	 */
	void	(*message)(void *arg, int topic, rd_kafka_message_t *message);
	/*
	 * Partitions were assigned.  They are held (not fetched) until the
	 * owner calls kafka_client_release() for each with its start offset.
	 */
	void	(*assigned)(void *arg, const struct kafka_partition *parts,
		    size_t count);
	/* Partitions are gone (lost: taken without a revoke). */
	void	(*revoked)(void *arg, const struct kafka_partition *parts,
		    size_t count, bool lost);
	/* A released partition's start offset lies outside its log. */
	void	(*out_of_range)(void *arg, int topic, int32_t partition,
		    const char *detail);
	/*
	 * A peek's answer (kafka_client_peek()): record is the first at or
	 * after offset, the owner's for the call only; or NULL, and none
	 * says why (outside the log, the log ends there, no answer).
	 */
	void	(*peeked)(void *arg, int topic, int32_t partition,
		    int64_t offset, const rd_kafka_message_t *record,
		    const char *none);
	/*
	 * The client hit a fatal error (a static member fenced by another
	 * with its group.instance.id, for one): it consumes nothing more,
	 * ever.  Told once; the reason stays in kafka_client_health().
	 */
	void	(*fatal)(void *arg, const char *reason);
	void	*arg;
};

/* How the client sees the cluster, for readiness and metrics. */
struct kafka_client_health {
	int		 brokers_up;	/* brokers connected, from the statistics */
	uint64_t	 fetched;	/* messages fetched from brokers, so far */
	uint64_t	 pauses;	/* times fetching was paused, so far */
	bool		 known;		/* statistics have arrived at least once */
	bool		 stale;		/* the last statistics are too old */
	bool		 fetch_paused;	/* no fetching: the watermarks stand */
	size_t		 topics_missing;
	const char	*missing_topic;	/* the first one, or NULL */
	bool		 joined;	/* the group has given an assignment */
	const char	*broker_error;	/* last TLS or SASL failure, or NULL */
	const char	*fatal_error;	/* why the client is dead, or NULL */
	int		 fatal_code;	/* its rd_kafka_resp_err_t */
};

struct kafka_client;

/*
 * Creates the client; a bad property is reported now in err.  Nothing is
 * subscribed before kafka_client_start().  Returns NULL on error.
 */
struct kafka_client *kafka_client_new(struct event_base *base,
		    const struct kafka_client_settings *settings,
		    const struct kafka_client_handlers *handlers, char *err,
		    size_t errlen);

/* Subscribes and starts polling on the loop (the queue's pipe and a tick). */
void		 kafka_client_start(struct kafka_client *client);

/*
 * Takes what the queue holds (messages, rebalances, errors, statistics),
 * at most a bounded number of messages per call.  The tick and the pipe
 * call it; the owner may too.
 */
void		 kafka_client_poll(struct kafka_client *client);

/* What became of a partition kafka_client_release() was asked to start. */
enum kafka_release {
	KAFKA_RELEASED,			/* sought, and fetching */
	KAFKA_RELEASE_NOT_HELD,		/* not held: left alone */
	KAFKA_RELEASE_FAILED,		/* the seek failed (said in the log):
					   still held */
	KAFKA_RELEASE_OUT_OF_RANGE,	/* an out-of-range error stopped its
					   fetcher, which no seek starts
					   again: still held */
};

/*
 * Starts fetching held partitions (others are left alone), parts[i] at
 * offsets[i] (a number, or RD_KAFKA_OFFSET_BEGINNING).  Messages that
 * came while they were held were dropped; the seeks fetch them again.
 * results[i] says what became of parts[i]: once released,
 * kafka_client_position() is unknown until a message is handed or a
 * transaction's marker passed; one still held is for the owner to
 * release again later, or to give up.
 */
void		 kafka_client_release(struct kafka_client *client,
		    const struct kafka_partition *parts, const int64_t *offsets,
		    size_t count, enum kafka_release *results);

/*
 * Reads the record at an offset of a partition (the first at or after
 * it) with a handle of its own, which joins no group and moves no
 * position: handlers.peeked() answers, once, unless the partition is
 * revoked or peeked again first.  False when no reader could be made
 * (said in the log): no answer comes.
 */
bool		 kafka_client_peek(struct kafka_client *client, int topic,
		    int32_t partition, int64_t offset);

/* Holds a partition again (until kafka_client_release()). */
void		 kafka_client_hold(struct kafka_client *client, int topic,
		    int32_t partition);

/*
 * Pauses (or resumes) fetching every assigned partition: the owner's
 * backpressure.  Polling goes on either way.
 */
void		 kafka_client_set_paused(struct kafka_client *client,
		    bool paused);

/*
 * The owner is full (or no longer): no message is taken while it is, and
 * librdkafka's queue keeps what it prefetched.  Full for long (up to 2 s,
 * a quarter of max.poll.interval.ms at most), fetching is paused and
 * polling goes on, as with kafka_client_set_paused().
 */
void		 kafka_client_set_full(struct kafka_client *client,
		    bool full);

/* The last known watermarks of a partition; false when unknown. */
bool		 kafka_client_watermarks(const struct kafka_client *client,
		    int topic, int32_t partition, int64_t *low, int64_t *high);
bool		 kafka_client_position(const struct kafka_client *client,
		    int topic, int32_t partition, int64_t *next);

/*
 * Counts the partitions of the topics (per the statistics) and those of
 * them this member holds; false while a topic is not known yet.
 */
bool		 kafka_client_partitions(const struct kafka_client *client,
		    size_t *total, size_t *held);

/* The cluster as the client sees it. */
void		 kafka_client_health(const struct kafka_client *client,
		    struct kafka_client_health *health);

/*
 * Leaves the group, waiting at most deadline_ms (revokes are served),
 * then stops polling.  Safe to call more than once.
 */
void		 kafka_client_close(struct kafka_client *client,
		    long long deadline_ms);

/*
 * Frees the client.  Destroying librdkafka's handle may block (after a
 * topic was deleted under the consumer it has been seen to wait
 * forever): it is given a few seconds, then left to the process exit.
 */
void		 kafka_client_free(struct kafka_client *client);

/*
 * Destroys a librdkafka handle, waiting at most timeout_ms (on a thread
 * of its own); false when it did not end in time and was left running.
 */
bool		 kafka_destroy_within(rd_kafka_t *rk, long timeout_ms);

/* Errors the client reported. */
uint64_t	 kafka_client_errors(const struct kafka_client *client);

#endif
