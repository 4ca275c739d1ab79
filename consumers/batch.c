/* A batch of consumed messages: decoded changes and dead letters, in order. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "consumers/batch.h"

/* Sets up an empty batch. */
void
batch_init(struct batch *batch, const char *const *topic_names,
    size_t topic_count)
{
	memset(batch, 0, sizeof(*batch));
	batch->topic_names = topic_names;
	batch->topic_count = topic_count;
}

/* Makes room for one more entry and returns it, zeroed. */
static struct batch_entry *
batch_grow(struct batch *batch)
{
	struct batch_entry *grown;
	size_t capacity;

	if (batch->count == batch->capacity) {
		capacity = batch->capacity ? batch->capacity * 2 : 256;
		grown = realloc(batch->entries, capacity * sizeof(*grown));
		if (grown == NULL)
			fatal("batch: realloc");
		batch->entries = grown;
		batch->capacity = capacity;
	}
	memset(&batch->entries[batch->count], 0, sizeof(struct batch_entry));
	return &batch->entries[batch->count++];
}

/* Copies bytes, keeping NULL as NULL. */
static uint8_t *
batch_copy_bytes(const void *bytes, size_t len)
{
	uint8_t *copy;

	if (bytes == NULL)
		return NULL;
	if ((copy = malloc(len ? len : 1)) == NULL)
		fatal("batch: malloc");
	memcpy(copy, bytes, len);
	return copy;
}

/* Fills the raw message of an entry. */
static void
batch_keep_raw(struct batch *batch, struct batch_entry *entry, const void *key,
    size_t key_len, const void *value, size_t value_len,
    const char *headers_json)
{
	entry->key = batch_copy_bytes(key, key_len);
	entry->key_len = key_len;
	entry->value = batch_copy_bytes(value, value_len);
	entry->value_len = value_len;
	if (headers_json != NULL &&
	    (entry->headers_json = strdup(headers_json)) == NULL)
		fatal("batch: strdup");
	batch->bytes += key_len + value_len;
}

/* Takes ownership of a decoded change and keeps the raw message. */
void
batch_add_change(struct batch *batch, int topic, int32_t partition,
    int64_t offset, struct change *change, const void *key, size_t key_len,
    const void *value, size_t value_len, const char *headers_json)
{
	struct batch_entry *entry = batch_grow(batch);

	entry->topic = topic;
	entry->partition = partition;
	entry->offset = offset;
	entry->change = *change;
	memset(change, 0, sizeof(*change));
	batch_keep_raw(batch, entry, key, key_len, value, value_len,
	    headers_json);
}

/* Adds a dead letter. */
void
batch_add_dead(struct batch *batch, int topic, int32_t partition,
    int64_t offset, const char *reason, const void *key, size_t key_len,
    const void *value, size_t value_len, const char *headers_json)
{
	struct batch_entry *entry = batch_grow(batch);

	entry->topic = topic;
	entry->partition = partition;
	entry->offset = offset;
	entry->dead = true;
	if ((entry->reason = strdup(reason)) == NULL)
		fatal("batch: strdup");
	batch_keep_raw(batch, entry, key, key_len, value, value_len,
	    headers_json);
}

/* Adds a message that changes nothing. */
void
batch_add_skip(struct batch *batch, int topic, int32_t partition,
    int64_t offset)
{
	struct batch_entry *entry = batch_grow(batch);

	entry->topic = topic;
	entry->partition = partition;
	entry->offset = offset;
	entry->skip = true;
}

/* Frees what one entry owns. */
static void
batch_entry_free(struct batch_entry *entry)
{
	free(entry->reason);
	free(entry->key);
	free(entry->value);
	free(entry->headers_json);
	change_clear(&entry->change);
}

/* The bytes an entry counts for. */
static size_t
batch_entry_bytes(const struct batch_entry *entry)
{
	return entry->key_len + entry->value_len;
}

/* Removes the first n entries. */
void
batch_drop_front(struct batch *batch, size_t n)
{
	size_t i;

	if (n > batch->count)
		n = batch->count;
	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		size_t bytes = batch_entry_bytes(&batch->entries[i]);

		batch->bytes -= bytes <= batch->bytes ? bytes : batch->bytes;
		batch_entry_free(&batch->entries[i]);
	}
	memmove(batch->entries, batch->entries + n,
	    (batch->count - n) * sizeof(*batch->entries));
	batch->count -= n;
	if (batch->count == 0)
		batch->bytes = 0;
}

