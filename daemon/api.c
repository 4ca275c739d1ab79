/*
 * The operator API (/api/v1, docs/API.md): routing, tokens, limits and the
 * reads.  Every read is one SQL function of schema/functions/95_api.sql
 * run on the API's own connections; the writes are in api_write.c.
 */
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <jansson.h>

#include "common/addr.h"
#include "common/log.h"
#include "consumers/decode_fields.h"
#include "daemon/api.h"
#include "daemon/api_internal.h"
#include "daemon/http.h"
#include "daemon/ratelimit.h"

/*
 * Clients the rate limit keeps apart: many more than use the API at once;
 * past it, the fullest buckets give their places to new clients.
 */
#define API_RATE_CLIENTS	4096
/* How long a stop waits for the writes' events to reach Kafka. */
#define API_STOP_FLUSH_MS	2000

/* The OpenAPI document, generated from docs/openapi.json at build time. */
extern const char api_openapi_json[];

/* What a query parameter holds, as the SQL functions expect it in p. */
enum api_kind {
	API_TEXT,
	API_BOOL,
	API_NUMBER,
	API_LIST,
};

struct api_param {
	const char	*name;
	enum api_kind	 kind;
};

/* The parameters of each listing; anything else is refused. */
static const struct api_param api_address_params[] = {
	{ "vrf", API_TEXT }, { "subnet", API_TEXT }, { "status", API_LIST },
	{ "ip_type", API_TEXT }, { "active", API_BOOL }, { "q", API_TEXT },
	{ "changed_since", API_TEXT }, { "sort", API_TEXT },
	{ "limit", API_NUMBER }, { "cursor", API_TEXT }, { "count", API_BOOL },
	{ "format", API_TEXT }, { NULL, 0 }
};
static const struct api_param api_subnet_params[] = {
	{ "vrf", API_TEXT }, { NULL, 0 }
};
static const struct api_param api_conflict_params[] = {
	{ "vrf", API_TEXT }, { "kind", API_TEXT }, { NULL, 0 }
};
static const struct api_param api_dead_letter_params[] = {
	{ "limit", API_NUMBER }, { "cursor", API_TEXT }, { "raw", API_BOOL },
	{ NULL, 0 }
};
static const struct api_param api_next_free_params[] = {
	{ "count", API_NUMBER }, { NULL, 0 }
};
static const struct api_param api_no_params[] = { { NULL, 0 } };

/* Frees a call once it is answered and nothing of it is in flight. */
void
api_call_release(struct api_call *call)
{
	if (call->req != NULL || call->pending > 0)
		return;
	TAILQ_REMOVE(&call->api->calls, call, entry);
	api_write_free(call->write);
	api_export_free(call->export);
	free(call);
}

/* Adds the headers of every answer, and counts it by its code. */
void
api_reply_head(struct api_call *call, int code, const char *content_type)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(call->req);

	evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	call->api->stats.requests[code / 100 < 6 ? code / 100 : 5]++;
}

/* Sends the reply (takes body; NULL: empty) and releases what it can. */
void
api_reply(struct api_call *call, int code, const char *content_type,
    struct evbuffer *body)
{
	struct evbuffer *empty = NULL;

	if (call->req == NULL) {
		if (body != NULL)
			evbuffer_free(body);
		return;
	}
	api_reply_head(call, code, content_type);
	if (body == NULL)
		body = empty = evbuffer_new();
	http_send(call->req, code, NULL, body);
	evbuffer_free(body);
	(void)empty;
	call->req = NULL;
	api_call_release(call);
}

/* Replies with a JSON document (takes json). */
void
api_reply_json(struct api_call *call, int code, json_t *json)
{
	struct evbuffer *body = evbuffer_new();
	char *text = json_dumps(json, JSON_COMPACT);

	json_decref(json);
	if (text == NULL)
		fatalx("api: json_dumps failed");
	evbuffer_add(body, text, strlen(text));
	evbuffer_add(body, "\n", 1);
	free(text);
	api_reply(call, code, "application/json", body);
}

/* Replies with JSON text as it came from PostgreSQL. */
static void
api_reply_text(struct api_call *call, int code, const char *content_type,
    const char *text)
{
	struct evbuffer *body = evbuffer_new();

	evbuffer_add(body, text, strlen(text));
	if (strcmp(content_type, "application/json") == 0)
		evbuffer_add(body, "\n", 1);
	api_reply(call, code, content_type, body);
}

/* api_error() with its detail's arguments in ap. */
static void
api_verror(struct api_call *call, int code, const char *error,
    const char *field, const char *fmt, va_list ap)
{
	json_t *json = json_object();
	char detail[1024], name[256];

	vsnprintf(detail, sizeof(detail), fmt, ap);
	/*
	 * What the client sent may be in them: bytes that are not UTF-8
	 * (which json_string refuses, leaving the member out) escaped.
	 */
	fields_sanitize(detail, sizeof(detail));
	json_object_set_new(json, "error", json_string(error));
	json_object_set_new(json, "detail", json_string(detail));
	if (field != NULL) {
		snprintf(name, sizeof(name), "%s", field);
		fields_sanitize(name, sizeof(name));
		json_object_set_new(json, "field", json_string(name));
	}
	api_reply_json(call, code, json);
}

