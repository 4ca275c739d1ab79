/* The Prometheus text format of the daemon's counters and gauges. */
#ifndef IPAM_DAEMON_METRICS_H
#define IPAM_DAEMON_METRICS_H

#include <stdbool.h>
#include <time.h>

#include <event2/buffer.h>

#include "common/pgconn.h"
#include "consumers/consumer.h"

struct api;
struct http;
struct retention;
struct sweeper;

/* Where the figures come from; any pointer may be NULL (not running). */
struct metrics_sources {
	const struct consumer	*consumer;
	const struct pgconn	*pg;
	const struct sweeper	*sweeper;
	const struct api	*api;
	const struct http	*http;
	const struct retention	*retention;
	time_t			 start_time;
};

/* Appends every metric family, with # HELP and # TYPE, to out. */
void	metrics_write(struct evbuffer *out, const struct metrics_sources *src);

/* Adds up the lag of every assigned partition; false when none is known. */
bool	metrics_total_lag(const struct consumer *consumer, long long *lag);

#endif
