/* Ids held in numeric columns, as Kafka Connect writes them (see the header). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/decode_decimal.h"
#include "consumers/decode_fields.h"

/*
 * Most bytes of an unscaled value read: 128 bytes are some 309 digits,
 * longer than any id may be (FIELDS_ID_MAX), so nothing that could be an
 * id is refused for its size here.
 */
#define DECIMAL_BYTES_MAX	128

/* Room for the digits of DECIMAL_BYTES_MAX bytes, a sign and a point. */
#define DECIMAL_DIGITS_MAX	(DECIMAL_BYTES_MAX * 3 + 4)

/* Room for the text of any value and scale read, with its NUL. */
#define DECIMAL_TEXT_MAX	(DECIMAL_DIGITS_MAX + DECIMAL_SCALE_MAX + 2)

/* The value of a base64 character (RFC 4648, the standard alphabet), or -1. */
static int
decimal_base64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decodes base64 with its padding, as Java's Base64 encoder writes it,
 * into out (room bytes).  Returns the number of bytes, or -1 when text
 * is no such base64 or its bytes do not fit.
 */
static long
decimal_base64(const char *text, size_t len, unsigned char *out, size_t room)
{
	size_t		i, k, pad = 0, n = 0;
	uint32_t	group = 0;
	int		d;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (text[len - 1] == '=')
		pad = text[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > room)
		return -1;
	for (i = 0; i < len; i += 4) {
		group = 0;
		for (k = 0; k < 4; k++) {
			if (i + k >= len - pad)
				d = 0;
			else if ((d = decimal_base64_digit(
			    (unsigned char)text[i + k])) == -1)
				return -1;
			group = group << 6 | (uint32_t)d;
		}
		for (k = 0; k < 3 && n < len / 4 * 3 - pad; k++)
			out[n++] = (unsigned char)(group >> (16 - 8 * k));
	}
	/* The bits a short last group leaves must be zero. */
	if ((pad == 1 && (group & 0xff) != 0) ||
	    (pad == 2 && (group & 0xffff) != 0))
		return -1;
	return (long)n;
}

/*
 * Writes the unscaled value (big-endian two's complement, n bytes, which
 * it overwrites) with the point scale digits from the right, as
 * BigDecimal.toPlainString() does, into out, which has room for
 * DECIMAL_TEXT_MAX bytes.
 */
static void
decimal_text(unsigned char *bytes, size_t n, long scale, char *out)
{
	char		digits[DECIMAL_DIGITS_MAX + DECIMAL_SCALE_MAX];
	size_t		count = 0, i, first = 0, used = 0;
	unsigned	rest, carry;
	bool		negative = n > 0 && (bytes[0] & 0x80) != 0, zero;
	long		k;

	/* The magnitude: a negative value negated (invert, add one). */
	if (negative) {
		carry = 1;
		for (i = n; i-- > 0;) {
			rest = (unsigned)(uint8_t)~bytes[i] + carry;
			bytes[i] = (unsigned char)rest;
			carry = rest >> 8;
		}
	}
	/* Its decimal digits, least significant first: divide by ten. */
	do {
		while (first < n && bytes[first] == 0)
			first++;
		rest = 0;
		for (i = first; i < n; i++) {
			rest = rest << 8 | bytes[i];
			bytes[i] = (unsigned char)(rest / 10);
			rest %= 10;
		}
		digits[count++] = (char)('0' + rest);
		zero = true;
		for (i = first; i < n; i++)
			if (bytes[i] != 0)
				zero = false;
	} while (!zero);
	/* Zeros up to the point: 7 at scale 3 is 0.007. */
	while (scale > 0 && count <= (size_t)scale)
		digits[count++] = '0';
	if (negative)
		out[used++] = '-';
	for (k = (long)count - 1; k >= 0; k--) {
		out[used++] = digits[k];
		if (scale > 0 && k == scale)
			out[used++] = '.';
	}
	/* A negative scale multiplies: 7 at scale -2 is 700, 0 stays 0. */
	for (k = scale; k < 0 && !(count == 1 && digits[0] == '0'); k++)
		out[used++] = '0';
	out[used] = '\0';
}

