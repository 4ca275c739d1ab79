/* Unit tests of the Debezium decoder over the fixture files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* A server row's payload, with op c, for the wrapper rows below. */
#define ROW_PAYLOAD	"{\"op\":\"c\",\"after\":{\"id\":7,\"hostname\":\"h\"," \
	"\"ip_address\":null,\"nic_mac\":null,\"device_type\":null," \
	"\"manufacture\":null}}"

/*
 * A message value and what decoding it gives: the id of the server, or
 * (id NULL) text the reason must contain.
 */
struct wrapper_row {
	const char	*name;
	const char	*value;
	const char	*id;
	const char	*error;
};

static const struct wrapper_row wrapper_rows[] = {
	{ "plain wrapper", "{\"schema\":{\"type\":\"struct\"},\"payload\":"
	    ROW_PAYLOAD "}", "7", NULL },
	{ "payload first, white space", " { \"payload\" : " ROW_PAYLOAD
	    " ,\n \"schema\":null } ", "7", NULL },
	{ "braces and quotes inside schema strings",
	    "{\"schema\":{\"doc\":\"a } \\\" ] {\",\"f\":[{\"x\":\"]\"}]},"
	    "\"payload\":" ROW_PAYLOAD "}", "7", NULL },
	{ "member names spelt with escapes", "{\"sch\\u0065ma\":{},"
	    "\"p\\u0061yload\":" ROW_PAYLOAD "}", "7", NULL },
	{ "no wrapper", ROW_PAYLOAD, "7", NULL },
	{ "a third member: the value is the event", "{\"schema\":{},"
	    "\"payload\":" ROW_PAYLOAD ",\"x\":1}", NULL,
	    "op is missing" },
	{ "payload a string", "{\"schema\":{},\"payload\":\"p\"}", NULL,
	    "the change event must be a JSON object, not a string" },
	{ "payload an array", "{\"schema\":{},\"payload\":[1]}", NULL,
	    "the change event must be a JSON object, not an array" },
	{ "schema twice", "{\"schema\":{},\"schema\":{},\"payload\":"
	    ROW_PAYLOAD "}", NULL, "not valid JSON: duplicate object key" },
	{ "a name repeated inside the schema block", "{\"schema\":{\"type\":1,"
	    "\"type\":2},\"payload\":" ROW_PAYLOAD "}", NULL,
	    "not valid JSON: duplicate object key" },
	{ "a name repeated inside the payload", "{\"schema\":{},\"payload\":"
	    "{\"op\":\"c\",\"op\":\"d\"}}", NULL,
	    "not valid JSON: duplicate object key" },
	{ "a broken word in the schema block", "{\"schema\":{\"optional\":tru},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: invalid token" },
	{ "a bad number in the schema block", "{\"schema\":{\"version\":01},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "invalid UTF-8 in the schema block", "{\"schema\":{\"doc\":\"\xff\"},"
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "unbalanced schema", "{\"schema\":{\"a\":[},\"payload\":"
	    ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "unterminated string", "{\"schema\":\"abc,\"payload\":" ROW_PAYLOAD
	    "}", NULL, "not valid JSON: " },
	{ "a control character in a string", "{\"schema\":\"a\tb\","
	    "\"payload\":" ROW_PAYLOAD "}", NULL, "not valid JSON: " },
	{ "trailing bytes", "{\"schema\":{},\"payload\":" ROW_PAYLOAD "} x",
	    NULL, "not valid JSON: " },
	{ "a bare string", "\"abc\"", NULL,
	    "not valid JSON: '[' or '{' expected" },
	{ "an escaped op", "{\"op\":\"\\u0063\",\"after\":{\"id\":\"s\\u00e9\","
	    "\"hostname\":\"h\",\"ip_address\":null,\"nic_mac\":null,"
	    "\"device_type\":null,\"manufacture\":null}}", "s\xc3\xa9", NULL },
	{ "an op of two letters", "{\"op\":\"cu\"}", NULL,
	    "op \"cu\" is not one of c, u, r, d, t" },
	{ "an op that is a number", "{\"op\":1}", NULL,
	    "op is an integer; a change event has op c, u, r, d or t" },
};

/*
 * A server envelope's schema block whose id column is a Kafka Connect
 * Decimal of the given scale (a numeric(12,scale) column with Debezium's
 * decimal.handling.mode=precise), in its after and before images.
 */
#define DECIMAL_COLUMNS(scale) "[{\"type\":\"bytes\",\"optional\":false," \
	"\"name\":\"org.apache.kafka.connect.data.Decimal\",\"version\":1," \
	"\"parameters\":{\"scale\":\"" scale "\"," \
	"\"connect.decimal.precision\":\"12\"},\"field\":\"id\"}," \
	"{\"type\":\"string\",\"optional\":true,\"field\":\"hostname\"}]"
#define DECIMAL_SCHEMA(scale) "{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"struct\",\"fields\":" DECIMAL_COLUMNS(scale) "," \
	"\"optional\":true,\"name\":\"s.Value\",\"field\":\"before\"}," \
	"{\"type\":\"struct\",\"fields\":" DECIMAL_COLUMNS(scale) "," \
	"\"optional\":true,\"name\":\"s.Value\",\"field\":\"after\"}]," \
	"\"optional\":false,\"name\":\"s.Envelope\"}"

/* A server row with the given id (JSON), op c. */
#define DECIMAL_ROW(id) "{\"op\":\"c\",\"after\":{\"id\":" id "," \
	"\"hostname\":\"h\",\"ip_address\":null,\"nic_mac\":null," \
	"\"device_type\":null,\"manufacture\":null}}"

/* The same row in a wrapper whose schema makes its id a decimal. */
#define DECIMAL_EVENT(scale, id) "{\"schema\":" DECIMAL_SCHEMA(scale) "," \
	"\"payload\":" DECIMAL_ROW(id) "}"

/*
 * Ids in numeric columns: the decimal text decimal.handling.mode=string
 * would have sent (Java's BigDecimal.toPlainString()), whatever their
 * sign, scale and size.
 */
static const struct wrapper_row decimal_rows[] = {
	{ "numeric(12,0) 7", DECIMAL_EVENT("0", "\"Bw==\""), "7", NULL },
	{ "numeric -1", DECIMAL_EVENT("0", "\"/w==\""), "-1", NULL },
	{ "numeric 128 (a sign byte)", DECIMAL_EVENT("0", "\"AIA=\""), "128",
	    NULL },
	{ "numeric -128", DECIMAL_EVENT("0", "\"gA==\""), "-128", NULL },
	{ "numeric 0", DECIMAL_EVENT("0", "\"AA==\""), "0", NULL },
	{ "numeric(12,2) 12.34", DECIMAL_EVENT("2", "\"BNI=\""), "12.34",
	    NULL },
	{ "numeric(12,3) 0.007", DECIMAL_EVENT("3", "\"Bw==\""), "0.007",
	    NULL },
	{ "numeric(12,2) 0.00", DECIMAL_EVENT("2", "\"AA==\""), "0.00",
	    NULL },
	{ "a negative scale", DECIMAL_EVENT("-2", "\"Bw==\""), "700", NULL },
	/* BigDecimal.toPlainString() and PostgreSQL both write 0 so. */
	{ "0 at a negative scale", DECIMAL_EVENT("-2", "\"AA==\""), "0",
	    NULL },
	{ "2^64", DECIMAL_EVENT("0", "\"AQAAAAAAAAAA\""),
	    "18446744073709551616", NULL },
	{ "10^30 + 7", DECIMAL_EVENT("0", "\"DJ8snNBGdO3qQAAABw==\""),
	    "1000000000000000000000000000007", NULL },
	{ "-2^80 + 12345 at scale 5",
	    DECIMAL_EVENT("5", "\"/wAAAAAAAAAAMDk=\""),
	    "-12089258196146291746.93831", NULL },
	{ "a delete: the id in before",
	    "{\"schema\":" DECIMAL_SCHEMA("0") ",\"payload\":{\"op\":\"d\","
	    "\"before\":{\"id\":\"Bw==\",\"hostname\":\"h\"},"
	    "\"after\":null}}", "7", NULL },
	{ "not base64", DECIMAL_EVENT("0", "\"-1\""), NULL,
	    "after.id is a numeric column sent as a Kafka Connect decimal, "
	    "whose value must be the base64 of at most 128 bytes, not \"-1\"" },
	{ "base64 cut short", DECIMAL_EVENT("0", "\"Bw=\""), NULL,
	    "must be the base64" },
	{ "base64 with bits past its bytes", DECIMAL_EVENT("0", "\"Bx==\""),
	    NULL, "must be the base64" },
	{ "empty", DECIMAL_EVENT("0", "\"\""), NULL, "must be the base64" },
	{ "a scale that is no number", DECIMAL_EVENT("x", "\"Bw==\""), NULL,
	    "after.id is a numeric column sent as a Kafka Connect decimal, "
	    "but the schema block gives no scale" },
	{ "a scale past 1000", DECIMAL_EVENT("1001", "\"Bw==\""), NULL,
	    "gives no scale" },
	{ "a JSON integer id stays an integer", DECIMAL_EVENT("0", "7"), "7",
	    NULL },
	{ "without the schema block, the base64 is text", DECIMAL_ROW(
	    "\"Bw==\""), "Bw==", NULL },
	{ "a Decimal elsewhere in the block leaves a text id alone",
	    "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":"
	    "\"struct\",\"fields\":[{\"type\":\"string\",\"field\":\"id\"},"
	    "{\"type\":\"bytes\",\"name\":"
	    "\"org.apache.kafka.connect.data.Decimal\",\"parameters\":"
	    "{\"scale\":\"0\"},\"field\":\"price\"}],\"field\":\"after\"}]},"
	    "\"payload\":" DECIMAL_ROW("\"Bw==\"") "}", "Bw==", NULL },
	{ "numeric without precision (VariableScaleDecimal)", DECIMAL_ROW(
	    "{\"scale\":0,\"value\":\"Bw==\"}"), "7", NULL },
	{ "VariableScaleDecimal of scale 1", DECIMAL_ROW(
	    "{\"value\":\"AQ==\",\"scale\":1}"), "0.1", NULL },
	{ "VariableScaleDecimal of a bad scale", DECIMAL_ROW(
	    "{\"scale\":5000,\"value\":\"AQ==\"}"), NULL,
	    "after.id is a decimal of scale 5000; an id's scale lies between "
	    "-1000 and 1000" },
	{ "an object that is no VariableScaleDecimal", DECIMAL_ROW(
	    "{\"scale\":0,\"value\":\"Bw==\",\"x\":1}"), NULL,
	    "must be a string or an integer, not an object" },
	{ "a decimal longer than an id may be", DECIMAL_EVENT("300",
	    "\"Bw==\""), NULL, "more than the limit of 255" },
};

/*
 * Decodes a server message: it names the server id, or (id NULL) it is
 * refused with a reason (in err) that holds error.
 */
static void
expect_server(const struct decode_input *in, const char *id,
    const char *error, char *err, size_t errlen)
{
	struct change		change;
	enum decode_result	result;

	result = decode_message(DECODE_DEBEZIUM, in, &change, err, errlen);
	if (id != NULL) {
		if (result != DECODE_OK)
			fail_msg("refused: %s", err);
		assert_string_equal(change.id, id);
		change_clear(&change);
		return;
	}
	assert_int_equal(result, DECODE_ERROR);
	if (strstr(err, error) == NULL)
		fail_msg("reason \"%s\" does not hold \"%s\"", err, error);
}

/* One row: the server the value names, or the reason it is refused. */
static void
test_wrapper(void **state)
{
	const struct wrapper_row	*row = *state;
	struct decode_input		 in;
	char				 err[512];

	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.value = row->value;
	in.value_len = strlen(row->value);
	expect_server(&in, row->id, row->error, err, sizeof(err));
	if (row->id == NULL)
		assert_true(strncmp(err, "debezium: ", 10) == 0);
}

/*
 * A hostname of 140 characters written as \u00e9 escapes: its length
 * is counted in bytes once the escapes are resolved (280), and it goes
 * past the stack buffer the decoder reads short strings into.
 */
static void
test_escaped_length(void **state)
{
	const char		*head = "{\"op\":\"c\",\"after\":{\"id\":1,"
	    "\"hostname\":\"", *tail = "\",\"ip_address\":null,\"nic_mac\":"
	    "null,\"device_type\":null,\"manufacture\":null}}";
	struct decode_input	 in;
	struct change		 change;
	char			 value[2048], err[512];
	size_t			 i, len;

	(void)state;
	len = (size_t)snprintf(value, sizeof(value), "%s", head);
	for (i = 0; i < 140; i++)
		len += (size_t)snprintf(value + len, sizeof(value) - len,
		    "\\u00e9");
	len += (size_t)snprintf(value + len, sizeof(value) - len, "%s", tail);
	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.value = value;
	in.value_len = len;
	assert_int_equal(decode_message(DECODE_DEBEZIUM, &in, &change, err,
	    sizeof(err)), DECODE_ERROR);
	assert_non_null(strstr(err, "after.hostname is 280 bytes, more than "
	    "the limit of 255"));
}

/* A server event as Kafka Connect writes it: a compact wrapper. */
static const char memo_event[] =
    "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
    "\"optional\":false,\"field\":\"id\"},{\"type\":\"string\",\"optional\":"
    "true,\"field\":\"hostname\"}],\"optional\":false,\"name\":\"s.Envelope\"},"
    "\"payload\":{\"before\":null,\"after\":{\"id\":42,\"hostname\":\"srv-1\","
    "\"ip_address\":\"10.0.0.5/24\",\"nic_mac\":\"02:00:00:00:00:2a\","
    "\"device_type\":\"R650\",\"manufacture\":\"Dell\"},\"source\":{\"lsn\":"
    "24023128,\"snapshot\":\"false\"},\"op\":\"u\",\"ts_ms\":1}}";

/* The key Kafka Connect writes for memo_event: a compact wrapper. */
static const char memo_key[] =
    "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
    "\"optional\":false,\"field\":\"id\"}],\"optional\":false,"
    "\"name\":\"s.Key\"},\"payload\":{\"id\":42}}";

/* Decodes a server event and its key (NULL: none), with the memo given. */
static enum decode_result
memo_decode_key(const char *key, size_t key_len, const char *value,
    size_t len, struct decode_memo *memo, struct change *change, char *err,
    size_t errlen)
{
	struct decode_input	in;

	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.key = key;
	in.key_len = key_len;
	in.value = value;
	in.value_len = len;
	in.memo = memo;
	return decode_message(DECODE_DEBEZIUM, &in, change, err, errlen);
}

/* Decodes a server event, with the memo given (NULL: none). */
static enum decode_result
memo_decode(const char *value, size_t len, struct decode_memo *memo,
    struct change *change, char *err, size_t errlen)
{
	return memo_decode_key(NULL, 0, value, len, memo, change, err, errlen);
}

/* Two strings of a change are the same, or both absent. */
static void
assert_same_text(const char *a, const char *b)
{
	assert_true((a == NULL) == (b == NULL));
	if (a != NULL)
		assert_string_equal(a, b);
}

/* Two decodes came out the same: result, reason and the change. */
static void
assert_same_decode(enum decode_result a, const struct change *ca,
    const char *ea, enum decode_result b, const struct change *cb,
    const char *eb)
{
	assert_int_equal(a, b);
	assert_string_equal(ea, eb);
	if (a != DECODE_OK)
		return;
	assert_int_equal(ca->op, cb->op);
	assert_same_text(ca->id, cb->id);
	assert_same_text(ca->vrf, cb->vrf);
	assert_same_text(ca->hostname, cb->hostname);
	assert_same_text(ca->nic_mac, cb->nic_mac);
	assert_int_equal(ca->keep, cb->keep);
	assert_int_equal(ca->snapshot, cb->snapshot);
	assert_int_equal(ca->has_version, cb->has_version);
	assert_true(ca->version == cb->version);
	assert_int_equal(ca->has_ip, cb->has_ip);
	assert_memory_equal(&ca->ip, &cb->ip, sizeof(ca->ip));
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

/*
 * Changes text (len bytes, room for one more) at random: a byte replaced,
 * the text cut short or a byte inserted, or, with keep, now and then
 * nothing.
 */
static void
mutate(char *text, size_t *len, uint64_t *rng, bool keep)
{
	static const char	 bytes[] = "{}[]\":,\\ 0123456789.-etfnul\x01\xff";
	size_t			 at = next_random(rng) % *len;

	switch (next_random(rng) % (keep ? 4 : 3)) {
	case 0:		/* replace a byte */
		text[at] = bytes[next_random(rng) % (sizeof(bytes) - 1)];
		break;
	case 1:		/* cut the text short */
		*len = at;
		break;
	case 2:		/* insert a byte */
		memmove(text + at + 1, text + at, *len - at);
		text[at] = bytes[next_random(rng) % (sizeof(bytes) - 1)];
		(*len)++;
		break;
	default:	/* the text as it is */
		break;
	}
}

/*
 * The memo changes nothing but the work: it is filled by a compact
 * wrapper, and on 20,000 mutations of such a message (in its schema
 * block, its payload or its ending) a decode with the memo warm gives
 * the result, reason and change of a decode without one.
 */
static void
test_memo_changes_nothing(void **state)
{
	struct decode_memo	*memo = calloc(1, sizeof(*memo));
	struct change		 with, without;
	enum decode_result	 a, b;
	char			 text[sizeof(memo_event) + 16], ea[512], eb[512];
	uint64_t		 rng = 0x9e3779b97f4a7c15ULL;
	size_t			 round, len;

	(void)state;
	assert_non_null(memo);
	assert_int_equal(memo_decode(memo_event, strlen(memo_event), memo,
	    &with, ea, sizeof(ea)), DECODE_OK);
	change_clear(&with);
	assert_true(memo->schema_len > 0);
	assert_memory_equal(memo->schema, memo_event + 10, memo->schema_len);
	for (round = 0; round < 20000; round++) {
		len = strlen(memo_event);
		memcpy(text, memo_event, len);
		mutate(text, &len, &rng, false);
		b = memo_decode(text, len, NULL, &without, eb, sizeof(eb));
		a = memo_decode(text, len, memo, &with, ea, sizeof(ea));
		assert_same_decode(a, &with, ea, b, &without, eb);
		change_clear(&with);
		change_clear(&without);
		/* Put the memo back to the event's block now and then. */
		if (round % 7 == 0) {
			assert_int_equal(memo_decode(memo_event,
			    strlen(memo_event), memo, &with, ea, sizeof(ea)),
			    DECODE_OK);
			change_clear(&with);
		}
	}
	free(memo);
}

/*
 * The same of keys: the memo, filled by a compact key, changes nothing
 * but the work on 20,000 mutations of the key (its schema block, its
 * payload, its ending), with a value whose id is the key's or another.
 */
static void
test_memo_key_changes_nothing(void **state)
{
	static const char	 other[] = "{\"payload\":{\"before\":null,"
	    "\"after\":{\"id\":\"42\",\"hostname\":\"h\"},\"op\":\"c\"}}";
	struct decode_memo	*memo = calloc(1, sizeof(*memo));
	struct change		 with, without;
	enum decode_result	 a, b;
	const char		*value;
	char			 text[sizeof(memo_key) + 16], ea[512], eb[512];
	uint64_t		 rng = 0x2545f4914f6cdd1dULL;
	size_t			 round, len, agreed = 0;

	(void)state;
	assert_non_null(memo);
	assert_int_equal(memo_decode_key(memo_key, strlen(memo_key),
	    memo_event, strlen(memo_event), memo, &with, ea, sizeof(ea)),
	    DECODE_OK);
	change_clear(&with);
	assert_true(memo->key_schema_len > 0);
	assert_memory_equal(memo->key_schema, memo_key + 10,
	    memo->key_schema_len);
	for (round = 0; round < 20000; round++) {
		len = strlen(memo_key);
		memcpy(text, memo_key, len);
		mutate(text, &len, &rng, true);
		/* A string id "42" against the key's integer, now and then. */
		value = round % 5 == 0 ? other : memo_event;
		b = memo_decode_key(text, len, value, strlen(value), NULL,
		    &without, eb, sizeof(eb));
		a = memo_decode_key(text, len, value, strlen(value), memo,
		    &with, ea, sizeof(ea));
		assert_same_decode(a, &with, ea, b, &without, eb);
		agreed += a == DECODE_OK;
		change_clear(&with);
		change_clear(&without);
		if (round % 7 == 0) {
			assert_int_equal(memo_decode_key(memo_key,
			    strlen(memo_key), memo_event, strlen(memo_event),
			    memo, &with, ea, sizeof(ea)), DECODE_OK);
			change_clear(&with);
		}
	}
	/* Keys that agree and keys that do not were both tried. */
	assert_true(agreed > 1000 && agreed < 19000);
	free(memo);
}

/*
 * The memo's shortcut checks the payload alone, at the level it has in
 * the message: a column nested near the limit gets the verdict of a
 * decode without the memo, on either side of the limit.
 */
static void
test_memo_keeps_the_depth_limit(void **state)
{
	static const char	 column[] = "\"manufacture\":\"Dell\"";
	struct decode_memo	*memo = calloc(1, sizeof(*memo));
	struct change		 with, without;
	enum decode_result	 a, b;
	const char		*at = strstr(memo_event, column);
	char			*text, ea[512], eb[512];
	size_t			 head, nest, len, i, ok = 0, refused = 0;

	(void)state;
	assert_non_null(memo);
	assert_non_null(at);
	head = (size_t)(at - memo_event) + strlen(column);
	assert_non_null(text = malloc(strlen(memo_event) + 2 * 2100 + 16));
	for (nest = 2040; nest <= 2050; nest++) {
		/* ,"x":[[…]] after the last column of "after". */
		memcpy(text, memo_event, head);
		len = head;
		memcpy(text + len, ",\"x\":", 5);
		len += 5;
		for (i = 0; i < nest; i++)
			text[len++] = '[';
		for (i = 0; i < nest; i++)
			text[len++] = ']';
		memcpy(text + len, memo_event + head, strlen(memo_event) - head);
		len += strlen(memo_event) - head;
		assert_int_equal(memo_decode(memo_event, strlen(memo_event),
		    memo, &with, ea, sizeof(ea)), DECODE_OK);
		change_clear(&with);
		b = memo_decode(text, len, NULL, &without, eb, sizeof(eb));
		a = memo_decode(text, len, memo, &with, ea, sizeof(ea));
		assert_same_decode(a, &with, ea, b, &without, eb);
		if (b == DECODE_OK)
			ok++;
		else
			refused++;
		change_clear(&with);
		change_clear(&without);
	}
	/* Both sides of the limit were tried. */
	assert_true(ok > 0 && refused > 0);
	free(text);
	free(memo);
}

/*
 * The memo keeps what the schema block says of the id: a second event of
 * the same block, read through the memo, is decoded as the first.
 */
static void
test_memo_decimal(void **state)
{
	static const char	 first[] = DECIMAL_EVENT("2", "\"BNI=\""),
	    second[] = DECIMAL_EVENT("2", "\"AA==\"");
	struct decode_memo	*memo = calloc(1, sizeof(*memo));
	struct change		 change;
	char			 err[512];

	(void)state;
	assert_non_null(memo);
	assert_int_equal(memo_decode(first, strlen(first), memo, &change, err,
	    sizeof(err)), DECODE_OK);
	assert_string_equal(change.id, "12.34");
	change_clear(&change);
	assert_true(memo->schema_len > 0);
	assert_int_equal(memo_decode(second, strlen(second), memo, &change,
	    err, sizeof(err)), DECODE_OK);
	assert_string_equal(change.id, "0.00");
	change_clear(&change);
	free(memo);
}

/* A tombstone's key, with the server id it names or the reason it fails. */
struct key_row {
	const char	*name;
	const char	*key;
	const char	*id;
	const char	*error;
};

/* Key schemas as Kafka Connect writes them for a numeric primary key. */
#define DECIMAL_KEY(scale, id) "{\"schema\":{\"type\":\"struct\"," \
	"\"fields\":[{\"type\":\"bytes\",\"optional\":false,\"name\":" \
	"\"org.apache.kafka.connect.data.Decimal\",\"version\":1," \
	"\"parameters\":{\"scale\":\"" scale "\"},\"field\":\"id\"}]," \
	"\"optional\":false,\"name\":\"s.Key\"},\"payload\":{\"id\":" id "}}"

static const struct key_row key_rows[] = {
	{ "a numeric key", DECIMAL_KEY("0", "\"Bw==\""), "7", NULL },
	{ "a numeric key of scale 2", DECIMAL_KEY("2", "\"BNI=\""), "12.34",
	    NULL },
	{ "a numeric key that is not base64", DECIMAL_KEY("0", "\"7\""), NULL,
	    "key.id is a numeric column sent as a Kafka Connect decimal" },
	{ "a numeric key without a scale", DECIMAL_KEY("", "\"Bw==\""), NULL,
	    "the key's schema block gives no scale" },
	{ "a VariableScaleDecimal key", "{\"id\":{\"scale\":0,"
	    "\"value\":\"Bw==\"}}", "7", NULL },
	{ "the same, wrapped", "{\"schema\":{\"type\":\"struct\"},"
	    "\"payload\":{\"id\":{\"scale\":0,\"value\":\"Bw==\"}}}", "7",
	    NULL },
	{ "without a schema block, the base64 is text", "{\"id\":\"Bw==\"}",
	    "Bw==", NULL },
};

/* A tombstone with one of the keys above deletes the server it names. */
static void
test_key(void **state)
{
	const struct key_row	*row = *state;
	struct decode_input	 in;
	char			 err[512];

	memset(&in, 0, sizeof(in));
	in.entity = CHANGE_SERVER;
	in.key = row->key;
	in.key_len = strlen(row->key);
	expect_server(&in, row->id, row->error, err, sizeof(err));
}

/*
 * A third member after the payload: with the memo warm, the message is
 * still no wrapper, as without it.
 */
static void
test_memo_third_member(void **state)
{
	struct decode_memo	*memo = calloc(1, sizeof(*memo));
	struct change		 change;
	char			 text[sizeof(memo_event) + 16], err[512];
	size_t			 len = strlen(memo_event);

	(void)state;
	assert_non_null(memo);
	assert_int_equal(memo_decode(memo_event, len, memo, &change, err,
	    sizeof(err)), DECODE_OK);
	change_clear(&change);
	memcpy(text, memo_event, len - 1);
	memcpy(text + len - 1, ",\"x\":1}", 7);
	assert_int_equal(memo_decode(text, len + 6, memo, &change, err,
	    sizeof(err)), DECODE_ERROR);
	assert_non_null(strstr(err, "op is missing"));
	free(memo);
}

/* Runs the Debezium message fixtures found under argv[1]. */
int
main(int argc, char **argv)
{
	struct support_cases	cases;
	char			dir[512];
	int			failed;

	if (argc != 2) {
		fprintf(stderr, "usage: %s fixture-folder\n", argv[0]);
		return 2;
	}
	memset(&cases, 0, sizeof(cases));
	snprintf(dir, sizeof(dir), "%s/debezium", argv[1]);
	support_add_message_dir(&cases, dir, DECODE_DEBEZIUM);
	failed = support_run_cases("debezium", &cases);
	support_cases_free(&cases);
	failed += support_run_rows("debezium wrapper", test_wrapper,
	    wrapper_rows, sizeof(wrapper_rows[0]), ROWS(wrapper_rows));
	failed += support_run_rows("debezium numeric ids", test_wrapper,
	    decimal_rows, sizeof(decimal_rows[0]), ROWS(decimal_rows));
	failed += support_run_rows("debezium numeric keys", test_key,
	    key_rows, sizeof(key_rows[0]), ROWS(key_rows));
	{
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_escaped_length),
			cmocka_unit_test(test_memo_changes_nothing),
			cmocka_unit_test(test_memo_key_changes_nothing),
		cmocka_unit_test(test_memo_keeps_the_depth_limit),
			cmocka_unit_test(test_memo_third_member),
			cmocka_unit_test(test_memo_decimal),
		};

		failed += cmocka_run_group_tests_name("debezium strings",
		    tests, NULL, NULL);
	}
	return failed != 0;
}
