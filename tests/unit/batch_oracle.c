/*
 * The batch's JSON argument as it was built before it was written as text
 * (consumers/batch.c at 4da6a31, a jansson tree dumped), kept unchanged
 * as the oracle of tests/unit/test_batch_json.c.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "batch_oracle.h"

/* Where the value of a field the events may leave as stored comes from. */
enum batch_from {
	BATCH_FROM_STORED,	/* the stored entity: the SQL takes it */
	BATCH_FROM_ENTRY,	/* an event of the batch */
	BATCH_FROM_NOTHING,	/* forgotten or deleted since: no value */
};

/* The fields of CHANGE_KEEP_*, bit i named keep_names[i] in the SQL. */
#define BATCH_KEEP_FIELDS	6
static const char *const keep_names[BATCH_KEEP_FIELDS] = {
	"hostname", "nic_mac", "device_type", "manufacture", "name", "pools",
};

/*
 * The net effect of the events of one entity key within a batch, as
 * schema/functions/20_versions.sql reads it: the guarded prefix (the
 * versioned events before any reset), and the state after the last reset
 * (a Kafka tombstone or an unversioned event), which no stored version can
 * change.
 */
struct batch_net {
	enum change_entity		 entity;
	const char			*id;
	bool				 used;
	const struct batch_entry	*c;	/* prefix: first of the highest version */
	int64_t				*lo;	/* prefix: earlier highs, before c */
	size_t				 lo_count;
	size_t				 lo_capacity;
	bool				 reset;
	const struct batch_entry	*f;	/* after a reset; NULL: forgotten */
	const struct batch_entry	*last;	/* acted last: the source */
	size_t				 last_index;
	const struct batch_entry	*field[BATCH_KEEP_FIELDS];
	enum batch_from			 from[BATCH_KEEP_FIELDS];
	bool				 one_by_one;	/* a key with requests */
};

/* Remembers at most this many stale events of a batch for the log. */
#define BATCH_STALE_SAMPLE	20

/* FNV-1a over the entity and the id, for the net-effect table. */
static uint64_t
batch_hash(enum change_entity entity, const char *id)
{
	uint64_t hash = 1469598103934665603ULL ^ (uint64_t)entity;
	const unsigned char *p;

	for (p = (const unsigned char *)id; *p != '\0'; p++) {
		hash ^= *p;
		hash *= 1099511628211ULL;
	}
	return hash;
}

/* Writes bytes as lowercase hex into a new string. */
static char *
batch_hex(const uint8_t *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex;
	size_t i;

	if ((hex = malloc(len * 2 + 1)) == NULL)
		fatal("batch: malloc");
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	hex[len * 2] = '\0';
	return hex;
}

/* Sets a string member, or null when the value is NULL. */
static void
batch_json_string(json_t *object, const char *name, const char *value)
{
	json_object_set_new(object, name, value ? json_string(value) :
	    json_null());
}

/* Sets an address member in text form, or null. */
static void
batch_json_addr(json_t *object, const char *name, bool present,
    const struct ip_addr *addr)
{
	char text[ADDR_TEXT_MAX];

	if (!present) {
		json_object_set_new(object, name, json_null());
		return;
	}
	addr_format(addr, text, sizeof(text));
	json_object_set_new(object, name, json_string(text));
}

/* Sets the pool arrays of a subnet record from a change (NULL: none). */
static void
batch_json_pools(json_t *record, const struct change *change)
{
	char text[ADDR_TEXT_MAX];
	json_t *first = json_array(), *last = json_array();
	size_t i;

	for (i = 0; change != NULL && i < change->pool_count; i++) {
		addr_format(&change->pools[i].first, text, sizeof(text));
		json_array_append_new(first, json_string(text));
		addr_format(&change->pools[i].last, text, sizeof(text));
		json_array_append_new(last, json_string(text));
	}
	json_object_set_new(record, "pool_first", first);
	json_object_set_new(record, "pool_last", last);
}

