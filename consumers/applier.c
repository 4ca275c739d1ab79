/* The apply transaction: one batch in, one PostgreSQL statement, one commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumers/applier.h"

/* How many dead letters and conflicts one batch names in the log. */
#define APPLIER_LOG_LIMIT	20

/*
 * Retries after an error that is neither the data's nor a lost
 * connection: the first waits this long, each next one twice as long, up
 * to the cap.  An error of unknown cause is retried this many times, then
 * blamed on the events (bisected into dead letters).
 */
#define APPLIER_RETRY_MS	1000
#define APPLIER_RETRY_MAX_MS	30000
#define APPLIER_UNKNOWN_RETRIES	3
/*
 * A serialization failure or deadlock that comes back this many times in
 * a row (about 30 s of retries) is no passing clash: the daemon turns not
 * ready and says why, and goes on retrying.
 */
#define APPLIER_TRANSIENT_FAILING	5

/* At most this many stale events are logged a minute, then a summary. */
#define APPLIER_STALE_LOG_PER_MINUTE	20

const double applier_size_bounds[APPLIER_SIZE_BUCKETS] = {
	1, 10, 100, 500, 1000, 5000, 10000, 50000,
};
const double applier_time_bounds[APPLIER_TIME_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

struct applier {
	struct event_base	*base;
	struct pgconn		*pg;
	char			*group_id;
	const char		*schema;	/* a constant string */
	bool			 rebuild;
	struct applier_positions positions;
	applier_done_cb		*done;
	void			*arg;
	struct event		*retry_timer;

	struct batch		*batch;		/* being applied, or NULL */
	size_t			 chunk;		/* entries [0, chunk) are in flight */
	struct timespec		 started;	/* of the statement in flight */
	struct applier_stats	 stats;
	uint64_t		 pool_budget;	/* see applier_pool_chunk() */

	/* Errors that are not the data's: retried with a growing delay. */
	int			 failures;	/* errors of unknown class since
						   the last commit (a refused
						   event's are not counted) */
	int			 transient;	/* serialization failures and
						   deadlocks in a row */
	long			 retry_ms;
	bool			 failing;	/* the database is the problem */
	char			 failing_reason[512];
	struct timespec		 failing_since;

	/* Rate limit of the stale-event log lines. */
	struct timespec		 stale_window;
	unsigned		 stale_logged;
	uint64_t		 stale_unlogged;
};

static void	applier_send(struct applier *applier);
static void	applier_recovered(struct applier *applier);
static void	applier_set_failing(struct applier *applier,
		    const char *message);

/* Runs when the retry delay is over. */
static void
applier_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct applier *applier = arg;

	if (applier->batch != NULL)
		applier_send(applier);
}

/*
 * Gives up the batch that waits to be sent again: the connection was made
 * again and the consumer reads it again from the stored offsets.  Failing
 * stays as it is until a batch commits.
 */
void
applier_drop(struct applier *applier)
{
	if (applier->batch == NULL || applier->chunk != 0)
		return;
	evtimer_del(applier->retry_timer);
	applier->batch = NULL;
	applier->failures = 0;
}

/* Creates an applier. */
struct applier *
applier_new(struct event_base *base, struct pgconn *pg, const char *group_id,
    const struct applier_positions *positions, applier_done_cb *done,
    void *arg)
{
	struct applier *applier;

	if ((applier = calloc(1, sizeof(*applier))) == NULL)
		fatal("applier: calloc");
	applier->base = base;
	applier->pg = pg;
	if ((applier->group_id = strdup(group_id)) == NULL)
		fatal("applier: strdup");
	applier->positions = *positions;
	applier->schema = "ipam_state";
	applier->rebuild = false;
	applier->pool_budget = UINT64_MAX;
	applier->done = done;
	applier->arg = arg;
	applier->retry_timer = evtimer_new(base, applier_retry_cb, applier);
	if (applier->retry_timer == NULL)
		fatalx("applier: evtimer_new failed");
	return applier;
}

/* Frees an applier. */
void
applier_free(struct applier *applier)
{
	if (applier == NULL)
		return;
	event_free(applier->retry_timer);
	free(applier->group_id);
	free(applier);
}