/* Removes every entry of one partition. */
void
batch_drop_partition(struct batch *batch, int topic, int32_t partition)
{
	size_t i, kept = 0;

	for (i = 0; i < batch->count; i++) {
		struct batch_entry *entry = &batch->entries[i];

		if (entry->topic == topic && entry->partition == partition) {
			batch->bytes -= batch_entry_bytes(entry) <= batch->bytes ?
			    batch_entry_bytes(entry) : batch->bytes;
			batch_entry_free(entry);
			continue;
		}
		batch->entries[kept++] = *entry;
	}
	batch->count = kept;
	if (kept == 0)
		batch->bytes = 0;
}

/* Moves every entry of src to the end of dst. */
void
batch_move(struct batch *dst, struct batch *src)
{
	size_t i;

	for (i = 0; i < src->count; i++) {
		struct batch_entry *slot = batch_grow(dst);

		*slot = src->entries[i];
	}
	dst->bytes += src->bytes;
	src->count = 0;
	src->bytes = 0;
}

/* Frees every entry. */
void
batch_clear(struct batch *batch)
{
	batch_drop_front(batch, batch->count);
}

/* The net effect of the events of one entity key within a batch. */
struct batch_net {
	enum change_entity		 entity;
	const char			*id;
	const struct batch_entry	*c;	/* first event of the highest version */
	int64_t				 c_version;
	size_t				 c_index;
	const struct batch_entry	*t;	/* last tombstone */
	size_t				 t_index;
	bool				 used;
};

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

/* Adds the fields of an upsert to a net-effect record. */
static void
batch_json_fields(json_t *record, const struct change *change)
{
	char text[ADDR_TEXT_MAX];
	json_t *first, *last;
	size_t i;

	batch_json_string(record, "vrf", change->vrf ? change->vrf : "");
	switch (change->entity) {
	case CHANGE_SERVER:
		batch_json_string(record, "hostname", change->hostname);
		batch_json_addr(record, "ip", change->has_ip, &change->ip);
		batch_json_string(record, "mac", change->nic_mac);
		batch_json_string(record, "device_type", change->device_type);
		batch_json_string(record, "manufacture", change->manufacture);
		break;
	case CHANGE_SUBNET:
		batch_json_string(record, "name", change->name);
		prefix_format(&change->cidr, text, sizeof(text));
		json_object_set_new(record, "cidr", json_string(text));
		first = json_array();
		last = json_array();
		for (i = 0; i < change->pool_count; i++) {
			addr_format(&change->pools[i].first, text, sizeof(text));
			json_array_append_new(first, json_string(text));
			addr_format(&change->pools[i].last, text, sizeof(text));
			json_array_append_new(last, json_string(text));
		}
		json_object_set_new(record, "pool_first", first);
		json_object_set_new(record, "pool_last", last);
		json_object_set_new(record, "ping", json_boolean(change->ping));
		break;
	case CHANGE_MARK:
		batch_json_addr(record, "address", change->has_ip, &change->ip);
		json_object_set_new(record, "status", json_string(
		    change->mark_status == MARK_RESERVED ? "reserved" :
		    "quarantine"));
		batch_json_string(record, "description", change->description);
		break;
	}
}

/* Turns one net effect into its JSON record. */
static json_t *
batch_json_net(const struct batch *batch, const struct batch_net *net)
{
	const struct batch_entry *source;
	json_t *record = json_object();
	const char *t_state;

	/* The event that acted last names the source of the changes. */
	if (net->t != NULL && (net->c == NULL || net->t_index > net->c_index))
		source = net->t;
	else
		source = net->c;
	json_object_set_new(record, "seq", json_integer(
	    (json_int_t)(source == net->t ? net->t_index : net->c_index)));
	json_object_set_new(record, "id", json_string(net->id));
	json_object_set_new(record, "topic",
	    json_string(batch->topic_names[source->topic]));
	json_object_set_new(record, "part", json_integer(source->partition));
	json_object_set_new(record, "off", json_integer(source->offset));
	if (net->c != NULL) {
		json_object_set_new(record, "c_op", json_string(
		    net->c->change.op == CHANGE_UPSERT ? "upsert" : "delete"));
		json_object_set_new(record, "v", json_integer(net->c_version));
		if (net->c->change.op == CHANGE_UPSERT)
			batch_json_fields(record, &net->c->change);
		else
			batch_json_string(record, "vrf", net->c->change.vrf);
	} else {
		json_object_set_new(record, "c_op", json_null());
		json_object_set_new(record, "v", json_null());
		batch_json_string(record, "vrf", net->t->change.vrf);
	}
	if (net->t == NULL)
		t_state = NULL;
	else if (net->c == NULL)
		t_state = "only";
	else
		t_state = net->t_index > net->c_index ? "after" : "before";
	batch_json_string(record, "t", t_state);
	return record;
}