/* Replies {"error": error, "detail": detail[, "field": field]}. */
void
api_error(struct api_call *call, int code, const char *error,
    const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	api_verror(call, code, error, field, fmt, ap);
	va_end(ap);
}

/* Replies 503 "unavailable" with Retry-After: seconds. */
void
api_unavailable(struct api_call *call, const char *seconds,
    const char *fmt, ...)
{
	va_list ap;

	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "Retry-After", seconds);
	va_start(ap, fmt);
	api_verror(call, 503, "unavailable", NULL, fmt, ap);
	va_end(ap);
}

/* Answers 503: the daemon is stopping (try another instance, or later). */
static void
api_stopping(struct api_call *call)
{
	api_unavailable(call, "5", "the daemon is stopping");
}

/*
 * Answers a failed query: a bad parameter (22023, "field: what") or a bad
 * value PostgreSQL could not read is the caller's 400; a statement
 * timeout a 504; a lost connection a 503; anything else a 500, logged.
 */
void
api_query_failed(struct api_call *call, const PGresult *result,
    const char *error)
{
	const char *state, *message;
	char field[64];
	size_t len;

	if (result == NULL && readpool_too_busy(error)) {
		api_unavailable(call, "5", "%s", error);
		return;
	}
	if (result == NULL) {
		api_error(call, 503, "unavailable", NULL,
		    "PostgreSQL: %s", error ? error : "connection lost");
		return;
	}
	state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
	if (state == NULL)
		state = "";
	if (message == NULL)
		message = "";
	if (strcmp(state, "22023") == 0) {
		len = strcspn(message, ":");
		snprintf(field, sizeof(field), "%.*s", (int)(len < 63 ? len :
		    63), message);
		api_error(call, 400, "bad_request", message[len] ? field : NULL,
		    "%s", message);
	} else if (strncmp(state, "22", 2) == 0)
		api_error(call, 400, "bad_request", NULL, "%s", message);
	else if (strcmp(state, "57014") == 0)
		api_error(call, 504, "timeout", NULL, "the read ran longer than "
		    "api.statement_timeout_ms");
	else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	    strncmp(state, "53", 2) == 0)
		api_error(call, 503, "unavailable", NULL, "PostgreSQL: %s",
		    message);
	else {
		log_warnx("api: %s: %s (SQLSTATE %s)",
		    call->req ? evhttp_request_get_uri(call->req) : "?", message,
		    state);
		api_error(call, 500, "internal", NULL, "PostgreSQL: %s (SQLSTATE "
		    "%s)", message, state);
	}
}

/* A read finished: its single text column is the body. */
static void
api_read_done(struct pgconn *pg, PGresult *result, const char *error,
    void *arg)
{
	struct api_call *call = arg;

	call->pending--;
	if (call->req == NULL)
		api_call_release(call);
	else if (result == NULL || PQresultStatus(result) != PGRES_TUPLES_OK)
		api_query_failed(call, result, error);
	else if (PQntuples(result) != 1 || PQgetisnull(result, 0, 0))
		api_error(call, 404, "not_found", NULL, "%s",
		    call->not_found ? call->not_found : "no such thing");
	else {
		/*
		 * A second value, when there is one, is the next page's
		 * cursor: empty on the last page, so that a client knows the
		 * answer for a page (an older daemon sent the whole listing).
		 */
		if (PQnfields(result) > 1)
			evhttp_add_header(evhttp_request_get_output_headers(
			    call->req), "Next-Cursor", PQgetisnull(result, 0, 1) ?
			    "" : PQgetvalue(result, 0, 1));
		api_reply_text(call, 200, call->content_type ?
		    call->content_type : "application/json",
		    PQgetvalue(result, 0, 0));
	}
}

/* Runs a read whose one value is the body; 503 when no connection can. */
void
api_read(struct api_call *call, const char *sql, int nparams,
    const char *const *params)
{
	/* Counted first: the callback may come before the call returns. */
	call->pending++;
	if (readpool_query(call->api->pool, sql, nparams, params, api_read_done,
	    call) == -1) {
		call->pending--;
		api_error(call, 503, "unavailable", NULL, "no PostgreSQL "
		    "connection of the API is up, or too many reads wait");
	}
}