/* Chooses the state the next applies fill. */
void
applier_set_target(struct applier *applier, const char *schema, bool rebuild)
{
	applier->schema = schema;
	applier->rebuild = rebuild;
}

/* Sets the pool addresses one statement may expand. */
void
applier_set_pool_budget(struct applier *applier, uint64_t addresses)
{
	applier->pool_budget = addresses > 0 ? addresses : UINT64_MAX;
}

/* Tells whether an apply is in flight. */
bool
applier_busy(const struct applier *applier)
{
	return applier->batch != NULL;
}

/*
 * Seconds the statement in flight has been running (0: none).  A database
 * that refuses every batch is not counted: the daemon is alive and retries
 * with a growing delay, not stuck, and restarting it fixes nothing.
 */
double
applier_busy_seconds(const struct applier *applier)
{
	if (applier->batch == NULL || applier->chunk == 0)
		return 0;
	return clock_seconds_since(&applier->started);
}

/* Adds one observation to a histogram. */
static void
applier_observe(struct applier_histogram *histogram, const double *bounds,
    size_t bucket_count, double value)
{
	size_t i;

	for (i = 0; i < bucket_count; i++) {
		if (value <= bounds[i])
			histogram->counts[i]++;
	}
	histogram->count++;
	histogram->sum += value;
}

/* Counts what became of each message of the committed entries. */
static void
applier_count_messages(struct applier *applier, size_t n)
{
	const struct batch *batch = applier->batch;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];
		const struct batch_position *pos;
		struct applier_topic_stats *topic;

		if (entry->topic < 0 || entry->topic >= APPLIER_MAX_TOPICS)
			continue;
		topic = &applier->stats.topics[entry->topic];
		pos = applier->positions.get(applier->positions.arg,
		    entry->topic, entry->partition);
		if (entry->gone)
			continue;	/* counted with the entry it went into */
		if (pos != NULL && pos->stored && entry->offset < pos->next_offset)
			topic->skipped += 1 + batch_entry_folds(entry);
		else if (entry->dead) {
			topic->dead_letters++;
			applier->stats.dead_letters++;
		} else
			topic->applied += 1 + batch_entry_folds(entry);
	}
}

/*
 * The events entries [0, n) stand for: each entry's own and those folded
 * into it (batch_set_fold()); an entry folded away counts in the entry
 * it went into.  Sets *folded to those folded.
 */
static size_t
applier_events(const struct batch *batch, size_t n, size_t *folded)
{
	size_t i, events = 0;

	*folded = 0;
	for (i = 0; i < n; i++) {
		if (batch->entries[i].gone)
			continue;
		events += 1 + batch_entry_folds(&batch->entries[i]);
		*folded += batch_entry_folds(&batch->entries[i]);
	}
	return events;
}

/* Adds the per-entity counts of an apply result. */
static void
applier_count_entities(struct applier *applier, json_t *result)
{
	static const char *const names[3] = { "server", "subnet", "mark" };
	json_t *entities = json_object_get(result, "entities"), *pair;
	size_t i;

	for (i = 0; i < 3; i++) {
		pair = json_object_get(entities, names[i]);
		applier->stats.entity_applied[i] +=
		    (uint64_t)json_integer_value(json_array_get(pair, 0));
		applier->stats.entity_stale[i] +=
		    (uint64_t)json_integer_value(json_array_get(pair, 1));
	}
}

/* Tells why the database refuses every apply, or NULL when it does not. */
const char *
applier_failing(const struct applier *applier)
{
	return applier->failing ? applier->failing_reason : NULL;
}

/* The running totals. */
const struct applier_stats *
applier_stats(const struct applier *applier)
{
	return &applier->stats;
}

/* Ends the apply and tells the owner. */
static void
applier_finish(struct applier *applier, enum applier_outcome outcome,
    const char *error)
{
	applier->batch = NULL;
	applier->chunk = 0;
	applier->done(applier, outcome, error, applier->arg);
}

/* Reads an integer member of the result, 0 when absent. */
static uint64_t
applier_count(json_t *result, const char *name)
{
	json_t *value = json_object_get(result, name);

	return json_is_integer(value) ? (uint64_t)json_integer_value(value) : 0;
}