/* Finds the position of an entry's partition. */
static const struct batch_position *
batch_lookup(const struct batch_entry *entry, batch_position_fn *position,
    void *arg)
{
	return position(arg, entry->topic, entry->partition);
}

/* Builds the JSON argument of ipamd.apply_batch() for entries [0, n). */
char *
batch_build_json(const struct batch *batch, size_t n, const char *group_id,
    const char *schema, bool rebuild, batch_position_fn *position, void *arg,
    size_t *skipped)
{
	static const char *const arrays[] = { "servers", "subnets", "marks" };
	struct batch_position ends[1024];
	struct batch_net *table = NULL;
	json_t *root, *dead, *offsets, *lists[3];
	size_t i, slots, mask, end_count;
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
	for (i = 0; i < 3; i++)
		json_object_set_new(root, arrays[i], lists[i] = json_array());

	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];
		const struct batch_position *pos;
		struct batch_net *net;
		int64_t version;
		size_t slot;

		if ((pos = batch_lookup(entry, position, arg)) == NULL)
			goto fail;
		if (pos->stored && entry->offset < pos->next_offset) {
			(*skipped)++;
			continue;
		}
		if (entry->skip)
			continue;
		if (entry->dead) {
			json_t *letter = json_object();
			char *hex;

			json_object_set_new(letter, "topic",
			    json_string(batch->topic_names[entry->topic]));
			json_object_set_new(letter, "part",
			    json_integer(entry->partition));
			json_object_set_new(letter, "off",
			    json_integer(entry->offset));
			if (entry->key != NULL) {
				hex = batch_hex(entry->key, entry->key_len);
				json_object_set_new(letter, "key", json_string(hex));
				free(hex);
			}
			if (entry->value != NULL) {
				hex = batch_hex(entry->value, entry->value_len);
				json_object_set_new(letter, "value",
				    json_string(hex));
				free(hex);
			}
			if (entry->headers_json != NULL)
				json_object_set_new(letter, "headers",
				    json_loads(entry->headers_json, 0, NULL));
			json_object_set_new(letter, "reason",
			    json_string(entry->reason));
			json_array_append_new(dead, letter);
			continue;
		}

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
		}
		if (entry->change.unconditional) {
			net->t = entry;
			net->t_index = i;
			continue;
		}
		version = entry->change.has_version ? entry->change.version :
		    entry->offset;
		if (net->c == NULL || version > net->c_version) {
			net->c = entry;
			net->c_version = version;
			net->c_index = i;
		}
	}

	/* The apply function is set-based: the order of records is free. */
	for (i = 0; i < slots; i++) {
		if (!table[i].used)
			continue;
		json_array_append_new(lists[table[i].entity],
		    batch_json_net(batch, &table[i]));
	}

	end_count = batch_partition_ends(batch, n, ends,
	    sizeof(ends) / sizeof(ends[0]));
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
		json_array_append_new(offsets, offset);
	}
	text = json_dumps(root, JSON_COMPACT);
	if (text == NULL)
		fatalx("batch: json_dumps failed");
	json_decref(root);
	free(table);
	return text;
fail:
	json_decref(root);
	free(table);
	return NULL;
}

/* The next offset each partition reaches within entries [0, n). */
size_t
batch_partition_ends(const struct batch *batch, size_t n,
    struct batch_position *out, size_t max)
{
	size_t i, j, count = 0;

	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];

		for (j = 0; j < count; j++) {
			if (out[j].partition == entry->partition &&
			    strcmp(out[j].topic,
			    batch->topic_names[entry->topic]) == 0)
				break;
		}
		if (j == count) {
			if (count == max)
				fatalx("batch: more than %zu partitions", max);
			out[count].topic = batch->topic_names[entry->topic];
			out[count].partition = entry->partition;
			out[count].stored = true;
			out[count].next_offset = entry->offset + 1;
			count++;
		} else if (entry->offset + 1 > out[j].next_offset)
			out[j].next_offset = entry->offset + 1;
	}
	return count;
}
