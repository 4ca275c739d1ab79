/*
 * The batch's JSON argument written as text, held against the jansson
 * builder it replaced (batch_oracle.c): randomized and hostile batches of
 * every kind of entry must read, parsed by jansson, as exactly the same
 * document, and never hold what PostgreSQL's jsonb refuses.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_oracle.h"
#include "consumers/batch.h"
#include "consumers/decode_fields.h"
#include "test_support.h"

/*
 * Topic names: the daemon's own, one with characters to escape, one that
 * repeats the first (their stale counts share a key), one that is not
 * UTF-8 (jansson refused it wherever it went).
 */
static const char *const topic_names[] = {
	"servers", "subnets", "marks", "in\"ve\\nt\xc3\xb3ry\n", "servers",
	"bad\xff",
};
#define TOPICS	(sizeof(topic_names) / sizeof(topic_names[0]))
#define PARTS	3

/*
 * How random_batch() draws: a key's events in one partition, as Kafka
 * places them, and requests on marks only, as the decoder makes them (so
 * that they can fold); or anything anywhere.
 */
static bool keyed_partitions;

/* A small, seeded generator, so a failure repeats. */
static uint64_t rng_state;

/* The next random number (xorshift64*). */
static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* A random number below n. */
static size_t
rng_below(size_t n)
{
	return (size_t)(rng() % n);
}

/*
 * Pieces a random string is made of: plain text, what JSON escapes,
 * controls, DEL, U+2028, multibyte and the last code points, and bytes
 * that are not UTF-8 (a lone continuation, an overlong NUL, a surrogate,
 * a cut sequence, 0xff, past U+10FFFF).
 */
static const char *const pieces[] = {
	"a", "host-01", "Z", "/", "\"", "\\", "\\\"", "\b", "\f", "\n", "\r",
	"\t", "\x01", "\x1f", "\x7f", "\xc2\x80", "\xc3\xa9", "\xe2\x80\xa8",
	"\xe2\x82\xac", "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
	"\\u0000", "{\"a\":1}", " ",
	"\x80", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xff", "\xf5\x80\x80\x80",
};
#define PIECES		(sizeof(pieces) / sizeof(pieces[0]))
#define VALID_PIECES	(PIECES - 6)

/*
 * A new random string of up to max pieces; one time in invalid_one it
 * may hold bytes that are not UTF-8.
 */
static char *
random_text(size_t max, size_t invalid_one)
{
	size_t i, count = rng_below(max + 1), kinds;
	char *text = calloc(1, 8 * max + 1);

	assert_non_null(text);
	kinds = rng_below(invalid_one) == 0 ? PIECES : VALID_PIECES;
	for (i = 0; i < count; i++)
		strcat(text, pieces[rng_below(kinds)]);
	return text;
}

/* A random string, or NULL one time in four. */
static char *
random_optional(void)
{
	return rng_below(4) == 0 ? NULL : random_text(6, 8);
}

/* A random address of either family. */
static void
random_addr(struct ip_addr *addr)
{
	size_t i;

	memset(addr, 0, sizeof(*addr));
	addr->family = rng_below(2) ? AF_INET : AF_INET6;
	for (i = 0; i < (addr->family == AF_INET ? 4u : 16u); i++)
		addr->bytes[i] = (uint8_t)rng();
}

/* A random version: few values, so that keys hold stale events. */
static int64_t
random_version(void)
{
	static const int64_t big[] = { INT64_MAX, INT64_MIN, -1, 0 };

	if (rng_below(20) == 0)
		return big[rng_below(4)];
	return (int64_t)rng_below(6);
}

/* Ids from a small pool, so that keys repeat; some not UTF-8. */
static char *
random_id(char *const *ids, size_t count)
{
	char *id = strdup(ids[rng_below(count)]);

	assert_non_null(id);
	return id;
}

