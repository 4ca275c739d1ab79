/* The old app's servers and subnets tables (CSV, JSON) as an import's body. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ipamctl/csv.h"
#include "ipamctl/import.h"

/* What a field holds, and so how its text is converted. */
enum import_type {
	IMPORT_TYPE_ID,		/* a string or a number, sent as a string */
	IMPORT_TYPE_TEXT,
	IMPORT_TYPE_POOLS,	/* a list of ranges and CIDRs */
	IMPORT_TYPE_BOOL,
};

/* One column of a table. */
struct import_field {
	const char		*name;
	enum import_type	 type;
	bool			 required;
};

static const struct import_field import_server_fields[] = {
	{ "id", IMPORT_TYPE_ID, true },
	{ "hostname", IMPORT_TYPE_TEXT, true },
	{ "ip_address", IMPORT_TYPE_TEXT, false },
	{ "nic_mac", IMPORT_TYPE_TEXT, false },
	{ "device_type", IMPORT_TYPE_TEXT, false },
	{ "manufacture", IMPORT_TYPE_TEXT, false },
	{ "vrf", IMPORT_TYPE_TEXT, false },
};

static const struct import_field import_subnet_fields[] = {
	{ "id", IMPORT_TYPE_ID, true },
	{ "name", IMPORT_TYPE_TEXT, false },
	{ "cidr", IMPORT_TYPE_TEXT, true },
	{ "static_ip_pools", IMPORT_TYPE_POOLS, false },
	{ "vrf", IMPORT_TYPE_TEXT, false },
	{ "ping", IMPORT_TYPE_BOOL, false },
};

#define IMPORT_MAX_FIELDS	7

/* A table's columns: which fields, how many. */
struct import_table {
	const char			*name;		/* "servers" */
	const struct import_field	*fields;
	size_t				 count;
};

static const struct import_table import_tables[] = {
	[IMPORT_SERVERS] = { "servers", import_server_fields,
	    sizeof(import_server_fields) / sizeof(import_server_fields[0]) },
	[IMPORT_SUBNETS] = { "subnets", import_subnet_fields,
	    sizeof(import_subnet_fields) / sizeof(import_subnet_fields[0]) },
};

/* Formats an error into the caller's buffer; returns -1. */
static int __attribute__((format(printf, 3, 4)))
import_fail(char *error, size_t error_size, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(error, error_size, fmt, ap);
	va_end(ap);
	return -1;
}

/* A copy of text without the blanks around it, as a JSON string (or NULL). */
static json_t *
import_trimmed(const char *text)
{
	size_t	length;

	while (*text == ' ' || *text == '\t')
		text++;
	length = strlen(text);
	while (length > 0 && (text[length - 1] == ' ' ||
	    text[length - 1] == '\t'))
		length--;
	return json_stringn(text, length);
}

/* Checks that a list of pools holds strings only; 0 or -1 with why. */
static int
import_check_pools(json_t *pools, char *why, size_t why_size)
{
	size_t	 index;
	json_t	*entry;

	json_array_foreach(pools, index, entry) {
		if (!json_is_string(entry))
			return import_fail(why, why_size, "entry %zu of "
			    "static_ip_pools is not a string", index + 1);
	}
	return 0;
}

/* Splits "a-b; c/24" into a JSON array of its non-empty pieces. */
static json_t *
import_split_pools(const char *text, char *why, size_t why_size)
{
	json_t	*pools, *parsed;
	char	*copy, *piece, *save = NULL;

	while (*text == ' ' || *text == '\t')
		text++;
	if (*text == '[') {
		json_error_t	 problem;

		parsed = json_loads(text, 0, &problem);
		if (parsed == NULL || !json_is_array(parsed)) {
			snprintf(why, why_size, "static_ip_pools is not a JSON "
			    "array of ranges: %s",
			    parsed == NULL ? problem.text : "not an array");
			json_decref(parsed);
			return NULL;
		}
		if (import_check_pools(parsed, why, why_size) == -1) {
			json_decref(parsed);
			return NULL;
		}
		return parsed;
	}
	pools = json_array();
	copy = strdup(text);
	if (pools == NULL || copy == NULL) {
		snprintf(why, why_size, "out of memory");
		json_decref(pools);
		free(copy);
		return NULL;
	}
	for (piece = strtok_r(copy, ";,", &save); piece != NULL;
	    piece = strtok_r(NULL, ";,", &save)) {
		json_t *entry = import_trimmed(piece);

		if (entry != NULL && json_string_length(entry) == 0) {
			json_decref(entry);
			continue;
		}
		json_array_append_new(pools, entry);
	}
	free(copy);
	return pools;
}