/* Parses "true"/"false" (and 1/0). */
static int
api_parse_bool(const char *text, bool *out)
{
	if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
		*out = true;
	else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/*
 * Turns the query string into the JSON object p of the SQL functions,
 * refusing unknown parameters and values of the wrong kind.  Returns
 * NULL after answering 400.
 */
static json_t *
api_query_params(struct api_call *call, const struct api_param *known)
{
	const char *query = evhttp_uri_get_query(
	    evhttp_request_get_evhttp_uri(call->req));
	struct evkeyvalq pairs;
	struct evkeyval *pair;
	const struct api_param *param;
	json_t *p = json_object(), *list;
	long long number;
	char *end;
	bool flag;

	TAILQ_INIT(&pairs);
	/* A %00 would cut the value short where C reads it. */
	if (query != NULL && strstr(query, "%00") != NULL) {
		api_error(call, 400, "bad_request", NULL, "the query string "
		    "holds %%00");
		goto fail;
	}
	if (query != NULL && evhttp_parse_query_str(query, &pairs) == -1) {
		api_error(call, 400, "bad_request", NULL, "the query string is "
		    "not name=value pairs");
		goto fail;
	}
	TAILQ_FOREACH(pair, &pairs, next) {
		for (param = known; param->name != NULL; param++)
			if (strcmp(param->name, pair->key) == 0)
				break;
		if (param->name == NULL) {
			api_error(call, 400, "bad_request", pair->key,
			    "%s: unknown parameter", pair->key);
			goto fail;
		}
		/* Only a list may be given more than once. */
		if (param->kind != API_LIST &&
		    json_object_get(p, pair->key) != NULL) {
			api_error(call, 400, "bad_request", pair->key,
			    "%s: given twice", pair->key);
			goto fail;
		}
		switch (param->kind) {
		case API_TEXT:
			json_object_set_new(p, pair->key,
			    json_string(pair->value));
			break;
		case API_LIST:
			if ((list = json_object_get(p, pair->key)) == NULL)
				json_object_set_new(p, pair->key,
				    list = json_array());
			if (json_array_append_new(list,
			    json_string(pair->value)) == -1) {
				api_error(call, 400, "bad_request", pair->key,
				    "%s: not UTF-8 text", pair->key);
				goto fail;
			}
			break;
		case API_BOOL:
			if (api_parse_bool(pair->value, &flag) == -1) {
				api_error(call, 400, "bad_request", pair->key,
				    "%s: must be true or false", pair->key);
				goto fail;
			}
			json_object_set_new(p, pair->key, json_boolean(flag));
			break;
		case API_NUMBER:
			number = strtoll(pair->value, &end, 10);
			if (*pair->value == '\0' || *end != '\0') {
				api_error(call, 400, "bad_request", pair->key,
				    "%s: must be an integer", pair->key);
				goto fail;
			}
			json_object_set_new(p, pair->key, json_integer(number));
			break;
		}
		/* json_string refuses text that is not UTF-8. */
		if (json_object_get(p, pair->key) == NULL) {
			api_error(call, 400, "bad_request", pair->key,
			    "%s: not UTF-8 text", pair->key);
			goto fail;
		}
	}
	evhttp_clear_headers(&pairs);
	return p;
fail:
	evhttp_clear_headers(&pairs);
	json_decref(p);
	return NULL;
}

/* Runs SELECT fn($1::jsonb)::text with the listing's parameters. */
static void
api_listing(struct api_call *call, const char *function,
    const struct api_param *known)
{
	const char *params[1];
	char sql[160];
	json_t *p;
	char *text;

	if ((p = api_query_params(call, known)) == NULL)
		return;
	text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	params[0] = text;
	snprintf(sql, sizeof(sql), "SELECT %s($1::jsonb)::text", function);
	api_read(call, sql, 1, params);
	free(text);
}

/*
 * Reads a "{vrf}/{ip}" pair of path segments ("-" is the default vrf)
 * into a canonical vrf and address text.  Answers 400 and returns -1
 * when either is bad.  A write's vrf must be one the decoder takes, so
 * that its mark is not refused once published; a read's need only fit
 * (a vrf an earlier release stored can still be read).
 */
int
api_path_address(struct api_call *call, const char *vrf_segment,
    const char *ip_segment, char *vrf, size_t vrflen, char *ip, size_t iplen,
    bool write)
{
	struct ip_addr address;
	char reason[256], *checked;
	size_t len;
	int rc;

	if (strcmp(vrf_segment, "-") == 0)
		vrf_segment = "";
	len = strlen(vrf_segment);
	if (write && len > 0) {
		if (fields_text_bytes("vrf", vrf_segment, len, FIELDS_VRF_MAX,
		    &checked, reason, sizeof(reason)) == -1)
			goto refused;
		rc = fields_vrf_check("vrf", checked, reason, sizeof(reason));
		free(checked);
		if (rc == -1)
			goto refused;
	}
	if (!write && (len > FIELDS_VRF_MAX || strchr(vrf_segment, '/'))) {
		snprintf(reason, sizeof(reason), "vrf: at most %d bytes and no "
		    "'/'", FIELDS_VRF_MAX);
		goto refused;
	}
	if (addr_parse(ip_segment, &address, reason, sizeof(reason)) == -1) {
		api_error(call, 400, "bad_request", "address", "address: \"%.64s\" "
		    "is not an IPv4 or IPv6 address (%s)", ip_segment, reason);
		return -1;
	}
	snprintf(vrf, vrflen, "%s", vrf_segment);
	addr_format(&address, ip, iplen);
	return 0;
refused:
	api_error(call, 400, "bad_request", "vrf", "%s (use - for the default "
	    "vrf)", reason);
	return -1;
}

/* Tells whether a request came as HTTP/1.1 or later (chunks allowed). */
static bool
api_http11(const struct evhttp_request *request)
{
	return request->major > 1 || (request->major == 1 &&
	    request->minor >= 1);
}

/* GET /addresses, as JSON pages or as CSV. */
static void
api_addresses(struct api_call *call)
{
	const char *accept = evhttp_find_header(
	    evhttp_request_get_input_headers(call->req), "Accept");
	const char *params[1];
	json_t *p, *format, *sort;
	bool csv, paged;
	char *text;

	if ((p = api_query_params(call, api_address_params)) == NULL)
		return;
	format = json_object_get(p, "format");
	if (format != NULL && strcmp(json_string_value(format), "csv") != 0 &&
	    strcmp(json_string_value(format), "json") != 0) {
		json_decref(p);
		api_error(call, 400, "bad_request", "format", "format: csv or "
		    "json");
		return;
	}
	csv = format != NULL ? strcmp(json_string_value(format), "csv") == 0 :
	    accept != NULL && strstr(accept, "text/csv") != NULL;
	json_object_del(p, "format");
	/* CSV with limit or cursor comes in pages, as JSON does. */
	paged = json_object_get(p, "limit") != NULL ||
	    json_object_get(p, "cursor") != NULL;
	/*
	 * The whole CSV is streamed page by page, in address order (a row
	 * that changes meanwhile keeps its place; no index serves the order
	 * of updated_at, each page would sort every row).  HEAD needs the
	 * length, and HTTP/1.0 has no chunks to tell a cut reply from a
	 * whole one: both are answered in one piece.
	 */
	sort = json_object_get(p, "sort");
	if (csv && !paged && api_http11(call->req) &&
	    evhttp_request_get_command(call->req) != EVHTTP_REQ_HEAD &&
	    (sort == NULL || strstr(json_string_value(sort), "address") !=
	    NULL)) {
		api_export_start(call, p);
		return;
	}
	text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	params[0] = text;
	if (csv) {
		call->content_type = "text/csv; charset=utf-8";
		evhttp_add_header(evhttp_request_get_output_headers(call->req),
		    "Content-Disposition", "attachment; filename=\"ipam.csv\"");
		api_read(call, paged ? "SELECT body, next_cursor FROM "
		    "ipamd.api_addresses_csv_page($1::jsonb)" :
		    "SELECT ipamd.api_addresses_csv($1::jsonb)", 1, params);
	} else
		api_read(call, "SELECT ipamd.api_addresses($1::jsonb)::text", 1,
		    params);
	free(text);
}

/* GET /addresses/{vrf}/{ip}. */
static void
api_address(struct api_call *call, const char *vrf_segment,
    const char *ip_segment)
{
	const char *params[2];
	char vrf[80], ip[ADDR_TEXT_MAX];

	if (api_query_params_none(call) == -1 ||
	    api_path_address(call, vrf_segment, ip_segment, vrf, sizeof(vrf),
	    ip, sizeof(ip), false) == -1)
		return;
	params[0] = vrf;
	params[1] = ip;
	call->not_found = "the address has no row, no mark, no holder and no "
	    "history";
	api_read(call, "SELECT ipamd.api_address($1, $2::inet)::text", 2,
	    params);
}

/* Refuses any query parameter; returns -1 after answering. */
int
api_query_params_none(struct api_call *call)
{
	json_t *p = api_query_params(call, api_no_params);

	if (p == NULL)
		return -1;
	json_decref(p);
	return 0;
}

/* GET /subnets/{id}, /subnets/{id}/next-free. */
static void
api_subnet(struct api_call *call, const char *id, const char *what)
{
	const char *params[3];
	json_t *p, *count;
	char n[24];

	params[0] = id;
	call->not_found = "no live subnet has this id";
	if (what == NULL) {
		if (api_query_params_none(call) == -1)
			return;
		api_read(call, "SELECT ipamd.api_subnet($1)::text", 1, params);
		return;
	}
	if ((p = api_query_params(call, api_next_free_params)) == NULL)
		return;
	count = json_object_get(p, "count");
	snprintf(n, sizeof(n), "%lld", count ? (long long)json_integer_value(
	    count) : 1LL);
	json_decref(p);
	if (atoll(n) < 1 || atoll(n) > 256) {
		api_error(call, 400, "bad_request", "count", "count: from 1 to "
		    "256");
		return;
	}
	params[1] = n;
	params[2] = "{}";
	api_read(call, "SELECT ipamd.api_next_free($1, $2::integer, "
	    "$3::inet[])::text", 3, params);
}

/* GET /requests/{id}. */
static void
api_request_state(struct api_call *call, const char *id)
{
	const char *params[1] = { id };

	if (api_query_params_none(call) == -1)
		return;
	call->not_found = "no request with this id was decided (yet)";
	api_read(call, "SELECT ipamd.api_request($1)::text", 1, params);
}

/*
 * GET /imports/{progress}: whether an import's events were applied.  The
 * segment is what the import's 202 named: "topic:partition:offset" of the
 * last event it wrote to each partition, joined by ','.
 */
static void
api_import_state(struct api_call *call, const char *progress)
{
	struct api *api = call->api;
	const char *params[2], *entry, *end, *colon;
	json_t *list, *item;
	char topic[256], *text, *stop;
	long long part, off;
	size_t count = 0, len;

	if (api_query_params_none(call) == -1)
		return;
	list = json_array();
	for (entry = progress; ; entry = end + 1) {
		end = strchr(entry, ',');
		len = end != NULL ? (size_t)(end - entry) : strlen(entry);
		colon = memchr(entry, ':', len);
		if (colon == NULL || (size_t)(colon - entry) >= sizeof(topic) ||
		    ++count > 1024)
			goto bad;
		memcpy(topic, entry, (size_t)(colon - entry));
		topic[colon - entry] = '\0';
		/* An import writes to the servers' and subnets' topics only. */
		if ((api->servers_topic == NULL ||
		    strcmp(topic, api->servers_topic) != 0) &&
		    (api->subnets_topic == NULL ||
		    strcmp(topic, api->subnets_topic) != 0))
			goto bad;
		errno = 0;
		if (colon[1] < '0' || colon[1] > '9')
			goto bad;
		part = strtoll(colon + 1, &stop, 10);
		if (errno != 0 || *stop != ':' || part > INT32_MAX ||
		    stop[1] < '0' || stop[1] > '9')
			goto bad;
		off = strtoll(stop + 1, &stop, 10);
		if (errno != 0 || stop != entry + len)
			goto bad;
		item = json_object();
		json_object_set_new(item, "topic", json_string(topic));
		json_object_set_new(item, "part", json_integer(part));
		json_object_set_new(item, "off", json_integer(off));
		json_array_append_new(list, item);
		if (end == NULL)
			break;
	}
	if ((text = json_dumps(list, JSON_COMPACT)) == NULL)
		fatalx("api: json_dumps failed");
	json_decref(list);
	params[0] = text;
	params[1] = api->group_id;
	api_read(call, "SELECT ipamd.api_import_state($1::jsonb, $2)::text", 2,
	    params);
	free(text);
	return;
bad:
	json_decref(list);
	api_error(call, 400, "bad_request", NULL, "not the progress of an "
	    "import: \"topic:partition:offset\" of the servers' or subnets' "
	    "topic, joined by ',' (what the import's 202 names in Location)");
}

/* GET /whoami: the caller's scope and requester. */
static void
api_whoami(struct api_call *call)
{
	json_t *body = json_object();

	json_object_set_new(body, "scope", json_string(call->scope ==
	    API_SCOPE_WRITE ? "write" : "read"));
	json_object_set_new(body, "requester", json_string(call->requester));
	api_reply_json(call, 200, body);
}

/* Compares a presented token with a configured one in constant time. */
static bool
api_token_equal(const char *given, const char *token)
{
	size_t i, n = strlen(token), m = strlen(given);
	unsigned char diff = n != m;

	for (i = 0; i < n; i++)
		diff |= (unsigned char)token[i] ^
		    (unsigned char)given[i < m ? i : 0];
	return diff == 0;
}

/* The token of an Authorization header, or NULL when it is no bearer's. */
static const char *
api_bearer(const char *header)
{
	return header != NULL && strncasecmp(header, "Bearer ", 7) == 0 ?
	    header + 7 : NULL;
}

bool
api_large_body(const struct api *api, const char *authorization)
{
	const char *token = api_bearer(authorization);

	return token != NULL && api->write_token != NULL &&
	    api_token_equal(token, api->write_token);
}

/* Tells whether the client is on a loopback address. */
static bool
api_client_loopback(struct evhttp_request *request)
{
	struct evhttp_connection *connection =
	    evhttp_request_get_connection(request);
	const struct sockaddr *address;
	const struct sockaddr_in6 *v6;

	if (connection == NULL ||
	    (address = evhttp_connection_get_addr(connection)) == NULL)
		return false;
	if (address->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)address)->
		    sin_addr.s_addr) >> 24) == 127;
	if (address->sa_family != AF_INET6)
		return false;
	v6 = (const struct sockaddr_in6 *)address;
	if (IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) &&
	    v6->sin6_addr.s6_addr[12] == 127;
}

