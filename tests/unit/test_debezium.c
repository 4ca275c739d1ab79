/* Unit tests of the Debezium decoder over the fixture files. */
#include <stdio.h>
#include <string.h>

#include "test_support.h"

/* Runs the Debezium message fixtures found under argv[1]. */
int
main(int argc, char **argv)
{
	struct support_cases	cases;
	char			dir[512];
	int			failed;

	if (argc != 2) {
		fprintf(stderr, "usage: %s fixture-folder\n", argv[0]);
		return 2;
	}
	memset(&cases, 0, sizeof(cases));
	snprintf(dir, sizeof(dir), "%s/debezium", argv[1]);
	support_add_message_dir(&cases, dir, DECODE_DEBEZIUM);
	failed = support_run_cases("debezium", &cases);
	support_cases_free(&cases);
	return failed != 0;
}
