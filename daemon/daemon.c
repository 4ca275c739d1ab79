/* The daemon's lifecycle: connect, migrate, consume, reload, drain, exit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/build_info.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "consumers/consumer.h"
#include "daemon/api.h"
#include "daemon/daemon.h"
#include "daemon/http.h"
#include "daemon/metrics.h"
#include "daemon/migrate.h"
#include "daemon/notify.h"
#include "daemon/producer.h"
#include "daemon/readpool.h"
#include "daemon/retention.h"
#include "daemon/web.h"
#include "sweeper/sweeper.h"

/* How often the STATUS= line is refreshed. */
#define DAEMON_STATUS_SECONDS	5

/* How often readiness is checked until the daemon is first ready. */
#define DAEMON_READY_CHECK_MS	100

/*
 * Until it is first ready, the start timeout systemd allows is extended
 * by this much at every STATUS= refresh (and once at the start): a start
 * that waits for the broker, a topic or a backlog to be read stays
 * "activating" as long as the loop runs, however long that takes, instead
 * of being killed at TimeoutStartSec (90 s by default) and restarted to
 * wait again.  A loop that hangs stops extending it.
 */
#define DAEMON_START_EXTEND_SECONDS	(4 * DAEMON_STATUS_SECONDS)

enum daemon_state {
	DAEMON_STARTING,	/* connecting and migrating */
	DAEMON_RUNNING,		/* subscribed */
	DAEMON_STOPPING,	/* draining */
};

struct daemon {
	struct event_base	*base;
	char			*config_path;
	/*
	 * The configuration the daemon started with: what needs a restart
	 * keeps these values, subsystems hold pointers into it, and a
	 * reload's warning compares against it.  config is the last one
	 * loaded (the same at first), whose reloadable values are in use.
	 */
	struct config		*running;
	struct config		*config;
	enum daemon_mode	 mode;
	enum daemon_state	 state;
	int			 exit_status;
	int			 leave_waits;	/* ticks spent waiting for replies */
	bool			 migrated;
	bool			 ready;

	struct pgconn		*pg;
	struct migrate		*migrate;
	struct consumer		*consumer;
	struct notify		*notify;
	struct http		*http;
	struct readpool		*api_pool;	/* the API's own connections */
	struct producer		*producer;	/* the API's writes */
	struct api		*api;
	struct web		*web;		/* the operator page */
	struct sweeper		*sweeper;
	struct retention	*retention;	/* prunes old rows */
	time_t			 start_time;
	double			 watchdog_seconds;
	bool			 watchdog_withheld;
	enum log_level		 configured_level;

	struct event		*sigterm;
	struct event		*sigint;
	struct event		*sighup;
	struct event		*sigusr2;
	struct event		*deadline;
	struct event		*watchdog;
	struct event		*status;
	struct event		*ready_check;	/* until first ready */
};

static void	daemon_api_tokens_reload(struct daemon *daemon,
		    const struct config *fresh);

/* Copies the consumer's part of the config. */
static void
daemon_consumer_settings(const struct config *config,
    struct consumer_settings *settings, struct consumer_topic *topics,
    struct kafka_property *properties)
{
	size_t i;

	for (i = 0; i < config->topic_count; i++) {
		topics[i].name = config->topics[i].name;
		topics[i].entity = config->topics[i].entity;
		topics[i].format = config->topics[i].format;
	}
	for (i = 0; i < config->kafka_count; i++) {
		properties[i].name = config->kafka[i].name;
		properties[i].value = config->kafka[i].value;
	}
	memset(settings, 0, sizeof(*settings));
	settings->group_id = config->group_id;
	settings->topics = topics;
	settings->topic_count = config->topic_count;
	settings->properties = properties;
	settings->property_count = config->kafka_count;
	settings->batch_max_events = (size_t)config->batch_max_events;
	settings->batch_max_bytes = (size_t)config->batch_max_bytes;
	settings->batch_max_wait_ms = config->batch_max_wait_ms;
	settings->batch_max_pool_addresses =
	    (uint64_t)config->batch_max_pool_addresses;
	settings->limits = config->limits;
	settings->columns = config->columns;
}

/* Sends the one-line STATUS=. */
static void
daemon_send_status(struct daemon *daemon)
{
	const struct applier_stats *applied;
	const struct consumer_stats *consumed;

	if (daemon->consumer == NULL || daemon->notify == NULL)
		return;
	applied = consumer_applier_stats(daemon->consumer);
	consumed = consumer_stats(daemon->consumer);
	notify_send(daemon->notify,
	    "STATUS=%s; %zu partitions; %llu events applied, %llu dead "
	    "letters; %zu waiting",
	    daemon->state == DAEMON_STOPPING ? "stopping" :
	    !pgconn_is_up(daemon->pg) ? "PostgreSQL away" :
	    daemon->ready ? "running" : "starting",
	    consumed->assigned, (unsigned long long)applied->events_applied,
	    (unsigned long long)applied->dead_letters, consumed->pending);
}

