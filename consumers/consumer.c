/*
 * The consumer: partitions from the group, their offsets from PostgreSQL,
 * messages decoded into batches, batches to the applier, backpressure.
 *
 * The parts it wires: kafka_client.c (librdkafka on the loop), offsets.c
 * (where partitions resume), intake.c (message to batch entry), batch.c,
 * applier.c (the apply transaction) and rebuild.c (the rebuild's state
 * machine).  What it owns: the table of assigned partitions and where each
 * stands, the pending batch and the one in flight, and its own state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumers/consumer.h"
#include "consumers/intake.h"
#include "consumers/offsets.h"
#include "consumers/rebuild.h"

/* The consumer's own tick: flushes, loads, the rebuild, the stop. */
#define CONSUMER_TICK_MS	200

/*
 * A partition whose seek failed is sought again after this long, doubled
 * with each failure in a row up to the most.
 */
#define CONSUMER_SEEK_RETRY_MS		200
#define CONSUMER_SEEK_RETRY_MAX_MS	30000

/*
 * A rebuild reads the whole history at once: batches ten times larger
 * collapse more versions of one entity into one change (and nobody waits
 * on its latency).
 */
#define CONSUMER_REBUILD_SCALE	10

/*
 * A rebuild folds the versions of a key as it reads them (batch_set_fold()):
 * its batches are bounded by the events they hold after folding, four
 * times more, so that the versions of a key a whole table apart still
 * meet in one batch (bench/: 100,000 servers, each version 100,000
 * events after the one before).  The bound on their bytes stays: a
 * folding batch counts the bytes of its decoded changes.
 */
#define CONSUMER_FOLD_SCALE	4

/* How long a rebuild short of partitions waits before it says so, and again. */
#define CONSUMER_UNHELD_MS	10000

/* How often a filling rebuild says how far it has come. */
#define CONSUMER_PROGRESS_MS	10000

/* The consumer's lifecycle; each transition is logged once at debug. */
enum consumer_state {
	CONSUMER_IDLE,		/* made, not started */
	CONSUMER_PREPARING,	/* a rebuild makes its fresh state */
	CONSUMER_RUNNING,	/* subscribed */
	CONSUMER_DRAINING,	/* stopping: the apply in flight may finish */
	CONSUMER_STOPPED,	/* left the group */
};

/* Where one assigned partition stands. */
enum consumer_part_state {
	CONSUMER_PART_LOADING,	/* its stored offset is being read */
	CONSUMER_PART_CHECKING,	/* the record before it is being read */
	CONSUMER_PART_ACTIVE,	/* fetching from where it stands */
	CONSUMER_PART_OUT_OF_RANGE,	/* its offset is not in the log */
	CONSUMER_PART_WAITING,	/* a rebuild's mark partition, held until
				   the other topics are filled */
};

/* A topic's slots by partition number: 1 + the slot's place, 0 none. */
struct consumer_index {
	size_t	*slots;
	size_t	 count;
};

/* One partition the consumer has held, and where it stands. */
struct consumer_partition {
	struct batch_position		 position;
	int				 topic;
	bool				 assigned;
	enum consumer_part_state	 state;
	bool				 load_sent;	/* in the load in flight */
	int64_t				 rebuild_target; /* -1: not known yet */
	int64_t				 handed_to;	/* after the last message
							   taken since loading;
							   -1: not sought yet;
							   the stored offset
							   (0 with none) when
							   sought and none
							   taken since */
	int64_t				 check_fp;	/* the record before
							   the stored offset,
							   while CHECKING
							   (batch_fingerprint()) */
	bool				 recreated;	/* it was another one */
	unsigned			 seek_failures;	/* in a row */
	struct timespec			 seek_failed_at;
};

struct consumer {
	struct event_base	*base;
	struct pgconn		*pg;
	char			*group_id;
	struct consumer_topic	*topics;
	const char		**topic_names;
	struct intake_topic	*intake;
	size_t			 topic_count;
	size_t			 batch_max_events;
	size_t			 batch_max_bytes;
	long long		 batch_max_wait_ms;
	struct decode_limits	 limits;
	struct debezium_columns	 columns;
	char			*column_strings;	/* owns the column names */

	struct kafka_client	*client;
	struct applier		*applier;
	struct rebuild		*rebuild;
	enum consumer_state	 state;
	bool			 started;	/* subscribed once */
	bool			 unfolded;	/* a rebuild reads without folding */
	bool			 db_up;
	bool			 loading;	/* an offsets load is in flight */

	struct consumer_partition *partitions;
	struct consumer_index	*index;		/* by topic: partition -> slot */
	size_t			 partition_count;
	size_t			 partition_capacity;

	struct batch		 pending;	/* consumed, not yet sent */
	struct batch		 inflight;	/* being applied, or to retry */
	struct timespec		 pending_since;
	struct timespec		 progress_at;	/* a rebuild's last progress log */
	struct timespec		 unheld_since;	/* a rebuild short of partitions */
	struct timespec		 unheld_said;	/* ... and said so */
	struct event		*tick;
	struct event		*linger_timer;

	consumer_event_cb	*subscribed_cb;
	void			*subscribed_arg;
	consumer_event_cb	*stopped_cb;
	void			*stopped_arg;
	consumer_failed_cb	*failed_cb;
	void			*failed_arg;
	struct timespec		 stop_began;
	long long		 stop_deadline_ms;

	struct consumer_stats	 stats;
};

static void	consumer_flush(struct consumer *consumer);
static void	consumer_load(struct consumer *consumer);
static bool	consumer_any_loading(const struct consumer *consumer);
static bool	consumer_rebuild_holds_marks(struct consumer *consumer);
static bool	consumer_rebuild_filled(struct consumer *consumer,
		    struct consumer_partition *slot);
static void	consumer_backpressure(struct consumer *consumer);
static void	consumer_finish_stop(struct consumer *consumer);

/* Names a state for the log. */
static const char *
consumer_state_name(enum consumer_state state)
{
	static const char *const names[] = { "idle", "preparing", "running",
	    "draining", "stopped" };

	return names[state];
}

/* Moves to a state, saying so at debug level. */
static void
consumer_enter(struct consumer *consumer, enum consumer_state state)
{
	log_debug("consumer: %s -> %s", consumer_state_name(consumer->state),
	    consumer_state_name(state));
	consumer->state = state;
}

/*
 * Finds a partition's slot, creating it when asked.  It runs for every
 * message and every batch entry: the slot is found through its topic's
 * index by partition number, not by a search of every slot.
 */
static struct consumer_partition *
consumer_partition(struct consumer *consumer, int topic, int32_t partition,
    bool create)
{
	struct consumer_partition *grown, *slot;
	struct consumer_index *index;
	size_t *slots, count;

	if (topic < 0 || (size_t)topic >= consumer->topic_count ||
	    partition < 0)
		return NULL;
	index = &consumer->index[topic];
	if ((size_t)partition < index->count && index->slots[partition] > 0)
		return &consumer->partitions[index->slots[partition] - 1];
	if (!create)
		return NULL;
	if ((size_t)partition >= index->count) {
		for (count = index->count ? index->count : 16;
		    count <= (size_t)partition; count *= 2)
			;
		if ((slots = realloc(index->slots, count * sizeof(*slots))) ==
		    NULL)
			fatal("consumer: realloc");
		memset(slots + index->count, 0,
		    (count - index->count) * sizeof(*slots));
		index->slots = slots;
		index->count = count;
	}
	if (consumer->partition_count == consumer->partition_capacity) {
		consumer->partition_capacity = consumer->partition_capacity ?
		    consumer->partition_capacity * 2 : 16;
		grown = realloc(consumer->partitions,
		    consumer->partition_capacity * sizeof(*grown));
		if (grown == NULL)
			fatal("consumer: realloc");
		consumer->partitions = grown;
	}
	slot = &consumer->partitions[consumer->partition_count++];
	index->slots[partition] = consumer->partition_count;
	memset(slot, 0, sizeof(*slot));
	slot->topic = topic;
	slot->position.topic = consumer->topics[topic].name;
	slot->position.partition = partition;
	slot->rebuild_target = -1;
	return slot;
}

