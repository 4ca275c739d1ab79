/* Unit tests of the batch: the net effect per entity key, offsets, skips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/batch.h"
#include "test_support.h"

static const char *const topic_names[] = { "servers", "subnets", "marks" };

/*
 * One event of a row: kind 'u' upsert, 'd' delete, 't' tombstone, 'k' an
 * upsert whose hostname is a TOAST placeholder (kept as stored).
 */
struct step {
	char		 kind;
	const char	*id;
	int64_t		 version;	/* -1: none (Kafka order) */
};

/* What the JSON record of key "k" must say (-1: JSON null). */
struct row {
	const char	*name;
	struct step	 steps[6];
	int64_t		 gv;		/* the guarded prefix's highest version */
	int64_t		 lo[3];		/* earlier highs, -1 ends */
	bool		 reset;
	const char	*op;
	int64_t		 v;		/* the version stored */
	int64_t		 source_offset;	/* the event the record names */
	int64_t		 stale;		/* events the batch finds stale */
};

static const struct row rows[] = {
	{ "one upsert", { { 'u', "k", 5 } }, 5, { -1 }, false, "upsert", 5,
	    0, 0 },
	{ "highest version wins, a lower later one is stale",
	    { { 'u', "k", 5 }, { 'u', "k", 9 }, { 'u', "k", 7 } }, 9,
	    { 5, -1 }, false, "upsert", 9, 1, 1 },
	{ "first of equal versions wins", { { 'u', "k", 9 }, { 'u', "k", 9 } },
	    9, { -1 }, false, "upsert", 9, 0, 1 },
	{ "events without a version apply in Kafka order", { { 'u', "k", -1 },
	    { 'u', "k", -1 }, { 'u', "k", -1 } }, -1, { -1 }, true, "upsert",
	    -1, 2, 0 },
	{ "a versioned delete is a tombstone with its version",
	    { { 'u', "k", 3 }, { 'd', "k", 4 } }, 4, { 3, -1 }, false,
	    "delete", 4, 1, 0 },
	{ "an unversioned delete forgets", { { 'u', "k", 3 },
	    { 'd', "k", -1 } }, 3, { -1 }, true, "forget", -1, 1, 0 },
	{ "tombstone alone forgets", { { 't', "k", -1 } }, -1, { -1 }, true,
	    "forget", -1, 0, 0 },
	{ "tombstone after the prefix", { { 'u', "k", 3 }, { 't', "k", -1 } },
	    3, { -1 }, true, "forget", -1, 1, 0 },
	{ "tombstone before a versioned upsert", { { 't', "k", -1 },
	    { 'u', "k", 3 } }, -1, { -1 }, true, "upsert", 3, 1, 0 },
	{ "a lower version after a tombstone applies", { { 'u', "k", 12 },
	    { 't', "k", -1 }, { 'u', "k", 1 } }, 12, { -1 }, true, "upsert",
	    1, 2, 0 },
	{ "after a reset, versions guard again", { { 't', "k", -1 },
	    { 'u', "k", 5 }, { 'u', "k", 3 } }, -1, { -1 }, true, "upsert", 5,
	    1, 1 },
	{ "an unversioned event, then a versioned one", { { 'u', "k", -1 },
	    { 'u', "k", 2 } }, -1, { -1 }, true, "upsert", 2, 1, 0 },
	{ "last tombstone counts", { { 't', "k", -1 }, { 'u', "k", 3 },
	    { 't', "k", -1 } }, -1, { -1 }, true, "forget", -1, 2, 0 },
	{ "other keys do not mix", { { 'u', "x", 99 }, { 'u', "k", 1 },
	    { 't', "x", -1 } }, 1, { -1 }, false, "upsert", 1, 1, 0 },
};

/* Reads an integer member that may be null (-1). */
static int64_t
json_or_minus_one(json_t *record, const char *name)
{
	json_t *value = json_object_get(record, name);

	assert_non_null(value);
	return json_is_null(value) ? -1 : (int64_t)json_integer_value(value);
}

/* Where every partition stands in the tests: nothing stored yet. */
static const struct batch_position *
position_none(void *arg, int topic, int32_t partition)
{
	static struct batch_position position;

	position.topic = topic_names[topic];
	position.partition = partition;
	position.stored = false;
	position.next_offset = 0;
	return &position;
}

/* A partition whose offsets below 2 are applied already. */
static const struct batch_position *
position_two(void *arg, int topic, int32_t partition)
{
	static struct batch_position position;

	position.topic = topic_names[topic];
	position.partition = partition;
	position.stored = true;
	position.next_offset = 2;
	return &position;
}

/* Adds one server event to a batch at the next offset. */
static void
add_step(struct batch *batch, const struct step *step)
{
	struct change change;

	memset(&change, 0, sizeof(change));
	change.entity = CHANGE_SERVER;
	change.op = step->kind == 'd' ? CHANGE_DELETE : CHANGE_UPSERT;
	change.id = strdup(step->id);
	change.vrf = strdup("");
	if (step->kind == 'k')
		change.keep = CHANGE_KEEP_HOSTNAME;
	else
		change.hostname = strdup(step->id);
	change.has_version = step->version >= 0;
	change.version = step->version;
	change.unconditional = step->kind == 't';
	batch_add_change(batch, 0, 0, (int64_t)batch->count, &change, "k", 1,
	    step->kind == 't' ? NULL : "{}", 2, NULL);
}

