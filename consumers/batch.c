/* A batch of consumed messages: decoded changes and dead letters, in order. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/fnv.h"
#include "common/log.h"
#include "consumers/batch.h"
#include "consumers/batch_json.h"


/*
 * The version of a request's digest (what decode_cloudevents.c hashes):
 * a stored digest of another version is not compared (the request is
 * taken for a replay, as one stored before digests), so that hashing
 * something else one day never turns replayed requests into dead letters.
 */
#define BATCH_DIGEST_VERSION	"1:"

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

/* Fills the raw message of an entry: borrowed from hold, or copied. */
static void
batch_keep_raw(struct batch *batch, struct batch_entry *entry, void *hold,
    const void *key, size_t key_len, const void *value, size_t value_len,
    const char *headers_json)
{
	entry->hold = hold;
	if (hold != NULL) {
		entry->key = key;
		entry->value = value;
	} else {
		entry->key = batch_copy_bytes(key, key_len);
		entry->value = batch_copy_bytes(value, value_len);
	}
	entry->key_len = key_len;
	entry->value_len = value_len;
	if (headers_json != NULL) {
		entry->headers_len = strlen(headers_json);
		if ((entry->headers_json = strdup(headers_json)) == NULL)
			fatal("batch: strdup");
	}
	batch->bytes += key_len + value_len + entry->headers_len;
}

/* The most events folded into one entry: bounds its memory and record. */
#define BATCH_FOLD_MAX	64

/* The entries an emptied batch keeps room for: a normal batch's. */
#define BATCH_KEEP_CAPACITY	8192

static uint64_t	batch_hash(enum change_entity, const char *);
static void	batch_entry_free(const struct batch *, struct batch_entry *);

/* Forgets every key's last entry: no event folds into a later one. */
static void
batch_keys_reset(struct batch *batch)
{
	free(batch->keys);
	batch->keys = NULL;
	batch->keys_mask = 0;
	batch->keys_used = 0;
}

/*
 * Finds the slot of an entry's key: the key's last entry (1 + its index),
 * or the empty slot where it goes.
 */
static uint32_t *
batch_keys_slot(struct batch *batch, const struct change *change)
{
	size_t slot = batch_hash(change->entity, change->id) & batch->keys_mask;
	const struct change *other;

	while (batch->keys[slot] != 0) {
		other = &batch->entries[batch->keys[slot] - 1].change;
		if (other->entity == change->entity &&
		    strcmp(other->id, change->id) == 0)
			break;
		slot = (slot + 1) & batch->keys_mask;
	}
	return &batch->keys[slot];
}

/* Tells whether an entry has a key to fold by. */
static bool
batch_keyed(const struct batch_entry *entry)
{
	return !entry->dead && !entry->gone && entry->change.id != NULL;
}

/*
 * Makes the table again, at most a quarter full with entries [0, upto),
 * holding each key's last entry among them; a truncate forgets the keys
 * before it.
 */
static void
batch_keys_rebuild(struct batch *batch, size_t upto)
{
	const struct batch_entry *entry;
	uint32_t *slot;
	size_t size, i;

	for (size = 1024; size < upto * 4; size *= 2)
		;
	free(batch->keys);
	if ((batch->keys = calloc(size, sizeof(*batch->keys))) == NULL)
		fatal("batch: calloc");
	batch->keys_mask = size - 1;
	batch->keys_used = 0;
	for (i = 0; i < upto; i++) {
		entry = &batch->entries[i];
		if (entry->change.op == CHANGE_TRUNCATE && !entry->dead) {
			memset(batch->keys, 0, size * sizeof(*batch->keys));
			batch->keys_used = 0;
		} else if (batch_keyed(entry)) {
			slot = batch_keys_slot(batch, &entry->change);
			if (*slot == 0)
				batch->keys_used++;
			*slot = (uint32_t)i + 1;
		}
	}
}

/* Makes entry index its key's last entry; returns the one before, or 0. */
static uint32_t
batch_keys_put(struct batch *batch, size_t index)
{
	uint32_t *slot, before;

	if (!batch_keyed(&batch->entries[index]))
		return 0;
	if (batch->keys == NULL ||
	    (batch->keys_used + 1) * 2 > batch->keys_mask + 1)
		batch_keys_rebuild(batch, index);
	slot = batch_keys_slot(batch, &batch->entries[index].change);
	before = *slot;
	if (before == 0)
		batch->keys_used++;
	*slot = (uint32_t)index + 1;
	return before;
}

/*
 * Tells whether an event is a plain versioned change of its key, taken
 * by a folding batch: no tombstone, no unversioned event (either resets
 * the key), nothing dead, and no mark.  The events of a mark key that
 * carries an operator's request anywhere in the batch are applied one at
 * a time (batch_roles()), each a record of its own, and a request may
 * come after the events that would have folded: marks do not fold.
 */
static bool
batch_plain_versioned(const struct batch_entry *entry)
{
	const struct change *change = &entry->change;

	return entry->folding && !entry->dead && !entry->gone &&
	    change->id != NULL && change->entity != CHANGE_MARK &&
	    (change->op == CHANGE_UPSERT || change->op == CHANGE_DELETE) &&
	    change->has_version && !change->unconditional &&
	    change->request_id == NULL;
}

