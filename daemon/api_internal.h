/* What the operator API's files share: the API, one call, the helpers. */
#ifndef IPAM_DAEMON_API_INTERNAL_H
#define IPAM_DAEMON_API_INTERNAL_H

#include <sys/queue.h>

#include <stdbool.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "daemon/api.h"

enum api_scope {
	API_SCOPE_NONE,
	API_SCOPE_READ,
	API_SCOPE_WRITE,
};

struct api_write;
struct ratelimit;
struct api_export;

/* One request, from its arrival until it is answered and nothing of it runs. */
struct api_call {
	TAILQ_ENTRY(api_call)	 entry;
	struct api		*api;
	struct evhttp_request	*req;		/* NULL once answered */
	enum api_scope		 scope;
	char			 requester[80];	/* "write:alice" */
	bool			 gone;		/* the client left */
	int			 pending;	/* queries and deliveries out */
	const char		*content_type;	/* of a read's body */
	const char		*not_found;	/* a read's 404 detail */
	struct api_write	*write;		/* a write's state */
	struct api_export	*export;	/* a whole CSV's state */
};

struct api {
	struct event_base	*base;
	struct readpool		*pool;
	struct producer		*producer;
	char			*read_token;
	char			*write_token;
	char			*group_id;
	char			*marks_topic;
	char			*servers_topic;
	char			*subnets_topic;
	struct decode_limits	 limits;
	bool			 serving;	/* migrations are done */
	bool			 stopping;	/* no new writes */
	bool			 closed;	/* no new requests */
	bool			(*writes_held)(void *, char *, size_t);
	void			*writes_held_arg;
	long long		 write_wait_ms;
	long long		 rate_limit;
	struct ratelimit	*limiter;
	struct api_stats	 stats;
	TAILQ_HEAD(, api_call)	 calls;
	/* Addresses an allocation is trying now ("vrf/ip"), never offered twice. */
	json_t			*allocating;
	unsigned		 exports;	/* whole CSV exports under way */
	unsigned		 imports;	/* imports under way (answered or
						   not), dry runs too */
};

/* Adds the headers of every answer (a streamed one too) and counts it. */
void	api_reply_head(struct api_call *call, int code,
	    const char *content_type);

/* Sends the reply (takes body; NULL: empty) and releases what it can. */
void	api_reply(struct api_call *call, int code, const char *content_type,
	    struct evbuffer *body);

/* Replies with a JSON document (takes json). */
void	api_reply_json(struct api_call *call, int code, json_t *json);

/* Replies {"error", "detail"[, "field"]}. */
void	api_error(struct api_call *call, int code, const char *error,
	    const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/* Replies 503 "unavailable" with Retry-After: seconds. */
void	api_unavailable(struct api_call *call, const char *seconds,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Answers a failed query (400, 503, 504 or 500). */
void	api_query_failed(struct api_call *call, const PGresult *result,
	    const char *error);

/* Runs a read whose one value is the body. */
void	api_read(struct api_call *call, const char *sql, int nparams,
	    const char *const *params);

/* Refuses any query parameter; returns -1 after answering. */
int	api_query_params_none(struct api_call *call);

/*
 * Reads "{vrf}/{ip}" path segments; returns -1 after answering 400.  A
 * write's vrf is held to the decoder's rules; a read's only to fit.
 */
int	api_path_address(struct api_call *call, const char *vrf_segment,
	    const char *ip_segment, char *vrf, size_t vrflen, char *ip,
	    size_t iplen, bool write);

/* Frees a call once it is answered and nothing of it is in flight. */
void	api_call_release(struct api_call *call);

/* The writes (api_write.c). */
void	api_write_mark(struct api_call *call, const char *vrf_segment,
	    const char *ip_segment, bool clear);
void	api_write_allocate(struct api_call *call, const char *subnet_id);
void	api_write_import(struct api_call *call);
void	api_write_gone(struct api_call *call);
void	api_write_stop(struct api_call *call);
void	api_write_halt(struct api_call *call);
void	api_write_free(struct api_write *write);

/* GET /addresses as a whole CSV, streamed (api_export.c); takes p. */
void	api_export_start(struct api_call *call, json_t *p);
void	api_export_gone(struct api_call *call);
bool	api_export_halt(struct api_call *call);
void	api_export_free(struct api_export *export);

#endif
