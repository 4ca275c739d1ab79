/* HTTP on the event loop: /healthz, /readyz and /metrics, bounded and local. */
#ifndef IPAM_DAEMON_HTTP_H
#define IPAM_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* What the endpoints ask the daemon. */
struct http_handlers {
	/* Returns true when ready, else false with a reason in buf. */
	bool	(*ready)(void *arg, char *buf, size_t buflen);
	/* Appends the metrics in the Prometheus text format. */
	void	(*metrics)(void *arg, struct evbuffer *out);
	void	*arg;
};

struct http;

/*
 * Listens on "address:port" ("[v6]:port" for IPv6; port 0 picks a free
 * one, named in the log).  Returns NULL with err filled.
 */
struct http	*http_new(struct event_base *base, const char *address_text,
		    const struct http_handlers *handlers, char *err,
		    size_t errlen);

/* Stops listening and frees. */
void		 http_free(struct http *http);

#endif
