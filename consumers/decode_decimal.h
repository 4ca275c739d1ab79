/*
 * Ids held in numeric columns, as Debezium sends them through Kafka
 * Connect's JSON converter.
 *
 * With decimal.handling.mode=precise (Debezium's default) a numeric(p,s)
 * column is a Connect Decimal: the value is the base64 of its unscaled
 * value's bytes (big-endian two's complement, as Java's
 * BigInteger.toByteArray() writes them) and only the schema says the
 * scale.  A numeric column without precision is a Debezium
 * VariableScaleDecimal, {"scale": s, "value": <base64>}.  Either becomes
 * the text decimal.handling.mode=string would have sent
 * (BigDecimal.toPlainString(): 7, -1, 12.50, 0.007), so an inventory
 * keeps its ids whichever mode its connector runs in.
 */
#ifndef IPAM_CONSUMERS_DECODE_DECIMAL_H
#define IPAM_CONSUMERS_DECODE_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Kafka Connect's logical type of a numeric(p,s) column. */
#define DECIMAL_CONNECT		"org.apache.kafka.connect.data.Decimal"

/* What a schema block says of a column. */
enum decimal_kind {
	DECIMAL_NONE,		/* not a Connect Decimal, or not said */
	DECIMAL_SCALED,		/* a Connect Decimal of a readable scale */
	DECIMAL_BAD_SCALE,	/* a Connect Decimal whose scale is unreadable */
};

/* Largest scale (either sign) read; PostgreSQL's numeric allows 1000. */
#define DECIMAL_SCALE_MAX	1000

/*
 * The id a Connect Decimal's value stands for: base64 (len bytes at
 * text) of the unscaled value, with the scale the schema gives, as
 * decimal text (then checked as any id, fields_id_bytes).  The caller
 * owns *out.
 */
int	decimal_id(const char *field, const char *text, size_t len, long scale,
	    char **out, char *err, size_t errlen);

/*
 * The id a column of the given kind holds (kind is not DECIMAL_NONE):
 * decimal_id() for DECIMAL_SCALED, else the error that the schema block
 * (block names it: "the schema block", "the key's schema block") gives
 * no scale.
 */
int	decimal_kind_id(const char *field, enum decimal_kind kind, long scale,
	    const char *block, const char *text, size_t len, char **out,
	    char *err, size_t errlen);

/*
 * Whether a JSON value is a Debezium VariableScaleDecimal: an object of
 * exactly the members scale (an integer) and value (a string).
 */
bool	decimal_is_variable(const json_t *value);

/* The id a VariableScaleDecimal stands for (see decimal_id). */
int	decimal_variable_id(const char *field, const json_t *value, char **out,
	    char *err, size_t errlen);

/*
 * What the schema of a row (a Connect struct schema: {"type":"struct",
 * "fields":[...]}) says of one of its columns; *scale is set for
 * DECIMAL_SCALED (at most DECIMAL_SCALE_MAX either way).
 */
enum decimal_kind decimal_column(const json_t *row_schema, const char *column,
	    long *scale);

/*
 * The same for a column of a change event's after image (or its before,
 * when after's schema is not there), given the envelope's schema block
 * (bytes).  The block is parsed only when it names the Decimal type at
 * all: a table without one costs a search of its bytes.
 */
enum decimal_kind decimal_envelope_column(const char *schema, size_t len,
	    const char *column, long *scale);

#endif