/*
 * Tells whether a Host header names this host by loopback: "localhost",
 * an IPv4 address in 127.0.0.0/8 or "[::1]", with a port or not.  A page
 * of another site whose name was pointed at 127.0.0.1 (DNS rebinding)
 * sends its own name.
 */
static bool
api_host_loopback(const char *host)
{
	struct in_addr v4;
	char name[64];
	size_t len;

	if (host == NULL)
		return false;
	if (strncmp(host, "[::1]", 5) == 0)
		return host[5] == '\0' || host[5] == ':';
	len = strcspn(host, ":");
	if (len == 0 || len >= sizeof(name) || (host[len] == ':' &&
	    (host[len + 1] == '\0' || strspn(host + len + 1, "0123456789") !=
	    strlen(host + len + 1))))
		return false;
	memcpy(name, host, len);
	name[len] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, name, &v4) == 1 &&
	    (ntohl(v4.s_addr) >> 24) == 127;
}

/* Answers 401 with the challenge every 401 carries (RFC 9110, 6750). */
static void
api_unauthorized(struct api_call *call, const char *challenge,
    const char *text)
{
	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "WWW-Authenticate", challenge);
	api_error(call, 401, "unauthorized", NULL, "%s", text);
}

/*
 * Finds the caller's scope from its bearer token (or the loopback rule
 * when no token is configured) and who it is for the audit.  Answers 401
 * or 403 and returns -1 when the call may not go on.
 */
