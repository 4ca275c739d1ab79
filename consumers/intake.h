/* Intake: one Kafka message into a batch entry, decoded or dead. */
#ifndef IPAM_CONSUMERS_INTAKE_H
#define IPAM_CONSUMERS_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "consumers/batch.h"
#include "consumers/decode.h"

/*
 * What a topic carries and how its messages are read, and what the
 * decoder remembers between them (zeroed: nothing yet).
 */
struct intake_topic {
	enum change_entity		 entity;
	enum decode_format		 format;
	const struct decode_limits	*limits;
	const struct debezium_columns	*columns;
	struct decode_memo		 memo;
	uint64_t			 snapshots_again;	/* told */
	struct intake_partition		*partitions;	/* by number */
	size_t				 partition_count;
};

/*
 * What a Debezium topic's partition read last: the records of one
 * snapshot share its lsn, so a table's first record right after one of
 * them is the next table of the same snapshot in a topic that carries
 * several, not a snapshot taken again.
 */
struct intake_partition {
	int64_t		offset;		/* of the last record read; -1: none */
	int64_t		snapshot_lsn;	/* its lsn if a snapshot record, else
					   INTAKE_NO_SNAPSHOT */
	int64_t		judged_through;	/* snapshot beginnings judged up to
					   this offset: read again (a seek
					   back), not judged again */
};

#define INTAKE_NO_SNAPSHOT	INT64_MIN

/* Frees what a topic's intake holds (not the struct). */
void	intake_topic_clear(struct intake_topic *how);

/*
 * Decodes a message of topic (an index into the batch's topic names) and
 * adds it to the batch: a change, or a dead letter with the reason and
 * every header.  The batch takes the message and keeps it until the entry
 * is freed (its release function must be intake_release()).  Returns
 * false when it became a dead letter.
 */
bool	intake_message(struct batch *batch, int topic,
	    struct intake_topic *how, rd_kafka_message_t *message);

/* Destroys a message a batch held (batch_release_fn). */
void	intake_release(void *hold);

#endif