/* Drops the entries folded away, keeping the order of the others. */
static void
batch_compact(struct batch *batch)
{
	size_t i, kept = 0;

	for (i = 0; i < batch->count; i++) {
		if (batch->entries[i].gone) {
			batch_entry_free(batch, &batch->entries[i]);
			continue;
		}
		batch->entries[kept++] = batch->entries[i];
	}
	batch->count = kept;
	batch->gone = 0;
	batch_keys_rebuild(batch, kept);
}

/*
 * Frees the array of an empty batch that grew large (a rebuild's batch
 * held a whole table's keys), rather than keep it for the next batch.
 */
static void
batch_shrink(struct batch *batch)
{
	if (batch->count > 0 || batch->capacity <= BATCH_KEEP_CAPACITY)
		return;
	free(batch->entries);
	batch->entries = NULL;
	batch->capacity = 0;
}

/*
 * Folds the key's previous event of the batch into the entry at index
 * when the entry takes the key's whole state from it: both plain
 * versioned changes of one partition, the entry newer and with every
 * field (no TOAST placeholder).  Applying the two one by one or the
 * entry alone with the other's version among the earlier ones
 * (batch_net_take()) leaves the same state.  A truncate is a barrier.
 */
static void
batch_fold(struct batch *batch, size_t index)
{
	struct batch_entry *entry = &batch->entries[index], *earlier;
	struct batch_folded *folded;
	uint32_t before;

	if (entry->change.op == CHANGE_TRUNCATE) {
		batch_keys_reset(batch);
		return;
	}
	if ((before = batch_keys_put(batch, index)) == 0)
		return;
	earlier = &batch->entries[before - 1];
	if (!batch_plain_versioned(entry) || !batch_plain_versioned(earlier) ||
	    entry->change.keep != 0 || earlier->topic != entry->topic ||
	    earlier->partition != entry->partition ||
	    entry->change.version <= earlier->change.version ||
	    earlier->folded_count >= BATCH_FOLD_MAX)
		return;
	folded = realloc(earlier->folded, (earlier->folded_count + 1) *
	    sizeof(*folded));
	if (folded == NULL)
		fatal("batch: realloc");
	folded[earlier->folded_count].version = earlier->change.version;
	folded[earlier->folded_count].offset = earlier->offset;
	entry->folded = folded;
	entry->folded_count = earlier->folded_count + 1;
	earlier->folded = NULL;
	earlier->folded_count = 0;
	change_clear(&earlier->change);
	batch->bytes -= earlier->decoded;
	earlier->decoded = 0;
	earlier->gone = true;
	batch->gone++;
	/* A third of the entries gone: each compaction frees that much. */
	if (batch->gone >= 4096 && batch->gone * 3 >= batch->count)
		batch_compact(batch);
}

/* The memory a decoded change holds, about: its entry and its strings. */
static size_t
batch_change_bytes(const struct change *change)
{
	const char *const strings[] = { change->id, change->vrf,
	    change->hostname, change->nic_mac, change->device_type,
	    change->manufacture, change->name, change->description,
	    change->reason };
	size_t i, bytes = sizeof(struct batch_entry);

	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (strings[i] != NULL)
			bytes += strlen(strings[i]) + 1;
	return bytes + change->pool_count * sizeof(*change->pools);
}

/* Folds, or not. */
void
batch_set_fold(struct batch *batch, bool on)
{
	batch->fold = on;
	batch_keys_reset(batch);
}

/* The entries that hold an event. */
size_t
batch_live(const struct batch *batch)
{
	return batch->count - batch->gone;
}

/* How many events were folded into an entry. */
size_t
batch_entry_folds(const struct batch_entry *entry)
{
	return entry->folded_count;
}

/* Adds an entry: a change (reason NULL) or a dead letter. */
static void
batch_add(struct batch *batch, int topic, int32_t partition, int64_t offset,
    struct change *change, const char *reason, void *hold, const void *key,
    size_t key_len, const void *value, size_t value_len,
    const char *headers_json)
{
	struct batch_entry *entry = batch_grow(batch);

	entry->topic = topic;
	entry->partition = partition;
	entry->offset = offset;
	if (reason != NULL) {
		entry->dead = true;
		if ((entry->reason = strdup(reason)) == NULL)
			fatal("batch: strdup");
	} else {
		entry->change = *change;
		memset(change, 0, sizeof(*change));
	}
	if (batch->fold && reason == NULL) {
		/* No message kept, its decoded change counted: see
		   batch_set_fold(). */
		entry->folding = true;
		if (hold != NULL)
			batch->release(hold);
		entry->decoded = batch_change_bytes(&entry->change);
		batch->bytes += entry->decoded;
		batch_fold(batch, (size_t)(entry - batch->entries));
	} else
		batch_keep_raw(batch, entry, hold, key, key_len, value,
		    value_len, headers_json);
}

/* Takes ownership of a decoded change and keeps the raw message. */
void
batch_add_change(struct batch *batch, int topic, int32_t partition,
    int64_t offset, struct change *change, const void *key, size_t key_len,
    const void *value, size_t value_len, const char *headers_json)
{
	batch_add(batch, topic, partition, offset, change, NULL, NULL, key,
	    key_len, value, value_len, headers_json);
}

/* Adds a dead letter. */
void
batch_add_dead(struct batch *batch, int topic, int32_t partition,
    int64_t offset, const char *reason, const void *key, size_t key_len,
    const void *value, size_t value_len, const char *headers_json)
{
	batch_add(batch, topic, partition, offset, NULL, reason, NULL, key,
	    key_len, value, value_len, headers_json);
}

/* Sets how the batch releases the holds of batch_add_held(). */
void
batch_set_release(struct batch *batch, batch_release_fn *release)
{
	batch->release = release;
}

