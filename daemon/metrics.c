/* The Prometheus text format of the daemon's counters and gauges. */
#include <sys/resource.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "common/build_info.h"
#include "daemon/api.h"
#include "daemon/http.h"
#include "daemon/metrics.h"
#include "daemon/retention.h"
#include "sweeper/sweeper.h"

/* Writes the # HELP and # TYPE lines of a family. */
static void
metrics_family(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* Writes a family of one unlabelled sample. */
static void
metrics_single(struct evbuffer *out, const char *name, const char *type,
    const char *help, unsigned long long value)
{
	metrics_family(out, name, type, help);
	evbuffer_add_printf(out, "%s %llu\n", name, value);
}

/* Writes a label value with the text format's escapes. */
static void
metrics_label(struct evbuffer *out, const char *value)
{
	const char *p;

	for (p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

/* Writes a histogram's buckets, sum and count. */
static void
metrics_histogram(struct evbuffer *out, const char *name,
    const struct applier_histogram *histogram, const double *bounds,
    size_t bucket_count)
{
	size_t i;

	for (i = 0; i < bucket_count; i++)
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
		    bounds[i], (unsigned long long)histogram->counts[i]);
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)histogram->count);
	evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
	    histogram->sum, name, (unsigned long long)histogram->count);
}

/* Writes one partition's lag sample. */
static void
metrics_lag_sample(void *arg, const char *topic, int32_t partition,
    int64_t stored, int64_t low, int64_t high)
{
	struct evbuffer *out = arg;
	int64_t lag;

	if (high < 0)
		return;
	lag = high - (stored >= 0 ? stored : low);
	evbuffer_add_printf(out, "ipam_syncd_consumer_lag_messages{topic=\"");
	metrics_label(out, topic);
	evbuffer_add_printf(out, "\",partition=\"%d\"} %lld\n", partition,
	    (long long)(lag > 0 ? lag : 0));
}

/* Adds one partition's lag to a total. */
static void
metrics_lag_add(void *arg, const char *topic, int32_t partition,
    int64_t stored, int64_t low, int64_t high)
{
	long long *total = arg;
	int64_t lag;

	if (high < 0) {
		total[1] = 1;	/* unknown */
		return;
	}
	lag = high - (stored >= 0 ? stored : low);
	total[0] += lag > 0 ? lag : 0;
}

/* Adds up the lag of every assigned partition. */
bool
metrics_total_lag(const struct consumer *consumer, long long *lag)
{
	long long total[2] = { 0, 0 };

	consumer_foreach_partition(consumer, metrics_lag_add, total);
	*lag = total[0];
	return total[1] == 0;
}