/*
 * The applier asks where a partition stands; NULL when it is not ours
 * to apply now (not assigned, or its offset is being read again).
 */
static const struct batch_position *
consumer_position_get(void *arg, int topic, int32_t partition)
{
	struct consumer_partition *slot;

	slot = consumer_partition(arg, topic, partition, false);
	return slot != NULL && slot->assigned &&
	    slot->state == CONSUMER_PART_ACTIVE ? &slot->position : NULL;
}

/* The applier reports a committed offset. */
static void
consumer_position_set(void *arg, int topic, int32_t partition,
    int64_t next_offset)
{
	struct consumer_partition *slot;

	if ((slot = consumer_partition(arg, topic, partition, false)) == NULL)
		return;
	/*
	 * A batch that held only entries below the stored offset (fetched
	 * again, and skipped) ends lower: the position never goes back.
	 */
	if (slot->position.stored && next_offset <= slot->position.next_offset)
		return;
	slot->position.stored = true;
	slot->position.next_offset = next_offset;
}

/* Tells whether some partition of a topic has a stored offset. */
static bool
consumer_topic_consumed(const struct consumer *consumer, int topic,
    const struct consumer_partition *besides)
{
	size_t i;

	for (i = 0; i < consumer->partition_count; i++)
		if (&consumer->partitions[i] != besides &&
		    consumer->partitions[i].topic == topic &&
		    consumer->partitions[i].position.stored)
			return true;
	return false;
}

/* Drops what is pending of one partition (it is fetched again). */
static void
consumer_drop_pending(struct consumer *consumer, int topic,
    int32_t partition)
{
	batch_drop_partition(&consumer->pending, topic, partition);
	consumer->stats.pending = batch_live(&consumer->pending) +
	    batch_live(&consumer->inflight);
}

/*
 * Reads a partition's offset again before it goes on: it is held, what
 * is pending of it is dropped (the seek at its release fetches it again).
 */
static void
consumer_reload(struct consumer *consumer, struct consumer_partition *slot)
{
	kafka_client_hold(consumer->client, slot->topic,
	    slot->position.partition);
	consumer_drop_pending(consumer, slot->topic, slot->position.partition);
	slot->state = CONSUMER_PART_LOADING;
	slot->load_sent = false;
	slot->handed_to = -1;
}

/* The group assigned partitions: read where each stands, then start. */
static void
consumer_assigned(void *arg, const struct kafka_partition *parts,
    size_t count)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot;
	size_t i;

	consumer->stats.rebalances++;
	for (i = 0; i < count; i++) {
		slot = consumer_partition(consumer, parts[i].topic,
		    parts[i].partition, true);
		slot->assigned = true;
		slot->state = CONSUMER_PART_LOADING;
		slot->load_sent = false;
		slot->position.stored = false;
		slot->rebuild_target = -1;
		slot->handed_to = -1;
		slot->seek_failures = 0;
		consumer->stats.assigned++;
	}
	consumer_load(consumer);
}

/* The group took partitions away: what was pending of them is dropped. */
static void
consumer_revoked(void *arg, const struct kafka_partition *parts, size_t count,
    bool lost)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot;
	size_t i;

	consumer->stats.rebalances++;
	for (i = 0; i < count; i++) {
		consumer_drop_pending(consumer, parts[i].topic,
		    parts[i].partition);
		slot = consumer_partition(consumer, parts[i].topic,
		    parts[i].partition, false);
		if (slot != NULL && slot->assigned) {
			slot->assigned = false;
			if (consumer->stats.assigned > 0)
				consumer->stats.assigned--;
		}
		log_info("kafka: %s %s[%d]", lost ? "lost" : "revoked",
		    consumer->topics[parts[i].topic].name, parts[i].partition);
	}
}

/*
 * A partition's stored offset lies outside its log: say what happened
 * and what to do, once per assignment.  librdkafka fetches nothing more
 * of it, so nothing is skipped; the daemon is not ready meanwhile.
 */
static void
consumer_out_of_range(void *arg, int topic, int32_t partition,
    const char *detail)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot;

	slot = consumer_partition(consumer, topic, partition, false);
	if (slot == NULL || !slot->assigned ||
	    slot->state == CONSUMER_PART_OUT_OF_RANGE)
		return;
	slot->state = CONSUMER_PART_OUT_OF_RANGE;
	consumer->stats.out_of_range++;
	consumer_drop_pending(consumer, topic, partition);
	log_errx("kafka: %s[%d]: the stored offset %lld is outside the "
	    "partition's log (%s): the topic was deleted and made again, or "
	    "its records expired before they were consumed; nothing more of "
	    "this partition is consumed.  To rebuild the state from what the "
	    "topics hold now, run ipam-syncd --rebuild; to accept the loss "
	    "and go on from the start of the log, delete the partition's row "
	    "from ipam_state.consumer_offset and restart (docs/EVENTS.md)",
	    consumer->topics[topic].name, partition,
	    slot->position.stored ? (long long)slot->position.next_offset :
	    -1LL, detail);
}

/* Tells whether the pending batch has reached a bound. */
static bool
consumer_pending_full(const struct consumer *consumer)
{
	size_t scale = rebuild_state(consumer->rebuild) == REBUILD_OFF ? 1 :
	    CONSUMER_REBUILD_SCALE;
	size_t fold = consumer->pending.fold ? CONSUMER_FOLD_SCALE : 1;

	return batch_live(&consumer->pending) >=
	    consumer->batch_max_events * scale * fold ||
	    consumer->pending.bytes >= consumer->batch_max_bytes * scale;
}

/*
 * Folds while a rebuild fills its fresh state, unless it had to start
 * over unfolded.  It has caught up, nothing pending, before it derives:
 * no folded entry outlives the filling.
 */
static void
consumer_fold(struct consumer *consumer)
{
	bool on = rebuild_state(consumer->rebuild) == REBUILD_FILLING &&
	    !consumer->unfolded;

	if (consumer->pending.fold != on)
		batch_set_fold(&consumer->pending, on);
}

/*
 * One message of an active partition: decode it into the pending batch,
 * which keeps the message; one it does not take is destroyed here.
 */
static void
consumer_message(void *arg, int topic, rd_kafka_message_t *message)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot;
	bool first;

	if (consumer->state != CONSUMER_RUNNING ||
	    consumer_position_get(consumer, topic, message->partition) == NULL) {
		rd_kafka_message_destroy(message);
		return;	/* fetched again by whoever applies it */
	}
	slot = consumer_partition(consumer, topic, message->partition, false);
	slot->handed_to = message->offset + 1;
	consumer_fold(consumer);
	first = consumer->pending.count == 0;
	consumer->stats.messages++;
	if (first)
		clock_gettime(CLOCK_MONOTONIC, &consumer->pending_since);
	if (!intake_message(&consumer->pending, topic,
	    &consumer->intake[topic], message))
		consumer->stats.decode_errors++;
	if (consumer_pending_full(consumer)) {
		consumer_flush(consumer);
		consumer_backpressure(consumer);
	} else if (first) {
		/*
		 * The first event of a batch starts its linger: left to the
		 * tick, a lone event waited up to CONSUMER_TICK_MS instead of
		 * batch_max_wait_ms (the p99 of a steady trickle).
		 */
		consumer_flush(consumer);
	}
}

