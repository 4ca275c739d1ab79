/* Field validators shared by the CloudEvents and Debezium decoders. */
#include <sys/socket.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/decode_decimal.h"
#include "consumers/decode_fields.h"

/* Fills err like snprintf and returns -1, to end a failing path in one line. */
int
fields_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Puts "prefix: " in front of the message already in err. */
void
fields_error_prefix(char *err, size_t errlen, const char *prefix)
{
	char	*copy;

	if (errlen == 0 || (copy = strdup(err)) == NULL)
		return;
	snprintf(err, errlen, "%s: %s", prefix, copy);
	free(copy);
}

/*
 * Length of the valid UTF-8 sequence at p (at most len bytes), or 0 when
 * the bytes there are not one: overlong forms, surrogates and code points
 * past U+10FFFF are refused as the standard says.
 */
size_t
fields_utf8_sequence(const uint8_t *p, size_t len)
{
	size_t		need, i;
	uint32_t	cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (len < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return need;
}

/* Tells whether bytes are valid UTF-8 holding no NUL. */
bool
fields_utf8_valid(const void *bytes, size_t len)
{
	const uint8_t	*p = bytes;
	size_t		 n;

	while (len > 0) {
		if (*p == '\0' || (n = fields_utf8_sequence(p, len)) == 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/*
 * Writes bytes as the inside of a JSON string: quote and backslash after a
 * backslash, \b \f \n \r \t, the other controls as \u00XX (upper case
 * hex), every other byte as it is, which is what jansson's dump writes, so
 * that a text written here reads as the same document.
 */
size_t
fields_json_escape(const void *bytes, size_t n, char *out)
{
	static const char	 hex[] = "0123456789ABCDEF";
	static const char	 letters[32] = {
		['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
		['\t'] = 't',
	};
	const unsigned char	*p = bytes;
	char			*q = out;
	size_t			 i;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\') {
			*q++ = (char)p[i];
			continue;
		}
		*q++ = '\\';
		if (p[i] == '"' || p[i] == '\\')
			*q++ = (char)p[i];
		else if (letters[p[i]] != '\0')
			*q++ = letters[p[i]];
		else {
			memcpy(q, "u00", 3);
			q[3] = hex[p[i] >> 4];
			q[4] = hex[p[i] & 0xf];
			q += 5;
		}
	}
	return (size_t)(q - out);
}

/*
 * The code point of the valid UTF-8 sequence of n bytes at p (see
 * fields_utf8_sequence).
 */
static uint32_t
fields_utf8_code_point(const uint8_t *p, size_t n)
{
	static const uint8_t	lead_bits[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t		cp = p[0] & lead_bits[n];
	size_t			i;

	for (i = 1; i < n; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

/* Tells whether a code point is a control character: C0, DEL or C1. */
static bool
fields_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Tells whether a code point is Unicode white space (White_Space=yes). */
static bool
fields_is_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 ||
	    cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	    cp == 0x3000;
}

/*
 * Refuses a control character (C0, DEL, C1) in valid UTF-8 text; when
 * multiline, tab, newline and carriage return are allowed.
 */
static int
fields_check_controls(const char *field, const char *text, size_t len,
    bool multiline, char *err, size_t errlen)
{
	const uint8_t	*p = (const uint8_t *)text;
	char		 quoted[FIELDS_QUOTE_SIZE];
	uint32_t	 cp;
	size_t		 i, n;

	for (i = 0; i < len; i += n) {
		n = fields_utf8_sequence(p + i, len - i);
		cp = fields_utf8_code_point(p + i, n);
		if (!fields_is_control(cp) || (multiline && (cp == '\t' ||
		    cp == '\n' || cp == '\r')))
			continue;
		fields_quote(text, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s holds a control "
		    "character (U+%04X)%s", field, quoted, (unsigned)cp,
		    multiline ? "; only tab, newline and carriage return "
		    "are allowed" : "");
	}
	return 0;
}

/*
 * Copies bytes into buf with control characters and invalid UTF-8 written
 * as \xNN (and, when quoting, '"' and '\' escaped), stopping after
 * max_chars characters or when buf is full; returns how much was written.
 */
static size_t
fields_escape(const uint8_t *p, size_t len, char *buf, size_t buflen,
    size_t max_chars, bool quoting)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			used = 0, chars = 0, n;

	/* Room is kept for "...", a closing quote and the NUL. */
	while (len > 0) {
		if (chars == max_chars || used + 4 + 5 > buflen) {
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		n = fields_utf8_sequence(p, len);
		if (n == 1 && quoting && (*p == '"' || *p == '\\')) {
			buf[used++] = '\\';
			buf[used++] = (char)*p;
		} else if (n == 0 || *p < 0x20 || *p == 0x7f ||
		    (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
			/* Invalid bytes and C0/C1 control characters. */
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[*p >> 4];
			buf[used++] = hex[*p & 0xf];
			n = 1;
		} else {
			memcpy(buf + used, p, n);
			used += n;
		}
		p += n;
		len -= n;
		chars++;
	}
	buf[used] = '\0';
	return used;
}

/*
 * Writes bytes as a double-quoted string for an error message: control
 * characters, quotes and invalid UTF-8 escaped, long text cut short.
 */
void
fields_quote(const void *bytes, size_t len, char *buf, size_t buflen)
{
	size_t	used;

	if (buflen < 16) {
		if (buflen > 0)
			buf[0] = '\0';
		return;
	}
	buf[0] = '"';
	used = 1 + fields_escape(bytes, len, buf + 1, buflen - 2,
	    FIELDS_QUOTE_MAX, true);
	buf[used++] = '"';
	buf[used] = '\0';
}

/* Escapes control characters and invalid UTF-8 in err, in place. */
void
fields_sanitize(char *err, size_t errlen)
{
	char	*copy;
	size_t	 len;

	if (errlen == 0)
		return;
	len = strlen(err);
	if (fields_utf8_valid(err, len)) {
		size_t	i;

		/* C0, DEL, and C1 (U+0080-U+009F: 0xc2 0x80-0x9f). */
		for (i = 0; i < len; i++) {
			if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f ||
			    ((unsigned char)err[i] == 0xc2 && i + 1 < len &&
			    (unsigned char)err[i + 1] >= 0x80 &&
			    (unsigned char)err[i + 1] <= 0x9f))
				break;
		}
		if (i == len)
			return;
	}
	if ((copy = strdup(err)) == NULL) {
		snprintf(err, errlen, "unprintable error message");
		return;
	}
	if (errlen < 16)
		err[0] = '\0';
	else
		fields_escape((const uint8_t *)copy, len, err, errlen, SIZE_MAX,
		    false);
	free(copy);
}

/* Names a kind of JSON value for an error: "a string", "null", ... */
const char *
fields_kind_name(enum scan_kind kind)
{
	switch (kind) {
	case SCAN_OBJECT:
		return "an object";
	case SCAN_ARRAY:
		return "an array";
	case SCAN_STRING:
		return "a string";
	case SCAN_INTEGER:
		return "an integer";
	case SCAN_REAL:
		return "a number with a fraction";
	case SCAN_NUMBER_BIG:
		return "a number too big for 64 bits or a double";
	case SCAN_TRUE:
	case SCAN_FALSE:
		return "a boolean";
	case SCAN_NULL:
		return "null";
	case SCAN_ABSENT:
		return "missing";
	}
	return "an unknown JSON value";
}

/*
 * Reads a value of a jansson tree (NULL: absent) as the validators take
 * it; strings and containers stay the tree's.
 */
void
fields_from_json(const json_t *value, struct fields_value *out)
{
	static const enum scan_kind	kinds[] = {
		[JSON_OBJECT] = SCAN_OBJECT, [JSON_ARRAY] = SCAN_ARRAY,
		[JSON_STRING] = SCAN_STRING, [JSON_INTEGER] = SCAN_INTEGER,
		[JSON_REAL] = SCAN_REAL, [JSON_TRUE] = SCAN_TRUE,
		[JSON_FALSE] = SCAN_FALSE, [JSON_NULL] = SCAN_NULL,
	};

	memset(out, 0, sizeof(*out));
	if (value == NULL)
		return;
	out->kind = kinds[json_typeof(value)];
	if (json_is_string(value)) {
		out->text = json_string_value(value);
		out->len = json_string_length(value);
	} else if (json_is_integer(value))
		out->integer = json_integer_value(value);
	else if (json_is_array(value) || json_is_object(value))
		out->json = value;
}

/* Names the kind of a JSON value for an error: "a string", "null", ... */
const char *
fields_json_kind(const json_t *value)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_kind_name(v.kind);
}

/* Refuses any member of obj that allowed (NULL-terminated) does not name. */
int
fields_strict(const char *what, const json_t *obj, const char *const *allowed,
    char *err, size_t errlen)
{
	const char	*name;
	json_t		*member;
	size_t		 i, used;
	char		 quoted[FIELDS_QUOTE_SIZE], list[512];

	/* json_object_foreach wants a non-const object; nothing is changed. */
	json_object_foreach((json_t *)obj, name, member) {
		for (i = 0; allowed[i] != NULL; i++) {
			if (strcmp(name, allowed[i]) == 0)
				break;
		}
		if (allowed[i] != NULL)
			continue;
		list[0] = '\0';
		for (i = 0, used = 0; allowed[i] != NULL && used < sizeof(list);
		    i++)
			used += (size_t)snprintf(list + used,
			    sizeof(list) - used, "%s%s", i > 0 ? ", " : "",
			    allowed[i]);
		fields_quote(name, strlen(name), quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s has an unknown field %s "
		    "(known fields: %s)", what, quoted, list);
	}
	return 0;
}

/*
 * Copies bytes (a Kafka key or header value) into a new string after
 * checking they are UTF-8 without control characters, not empty and at
 * most max bytes; the caller owns *out.
 */
int
fields_text_bytes(const char *field, const void *bytes, size_t len,
    size_t max, char **out, char *err, size_t errlen)
{
	char	quoted[FIELDS_QUOTE_SIZE];

	*out = NULL;
	if (len == 0)
		return fields_error(err, errlen, "%s is empty", field);
	if (!fields_utf8_valid(bytes, len)) {
		fields_quote(bytes, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s is not valid UTF-8 "
		    "text (or holds a NUL byte)", field, quoted);
	}
	if (len > max)
		return fields_error(err, errlen, "%s is %zu bytes, more than "
		    "the limit of %zu", field, len, max);
	if (fields_check_controls(field, bytes, len, false, err, errlen) == -1)
		return -1;
	if ((*out = malloc(len + 1)) == NULL)
		return fields_error(err, errlen, "out of memory");
	memcpy(*out, bytes, len);
	(*out)[len] = '\0';
	return 0;
}

/*
 * A string of at most max bytes without control characters (but tab,
 * newline and carriage return when multiline); absent or null gives NULL
 * unless required.  The caller owns *out.
 */
static int
fields_text(const char *field, const struct fields_value *value, size_t max,
    bool required, bool multiline, char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL) {
		if (required)
			return fields_error(err, errlen, "%s is required%s",
			    field, value->kind == SCAN_NULL ?
			    " and may not be null" : "");
		return 0;
	}
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be a string, not %s",
		    field, fields_kind_name(value->kind));
	/* The parser has checked the UTF-8 and refused NUL. */
	if (value->len > max)
		return fields_error(err, errlen, "%s is %zu bytes, more than "
		    "the limit of %zu", field, value->len, max);
	if (fields_check_controls(field, value->text, value->len,
	    multiline, err, errlen) == -1)
		return -1;
	if ((*out = malloc(value->len + 1)) == NULL)
		return fields_error(err, errlen, "out of memory");
	memcpy(*out, value->text, value->len + 1);
	return 0;
}

/*
 * A string of at most max bytes, without control characters; absent or
 * null gives NULL unless required.  The caller owns *out.
 */
int
fields_string_value(const char *field, const struct fields_value *value,
    size_t max, bool required, char **out, char *err, size_t errlen)
{
	return fields_text(field, value, max, required, false, out, err,
	    errlen);
}

/* The same as fields_string_value(), of a jansson value. */
int
fields_string(const char *field, const json_t *value, size_t max,
    bool required, char **out, char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_text(field, &v, max, required, false, out, err,
	    errlen);
}

/*
 * Free text of at most max bytes, such as a description: lines may be
 * broken and tabs used, but no other control character; absent or null
 * gives NULL.  The caller owns *out.
 */
int
fields_lines(const char *field, const json_t *value, size_t max, char **out,
    char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_text(field, &v, max, false, true, out, err, errlen);
}

/* Tells whether UTF-8 text of len > 0 bytes begins or ends with white space. */
static bool
fields_space_at_ends(const void *bytes, size_t len)
{
	const uint8_t	*p = bytes;
	size_t		 last;

	/* The last character begins at the last byte that is not 10xxxxxx. */
	for (last = len - 1; last > 0 && (p[last] & 0xc0) == 0x80; last--)
		continue;
	return fields_is_space(fields_utf8_code_point(p,
	    fields_utf8_sequence(p, len))) ||
	    fields_is_space(fields_utf8_code_point(p + last, len - last));
}

/*
 * An id given as bytes (a Kafka key, a subject, a JSON string): UTF-8
 * text of 1 to FIELDS_ID_MAX bytes, without control characters and not
 * beginning or ending with white space.  The caller owns *out.
 */
int
fields_id_bytes(const char *field, const void *bytes, size_t len,
    char **out, char *err, size_t errlen)
{
	char		 quoted[FIELDS_QUOTE_SIZE];

	if (fields_text_bytes(field, bytes, len, FIELDS_ID_MAX, out, err,
	    errlen) == -1)
		return -1;
	if (fields_space_at_ends(bytes, len)) {
		free(*out);
		*out = NULL;
		fields_quote(bytes, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s begins or ends with "
		    "white space", field, quoted);
	}
	return 0;
}

/*
 * An entity id: a string (see fields_id_bytes), or an integer, which
 * becomes its decimal text.  Required.  The caller owns *out.
 */
int
fields_id_value(const char *field, const struct fields_value *value,
    char **out, char *err, size_t errlen)
{
	char	text[32];

	*out = NULL;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return fields_error(err, errlen, "%s is required%s", field,
		    value->kind == SCAN_NULL ? " and may not be null" : "");
	if (value->kind == SCAN_INTEGER) {
		snprintf(text, sizeof(text), "%" PRId64, value->integer);
		if ((*out = strdup(text)) == NULL)
			return fields_error(err, errlen, "out of memory");
		return 0;
	}
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be a string or an "
		    "integer, not %s", field, fields_kind_name(value->kind));
	return fields_id_bytes(field, value->text, value->len, out, err,
	    errlen);
}

/* The same as fields_id_value(), of a jansson value. */
int
fields_id(const char *field, const json_t *value, char **out, char *err,
    size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_id_value(field, &v, out, err, errlen);
}

/*
 * Checks a vrf name (valid UTF-8 without control characters): at most
 * FIELDS_VRF_MAX bytes, no '/' and no ',', no white space at either end,
 * and not "-" or "*".
 */
int
fields_vrf_check(const char *field, const char *vrf, char *err, size_t errlen)
{
	char		 quoted[FIELDS_QUOTE_SIZE];
	size_t		 len = strlen(vrf);
	const char	*bad;

	if (len > FIELDS_VRF_MAX)
		return fields_error(err, errlen, "%s is %zu bytes, more than "
		    "the limit of %d", field, len, FIELDS_VRF_MAX);
	/*
	 * A mark's id is "vrf/address": the first '/' must end the vrf.
	 * sweeper.vrfs is a list separated by ','.
	 */
	if ((bad = strpbrk(vrf, "/,")) != NULL) {
		fields_quote(vrf, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s may not contain '%c'",
		    field, quoted, *bad);
	}
	/*
	 * "-" names the default vrf in the operator API's paths, ipamctl and
	 * sweeper.vrfs, and "*" every vrf in the page's filter: a vrf of
	 * that name could not be told from them.
	 */
	/*
	 * sweeper.vrfs trims its entries, and " blue" would read as "blue"
	 * to an operator: a vrf is written plainly, as an id is.
	 */
	if (len > 0 && fields_space_at_ends(vrf, len)) {
		fields_quote(vrf, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s begins or ends with "
		    "white space", field, quoted);
	}
	if (strcmp(vrf, "-") == 0 || strcmp(vrf, "*") == 0)
		return fields_error(err, errlen, "%s \"%s\" is reserved: %s",
		    field, vrf, *vrf == '-' ? "the operator API and "
		    "sweeper.vrfs use it for the default vrf" :
		    "the operator page uses it for every vrf");
	return 0;
}

/* A vrf name: a string, "" when absent or null.  The caller owns *out. */
int
fields_vrf_value(const char *field, const struct fields_value *value,
    char **out, char *err, size_t errlen)
{
	if (fields_text(field, value, FIELDS_VRF_MAX, false, false, out, err,
	    errlen) == -1)
		return -1;
	if (*out == NULL && (*out = strdup("")) == NULL)
		return fields_error(err, errlen, "out of memory");
	if (fields_vrf_check(field, *out, err, errlen) == -1) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The same as fields_vrf_value(), of a jansson value. */
int
fields_vrf(const char *field, const json_t *value, char **out, char *err,
    size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_vrf_value(field, &v, out, err, errlen);
}

/* Tells whether text holds count hex digits at the given offset. */
static bool
fields_hex_run(const char *text, size_t offset, size_t count)
{
	size_t	i;

	for (i = 0; i < count; i++) {
		if (!isxdigit((unsigned char)text[offset + i]))
			return false;
	}
	return true;
}

/*
 * Normalizes aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff into
 * lowercase colon form; returns 0, or -1 when text is none of those.
 */
int
fields_mac_normalize(const char *text, char out[FIELDS_MAC_TEXT])
{
	char	digits[12];
	size_t	len = strlen(text), i, n = 0;

	if (len == 17 && (text[2] == ':' || text[2] == '-')) {
		/* Six pairs, one separator throughout (no mixing). */
		for (i = 0; i < 6; i++) {
			if (!fields_hex_run(text, i * 3, 2) ||
			    (i < 5 && text[i * 3 + 2] != text[2]))
				return -1;
			digits[n++] = text[i * 3];
			digits[n++] = text[i * 3 + 1];
		}
	} else if (len == 14 && text[4] == '.' && text[9] == '.') {
		/* Cisco's three dotted groups of four. */
		for (i = 0; i < 3; i++) {
			if (!fields_hex_run(text, i * 5, 4))
				return -1;
			memcpy(digits + n, text + i * 5, 4);
			n += 4;
		}
	} else
		return -1;
	for (i = 0; i < 6; i++) {
		out[i * 3] = (char)tolower((unsigned char)digits[i * 2]);
		out[i * 3 + 1] =
		    (char)tolower((unsigned char)digits[i * 2 + 1]);
		out[i * 3 + 2] = i < 5 ? ':' : '\0';
	}
	return 0;
}

/*
 * A MAC address as a string; absent, null or "" gives NULL.  The caller
 * owns *out.
 */
int
fields_mac_value(const char *field, const struct fields_value *value,
    char **out, char *err, size_t errlen)
{
	char		 mac[FIELDS_MAC_TEXT], quoted[FIELDS_QUOTE_SIZE];
	const char	*text;

	*out = NULL;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return 0;
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be a string, not %s",
		    field, fields_kind_name(value->kind));
	text = value->text;
	if (*text == '\0')
		return 0;
	if (fields_check_controls(field, text, value->len, false, err,
	    errlen) == -1)
		return -1;
	if (fields_mac_normalize(text, mac) == -1) {
		fields_quote(text, value->len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s is not a MAC address "
		    "(write aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or "
		    "aabb.ccdd.eeff)", field, quoted);
	}
	if ((*out = strdup(mac)) == NULL)
		return fields_error(err, errlen, "out of memory");
	return 0;
}

/* The same as fields_mac_value(), of a jansson value. */
int
fields_mac(const char *field, const json_t *value, char **out, char *err,
    size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_mac_value(field, &v, out, err, errlen);
}

/*
 * An address as a string, read by parse; absent, null or "" sets
 * *present to false, which is an error when required.
 */
static int
fields_address_with(const char *field, const struct fields_value *value,
    bool required, int (*parse)(const char *, struct ip_addr *, char *,
    size_t), struct ip_addr *out, bool *present, char *err, size_t errlen)
{
	char	reason[FIELDS_QUOTE_SIZE + 64];

	memset(out, 0, sizeof(*out));
	*present = false;
	if (value->kind != SCAN_ABSENT && value->kind != SCAN_NULL &&
	    value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be a string, not %s",
		    field, fields_kind_name(value->kind));
	if (value->kind != SCAN_STRING || value->len == 0) {
		if (required)
			return fields_error(err, errlen, "%s is required",
			    field);
		return 0;
	}
	if (parse(value->text, out, reason, sizeof(reason)) == -1)
		return fields_error(err, errlen, "%s: %s", field, reason);
	*present = true;
	return 0;
}

/*
 * An IPv4 or IPv6 address as a string; absent, null or "" sets *present
 * to false, which is an error when required.
 */
int
fields_address(const char *field, const json_t *value, bool required,
    struct ip_addr *out, bool *present, char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_address_with(field, &v, required, addr_parse, out,
	    present, err, errlen);
}

/*
 * An address as PostgreSQL's inet text (an inet column sent by
 * Debezium): with a /length, the address is its host part.  Absent,
 * null or "" sets *present to false, which is an error when required.
 */
int
fields_inet_value(const char *field, const struct fields_value *value,
    bool required, struct ip_addr *out, bool *present, char *err,
    size_t errlen)
{
	return fields_address_with(field, value, required, addr_parse_inet,
	    out, present, err, errlen);
}

/* A prefix as a string ("192.168.1.0/24"); required. */
int
fields_prefix_value(const char *field, const struct fields_value *value,
    struct ip_prefix *out, char *err, size_t errlen)
{
	char	reason[FIELDS_QUOTE_SIZE + 128];

	memset(out, 0, sizeof(*out));
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return fields_error(err, errlen, "%s is required", field);
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be a string, not %s",
		    field, fields_kind_name(value->kind));
	if (prefix_parse(value->text, out, reason, sizeof(reason)) == -1)
		return fields_error(err, errlen, "%s: %s", field, reason);
	return 0;
}

