/* Helpers the unit tests share: table rows, fixtures, change checks. */
#include <sys/socket.h>

#include <dirent.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Stops the test program over broken test data, before any test runs. */
static void __attribute__((noreturn, format(printf, 1, 2)))
support_die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

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
		const char	*label;

		label = *(const char *const *)(const void *)row;

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
		support_die("cannot open %s", path);
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

/* Loads a JSON file (or stops the program); the caller owns it. */
json_t *
support_load_json(const char *path)
{
	json_error_t	 jerr;
	json_t		*value;

	/* NUL is allowed so that a fixture can send a key that holds one. */
	value = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	if (value == NULL)
		support_die("%s: %s (line %d)", path, jerr.text, jerr.line);
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
	if ((d = opendir(dir)) == NULL)
		support_die("cannot open the fixture folder %s", dir);
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

/* Parses an entity name for a fixture, stopping the program when unknown. */
enum change_entity
support_entity(const char *name)
{
	enum change_entity	entity;

	if (name == NULL || change_entity_parse(name, &entity) == -1)
		support_die("unknown entity \"%s\" in a fixture",
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
		fail_msg("%s: %s is \"%s\", expected \"%s\"", name, field,
		    actual != NULL ? actual : "(NULL)",
		    want != NULL ? want : "(NULL)");
}

/* Fails unless a boolean field holds what the expect object says. */
static void
support_check_bool(const char *name, const json_t *expect, const char *field,
    bool fallback, bool actual)
{
	const json_t	*value = json_object_get(expect, field);
	bool		 want;

	want = value != NULL ? json_is_true(value) : fallback;

	if (want != actual)
		fail_msg("%s: %s is %s, expected %s", name, field,
		    actual ? "true" : "false", want ? "true" : "false");
}

/* Fails unless a number that may be absent is what the expect object says. */
static void
support_check_number(const char *name, const json_t *expect,
    const char *field, bool present, int64_t actual)
{
	const json_t	*value = json_object_get(expect, field);

	if ((value != NULL) != present ||
	    (value != NULL && json_integer_value(value) != actual))
		fail_msg("%s: %s is %s%" PRId64, name, field, present ? "" :
		    "absent ", actual);
}

/* The name an expect object gives an op. */
static const char *
support_op_name(enum change_op op)
{
	switch (op) {
	case CHANGE_UPSERT:
		return "upsert";
	case CHANGE_DELETE:
		return "delete";
	case CHANGE_TRUNCATE:
		return "truncate";
	}
	return "unknown";
}

/* Fails unless the keep bits are the fields the expect object names. */
static void
support_check_keep(const char *name, const json_t *expect, unsigned keep)
{
	static const struct {
		const char	*field;
		unsigned	 bit;
	} bits[] = {
		{ "hostname", CHANGE_KEEP_HOSTNAME },
		{ "nic_mac", CHANGE_KEEP_NIC_MAC },
		{ "device_type", CHANGE_KEEP_DEVICE_TYPE },
		{ "manufacture", CHANGE_KEEP_MANUFACTURE },
		{ "name", CHANGE_KEEP_NAME },
		{ "static_ip_pools", CHANGE_KEEP_POOLS },
	};
	const json_t	*field;
	unsigned	 want = 0;
	size_t		 i, j;

	json_array_foreach(json_object_get(expect, "keep"), i, field) {
		for (j = 0; j < ROWS(bits); j++) {
			if (json_is_string(field) && strcmp(bits[j].field,
			    json_string_value(field)) == 0)
				break;
		}
		if (j == ROWS(bits))
			support_die("%s: unknown keep field", name);
		want |= bits[j].bit;
	}
	if (keep != want)
		fail_msg("%s: keep is 0x%x, expected 0x%x", name, keep, want);
}

/* Fails unless the pools are the expected "a-b" strings, in order. */
static void
support_check_pools(const char *name, const json_t *expect,
    const struct change *out)
{
	const json_t	*want = json_object_get(expect, "pools");
	char		 first[ADDR_TEXT_MAX], last[ADDR_TEXT_MAX];
	char		 text[160];
	size_t		 i, count = json_array_size(want);

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
	char		 text[ADDR_TEXT_MAX];
	const char	*status;

	if (out->entity != support_entity(json_string_value(
	    json_object_get(expect, "entity"))))
		fail_msg("%s: entity is %s", name,
		    change_entity_name(out->entity));
	support_check_string(name, expect, "op", NULL,
	    support_op_name(out->op));
	support_check_string(name, expect, "id", NULL, out->id);
	support_check_string(name, expect, "vrf", "", out->vrf);
	support_check_number(name, expect, "version", out->has_version,
	    out->version);
	support_check_number(name, expect, "lsn", out->has_lsn, out->lsn);
	support_check_bool(name, expect, "snapshot", false, out->snapshot);
	support_check_bool(name, expect, "snapshot_begins", false,
	    out->snapshot_begins);
	support_check_bool(name, expect, "unconditional", false,
	    out->unconditional);
	support_check_keep(name, expect, out->keep);
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
	support_check_string(name, expect, "reason", NULL, out->reason);
	support_check_string(name, expect, "request_id", NULL,
	    out->request_id);
	support_check_string(name, expect, "requester", NULL, out->requester);
	support_check_bool(name, expect, "if_available", false,
	    out->if_available);
	support_check_string(name, expect, "if_match", NULL, out->if_match);
}

/*
 * Decodes a case and checks the result against its expect object (see
 * test_support.h for its fields).
 */
void
support_check_case(const struct support_case *c)
{
	struct decode_header	*headers;
	struct decode_input	 in;
	struct change		 out, empty;
	enum decode_result	 result, want = DECODE_OK;
	const json_t		*value;
	const char		*word, *hname;
	char			 err[1024], *key = NULL;
	size_t			 n = 0, i;

	memset(&in, 0, sizeof(in));
	memset(&empty, 0, sizeof(empty));
	in.entity = c->entity;
	in.value = c->value;
	in.value_len = c->value_len;
	in.limits = c->has_limits ? &c->limits : NULL;
	in.columns = c->has_columns ? &c->columns : NULL;
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
	/* Headers: an object, or [name, value] pairs when names repeat. */
	headers = calloc(json_object_size(c->headers) +
	    json_array_size(c->headers) + 1, sizeof(*headers));
	if (headers == NULL)
		abort();
	json_object_foreach((json_t *)c->headers, hname, value) {
		headers[n].name = hname;
		headers[n].value = json_string_value(value);
		headers[n].value_len = json_string_length(value);
		n++;
	}
	json_array_foreach(c->headers, i, value) {
		headers[n].name = json_string_value(json_array_get(value, 0));
		headers[n].value = json_string_value(json_array_get(value, 1));
		headers[n].value_len = json_string_length(json_array_get(value,
		    1));
		n++;
	}
	in.headers = headers;
	in.header_count = n;

	strcpy(err, "(untouched)");
	result = decode_message(c->format, &in, &out, err, sizeof(err));
	free(key);
	free(headers);
	word = json_string_value(json_object_get(c->expect, "result"));
	if (word != NULL && strcmp(word, "error") == 0)
		want = DECODE_ERROR;
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
support_run_cases(const char *group, struct support_cases *set)
{
	struct CMUnitTest	*tests;
	size_t			 i;
	int			 failed;

	if (set->count == 0) {
		fprintf(stderr, "%s: no cases found\n", group);
		return 1;
	}
	if ((tests = calloc(set->count, sizeof(*tests))) == NULL)
		abort();
	for (i = 0; i < set->count; i++) {
		tests[i].name = set->items[i].name;
		tests[i].test_func = support_case_test;
		tests[i].initial_state = &set->items[i];
	}
	failed = _cmocka_run_group_tests(group, tests, set->count, NULL, NULL);
	free(tests);
	return failed;
}

/* Adds a zeroed case to the set and returns it. */
struct support_case *
support_cases_add(struct support_cases *set)
{
	struct support_case	*c;

	set->items = realloc(set->items, (set->count + 1) *
	    sizeof(*set->items));
	if (set->items == NULL)
		abort();
	c = &set->items[set->count++];
	memset(c, 0, sizeof(*c));
	return c;
}

/* Keeps a JSON document alive as long as the set (takes the reference). */
void
support_cases_keep(struct support_cases *set, json_t *doc)
{
	set->docs = realloc(set->docs, (set->doc_count + 1) *
	    sizeof(*set->docs));
	if (set->docs == NULL)
		abort();
	set->docs[set->doc_count++] = doc;
}

/* Frees the cases, what they own, and the documents kept. */
void
support_cases_free(struct support_cases *set)
{
	size_t	i;

	for (i = 0; i < set->count; i++)
		free(set->items[i].owned);
	for (i = 0; i < set->doc_count; i++)
		json_decref(set->docs[i]);
	free(set->items);
	free(set->docs);
	memset(set, 0, sizeof(*set));
}

/* Reads "limits" from a message or its file into a case. */
static void
support_limits(struct support_case *c, const json_t *limits)
{
	const json_t	*v;

	if (limits == NULL)
		return;
	c->has_limits = true;
	decode_limits_default(&c->limits);
	if ((v = json_object_get(limits, "max_message_bytes")) != NULL)
		c->limits.max_message_bytes = (size_t)json_integer_value(v);
	if ((v = json_object_get(limits, "max_pool_addresses")) != NULL)
		c->limits.max_pool_addresses = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(limits, "max_headers")) != NULL)
		c->limits.max_headers = (size_t)json_integer_value(v);
	if ((v = json_object_get(limits, "max_header_bytes")) != NULL)
		c->limits.max_header_bytes = (size_t)json_integer_value(v);
}

/* Reads a "columns" mapping from a message or its file into a case. */
static void
support_columns(struct support_case *c, const json_t *columns)
{
	static const struct {
		const char	*name;
		size_t		 offset;
	} map[] = {
#define SUPPORT_COLUMN(f) { #f, offsetof(struct debezium_columns, f) }
		SUPPORT_COLUMN(server_id), SUPPORT_COLUMN(server_hostname),
		SUPPORT_COLUMN(server_ip_address),
		SUPPORT_COLUMN(server_nic_mac),
		SUPPORT_COLUMN(server_device_type),
		SUPPORT_COLUMN(server_manufacture), SUPPORT_COLUMN(server_vrf),
		SUPPORT_COLUMN(subnet_id), SUPPORT_COLUMN(subnet_name),
		SUPPORT_COLUMN(subnet_cidr),
		SUPPORT_COLUMN(subnet_static_ip_pools),
		SUPPORT_COLUMN(subnet_vrf), SUPPORT_COLUMN(subnet_ping),
		SUPPORT_COLUMN(unavailable),
#undef SUPPORT_COLUMN
	};
	const char	*name;
	json_t		*value;
	size_t		 i;

	if (columns == NULL)
		return;
	c->has_columns = true;
	decode_columns_default(&c->columns);
	json_object_foreach((json_t *)columns, name, value) {
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
			if (strcmp(name, map[i].name) == 0)
				break;
		}
		if (i == sizeof(map) / sizeof(map[0]))
			support_die("unknown column mapping \"%s\"", name);
		*(const char **)(void *)((char *)&c->columns +
		    map[i].offset) = json_string_value(value);
	}
}