/*
 * Pauses fetching while the work cannot go on (PostgreSQL away or
 * refusing, a rebuild deriving or swapping), and resumes it after;
 * polling goes on regardless, so the group never sees the daemon as
 * stalled.  The pending batch full behind one in flight is the common
 * wait, one apply long: then no message is taken, and what librdkafka
 * prefetched waits in its queue for the next batch (a pause would throw
 * it away and fetch again up to a second after the resume).
 */
static void
consumer_backpressure(struct consumer *consumer)
{
	enum rebuild_state rebuild = rebuild_state(consumer->rebuild);
	bool pause, full;

	/*
	 * A failing applier that holds its batch retries it itself; one
	 * that gave it back (a read-only server: the connection is made
	 * again) is sent it again from Kafka.
	 */
	pause = consumer->state != CONSUMER_RUNNING || !consumer->db_up ||
	    (applier_failing(consumer->applier) != NULL &&
	    applier_busy(consumer->applier)) ||
	    rebuild == REBUILD_DERIVING || rebuild == REBUILD_SWAPPING;
	full = consumer_pending_full(consumer);
	kafka_client_set_paused(consumer->client, pause);
	kafka_client_set_full(consumer->client, full);
	consumer->stats.paused = pause || full;
}

/*
 * Starts fetching partitions from where they stand (their stored offset,
 * or the beginning).
 */
static void
consumer_release(struct consumer *consumer, struct consumer_partition **all,
    size_t count)
{
	struct consumer_partition **slots;
	struct kafka_partition *start;
	int64_t *from;
	enum kafka_release *results;
	size_t i, n = 0;
	bool hold = consumer_rebuild_holds_marks(consumer);

	if ((slots = calloc(count + 1, sizeof(*slots))) == NULL ||
	    (start = calloc(count + 1, sizeof(*start))) == NULL ||
	    (from = calloc(count + 1, sizeof(*from))) == NULL ||
	    (results = calloc(count + 1, sizeof(*results))) == NULL)
		fatal("consumer: calloc");
	/* A filling rebuild reads marks last (consumer_rebuild_holds_marks()). */
	for (i = 0; i < count; i++) {
		if (hold &&
		    consumer->topics[all[i]->topic].entity == CHANGE_MARK) {
			all[i]->state = CONSUMER_PART_WAITING;
			continue;
		}
		slots[n++] = all[i];
	}
	for (i = 0; i < n; i++) {
		slots[i]->state = CONSUMER_PART_ACTIVE;
		start[i].topic = slots[i]->topic;
		start[i].partition = slots[i]->position.partition;
		from[i] = slots[i]->position.stored ?
		    slots[i]->position.next_offset : RD_KAFKA_OFFSET_BEGINNING;
	}
	kafka_client_release(consumer->client, start, from, n, results);
	for (i = 0; i < n; i++) {
		switch (results[i]) {
		case KAFKA_RELEASED:
			/*
			 * Once the seek is done, nothing is handed before the
			 * stored offset: a position librdkafka reaches past it
			 * with nothing handed passed only markers
			 * (consumer_applied_to()).
			 */
			slots[i]->handed_to = slots[i]->position.stored ?
			    slots[i]->position.next_offset : 0;
			slots[i]->seek_failures = 0;
			break;
		case KAFKA_RELEASE_NOT_HELD:
			break;
		case KAFKA_RELEASE_FAILED:
			/*
			 * Still held: its offset is read and sought again
			 * later.  Let go at the place librdkafka kept, it
			 * would skip what was dropped while it was held, and
			 * a later batch would commit past it.
			 */
			slots[i]->state = CONSUMER_PART_LOADING;
			slots[i]->load_sent = false;
			slots[i]->seek_failures++;
			clock_gettime(CLOCK_MONOTONIC,
			    &slots[i]->seek_failed_at);
			consumer->stats.seek_failures++;
			break;
		case KAFKA_RELEASE_OUT_OF_RANGE:
			consumer_out_of_range(consumer, slots[i]->topic,
			    slots[i]->position.partition, "an out-of-range "
			    "error at the place fetched before stopped its "
			    "fetcher while it was held, and no seek starts it "
			    "again; if the stored offset is within the log, a "
			    "restart goes on from it");
			break;
		}
	}
	free(start);
	free(from);
	free(results);
	free(slots);
}

/*
 * Reads the record a stored offset follows again, before the partition
 * goes on: a topic deleted and made again that already holds as many
 * records has another one there.  Only when its fingerprint was stored
 * for that offset; true when the check is under way.
 */
static bool
consumer_check(struct consumer *consumer, struct consumer_partition *slot,
    const struct offsets_stored *stored)
{
	if (stored->next <= 0 || !stored->known ||
	    !kafka_client_peek(consumer->client, slot->topic,
	    slot->position.partition, stored->next - 1))
		return false;
	slot->state = CONSUMER_PART_CHECKING;
	slot->check_fp = stored->fingerprint;
	return true;
}

/*
 * The record a checked partition's stored offset follows has been read
 * (or could not be).  The same one, or none to compare (it has left the
 * log, was compacted away, or the broker did not answer): the partition
 * starts.  Another one: the topic was made again, and the partition stops
 * as one whose offset is outside the log does.
 */
static void
consumer_checked(void *arg, int topic, int32_t partition, int64_t offset,
    const rd_kafka_message_t *record, const char *none)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot;
	const char *name = consumer->topics[topic].name;
	int64_t stored;

	slot = consumer_partition(consumer, topic, partition, false);
	if (slot == NULL || !slot->assigned ||
	    slot->state != CONSUMER_PART_CHECKING ||
	    slot->position.next_offset - 1 != offset)
		return;	/* read again since, or no longer ours */
	stored = slot->position.next_offset;
	if (record != NULL && record->offset == offset &&
	    batch_fingerprint(record->key, record->key_len, record->payload,
	    record->len) != slot->check_fp) {
		slot->state = CONSUMER_PART_OUT_OF_RANGE;
		slot->recreated = true;
		consumer->stats.out_of_range++;
		log_errx("kafka: %s[%d]: the record before the stored offset "
		    "%lld is not the one applied (another key or value at "
		    "offset %lld): the topic was deleted and made again, and "
		    "already holds as many records; nothing more of this "
		    "partition is consumed.  To rebuild the state from what "
		    "the topics hold now, run ipam-syncd --rebuild; to apply "
		    "the new topic from its start over the state, delete the "
		    "partition's row from ipam_state.consumer_offset and "
		    "restart (docs/EVENTS.md)", name, partition,
		    (long long)stored, (long long)offset);
		return;
	}
	if (record == NULL)
		log_info("kafka: %s[%d]: the record before the stored offset "
		    "%lld is not checked: %s", name, partition,
		    (long long)stored, none);
	else if (record->offset != offset)
		log_info("kafka: %s[%d]: the record before the stored offset "
		    "%lld is no longer in the log (compacted away, or a "
		    "transaction's marker): not checked", name, partition,
		    (long long)stored);
	else
		log_debug("kafka: %s[%d]: the record before the stored offset "
		    "%lld is the one applied", name, partition,
		    (long long)stored);
	consumer_release(consumer, &slot, 1);
	consumer_flush(consumer);
}