/* The same as fields_prefix_value(), of a jansson value. */
int
fields_prefix(const char *field, const json_t *value, struct ip_prefix *out,
    char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_prefix_value(field, &v, out, err, errlen);
}

/* A JSON boolean; absent or null gives fallback. */
int
fields_bool_value(const char *field, const struct fields_value *value,
    bool fallback, bool *out, char *err, size_t errlen)
{
	*out = fallback;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return 0;
	if (value->kind != SCAN_TRUE && value->kind != SCAN_FALSE)
		return fields_error(err, errlen, "%s must be true or false, "
		    "not %s", field, fields_kind_name(value->kind));
	*out = value->kind == SCAN_TRUE;
	return 0;
}

/* The same as fields_bool_value(), of a jansson value. */
int
fields_bool(const char *field, const json_t *value, bool fallback, bool *out,
    char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_bool_value(field, &v, fallback, out, err, errlen);
}

/* A version given as decimal digits in bytes (a header value). */
int
fields_version_bytes(const char *field, const void *bytes, size_t len,
    int64_t *out, char *err, size_t errlen)
{
	const char	*p = bytes;
	char		 quoted[FIELDS_QUOTE_SIZE];
	int64_t		 value = 0;
	size_t		 i;

	*out = 0;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9' ||
		    value > (INT64_MAX - (p[i] - '0')) / 10)
			break;
		value = value * 10 + (p[i] - '0');
	}
	if (len == 0 || i < len) {
		fields_quote(bytes, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s is not a whole number "
		    "from 0 to %" PRId64, field, quoted, INT64_MAX);
	}
	*out = value;
	return 0;
}