/* Adds a change or a dead letter whose bytes hold keeps alive. */
void
batch_add_held(struct batch *batch, int topic, int32_t partition,
    int64_t offset, struct change *change, const char *reason, void *hold,
    const void *key, size_t key_len, const void *value, size_t value_len,
    const char *headers_json)
{
	if (hold != NULL && batch->release == NULL)
		fatalx("batch: a held entry in a batch that cannot release it");
	batch_add(batch, topic, partition, offset, change, reason, hold, key,
	    key_len, value, value_len, headers_json);
}

/* Frees what one entry owns, and releases what keeps its bytes. */
static void
batch_entry_free(const struct batch *batch, struct batch_entry *entry)
{
	free(entry->reason);
	if (entry->hold != NULL)
		batch->release(entry->hold);
	else {
		free((void *)entry->key);
		free((void *)entry->value);
	}
	free(entry->headers_json);
	free(entry->folded);
	change_clear(&entry->change);
}

/* The bytes an entry counts for. */
static size_t
batch_entry_bytes(const struct batch_entry *entry)
{
	return entry->key_len + entry->value_len + entry->headers_len +
	    entry->decoded;
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
		if (batch->entries[i].gone)
			batch->gone--;
		batch_entry_free(batch, &batch->entries[i]);
	}
	memmove(batch->entries, batch->entries + n,
	    (batch->count - n) * sizeof(*batch->entries));
	batch->count -= n;
	if (batch->count == 0)
		batch->bytes = 0;
	batch_keys_reset(batch);
	batch_shrink(batch);
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
			if (entry->gone)
				batch->gone--;
			batch_entry_free(batch, entry);
			continue;
		}
		batch->entries[kept++] = *entry;
	}
	batch->count = kept;
	if (kept == 0)
		batch->bytes = 0;
	batch_keys_reset(batch);
}

/* Moves every entry of src to the end of dst. */
void
batch_move(struct batch *dst, struct batch *src)
{
	size_t i;

	if (src->count > 0 && dst->release != src->release)
		fatalx("batch: entries moved to a batch that releases them "
		    "otherwise");
	if (dst->count == 0) {
		/* The arrays trade places: nothing copied, no second array. */
		struct batch_entry *entries = dst->entries;
		size_t capacity = dst->capacity;

		dst->entries = src->entries;
		dst->capacity = src->capacity;
		src->entries = entries;
		src->capacity = capacity;
		dst->count = src->count;
		src->count = 0;
		batch_shrink(src);
	}
	for (i = 0; i < src->count; i++) {
		struct batch_entry *slot = batch_grow(dst);

		*slot = src->entries[i];
	}
	dst->bytes += src->bytes;
	dst->gone += src->gone;
	src->count = 0;
	src->bytes = 0;
	src->gone = 0;
	batch_keys_reset(src);
	batch_keys_reset(dst);
}

/* Frees every entry. */
void
batch_clear(struct batch *batch)
{
	batch_drop_front(batch, batch->count);
}

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

/*
 * The net effects of a batch's keys, made as the keys are met, found
 * through an open-addressing table of their indexes (0: an empty slot,
 * else 1 + the index into nets).  Small indexes keep the table a few
 * pages even for a large batch: a table of the nets themselves was
 * megabytes of fresh pages, faulted in for every batch.
 */
struct batch_nets {
	uint32_t		*slots;
	size_t			 mask;
	struct batch_net	*nets;
	size_t			 count;
};

/* Remembers at most this many stale events of a batch for the log. */
#define BATCH_STALE_SAMPLE	20

/*
 * The events the batch itself finds stale: their number per topic name
 * (counted at the first index of that name), the names in the order they
 * were first found stale, and the JSON of the first few events.
 */
struct batch_stale {
	size_t			*counts;
	size_t			*order;
	size_t			 ordered;
	struct batch_text	 sample;
	size_t			 sampled;
};

/* What an entry of the batch becomes in its JSON argument. */
enum batch_role {
	BATCH_ROLE_SKIPPED,	/* below the stored offset: applied already */
	BATCH_ROLE_DEAD,	/* a dead letter */
	BATCH_ROLE_TRUNCATE,	/* a truncate record */
	BATCH_ROLE_ONE,		/* a record of its own: its key has requests */
	BATCH_ROLE_NET,		/* taken into its key's net effect */
	BATCH_ROLE_GONE,	/* folded into a later entry */
};

/* FNV-1a over the entity and the id, for the net-effect table. */
static uint64_t
batch_hash(enum change_entity entity, const char *id)
{
	return fnv1a64(FNV1A64_START ^ (uint64_t)entity, id, strlen(id));
}

/*
 * Writes a string member that must be there: left out when NULL, as
 * jansson's json_string() refused a NULL where a string was required.
 */
static void
batch_json_required(struct batch_text *text, const char *name,
    const char *value)
{
	if (value != NULL)
		batch_text_string(text, name, value);
}

/*
 * The i-th of n pool ranges of a change as they were sent: its clamped
 * ranges with the network and broadcast addresses they were kept off
 * given back (CHANGE_POOL_*), each joined to the range beside it or a
 * range of its own.  The SQL keeps them so and clamps them to the cidr
 * (ipamd.subnet_pools()), so that pools kept under a changed cidr are
 * held to it as pools sent whole are.
 */