/* Builds the JSON of a whole batch and parses it. */
static json_t *
build(struct batch *batch, batch_position_fn *position, size_t *skipped)
{
	json_t *root;
	char *text;

	text = batch_build_json(batch, batch->count, "g", "ipam_state", false,
	    position, NULL, skipped);
	assert_non_null(text);
	root = json_loads(text, 0, NULL);
	assert_non_null(root);
	free(text);
	return root;
}

/* Finds the server record of an id in the built JSON. */
static json_t *
find_record(json_t *root, const char *id)
{
	json_t *record;
	size_t i;

	json_array_foreach(json_object_get(root, "servers"), i, record) {
		if (strcmp(json_string_value(json_object_get(record, "id")), id)
		    == 0)
			return record;
	}
	return NULL;
}

/* One row: build the batch, check the record of key "k". */
static void
test_net_effect(void **state)
{
	const struct row *row = *state;
	struct batch batch;
	json_t *root, *record, *lo, *topics;
	size_t i, skipped;

	batch_init(&batch, topic_names, 3);
	for (i = 0; i < 6 && row->steps[i].kind != '\0'; i++)
		add_step(&batch, &row->steps[i]);
	root = build(&batch, position_none, &skipped);
	record = find_record(root, "k");
	assert_non_null(record);
	assert_int_equal(json_or_minus_one(record, "gv"), row->gv);
	lo = json_object_get(record, "lo");
	for (i = 0; row->lo[i] >= 0; i++)
		assert_int_equal(json_integer_value(json_array_get(lo, i)),
		    row->lo[i]);
	assert_int_equal(json_array_size(lo), i);
	assert_int_equal(json_is_true(json_object_get(record, "reset")),
	    row->reset);
	assert_string_equal(json_string_value(json_object_get(record, "op")),
	    row->op);
	assert_int_equal(json_or_minus_one(record, "v"), row->v);
	assert_int_equal(json_integer_value(json_object_get(record, "off")),
	    row->source_offset);
	topics = json_object_get(json_object_get(root, "stale_known"),
	    "topics");
	assert_int_equal(json_integer_value(json_object_get(topics,
	    "servers")), row->stale);
	/* One record per key, and the offsets cover the whole batch. */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
	    json_object_get(root, "offsets"), 0), "next")), batch.count);
	assert_true(json_is_null(json_object_get(json_array_get(
	    json_object_get(root, "offsets"), 0), "expected")));
	assert_int_equal(skipped, 0);
	json_decref(root);
	batch_clear(&batch);
	free(batch.entries);
}

/*
 * A TOAST placeholder keeps a field: from an earlier event of the batch,
 * else as stored ("keep" names it), and after a tombstone it has no value.
 */
static void
test_kept_fields(void **state)
{
	static const struct {
		struct step	 steps[3];
		const char	*hostname;	/* NULL: JSON null */
		bool		 kept;		/* "keep" names hostname */
	} cases[] = {
		{ { { 'k', "k", 2 } }, NULL, true },
		{ { { 'u', "k", 1 }, { 'k', "k", 2 } }, "k", false },
		{ { { 't', "k", -1 }, { 'k', "k", 2 } }, NULL, false },
		{ { { 'u', "k", -1 }, { 'k', "k", -1 } }, "k", false },
	};
	struct batch batch;
	json_t *root, *record, *keep;
	size_t c, i, skipped;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		batch_init(&batch, topic_names, 3);
		for (i = 0; i < 3 && cases[c].steps[i].kind != '\0'; i++)
			add_step(&batch, &cases[c].steps[i]);
		root = build(&batch, position_none, &skipped);
		record = find_record(root, "k");
		if (cases[c].hostname == NULL)
			assert_true(json_is_null(json_object_get(record,
			    "hostname")));
		else
			assert_string_equal(json_string_value(json_object_get(
			    record, "hostname")), cases[c].hostname);
		keep = json_object_get(record, "keep");
		assert_int_equal(json_array_size(keep), cases[c].kept ? 1 : 0);
		if (cases[c].kept)
			assert_string_equal(json_string_value(json_array_get(keep,
			    0)), "hostname");
		json_decref(root);
		batch_clear(&batch);
		free(batch.entries);
	}
}

