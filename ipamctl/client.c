/* HTTP requests to the daemon's API (libcurl), and what their status means. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ipamctl/client.h"
#include "ipamctl/url.h"

/* How long to wait for a connection; a write then waits as the API does. */
#define CLIENT_CONNECT_TIMEOUT_SECONDS	10L

/* A read told to wait is asked at most this often, each wait at most so long. */
#define CLIENT_RETRIES			6
#define CLIENT_RETRY_MAX_SECONDS	30L

/* Reads the token on the first line of a file. */
char *
client_read_token(const char *path, char *error, size_t error_size)
{
	FILE	*file;
	char	*line = NULL;
	size_t	 size = 0;
	ssize_t	 length;

	file = fopen(path, "r");
	if (file == NULL) {
		snprintf(error, error_size, "token file %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	errno = 0;
	length = getline(&line, &size, file);
	/* A folder opens, and fails to read (EISDIR). */
	if (length == -1 && ferror(file)) {
		snprintf(error, error_size, "token file %s: %s", path,
		    strerror(errno != 0 ? errno : EIO));
		fclose(file);
		free(line);
		return NULL;
	}
	fclose(file);
	while (length > 0 && strchr(" \t\r\n", line[length - 1]) != NULL)
		line[--length] = '\0';
	if (length <= 0) {
		snprintf(error, error_size, "token file %s: no token on its "
		    "first line", path);
		free(line);
		return NULL;
	}
	return line;
}

/* Sets a client up: base URL, token, requester and timeout. */
int
client_init(struct client *client, const char *base_url,
    const char *token_file, const char *requester, long timeout,
    char *error, size_t error_size)
{
	size_t	length;

	memset(client, 0, sizeof(*client));
	client->timeout = timeout;
	client->base_url = strdup(base_url);
	if (client->base_url == NULL)
		goto nomem;
	length = strlen(client->base_url);
	while (length > 0 && client->base_url[length - 1] == '/')
		client->base_url[--length] = '\0';
	if (token_file != NULL) {
		client->token = client_read_token(token_file, error,
		    error_size);
		if (client->token == NULL)
			goto fail;
	}
	if (requester != NULL && requester[0] != '\0') {
		client->requester = strdup(requester);
		if (client->requester == NULL)
			goto nomem;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(error, error_size, "libcurl did not initialise");
		goto fail;
	}
	client->curl = curl_easy_init();
	if (client->curl == NULL) {
		snprintf(error, error_size, "libcurl did not initialise");
		goto fail;
	}
	return 0;
nomem:
	snprintf(error, error_size, "out of memory");
fail:
	client_close(client);
	return -1;
}

/* Frees a client, wiping its token. */
void
client_close(struct client *client)
{
	if (client->curl != NULL) {
		curl_easy_cleanup(client->curl);
		curl_global_cleanup();
	}
	free(client->base_url);
	if (client->token != NULL) {
		/* The token is a secret: leave no copy in freed memory. */
		explicit_bzero(client->token, strlen(client->token));
		free(client->token);
	}
	free(client->requester);
	memset(client, 0, sizeof(*client));
}

/* libcurl's body callback: appends to the response's buffer. */
static size_t
client_on_body(char *data, size_t size, size_t count, void *arg)
{
	struct url_buffer *body = arg;

	url_append(body, data, size * count);
	return body->failed ? 0 : size * count;
}

/*
 * Keeps a header's value in *kept when the line is that header (name
 * with its colon, in any case): 1 when it was, 0 when not, -1 when out
 * of memory.
 */
static int
client_keep_header(const char *data, size_t length, const char *name,
    char **kept)
{
	size_t name_length = strlen(name);
	const char *value = data + name_length;
	size_t value_length = length - name_length;

	if (length < name_length || strncasecmp(data, name, name_length) != 0)
		return 0;
	while (value_length > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		value_length--;
	}
	while (value_length > 0 &&
	    strchr(" \t\r\n", value[value_length - 1]) != NULL)
		value_length--;
	free(*kept);
	*kept = strndup(value, value_length);
	return *kept != NULL ? 1 : -1;
}

/* libcurl's header callback: keeps Location, Next-Cursor, Retry-After. */
static size_t
client_on_header(char *data, size_t size, size_t count, void *arg)
{
	struct client_response	*response = arg;
	size_t			 length = size * count;

	int			 kept;

	kept = client_keep_header(data, length, "location:",
	    &response->location);
	if (kept == 0)
		kept = client_keep_header(data, length, "next-cursor:",
		    &response->next_cursor);
	if (kept == 0)
		kept = client_keep_header(data, length, "retry-after:",
		    &response->retry_after);
	/* Out of memory: a length not taken ends the transfer. */
	return kept == -1 ? 0 : length;
}

/* Adds "name: value" to a header list; returns false when out of memory. */
static bool
client_add_header(struct curl_slist **headers, const char *name,
    const char *value)
{
	struct curl_slist	*grown;
	char			*line;

	if (asprintf(&line, "%s: %s", name, value) == -1)
		return false;
	grown = curl_slist_append(*headers, line);
	explicit_bzero(line, strlen(line));
	free(line);
	if (grown == NULL)
		return false;
	*headers = grown;
	return true;
}

/* Adds the bearer token, leaving no copy of it in freed memory. */
static bool
client_add_authorization(struct curl_slist **headers, const char *token)
{
	char	*value;
	bool	 added;

	if (asprintf(&value, "Bearer %s", token) == -1)
		return false;
	added = client_add_header(headers, "Authorization", value);
	explicit_bzero(value, strlen(value));
	free(value);
	return added;
}

/* Sends one request and reads the whole answer. */
static int
client_send_once(struct client *client, const struct client_request *request,
    struct client_response *response)
{
	CURL			*curl = client->curl;
	struct curl_slist	*headers = NULL;
	struct url_buffer	 body = { 0 }, url = { 0 };
	char			*full_url = NULL;
	CURLcode		 code;
	double			 connected = 0;
	int			 rc = -1;

	memset(response, 0, sizeof(*response));
	url_append_string(&url, client->base_url);
	/* A path its caller could not make (out of memory): no request. */
	if (request->path != NULL)
		url_append_string(&url, request->path);
	full_url = request->path != NULL ? url_take(&url) : NULL;
	if (full_url == NULL ||
	    !client_add_header(&headers, "Accept",
	    request->accept != NULL ? request->accept : "application/json") ||
	    (request->body != NULL &&
	    !client_add_header(&headers, "Content-Type", "application/json")) ||
	    (client->token != NULL && !client_add_authorization(&headers,
	    client->token)) ||
	    (client->requester != NULL &&
	    !client_add_header(&headers, "X-Requester", client->requester)) ||
	    (request->if_match != NULL &&
	    !client_add_header(&headers, "If-Match", request->if_match))) {
		snprintf(response->error, sizeof(response->error),
		    "out of memory");
		goto done;
	}
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, full_url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request->method);
	if (strcmp(request->method, "GET") != 0 &&
	    strcmp(request->method, "DELETE") != 0)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
		    request->body != NULL ? request->body : "");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, client_on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, client_on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, response);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
	    CLIENT_CONNECT_TIMEOUT_SECONDS);
	/*
	 * A daemon that takes the connection and then sends nothing (stopped,
	 * hung) is given up on after client->timeout seconds, not waited
	 * for forever; a reply that is coming keeps the transfer alive.
	 */
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, client->timeout);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, response->error);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "ipamctl");

	code = curl_easy_perform(curl);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	/* Connected, then nothing within the timeout (not a connect timeout). */
	if (code == CURLE_OPERATION_TIMEDOUT &&
	    curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME, &connected) ==
	    CURLE_OK && connected > 0) {
		snprintf(response->error, sizeof(response->error), "the daemon "
		    "sent nothing for %ld s (--timeout): it may be stopped or "
		    "hung; a write it took may still be applied",
		    client->timeout);
		goto done;
	}
	if (code != CURLE_OK) {
		if (response->error[0] == '\0')
			snprintf(response->error, sizeof(response->error),
			    "%s", curl_easy_strerror(code));
		goto done;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
	url_append(&body, "", 0);
	response->body_length = body.length;
	response->body = url_take(&body);
	if (response->body == NULL) {
		snprintf(response->error, sizeof(response->error),
		    "out of memory");
		response->status = 0;
		goto done;
	}
	rc = 0;
done:
	url_buffer_free(&body);
	url_buffer_free(&url);
	curl_slist_free_all(headers);
	free(full_url);
	return rc;
}

