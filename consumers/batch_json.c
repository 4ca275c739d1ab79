/* JSON text written as it goes, for the batch's argument: no tree. */
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "consumers/batch_json.h"
#include "consumers/decode_fields.h"

/* Sets up an empty text. */
void
batch_text_init(struct batch_text *text, size_t capacity)
{
	text->len = 0;
	text->capacity = capacity > 64 ? capacity : 64;
	if ((text->buf = malloc(text->capacity)) == NULL)
		fatal("batch: malloc");
}

/* Makes room for more bytes. */
static void
batch_text_room(struct batch_text *text, size_t more)
{
	char *grown;
	size_t capacity = text->capacity;

	if (text->len + more <= capacity)
		return;
	while (capacity < text->len + more)
		capacity *= 2;
	if ((grown = realloc(text->buf, capacity)) == NULL)
		fatal("batch: realloc");
	text->buf = grown;
	text->capacity = capacity;
}

/* Hands the text over. */
char *
batch_text_finish(struct batch_text *text)
{
	char *done;

	batch_text_room(text, 1);
	if (text->len > 0 && text->buf[text->len - 1] == ',')
		text->len--;
	text->buf[text->len] = '\0';
	done = text->buf;
	text->buf = NULL;
	return done;
}

/* Frees the text. */
void
batch_text_free(struct batch_text *text)
{
	free(text->buf);
	text->buf = NULL;
}

/*
 * Writes "name": when there is a name, after making room for it and more
 * bytes; names are the batch's own words, never escaped.
 */
static void
batch_text_name(struct batch_text *text, const char *name, size_t more)
{
	size_t len = name != NULL ? strlen(name) : 0;

	batch_text_room(text, len + 3 + more);
	if (name == NULL)
		return;
	text->buf[text->len++] = '"';
	memcpy(text->buf + text->len, name, len);
	text->len += len;
	text->buf[text->len++] = '"';
	text->buf[text->len++] = ':';
}

/* Writes bytes that need no escape, then the comma. */
static void
batch_text_put(struct batch_text *text, const char *name, const char *bytes,
    size_t len)
{
	batch_text_name(text, name, len + 1);
	memcpy(text->buf + text->len, bytes, len);
	text->len += len;
	text->buf[text->len++] = ',';
}

/* Opens an object or array. */
void
batch_text_open(struct batch_text *text, const char *name, char bracket)
{
	batch_text_name(text, name, 1);
	text->buf[text->len++] = bracket;
}

/* Closes an object or array, taking back the comma of its last item. */
void
batch_text_close(struct batch_text *text, char bracket)
{
	batch_text_room(text, 2);
	if (text->buf[text->len - 1] == ',')
		text->len--;
	text->buf[text->len++] = bracket;
	text->buf[text->len++] = ',';
}

/*
 * Writes a string escaped, then after (a comma or a colon), or nothing at
 * all when it is not valid UTF-8; returns whether it wrote it.
 */
static bool
batch_text_quote(struct batch_text *text, const char *name,
    const char *value, char after)
{
	size_t len = strlen(value);

	if (!fields_utf8_valid(value, len))
		return false;
	/* Every byte may become a six-byte escape. */
	batch_text_name(text, name, 6 * len + 3);
	text->buf[text->len++] = '"';
	text->len += fields_json_escape(value, len, text->buf + text->len);
	text->buf[text->len++] = '"';
	text->buf[text->len++] = after;
	return true;
}

/* A string member; invalid UTF-8 writes nothing. */
void
batch_text_string(struct batch_text *text, const char *name,
    const char *value)
{
	if (value == NULL)
		batch_text_null(text, name);
	else
		(void)batch_text_quote(text, name, value, ',');
}

/* A member's name that comes from outside, escaped. */
bool
batch_text_key(struct batch_text *text, const char *key)
{
	return batch_text_quote(text, NULL, key, ':');
}

/* An integer member, written without printf. */
void
batch_text_int(struct batch_text *text, const char *name, int64_t value)
{
	char digits[24], *p = digits + sizeof(digits);
	uint64_t magnitude = value < 0 ? -(uint64_t)value : (uint64_t)value;

	do {
		*--p = (char)('0' + magnitude % 10);
		magnitude /= 10;
	} while (magnitude != 0);
	if (value < 0)
		*--p = '-';
	batch_text_put(text, name, p, (size_t)(digits + sizeof(digits) - p));
}

/* A true or false member. */
void
batch_text_bool(struct batch_text *text, const char *name, bool value)
{
	if (value)
		batch_text_put(text, name, "true", 4);
	else
		batch_text_put(text, name, "false", 5);
}

/* A null member. */
void
batch_text_null(struct batch_text *text, const char *name)
{
	batch_text_put(text, name, "null", 4);
}

/* Writes text that needs no escape (an address, a prefix) as a string. */
static void
batch_text_plain(struct batch_text *text, const char *name, const char *plain)
{
	size_t len = strlen(plain);

	batch_text_name(text, name, len + 3);
	text->buf[text->len++] = '"';
	memcpy(text->buf + text->len, plain, len);
	text->len += len;
	text->buf[text->len++] = '"';
	text->buf[text->len++] = ',';
}

/* An address member, or null. */
void
batch_text_addr(struct batch_text *text, const char *name, bool present,
    const struct ip_addr *addr)
{
	char plain[ADDR_TEXT_MAX], *p = plain;
	int i;

	if (!present) {
		batch_text_null(text, name);
		return;
	}
	if (addr->family != AF_INET) {
		addr_format(addr, plain, sizeof(plain));
		batch_text_plain(text, name, plain);
		return;
	}
	/*
	 * IPv4 written here as inet_ntop() writes it ("%u.%u.%u.%u"): its
	 * printf was most of the cost of a server's record.
	 */
	for (i = 0; i < 4; i++) {
		if (i > 0)
			*p++ = '.';
		if (addr->bytes[i] >= 100)
			*p++ = (char)('0' + addr->bytes[i] / 100);
		if (addr->bytes[i] >= 10)
			*p++ = (char)('0' + addr->bytes[i] / 10 % 10);
		*p++ = (char)('0' + addr->bytes[i] % 10);
	}
	*p = '\0';
	batch_text_plain(text, name, plain);
}

/* A prefix member in text form. */
void
batch_text_prefix(struct batch_text *text, const char *name,
    const struct ip_prefix *prefix)
{
	char plain[ADDR_TEXT_MAX];

	prefix_format(prefix, plain, sizeof(plain));
	batch_text_plain(text, name, plain);
}

/* Bytes as a lowercase hex string member. */
void
batch_text_hex(struct batch_text *text, const char *name,
    const uint8_t *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	batch_text_name(text, name, 2 * len + 3);
	text->buf[text->len++] = '"';
	for (i = 0; i < len; i++) {
		text->buf[text->len++] = digits[bytes[i] >> 4];
		text->buf[text->len++] = digits[bytes[i] & 15];
	}
	text->buf[text->len++] = '"';
	text->buf[text->len++] = ',';
}

/* Appends the items another text holds. */
void
batch_text_append(struct batch_text *text, const struct batch_text *items)
{
	batch_text_room(text, items->len);
	memcpy(text->buf + text->len, items->buf, items->len);
	text->len += items->len;
}

/* A member whose value is JSON text already. */
void
batch_text_json(struct batch_text *text, const char *name, const char *json)
{
	batch_text_put(text, name, json, strlen(json));
}
