/* Helpers the unit tests share: table rows as cmocka tests, fixtures, change checks. */
#include <sys/socket.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Most headers a test case may give. */
#define SUPPORT_HEADERS_MAX	32

/* Compares names for qsort. */
static int
support_name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Runs one cmocka test per row of a table; every row starts with a
 * const char * that names it, and the test finds its row in *state.
 * Returns the number of failed tests.
 */
int
support_run_rows(const char *group, CMUnitTestFunction test,
    const void *rows, size_t row_size, size_t count)
{
	struct CMUnitTest	*tests;
	char			**names;
	size_t			  i;
	int			  failed;

	tests = calloc(count, sizeof(*tests));
	names = calloc(count, sizeof(*names));
	if (tests == NULL || names == NULL)
		abort();
	for (i = 0; i < count; i++) {
		const char	*row = (const char *)rows + i * row_size;
		const char	*label = *(const char *const *)(const void *)row;

		if ((names[i] = malloc(256)) == NULL)
			abort();
		snprintf(names[i], 256, "%s[%zu] %s", group, i,
		    label != NULL ? label : "(null)");
		tests[i].name = names[i];
		tests[i].test_func = test;
		tests[i].initial_state = (void *)(uintptr_t)row;
	}
	failed = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(tests);
	return failed;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
char *
support_read_file(const char *path, size_t *len)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 size = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL)
		fail_msg("cannot open %s", path);
	for (;;) {
		if (cap - size < 4096) {
			cap = cap * 2 + 4096;
			if ((buf = realloc(buf, cap + 1)) == NULL)
				abort();
		}
		n = fread(buf + size, 1, cap - size, f);
		size += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[size] = '\0';
	*len = size;
	return buf;
}

/* Loads a JSON file (failing the test when it cannot); the caller owns it. */
json_t *
support_load_json(const char *path)
{
	json_error_t	 jerr;
	json_t		*value;

	value = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (value == NULL)
		fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
	return value;
}

/*
 * Lists the names in dir that end with suffix, sorted; the caller frees
 * each name and the array.  Returns the count.
 */
size_t
support_list_dir(const char *dir, const char *suffix, char ***names)
{
	DIR		*d;
	struct dirent	*entry;
	size_t		 count = 0, len, slen = strlen(suffix);

	*names = NULL;
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "cannot open the fixture folder %s\n", dir);
		abort();
	}
	while ((entry = readdir(d)) != NULL) {
		len = strlen(entry->d_name);
		if (entry->d_name[0] == '.' || len < slen ||
		    strcmp(entry->d_name + len - slen, suffix) != 0)
			continue;
		if ((*names = realloc(*names, (count + 1) *
		    sizeof(**names))) == NULL ||
		    ((*names)[count] = strdup(entry->d_name)) == NULL)
			abort();
		count++;
	}
	closedir(d);
	if (count > 0)
		qsort(*names, count, sizeof(**names), support_name_compare);
	return count;
}

/* Parses an entity name for a fixture, failing the test when unknown. */
enum change_entity
support_entity(const char *name)
{
	enum change_entity	entity;

	if (name == NULL || change_entity_parse(name, &entity) == -1)
		fail_msg("unknown entity \"%s\" in a fixture",
		    name != NULL ? name : "(null)");
	return entity;
}

/* Fails unless a string field holds what the expect object says. */
static void
support_check_string(const char *name, const json_t *expect,
    const char *field, const char *fallback, const char *actual)
{
	const json_t	*value = json_object_get(expect, field);
	const char	*want = fallback;

	if (value != NULL && !json_is_null(value))
		want = json_string_value(value);
	if (want == NULL && actual == NULL)
		return;
	if (want == NULL || actual == NULL || strcmp(want, actual) != 0)
		fail_msg("%s: %s is %s%s%s, expected %s%s%s", name, field,
		    actual != NULL ? "\"" : "", actual != NULL ? actual :
		    "NULL", actual != NULL ? "\"" : "", want != NULL ? "\"" : "",
		    want != NULL ? want : "NULL", want != NULL ? "\"" : "");
}

/* Fails unless a boolean field holds what the expect object says. */
static void
support_check_bool(const char *name, const json_t *expect, const char *field,
    bool fallback, bool actual)
{
	const json_t	*value = json_object_get(expect, field);
	bool		 want = value != NULL ? json_is_true(value) : fallback;

	if (want != actual)
		fail_msg("%s: %s is %s, expected %s", name, field,
		    actual ? "true" : "false", want ? "true" : "false");
}

/* Fails unless the pools are the expected "a-b" strings, in order. */
static void
support_check_pools(const char *name, const json_t *expect,
    const struct change *out)
{
	const json_t	*want = json_object_get(expect, "pools");
	char		 first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX], text[160];
	size_t		 i, count = want != NULL ? json_array_size(want) : 0;

	if (count != out->pool_count)
		fail_msg("%s: %zu pool ranges, expected %zu", name,
		    out->pool_count, count);
	if (count > 0 && out->pools == NULL)
		fail_msg("%s: pools is NULL", name);
	for (i = 0; i < count; i++) {
		addr_format(&out->pools[i].first, first, sizeof(first));
		addr_format(&out->pools[i].last, last, sizeof(last));
		snprintf(text, sizeof(text), "%s-%s", first, last);
		if (strcmp(text, json_string_value(json_array_get(want,
		    i))) != 0)
			fail_msg("%s: pool %zu is %s, expected %s", name, i,
			    text, json_string_value(json_array_get(want, i)));
	}
}

