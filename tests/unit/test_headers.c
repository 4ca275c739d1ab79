/* Unit tests of Kafka headers: their limits and their JSON for dead letters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Most headers a row of the JSON table gives. */
#define ROW_HEADERS	4

/* One header of a row: a NULL name ends the list, value_len -1 is strlen. */
struct row_header {
	const char	*name;
	const char	*value;
	int		 value_len;
};

/* Headers in, the JSON text that must come out. */
struct json_row {
	const char		*label;
	struct row_header	 headers[ROW_HEADERS];
	const char		*json;
};

static const struct json_row json_rows[] = {
	{ "none", { { NULL, NULL, 0 } }, "[]" },
	{ "text values, in order", { { "ce_id", "e1", -1 },
	    { "content-type", "application/json", -1 } },
	    "[{\"key\":\"ce_id\",\"value\":\"e1\"},{\"key\":\"content-type\","
	    "\"value\":\"application/json\"}]" },
	{ "a repeated name is kept twice", { { "trace", "a", -1 },
	    { "trace", "b", -1 } },
	    "[{\"key\":\"trace\",\"value\":\"a\"},{\"key\":\"trace\","
	    "\"value\":\"b\"}]" },
	{ "a header without a value", { { "flag", NULL, 0 } },
	    "[{\"key\":\"flag\",\"value\":null}]" },
	{ "an empty value", { { "empty", "", 0 } },
	    "[{\"key\":\"empty\",\"value\":\"\"}]" },
	{ "a NUL byte goes to base64", { { "bin", "a\0b", 3 } },
	    "[{\"key\":\"bin\",\"base64\":\"YQBi\"}]" },
	{ "invalid UTF-8 goes to base64", { { "bin", "\xff", 1 },
	    { "bin2", "\xc3\x28\x01\x02", 4 } },
	    "[{\"key\":\"bin\",\"base64\":\"/w==\"},{\"key\":\"bin2\","
	    "\"base64\":\"wygBAg==\"}]" },
	{ "control characters and quotes are escaped JSON", { { "t",
	    "a\"\\\n\x1b\x7f", -1 } },
	    "[{\"key\":\"t\",\"value\":\"a\\\"\\\\\\n\\u001B\x7f\"}]" },
	{ "UTF-8 stays as it is", { { "h\xc3\xa9", "\xe2\x82\xac", -1 } },
	    "[{\"key\":\"h\xc3\xa9\",\"value\":\"\xe2\x82\xac\"}]" },
	{ "a name that is not UTF-8", { { "n\xff", "v", -1 } },
	    "[{\"key_base64\":\"bv8=\",\"value\":\"v\"}]" },
};

/* decode_headers_json writes every header, byte for byte, in order. */
static void
test_json(void **state)
{
	const struct json_row	*row = *state;
	struct decode_header	 headers[ROW_HEADERS];
	char			*text;
	size_t			 n;

	for (n = 0; n < ROW_HEADERS && row->headers[n].name != NULL; n++) {
		headers[n].name = row->headers[n].name;
		headers[n].value = row->headers[n].value;
		headers[n].value_len = row->headers[n].value_len >= 0 ?
		    (size_t)row->headers[n].value_len :
		    strlen(row->headers[n].value);
	}
	text = decode_headers_json(headers, n);
	assert_non_null(text);
	assert_string_equal(text, row->json);
	free(text);
}

/*
 * A binary-mode server event of count headers: the six attributes the
 * event needs, then filler headers; extra, when not NULL, replaces the
 * header at index at.
 */
static struct decode_header *
binary_headers(size_t count, size_t at, const struct decode_header *extra)
{
	static const struct decode_header	attributes[] = {
		{ "ce_specversion", "1.0", 3 },
		{ "ce_id", "e1", 2 },
		{ "ce_source", "/inventory", 10 },
		{ "ce_type", "ipam.server.upserted", 20 },
		{ "ce_subject", "42", 2 },
		{ "content-type", "application/json", 16 },
	};
	struct decode_header			*headers;
	size_t					 i;

	if ((headers = calloc(count, sizeof(*headers))) == NULL)
		abort();
	for (i = 0; i < count; i++) {
		if (i < ROWS(attributes))
			headers[i] = attributes[i];
		else {
			headers[i].name = "x-filler";
			headers[i].value = "v";
			headers[i].value_len = 1;
		}
	}
	if (extra != NULL)
		headers[at] = *extra;
	return headers;
}