/* A random change of any entity and kind. */
static void
random_change(struct change *change, char *const *ids, size_t id_count)
{
	size_t i;

	memset(change, 0, sizeof(*change));
	change->entity = (enum change_entity)rng_below(3);
	change->op = rng_below(3) ? CHANGE_UPSERT : CHANGE_DELETE;
	if (rng_below(25) == 0)
		change->op = CHANGE_TRUNCATE;
	change->id = change->op == CHANGE_TRUNCATE ? NULL :
	    random_id(ids, id_count);
	change->vrf = rng_below(3) ? strdup("") : random_text(3, 6);
	if (rng_below(20) == 0) {
		/* change.h says a vrf is always set; a NULL is hostile. */
		free(change->vrf);
		change->vrf = NULL;
	}
	change->has_version = rng_below(4) != 0;
	change->version = change->has_version ? random_version() : 0;
	change->has_lsn = rng_below(2);
	change->lsn = change->has_lsn ? (int64_t)rng() : 0;
	change->snapshot = rng_below(5) == 0;
	change->unconditional = change->op != CHANGE_TRUNCATE &&
	    rng_below(10) == 0;
	change->keep = keyed_partitions && rng_below(4) != 0 ? 0 :
	    (unsigned)rng_below(64);
	change->hostname = random_optional();
	change->has_ip = rng_below(5) != 0;
	random_addr(&change->ip);
	change->nic_mac = random_optional();
	change->device_type = random_optional();
	change->manufacture = random_optional();
	change->name = random_optional();
	random_addr(&change->cidr.addr);
	change->cidr.length = (int)rng_below(129);
	change->pool_count = rng_below(4);
	change->pools = calloc(change->pool_count + 1, sizeof(*change->pools));
	assert_non_null(change->pools);
	for (i = 0; i < change->pool_count; i++) {
		random_addr(&change->pools[i].first);
		random_addr(&change->pools[i].last);
	}
	change->ping = rng_below(2);
	change->mark_status = rng_below(2) ? MARK_RESERVED : MARK_QUARANTINE;
	change->description = random_optional();
	change->reason = random_optional();
	if ((!keyed_partitions || change->entity == CHANGE_MARK) &&
	    change->op != CHANGE_TRUNCATE && rng_below(6) == 0) {
		change->request_id = random_text(4, 6);
		change->requester = random_optional();
		change->if_available = rng_below(2);
		change->if_match = random_optional();
	} else if (change->entity != CHANGE_MARK && rng_below(4) == 0)
		change->requester = random_optional();
}

/* Random bytes of any value, or NULL one time in four. */
static uint8_t *
random_bytes(size_t *len)
{
	uint8_t *bytes;
	size_t i;

	*len = rng_below(40);
	if (rng_below(4) == 0)
		return NULL;
	bytes = malloc(*len + 1);
	assert_non_null(bytes);
	for (i = 0; i < *len; i++)
		bytes[i] = (uint8_t)rng();
	return bytes;
}

/*
 * Headers as the intake writes them (any bytes, names repeated, values
 * that are not UTF-8 or hold NUL), "[]" for none, or NULL.
 */
static char *
random_headers(void)
{
	struct decode_header headers[4];
	uint8_t *values[4];
	char *names[4], *json;
	size_t i, count = rng_below(5);

	if (count == 4)
		return rng_below(2) ? NULL : strdup("[]");
	for (i = 0; i < count; i++) {
		names[i] = random_text(3, 3);
		values[i] = random_bytes(&headers[i].value_len);
		headers[i].name = rng_below(8) ? names[i] : NULL;
		headers[i].value = values[i];
	}
	json = decode_headers_json(headers, count);
	for (i = 0; i < count; i++) {
		free(names[i]);
		free(values[i]);
	}
	return json;
}

/* Where each partition of a round stands (skips below next_offset). */
struct positions {
	struct batch_position	at[TOPICS][PARTS];
	int			missing_topic;	/* -1: every one assigned */
};

/* Looks a partition up in the round's table. */
static const struct batch_position *
position_of(void *arg, int topic, int32_t partition)
{
	struct positions *positions = arg;

	if (topic == positions->missing_topic)
		return NULL;
	return &positions->at[topic][partition];
}