static struct pool_range
batch_pool_sent(const struct change *change, size_t i, size_t *n)
{
	struct ip_addr net, bcast, next;
	struct pool_range r;
	bool lead = false, trail = false;
	size_t count = change->pool_count;

	if ((change->pool_edges & CHANGE_POOL_NETWORK) != 0) {
		prefix_first(&change->cidr, &net);
		next = net;
		addr_increment(&next);
		lead = count == 0 ||
		    addr_compare(&change->pools[0].first, &next) != 0;
		count += lead;
	}
	if ((change->pool_edges & CHANGE_POOL_BROADCAST) != 0) {
		prefix_last(&change->cidr, &bcast);
		next = bcast;
		addr_decrement(&next);
		trail = change->pool_count == 0 || addr_compare(
		    &change->pools[change->pool_count - 1].last, &next) != 0;
		count += trail;
	}
	*n = count;
	if (i >= count)
		return (struct pool_range){ 0 };
	if (lead && i == 0)
		return (struct pool_range){ net, net };
	if (trail && i == count - 1)
		return (struct pool_range){ bcast, bcast };
	r = change->pools[i - lead];
	/* Not a range of its own: the edge joins the range beside it. */
	if ((change->pool_edges & CHANGE_POOL_NETWORK) != 0 && i == 0)
		r.first = net;
	if ((change->pool_edges & CHANGE_POOL_BROADCAST) != 0 && !trail &&
	    i == count - 1)
		r.last = bcast;
	return r;
}

/*
 * Writes the pool arrays of a subnet record from a change (NULL: none),
 * the ranges as they were sent (batch_pool_sent()).
 */
static void
batch_json_pools(struct batch_text *text, const struct change *change)
{
	struct pool_range r;
	size_t i, n = 0;

	if (change != NULL)
		batch_pool_sent(change, 0, &n);
	batch_text_open(text, "pool_first", '[');
	for (i = 0; i < n; i++) {
		r = batch_pool_sent(change, i, &n);
		batch_text_addr(text, NULL, true, &r.first);
	}
	batch_text_close(text, ']');
	batch_text_open(text, "pool_last", '[');
	for (i = 0; i < n; i++) {
		r = batch_pool_sent(change, i, &n);
		batch_text_addr(text, NULL, true, &r.last);
	}
	batch_text_close(text, ']');
}

/* Writes one field the events may leave as stored, from a change. */
static void
batch_json_keepable(struct batch_text *text, size_t field,
    const struct change *change)
{
	switch (field) {
	case 0:
		batch_text_string(text, "hostname",
		    change ? change->hostname : NULL);
		break;
	case 1:
		batch_text_string(text, "mac", change ? change->nic_mac : NULL);
		break;
	case 2:
		batch_text_string(text, "device_type",
		    change ? change->device_type : NULL);
		break;
	case 3:
		batch_text_string(text, "manufacture",
		    change ? change->manufacture : NULL);
		break;
	case 4:
		batch_text_string(text, "name", change ? change->name : NULL);
		break;
	case 5:
		batch_json_pools(text, change);
		break;
	}
}

/*
 * Writes the fields of an upsert to a net-effect record.  The record of a
 * request (request true) carries the request's own vrf, NULL included.
 */