/* Writes the consumer's and the applier's figures. */
static void
metrics_consumer(struct evbuffer *out, const struct consumer *consumer)
{
	static const char *const entities[3] = { "server", "subnet", "mark" };
	const struct consumer_stats *consumed = consumer_stats(consumer);
	const struct applier_stats *applied = consumer_applier_stats(consumer);
	struct kafka_client_health health;
	size_t i;

	metrics_family(out, "ipam_syncd_messages_total", "counter",
	    "Kafka messages committed, by topic and result (applied, "
	    "dead_letter, skipped as already applied).");
	for (i = 0; i < consumer_topic_count(consumer) &&
	    i < APPLIER_MAX_TOPICS; i++) {
		static const char *const results[3] = { "applied",
		    "dead_letter", "skipped" };
		const struct applier_topic_stats *topic = &applied->topics[i];
		uint64_t values[3] = { topic->applied, topic->dead_letters,
		    topic->skipped };
		size_t r;

		for (r = 0; r < 3; r++) {
			evbuffer_add_printf(out,
			    "ipam_syncd_messages_total{topic=\"");
			metrics_label(out, consumer_topic_name(consumer, i));
			evbuffer_add_printf(out, "\",result=\"%s\"} %llu\n",
			    results[r], (unsigned long long)values[r]);
		}
	}
	metrics_family(out, "ipam_syncd_stale_events_total", "counter",
	    "Events that changed nothing because a newer version (or a later "
	    "truncate of their table) was already stored, by topic.");
	for (i = 0; i < consumer_topic_count(consumer) &&
	    i < APPLIER_MAX_TOPICS; i++) {
		evbuffer_add_printf(out, "ipam_syncd_stale_events_total{topic=\"");
		metrics_label(out, consumer_topic_name(consumer, i));
		evbuffer_add_printf(out, "\"} %llu\n",
		    (unsigned long long)applied->topics[i].stale);
	}
	metrics_single(out, "ipam_syncd_apply_failing", "gauge",
	    "1 while PostgreSQL refuses every batch for a reason no event "
	    "causes (privileges, disk full, a dropped schema), or a rebuild's "
	    "step (its derivation, its swap); see /readyz.",
	    consumer_apply_failing(consumer) != NULL);
	metrics_single(out, "ipam_syncd_offsets_out_of_range_total", "counter",
	    "Partitions whose stored offset was found outside their log "
	    "(a recreated topic, expired records).", consumed->out_of_range);
	metrics_single(out, "ipam_syncd_debezium_snapshots_again_total",
	    "counter", "Debezium snapshots that began past the start of their "
	    "partition: the connector snapshotted again, and entities of rows "
	    "deleted before it stay.", consumed->snapshots_again);
	metrics_single(out, "ipam_syncd_kafka_seek_failures_total", "counter",
	    "Seeks of a partition to its stored offset that failed; the "
	    "partition stays paused and is sought again.",
	    consumed->seek_failures);
	metrics_single(out, "ipam_syncd_messages_consumed_total", "counter",
	    "Kafka messages taken off the queue (committed or not yet).",
	    consumed->messages);
	metrics_family(out, "ipam_syncd_entity_changes_total", "counter",
	    "Entity changes after collapsing a batch per key: applied, or stale "
	    "(not newer than what was stored).");
	for (i = 0; i < 3; i++)
		evbuffer_add_printf(out,
		    "ipam_syncd_entity_changes_total{entity=\"%s\",result=\"applied\"} %llu\n"
		    "ipam_syncd_entity_changes_total{entity=\"%s\",result=\"stale\"} %llu\n",
		    entities[i], (unsigned long long)applied->entity_applied[i],
		    entities[i], (unsigned long long)applied->entity_stale[i]);
	metrics_single(out, "ipam_syncd_dead_letters_total", "counter",
	    "Messages committed as dead letters (the sum of messages_total "
	    "with result dead_letter; a replay counts a kept one again).",
	    applied->dead_letters);
	if (applied->last_commit_unix > 0) {
		metrics_family(out, "ipam_syncd_last_apply_timestamp_seconds",
		    "gauge", "When this instance last committed a batch, "
		    "seconds since the Unix epoch.");
		evbuffer_add_printf(out,
		    "ipam_syncd_last_apply_timestamp_seconds %.3f\n",
		    applied->last_commit_unix);
	}
	metrics_family(out, "ipam_syncd_rows_changed_total", "counter",
	    "Changes to ipam rows, by action.");
	evbuffer_add_printf(out,
	    "ipam_syncd_rows_changed_total{action=\"insert\"} %llu\n"
	    "ipam_syncd_rows_changed_total{action=\"update\"} %llu\n"
	    "ipam_syncd_rows_changed_total{action=\"delete\"} %llu\n",
	    (unsigned long long)applied->rows_inserted,
	    (unsigned long long)applied->rows_updated,
	    (unsigned long long)applied->rows_deleted);
	metrics_single(out, "ipam_syncd_conflicts_reported_total", "counter",
	    "Conflicts added to the conflict table.",
	    applied->conflicts);
	metrics_single(out, "ipam_syncd_batches_total", "counter",
	    "Batches committed.",
	    applied->batches);
	metrics_single(out, "ipam_syncd_events_folded_total", "counter",
	    "Events a rebuild folded into later versions of their keys before "
	    "applying them.",
	    applied->events_folded);
	metrics_single(out, "ipam_syncd_apply_retries_total", "counter",
	    "Applies tried again (connection lost, serialization failure).",
	    applied->retries);
	metrics_family(out, "ipam_syncd_batch_size_events", "histogram",
	    "Messages per committed batch.");
	metrics_histogram(out, "ipam_syncd_batch_size_events",
	    &applied->batch_size, applier_size_bounds, APPLIER_SIZE_BUCKETS);
	metrics_family(out, "ipam_syncd_apply_duration_seconds", "histogram",
	    "Time from sending a batch to its commit.");
	metrics_histogram(out, "ipam_syncd_apply_duration_seconds",
	    &applied->apply_seconds, applier_time_bounds, APPLIER_TIME_BUCKETS);
	metrics_family(out, "ipam_syncd_consumer_lag_messages", "gauge",
	    "Messages in the partition not yet committed in PostgreSQL.");
	consumer_foreach_partition(consumer, metrics_lag_sample, out);
	metrics_single(out, "ipam_syncd_consumer_assigned_partitions", "gauge",
	    "Partitions assigned to this instance.",
	    consumed->assigned);
	metrics_single(out, "ipam_syncd_kafka_errors_total", "counter",
	    "Errors reported by the Kafka client.",
	    consumed->kafka_errors);
	metrics_single(out, "ipam_syncd_rebalances_total", "counter",
	    "Consumer group rebalances seen.",
	    consumed->rebalances);
	consumer_health(consumer, &health);
	metrics_single(out, "ipam_syncd_kafka_brokers_up", "gauge",
	    "Kafka brokers in state UP in the client's last statistics "
	    "(every second; 0 before the first): 0 means no broker is "
	    "connected.", (unsigned long long)health.brokers_up);
	metrics_single(out, "ipam_syncd_kafka_fetched_messages_total",
	    "counter", "Messages fetched from the brokers (librdkafka's "
	    "statistics, every second): above messages_consumed_total by what "
	    "waits in the prefetch queue, and by what was fetched twice (a "
	    "pause throws the queue away).", health.fetched);
	metrics_single(out, "ipam_syncd_kafka_fetch_pauses_total", "counter",
	    "Times fetching was paused: PostgreSQL away or refusing the "
	    "batches, a rebuild deriving or swapping, a full batch waiting "
	    "2 s.  Each throws librdkafka's prefetch away.",
	    (unsigned long long)health.pauses);
	metrics_single(out, "ipam_syncd_kafka_topics_missing", "gauge",
	    "Configured topics the broker does not have (0 while no broker "
	    "is reachable: not known then).",
	    health.topics_missing);
	metrics_single(out, "ipam_syncd_consumer_paused", "gauge",
	    "1 while the consumer takes no message: a full batch behind one "
	    "in flight, or fetching paused (PostgreSQL away or refusing, a "
	    "rebuild deriving or swapping).",
	    consumed->paused);
	/*
	 * The high watermarks come with fetch responses: while fetching is
	 * paused they stand still, and so would the lag.
	 */
	metrics_single(out, "ipam_syncd_consumer_lag_stale", "gauge",
	    "1 while the lag figures are not fresh (no broker reachable, no "
	    "statistics for 5 s, or fetching paused: PostgreSQL away or "
	    "refusing): the lag gauges then hold the last values.",
	    health.stale || health.fetch_paused);
}