/* The consumer has subscribed: readiness is checked from now on. */
static void
daemon_subscribed(void *arg)
{
	struct daemon *daemon = arg;
	struct timeval check = { 0, DAEMON_READY_CHECK_MS * 1000 };

	if (daemon->state != DAEMON_STARTING)
		return;
	daemon->state = DAEMON_RUNNING;
	log_info("consumer subscribed; waiting for the broker, the topics and "
	    "the group before saying ready");
	event_add(daemon->ready_check, &check);
}

/* The migrations are over. */
static void
daemon_migrated(enum migrate_outcome outcome, const char *error, void *arg)
{
	struct daemon *daemon = arg;

	switch (outcome) {
	case MIGRATE_OK:
		daemon->migrated = true;
		if (daemon->mode == DAEMON_MODE_MIGRATE) {
			log_info("schema: at version %d; --migrate is done",
			    MIGRATE_SCHEMA_VERSION);
			daemon->exit_status = DAEMON_EXIT_OK;
			pgconn_stop(daemon->pg);
			event_base_loopexit(daemon->base, NULL);
			break;
		}
		if (daemon->api != NULL)
			api_set_serving(daemon->api, true);
		if (daemon->state == DAEMON_STARTING) {
			consumer_start(daemon->consumer, daemon_subscribed, daemon);
			sweeper_start(daemon->sweeper);
			retention_start(daemon->retention);
		}
		break;
	case MIGRATE_LOST:
		log_warnx("schema: connection lost during migrations (%s); "
		    "they run again once it is back", error);
		break;
	case MIGRATE_FAILED:
	case MIGRATE_TOO_NEW:
	case MIGRATE_NOT_ALLOWED:
	case MIGRATE_UNSUITABLE:
		log_errx("schema: %s; exiting", error);
		daemon->exit_status = outcome == MIGRATE_TOO_NEW ||
		    outcome == MIGRATE_UNSUITABLE ?
		    DAEMON_EXIT_UNAVAILABLE : outcome == MIGRATE_NOT_ALLOWED ?
		    DAEMON_EXIT_NOPERM : DAEMON_EXIT_SOFTWARE;
		event_base_loopexit(daemon->base, NULL);
		break;
	}
}

/* PostgreSQL is connected. */
static void
daemon_pg_up(struct pgconn *pg, void *arg)
{
	struct daemon *daemon = arg;

	if (daemon->state == DAEMON_STOPPING)
		return;
	if (!daemon->migrated)
		migrate_run(daemon->migrate, pg, daemon_migrated, daemon);
	else
		consumer_db_up(daemon->consumer);
	daemon_send_status(daemon);
}

/* PostgreSQL went away. */
static void
daemon_pg_down(struct pgconn *pg, const char *reason, void *arg)
{
	struct daemon *daemon = arg;

	/* --migrate is run by hand: say why at once rather than wait. */
	if (daemon->mode == DAEMON_MODE_MIGRATE && !daemon->migrated) {
		log_errx("--migrate: PostgreSQL: %s", reason);
		daemon->exit_status = DAEMON_EXIT_UNAVAILABLE;
		pgconn_stop(pg);
		event_base_loopexit(daemon->base, NULL);
		return;
	}
	if (daemon->migrated)
		consumer_db_down(daemon->consumer);
	daemon_send_status(daemon);
}

/*
 * Leaves the loop once the replies being written are out (those the API
 * gave the writes it answered at the stop), waiting at most a second.
 */
static void
daemon_leave_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *daemon = arg;
	struct timeval tv = { 0, 10000 };

	if (daemon->http != NULL && http_replying(daemon->http) > 0 &&
	    daemon->leave_waits++ < 100 &&
	    event_base_once(daemon->base, -1, EV_TIMEOUT, daemon_leave_cb,
	    daemon, &tv) == 0)
		return;
	event_base_loopexit(daemon->base, NULL);
}

/* Everything has drained: leave the loop. */
static void
daemon_stopped(void *arg)
{
	struct daemon *daemon = arg;

	pgconn_stop(daemon->pg);
	log_info("stopped");
	/* Reads still held are answered while their connections last. */
	if (daemon->api != NULL)
		api_close(daemon->api);
	daemon_leave_cb(-1, 0, daemon);
}

