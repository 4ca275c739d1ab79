/*
 * HTTP on the event loop: /healthz, /readyz, /metrics and the operator API's
 * routes, with bounds on connections, time and size.
 *
 * libevent 2.1's evhttp has no hook for a new connection or a request's
 * head (evhttp_set_newreqcb came in 2.2) and its timeout is per read, so
 * the server keeps its own record of each connection:
 *
 * - evhttp_set_bevcb hands it every accepted connection before evhttp
 *   reads a byte: there it counts, caps (evicting the connection that has
 *   waited longest for its request, or refusing) and keeps a reference on
 *   the bufferevent until evhttp's close callback says the connection is
 *   gone;
 * - a callback on the bufferevent's input buffer sees every byte before
 *   evhttp parses it: a small parser of its own checks the request line
 *   (method), the size of the head and Content-Length against the route's
 *   limit, and refuses at once with a JSON error (the bytes are drained, so
 *   evhttp never sees the request);
 * - a timer per connection holds the deadline of the whole request, then
 *   of the handler and its reply; a read watch tells a handler that its
 *   client went away;
 * - accept errors pause the listener (EMFILE would otherwise wake the loop
 *   for ever) and are logged once, then summed up now and then.
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "common/log.h"
#include "daemon/http.h"

#if !defined(LIBEVENT_VERSION_NUMBER) || LIBEVENT_VERSION_NUMBER < 0x02010000
#error "daemon/http.c needs libevent 2.1"
#endif

/*
 * Connections: at most HTTP_MAX_CONNECTIONS, and never more than half of
 * what RLIMIT_NOFILE leaves once HTTP_FD_RESERVE descriptors are kept for
 * PostgreSQL, Kafka, the sweeper and the process's own files.
 */
#define HTTP_MAX_CONNECTIONS	1024
#define HTTP_MIN_CONNECTIONS	8
#define HTTP_FD_RESERVE		256
/* The soft RLIMIT_NOFILE is raised toward the hard limit, up to this. */
#define HTTP_NOFILE_WANTED	65536
#define HTTP_BACKLOG		128

/* A request line and its headers, in bytes. */
#define HTTP_MAX_HEAD		16384
/*
 * Header lines of a request: evhttp keeps each one as a list entry of
 * its own (some hundred bytes), so 16 KiB of one-byte headers would hold
 * half a megabyte a connection.  Clients send a dozen.
 */
#define HTTP_MAX_HEADERS	100
/* Bodies: 64 KiB, except bulk imports. */
#define HTTP_BODY_LIMIT		(64 * 1024)
#define HTTP_IMPORT_PATH	"/api/v1/import"
#define HTTP_IMPORT_BODY_LIMIT	(32 * 1024 * 1024)
/*
 * Bodies over HTTP_BODY_LIMIT held at once, from their head to their
 * reply, over every connection: each is held whole (up to 32 MiB) before
 * its handler sees it, so a client with the write token on many
 * connections could otherwise make the daemon hold gigabytes.  One more
 * is refused (503, Retry-After) before it is sent.
 */
#define HTTP_LARGE_BODIES_MAX	4

/*
 * What a client may send ahead of the replies (pipelining): evhttp reads
 * nothing while a request is answered, so the requests behind it wait in
 * the input buffer.  At most this many requests in all, the answered one
 * included, and this many bytes waiting; the request that would pass
 * either is refused (429) and the connection closed after the replies
 * before it.  Eight small requests are some kilobytes.
 */
#define HTTP_PIPELINE_REQUESTS	8
#define HTTP_PIPELINE_BYTES	(256 * 1024)

/*
 * Time: a whole request (head and body) within HTTP_REQUEST_SECONDS, plus
 * a second per HTTP_BODY_RATE bytes of a large body; evhttp's own timeout
 * (per read or write) stays as a second bound.
 */
#define HTTP_REQUEST_SECONDS	10
#define HTTP_BODY_RATE		(256 * 1024)
#define HTTP_IDLE_SECONDS	10
/*
 * After a refusal the server stops writing and reads (and drops) what the
 * client still sends for this long, so that a client sending its body
 * reads the refusal instead of a reset.
 */
#define HTTP_LINGER_MS		2000

/* Accept errors: the listener pauses, doubling up to the maximum. */
#define HTTP_PAUSE_MIN_MS	100
#define HTTP_PAUSE_MAX_MS	2000
#define HTTP_ACCEPT_LOG_SECONDS	30

/* Where a connection is in its life (transitions logged at debug). */
enum http_conn_state {
	HTTP_CONN_SETUP,	/* accepted; evhttp's connection not yet known */
	HTTP_CONN_READING,	/* receiving a request, or waiting for one */
	HTTP_CONN_HANDLER,	/* a handler holds the request, no reply yet */
	HTTP_CONN_REPLYING,	/* the reply is being written */
	HTTP_CONN_CLOSING,	/* closed by the server */
};

/* Where the parser is in the incoming byte stream. */
enum http_parse_state {
	HTTP_PARSE_REQUEST_LINE,
	HTTP_PARSE_HEADERS,
	HTTP_PARSE_BODY,
	HTTP_PARSE_REFUSED,	/* a refusal was sent; bytes are dropped */
};

/* Deferred work for a connection's timer. */
#define HTTP_ACTION_SETUP	0x01
#define HTTP_ACTION_CLOSE	0x02

struct http;

struct http_conn {
	TAILQ_ENTRY(http_conn)	 entry;
	struct http		*http;
	struct bufferevent	*bev;		/* one reference is ours */
	struct evhttp_connection *evcon;
	evutil_socket_t		 fd;
	enum http_conn_state	 state;
	int			 actions;
	bool			 refuse;	/* over the cap, nothing evicted */
	bool			 lingering;	/* refused, draining the rest */
	bool			 extended;	/* evhttp's timeouts lifted */
	bool			 streamed;	/* ... to a streamed reply's */
	/* Requests parsed whole and not yet answered (pipelining). */
	unsigned		 requests_queued;
	/*
	 * Which of them, and the one being received, hold a large body
	 * (counted in http->large_bodies): bit i is the i-th request not
	 * yet answered, the oldest in bit 0.
	 */
	uint32_t		 large_bodies;
	/* A refusal waiting for the replies to the requests before it. */
	struct evbuffer		*refusal;
	struct event		*timer;		/* deadline and actions */
	struct event		*watch;		/* client gone, in HANDLER */
	int64_t			 started_ms;	/* of the current request */
	int64_t			 deadline_ms;
	struct evbuffer_cb_entry *input_cb;
	struct evbuffer_cb_entry *output_cb;
	struct evhttp_request	*request;	/* given to a handler */
	bool			 routed;	/* ... and to route */

	/* The parser of the incoming stream. */
	enum http_parse_state	 parse;
	char			*line;
	size_t			 line_length;
	size_t			 line_size;
	size_t			 head_bytes;
	size_t			 head_lines;	/* header lines of the request */
	uint64_t		 request_bytes;	/* of the one being parsed */
	int64_t			 content_length;	/* -1: none */
	bool			 head_method;
	bool			 large_body_allowed;	/* by its Authorization */
	bool			 authorization_seen;
	uint64_t		 body_limit;	/* of the request being parsed */
	uint64_t		 body_left;
	int64_t			 body_allowance_ms;
};

TAILQ_HEAD(http_conn_list, http_conn);