/* Reads a yes/no word; returns -1 when it is none. */
static int
import_bool_word(const char *text)
{
	static const char *const yes[] = { "true", "t", "yes", "y", "1", "on" };
	static const char *const no[] = { "false", "f", "no", "n", "0", "off" };
	json_t	*trimmed = import_trimmed(text);
	int	 value = -1;

	for (size_t i = 0; trimmed != NULL && i < 6; i++) {
		if (strcasecmp(json_string_value(trimmed), yes[i]) == 0)
			value = 1;
		if (strcasecmp(json_string_value(trimmed), no[i]) == 0)
			value = 0;
	}
	json_decref(trimmed);
	return value;
}

/*
 * Converts one value of a field: *out is the new value (NULL: leave the
 * field out).  Returns 0, or -1 with a sentence in why.
 */
static int
import_value(const struct import_field *field, json_t *raw, json_t **out,
    char *why, size_t why_size)
{
	*out = NULL;
	if (raw == NULL || json_is_null(raw))
		goto check;
	if (json_is_integer(raw) && field->type != IMPORT_TYPE_POOLS &&
	    field->type != IMPORT_TYPE_BOOL) {
		*out = json_sprintf("%" JSON_INTEGER_FORMAT,
		    json_integer_value(raw));
		goto check;
	}
	switch (field->type) {
	case IMPORT_TYPE_ID:
	case IMPORT_TYPE_TEXT:
		if (!json_is_string(raw))
			return import_fail(why, why_size, "%s is not text",
			    field->name);
		*out = import_trimmed(json_string_value(raw));
		break;
	case IMPORT_TYPE_POOLS:
		if (json_is_array(raw)) {
			if (import_check_pools(raw, why, why_size) == -1)
				return -1;
			*out = json_deep_copy(raw);
			break;
		}
		if (!json_is_string(raw))
			return import_fail(why, why_size, "static_ip_pools is "
			    "neither a list nor text");
		*out = import_split_pools(json_string_value(raw), why,
		    why_size);
		if (*out == NULL)
			return -1;
		break;
	case IMPORT_TYPE_BOOL:
		if (json_is_boolean(raw)) {
			*out = json_incref(raw);
			break;
		}
		if (json_is_integer(raw) && (json_integer_value(raw) == 0 ||
		    json_integer_value(raw) == 1)) {
			*out = json_boolean(json_integer_value(raw) == 1);
			break;
		}
		if (json_is_string(raw) && json_string_value(raw)[
		    strspn(json_string_value(raw), " \t")] == '\0')
			break;
		if (!json_is_string(raw) ||
		    import_bool_word(json_string_value(raw)) == -1)
			return import_fail(why, why_size, "%s is not true or "
			    "false", field->name);
		*out = json_boolean(import_bool_word(json_string_value(raw)));
		break;
	}
check:
	if (*out != NULL && json_is_string(*out) &&
	    json_string_length(*out) == 0) {
		json_decref(*out);
		*out = NULL;
	}
	if (*out == NULL && field->required)
		return import_fail(why, why_size, "%s is required", field->name);
	return 0;
}

/*
 * Records an entity's id in seen, keyed by id, with where it was (a line
 * or an item); returns the earlier place of the same id, or 0.
 */
static json_int_t
import_seen(json_t *seen, json_t *entity, json_int_t place)
{
	const char	*id = json_string_value(json_object_get(entity, "id"));
	json_t		*earlier = json_object_get(seen, id);

	if (earlier != NULL)
		return json_integer_value(earlier);
	json_object_set_new(seen, id, json_integer(place));
	return 0;
}

/* Finds a field by column name (blanks around it and case ignored). */
static const struct import_field *
import_find_field(const struct import_table *table, const char *name,
    size_t *index)
{
	json_t				*trimmed = import_trimmed(name);
	const struct import_field	*found = NULL;

	for (size_t i = 0; trimmed != NULL && i < table->count; i++) {
		if (strcasecmp(table->fields[i].name,
		    json_string_value(trimmed)) == 0) {
			found = &table->fields[i];
			*index = i;
		}
	}
	json_decref(trimmed);
	return found;
}