/* Logs the dead letters of the committed entries, a bounded number. */
static void
applier_log_dead(struct applier *applier, size_t n)
{
	const struct batch *batch = applier->batch;
	size_t i, logged = 0, total = 0;

	for (i = 0; i < n; i++) {
		const struct batch_entry *entry = &batch->entries[i];

		if (!entry->dead)
			continue;
		total++;
		if (logged++ < APPLIER_LOG_LIMIT)
			log_warnx("dead letter %s[%d]@%lld: %s",
			    batch->topic_names[entry->topic], entry->partition,
			    (long long)entry->offset, entry->reason);
	}
	if (total > APPLIER_LOG_LIMIT)
		log_warnx("%zu more dead letters in this batch",
		    total - APPLIER_LOG_LIMIT);
}

/* Logs the conflicts a batch added, a bounded number. */
static void
applier_log_conflicts(json_t *result)
{
	json_t *conflicts = json_object_get(result, "conflicts"), *conflict;
	size_t i;

	json_array_foreach(conflicts, i, conflict) {
		if (i == APPLIER_LOG_LIMIT) {
			log_warnx("%zu more conflicts in this batch",
			    json_array_size(conflicts) - APPLIER_LOG_LIMIT);
			break;
		}
		log_warnx("conflict %s: %s",
		    json_string_value(json_object_get(conflict, "kind")),
		    json_string_value(json_object_get(conflict, "detail")));
	}
}

/* Finds a topic's index by name; -1 when it is not ours. */
static int
applier_topic_index(const struct applier *applier, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < applier->batch->topic_count; i++)
		if (strcmp(applier->batch->topic_names[i], name) == 0)
			return (int)i;
	return -1;
}

/* Adds the stale counts of one report ({topic: n}) to the topic totals. */
static void
applier_count_stale(struct applier *applier, json_t *report)
{
	json_t *topics = json_object_get(report, "topics"), *count;
	const char *name;
	int topic;

	json_object_foreach(topics, name, count) {
		topic = applier_topic_index(applier, name);
		if (topic < 0 || topic >= APPLIER_MAX_TOPICS)
			continue;
		applier->stats.topics[topic].stale +=
		    (uint64_t)json_integer_value(count);
		applier->stats.events_stale +=
		    (uint64_t)json_integer_value(count);
	}
}

/*
 * Logs one stale event with its key and both versions, at most
 * APPLIER_STALE_LOG_PER_MINUTE lines a minute; what is left out is
 * counted and said when the next minute starts.
 */
static void
applier_log_stale(struct applier *applier, json_t *note)
{
	json_t *stored = json_object_get(note, "stored");
	json_t *newer = json_object_get(note, "newer");
	json_t *truncated = json_object_get(note, "truncated_at");
	char because[128];

	if (clock_seconds_since(&applier->stale_window) >= 60) {
		if (applier->stale_unlogged > 0)
			log_warnx("stale: %llu more stale events in the last "
			    "minute were not logged",
			    (unsigned long long)applier->stale_unlogged);
		clock_gettime(CLOCK_MONOTONIC, &applier->stale_window);
		applier->stale_logged = 0;
		applier->stale_unlogged = 0;
	}
	if (applier->stale_logged >= APPLIER_STALE_LOG_PER_MINUTE) {
		applier->stale_unlogged++;
		return;
	}
	applier->stale_logged++;
	if (json_is_integer(newer))
		snprintf(because, sizeof(because), "version %lld came before "
		    "it", (long long)json_integer_value(newer));
	else if (json_is_integer(truncated))
		snprintf(because, sizeof(because), "its table was truncated "
		    "at lsn %lld", (long long)json_integer_value(truncated));
	else
		snprintf(because, sizeof(because), "version %lld is stored",
		    (long long)json_integer_value(stored));
	log_warnx("stale: %s %s version %lld (%s[%lld]@%lld) changes "
	    "nothing: %s",
	    json_string_value(json_object_get(note, "entity")),
	    json_string_value(json_object_get(note, "id")),
	    (long long)json_integer_value(json_object_get(note, "version")),
	    json_string_value(json_object_get(note, "topic")),
	    (long long)json_integer_value(json_object_get(note, "part")),
	    (long long)json_integer_value(json_object_get(note, "off")),
	    because);
}