/* Sets one field the events may leave as stored, from a change. */
static void
batch_json_keepable(json_t *record, size_t field,
    const struct change *change)
{
	switch (field) {
	case 0:
		batch_json_string(record, "hostname",
		    change ? change->hostname : NULL);
		break;
	case 1:
		batch_json_string(record, "mac", change ? change->nic_mac : NULL);
		break;
	case 2:
		batch_json_string(record, "device_type",
		    change ? change->device_type : NULL);
		break;
	case 3:
		batch_json_string(record, "manufacture",
		    change ? change->manufacture : NULL);
		break;
	case 4:
		batch_json_string(record, "name", change ? change->name : NULL);
		break;
	case 5:
		batch_json_pools(record, change);
		break;
	}
}

/* Adds the fields of an upsert to a net-effect record. */
static void
batch_json_fields(json_t *record, const struct change *change)
{
	char text[ADDR_TEXT_MAX];

	batch_json_string(record, "vrf", change->vrf ? change->vrf : "");
	switch (change->entity) {
	case CHANGE_SERVER:
		batch_json_addr(record, "ip", change->has_ip, &change->ip);
		break;
	case CHANGE_SUBNET:
		prefix_format(&change->cidr, text, sizeof(text));
		json_object_set_new(record, "cidr", json_string(text));
		json_object_set_new(record, "ping", json_boolean(change->ping));
		break;
	case CHANGE_MARK:
		batch_json_addr(record, "address", change->has_ip, &change->ip);
		json_object_set_new(record, "status", json_string(
		    change->mark_status == MARK_RESERVED ? "reserved" :
		    "quarantine"));
		batch_json_string(record, "description", change->description);
		batch_json_string(record, "reason", change->reason);
		break;
	}
}

/* Tells whether a field belongs to an entity. */
static bool
batch_field_of(enum change_entity entity, size_t field)
{
	if (entity == CHANGE_SERVER)
		return field <= 3;
	if (entity == CHANGE_SUBNET)
		return field == 4 || field == 5;
	return false;
}

/* An event sets the key's fields: those it keeps stay where they were. */
static void
batch_net_fields(struct batch_net *net, const struct batch_entry *entry)
{
	size_t i;

	for (i = 0; i < BATCH_KEEP_FIELDS; i++) {
		if (entry == NULL || entry->change.op != CHANGE_UPSERT) {
			/* A delete is named: it may be stale (kb). */
			net->from[i] = BATCH_FROM_NOTHING;
			net->field[i] = entry;
		} else if ((entry->change.keep & (1u << i)) == 0) {
			net->from[i] = BATCH_FROM_ENTRY;
			net->field[i] = entry;
		}
	}
}

/* Counts and remembers an event the batch itself finds stale. */
static void
batch_stale_known(const struct batch *batch, json_t *stale,
    const struct batch_net *net, const struct batch_entry *entry,
    int64_t newer)
{
	json_t *topics = json_object_get(stale, "topics");
	json_t *sample = json_object_get(stale, "sample");
	const char *topic = batch->topic_names[entry->topic];
	json_t *count = json_object_get(topics, topic);
	json_t *note;

	json_object_set_new(topics, topic, json_integer(count ?
	    json_integer_value(count) + 1 : 1));
	if (json_array_size(sample) >= BATCH_STALE_SAMPLE)
		return;
	note = json_object();
	json_object_set_new(note, "entity",
	    json_string(change_entity_name(net->entity)));
	json_object_set_new(note, "id", json_string(net->id));
	json_object_set_new(note, "topic", json_string(topic));
	json_object_set_new(note, "part", json_integer(entry->partition));
	json_object_set_new(note, "off", json_integer(entry->offset));
	json_object_set_new(note, "version",
	    json_integer(entry->change.version));
	json_object_set_new(note, "newer", json_integer(newer));
	json_array_append_new(sample, note);
}

/* Appends a version to the earlier highs of the prefix. */
static void
batch_net_push_lo(struct batch_net *net, int64_t version)
{
	int64_t *grown;

	if (net->lo_count == net->lo_capacity) {
		net->lo_capacity = net->lo_capacity ? net->lo_capacity * 2 : 4;
		grown = realloc(net->lo, net->lo_capacity * sizeof(*grown));
		if (grown == NULL)
			fatal("batch: realloc");
		net->lo = grown;
	}
	net->lo[net->lo_count++] = version;
}

/*
 * Takes one event of a key in batch order, as applying them one by one
 * would: a Kafka tombstone forgets the key; an unversioned event applies
 * in Kafka order; a versioned event applies if newer than the state
 * before it, which within the prefix is only known relative to the
 * prefix's own highest version.
 */