/*
 * Adds the cases of a message file (see test_support.h for its shape);
 * the file's document stays alive with the set.
 */
void
support_add_message_file(struct support_cases *set, const char *path,
    const char *label, enum decode_format format)
{
	json_t			*doc, *messages, *m;
	const json_t		*value, *entity;
	struct support_case	*c;
	size_t			 i;

	doc = support_load_json(path);
	support_cases_keep(set, doc);
	messages = json_object_get(doc, "messages");
	if (!json_is_array(messages) || json_array_size(messages) == 0)
		support_die("%s: no messages", path);
	json_array_foreach(messages, i, m) {
		c = support_cases_add(set);
		snprintf(c->name, sizeof(c->name), "%s[%zu] %s", label, i,
		    json_string_value(json_object_get(m, "name")) != NULL ?
		    json_string_value(json_object_get(m, "name")) : "");
		c->format = format;
		entity = json_object_get(m, "entity");
		if (entity == NULL)
			entity = json_object_get(doc, "entity");
		c->entity = support_entity(json_string_value(entity));
		c->key = json_object_get(m, "key");
		c->headers = json_object_get(m, "headers");
		c->expect = json_object_get(m, "expect");
		if (c->expect == NULL)
			support_die("%s: message %zu has no expect", path, i);
		support_limits(c, json_object_get(doc, "limits"));
		support_limits(c, json_object_get(m, "limits"));
		support_columns(c, json_object_get(doc, "columns"));
		support_columns(c, json_object_get(m, "columns"));
		if ((value = json_object_get(m, "value_text")) != NULL) {
			c->value = json_string_value(value);
			c->value_len = json_string_length(value);
		} else if ((value = json_object_get(m, "value")) == NULL)
			support_die("%s: message %zu has no value", path, i);
		else if (!json_is_null(value)) {
			c->owned = json_dumps(value, JSON_COMPACT |
			    JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
			if (c->owned == NULL)
				abort();
			c->value = c->owned;
			c->value_len = strlen(c->owned);
		}
	}
}

/* Adds the cases of every message file (*.json) in a folder. */
void
support_add_message_dir(struct support_cases *set, const char *dir,
    enum decode_format format)
{
	char	path[1024], **names;
	size_t	count, i;

	count = support_list_dir(dir, ".json", &names);
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		support_add_message_file(set, path, names[i], format);
		free(names[i]);
	}
	free(names);
}