/* The CSV form: a header, then one entity per record. */
static json_t *
import_from_csv(const struct import_table *table, const char *file_name,
    const char *text, size_t length, FILE *warnings, char *error,
    size_t error_size)
{
	struct csv		 csv;
	const struct csv_record	*header;
	ssize_t			 column_of[IMPORT_MAX_FIELDS];
	json_t			*entities = NULL, *seen = NULL;
	char			 why[256];

	if (csv_parse(text, length, &csv, why, sizeof(why)) == -1) {
		import_fail(error, error_size, "%s: %s", file_name, why);
		return NULL;
	}
	if (csv.count == 0) {
		import_fail(error, error_size, "%s: no header line (%s)",
		    file_name, "the file is empty");
		goto fail;
	}
	header = &csv.records[0];
	for (size_t i = 0; i < table->count; i++)
		column_of[i] = -1;
	for (size_t c = 0; c < header->count; c++) {
		size_t index;

		if (import_find_field(table, header->fields[c], &index) == NULL) {
			if (warnings != NULL)
				fprintf(warnings, "%s: line %u, column %zu: "
				    "\"%s\" is not a column of %s; left out\n",
				    file_name, header->line, c + 1,
				    header->fields[c], table->name);
			continue;
		}
		if (column_of[index] != -1) {
			import_fail(error, error_size, "%s: line %u, column %zu: "
			    "%s again (first in column %zd)", file_name,
			    header->line, c + 1, table->fields[index].name,
			    column_of[index] + 1);
			goto fail;
		}
		column_of[index] = (ssize_t)c;
	}
	for (size_t i = 0; i < table->count; i++) {
		if (table->fields[i].required && column_of[i] == -1) {
			import_fail(error, error_size, "%s: line %u: no column "
			    "%s (a %s table needs it)", file_name, header->line,
			    table->fields[i].name, table->name);
			goto fail;
		}
	}
	entities = json_array();
	seen = json_object();
	if (entities == NULL || seen == NULL) {
		import_fail(error, error_size, "out of memory");
		goto fail;
	}
	for (size_t r = 1; r < csv.count; r++) {
		const struct csv_record	*record = &csv.records[r];
		json_t			*entity = json_object();
		json_int_t		 earlier;

		if (entity == NULL || json_array_append_new(entities,
		    entity) == -1) {
			import_fail(error, error_size, "out of memory");
			goto fail;
		}
		if (record->count != header->count) {
			import_fail(error, error_size, "%s: line %u: %zu fields "
			    "where the header has %zu", file_name, record->line,
			    record->count, header->count);
			goto fail;
		}
		for (size_t i = 0; i < table->count; i++) {
			json_t	*raw, *value;
			int	 rc;

			if (column_of[i] == -1)
				continue;
			/* NULL: not UTF-8 (a spreadsheet's cp1252, say). */
			raw = json_string(record->fields[column_of[i]]);
			if (raw == NULL) {
				import_fail(error, error_size, "%s: line %u, "
				    "column %zd (%s): not UTF-8 text (save the "
				    "file as UTF-8)", file_name, record->line,
				    column_of[i] + 1, table->fields[i].name);
				goto fail;
			}
			rc = import_value(&table->fields[i], raw, &value, why,
			    sizeof(why));
			json_decref(raw);
			if (rc == -1) {
				import_fail(error, error_size, "%s: line %u, "
				    "column %zd (%s): %s", file_name,
				    record->line, column_of[i] + 1,
				    table->fields[i].name, why);
				goto fail;
			}
			if (value != NULL)
				json_object_set_new(entity,
				    table->fields[i].name, value);
		}
		earlier = import_seen(seen, entity, record->line);
		if (earlier != 0) {
			import_fail(error, error_size, "%s: line %u: id \"%s\" "
			    "again (first on line %" JSON_INTEGER_FORMAT ")",
			    file_name, record->line, json_string_value(
			    json_object_get(entity, "id")), earlier);
			goto fail;
		}
	}
	json_decref(seen);
	csv_free(&csv);
	return entities;
fail:
	json_decref(entities);
	json_decref(seen);
	csv_free(&csv);
	return NULL;
}

/*
 * The rows of a JSON document: the array itself, or the array under the
 * table's name.
 */
static json_t *
import_json_rows(const struct import_table *table, json_t *document)
{
	if (json_is_array(document))
		return document;
	if (json_is_object(document))
		return json_object_get(document, table->name);
	return NULL;
}

