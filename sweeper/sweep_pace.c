/* Pacing of the ping sweeper: token bucket, jitter, backoff, randomness. */
#include "sweeper/sweep_pace.h"

/* The most tokens a bucket of this rate holds. */
static double
sweep_bucket_burst(double rate)
{
	double burst = rate * (double)SWEEP_BURST_NS / 1e9;

	return burst < 1.0 ? 1.0 : burst;
}

/* Sets a bucket up. */
void
sweep_bucket_init(struct sweep_bucket *bucket, double rate, int64_t now_ns)
{
	bucket->rate = rate;
	bucket->burst = sweep_bucket_burst(rate);
	bucket->tokens = 1.0;
	bucket->last_ns = now_ns;
}

/* Changes the rate from now on. */
void
sweep_bucket_set_rate(struct sweep_bucket *bucket, double rate,
    int64_t now_ns)
{
	sweep_bucket_refill(bucket, now_ns);
	bucket->rate = rate;
	bucket->burst = sweep_bucket_burst(rate);
	if (bucket->tokens > bucket->burst)
		bucket->tokens = bucket->burst;
}

/* Adds the tokens accrued since the last call. */
void
sweep_bucket_refill(struct sweep_bucket *bucket, int64_t now_ns)
{
	if (now_ns <= bucket->last_ns)
		return;
	bucket->tokens += (double)(now_ns - bucket->last_ns) * bucket->rate /
	    1e9;
	if (bucket->tokens > bucket->burst)
		bucket->tokens = bucket->burst;
	bucket->last_ns = now_ns;
}

/* How many whole tokens there are. */
uint64_t
sweep_bucket_available(const struct sweep_bucket *bucket)
{
	/* Tokens are never negative: truncation is the floor. */
	return bucket->tokens < 1.0 ? 0 : (uint64_t)bucket->tokens;
}

/* Takes tokens. */
void
sweep_bucket_take(struct sweep_bucket *bucket, uint64_t count)
{
	bucket->tokens -= (double)count;
	if (bucket->tokens < 0.0)
		bucket->tokens = 0.0;
}

/* How long until the next whole token. */
int64_t
sweep_bucket_wait_ns(const struct sweep_bucket *bucket)
{
	double ns;

	if (bucket->tokens >= 1.0)
		return 0;
	/* Rounded up, so that the token is there when the wait is over. */
	ns = (1.0 - bucket->tokens) * 1e9 / bucket->rate;
	return (int64_t)ns + ((double)(int64_t)ns < ns);
}

/* Scales a wait by a random factor in [0.5, 1.5). */
int64_t
sweep_jitter_ns(int64_t wait_ns, uint64_t random)
{
	/* wait * random / 2^64 is in [0, wait), exactly, in integers. */
	uint64_t extra = (uint64_t)(((unsigned __int128)(uint64_t)wait_ns *
	    random) >> 64);

	if (wait_ns <= 0)
		return 0;
	/* Never 0 for a real wait: the token would still not be there. */
	return wait_ns / 2 + (int64_t)extra + (wait_ns == 1);
}

/* How long a probe waits for its reply. */
int64_t
sweep_probe_timeout_ns(long long timeout_ms, unsigned attempt)
{
	double ns = (double)timeout_ms * 1e6;
	unsigned i;

	for (i = 0; i < attempt; i++)
		ns *= 1.5;
	return (int64_t)ns;
}

/* The next splitmix64 number. */
uint64_t
sweep_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
