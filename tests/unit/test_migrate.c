/*
 * Unit tests of the function files' release: schema/functions/RELEASE
 * names the digest of the files beside it, so that a change to them
 * cannot land without a new release; and a RELEASE that cannot be read
 * is refused by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrate.h"
#include "test_support.h"

static const char *schema_dir;

/* The shipped RELEASE names the digest of the shipped function files. */
static void
test_release_names_the_files_digest(void **state)
{
	struct migrate *migrate;
	const char *recorded, *computed;
	char err[512] = "";

	(void)state;
	migrate = migrate_new(schema_dir, err, sizeof(err));
	if (migrate == NULL)
		fail_msg("%s", err);
	assert_true(migrate_release(migrate, &recorded, &computed) >= 1);
	if (strcmp(recorded, computed) != 0)
		fail_msg("schema/functions changed: raise the release in "
		    "schema/functions/RELEASE and write its digest %s there "
		    "(it names %s)", computed, recorded);
	migrate_free(migrate);
}

/* A copy of the schema folder whose RELEASE holds text. */
static char *
schema_with_release(const char *text)
{
	char *dir, command[4096], path[4096];
	FILE *file;

	dir = strdup("/tmp/ipam-migrate-XXXXXX");
	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	snprintf(command, sizeof(command), "cp -R '%s/.' '%s'", schema_dir,
	    dir);
	assert_int_equal(system(command), 0);
	snprintf(path, sizeof(path), "%s/functions/RELEASE", dir);
	if (text == NULL) {
		assert_int_equal(unlink(path), 0);
		return dir;
	}
	assert_non_null(file = fopen(path, "w"));
	fputs(text, file);
	assert_int_equal(fclose(file), 0);
	return dir;
}

static void
remove_schema(char *dir)
{
	char command[4096];

	snprintf(command, sizeof(command), "rm -rf '%s'", dir);
	assert_int_equal(system(command), 0);
	free(dir);
}

/* A RELEASE, and the error expected (NULL: read, with that release). */
struct release_row {
	const char	*name;
	const char	*text;
	const char	*error;		/* after "<dir>/functions/RELEASE: " */
	int		 release;
};

static const struct release_row release_rows[] = {
	{ "comments, then the line", "# a comment\n\n7 0123456789abcdef\n",
	    NULL, 7 },
	{ "no newline at the end", "3 fedcba9876543210", NULL, 3 },
	{ "CRLF, blanks and an indented comment",
	    "  # a comment\r\n 4 fedcba9876543210 \r\n", NULL, 4 },
	{ "no blank between release and digest", "1facfd76f45b791e2\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"1facfd76f45b791e2\"", 0 },
	{ "a signed release", "+1 facfd76f45b791e2\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"+1 facfd76f45b791e2\"", 0 },
	{ "a release past int", "99999999999 facfd76f45b791e2\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"99999999999 facfd76f45b791e2\"", 0 },
	{ "upper-case digits", "1 FACFD76F45B791E2\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"1 FACFD76F45B791E2\"", 0 },
	{ "no RELEASE file", NULL, "No such file or directory", 0 },
	{ "only comments", "# nothing\n", "no line \"RELEASE DIGEST\"", 0 },
	{ "release 0", "0 0123456789abcdef\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"0 0123456789abcdef\"", 0 },
	{ "a short digest", "2 0123\n", "not one line \"RELEASE DIGEST\" (a "
	    "release from 1, 16 hex digits): \"2 0123\"", 0 },
	{ "something after the digest", "2 0123456789abcdef x\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"2 0123456789abcdef x\"", 0 },
	{ "two lines", "2 0123456789abcdef\n3 0123456789abcdef\n",
	    "not one line \"RELEASE DIGEST\" (a release from 1, 16 hex "
	    "digits): \"3 0123456789abcdef\"", 0 },
};

static void
test_release_row(void **state)
{
	const struct release_row *row = *state;
	struct migrate *migrate;
	const char *recorded, *computed;
	char *dir = schema_with_release(row->text), err[8192] = "";
	char expected[8192];

	migrate = migrate_new(dir, err, sizeof(err));
	if (row->error == NULL) {
		if (migrate == NULL)
			fail_msg("%s: %s", row->name, err);
		assert_int_equal(migrate_release(migrate, &recorded,
		    &computed), row->release);
		assert_int_equal(strlen(computed), 16);
		migrate_free(migrate);
	} else {
		assert_null(migrate);
		snprintf(expected, sizeof(expected), "%s/functions/RELEASE: %s",
		    dir, row->error);
		assert_string_equal(err, expected);
	}
	remove_schema(dir);
}

/* A change to a function file changes the files' digest. */
static void
test_a_changed_file_changes_the_digest(void **state)
{
	struct migrate *before, *after;
	const char *recorded, *computed_before, *computed_after;
	char *dir = schema_with_release("1 0123456789abcdef\n");
	char err[512] = "", path[4096];
	FILE *file;

	(void)state;
	assert_non_null(before = migrate_new(dir, err, sizeof(err)));
	migrate_release(before, &recorded, &computed_before);
	snprintf(path, sizeof(path), "%s/functions/10_common.sql", dir);
	assert_non_null(file = fopen(path, "a"));
	fputs("-- one more line\n", file);
	assert_int_equal(fclose(file), 0);
	assert_non_null(after = migrate_new(dir, err, sizeof(err)));
	migrate_release(after, &recorded, &computed_after);
	assert_string_not_equal(computed_before, computed_after);
	migrate_free(before);
	migrate_free(after);
	remove_schema(dir);
}

int
main(int argc, char **argv)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_names_the_files_digest),
		cmocka_unit_test(test_a_changed_file_changes_the_digest),
	};
	int failed;

	if (argc != 2) {
		fprintf(stderr, "usage: test_migrate SCHEMA_DIR\n");
		return 2;
	}
	schema_dir = argv[1];
	failed = support_run_rows("release", test_release_row, release_rows,
	    sizeof(release_rows[0]), ROWS(release_rows));
	return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