struct http {
	LIST_ENTRY(http)	 servers;
	struct event_base	*base;
	struct evhttp		*server;
	struct evconnlistener	*listener;
	struct event		*resume;	/* ends an accept error pause */
	struct event		*accept_round;	/* ends a round of accepts */
	unsigned		 accepted_in_round;
	unsigned		 accept_batch;
	unsigned		 reply_seconds;
	struct http_handlers	 handlers;
	/* Oldest request first: the head is the first to evict. */
	struct http_conn_list	 conns;
	struct http_conn	**by_fd;
	size_t			 by_fd_length;
	struct http_stats	 stats;
	/* Accept errors. */
	bool			 paused;
	bool			 accept_failing;
	int			 pause_ms;
	uint64_t		 accept_errors_unlogged;
	uint64_t		 accept_errors_since_ok;
	int64_t			 accept_logged_ms;
	/* Large bodies held over every connection (HTTP_LARGE_BODIES_MAX). */
	unsigned		 large_bodies;
};

static void	http_conn_close(struct http_conn *, short);

/*
 * The servers, by their evhttp: the listener's error callback is given
 * evhttp's argument (its struct evhttp), and libevent 2.1 has no other way
 * back to ours.  Only http_new and http_free change it.
 */
static LIST_HEAD(, http) http_servers = LIST_HEAD_INITIALIZER(http_servers);

/* The monotonic clock in milliseconds. */
static int64_t
http_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Names a connection state for the debug log. */
static const char *
http_conn_state_name(enum http_conn_state state)
{
	switch (state) {
	case HTTP_CONN_SETUP:
		return "setup";
	case HTTP_CONN_READING:
		return "reading";
	case HTTP_CONN_HANDLER:
		return "handler";
	case HTTP_CONN_REPLYING:
		return "replying";
	case HTTP_CONN_CLOSING:
		return "closing";
	}
	return "?";
}

/* Moves a connection to a new state, logged at debug. */
static void
http_conn_set_state(struct http_conn *conn, enum http_conn_state state)
{
	log_debug("http: connection %d: %s -> %s", (int)conn->fd,
	    http_conn_state_name(conn->state), http_conn_state_name(state));
	conn->state = state;
}

/* Arms the connection's timer for its deadline. */
static void
http_conn_arm(struct http_conn *conn, int64_t deadline_ms)
{
	int64_t left = deadline_ms - http_now_ms();
	struct timeval tv;

	conn->deadline_ms = deadline_ms;
	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(conn->timer, &tv);
}

/* Runs the connection's deferred actions as soon as the loop can. */
static void
http_conn_schedule(struct http_conn *conn, int action)
{
	conn->actions |= action;
	event_active(conn->timer, EV_TIMEOUT, 1);
}

/* Starts receiving a request: a new deadline, and last in eviction order. */
static void
http_conn_start_reading(struct http_conn *conn)
{
	struct http *http = conn->http;

	http_conn_set_state(conn, HTTP_CONN_READING);
	conn->started_ms = http_now_ms();
	TAILQ_REMOVE(&http->conns, conn, entry);
	TAILQ_INSERT_TAIL(&http->conns, conn, entry);
	http_conn_arm(conn, conn->started_ms + HTTP_REQUEST_SECONDS * 1000 +
	    conn->body_allowance_ms);
}

/* Files a connection under its descriptor, growing the table as needed. */
static void
http_conn_index(struct http *http, struct http_conn *conn)
{
	size_t length;

	if (conn->fd < 0)
		return;
	if ((size_t)conn->fd >= http->by_fd_length) {
		length = http->by_fd_length * 2;
		if (length <= (size_t)conn->fd)
			length = (size_t)conn->fd + 1;
		http->by_fd = realloc(http->by_fd, length * sizeof(*http->by_fd));
		if (http->by_fd == NULL)
			fatal("http: realloc");
		memset(http->by_fd + http->by_fd_length, 0,
		    (length - http->by_fd_length) * sizeof(*http->by_fd));
		http->by_fd_length = length;
	}
	http->by_fd[conn->fd] = conn;
}

/* Finds the connection a request arrived on, or NULL. */
static struct http_conn *
http_conn_of(struct http *http, struct evhttp_request *request)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	evutil_socket_t fd;

	if ((evcon = evhttp_request_get_connection(request)) == NULL)
		return NULL;
	bev = evhttp_connection_get_bufferevent(evcon);
	fd = bufferevent_getfd(bev);
	if (fd < 0 || (size_t)fd >= http->by_fd_length ||
	    http->by_fd[fd] == NULL || http->by_fd[fd]->bev != bev)
		return NULL;
	return http->by_fd[fd];
}

/*
 * Forgets a connection evhttp has let go of: drops our reference on its
 * bufferevent (evhttp frees it next) and frees the record.
 */
static void
http_conn_release(struct http_conn *conn)
{
	struct http *http = conn->http;

	TAILQ_REMOVE(&http->conns, conn, entry);
	if (conn->fd >= 0 && (size_t)conn->fd < http->by_fd_length &&
	    http->by_fd[conn->fd] == conn)
		http->by_fd[conn->fd] = NULL;
	evbuffer_remove_cb_entry(bufferevent_get_input(conn->bev),
	    conn->input_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(conn->bev),
	    conn->output_cb);
	event_free(conn->timer);
	if (conn->watch != NULL)
		event_free(conn->watch);
	if (conn->refusal != NULL)
		evbuffer_free(conn->refusal);
	http->large_bodies -= (unsigned)__builtin_popcount(conn->large_bodies);
	bufferevent_decref(conn->bev);
	http->stats.connections_open--;
	free(conn->line);
	free(conn);
}

/*
 * evhttp's close callback: the connection is being freed.  A request a
 * route handler still holds has been detached from it by then (evhttp
 * does so when the handler has not replied), and the handler is told.
 */
static void
http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *conn = arg;
	struct http *http = conn->http;
	struct evhttp_request *request = conn->request;
	bool tell = conn->routed && request != NULL &&
	    evhttp_request_get_connection(request) == NULL;

	log_debug("http: connection %d closed", (int)conn->fd);
	http_conn_release(conn);
	if (tell && http->handlers.gone != NULL)
		http->handlers.gone(request, http->handlers.arg);
}

/*
 * Builds a short reply with a JSON error that closes the connection; the
 * caller owns the buffer.
 */
static struct evbuffer *
http_error_reply(int code, const char *reason, const char *extra_header,
    const char *error, const char *detail)
{
	struct evbuffer *out;
	json_t *json;
	char *body;

	json = json_pack("{s:s, s:s}", "error", error, "detail", detail);
	body = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
	json_decref(json);
	if (body == NULL)
		fatalx("http: cannot build an error body");
	if ((out = evbuffer_new()) == NULL)
		fatalx("http: evbuffer_new failed");
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n"
	    "%s"
	    "\r\n%s\n", code, reason, strlen(body) + 1,
	    extra_header != NULL ? extra_header : "", body);
	free(body);
	return out;
}

/*
 * Writes a reply straight to the socket, best effort, and frees it: used
 * only when nothing else is being written on the connection, just before
 * it is closed (a socket's send buffer takes a few hundred bytes at once).
 */
