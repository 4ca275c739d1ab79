/* The operator page (web/): its files served under / with a strict policy. */
#ifndef IPAM_DAEMON_WEB_H
#define IPAM_DAEMON_WEB_H

#include <event2/http.h>

struct web;

/* Serves the files of dir (read at each request: an upgrade needs no restart). */
struct web	*web_new(const char *dir);

/* Serves one request whose path is outside /api/ (GET and HEAD only). */
void		 web_route(struct web *web, struct evhttp_request *request,
		    const char *path);

/* Frees. */
void		 web_free(struct web *web);

#endif
