/* The apply transaction: one batch in, one PostgreSQL statement, one commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "consumers/applier.h"

/* How many dead letters and conflicts one batch names in the log. */
#define APPLIER_LOG_LIMIT	20

/* How long to wait before retrying after an error that is not the data's. */
#define APPLIER_RETRY_MS	1000

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
	struct timespec		 started;
	struct applier_stats	 stats;
};

static void	applier_send(struct applier *applier);

/* Seconds since an instant. */
static double
applier_elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Runs when the retry delay is over. */
static void
applier_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct applier *applier = arg;

	if (applier->batch != NULL)
		applier_send(applier);
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

/* Tells whether an apply is in flight. */
bool
applier_busy(const struct applier *applier)
{
	return applier->batch != NULL;
}

/* Seconds the apply in flight has been running. */
double
applier_busy_seconds(const struct applier *applier)
{
	if (applier->batch == NULL || applier->chunk == 0)
		return 0;
	return applier_elapsed(&applier->started);
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
		if (pos != NULL && pos->stored && entry->offset < pos->next_offset)
			topic->skipped++;
		else if (entry->dead)
			topic->dead_letters++;
		else
			topic->applied++;
	}
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

/* Records a committed chunk: positions, totals, logs; then goes on. */
static void
applier_committed(struct applier *applier, const char *text)
{
	struct batch_position ends[1024];
	json_t *result;
	size_t i, count;

	/* Count before the positions move past these entries. */
	applier_count_messages(applier, applier->chunk);
	count = batch_partition_ends(applier->batch, applier->chunk, ends,
	    sizeof(ends) / sizeof(ends[0]));
	for (i = 0; i < count; i++) {
		int topic;

		for (topic = 0; topic < (int)applier->batch->topic_count; topic++)
			if (strcmp(applier->batch->topic_names[topic],
			    ends[i].topic) == 0)
				break;
		applier->positions.set(applier->positions.arg, topic,
		    ends[i].partition, ends[i].next_offset);
	}
	result = json_loads(text ? text : "{}", 0, NULL);
	applier->stats.batches++;
	applier->stats.events_applied += applier_count(result, "applied");
	applier->stats.events_stale += applier_count(result, "stale");
	applier->stats.dead_letters += applier_count(result, "dead");
	applier->stats.rows_inserted += applier_count(result, "inserted");
	applier->stats.rows_updated += applier_count(result, "updated");
	applier->stats.rows_deleted += applier_count(result, "deleted");
	applier->stats.conflicts +=
	    json_array_size(json_object_get(result, "conflicts"));
	applier->stats.last_apply_seconds = applier_elapsed(&applier->started);
	applier_count_entities(applier, result);
	applier_observe(&applier->stats.batch_size, applier_size_bounds,
	    APPLIER_SIZE_BUCKETS, (double)applier->chunk);
	applier_observe(&applier->stats.apply_seconds, applier_time_bounds,
	    APPLIER_TIME_BUCKETS, applier->stats.last_apply_seconds);
	log_debug("batch of %zu: %llu applied, %llu stale, %llu dead, "
	    "rows +%llu ~%llu -%llu in %.3f s", applier->chunk,
	    (unsigned long long)applier_count(result, "applied"),
	    (unsigned long long)applier_count(result, "stale"),
	    (unsigned long long)applier_count(result, "dead"),
	    (unsigned long long)applier_count(result, "inserted"),
	    (unsigned long long)applier_count(result, "updated"),
	    (unsigned long long)applier_count(result, "deleted"),
	    applier->stats.last_apply_seconds);
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

/* Tells whether an SQLSTATE blames the data of the batch. */
static bool
applier_data_error(const char *sqlstate)
{
	return sqlstate != NULL && (strncmp(sqlstate, "22", 2) == 0 ||
	    strncmp(sqlstate, "23", 2) == 0);
}

/* Turns the single entry in flight into a dead letter naming the error. */
static void
applier_reject_entry(struct applier *applier, const char *error)
{
	struct batch_entry *entry = &applier->batch->entries[0];
	char reason[1100];

	snprintf(reason, sizeof(reason), "rejected by PostgreSQL: %s", error);
	change_clear(&entry->change);
	entry->dead = true;
	if ((entry->reason = strdup(reason)) == NULL)
		fatal("applier: strdup");
}

/* Handles the result of one apply statement. */
static void
applier_result_cb(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct applier *applier = arg;
	const char *sqlstate;
	char message[1024];
	struct timeval delay = { APPLIER_RETRY_MS / 1000,
	    (APPLIER_RETRY_MS % 1000) * 1000 };

	if (result == NULL) {
		applier->stats.retries++;
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
		applier_finish(applier, APPLIER_MOVED, message);
		return;
	}
	if (pgconn_sqlstate_is_fatal(sqlstate)) {
		applier->stats.retries++;
		pgconn_reset(pg, message);
		if (applier->batch != NULL)
			applier_finish(applier, APPLIER_LOST, message);
		return;
	}
	if (applier_data_error(sqlstate) && applier->chunk > 1) {
		log_info("apply: batch of %zu rejected (%s); splitting it",
		    applier->chunk, message);
		applier->chunk = (applier->chunk + 1) / 2;
		applier_send(applier);
		return;
	}
	if (applier_data_error(sqlstate) && !applier->batch->entries[0].dead) {
		log_warnx("apply: event %s[%d]@%lld rejected: %s",
		    applier->batch->topic_names[applier->batch->entries[0].topic],
		    applier->batch->entries[0].partition,
		    (long long)applier->batch->entries[0].offset, message);
		applier_reject_entry(applier, message);
		applier_send(applier);
		return;
	}
	/* Serialization failures, deadlocks and the unknown: try again later. */
	applier->stats.retries++;
	log_errx("apply: %s; retrying in %d ms", message, APPLIER_RETRY_MS);
	applier->chunk = 0;
	evtimer_add(applier->retry_timer, &delay);
}

/* Sends entries [0, chunk) as one statement. */
static void
applier_send(struct applier *applier)
{
	static const char sql[] = "SELECT ipamd.apply_batch($1::jsonb)";
	const char *params[1];
	size_t skipped;
	char *json;

	if (applier->chunk == 0 || applier->chunk > applier->batch->count)
		applier->chunk = applier->batch->count;
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
	applier_send(applier);
	return 0;
}