/* Fills a random batch: changes, truncates, requests, dead letters. */
static void
random_batch(struct batch *batch, struct positions *positions)
{
	int64_t next[TOPICS][PARTS];
	char *ids[6], *headers;
	struct change change;
	uint8_t *key, *value;
	size_t i, n, key_len, value_len, id_count = 1 + rng_below(6);
	size_t topic, part;

	for (i = 0; i < id_count; i++)
		ids[i] = random_text(3, 10);
	for (topic = 0; topic < TOPICS; topic++) {
		for (part = 0; part < PARTS; part++) {
			next[topic][part] = (int64_t)rng_below(5);
			positions->at[topic][part].topic = topic_names[topic];
			positions->at[topic][part].partition = (int32_t)part;
			positions->at[topic][part].stored = rng_below(2);
			positions->at[topic][part].next_offset =
			    (int64_t)rng_below(8);
		}
	}
	positions->missing_topic = rng_below(30) == 0 ?
	    (int)rng_below(TOPICS) : -1;
	n = 1 + rng_below(60);
	for (i = 0; i < n; i++) {
		topic = rng_below(TOPICS);
		part = rng_below(PARTS);
		next[topic][part] += 1 + (int64_t)rng_below(2);
		key = random_bytes(&key_len);
		value = random_bytes(&value_len);
		headers = random_headers();
		if (rng_below(6) == 0) {
			char *reason = rng_below(4) ? random_text(8, 4) :
			    strdup("unparsable: \"x\"");

			batch_add_dead(batch, (int)topic, (int32_t)part,
			    next[topic][part], reason, key, key_len, value,
			    value_len, headers);
			free(reason);
		} else {
			random_change(&change, ids, id_count);
			if (keyed_partitions && change.id != NULL) {
				/* The topic and partition of its key. */
				topic = (change.id[0] == '\0' ? 0u :
				    (unsigned char)change.id[0]) % TOPICS;
				part = strlen(change.id) % PARTS;
				next[topic][part] += 1;
			}
			batch_add_change(batch, (int)topic, (int32_t)part,
			    next[topic][part], &change, key, key_len, value,
			    value_len, headers);
		}
		batch->entries[batch->count - 1].bare = rng_below(5) == 0;
		free(key);
		free(value);
		free(headers);
	}
	for (i = 0; i < id_count; i++)
		free(ids[i]);
}

/* Tells whether JSON text holds the escape \u0000, which jsonb refuses. */
static bool
holds_nul_escape(const char *text)
{
	for (; *text != '\0'; text++) {
		if (*text != '\\')
			continue;
		if (strncmp(text + 1, "u0000", 5) == 0)
			return true;
		text++;		/* the escaped character */
	}
	return false;
}

/* Says where two texts first differ, for the failure message. */
static void
report_difference(uint64_t seed, const char *text, const char *oracle)
{
	size_t i;

	for (i = 0; text[i] != '\0' && text[i] == oracle[i]; i++)
		;
	print_error("seed %llu: the texts differ\n"
	    "written: %s\noracle:  %s\nfirst different byte at %zu\n",
	    (unsigned long long)seed, text, oracle, i);
}

/* Builds one batch both ways and compares the documents. */
static void
check_round(uint64_t seed)
{
	struct positions positions;
	struct batch batch;
	json_t *written, *expected;
	json_error_t error;
	size_t skipped, oracle_skipped, n;
	char *text, *oracle;
	bool rebuild;

	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	batch_init(&batch, topic_names, TOPICS);
	random_batch(&batch, &positions);
	n = rng_below(4) == 0 ? rng_below(batch.count + 1) : batch.count;
	rebuild = rng_below(4) == 0;
	text = batch_build_json(&batch, n, "ipam-syncd", "ipam", rebuild,
	    position_of, &positions, &skipped);
	oracle = oracle_batch_build_json(&batch, n, "ipam-syncd", "ipam",
	    rebuild, position_of, &positions, &oracle_skipped);
	if (oracle == NULL) {
		assert_null(text);
		batch_clear(&batch);
		free(batch.entries);
		return;
	}
	assert_non_null(text);
	assert_int_equal(skipped, oracle_skipped);
	/* jansson refuses invalid UTF-8; jsonb also refuses \u0000. */
	written = json_loads(text, 0, &error);
	if (written == NULL)
		print_error("seed %llu: %s in %s\n", (unsigned long long)seed,
		    error.text, text);
	assert_non_null(written);
	assert_false(holds_nul_escape(text));
	expected = json_loads(oracle, 0, NULL);
	assert_non_null(expected);
	assert_true(json_equal(written, expected));
	/* The same members in the same order, escaped the same way. */
	if (strcmp(text, oracle) != 0)
		report_difference(seed, text, oracle);
	assert_string_equal(text, oracle);
	json_decref(written);
	json_decref(expected);
	free(text);
	free(oracle);
	batch_clear(&batch);
	free(batch.entries);
}

/* Thousands of random batches, each compared with the oracle. */
static void
test_random_batches(void **state)
{
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 4000; seed++)
		check_round(seed);
}

/* Tells whether an array holds an element equal to value. */
static bool
array_holds(json_t *array, json_t *value)
{
	json_t *element;
	size_t i;

	json_array_foreach(array, i, element)
		if (json_equal(element, value))
			return true;
	return false;
}

