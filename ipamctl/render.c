/* The API's JSON as tables and lines for a person. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipamctl/render.h"
#include "ipamctl/table.h"

/* How a column shows its values. */
#define RENDER_RIGHT	0x1	/* numbers: aligned right */
#define RENDER_STATUS	0x2	/* an address status: coloured */
#define RENDER_PERCENT	0x4	/* a 0-1 fraction as a percentage */
#define RENDER_OPTIONAL	0x8	/* shown only when a row has a value */

#define RENDER_MAX_COLUMNS	12
#define RENDER_CELL_SIZE	64

/*
 * A column: its header and where its value is in an item: a key, a
 * dotted path ("stats.available") or alternatives ("id|server_id").
 */
struct render_column {
	const char	*header;
	const char	*key;
	unsigned	 flags;
};

/* A JSON value as the text of a cell. */
const char *
render_text(json_t *value, char *buffer, size_t size)
{
	if (json_is_string(value))
		return json_string_value(value);
	if (json_is_integer(value)) {
		snprintf(buffer, size, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(value));
		return buffer;
	}
	if (json_is_real(value)) {
		snprintf(buffer, size, "%g", json_real_value(value));
		return buffer;
	}
	if (json_is_boolean(value))
		return json_is_true(value) ? "yes" : "no";
	return NULL;
}

/* Finds the value at a dotted path in an object; NULL when absent. */
static json_t *
render_path(json_t *item, const char *path, size_t length)
{
	char	 name[64];
	json_t	*value = item;

	while (length > 0 && value != NULL) {
		const char *dot = memchr(path, '.', length);
		size_t part = dot != NULL ? (size_t)(dot - path) : length;

		if (part >= sizeof(name))
			return NULL;
		memcpy(name, path, part);
		name[part] = '\0';
		value = json_object_get(value, name);
		path += part;
		length -= part;
		if (length > 0) {
			path++;
			length--;
		}
	}
	return value;
}

/* The first of a column's alternatives that is present and not null. */
static json_t *
render_lookup(json_t *item, const char *key)
{
	while (*key != '\0') {
		const char *bar = strchr(key, '|');
		size_t length = bar != NULL ? (size_t)(bar - key) : strlen(key);
		json_t *value = render_path(item, key, length);

		if (value != NULL && !json_is_null(value))
			return value;
		key += length + (bar != NULL ? 1 : 0);
	}
	return NULL;
}

/* A column's cell text for one item. */
static const char *
render_cell(json_t *item, const struct render_column *column, char *buffer,
    size_t size)
{
	json_t	*value = render_lookup(item, column->key);

	if ((column->flags & RENDER_PERCENT) && json_is_number(value)) {
		snprintf(buffer, size, "%.1f%%", json_number_value(value) * 100);
		return buffer;
	}
	return render_text(value, buffer, size);
}

/* Writes items as a table of the given columns. */
static void
render_table(json_t *items, const struct render_column *columns,
    size_t count, FILE *out, bool colour)
{
	const struct render_column	*shown[RENDER_MAX_COLUMNS];
	const char			*headers[RENDER_MAX_COLUMNS];
	const char			*cells[RENDER_MAX_COLUMNS];
	char				 buffers[RENDER_MAX_COLUMNS][RENDER_CELL_SIZE];
	struct table			 table;
	size_t				 index, used = 0;
	json_t				*item;

	for (size_t c = 0; c < count && used < RENDER_MAX_COLUMNS; c++) {
		bool present = !(columns[c].flags & RENDER_OPTIONAL);

		json_array_foreach(items, index, item) {
			const char *text;

			if (present)
				break;
			text = render_cell(item, &columns[c], buffers[0],
			    sizeof(buffers[0]));
			present = text != NULL && text[0] != '\0';
		}
		if (present) {
			shown[used] = &columns[c];
			headers[used++] = columns[c].header;
		}
	}
	if (table_init(&table, headers, used) == -1)
		return;
	for (size_t c = 0; c < used; c++)
		if (shown[c]->flags & (RENDER_RIGHT | RENDER_PERCENT))
			table_align_right(&table, c);
	json_array_foreach(items, index, item) {
		for (size_t c = 0; c < used; c++)
			cells[c] = render_cell(item, shown[c], buffers[c],
			    sizeof(buffers[c]));
		if (table_add_row(&table, cells) == -1)
			break;
		for (size_t c = 0; c < used; c++)
			if (shown[c]->flags & RENDER_STATUS)
				table_style_last(&table, c,
				    table_status_style(cells[c]));
	}
	table_print(&table, out, colour);
	table_free(&table);
}