static int
api_authorize(struct api_call *call)
{
	struct api *api = call->api;
	struct evkeyvalq *headers = evhttp_request_get_input_headers(call->req);
	const char *header = evhttp_find_header(headers, "Authorization");
	const char *name = evhttp_find_header(headers, "X-Requester");
	const char *token;
	size_t i;

	if (header == NULL) {
		if (api->read_token != NULL || api->write_token != NULL) {
			api_unauthorized(call, "Bearer", "this API needs a "
			    "bearer token (Authorization: Bearer TOKEN)");
			return -1;
		}
		if (!api_client_loopback(call->req)) {
			api_error(call, 403, "forbidden", NULL, "no token is "
			    "configured (api.read_token_file): only loopback "
			    "clients may read");
			return -1;
		}
		if (!api_host_loopback(evhttp_find_header(headers, "Host"))) {
			api_error(call, 403, "forbidden", NULL, "no token is "
			    "configured (api.read_token_file): loopback clients "
			    "read with a Host of localhost or a loopback "
			    "address, so that no other site's page can "
			    "(DNS rebinding)");
			return -1;
		}
		call->scope = API_SCOPE_READ;
	} else {
		if ((token = api_bearer(header)) == NULL) {
			api_unauthorized(call, "Bearer error=\"invalid_request\"",
			    "Authorization must be \"Bearer TOKEN\"");
			return -1;
		}
		if (api->write_token != NULL &&
		    api_token_equal(token, api->write_token))
			call->scope = API_SCOPE_WRITE;
		else if (api->read_token != NULL &&
		    api_token_equal(token, api->read_token))
			call->scope = API_SCOPE_READ;
		else {
			api_unauthorized(call, "Bearer error=\"invalid_token\"",
			    "unknown token");
			return -1;
		}
	}
	snprintf(call->requester, sizeof(call->requester), "%s",
	    call->scope == API_SCOPE_WRITE ? "write" : "read");
	if (name == NULL || *name == '\0')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (i >= 64 || !isprint((unsigned char)name[i])) {
			api_error(call, 400, "bad_request", "X-Requester",
			    "X-Requester: at most 64 printable ASCII characters");
			return -1;
		}
	snprintf(call->requester, sizeof(call->requester), "%s:%s",
	    call->scope == API_SCOPE_WRITE ? "write" : "read", name);
	return 0;
}