/* Writes the sweeper's figures. */
static void
metrics_sweeper(struct evbuffer *out, const struct sweeper *sweeper)
{
	const struct sweeper_stats *stats = sweeper_stats(sweeper);
	const struct sweeper_counts *total = &stats->total;
	static const char *const reasons[] = { "malformed", "foreign",
	    "unknown_sequence", "wrong_source", "bad_cookie", "duplicate",
	    "late" };
	uint64_t dropped[] = { total->malformed, total->foreign,
	    total->unknown_sequence, total->wrong_source, total->bad_cookie,
	    total->duplicates, total->late };
	size_t i;

	metrics_single(out, "ipam_syncd_sweeps_total", "counter",
	    "Ping sweeps completed.",
	    stats->sweeps);
	metrics_single(out, "ipam_syncd_sweeps_abandoned_total", "counter",
	    "Ping sweeps abandoned (PostgreSQL lost, reload, stop).",
	    stats->sweeps_abandoned);
	metrics_family(out, "ipam_syncd_sweep_duration_seconds", "gauge",
	    "Duration of the last complete sweep, by phase.");
	evbuffer_add_printf(out,
	    "ipam_syncd_sweep_duration_seconds{phase=\"read\"} %.6f\n"
	    "ipam_syncd_sweep_duration_seconds{phase=\"icmp\"} %.6f\n"
	    "ipam_syncd_sweep_duration_seconds{phase=\"write\"} %.6f\n"
	    "ipam_syncd_sweep_duration_seconds{phase=\"total\"} %.6f\n",
	    stats->read_seconds, stats->icmp_seconds, stats->write_seconds,
	    stats->duration_seconds);
	metrics_single(out, "ipam_syncd_sweep_targets", "gauge",
	    "Addresses probed by the last complete sweep.",
	    stats->targets);
	metrics_single(out, "ipam_syncd_sweep_answering_addresses", "gauge",
	    "Addresses that answered in the last complete sweep.",
	    stats->last.replies);
	metrics_single(out, "ipam_syncd_sweep_kernel_drops_total", "counter",
	    "Echo replies the kernel dropped, the ICMP socket's receive "
	    "buffer full: their addresses were counted silent.",
	    total->kernel_drops);
	metrics_single(out, "ipam_syncd_probes_sent_total", "counter",
	    "ICMP echo requests sent, retries included.",
	    total->probes);
	metrics_single(out, "ipam_syncd_probe_replies_total", "counter",
	    "Probed addresses that answered with a valid reply.",
	    total->replies);
	metrics_single(out, "ipam_syncd_probe_timeouts_total", "counter",
	    "Probed addresses that did not answer, retries spent.",
	    total->timeouts);
	metrics_family(out, "ipam_syncd_replies_dropped_total", "counter",
	    "ICMP replies dropped, by the first check they failed.");
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		evbuffer_add_printf(out,
		    "ipam_syncd_replies_dropped_total{reason=\"%s\"} %llu\n",
		    reasons[i], (unsigned long long)dropped[i]);
	metrics_single(out, "ipam_syncd_sweep_rows_changed", "gauge",
	    "Sweeper state rows (changed addresses) the last complete sweep "
	    "wrote.",
	    stats->rows_changed);
	metrics_single(out, "ipam_syncd_probe_send_errors_total", "counter",
	    "ICMP echo requests the kernel refused to send (no route, "
	    "buffer full, a firewall).", total->send_errors);
	metrics_single(out, "ipam_syncd_sweep_clock_steps_back_total",
	    "counter", "Rounds claimed while PostgreSQL's clock read before "
	    "the start of the round this instance swept last (stepped back); "
	    "each was swept at once.", stats->clock_steps_back);
	if (stats->unswept >= 0)
		metrics_single(out, "ipam_syncd_sweep_subnets_unswept", "gauge",
		    "Subnets with ping on, of the domains this instance sweeps, "
		    "that no live member can probe (none has a socket of their "
		    "address family), at the last round claimed.",
		    (uint64_t)stats->unswept);
	if (stats->last_end_unix_ms > 0) {
		metrics_family(out, "ipam_syncd_last_sweep_timestamp_seconds",
		    "gauge", "When this instance's last complete sweep ended, "
		    "seconds since the Unix epoch.");
		evbuffer_add_printf(out,
		    "ipam_syncd_last_sweep_timestamp_seconds %.3f\n",
		    (double)stats->last_end_unix_ms / 1000.0);
	}
}

