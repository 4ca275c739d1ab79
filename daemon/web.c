/* The operator page (web/): its files served under / with a strict policy. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "common/log.h"
#include "daemon/http.h"
#include "daemon/web.h"

/* The largest file served; the page's files are a few kilobytes. */
#define WEB_FILE_MAX	(4 * 1024 * 1024)

/*
 * Scripts and styles only from this origin, no inline script, no frames,
 * no plugins, fetches only to this origin: an injected hostname cannot
 * run.
 */
#define WEB_POLICY	"default-src 'none'; script-src 'self'; " \
	"style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct web {
	char	*dir;
};

/* The content type of a file, by its name. */
static const char *
web_type(const char *name)
{
	static const struct {
		const char *suffix, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".json", "application/json" },
	};
	size_t i, len = strlen(name), n;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		n = strlen(types[i].suffix);
		if (len > n && strcmp(name + len - n, types[i].suffix) == 0)
			return types[i].type;
	}
	return NULL;
}

/* Sends a plain error with the page's headers. */
static void
web_error(struct evhttp_request *request, int code, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(request),
	    "Content-Type", "text/plain; charset=utf-8");
	evbuffer_add_printf(body, "%s\n", text);
	http_send(request, code, NULL, body);
	evbuffer_free(body);
}

/*
 * Tells whether a request path names a file of the page: letters, digits,
 * '-', '_' and one '.', in at most one folder level, never "..".
 */
static bool
web_path_safe(const char *path)
{
	size_t i, slashes = 0;

	if (path[0] != '/' || strstr(path, "..") != NULL)
		return false;
	for (i = 1; path[i] != '\0'; i++) {
		if (path[i] == '/') {
			if (++slashes > 1 || path[i - 1] == '/')
				return false;
		} else if (!(path[i] >= 'a' && path[i] <= 'z') &&
		    !(path[i] >= 'A' && path[i] <= 'Z') &&
		    !(path[i] >= '0' && path[i] <= '9') &&
		    path[i] != '-' && path[i] != '_' && path[i] != '.')
			return false;
	}
	return i < 128;
}

/* Serves one request outside /api/. */
void
web_route(struct web *web, struct evhttp_request *request, const char *path)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(request);
	enum evhttp_cmd_type method = evhttp_request_get_command(request);
	struct evbuffer *body;
	const char *raw;
	const char *type;
	char file[PATH_MAX];
	struct stat st;
	int fd;

	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(headers, "Allow", "GET, HEAD");
		web_error(request, 405, "the page is read with GET");
		return;
	}
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	evhttp_add_header(headers, "Content-Security-Policy", WEB_POLICY);
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
	evhttp_add_header(headers, "X-Frame-Options", "DENY");
	/*
	 * The page's file names need no percent-encoding: a path that has
	 * some is none of them (and "%00" would end the decoded path early,
	 * "/app.js%00.txt" reading as "/app.js").
	 */
	raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(request));
	if ((raw != NULL && strchr(raw, '%') != NULL) ||
	    !web_path_safe(path) || (type = web_type(path)) == NULL) {
		web_error(request, 404, "not found");
		return;
	}
	snprintf(file, sizeof(file), "%s%s", web->dir, path);
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno != ENOENT)
			log_warn("web: %s", file);
		web_error(request, 404, "not found");
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > WEB_FILE_MAX) {
		close(fd);
		web_error(request, 404, "not found");
		return;
	}
	body = evbuffer_new();
	/* evbuffer_add_file takes the descriptor and closes it. */
	if (st.st_size > 0 && evbuffer_add_file(body, fd, 0, st.st_size) ==
	    -1) {
		close(fd);	/* libevent 2.1 keeps it only on success */
		evbuffer_free(body);
		web_error(request, 500, "cannot read the file");
		return;
	}
	if (st.st_size == 0)
		close(fd);
	evhttp_add_header(headers, "Content-Type", type);
	evhttp_add_header(headers, "Cache-Control", "no-cache");
	http_send(request, 200, "OK", body);
	evbuffer_free(body);
}

/* Serves the files of dir. */
struct web *
web_new(const char *dir)
{
	struct web *web;

	if ((web = calloc(1, sizeof(*web))) == NULL ||
	    (web->dir = strdup(dir)) == NULL)
		fatal("web: calloc");
	return web;
}

/* Frees. */
void
web_free(struct web *web)
{
	if (web == NULL)
		return;
	free(web->dir);
	free(web);
}
