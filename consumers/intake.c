/* Intake: one Kafka message into a batch entry, decoded or dead. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "consumers/intake.h"

/* Headers of a message read without an allocation. */
#define INTAKE_HEADERS_ON_STACK	32

/* What a message without headers keeps for its dead letter. */
static const char intake_no_headers[] = "[]";

/*
 * Reads every header of a message into headers (room for room), or into
 * a new array (*heap, the caller frees it) when there are more; returns
 * how many there are and where they are in *out.
 */
static size_t
intake_headers(const rd_kafka_message_t *message, struct decode_header *room,
    size_t room_count, struct decode_header **out, struct decode_header **heap)
{
	rd_kafka_headers_t *kafka_headers = NULL;
	struct decode_header *headers = room;
	const char *name;
	const void *value;
	size_t i, count, size;

	*out = room;
	*heap = NULL;
	if (rd_kafka_message_headers(message, &kafka_headers) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	count = rd_kafka_header_cnt(kafka_headers);
	if (count > room_count) {
		if ((headers = *heap = calloc(count, sizeof(*headers))) == NULL)
			fatal("intake: calloc");
		*out = headers;
	}
	for (i = 0; i < count && rd_kafka_header_get_all(kafka_headers, i,
	    &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		headers[i].name = name;
		headers[i].value = value;
		headers[i].value_len = size;
	}
	return i;
}

/* Destroys a message the batch held. */
void
intake_release(void *hold)
{
	rd_kafka_message_destroy(hold);
}

void
intake_topic_clear(struct intake_topic *how)
{
	free(how->partitions);
	how->partitions = NULL;
	how->partition_count = 0;
}

/* What a partition read last, made when first asked. */
static struct intake_partition *
intake_partition(struct intake_topic *how, int32_t partition)
{
	struct intake_partition *grown;
	size_t i, count;

	if ((size_t)partition >= how->partition_count) {
		count = (size_t)partition + 1;
		if ((grown = realloc(how->partitions, count *
		    sizeof(*grown))) == NULL)
			fatal("intake: realloc");
		for (i = how->partition_count; i < count; i++) {
			grown[i].offset = -1;
			grown[i].snapshot_lsn = INTAKE_NO_SNAPSHOT;
			grown[i].judged_through = -1;
		}
		how->partitions = grown;
		how->partition_count = count;
	}
	return &how->partitions[partition];
}

/*
 * Tells whether a decoded Debezium record begins a snapshot taken again:
 * a table's first snapshot record past the start of its partition, not
 * right after a record of the same snapshot, and not judged before (read
 * again after a seek back); then remembers the record.
 */
static bool
intake_snapshot_taken_again(struct intake_topic *how,
    const rd_kafka_message_t *message, const struct change *change)
{
	struct intake_partition *seen;
	bool again = false, same;

	if (message->partition < 0)
		return false;
	seen = intake_partition(how, message->partition);
	if (change->snapshot_begins && message->offset > 0 &&
	    message->offset > seen->judged_through) {
		same = seen->offset >= 0 && message->offset > seen->offset &&
		    change->has_lsn && seen->snapshot_lsn == change->lsn;
		again = !same;
		seen->judged_through = message->offset;
	}
	seen->offset = message->offset;
	seen->snapshot_lsn = change->snapshot && change->has_lsn ?
	    change->lsn : INTAKE_NO_SNAPSHOT;
	return again;
}

/*
 * Tells of a snapshot that begins past the start of its partition and not
 * right after a record of the same snapshot: the topic held records
 * before it, so the connector snapshots again (its offsets were lost, a
 * standalone worker's offsets file cut by a crash, snapshot.mode=always,
 * a blocking snapshot, a new connector on the topics of an old one).  Its
 * records re-state the rows that exist; a row deleted before it is in no
 * event, and its entity stays.
 */
static void
intake_snapshot_again(const struct batch *batch, int topic,
    struct intake_topic *how, const rd_kafka_message_t *message)
{
	how->snapshots_again++;
	log_warnx("debezium: %s[%d]: a snapshot begins at offset %lld, not "
	    "at the partition's start: the connector snapshots again, and "
	    "rows deleted from the source before it are in no event, so "
	    "their entities stay; to drop them, let the connector snapshot "
	    "into new topics and run ipam-syncd --rebuild on them "
	    "(docs/EVENTS.md)",
	    batch->topic_names[topic], (int)message->partition,
	    (long long)message->offset);
}

/*
 * Decodes a message and adds it to the batch, which keeps the message
 * itself for its bytes, with the JSON of its headers for a dead letter
 * now or later (written only when there are headers: most messages have
 * none).
 */
bool
intake_message(struct batch *batch, int topic, struct intake_topic *how,
    rd_kafka_message_t *message)
{
	struct decode_header room[INTAKE_HEADERS_ON_STACK], *heap;
	struct decode_header *headers;
	struct decode_input input;
	struct change change;
	char *headers_text = NULL;
	char reason[1024];
	bool decoded = true;

	memset(&input, 0, sizeof(input));
	input.entity = how->entity;
	input.key = message->key;
	input.key_len = message->key_len;
	input.value = message->payload;
	input.value_len = message->len;
	input.limits = how->limits;
	input.columns = how->columns;
	input.memo = &how->memo;
	input.header_count = intake_headers(message, room,
	    INTAKE_HEADERS_ON_STACK, &headers, &heap);
	input.headers = headers;
	if (input.header_count > 0 && (headers_text =
	    decode_headers_json(headers, input.header_count)) == NULL)
		fatal("intake: decode_headers_json");

	memset(&change, 0, sizeof(change));
	switch (decode_message(how->format, &input, &change, reason,
	    sizeof(reason))) {
	case DECODE_OK:
		if (how->format == DECODE_DEBEZIUM &&
		    intake_snapshot_taken_again(how, message, &change))
			intake_snapshot_again(batch, topic, how, message);
		break;
	case DECODE_ERROR:
		/* What was read before it still tells the next record. */
		decoded = false;
		break;
	}
	batch_add_held(batch, topic, message->partition, message->offset,
	    &change, decoded ? NULL : reason, message, message->key,
	    message->key_len, message->payload, message->len,
	    headers_text != NULL ? headers_text : intake_no_headers);
	free(headers_text);
	free(heap);
	return decoded;
}