#define COUNT(columns)	(sizeof(columns) / sizeof((columns)[0]))

static const struct render_column render_address_columns[] = {
	{ "ADDRESS", "ip_address", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "STATUS", "status", RENDER_STATUS },
	{ "TYPE", "ip_type", 0 },
	{ "ACTIVE", "active", 0 },
	{ "SUBNET", "subnet_id", 0 },
	{ "HOSTNAME", "hostname", 0 },
	{ "MAC", "mac_address", 0 },
	{ "DESCRIPTION", "description", 0 },
};

/* Writes address rows as a table. */
void
render_addresses(json_t *items, FILE *out, bool colour)
{
	render_table(items, render_address_columns,
	    COUNT(render_address_columns), out, colour);
}

static const struct render_column render_subnet_columns[] = {
	{ "ID", "id", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "NAME", "name", 0 },
	{ "CIDR", "cidr", 0 },
	{ "POOL", "stats.pool_size", RENDER_RIGHT },
	{ "AVAILABLE", "stats.available", RENDER_RIGHT },
	{ "ALLOCATED", "stats.allocated", RENDER_RIGHT },
	{ "RESERVED", "stats.reserved", RENDER_RIGHT },
	{ "QUARANTINE", "stats.quarantine", RENDER_RIGHT },
	{ "ACTIVE", "stats.active", RENDER_RIGHT },
	{ "USED", "stats.utilisation", RENDER_PERCENT },
};

/* Writes subnets and their statistics as a table. */
void
render_subnets(json_t *items, FILE *out, bool colour)
{
	render_table(items, render_subnet_columns, COUNT(render_subnet_columns),
	    out, colour);
}

static const struct render_column render_conflict_columns[] = {
	{ "ADDRESS", "ip_address", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "SUBNET", "subnet_id", 0 },
	{ "KIND", "kind", 0 },
	{ "FIRST SEEN", "first_seen_at", 0 },
	{ "DETAIL", "detail", 0 },
};

/* Writes conflicts as a table. */
void
render_conflicts(json_t *items, FILE *out, bool colour)
{
	render_table(items, render_conflict_columns,
	    COUNT(render_conflict_columns), out, colour);
}

static const struct render_column render_dead_letter_columns[] = {
	{ "ID", "id", RENDER_RIGHT },
	{ "RECEIVED", "received_at", 0 },
	{ "TOPIC", "topic", 0 },
	{ "PARTITION", "partition", RENDER_RIGHT },
	{ "OFFSET", "offset", RENDER_RIGHT },
	{ "KEY", "key", 0 },
	{ "REASON", "reason", 0 },
};

/* Writes dead letters as a table. */
void
render_dead_letters(json_t *items, FILE *out, bool colour)
{
	render_table(items, render_dead_letter_columns,
	    COUNT(render_dead_letter_columns), out, colour);
}

static const struct render_column render_unplaced_server_columns[] = {
	{ "SERVER", "id", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "HOSTNAME", "hostname", 0 },
	{ "ADDRESS", "ip_address", 0 },
};

static const struct render_column render_unplaced_mark_columns[] = {
	{ "ADDRESS", "address|ip_address", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "STATUS", "status", RENDER_STATUS },
	{ "DESCRIPTION", "description", 0 },
};

/* Writes the servers and marks that are in no subnet. */
void
render_unplaced(json_t *unplaced, FILE *out, bool colour)
{
	json_t	*servers = json_object_get(unplaced, "servers");
	json_t	*marks = json_object_get(unplaced, "marks");

	fprintf(out, "servers in no subnet: %zu\n", json_array_size(servers));
	if (json_array_size(servers) > 0)
		render_table(servers, render_unplaced_server_columns,
		    COUNT(render_unplaced_server_columns), out, colour);
	fprintf(out, "marks in no subnet: %zu\n", json_array_size(marks));
	if (json_array_size(marks) > 0)
		render_table(marks, render_unplaced_mark_columns,
		    COUNT(render_unplaced_mark_columns), out, colour);
}