/* Checks every field of a decoded change against the expect object. */
static void
support_check_change(const char *name, const json_t *expect,
    const struct change *out)
{
	const json_t	*value;
	char		 text[ADDR_TEXT_MAX];
	const char	*status;

	if (out->entity != support_entity(json_string_value(
	    json_object_get(expect, "entity"))))
		fail_msg("%s: entity is %s", name,
		    change_entity_name(out->entity));
	value = json_object_get(expect, "op");
	if (value == NULL || (strcmp(json_string_value(value), "delete") == 0) !=
	    (out->op == CHANGE_DELETE))
		fail_msg("%s: op is %s", name, out->op == CHANGE_DELETE ?
		    "delete" : "upsert");
	support_check_string(name, expect, "id", NULL, out->id);
	support_check_string(name, expect, "vrf", "", out->vrf);
	value = json_object_get(expect, "version");
	if ((value != NULL) != out->has_version ||
	    (value != NULL && json_integer_value(value) != out->version))
		fail_msg("%s: version is %s%" PRId64, name, out->has_version ?
		    "" : "absent ", out->version);
	support_check_bool(name, expect, "unconditional", false,
	    out->unconditional);
	support_check_string(name, expect, "hostname", NULL, out->hostname);
	if (out->has_ip)
		addr_format(&out->ip, text, sizeof(text));
	support_check_string(name, expect, "ip", NULL, out->has_ip ? text :
	    NULL);
	support_check_string(name, expect, "nic_mac", NULL, out->nic_mac);
	support_check_string(name, expect, "device_type", NULL,
	    out->device_type);
	support_check_string(name, expect, "manufacture", NULL,
	    out->manufacture);
	support_check_string(name, expect, "name", NULL, out->name);
	if (out->cidr.addr.family != 0)
		prefix_format(&out->cidr, text, sizeof(text));
	support_check_string(name, expect, "cidr", NULL,
	    out->cidr.addr.family != 0 ? text : NULL);
	support_check_pools(name, expect, out);
	support_check_bool(name, expect, "ping", out->entity == CHANGE_SUBNET &&
	    out->op == CHANGE_UPSERT, out->ping);
	status = out->mark_status == MARK_QUARANTINE ? "quarantine" :
	    "reserved";
	support_check_string(name, expect, "status", "reserved", status);
	support_check_string(name, expect, "description", NULL,
	    out->description);
}

/*
 * Decodes a case and checks the result against its expect object (see
 * test_support.h for its fields).
 */
void
support_check_case(const struct support_case *c)
{
	struct decode_header	 headers[SUPPORT_HEADERS_MAX];
	struct decode_input	 in;
	struct change		 out, empty;
	enum decode_result	 result, want = DECODE_OK;
	const json_t		*value;
	const char		*word, *hname;
	char			 err[1024], *key = NULL;
	size_t			 n = 0;

	memset(&in, 0, sizeof(in));
	memset(&empty, 0, sizeof(empty));
	in.entity = c->entity;
	in.value = c->value;
	in.value_len = c->value_len;
	in.limits = c->limits;
	in.columns = c->columns;
	if (c->key != NULL && json_is_string(c->key)) {
		in.key = json_string_value(c->key);
		in.key_len = json_string_length(c->key);
	} else if (c->key != NULL && !json_is_null(c->key)) {
		if ((key = json_dumps(c->key, JSON_COMPACT |
		    JSON_ENCODE_ANY)) == NULL)
			abort();
		in.key = key;
		in.key_len = strlen(key);
	}
	json_object_foreach((json_t *)c->headers, hname, value) {
		if (n == SUPPORT_HEADERS_MAX)
			fail_msg("%s: too many headers", c->name);
		headers[n].name = hname;
		headers[n].value = json_string_value(value);
		headers[n].value_len = json_string_length(value);
		n++;
	}
	in.headers = headers;
	in.header_count = n;

	strcpy(err, "(untouched)");
	result = decode_message(c->format, &in, &out, err, sizeof(err));
	free(key);
	word = json_string_value(json_object_get(c->expect, "result"));
	if (word != NULL && strcmp(word, "error") == 0)
		want = DECODE_ERROR;
	else if (word != NULL && strcmp(word, "skip") == 0)
		want = DECODE_SKIP;
	if (result != want) {
		change_clear(&out);
		fail_msg("%s: result %d, expected %d (%s)", c->name,
		    (int)result, (int)want, result == DECODE_ERROR ? err : "");
	}
	if (result != DECODE_OK && memcmp(&out, &empty, sizeof(out)) != 0)
		fail_msg("%s: the change is not left empty", c->name);
	if (result == DECODE_ERROR) {
		word = json_string_value(json_object_get(c->expect, "error"));
		if (word == NULL || strstr(err, word) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", c->name, err,
			    word != NULL ? word : "(no expected text)");
		return;
	}
	if (result == DECODE_OK)
		support_check_change(c->name, c->expect, &out);
	change_clear(&out);
}

/* Runs support_check_case on the case in *state, as a cmocka test. */
void
support_case_test(void **state)
{
	support_check_case(*state);
}

/* Runs one cmocka test per case; returns the number of failed tests. */
int
support_run_cases(const char *group, struct support_case *cases, size_t count)
{
	struct CMUnitTest	*tests;
	size_t			 i;
	int			 failed;

	if (count == 0) {
		fprintf(stderr, "%s: no cases found\n", group);
		return 1;
	}
	if ((tests = calloc(count, sizeof(*tests))) == NULL)
		abort();
	for (i = 0; i < count; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = support_case_test;
		tests[i].initial_state = &cases[i];
	}
	failed = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
	free(tests);
	return failed;
}
