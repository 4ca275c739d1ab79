/* The host names of a conninfo looked up off the loop (pgconn_lookup.h). */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/pgconn_lookup.h"

/* Addresses kept of one name. */
#define LOOKUP_ADDRESSES_MAX	16

/*
 * Lookups under way at once, in the whole process: a resolver that hangs
 * holds a thread until its own timeouts end it, and attempts go on
 * meanwhile (a connection of the apply, the sweeper, the retention and
 * up to 32 of the API's reads; a few each).
 */
#define LOOKUP_THREADS_MAX	128

static int	lookup_threads;

struct pgconn_lookup {
	int			 refs;		/* the loop's and the thread's */
	int			 fds[2];	/* the thread says it is done */
	struct event		*done;
	pgconn_lookup_cb	*cb;
	void			*arg;
	char			*hosts;
	char			*hostaddrs;
	char			*ports;
	/* Written by the thread before it says it is done. */
	int			 rc;
	char			*lists[3];
	char			 err[512];
};

/* A growing comma-separated list. */
struct lookup_list {
	char	*text;
	size_t	 len;
	size_t	 size;
	size_t	 count;
};

/* Copies a string, keeping NULL as NULL. */
static char *
lookup_strdup(const char *text)
{
	char *copy;

	if (text == NULL)
		return NULL;
	if ((copy = strdup(text)) == NULL)
		fatal("postgresql: strdup");
	return copy;
}

size_t
pgconn_list_count(const char *list)
{
	size_t n = 1;

	if (list == NULL || *list == '\0')
		return 0;
	for (; *list != '\0'; list++)
		if (*list == ',')
			n++;
	return n;
}

/* Entry i of a comma-separated list, into buf (cut to fit). */
static const char *
lookup_entry(const char *list, size_t i, char *buf, size_t buflen)
{
	const char *end;

	while (i-- > 0)
		list = strchr(list, ',') + 1;
	end = strchr(list, ',');
	snprintf(buf, buflen, "%.*s", (int)(end != NULL ?
	    (size_t)(end - list) : strlen(list)), list);
	return buf;
}

/* Adds an entry to a list. */
static void
lookup_add(struct lookup_list *list, const char *entry)
{
	size_t need = list->len + strlen(entry) + 2;

	if (need > list->size) {
		list->size = need * 2;
		if ((list->text = realloc(list->text, list->size)) == NULL)
			fatal("postgresql: realloc");
	}
	list->len += (size_t)snprintf(list->text + list->len,
	    list->size - list->len, "%s%s", list->count > 0 ? "," : "", entry);
	list->count++;
}

/* Whether one entry is a name to look up (see pgconn_lookup_needed()). */
static bool
lookup_entry_needed(const char *host, const char *hostaddr)
{
	unsigned char bytes[16];

	if (hostaddr[0] != '\0' || host[0] == '\0' || host[0] == '/' ||
	    host[0] == '@')
		return false;
	return inet_pton(AF_INET, host, bytes) != 1 &&
	    inet_pton(AF_INET6, host, bytes) != 1;
}

int
pgconn_lookup_needed(const char *hosts, const char *hostaddrs)
{
	char host[256], hostaddr[256] = "";
	size_t n = pgconn_list_count(hosts), i;
	bool paired = pgconn_list_count(hostaddrs) == n;

	for (i = 0; i < n; i++) {
		lookup_entry(hosts, i, host, sizeof(host));
		if (paired)
			lookup_entry(hostaddrs, i, hostaddr, sizeof(hostaddr));
		if (lookup_entry_needed(host, hostaddr))
			return 1;
	}
	return 0;
}

int
pgconn_resolve_system(const char *name, char addresses[][64], int max,
    char *err, size_t errlen)
{
	struct addrinfo hints, *found, *ai;
	char text[64];
	int rc, count = 0, i;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(name, NULL, &hints, &found)) != 0) {
		snprintf(err, errlen, "could not translate host name \"%s\" to "
		    "address: %s", name, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return -1;
	}
	for (ai = found; ai != NULL && count < max; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof(text),
		    NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		for (i = 0; i < count && strcmp(addresses[i], text) != 0; i++)
			;
		if (i == count)
			snprintf(addresses[count++], 64, "%s", text);
	}
	freeaddrinfo(found);
	if (count == 0) {
		snprintf(err, errlen, "could not translate host name \"%s\" to "
		    "address: no address", name);
		return -1;
	}
	return count;
}