/*
 * A write route was asked with its method: answers 403 when the caller
 * may only read, 503 when the daemon takes no writes now, and returns -1
 * then.
 */
static int
api_may_write(struct api_call *call)
{
	struct api *api = call->api;
	char why[256];

	if (call->scope != API_SCOPE_WRITE) {
		api_error(call, 403, "forbidden", NULL, api->write_token == NULL ?
		    "writes need a write token, and none is configured "
		    "(api.write_token_file)" : "this token may only read");
		return -1;
	}
	if (api->stopping) {
		api_error(call, 503, "unavailable", NULL, "the daemon is "
		    "stopping: nothing was published");
		return -1;
	}
	if (api->writes_held != NULL &&
	    api->writes_held(api->writes_held_arg, why, sizeof(why))) {
		api_unavailable(call, "5", "%s: nothing was published", why);
		return -1;
	}
	return 0;
}

/* Takes a token from the client's bucket; false when it is empty. */
static bool
api_rate_take(struct api *api, struct evhttp_request *request)
{
	struct evhttp_connection *connection =
	    evhttp_request_get_connection(request);
	const struct sockaddr *address = connection ?
	    evhttp_connection_get_addr(connection) : NULL;
	struct timespec now;

	if (api->rate_limit == 0 || address == NULL)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return ratelimit_take(api->limiter, address, (double)api->rate_limit,
	    &now);
}

/* Tells whether every '%' of len bytes at p begins two hex digits. */
static bool
api_percent_valid(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] == '%' && (i + 2 >= len ||
		    !isxdigit((unsigned char)p[i + 1]) ||
		    !isxdigit((unsigned char)p[i + 2])))
			return false;
	return true;
}

/*
 * Splits the raw path into percent-decoded segments (so that an id may
 * hold an encoded '/'); returns how many, at most n.  A segment that is
 * not valid percent-encoding, or that holds a NUL (%00), is NULL.
 */
static size_t
api_segments(const char *raw, char **segments, size_t n)
{
	const char *p = raw;
	size_t count = 0, len, decoded_len;
	char *part, *decoded;

	while (*p != '\0' && count < n) {
		len = strcspn(p, "/");
		if ((part = strndup(p, len)) == NULL)
			fatal("api: strndup");
		/* libevent copies a bad escape ("%zz", a last "%4") as it is. */
		decoded = api_percent_valid(part, len) ?
		    evhttp_uridecode(part, 0, &decoded_len) : NULL;
		free(part);
		/* A %00 would cut the value short where C reads it. */
		if (decoded != NULL && strlen(decoded) != decoded_len) {
			free(decoded);
			decoded = NULL;
		}
		segments[count++] = decoded;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	return count;
}

/* Answers 405 naming the methods a path allows. */
static void
api_method_not_allowed(struct api_call *call, const char *allowed)
{
	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "Allow", allowed);
	api_error(call, 405, "method_not_allowed", NULL, "%s allows %s",
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(call->req)),
	    allowed);
}

