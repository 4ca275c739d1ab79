/* Unit tests of the batch: the net effect per entity key, offsets, skips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/batch.h"
#include "test_support.h"

static const char *const topic_names[] = { "servers", "subnets", "marks" };

/* One event of a row: kind 'u' upsert, 'd' versioned delete, 't' tombstone. */
struct step {
	char		 kind;
	const char	*id;
	int64_t		 version;	/* -1: none (the offset orders) */
};

/* What the JSON record of key "k" must say. */
struct row {
	const char	*name;
	struct step	 steps[6];
	const char	*c_op;		/* NULL: JSON null */
	int64_t		 v;		/* -1: JSON null */
	const char	*t;		/* NULL: JSON null */
	int64_t		 source_offset;	/* the event the record names */
};

static const struct row rows[] = {
	{ "one upsert", { { 'u', "k", 5 } }, "upsert", 5, NULL, 0 },
	{ "highest version wins", { { 'u', "k", 5 }, { 'u', "k", 9 },
	    { 'u', "k", 7 } }, "upsert", 9, NULL, 1 },
	{ "first of equal versions wins", { { 'u', "k", 9 }, { 'u', "k", 9 } },
	    "upsert", 9, NULL, 0 },
	{ "offsets order events without a version", { { 'u', "k", -1 },
	    { 'u', "k", -1 }, { 'u', "k", -1 } }, "upsert", 2, NULL, 2 },
	{ "a versioned delete is an ordinary event", { { 'u', "k", 3 },
	    { 'd', "k", 4 } }, "delete", 4, NULL, 1 },
	{ "tombstone alone", { { 't', "k", -1 } }, NULL, -1, "only", 0 },
	{ "tombstone after the winner", { { 'u', "k", 3 }, { 't', "k", -1 } },
	    "upsert", 3, "after", 1 },
	{ "tombstone before the winner", { { 't', "k", -1 }, { 'u', "k", 3 } },
	    "upsert", 3, "before", 1 },
	{ "stale event after a tombstone", { { 'u', "k", 5 }, { 't', "k", -1 },
	    { 'u', "k", 2 } }, "upsert", 5, "after", 1 },
	{ "last tombstone counts", { { 't', "k", -1 }, { 'u', "k", 3 },
	    { 't', "k", -1 } }, "upsert", 3, "after", 2 },
	{ "other keys do not mix", { { 'u', "x", 99 }, { 'u', "k", 1 },
	    { 't', "x", -1 } }, "upsert", 1, NULL, 1 },
};

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
	change.op = step->kind == 'u' ? CHANGE_UPSERT : CHANGE_DELETE;
	change.id = strdup(step->id);
	change.vrf = strdup("");
	change.hostname = strdup("h");
	change.has_version = step->version >= 0;
	change.version = step->version;
	change.unconditional = step->kind == 't';
	batch_add_change(batch, 0, 0, (int64_t)batch->count, &change, "k", 1,
	    step->kind == 't' ? NULL : "{}", 2, NULL);
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
	json_t *root, *record;
	size_t i, skipped;
	char *text;

	batch_init(&batch, topic_names, 3);
	for (i = 0; i < 6 && row->steps[i].kind != '\0'; i++)
		add_step(&batch, &row->steps[i]);
	text = batch_build_json(&batch, batch.count, "g", "ipam_state", false,
	    position_none, NULL, &skipped);
	assert_non_null(text);
	root = json_loads(text, 0, NULL);
	assert_non_null(root);
	record = find_record(root, "k");
	assert_non_null(record);
	if (row->c_op == NULL)
		assert_true(json_is_null(json_object_get(record, "c_op")));
	else
		assert_string_equal(json_string_value(json_object_get(record,
		    "c_op")), row->c_op);
	if (row->v < 0)
		assert_true(json_is_null(json_object_get(record, "v")));
	else
		assert_int_equal(json_integer_value(json_object_get(record, "v")),
		    row->v);
	if (row->t == NULL)
		assert_true(json_is_null(json_object_get(record, "t")));
	else
		assert_string_equal(json_string_value(json_object_get(record,
		    "t")), row->t);
	assert_int_equal(json_integer_value(json_object_get(record, "off")),
	    row->source_offset);
	/* One record per key, and the offsets cover the whole batch. */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
	    json_object_get(root, "offsets"), 0), "next")), batch.count);
	assert_true(json_is_null(json_object_get(json_array_get(
	    json_object_get(root, "offsets"), 0), "expected")));
	assert_int_equal(skipped, 0);
	json_decref(root);
	free(text);
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

	/* Dropping entries of a partition, then the front, frees them. */
	batch_drop_partition(&batch, 0, 0);
	assert_int_equal(batch.count, 0);
	assert_int_equal(batch.bytes, 0);
	batch_drop_front(&batch, 5);
	free(batch.entries);
}

/* Runs the table and the single tests. */
int
main(void)
{
	const struct CMUnitTest single[] = {
		cmocka_unit_test(test_skip_and_dead),
	};
	int failed;

	failed = support_run_rows("batch net effect", test_net_effect, rows,
	    sizeof(rows[0]), ROWS(rows));
	failed += cmocka_run_group_tests_name("batch", single, NULL, NULL);
	return failed ? 1 : 0;
}