int
pgconn_hosts_expand(const char *hosts, const char *hostaddrs,
    const char *ports, pgconn_resolve_fn *resolve, char *lists[3],
    char *err, size_t errlen)
{
	struct lookup_list out[3];
	char host[256], hostaddr[256] = "", port[64] = "", why[512];
	char addresses[LOOKUP_ADDRESSES_MAX][64];
	size_t n = pgconn_list_count(hosts), i;
	bool paired = pgconn_list_count(hostaddrs) == n;
	bool per_port = n > 1 && pgconn_list_count(ports) == n;
	int k, j;

	memset(out, 0, sizeof(out));
	lists[0] = lists[1] = lists[2] = NULL;
	if (errlen > 0)
		err[0] = '\0';
	for (i = 0; i < n; i++) {
		lookup_entry(hosts, i, host, sizeof(host));
		if (paired)
			lookup_entry(hostaddrs, i, hostaddr, sizeof(hostaddr));
		if (per_port)
			lookup_entry(ports, i, port, sizeof(port));
		if (!lookup_entry_needed(host, hostaddr)) {
			lookup_add(&out[0], host);
			lookup_add(&out[1], hostaddr);
			lookup_add(&out[2], port);
			continue;
		}
		if ((k = resolve(host, addresses, LOOKUP_ADDRESSES_MAX, why,
		    sizeof(why))) <= 0) {
			/* Left out, as libpq goes past a host it cannot find. */
			if (errlen > 0 && err[0] == '\0')
				snprintf(err, errlen, "%s", why);
			continue;
		}
		for (j = 0; j < k; j++) {
			lookup_add(&out[0], host);
			lookup_add(&out[1], addresses[j]);
			lookup_add(&out[2], port);
		}
	}
	if (out[0].count == 0) {
		for (i = 0; i < 3; i++)
			free(out[i].text);
		if (errlen > 0 && err[0] == '\0')
			snprintf(err, errlen, "no host to connect to");
		return -1;
	}
	lists[0] = out[0].text;
	lists[1] = out[1].text;
	if (per_port)
		lists[2] = out[2].text;
	else
		free(out[2].text);
	return 0;
}

/* Lets one holder of a lookup go; the last frees it. */
static void
lookup_release(struct pgconn_lookup *lookup)
{
	size_t i;

	if (__atomic_sub_fetch(&lookup->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	close(lookup->fds[0]);
	close(lookup->fds[1]);
	for (i = 0; i < 3; i++)
		free(lookup->lists[i]);
	free(lookup->hosts);
	free(lookup->hostaddrs);
	free(lookup->ports);
	free(lookup);
}

/* The thread: looks the names up, says so, lets go. */
static void *
lookup_thread(void *arg)
{
	struct pgconn_lookup *lookup = arg;
	char byte = 1;

	lookup->rc = pgconn_hosts_expand(lookup->hosts, lookup->hostaddrs,
	    lookup->ports, pgconn_resolve_system, lookup->lists, lookup->err,
	    sizeof(lookup->err));
	(void)send(lookup->fds[1], &byte, 1, MSG_NOSIGNAL);
	lookup_release(lookup);
	__atomic_sub_fetch(&lookup_threads, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

/* The thread is done: on the loop. */
static void
lookup_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn_lookup *lookup = arg;
	char byte;

	if (recv(fd, &byte, 1, MSG_DONTWAIT) != 1)
		return;
	lookup->cb(lookup, lookup->arg);
}

struct pgconn_lookup *
pgconn_lookup_start(struct event_base *base, const char *hosts,
    const char *hostaddrs, const char *ports, pgconn_lookup_cb *cb, void *arg)
{
	struct pgconn_lookup *lookup;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int rc;

	if (__atomic_add_fetch(&lookup_threads, 1, __ATOMIC_ACQ_REL) >
	    LOOKUP_THREADS_MAX) {
		__atomic_sub_fetch(&lookup_threads, 1, __ATOMIC_ACQ_REL);
		return NULL;
	}
	if ((lookup = calloc(1, sizeof(*lookup))) == NULL)
		fatal("postgresql: calloc");
	lookup->refs = 2;
	lookup->cb = cb;
	lookup->arg = arg;
	lookup->hosts = lookup_strdup(hosts);
	lookup->hostaddrs = lookup_strdup(hostaddrs);
	lookup->ports = lookup_strdup(ports);
	/* Out of descriptors: the attempt waits, as for a thread. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    lookup->fds) == -1) {
		log_warnx("postgresql: no socket to hear a lookup on: %s",
		    strerror(errno));
		free(lookup->hosts);
		free(lookup->hostaddrs);
		free(lookup->ports);
		free(lookup);
		__atomic_sub_fetch(&lookup_threads, 1, __ATOMIC_ACQ_REL);
		return NULL;
	}
	if ((lookup->done = event_new(base, lookup->fds[0], EV_READ,
	    lookup_done_cb, lookup)) == NULL)
		fatalx("postgresql: event_new failed");
	event_add(lookup->done, NULL);
	/* The thread takes no signal: they are the loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, lookup_thread, lookup);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warnx("postgresql: no thread to look host names up: %s",
		    strerror(rc));
		__atomic_sub_fetch(&lookup_threads, 1, __ATOMIC_ACQ_REL);
		lookup->refs = 1;
		pgconn_lookup_drop(lookup);
		return NULL;
	}
	return lookup;
}

int
pgconn_lookup_result(struct pgconn_lookup *lookup, char *lists[3], char *err,
    size_t errlen)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		lists[i] = lookup->lists[i];
		lookup->lists[i] = NULL;
	}
	snprintf(err, errlen, "%s", lookup->err);
	return lookup->rc;
}

void
pgconn_lookup_drop(struct pgconn_lookup *lookup)
{
	if (lookup == NULL)
		return;
	if (lookup->done != NULL) {
		event_free(lookup->done);
		lookup->done = NULL;
	}
	lookup_release(lookup);
}