/*
 * Serves one request under /api/v1: the caller is known first (401),
 * then the route and its methods (404, 405), then whether the caller may
 * write there (403).
 */
static void
api_dispatch(struct api_call *call, char **seg, size_t n)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(call->req);
	bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
	const char *what = n > 0 ? seg[0] : "";

	if (n == 1 && strcmp(what, "openapi.json") == 0) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else
			api_reply_text(call, 200, "application/json",
			    api_openapi_json);
		return;
	}
	if (api_authorize(call) == -1)
		return;
	if (strcmp(what, "addresses") == 0 && (n == 1 || n == 3)) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else if (n == 1)
			api_addresses(call);
		else
			api_address(call, seg[1], seg[2]);
	} else if (strcmp(what, "subnets") == 0 && n == 1) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else
			api_listing(call, "ipamd.api_subnets",
			    api_subnet_params);
	} else if (strcmp(what, "subnets") == 0 && (n == 2 || (n == 3 &&
	    strcmp(seg[2], "next-free") == 0))) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else
			api_subnet(call, seg[1], n == 3 ? seg[2] : NULL);
	} else if (strcmp(what, "subnets") == 0 && n == 3 &&
	    strcmp(seg[2], "allocate") == 0) {
		if (method != EVHTTP_REQ_POST)
			api_method_not_allowed(call, "POST");
		else if (api_may_write(call) == 0)
			api_write_allocate(call, seg[1]);
	} else if (strcmp(what, "marks") == 0 && n == 3) {
		if (method != EVHTTP_REQ_PUT && method != EVHTTP_REQ_DELETE)
			api_method_not_allowed(call, "PUT, DELETE");
		else if (api_may_write(call) == 0)
			api_write_mark(call, seg[1], seg[2],
			    method == EVHTTP_REQ_DELETE);
	} else if (strcmp(what, "import") == 0 && n == 1) {
		if (method != EVHTTP_REQ_POST)
			api_method_not_allowed(call, "POST");
		else if (api_may_write(call) == 0)
			api_write_import(call);
	} else if (strcmp(what, "whoami") == 0 && n == 1) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else if (api_query_params_none(call) == 0)
			api_whoami(call);
	} else if (strcmp(what, "requests") == 0 && n == 2) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else
			api_request_state(call, seg[1]);
	} else if (strcmp(what, "imports") == 0 && n == 2) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else
			api_import_state(call, seg[1]);
	} else if (n == 1 && (strcmp(what, "conflicts") == 0 ||
	    strcmp(what, "dead-letters") == 0 || strcmp(what, "unplaced") == 0 ||
	    strcmp(what, "stats") == 0)) {
		if (!get)
			api_method_not_allowed(call, "GET, HEAD");
		else if (what[0] == 'c')
			api_listing(call, "ipamd.api_conflicts",
			    api_conflict_params);
		else if (what[0] == 'd')
			api_listing(call, "ipamd.api_dead_letters",
			    api_dead_letter_params);
		else if (what[0] == 'u')
			api_listing(call, "ipamd.api_unplaced",
			    api_subnet_params);
		else
			api_listing(call, "ipamd.api_stats", api_no_params);
	} else
		api_error(call, 404, "not_found", NULL, "no such endpoint (see "
		    "/api/v1/openapi.json)");
}

/* Serves one request (struct http_handlers' route). */
void
api_route(struct evhttp_request *request, const char *path, void *arg)
{
	struct api *api = arg;
	struct api_call *call;
	const char *raw = evhttp_uri_get_path(
	    evhttp_request_get_evhttp_uri(request));
	char *seg[8];
	size_t n, i;

	if ((call = calloc(1, sizeof(*call))) == NULL)
		fatal("api: calloc");
	call->api = api;
	call->req = request;
	TAILQ_INSERT_TAIL(&api->calls, call, entry);
	if (raw == NULL || strncmp(raw, "/api/v1/", 8) != 0) {
		api_error(call, 404, "not_found", NULL, "no such path; the API "
		    "is under /api/v1/");
		return;
	}
	if (!api->serving) {
		api_unavailable(call, "1", "the daemon is starting: its schema "
		    "is not migrated yet");
		return;
	}
	if (api->closed) {
		api_stopping(call);
		return;
	}
	if (!api_rate_take(api, request)) {
		api->stats.rate_limited++;
		evhttp_add_header(evhttp_request_get_output_headers(request),
		    "Retry-After", "1");
		api_error(call, 429, "too_many_requests", NULL, "more than %lld "
		    "requests a second from this client, an IPv4 address or "
		    "an IPv6 /64 (api.rate_limit)", api->rate_limit);
		return;
	}
	n = api_segments(raw + 8, seg, 8);
	for (i = 0; i < n; i++)
		if (seg[i] == NULL) {
			api_error(call, 400, "bad_request", NULL, "the path is "
			    "not valid percent-encoding, or holds %%00");
			goto done;
		}
	api_dispatch(call, seg, n);
done:
	for (i = 0; i < n; i++)
		free(seg[i]);
}