/*
 * Counts and logs the stale events of a result: those the stored
 * versions outdate (one report per entity) and those the batch itself
 * found ("stale_known").
 */
static void
applier_stale(struct applier *applier, json_t *result)
{
	json_t *reports = json_object_get(result, "stale_reports"), *report;
	json_t *known = json_object_get(result, "stale_known"), *note;
	size_t i, j;

	json_array_foreach(reports, i, report) {
		applier_count_stale(applier, report);
		json_array_foreach(json_object_get(report, "sample"), j, note)
			applier_log_stale(applier, note);
	}
	applier_count_stale(applier, known);
	json_array_foreach(json_object_get(known, "sample"), j, note)
		applier_log_stale(applier, note);
}

/* Records a committed chunk: positions, totals, logs; then goes on. */
static void
applier_committed(struct applier *applier, const char *text)
{
	struct batch_position *ends;
	struct timespec now;
	json_t *result;
	size_t i, count, events, folded;
	char folded_note[96] = "";

	/*
	 * Count before the positions move past these entries.  The dead
	 * letters are counted here, by message, as messages_total counts
	 * them: the function's "dead" counts rows inserted, and a message
	 * whose dead letter is kept already (a rebuild or replay reads it
	 * again) inserts none, which made the two figures disagree.
	 */
	events = applier_events(applier->batch, applier->chunk, &folded);
	applier_count_messages(applier, applier->chunk);
	count = batch_partition_ends(applier->batch, applier->chunk, &ends);
	for (i = 0; i < count; i++)
		applier->positions.set(applier->positions.arg,
		    applier_topic_index(applier, ends[i].topic),
		    ends[i].partition, ends[i].next_offset);
	free(ends);
	applier_recovered(applier);
	result = json_loads(text ? text : "{}", 0, NULL);
	applier->stats.batches++;
	applier->stats.events_applied += applier_count(result, "applied");
	applier->stats.events_folded += folded;
	applier_stale(applier, result);
	applier->stats.rows_inserted += applier_count(result, "inserted");
	applier->stats.rows_updated += applier_count(result, "updated");
	applier->stats.rows_deleted += applier_count(result, "deleted");
	applier->stats.conflicts +=
	    json_array_size(json_object_get(result, "conflicts"));
	applier->stats.last_apply_seconds = clock_seconds_since(&applier->started);
	clock_gettime(CLOCK_REALTIME, &now);
	applier->stats.last_commit_unix = (double)now.tv_sec +
	    (double)now.tv_nsec / 1e9;
	applier_count_entities(applier, result);
	applier_observe(&applier->stats.batch_size, applier_size_bounds,
	    APPLIER_SIZE_BUCKETS, (double)events);
	applier_observe(&applier->stats.apply_seconds, applier_time_bounds,
	    APPLIER_TIME_BUCKETS, applier->stats.last_apply_seconds);
	if (folded > 0)
		snprintf(folded_note, sizeof(folded_note),
		    " (%zu of the events folded into later ones of their keys)",
		    folded);
	if (applier_count(result, "truncated") > 0)
		log_info("truncate: %llu entities forgotten",
		    (unsigned long long)applier_count(result, "truncated"));
	log_debug("batch of %zu: %llu applied, %llu stale, %llu dead, "
	    "rows +%llu ~%llu -%llu in %.3f s%s", events,
	    (unsigned long long)applier_count(result, "applied"),
	    (unsigned long long)applier_count(result, "stale"),
	    (unsigned long long)applier_count(result, "dead"),
	    (unsigned long long)applier_count(result, "inserted"),
	    (unsigned long long)applier_count(result, "updated"),
	    (unsigned long long)applier_count(result, "deleted"),
	    applier->stats.last_apply_seconds, folded_note);
	applier_log_dead(applier, applier->chunk);
	applier_log_conflicts(result);
	json_decref(result);

	batch_drop_front(applier->batch, applier->chunk);
	applier->chunk = 0;
	if (applier->batch->count == 0)
		applier_finish(applier, APPLIER_DONE, NULL);
	else
		applier_send(applier);
}

