/* Helpers the unit tests share: table rows, fixtures, change checks. */
#ifndef IPAM_TESTS_UNIT_TEST_SUPPORT_H
#define IPAM_TESTS_UNIT_TEST_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "consumers/decode.h"

#define ROWS(table)	(sizeof(table) / sizeof((table)[0]))

/*
 * Runs one cmocka test per row of a table; every row starts with a
 * const char * that names it, and the test finds its row in *state.
 * Returns the number of failed tests.
 */
int	support_run_rows(const char *group, CMUnitTestFunction test,
	    const void *rows, size_t row_size, size_t count);

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
char	*support_read_file(const char *path, size_t *len);

/* Loads a JSON file (or stops the program); the caller owns it. */
json_t	*support_load_json(const char *path);

/*
 * Lists the names in dir that end with suffix, sorted; the caller frees
 * each name and the array.  Returns the count.
 */
size_t	support_list_dir(const char *dir, const char *suffix,
	    char ***names);

/*
 * One message to decode and what must come out.  The key is a JSON
 * string (its text is the key's bytes), other JSON (written compactly
 * as the key) or NULL (no key); headers is an object of strings, an
 * array of [name, value] pairs (to repeat a name) or NULL.
 * Limits and columns are the defaults unless has_limits/has_columns.
 */
struct support_case {
	char			 name[256];
	enum decode_format	 format;
	enum change_entity	 entity;
	const json_t		*key;
	const json_t		*headers;
	const void		*value;		/* NULL: tombstone */
	size_t			 value_len;
	char			*owned;		/* freed with set */
	const json_t		*expect;
	bool			 has_limits;
	struct decode_limits	 limits;
	bool			 has_columns;
	struct debezium_columns	 columns;
};

/* A growing set of cases and the JSON documents they point into. */
struct support_cases {
	struct support_case	*items;
	size_t			 count;
	json_t			**docs;
	size_t			 doc_count;
};

/* Adds a zeroed case to the set and returns it. */
struct support_case *support_cases_add(struct support_cases *set);

/* Keeps a JSON document alive as long as the set (takes the reference). */
void	support_cases_keep(struct support_cases *set, json_t *doc);

/* Frees the cases, what they own, and the documents kept. */
void	support_cases_free(struct support_cases *set);

/*
 * Adds the cases of a message file: {"entity": ..., "messages": [{"name",
 * "entity", "key", "headers", "value" (JSON, written compactly; null is
 * a tombstone) or "value_text" (the exact bytes), "limits", "columns",
 * "expect"}, ...]}.  Entity, limits and columns at the top apply to every
 * message that does not give its own.
 */
void	support_add_message_file(struct support_cases *set,
	    const char *path, const char *label, enum decode_format format);

/* Adds the cases of every message file (*.json) in a folder. */
void	support_add_message_dir(struct support_cases *set, const char *dir,
	    enum decode_format format);

/*
 * Decodes a case and checks the result against its expect object:
 * "result" ok (default), skip or error; "error", a substring of the
 * reason; then the change: entity, op (upsert, delete or truncate), id,
 * vrf (default ""), version and lsn (absent: none), snapshot,
 * unconditional, keep (the names of the fields kept: ["hostname", ...]),
 * hostname, ip (absent: none), nic_mac, device_type, manufacture, name,
 * cidr, pools (["a-b", ...]), ping (subnets; default true), status,
 * description.  Fields not given must be empty.
 */
void	support_check_case(const struct support_case *c);

/* Runs support_check_case on the case in *state, as a cmocka test. */
void	support_case_test(void **state);

/* Runs one cmocka test per case; returns the number of failed tests. */
int	support_run_cases(const char *group, struct support_cases *set);

/* Parses an entity name for a fixture, stopping the program when unknown. */
enum change_entity support_entity(const char *name);

#endif