/* Tells whether two arrays hold the same elements, in any order. */
static bool
same_elements(json_t *a, json_t *b)
{
	json_t *element;
	size_t i;

	if (json_array_size(a) != json_array_size(b))
		return false;
	json_array_foreach(a, i, element)
		if (!array_holds(b, element))
			return false;
	return true;
}

/* Tells whether two of the round's topics bear this name. */
static bool
named_twice(json_t *topic)
{
	size_t i, count = 0;

	for (i = 0; i < TOPICS; i++)
		if (json_is_string(topic) &&
		    strcmp(json_string_value(topic), topic_names[i]) == 0)
			count++;
	return count > 1;
}

/* Tells whether two objects hold the same member name, or both lack it. */
static bool
same_member(json_t *a, json_t *b, const char *name)
{
	json_t *x = json_object_get(a, name), *y = json_object_get(b, name);

	return x == NULL ? y == NULL : json_equal(x, y);
}

/*
 * Tells whether two arguments are the same document, but for orders that
 * carry no meaning: the net records of an entity (written in the order of
 * a hash table sized by the entries, which folding makes fewer; the
 * apply is set-based, and their seq members keep their order), the
 * partitions' offsets (in the order of their first entries, which a
 * compaction may remove), and the
 * stale events sampled for the log (folded, an event is found stale when
 * the event it was folded into is taken).  Below the sample's bound (20)
 * the samples hold the same events.  An offset of b, folded, carries a
 * fingerprint only where the record before it is kept as it came (a dead
 * letter's), then a's (but for the two topics named alike, whose records
 * share offsets); the fingerprints are left out after that check.  Takes
 * both documents.
 */
static bool
same_parsed(json_t *a, json_t *b)
{
	static const char *const arrays[] = { "servers", "subnets", "marks",
	    "offsets" };
	json_t *ka, *kb, *offset, *other;
	bool same;
	size_t i, j;

	assert_non_null(a);
	assert_non_null(b);
	json_array_foreach(json_object_get(b, "offsets"), i, offset) {
		if (json_object_get(offset, "fp") == NULL ||
		    named_twice(json_object_get(offset, "topic")))
			continue;
		json_array_foreach(json_object_get(a, "offsets"), j, other)
			if (same_member(offset, other, "topic") &&
			    same_member(offset, other, "part"))
				break;
		assert_true(json_equal(json_object_get(offset, "fp"),
		    json_object_get(json_array_get(json_object_get(a,
		    "offsets"), j), "fp")));
	}
	json_array_foreach(json_object_get(b, "offsets"), i, offset)
		json_object_del(offset, "fp");
	json_array_foreach(json_object_get(a, "offsets"), i, offset)
		json_object_del(offset, "fp");
	ka = json_object_get(a, "stale_known");
	kb = json_object_get(b, "stale_known");
	same = json_equal(json_object_get(ka, "topics"),
	    json_object_get(kb, "topics"));
	if (json_array_size(json_object_get(ka, "sample")) < 20)
		same = same && same_elements(json_object_get(ka, "sample"),
		    json_object_get(kb, "sample"));
	else
		same = same && json_array_size(json_object_get(kb,
		    "sample")) == 20;
	json_object_del(a, "stale_known");
	json_object_del(b, "stale_known");
	for (i = 0; i < 4; i++) {
		same = same && same_elements(json_object_get(a, arrays[i]),
		    json_object_get(b, arrays[i]));
		json_object_del(a, arrays[i]);
		json_object_del(b, arrays[i]);
	}
	same = same && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same;
}

/* The same for two texts. */
static bool
same_document(const char *text, const char *folded_text)
{
	return same_parsed(json_loads(text, 0, NULL),
	    json_loads(folded_text, 0, NULL));
}

/* Frees the two texts and the two batches a comparison built. */
static void
free_pair(char *text, char *folded_text, struct batch *plain,
    struct batch *folded)
{
	free(text);
	free(folded_text);
	batch_clear(plain);
	free(plain->entries);
	batch_clear(folded);
	free(folded->entries);
}

/*
 * Builds one random batch twice, the second time folding as a rebuild
 * does (batch_set_fold()): the argument must be the same document
 * (same_document()), and the same skipped count.  Returns how many
 * events were folded.
 */