/*
 * A version: an integer >= 0, or a string of decimal digits.  Absent or
 * null sets *present to false.
 */
int
fields_version_value(const char *field, const struct fields_value *value,
    bool *present, int64_t *out, char *err, size_t errlen)
{
	*present = false;
	*out = 0;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return 0;
	if (value->kind == SCAN_STRING) {
		if (fields_version_bytes(field, value->text, value->len, out,
		    err, errlen) == -1)
			return -1;
	} else if (value->kind == SCAN_INTEGER) {
		if (value->integer < 0)
			return fields_error(err, errlen, "%s is negative (%"
			    PRId64 ")", field, value->integer);
		*out = value->integer;
	} else
		return fields_error(err, errlen, "%s must be an integer, not "
		    "%s", field, fields_kind_name(value->kind));
	*present = true;
	return 0;
}

/* The same as fields_version_value(), of a jansson value. */
int
fields_version(const char *field, const json_t *value, bool *present,
    int64_t *out, char *err, size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_version_value(field, &v, present, out, err, errlen);
}

/* Strips ASCII spaces and tabs from both ends of text, in place. */
static char *
fields_trim(char *text)
{
	size_t	len;

	while (*text == ' ' || *text == '\t')
		text++;
	len = strlen(text);
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		text[--len] = '\0';
	return text;
}