/* The stored offsets of the partitions asked for have arrived. */
static void
consumer_loaded(void *arg, bool ok, const struct kafka_partition *parts,
    const struct offsets_stored *stored, size_t count)
{
	struct consumer *consumer = arg;
	struct consumer_partition *slot, **slots;
	size_t i, n = 0;

	consumer->loading = false;
	if ((slots = calloc(count + 1, sizeof(*slots))) == NULL)
		fatal("consumer: calloc");
	for (i = 0; i < count; i++) {
		slot = consumer_partition(consumer, parts[i].topic,
		    parts[i].partition, false);
		if (slot == NULL || !slot->load_sent)
			continue;
		slot->load_sent = false;
		if (!ok || !slot->assigned ||
		    slot->state != CONSUMER_PART_LOADING)
			continue;	/* read again, or no longer ours */
		slot->position.stored = stored[i].next >= 0;
		slot->position.next_offset = stored[i].next >= 0 ?
		    stored[i].next : 0;
		slot->recreated = false;
		/* Said once, not again at each seek tried again. */
		if (slot->seek_failures > 0)
			log_debug("kafka: %s[%d]: seeking offset %lld again",
			    consumer->topics[slot->topic].name,
			    slot->position.partition,
			    (long long)slot->position.next_offset);
		else if (!slot->position.stored &&
		    rebuild_state(consumer->rebuild) == REBUILD_OFF &&
		    consumer_topic_consumed(consumer, slot->topic, slot))
			log_warnx("kafka: %s[%d] is new to a topic whose other "
			    "partitions were consumed: partitions were added, "
			    "and keys may have moved between partitions.  Events "
			    "with a version are still ordered by it; events "
			    "without one apply in the order they are consumed, "
			    "so an older event still waiting in its old "
			    "partition can win over a newer one "
			    "(docs/EVENTS.md)", consumer->topics[slot->topic].name,
			    slot->position.partition);
		if (slot->seek_failures == 0)
			log_info("kafka: assigned %s[%d] from offset %s%lld",
			    consumer->topics[slot->topic].name,
			    slot->position.partition,
			    slot->position.stored ? "" : "(beginning) ",
			    (long long)slot->position.next_offset);
		if (!consumer_check(consumer, slot, &stored[i]))
			slots[n++] = slot;
	}
	consumer_release(consumer, slots, n);
	free(slots);
	if (!ok)
		return;		/* the tick or consumer_db_up() tries again */
	consumer_load(consumer);
	consumer_flush(consumer);
}

/* Tells whether a partition waits for its offset to be read now. */
static bool
consumer_load_due(const struct consumer_partition *slot)
{
	if (!slot->assigned || slot->state != CONSUMER_PART_LOADING)
		return false;
	return slot->seek_failures == 0 ||
	    clock_ms_since(&slot->seek_failed_at) >= clock_backoff_ms(
	    CONSUMER_SEEK_RETRY_MS, CONSUMER_SEEK_RETRY_MAX_MS,
	    slot->seek_failures - 1);
}

/*
 * Reads the stored offsets of the partitions waiting for them, when the
 * connection is free: before any apply, which might otherwise move them.
 */
static void
consumer_load(struct consumer *consumer)
{
	struct consumer_partition **due;
	struct kafka_partition *parts;
	size_t i, count = 0;

	if (consumer->loading || !consumer->db_up ||
	    consumer->state != CONSUMER_RUNNING || applier_busy(consumer->applier) ||
	    rebuild_busy(consumer->rebuild) || pgconn_is_busy(consumer->pg))
		return;
	/*
	 * A swap whose answer went with the connection is asked again
	 * first: until it answers, which schema holds the offsets is not
	 * known (the rebuilt one may be the live one already).
	 */
	if (rebuild_state(consumer->rebuild) == REBUILD_SWAPPING)
		return;
	if (!consumer_any_loading(consumer))
		return;
	if ((parts = calloc(consumer->partition_count + 1,
	    sizeof(*parts))) == NULL ||
	    (due = calloc(consumer->partition_count + 1,
	    sizeof(*due))) == NULL)
		fatal("consumer: calloc");
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (!consumer_load_due(slot))
			continue;
		due[count] = slot;
		parts[count].topic = slot->topic;
		parts[count].partition = slot->position.partition;
		count++;
	}
	if (count > 0 && offsets_load(consumer->pg, consumer->group_id,
	    rebuild_schema(consumer->rebuild), consumer->topic_names, parts,
	    count, consumer_loaded, consumer) == 0) {
		consumer->loading = true;
		for (i = 0; i < count; i++)
			due[i]->load_sent = true;
	}
	free(parts);
	free(due);
}

/* Tells whether a partition still waits for its offset. */
static bool
consumer_any_loading(const struct consumer *consumer)
{
	size_t i;

	for (i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].assigned &&
		    consumer->partitions[i].state == CONSUMER_PART_LOADING)
			return true;
	return false;
}

/* The linger is over: send what is pending. */
static void
consumer_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	consumer_flush(arg);
}

/* Sends the pending batch when the applier is free and a bound is met. */
static void
consumer_flush(struct consumer *consumer)
{
	long long waited, left;
	struct timeval tv;

	consumer->stats.pending = batch_live(&consumer->pending) +
	    batch_live(&consumer->inflight);
	if (consumer->pending.count == 0 || consumer->state != CONSUMER_RUNNING ||
	    !consumer->db_up || consumer->loading ||
	    rebuild_state(consumer->rebuild) == REBUILD_DERIVING ||
	    rebuild_state(consumer->rebuild) == REBUILD_SWAPPING ||
	    rebuild_busy(consumer->rebuild) ||
	    applier_busy(consumer->applier) || consumer->inflight.count > 0)
		return;
	/* Offsets first: an apply must not move a partition being read. */
	if (consumer_any_loading(consumer) && !pgconn_is_busy(consumer->pg)) {
		consumer_load(consumer);
		if (consumer->loading)
			return;
	}
	waited = clock_ms_since(&consumer->pending_since);
	if (!consumer_pending_full(consumer) &&
	    waited < consumer->batch_max_wait_ms) {
		if (!evtimer_pending(consumer->linger_timer, NULL)) {
			left = consumer->batch_max_wait_ms - waited;
			tv.tv_sec = (time_t)(left / 1000);
			tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
			evtimer_add(consumer->linger_timer, &tv);
		}
		return;
	}
	evtimer_del(consumer->linger_timer);
	batch_move(&consumer->inflight, &consumer->pending);
	if (applier_apply(consumer->applier, &consumer->inflight) == -1)
		log_debug("apply: not connected; %zu events wait",
		    batch_live(&consumer->inflight));
}

/*
 * Tells whether a rebuild holds every partition of its topics.  It reads
 * the whole history, and its state replaces the live one: with another
 * member of the group holding some partitions, the rebuilt state would
 * lack their entities.  Short of some for CONSUMER_UNHELD_MS, it says why,
 * and again every CONSUMER_UNHELD_MS, until it has them all.
 */