/* Frees an answer's body and headers. */
void
client_response_free(struct client_response *response)
{
	free(response->body);
	free(response->location);
	free(response->next_cursor);
	free(response->retry_after);
	response->body = response->location = response->next_cursor = NULL;
	response->retry_after = NULL;
}

/*
 * The seconds a 429 or 503 asks a read to wait before it asks again (its
 * Retry-After, 1 to CLIENT_RETRY_MAX_SECONDS), or 0 when it is not to be
 * asked again: a write (a 503 may come after it was published: sent
 * again, it would be applied twice), or no such answer.
 */
static long
client_retry_seconds(const struct client_request *request,
    const struct client_response *response)
{
	char *end;
	long seconds;

	if (strcmp(request->method, "GET") != 0 ||
	    (response->status != 429 && response->status != 503) ||
	    response->retry_after == NULL)
		return 0;
	seconds = strtol(response->retry_after, &end, 10);
	if (end == response->retry_after || *end != '\0' || seconds < 1)
		return 0;
	return seconds < CLIENT_RETRY_MAX_SECONDS ? seconds :
	    CLIENT_RETRY_MAX_SECONDS;
}

/*
 * Sends one request and reads the whole answer.  A read the daemon asks
 * to wait (rate limit, too many reads, starting) is asked again after the
 * wait, a few times: a walk of many pages goes on instead of stopping
 * halfway with what it printed.
 */
int
client_send(struct client *client, const struct client_request *request,
    struct client_response *response)
{
	long seconds;
	int attempt, rc;

	for (attempt = 1;; attempt++) {
		rc = client_send_once(client, request, response);
		if (rc == -1 || attempt == CLIENT_RETRIES ||
		    (seconds = client_retry_seconds(request, response)) == 0)
			return rc;
		fprintf(stderr, "ipamctl: the daemon answered %ld and asks to "
		    "wait %ld s; asking again\n", response->status, seconds);
		client_response_free(response);
		sleep((unsigned)seconds);
	}
}

/* The exit status an HTTP status stands for. */
enum client_exit
client_exit_for_status(long status)
{
	if (status == 202)
		return CLIENT_EXIT_ACCEPTED;
	if (status >= 200 && status < 300)
		return CLIENT_EXIT_OK;
	if (status == 409 || status == 412)
		return CLIENT_EXIT_CONFLICT;
	if (status >= 400 && status < 500)
		return CLIENT_EXIT_REFUSED;
	return CLIENT_EXIT_UNREACHABLE;
}