/* The JSON form: an array of objects (or Django dumpdata rows). */
static json_t *
import_from_json(const struct import_table *table, const char *file_name,
    const char *text, size_t length, FILE *warnings, char *error,
    size_t error_size)
{
	json_error_t	 problem;
	json_t		*document, *rows, *row, *entities = NULL, *seen = NULL;
	json_t		*warned = NULL;
	const char	*key_of[IMPORT_MAX_FIELDS];
	size_t		 index;
	char		 why[256];

	document = json_loadb(text, length, JSON_REJECT_DUPLICATES, &problem);
	if (document == NULL) {
		import_fail(error, error_size, "%s: line %d, column %d: %s",
		    file_name, problem.line, problem.column, problem.text);
		return NULL;
	}
	rows = import_json_rows(table, document);
	if (!json_is_array(rows)) {
		import_fail(error, error_size, "%s: neither an array of %s nor "
		    "an object with a \"%s\" array", file_name, table->name,
		    table->name);
		goto fail;
	}
	entities = json_array();
	seen = json_object();
	warned = json_object();
	if (entities == NULL || seen == NULL || warned == NULL) {
		import_fail(error, error_size, "out of memory");
		goto fail;
	}
	json_array_foreach(rows, index, row) {
		json_t		*entity, *fields, *value;
		const char	*key;
		json_int_t	 earlier;

		if (!json_is_object(row)) {
			import_fail(error, error_size, "%s: item %zu: not an "
			    "object", file_name, index + 1);
			goto fail;
		}
		/* Django's dumpdata: {"model", "pk", "fields": {...}}. */
		fields = json_object_get(row, "fields");
		if (json_is_object(fields) && json_object_get(row, "pk") != NULL) {
			const char	*field;
			json_t		*unused;
			void		*tmp;

			row = json_deep_copy(fields);
			/* The id is the pk: a field of that name gives way. */
			json_object_foreach_safe(row, tmp, field, unused) {
				size_t at;

				if (import_find_field(table, field, &at) != NULL &&
				    strcmp(table->fields[at].name, "id") == 0)
					json_object_del(row, field);
			}
			json_object_set(row, "id", json_object_get(
			    json_array_get(rows, index), "pk"));
		} else {
			json_incref(row);
		}
		entity = json_object();
		json_array_append_new(entities, entity);
		/* Keys match fields as CSV columns do: case and blanks aside. */
		for (size_t i = 0; i < table->count; i++)
			key_of[i] = NULL;
		json_object_foreach(row, key, value) {
			size_t field_index;

			if (import_find_field(table, key, &field_index) != NULL) {
				if (key_of[field_index] != NULL) {
					import_fail(error, error_size, "%s: item "
					    "%zu: \"%s\" and \"%s\" are both %s",
					    file_name, index + 1,
					    key_of[field_index], key,
					    table->fields[field_index].name);
					json_decref(row);
					goto fail;
				}
				key_of[field_index] = key;
				continue;
			}
			if (json_object_get(warned, key) != NULL)
				continue;
			json_object_set_new(warned, key, json_true());
			if (warnings != NULL)
				fprintf(warnings, "%s: item %zu: \"%s\" is not a "
				    "field of %s; left out\n", file_name,
				    index + 1, key, table->name);
		}
		for (size_t i = 0; i < table->count; i++) {
			if (import_value(&table->fields[i], key_of[i] == NULL ?
			    NULL : json_object_get(row, key_of[i]), &value, why,
			    sizeof(why)) == -1) {
				import_fail(error, error_size, "%s: item %zu: %s",
				    file_name, index + 1, why);
				json_decref(row);
				goto fail;
			}
			if (value != NULL)
				json_object_set_new(entity,
				    table->fields[i].name, value);
		}
		json_decref(row);
		earlier = import_seen(seen, entity, (json_int_t)index + 1);
		if (earlier != 0) {
			import_fail(error, error_size, "%s: item %zu: id \"%s\" "
			    "again (first in item %" JSON_INTEGER_FORMAT ")",
			    file_name, index + 1, json_string_value(
			    json_object_get(entity, "id")), earlier);
			goto fail;
		}
	}
	json_decref(warned);
	json_decref(seen);
	json_decref(document);
	return entities;
fail:
	json_decref(warned);
	json_decref(entities);
	json_decref(seen);
	json_decref(document);
	return NULL;
}

/* Converts a table's text (CSV or JSON) into the import's entities. */
json_t *
import_convert(enum import_kind kind, const char *file_name,
    const char *text, size_t length, FILE *warnings, char *error,
    size_t error_size)
{
	const struct import_table	*table = &import_tables[kind];
	size_t				 bom = 0, start;

	if (length >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		bom = 3;
	start = bom;
	while (start < length && strchr(" \t\r\n", text[start]) != NULL)
		start++;
	/* From the first line, so that errors name the file's lines. */
	if (start < length && (text[start] == '[' || text[start] == '{'))
		return import_from_json(table, file_name, text + bom,
		    length - bom, warnings, error, error_size);
	return import_from_csv(table, file_name, text, length, warnings,
	    error, error_size);
}

/* Builds the body of POST /api/v1/import. */
json_t *
import_body(json_t *servers, json_t *subnets, bool dry_run)
{
	return json_pack("{s:o, s:o, s:b}",
	    "servers", servers != NULL ? servers : json_array(),
	    "subnets", subnets != NULL ? subnets : json_array(),
	    "dry_run", dry_run);
}
