/* ipamctl's commands: each builds its request, sends it, shows the answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ipamctl/commands.h"
#include "ipamctl/import.h"
#include "ipamctl/render.h"
#include "ipamctl/url.h"

/* The most rows a page of an export asks for. */
#define COMMANDS_EXPORT_PAGE	"1000"

/* Writes a body as it came, ending with a line end. */
static void
commands_write_raw(struct commands_context *context,
    const struct client_response *response)
{
	fwrite(response->body, 1, response->body_length, context->out);
	if (response->body_length > 0 &&
	    response->body[response->body_length - 1] != '\n')
		fputc('\n', context->out);
}

/*
 * An allocation's answer that is not its success (accepted not yet
 * applied, cut short, refused, not sure): the addresses its earlier
 * rounds reserved, which stay reserved in the requester's name.
 */
static void
commands_report_allocated(struct commands_context *context, json_t *body)
{
	if (context->args->json ||
	    json_array_size(json_object_get(body, "allocated")) == 0)
		return;
	fprintf(context->out, "reserved by this request, and still "
	    "reserved:\n");
	render_addresses(json_object_get(body, "allocated"), context->out,
	    context->colour);
}

/*
 * Says why a request failed on stderr and returns the exit status: the
 * API's error, detail and field; a conflict's current row; where to poll
 * an accepted request.  With --json the body goes to stdout as well.
 */
static enum client_exit
commands_report(struct commands_context *context,
    const struct client_response *response)
{
	enum client_exit	 status = client_exit_for_status(response->status);
	json_t			*body, *current, *item;
	const char		*error, *detail, *field;
	size_t			 index;

	if (context->args->json && response->body_length > 0)
		commands_write_raw(context, response);
	if (status == CLIENT_EXIT_ACCEPTED) {
		const char *id = response->location != NULL ?
		    strrchr(response->location, '/') : NULL;

		/* An allocation of several addresses: one request each. */
		body = json_loadb(response->body, response->body_length, 0,
		    NULL);
		commands_report_allocated(context, body);
		if (json_array_size(json_object_get(body, "requests")) > 1) {
			fprintf(context->err, "ipamctl: accepted but not yet "
			    "applied; their outcomes:");
			json_array_foreach(json_object_get(body, "requests"),
			    index, item)
				if (json_is_string(item))
					fprintf(context->err, " ipamctl request "
					    "%s;", json_string_value(item));
			fputc('\n', context->err);
			json_decref(body);
			return status;
		}
		json_decref(body);
		if (id != NULL) {
			fprintf(context->err, "ipamctl: accepted but not yet "
			    "applied; its outcome: ipamctl request %s\n", id + 1);
			return status;
		}
		/* An import not all taken by Kafka has nothing to follow. */
		body = json_loadb(response->body, response->body_length, 0,
		    NULL);
		detail = json_string_value(json_object_get(body, "detail"));
		fprintf(context->err, "ipamctl: accepted but not yet applied%s%s\n",
		    detail != NULL ? ": " : "", detail != NULL ? detail : "");
		json_decref(body);
		return status;
	}
	body = json_loadb(response->body, response->body_length, 0, NULL);
	error = json_string_value(json_object_get(body, "error"));
	detail = json_string_value(json_object_get(body, "detail"));
	field = json_string_value(json_object_get(body, "field"));
	if (error == NULL && status == CLIENT_EXIT_UNREACHABLE)
		fprintf(context->err, "ipamctl: the daemon answered HTTP %ld\n",
		    response->status);
	else
		fprintf(context->err, "ipamctl: %s (HTTP %ld)%s%s%s%s\n",
		    error != NULL ? error : "refused", response->status,
		    detail != NULL ? ": " : "", detail != NULL ? detail : "",
		    field != NULL ? "; field: " : "", field != NULL ? field : "");
	/* An import's refusal lists every entity at fault. */
	json_array_foreach(json_object_get(body, "errors"), index, item) {
		if (json_is_string(item))
			fprintf(context->err, "ipamctl:   %s\n",
			    json_string_value(item));
	}
	/*
	 * Requests published and not decided (an allocation cut short, a
	 * daemon stopping): each may still be applied; "ipamctl request ID"
	 * tells.
	 */
	json_array_foreach(json_object_get(body, "requests"), index, item) {
		if (json_is_string(item))
			fprintf(context->err, "ipamctl: published, may still be "
			    "applied: request %s\n", json_string_value(item));
	}
	current = json_object_get(body, "current");
	if (status == CLIENT_EXIT_CONFLICT && !context->args->json) {
		if (json_is_object(current)) {
			fprintf(context->out, "the address now: ");
			render_row_line(current, context->out, context->colour);
		} else if (json_is_array(current)) {
			render_addresses(current, context->out, context->colour);
		} else if (json_is_null(current)) {
			fprintf(context->out, "the address now: %s\n",
			    RENDER_NO_ROW);
		}
	}
	/* An allocation cut short holds what it reserved: say so. */
	commands_report_allocated(context, body);
	json_decref(body);
	return status;
}