static void
http_conn_send_buffer(struct http_conn *conn, struct evbuffer *out)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);
	size_t length = evbuffer_get_length(out);

	if (fd >= 0 && send(fd, evbuffer_pullup(out, -1), length,
	    MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("http: connection %d: a refusal was not sent: %s",
		    (int)fd, strerror(errno));
	evbuffer_free(out);
}

/* Writes a JSON error straight to the socket (see above). */
static void
http_conn_send_raw(struct http_conn *conn, int code, const char *reason,
    const char *extra_header, const char *error, const char *detail)
{
	http_conn_send_buffer(conn, http_error_reply(code, reason,
	    extra_header, error, detail));
}

/*
 * Refuses the request being parsed with a JSON error and closes the
 * connection: at once when no request before it waits for its reply,
 * else after the last of those replies (pipelining).  The request's bytes
 * are dropped (http_conn_input_cb), so evhttp never parses it.
 */
static void
http_conn_refuse(struct http_conn *conn, int code, const char *reason,
    const char *extra_header, const char *error, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_debug("http: connection %d: %d %s: %s", (int)conn->fd, code,
	    error, detail);
	/* A large body refused part-way is held no more. */
	if (conn->large_bodies & (1u << conn->requests_queued)) {
		conn->large_bodies &= ~(1u << conn->requests_queued);
		conn->http->large_bodies--;
	}
	conn->parse = HTTP_PARSE_REFUSED;
	conn->refusal = http_error_reply(code, reason, extra_header, error,
	    detail);
	if (conn->requests_queued == 0) {
		http_conn_send_buffer(conn, conn->refusal);
		conn->refusal = NULL;
		http_conn_schedule(conn, HTTP_ACTION_CLOSE);
	}
}

/* The methods the server knows; the rest are refused with 501. */
static const struct {
	const char		*name;
	enum evhttp_cmd_type	 type;
	bool			 served;
} http_methods[] = {
	{ "GET",	EVHTTP_REQ_GET,		true },
	{ "HEAD",	EVHTTP_REQ_HEAD,	true },
	{ "POST",	EVHTTP_REQ_POST,	true },
	{ "PUT",	EVHTTP_REQ_PUT,		true },
	{ "DELETE",	EVHTTP_REQ_DELETE,	true },
	{ "OPTIONS",	EVHTTP_REQ_OPTIONS,	true },
	{ "PATCH",	EVHTTP_REQ_PATCH,	true },
	{ "CONNECT",	EVHTTP_REQ_CONNECT,	false },
	{ "TRACE",	EVHTTP_REQ_TRACE,	false },
};

#define HTTP_ALLOW_HEADER \
	"Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n"

/*
 * The body limit of a decoded path: the import's (with a last '/', as the
 * API routes it too), or every other's.
 */
static uint64_t
http_body_limit(const char *path)
{
	size_t len = strlen(HTTP_IMPORT_PATH);

	if (strncmp(path, HTTP_IMPORT_PATH, len) == 0 &&
	    (path[len] == '\0' || strcmp(path + len, "/") == 0))
		return HTTP_IMPORT_BODY_LIMIT;
	return HTTP_BODY_LIMIT;
}

/*
 * Checks a request line; returns -1 when it refused it.  The body limit
 * is chosen here, from the decoded path, and applied when the head ends.
 */
static int
http_parse_request_line(struct http_conn *conn, char *line,
    uint64_t *limit)
{
	char *method, *target, *version, *decoded;
	struct evhttp_uri *uri;
	const char *path;
	size_t i;

	method = line;
	if ((target = strchr(method, ' ')) == NULL)
		goto bad;
	*target++ = '\0';
	if ((version = strchr(target, ' ')) == NULL)
		goto bad;
	*version++ = '\0';
	if (*method == '\0' || *target == '\0' || strchr(version, ' ') != NULL)
		goto bad;
	for (i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
		if (strcmp(method, http_methods[i].name) == 0)
			break;
	if (i == sizeof(http_methods) / sizeof(http_methods[0])) {
		conn->http->stats.refused_method++;
		http_conn_refuse(conn, 501, "Not Implemented", HTTP_ALLOW_HEADER,
		    "method_not_allowed", "the method is not one this server "
		    "knows");
		return -1;
	}
	if (!http_methods[i].served) {
		conn->http->stats.refused_method++;
		http_conn_refuse(conn, 405, "Method Not Allowed",
		    HTTP_ALLOW_HEADER, "method_not_allowed",
		    "%s is not served here", http_methods[i].name);
		return -1;
	}
	conn->head_method = http_methods[i].type == EVHTTP_REQ_HEAD;
	if (strcmp(version, "HTTP/1.1") != 0 &&
	    strcmp(version, "HTTP/1.0") != 0) {
		conn->http->stats.refused_bad_request++;
		http_conn_refuse(conn, 505, "HTTP Version Not Supported", NULL,
		    "bad_request", "only HTTP/1.0 and HTTP/1.1 are served");
		return -1;
	}
	uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
	if (uri == NULL)
		goto bad;
	path = evhttp_uri_get_path(uri);
	decoded = evhttp_uridecode(path != NULL ? path : "", 0, NULL);
	evhttp_uri_free(uri);
	if (decoded == NULL)
		goto bad;
	*limit = http_body_limit(decoded);
	free(decoded);
	return 0;
bad:
	conn->http->stats.refused_bad_request++;
	http_conn_refuse(conn, 400, "Bad Request", NULL, "bad_request",
	    "the request line is not METHOD TARGET HTTP/1.x");
	return -1;
}

/* Trims spaces and tabs on both ends, in place. */
static char *
http_trim(char *text)
{
	size_t length;

	text += strspn(text, " \t");
	length = strlen(text);
	while (length > 0 && (text[length - 1] == ' ' ||
	    text[length - 1] == '\t'))
		text[--length] = '\0';
	return text;
}

/* Checks a header line; returns -1 when it refused the request. */
static int
http_parse_header(struct http_conn *conn, char *line)
{
	struct http *http = conn->http;
	char *colon, *value, *end;
	unsigned long long length;

	/* Folded lines are obsolete and could hide a Content-Length. */
	if (line[0] == ' ' || line[0] == '\t' ||
	    (colon = strchr(line, ':')) == NULL || colon == line) {
		http->stats.refused_bad_request++;
		http_conn_refuse(conn, 400, "Bad Request", NULL, "bad_request",
		    "a header line is not NAME: VALUE");
		return -1;
	}
	*colon = '\0';
	value = http_trim(colon + 1);
	if (strcasecmp(line, "Transfer-Encoding") == 0) {
		http->stats.refused_bad_request++;
		http_conn_refuse(conn, 411, "Length Required", NULL,
		    "length_required", "send the body with a Content-Length, "
		    "not a Transfer-Encoding");
		return -1;
	}
	/* The one Authorization the handler will read, not one of two. */
	if (strcasecmp(line, "Authorization") == 0) {
		conn->large_body_allowed = http->handlers.large_body == NULL ||
		    (!conn->authorization_seen &&
		    http->handlers.large_body(http->handlers.arg, value));
		conn->authorization_seen = true;
		return 0;
	}
	if (strcasecmp(line, "Content-Length") != 0)
		return 0;
	errno = 0;
	length = strtoull(value, &end, 10);
	if (value[0] < '0' || value[0] > '9' || *end != '\0' ||
	    errno == ERANGE || length > INT64_MAX ||
	    (conn->content_length >= 0 &&
	    (uint64_t)conn->content_length != length)) {
		http->stats.refused_bad_request++;
		http_conn_refuse(conn, 400, "Bad Request", NULL, "bad_request",
		    "Content-Length is not one number");
		return -1;
	}
	conn->content_length = (int64_t)length;
	return 0;
}

/* A request has been parsed whole: the next byte starts another. */
static void
http_parse_request_done(struct http_conn *conn)
{
	conn->parse = HTTP_PARSE_REQUEST_LINE;
	conn->request_bytes = 0;
	conn->body_allowance_ms = 0;
	conn->requests_queued++;
}

/*
 * The head has ended: checks the body against the route's limit, which is
 * decided here, before a byte of the body is read.
 */
static int
http_parse_head_end(struct http_conn *conn, uint64_t limit)
{
	uint64_t body;

	/* evhttp reads no body for HEAD, whatever Content-Length says. */
	body = conn->head_method || conn->content_length < 0 ? 0 :
	    (uint64_t)conn->content_length;
	if (body > limit) {
		conn->http->stats.refused_too_large++;
		http_conn_refuse(conn, 413, "Payload Too Large", NULL,
		    "too_large", "the body is %" PRIu64 " bytes; this path "
		    "takes at most %" PRIu64, body, limit);
		return -1;
	}
	/*
	 * A large body is held whole before the request is handled: only
	 * a client that may send one gets to (its token, known now).
	 */
	if (body > HTTP_BODY_LIMIT && !conn->large_body_allowed) {
		conn->http->stats.refused_unauthorized++;
		http_conn_refuse(conn, 401, "Unauthorized",
		    "WWW-Authenticate: Bearer\r\n", "unauthorized", "a body "
		    "over %d bytes is read only with the write token "
		    "(Authorization: Bearer TOKEN)", HTTP_BODY_LIMIT);
		return -1;
	}
	if (body > HTTP_BODY_LIMIT) {
		if (conn->http->large_bodies >= HTTP_LARGE_BODIES_MAX) {
			conn->http->stats.refused_busy++;
			http_conn_refuse(conn, 503, "Service Unavailable",
			    "Retry-After: 5\r\n", "unavailable", "%d bodies "
			    "over %d bytes are being received or handled, the "
			    "most at once; send it again later",
			    HTTP_LARGE_BODIES_MAX, HTTP_BODY_LIMIT);
			return -1;
		}
		conn->http->large_bodies++;
		conn->large_bodies |= 1u << conn->requests_queued;
	}
	conn->body_left = body;
	conn->body_allowance_ms = (int64_t)(body / HTTP_BODY_RATE) * 1000;
	if (conn->state == HTTP_CONN_READING && body > 0)
		http_conn_arm(conn, conn->started_ms +
		    HTTP_REQUEST_SECONDS * 1000 + conn->body_allowance_ms);
	if (body > 0)
		conn->parse = HTTP_PARSE_BODY;
	else
		http_parse_request_done(conn);
	return 0;
}

/* Handles one complete line of the head; returns -1 when it refused. */
static int
http_parse_line(struct http_conn *conn)
{
	char none[1], *line = conn->line;

	/* A line ended before any byte of it was kept (a bare "\n"). */
	if (line == NULL)
		line = none;
	if (conn->line_length > 0 && line[conn->line_length - 1] == '\r')
		conn->line_length--;
	line[conn->line_length] = '\0';
	conn->line_length = 0;
	if (conn->parse == HTTP_PARSE_REQUEST_LINE) {
		conn->content_length = -1;
		conn->head_method = false;
		conn->authorization_seen = false;
		conn->large_body_allowed = conn->http->handlers.large_body ==
		    NULL || conn->http->handlers.large_body(
		    conn->http->handlers.arg, NULL);
		if (http_parse_request_line(conn, line, &conn->body_limit) == -1)
			return -1;
		conn->parse = HTTP_PARSE_HEADERS;
		return 0;
	}
	if (line[0] != '\0') {
		if (++conn->head_lines > HTTP_MAX_HEADERS) {
			conn->http->stats.refused_head_too_large++;
			http_conn_refuse(conn, 431, "Request Header Fields Too "
			    "Large", NULL, "too_large", "more than %d header "
			    "lines", HTTP_MAX_HEADERS);
			return -1;
		}
		return http_parse_header(conn, line);
	}
	conn->head_bytes = 0;
	conn->head_lines = 0;
	return http_parse_head_end(conn, conn->body_limit);
}

/*
 * Feeds bytes that arrived to the parser; returns -1 once the request
 * they belong to is refused, with *used the bytes taken up to then.
 */
static int
http_parse(struct http_conn *conn, const char *bytes, size_t length,
    size_t *used)
{
	size_t take;
	char c;

	*used = 0;
	while (length > 0) {
		switch (conn->parse) {
		case HTTP_PARSE_REFUSED:
			return -1;
		case HTTP_PARSE_BODY:
			take = length < conn->body_left ? length :
			    (size_t)conn->body_left;
			conn->body_left -= take;
			conn->request_bytes += take;
			bytes += take;
			length -= take;
			*used += take;
			if (conn->body_left == 0)
				http_parse_request_done(conn);
			break;
		case HTTP_PARSE_REQUEST_LINE:
		case HTTP_PARSE_HEADERS:
			if (conn->request_bytes == 0 &&
			    conn->requests_queued >= HTTP_PIPELINE_REQUESTS) {
				conn->http->stats.refused_pipelined++;
				http_conn_refuse(conn, 429, "Too Many Requests",
				    NULL, "too_many_requests", "more than %d "
				    "requests sent ahead of their replies",
				    HTTP_PIPELINE_REQUESTS);
				return -1;
			}
			/*
			 * The first byte of a request on a connection kept
			 * alive: its deadline runs from now, not from the
			 * reply before it (the time between was idle).
			 */
			if (conn->request_bytes == 0 &&
			    conn->state == HTTP_CONN_READING) {
				conn->started_ms = http_now_ms();
				http_conn_arm(conn, conn->started_ms +
				    HTTP_REQUEST_SECONDS * 1000);
			}
			c = *bytes++;
			length--;
			(*used)++;
			conn->request_bytes++;
			if (++conn->head_bytes > HTTP_MAX_HEAD) {
				conn->http->stats.refused_head_too_large++;
				if (conn->parse == HTTP_PARSE_REQUEST_LINE)
					http_conn_refuse(conn, 414,
					    "URI Too Long", NULL, "too_large",
					    "the request line is over %d bytes",
					    HTTP_MAX_HEAD);
				else
					http_conn_refuse(conn, 431,
					    "Request Header Fields Too Large",
					    NULL, "too_large", "the request line "
					    "and headers are over %d bytes",
					    HTTP_MAX_HEAD);
				return -1;
			}
			if (c == '\n') {
				if (http_parse_line(conn) == -1)
					return -1;
				break;
			}
			if (conn->line_length + 1 >= conn->line_size) {
				conn->line_size = conn->line_size == 0 ? 256 :
				    conn->line_size * 2;
				conn->line = realloc(conn->line,
				    conn->line_size);
				if (conn->line == NULL)
					fatal("http: realloc");
			}
			conn->line[conn->line_length++] = c;
			break;
		}
	}
	return 0;
}

/*
 * Drops what follows the first keep bytes of the input buffer: the
 * requests before a refused one stay for evhttp to answer.
 */
static void
http_conn_drop_after(struct http_conn *conn, struct evbuffer *buffer,
    size_t keep)
{
	struct evbuffer *kept;

	if (keep >= evbuffer_get_length(buffer))
		return;
	if (keep == 0) {
		evbuffer_drain(buffer, evbuffer_get_length(buffer));
		return;
	}
	if ((kept = evbuffer_new()) == NULL)
		fatalx("http: evbuffer_new failed");
	/* The bytes put back are not new: the parser must not see them. */
	evbuffer_cb_clear_flags(buffer, conn->input_cb, EVBUFFER_CB_ENABLED);
	evbuffer_remove_buffer(buffer, kept, keep);
	evbuffer_drain(buffer, evbuffer_get_length(buffer));
	evbuffer_prepend_buffer(buffer, kept);
	evbuffer_cb_set_flags(buffer, conn->input_cb, EVBUFFER_CB_ENABLED);
	evbuffer_free(kept);
}

/*
 * The input buffer's callback: runs when bytes arrive, before evhttp reads
 * them.  A refused request and what follows it are dropped here, so
 * evhttp never sees them.
 */
static void
http_conn_input_cb(struct evbuffer *buffer, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_conn *conn = arg;
	struct evbuffer_iovec vec[16];
	struct evbuffer_ptr position;
	size_t offset, end, used;
	int i, count;

	if (info->n_added == 0)
		return;
	end = evbuffer_get_length(buffer);
	offset = end - info->n_added;
	if (conn->parse == HTTP_PARSE_REFUSED) {
		http_conn_drop_after(conn, buffer, offset);
		return;
	}
	/*
	 * Requests wait behind one being answered: the one these bytes
	 * belong to is refused once they pass the bound (it began
	 * request_bytes before them; evhttp has read none of it).
	 */
	if (conn->requests_queued > 0 && end > HTTP_PIPELINE_BYTES) {
		conn->http->stats.refused_pipelined++;
		http_conn_refuse(conn, 429, "Too Many Requests", NULL,
		    "too_many_requests", "more than %d bytes sent ahead of "
		    "the replies", HTTP_PIPELINE_BYTES);
		http_conn_drop_after(conn, buffer, offset > conn->request_bytes ?
		    offset - conn->request_bytes : 0);
		return;
	}
	while (offset < end) {
		if (evbuffer_ptr_set(buffer, &position, offset,
		    EVBUFFER_PTR_SET) == -1)
			break;
		count = evbuffer_peek(buffer, (ev_ssize_t)(end - offset),
		    &position, vec, 16);
		if (count > 16)
			count = 16;
		for (i = 0; i < count && offset < end; i++) {
			size_t length = vec[i].iov_len;

			if (length > end - offset)
				length = end - offset;
			if (http_parse(conn, vec[i].iov_base, length,
			    &used) == -1) {
				/*
				 * The refused request began request_bytes
				 * before here, or before what evhttp kept.
				 */
				offset += used;
				http_conn_drop_after(conn, buffer,
				    offset > conn->request_bytes ?
				    offset - conn->request_bytes : 0);
				return;
			}
			offset += length;
		}
	}
}

/* The output buffer's callback: a handler has begun its reply. */
static void
http_conn_output_cb(struct evbuffer *buffer,
    const struct evbuffer_cb_info *info, void *arg)
{
	struct http_conn *conn = arg;

	struct timeval idle = { HTTP_IDLE_SECONDS, 0 };

	if (info->n_added == 0 || conn->state != HTTP_CONN_HANDLER)
		return;
	http_conn_set_state(conn, HTTP_CONN_REPLYING);
	if (conn->watch != NULL)
		event_del(conn->watch);
	/*
	 * evhttp reads while it writes a reply (to learn of a close), with
	 * its idle timeout: a client reading a reply that takes longer than
	 * that sends nothing meanwhile and would be cut off mid-body.  No
	 * read timeout until the reply is written (http_conn_replied());
	 * the write timeout (no progress) and the reply's deadline hold.
	 */
	if (!conn->extended) {
		conn->extended = true;
		bufferevent_set_timeouts(conn->bev, NULL, &idle);
	}
}

/*
 * The read watch while a handler holds the request (evhttp reads nothing
 * then): an end of stream or an error means the client went away.  Data
 * (a pipelined request) ends the watch; the deadline still holds.
 */
static void
http_conn_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *conn = arg;
	ssize_t n;
	char c;

	if (conn->state != HTTP_CONN_HANDLER)
		return;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)) {
		event_add(conn->watch, NULL);
		return;
	}
	conn->http->stats.closed_client_gone++;
	log_debug("http: connection %d: the client went away before the "
	    "reply", (int)fd);
	http_conn_close(conn, BEV_EVENT_EOF);
}