int
decimal_id(const char *field, const char *text, size_t len, long scale,
    char **out, char *err, size_t errlen)
{
	unsigned char	bytes[DECIMAL_BYTES_MAX];
	char		decimal[DECIMAL_TEXT_MAX];
	char		quoted[FIELDS_QUOTE_SIZE];
	long		n;

	*out = NULL;
	if (scale > DECIMAL_SCALE_MAX || scale < -DECIMAL_SCALE_MAX)
		return fields_error(err, errlen, "%s is a decimal of scale %ld; "
		    "an id's scale lies between -%d and %d", field, scale,
		    DECIMAL_SCALE_MAX, DECIMAL_SCALE_MAX);
	if ((n = decimal_base64(text, len, bytes, sizeof(bytes))) <= 0) {
		fields_quote(text, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s is a numeric column sent "
		    "as a Kafka Connect decimal, whose value must be the base64 "
		    "of at most %d bytes, not %s", field, DECIMAL_BYTES_MAX,
		    quoted);
	}
	decimal_text(bytes, (size_t)n, scale, decimal);
	return fields_id_bytes(field, decimal, strlen(decimal), out, err,
	    errlen);
}

int
decimal_kind_id(const char *field, enum decimal_kind kind, long scale,
    const char *block, const char *text, size_t len, char **out, char *err,
    size_t errlen)
{
	*out = NULL;
	if (kind == DECIMAL_SCALED)
		return decimal_id(field, text, len, scale, out, err, errlen);
	return fields_error(err, errlen, "%s is a numeric column sent as a "
	    "Kafka Connect decimal, but %s gives no scale to read it with "
	    "(parameters.scale)", field, block);
}

bool
decimal_is_variable(const json_t *value)
{
	return json_is_object(value) && json_object_size(value) == 2 &&
	    json_is_integer(json_object_get(value, "scale")) &&
	    json_is_string(json_object_get(value, "value"));
}

int
decimal_variable_id(const char *field, const json_t *value, char **out,
    char *err, size_t errlen)
{
	const json_t	*digits = json_object_get(value, "value");
	json_int_t	 scale = json_integer_value(json_object_get(value,
	    "scale"));

	*out = NULL;
	if (scale > DECIMAL_SCALE_MAX || scale < -DECIMAL_SCALE_MAX)
		return fields_error(err, errlen, "%s is a decimal of scale %lld; "
		    "an id's scale lies between -%d and %d", field,
		    (long long)scale, DECIMAL_SCALE_MAX, DECIMAL_SCALE_MAX);
	return decimal_id(field, json_string_value(digits),
	    json_string_length(digits), (long)scale, out, err, errlen);
}

enum decimal_kind
decimal_column(const json_t *row_schema, const char *column, long *scale)
{
	const json_t	*fields, *field, *parameters, *text;
	const char	*digits;
	char		*end;
	size_t		 i;
	long		 value;

	fields = json_object_get(row_schema, "fields");
	for (i = 0; i < json_array_size(fields); i++) {
		field = json_array_get(fields, i);
		if (!json_is_string(json_object_get(field, "field")) ||
		    strcmp(json_string_value(json_object_get(field, "field")),
		    column) != 0)
			continue;
		if (!json_is_string(json_object_get(field, "name")) ||
		    strcmp(json_string_value(json_object_get(field, "name")),
		    DECIMAL_CONNECT) != 0)
			return DECIMAL_NONE;
		/* Connect writes the scale as a string: "scale": "0". */
		parameters = json_object_get(field, "parameters");
		text = json_object_get(parameters, "scale");
		if (!json_is_string(text))
			return DECIMAL_BAD_SCALE;
		digits = json_string_value(text);
		errno = 0;
		value = strtol(digits, &end, 10);
		if (*digits == '\0' || *end != '\0' || errno != 0 ||
		    value > DECIMAL_SCALE_MAX || value < -DECIMAL_SCALE_MAX)
			return DECIMAL_BAD_SCALE;
		*scale = value;
		return DECIMAL_SCALED;
	}
	return DECIMAL_NONE;
}

enum decimal_kind
decimal_envelope_column(const char *schema, size_t len, const char *column,
    long *scale)
{
	const char		*images[] = { "after", "before" };
	const json_t		*fields, *field, *name;
	json_t			*parsed;
	enum decimal_kind	 kind = DECIMAL_NONE;
	size_t			 i, k;

	if (column == NULL || *column == '\0' || memmem(schema, len,
	    DECIMAL_CONNECT, sizeof(DECIMAL_CONNECT) - 1) == NULL)
		return DECIMAL_NONE;
	if ((parsed = json_loadb(schema, len, 0, NULL)) == NULL)
		return DECIMAL_NONE;
	fields = json_object_get(parsed, "fields");
	for (k = 0; k < 2 && kind == DECIMAL_NONE; k++) {
		for (i = 0; i < json_array_size(fields); i++) {
			field = json_array_get(fields, i);
			name = json_object_get(field, "field");
			if (json_is_string(name) && strcmp(json_string_value(
			    name), images[k]) == 0) {
				kind = decimal_column(field, column, scale);
				break;
			}
		}
	}
	json_decref(parsed);
	return kind;
}