/*
 * Sends a request; on a 2xx answer returns CLIENT_EXIT_OK (202 aside) with
 * the response filled, otherwise reports and returns the exit status.
 * The caller frees the response either way.
 */
static enum client_exit
commands_send(struct commands_context *context,
    const struct client_request *request, struct client_response *response)
{
	if (client_send(context->client, request, response) == -1) {
		fprintf(context->err, "ipamctl: cannot reach the daemon at %s: "
		    "%s\n", context->client->base_url, response->error);
		return CLIENT_EXIT_UNREACHABLE;
	}
	if (client_exit_for_status(response->status) != CLIENT_EXIT_OK)
		return commands_report(context, response);
	return CLIENT_EXIT_OK;
}

/* Parses a 2xx body as JSON; NULL (reported) when it is not JSON. */
static json_t *
commands_parse(struct commands_context *context,
    const struct client_response *response)
{
	json_error_t	 problem;
	json_t		*body;

	body = json_loadb(response->body, response->body_length, 0, &problem);
	if (body == NULL)
		fprintf(context->err, "ipamctl: the daemon's answer is not "
		    "JSON: %s\n", problem.text);
	return body;
}

/* GETs a path and parses the answer; *body is NULL unless it returns 0. */
static enum client_exit
commands_get_json(struct commands_context *context, const char *path,
    json_t **body, struct client_response *response)
{
	struct client_request	request = { "GET", path, NULL, NULL, NULL };
	enum client_exit	status;

	*body = NULL;
	status = commands_send(context, &request, response);
	if (status != CLIENT_EXIT_OK)
		return status;
	*body = commands_parse(context, response);
	return *body != NULL ? CLIENT_EXIT_OK : CLIENT_EXIT_UNREACHABLE;
}

/* Appends the vrf filter when --vrf was given. */
static void
commands_query_vrf(struct commands_context *context, struct url_buffer *path)
{
	url_append_query(path, "vrf", context->args->vrf);
}

/* The path of GET /addresses with the filters of ls and export. */
static char *
commands_addresses_path(struct commands_context *context, const char *limit)
{
	const struct args	*args = context->args;
	struct url_buffer	 path = { 0 };
	char			 number[32];

	url_append_string(&path, "/api/v1/addresses");
	commands_query_vrf(context, &path);
	url_append_query(&path, "subnet", args->subnet);
	for (size_t i = 0; i < args->status_count; i++)
		url_append_query(&path, "status", args->statuses[i]);
	url_append_query(&path, "ip_type", args->ip_type);
	if (args->active != ARGS_ACTIVE_ANY)
		url_append_query(&path, "active",
		    args->active == ARGS_ACTIVE_TRUE ? "true" : "false");
	url_append_query(&path, "q", args->query);
	url_append_query(&path, "changed_since", args->changed_since);
	url_append_query(&path, "sort", args->sort);
	if (limit == NULL && args->limit > 0) {
		snprintf(number, sizeof(number), "%ld", args->limit);
		limit = number;
	}
	url_append_query(&path, "limit", limit);
	return url_take(&path);
}

/*
 * One page of a listing came (2xx): take what it holds, and set *next to
 * the next page's cursor (a copy), or leave it NULL on the last page.
 */
typedef enum client_exit commands_page_cb(struct commands_context *context,
    const struct client_response *response, char **next, void *arg);

/*
 * Walks the pages of a listing from base (every page unless all is
 * false), handing each to page; stops at the last, at a failed request
 * or at what page returns when it is not CLIENT_EXIT_OK.
 */