static void
batch_json_fields(struct batch_text *text, const struct change *change,
    bool request)
{
	if (request)
		batch_text_string(text, "vrf", change->vrf);
	else
		batch_text_string(text, "vrf", change->vrf ? change->vrf : "");
	switch (change->entity) {
	case CHANGE_SERVER:
		batch_text_addr(text, "ip", change->has_ip, &change->ip);
		break;
	case CHANGE_SUBNET:
		batch_text_prefix(text, "cidr", &change->cidr);
		batch_text_bool(text, "ping", change->ping);
		break;
	case CHANGE_MARK:
		batch_text_addr(text, "address", change->has_ip, &change->ip);
		batch_text_string(text, "status",
		    change->mark_status == MARK_RESERVED ? "reserved" :
		    "quarantine");
		batch_text_string(text, "description", change->description);
		batch_text_string(text, "reason", change->reason);
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
batch_stale_known(const struct batch *batch, struct batch_stale *stale,
    const struct batch_net *net, const struct batch_entry *entry,
    const struct batch_folded *event, int64_t newer)
{
	struct batch_text *note = &stale->sample;
	size_t first;

	for (first = 0; strcmp(batch->topic_names[first],
	    batch->topic_names[entry->topic]) != 0; first++)
		;
	if (stale->counts[first]++ == 0)
		stale->order[stale->ordered++] = first;
	if (stale->sampled >= BATCH_STALE_SAMPLE)
		return;
	stale->sampled++;
	batch_text_open(note, NULL, '{');
	batch_text_string(note, "entity", change_entity_name(net->entity));
	batch_text_string(note, "id", net->id);
	batch_text_string(note, "topic", batch->topic_names[entry->topic]);
	batch_text_int(note, "part", entry->partition);
	batch_text_int(note, "off", event ? event->offset : entry->offset);
	batch_text_int(note, "version", event ? event->version :
	    entry->change.version);
	batch_text_int(note, "newer", newer);
	batch_text_close(note, '}');
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
 * prefix's own highest version.  A key's first event is never stale.
 * The events folded into an entry (batch_set_fold()) come first, from
 * the first not applied yet (from), each as its version: the entry is
 * newer than all of them and sets every field, so only their versions
 * can matter.
 */
static void
batch_net_take(const struct batch *batch, struct batch_stale *stale,
    struct batch_net *net, const struct batch_entry *entry, size_t index,
    size_t from)
{
	const struct change *change = &entry->change;
	const struct batch_folded *event;
	bool have;
	int64_t high;
	size_t i;

	if (change->unconditional || !change->has_version) {
		net->reset = true;
		net->f = change->unconditional || change->op == CHANGE_DELETE ?
		    NULL : entry;
		batch_net_fields(net, net->f);
		net->last = entry;
		net->last_index = index;
		return;
	}
	/* The highest version so far: of the state after the reset, or of
	   the prefix. */
	if (net->reset) {
		have = net->f != NULL && net->f->change.has_version;
		high = have ? net->f->change.version : 0;
	} else {
		have = net->c != NULL;
		high = have ? net->c->change.version : 0;
	}
	for (i = from; i < entry->folded_count; i++) {
		event = &entry->folded[i];
		if (have && event->version <= high) {
			batch_stale_known(batch, stale, net, entry, event, high);
			continue;
		}
		if (have && !net->reset)
			batch_net_push_lo(net, high);
		have = true;
		high = event->version;
	}
	if (have && change->version <= high) {
		batch_stale_known(batch, stale, net, entry, NULL, high);
		return;
	}
	if (net->reset)
		net->f = entry;
	else {
		if (have)
			batch_net_push_lo(net, high);
		net->c = entry;
	}
	batch_net_fields(net, entry);
	net->last = entry;
	net->last_index = index;
}

/*
 * Tells whether a field of a net effect comes from an earlier versioned
 * event of the batch than the one applied, or was blanked by an earlier
 * versioned delete (never after a reset: the stored entity is forgotten
 * then).
 */
static bool
batch_kept_below(const struct batch_net *net, size_t field)
{
	return !net->reset && batch_field_of(net->entity, field) &&
	    net->from[field] != BATCH_FROM_STORED && net->field[field] != NULL &&
	    net->field[field] != net->c &&
	    net->field[field]->change.has_version;
}

/* Tells whether any field of a net effect is kept so. */
static bool
batch_net_kept_below(const struct batch_net *net)
{
	size_t i;

	for (i = 0; i < BATCH_KEEP_FIELDS; i++)
		if (batch_kept_below(net, i))
			return true;
	return false;
}

/*
 * Writes one net effect as its JSON record, left open for the caller to
 * close.  The record of a request (request true) is written as before with
 * its vrf and address replaced by the request's, in place.  Returns
 * whether it wrote a mark's address.
 */
static bool
batch_json_net(const struct batch *batch, struct batch_text *text,
    const struct batch_net *net, bool request)
{
	const struct batch_entry *state = net->reset ? net->f : net->c;
	const struct change *change = state ? &state->change : NULL;
	const char *op;
	size_t i;

	batch_text_open(text, NULL, '{');
	batch_text_int(text, "seq", (int64_t)net->last_index);
	batch_text_string(text, "id", net->id);
	batch_text_string(text, "topic", batch->topic_names[net->last->topic]);
	batch_text_int(text, "part", net->last->partition);
	batch_text_int(text, "off", net->last->offset);
	/*
	 * Who asked for the change (an import's server or subnet); a
	 * request's record names its requester with the request, below.
	 */
	if (net->last->change.requester != NULL &&
	    net->last->change.request_id == NULL)
		batch_text_string(text, "by", net->last->change.requester);
	if (net->c != NULL)
		batch_text_int(text, "gv", net->c->change.version);
	else
		batch_text_null(text, "gv");
	batch_text_open(text, "lo", '[');
	for (i = 0; i < net->lo_count; i++)
		batch_text_int(text, NULL, net->lo[i]);
	batch_text_close(text, ']');
	batch_text_bool(text, "reset", net->reset);
	if (change == NULL)
		op = "forget";
	else
		op = change->op == CHANGE_UPSERT ? "upsert" : "delete";
	batch_text_string(text, "op", op);
	if (change != NULL && change->has_version)
		batch_text_int(text, "v", change->version);
	else
		batch_text_null(text, "v");
	if (change != NULL && change->has_lsn)
		batch_text_int(text, "lsn", change->lsn);
	else
		batch_text_null(text, "lsn");
	if (change == NULL || change->op != CHANGE_UPSERT) {
		batch_text_string(text, "vrf", change && change->vrf ?
		    change->vrf : net->last->change.vrf);
		return false;
	}
	batch_json_fields(text, change, request);
	for (i = 0; i < BATCH_KEEP_FIELDS; i++) {
		if (batch_field_of(net->entity, i))
			batch_json_keepable(text, i, net->from[i] ==
			    BATCH_FROM_ENTRY ? &net->field[i]->change : NULL);
	}
	batch_text_open(text, "keep", '[');
	for (i = 0; i < BATCH_KEEP_FIELDS; i++) {
		if (batch_field_of(net->entity, i) &&
		    net->from[i] == BATCH_FROM_STORED)
			batch_text_string(text, NULL, keep_names[i]);
	}
	batch_text_close(text, ']');
	/*
	 * A field kept from an earlier event of the batch than the one
	 * applied: that event may be stale against the stored entity, which
	 * then keeps its own value.  "kb" names its version, for the SQL.
	 */
	if (batch_net_kept_below(net)) {
		batch_text_open(text, "kb", '{');
		for (i = 0; i < BATCH_KEEP_FIELDS; i++)
			if (batch_kept_below(net, i))
				batch_text_int(text, keep_names[i],
				    net->field[i]->change.version);
		batch_text_close(text, '}');
	}
	return change->entity == CHANGE_MARK;
}

/* Writes a truncate as its JSON record. */
static void
batch_json_truncate(const struct batch *batch, struct batch_text *text,
    const struct batch_entry *entry, size_t index)
{
	batch_text_open(text, NULL, '{');
	batch_text_int(text, "seq", (int64_t)index);
	batch_text_string(text, "entity",
	    change_entity_name(entry->change.entity));
	batch_text_int(text, "lsn", entry->change.lsn);
	batch_text_string(text, "topic", batch->topic_names[entry->topic]);
	batch_text_int(text, "part", entry->partition);
	batch_text_int(text, "off", entry->offset);
	batch_text_close(text, '}');
}

/*
 * Writes the headers of a dead letter.  They are the JSON text of
 * decode_headers_json(); read and written again by jansson, as they
 * always were, so a text jansson would refuse is left out as before.
 * Dead letters are rare: the cost does not matter.
 */
static void
batch_json_headers(struct batch_text *text, const char *headers_json)
{
	json_t *headers = json_loads(headers_json, 0, NULL);
	char *dumped;

	if (headers == NULL)
		return;
	if ((dumped = json_dumps(headers, JSON_COMPACT)) == NULL)
		fatalx("batch: json_dumps failed");
	batch_text_json(text, "headers", dumped);
	free(dumped);
	json_decref(headers);
}

/* Writes a dead letter as its JSON record: bytes in hex. */
static void
batch_json_dead(const struct batch *batch, struct batch_text *text,
    const struct batch_entry *entry)
{
	batch_text_open(text, NULL, '{');
	batch_text_string(text, "topic", batch->topic_names[entry->topic]);
	batch_text_int(text, "part", entry->partition);
	batch_text_int(text, "off", entry->offset);
	if (entry->key != NULL)
		batch_text_hex(text, "key", entry->key, entry->key_len);
	if (entry->value != NULL)
		batch_text_hex(text, "value", entry->value, entry->value_len);
	if (entry->headers_json != NULL && !entry->bare)
		batch_json_headers(text, entry->headers_json);
	batch_text_string(text, "reason", entry->reason);
	batch_text_close(text, '}');
}

/*
 * The first event folded into an entry that its partition has not
 * applied yet (they are in offset order): those before it are skipped,
 * as they would be unfolded.
 */
static size_t
batch_fold_start(const struct batch_entry *entry,
    const struct batch_position *pos)
{
	size_t i;

	if (pos == NULL || !pos->stored)
		return 0;
	for (i = 0; i < entry->folded_count &&
	    entry->folded[i].offset < pos->next_offset; i++)
		;
	return i;
}

/*
 * Writes one event of a key that carries operator requests as a record
 * of its own ("one": true).  Such keys are applied one event at a time
 * in batch order, since each request's preconditions are decided against
 * the state its predecessors left (docs/EVENTS.md); the record carries
 * the request's id, requester and preconditions.
 */
static void
batch_json_one(const struct batch *batch, struct batch_text *text,
    struct batch_stale *stale, const struct batch_entry *entry, size_t index,
    const struct batch_position *pos)
{
	const struct change *change = &entry->change;
	bool request = change->request_id != NULL, has_address;
	struct batch_net net;
	char digest[24];
	size_t i;

	memset(&net, 0, sizeof(net));
	net.entity = change->entity;
	net.id = change->id;
	for (i = 0; i < BATCH_KEEP_FIELDS; i++)
		net.from[i] = BATCH_FROM_STORED;
	batch_net_take(batch, stale, &net, entry, index,
	    batch_fold_start(entry, pos));
	/* The record is this event's own: its state is the event or none. */
	has_address = batch_json_net(batch, text, &net, request);
	free(net.lo);
	batch_text_bool(text, "one", true);
	if (request) {
		batch_text_string(text, "rid", change->request_id);
		snprintf(digest, sizeof(digest), BATCH_DIGEST_VERSION "%016llx",
		    (unsigned long long)change->request_digest);
		batch_text_string(text, "rdg", digest);
		batch_json_required(text, "by", change->requester);
		batch_text_bool(text, "ifa", change->if_available);
		batch_text_string(text, "ifm", change->if_match);
		/* A delete's record names no address: the request still does. */
		if (!has_address)
			batch_text_addr(text, "address", change->has_ip,
			    &change->ip);
	}
	batch_text_close(text, '}');
}

/* Finds (or makes) the net effect of an entry's key. */
static struct batch_net *
batch_net_find(struct batch_nets *table, const struct batch_entry *entry)
{
	struct batch_net *net;
	size_t slot, i;

	slot = batch_hash(entry->change.entity, entry->change.id) &
	    table->mask;
	while (table->slots[slot] != 0) {
		net = &table->nets[table->slots[slot] - 1];
		if (net->entity == entry->change.entity &&
		    strcmp(net->id, entry->change.id) == 0)
			return net;
		slot = (slot + 1) & table->mask;
	}
	net = &table->nets[table->count++];
	table->slots[slot] = (uint32_t)table->count;
	net->entity = entry->change.entity;
	net->id = entry->change.id;
	for (i = 0; i < BATCH_KEEP_FIELDS; i++)
		net->from[i] = BATCH_FROM_STORED;
	return net;
}

/*
 * Writes the events the batch finds stale: their number per topic name,
 * in the order the names were first found stale, and the sample.
 */
static void
batch_json_stale(const struct batch *batch, struct batch_text *text,
    const struct batch_stale *stale)
{
	size_t i, topic;

	batch_text_open(text, "stale_known", '{');
	batch_text_open(text, "topics", '{');
	for (i = 0; i < stale->ordered; i++) {
		topic = stale->order[i];
		if (batch_text_key(text, batch->topic_names[topic]))
			batch_text_int(text, NULL, (int64_t)stale->counts[topic]);
	}
	batch_text_close(text, '}');
	batch_text_open(text, "sample", '[');
	batch_text_append(text, &stale->sample);
	batch_text_close(text, ']');
	batch_text_close(text, '}');
}

/*
 * Decides what each entry becomes (roles) and takes the entries of keys
 * without requests into their net effects; returns -1 when a partition
 * is not assigned.
 */
static int
batch_roles(const struct batch *batch, size_t n, batch_position_fn *position,
    void *arg, struct batch_nets *table, struct batch_stale *stale,
    uint8_t *roles, size_t *skipped)
{
	const struct batch_position *pos;
	const struct batch_entry *entry;
	struct batch_net *net;
	size_t i, from;

	/* The keys that carry operator requests go one event at a time. */
	for (i = 0; i < n; i++) {
		entry = &batch->entries[i];
		if (!entry->dead && entry->change.request_id != NULL)
			batch_net_find(table, entry)->one_by_one = true;
	}
	for (i = 0; i < n; i++) {
		entry = &batch->entries[i];
		if ((pos = position(arg, entry->topic, entry->partition)) == NULL)
			return -1;
		if (entry->gone)
			roles[i] = BATCH_ROLE_GONE;
		else if (pos->stored && entry->offset < pos->next_offset) {
			*skipped += 1 + entry->folded_count;
			roles[i] = BATCH_ROLE_SKIPPED;
		} else if (entry->dead)
			roles[i] = BATCH_ROLE_DEAD;
		else if (entry->change.op == CHANGE_TRUNCATE)
			roles[i] = BATCH_ROLE_TRUNCATE;
		else {
			/* The events folded into it that were applied. */
			from = batch_fold_start(entry, pos);
			*skipped += from;
			if ((net = batch_net_find(table, entry))->one_by_one)
				roles[i] = BATCH_ROLE_ONE;
			else {
				roles[i] = BATCH_ROLE_NET;
				batch_net_take(batch, stale, net, entry, i, from);
			}
		}
	}
	return 0;
}

/* The fingerprint of a Kafka record: its key and value. */
int64_t
batch_fingerprint(const void *key, size_t key_len, const void *value,
    size_t value_len)
{
	unsigned char len[8], tag = value != NULL;
	uint64_t hash;
	size_t i;

	/* The key's length first, little-endian whatever the machine. */
	for (i = 0; i < sizeof(len); i++)
		len[i] = (unsigned char)((uint64_t)key_len >> (8 * i));
	hash = fnv1a64(FNV1A64_START, len, sizeof(len));
	hash = fnv1a64(hash, key, key != NULL ? key_len : 0);
	hash = fnv1a64(hash, &tag, 1);
	hash = fnv1a64(hash, value, value != NULL ? value_len : 0);
	return (int64_t)hash;
}

/*
 * For each partition end, the entry of [0, n) just before it: a new array
 * parallel to ends, NULL where that record is not kept as it came (a
 * folding batch keeps versions and offsets of the records it folds, not
 * the records; an entry others were folded into carries a later offset
 * than its record's).
 */
static const struct batch_entry **
batch_end_entries(const struct batch *batch, size_t n,
    const struct batch_position *ends, size_t end_count)
{
	const struct batch_entry **last;
	size_t i, j;

	if ((last = calloc(end_count + 1, sizeof(*last))) == NULL)
		fatal("batch: calloc");
	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];

		for (j = end_count; j-- > 0;)
			if (ends[j].partition == entry->partition &&
			    ends[j].topic == batch->topic_names[entry->topic])
				break;
		if (j != (size_t)-1 && entry->offset + 1 == ends[j].next_offset &&
		    !entry->folding && !entry->gone && entry->folded_count == 0)
			last[j] = entry;
	}
	return last;
}

/*
 * Writes per partition the expected and the next offset, and the
 * fingerprint of the record before the next when the batch holds it
 * whole; returns -1 when a partition is not assigned.
 */
static int
batch_json_offsets(const struct batch *batch, struct batch_text *text,
    size_t n, batch_position_fn *position, void *arg)
{
	const struct batch_position *pos;
	const struct batch_entry **last;
	struct batch_position *ends = NULL;
	size_t i, end_count;
	int topic, rc = -1;

	batch_text_open(text, "offsets", '[');
	end_count = batch_partition_ends(batch, n, &ends);
	last = batch_end_entries(batch, n, ends, end_count);
	for (i = 0; i < end_count; i++) {
		for (topic = 0; topic < (int)batch->topic_count; topic++)
			if (strcmp(batch->topic_names[topic], ends[i].topic) == 0)
				break;
		if ((pos = position(arg, topic, ends[i].partition)) == NULL)
			goto fail;
		if (pos->stored && ends[i].next_offset <= pos->next_offset)
			continue;	/* everything was applied already */
		batch_text_open(text, NULL, '{');
		batch_text_string(text, "topic", ends[i].topic);
		batch_text_int(text, "part", ends[i].partition);
		if (pos->stored)
			batch_text_int(text, "expected", pos->next_offset);
		else
			batch_text_null(text, "expected");
		batch_text_int(text, "next", ends[i].next_offset);
		if (last[i] != NULL)
			batch_text_int(text, "fp", batch_fingerprint(
			    last[i]->key, last[i]->key_len, last[i]->value,
			    last[i]->value_len));
		batch_text_close(text, '}');
	}
	batch_text_close(text, ']');
	rc = 0;
fail:
	free(last);
	free(ends);
	return rc;
}

/*
 * Builds the JSON argument of ipamd.apply_batch() for entries [0, n),
 * written as text straight from the changes: building a jansson tree of
 * every record, dumping it and freeing it was most of the daemon's CPU
 * per event.  tests/unit/test_batch_json.c holds it against that builder.
 */
char *
batch_build_json(const struct batch *batch, size_t n, const char *group_id,
    const char *schema, bool rebuild, batch_position_fn *position, void *arg,
    size_t *skipped)
{
	static const char *const arrays[] = { "servers", "subnets", "marks" };
	struct batch_nets table;
	struct batch_net *net;
	struct batch_stale stale;
	struct batch_text text;
	uint8_t *roles;
	size_t i, slots;
	char *done = NULL;
	int entity;

	*skipped = 0;
	for (slots = 16; slots < n * 2; slots *= 2)
		;
	table.mask = slots - 1;
	table.count = 0;
	if ((table.slots = calloc(slots, sizeof(*table.slots))) == NULL ||
	    (table.nets = calloc(n ? n : 1, sizeof(*table.nets))) == NULL ||
	    (roles = malloc(n ? n : 1)) == NULL ||
	    (stale.counts = calloc(batch->topic_count + 1,
	    sizeof(*stale.counts))) == NULL ||
	    (stale.order = calloc(batch->topic_count + 1,
	    sizeof(*stale.order))) == NULL)
		fatal("batch: calloc");
	stale.ordered = 0;
	stale.sampled = 0;
	batch_text_init(&stale.sample, 256);
	batch_text_init(&text, 1024 + n * 320);

	if (batch_roles(batch, n, position, arg, &table, &stale, roles,
	    skipped) == -1)
		goto fail;
	batch_text_open(&text, NULL, '{');
	batch_json_required(&text, "group", group_id);
	batch_json_required(&text, "schema", schema);
	batch_text_bool(&text, "audit", !rebuild);
	batch_text_bool(&text, "derive", !rebuild);
	batch_text_open(&text, "dead", '[');
	for (i = 0; i < n; i++)
		if (roles[i] == BATCH_ROLE_DEAD)
			batch_json_dead(batch, &text, &batch->entries[i]);
	batch_text_close(&text, ']');
	if (batch_json_offsets(batch, &text, n, position, arg) == -1)
		goto fail;
	batch_text_open(&text, "truncates", '[');
	for (i = 0; i < n; i++)
		if (roles[i] == BATCH_ROLE_TRUNCATE)
			batch_json_truncate(batch, &text, &batch->entries[i], i);
	batch_text_close(&text, ']');
	batch_json_stale(batch, &text, &stale);

	/*
	 * Each entity's records: the one-by-one records in batch order, then
	 * the net effects; the apply function is set-based, the order free.
	 */
	for (entity = CHANGE_SERVER; entity <= CHANGE_MARK; entity++) {
		batch_text_open(&text, arrays[entity], '[');
		for (i = 0; i < n; i++)
			if (roles[i] == BATCH_ROLE_ONE &&
			    batch->entries[i].change.entity ==
			    (enum change_entity)entity)
				batch_json_one(batch, &text, &stale,
				    &batch->entries[i], i, position(arg,
				    batch->entries[i].topic,
				    batch->entries[i].partition));
		for (i = 0; i < slots; i++) {
			if (table.slots[i] == 0)
				continue;
			net = &table.nets[table.slots[i] - 1];
			if (!net->one_by_one &&
			    net->entity == (enum change_entity)entity) {
				(void)batch_json_net(batch, &text, net, false);
				batch_text_close(&text, '}');
			}
		}
		batch_text_close(&text, ']');
	}
	batch_text_close(&text, '}');
	done = batch_text_finish(&text);
fail:
	batch_text_free(&text);
	batch_text_free(&stale.sample);
	for (i = 0; i < table.count; i++)
		free(table.nets[i].lo);
	free(table.slots);
	free(table.nets);
	free(roles);
	free(stale.counts);
	free(stale.order);
	return done;
}

/* The next offset each partition reaches within entries [0, n). */
size_t
batch_partition_ends(const struct batch *batch, size_t n,
    struct batch_position **out)
{
	struct batch_position *ends = NULL, *grown;
	size_t i, j, count = 0, capacity = 0;

	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];

		/*
		 * Entries of one partition mostly follow each other; names
		 * are the batch's own strings, compared as pointers.
		 */
		for (j = count; j-- > 0;) {
			if (ends[j].partition == entry->partition &&
			    ends[j].topic == batch->topic_names[entry->topic])
				break;
		}
		if (j == (size_t)-1) {
			if (count == capacity) {
				capacity = capacity ? capacity * 2 : 16;
				grown = realloc(ends, capacity * sizeof(*grown));
				if (grown == NULL)
					fatal("batch: realloc");
				ends = grown;
			}
			ends[count].topic = batch->topic_names[entry->topic];
			ends[count].partition = entry->partition;
			ends[count].stored = true;
			ends[count].next_offset = entry->offset + 1;
			count++;
		} else if (entry->offset + 1 > ends[j].next_offset)
			ends[j].next_offset = entry->offset + 1;
	}
	*out = ends;
	return count;
}
