/* The operator API's rate limit: a token bucket for each client. */
#ifndef IPAM_DAEMON_RATELIMIT_H
#define IPAM_DAEMON_RATELIMIT_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Bytes of the key that seeds the table's hash. */
#define RATELIMIT_KEY_LEN	16

struct ratelimit;

/*
 * A table of at most capacity clients (a power of two, 8 or more), hashed
 * under key (random bytes in the daemon, fixed ones in tests).  The caller
 * owns it and frees it with ratelimit_free().
 */
struct ratelimit *ratelimit_new(size_t capacity,
		    const unsigned char key[RATELIMIT_KEY_LEN]);
void		 ratelimit_free(struct ratelimit *limiter);

/*
 * Takes a token from the bucket of the client at address, which refills
 * at rate tokens a second up to twice rate; false when it is empty.  A
 * client is its IPv4 address (an IPv4-mapped IPv6 address counts as the
 * IPv4 one) or the /64 of its IPv6 address, since one host commonly holds
 * a whole /64.  A rate of 0 takes nothing and always answers true.
 */
bool		 ratelimit_take(struct ratelimit *limiter,
		    const struct sockaddr *address, double rate,
		    const struct timespec *now);

#endif