static enum client_exit
commands_walk(struct commands_context *context, const char *base,
    const char *accept, bool all, commands_page_cb *page, void *arg)
{
	struct client_request	 request = { "GET", NULL, NULL, accept, NULL };
	struct client_response	 response;
	struct url_buffer	 buffer = { 0 };
	enum client_exit	 status;
	char			*cursor = NULL, *next, *path;

	for (;;) {
		url_append_string(&buffer, base);
		url_append_query(&buffer, "cursor", cursor);
		if ((path = url_take(&buffer)) == NULL) {
			status = CLIENT_EXIT_UNREACHABLE;
			break;
		}
		request.path = path;
		next = NULL;
		status = commands_send(context, &request, &response);
		if (status == CLIENT_EXIT_OK)
			status = page(context, &response, &next, arg);
		client_response_free(&response);
		free(path);
		if (status != CLIENT_EXIT_OK || !all || next == NULL) {
			free(next);
			break;
		}
		/* A cursor that does not move would never end. */
		if (cursor != NULL && strcmp(cursor, next) == 0) {
			fprintf(context->err, "ipamctl: the daemon sent the "
			    "same cursor twice; stopping\n");
			free(next);
			status = CLIENT_EXIT_UNREACHABLE;
			break;
		}
		free(cursor);
		cursor = next;
	}
	free(cursor);
	return status;
}

/* What commands_pages gathers. */
struct commands_gathered {
	json_t	*items;
	json_t	*last;
};