/* What an SQLSTATE says about the cause of a failed apply. */
enum applier_cause {
	APPLIER_CAUSE_DATA,	/* an event: bisect, dead-letter it */
	APPLIER_CAUSE_TRANSIENT,/* try the same again soon */
	APPLIER_CAUSE_DATABASE,	/* the database: stop until it is fixed */
	APPLIER_CAUSE_UNKNOWN,	/* retried a few times, then blamed on data */
};

/*
 * Classifies an SQLSTATE.  Data exceptions, integrity violations, limits
 * a value can exceed and errors our functions raise blame the events;
 * access rules, missing objects, resources (disk full, out of memory),
 * system and internal errors, and operator intervention blame the
 * database, which no dead letter can fix.
 */
static enum applier_cause
applier_cause(const char *sqlstate)
{
	static const char *const data[] = { "22", "23", "54", "P0", "2F",
	    "0A", "44", NULL };
	static const char *const database[] = { "42", "53", "58", "XX", "3D",
	    "3F", "25", "28", "0L", "0P", "57", "F0", NULL };
	size_t i;

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		return APPLIER_CAUSE_UNKNOWN;
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
	    strcmp(sqlstate, "55P03") == 0)
		return APPLIER_CAUSE_TRANSIENT;
	/* A statement cancelled: a smaller chunk may pass (see below). */
	if (strcmp(sqlstate, "57014") == 0)
		return APPLIER_CAUSE_UNKNOWN;
	for (i = 0; data[i] != NULL; i++)
		if (strncmp(sqlstate, data[i], 2) == 0)
			return APPLIER_CAUSE_DATA;
	for (i = 0; database[i] != NULL; i++)
		if (strncmp(sqlstate, database[i], 2) == 0)
			return APPLIER_CAUSE_DATABASE;
	return APPLIER_CAUSE_UNKNOWN;
}

/*
 * Turns the single entry in flight into a dead letter naming the error.
 * The change is kept until the dead letter commits, so that the entry can
 * be restored if the database turns out to be the problem.
 */
static void
applier_reject_entry(struct applier *applier, const char *error)
{
	struct batch_entry *entry = &applier->batch->entries[0];
	char reason[1100];

	snprintf(reason, sizeof(reason), "rejected by PostgreSQL: %s", error);
	entry->dead = true;
	entry->rejected = true;
	if ((entry->reason = strdup(reason)) == NULL)
		fatal("applier: strdup");
}

/*
 * The dead letter of the single entry in flight was refused too: store it
 * without its headers, saying so in its reason.
 */
static void
applier_bare_entry(struct applier *applier, const char *error)
{
	struct batch_entry *entry = &applier->batch->entries[0];
	char *reason;

	if (asprintf(&reason, "%s (its headers were not stored: %s)",
	    entry->reason, error) == -1)
		fatal("applier: asprintf");
	free(entry->reason);
	entry->reason = reason;
	entry->bare = true;
}

/* Gives the entries rejected in this batch their changes back. */
static void
applier_restore_rejected(struct applier *applier)
{
	size_t i;

	for (i = 0; i < applier->batch->count; i++) {
		struct batch_entry *entry = &applier->batch->entries[i];

		entry->bare = false;
		if (!entry->rejected)
			continue;
		entry->rejected = false;
		entry->dead = false;
		free(entry->reason);
		entry->reason = NULL;
	}
}

/* An apply committed: a failing database is working again. */
static void
applier_recovered(struct applier *applier)
{
	if (applier->failing)
		log_info("apply: PostgreSQL accepts the batches again after "
		    "%.0f s", clock_seconds_since(&applier->failing_since));
	applier->failing = false;
	applier->failures = 0;
	applier->transient = 0;
	applier->retry_ms = 0;
}

/* Sends the same chunk again after a growing delay. */
static void
applier_retry_later(struct applier *applier)
{
	struct timeval delay;

	applier->stats.retries++;
	applier->retry_ms = applier->retry_ms == 0 ? APPLIER_RETRY_MS :
	    applier->retry_ms * 2;
	if (applier->retry_ms > APPLIER_RETRY_MAX_MS)
		applier->retry_ms = APPLIER_RETRY_MAX_MS;
	delay.tv_sec = applier->retry_ms / 1000;
	delay.tv_usec = (applier->retry_ms % 1000) * 1000;
	applier->chunk = 0;
	evtimer_add(applier->retry_timer, &delay);
}