/*
 * Parses one pool entry ("a-b", "a" or "a/n") into a range and checks it
 * lies inside cidr; where names it in errors ("data.static_ip_pools[2]").
 */
static int
fields_pool_entry(const char *where, const char *entry,
    const struct ip_prefix *cidr, struct pool_range *range, char *err,
    size_t errlen)
{
	char			 quoted[FIELDS_QUOTE_SIZE];
	char			 subnet[ADDR_TEXT_MAX];
	char			 reason[FIELDS_QUOTE_SIZE + 128];
	char			 first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX];
	char			*copy, *text, *dash;
	struct ip_prefix	 block;
	int			 rc = -1;

	fields_quote(entry, strlen(entry), quoted, sizeof(quoted));
	prefix_format(cidr, subnet, sizeof(subnet));
	if ((copy = strdup(entry)) == NULL)
		return fields_error(err, errlen, "out of memory");
	text = fields_trim(copy);
	if (*text == '\0') {
		fields_error(err, errlen, "%s is empty", where);
		goto fail;
	}
	if (strchr(text, '/') != NULL) {
		if (prefix_parse(text, &block, reason, sizeof(reason)) == -1) {
			fields_error(err, errlen, "%s: %s", where, reason);
			goto fail;
		}
		prefix_first(&block, &range->first);
		prefix_last(&block, &range->last);
	} else if ((dash = strchr(text, '-')) != NULL) {
		*dash = '\0';
		if (addr_parse(fields_trim(text), &range->first, reason,
		    sizeof(reason)) == -1 || addr_parse(fields_trim(dash + 1),
		    &range->last, reason, sizeof(reason)) == -1) {
			fields_error(err, errlen, "%s %s is not a range of two "
			    "addresses: %s", where, quoted, reason);
			goto fail;
		}
		if (range->first.family != range->last.family) {
			fields_error(err, errlen, "%s %s mixes IPv4 and IPv6",
			    where, quoted);
			goto fail;
		}
		if (addr_compare(&range->first, &range->last) > 0) {
			addr_format(&range->first, first, sizeof(first));
			addr_format(&range->last, last, sizeof(last));
			fields_error(err, errlen, "%s %s is reversed: %s comes "
			    "after %s", where, quoted, first, last);
			goto fail;
		}
	} else {
		if (addr_parse(text, &range->first, reason,
		    sizeof(reason)) == -1) {
			fields_error(err, errlen, "%s: %s", where, reason);
			goto fail;
		}
		range->last = range->first;
	}
	if (range->first.family != cidr->addr.family) {
		fields_error(err, errlen, "%s %s is %s but the subnet %s is %s",
		    where, quoted, range->first.family == AF_INET ? "IPv4" :
		    "IPv6", subnet, cidr->addr.family == AF_INET ? "IPv4" :
		    "IPv6");
		goto fail;
	}
	/* A range is contiguous: both ends inside means all of it is. */
	if (!prefix_contains(cidr, &range->first) ||
	    !prefix_contains(cidr, &range->last)) {
		fields_error(err, errlen, "%s %s is outside the subnet %s",
		    where, quoted, subnet);
		goto fail;
	}
	rc = 0;
