/* Intake: one Kafka message into a batch entry, decoded or dead. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "consumers/intake.h"

/*
 * Reads every header of a message into a new array (*out, the caller
 * frees it) and their JSON text for a dead letter (*json, likewise);
 * returns how many there are.
 */
static size_t
intake_headers(const rd_kafka_message_t *message, struct decode_header **out,
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
		fatal("intake: calloc");
	for (i = 0; i < count && rd_kafka_header_get_all(kafka_headers, i,
	    &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		headers[i].name = name;
		headers[i].value = value;
		headers[i].value_len = size;
	}
	if ((*json = decode_headers_json(headers, i)) == NULL)
		fatal("intake: decode_headers_json");
	*out = headers;
	return i;
}

/* Decodes a message and adds it to the batch. */
bool
intake_message(struct batch *batch, int topic, const struct intake_topic *how,
    const rd_kafka_message_t *message)
{
	struct decode_header *headers;
	struct decode_input input;
	struct change change;
	char *headers_text;
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
	input.header_count = intake_headers(message, &headers, &headers_text);
	input.headers = headers;

	memset(&change, 0, sizeof(change));
	switch (decode_message(how->format, &input, &change, reason,
	    sizeof(reason))) {
	case DECODE_OK:
		batch_add_change(batch, topic, message->partition,
		    message->offset, &change, message->key, message->key_len,
		    message->payload, message->len, headers_text);
		break;
	case DECODE_ERROR:
		decoded = false;
		batch_add_dead(batch, topic, message->partition,
		    message->offset, reason, message->key, message->key_len,
		    message->payload, message->len, headers_text);
		break;
	}
	free(headers_text);
	free(headers);
	return decoded;
}