/*
 * The database refuses every apply for a reason no event causes: say so
 * once, turn failing (not ready), and keep retrying with a growing delay.
 * Entries rejected on the way get their changes back.
 */
static void
applier_fail(struct applier *applier, const char *message)
{
	applier_restore_rejected(applier);
	applier_set_failing(applier, message);
	applier_retry_later(applier);
}

/* Turns failing (not ready) with the database's reason, said once. */
static void
applier_set_failing(struct applier *applier, const char *message)
{
	if (!applier->failing) {
		applier->failing = true;
		clock_gettime(CLOCK_MONOTONIC, &applier->failing_since);
		log_errx("apply: PostgreSQL refuses the batch: %s; consuming "
		    "stops until it is fixed (retrying with a growing delay "
		    "up to %d s)", message, APPLIER_RETRY_MAX_MS / 1000);
	}
	/* A reason longer than the field is cut where it ends. */
	snprintf(applier->failing_reason, sizeof(applier->failing_reason),
	    "%.*s", (int)sizeof(applier->failing_reason) - 1, message);
}

/* Splits the chunk in flight, or dead-letters its single entry. */
static void
applier_isolate(struct applier *applier, const char *message)
{
	struct batch_entry *entry = &applier->batch->entries[0];
	size_t i;

	applier->retry_ms = 0;
	for (i = 0; i < applier->chunk; i++) {
		if (!applier->batch->entries[i].folding)
			continue;
		log_warnx("apply: a batch read while folding was rejected (%s)",
		    message);
		applier_restore_rejected(applier);
		applier_finish(applier, APPLIER_UNFOLD, message);
		return;
	}
	if (applier->chunk > 1) {
		log_info("apply: batch of %zu rejected (%s); splitting it",
		    applier->chunk, message);
		applier->chunk = (applier->chunk + 1) / 2;
		applier_send(applier);
		return;
	}
	if (entry->bare) {
		/* Even its bare dead letter was refused: not the event. */
		applier_fail(applier, message);
		return;
	}
	if (entry->dead) {
		log_warnx("apply: the dead letter of %s[%d]@%lld was refused "
		    "(%s); storing it without its headers",
		    applier->batch->topic_names[entry->topic], entry->partition,
		    (long long)entry->offset, message);
		applier_bare_entry(applier, message);
	} else {
		log_warnx("apply: event %s[%d]@%lld rejected: %s",
		    applier->batch->topic_names[entry->topic], entry->partition,
		    (long long)entry->offset, message);
		applier_reject_entry(applier, message);
	}
	applier_send(applier);
}

/* Handles the result of one apply statement. */
static void
applier_result_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct applier *applier = arg;
	const char *sqlstate;
	char message[1024];

	if (result == NULL) {
		applier->stats.retries++;
		applier_restore_rejected(applier);
		applier_finish(applier, APPLIER_LOST, error);
		return;
	}
	if (PQresultStatus(result) == PGRES_TUPLES_OK) {
		applier_committed(applier, PQntuples(result) > 0 ?
		    PQgetvalue(result, 0, 0) : NULL);
		return;
	}
	sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	pgconn_result_error(pg, result, message, sizeof(message));
	if (sqlstate != NULL && strcmp(sqlstate, "IPM01") == 0) {
		log_warnx("apply: %s", message);
		applier_restore_rejected(applier);
		applier_finish(applier, APPLIER_MOVED, message);
		return;
	}
	if (pgconn_sqlstate_is_fatal(sqlstate)) {
		applier->stats.retries++;
		applier_restore_rejected(applier);
		/*
		 * A read-only server (a standby, a primary demoted by a
		 * failover) refuses every batch: not ready, and said once,
		 * as for any database fault, until a batch commits.  The
		 * connection is made again (a conninfo that names several
		 * hosts with target_session_attrs=read-write finds the new
		 * primary), with a delay that grows while it keeps failing.
		 */
		if (strcmp(sqlstate, "25006") == 0)
			applier_set_failing(applier, message);
		pgconn_reset(pg, message);
		if (applier->batch != NULL)
			applier_finish(applier, APPLIER_LOST, message);
		return;
	}
	switch (applier_cause(sqlstate)) {
	case APPLIER_CAUSE_DATA:
		applier_isolate(applier, message);
		return;
	case APPLIER_CAUSE_DATABASE:
		applier_fail(applier, message);
		return;
	case APPLIER_CAUSE_UNKNOWN:
		if (++applier->failures <= APPLIER_UNKNOWN_RETRIES)
			break;
		/*
		 * A statement cancelled (statement_timeout, a lock held
		 * past it, pg_cancel_backend) is no event's fault: a smaller
		 * chunk may pass, but one event that still cannot waits for
		 * the database, as any database fault does, and never
		 * becomes a dead letter.
		 */
		if (sqlstate != NULL && strcmp(sqlstate, "57014") == 0 &&
		    applier->chunk <= 1 && !applier->batch->entries[0].dead) {
			applier_fail(applier, message);
			return;
		}
		applier_isolate(applier, message);
		return;
	case APPLIER_CAUSE_TRANSIENT:
		if (++applier->transient >= APPLIER_TRANSIENT_FAILING) {
			char why[1100];

			snprintf(why, sizeof(why), "%s (%d times in a row)",
			    message, applier->transient);
			applier_set_failing(applier, why);
		}
		break;
	}
	log_warnx("apply: %s; retrying", message);
	applier_retry_later(applier);
}

