/* The decoders' entry point: limits, tombstones and dispatch by format. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "consumers/decode.h"
#include "consumers/decode_fields.h"

/* The defaults: the inventory's own column names. */
void
decode_columns_default(struct debezium_columns *columns)
{
	columns->server_id = "id";
	columns->server_hostname = "hostname";
	columns->server_ip_address = "ip_address";
	columns->server_nic_mac = "nic_mac";
	columns->server_device_type = "device_type";
	columns->server_manufacture = "manufacture";
	columns->server_vrf = "vrf";
	columns->subnet_id = "id";
	columns->subnet_name = "name";
	columns->subnet_cidr = "cidr";
	columns->subnet_static_ip_pools = "static_ip_pools";
	columns->subnet_vrf = "vrf";
	columns->subnet_ping = "ping";
	columns->unavailable = "__debezium_unavailable_value";
}

/*
 * The defaults: 1 MiB messages, 1,048,576 pool addresses per subnet,
 * 1,000 headers holding at most 64 KiB.
 */
void
decode_limits_default(struct decode_limits *limits)
{
	limits->max_message_bytes = 1024 * 1024;
	limits->max_pool_addresses = 1024 * 1024;
	limits->max_headers = 1000;
	limits->max_header_bytes = 64 * 1024;
}

/*
 * Refuses a message with more headers, or more header bytes (names and
 * values), than the limits allow (0: the default).  Before any decoder
 * looks at them, so that the reason is the limit and not whatever a
 * decoder would have made of part of them.
 */
static int
decode_check_headers(const struct decode_input *in, char *err,
    size_t errlen)
{
	struct decode_limits	defaults;
	size_t			max_headers, max_bytes, bytes = 0, i;

	decode_limits_default(&defaults);
	max_headers = in->limits->max_headers != 0 ?
	    in->limits->max_headers : defaults.max_headers;
	max_bytes = in->limits->max_header_bytes != 0 ?
	    in->limits->max_header_bytes : defaults.max_header_bytes;
	if (in->header_count > max_headers)
		return fields_error(err, errlen, "the message has %zu headers, "
		    "more than the limit of %zu", in->header_count,
		    max_headers);
	for (i = 0; i < in->header_count; i++) {
		if (in->headers[i].name != NULL)
			bytes += strlen(in->headers[i].name);
		bytes += in->headers[i].value_len;
	}
	if (bytes > max_bytes)
		return fields_error(err, errlen, "the message's headers hold "
		    "%zu bytes, more than the limit of %zu bytes", bytes,
		    max_bytes);
	return 0;
}

/*
 * A null value with a key deletes the entity the key names, whatever it
 * held: for a mark the key is "address" or "vrf/address", for Debezium it
 * may be the JSON key Kafka Connect writes, else it is the id as text.
 */
static enum decode_result
decode_tombstone(enum decode_format format, const struct decode_input *in,
    struct change *out, char *err, size_t errlen)
{
	const char	*column;
	int		 rc;

	if (in->key == NULL || in->key_len == 0) {
		fields_error(err, errlen, "tombstone: the value is null and "
		    "there is no key to say which %s to delete",
		    change_entity_name(in->entity));
		return DECODE_ERROR;
	}
	out->entity = in->entity;
	out->op = CHANGE_DELETE;
	out->unconditional = true;
	out->has_version = false;
	if (in->entity == CHANGE_MARK) {
		rc = fields_mark_kafka_key(in->key, in->key_len, &out->vrf,
		    &out->ip, &out->id, err, errlen);
		out->has_ip = rc == 0;
	} else {
		if (format == DECODE_DEBEZIUM) {
			column = in->entity == CHANGE_SERVER ?
			    in->columns->server_id : in->columns->subnet_id;
			rc = fields_key_id("key", in->key, in->key_len, column,
			    &out->id, err, errlen);
		} else
			rc = fields_id_bytes("key", in->key, in->key_len,
			    &out->id, err, errlen);
		if (rc == 0 && (out->vrf = strdup("")) == NULL)
			rc = fields_error(err, errlen, "out of memory");
	}
	if (rc == -1) {
		fields_error_prefix(err, errlen, "tombstone");
		return DECODE_ERROR;
	}
	return DECODE_OK;
}

/*
 * Decodes a message in the given format.  A message over a limit is an
 * error whatever it holds.  On DECODE_OK the caller owns out and frees it
 * with change_clear(); on any other result out is empty.  Missing limits
 * or columns in the input mean the defaults.
 */
enum decode_result
decode_message(enum decode_format format, const struct decode_input *in,
    struct change *out, char *err, size_t errlen)
{
	struct decode_input	input = *in;
	struct decode_limits	limits;
	struct debezium_columns	columns;
	enum decode_result	result;

	memset(out, 0, sizeof(*out));
	if (errlen > 0)
		err[0] = '\0';
	if (input.limits == NULL) {
		decode_limits_default(&limits);
		input.limits = &limits;
	}
	if (input.columns == NULL) {
		decode_columns_default(&columns);
		input.columns = &columns;
	}
	if (decode_check_headers(&input, err, errlen) == -1)
		result = DECODE_ERROR;
	/* The Debezium decoder refuses marks, tombstones included. */
	else if (format == DECODE_DEBEZIUM && input.entity == CHANGE_MARK)
		result = decode_debezium(&input, out, err, errlen);
	else if (input.value == NULL && (format != DECODE_CLOUDEVENTS ||
	    !decode_cloudevents_binary(&input)))
		result = decode_tombstone(format, &input, out, err, errlen);
	else if (input.value == NULL) {
		/* A binary-mode CloudEvent without data (a delete), not a tombstone. */
		input.value = "";
		result = decode_cloudevents(&input, out, err, errlen);
	}
	else if (input.value_len > input.limits->max_message_bytes) {
		fields_error(err, errlen, "the message is %zu bytes, more than "
		    "the limit of %zu bytes", input.value_len,
		    input.limits->max_message_bytes);
		result = DECODE_ERROR;
	} else if (format == DECODE_CLOUDEVENTS)
		result = decode_cloudevents(&input, out, err, errlen);
	else if (format == DECODE_DEBEZIUM)
		result = decode_debezium(&input, out, err, errlen);
	else {
		fields_error(err, errlen, "unknown message format %d",
		    (int)format);
		result = DECODE_ERROR;
	}
	if (result != DECODE_OK)
		change_clear(out);
	/* The reason lands in a log line and a text column: keep it clean. */
	if (result == DECODE_ERROR)
		fields_sanitize(err, errlen);
	return result;
}