/*
 * The retention job's figures, and what it reads from the database:
 * the conflicts now and the dead letters kept (absent while its
 * connection is down or before its first read).
 */
static void
metrics_retention(struct evbuffer *out, const struct retention *retention)
{
	const struct retention_stats *stats = retention_stats(retention);
	size_t i;

	metrics_family(out, "ipam_syncd_retention_rows_pruned_total",
	    "counter", "Rows removed by the retention, by table.");
	for (i = 0; i < RETENTION_TABLE_COUNT; i++)
		evbuffer_add_printf(out, "ipam_syncd_retention_rows_pruned_total"
		    "{table=\"%s\"} %llu\n", retention_table_names[i],
		    (unsigned long long)stats->rows_pruned[i]);
	metrics_family(out, "ipam_syncd_retention_seconds", "gauge",
	    "How long each table keeps its rows ([retention] days; 0: "
	    "forever), by table.");
	for (i = 0; i < RETENTION_TABLE_COUNT; i++)
		evbuffer_add_printf(out, "ipam_syncd_retention_seconds"
		    "{table=\"%s\"} %lld\n", retention_table_names[i],
		    retention_days(retention, (enum retention_table)i) * 86400);
	metrics_single(out, "ipam_syncd_retention_runs_total", "counter",
	    "Retention runs that left nothing old behind.", stats->runs);
	metrics_single(out, "ipam_syncd_retention_errors_total", "counter",
	    "Retention runs ended by an error (tried again next interval).",
	    stats->errors);
	metrics_single(out, "ipam_syncd_retention_running", "gauge",
	    "1 while a retention run is under way.", stats->running);
	metrics_family(out, "ipam_syncd_retention_last_run_timestamp_seconds",
	    "gauge", "When the last complete retention run ended, seconds "
	    "since the Unix epoch (0: none yet).");
	evbuffer_add_printf(out,
	    "ipam_syncd_retention_last_run_timestamp_seconds %.3f\n",
	    stats->last_run_unix);
	if (!stats->figures_known)
		return;
	metrics_family(out, "ipam_syncd_retention_oldest_row_timestamp_seconds",
	    "gauge", "Time of the oldest row of each pruned table, seconds "
	    "since the Unix epoch (absent: the table is empty).");
	for (i = 0; i < RETENTION_TABLE_COUNT; i++)
		if (stats->oldest_unix[i] >= 0)
			evbuffer_add_printf(out, "ipam_syncd_retention_oldest_"
			    "row_timestamp_seconds{table=\"%s\"} %.3f\n",
			    retention_table_names[i], stats->oldest_unix[i]);
	metrics_family(out, "ipam_syncd_conflicts", "gauge",
	    "Conflicts in the conflict table now, by kind (read every 15 s).");
	for (i = 0; i < RETENTION_CONFLICT_KINDS; i++)
		evbuffer_add_printf(out, "ipam_syncd_conflicts{kind=\"%s\"} "
		    "%llu\n", retention_conflict_kinds[i],
		    (unsigned long long)stats->conflicts[i]);
	metrics_single(out, "ipam_syncd_dead_letters", "gauge",
	    "Dead letters kept in ipamd.dead_letter now (read every 15 s).",
	    stats->dead_letters);
}