static bool
consumer_rebuild_holds_all(struct consumer *consumer)
{
	size_t total, held;

	/* A topic not known yet: /readyz names it, the count would mislead. */
	if (!kafka_client_partitions(consumer->client, &total, &held))
		return false;
	if (total > 0 && held == total) {
		consumer->unheld_since.tv_sec = 0;
		return true;
	}
	if (consumer->unheld_since.tv_sec == 0) {
		clock_gettime(CLOCK_MONOTONIC, &consumer->unheld_since);
		consumer->unheld_said = consumer->unheld_since;
		return false;
	}
	if (clock_ms_since(&consumer->unheld_since) >= CONSUMER_UNHELD_MS &&
	    clock_ms_since(&consumer->unheld_said) >= CONSUMER_UNHELD_MS) {
		clock_gettime(CLOCK_MONOTONIC, &consumer->unheld_said);
		log_warnx("rebuild: this instance holds %zu of the %zu "
		    "partitions of its topics; a rebuild reads them all, so "
		    "it waits: stop every other instance of consumer group %s "
		    "(docs/OPERATIONS.md, Rebuild)", held, total,
		    consumer->group_id);
	}
	return false;
}

/*
 * How far a partition is applied: its stored next offset (low while none
 * is stored), or further, up to librdkafka's position, when the last
 * message it was handed since its offset was read is the last applied
 * and nothing waits: the offsets between are none it is ever handed (a
 * transaction's commit or abort marker, the messages of an aborted
 * transaction), or a partition of a transactional producer would never
 * look caught up, nor lag 0.  (Messages dropped while the offset was read
 * again, and fetched again after, never count: handed_to starts over at
 * the stored offset once the seek there is done, which also sets
 * librdkafka's position back.)
 */
static int64_t
consumer_applied_to(const struct consumer *consumer,
    const struct consumer_partition *slot, int64_t low)
{
	int64_t at = slot->position.stored ? slot->position.next_offset : low;
	int64_t read;

	/*
	 * With no offset stored, the seek to the log's start says 0: when
	 * nothing was handed since, a partition that holds only an aborted
	 * transaction's messages and markers is caught up at the position.
	 */
	if (consumer->pending.count == 0 && consumer->inflight.count == 0 &&
	    !applier_busy(consumer->applier) &&
	    slot->state == CONSUMER_PART_ACTIVE &&
	    slot->handed_to == (slot->position.stored ?
	    slot->position.next_offset : 0) &&
	    kafka_client_position(consumer->client, slot->topic,
	    slot->position.partition, &read) && read > at)
		at = read;
	return at;
}

/*
 * Tells whether a rebuild has caught up: every partition held, applied
 * up to where it ended when first seen, nothing pending or in flight.
 */
static bool
consumer_rebuild_caught_up(struct consumer *consumer)
{
	struct kafka_client_health health;
	size_t i;

	kafka_client_health(consumer->client, &health);
	if (consumer->pending.count > 0 || consumer->inflight.count > 0 ||
	    applier_busy(consumer->applier) || !health.joined ||
	    !consumer_rebuild_holds_all(consumer))
		return false;
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (!slot->assigned)
			continue;
		if (!consumer_rebuild_filled(consumer, slot))
			return false;
	}
	return true;
}

/*
 * Tells whether a rebuild has applied a partition up to where it ended
 * when first seen (noted then).
 */
static bool
consumer_rebuild_filled(struct consumer *consumer,
    struct consumer_partition *slot)
{
	int64_t low, high;

	if (slot->state != CONSUMER_PART_ACTIVE ||
	    !kafka_client_watermarks(consumer->client, slot->topic,
	    slot->position.partition, &low, &high))
		return false;
	if (slot->rebuild_target < 0) {
		slot->rebuild_target = high;
		log_info("rebuild: %s[%d] holds offsets %lld to %lld",
		    consumer->topics[slot->topic].name,
		    slot->position.partition, (long long)low, (long long)high);
	}
	return consumer_applied_to(consumer, slot, low) >= slot->rebuild_target;
}

/*
 * Tells whether a filling rebuild holds its mark partitions back: until
 * every partition of the other topics is filled, an operator's request
 * without a known outcome (never applied, or its outcome gone with
 * api.request_days) would be decided against servers and subnets read
 * only in part.  Marks wait for them (the fill derives nothing, so the
 * order between topics changes no row).
 */
static bool
consumer_rebuild_holds_marks(struct consumer *consumer)
{
	struct kafka_client_health health;
	size_t i;

	if (rebuild_state(consumer->rebuild) != REBUILD_FILLING)
		return false;
	kafka_client_health(consumer->client, &health);
	if (!health.joined || !consumer_rebuild_holds_all(consumer))
		return true;
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (slot->assigned &&
		    consumer->topics[slot->topic].entity != CHANGE_MARK &&
		    !consumer_rebuild_filled(consumer, slot))
			return true;
	}
	return false;
}

/* Lets the mark partitions a filling rebuild held back go on. */
static void
consumer_rebuild_release_marks(struct consumer *consumer)
{
	struct consumer_partition **slots;
	size_t i, n = 0;

	if ((slots = calloc(consumer->partition_count + 1,
	    sizeof(*slots))) == NULL)
		fatal("consumer: calloc");
	for (i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].assigned &&
		    consumer->partitions[i].state == CONSUMER_PART_WAITING)
			slots[n++] = &consumer->partitions[i];
	if (n == 0 || consumer_rebuild_holds_marks(consumer)) {
		free(slots);
		return;
	}
	log_info("rebuild: the other topics are filled; reading the %zu "
	    "partition(s) of marks", n);
	consumer_release(consumer, slots, n);
	free(slots);
}

/*
 * Says how far a filling rebuild has come, every CONSUMER_PROGRESS_MS:
 * the events applied of those its partitions held when first seen.
 */
static void
consumer_rebuild_progress(struct consumer *consumer)
{
	int64_t low, high, target, at, done = 0, total = 0;
	size_t i;

	if (consumer->progress_at.tv_sec == 0)
		clock_gettime(CLOCK_MONOTONIC, &consumer->progress_at);
	if (clock_ms_since(&consumer->progress_at) < CONSUMER_PROGRESS_MS)
		return;
	clock_gettime(CLOCK_MONOTONIC, &consumer->progress_at);
	for (i = 0; i < consumer->partition_count; i++) {
		struct consumer_partition *slot = &consumer->partitions[i];

		if (!slot->assigned ||
		    !kafka_client_watermarks(consumer->client, slot->topic,
		    slot->position.partition, &low, &high))
			continue;
		/* Where it ended when first seen; not seen yet: now. */
		target = slot->rebuild_target >= 0 ? slot->rebuild_target : high;
		if (target <= low)
			continue;
		total += target - low;
		at = consumer_applied_to(consumer, slot, low);
		if (at > low)
			done += (at < target ? at : target) - low;
	}
	if (total > 0)
		log_info("rebuild: %lld of %lld events applied (%.0f%%), %llu "
		    "of them folded into later versions of their keys",
		    (long long)done, (long long)total, 100.0 * (double)done /
		    (double)total, (unsigned long long)applier_stats(
		    consumer->applier)->events_folded);
}

/*
 * The part of the stop deadline kept for leaving the group: a quarter, at
 * most 5 s.  The apply in flight may use the rest.
 */
static long long
consumer_close_reserve(const struct consumer *consumer)
{
	long long reserve = consumer->stop_deadline_ms / 4;

	return reserve < 5000 ? reserve : 5000;
}