fail:
	free(copy);
	return rc;
}

/* Orders pool ranges by first address, then by last. */
static int
fields_range_compare(const void *a, const void *b)
{
	const struct pool_range	*ra = a, *rb = b;
	int			 cmp;

	if ((cmp = addr_compare(&ra->first, &rb->first)) != 0)
		return cmp;
	return addr_compare(&ra->last, &rb->last);
}

/*
 * Keeps pool ranges of an IPv4 subnet of /30 or shorter off its network
 * and broadcast addresses, dropping ranges left empty, and says in *edges
 * which of the two they held (CHANGE_POOL_*); returns the count of ranges
 * kept.
 */
static size_t
fields_pools_clamp(const struct ip_prefix *cidr, struct pool_range *ranges,
    size_t count, unsigned *edges)
{
	struct ip_addr	low, high;
	size_t		i, kept = 0;

	*edges = 0;
	if (cidr->addr.family != AF_INET || cidr->length > 30)
		return count;
	prefix_first(cidr, &low);
	prefix_last(cidr, &high);
	/* Every range lies inside the cidr: it holds an end if it starts
	 * or stops there. */
	for (i = 0; i < count; i++) {
		if (addr_compare(&ranges[i].first, &low) == 0)
			*edges |= CHANGE_POOL_NETWORK;
		if (addr_compare(&ranges[i].last, &high) == 0)
			*edges |= CHANGE_POOL_BROADCAST;
	}
	addr_increment(&low);
	addr_decrement(&high);
	for (i = 0; i < count; i++) {
		struct pool_range	r = ranges[i];

		if (addr_compare(&r.first, &low) < 0)
			r.first = low;
		if (addr_compare(&r.last, &high) > 0)
			r.last = high;
		if (addr_compare(&r.first, &r.last) <= 0)
			ranges[kept++] = r;
	}
	return kept;
}