/* Counts the entries of /proc/self/fd; -1 when it cannot be read. */
static long
metrics_open_fds(void)
{
	struct dirent *entry;
	DIR *dir;
	long count = 0;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((entry = readdir(dir)) != NULL)
		if (entry->d_name[0] != '.')
			count++;
	closedir(dir);
	return count - 1;	/* the directory's own descriptor */
}

/*
 * The process figures every Prometheus client library exports, from
 * /proc/self/stat (CPU time, virtual and resident memory), /proc/self/fd
 * and the descriptor limit; a figure that cannot be read is left out.
 */
static void
metrics_process(struct evbuffer *out)
{
	unsigned long long utime, stime, vsize;
	long long rss;
	struct rlimit limit;
	char buf[1024], *after;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds;
	FILE *fp;
	size_t n = 0;

	if ((fp = fopen("/proc/self/stat", "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
	}
	buf[n] = '\0';
	/* The command name may hold spaces: the fields follow its ')'. */
	if ((after = strrchr(buf, ')')) != NULL && ticks > 0 && page > 0 &&
	    sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %*d %*d %*d %*d %*d %*d %*s %llu %lld", &utime, &stime,
	    &vsize, &rss) == 4) {
		metrics_family(out, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.");
		evbuffer_add_printf(out, "process_cpu_seconds_total %.2f\n",
		    (double)(utime + stime) / (double)ticks);
		metrics_single(out, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory size in bytes.", vsize);
		metrics_single(out, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.",
		    (unsigned long long)(rss * page));
	}
	if ((fds = metrics_open_fds()) >= 0)
		metrics_single(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.",
		    (unsigned long long)fds);
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
		metrics_single(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.",
		    (unsigned long long)limit.rlim_cur);
}

/* The HTTP server's limits and the operator API's requests. */
static void
metrics_http(struct evbuffer *out, const struct http *http,
    const struct api *api)
{
	static const char *const closed[] = { "evicted", "refused",
	    "request_deadline", "reply_deadline", "client_gone" };
	static const char *const refused[] = { "method", "too_large",
	    "head_too_large", "bad_request", "unauthorized", "pipelined",
	    "busy" };
	struct http_stats h;
	struct api_stats a;
	uint64_t closed_counts[5], refused_counts[7];
	size_t i;

	if (http != NULL) {
		http_stats(http, &h);
		metrics_single(out, "ipam_syncd_http_connections", "gauge",
		    "HTTP connections open now.", h.connections_open);
		metrics_single(out, "ipam_syncd_http_connections_max", "gauge",
		    "The cap on open HTTP connections.", h.connections_max);
		metrics_single(out, "ipam_syncd_http_large_bodies", "gauge",
		    "HTTP request bodies over 64 KiB (imports) held now, from "
		    "their head to their reply.", h.large_bodies);
		metrics_single(out, "ipam_syncd_http_large_bodies_max", "gauge",
		    "The most bodies over 64 KiB held at once; one more is "
		    "refused (503) before it is sent.", h.large_bodies_max);
		closed_counts[0] = h.closed_evicted;
		closed_counts[1] = h.closed_refused;
		closed_counts[2] = h.closed_request_deadline;
		closed_counts[3] = h.closed_reply_deadline;
		closed_counts[4] = h.closed_client_gone;
		metrics_family(out, "ipam_syncd_http_connections_closed_total",
		    "counter", "HTTP connections closed by a limit, by limit.");
		for (i = 0; i < 5; i++)
			evbuffer_add_printf(out, "ipam_syncd_http_connections_"
			    "closed_total{reason=\"%s\"} %llu\n", closed[i],
			    (unsigned long long)closed_counts[i]);
		refused_counts[0] = h.refused_method;
		refused_counts[1] = h.refused_too_large;
		refused_counts[2] = h.refused_head_too_large;
		refused_counts[3] = h.refused_bad_request;
		refused_counts[4] = h.refused_unauthorized;
		refused_counts[5] = h.refused_pipelined;
		refused_counts[6] = h.refused_busy;
		metrics_family(out, "ipam_syncd_http_requests_refused_total",
		    "counter", "HTTP requests refused before their body, by "
		    "reason.");
		for (i = 0; i < 7; i++)
			evbuffer_add_printf(out, "ipam_syncd_http_requests_"
			    "refused_total{reason=\"%s\"} %llu\n", refused[i],
			    (unsigned long long)refused_counts[i]);
		metrics_single(out, "ipam_syncd_http_accept_errors_total",
		    "counter", "Accept errors (descriptors exhausted), each "
		    "pausing the listener.", h.accept_errors);
	}
	if (api == NULL)
		return;
	api_stats(api, &a);
	metrics_family(out, "ipam_syncd_api_responses_total", "counter",
	    "Operator API responses, by status class.");
	for (i = 2; i < 6; i++)
		evbuffer_add_printf(out, "ipam_syncd_api_responses_total{"
		    "code=\"%zuxx\"} %llu\n", i,
		    (unsigned long long)a.requests[i]);
	metrics_single(out, "ipam_syncd_api_rate_limited_total", "counter",
	    "Operator API requests refused by api.rate_limit.",
	    a.rate_limited);
	metrics_single(out, "ipam_syncd_api_events_published_total", "counter",
	    "Events the operator API published to Kafka.", a.events_published);
	metrics_single(out, "ipam_syncd_api_writes_waiting", "gauge",
	    "Operator API writes waiting to be applied.", a.writes_waiting);
	metrics_single(out, "ipam_syncd_api_reads_waiting", "gauge",
	    "Operator API queries waiting for a read connection.",
	    a.reads_waiting);
}

/* Appends every metric family. */
void
metrics_write(struct evbuffer *out, const struct metrics_sources *src)
{
	metrics_family(out, "ipam_syncd_build_info", "gauge",
	    "Build and library versions.");
	evbuffer_add_printf(out, "ipam_syncd_build_info{version=\"%s\","
	    "librdkafka=\"%s\"} 1\n", IPAM_VERSION, rd_kafka_version_str());
	metrics_family(out, "process_start_time_seconds", "gauge",
	    "Start time of the process since the Unix epoch.");
	evbuffer_add_printf(out, "process_start_time_seconds %lld\n",
	    (long long)src->start_time);
	metrics_process(out);
	metrics_family(out, "ipam_syncd_database_connected", "gauge",
	    "1 while the PostgreSQL connection is up.");
	evbuffer_add_printf(out, "ipam_syncd_database_connected %d\n",
	    src->pg != NULL && pgconn_is_up(src->pg));
	metrics_single(out, "ipam_syncd_database_reconnects_total", "counter",
	    "Times the PostgreSQL connection was lost and made again.",
	    src->pg != NULL ? pgconn_loss_count(src->pg) : 0UL);
	if (src->consumer != NULL)
		metrics_consumer(out, src->consumer);
	if (src->sweeper != NULL)
		metrics_sweeper(out, src->sweeper);
	if (src->retention != NULL)
		metrics_retention(out, src->retention);
	metrics_http(out, src->http, src->api);
}
