/* The decoders: bytes of one Kafka message in, a typed change or an error out. */
#ifndef IPAM_CONSUMERS_DECODE_H
#define IPAM_CONSUMERS_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consumers/change.h"

enum decode_format {
	DECODE_CLOUDEVENTS,
	DECODE_DEBEZIUM,
};

/* One Kafka header; the value is not NUL-terminated and may be NULL. */
struct decode_header {
	const char	*name;
	const void	*value;
	size_t		value_len;
};

/* Column names of the inventory tables, as Debezium sends them. */
struct debezium_columns {
	const char	*server_id;		/* "id" */
	const char	*server_hostname;	/* "hostname" */
	const char	*server_ip_address;	/* "ip_address" */
	const char	*server_nic_mac;	/* "nic_mac" */
	const char	*server_device_type;	/* "device_type" */
	const char	*server_manufacture;	/* "manufacture" */
	const char	*server_vrf;		/* "vrf"; absent column means "" */
	const char	*subnet_id;		/* "id" */
	const char	*subnet_name;		/* "name" */
	const char	*subnet_cidr;		/* "cidr" */
	const char	*subnet_static_ip_pools;/* "static_ip_pools" */
	const char	*subnet_vrf;		/* "vrf" */
	const char	*subnet_ping;		/* "ping" */
	/*
	 * Debezium's unavailable.value.placeholder, the stand-in for an
	 * unchanged TOASTed column; NULL: Debezium's default,
	 * "__debezium_unavailable_value".
	 */
	const char	*unavailable;
};

/*
 * Limits the decoders enforce.  A header limit of 0 means its default,
 * so that a struct filled field by field keeps working.
 */
struct decode_limits {
	size_t		max_message_bytes;	/* larger values are refused */
	uint64_t	max_pool_addresses;	/* per subnet, all pools summed */
	size_t		max_headers;		/* headers of one message */
	size_t		max_header_bytes;	/* their names and values summed */
};

/* Longest schema block a decode_memo keeps, of a value and of a key. */
#define DECODE_MEMO_MAX		16384
#define DECODE_MEMO_KEY_MAX	1024

/*
 * What the Debezium decoder remembers of a topic between its messages:
 * the schema block of the last wrapper it checked whole, byte for byte,
 * and of the last key.  Kafka Connect sends the same block with every
 * message of a table, so a message that begins with it needs only its
 * payload checked, and a key only its payload compared.  Zeroed
 * is empty; it holds no pointer, so it is freed with what holds it.
 */
struct decode_memo {
	size_t	schema_len;		/* 0: nothing kept */
	char	schema[DECODE_MEMO_MAX];
	/* What the block says of the id column (decode_decimal.h). */
	int	id_kind;		/* enum decimal_kind */
	long	id_scale;
	/* The same of the keys: a key block that names no Decimal. */
	size_t	key_schema_len;		/* 0: nothing kept */
	char	key_schema[DECODE_MEMO_KEY_MAX];
};

/* What a decoder is given: the message and what its topic declares. */
struct decode_input {
	enum change_entity		entity;		/* the topic's entity */
	const void			*key;		/* may be NULL */
	size_t				key_len;
	const void			*value;		/* NULL: a tombstone */
	size_t				value_len;
	const struct decode_header	*headers;
	size_t				header_count;
	const struct decode_limits	*limits;
	const struct debezium_columns	*columns;	/* Debezium only */
	struct decode_memo		*memo;		/* Debezium; may be NULL */
};

/* Result of decoding one message. */
enum decode_result {
	DECODE_OK,	/* out holds a change */
	DECODE_ERROR,	/* err holds a reason a person can act on */
};

/* The defaults: the inventory's own column names. */
void	decode_columns_default(struct debezium_columns *columns);

/*
 * The defaults: 1 MiB messages, 1,048,576 pool addresses per subnet,
 * 1,000 headers holding at most 64 KiB.
 */
void	decode_limits_default(struct decode_limits *limits);

/*
 * Decodes a message in the given format.  A message over a limit is an
 * error whatever it holds, so every header is looked at.  On DECODE_OK
 * the caller owns out and frees it with change_clear(); on any other
 * result out is empty.
 */
enum decode_result decode_message(enum decode_format format,
	    const struct decode_input *in, struct change *out, char *err,
	    size_t errlen);

/* The CloudEvents 1.0 decoder (structured JSON or binary mode). */
enum decode_result decode_cloudevents(const struct decode_input *in,
	    struct change *out, char *err, size_t errlen);

/*
 * Tells whether a message is a binary-mode CloudEvent: a ce_specversion
 * header, whatever its value, and a first content-type header that is
 * not application/cloudevents (the Kafka binding's structured mode).
 */
bool	decode_cloudevents_binary(const struct decode_input *in);

/* The Debezium change-event decoder (with or without schema wrapper). */
enum decode_result decode_debezium(const struct decode_input *in,
	    struct change *out, char *err, size_t errlen);

/*
 * The headers of a message as JSON text that PostgreSQL's jsonb takes,
 * every byte kept, in order, repeated names included: an array of
 * {"key": name, "value": text} when the value is UTF-8 without NUL,
 * {"key": name, "base64": ...} when it is not, {"key": name, "value":
 * null} for a header without a value ("key_base64" stands for "key" when
 * the name is not UTF-8).  Returns a string the caller frees, or NULL
 * when out of memory.
 */
char	*decode_headers_json(const struct decode_header *headers,
	    size_t count);

/*
 * The first header of a message with this name (ASCII case ignored when
 * nocase), or NULL when there is none.
 */
const struct decode_header *decode_header_find(const struct decode_input *in,
	    const char *name, bool nocase);

#endif
