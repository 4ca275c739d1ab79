/*
 * The host names of a conninfo looked up off the loop.  libpq resolves a
 * host name with a blocking getaddrinfo() inside PQconnectStartParams()
 * and PQconnectPoll(); with the DNS slow or away that holds the whole
 * loop (every connection, Kafka, the API, the watchdog) for the
 * resolver's timeouts.  So the names are looked up on a thread of their
 * own first, and libpq is given each address as hostaddr beside its
 * name (kept for TLS and the password file), which it connects to
 * without a lookup.
 */
#ifndef IPAM_COMMON_PGCONN_LOOKUP_H
#define IPAM_COMMON_PGCONN_LOOKUP_H

#include <stddef.h>

struct event_base;
struct pgconn_lookup;

/*
 * Looks one name up: writes its addresses (numeric text, at most max)
 * and returns how many, or -1 with why in err.
 */
typedef int pgconn_resolve_fn(const char *name, char addresses[][64],
    int max, char *err, size_t errlen);

/* How many entries a comma-separated list holds (NULL or empty: none). */
size_t	pgconn_list_count(const char *list);

/* The resolver the daemon uses: getaddrinfo(). */
pgconn_resolve_fn pgconn_resolve_system;

/*
 * Tells whether a host list names a host to look up: an entry that is
 * not a socket directory (starting with '/' or '@'), not a numeric
 * address, and has no hostaddr entry of its own (hostaddr a list of as
 * many, or NULL).
 */
int	pgconn_lookup_needed(const char *hosts, const char *hostaddrs);

/*
 * Expands host, hostaddr and port lists (hostaddr and port NULL when not
 * given, or lists of one port): each host to look up becomes one entry
 * per address it has, its name kept as host and the address as hostaddr;
 * the other entries stay as they are (an empty hostaddr entry: libpq's
 * own way).  A name that does not resolve is left out; when none is left
 * the result is -1 with the first name's error in err.  On 0, lists
 * holds the new host, hostaddr and port lists (port NULL when unchanged),
 * which the caller frees, and err the error of the first name left out
 * (empty: none).
 */
int	pgconn_hosts_expand(const char *hosts, const char *hostaddrs,
	    const char *ports, pgconn_resolve_fn *resolve, char *lists[3],
	    char *err, size_t errlen);

/* Called on the loop when a lookup is done (not after it is dropped). */
typedef void pgconn_lookup_cb(struct pgconn_lookup *lookup, void *arg);

/*
 * Starts looking up the names of the lists (copied) on a thread; NULL
 * when no thread could be had (too many lookups under way, or none made).
 */
struct pgconn_lookup *pgconn_lookup_start(struct event_base *base,
	    const char *hosts, const char *hostaddrs, const char *ports,
	    pgconn_lookup_cb *cb, void *arg);

/*
 * The outcome of a finished lookup: 0 with the lists (taken by the
 * caller, see pgconn_hosts_expand()), or -1 with why in err.
 */
int	pgconn_lookup_result(struct pgconn_lookup *lookup, char *lists[3],
	    char *err, size_t errlen);

/*
 * Lets a lookup go, finished or not: its callback never runs, and a
 * thread still waiting on the resolver frees it when it is done.
 */
void	pgconn_lookup_drop(struct pgconn_lookup *lookup);

#endif