/* The drain took longer than allowed: leave anyway. */
static void
daemon_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *daemon = arg;

	log_warnx("shutdown: still draining after %lld ms; exiting now "
	    "(what was not committed is consumed again at the next start)",
	    daemon->config->shutdown_timeout_ms);
	if (daemon->api != NULL)
		api_close(daemon->api);
	daemon_leave_cb(-1, 0, daemon);
}

/* Starts a clean shutdown: drain, answer, leave the group. */
static void
daemon_begin_stop(struct daemon *daemon)
{
	struct timeval tv;

	daemon->state = DAEMON_STOPPING;
	notify_send(daemon->notify, "STOPPING=1");
	sweeper_stop(daemon->sweeper);
	retention_stop(daemon->retention);
	/* Writes waiting to be applied are answered while the server runs. */
	if (daemon->api != NULL)
		api_stop(daemon->api);
	tv.tv_sec = daemon->config->shutdown_timeout_ms / 1000;
	tv.tv_usec = (daemon->config->shutdown_timeout_ms % 1000) * 1000;
	evtimer_add(daemon->deadline, &tv);
	if (daemon->migrated)
		consumer_stop(daemon->consumer,
		    daemon->config->shutdown_timeout_ms, daemon_stopped, daemon);
	else
		daemon_stopped(daemon);
}

/* Starts a clean shutdown, or exits at once on a second signal. */
static void
daemon_stop_cb(evutil_socket_t signo, short what, void *arg)
{
	struct daemon *daemon = arg;

	if (daemon->state == DAEMON_STOPPING) {
		log_warnx("signal %d again: exiting at once", (int)signo);
		_exit(1);
	}
	if (daemon->mode == DAEMON_MODE_MIGRATE) {
		log_warnx("signal %d: --migrate stops (a migration in flight "
		    "rolls back whole)", (int)signo);
		daemon->exit_status = 1;
		daemon_stopped(daemon);
		return;
	}
	log_info("signal %d: stopping (a second signal exits at once)",
	    (int)signo);
	daemon_begin_stop(daemon);
}

/*
 * The Kafka client can go on no more (a fatal error): what is in flight
 * is finished as at a stop, and the daemon exits rather than stay up
 * consuming nothing: with EX_SOFTWARE, which the unit restarts with a
 * new client, or EX_CONFIG when a new one would fail the same way (a
 * static member fenced by another given the same group.instance.id,
 * which a restart would fence in turn, and so on).
 */
static void
daemon_consumer_failed(void *arg, const char *reason, bool configured)
{
	struct daemon *daemon = arg;

	if (daemon->state == DAEMON_STOPPING)
		return;
	daemon->exit_status = configured ? DAEMON_EXIT_CONFIG :
	    DAEMON_EXIT_SOFTWARE;
	log_errx("kafka: stopping, as the consumer cannot go on (%s); exit "
	    "status %d, %s", reason, daemon->exit_status, configured ?
	    "which is not restarted: give each instance a group.instance.id "
	    "of its own" : "so that a restart makes a new one");
	daemon_begin_stop(daemon);
}

/*
 * Lets an API request wait as long as its write may wait to be applied or
 * its read may run, with room to answer: the server's default (120 s)
 * would cut a longer api.write_wait_ms short.
 */
static void
daemon_http_reply_seconds(struct daemon *daemon, const struct config *config)
{
	long long ms = config->api_write_wait_ms >
	    config->api_statement_timeout_ms ? config->api_write_wait_ms :
	    config->api_statement_timeout_ms;

	/* Rounded up: a write's own waits end within it (api_write.c). */
	if (daemon->http != NULL)
		http_set_reply_seconds(daemon->http,
		    (unsigned)((ms + 999) / 1000 + 30));
}

/*
 * The end of a reload: READY=1 again, once the daemon has been ready.
 * Before that it would tell systemd the start is done (Type=notify).
 */
static void
daemon_reload_done(struct daemon *daemon)
{
	if (daemon->ready)
		notify_send(daemon->notify, "READY=1");
}