/*
 * The reply has been written: the connection waits for the next request,
 * or sends the refusal that waited for this reply and closes.
 */
static void
http_conn_replied(struct evhttp_request *request, void *arg)
{
	struct http_conn *conn = arg;

	conn->request = NULL;
	conn->routed = false;
	if (conn->extended) {
		conn->extended = conn->streamed = false;
		evhttp_connection_set_timeout(conn->evcon, HTTP_IDLE_SECONDS);
	}
	if (conn->requests_queued > 0)
		conn->requests_queued--;
	if (conn->large_bodies & 1)
		conn->http->large_bodies--;
	conn->large_bodies >>= 1;
	if (conn->watch != NULL)
		event_del(conn->watch);
	if (conn->state == HTTP_CONN_CLOSING)
		return;
	if (conn->refusal != NULL && conn->requests_queued == 0) {
		http_conn_send_buffer(conn, conn->refusal);
		conn->refusal = NULL;
		/*
		 * Reading again, to drop the rest of the refused request
		 * while lingering: closed with it unread, the socket would
		 * reset and the client lose the refusal.
		 */
		http_conn_set_state(conn, HTTP_CONN_READING);
		http_conn_schedule(conn, HTTP_ACTION_CLOSE);
		return;
	}
	http_conn_start_reading(conn);
}