/* A message of many headers and what decoding it must give. */
struct limit_row {
	const char		*label;
	size_t			 count;		/* headers */
	size_t			 at;		/* where extra goes */
	struct decode_header	 extra;		/* name NULL: none */
	size_t			 max_headers;	/* 0: the default */
	size_t			 max_header_bytes;
	const char		*error;		/* NULL: decoded */
};

static const struct limit_row limit_rows[] = {
	{ "1,000 headers are allowed", 1000, 0, { NULL, NULL, 0 }, 0, 0,
	    NULL },
	{ "1,001 are not", 1001, 0, { NULL, NULL, 0 }, 0, 0,
	    "the message has 1001 headers, more than the limit of 1000" },
	{ "too many headers is the reason, not a missing specversion", 1001,
	    0, { "x-other", "v", 1 }, 0, 0,
	    "the message has 1001 headers, more than the limit of 1000" },
	{ "a lowered limit", 7, 0, { NULL, NULL, 0 }, 6, 0,
	    "the message has 7 headers, more than the limit of 6" },
	{ "a duplicate ce_id far down the list", 100, 70, { "ce_id", "e2", 2 },
	    0, 0, "header \"ce_id\" appears more than once" },
	{ "a duplicate ce_specversion at the very end", 1000, 999,
	    { "ce_specversion", "1.0", 3 }, 0, 0,
	    "header \"ce_specversion\" appears more than once" },
	{ "header bytes over the default 64 KiB", 8, 7,
	    { "x-big", NULL, 65536 }, 0, 0, "the message's headers hold "
	    "65660 bytes, more than the limit of 65536 bytes" },
	{ "header bytes at a lowered limit", 6, 0, { NULL, NULL, 0 }, 0, 110,
	    NULL },
	{ "header bytes over a lowered limit", 6, 0, { NULL, NULL, 0 }, 0,
	    109, "the message's headers hold 110 bytes, more than the limit "
	    "of 109 bytes" },
};

/* decode_message enforces the header limits and looks at every header. */
static void
test_limits(void **state)
{
	const struct limit_row	*row = *state;
	struct decode_header	*headers, extra = row->extra;
	struct decode_limits	 limits;
	struct decode_input	 in;
	struct change		 out;
	char			 err[512], *big = NULL;
	enum decode_result	 result;

	if (extra.name != NULL && extra.value == NULL && extra.value_len > 0) {
		if ((big = malloc(extra.value_len)) == NULL)
			abort();
		memset(big, 'x', extra.value_len);
		extra.value = big;
	}
	headers = binary_headers(row->count, row->at, extra.name != NULL ?
	    &extra : NULL);
	memset(&limits, 0, sizeof(limits));
	limits.max_message_bytes = 1024 * 1024;
	limits.max_pool_addresses = 1024;
	limits.max_headers = row->max_headers;
	limits.max_header_bytes = row->max_header_bytes;
	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.key = "42";
	in.key_len = 2;
	in.value = "{\"hostname\":\"web-01\"}";
	in.value_len = strlen(in.value);
	in.headers = headers;
	in.header_count = row->count;
	in.limits = &limits;
	result = decode_message(DECODE_CLOUDEVENTS, &in, &out, err,
	    sizeof(err));
	free(headers);
	free(big);
	if (row->error == NULL) {
		if (result != DECODE_OK)
			fail_msg("refused: %s", err);
		assert_string_equal(out.id, "42");
		change_clear(&out);
		return;
	}
	assert_int_equal(result, DECODE_ERROR);
	if (strstr(err, row->error) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, row->error);
}

/* The defaults of the header limits. */
static void
test_defaults(void **state)
{
	struct decode_limits	limits;

	(void)state;
	decode_limits_default(&limits);
	assert_int_equal(limits.max_headers, 1000);
	assert_int_equal(limits.max_header_bytes, 65536);
}