/* A JSON page: its items gathered, its body kept as the last. */
static enum client_exit
commands_gather_page(struct commands_context *context,
    const struct client_response *response, char **next, void *arg)
{
	struct commands_gathered	*gathered = arg;
	json_t				*body, *cursor;

	if ((body = commands_parse(context, response)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	json_array_extend(gathered->items, json_object_get(body, "items"));
	json_decref(gathered->last);
	gathered->last = body;
	cursor = json_object_get(body, "next_cursor");
	if (json_is_string(cursor) &&
	    (*next = strdup(json_string_value(cursor))) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	return CLIENT_EXIT_OK;
}

/*
 * Reads every page of a list (one page unless all), appending the items
 * to *items; *last is the last page's body (for total, next_cursor).
 */
static enum client_exit
commands_pages(struct commands_context *context, const char *base, bool all,
    json_t *items, json_t **last)
{
	struct commands_gathered	gathered = { items, NULL };
	enum client_exit		status;

	status = commands_walk(context, base, NULL, all, commands_gather_page,
	    &gathered);
	*last = gathered.last;
	return status;
}

/* Prints a list read by commands_pages: JSON, or a table and hints. */
static void
commands_print_list(struct commands_context *context, json_t *items,
    json_t *last, void (*render)(json_t *, FILE *, bool))
{
	json_t	*total = json_object_get(last, "total");

	if (context->args->json) {
		json_t *all = json_pack("{s:O}", "items", items);

		if (total != NULL)
			json_object_set(all, "total", total);
		if (!context->args->all &&
		    json_object_get(last, "next_cursor") != NULL)
			json_object_set(all, "next_cursor",
			    json_object_get(last, "next_cursor"));
		json_dumpf(all, context->out, JSON_COMPACT);
		fputc('\n', context->out);
		json_decref(all);
		return;
	}
	render(items, context->out, context->colour);
	if (json_is_integer(total))
		fprintf(context->out, "total: %" JSON_INTEGER_FORMAT "\n",
		    json_integer_value(total));
	if (json_is_string(json_object_get(last, "next_cursor")))
		fprintf(context->err, "ipamctl: %zu rows shown; there are "
		    "more (--all for every page)\n", json_array_size(items));
}

/* ls: one page of addresses, or all of them. */
static enum client_exit
commands_ls(struct commands_context *context)
{
	struct url_buffer	 buffer = { 0 };
	enum client_exit	 status;
	json_t			*items = json_array(), *last;
	char			*path = commands_addresses_path(context, NULL);

	if (path == NULL || items == NULL)
		goto nomem;
	url_append_string(&buffer, path);
	if (context->args->count)
		url_append_query(&buffer, "count", "true");
	free(path);
	path = url_take(&buffer);
	if (path == NULL)
		goto nomem;
	status = commands_pages(context, path, context->args->all, items,
	    &last);
	if (status == CLIENT_EXIT_OK)
		commands_print_list(context, items, last, render_addresses);
	json_decref(last);
	json_decref(items);
	free(path);
	return status;
nomem:
	json_decref(items);
	free(path);
	fprintf(context->err, "ipamctl: out of memory\n");
	return CLIENT_EXIT_UNREACHABLE;
}

/* The path of one address: /api/v1/{what}/{vrf}/{ip}. */
static char *
commands_address_path(struct commands_context *context, const char *what)
{
	struct url_buffer	path = { 0 };

	url_append_string(&path, "/api/v1/");
	url_append_string(&path, what);
	url_append_string(&path, "/");
	url_append_encoded(&path, url_vrf_segment(context->args->vrf), true);
	url_append_string(&path, "/");
	url_append_encoded(&path, context->args->positionals[0], true);
	return url_take(&path);
}

/* show ADDR: the row, holders, mark, conflicts and history. */
static enum client_exit
commands_show(struct commands_context *context)
{
	struct client_response	 response;
	enum client_exit	 status;
	json_t			*body;
	char			*path = commands_address_path(context,
				    "addresses");

	if (path == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	status = commands_get_json(context, path, &body, &response);
	if (status == CLIENT_EXIT_OK) {
		if (context->args->json)
			commands_write_raw(context, &response);
		else
			render_address_detail(body, context->out,
			    context->colour);
	}
	json_decref(body);
	client_response_free(&response);
	free(path);
	return status;
}

/*
 * Prints a write's answer: a row, {"row": …} or {"addresses": […]}.  An
 * answer that is not JSON (a proxy's page, another service) is reported
 * and fails: nothing says the write was done.
 */
static enum client_exit
commands_print_written(struct commands_context *context,
    const struct client_response *response)
{
	json_t	*body, *row, *addresses;

	if ((body = commands_parse(context, response)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	if (context->args->json) {
		commands_write_raw(context, response);
		json_decref(body);
		return CLIENT_EXIT_OK;
	}
	addresses = json_object_get(body, "addresses");
	row = json_object_get(body, "row");
	if (json_is_array(addresses))
		render_addresses(addresses, context->out, context->colour);
	else if (json_is_object(row))
		render_row_line(row, context->out, context->colour);
	else if (json_is_object(body))
		render_row_line(body, context->out, context->colour);
	json_decref(body);
	return CLIENT_EXIT_OK;
}

/* reserve, quarantine and release: PUT or DELETE /marks/{vrf}/{ip}. */
static enum client_exit
commands_mark(struct commands_context *context)
{
	const struct args	*args = context->args;
	struct client_request	 request = { 0 };
	struct client_response	 response;
	enum client_exit	 status;
	json_t			*body = NULL;
	char			*path = commands_address_path(context, "marks");
	char			*text = NULL;

	request.path = path;
	request.if_match = args->if_match;
	if (args->command == ARGS_COMMAND_RELEASE) {
		request.method = "DELETE";
	} else {
		request.method = "PUT";
		if (args->command == ARGS_COMMAND_RESERVE)
			body = json_pack("{s:s, s:s}", "status", "reserved",
			    "description", args->description);
		else
			body = json_pack("{s:s, s:s}", "status", "quarantine",
			    "reason", args->reason);
		if (body != NULL && args->if_available)
			json_object_set_new(body, "if_available", json_true());
		text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
		request.body = text;
	}
	if (path == NULL || (request.method[0] == 'P' && text == NULL)) {
		fprintf(context->err, "ipamctl: out of memory\n");
		status = CLIENT_EXIT_UNREACHABLE;
		goto done;
	}
	status = commands_send(context, &request, &response);
	if (status == CLIENT_EXIT_OK)
		status = commands_print_written(context, &response);
	client_response_free(&response);
done:
	json_decref(body);
	free(text);
	free(path);
	return status;
}

/* allocate SUBNET: POST /subnets/{id}/allocate. */
static enum client_exit
commands_allocate(struct commands_context *context)
{
	const struct args	*args = context->args;
	struct client_request	 request = { "POST", NULL, NULL, NULL, NULL };
	struct client_response	 response;
	struct url_buffer	 path = { 0 };
	enum client_exit	 status = CLIENT_EXIT_UNREACHABLE;
	json_t			*body;
	char			*text = NULL;

	url_append_string(&path, "/api/v1/subnets/");
	url_append_encoded(&path, args->positionals[0], true);
	url_append_string(&path, "/allocate");
	body = json_pack("{s:I, s:s}", "count", (json_int_t)args->allocate_count,
	    "description", args->description);
	if (body != NULL)
		text = json_dumps(body, JSON_COMPACT);
	request.path = url_take(&path);
	request.body = text;
	if (request.path == NULL || text == NULL) {
		fprintf(context->err, "ipamctl: out of memory\n");
		goto done;
	}
	status = commands_send(context, &request, &response);
	if (status == CLIENT_EXIT_OK)
		status = commands_print_written(context, &response);
	client_response_free(&response);
done:
	json_decref(body);
	free(text);
	free((char *)request.path);
	return status;
}

/* A GET whose answer is shown whole: raw, as a table or as key-values. */
static enum client_exit
commands_show_one(struct commands_context *context, const char *path,
    const char *list_key, void (*render)(json_t *, FILE *, bool))
{
	struct client_response	 response;
	enum client_exit	 status;
	json_t			*body;

	status = commands_get_json(context, path, &body, &response);
	if (status == CLIENT_EXIT_OK) {
		if (context->args->json)
			commands_write_raw(context, &response);
		else if (render == NULL)
			render_key_values(body, context->out);
		else
			render(list_key != NULL ? json_object_get(body,
			    list_key) : body, context->out, context->colour);
	}
	json_decref(body);
	client_response_free(&response);
	return status;
}

/*
 * request ID: the outcome of an accepted write, with the exit status of
 * the write itself: 0 applied, 3 refused (its reason on stderr), 5 still
 * pending.  ID is a request's id ("api-...") or an import's progress
 * ("topic:partition:offset,...", which a request id never holds).
 */
static enum client_exit
commands_request(struct commands_context *context)
{
	const char		*id = context->args->positionals[0];
	bool			 import = strchr(id, ':') != NULL;
	struct url_buffer	 path = { 0 };
	struct client_request	 request = { "GET", NULL, NULL, NULL, NULL };
	struct client_response	 response;
	enum client_exit	 status;
	const char		*state, *detail;
	json_t			*body = NULL;

	url_append_string(&path, import ? "/api/v1/imports/" :
	    "/api/v1/requests/");
	url_append_encoded(&path, id, true);
	if ((request.path = url_take(&path)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	memset(&response, 0, sizeof(response));
	if (client_send(context->client, &request, &response) == -1) {
		fprintf(context->err, "ipamctl: cannot reach the daemon at %s: "
		    "%s\n", context->client->base_url, response.error);
		status = CLIENT_EXIT_UNREACHABLE;
	} else if (!import && response.status == 404) {
		/* Not decided yet (or unknown): the write is still pending. */
		fprintf(context->err, "ipamctl: %s is not decided yet "
		    "(pending, or no such request)\n", id);
		status = CLIENT_EXIT_ACCEPTED;
	} else if ((status = client_exit_for_status(response.status)) !=
	    CLIENT_EXIT_OK) {
		status = commands_report(context, &response);
	} else if ((body = commands_parse(context, &response)) == NULL) {
		status = CLIENT_EXIT_UNREACHABLE;
	} else {
		if (context->args->json)
			commands_write_raw(context, &response);
		else
			render_key_values(body, context->out);
		state = json_string_value(json_object_get(body, "state"));
		detail = json_string_value(json_object_get(body, "detail"));
		if (state != NULL && strcmp(state, "refused") == 0) {
			fprintf(context->err, "ipamctl: refused%s%s\n",
			    detail != NULL ? ": " : "", detail != NULL ? detail :
			    "");
			status = CLIENT_EXIT_CONFLICT;
		} else if (state != NULL && strcmp(state, "pending") == 0)
			status = CLIENT_EXIT_ACCEPTED;
	}
	json_decref(body);
	client_response_free(&response);
	free((char *)request.path);
	return status;
}

/* subnets [ID]: every subnet with its stats, or one. */
static enum client_exit
commands_subnets(struct commands_context *context)
{
	struct url_buffer	 path = { 0 };
	enum client_exit	 status;
	char			*text;
	bool			 one = context->args->positional_count == 1;

	url_append_string(&path, "/api/v1/subnets");
	if (one) {
		url_append_string(&path, "/");
		url_append_encoded(&path, context->args->positionals[0], true);
	} else {
		commands_query_vrf(context, &path);
	}
	text = url_take(&path);
	if (text == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	status = commands_show_one(context, text, one ? NULL : "items",
	    one ? NULL : render_subnets);
	free(text);
	return status;
}

/* conflicts, unplaced, stats and request: one GET each. */
static enum client_exit
commands_simple(struct commands_context *context)
{
	struct url_buffer	 path = { 0 };
	enum client_exit	 status;
	char			*text;

	switch (context->args->command) {
	case ARGS_COMMAND_CONFLICTS:
		url_append_string(&path, "/api/v1/conflicts");
		commands_query_vrf(context, &path);
		url_append_query(&path, "kind", context->args->kind);
		text = url_take(&path);
		status = commands_show_one(context, text, "items",
		    render_conflicts);
		break;
	case ARGS_COMMAND_UNPLACED:
		url_append_string(&path, "/api/v1/unplaced");
		commands_query_vrf(context, &path);
		text = url_take(&path);
		status = commands_show_one(context, text, NULL,
		    render_unplaced);
		break;
	default:
		text = strdup("/api/v1/stats");
		status = commands_show_one(context, text, NULL, NULL);
		break;
	}
	free(text);
	return status;
}

/* dead-letters: newest first, a page or all. */
static enum client_exit
commands_dead_letters(struct commands_context *context)
{
	struct url_buffer	 path = { 0 };
	enum client_exit	 status;
	json_t			*items = json_array(), *last = NULL;
	char			 number[32], *text;

	url_append_string(&path, "/api/v1/dead-letters");
	if (context->args->limit > 0) {
		snprintf(number, sizeof(number), "%ld", context->args->limit);
		url_append_query(&path, "limit", number);
	}
	if (context->args->raw)
		url_append_query(&path, "raw", "true");
	text = url_take(&path);
	if (text == NULL || items == NULL) {
		free(text);
		json_decref(items);
		return CLIENT_EXIT_UNREACHABLE;
	}
	status = commands_pages(context, text, context->args->all, items,
	    &last);
	if (status == CLIENT_EXIT_OK)
		commands_print_list(context, items, last, render_dead_letters);
	json_decref(last);
	json_decref(items);
	free(text);
	return status;
}

/* Says that standard output failed: exit status 4. */
static enum client_exit
commands_output_failed(struct commands_context *context)
{
	fprintf(context->err, "ipamctl: standard output: %s\n",
	    strerror(errno));
	return CLIENT_EXIT_UNREACHABLE;
}

/* A page of export --csv: written as it came. */
static enum client_exit
commands_export_csv_page(struct commands_context *context,
    const struct client_response *response, char **next, void *arg)
{
	size_t	*pages = arg;

	/*
	 * A page always names the next (empty on the last).  Without it the
	 * answer is the whole listing of a daemon older than pages: right
	 * as the first answer, a repeat of the rows written so far after it.
	 */
	if (++*pages > 1 && response->next_cursor == NULL) {
		fprintf(context->err, "ipamctl: page %zu of the export came "
		    "whole, with no Next-Cursor (an ipam-syncd older than this "
		    "ipamctl answered it); the export is not complete: run it "
		    "again once every instance is upgraded\n", *pages);
		return CLIENT_EXIT_UNREACHABLE;
	}
	if (fwrite(response->body, 1, response->body_length, context->out) <
	    response->body_length || fflush(context->out) == EOF)
		return commands_output_failed(context);
	if (response->next_cursor != NULL && response->next_cursor[0] != '\0' &&
	    (*next = strdup(response->next_cursor)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	return CLIENT_EXIT_OK;
}

/*
 * export --csv: the API's CSV pages (the header on the first), each
 * written as it comes, so that neither the daemon nor ipamctl holds more
 * than a page of a large table.  Sorted by updated_at, which no index
 * serves (every page would sort every matching row), it is one answer.
 */
static enum client_exit
commands_export_csv(struct commands_context *context)
{
	struct url_buffer	 buffer = { 0 };
	enum client_exit	 status;
	const char		*sort = context->args->sort;
	bool			 paged = sort == NULL ||
				    strstr(sort, "updated_at") == NULL;
	char			*base, *path;
	size_t			 pages = 0;

	base = commands_addresses_path(context, paged ? COMMANDS_EXPORT_PAGE :
	    NULL);
	if (base == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	url_append_string(&buffer, base);
	url_append_query(&buffer, "format", "csv");
	free(base);
	if ((path = url_take(&buffer)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	status = commands_walk(context, path, "text/csv", true,
	    commands_export_csv_page, &pages);
	free(path);
	return status;
}

/* What export --json has written. */
struct commands_json_export {
	bool	opened;		/* the array's [ */
	size_t	rows;
};

/* A page of export --json: its rows written, one a line. */
static enum client_exit
commands_export_json_page(struct commands_context *context,
    const struct client_response *response, char **next, void *arg)
{
	struct commands_json_export	*written = arg;
	size_t				 index;
	json_t				*body, *items, *item, *cursor;

	if ((body = commands_parse(context, response)) == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	/* Opened with the first answer: a refused export writes nothing. */
	if (!written->opened) {
		written->opened = true;
		if (fputc('[', context->out) == EOF) {
			json_decref(body);
			return commands_output_failed(context);
		}
	}
	items = json_object_get(body, "items");
	json_array_foreach(items, index, item) {
		if (fputs(written->rows == 0 ? "\n" : ",\n", context->out) ==
		    EOF || json_dumpf(item, context->out, JSON_COMPACT) == -1) {
			json_decref(body);
			return commands_output_failed(context);
		}
		written->rows++;
	}
	cursor = json_object_get(body, "next_cursor");
	if (json_is_string(cursor) &&
	    (*next = strdup(json_string_value(cursor))) == NULL) {
		json_decref(body);
		return CLIENT_EXIT_UNREACHABLE;
	}
	json_decref(body);
	return fflush(context->out) == EOF ? commands_output_failed(context) :
	    CLIENT_EXIT_OK;
}

/*
 * export --json: every page, written as it comes as one JSON array, a
 * row a line.  A failure after the first page leaves the array open:
 * the exit status says the export is not whole.
 */
static enum client_exit
commands_export_json(struct commands_context *context)
{
	struct commands_json_export	 written = { false, 0 };
	enum client_exit		 status;
	char				*path;

	path = commands_addresses_path(context, COMMANDS_EXPORT_PAGE);
	if (path == NULL)
		return CLIENT_EXIT_UNREACHABLE;
	status = commands_walk(context, path, NULL, true,
	    commands_export_json_page, &written);
	free(path);
	if (status == CLIENT_EXIT_OK && (fputs("\n]\n", context->out) == EOF ||
	    fflush(context->out) == EOF))
		return commands_output_failed(context);
	return status;
}

/*
 * The largest body an import sends (the daemon takes no more), and the
 * largest file it reads: the body keeps only the rows' known fields,
 * compact, so a file (an indented dump with fields of its own) may be
 * several times larger than the body it makes; bounded all the same,
 * as /dev/zero or a wrong file would never end.
 */
#define COMMANDS_IMPORT_BODY_MAX	(32 * 1024 * 1024)
#define COMMANDS_IMPORT_FILE_MAX	(256 * 1024 * 1024)

/* Reads a whole file; NULL (reported) when it cannot. */
static char *
commands_read_file(struct commands_context *context, const char *name,
    size_t *length)
{
	FILE	*file = fopen(name, "rb");
	char	*text = NULL;
	size_t	 size = 0, total = 0;
	FILE	*buffer;
	char	 chunk[65536];
	size_t	 got;
	bool	 failed = false;

	if (file == NULL) {
		fprintf(context->err, "ipamctl: %s: %s\n", name,
		    strerror(errno));
		return NULL;
	}
	buffer = open_memstream(&text, &size);
	if (buffer == NULL) {
		fclose(file);
		return NULL;
	}
	while (!failed && (got = fread(chunk, 1, sizeof(chunk), file)) > 0) {
		total += got;
		if (total > COMMANDS_IMPORT_FILE_MAX) {
			fprintf(context->err, "ipamctl: %s: larger than %d "
			    "MiB, the most an import reads; split it\n", name,
			    COMMANDS_IMPORT_FILE_MAX / (1024 * 1024));
			failed = true;
		} else if (fwrite(chunk, 1, got, buffer) != got) {
			fprintf(context->err, "ipamctl: %s: out of memory\n",
			    name);
			failed = true;
		}
	}
	if (!failed && ferror(file)) {
		fprintf(context->err, "ipamctl: %s: %s\n", name,
		    strerror(errno));
		failed = true;
	}
	fclose(file);
	if (fclose(buffer) != 0 && !failed) {
		fprintf(context->err, "ipamctl: %s: out of memory\n", name);
		failed = true;
	}
	if (failed) {
		free(text);
		return NULL;
	}
	*length = size;
	return text;
}

/* Reads and converts one table of an import; NULL (reported) on error. */
static json_t *
commands_import_table(struct commands_context *context, enum import_kind kind,
    const char *name)
{
	char	 error[512], *text;
	size_t	 length;
	json_t	*entities;

	text = commands_read_file(context, name, &length);
	if (text == NULL)
		return NULL;
	entities = import_convert(kind, name, text, length, context->err,
	    error, sizeof(error));
	free(text);
	if (entities == NULL)
		fprintf(context->err, "ipamctl: %s\n", error);
	return entities;
}

/* import (populate): files to POST /import; the daemon publishes. */
static enum client_exit
commands_import(struct commands_context *context)
{
	const struct args	*args = context->args;
	struct client_request	 request = { "POST", "/api/v1/import", NULL,
				    NULL, NULL };
	struct client_response	 response;
	enum client_exit	 status = CLIENT_EXIT_USAGE;
	json_t			*servers = NULL, *subnets = NULL, *body, *answer;
	char			*text = NULL;

	if (args->servers_file != NULL && (servers = commands_import_table(
	    context, IMPORT_SERVERS, args->servers_file)) == NULL)
		return CLIENT_EXIT_USAGE;
	if (args->subnets_file != NULL && (subnets = commands_import_table(
	    context, IMPORT_SUBNETS, args->subnets_file)) == NULL) {
		json_decref(servers);
		return CLIENT_EXIT_USAGE;
	}
	body = import_body(servers, subnets, args->dry_run);
	if (body != NULL)
		text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		fprintf(context->err, "ipamctl: out of memory\n");
		return CLIENT_EXIT_UNREACHABLE;
	}
	if (strlen(text) > COMMANDS_IMPORT_BODY_MAX) {
		fprintf(context->err, "ipamctl: the import is %zu bytes, more "
		    "than the %d MiB the daemon takes in one request; split "
		    "it\n", strlen(text), COMMANDS_IMPORT_BODY_MAX /
		    (1024 * 1024));
		free(text);
		return CLIENT_EXIT_USAGE;
	}
	request.body = text;
	status = commands_send(context, &request, &response);
	/* Not JSON: nothing says what was imported. */
	if (status == CLIENT_EXIT_OK &&
	    (answer = commands_parse(context, &response)) == NULL)
		status = CLIENT_EXIT_UNREACHABLE;
	else if (status == CLIENT_EXIT_OK) {
		if (args->json)
			commands_write_raw(context, &response);
		else
			render_import(answer, args->dry_run, context->out,
			    context->colour);
		json_decref(answer);
	}
	client_response_free(&response);
	free(text);
	return status;
}

/* Runs the command the arguments name. */
enum client_exit
commands_run(struct commands_context *context)
{
	switch (context->args->command) {
	case ARGS_COMMAND_LS:
		return commands_ls(context);
	case ARGS_COMMAND_SHOW:
		return commands_show(context);
	case ARGS_COMMAND_RESERVE:
	case ARGS_COMMAND_QUARANTINE:
	case ARGS_COMMAND_RELEASE:
		return commands_mark(context);
	case ARGS_COMMAND_ALLOCATE:
		return commands_allocate(context);
	case ARGS_COMMAND_SUBNETS:
		return commands_subnets(context);
	case ARGS_COMMAND_CONFLICTS:
	case ARGS_COMMAND_UNPLACED:
	case ARGS_COMMAND_STATS:
		return commands_simple(context);
	case ARGS_COMMAND_REQUEST:
		return commands_request(context);
	case ARGS_COMMAND_DEAD_LETTERS:
		return commands_dead_letters(context);
	case ARGS_COMMAND_EXPORT:
		if (context->args->export_format == ARGS_EXPORT_JSON)
			return commands_export_json(context);
		return commands_export_csv(context);
	case ARGS_COMMAND_IMPORT:
		return commands_import(context);
	case ARGS_COMMAND_HELP:
	case ARGS_COMMAND_NONE:
		break;
	}
	return CLIENT_EXIT_USAGE;
}