/* A request's client went away: its work may stop early. */
void
api_gone(struct evhttp_request *request, void *arg)
{
	struct api *api = arg;
	struct api_call *call;

	TAILQ_FOREACH(call, &api->calls, entry)
		if (call->req == request) {
			call->gone = true;
			if (call->export != NULL)
				api_export_gone(call);	/* may free call */
			else
				api_write_gone(call);
			break;
		}
}

/* Makes the API. */
struct api *
api_new(struct event_base *base, struct readpool *pool,
    struct producer *producer, const struct api_settings *settings)
{
	struct api *api;
	unsigned char key[RATELIMIT_KEY_LEN];

	if ((api = calloc(1, sizeof(*api))) == NULL)
		fatal("api: calloc");
	/* The rate limit's hash key: secret, so no client can aim at a bucket. */
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		fatal("api: getrandom");
	api->limiter = ratelimit_new(API_RATE_CLIENTS, key);
	api->base = base;
	api->pool = pool;
	api->producer = producer;
	TAILQ_INIT(&api->calls);
	api->allocating = json_array();
#define API_DUP(field) \
	if (settings->field != NULL && \
	    (api->field = strdup(settings->field)) == NULL) \
		fatal("api: strdup")
	API_DUP(read_token);
	API_DUP(write_token);
	API_DUP(group_id);
	API_DUP(marks_topic);
	API_DUP(servers_topic);
	API_DUP(subnets_topic);
#undef API_DUP
	api->limits = *settings->limits;
	api->write_wait_ms = settings->write_wait_ms;
	api->rate_limit = settings->rate_limit;
	api->writes_held = settings->writes_held;
	api->writes_held_arg = settings->writes_held_arg;
	return api;
}

/* Starts or stops serving (the schema's functions exist once migrated). */
void
api_set_serving(struct api *api, bool serving)
{
	api->serving = serving;
}

void
api_stop(struct api *api)
{
	struct api_call *call, *next;

	api->stopping = true;
	/*
	 * What the writes handed to Kafka's client is delivered first, so
	 * that each is told whether Kafka has it (the rest is purged when
	 * the producer is freed).
	 */
	producer_flush(api->producer, API_STOP_FLUSH_MS);
	/* Answering may release a call: walk with the next one in hand. */
	for (call = TAILQ_FIRST(&api->calls); call != NULL; call = next) {
		next = TAILQ_NEXT(call, entry);
		if (call->req != NULL && call->write != NULL)
			api_write_halt(call);
	}
}

void
api_close(struct api *api)
{
	struct api_call *call, *next;

	api->closed = true;
	for (call = TAILQ_FIRST(&api->calls); call != NULL; call = next) {
		next = TAILQ_NEXT(call, entry);
		if (call->req == NULL)
			continue;
		if (call->write != NULL)
			api_write_halt(call);
		else if (call->export == NULL || api_export_halt(call))
			api_stopping(call);
	}
}

/* Changes what a reload may change. */
void
api_set_limits(struct api *api, long long write_wait_ms, long long rate_limit)
{
	api->write_wait_ms = write_wait_ms;
	api->rate_limit = rate_limit;
}

/* Puts a copy of token (NULL: none) in *slot, wiping the one there. */
static void
api_token_replace(char **slot, const char *token)
{
	if (*slot != NULL) {
		explicit_bzero(*slot, strlen(*slot));
		free(*slot);
	}
	*slot = NULL;
	if (token != NULL && (*slot = strdup(token)) == NULL)
		fatal("api: strdup");
}

/* Takes the tokens read again (a reload); NULL: none. */
void
api_set_tokens(struct api *api, const char *read_token,
    const char *write_token)
{
	api_token_replace(&api->read_token, read_token);
	api_token_replace(&api->write_token, write_token);
}

/* Fills stats. */
void
api_stats(const struct api *api, struct api_stats *stats)
{
	const struct api_call *call;

	*stats = api->stats;
	stats->writes_waiting = 0;
	TAILQ_FOREACH(call, &api->calls, entry)
		if (call->write != NULL)
			stats->writes_waiting++;
	stats->reads_waiting = readpool_waiting(api->pool);
}

/* Frees, answering what is still held. */
void
api_free(struct api *api)
{
	struct api_call *call;

	if (api == NULL)
		return;
	while ((call = TAILQ_FIRST(&api->calls)) != NULL) {
		call->pending = 0;	/* nothing will call back any more */
		api_write_stop(call);
		if (call->req != NULL && call->export != NULL)
			api_export_gone(call);	/* ends and frees it */
		else if (call->req != NULL)
			api_stopping(call);
		else
			api_call_release(call);
	}
	api_set_tokens(api, NULL, NULL);
	free(api->group_id);
	free(api->marks_topic);
	free(api->servers_topic);
	free(api->subnets_topic);
	json_decref(api->allocating);
	ratelimit_free(api->limiter);
	free(api);
}
