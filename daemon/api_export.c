/*
 * GET /addresses as CSV, whole: keyset pages read one after another and
 * streamed as one chunked reply, so that neither PostgreSQL nor the daemon
 * ever holds the whole listing.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "common/log.h"
#include "daemon/api_internal.h"
#include "daemon/http.h"
#include "daemon/readpool.h"

/* Rows a page: the largest limit the API takes. */
#define API_EXPORT_PAGE		1000

/* How long a page waits before it is asked again when the reads are full. */
#define API_EXPORT_RETRY_MS	200

/*
 * Whole exports under way at once.  An export is paced by its client, and
 * a connection writing a reply is never closed to make room for another:
 * without a bound, slow readers could hold every connection the daemon
 * takes, and the probes (/healthz, /readyz) find none.
 */
#define API_EXPORTS_MAX		8

static const char api_export_sql[] = "SELECT body, next_cursor FROM "
    "ipamd.api_addresses_csv_page($1::jsonb)";

/* One export under way. */
struct api_export {
	struct api_call	*call;
	json_t		*params;	/* the filters, the limit, the cursor */
	struct event	*retry;
	bool		 started;	/* the reply's head is written */
	bool		 cut;		/* being cut: gone ends it */
	uint64_t	 pages_sent;	/* pages sent */
};

static void	api_export_next(struct api_export *export);
static void	api_export_wait(struct api_export *export);

/* Ends the request and lets the call go. */
static void
api_export_finish(struct api_call *call)
{
	struct evhttp_request *request = call->req;

	call->req = NULL;
	evhttp_send_reply_end(request);
	api_call_release(call);
}

/*
 * Cuts an export whose reply has begun: the client sees it incomplete.
 * Its gone ends the request, maybe before this returns: the call may be
 * freed then, and is not to be touched after.
 */
static void
api_export_cut(struct api_call *call)
{
	struct api_export *export = call->export;

	if (export->cut)
		return;
	export->cut = true;
	if (export->retry != NULL)
		event_del(export->retry);
	if (http_abort(call->req))
		return;
	/*
	 * Never ended while its connection is there: the last chunk would
	 * make it look whole.  The reply's deadline closes it, and gone ends
	 * it then.
	 */
	if (evhttp_request_get_connection(call->req) != NULL) {
		log_warnx("api: %s: the export's connection is not known; it "
		    "closes at the reply's deadline",
		    evhttp_request_get_uri(call->req));
		return;
	}
	if (call->pending == 0)
		api_export_finish(call);
}

/* A page was written to the client: read the next one. */
static void
api_export_sent(struct evhttp_connection *connection, void *arg)
{
	struct api_export *export = arg;

	if (export->call->req == NULL || export->cut)
		return;
	http_extend(export->call->req);
	api_export_next(export);
}

/*
 * A page arrived.  The first one answers as any read does when it fails
 * (400 for a bad filter, 503, 504); once the reply has begun, a failure
 * cuts it.
 */
static void
api_export_page(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct api_export *export = arg;
	struct api_call *call = export->call;
	struct evbuffer *chunk;
	const char *cursor, *why;

	call->pending--;
	if (call->req == NULL) {
		api_call_release(call);
		return;
	}
	if (call->gone || export->cut) {
		api_export_finish(call);
		return;
	}
	if (export->started && result == NULL && readpool_too_busy(error)) {
		/* A page that waited too long for its turn: wait again. */
		api_export_wait(export);
		return;
	}
	if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK ||
	    PQntuples(result) != 1 || PQgetisnull(result, 0, 0)) {
		if (!export->started) {
			api_query_failed(call, result, error != NULL ? error :
			    "no page");
			return;
		}
		why = result != NULL ? PQresultErrorField(result,
		    PG_DIAG_MESSAGE_PRIMARY) : error;
		log_warnx("api: %s: the export stopped after %llu page(s): %s",
		    evhttp_request_get_uri(call->req),
		    (unsigned long long)export->pages_sent,
		    why != NULL ? why : "no page");
		api_export_cut(call);
		return;
	}
	if (!export->started) {
		api_reply_head(call, 200, "text/csv; charset=utf-8");
		evhttp_add_header(evhttp_request_get_output_headers(call->req),
		    "Content-Disposition", "attachment; filename=\"ipam.csv\"");
		evhttp_send_reply_start(call->req, 200, "OK");
		http_extend(call->req);
		export->started = true;
	}
	export->pages_sent++;
	cursor = PQgetisnull(result, 0, 1) ? NULL : PQgetvalue(result, 0, 1);
	if (cursor != NULL)
		json_object_set_new(export->params, "cursor",
		    json_string(cursor));
	if ((chunk = evbuffer_new()) == NULL)
		fatalx("api: evbuffer_new failed");
	evbuffer_add(chunk, PQgetvalue(result, 0, 0),
	    (size_t)PQgetlength(result, 0, 0));
	if (evbuffer_get_length(chunk) == 0 || cursor == NULL) {
		/* The last page: written with the end of the reply. */
		evhttp_send_reply_chunk(call->req, chunk);
		evbuffer_free(chunk);
		api_export_finish(call);
		return;
	}
	evhttp_send_reply_chunk_with_cb(call->req, chunk, api_export_sent,
	    export);
	evbuffer_free(chunk);
}

