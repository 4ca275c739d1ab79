/*
 * The operator API's rate limit: a token bucket for each client, in a
 * table of fixed size keyed by a secret hash, so that no client can
 * choose addresses that share another client's bucket.
 */
#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/siphash.h"
#include "daemon/ratelimit.h"

/* Slots a client may sit in, from the one its hash names. */
#define RATELIMIT_WINDOW	8

/* A client: its family (4 or 6) and address, or the /64 of an IPv6 one. */
struct ratelimit_client {
	unsigned char	bytes[9];
};

/* One client's bucket. */
struct ratelimit_slot {
	struct ratelimit_client	client;
	bool			used;
	struct timespec		at;	/* when tokens was counted */
	double			tokens;
};

struct ratelimit {
	unsigned char		 key[RATELIMIT_KEY_LEN];
	size_t			 mask;
	struct ratelimit_slot	*slots;
};

/* Makes the client of an address; false for a family that has none. */
static bool
ratelimit_client_of(const struct sockaddr *address,
    struct ratelimit_client *client)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };
	const unsigned char *bytes;

	memset(client, 0, sizeof(*client));
	if (address->sa_family == AF_INET) {
		client->bytes[0] = 4;
		memcpy(client->bytes + 1, &((const struct sockaddr_in *)
		    (const void *)address)->sin_addr, 4);
		return true;
	}
	if (address->sa_family != AF_INET6)
		return false;
	bytes = ((const struct sockaddr_in6 *)(const void *)address)->
	    sin6_addr.s6_addr;
	if (memcmp(bytes, mapped, sizeof(mapped)) == 0) {
		client->bytes[0] = 4;
		memcpy(client->bytes + 1, bytes + 12, 4);
	} else {
		client->bytes[0] = 6;
		memcpy(client->bytes + 1, bytes, 8);
	}
	return true;
}

struct ratelimit *
ratelimit_new(size_t capacity, const unsigned char key[RATELIMIT_KEY_LEN])
{
	struct ratelimit *limiter;

	if (capacity < RATELIMIT_WINDOW || (capacity & (capacity - 1)) != 0)
		fatalx("ratelimit: capacity %zu is not a power of two of %d "
		    "or more", capacity, RATELIMIT_WINDOW);
	if ((limiter = calloc(1, sizeof(*limiter))) == NULL ||
	    (limiter->slots = calloc(capacity, sizeof(*limiter->slots))) ==
	    NULL)
		fatal("ratelimit: calloc");
	memcpy(limiter->key, key, RATELIMIT_KEY_LEN);
	limiter->mask = capacity - 1;
	return limiter;
}

void
ratelimit_free(struct ratelimit *limiter)
{
	if (limiter == NULL)
		return;
	free(limiter->slots);
	free(limiter);
}

/* The tokens of a slot at now, refilled since it was last counted. */
static double
ratelimit_tokens(const struct ratelimit_slot *slot, double rate,
    const struct timespec *now)
{
	double elapsed, tokens;

	elapsed = clock_seconds_between(&slot->at, now);
	/* A clock read before the slot's (never, being monotonic) adds none. */
	tokens = slot->tokens + (elapsed > 0 ? elapsed * rate : 0);
	return tokens > 2.0 * rate ? 2.0 * rate : tokens;
}

bool
ratelimit_take(struct ratelimit *limiter, const struct sockaddr *address,
    double rate, const struct timespec *now)
{
	struct ratelimit_client client;
	struct ratelimit_slot *slot, *found = NULL, *spare = NULL;
	double tokens, spare_tokens = -1.0;
	uint64_t hash;
	size_t i;

	if (rate <= 0 || !ratelimit_client_of(address, &client))
		return true;
	hash = siphash24(limiter->key, client.bytes, sizeof(client.bytes));
	for (i = 0; i < RATELIMIT_WINDOW; i++) {
		slot = &limiter->slots[(hash + i) & limiter->mask];
		if (slot->used && memcmp(&slot->client, &client,
		    sizeof(client)) == 0) {
			found = slot;
			break;
		}
		/*
		 * The client's place when it has none: a free slot, else the
		 * fullest bucket of the window — a full one is as good as
		 * none, and a fuller one was used longer ago or less.  Its
		 * tokens go with the place: evicting never makes tokens, so
		 * however many addresses one sends from, the table hands out
		 * no more than its buckets refill.
		 */
		tokens = slot->used ? ratelimit_tokens(slot, rate, now) :
		    3.0 * rate;
		if (tokens > spare_tokens) {
			spare = slot;
			spare_tokens = tokens;
		}
	}
	if (found == NULL) {
		found = spare;
		found->tokens = found->used ? spare_tokens : 2.0 * rate;
		found->used = true;
		found->client = client;
	} else
		found->tokens = ratelimit_tokens(found, rate, now);
	found->at = *now;
	if (found->tokens < 1.0)
		return false;
	found->tokens -= 1.0;
	return true;
}