static size_t
check_fold_round(uint64_t seed)
{
	struct positions positions, folded_positions;
	struct batch plain, folded;
	size_t skipped, folded_skipped, gone;
	char *text, *folded_text;
	bool rebuild;

	keyed_partitions = true;
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 7;
	batch_init(&plain, topic_names, TOPICS);
	random_batch(&plain, &positions);
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 7;
	batch_init(&folded, topic_names, TOPICS);
	batch_set_fold(&folded, true);
	random_batch(&folded, &folded_positions);
	keyed_partitions = false;
	gone = folded.gone;
	assert_int_equal(batch_live(&folded) + gone, plain.count);

	rebuild = rng_below(4) == 0;
	text = batch_build_json(&plain, plain.count, "g", "s", rebuild,
	    position_of, &positions, &skipped);
	folded_text = batch_build_json(&folded, folded.count, "g", "s",
	    rebuild, position_of, &folded_positions, &folded_skipped);
	if (text == NULL)
		assert_null(folded_text);
	else {
		assert_non_null(folded_text);
		assert_int_equal(folded_skipped, skipped);
		if (!same_document(text, folded_text))
			report_difference(seed, folded_text, text);
		assert_true(same_document(text, folded_text));
	}
	free_pair(text, folded_text, &plain, &folded);
	return gone;
}

/* Thousands of random batches, folded and not. */
static void
test_fold_random_batches(void **state)
{
	uint64_t seed;
	size_t gone = 0;

	(void)state;
	for (seed = 1; seed <= 4000; seed++)
		gone += check_fold_round(seed);
	/* The rounds did fold: a generator that never folds proves nothing. */
	print_message("%zu events folded in 4000 batches\n", gone);
	assert_true(gone > 4000);
}

/* A server change of key id at version v (v < 0: no version). */
static void
add_server(struct batch *batch, int32_t partition, int64_t offset,
    const char *id, int64_t v, unsigned keep)
{
	struct change change;
	char host[32];

	memset(&change, 0, sizeof(change));
	change.entity = CHANGE_SERVER;
	change.op = CHANGE_UPSERT;
	change.id = strdup(id);
	change.vrf = strdup("");
	snprintf(host, sizeof(host), "h-%s-%lld", id, (long long)v);
	change.hostname = strdup(host);
	change.has_version = v >= 0;
	change.version = v >= 0 ? v : 0;
	change.keep = keep;
	change.has_ip = true;
	change.ip.family = AF_INET;
	change.ip.bytes[0] = 10;
	change.ip.bytes[3] = (uint8_t)v;
	batch_add_change(batch, 0, partition, offset, &change, "k", 1, "{}", 2,
	    NULL);
}

/* Removes every "seq" member of the records of a batch's argument. */
static void
drop_seq(json_t *document)
{
	static const char *const arrays[] = { "servers", "subnets", "marks",
	    "truncates" };
	json_t *record;
	size_t i, j;

	for (i = 0; i < 4; i++)
		json_array_foreach(json_object_get(document, arrays[i]), j,
		    record)
			json_object_del(record, "seq");
}

/*
 * A long history of a few keys: the folded entries are compacted away as
 * they pile up, and the argument still reads the same, but for the
 * records' seq (places in the batch, which the compaction renumbers; only
 * their order counts, and it is kept).  A TOAST placeholder or an
 * unversioned event stops a fold; an older version folds nothing.
 */
static void
test_fold_compacts(void **state)
{
	struct positions positions;
	struct batch plain, folded;
	json_t *a, *b;
	size_t skipped, i;
	char *text, *folded_text, id[8];
	int64_t offset[2] = { 0, 0 };

	(void)state;
	memset(&positions, 0, sizeof(positions));
	positions.missing_topic = -1;
	batch_init(&plain, topic_names, TOPICS);
	batch_init(&folded, topic_names, TOPICS);
	batch_set_fold(&folded, true);
	for (i = 0; i < 30000; i++) {
		int64_t v = (int64_t)(i / 3) * 2 + (i % 97 == 0 ? -3 : 0);
		unsigned keep = i % 1001 == 0 ? CHANGE_KEEP_HOSTNAME : 0;

		int32_t part = i % 3 == 2;	/* s0 and s1 in 0, s2 in 1 */

		snprintf(id, sizeof(id), "s%zu", i % 3);
		if (i % 5003 == 0)
			v = -1;		/* unversioned */
		add_server(&plain, part, offset[part], id, v, keep);
		add_server(&folded, part, offset[part], id, v, keep);
		offset[part]++;
	}
	/*
	 * Compacted: far fewer entries than events.  At most 64 events fold
	 * into one entry (their versions go in its record), so there are at
	 * least events / 65 entries; each older version stays, and leaves
	 * the one it is older than (the next folds the older one); so do
	 * the events after a placeholder or without a version.
	 */
	assert_true(folded.count < 5000);
	assert_true(batch_live(&folded) >= 30000 / 65);
	assert_true(batch_live(&folded) <= 30000 / 65 + 2 * (30000 / 97 +
	    30000 / 1001 + 30000 / 5003) + 3);
	text = batch_build_json(&plain, plain.count, "g", "s", true,
	    position_of, &positions, &skipped);
	folded_text = batch_build_json(&folded, folded.count, "g", "s", true,
	    position_of, &positions, &skipped);
	a = json_loads(text, 0, NULL);
	b = json_loads(folded_text, 0, NULL);
	assert_non_null(a);
	assert_non_null(b);
	drop_seq(a);
	drop_seq(b);
	assert_true(same_parsed(a, b));
	free_pair(text, folded_text, &plain, &folded);
}