/* A small deterministic generator (xorshift64), so failures repeat. */
static uint64_t
next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Bytes in base64 with padding, in a string the caller frees. */
static char *
base64_of(const void *bytes, size_t len)
{
	static const char	 alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char	*p = bytes;
	char			*text = malloc((len + 2) / 3 * 4 + 1), *q = text;
	size_t			 i;

	assert_non_null(text);
	for (i = 0; i < len; i += 3) {
		*q++ = alphabet[p[i] >> 2];
		*q++ = alphabet[((p[i] & 3) << 4) |
		    (i + 1 < len ? p[i + 1] >> 4 : 0)];
		*q++ = i + 1 < len ? alphabet[((p[i + 1] & 0xf) << 2) |
		    (i + 2 < len ? p[i + 2] >> 6 : 0)] : '=';
		*q++ = i + 2 < len ? alphabet[p[i + 2] & 0x3f] : '=';
	}
	*q = '\0';
	return text;
}

/*
 * The headers' JSON as jansson dumps it (JSON_COMPACT), the way the
 * dead letters' text was first written: the oracle of the property
 * below.
 */
static char *
jansson_headers_json(const struct decode_header *headers, size_t count)
{
	static const char	*names[2][2] = { { "key", "key_base64" },
	    { "value", "base64" } };
	json_t			*array = json_array(), *obj, *member;
	const void		*bytes;
	size_t			 i, k, len;
	char			*text, *encoded;

	for (i = 0; i < count; i++) {
		obj = json_object();
		for (k = 0; k < 2; k++) {
			bytes = k == 0 ? (const void *)headers[i].name :
			    headers[i].value;
			len = k == 0 ? (bytes != NULL ? strlen(bytes) : 0) :
			    headers[i].value_len;
			if (bytes == NULL)
				json_object_set_new(obj, names[k][0],
				    json_null());
			else if ((member = json_stringn(bytes, len)) != NULL &&
			    memchr(bytes, '\0', len) == NULL)
				json_object_set_new(obj, names[k][0], member);
			else {
				json_decref(member);
				encoded = base64_of(bytes, len);
				json_object_set_new(obj, names[k][1],
				    json_string(encoded));
				free(encoded);
			}
		}
		json_array_append_new(array, obj);
	}
	text = json_dumps(array, JSON_COMPACT);
	json_decref(array);
	return text;
}

/*
 * Property: for headers of random bytes (text, controls, quotes, NUL,
 * invalid UTF-8, no value), the text is jansson's, byte for byte.
 */
static void
test_json_as_jansson(void **state)
{
	static const char	 bytes[] = "ab\"\\/\b\f\n\r\t\x01\x1f\x7f"
	    "\xc3\xa9\xe2\x82\xac\xff\x80";
	struct decode_header	 headers[6];
	char			 names[6][16], values[6][24];
	char			*ours, *theirs;
	uint64_t		 rng = 0x2545f4914f6cdd1dULL;
	size_t			 round, n, i, k, len;

	(void)state;
	for (round = 0; round < 5000; round++) {
		n = next_random(&rng) % 6;
		for (i = 0; i < n; i++) {
			len = next_random(&rng) % sizeof(names[i]);
			for (k = 0; k < len; k++)
				names[i][k] = bytes[next_random(&rng) %
				    (sizeof(bytes) - 1)];
			names[i][len] = '\0';
			headers[i].name = names[i];
			headers[i].value_len = next_random(&rng) %
			    sizeof(values[i]);
			for (k = 0; k < headers[i].value_len; k++)
				values[i][k] = (char)(k % 7 == 6 ? '\0' :
				    bytes[next_random(&rng) %
				    (sizeof(bytes) - 1)]);
			headers[i].value = next_random(&rng) % 9 == 0 ? NULL :
			    values[i];
			if (headers[i].value == NULL)
				headers[i].value_len = 0;
		}
		ours = decode_headers_json(headers, n);
		theirs = jansson_headers_json(headers, n);
		assert_non_null(ours);
		assert_non_null(theirs);
		assert_string_equal(ours, theirs);
		free(ours);
		free(theirs);
	}
}

/* Runs the header tables; exits non-zero on a failure. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_json_as_jansson),
	};
	int			failed = 0;

	failed += support_run_rows("headers_json", test_json, json_rows,
	    sizeof(json_rows[0]), ROWS(json_rows));
	failed += support_run_rows("headers_limits", test_limits, limit_rows,
	    sizeof(limit_rows[0]), ROWS(limit_rows));
	failed += cmocka_run_group_tests_name("headers_misc", single, NULL,
	    NULL);
	return failed != 0;
}