/* Reloads the config: parse, check, swap what can change at runtime. */
static void
daemon_reload_cb(evutil_socket_t signo, short what, void *arg)
{
	struct daemon *daemon = arg;
	struct config *fresh;
	enum log_level level;
	char err[1024], keys[1024];
	struct timespec now;
	size_t count;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (daemon->ready)
		notify_send(daemon->notify, "RELOADING=1\nMONOTONIC_USEC=%llu",
		    (unsigned long long)now.tv_sec * 1000000ULL +
		    (unsigned long long)now.tv_nsec / 1000ULL);
	fresh = config_load(daemon->config_path, err, sizeof(err));
	if (fresh == NULL) {
		log_errx("reload: %s; keeping the running configuration", err);
		daemon_reload_done(daemon);
		return;
	}
	/*
	 * A file emptied (truncated while it is written, say) would set every
	 * key back to its default, the sweeper's enabled = true among them.
	 */
	if (config_keys_in_file(fresh) == 0) {
		log_errx("reload: %s sets no key (empty?); keeping the running "
		    "configuration", daemon->config_path);
		config_free(fresh);
		daemon_reload_done(daemon);
		return;
	}
	/* Against the running values: restoring the file warns of nothing. */
	count = config_restart_keys(daemon->running, fresh, keys,
	    sizeof(keys));
	if (count > 0)
		log_warnx("reload: %s changed; %s effect after a restart",
		    keys, count == 1 ? "it takes" : "they take");
	if (log_level_parse(fresh->log_level, &level) == 0) {
		log_set_level(level);
		daemon->configured_level = level;
	}
	pgconn_set_timeouts(daemon->pg, fresh->pg_connect_timeout_ms,
	    fresh->pg_reconnect_min_ms, fresh->pg_reconnect_max_ms);
	readpool_set_timeouts(daemon->api_pool, fresh->pg_connect_timeout_ms,
	    fresh->pg_reconnect_min_ms, fresh->pg_reconnect_max_ms);
	consumer_set_batch_limits(daemon->consumer,
	    (size_t)fresh->batch_max_events, (size_t)fresh->batch_max_bytes,
	    fresh->batch_max_wait_ms,
	    (uint64_t)fresh->batch_max_pool_addresses);
	{
		struct sweeper_settings sweep;

		/*
		 * The sweeper keeps its connection; the rest it takes, but
		 * for what takes effect after a restart (warned of above),
		 * even when the reload turns it on and it opens its sockets.
		 */
		config_sweeper_settings(fresh, NULL, &sweep);
		sweep.receive_buffer = daemon->running->sweeper_receive_buffer;
		sweeper_reload(daemon->sweeper, &sweep);
	}
	{
		struct retention_settings keep;

		/* The job keeps its connection; days and interval it takes. */
		retention_settings_from_config(fresh, NULL, &keep);
		retention_reload(daemon->retention, &keep);
	}
	if (daemon->api != NULL) {
		api_set_limits(daemon->api, fresh->api_write_wait_ms,
		    fresh->api_rate_limit);
		daemon_api_tokens_reload(daemon, fresh);
	}
	daemon_http_reply_seconds(daemon, fresh);
	if (daemon->config != daemon->running)
		config_free(daemon->config);
	daemon->config = fresh;
	log_info("reload: configuration %s loaded", daemon->config_path);
	daemon_reload_done(daemon);
	daemon_send_status(daemon);
}

/*
 * Tells systemd the daemon is alive: the loop runs (this fired) and the
 * consumer makes progress (no apply has been stuck for a whole watchdog
 * interval).  A stuck apply withholds the ping, so systemd restarts us.
 */
static void
daemon_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *daemon = arg;
	double stuck = consumer_apply_seconds(daemon->consumer);

	if (stuck >= daemon->watchdog_seconds) {
		if (!daemon->watchdog_withheld)
			log_warnx("watchdog: an apply has run for %.1f s; "
			    "withholding the watchdog ping", stuck);
		daemon->watchdog_withheld = true;
		return;
	}
	if (daemon->watchdog_withheld)
		log_info("watchdog: progress again; pinging");
	daemon->watchdog_withheld = false;
	notify_send(daemon->notify, "WATCHDOG=1");
}

/* SIGUSR2 switches debug logging on, or back to the configured level. */
static void
daemon_debug_cb(evutil_socket_t signo, short what, void *arg)
{
	struct daemon *daemon = arg;

	if (log_get_level() == LOG_LEVEL_DEBUG &&
	    daemon->configured_level != LOG_LEVEL_DEBUG) {
		log_info("SIGUSR2: debug logging off");
		log_set_level(daemon->configured_level);
	} else {
		log_set_level(LOG_LEVEL_DEBUG);
		log_info("SIGUSR2: debug logging on");
	}
}

/*
 * Ready: PostgreSQL connected and migrated, the consumer subscribed and
 * ready (consumer_ready()), and not too far behind.  /readyz answers with
 * it; READY=1 waits for it.
 */
