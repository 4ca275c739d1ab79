/* HTTP on the event loop: /healthz, /readyz and /metrics, bounded and local. */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "common/log.h"
#include "daemon/http.h"

/* Bounds on what a client may send and how long it may take. */
#define HTTP_MAX_HEADERS	8192
#define HTTP_MAX_BODY		1024
#define HTTP_TIMEOUT_SECONDS	10

struct http {
	struct evhttp		*server;
	struct http_handlers	 handlers;
};

/* Sends a plain-text response. */
static void
http_reply(struct evhttp_request *request, int code, const char *reason,
    const char *content_type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(request),
	    "Content-Type", content_type);
	evhttp_add_header(evhttp_request_get_output_headers(request),
	    "Cache-Control", "no-store");
	evhttp_send_reply(request, code, reason, body);
}

/* Refuses anything but GET and HEAD; returns false when it did. */
static bool
http_method_allowed(struct evhttp_request *request)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(request);

	if (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(request), "Allow",
	    "GET, HEAD");
	evhttp_send_error(request, 405, "Method Not Allowed");
	return false;
}

/* /healthz: the loop is alive (it answered). */
static void
http_healthz(struct evhttp_request *request, void *arg)
{
	struct evbuffer *body;

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

	if (!http_method_allowed(request))
		return;
	body = evbuffer_new();
	http->handlers.metrics(http->handlers.arg, body);
	http_reply(request, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    body);
	evbuffer_free(body);
}

/* Anything else. */
static void
http_not_found(struct evhttp_request *request, void *arg)
{
	evhttp_send_error(request, 404, "Not Found");
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

/* Listens and serves. */
struct http *
http_new(struct event_base *base, const char *address_text,
    const struct http_handlers *handlers, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage address;
	char text[INET6_ADDRSTRLEN];
	struct http *http;
	socklen_t size;
	int length, port;
	evutil_socket_t fd;

	if (http_parse_listen(address_text, &address, &length, err, errlen) == -1)
		return NULL;
	if ((http = calloc(1, sizeof(*http))) == NULL)
		fatal("http: calloc");
	http->handlers = *handlers;
	if ((http->server = evhttp_new(base)) == NULL)
		fatalx("http: evhttp_new failed");
	evhttp_set_max_headers_size(http->server, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http->server, HTTP_MAX_BODY);
	evhttp_set_timeout(http->server, HTTP_TIMEOUT_SECONDS);
	evhttp_set_allowed_methods(http->server, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE);
	evhttp_set_cb(http->server, "/healthz", http_healthz, http);
	evhttp_set_cb(http->server, "/readyz", http_readyz, http);
	evhttp_set_cb(http->server, "/metrics", http_metrics, http);
	evhttp_set_gencb(http->server, http_not_found, http);

	fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1 || evutil_make_listen_socket_reuseable(fd) == -1 ||
	    bind(fd, (struct sockaddr *)&address, (socklen_t)length) == -1 ||
	    listen(fd, 64) == -1) {
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

/* Stops listening and frees. */
void
http_free(struct http *http)
{
	if (http == NULL)
		return;
	if (http->server != NULL)
		evhttp_free(http->server);
	free(http);
}