/* Sorts ranges and merges those that overlap or touch; returns the count. */
static size_t
fields_pools_merge(struct pool_range *ranges, size_t count)
{
	struct ip_addr	next;
	size_t		i, kept = 0;

	if (count == 0)
		return 0;
	qsort(ranges, count, sizeof(*ranges), fields_range_compare);
	for (i = 1; i < count; i++) {
		struct pool_range	*cur = &ranges[kept];

		/* Touching counts: next is one past the current range. */
		next = cur->last;
		if (!addr_increment(&next) ||
		    addr_compare(&ranges[i].first, &next) <= 0) {
			if (addr_compare(&ranges[i].last, &cur->last) > 0)
				cur->last = ranges[i].last;
			continue;
		}
		ranges[++kept] = ranges[i];
	}
	return kept + 1;
}

/*
 * Turns the pools value into an array of entry strings: the value itself,
 * or the array a string holds.  *owned is set when the array must be
 * released; a NULL *array means no pools.
 */
static int
fields_pools_array(const char *field, const struct fields_value *value,
    json_t **array, json_t **owned, char *err, size_t errlen)
{
	json_error_t	 jerr;
	json_t		*parsed;
	const char	*text;

	*array = NULL;
	*owned = NULL;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return 0;
	if (value->kind == SCAN_ARRAY && value->json != NULL) {
		*array = (json_t *)value->json;
		return 0;
	}
	/* An array read in place becomes a tree: subnets are few. */
	if (value->kind == SCAN_ARRAY) {
		if ((*array = *owned = json_loadb(value->raw, value->raw_len,
		    0, &jerr)) == NULL)
			return fields_error(err, errlen, "%s cannot be read: %s",
			    field, jerr.text);
		return 0;
	}
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "%s must be an array of "
		    "strings (or a string holding one), not %s", field,
		    fields_kind_name(value->kind));
	/* Debezium sends json columns as text: parse what it holds. */
	text = value->text;
	text += strspn(text, " \t\r\n");
	if (*text == '\0')
		return 0;
	parsed = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if (parsed == NULL)
		return fields_error(err, errlen, "%s holds text that is not "
		    "JSON: %s (column %d); write a JSON array such as "
		    "[\"192.168.1.1-192.168.1.50\"]", field, jerr.text,
		    jerr.column);
	if (json_is_null(parsed)) {
		json_decref(parsed);
		return 0;
	}
	if (!json_is_array(parsed)) {
		fields_error(err, errlen, "%s must hold an array of strings, "
		    "not %s", field, fields_json_kind(parsed));
		json_decref(parsed);
		return -1;
	}
	*array = *owned = parsed;
	return 0;
}

/*
 * Static pools of the subnet cidr: a JSON array of "a-b", "a" or "a/n"
 * strings, or a string holding that array; absent, null, "" give none.
 * The ranges come out clamped off an IPv4 subnet's network and broadcast
 * addresses (for /30 and shorter), sorted and merged; their addresses
 * must not number more than max_addresses.  The caller owns *out.
 */
int
fields_pools_value(const char *field, const struct fields_value *value,
    const struct ip_prefix *cidr, uint64_t max_addresses,
    struct pool_range **out, size_t *count, unsigned *edges, char *err,
    size_t errlen)
{
	struct pool_range	*ranges = NULL;
	json_t			*array, *owned, *entry;
	char			 where[256];
	size_t			 i, n;
	uint64_t		 total = 0, size;

	*out = NULL;
	*count = 0;
	*edges = 0;
	if (fields_pools_array(field, value, &array, &owned, err,
	    errlen) == -1)
		return -1;
	if (array == NULL || (n = json_array_size(array)) == 0) {
		json_decref(owned);
		return 0;
	}
	if ((ranges = calloc(n, sizeof(*ranges))) == NULL) {
		fields_error(err, errlen, "out of memory");
		goto fail;
	}
	json_array_foreach(array, i, entry) {
		snprintf(where, sizeof(where), "%s[%zu]", field, i);
		if (!json_is_string(entry)) {
			fields_error(err, errlen, "%s must be a string, not %s",
			    where, fields_json_kind(entry));
			goto fail;
		}
		if (fields_pool_entry(where, json_string_value(entry), cidr,
		    &ranges[i], err, errlen) == -1)
			goto fail;
	}
	n = fields_pools_clamp(cidr, ranges, n, edges);
	n = fields_pools_merge(ranges, n);
	/* Merged ranges do not overlap: the sum counts each address once. */
	for (i = 0; i < n; i++) {
		size = addr_range_size(&ranges[i].first, &ranges[i].last);
		total = total > UINT64_MAX - size ? UINT64_MAX : total + size;
	}
	if (total > max_addresses) {
		fields_error(err, errlen, "%s hold %s%" PRIu64 " addresses, "
		    "more than the limit of %" PRIu64, field,
		    total == UINT64_MAX ? "at least " : "", total,
		    max_addresses);
		goto fail;
	}
	json_decref(owned);
	if (n == 0) {
		free(ranges);
		return 0;
	}
	*out = ranges;
	*count = n;
	return 0;
fail:
	json_decref(owned);
	free(ranges);
	*edges = 0;
	return -1;
}