static bool
daemon_ready(void *arg, char *buf, size_t buflen)
{
	struct daemon *daemon = arg;
	const char *failing;
	long long lag;

	if (daemon->state == DAEMON_STOPPING) {
		snprintf(buf, buflen, "stopping");
		return false;
	}
	if (!pgconn_is_up(daemon->pg)) {
		snprintf(buf, buflen, "PostgreSQL is not connected");
		return false;
	}
	/* A rebuild whose fresh state cannot be made never gets further. */
	if (daemon->consumer != NULL &&
	    (failing = consumer_rebuild_failing(daemon->consumer)) != NULL) {
		snprintf(buf, buflen, "rebuild: %s", failing);
		return false;
	}
	if (daemon->state != DAEMON_RUNNING) {
		snprintf(buf, buflen, "starting: migrations or subscription "
		    "not done");
		return false;
	}
	if (!consumer_ready(daemon->consumer, buf, buflen))
		return false;
	if (metrics_total_lag(daemon->consumer, &lag) &&
	    lag > daemon->config->http_ready_max_lag) {
		snprintf(buf, buflen, "%lld messages wait, more than "
		    "http.ready_max_lag (%lld)", lag,
		    daemon->config->http_ready_max_lag);
		return false;
	}
	return true;
}

/*
 * Until the daemon is first ready: checks it, and then says so once
 * (the log line, READY=1).
 */
static void
daemon_ready_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *daemon = arg;
	char reason[512];

	if (daemon->ready || !daemon_ready(daemon, reason, sizeof(reason)))
		return;
	daemon->ready = true;
	event_del(daemon->ready_check);
	log_info("ready: PostgreSQL connected, schema at version %d, "
	    "consumer subscribed, broker reachable, topics present, group "
	    "joined with %zu partitions", MIGRATE_SCHEMA_VERSION,
	    consumer_stats(daemon->consumer)->assigned);
	notify_send(daemon->notify, "READY=1");
	daemon_send_status(daemon);
}

/* /metrics. */
static void
daemon_metrics(void *arg, struct evbuffer *out)
{
	struct daemon *daemon = arg;
	struct metrics_sources sources = {
		.consumer = daemon->consumer,
		.pg = daemon->pg,
		.sweeper = daemon->sweeper,
		.retention = daemon->retention,
		.api = daemon->api,
		.http = daemon->http,
		.start_time = daemon->start_time,
	};

	metrics_write(out, &sources);
}

/* Extends the start timeout while the daemon is not yet ready. */
static void
daemon_extend_start(struct daemon *daemon)
{
	if (!daemon->ready && daemon->state != DAEMON_STOPPING)
		notify_send(daemon->notify, "EXTEND_TIMEOUT_USEC=%llu",
		    (unsigned long long)DAEMON_START_EXTEND_SECONDS * 1000000);
}

/* Refreshes the STATUS= line (and extends the start timeout). */
static void
daemon_status_cb(evutil_socket_t fd, short what, void *arg)
{
	daemon_extend_start(arg);
	daemon_send_status(arg);
}

/* Serves the operator API. */
static void
daemon_route(struct evhttp_request *request, const char *path, void *arg)
{
	struct daemon *daemon = arg;

	if (strncmp(path, "/api/", 5) == 0 || daemon->web == NULL)
		api_route(request, path, daemon->api);
	else
		web_route(daemon->web, request, path);
}

/* An API request's client went away. */
static void
daemon_gone(struct evhttp_request *request, void *arg)
{
	api_gone(request, ((struct daemon *)arg)->api);
}

/* A body over 64 KiB (an import) comes only with the write token. */
static bool
daemon_large_body(void *arg, const char *authorization)
{
	struct daemon *daemon = arg;

	return daemon->api != NULL && api_large_body(daemon->api,
	    authorization);
}

/* Reads an API token file; *out stays NULL when none is configured. */
static int
daemon_api_token(const char *path, char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (*path == '\0')
		return 0;
	return (*out = config_read_secret(path, err, errlen)) == NULL ? -1 : 0;
}

/*
 * Reads the API's token files again, so that a token is replaced with a
 * SIGHUP; a file that cannot be read keeps both tokens as they were.
 */
static void
daemon_api_tokens_reload(struct daemon *daemon, const struct config *fresh)
{
	char *read_token = NULL, *write_token = NULL, err[512];

	if (daemon_api_token(fresh->api_read_token_file, &read_token, err,
	    sizeof(err)) == -1 || daemon_api_token(fresh->api_write_token_file,
	    &write_token, err, sizeof(err)) == -1)
		log_errx("reload: %s; the API keeps its tokens", err);
	else
		api_set_tokens(daemon->api, read_token, write_token);
	config_free_secret(read_token);
	config_free_secret(write_token);
}

/*
 * Writes wait while a rebuild builds the state again: a request is decided
 * against the state it is applied to, and the rebuilt one is not whole yet
 * (an address a server holds may look free); its outcome would be kept,
 * and every later replay would follow it.
 */