/*
 * Writes a value of a "key  value" line: a line break in it (a
 * description may hold some) goes on under the value, indent columns in
 * (or becomes a blank when indent is negative: one line per item); a tab
 * is a blank, another control character '?', so that the layout holds.
 */
static void
render_put(FILE *out, const char *text, int indent)
{
	for (const unsigned char *c = (const unsigned char *)text; *c != '\0';
	    c++) {
		if (*c == '\r' || *c == '\n') {
			if (*c == '\r' && c[1] == '\n')
				c++;
			if (indent < 0)
				fputc(' ', out);
			else
				fprintf(out, "\n%*s", indent, "");
		} else if (*c == '\t')
			fputc(' ', out);
		else if (*c < 0x20 || *c == 0x7f)
			fputc('?', out);
		else if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
			/* C1 controls (U+0080-U+009F) as C0 ones. */
			fputc('?', out);
			c++;
		} else
			fputc(*c, out);
	}
}

/* Writes the keys of an object under a prefix, nested objects dotted. */
static void
render_key_values_under(json_t *object, const char *prefix, FILE *out)
{
	const char	*key;
	json_t		*value;
	char		 buffer[RENDER_CELL_SIZE], *name;

	json_object_foreach(object, key, value) {
		const char *text;

		if (asprintf(&name, "%s%s%s", prefix, prefix[0] ? "." : "",
		    key) == -1)
			return;
		if (json_is_object(value)) {
			render_key_values_under(value, name, out);
		} else if (json_is_array(value)) {
			char *dumped = json_dumps(value, JSON_COMPACT);

			fprintf(out, "%-28s %s\n", name, dumped ? dumped : "");
			free(dumped);
		} else {
			text = render_text(value, buffer, sizeof(buffer));
			fprintf(out, "%-28s ", name);
			render_put(out, text ? text : "-", 29);
			fputc('\n', out);
		}
		free(name);
	}
}

/* Writes an object as one key and value a line. */
void
render_key_values(json_t *object, FILE *out)
{
	render_key_values_under(object, "", out);
}

/* The text of a key of an item, or "-". */
static const char *
render_get(json_t *item, const char *key, char *buffer, size_t size)
{
	const char *text = render_text(render_lookup(item, key), buffer, size);

	return text != NULL && text[0] != '\0' ? text : "-";
}

/* Writes one address row on one line. */
void
render_row_line(json_t *row, FILE *out, bool colour)
{
	char		 buffer[RENDER_CELL_SIZE];
	const char	*status = render_get(row, "status", buffer,
			    sizeof(buffer));
	bool		 styled = colour && table_status_style(status) !=
			    TABLE_STYLE_PLAIN;
	const char	*vrf;

	vrf = render_get(row, "vrf", buffer, sizeof(buffer));
	fprintf(out, "%s", render_get(row, "ip_address", buffer,
	    sizeof(buffer)));
	if (strcmp(vrf, "-") != 0)
		fprintf(out, " (vrf %s)", vrf);
	fprintf(out, "  %s%s%s",
	    styled ? table_style_start(table_status_style(status)) : "",
	    status, styled ? "\033[0m" : "");
	if (render_lookup(row, "hostname") != NULL) {
		fputs("  host ", out);
		render_put(out, render_get(row, "hostname", buffer,
		    sizeof(buffer)), -1);
	}
	if (render_lookup(row, "description") != NULL) {
		fputs("  \"", out);
		render_put(out, render_get(row, "description", buffer,
		    sizeof(buffer)), -1);
		fputc('"', out);
	}
	fputc('\n', out);
}

/* The keys a history line compares between before and after. */
static const char *const render_history_keys[] = {
	"status", "description", "server_id", "hostname", "mac_address",
	"subnet_id", "ip_type", "active",
};

/* "status available -> reserved; description - -> gw" for one audit row. */
static char *
render_history_change(json_t *entry)
{
	json_t	*before = json_object_get(entry, "before");
	json_t	*after = json_object_get(entry, "after");
	char	*text = NULL;
	size_t	 size = 0;
	FILE	*out = open_memstream(&text, &size);
	bool	 first = true;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < COUNT(render_history_keys); i++) {
		const char *key = render_history_keys[i];
		char b[RENDER_CELL_SIZE], a[RENDER_CELL_SIZE];
		const char *was = render_get(before, key, b, sizeof(b));
		const char *now = render_get(after, key, a, sizeof(a));

		if (strcmp(was, now) == 0)
			continue;
		fprintf(out, "%s%s %s -> %s", first ? "" : "; ", key, was, now);
		first = false;
	}
	fclose(out);
	return text;
}

