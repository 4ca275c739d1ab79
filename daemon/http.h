/*
 * HTTP on the event loop: /healthz, /readyz, /metrics and a route hook for
 * the operator API, with bounds on connections, time and size.
 */
#ifndef IPAM_DAEMON_HTTP_H
#define IPAM_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

/*
 * What the endpoints ask the daemon.
 *
 * route is called for every request whose path is not /healthz, /readyz
 * or /metrics, with one of the methods GET, HEAD, POST, PUT, DELETE,
 * OPTIONS or PATCH (anything else is refused before it gets here), its
 * whole body read and within its route's limit (64 KiB; 32 MiB for
 * /api/v1/import), and path the percent-decoded URI path.  When route is
 * NULL such requests get a 404.
 *
 * large_body (may be NULL: any client may) tells, from a request's
 * Authorization header (NULL when it has none), whether its client may
 * send a body over 64 KiB; one that may not is refused 401 before a byte
 * of it is read, so that no one without the token makes the server hold
 * 32 MiB a connection.
 *
 * A route handler replies with evhttp (evhttp_send_reply, evhttp_send_error
 * or the chunked evhttp_send_reply_start/_chunk/_end), at once or later
 * from another callback on the loop; each request gets exactly one reply.
 * The connection stays open while the handler holds the request, for at
 * most HTTP_REPLY_SECONDS in all, waiting and writing (see
 * http_set_reply_seconds).  Handlers must not call
 * evhttp_connection_set_closecb or evhttp_request_set_on_complete_cb: the
 * server uses both to track its connections.
 *
 * gone (may be NULL) is how a handler learns that its client went away.
 * It is called, once, when the connection of a request that route was
 * given is closed while the handler still owes (part of) the reply: the
 * client closed its end, even half, or reset it (watched while the
 * handler works), the reply deadline passed (the client got a JSON 503 if
 * nothing of the reply had been written), writing a streamed reply
 * failed, or http_free ran.  evhttp has detached the request from its
 * connection by then (evhttp_request_get_connection returns NULL) and the
 * request stays valid: stop the work and answer it as usual, in gone or
 * later; with no connection left, evhttp_send_reply, evhttp_send_error
 * and evhttp_send_reply_end only free it.  A handler that replied in one
 * call is never told: its request is freed with the connection.
 */
struct http_handlers {
	/* Returns true when ready, else false with a reason in buf. */
	bool	(*ready)(void *arg, char *buf, size_t buflen);
	/* Appends the metrics in the Prometheus text format. */
	void	(*metrics)(void *arg, struct evbuffer *out);
	/* Serves every other path (see above); NULL answers 404. */
	void	(*route)(struct evhttp_request *request, const char *path,
		    void *arg);
	/* Told that a request given to route lost its client (see above). */
	void	(*gone)(struct evhttp_request *request, void *arg);
	/* Whether a body over 64 KiB may come with this Authorization. */
	bool	(*large_body)(void *arg, const char *authorization);
	void	*arg;
};

/* The longest a route handler may hold a request, reply included. */
#define HTTP_REPLY_SECONDS	120

/* Counters and gauges of the server's limits, for /metrics. */
struct http_stats {
	/* Gauges: connections open now, and the cap on them. */
	uint64_t	connections_open;
	/* Bodies over 64 KiB held now (from their head to their reply). */
	uint64_t	large_bodies;
	uint64_t	large_bodies_max;
	uint64_t	connections_max;
	/* Connections taken from the listener. */
	uint64_t	connections_accepted;
	/* Connections closed by a limit, by the limit that closed them. */
	uint64_t	closed_evicted;		/* to make room at the cap */
	uint64_t	closed_refused;		/* at the cap, nothing to evict */
	uint64_t	closed_request_deadline; /* request not received in time */
	uint64_t	closed_reply_deadline;	/* handler or reply too slow */
	uint64_t	closed_client_gone;	/* client left before the reply */
	/* Requests refused before their body was read, by reason. */
	uint64_t	refused_method;		/* CONNECT, TRACE, unknown */
	uint64_t	refused_too_large;	/* 413: body over its route's limit */
	uint64_t	refused_head_too_large;	/* 414/431: request line, headers */
	uint64_t	refused_bad_request;	/* 400, 411, 505 */
	uint64_t	refused_unauthorized;	/* 401: a large body, no token */
	uint64_t	refused_pipelined;	/* 429: too much sent ahead */
	uint64_t	refused_busy;		/* 503: large bodies at the cap */
	/* Accept errors (EMFILE, ENFILE, ...) and the listener's pauses. */
	uint64_t	accept_errors;
	uint64_t	listener_pauses;
};

struct http;

/*
 * Listens on "address:port" ("[v6]:port" for IPv6; port 0 picks a free
 * one, named in the log).  Raises the soft RLIMIT_NOFILE toward the hard
 * limit first and caps connections well below it (both logged).  Returns
 * NULL with err filled.
 */
struct http	*http_new(struct event_base *base, const char *address_text,
		    const struct http_handlers *handlers, char *err,
		    size_t errlen);

/*
 * Sets how long a handler may hold a request, reply included (from the
 * next request on; HTTP_REPLY_SECONDS until then).  Keep it above the
 * longest a handler waits before it answers.
 */
void		 http_set_reply_seconds(struct http *http, unsigned seconds);

/* Fills stats with the server's counters. */
void		 http_stats(const struct http *http, struct http_stats *stats);

/*
 * Sends a whole reply: evhttp_send_reply, with no body for HEAD (evhttp
 * 2.1 writes the body it is given whatever the method, and a kept-alive
 * client would read it as the start of the next reply).
 */
void		 http_send(struct evhttp_request *request, int code,
		    const char *reason, struct evbuffer *body);

/*
 * A streamed reply (evhttp_send_reply_start/_chunk) made progress: the
 * time it may still take starts again, a whole reply_seconds from now, so
 * that a long reply that keeps writing is not cut.
 */
void		 http_extend(struct evhttp_request *request);

/*
 * Cuts a streamed reply under way: its connection is closed without the
 * last chunk, so that the client sees it incomplete, never as a whole.
 * gone is called for the request (maybe before this returns), as for a
 * client that went away.  False when the request has no connection left
 * (gone was called already, or comes anyway).
 */
bool		 http_abort(struct evhttp_request *request);

/* How many replies are being written now. */
size_t		 http_replying(const struct http *http);

/*
 * Stops listening, closes every connection (calling gone for requests a
 * handler still holds) and frees.  Free what gone uses after this.
 */
void		 http_free(struct http *http);

#endif