static bool
daemon_writes_held(void *arg, char *why, size_t whylen)
{
	struct daemon *daemon = arg;

	if (daemon->consumer == NULL || !consumer_rebuilding(daemon->consumer))
		return false;
	snprintf(why, whylen, "a rebuild is building the state again; writes "
	    "are taken once it has swapped in");
	return true;
}

/*
 * Sets up the operator API: its read connections, its producer and its
 * tokens.  Writes need a producer; the reads work without one.
 */
static int
daemon_api_new(struct daemon *daemon, const char *password, char *err,
    size_t errlen)
{
	const struct config *config = daemon->config;
	struct pgconn_settings pg_settings;
	struct producer_property *properties;
	struct api_settings settings;
	char *read_token = NULL, *write_token = NULL, *read_password = NULL;
	size_t i;
	int rc = -1;

	if (daemon_api_token(config->api_read_token_file, &read_token, err,
	    errlen) == -1 || daemon_api_token(config->api_write_token_file,
	    &write_token, err, errlen) == -1)
		goto done;
	/*
	 * The reads may go through a read-only role of their own; without
	 * one they share the daemon's role and password.
	 */
	if (*config->api_read_password_file != '\0') {
		if ((read_password = config_read_secret(
		    config->api_read_password_file, err, errlen)) == NULL)
			goto done;
	}
	memset(&pg_settings, 0, sizeof(pg_settings));
	if (*config->api_read_conninfo != '\0') {
		pg_settings.conninfo = config->api_read_conninfo;
		pg_settings.password = read_password;
	} else {
		pg_settings.conninfo = config->pg_conninfo;
		pg_settings.password = read_password != NULL ? read_password :
		    password;
	}
	pg_settings.application_name = "ipam-syncd api";
	pg_settings.connect_timeout_ms = config->pg_connect_timeout_ms;
	pg_settings.reconnect_min_ms = config->pg_reconnect_min_ms;
	pg_settings.reconnect_max_ms = config->pg_reconnect_max_ms;
	daemon->api_pool = readpool_new(daemon->base, &pg_settings,
	    (size_t)config->api_read_connections,
	    config->api_statement_timeout_ms);
	if ((properties = calloc(config->kafka_count + 1,
	    sizeof(*properties))) == NULL)
		fatal("daemon: calloc");
	for (i = 0; i < config->kafka_count; i++) {
		properties[i].name = config->kafka[i].name;
		properties[i].value = config->kafka[i].value;
	}
	daemon->producer = producer_new(daemon->base, properties,
	    config->kafka_count, err, errlen);
	free(properties);
	if (daemon->producer == NULL)
		goto done;
	memset(&settings, 0, sizeof(settings));
	settings.read_token = read_token;
	settings.write_token = write_token;
	settings.group_id = config->group_id;
	settings.marks_topic = config_api_topic(config, CHANGE_MARK);
	settings.servers_topic = config_api_topic(config, CHANGE_SERVER);
	settings.subnets_topic = config_api_topic(config, CHANGE_SUBNET);
	settings.write_wait_ms = config->api_write_wait_ms;
	settings.rate_limit = config->api_rate_limit;
	settings.limits = &config->limits;
	settings.writes_held = daemon_writes_held;
	settings.writes_held_arg = daemon;
	daemon->api = api_new(daemon->base, daemon->api_pool,
	    daemon->producer, &settings);
	if (*config->api_web_dir != '\0')
		daemon->web = web_new(config->api_web_dir);
	rc = 0;
done:
	config_free_secret(read_token);
	config_free_secret(write_token);
	config_free_secret(read_password);
	return rc;
}

/*
 * --migrate is run by hand, once: a PostgreSQL it cannot reach is said at
 * once, not retried.  A blocking connection, before the loop runs.
 */
static int
daemon_probe_pg(const struct config *config, const char *password, char *err,
    size_t errlen)
{
	const char *keys[4] = { "dbname", "connect_timeout", NULL, NULL };
	const char *values[4] = { config->pg_conninfo, NULL, NULL, NULL };
	char timeout[32];
	PGconn *conn;
	size_t len;
	int rc = 0;

	snprintf(timeout, sizeof(timeout), "%lld",
	    (config->pg_connect_timeout_ms + 999) / 1000);
	values[1] = timeout;
	if (password != NULL) {
		keys[2] = "password";
		values[2] = password;
	}
	conn = PQconnectdbParams(keys, values, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "--migrate: PostgreSQL: %s",
		    conn != NULL ? PQerrorMessage(conn) : "out of memory");
		len = strlen(err);
		while (len > 0 && err[len - 1] == '\n')
			err[--len] = '\0';
		rc = -1;
	}
	PQfinish(conn);
	return rc;
}