/* Adds ten servers' versions from..to, in two partitions, to a batch. */
static void
add_versions(struct batch *batch, int64_t *offset, int64_t from, int64_t to)
{
	char id[8];
	int64_t v;
	int i;

	for (v = from; v <= to; v++) {
		for (i = 0; i < 10; i++) {
			snprintf(id, sizeof(id), "s%d", i);
			add_server(batch, i % 2, offset[i % 2]++, id, v, 0);
		}
	}
}

/* Asserts that two batches' arguments are the same document. */
static void
assert_same_batches(struct batch *plain, struct batch *folded)
{
	struct positions positions;
	size_t skipped;
	char *text, *folded_text;

	memset(&positions, 0, sizeof(positions));
	positions.missing_topic = -1;
	text = batch_build_json(plain, plain->count, "g", "s", true,
	    position_of, &positions, &skipped);
	folded_text = batch_build_json(folded, folded->count, "g", "s", true,
	    position_of, &positions, &skipped);
	assert_true(same_document(text, folded_text));
	free(text);
	free(folded_text);
}

/*
 * What the consumer does to a folding batch: a partition dropped (a
 * revoke, a reload), more events after it, the batch moved in flight and
 * applied in part.  The counts hold, the folds go on from what is left,
 * and the argument stays the unfolded one's.
 */
static void
test_fold_bookkeeping(void **state)
{
	struct batch plain, folded, plain_flight, folded_flight;
	int64_t offset[2] = { 0, 0 }, folded_offset[2] = { 0, 0 };

	(void)state;
	batch_init(&plain, topic_names, TOPICS);
	batch_init(&folded, topic_names, TOPICS);
	batch_init(&plain_flight, topic_names, TOPICS);
	batch_init(&folded_flight, topic_names, TOPICS);
	batch_set_fold(&folded, true);
	add_versions(&plain, offset, 1, 30);
	add_versions(&folded, folded_offset, 1, 30);
	/* Ten keys, each in one entry: 290 events folded away. */
	assert_int_equal(batch_live(&folded), 10);
	assert_int_equal(batch_live(&folded) + folded.gone, plain.count);
	assert_true(folded.bytes > 0);
	assert_same_batches(&plain, &folded);

	batch_drop_partition(&plain, 0, 1);
	batch_drop_partition(&folded, 0, 1);
	assert_int_equal(batch_live(&folded), 5);
	assert_int_equal(batch_live(&folded) + folded.gone, plain.count);
	assert_same_batches(&plain, &folded);

	/*
	 * The keys of the dropped partition read again, and newer versions
	 * of all: those left fold into their entries again.
	 */
	offset[1] = folded_offset[1] = 0;
	add_versions(&plain, offset, 31, 40);
	add_versions(&folded, folded_offset, 31, 40);
	assert_int_equal(batch_live(&folded), 10);
	assert_same_batches(&plain, &folded);

	/* In flight: the arrays trade places, nothing left behind. */
	batch_move(&plain_flight, &plain);
	batch_move(&folded_flight, &folded);
	assert_int_equal(folded.count, 0);
	assert_int_equal(folded.gone, 0);
	assert_int_equal(folded.bytes, 0);
	assert_int_equal(batch_live(&folded_flight), 10);
	assert_same_batches(&plain_flight, &folded_flight);

	/* The pending batch folds again from nothing. */
	add_versions(&plain, offset, 41, 45);
	add_versions(&folded, folded_offset, 41, 45);
	assert_int_equal(batch_live(&folded), 10);
	assert_same_batches(&plain, &folded);

	batch_clear(&folded_flight);
	assert_int_equal(folded_flight.bytes, 0);
	assert_int_equal(folded_flight.gone, 0);
	batch_clear(&plain_flight);
	free(plain_flight.entries);
	free(folded_flight.entries);
	free_pair(NULL, NULL, &plain, &folded);
}

