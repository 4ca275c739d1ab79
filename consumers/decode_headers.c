/* Kafka headers as JSON for the dead letters: every byte kept, in order. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consumers/decode.h"
#include "consumers/decode_fields.h"

/*
 * Writes bytes in base64 (RFC 4648, with padding) into a new string the
 * caller frees; NULL when out of memory.
 */
static char *
headers_base64(const void *bytes, size_t len)
{
	static const char	 alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char	*p = bytes;
	char			*text, *q;
	uint32_t		 group;
	size_t			 i, left;

	if ((text = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	q = text;
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
	*q = '\0';
	return text;
}

/*
 * Sets member name of obj to bytes as a JSON string when they are UTF-8
 * without NUL, else member base64_name to their base64 (a NULL value is
 * JSON null); returns 0 or -1 when out of memory.
 */
static int
headers_set(json_t *obj, const char *name, const char *base64_name,
    const void *bytes, size_t len)
{
	char	*encoded;
	int	 rc;

	if (bytes == NULL)
		return json_object_set_new(obj, name, json_null());
	if (fields_utf8_valid(bytes, len))
		return json_object_set_new(obj, name, json_stringn(bytes,
		    len));
	if ((encoded = headers_base64(bytes, len)) == NULL)
		return -1;
	rc = json_object_set_new(obj, base64_name, json_string(encoded));
	free(encoded);
	return rc;
}

/*
 * The headers of a message as JSON text that PostgreSQL's jsonb takes,
 * every byte kept, in order, repeated names included (see decode.h).
 * jsonb would merge repeated object keys, hence an array of objects;
 * it refuses \u0000 and invalid UTF-8, hence base64 for such values.
 * Returns a string the caller frees, or NULL when out of memory.
 */
char *
decode_headers_json(const struct decode_header *headers, size_t count)
{
	const struct decode_header	*h;
	json_t				*array, *obj;
	char				*text = NULL;
	size_t				 i;

	if ((array = json_array()) == NULL)
		return NULL;
	for (i = 0; i < count; i++) {
		h = &headers[i];
		if ((obj = json_object()) == NULL ||
		    json_array_append_new(array, obj) == -1 ||
		    headers_set(obj, "key", "key_base64", h->name,
		    h->name != NULL ? strlen(h->name) : 0) == -1 ||
		    headers_set(obj, "value", "base64", h->value,
		    h->value_len) == -1)
			goto done;
	}
	text = json_dumps(array, JSON_COMPACT);
done:
	json_decref(array);
	return text;
}