/* Sets the daemon up. */
struct daemon *
daemon_new(const char *config_path, struct config *config,
    enum daemon_mode mode, char *err, size_t errlen, int *status)
{
	struct consumer_settings settings;
	struct consumer_topic *topics;
	struct kafka_property *properties;
	struct pgconn_settings pg_settings;
	struct pgconn_callbacks pg_callbacks;
	struct daemon *daemon;
	char *password = NULL;

	if ((daemon = calloc(1, sizeof(*daemon))) == NULL)
		fatal("daemon: calloc");
	daemon->config = daemon->running = config;
	daemon->mode = mode;
	*status = DAEMON_EXIT_SOFTWARE;
	if ((daemon->config_path = strdup(config_path ? config_path : "")) ==
	    NULL)
		fatal("daemon: strdup");
	if ((daemon->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "event_base_new failed");
		goto fail;
	}
	/* A schema folder that is missing will not come by retrying. */
	*status = DAEMON_EXIT_UNAVAILABLE;
	if ((daemon->migrate = migrate_new(config->schema_dir, err, errlen)) ==
	    NULL)
		goto fail;

	*status = DAEMON_EXIT_CONFIG;
	if (config->pg_password_file[0] != '\0' &&
	    (password = config_read_secret(config->pg_password_file, err,
	    errlen)) == NULL)
		goto fail;
	memset(&pg_settings, 0, sizeof(pg_settings));
	pg_settings.conninfo = config->pg_conninfo;
	pg_settings.password = password;
	pg_settings.application_name = "ipam-syncd";
	/*
	 * Have the server notice a client that died mid-statement (killed,
	 * crashed) within a second, instead of running its apply to the end.
	 */
	pg_settings.session_sql = "SET client_connection_check_interval = 1000";
	pg_settings.connect_timeout_ms = config->pg_connect_timeout_ms;
	pg_settings.reconnect_min_ms = config->pg_reconnect_min_ms;
	pg_settings.reconnect_max_ms = config->pg_reconnect_max_ms;
	pg_callbacks.up = daemon_pg_up;
	pg_callbacks.down = daemon_pg_down;
	pg_callbacks.arg = daemon;
	daemon->pg = pgconn_new(daemon->base, &pg_settings, &pg_callbacks);
	if (mode == DAEMON_MODE_MIGRATE) {
		*status = DAEMON_EXIT_UNAVAILABLE;
		if (daemon_probe_pg(config, password, err, errlen) == -1)
			goto fail;
		goto events;
	}
	/* Without CAP_NET_RAW (or a ping group) the sweeper cannot start. */
	*status = DAEMON_EXIT_NOPERM;
	{
		struct sweeper_settings sweep;

		config_sweeper_settings(config, password, &sweep);
		daemon->sweeper = sweeper_new(daemon->base, &sweep, err, errlen);
	}
	if (daemon->sweeper == NULL)
		goto fail;
	{
		struct retention_settings keep;

		retention_settings_from_config(config, password, &keep);
		daemon->retention = retention_new(daemon->base, &keep);
	}

	topics = calloc(config->topic_count, sizeof(*topics));
	properties = calloc(config->kafka_count + 1, sizeof(*properties));
	if (topics == NULL || properties == NULL)
		fatal("daemon: calloc");
	daemon_consumer_settings(config, &settings, topics, properties);
	settings.rebuild = mode == DAEMON_MODE_REBUILD;
	*status = DAEMON_EXIT_CONFIG;
	daemon->consumer = consumer_new(daemon->base, daemon->pg, &settings,
	    err, errlen);
	free(topics);
	free(properties);
	if (daemon->consumer == NULL)
		goto fail;
	consumer_set_failed(daemon->consumer, daemon_consumer_failed, daemon);