static const struct render_column render_holder_columns[] = {
	{ "SERVER", "id|server_id", 0 },
	{ "VRF", "vrf", RENDER_OPTIONAL },
	{ "HOSTNAME", "hostname", 0 },
	{ "MAC", "nic_mac|mac_address", 0 },
	{ "PLATFORM", "device_type|platform", RENDER_OPTIONAL },
	{ "UPDATED", "updated_at", RENDER_OPTIONAL },
};

/* The history of an address as a table, newest first as the API sends it. */
static void
render_history(json_t *history, FILE *out)
{
	static const char *const headers[] = { "CHANGED", "ACTION",
	    "REQUESTED BY", "CHANGE", "SOURCE" };
	struct table	 table;
	size_t		 index;
	json_t		*entry;

	if (table_init(&table, headers, 5) == -1)
		return;
	json_array_foreach(history, index, entry) {
		char		 b[4][RENDER_CELL_SIZE], *source = NULL;
		char		*change = render_history_change(entry);
		const char	*cells[5];

		json_t		*run = json_object_get(entry, "run");

		if (json_is_string(json_object_get(entry, "source_topic")) &&
		    asprintf(&source, "%s/%s@%s",
		    render_get(entry, "source_topic", b[0], sizeof(b[0])),
		    render_get(entry, "source_partition", b[1], sizeof(b[1])),
		    render_get(entry, "source_offset", b[2], sizeof(b[2]))) == -1)
			source = NULL;
		/* One insert for a run of pool addresses: it says which. */
		if (change != NULL && json_array_size(run) == 2 &&
		    json_is_string(json_array_get(run, 0)) &&
		    json_is_string(json_array_get(run, 1))) {
			char *with;

			if (asprintf(&with, "%s (with %s-%s)", change,
			    json_string_value(json_array_get(run, 0)),
			    json_string_value(json_array_get(run, 1))) != -1) {
				free(change);
				change = with;
			}
		}
		cells[0] = render_get(entry, "changed_at", b[0], sizeof(b[0]));
		cells[1] = render_get(entry, "action", b[1], sizeof(b[1]));
		cells[2] = render_get(entry, "requested_by", b[2], sizeof(b[2]));
		cells[3] = change;
		cells[4] = source;
		table_add_row(&table, cells);
		free(change);
		free(source);
	}
	table_print(&table, out, false);
	table_free(&table);
}