/*
 * Closes a connection through evhttp (as if the socket had failed), which
 * frees it and detaches a request a handler still holds.  The record is
 * gone when this returns.
 */
static void
http_conn_close(struct http_conn *conn, short what)
{
	if (conn->state == HTTP_CONN_CLOSING)
		return;
	http_conn_set_state(conn, HTTP_CONN_CLOSING);
	bufferevent_trigger_event(conn->bev, what | BEV_EVENT_READING, 0);
}

/*
 * Learns evhttp's connection for a new bufferevent.  libevent 2.1 gives no
 * other way than the bufferevent's callback argument, which evhttp sets to
 * its connection; the check below stops the daemon if a libevent ever
 * does otherwise.  Returns -1 when evhttp already let the connection go.
 */
static int
http_conn_setup(struct http_conn *conn)
{
	struct http *http = conn->http;
	bufferevent_data_cb readcb;
	void *cbarg;

	bufferevent_getcb(conn->bev, &readcb, NULL, NULL, &cbarg);
	if (readcb == NULL || cbarg == NULL) {
		http_conn_release(conn);
		return -1;
	}
	conn->evcon = cbarg;
	if (evhttp_connection_get_bufferevent(conn->evcon) != conn->bev)
		fatalx("http: evhttp's connection is not where libevent 2.1 "
		    "keeps it");
	evhttp_connection_set_closecb(conn->evcon, http_conn_closed, conn);
	conn->fd = bufferevent_getfd(conn->bev);
	http_conn_index(http, conn);
	if (conn->refuse) {
		http->stats.closed_refused++;
		log_debug("http: connection %d refused: %zu connections open",
		    (int)conn->fd, (size_t)http->stats.connections_open);
		http_conn_send_raw(conn, 503, "Service Unavailable", NULL, "busy",
		    "too many connections");
		conn->actions |= HTTP_ACTION_CLOSE;
		return 0;
	}
	http_conn_start_reading(conn);
	return 0;
}

/*
 * Ends the writing side of a refused connection and drops what the client
 * still sends, for HTTP_LINGER_MS at most (the client's end of stream
 * closes it sooner).  Returns false when there is nothing to linger for.
 */
static bool
http_conn_linger(struct http_conn *conn)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);

	if (conn->parse != HTTP_PARSE_REFUSED || conn->lingering || fd < 0 ||
	    conn->state != HTTP_CONN_READING)
		return false;
	conn->lingering = true;
	shutdown(fd, SHUT_WR);
	http_conn_arm(conn, http_now_ms() + HTTP_LINGER_MS);
	return true;
}

