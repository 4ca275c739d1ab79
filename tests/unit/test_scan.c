/* Unit tests of the in-place JSON scan, held against jansson's verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/decode_scan.h"
#include "test_support.h"

/* jansson's flags the scan follows. */
#define SCAN_JANSSON_FLAGS	(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/*
 * A text and whether it is JSON as jansson reads it; big: jansson refuses
 * it only for a number beyond 64 bits or a double, which the scan takes
 * (SCAN_NUMBER_BIG).
 */
struct verdict_row {
	const char	*name;
	const char	*text;
	bool		 valid;
	bool		 big;
};

static const struct verdict_row verdict_rows[] = {
	{ "an object", "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}", true, false },
	{ "white space everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", true, false },
	{ "a bare string", "\"abc\"", true, false },
	{ "a bare number", "-0.5e+3", true, false },
	{ "empty containers", "[{},[],\"\"]", true, false },
	{ "an empty member name", "{\"\":1}", true, false },
	{ "nothing", "", false, false },
	{ "white space only", "  \n", false, false },
	{ "two values", "1 2", false, false },
	{ "trailing comma in an array", "[1,]", false, false },
	{ "trailing comma in an object", "{\"a\":1,}", false, false },
	{ "missing colon", "{\"a\" 1}", false, false },
	{ "a name that is not a string", "{a:1}", false, false },
	{ "single quotes", "['a']", false, false },
	{ "unclosed array", "[1", false, false },
	{ "unclosed object", "{\"a\":1", false, false },
	{ "unclosed string", "\"abc", false, false },
	{ "a leading zero", "01", false, false },
	{ "a leading zero after minus", "-01", false, false },
	{ "minus alone", "-", false, false },
	{ "a dot without digits", "1.", false, false },
	{ "a dot first", ".5", false, false },
	{ "an exponent without digits", "1e", false, false },
	{ "an exponent sign without digits", "1e+", false, false },
	{ "a plus sign", "+1", false, false },
	{ "the largest integer", "9223372036854775807", true, false },
	{ "one past the largest integer", "9223372036854775808", false, true },
	{ "the smallest integer", "-9223372036854775808", true, false },
	{ "one below the smallest integer", "-9223372036854775809", false, true },
	{ "a twenty-digit integer", "12345678901234567890", false, true },
	{ "a real that overflows", "1e400", false, true },
	{ "a real that overflows written long", "-17976931348623159077e289",
	    false, true },
	{ "a big number among members",
	    "{\"a\":123456789012345678901234567890,\"b\":[1E+400],\"c\":1}",
	    false, true },
	{ "a real that underflows", "1e-400", true, false },
	{ "a huge real written long", "[1.5e308, -1.7e308]", true, false },
	{ "true", "true", true, false },
	{ "a word cut short", "tru", false, false },
	{ "a word too long", "truee", false, false },
	{ "a capitalised word", "True", false, false },
	{ "NaN", "NaN", false, false },
	{ "escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"", true, false },
	{ "an unknown escape", "\"\\x41\"", false, false },
	{ "a short \\u escape", "\"\\u12\"", false, false },
	{ "a \\u escape with a non-hex digit", "\"\\u12g4\"", false, false },
	{ "\\u0000", "\"a\\u0000b\"", false, false },
	{ "\\u0000 in a name", "{\"\\u0000\":1}", false, false },
	{ "a surrogate pair", "\"\\ud83d\\ude00\"", true, false },
	{ "a high surrogate alone", "\"\\ud83d\"", false, false },
	{ "a high surrogate and a letter", "\"\\ud83dx\"", false, false },
	{ "a high surrogate twice", "\"\\ud83d\\ud83d\"", false, false },
	{ "a low surrogate alone", "\"\\ude00\"", false, false },
	{ "a raw tab in a string", "\"a\tb\"", false, false },
	{ "a raw newline in a string", "\"a\nb\"", false, false },
	{ "DEL in a string", "\"a\x7f" "b\"", true, false },
	{ "UTF-8 in a string", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", true, false },
	{ "a lone continuation byte", "\"\x80\"", false, false },
	{ "an overlong slash", "\"\xc0\xaf\"", false, false },
	{ "an encoded surrogate", "\"\xed\xa0\x80\"", false, false },
	{ "past U+10FFFF", "\"\xf4\x90\x80\x80\"", false, false },
	{ "a cut sequence", "\"\xe2\x82\"", false, false },
	{ "UTF-8 outside a string", "[\xc3\xa9]", false, false },
	{ "a byte order mark", "\xef\xbb\xbf{}", false, false },
	{ "a NUL byte after the value", "{}\0", false, false },
	{ "a repeated name", "{\"a\":1,\"b\":2,\"a\":3}", false, false },
	{ "a name repeated through an escape", "{\"a\":1,\"\\u0061\":2}", false, false },
	{ "a name repeated in a nested object", "{\"x\":{\"k\":1,\"k\":2}}", false, false },
	{ "the same name in sibling objects", "[{\"k\":1},{\"k\":2}]", true, false },
	{ "the same name at two depths", "{\"k\":{\"k\":{\"k\":1}}}", true, false },
	{ "many names, none repeated",
	    "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
	    "\"i\":9,\"j\":10,\"k\":11,\"l\":12}", true, false },
	{ "many names, one repeated",
	    "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
	    "\"i\":9,\"j\":10,\"k\":11,\"\\u0065\":12}", false, false },
	{ "names that differ only in length", "{\"ab\":1,\"a\":2,\"abc\":3}",
	    true, false },
};

/* jansson's verdict on bytes. */
static bool
jansson_accepts(const char *text, size_t len)
{
	json_t	*root = json_loadb(text, len, SCAN_JANSSON_FLAGS, NULL);

	json_decref(root);
	return root != NULL;
}

/* One row: the scan and jansson agree, and both say what the row says. */
static void
test_verdict(void **state)
{
	const struct verdict_row	*row = *state;
	struct scan_value		 top, member;
	char				 reason[128];
	size_t				 len = strlen(row->text);

	/* The NUL-byte row holds one more byte than strlen sees. */
	if (strcmp(row->name, "a NUL byte after the value") == 0)
		len++;
	assert_int_equal(jansson_accepts(row->text, len), row->valid);
	if (row->big) {
		assert_int_equal(scan_check(row->text, len, &top, reason,
		    sizeof(reason)), 0);
		if (top.kind != SCAN_OBJECT) {
			assert_int_equal(top.kind, SCAN_NUMBER_BIG);
			return;
		}
		scan_member(&top, "a", &member);
		assert_int_equal(member.kind, SCAN_NUMBER_BIG);
		scan_member(&top, "c", &member);
		assert_int_equal(member.kind, SCAN_INTEGER);
		assert_true(scan_integer(&member) == 1);
	} else if (row->valid) {
		assert_int_equal(scan_check(row->text, len, &top, reason,
		    sizeof(reason)), 0);
		assert_ptr_not_equal(top.start, NULL);
	} else {
		assert_int_equal(scan_check(row->text, len, &top, reason,
		    sizeof(reason)), -1);
		assert_non_null(strstr(reason, " at byte "));
		assert_int_equal(top.kind, SCAN_ABSENT);
	}
}

/* Nesting: jansson's limit of 2,048 levels, and the scan's. */
static void
test_depth(void **state)
{
	size_t	levels[] = { SCAN_MAX_DEPTH - 1, SCAN_MAX_DEPTH,
	    SCAN_MAX_DEPTH + 1 };
	char	*text, reason[128];
	size_t	i, k, n;
	struct scan_value top;

	(void)state;
	for (k = 0; k < sizeof(levels) / sizeof(levels[0]); k++) {
		n = levels[k];
		text = malloc(2 * n + 2);
		assert_non_null(text);
		/* n arrays around a number: the number is level n + 1. */
		for (i = 0; i < n; i++) {
			text[i] = '[';
			text[n + 1 + i] = ']';
		}
		text[n] = '1';
		text[2 * n + 1] = '\0';
		assert_int_equal(scan_check(text, 2 * n + 1, &top, reason,
		    sizeof(reason)) == 0, jansson_accepts(text, 2 * n + 1));
		free(text);
	}
}

/*
 * Holds what the scan reads against jansson's tree of the same text:
 * kinds, strings, integers, and every member of every object found by
 * name.
 */
static void
compare_tree(const json_t *tree, const struct scan_value *value)
{
	static const enum scan_kind	kinds[] = {
		[JSON_OBJECT] = SCAN_OBJECT, [JSON_ARRAY] = SCAN_ARRAY,
		[JSON_STRING] = SCAN_STRING, [JSON_INTEGER] = SCAN_INTEGER,
		[JSON_REAL] = SCAN_REAL, [JSON_TRUE] = SCAN_TRUE,
		[JSON_FALSE] = SCAN_FALSE, [JSON_NULL] = SCAN_NULL,
	};
	struct scan_value		member;
	const char			*name;
	json_t				*child;
	char				*text;

	assert_int_equal(value->kind, kinds[json_typeof(tree)]);
	if (json_is_string(tree)) {
		assert_int_equal(scan_string_length(value),
		    json_string_length(tree));
		text = malloc(json_string_length(tree) + 1);
		assert_non_null(text);
		scan_string_copy(value, text);
		assert_memory_equal(text, json_string_value(tree),
		    json_string_length(tree) + 1);
		free(text);
	} else if (json_is_integer(tree))
		assert_true(scan_integer(value) == json_integer_value(tree));
	else if (json_is_object(tree)) {
		assert_int_equal(scan_find(value, NULL, 0, NULL),
		    json_object_size(tree));
		json_object_foreach((json_t *)tree, name, child) {
			scan_member(value, name, &member);
			if (member.kind == SCAN_ABSENT)
				fail_msg("member \"%s\" not found in %.*s",
				    name, (int)value->len, value->start);
			compare_tree(child, &member);
		}
		scan_member(value, "no such member, surely", &member);
		assert_int_equal(member.kind, SCAN_ABSENT);
	}
}

/*
 * Reads a text again through tapes, one with room for every container
 * and one with room for a single one (read as if there were none), and
 * holds both readings against jansson's tree.
 */
static void
compare_with_tapes(const json_t *tree, const char *text, size_t len)
{
	struct scan_tape_entry	entries[64];
	struct scan_tape	tape;
	struct scan_value	top;
	size_t			rooms[] = { 64, 1 }, k, members;
	char			reason[128];

	for (k = 0; k < sizeof(rooms) / sizeof(rooms[0]); k++) {
		scan_tape_init(&tape, entries, rooms[k]);
		assert_int_equal(scan_check_find(text, len, &tape, NULL, 0,
		    NULL, &members, &top, reason, sizeof(reason)), 0);
		assert_true(top.tape == (tape.complete ? &tape : NULL));
		compare_tree(tree, &top);
	}
}

/* The texts the mutations start from. */
static const char *const seeds[] = {
	"{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
	"\"optional\":false,\"field\":\"id\"}],\"name\":\"s.Value\"},"
	"\"payload\":{\"before\":null,\"after\":{\"id\":42,\"hostname\":"
	"\"srv-1\",\"ip_address\":\"10.0.0.5/24\",\"nic_mac\":null},"
	"\"source\":{\"lsn\":24023128,\"snapshot\":\"false\",\"sequence\":"
	"\"[\\\"1\\\",\\\"2\\\"]\"},\"op\":\"c\",\"ts_ms\":-1.5e3}}",
	"{\"a\\u00e9\":\"\\ud83d\\ude00\",\"b\":[1,-0,0.25,1E+2,true,false,"
	"null,{}],\"c\":{\"d\":{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}}}",
	"[\"caf\xc3\xa9\",9223372036854775807,-9223372036854775808,{\"k\":"
	"{\"k\":[]}},\"\\u0041\"]",
};

/* Bytes a mutation puts in: JSON's own, and bytes that break it. */
static const char mutation_bytes[] = "{}[]\":,\\ \t\n0123456789.eE+-tfnlrsu"
    "a\x01\x1f\x7f\x80\xbf\xc3\xe2\xed\xf0\xf4\xff";

/* A small deterministic generator (xorshift64), so failures repeat. */
static uint64_t
next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Mutates text (len bytes, room for len + 8) in one to three ways. */
static size_t
mutate(char *text, size_t len, uint64_t *rng)
{
	size_t	edits = 1 + next_random(rng) % 3, e, at;
	char	byte;

	for (e = 0; e < edits && len > 0; e++) {
		at = next_random(rng) % len;
		byte = mutation_bytes[next_random(rng) %
		    (sizeof(mutation_bytes) - 1)];
		switch (next_random(rng) % 4) {
		case 0:		/* replace a byte */
			text[at] = byte;
			break;
		case 1:		/* insert a byte */
			memmove(text + at + 1, text + at, len - at);
			text[at] = byte;
			len++;
			break;
		case 2:		/* delete a byte */
			memmove(text + at, text + at + 1, len - at - 1);
			len--;
			break;
		default:	/* copy a byte to another place */
			text[at] = text[next_random(rng) % len];
			break;
		}
	}
	return len;
}

/* Tells whether jansson refused a text for a number beyond its range. */
static bool
number_too_big(const json_error_t *jerr)
{
	return strstr(jerr->text, "too big") != NULL ||
	    strstr(jerr->text, "real number overflow") != NULL;
}

/*
 * Property: on every mutation of the seeds, the scan accepts exactly what
 * jansson accepts, and reads what it accepts as jansson's tree holds it;
 * but for numbers jansson refuses as too big, which the scan takes.
 */
static void
test_mutations_agree_with_jansson(void **state)
{
	uint64_t	 rng = 0x9e3779b97f4a7c15ULL;
	size_t		 s, round, len, accepted = 0, refused = 0, big = 0;
	char		*text, reason[128];
	json_t		*tree;
	json_error_t	 jerr;
	struct scan_value top;

	(void)state;
	for (s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		text = malloc(strlen(seeds[s]) + 64);
		assert_non_null(text);
		for (round = 0; round < 20000; round++) {
			len = strlen(seeds[s]);
			memcpy(text, seeds[s], len);
			if (round > 0)
				len = mutate(text, len, &rng);
			tree = json_loadb(text, len, SCAN_JANSSON_FLAGS, &jerr);
			if (scan_check(text, len, &top, reason,
			    sizeof(reason)) == 0) {
				if (tree == NULL && number_too_big(&jerr)) {
					big++;
					continue;
				}
				if (tree == NULL)
					fail_msg("the scan accepts what jansson "
					    "refuses: %.*s", (int)len, text);
				compare_tree(tree, &top);
				compare_with_tapes(tree, text, len);
				accepted++;
			} else {
				if (tree != NULL)
					fail_msg("the scan refuses (%s) what "
					    "jansson accepts: %.*s", reason,
					    (int)len, text);
				refused++;
			}
			json_decref(tree);
		}
		free(text);
	}
	/* Both verdicts must have been reached many times to mean much. */
	assert_true(accepted > 1000);
	assert_true(refused > 1000);
}

/* Members found by their decoded names; kinds and integers as written. */
static void
test_members(void **state)
{
	const char		*text = " { \"op\" : \"c\" , \"\\u006Fp2\":"
	    "-12 ,\"r\":1.0,\"o\":{\"x\":[1,{\"y\":\"}\"}]},\"n\":null} ";
	struct scan_value	 top, member, inner;
	char			 reason[128], buf[8];

	(void)state;
	assert_int_equal(scan_check(text, strlen(text), &top, reason,
	    sizeof(reason)), 0);
	assert_int_equal(top.kind, SCAN_OBJECT);
	assert_int_equal(scan_find(&top, NULL, 0, NULL), 5);
	scan_member(&top, "op", &member);
	assert_int_equal(member.kind, SCAN_STRING);
	assert_int_equal(scan_string_length(&member), 1);
	scan_string_copy(&member, buf);
	assert_string_equal(buf, "c");
	scan_member(&top, "op2", &member);
	assert_int_equal(member.kind, SCAN_INTEGER);
	assert_true(scan_integer(&member) == -12);
	scan_member(&top, "r", &member);
	assert_int_equal(member.kind, SCAN_REAL);
	scan_member(&top, "n", &member);
	assert_int_equal(member.kind, SCAN_NULL);
	scan_member(&top, "o", &member);
	assert_int_equal(member.kind, SCAN_OBJECT);
	scan_member(&member, "x", &inner);
	assert_int_equal(inner.kind, SCAN_ARRAY);
	assert_memory_equal(inner.start, "[1,{\"y\":\"}\"}]", inner.len);
	scan_member(&member, "y", &inner);
	assert_int_equal(inner.kind, SCAN_ABSENT);
	scan_member(&inner, "y", &member);
	assert_int_equal(member.kind, SCAN_ABSENT);
	assert_int_equal(scan_find(&inner, NULL, 0, NULL), 0);
}

/* Top-level members found by the check itself, and the tape's ends. */
static void
test_check_find(void **state)
{
	static const char *const names[] = { "schema", "payload", "none" };
	const char		*text = "{\"schema\":{\"a\":[1,{}]},\"payload\":"
	    "{\"op\":\"c\"}}";
	struct scan_tape_entry	 entries[8];
	struct scan_tape	 tape;
	struct scan_value	 top, found[3], op;
	size_t			 members;
	char			 reason[128];

	(void)state;
	scan_tape_init(&tape, entries, 8);
	assert_int_equal(scan_check_find(text, strlen(text), &tape, names, 3,
	    found, &members, &top, reason, sizeof(reason)), 0);
	assert_int_equal(members, 2);
	assert_int_equal(found[0].kind, SCAN_OBJECT);
	assert_memory_equal(found[0].start, "{\"a\":[1,{}]}", found[0].len);
	assert_int_equal(found[1].kind, SCAN_OBJECT);
	assert_int_equal(found[2].kind, SCAN_ABSENT);
	scan_member(&found[1], "op", &op);
	assert_int_equal(op.kind, SCAN_STRING);
	/* The whole, schema, its array, the {} inside, payload. */
	assert_int_equal(tape.count, 5);
	assert_true(tape.complete);
	assert_int_equal(tape.entries[1].start, 10);
	assert_int_equal(tape.entries[1].end, 10 + found[0].len);
	/* A refused text finds nothing. */
	text = "{\"schema\":1,\"schema\":2}";
	assert_int_equal(scan_check_find(text, strlen(text), &tape, names, 3,
	    found, &members, &top, reason, sizeof(reason)), -1);
	assert_non_null(strstr(reason, "duplicate object key"));
	assert_int_equal(found[0].kind, SCAN_ABSENT);
}

/* Runs the tables and the properties. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_find),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_mutations_agree_with_jansson),
	};
	int failed;

	failed = support_run_rows("scan verdicts", test_verdict, verdict_rows,
	    sizeof(verdict_rows[0]), ROWS(verdict_rows));
	failed += cmocka_run_group_tests_name("scan", tests, NULL, NULL);
	return failed != 0;
}
