/* The batch's JSON argument built with jansson, the text writer's oracle. */
#ifndef IPAM_TESTS_BATCH_ORACLE_H
#define IPAM_TESTS_BATCH_ORACLE_H

#include "consumers/batch.h"

/* batch_build_json() as it was at 4da6a31: a jansson tree, dumped. */
char	*oracle_batch_build_json(const struct batch *batch, size_t n,
	    const char *group_id, const char *schema, bool rebuild,
	    batch_position_fn *position, void *arg, size_t *skipped);

#endif
