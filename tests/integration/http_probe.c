/*
 * http_probe: daemon/http.c on a loop of its own with route handlers that
 * answer at once, later, or never, for test_http_hardening.py.  It listens
 * on 127.0.0.1:0 (the port is in its log) and serves:
 *
 *   /echo              200 with the body's length and the decoded path
 *   /later?ms=N        200 after N ms, from a timer
 *   /big               200 with 8 MiB of text at once (a reply a client
 *                      that reads nothing holds in the server)
 *   /never             held until the client goes away (then gone)
 *   anything else      200 with the decoded path
 *
 * /metrics gives the probe's counters and http_stats; SIGTERM frees the
 * server (gone for held requests) and exits 0.  An argument sets the
 * seconds a handler may hold a request (http_set_reply_seconds).
 */
#include <sys/queue.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/log.h"
#include "daemon/http.h"

/* A request a handler holds. */
struct probe_pending {
	LIST_ENTRY(probe_pending) entry;
	struct evhttp_request	*request;
	struct event		*timer;		/* NULL for /never */
	struct probe		*probe;
};

struct probe {
	struct event_base	*base;
	struct http		*http;
	LIST_HEAD(, probe_pending) pending;
	unsigned long		 routed;
	unsigned long		 gone;
	unsigned long		 replied_later;
};

/* Always ready. */
static bool
probe_ready(void *arg, char *buf, size_t buflen)
{
	return true;
}

/* The probe's counters and the server's. */
static void
probe_metrics(void *arg, struct evbuffer *out)
{
	struct probe *probe = arg;
	struct http_stats stats;

	http_stats(probe->http, &stats);
	evbuffer_add_printf(out, "routed %lu\ngone %lu\nreplied_later %lu\n",
	    probe->routed, probe->gone, probe->replied_later);
	evbuffer_add_printf(out, "connections_open %llu\nconnections_max %llu\n"
	    "connections_accepted %llu\nclosed_evicted %llu\n"
	    "closed_refused %llu\nclosed_request_deadline %llu\n"
	    "closed_reply_deadline %llu\nclosed_client_gone %llu\n"
	    "refused_method %llu\nrefused_too_large %llu\n"
	    "refused_head_too_large %llu\nrefused_bad_request %llu\n"
	    "refused_pipelined %llu\n"
	    "accept_errors %llu\nlistener_pauses %llu\n",
	    (unsigned long long)stats.connections_open,
	    (unsigned long long)stats.connections_max,
	    (unsigned long long)stats.connections_accepted,
	    (unsigned long long)stats.closed_evicted,
	    (unsigned long long)stats.closed_refused,
	    (unsigned long long)stats.closed_request_deadline,
	    (unsigned long long)stats.closed_reply_deadline,
	    (unsigned long long)stats.closed_client_gone,
	    (unsigned long long)stats.refused_method,
	    (unsigned long long)stats.refused_too_large,
	    (unsigned long long)stats.refused_head_too_large,
	    (unsigned long long)stats.refused_bad_request,
	    (unsigned long long)stats.refused_pipelined,
	    (unsigned long long)stats.accept_errors,
	    (unsigned long long)stats.listener_pauses);
}

/* Replies 200 with a line of text and frees the pending record. */
static void
probe_answer(struct probe_pending *pending, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	LIST_REMOVE(pending, entry);
	if (pending->timer != NULL)
		event_free(pending->timer);
	evbuffer_add_printf(body, "%s\n", text);
	evhttp_send_reply(pending->request, 200, "OK", body);
	evbuffer_free(body);
	free(pending);
}

/* /later: the timer has run out. */
static void
probe_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_pending *pending = arg;

	pending->probe->replied_later++;
	probe_answer(pending, "later");
}

/* The server says a held request lost its client. */
static void
probe_gone(struct evhttp_request *request, void *arg)
{
	struct probe *probe = arg;
	struct probe_pending *pending;

	LIST_FOREACH(pending, &probe->pending, entry)
		if (pending->request == request)
			break;
	if (pending == NULL) {
		log_errx("probe: gone for a request it does not hold");
		abort();
	}
	probe->gone++;
	if (evhttp_request_get_connection(request) != NULL) {
		log_errx("probe: gone while the request still has a connection");
		abort();
	}
	probe_answer(pending, "gone");
}

/* Every path but the three the server keeps. */
static void
probe_route(struct evhttp_request *request, const char *path, void *arg)
{
	struct probe *probe = arg;
	struct probe_pending *pending;
	struct evkeyvalq query;
	struct evbuffer *body;
	struct timeval tv;
	const char *ms;
	char text[256];

	probe->routed++;
	if (strcmp(path, "/big") == 0) {
		body = evbuffer_new();
		for (int i = 0; i < 8 * 1024; i++)
			evbuffer_add_printf(body, "%01023d\n", i);
		evhttp_send_reply(request, 200, "OK", body);
		evbuffer_free(body);
		return;
	}
	if (strcmp(path, "/echo") == 0) {
		snprintf(text, sizeof(text), "%zu",
		    evbuffer_get_length(evhttp_request_get_input_buffer(request)));
	} else if (strcmp(path, "/later") != 0 && strcmp(path, "/never") != 0) {
		snprintf(text, sizeof(text), "path %s", path);
	} else {
		if ((pending = calloc(1, sizeof(*pending))) == NULL)
			abort();
		pending->request = request;
		pending->probe = probe;
		LIST_INSERT_HEAD(&probe->pending, pending, entry);
		if (strcmp(path, "/later") == 0) {
			TAILQ_INIT(&query);
			evhttp_parse_query_str(evhttp_uri_get_query(
			    evhttp_request_get_evhttp_uri(request)) ?: "", &query);
			ms = evhttp_find_header(&query, "ms");
			tv.tv_sec = ms != NULL ? atoi(ms) / 1000 : 0;
			tv.tv_usec = ms != NULL ? (atoi(ms) % 1000) * 1000 : 0;
			evhttp_clear_headers(&query);
			pending->timer = evtimer_new(probe->base, probe_later_cb,
			    pending);
			evtimer_add(pending->timer, &tv);
		}
		return;
	}
	body = evbuffer_new();
	evbuffer_add_printf(body, "%s\n", text);
	evhttp_send_reply(request, 200, "OK", body);
	evbuffer_free(body);
}

/* SIGTERM: stop the loop. */
static void
probe_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Serves until SIGTERM. */
int
main(int argc, char **argv)
{
	struct probe probe = { 0 };
	struct http_handlers handlers = {
		.ready = probe_ready,
		.metrics = probe_metrics,
		.route = probe_route,
		.gone = probe_gone,
		.arg = &probe,
	};
	struct event *stop;
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_DEBUG);
	LIST_INIT(&probe.pending);
	probe.base = event_base_new();
	stop = evsignal_new(probe.base, SIGTERM, probe_stop_cb, probe.base);
	evsignal_add(stop, NULL);
	if ((probe.http = http_new(probe.base, "127.0.0.1:0", &handlers, err,
	    sizeof(err))) == NULL) {
		log_errx("probe: %s", err);
		return 1;
	}
	if (argc > 1)
		http_set_reply_seconds(probe.http, (unsigned)atoi(argv[1]));
	event_base_dispatch(probe.base);
	http_free(probe.http);
	log_info("probe: stopped, gone %lu, still held %d", probe.gone,
	    LIST_EMPTY(&probe.pending) ? 0 : 1);
	event_free(stop);
	event_base_free(probe.base);
	return LIST_EMPTY(&probe.pending) ? 0 : 2;
}