static void
batch_net_take(const struct batch *batch, json_t *stale,
    struct batch_net *net, const struct batch_entry *entry, size_t index)
{
	const struct change *change = &entry->change;
	const struct batch_entry *before;

	if (change->unconditional || !change->has_version) {
		net->reset = true;
		net->f = change->unconditional || change->op == CHANGE_DELETE ?
		    NULL : entry;
		batch_net_fields(net, net->f);
	} else if (net->reset) {
		before = net->f;
		if (before != NULL && before->change.has_version &&
		    change->version <= before->change.version) {
			batch_stale_known(batch, stale, net, entry,
			    before->change.version);
			return;
		}
		net->f = entry;
		batch_net_fields(net, entry);
	} else {
		if (net->c != NULL && change->version <= net->c->change.version) {
			batch_stale_known(batch, stale, net, entry,
			    net->c->change.version);
			return;
		}
		if (net->c != NULL)
			batch_net_push_lo(net, net->c->change.version);
		net->c = entry;
		batch_net_fields(net, entry);
	}
	net->last = entry;
	net->last_index = index;
}

/* Turns one net effect into its JSON record. */
static json_t *
batch_json_net(const struct batch *batch, const struct batch_net *net)
{
	const struct batch_entry *state = net->reset ? net->f : net->c;
	const struct change *change = state ? &state->change : NULL;
	json_t *record = json_object(), *lo, *keep, *kb;
	const char *op;
	size_t i;

	json_object_set_new(record, "seq", json_integer(
	    (json_int_t)net->last_index));
	json_object_set_new(record, "id", json_string(net->id));
	json_object_set_new(record, "topic",
	    json_string(batch->topic_names[net->last->topic]));
	json_object_set_new(record, "part", json_integer(net->last->partition));
	json_object_set_new(record, "off", json_integer(net->last->offset));
	if (net->last->change.requester != NULL &&
	    net->last->change.request_id == NULL)
		json_object_set_new(record, "by",
		    json_string(net->last->change.requester));
	json_object_set_new(record, "gv", net->c ?
	    json_integer(net->c->change.version) : json_null());
	lo = json_array();
	for (i = 0; i < net->lo_count; i++)
		json_array_append_new(lo, json_integer(net->lo[i]));
	json_object_set_new(record, "lo", lo);
	json_object_set_new(record, "reset", json_boolean(net->reset));
	if (change == NULL)
		op = "forget";
	else
		op = change->op == CHANGE_UPSERT ? "upsert" : "delete";
	json_object_set_new(record, "op", json_string(op));
	json_object_set_new(record, "v", change && change->has_version ?
	    json_integer(change->version) : json_null());
	json_object_set_new(record, "lsn", change && change->has_lsn ?
	    json_integer(change->lsn) : json_null());
	if (change == NULL || change->op != CHANGE_UPSERT) {
		batch_json_string(record, "vrf", change && change->vrf ?
		    change->vrf : net->last->change.vrf);
		return record;
	}
	batch_json_fields(record, change);
	keep = json_array();
	for (i = 0; i < BATCH_KEEP_FIELDS; i++) {
		if (!batch_field_of(net->entity, i))
			continue;
		if (net->from[i] == BATCH_FROM_STORED)
			json_array_append_new(keep, json_string(keep_names[i]));
		batch_json_keepable(record, i, net->from[i] ==
		    BATCH_FROM_ENTRY ? &net->field[i]->change : NULL);
	}
	json_object_set_new(record, "keep", keep);
	/* Fields kept from an earlier versioned event than the one applied. */
	kb = json_object();
	for (i = 0; i < BATCH_KEEP_FIELDS; i++)
		if (!net->reset && batch_field_of(net->entity, i) &&
		    net->from[i] != BATCH_FROM_STORED && net->field[i] != NULL &&
		    net->field[i] != net->c &&
		    net->field[i]->change.has_version)
			json_object_set_new(kb, keep_names[i], json_integer(
			    net->field[i]->change.version));
	if (json_object_size(kb) > 0)
		json_object_set_new(record, "kb", kb);
	else
		json_decref(kb);
	return record;
}

