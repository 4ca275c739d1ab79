/*
 * Kafka headers: found by name, and written as JSON for the dead letters,
 * every byte kept, in order.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "consumers/decode.h"
#include "consumers/decode_fields.h"

/*
 * Writes bytes in base64 (RFC 4648, with padding) at out, which has room
 * for (len + 2) / 3 * 4 bytes; returns how many it wrote.
 */
static size_t
headers_base64(const void *bytes, size_t len, char *out)
{
	static const char	 alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char	*p = bytes;
	char			*q = out;
	uint32_t		 group;
	size_t			 i, left;

	for (i = 0; i < len; i += 3) {
		left = len - i;
		group = (uint32_t)p[i] << 16;
		if (left > 1)
			group |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			group |= p[i + 2];
		*q++ = alphabet[(group >> 18) & 0x3f];
		*q++ = alphabet[(group >> 12) & 0x3f];
		*q++ = left > 1 ? alphabet[(group >> 6) & 0x3f] : '=';
		*q++ = left > 2 ? alphabet[group & 0x3f] : '=';
	}
	return (size_t)(q - out);
}

/* The JSON text of the headers as it is written, with room to spare. */
struct headers_text {
	char	*buf;
	size_t	 len;
};

/* Appends bytes as they are. */
static void
headers_put(struct headers_text *t, const char *bytes, size_t n)
{
	memcpy(t->buf + t->len, bytes, n);
	t->len += n;
}

/* Appends valid UTF-8 without NUL as a JSON string, escaped as jansson's. */
static void
headers_put_string(struct headers_text *t, const char *bytes, size_t n)
{
	t->buf[t->len++] = '"';
	t->len += fields_json_escape(bytes, n, t->buf + t->len);
	t->buf[t->len++] = '"';
}

/*
 * Appends "name": bytes as a JSON string when they are UTF-8 without
 * NUL, else "base64_name": their base64 (a NULL value is JSON null).
 */
static void
headers_put_member(struct headers_text *t, const char *name,
    const char *base64_name, const void *bytes, size_t len)
{
	bool	text = bytes == NULL || fields_utf8_valid(bytes, len);

	t->buf[t->len++] = '"';
	headers_put(t, text ? name : base64_name,
	    strlen(text ? name : base64_name));
	headers_put(t, "\":", 2);
	if (bytes == NULL)
		headers_put(t, "null", 4);
	else if (text)
		headers_put_string(t, bytes, len);
	else {
		t->buf[t->len++] = '"';
		t->len += headers_base64(bytes, len, t->buf + t->len);
		t->buf[t->len++] = '"';
	}
}

/*
 * The headers of a message as JSON text that PostgreSQL's jsonb takes,
 * every byte kept, in order, repeated names included (see decode.h).
 * jsonb would merge repeated object keys, hence an array of objects;
 * it refuses \u0000 and invalid UTF-8, hence base64 for such values.
 * Written straight into one buffer sized for the worst case (every byte
 * a six-byte escape), no tree.  Returns a string the caller frees, or
 * NULL when out of memory.
 */
char *
decode_headers_json(const struct decode_header *headers, size_t count)
{
	const struct decode_header	*h;
	struct headers_text		 t;
	size_t				 i, room = 3;

	for (i = 0; i < count; i++)
		room += 48 + 6 * (headers[i].name != NULL ?
		    strlen(headers[i].name) : 0) + 6 * headers[i].value_len;
	if ((t.buf = malloc(room)) == NULL)
		return NULL;
	t.len = 0;
	t.buf[t.len++] = '[';
	for (i = 0; i < count; i++) {
		h = &headers[i];
		if (i > 0)
			t.buf[t.len++] = ',';
		t.buf[t.len++] = '{';
		headers_put_member(&t, "key", "key_base64", h->name,
		    h->name != NULL ? strlen(h->name) : 0);
		t.buf[t.len++] = ',';
		headers_put_member(&t, "value", "base64", h->value,
		    h->value_len);
		t.buf[t.len++] = '}';
	}
	t.buf[t.len++] = ']';
	t.buf[t.len] = '\0';
	return t.buf;
}

/*
 * The first header of a message with this name (ASCII case ignored when
 * nocase), or NULL when there is none.
 */
const struct decode_header *
decode_header_find(const struct decode_input *in, const char *name,
    bool nocase)
{
	size_t	i;

	for (i = 0; i < in->header_count; i++) {
		const char	*have = in->headers[i].name;

		if (have != NULL && (nocase ? strcasecmp(have, name) :
		    strcmp(have, name)) == 0)
			return &in->headers[i];
	}
	return NULL;
}