/* The tick: what no event wakes up. */
static void
consumer_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct consumer *consumer = arg;
	bool filling;

	if (consumer->state == CONSUMER_DRAINING) {
		if (!applier_busy(consumer->applier) ||
		    clock_ms_since(&consumer->stop_began) >=
		    consumer->stop_deadline_ms - consumer_close_reserve(consumer)) {
			if (applier_busy(consumer->applier))
				log_warnx("shutdown: the apply in flight did not "
				    "finish within %lld ms (shutdown_timeout_ms, "
				    "of which the last %lld ms leave the group); "
				    "leaving it to be rolled back",
				    consumer->stop_deadline_ms,
				    consumer_close_reserve(consumer));
			consumer_finish_stop(consumer);
		}
		return;
	}
	if (consumer->state == CONSUMER_PREPARING) {
		rebuild_step(consumer->rebuild, false);
		return;
	}
	if (consumer->state != CONSUMER_RUNNING)
		return;
	consumer_load(consumer);
	if (rebuild_state(consumer->rebuild) != REBUILD_OFF && consumer->db_up &&
	    !consumer->loading) {
		filling = rebuild_state(consumer->rebuild) == REBUILD_FILLING;
		rebuild_step(consumer->rebuild,
		    consumer_rebuild_caught_up(consumer));
		if (filling &&
		    rebuild_state(consumer->rebuild) == REBUILD_FILLING) {
			consumer_rebuild_release_marks(consumer);
			consumer_rebuild_progress(consumer);
		}
		else if (filling &&
		    rebuild_state(consumer->rebuild) == REBUILD_DERIVING)
			log_info("rebuild: %llu messages read, %llu of them "
			    "folded into later versions of their keys",
			    (unsigned long long)consumer->stats.messages,
			    (unsigned long long)applier_stats(
			    consumer->applier)->events_folded);
	}
	consumer_flush(consumer);
	consumer_backpressure(consumer);
}

/* The applier is done with the batch in flight. */
static void
consumer_applied(struct applier *applier, enum applier_outcome outcome,
    const char *error, void *arg)
{
	struct consumer *consumer = arg;
	size_t i;

	switch (outcome) {
	case APPLIER_DONE:
		break;
	case APPLIER_LOST:
		/* Kept in inflight until consumer_db_up() reads the offsets. */
		log_info("apply: connection lost with %zu events in flight; "
		    "the offsets are read again once PostgreSQL is back",
		    batch_live(&consumer->inflight));
		break;
	case APPLIER_UNFOLD:
		batch_clear(&consumer->inflight);
		if (consumer->state != CONSUMER_RUNNING)
			break;
		/* Only a filling rebuild folds, and it drains before it
		   derives (consumer_fold()). */
		if (rebuild_state(consumer->rebuild) != REBUILD_FILLING)
			fatalx("consumer: a batch read while folding outside "
			    "a rebuild's filling");
		/*
		 * The refused event cannot be told apart from what was folded
		 * into it, and batches before it committed past what was: the
		 * rebuild starts over, reading every event as it is.
		 */
		log_warnx("rebuild: PostgreSQL refused an event of a batch "
		    "read while folding (%s); building the fresh state again "
		    "from the beginning of every topic, without folding, so "
		    "that the event is found and kept as a dead letter", error);
		consumer->unfolded = true;
		consumer_fold(consumer);
		for (i = 0; i < consumer->partition_count; i++)
			if (consumer->partitions[i].assigned)
				consumer_reload(consumer,
				    &consumer->partitions[i]);
		batch_clear(&consumer->pending);
		rebuild_restart(consumer->rebuild);
		consumer_enter(consumer, CONSUMER_PREPARING);
		consumer_backpressure(consumer);
		return;
	case APPLIER_MOVED:
		/*
		 * Another owner moved an offset under us (a revoked
		 * partition's last batch, or a second group): read every
		 * offset again and go on from there, without leaving the
		 * group.
		 */
		log_warnx("kafka: offsets moved under us (%s); reading them "
		    "again", error);
		batch_clear(&consumer->inflight);
		for (i = 0; i < consumer->partition_count; i++)
			if (consumer->partitions[i].assigned &&
			    (consumer->partitions[i].state ==
			    CONSUMER_PART_ACTIVE ||
			    consumer->partitions[i].state ==
			    CONSUMER_PART_CHECKING ||
			    consumer->partitions[i].state ==
			    CONSUMER_PART_WAITING))
				consumer_reload(consumer,
				    &consumer->partitions[i]);
		break;
	}
	if (consumer->state == CONSUMER_DRAINING) {
		consumer_finish_stop(consumer);
		return;
	}
	consumer_load(consumer);
	consumer_flush(consumer);
	consumer_backpressure(consumer);
}

/* The rebuild's fresh state exists: subscribe. */
static void
consumer_rebuild_prepared(void *arg)
{
	struct consumer *consumer = arg;
	consumer_event_cb *cb = consumer->subscribed_cb;

	size_t i;

	applier_set_target(consumer->applier, "ipam_state_rebuild", true);
	consumer_enter(consumer, CONSUMER_RUNNING);
	if (consumer->started) {
		/* Made again: every partition from its start. */
		for (i = 0; i < consumer->partition_count; i++)
			if (consumer->partitions[i].assigned)
				consumer_reload(consumer,
				    &consumer->partitions[i]);
		consumer_load(consumer);
		consumer_backpressure(consumer);
		return;
	}
	kafka_client_start(consumer->client);
	consumer->started = true;
	consumer->subscribed_cb = NULL;
	if (cb != NULL)
		cb(consumer->subscribed_arg);
}

/* The rebuilt state is swapped in: go on as normal. */
static void
consumer_rebuild_swapped(void *arg)
{
	struct consumer *consumer = arg;

	applier_set_target(consumer->applier, "ipam_state", false);
	consumer_flush(consumer);
	consumer_backpressure(consumer);
}

/* Copies the column names, owned by the consumer. */
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