/* Turns a truncate into its JSON record. */
static json_t *
batch_json_truncate(const struct batch *batch,
    const struct batch_entry *entry, size_t index)
{
	json_t *record = json_object();

	json_object_set_new(record, "seq", json_integer((json_int_t)index));
	json_object_set_new(record, "entity",
	    json_string(change_entity_name(entry->change.entity)));
	json_object_set_new(record, "lsn", json_integer(entry->change.lsn));
	json_object_set_new(record, "topic",
	    json_string(batch->topic_names[entry->topic]));
	json_object_set_new(record, "part", json_integer(entry->partition));
	json_object_set_new(record, "off", json_integer(entry->offset));
	return record;
}

/* Turns a dead letter into its JSON record: bytes in hex. */
static json_t *
batch_json_dead(const struct batch *batch, const struct batch_entry *entry)
{
	json_t *letter = json_object();
	char *hex;

	json_object_set_new(letter, "topic",
	    json_string(batch->topic_names[entry->topic]));
	json_object_set_new(letter, "part", json_integer(entry->partition));
	json_object_set_new(letter, "off", json_integer(entry->offset));
	if (entry->key != NULL) {
		hex = batch_hex(entry->key, entry->key_len);
		json_object_set_new(letter, "key", json_string(hex));
		free(hex);
	}
	if (entry->value != NULL) {
		hex = batch_hex(entry->value, entry->value_len);
		json_object_set_new(letter, "value", json_string(hex));
		free(hex);
	}
	if (entry->headers_json != NULL && !entry->bare)
		json_object_set_new(letter, "headers",
		    json_loads(entry->headers_json, 0, NULL));
	json_object_set_new(letter, "reason", json_string(entry->reason));
	return letter;
}

/*
 * Turns one event of a key that carries operator requests into a record
 * of its own ("one": true).  Such keys are applied one event at a time
 * in batch order, since each request's preconditions are decided against
 * the state its predecessors left (docs/EVENTS.md); the record carries
 * the request's id, requester and preconditions.
 */
static json_t *
batch_json_one(const struct batch *batch, json_t *stale,
    const struct batch_entry *entry, size_t index)
{
	const struct change *change = &entry->change;
	struct batch_net net;
	json_t *record;
	size_t i;

	memset(&net, 0, sizeof(net));
	net.used = true;
	net.entity = change->entity;
	net.id = change->id;
	for (i = 0; i < BATCH_KEEP_FIELDS; i++)
		net.from[i] = BATCH_FROM_STORED;
	batch_net_take(batch, stale, &net, entry, index);
	record = batch_json_net(batch, &net);
	free(net.lo);
	json_object_set_new(record, "one", json_true());
	if (change->request_id == NULL)
		return record;
	json_object_set_new(record, "rid", json_string(change->request_id));
	/* Later: the request's digest. */
	json_object_set_new(record, "rdg", json_sprintf("1:%016llx",
	    (unsigned long long)change->request_digest));
	json_object_set_new(record, "by", json_string(change->requester));
	json_object_set_new(record, "ifa", json_boolean(change->if_available));
	batch_json_string(record, "ifm", change->if_match);
	/* A delete's record names no address: the request still does. */
	batch_json_addr(record, "address", change->has_ip, &change->ip);
	batch_json_string(record, "vrf", change->vrf);
	return record;
}

/* Finds (or makes) the net effect of an entry's key. */
static struct batch_net *
batch_net_find(struct batch_net *table, size_t mask,
    const struct batch_entry *entry)
{
	struct batch_net *net;
	size_t slot, i;

	slot = batch_hash(entry->change.entity, entry->change.id) & mask;
	for (;;) {
		net = &table[slot];
		if (!net->used || (net->entity == entry->change.entity &&
		    strcmp(net->id, entry->change.id) == 0))
			break;
		slot = (slot + 1) & mask;
	}
	if (!net->used) {
		net->used = true;
		net->entity = entry->change.entity;
		net->id = entry->change.id;
		for (i = 0; i < BATCH_KEEP_FIELDS; i++)
			net->from[i] = BATCH_FROM_STORED;
	}
	return net;
}