/* The connection's timer: deferred actions, then the deadline. */
static void
http_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *conn = arg;
	struct http *http = conn->http;
	int64_t now;

	if (conn->actions & HTTP_ACTION_SETUP) {
		conn->actions &= ~HTTP_ACTION_SETUP;
		if (http_conn_setup(conn) == -1)
			return;
	}
	if (conn->actions & HTTP_ACTION_CLOSE) {
		conn->actions &= ~HTTP_ACTION_CLOSE;
		if (!http_conn_linger(conn))
			http_conn_close(conn, BEV_EVENT_ERROR);
		return;
	}
	now = http_now_ms();
	if (now < conn->deadline_ms) {
		http_conn_arm(conn, conn->deadline_ms);
		return;
	}
	if (conn->lingering) {
		http_conn_close(conn, BEV_EVENT_ERROR);
		return;
	}
	switch (conn->state) {
	case HTTP_CONN_READING:
		http->stats.closed_request_deadline++;
		log_debug("http: connection %d: no whole request within %d s",
		    (int)conn->fd, (int)((now - conn->started_ms) / 1000));
		/*
		 * An idle connection (no byte of a request) is closed with
		 * nothing said: a 408 there would be read as the answer to
		 * the request its client may be sending at that moment.
		 */
		if (conn->parse != HTTP_PARSE_REFUSED && conn->request_bytes > 0)
			http_conn_send_raw(conn, 408, "Request Timeout", NULL,
			    "timeout", "the request was not received in time");
		http_conn_close(conn, BEV_EVENT_TIMEOUT);
		return;
	case HTTP_CONN_HANDLER:
		http->stats.closed_reply_deadline++;
		log_warnx("http: a request had no reply within %u s; closing "
		    "its connection", http->reply_seconds);
		http_conn_send_raw(conn, 503, "Service Unavailable", NULL,
		    "timeout", "no reply in time");
		http_conn_close(conn, BEV_EVENT_TIMEOUT);
		return;
	case HTTP_CONN_REPLYING:
		http->stats.closed_reply_deadline++;
		log_debug("http: connection %d: the reply was not written "
		    "within %u s", (int)conn->fd, http->reply_seconds);
		http_conn_close(conn, BEV_EVENT_TIMEOUT);
		return;
	case HTTP_CONN_SETUP:
	case HTTP_CONN_CLOSING:
		return;
	}
}

/*
 * Makes room at the cap: closes the connection that has waited longest
 * for a request and has none of it (closed with nothing said), else the
 * one that has waited longest for the rest of its request (a client
 * sending its request at once is never the one; an upload under way goes
 * only after every idle connection), one with a whole request about to
 * be served only if there is no other.  Returns false when every
 * connection is past its request.
 */
static bool
http_evict(struct http *http)
{
	struct http_conn *conn;
	int pass;

	for (pass = 0; pass < 3; pass++) {
		TAILQ_FOREACH(conn, &http->conns, entry)
			if (conn->state == HTTP_CONN_READING &&
			    (pass == 2 || conn->requests_queued == 0) &&
			    (pass > 0 || conn->request_bytes == 0))
				break;
		if (conn == NULL)
			continue;
		http->stats.closed_evicted++;
		log_debug("http: connection %d evicted to make room",
		    (int)conn->fd);
		if (pass > 0)
			http_conn_send_raw(conn, 503, "Service Unavailable",
			    NULL, "busy", "too many connections");
		http_conn_close(conn, BEV_EVENT_ERROR);
		return true;
	}
	return false;
}

/*
 * evhttp's bufferevent callback: runs for each accepted connection before
 * evhttp reads from it.  Counts and caps; the rest of the setup runs
 * right after, once evhttp has made its connection.
 */
static struct bufferevent *
http_conn_new(struct event_base *base, void *arg)
{
	struct http *http = arg;
	struct http_conn *conn;

	if (http->accept_failing) {
		log_info("http: accepting again after %" PRIu64 " failed "
		    "accepts", http->accept_errors_since_ok);
		http->accept_failing = false;
		http->accept_errors_since_ok = 0;
		http->accept_errors_unlogged = 0;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL)
		fatal("http: calloc");
	conn->http = http;
	conn->fd = -1;
	conn->content_length = -1;
	conn->state = HTTP_CONN_SETUP;
	/* evhttp closes the socket itself, after freeing the bufferevent. */
	if ((conn->bev = bufferevent_socket_new(base, -1, 0)) == NULL ||
	    (conn->timer = evtimer_new(base, http_conn_timer_cb, conn)) ==
	    NULL)
		fatalx("http: cannot make a connection's events");
	bufferevent_incref(conn->bev);
	conn->input_cb = evbuffer_add_cb(bufferevent_get_input(conn->bev),
	    http_conn_input_cb, conn);
	conn->output_cb = evbuffer_add_cb(bufferevent_get_output(conn->bev),
	    http_conn_output_cb, conn);
	if (conn->input_cb == NULL || conn->output_cb == NULL)
		fatalx("http: evbuffer_add_cb failed");
	TAILQ_INSERT_TAIL(&http->conns, conn, entry);
	http->stats.connections_open++;
	http->stats.connections_accepted++;
	if (http->stats.connections_open > http->stats.connections_max &&
	    !http_evict(http))
		conn->refuse = true;
	/*
	 * libevent accepts until the backlog is empty; a storm would then
	 * evict connections that have not had a turn to read their request
	 * (a health check among them).  At most accept_batch a round: the
	 * listener rests until the loop has run the other events.
	 */
	if (http->accepted_in_round++ == 0)
		event_active(http->accept_round, EV_TIMEOUT, 1);
	if (http->accepted_in_round >= http->accept_batch)
		evconnlistener_disable(http->listener);
	/* Active events run before the new socket can be read. */
	http_conn_schedule(conn, HTTP_ACTION_SETUP);
	return conn->bev;
}

/* Re-enables the listener after a pause. */
static void
http_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *http = arg;

	http->paused = false;
	evconnlistener_enable(http->listener);
}

/* Ends a round of accepts: the listener may take a batch more. */
static void
http_accept_round_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *http = arg;

	http->accepted_in_round = 0;
	if (!http->paused)
		evconnlistener_enable(http->listener);
}

/*
 * The listener's error callback (EMFILE, ENFILE, ENOBUFS, ...): pauses the
 * listener, for longer while it lasts, so that a full descriptor table
 * does not spin the loop.  Logged once, then summed up every
 * HTTP_ACCEPT_LOG_SECONDS.
 */
static void
http_accept_error(struct evconnlistener *listener, void *arg)
{
	int error = EVUTIL_SOCKET_ERROR();
	int64_t now = http_now_ms();
	struct timeval tv;
	struct http *http;

	LIST_FOREACH(http, &http_servers, servers)
		if ((void *)http->server == arg)
			break;
	if (http == NULL) {
		evconnlistener_disable(listener);
		log_warnx("http: accept: %s, on a listener of no server",
		    evutil_socket_error_to_string(error));
		return;
	}
	http->stats.accept_errors++;
	http->stats.listener_pauses++;
	http->accept_errors_since_ok++;
	http->paused = true;
	evconnlistener_disable(listener);
	if (!http->accept_failing) {
		http->accept_failing = true;
		http->pause_ms = HTTP_PAUSE_MIN_MS;
		http->accept_logged_ms = now;
		http->accept_errors_unlogged = 0;
		log_warnx("http: accept: %s; the listener pauses (%d ms, up to "
		    "%d ms) until it passes", evutil_socket_error_to_string(error),
		    HTTP_PAUSE_MIN_MS, HTTP_PAUSE_MAX_MS);
	} else {
		http->pause_ms *= 2;
		if (http->pause_ms > HTTP_PAUSE_MAX_MS)
			http->pause_ms = HTTP_PAUSE_MAX_MS;
		http->accept_errors_unlogged++;
		if (now - http->accept_logged_ms >=
		    HTTP_ACCEPT_LOG_SECONDS * 1000) {
			log_warnx("http: accept still failing: %" PRIu64
			    " more errors in %d s (%s)",
			    http->accept_errors_unlogged,
			    (int)((now - http->accept_logged_ms) / 1000),
			    evutil_socket_error_to_string(error));
			http->accept_logged_ms = now;
			http->accept_errors_unlogged = 0;
		}
	}
	tv.tv_sec = http->pause_ms / 1000;
	tv.tv_usec = (http->pause_ms % 1000) * 1000;
	evtimer_add(http->resume, &tv);
}