/* The reads were full: ask for the page again. */
static void
api_export_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	api_export_next(arg);
}

/*
 * The reads are full: the next page is asked for again a moment later.
 * An export under way is never cut for the others' reads; the reply's
 * deadline still bounds how long it may make no progress.
 */
static void
api_export_wait(struct api_export *export)
{
	struct timeval again = { 0, API_EXPORT_RETRY_MS * 1000 };

	if (export->retry == NULL && (export->retry = evtimer_new(
	    export->call->api->base, api_export_retry_cb, export)) == NULL)
		fatalx("api: evtimer_new failed");
	evtimer_add(export->retry, &again);
}

/* Asks for the next page. */
static void
api_export_next(struct api_export *export)
{
	struct api_call *call = export->call;
	const char *params[1];
	char *text;
	int rc;

	if ((text = json_dumps(export->params, JSON_COMPACT)) == NULL)
		fatalx("api: json_dumps failed");
	params[0] = text;
	/* Counted first: the callback may come before the call returns. */
	call->pending++;
	rc = readpool_query(call->api->pool, api_export_sql, 1, params,
	    api_export_page, export);
	free(text);
	if (rc == 0)
		return;
	call->pending--;
	if (!export->started) {
		api_error(call, 503, "unavailable", NULL, "no PostgreSQL "
		    "connection of the API is up, or too many reads wait");
		return;
	}
	if (!readpool_is_up(call->api->pool)) {
		log_warnx("api: %s: the export stopped after %llu page(s): no "
		    "PostgreSQL connection of the API is up",
		    evhttp_request_get_uri(call->req),
		    (unsigned long long)export->pages_sent);
		api_export_cut(call);
		return;
	}
	/* Too many reads wait: this one waits its turn outside the queue. */
	api_export_wait(export);
}

/* Starts an export of the rows p's filters select (takes p). */
void
api_export_start(struct api_call *call, json_t *p)
{
	struct api_export *export;

	if (call->api->exports >= API_EXPORTS_MAX) {
		json_decref(p);
		api_unavailable(call, "5", "%d whole exports are under way, the "
		    "most at once; ask again later, or read the rows in pages "
		    "(limit, cursor)", API_EXPORTS_MAX);
		return;
	}
	if ((export = calloc(1, sizeof(*export))) == NULL)
		fatal("api: calloc");
	call->api->exports++;
	export->call = call;
	export->params = p;
	json_object_set_new(p, "limit", json_integer(API_EXPORT_PAGE));
	call->export = export;
	api_export_next(export);
}

/*
 * The client went away (or the connection was cut): the request ends now,
 * or when the page being read arrives.
 */
void
api_export_gone(struct api_call *call)
{
	struct api_export *export = call->export;

	if (export->retry != NULL)
		event_del(export->retry);
	export->cut = true;
	if (call->req != NULL && call->pending == 0)
		api_export_finish(call);
}

/*
 * The daemon stops: an export not begun is answered 503 by the caller
 * (true); one under way is cut (false).
 */
bool
api_export_halt(struct api_call *call)
{
	if (!call->export->started)
		return true;
	api_export_cut(call);
	return false;
}

/* Frees an export's state. */
void
api_export_free(struct api_export *export)
{
	if (export == NULL)
		return;
	export->call->api->exports--;
	if (export->retry != NULL)
		event_free(export->retry);
	json_decref(export->params);
	free(export);
}