/* Builds the JSON argument of ipamd.apply_batch() as a jansson tree did. */
char *
oracle_batch_build_json(const struct batch *batch, size_t n, const char *group_id,
    const char *schema, bool rebuild, batch_position_fn *position, void *arg,
    size_t *skipped)
{
	static const char *const arrays[] = { "servers", "subnets", "marks" };
	struct batch_position *ends = NULL;
	struct batch_net *table = NULL;
	json_t *root, *dead, *offsets, *truncates, *stale, *lists[3];
	size_t i, j, slots, mask, end_count;
	char *text = NULL;

	*skipped = 0;
	for (slots = 16; slots < n * 2; slots *= 2)
		;
	mask = slots - 1;
	if ((table = calloc(slots, sizeof(*table))) == NULL)
		fatal("batch: calloc");

	/* The arrays belong to root from the start; they are borrowed here. */
	root = json_object();
	json_object_set_new(root, "group", json_string(group_id));
	json_object_set_new(root, "schema", json_string(schema));
	json_object_set_new(root, "audit", json_boolean(!rebuild));
	json_object_set_new(root, "derive", json_boolean(!rebuild));
	json_object_set_new(root, "dead", dead = json_array());
	json_object_set_new(root, "offsets", offsets = json_array());
	json_object_set_new(root, "truncates", truncates = json_array());
	json_object_set_new(root, "stale_known", stale = json_object());
	json_object_set_new(stale, "topics", json_object());
	json_object_set_new(stale, "sample", json_array());
	for (i = 0; i < 3; i++)
		json_object_set_new(root, arrays[i], lists[i] = json_array());

	/* The keys that carry operator requests go one event at a time. */
	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];

		if (!entry->dead && entry->change.request_id != NULL)
			batch_net_find(table, mask, entry)->one_by_one = true;
	}
	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];
		const struct batch_position *pos;
		struct batch_net *net;

		if ((pos = position(arg, entry->topic, entry->partition)) == NULL)
			goto fail;
		if (pos->stored && entry->offset < pos->next_offset) {
			(*skipped)++;
			continue;
		}
		if (entry->dead)
			json_array_append_new(dead, batch_json_dead(batch, entry));
		else if (entry->change.op == CHANGE_TRUNCATE)
			json_array_append_new(truncates,
			    batch_json_truncate(batch, entry, i));
		else if ((net = batch_net_find(table, mask, entry))->one_by_one)
			json_array_append_new(lists[net->entity],
			    batch_json_one(batch, stale, entry, i));
		else
			batch_net_take(batch, stale, net, entry, i);
	}

	/* The apply function is set-based: the order of records is free. */
	for (i = 0; i < slots; i++) {
		if (!table[i].used || table[i].one_by_one)
			continue;
		json_array_append_new(lists[table[i].entity],
		    batch_json_net(batch, &table[i]));
	}

	end_count = batch_partition_ends(batch, n, &ends);
	for (i = 0; i < end_count; i++) {
		const struct batch_position *pos;
		json_t *offset;
		int topic;

		for (topic = 0; topic < (int)batch->topic_count; topic++)
			if (strcmp(batch->topic_names[topic], ends[i].topic) == 0)
				break;
		if ((pos = position(arg, topic, ends[i].partition)) == NULL)
			goto fail;
		if (pos->stored && ends[i].next_offset <= pos->next_offset)
			continue;	/* everything was applied already */
		offset = json_object();
		json_object_set_new(offset, "topic", json_string(ends[i].topic));
		json_object_set_new(offset, "part",
		    json_integer(ends[i].partition));
		json_object_set_new(offset, "expected", pos->stored ?
		    json_integer(pos->next_offset) : json_null());
		json_object_set_new(offset, "next",
		    json_integer(ends[i].next_offset));
		for (j = 0; j < n; j++) {
			const struct batch_entry *e = &batch->entries[j];

			if (e->offset + 1 == ends[i].next_offset &&
			    e->partition == ends[i].partition && !e->folding &&
			    !e->gone && e->folded_count == 0 &&
			    strcmp(batch->topic_names[e->topic],
			    ends[i].topic) == 0)
				json_object_set_new(offset, "fp", json_integer(
				    batch_fingerprint(e->key, e->key_len,
				    e->value, e->value_len)));
		}
		json_array_append_new(offsets, offset);
	}
	text = json_dumps(root, JSON_COMPACT);
	if (text == NULL)
		fatalx("batch: json_dumps failed");
fail:
	json_decref(root);
	for (i = 0; i < slots; i++)
		free(table[i].lo);
	free(table);
	free(ends);
	return text;
}
