/* Pacing of the ping sweeper: token bucket, jitter, backoff, randomness. */
#ifndef IPAM_SWEEPER_SWEEP_PACE_H
#define IPAM_SWEEPER_SWEEP_PACE_H

#include <stdint.h>

/*
 * The bucket holds at most this long's worth of tokens (rate * 20 ms):
 * enough that a loop woken only every few milliseconds (timers have
 * millisecond resolution) still keeps to the rate, and little enough
 * that a stall is not made up with a flood.
 */
#define SWEEP_BURST_NS		20000000LL

/*
 * A token bucket: tokens accrue at rate per second up to burst, and each
 * probe sent takes one.  It starts with a single token, so that a sweep
 * starts at the rate, never with a burst.
 */
struct sweep_bucket {
	double	rate;		/* tokens per second */
	double	burst;		/* most tokens held */
	double	tokens;
	int64_t	last_ns;	/* when tokens was last brought up to date */
};

/* Sets a bucket up, holding one token at now_ns. */
void	sweep_bucket_init(struct sweep_bucket *bucket, double rate,
	    int64_t now_ns);

/* Changes the rate from now on (a reload); the tokens held are kept. */
void	sweep_bucket_set_rate(struct sweep_bucket *bucket, double rate,
	    int64_t now_ns);

/* Adds the tokens accrued since the last call, up to the burst. */
void	sweep_bucket_refill(struct sweep_bucket *bucket, int64_t now_ns);

/* How many whole tokens are there to take. */
uint64_t sweep_bucket_available(const struct sweep_bucket *bucket);

/* Takes count tokens (at most what is available). */
void	sweep_bucket_take(struct sweep_bucket *bucket, uint64_t count);

/* How long until the next whole token; 0 when one is there. */
int64_t	sweep_bucket_wait_ns(const struct sweep_bucket *bucket);

/*
 * Scales a wait by a random factor in [0.5, 1.5) (at least 1 ns), so
 * that probes do not leave on a regular beat; the bucket still bounds
 * the rate.
 */
int64_t	sweep_jitter_ns(int64_t wait_ns, uint64_t random);

/*
 * How long a probe waits for its reply: the configured timeout for the
 * first probe to an address, then half again as long for each retry.
 */
int64_t	sweep_probe_timeout_ns(long long timeout_ms, unsigned attempt);

/* The next number of a splitmix64 sequence (fast, not for secrets). */
uint64_t sweep_random(uint64_t *state);

#endif