/*
 * How many entries from the front go in one statement: all of them,
 * unless their subnets' pools hold more than budget addresses together; then as many as stay within it (at least one).
 * One pool of a million addresses takes PostgreSQL seconds to expand:
 * three in one statement ran longer than the watchdog allows.
 */
static size_t
applier_pool_chunk(const struct batch *batch, uint64_t budget)
{
	uint64_t addresses = 0, size;
	size_t i, p;

	for (i = 0; i < batch->count; i++) {
		const struct change *change = &batch->entries[i].change;

		if (batch->entries[i].dead ||
		    change->entity != CHANGE_SUBNET ||
		    change->op != CHANGE_UPSERT)
			continue;
		for (size = 0, p = 0; p < change->pool_count; p++)
			size += addr_range_size(&change->pools[p].first,
			    &change->pools[p].last);
		if (i > 0 && addresses + size > budget)
			return i;
		addresses += size;
	}
	return batch->count;
}

/* Sends entries [0, chunk) as one statement. */
static void
applier_send(struct applier *applier)
{
	static const char sql[] = "SELECT ipamd.apply_batch($1::jsonb)";
	const char *params[1];
	size_t skipped;
	char *json;

	/*
	 * A rebuild's batches expand no pool until derive_all(), so they go
	 * whole: a chunk's offsets could otherwise pass an event folded
	 * into one of the next chunk (batch_set_fold()).
	 */
	if (applier->chunk == 0 || applier->chunk > applier->batch->count)
		applier->chunk = applier->rebuild ? applier->batch->count :
		    applier_pool_chunk(applier->batch, applier->pool_budget);
	json = batch_build_json(applier->batch, applier->chunk,
	    applier->group_id, applier->schema, applier->rebuild,
	    applier->positions.get, applier->positions.arg, &skipped);
	if (json == NULL) {
		applier_finish(applier, APPLIER_MOVED,
		    "a partition of the batch is no longer assigned");
		return;
	}
	params[0] = json;
	clock_gettime(CLOCK_MONOTONIC, &applier->started);
	if (pgconn_query(applier->pg, sql, 1, params, applier_result_cb,
	    applier) == -1) {
		free(json);
		applier_finish(applier, APPLIER_LOST, "not connected");
		return;
	}
	applier->stats.events_skipped += skipped;
	free(json);
}

/* Applies every entry of a batch. */
int
applier_apply(struct applier *applier, struct batch *batch)
{
	if (applier->batch != NULL || !pgconn_is_up(applier->pg) ||
	    pgconn_is_busy(applier->pg))
		return -1;
	if (batch->count == 0)
		return -1;
	applier->batch = batch;
	applier->chunk = 0;
	applier->failures = 0;
	applier->retry_ms = 0;
	applier_send(applier);
	return 0;
}