/* A truncate is a record of its own, with its lsn, not a keyed change. */
static void
test_truncate(void **state)
{
	struct batch batch;
	struct change change;
	json_t *root, *truncate;
	size_t skipped;

	batch_init(&batch, topic_names, 3);
	memset(&change, 0, sizeof(change));
	change.entity = CHANGE_SERVER;
	change.op = CHANGE_TRUNCATE;
	change.vrf = strdup("");
	change.has_lsn = true;
	change.lsn = 4242;
	batch_add_change(&batch, 0, 3, 17, &change, NULL, 0, "{}", 2, NULL);
	root = build(&batch, position_none, &skipped);
	assert_int_equal(json_array_size(json_object_get(root, "servers")), 0);
	truncate = json_array_get(json_object_get(root, "truncates"), 0);
	assert_non_null(truncate);
	assert_string_equal(json_string_value(json_object_get(truncate,
	    "entity")), "server");
	assert_int_equal(json_integer_value(json_object_get(truncate, "lsn")),
	    4242);
	assert_string_equal(json_string_value(json_object_get(truncate,
	    "topic")), "servers");
	assert_int_equal(json_integer_value(json_object_get(truncate, "off")),
	    17);
	json_decref(root);
	batch_clear(&batch);
	free(batch.entries);
}

/* Entries below the stored offset are skipped; dead letters keep bytes. */
static void
test_skip_and_dead(void **state)
{
	static const struct step steps[] = { { 'u', "a", 1 }, { 'u', "b", 1 },
	    { 'u', "c", 1 } };
	struct batch batch;
	json_t *root, *letter, *offset;
	size_t i, skipped;
	char *text;

	batch_init(&batch, topic_names, 3);
	for (i = 0; i < 3; i++)
		add_step(&batch, &steps[i]);
	batch_add_dead(&batch, 0, 0, 3, "bad \"json\"", "key", 3, "\x00\xff", 2,
	    "{\"h\":\"v\"}");
	text = batch_build_json(&batch, batch.count, "g", "ipam_state_rebuild",
	    true, position_two, NULL, &skipped);
	root = json_loads(text, 0, NULL);
	assert_int_equal(skipped, 2);
	assert_null(find_record(root, "a"));
	assert_null(find_record(root, "b"));
	assert_non_null(find_record(root, "c"));
	assert_string_equal(json_string_value(json_object_get(root, "schema")),
	    "ipam_state_rebuild");
	assert_true(json_is_false(json_object_get(root, "audit")));
	assert_true(json_is_false(json_object_get(root, "derive")));
	letter = json_array_get(json_object_get(root, "dead"), 0);
	assert_string_equal(json_string_value(json_object_get(letter, "value")),
	    "00ff");
	assert_string_equal(json_string_value(json_object_get(letter, "key")),
	    "6b6579");
	assert_string_equal(json_string_value(json_object_get(letter, "reason")),
	    "bad \"json\"");
	offset = json_array_get(json_object_get(root, "offsets"), 0);
	assert_int_equal(json_integer_value(json_object_get(offset, "expected")),
	    2);
	assert_int_equal(json_integer_value(json_object_get(offset, "next")), 4);
	json_decref(root);
	free(text);

	/*
	 * Headers count in the batch's bytes as key and value do: a batch
	 * of messages with large headers reaches its byte bound.
	 */
	{
		size_t before = batch.bytes;
		char *headers = malloc(65536);

		assert_non_null(headers);
		memset(headers, 'h', 65535);
		headers[65535] = '\0';
		batch_add_dead(&batch, 0, 0, 4, "bad", "k", 1, "v", 1, headers);
		assert_true(batch.bytes >= before + 65535 + 2);
		free(headers);
	}

	/* Dropping entries of a partition, then the front, frees them. */
	batch_drop_partition(&batch, 0, 0);
	assert_int_equal(batch.count, 0);
	assert_int_equal(batch.bytes, 0);
	batch_drop_front(&batch, 5);
	free(batch.entries);
}

/* Runs the table and the single tests. */
/*
 * A record's fingerprint: FNV-1a of the key's length (8 bytes,
 * little-endian), the key, 1 or 0 (a value or a tombstone) and the value,
 * the same on every machine (a database outlives its host); a tombstone
 * is not an empty value, and the key's end is not moved into the value.
 */
static void
test_fingerprint(void **state)
{
	(void)state;
	assert_true(batch_fingerprint("7", 1, "{\"a\":1}", 7) ==
	    -1382400098653014868LL);
	assert_true(batch_fingerprint("7", 1, NULL, 0) ==
	    8860411215930754365LL);
	assert_true(batch_fingerprint("7", 1, "", 0) ==
	    8860410116419126154LL);
	assert_true(batch_fingerprint("ab", 2, "c", 1) !=
	    batch_fingerprint("a", 1, "bc", 2));
	assert_true(batch_fingerprint(NULL, 0, "x", 1) ==
	    batch_fingerprint("", 0, "x", 1));
}

int
main(void)
{
	const struct CMUnitTest single[] = {
		cmocka_unit_test(test_skip_and_dead),
		cmocka_unit_test(test_kept_fields),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_fingerprint),
	};
	int failed;

	failed = support_run_rows("batch net effect", test_net_effect, rows,
	    sizeof(rows[0]), ROWS(rows));
	failed += cmocka_run_group_tests_name("batch", single, NULL, NULL);
	return failed ? 1 : 0;
}
