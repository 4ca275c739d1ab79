/* A batch of consumed messages: decoded changes and dead letters, in order. */
#ifndef IPAM_CONSUMERS_BATCH_H
#define IPAM_CONSUMERS_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consumers/change.h"

/* Releases what keeps an entry's key and value alive (batch_add_held). */
typedef void batch_release_fn(void *hold);

/* An event folded into a later event of its key (batch_set_fold()). */
struct batch_folded {
	int64_t		 version;
	int64_t		 offset;
};

/* One consumed message: a change to apply, or a dead letter to keep. */
struct batch_entry {
	int		 topic;		/* index into the topic names */
	int32_t		 partition;
	int64_t		 offset;
	bool		 dead;
	bool		 rejected;	/* dead because PostgreSQL refused it; the
					   change is kept until that commits */
	bool		 bare;		/* its dead letter goes without headers */
	struct change	 change;	/* when not dead */
	char		*reason;	/* when dead: why */
	const uint8_t	*key;		/* the raw key, or NULL */
	size_t		 key_len;
	const uint8_t	*value;		/* the raw value, or NULL (a tombstone) */
	size_t		 value_len;
	void		*hold;		/* keeps key and value alive, or NULL:
					   they are the batch's own copies */
	char		*headers_json;	/* headers as a JSON object, or NULL */
	size_t		 headers_len;	/* its length, counted in the batch's
					   bytes as key and value are */
	bool		 folding;	/* added by a folding batch: no raw
					   message kept (batch_set_fold()) */
	size_t		 decoded;	/* folding: the bytes its change
					   holds, counted in the batch's */
	bool		 gone;		/* folded into a later event of its key:
					   holds nothing, only its place */
	struct batch_folded *folded;	/* the events of its key folded into
					   it, oldest first */
	size_t		 folded_count;
};

/* Where a partition stands in PostgreSQL: its next offset, or none yet. */
struct batch_position {
	const char	*topic;
	int32_t		 partition;
	bool		 stored;	/* a row exists */
	int64_t		 next_offset;
};

/* Looks up where a partition stands; returns NULL when it is not assigned. */
typedef const struct batch_position *batch_position_fn(void *arg,
    int topic, int32_t partition);

struct batch {
	struct batch_entry	*entries;
	size_t			 count;
	size_t			 capacity;
	size_t			 bytes;		/* message bytes held, and the
					   decoded changes of a folding batch */
	const char *const	*topic_names;
	size_t			 topic_count;
	batch_release_fn	*release;	/* of the entries' holds */
	bool			 fold;		/* batch_set_fold() */
	size_t			 gone;		/* entries folded away */
	uint32_t		*keys;		/* fold: each key's last entry */
	size_t			 keys_mask;
	size_t			 keys_used;
};

/* Sets up an empty batch that names topics by index into topic_names. */
void	batch_init(struct batch *batch, const char *const *topic_names,
	    size_t topic_count);

/*
 * Takes ownership of a decoded change (the caller's copy is zeroed) and
 * keeps a copy of the raw message, so that the event can still become a
 * dead letter whole if PostgreSQL rejects it.
 */
void	batch_add_change(struct batch *batch, int topic, int32_t partition,
	    int64_t offset, struct change *change, const void *key,
	    size_t key_len, const void *value, size_t value_len,
	    const char *headers_json);

/* Sets how the batch releases the holds of batch_add_held(). */
void	batch_set_release(struct batch *batch, batch_release_fn *release);

/*
 * Adds a change (reason NULL: taken as by batch_add_change()) or a dead
 * letter (its reason is copied) whose key and value are borrowed from
 * hold rather than copied: the batch owns hold from now on and releases
 * it once the entry is freed.  Copying every message was a malloc, a
 * copy and a free of its bytes; the message is kept as it is instead.
 */
void	batch_add_held(struct batch *batch, int topic, int32_t partition,
	    int64_t offset, struct change *change, const char *reason,
	    void *hold, const void *key, size_t key_len, const void *value,
	    size_t value_len, const char *headers_json);

/*
 * Folds the events of a key as they are added (a rebuild reads every
 * version of every key): an event that takes its key's whole state from
 * the key's previous event of the batch, as a newer version of it, leaves
 * of that event only its version and offset (struct batch_folded), so
 * that a batch holds about one event per key however many versions it
 * has read.  Marks do not fold (their keys may carry requests, applied
 * one event at a time).  The batch's JSON argument is the same as for the
 * events unfolded.  A folding batch keeps no raw message of the changes it
 * takes (their holds are released at once; the bytes it counts are those
 * of the decoded changes instead): if PostgreSQL refuses one of them,
 * it cannot be told apart from what was folded into it, nor kept as a
 * dead letter, and the events have to be read again without folding
 * (consumers/applier.h, APPLIER_UNFOLD).  Dead letters keep theirs.
 * Turning it off keeps what was folded.
 */
void	batch_set_fold(struct batch *batch, bool on);

/* The entries that hold an event, folded into them or not. */
size_t	batch_live(const struct batch *batch);

/* Tells how many events were folded into an entry. */
size_t	batch_entry_folds(const struct batch_entry *entry);

/* Adds a dead letter; the bytes are copied. */
void	batch_add_dead(struct batch *batch, int topic, int32_t partition,
	    int64_t offset, const char *reason, const void *key, size_t key_len,
	    const void *value, size_t value_len, const char *headers_json);

/* Removes the first n entries, freeing them. */
void	batch_drop_front(struct batch *batch, size_t n);

/* Removes every entry of one partition. */
void	batch_drop_partition(struct batch *batch, int topic,
	    int32_t partition);

/*
 * Moves every entry of src to the end of dst, which must release holds
 * as src does; src is left empty.
 */
void	batch_move(struct batch *dst, struct batch *src);

/* Frees every entry; the batch stays usable. */
void	batch_clear(struct batch *batch);

/*
 * Builds the JSON argument of ipamd.apply_batch() for entries [0, n), to
 * be applied to the state in schema (a rebuild writes no audit and
 * derives no rows until its end):
 * per partition the expected and the next offset, the dead letters, the
 * truncates, per entity key the net effect of its events (see
 * schema/functions/20_versions.sql), and the events the batch itself
 * finds stale ("stale_known": their number per topic and a sample).
 * Entries below the stored offset of their partition are skipped (already
 * applied).  Returns a string the caller frees, or NULL when a partition
 * is not assigned (its position function returns NULL).
 */
char	*batch_build_json(const struct batch *batch, size_t n,
	    const char *group_id, const char *schema, bool rebuild,
	    batch_position_fn *position, void *arg, size_t *skipped);

/*
 * The fingerprint of a Kafka record by its key and value (FNV-1a, as a
 * signed number for PostgreSQL's bigint): a partition's stored offset
 * keeps the one of the record before it, to know that record again
 * (schema/016_offset_fingerprint.sql).  value NULL is a tombstone, told
 * apart from an empty value.
 */
int64_t	batch_fingerprint(const void *key, size_t key_len, const void *value,
	    size_t value_len);

/*
 * For entries [0, n), the next offset each partition reaches: a new array
 * in *out (the caller frees it, NULL when n is 0); returns its length.
 */
size_t	batch_partition_ends(const struct batch *batch, size_t n,
	    struct batch_position **out);

#endif
