/* The monotonic clock in the units the daemon's deadlines count. */
#ifndef IPAM_COMMON_CLOCK_H
#define IPAM_COMMON_CLOCK_H

#include <time.h>

/* Milliseconds since an instant of CLOCK_MONOTONIC. */
static inline long long
clock_ms_since(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - since->tv_sec) * 1000 +
	    (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Seconds from a to b, instants of one clock. */
static inline double
clock_seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Seconds since an instant of CLOCK_MONOTONIC. */
static inline double
clock_seconds_since(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return clock_seconds_between(since, &now);
}

/*
 * A delay doubled doublings times from first, never past most: the wait
 * before the next try after failures in a row.
 */
static inline long long
clock_backoff_ms(long long first, long long most, unsigned doublings)
{
	long long wait = first;

	while (doublings-- > 0 && wait < most)
		wait *= 2;
	return wait < most ? wait : most;
}

#endif