/*
 * The empty batch, and a batch of one server whose every string needs
 * escaping: the text is byte for byte what jansson dumped.
 */
static void
test_exact_text(void **state)
{
	struct positions positions;
	struct batch batch;
	struct change change;
	size_t skipped, oracle_skipped;
	char *text, *oracle;

	(void)state;
	memset(&positions, 0, sizeof(positions));
	positions.missing_topic = -1;
	batch_init(&batch, topic_names, TOPICS);
	text = batch_build_json(&batch, 0, "g", "s", false, position_of,
	    &positions, &skipped);
	oracle = oracle_batch_build_json(&batch, 0, "g", "s", false,
	    position_of, &positions, &oracle_skipped);
	assert_string_equal(text, oracle);
	free(text);
	free(oracle);

	memset(&change, 0, sizeof(change));
	change.entity = CHANGE_SERVER;
	change.op = CHANGE_UPSERT;
	change.id = strdup("id \"1\" \\ \x01\x1f\x7f");
	change.vrf = strdup("");
	change.hostname = strdup("h\xc3\xa9\xe2\x80\xa8\b\f\n\r\t/");
	change.nic_mac = strdup("aa:bb:cc:dd:ee:ff");
	change.device_type = strdup("\xf0\x9f\x98\x80");
	change.has_version = true;
	change.version = INT64_MIN;
	batch_add_change(&batch, 0, 0, 7, &change, "k", 1, "{}", 2, "[]");
	text = batch_build_json(&batch, 1, "g", "s", false, position_of,
	    &positions, &skipped);
	oracle = oracle_batch_build_json(&batch, 1, "g", "s", false,
	    position_of, &positions, &oracle_skipped);
	assert_non_null(text);
	assert_non_null(oracle);
	assert_string_equal(text, oracle);
	free(text);
	free(oracle);
	batch_clear(&batch);
	free(batch.entries);
}

/* The subnet record of a batch's JSON: the object that holds pool_first. */
static json_t *
find_pools(json_t *value)
{
	json_t *member, *found;
	const char *name;
	size_t i;

	if (json_is_object(value)) {
		if (json_object_get(value, "pool_first") != NULL)
			return value;
		json_object_foreach(value, name, member)
			if ((found = find_pools(member)) != NULL)
				return found;
	} else if (json_is_array(value)) {
		json_array_foreach(value, i, member)
			if ((found = find_pools(member)) != NULL)
				return found;
	}
	return NULL;
}

/* The runs of set bits of a cidr's address bitmap, as "a-b" text. */
static void
runs_text(const bool *in, uint32_t base, uint32_t size, char *out,
    size_t outlen)
{
	size_t used = 0;
	uint32_t i, j;

	out[0] = '\0';
	for (i = 0; i < size; i = j) {
		if (!in[i]) {
			j = i + 1;
			continue;
		}
		for (j = i; j < size && in[j]; j++)
			;
		used += (size_t)snprintf(out + used, outlen - used,
		    "%s%u.%u.%u.%u-%u.%u.%u.%u", used > 0 ? "," : "",
		    (base + i) >> 24, (base + i) >> 16 & 255,
		    (base + i) >> 8 & 255, (base + i) & 255,
		    (base + j - 1) >> 24, (base + j - 1) >> 16 & 255,
		    (base + j - 1) >> 8 & 255, (base + j - 1) & 255);
	}
}

/*
 * A subnet's pools reach PostgreSQL as they were sent, merged: the
 * network and broadcast addresses that the decoder keeps them off are
 * given back (so that pools kept under a changed cidr are held to it as
 * pools sent whole), and the decoded ranges are those less the two.
 * Random pools of random IPv4 subnets from /22 to /32, against bitmaps.
 */
