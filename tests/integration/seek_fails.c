/*
 * Loaded into the daemon with LD_PRELOAD by the tests: its seeks of
 * partitions fail while the file named by IPAM_TEST_SEEK_FAILS holds a
 * number above zero, each failure taking one.  A seek that fails is not
 * done, as librdkafka drops a seek a rebalance outdated: with an odd
 * number left every partition says __OUTDATED; with an even one the call
 * times out, every partition still __IN_PROGRESS.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

typedef rd_kafka_error_t *seek_fn(rd_kafka_t *,
    rd_kafka_topic_partition_list_t *, int);

/* Takes one failure from the file; false when none is left. */
static int
seek_fails_take(void)
{
	const char *path = getenv("IPAM_TEST_SEEK_FAILS");
	FILE *file;
	long left = 0;

	if (path == NULL || (file = fopen(path, "r+")) == NULL)
		return 0;
	if (fscanf(file, "%ld", &left) != 1 || left <= 0) {
		fclose(file);
		return 0;
	}
	rewind(file);
	fprintf(file, "%ld\n", left - 1);
	fclose(file);
	return left % 2 == 1 ? 1 : 2;
}

rd_kafka_error_t *
rd_kafka_seek_partitions(rd_kafka_t *rk,
    rd_kafka_topic_partition_list_t *partitions, int timeout_ms)
{
	seek_fn *real = (seek_fn *)dlsym(RTLD_NEXT, "rd_kafka_seek_partitions");
	int i, how = seek_fails_take();

	if (how == 0)
		return real(rk, partitions, timeout_ms);
	for (i = 0; i < partitions->cnt; i++)
		partitions->elems[i].err = how == 1 ?
		    RD_KAFKA_RESP_ERR__OUTDATED : RD_KAFKA_RESP_ERR__IN_PROGRESS;
	fprintf(stderr, "seek_fails: a seek of %d partition(s) fails (%s)\n",
	    partitions->cnt, how == 1 ? "outdated" : "timed out");
	return how == 1 ? NULL : rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT,
	    "Timed out waiting for seek");
}