/*
 * Notes that a handler now holds a request: the reply deadline, the
 * on-complete callback, and the watch for a client that goes away.
 */
static void
http_dispatched(struct http *http, struct evhttp_request *request,
    bool routed)
{
	struct http_conn *conn = http_conn_of(http, request);

	if (conn == NULL || conn->state == HTTP_CONN_CLOSING)
		return;
	http_conn_set_state(conn, HTTP_CONN_HANDLER);
	conn->request = request;
	conn->routed = routed;
	evhttp_request_set_on_complete_cb(request, http_conn_replied, conn);
	http_conn_arm(conn, http_now_ms() + (int64_t)http->reply_seconds * 1000);
	if (conn->watch == NULL &&
	    (conn->watch = event_new(http->base, conn->fd, EV_READ,
	    http_conn_watch_cb, conn)) == NULL)
		fatalx("http: event_new failed");
	event_add(conn->watch, NULL);
}

void
http_send(struct evhttp_request *request, int code, const char *reason,
    struct evbuffer *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(request);
	char length[32];

	if (evhttp_request_get_command(request) != EVHTTP_REQ_HEAD) {
		evhttp_send_reply(request, code, reason, body);
		return;
	}
	/* HEAD: the length GET would send, without the body. */
	if (evhttp_find_header(headers, "Content-Length") == NULL) {
		snprintf(length, sizeof(length), "%zu", body != NULL ?
		    evbuffer_get_length(body) : (size_t)0);
		evhttp_add_header(headers, "Content-Length", length);
	}
	evhttp_send_reply(request, code, reason, NULL);
}

/* The connection of a request, on whichever server has it; or NULL. */
static struct http_conn *
http_conn_find(struct evhttp_request *request)
{
	struct http_conn *conn;
	struct http *http;

	LIST_FOREACH(http, &http_servers, servers)
		if ((conn = http_conn_of(http, request)) != NULL)
			return conn;
	return NULL;
}

/*
 * A streamed reply made progress: its deadline starts again.  evhttp reads
 * the connection while it writes a reply (to learn of a close), with its
 * idle timeout: the time between two pieces of a streamed reply may be
 * longer, so the connection gets the reply's instead until the reply is
 * done (http_conn_replied()).
 */
void
http_extend(struct evhttp_request *request)
{
	struct http_conn *conn = http_conn_find(request);

	if (conn == NULL || conn->request != request ||
	    (conn->state != HTTP_CONN_HANDLER &&
	    conn->state != HTTP_CONN_REPLYING))
		return;
	http_conn_arm(conn, http_now_ms() +
	    (int64_t)conn->http->reply_seconds * 1000);
	if (!conn->streamed) {
		conn->extended = conn->streamed = true;
		/* Past the deadline above, which is the one that closes. */
		evhttp_connection_set_timeout(conn->evcon,
		    (int)conn->http->reply_seconds + HTTP_IDLE_SECONDS);
	}
}

/* Cuts a streamed reply: its connection closes without the last chunk. */
bool
http_abort(struct evhttp_request *request)
{
	struct http_conn *conn = http_conn_find(request);

	if (conn == NULL || conn->request != request ||
	    conn->state == HTTP_CONN_CLOSING)
		return false;
	log_debug("http: connection %d: the reply is cut", (int)conn->fd);
	http_conn_close(conn, BEV_EVENT_ERROR);
	return true;
}

/* Sends a plain-text response. */
static void
http_reply(struct evhttp_request *request, int code, const char *reason,
    const char *content_type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(request),
	    "Content-Type", content_type);
	evhttp_add_header(evhttp_request_get_output_headers(request),
	    "Cache-Control", "no-store");
	http_send(request, code, reason, body);
}

/* Refuses anything but GET and HEAD, and closes; false when it did. */
static bool
http_method_allowed(struct evhttp_request *request)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(request);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(request);

	struct evbuffer *body;

	if (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD)
		return true;
	evhttp_add_header(headers, "Allow", "GET, HEAD");
	if ((body = evbuffer_new()) == NULL)
		fatalx("http: evbuffer_new failed");
	evbuffer_add_printf(body, "{\"error\":\"method_not_allowed\","
	    "\"detail\":\"this path answers GET and HEAD\"}\n");
	http_reply(request, 405, "Method Not Allowed", "application/json",
	    body);
	evbuffer_free(body);
	return false;
}

/* /healthz: the loop is alive (it answered). */
static void
http_healthz(struct evhttp_request *request, void *arg)
{
	struct evbuffer *body;

	http_dispatched(arg, request, false);
	if (!http_method_allowed(request))
		return;
	body = evbuffer_new();
	evbuffer_add_printf(body, "ok\n");
	http_reply(request, 200, "OK", "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

/* /readyz: ready to do its work, or the reason it is not. */
static void
http_readyz(struct evhttp_request *request, void *arg)
{
	struct http *http = arg;
	struct evbuffer *body;
	char reason[512] = "";
	bool ready;

	http_dispatched(http, request, false);
	if (!http_method_allowed(request))
		return;
	ready = http->handlers.ready(http->handlers.arg, reason, sizeof(reason));
	body = evbuffer_new();
	evbuffer_add_printf(body, "%s\n", ready ? "ready" : reason);
	http_reply(request, ready ? 200 : 503,
	    ready ? "OK" : "Service Unavailable", "text/plain; charset=utf-8",
	    body);
	evbuffer_free(body);
}

/* /metrics: the Prometheus text format. */
static void
http_metrics(struct evhttp_request *request, void *arg)
{
	struct http *http = arg;
	struct evbuffer *body;

	http_dispatched(http, request, false);
	if (!http_method_allowed(request))
		return;
	body = evbuffer_new();
	http->handlers.metrics(http->handlers.arg, body);
	http_reply(request, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    body);
	evbuffer_free(body);
}

/* Every other path: the API's route, or 404 when there is none. */
static void
http_route(struct evhttp_request *request, void *arg)
{
	struct http *http = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(request);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	char *decoded;

	http_dispatched(http, request, http->handlers.route != NULL);
	if (http->handlers.route == NULL) {
		evhttp_send_error(request, 404, "Not Found");
		return;
	}
	decoded = evhttp_uridecode(path != NULL ? path : "", 0, NULL);
	if (decoded == NULL) {
		evhttp_send_error(request, 400, "Bad Request");
		return;
	}
	http->handlers.route(request, decoded, http->handlers.arg);
	free(decoded);
}

/* Splits "host:port" or "[v6]:port" into a socket address (port 0 is fine). */
static int
http_parse_listen(const char *address_text, struct sockaddr_storage *address,
    int *length, char *err, size_t errlen)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)address;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
	char host[INET6_ADDRSTRLEN + 2];
	const char *text = address_text, *colon = strrchr(address_text, ':');
	char *end;
	size_t hostlen;
	long port;

	memset(address, 0, sizeof(*address));
	if (colon == NULL || colon == address_text)
		goto bad;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		goto bad;
	hostlen = (size_t)(colon - address_text);
	if (text[0] == '[' && colon[-1] == ']') {
		text++;
		hostlen -= 2;
	}
	if (hostlen >= sizeof(host))
		goto bad;
	memcpy(host, text, hostlen);
	host[hostlen] = '\0';
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*length = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*length = sizeof(*v6);
		return 0;
	}