/* The same as fields_pools_value(), of a jansson value. */
int
fields_pools(const char *field, const json_t *value,
    const struct ip_prefix *cidr, uint64_t max_addresses,
    struct pool_range **out, size_t *count, unsigned *edges, char *err,
    size_t errlen)
{
	struct fields_value	v;

	fields_from_json(value, &v);
	return fields_pools_value(field, &v, cidr, max_addresses, out, count,
	    edges, err, errlen);
}

/*
 * Splits a mark id, "address" or "vrf/address", into its vrf (the caller
 * owns *vrf) and address.
 */
int
fields_mark_key(const char *field, const void *bytes, size_t len, char **vrf,
    struct ip_addr *ip, char *err, size_t errlen)
{
	char	*text = NULL, *slash, *address;
	char	 quoted[FIELDS_QUOTE_SIZE], reason[FIELDS_QUOTE_SIZE + 64];

	*vrf = NULL;
	memset(ip, 0, sizeof(*ip));
	if (fields_text_bytes(field, bytes, len, FIELDS_VRF_MAX + 1 +
	    ADDR_TEXT_MAX, &text, err, errlen) == -1)
		return -1;
	fields_quote(text, strlen(text), quoted, sizeof(quoted));
	/* A vrf has no '/': the first one ends it. */
	if ((slash = strchr(text, '/')) != NULL) {
		*slash = '\0';
		address = slash + 1;
		if (*text == '\0') {
			fields_error(err, errlen, "%s %s has an empty vrf "
			    "before '/' (write the address alone for the "
			    "default vrf)", field, quoted);
			goto fail;
		}
		if (fields_vrf_check(field, text, err, errlen) == -1)
			goto fail;
	} else
		address = text;
	/* "10.0.0.0/24": the vrf's place holds an address, the rest a length. */
	if (slash != NULL && *address != '\0' &&
	    strspn(address, "0123456789") == strlen(address) &&
	    addr_parse(text, ip, reason, sizeof(reason)) == 0) {
		fields_error(err, errlen, "%s %s is a prefix, not a mark id "
		    "(\"address\" or \"vrf/address\")", field, quoted);
		goto fail;
	}
	if (addr_parse(address, ip, reason, sizeof(reason)) == -1) {
		fields_error(err, errlen, "%s %s is not a mark id (\"address\" "
		    "or \"vrf/address\"): %s", field, quoted, reason);
		goto fail;
	}
	if ((*vrf = strdup(slash != NULL ? text : "")) == NULL) {
		fields_error(err, errlen, "out of memory");
		goto fail;
	}
	free(text);
	return 0;
fail:
	memset(ip, 0, sizeof(*ip));
	free(text);
	return -1;
}

/*
 * The payload of a Kafka Connect {"schema": ..., "payload": ...} wrapper
 * (an object with exactly those two members), or value itself.
 */
json_t *
fields_unwrap(json_t *value)
{
	if (json_is_object(value) && json_object_size(value) == 2 &&
	    json_object_get(value, "schema") != NULL &&
	    json_object_get(value, "payload") != NULL)
		return json_object_get(value, "payload");
	return value;
}

/*
 * The id column of a key: a numeric column's value (a Kafka Connect
 * decimal, which the key's schema block declares, or a Debezium
 * VariableScaleDecimal) as its decimal text (decode_decimal.h), any other
 * value as fields_id() reads it.  schema is the key's schema block (NULL:
 * none).
 */
static int
fields_key_member(const char *field, const json_t *schema, const char *column,
    const json_t *member, char **out, char *err, size_t errlen)
{
	enum decimal_kind	kind = DECIMAL_NONE;
	long			scale = 0;

	if (decimal_is_variable(member))
		return decimal_variable_id(field, member, out, err, errlen);
	if (json_is_string(member) && schema != NULL)
		kind = decimal_column(schema, column, &scale);
	if (kind != DECIMAL_NONE)
		return decimal_kind_id(field, kind, scale,
		    "the key's schema block", json_string_value(member),
		    json_string_length(member), out, err, errlen);
	return fields_id(field, member, out, err, errlen);
}

/*
 * Refuses a key with members besides the id column: a primary key of
 * several columns.  Kafka partitions and compacts by the whole key, so
 * when one of the other columns changes, Debezium sends a delete and a
 * tombstone under the old key and a create under the new one, in other
 * partitions, all of one id: the tombstone could forget the entity the
 * create made.  The key must be the id alone.
 */
static int
fields_key_wider(const char *field, json_t *payload, const char *column,
    char *err, size_t errlen)
{
	const char	*name;
	json_t		*value;
	char		 others[FIELDS_QUOTE_SIZE], quoted[FIELDS_QUOTE_SIZE];
	size_t		 at = 0;

	others[0] = '\0';
	json_object_foreach(payload, name, value) {
		if (strcmp(name, column) == 0 || at >= sizeof(others) - 1)
			continue;
		fields_quote(name, strlen(name), quoted, sizeof(quoted));
		at += (size_t)snprintf(others + at, sizeof(others) - at, "%s%s",
		    at > 0 ? ", " : "", quoted);
	}
	fields_quote(column, strlen(column), quoted, sizeof(quoted));
	return fields_error(err, errlen, "%s has members besides the id "
	    "column %s (%s): the key must be the id alone, or a change of "
	    "those columns moves the row to another key; key the table by "
	    "its id (Debezium's message.key.columns)", field, quoted, others);
}

/*
 * An entity id from a Kafka key: JSON such as {"id": 5} (column names the
 * member, a schema wrapper is allowed), a JSON string or integer, or
 * else, when the key is not JSON, its bytes as they are (see
 * fields_id_bytes).  Other JSON (true, 1.5, 1e2, 1e400, null, arrays,
 * integers beyond 64 bits) is refused.  Whether the key is JSON is the
 * scan's verdict, not jansson's (which takes "7" and a NUL byte for 7, and
 * refuses numbers it cannot hold, that are JSON all the same).  The
 * caller owns *out.
 */