/* Tells the owner the Kafka client is dead, from a turn of its own. */
static void
consumer_fatal_told(evutil_socket_t fd, short what, void *arg)
{
	struct consumer *consumer = arg;
	struct kafka_client_health health;

	kafka_client_health(consumer->client, &health);
	if (consumer->failed_cb != NULL && health.fatal_error != NULL)
		consumer->failed_cb(consumer->failed_arg, health.fatal_error,
		    health.fatal_code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
}

/*
 * The Kafka client is dead: the owner is told, to make a new one — not
 * from inside the client's poll, which its stop would re-enter.
 */
static void
consumer_fatal(void *arg, const char *reason)
{
	struct consumer *consumer = arg;
	struct timeval now = { 0, 0 };

	(void)reason;
	if (event_base_once(consumer->base, -1, EV_TIMEOUT, consumer_fatal_told,
	    consumer, &now) == -1)
		fatalx("consumer: event_base_once failed");
}

/* Who is told when the consumer can go on no more. */
void
consumer_set_failed(struct consumer *consumer, consumer_failed_cb *cb,
    void *arg)
{
	consumer->failed_cb = cb;
	consumer->failed_arg = arg;
}

/* Creates a consumer. */
struct consumer *
consumer_new(struct event_base *base, struct pgconn *pg,
    const struct consumer_settings *settings, char *err, size_t errlen)
{
	struct kafka_client_settings client_settings;
	struct kafka_client_handlers handlers;
	struct applier_positions positions;
	struct consumer *consumer;
	size_t i;

	if ((consumer = calloc(1, sizeof(*consumer))) == NULL)
		fatal("consumer: calloc");
	consumer->base = base;
	consumer->pg = pg;
	if ((consumer->group_id = strdup(settings->group_id)) == NULL)
		fatal("consumer: strdup");
	consumer->topic_count = settings->topic_count;
	consumer->topics = calloc(settings->topic_count,
	    sizeof(*consumer->topics));
	consumer->topic_names = calloc(settings->topic_count,
	    sizeof(*consumer->topic_names));
	consumer->intake = calloc(settings->topic_count,
	    sizeof(*consumer->intake));
	consumer->index = calloc(settings->topic_count,
	    sizeof(*consumer->index));
	if (consumer->topics == NULL || consumer->topic_names == NULL ||
	    consumer->intake == NULL || consumer->index == NULL)
		fatal("consumer: calloc");
	consumer->limits = settings->limits;
	consumer_copy_columns(consumer, &settings->columns);
	for (i = 0; i < settings->topic_count; i++) {
		consumer->topics[i] = settings->topics[i];
		if ((consumer->topics[i].name = strdup(settings->topics[i].name))
		    == NULL)
			fatal("consumer: strdup");
		consumer->topic_names[i] = consumer->topics[i].name;
		consumer->intake[i].entity = settings->topics[i].entity;
		consumer->intake[i].format = settings->topics[i].format;
		consumer->intake[i].limits = &consumer->limits;
		consumer->intake[i].columns = &consumer->columns;
	}
	batch_init(&consumer->pending, consumer->topic_names,
	    consumer->topic_count);
	batch_init(&consumer->inflight, consumer->topic_names,
	    consumer->topic_count);
	/* Both keep the messages themselves until their entries go. */
	batch_set_release(&consumer->pending, intake_release);
	batch_set_release(&consumer->inflight, intake_release);

	client_settings.group_id = settings->group_id;
	client_settings.topics = consumer->topic_names;
	client_settings.topic_count = consumer->topic_count;
	client_settings.properties = settings->properties;
	client_settings.property_count = settings->property_count;
	handlers.message = consumer_message;
	handlers.assigned = consumer_assigned;
	handlers.revoked = consumer_revoked;
	handlers.out_of_range = consumer_out_of_range;
	handlers.peeked = consumer_checked;
	handlers.fatal = consumer_fatal;
	handlers.arg = consumer;
	consumer->client = kafka_client_new(base, &client_settings, &handlers,
	    err, errlen);
	if (consumer->client == NULL)
		goto fail;

	positions.get = consumer_position_get;
	positions.set = consumer_position_set;
	positions.arg = consumer;
	consumer->applier = applier_new(base, pg, settings->group_id,
	    &positions, consumer_applied, consumer);
	consumer_set_batch_limits(consumer, settings->batch_max_events,
	    settings->batch_max_bytes, settings->batch_max_wait_ms,
	    settings->batch_max_pool_addresses);
	consumer->rebuild = rebuild_new(pg, settings->rebuild,
	    consumer_rebuild_prepared, consumer_rebuild_swapped, consumer);
	applier_set_target(consumer->applier, rebuild_schema(consumer->rebuild),
	    settings->rebuild);
	consumer->tick = event_new(base, -1, EV_PERSIST, consumer_tick_cb,
	    consumer);
	consumer->linger_timer = evtimer_new(base, consumer_linger_cb, consumer);
	if (consumer->tick == NULL || consumer->linger_timer == NULL)
		fatalx("consumer: event_new failed");
	return consumer;
fail:
	consumer_free(consumer);
	return NULL;
}

/* Subscribes (a rebuild first makes its fresh state). */
void
consumer_start(struct consumer *consumer, consumer_event_cb *subscribed,
    void *arg)
{
	struct timeval tick = { 0, CONSUMER_TICK_MS * 1000 };

	consumer->subscribed_cb = subscribed;
	consumer->subscribed_arg = arg;
	consumer->db_up = true;
	event_add(consumer->tick, &tick);
	if (rebuild_state(consumer->rebuild) == REBUILD_PREPARING) {
		log_info("rebuild: building a fresh state from the beginning of "
		    "every topic");
		consumer_enter(consumer, CONSUMER_PREPARING);
		rebuild_step(consumer->rebuild, false);
		return;
	}
	consumer_enter(consumer, CONSUMER_RUNNING);
	kafka_client_start(consumer->client);
	consumer->started = true;
	consumer->subscribed_cb = NULL;
	subscribed(arg);
}

/* PostgreSQL went down: pause fetching. */
void
consumer_db_down(struct consumer *consumer)
{
	consumer->db_up = false;
	consumer->loading = false;
	consumer_backpressure(consumer);
	log_info("kafka: consumption paused while PostgreSQL is away");
}

/* PostgreSQL is back: read every offset again, then go on. */
void
consumer_db_up(struct consumer *consumer)
{
	size_t i;

	if (consumer->state == CONSUMER_IDLE)
		return;	/* not started yet */
	consumer->db_up = true;
	log_info("kafka: PostgreSQL is back; reading offsets and resuming");
	/*
	 * A batch whose commit was lost with the connection may have landed
	 * or not: the stored offsets say which, and what was in flight is
	 * fetched again from there.  One the applier was waiting to send
	 * again goes the same way (sent, it would have been empty).
	 */
	applier_drop(consumer->applier);
	batch_clear(&consumer->inflight);
	for (i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].assigned &&
		    consumer->partitions[i].state == CONSUMER_PART_ACTIVE)
			consumer_reload(consumer, &consumer->partitions[i]);
	consumer_load(consumer);
	consumer_backpressure(consumer);
}

/* Leaves the group within what is left of the deadline, then reports. */
static void
consumer_finish_stop(struct consumer *consumer)
{
	consumer_event_cb *cb = consumer->stopped_cb;
	long long left;

	if (consumer->state == CONSUMER_STOPPED)
		return;
	consumer_enter(consumer, CONSUMER_STOPPED);
	event_del(consumer->tick);
	evtimer_del(consumer->linger_timer);
	batch_clear(&consumer->pending);
	left = consumer->stop_deadline_ms -
	    clock_ms_since(&consumer->stop_began);
	kafka_client_close(consumer->client, left > 500 ? left : 500);
	consumer->stopped_cb = NULL;
	if (cb != NULL)
		cb(consumer->stopped_arg);
}

/* Stops consuming and leaves the group once the apply in flight is over. */
void
consumer_stop(struct consumer *consumer, long long deadline_ms,
    consumer_event_cb *stopped, void *arg)
{
	consumer->stopped_cb = stopped;
	consumer->stopped_arg = arg;
	consumer->stop_deadline_ms = deadline_ms;
	clock_gettime(CLOCK_MONOTONIC, &consumer->stop_began);
	if (consumer->state == CONSUMER_STOPPED) {
		stopped(arg);
		return;
	}
	consumer_enter(consumer, CONSUMER_DRAINING);
	consumer_backpressure(consumer);
	batch_clear(&consumer->pending);
	if (!applier_busy(consumer->applier)) {
		consumer_finish_stop(consumer);
		return;
	}
	log_info("shutdown: waiting for the apply in flight (at most %lld ms)",
	    deadline_ms - consumer_close_reserve(consumer));
}

