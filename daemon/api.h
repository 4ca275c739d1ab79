/* The operator API (/api/v1, docs/API.md): reads on connections of its own, writes as events. */
#ifndef IPAM_DAEMON_API_H
#define IPAM_DAEMON_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "consumers/decode.h"
#include "daemon/producer.h"
#include "daemon/readpool.h"

/* What the API needs; strings are copied by api_new(). */
struct api_settings {
	const char	*read_token;	/* NULL: none configured */
	const char	*write_token;	/* NULL: none configured */
	const char	*group_id;	/* whose stored offsets say "applied" */
	const char	*marks_topic;	/* NULL: no writes of marks */
	const char	*servers_topic;	/* NULL: no imports of servers */
	const char	*subnets_topic;	/* NULL: no imports of subnets */
	long long	 write_wait_ms;
	long long	 rate_limit;	/* requests/s per client; 0: none */
	const struct decode_limits *limits;
	/*
	 * Whether writes must wait now (a rebuild building the state
	 * again), and why; NULL: never.
	 */
	bool		(*writes_held)(void *arg, char *why, size_t whylen);
	void		*writes_held_arg;
};

/* Counters for /metrics. */
struct api_stats {
	uint64_t	requests[6];	/* by status class: [2] is 2xx ... */
	uint64_t	rate_limited;
	uint64_t	events_published;
	uint64_t	writes_waiting;	/* gauge */
	uint64_t	reads_waiting;	/* gauge: queries waiting for a connection */
};

struct api;

/*
 * Makes the API over a read pool and a producer (both stay the caller's,
 * and must outlive the API; producer may be NULL: writes answer 503).
 */
struct api	*api_new(struct event_base *base, struct readpool *pool,
		    struct producer *producer,
		    const struct api_settings *settings);

/* Serves one request (struct http_handlers' route). */
void		 api_route(struct evhttp_request *request, const char *path,
		    void *arg);

/* A request's client went away (struct http_handlers' gone). */
void		 api_gone(struct evhttp_request *request, void *arg);

/*
 * Tells whether a request with this Authorization header (NULL: none)
 * may send a body over 64 KiB: only a write may (an import), so only
 * with the write token.
 */
bool		 api_large_body(const struct api *api, const char *authorization);

/* Serves once true (the schema's API functions exist after migrating). */
void		 api_set_serving(struct api *api, bool serving);
/*
 * The daemon stops: every write waiting is answered now (202 with where
 * to follow it once published, else 503), and new writes get 503.
 */
void		 api_stop(struct api *api);

/*
 * The drain is over and the loop is about to end: every request still
 * held (a read waiting for PostgreSQL) is answered 503 now, while its
 * connection can still carry the reply, and new requests get 503.
 */
void		 api_close(struct api *api);

/* Changes what a reload may change. */
void		 api_set_limits(struct api *api, long long write_wait_ms,
		    long long rate_limit);

/* Takes the tokens read again (a reload; NULL: none). */
void		 api_set_tokens(struct api *api, const char *read_token,
		    const char *write_token);

/* Fills stats. */
void		 api_stats(const struct api *api, struct api_stats *stats);

/*
 * Frees; requests still held are answered 503 first (call after
 * http_free(), which has told api_gone about each).
 */
void		 api_free(struct api *api);

#endif