int
fields_key_id(const char *field, const void *key, size_t len,
    const char *column, char **out, char *err, size_t errlen)
{
	json_t		*parsed, *payload, *member;
	json_error_t	 jerr;
	struct scan_value top;
	char		 where[128], quoted[FIELDS_QUOTE_SIZE], why[JSON_ERROR_TEXT_LENGTH];
	int		 rc;

	*out = NULL;
	if (key == NULL || len == 0)
		return fields_error(err, errlen, "%s is missing", field);
	/* JSON allows white space around a value; an id is written plainly. */
	if (memchr(" \t\r\n", ((const char *)key)[0], 4) != NULL ||
	    memchr(" \t\r\n", ((const char *)key)[len - 1], 4) != NULL) {
		fields_quote(key, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s begins or ends with "
		    "white space", field, quoted);
	}
	parsed = NULL;
	if (scan_check(key, len, &top, why, sizeof(why)) == 0) {
		if (top.kind == SCAN_NUMBER_BIG) {
			fields_quote(key, len, quoted, sizeof(quoted));
			return fields_error(err, errlen, "%s %s is a number too "
			    "big for 64 bits or a double in JSON, not an id",
			    field, quoted);
		}
		parsed = json_loadb(key, len, JSON_REJECT_DUPLICATES |
		    JSON_DECODE_ANY, &jerr);
		if (parsed == NULL)
			snprintf(why, sizeof(why), "%s", jerr.text);
	}
	/*
	 * Not JSON (a key.converter of strings): the bytes are the id.  A
	 * key that opens an object, an array or a string is JSON gone wrong
	 * (cut, or a member twice), not an id to delete by.
	 */
	if (parsed == NULL && memchr("{[\"", ((const char *)key)[0], 3) !=
	    NULL) {
		fields_quote(key, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s is not valid JSON: %s",
		    field, quoted, why);
	}
	/*
	 * Kafka Connect's StringConverter writes a struct key as the
	 * struct's toString(), "Struct{id=7}": no id, and another spelling
	 * of the same row than its JSON would be.
	 */
	if (parsed == NULL && len >= 7 && memcmp(key, "Struct{", 7) == 0) {
		fields_quote(key, len, quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s %s is a Kafka Connect "
		    "struct written as text by a StringConverter: set the "
		    "connector's key.converter to "
		    "org.apache.kafka.connect.json.JsonConverter", field,
		    quoted);
	}
	if (parsed == NULL)
		return fields_id_bytes(field, key, len, out, err, errlen);
	/* JSON that no id is written as: true, 1.5, 1e2, null, [...]. */
	if (json_is_array(parsed) || json_is_real(parsed) ||
	    json_is_boolean(parsed) || json_is_null(parsed)) {
		fields_quote(key, len, quoted, sizeof(quoted));
		fields_error(err, errlen, "%s %s is %s in JSON, not an id (a "
		    "string, an integer, or an object holding the id column)",
		    field, quoted, fields_json_kind(parsed));
		json_decref(parsed);
		return -1;
	}
	payload = fields_unwrap(parsed);
	if (json_is_object(payload)) {
		snprintf(where, sizeof(where), "%s.%s", field, column);
		member = json_object_get(payload, column);
		if (member == NULL) {
			fields_quote(column, strlen(column), quoted,
			    sizeof(quoted));
			rc = fields_error(err, errlen, "%s has no member %s "
			    "(check the id column mapping)", field, quoted);
		} else if (json_object_size(payload) > 1)
			rc = fields_key_wider(field, payload, column, err,
			    errlen);
		else
			rc = fields_key_member(where, payload == parsed ? NULL :
			    json_object_get(parsed, "schema"), column, member,
			    out, err, errlen);
	} else
		rc = fields_id(field, payload, out, err, errlen);
	json_decref(parsed);
	return rc;
}

/*
 * The canonical id of a mark: "vrf/address", or the address alone in the
 * default vrf; NULL when out of memory.  The caller owns the result.
 */
char *
fields_mark_id(const char *vrf, const struct ip_addr *ip)
{
	char	address[ADDR_TEXT_MAX], *id;
	size_t	len;

	addr_format(ip, address, sizeof(address));
	len = strlen(vrf) + 1 + strlen(address) + 1;
	if ((id = malloc(len)) == NULL)
		return NULL;
	if (*vrf == '\0')
		snprintf(id, len, "%s", address);
	else
		snprintf(id, len, "%s/%s", vrf, address);
	return id;
}

/*
 * A mark's Kafka key: a mark id (fields_mark_key) written as
 * fields_mark_id() writes it, the id the consumer then uses (*id, owned
 * by the caller).  Kafka partitions and compacts by the key's bytes, so
 * two spellings of one mark ("2001:DB8::1", "2001:db8::1") would be two
 * keys: their records could land in different partitions and apply out
 * of order, and compaction would keep the last record of each, bringing
 * back on a rebuild a mark that a tombstone under the other spelling
 * cleared.  One spelling per mark keeps its history one key.
 */
int
fields_mark_kafka_key(const void *bytes, size_t len, char **vrf,
    struct ip_addr *ip, char **id, char *err, size_t errlen)
{
	char	quoted[FIELDS_QUOTE_SIZE], written[FIELDS_QUOTE_SIZE];

	*id = NULL;
	if (fields_mark_key("key", bytes, len, vrf, ip, err, errlen) == -1)
		return -1;
	if ((*id = fields_mark_id(*vrf, ip)) == NULL) {
		fields_error(err, errlen, "out of memory");
		goto fail;
	}
	if (strlen(*id) != len || memcmp(*id, bytes, len) != 0) {
		fields_quote(bytes, len, quoted, sizeof(quoted));
		fields_quote(*id, strlen(*id), written, sizeof(written));
		fields_error(err, errlen, "key %s is the mark %s written "
		    "another way: Kafka partitions and compacts by the key's "
		    "bytes, so every record of a mark must carry the same key; "
		    "key it %s", quoted, written, written);
		goto fail;
	}
	return 0;
fail:
	free(*id);
	*id = NULL;
	free(*vrf);
	*vrf = NULL;
	memset(ip, 0, sizeof(*ip));
	return -1;
}