/* Frees the consumer. */
void
consumer_free(struct consumer *consumer)
{
	size_t i;

	if (consumer == NULL)
		return;
	if (consumer->tick != NULL)
		event_free(consumer->tick);
	if (consumer->linger_timer != NULL)
		event_free(consumer->linger_timer);
	applier_free(consumer->applier);
	rebuild_free(consumer->rebuild);
	batch_clear(&consumer->pending);
	batch_clear(&consumer->inflight);
	free(consumer->pending.entries);
	free(consumer->inflight.entries);
	if (consumer->client != NULL) {
		kafka_client_close(consumer->client, 1000);
		kafka_client_free(consumer->client);
	}
	for (i = 0; i < consumer->topic_count; i++) {
		free((char *)consumer->topics[i].name);
		if (consumer->index != NULL)
			free(consumer->index[i].slots);
	}
	free(consumer->index);
	free(consumer->topics);
	free(consumer->topic_names);
	for (i = 0; consumer->intake != NULL && i < consumer->topic_count; i++)
		intake_topic_clear(&consumer->intake[i]);
	free(consumer->intake);
	free(consumer->partitions);
	free(consumer->column_strings);
	free(consumer->group_id);
	free(consumer);
}

/* Changes the batch bounds. */
void
consumer_set_batch_limits(struct consumer *consumer, size_t max_events,
    size_t max_bytes, long long max_wait_ms, uint64_t max_pool_addresses)
{
	consumer->batch_max_events = max_events;
	consumer->batch_max_bytes = max_bytes;
	consumer->batch_max_wait_ms = max_wait_ms;
	applier_set_pool_budget(consumer->applier, max_pool_addresses);
}

/* Tells whether the consumer is ready to do its work, or why not. */
bool
consumer_ready(const struct consumer *consumer, char *reason, size_t reasonlen)
{
	struct kafka_client_health health;
	const char *failing;
	size_t i;

	/* The rebuilt state cannot be made live: writes wait meanwhile. */
	if ((failing = rebuild_failing(consumer->rebuild)) != NULL) {
		snprintf(reason, reasonlen, "rebuild: %s", failing);
		return false;
	}
	if (consumer->state != CONSUMER_RUNNING) {
		snprintf(reason, reasonlen, "%s",
		    consumer->state == CONSUMER_PREPARING ? "rebuild: making the "
		    "fresh state" : "the consumer is not running");
		return false;
	}
	if ((failing = applier_failing(consumer->applier)) != NULL) {
		snprintf(reason, reasonlen, "PostgreSQL refuses the batches: %s",
		    failing);
		return false;
	}
	kafka_client_health(consumer->client, &health);
	if (health.fatal_error != NULL) {
		snprintf(reason, reasonlen, "the Kafka client hit a fatal "
		    "error and consumes no more: %s", health.fatal_error);
		return false;
	}
	/* A refused handshake or login is the reason, not a wait. */
	if (health.broker_error != NULL && health.brokers_up == 0) {
		snprintf(reason, reasonlen, "no Kafka broker is reachable: %s",
		    health.broker_error);
		return false;
	}
	if (!health.known) {
		snprintf(reason, reasonlen, "waiting for the Kafka client's "
		    "first view of the cluster");
		return false;
	}
	if (health.brokers_up == 0) {
		snprintf(reason, reasonlen, "no Kafka broker is reachable");
		return false;
	}
	if (health.missing_topic != NULL) {
		snprintf(reason, reasonlen, "topic %s does not exist (%zu "
		    "configured topic%s missing)", health.missing_topic,
		    health.topics_missing, health.topics_missing == 1 ? " is" :
		    "s are");
		return false;
	}
	if (!health.joined) {
		snprintf(reason, reasonlen, "joining the consumer group");
		return false;
	}
	for (i = 0; i < consumer->partition_count; i++) {
		const struct consumer_partition *slot = &consumer->partitions[i];

		if (!slot->assigned)
			continue;
		if (slot->state == CONSUMER_PART_OUT_OF_RANGE &&
		    slot->recreated) {
			snprintf(reason, reasonlen, "%s[%d]: the record before "
			    "the stored offset is not the one applied (the "
			    "topic was made again; see the log)",
			    consumer->topics[slot->topic].name,
			    (int)slot->position.partition);
			return false;
		}
		if (slot->state == CONSUMER_PART_OUT_OF_RANGE) {
			snprintf(reason, reasonlen, "%s[%d]: the stored offset is "
			    "outside the partition's log (recreated topic or "
			    "expired records; see the log)",
			    consumer->topics[slot->topic].name,
			    (int)slot->position.partition);
			return false;
		}
		if (slot->state == CONSUMER_PART_WAITING) {
			snprintf(reason, reasonlen, "rebuild: %s[%d] is read "
			    "once the other topics are filled",
			    consumer->topics[slot->topic].name,
			    (int)slot->position.partition);
			return false;
		}
		if (slot->state == CONSUMER_PART_CHECKING) {
			snprintf(reason, reasonlen, "reading the record before "
			    "the stored offset of %s[%d] again",
			    consumer->topics[slot->topic].name,
			    (int)slot->position.partition);
			return false;
		}
		if (slot->state == CONSUMER_PART_LOADING &&
		    slot->seek_failures > 0) {
			snprintf(reason, reasonlen, "%s[%d]: the seek to its "
			    "stored offset failed %u time(s) in a row; sought "
			    "again (see the log)",
			    consumer->topics[slot->topic].name,
			    (int)slot->position.partition, slot->seek_failures);
			return false;
		}
		if (slot->state == CONSUMER_PART_LOADING) {
			snprintf(reason, reasonlen, "reading the stored offset of "
			    "%s[%d]", consumer->topics[slot->topic].name,
			    (int)slot->position.partition);
			return false;
		}
	}
	return true;
}

/* The cluster as the client sees it. */
void
consumer_health(const struct consumer *consumer,
    struct kafka_client_health *health)
{
	kafka_client_health(consumer->client, health);
}

/* Running totals. */
const struct consumer_stats *
consumer_stats(const struct consumer *consumer)
{
	struct consumer_stats *stats = (struct consumer_stats *)&consumer->stats;
	size_t i;

	stats->kafka_errors = kafka_client_errors(consumer->client);
	stats->snapshots_again = 0;
	for (i = 0; i < consumer->topic_count; i++)
		stats->snapshots_again += consumer->intake[i].snapshots_again;
	return stats;
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
		int64_t low, high;

		if (!slot->assigned)
			continue;
		kafka_client_watermarks(consumer->client, slot->topic,
		    slot->position.partition, &low, &high);
		fn(arg, consumer->topics[slot->topic].name,
		    slot->position.partition,
		    consumer_applied_to(consumer, slot, -1), low, high);
	}
}

/* Whether a rebuild is under way (filling, deriving or swapping). */
bool
consumer_rebuilding(const struct consumer *consumer)
{
	return rebuild_state(consumer->rebuild) != REBUILD_OFF;
}

/* Why PostgreSQL refuses a rebuild's step, or NULL. */
const char *
consumer_rebuild_failing(const struct consumer *consumer)
{
	return rebuild_failing(consumer->rebuild);
}

/* Why the database refuses every apply or a rebuild's step, or NULL. */
const char *
consumer_apply_failing(const struct consumer *consumer)
{
	const char *failing = applier_failing(consumer->applier);

	return failing != NULL ? failing : rebuild_failing(consumer->rebuild);
}

/* Seconds the apply in flight has been running. */
double
consumer_apply_seconds(const struct consumer *consumer)
{
	return applier_busy_seconds(consumer->applier);
}