/* Writes one address: row, mark, holders, conflicts, history. */
void
render_address_detail(json_t *detail, FILE *out, bool colour)
{
	json_t		*row, *mark, *list;
	char		 buffer[4][RENDER_CELL_SIZE];
	static const char *const keys[] = { "ip_address", "vrf", "status",
	    "ip_type", "active", "subnet_id", "server_id", "hostname",
	    "mac_address", "platform", "manufacturer", "description",
	    "last_seen_at", "last_checked_at", "rtt_us", "created_at",
	    "updated_at", "etag" };

	/* The row is under "row", or the detail is the row itself. */
	row = json_object_get(detail, "row");
	if (row == NULL && json_object_get(detail, "ip_address") != NULL)
		row = detail;
	if (json_is_object(row)) {
		for (size_t i = 0; i < COUNT(keys); i++) {
			const char *text = render_get(row, keys[i], buffer[0],
			    sizeof(buffer[0]));

			/* The default vrf is the empty name. */
			if (strcmp(keys[i], "vrf") == 0 && strcmp(text, "-") == 0)
				text = "(default)";
			bool styled = colour && strcmp(keys[i], "status") == 0;

			fprintf(out, "%-16s %s", keys[i],
			    styled ? "\033[1m" : "");
			render_put(out, text, 17);
			fprintf(out, "%s\n", styled ? "\033[0m" : "");
		}
	} else {
		fprintf(out, "%s\n", RENDER_NO_ROW);
		if (json_is_string(json_object_get(detail, "etag"))) {
			fprintf(out, "%-16s ", "etag");
			render_put(out, json_string_value(json_object_get(detail,
			    "etag")), 17);
			fputc('\n', out);
		}
	}
	mark = json_object_get(detail, "mark");
	if (json_is_object(mark)) {
		json_t *why = render_lookup(mark, "description|reason");

		fprintf(out, "\nmark: %s", render_get(mark, "status",
		    buffer[0], sizeof(buffer[0])));
		if (json_is_string(why)) {
			fputs(" \"", out);
			render_put(out, json_string_value(why), -1);
			fputc('"', out);
		}
		fprintf(out, " by %s at %s\n",
		    render_get(mark, "requested_by", buffer[2],
		    sizeof(buffer[2])),
		    render_get(mark, "updated_at", buffer[3], sizeof(buffer[3])));
	} else
		fprintf(out, "\nmark: none\n");
	list = json_object_get(detail, "holders");
	fprintf(out, "\nholders: %zu\n", json_array_size(list));
	if (json_array_size(list) > 0)
		render_table(list, render_holder_columns,
		    COUNT(render_holder_columns), out, colour);
	list = json_object_get(detail, "conflicts");
	fprintf(out, "\nconflicts: %zu\n", json_array_size(list));
	if (json_array_size(list) > 0)
		render_table(list, render_conflict_columns,
		    COUNT(render_conflict_columns), out, colour);
	list = json_object_get(detail, "history");
	fprintf(out, "\nhistory (newest first): %zu\n", json_array_size(list));
	if (json_array_size(list) > 0)
		render_history(list, out);
}

/* The changes of one kind of an import: id, create or update, fields. */
static void
render_import_changes(json_t *changes, FILE *out)
{
	static const char *const headers[] = { "ID", "ACTION", "FIELDS" };
	struct table	 table;
	size_t		 index, field_index;
	json_t		*change, *field;
	char		 buffer[2][RENDER_CELL_SIZE];

	if (table_init(&table, headers, 3) == -1)
		return;
	json_array_foreach(changes, index, change) {
		char		*fields = NULL;
		size_t		 size = 0;
		FILE		*list = open_memstream(&fields, &size);
		const char	*cells[3];

		if (list == NULL)
			break;
		json_array_foreach(json_object_get(change, "fields"),
		    field_index, field)
			fprintf(list, "%s%s", field_index > 0 ? "," : "",
			    json_string_value(field) ? json_string_value(field) :
			    "?");
		fclose(list);
		cells[0] = render_get(change, "id", buffer[0], sizeof(buffer[0]));
		cells[1] = render_get(change, "action", buffer[1],
		    sizeof(buffer[1]));
		cells[2] = fields;
		table_add_row(&table, cells);
		free(fields);
	}
	table_print(&table, out, false);
	table_free(&table);
}

/* Writes the answer of an import or of its dry run. */
void
render_import(json_t *result, bool dry_run, FILE *out, bool colour)
{
	static const char *const kinds[] = { "servers", "subnets" };
	char	 buffer[3][RENDER_CELL_SIZE];

	fprintf(out, dry_run ? "dry run: nothing was published\n" :
	    "imported\n");
	for (size_t i = 0; i < COUNT(kinds); i++) {
		json_t *kind = json_object_get(result, kinds[i]);
		json_t *changes = json_object_get(kind, "changes");

		if (json_is_integer(kind)) {
			/* Once applied, the API answers a count per kind. */
			fprintf(out, "%s: %" JSON_INTEGER_FORMAT " imported\n",
			    kinds[i], json_integer_value(kind));
			continue;
		}
		if (!json_is_object(kind))
			continue;
		fprintf(out, dry_run ? "%s: %s to create, %s to update, %s "
		    "unchanged\n" : "%s: %s created, %s updated, %s unchanged\n",
		    kinds[i],
		    render_get(kind, "create|created", buffer[0],
		    sizeof(buffer[0])),
		    render_get(kind, "update|updated", buffer[1],
		    sizeof(buffer[1])),
		    render_get(kind, "unchanged", buffer[2], sizeof(buffer[2])));
		if (dry_run && json_array_size(changes) > 0)
			render_import_changes(changes, out);
	}
	(void)colour;
}