	daemon->notify = notify_open();
	daemon->start_time = time(NULL);
	if (log_level_parse(config->log_level, &daemon->configured_level) == -1)
		daemon->configured_level = LOG_LEVEL_INFO;
	if (config->http_listen[0] != '\0') {
		struct http_handlers handlers = {
			.ready = daemon_ready,
			.metrics = daemon_metrics,
			.arg = daemon,
		};

		if (config->api_enabled && daemon_api_new(daemon, password, err,
		    errlen) == -1)
			goto fail;
		if (daemon->api != NULL) {
			handlers.route = daemon_route;
			handlers.gone = daemon_gone;
		}
		/* Without the API no path takes a large body. */
		handlers.large_body = daemon_large_body;
		/* A port in use may be free again later: not a config error. */
		*status = DAEMON_EXIT_OSERR;
		if ((daemon->http = http_new(daemon->base, config->http_listen,
		    &handlers, err, errlen)) == NULL)
			goto fail;
		daemon_http_reply_seconds(daemon, config);
	}
events:
	config_free_secret(password);
	password = NULL;
	daemon->sigusr2 = evsignal_new(daemon->base, SIGUSR2, daemon_debug_cb,
	    daemon);
	daemon->sigterm = evsignal_new(daemon->base, SIGTERM, daemon_stop_cb,
	    daemon);
	daemon->sigint = evsignal_new(daemon->base, SIGINT, daemon_stop_cb,
	    daemon);
	daemon->sighup = evsignal_new(daemon->base, SIGHUP, daemon_reload_cb,
	    daemon);
	daemon->deadline = evtimer_new(daemon->base, daemon_deadline_cb,
	    daemon);
	daemon->ready_check = event_new(daemon->base, -1, EV_PERSIST,
	    daemon_ready_check_cb, daemon);
	daemon->status = event_new(daemon->base, -1, EV_PERSIST,
	    daemon_status_cb, daemon);
	daemon->watchdog = event_new(daemon->base, -1, EV_PERSIST,
	    daemon_watchdog_cb, daemon);
	if (daemon->sigterm == NULL || daemon->sigint == NULL ||
	    daemon->sighup == NULL || daemon->sigusr2 == NULL ||
	    daemon->deadline == NULL ||
	    daemon->status == NULL || daemon->watchdog == NULL ||
	    daemon->ready_check == NULL) {
		*status = DAEMON_EXIT_SOFTWARE;
		snprintf(err, errlen, "libevent: cannot create events");
		goto fail;
	}
	*status = DAEMON_EXIT_OK;
	return daemon;
fail:
	config_free_secret(password);
	daemon_free(daemon);
	return NULL;
}

/* Runs the event loop until the daemon stops. */
int
daemon_run(struct daemon *daemon)
{
	struct timeval status = { DAEMON_STATUS_SECONDS, 0 };
	uint64_t watchdog_usec = notify_watchdog_usec();

	signal(SIGPIPE, SIG_IGN);
	event_add(daemon->sigterm, NULL);
	event_add(daemon->sigint, NULL);
	if (daemon->mode == DAEMON_MODE_MIGRATE) {
		log_info("ipam-syncd %s: --migrate (schema folder %s)",
		    IPAM_VERSION, daemon->config->schema_dir);
		pgconn_start(daemon->pg);
		if (event_base_dispatch(daemon->base) == -1) {
			log_errx("event loop failed");
			return DAEMON_EXIT_SOFTWARE;
		}
		return daemon->exit_status;
	}
	event_add(daemon->sighup, NULL);
	event_add(daemon->sigusr2, NULL);
	event_add(daemon->status, &status);
	if (watchdog_usec > 0) {
		daemon->watchdog_seconds = (double)watchdog_usec / 1e6;
		struct timeval half = { (time_t)(watchdog_usec / 2000000),
		    (suseconds_t)((watchdog_usec / 2) % 1000000) };

		event_add(daemon->watchdog, &half);
	}
	log_info("ipam-syncd %s starting (config %s)", IPAM_VERSION,
	    daemon->config_path);
	daemon_extend_start(daemon);
	pgconn_start(daemon->pg);
	if (event_base_dispatch(daemon->base) == -1) {
		log_errx("event loop failed");
		return DAEMON_EXIT_SOFTWARE;
	}
	return daemon->exit_status;
}

/* Frees the daemon. */
void
daemon_free(struct daemon *daemon)
{
	if (daemon == NULL)
		return;
	/* The API's requests are told first; nothing calls back after. */
	http_free(daemon->http);
	api_free(daemon->api);
	web_free(daemon->web);
	readpool_free(daemon->api_pool);
	producer_free(daemon->producer, 1000);
	sweeper_free(daemon->sweeper);
	retention_free(daemon->retention);
	pgconn_free(daemon->pg);
	consumer_free(daemon->consumer);
	migrate_free(daemon->migrate);
	notify_close(daemon->notify);
	if (daemon->sigterm != NULL)
		event_free(daemon->sigterm);
	if (daemon->sigint != NULL)
		event_free(daemon->sigint);
	if (daemon->sighup != NULL)
		event_free(daemon->sighup);
	if (daemon->sigusr2 != NULL)
		event_free(daemon->sigusr2);
	if (daemon->deadline != NULL)
		event_free(daemon->deadline);
	if (daemon->status != NULL)
		event_free(daemon->status);
	if (daemon->ready_check != NULL)
		event_free(daemon->ready_check);
	if (daemon->watchdog != NULL)
		event_free(daemon->watchdog);
	if (daemon->base != NULL)
		event_base_free(daemon->base);
	if (daemon->config != daemon->running)
		config_free(daemon->config);
	config_free(daemon->running);
	free(daemon->config_path);
	free(daemon);
}