bad:
	snprintf(err, errlen, "http.listen: \"%s\" is not address:port "
	    "(use [address]:port for IPv6)", address_text);
	return -1;
}

/*
 * Raises the soft RLIMIT_NOFILE toward the hard limit (up to
 * HTTP_NOFILE_WANTED: nothing here uses select()) and returns the soft
 * limit in force.
 */
static uint64_t
http_raise_nofile(void)
{
	struct rlimit limit;
	rlim_t before, want;

	if (getrlimit(RLIMIT_NOFILE, &limit) == -1) {
		log_warn("http: getrlimit(RLIMIT_NOFILE)");
		return 1024;
	}
	want = limit.rlim_max;
	if (want == RLIM_INFINITY || want > HTTP_NOFILE_WANTED)
		want = HTTP_NOFILE_WANTED;
	before = limit.rlim_cur;
	if (before != RLIM_INFINITY && before < want) {
		limit.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &limit) == -1) {
			log_warn("http: cannot raise RLIMIT_NOFILE from %llu "
			    "to %llu", (unsigned long long)before,
			    (unsigned long long)want);
			return before;
		}
		log_info("http: RLIMIT_NOFILE raised from %llu to %llu (hard "
		    "limit %llu)", (unsigned long long)before,
		    (unsigned long long)want,
		    (unsigned long long)limit.rlim_max);
		return want;
	}
	if (before == RLIM_INFINITY || before > HTTP_NOFILE_WANTED)
		return HTTP_NOFILE_WANTED;
	return before;
}

/* The cap on connections for a descriptor limit. */
static uint64_t
http_connection_cap(uint64_t nofile)
{
	uint64_t cap;

	if (nofile < HTTP_FD_RESERVE + 2 * HTTP_MIN_CONNECTIONS) {
		log_warnx("http: RLIMIT_NOFILE is %" PRIu64 ": only %d HTTP "
		    "connections at a time (raise LimitNOFILE)", nofile,
		    HTTP_MIN_CONNECTIONS);
		return HTTP_MIN_CONNECTIONS;
	}
	cap = (nofile - HTTP_FD_RESERVE) / 2;
	return cap > HTTP_MAX_CONNECTIONS ? HTTP_MAX_CONNECTIONS : cap;
}

/* Listens and serves. */
struct http *
http_new(struct event_base *base, const char *address_text,
    const struct http_handlers *handlers, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage address;
	char text[INET6_ADDRSTRLEN];
	struct http *http;
	uint64_t nofile;
	socklen_t size;
	int length, port;
	evutil_socket_t fd;

	if (http_parse_listen(address_text, &address, &length, err, errlen) == -1)
		return NULL;
	if ((http = calloc(1, sizeof(*http))) == NULL)
		fatal("http: calloc");
	http->base = base;
	http->handlers = *handlers;
	http->reply_seconds = HTTP_REPLY_SECONDS;
	TAILQ_INIT(&http->conns);
	LIST_INSERT_HEAD(&http_servers, http, servers);
	nofile = http_raise_nofile();
	http->stats.connections_max = http_connection_cap(nofile);
	http->accept_batch = (unsigned)(http->stats.connections_max / 2);
	log_info("http: at most %" PRIu64 " connections (RLIMIT_NOFILE %"
	    PRIu64 ", %d descriptors kept for PostgreSQL, Kafka and the rest)",
	    http->stats.connections_max, nofile, HTTP_FD_RESERVE);
	if ((http->server = evhttp_new(base)) == NULL ||
	    (http->resume = evtimer_new(base, http_resume_cb, http)) == NULL ||
	    (http->accept_round = event_new(base, -1, 0, http_accept_round_cb,
	    http)) == NULL)
		fatalx("http: evhttp_new failed");
	/* The parser here refuses first; these are evhttp's own backstops. */
	evhttp_set_max_headers_size(http->server, HTTP_MAX_HEAD);
	evhttp_set_max_body_size(http->server, HTTP_IMPORT_BODY_LIMIT);
	evhttp_set_timeout(http->server, HTTP_IDLE_SECONDS);
	evhttp_set_allowed_methods(http->server, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(http->server, http_conn_new, http);
	evhttp_set_cb(http->server, "/healthz", http_healthz, http);
	evhttp_set_cb(http->server, "/readyz", http_readyz, http);
	evhttp_set_cb(http->server, "/metrics", http_metrics, http);
	evhttp_set_gencb(http->server, http_route, http);

	fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1 || evutil_make_listen_socket_reuseable(fd) == -1 ||
	    bind(fd, (struct sockaddr *)&address, (socklen_t)length) == -1 ||
	    listen(fd, HTTP_BACKLOG) == -1) {
		snprintf(err, errlen, "http.listen %s: %s", address_text,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		if (fd != -1)
			evutil_closesocket(fd);
		http_free(http);
		return NULL;
	}
	if ((bound = evhttp_accept_socket_with_handle(http->server, fd)) ==
	    NULL) {
		snprintf(err, errlen, "http.listen %s: cannot accept", address_text);
		evutil_closesocket(fd);
		http_free(http);
		return NULL;
	}
	http->listener = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(http->listener, http_accept_error);
	size = sizeof(address);
	getsockname(fd, (struct sockaddr *)&address, &size);
	if (address.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address)->sin6_addr,
		    text, sizeof(text));
		port = ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
		log_info("http: listening on [%s]:%d", text, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&address)->sin_addr,
		    text, sizeof(text));
		port = ntohs(((struct sockaddr_in *)&address)->sin_port);
		log_info("http: listening on %s:%d", text, port);
	}
	return http;
}

/* Sets how long a handler may hold a request, reply included. */
void
http_set_reply_seconds(struct http *http, unsigned seconds)
{
	http->reply_seconds = seconds > 0 ? seconds : 1;
}

/* Fills stats with the server's counters. */
void
http_stats(const struct http *http, struct http_stats *stats)
{
	*stats = http->stats;
	stats->large_bodies = http->large_bodies;
	stats->large_bodies_max = HTTP_LARGE_BODIES_MAX;
}

/* Stops listening, closes every connection and frees. */
size_t
http_replying(const struct http *http)
{
	const struct http_conn *conn;
	size_t n = 0;

	TAILQ_FOREACH(conn, &http->conns, entry)
		if (conn->state == HTTP_CONN_REPLYING)
			n++;
	return n;
}

void
http_free(struct http *http)
{
	struct http_conn *conn, *next;

	if (http == NULL)
		return;
	LIST_REMOVE(http, servers);
	/*
	 * Requests a handler holds are detached first (evhttp_free would
	 * free them under the handler), which calls gone.
	 */
	for (conn = TAILQ_FIRST(&http->conns); conn != NULL; conn = next) {
		next = TAILQ_NEXT(conn, entry);
		if (conn->state == HTTP_CONN_HANDLER ||
		    conn->state == HTTP_CONN_REPLYING)
			http_conn_close(conn, BEV_EVENT_ERROR);
	}
	if (http->server != NULL)
		evhttp_free(http->server);
	/* Connections evhttp freed before their setup ran. */
	while ((conn = TAILQ_FIRST(&http->conns)) != NULL)
		http_conn_release(conn);
	if (http->resume != NULL)
		event_free(http->resume);
	if (http->accept_round != NULL)
		event_free(http->accept_round);
	free(http->by_fd);
	free(http);
}