static void
test_pools_as_sent(void **state)
{
	static const char *const topics[] = { "t" };
	struct positions positions;
	struct batch batch;
	struct change change;
	char err[256], entry[64], sent[4096], clamped[4096], text[4096];
	char first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX], *json;
	bool bits[1024], kept[1024];
	json_error_t error;
	json_t *pools, *doc, *record, *f, *l;
	size_t round, i, n, skipped, used;
	uint32_t base, size, a, b, k;
	int len;

	(void)state;
	memset(&positions, 0, sizeof(positions));
	positions.missing_topic = -1;
	for (round = 0; round < 4000; round++) {
		len = 22 + (int)rng_below(11);
		size = 1u << (32 - len);
		base = (10u << 24 | (uint32_t)rng_below(1u << 16) << 8) &
		    ~(size - 1);
		memset(bits, 0, sizeof(bits));
		pools = json_array();
		for (n = rng_below(5), i = 0; i < n; i++) {
			/* Ends drawn near the edges half the time. */
			a = rng_below(2) ? (uint32_t)rng_below(3) % size :
			    (uint32_t)rng_below(size);
			b = rng_below(2) ? size - 1 - (uint32_t)rng_below(3) %
			    size : (uint32_t)rng_below(size);
			if (a > b) {
				k = a;
				a = b;
				b = k;
			}
			snprintf(entry, sizeof(entry), "%u.%u.%u.%u-%u.%u.%u.%u",
			    (base + a) >> 24, (base + a) >> 16 & 255,
			    (base + a) >> 8 & 255, (base + a) & 255,
			    (base + b) >> 24, (base + b) >> 16 & 255,
			    (base + b) >> 8 & 255, (base + b) & 255);
			json_array_append_new(pools, json_string(entry));
			for (k = a; k <= b; k++)
				bits[k] = true;
		}
		memset(&change, 0, sizeof(change));
		snprintf(entry, sizeof(entry), "%u.%u.%u.%u/%d", base >> 24,
		    base >> 16 & 255, base >> 8 & 255, base & 255, len);
		assert_int_equal(prefix_parse(entry, &change.cidr, err,
		    sizeof(err)), 0);
		if (fields_pools("pools", pools, &change.cidr, 1 << 20,
		    &change.pools, &change.pool_count, &change.pool_edges, err,
		    sizeof(err)) == -1)
			fail_msg("%s: %s", entry, err);
		json_decref(pools);

		runs_text(bits, base, size, sent, sizeof(sent));
		memcpy(kept, bits, sizeof(kept));
		if (len <= 30)
			kept[0] = kept[size - 1] = false;
		runs_text(kept, base, size, clamped, sizeof(clamped));
		for (used = 0, text[0] = '\0', i = 0; i < change.pool_count;
		    i++) {
			addr_format(&change.pools[i].first, first, sizeof(first));
			addr_format(&change.pools[i].last, last, sizeof(last));
			used += (size_t)snprintf(text + used, sizeof(text) - used,
			    "%s%s-%s", i > 0 ? "," : "", first, last);
		}
		if (strcmp(text, clamped) != 0)
			fail_msg("%s: decoded %s, not %s", entry, text, clamped);

		change.entity = CHANGE_SUBNET;
		change.op = CHANGE_UPSERT;
		change.id = strdup("s");
		change.vrf = strdup("");
		change.has_version = true;
		change.version = 1;
		batch_init(&batch, topics, 1);
		batch_add_change(&batch, 0, 0, 7, &change, "k", 1, "{}", 2,
		    "[]");
		json = batch_build_json(&batch, 1, "g", "s", false,
		    position_of, &positions, &skipped);
		assert_non_null(json);
		doc = json_loads(json, 0, &error);
		free(json);
		assert_non_null(doc);
		record = find_pools(doc);
		assert_non_null(record);
		f = json_object_get(record, "pool_first");
		l = json_object_get(record, "pool_last");
		assert_int_equal(json_array_size(f), json_array_size(l));
		for (used = 0, text[0] = '\0', i = 0; i < json_array_size(f);
		    i++)
			used += (size_t)snprintf(text + used, sizeof(text) - used,
			    "%s%s-%s", i > 0 ? "," : "",
			    json_string_value(json_array_get(f, i)),
			    json_string_value(json_array_get(l, i)));
		if (strcmp(text, sent) != 0)
			fail_msg("%s: written %s, not %s (decoded %s)", entry,
			    text, sent, clamped);
		json_decref(doc);
		batch_clear(&batch);
		free(batch.entries);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_batches),
		cmocka_unit_test(test_exact_text),
		cmocka_unit_test(test_pools_as_sent),
		cmocka_unit_test(test_fold_random_batches),
		cmocka_unit_test(test_fold_compacts),
		cmocka_unit_test(test_fold_bookkeeping),
	};

	return cmocka_run_group_tests_name("batch_json", tests, NULL, NULL);
}
