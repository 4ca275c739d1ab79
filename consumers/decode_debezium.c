/* The Debezium change-event decoder for the server and subnet tables. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consumers/decode.h"
#include "consumers/decode_fields.h"

/* Longest "before.column" or "after.column" label in an error message. */
#define DBZ_LABEL_MAX	160

/*
 * Finds a mapped column in a row; a column mapped to nothing (NULL or "")
 * gives NULL, and so does a missing one unless it is required.
 */
static int
dbz_column(const char *row_name, json_t *row, const char *column,
    bool required, json_t **value, char *label, char *err, size_t errlen)
{
	char	quoted[FIELDS_QUOTE_SIZE];

	*value = NULL;
	if (column == NULL || *column == '\0') {
		snprintf(label, DBZ_LABEL_MAX, "%s", row_name);
		return 0;
	}
	snprintf(label, DBZ_LABEL_MAX, "%s.%s", row_name, column);
	*value = json_object_get(row, column);
	if (*value == NULL && required) {
		fields_quote(column, strlen(column), quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s has no column %s (check "
		    "the column mapping)", row_name, quoted);
	}
	return 0;
}

/*
 * Debezium's stand-in for a TOASTed column that an update left as it
 * was: PostgreSQL does not log such a value unless the table's replica
 * identity is FULL, so Debezium cannot send it.
 */
#define DBZ_UNAVAILABLE	"__debezium_unavailable_value"

/*
 * Refuses or accepts the TOAST placeholder in a column: an update leaves
 * the field as stored (keep is set in the change and *value becomes
 * NULL); a new row, or a column whose keep bit is 0 (ids, addresses,
 * prefixes, vrf: never TOASTed), cannot hold it.
 */
static int
dbz_unchanged(char letter, const char *label, unsigned keep, json_t **value,
    struct change *out, char *err, size_t errlen)
{
	if (*value == NULL || !json_is_string(*value) ||
	    strcmp(json_string_value(*value), DBZ_UNAVAILABLE) != 0)
		return 0;
	if (keep == 0)
		return fields_error(err, errlen, "%s holds %s, which stands "
		    "for a value Debezium did not send; this column must "
		    "always be sent", label, DBZ_UNAVAILABLE);
	if (letter != 'u')
		return fields_error(err, errlen, "%s holds %s, but op %c "
		    "carries a whole row: no stored value can stand in",
		    label, DBZ_UNAVAILABLE, letter);
	out->keep |= keep;
	*value = NULL;
	return 0;
}

/* The after image of an op c, u or r, read column by column into out. */
struct dbz_row {
	json_t		*after;
	char		 letter;
	struct change	*out;
	char		 label[DBZ_LABEL_MAX];	/* of the last column read */
};

/*
 * Finds a mapped column of the row (see dbz_column) and deals with a
 * TOAST placeholder in it (see dbz_unchanged); absent, null, unmapped
 * and unchanged columns all give NULL.
 */
static int
dbz_after(struct dbz_row *row, const char *column, bool required,
    unsigned keep, json_t **value, char *err, size_t errlen)
{
	if (dbz_column("after", row->after, column, required, value,
	    row->label, err, errlen) == -1)
		return -1;
	return dbz_unchanged(row->letter, row->label, keep, value, row->out,
	    err, errlen);
}

/* Reads a server row into out. */
static int
dbz_server(const struct decode_input *in, struct dbz_row *row, char *err,
    size_t errlen)
{
	const struct debezium_columns	*c = in->columns;
	struct change			*out = row->out;
	const char			*label = row->label;
	json_t				*v;

	if (dbz_after(row, c->server_id, true, 0, &v, err, errlen) == -1 ||
	    fields_id(label, v, &out->id, err, errlen) == -1 ||
	    dbz_after(row, c->server_hostname, true, CHANGE_KEEP_HOSTNAME, &v,
	    err, errlen) == -1 ||
	    fields_string(label, v, FIELDS_TEXT_MAX, false, &out->hostname,
	    err, errlen) == -1 ||
	    dbz_after(row, c->server_ip_address, true, 0, &v, err,
	    errlen) == -1 ||
	    fields_inet(label, v, false, &out->ip, &out->has_ip, err,
	    errlen) == -1 ||
	    dbz_after(row, c->server_nic_mac, true, CHANGE_KEEP_NIC_MAC, &v,
	    err, errlen) == -1 ||
	    fields_mac(label, v, &out->nic_mac, err, errlen) == -1 ||
	    dbz_after(row, c->server_device_type, true,
	    CHANGE_KEEP_DEVICE_TYPE, &v, err, errlen) == -1 ||
	    fields_string(label, v, FIELDS_TEXT_MAX, false, &out->device_type,
	    err, errlen) == -1 ||
	    dbz_after(row, c->server_manufacture, true,
	    CHANGE_KEEP_MANUFACTURE, &v, err, errlen) == -1 ||
	    fields_string(label, v, FIELDS_TEXT_MAX, false, &out->manufacture,
	    err, errlen) == -1 ||
	    dbz_after(row, c->server_vrf, false, 0, &v, err, errlen) == -1 ||
	    fields_vrf(label, v, &out->vrf, err, errlen) == -1)
		return -1;
	/* A NULL hostname column reads as empty: upserts always have one. */
	if (out->hostname == NULL && (out->keep & CHANGE_KEEP_HOSTNAME) == 0 &&
	    (out->hostname = strdup("")) == NULL)
		return fields_error(err, errlen, "out of memory");
	return 0;
}

/* Reads a subnet row into out. */
static int
dbz_subnet(const struct decode_input *in, struct dbz_row *row, char *err,
    size_t errlen)
{
	const struct debezium_columns	*c = in->columns;
	struct change			*out = row->out;
	const char			*label = row->label;
	json_t				*v;

	if (dbz_after(row, c->subnet_id, true, 0, &v, err, errlen) == -1 ||
	    fields_id(label, v, &out->id, err, errlen) == -1 ||
	    dbz_after(row, c->subnet_name, true, CHANGE_KEEP_NAME, &v, err,
	    errlen) == -1 ||
	    fields_string(label, v, FIELDS_TEXT_MAX, false, &out->name, err,
	    errlen) == -1 ||
	    dbz_after(row, c->subnet_cidr, true, 0, &v, err, errlen) == -1 ||
	    fields_prefix(label, v, &out->cidr, err, errlen) == -1 ||
	    dbz_after(row, c->subnet_static_ip_pools, true, CHANGE_KEEP_POOLS,
	    &v, err, errlen) == -1 ||
	    fields_pools(label, v, &out->cidr,
	    in->limits->max_pool_addresses, &out->pools, &out->pool_count,
	    err, errlen) == -1 ||
	    dbz_after(row, c->subnet_vrf, false, 0, &v, err, errlen) == -1 ||
	    fields_vrf(label, v, &out->vrf, err, errlen) == -1 ||
	    dbz_after(row, c->subnet_ping, false, 0, &v, err, errlen) == -1 ||
	    fields_bool(label, v, true, &out->ping, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * Finds the id of a deleted row: from before (which holds at least the
 * primary key unless the table's replica identity is NOTHING), else from
 * the Kafka key.
 */
static int
dbz_deleted_id(const struct decode_input *in, json_t *before,
    struct change *out, char *err, size_t errlen)
{
	const char	*column;
	json_t		*v = NULL;
	char		 label[DBZ_LABEL_MAX];

	column = in->entity == CHANGE_SERVER ? in->columns->server_id :
	    in->columns->subnet_id;
	if (json_is_object(before) && dbz_column("before", before, column,
	    false, &v, label, err, errlen) == 0 && v != NULL &&
	    !json_is_null(v)) {
		if (dbz_unchanged('d', label, 0, &v, out, err, errlen) == -1)
			return -1;
		return fields_id(label, v, &out->id, err, errlen);
	}
	if (in->key == NULL)
		return fields_error(err, errlen, "a delete with no id in "
		    "before and no Kafka key: nothing says which %s to delete",
		    change_entity_name(in->entity));
	return fields_key_id("key", in->key, in->key_len, column, &out->id,
	    err, errlen);
}

/*
 * Tells whether source.snapshot names a snapshot record: one of the
 * values of Debezium's SnapshotRecord other than false, or the boolean
 * true older versions wrote.  Absent or null is a streamed change.
 */
static int
dbz_snapshot_flag(json_t *value, bool *snapshot, char *err, size_t errlen)
{
	static const char *const	 names[] = { "true", "first",
	    "first_in_data_collection", "last_in_data_collection", "last",
	    "incremental", NULL };
	const char			*text;
	char				 quoted[FIELDS_QUOTE_SIZE];
	size_t				 i;

	*snapshot = false;
	if (value == NULL || json_is_null(value))
		return 0;
	if (json_is_boolean(value)) {
		*snapshot = json_is_true(value);
		return 0;
	}
	if (!json_is_string(value))
		return fields_error(err, errlen, "source.snapshot must be a "
		    "string or a boolean, not %s", fields_json_kind(value));
	text = json_string_value(value);
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(text, names[i]) == 0) {
			*snapshot = true;
			return 0;
		}
	}
	if (strcmp(text, "false") == 0)
		return 0;
	fields_quote(text, json_string_length(value), quoted, sizeof(quoted));
	return fields_error(err, errlen, "source.snapshot %s is not one of "
	    "true, first, first_in_data_collection, last_in_data_collection, "
	    "last, incremental, false", quoted);
}

/*
 * Reads the change's place in the database's order from source: lsn,
 * the position of the change in PostgreSQL's log, and snapshot.  A
 * streamed change (c, u, d) takes its lsn as version; a snapshot record
 * (op r, or a source.snapshot that says so) keeps its lsn but has no
 * version, so that it never wins over a streamed change that follows
 * it.  Without source.lsn the Kafka offset orders the changes.
 */
static int
dbz_order(json_t *payload, char letter, struct change *out, char *err,
    size_t errlen)
{
	json_t	*source = json_object_get(payload, "source");

	if (source != NULL && !json_is_null(source)) {
		if (!json_is_object(source))
			return fields_error(err, errlen, "source must be an "
			    "object, not %s", fields_json_kind(source));
		if (fields_version("source.lsn", json_object_get(source,
		    "lsn"), &out->has_lsn, &out->lsn, err, errlen) == -1 ||
		    dbz_snapshot_flag(json_object_get(source, "snapshot"),
		    &out->snapshot, err, errlen) == -1)
			return -1;
	}
	if (letter == 'r')
		out->snapshot = true;
	if (letter == 't') {
		/* A truncate's place is all that says which rows it empties. */
		out->snapshot = false;
		if (!out->has_lsn)
			return fields_error(err, errlen, "a truncate without "
			    "source.lsn cannot be ordered against the changes "
			    "around it");
		return 0;
	}
	out->has_version = out->has_lsn && !out->snapshot;
	out->version = out->has_version ? out->lsn : 0;
	return 0;
}

/* Decodes the envelope (payload) into out; returns the decode result. */
static enum decode_result
dbz_decode(const struct decode_input *in, json_t *payload, struct change *out,
    char *err, size_t errlen)
{
	struct dbz_row	 row;
	json_t		*op;
	const char	*letter;
	char		 quoted[FIELDS_QUOTE_SIZE];
	int		 rc;

	if (json_is_null(payload)) {
		fields_error(err, errlen, "payload is null; a delete's "
		    "tombstone must be a null message value");
		return DECODE_ERROR;
	}
	if (!json_is_object(payload)) {
		fields_error(err, errlen, "the change event must be a JSON "
		    "object, not %s", fields_json_kind(payload));
		return DECODE_ERROR;
	}
	op = json_object_get(payload, "op");
	if (op == NULL || !json_is_string(op)) {
		fields_error(err, errlen, "op is %s; a change event has op "
		    "c, u, r, d or t", op == NULL ? "missing" :
		    fields_json_kind(op));
		return DECODE_ERROR;
	}
	letter = json_string_value(op);
	if (json_string_length(op) != 1 || strchr("curdt", *letter) == NULL) {
		fields_quote(letter, json_string_length(op), quoted,
		    sizeof(quoted));
		fields_error(err, errlen, "op %s is not one of c, u, r, d, t",
		    quoted);
		return DECODE_ERROR;
	}
	out->entity = in->entity;
	if (dbz_order(payload, *letter, out, err, errlen) == -1)
		return DECODE_ERROR;
	/* A truncate empties the table: it names no row, whatever the key. */
	if (*letter == 't') {
		out->op = CHANGE_TRUNCATE;
		if ((out->vrf = strdup("")) == NULL) {
			fields_error(err, errlen, "out of memory");
			return DECODE_ERROR;
		}
		return DECODE_OK;
	}
	if (*letter == 'd') {
		out->op = CHANGE_DELETE;
		rc = dbz_deleted_id(in, json_object_get(payload, "before"), out,
		    err, errlen);
		if (rc == 0 && (out->vrf = strdup("")) == NULL)
			rc = fields_error(err, errlen, "out of memory");
		return rc == 0 ? DECODE_OK : DECODE_ERROR;
	}
	out->op = CHANGE_UPSERT;
	memset(&row, 0, sizeof(row));
	row.after = json_object_get(payload, "after");
	row.letter = *letter;
	row.out = out;
	if (!json_is_object(row.after)) {
		fields_error(err, errlen, "op \"%s\" needs after to be the "
		    "row, not %s", letter, row.after == NULL ? "missing" :
		    fields_json_kind(row.after));
		return DECODE_ERROR;
	}
	if (in->entity == CHANGE_SERVER)
		rc = dbz_server(in, &row, err, errlen);
	else
		rc = dbz_subnet(in, &row, err, errlen);
	return rc == 0 ? DECODE_OK : DECODE_ERROR;
}

/* Skips white space; returns the new position. */
static size_t
dbz_space(const unsigned char *p, size_t len, size_t i)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
	    p[i] == '\r'))
		i++;
	return i;
}

/* Skips a string starting at its quote; returns the end, or 0 if bad. */
static size_t
dbz_skip_string(const unsigned char *p, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (p[i] == '"')
			return i + 1;
		if (p[i] < 0x20)
			return 0;
		if (p[i] == '\\' && ++i >= len)
			return 0;
	}
	return 0;
}

/*
 * Skips one JSON value (its nesting checked, its scalars only scanned);
 * returns the position after it, or 0 if it is not well formed.
 */
static size_t
dbz_skip_value(const unsigned char *p, size_t len, size_t i, int depth)
{
	unsigned char close;

	i = dbz_space(p, len, i);
	if (i >= len || depth > 512)
		return 0;
	if (p[i] == '"')
		return dbz_skip_string(p, len, i);
	if (p[i] != '{' && p[i] != '[') {
		size_t start = i;

		while (i < len && (isalnum(p[i]) || p[i] == '-' || p[i] == '+' ||
		    p[i] == '.'))
			i++;
		return i > start ? i : 0;
	}
	close = p[i] == '{' ? '}' : ']';
	i = dbz_space(p, len, i + 1);
	if (i < len && p[i] == close)
		return i + 1;
	for (;;) {
		if (close == '}') {
			if (i >= len || p[i] != '"' ||
			    (i = dbz_skip_string(p, len, i)) == 0)
				return 0;
			i = dbz_space(p, len, i);
			if (i >= len || p[i] != ':')
				return 0;
			i++;
		}
		if ((i = dbz_skip_value(p, len, i, depth + 1)) == 0)
			return 0;
		i = dbz_space(p, len, i);
		if (i < len && p[i] == close)
			return i + 1;
		if (i >= len || p[i] != ',')
			return 0;
		i = dbz_space(p, len, i + 1);
	}
}

/* Reads a top-level member name that is plain "schema" or "payload". */
static int
dbz_member(const unsigned char *p, size_t len, size_t *i)
{
	static const char *const names[] = { "\"schema\"", "\"payload\"" };
	size_t n;
	int k;

	for (k = 0; k < 2; k++) {
		n = strlen(names[k]);
		if (*i + n <= len && memcmp(p + *i, names[k], n) == 0) {
			*i = dbz_space(p, len, *i + n);
			if (*i >= len || p[*i] != ':')
				return -1;
			*i += 1;
			return k;
		}
	}
	return -1;
}

/*
 * Finds the payload of a {"schema": ..., "payload": ...} wrapper without
 * building the schema block, which is most of a Debezium message's bytes
 * (it is scanned for well-formedness only).  Returns true with the
 * payload's span, or false when the value is not such a wrapper, spelt
 * plainly: then the whole value is parsed as it is.
 */
bool
decode_debezium_payload_span(const void *value, size_t len, size_t *offset,
    size_t *span)
{
	const unsigned char *p = value;
	size_t i, start, end, payload_start = 0, payload_end = 0;
	int member, seen = 0;

	i = dbz_space(p, len, 0);
	if (i >= len || p[i] != '{')
		return false;
	i = dbz_space(p, len, i + 1);
	for (;;) {
		if ((member = dbz_member(p, len, &i)) < 0 ||
		    (seen & (1 << member)) != 0)
			return false;
		seen |= 1 << member;
		start = dbz_space(p, len, i);
		if ((end = dbz_skip_value(p, len, start, 0)) == 0)
			return false;
		if (member == 1) {
			payload_start = start;
			payload_end = end;
		}
		i = dbz_space(p, len, end);
		if (i < len && p[i] == '}')
			break;
		if (i >= len || p[i] != ',')
			return false;
		i = dbz_space(p, len, i + 1);
	}
	if (seen != 3 || dbz_space(p, len, i + 1) != len)
		return false;
	*offset = payload_start;
	*span = payload_end - payload_start;
	return true;
}

/*
 * Parses a message: the payload alone when it comes in a schema wrapper,
 * else the whole value.  The caller frees the result.
 */
static json_t *
dbz_load(const void *value, size_t len, json_error_t *jerr)
{
	size_t offset, span;

	if (decode_debezium_payload_span(value, len, &offset, &span))
		return json_loadb((const char *)value + offset, span,
		    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, jerr);
	return json_loadb(value, len, JSON_REJECT_DUPLICATES, jerr);
}

/* The Debezium change-event decoder (with or without schema wrapper). */
enum decode_result
decode_debezium(const struct decode_input *in, struct change *out, char *err,
    size_t errlen)
{
	enum decode_result	 result = DECODE_ERROR;
	json_error_t		 jerr;
	json_t			*root = NULL;

	memset(out, 0, sizeof(*out));
	if (in->entity == CHANGE_MARK)
		fields_error(err, errlen, "marks are not carried by Debezium; "
		    "a mark topic takes CloudEvents");
	else if (in->value == NULL)
		fields_error(err, errlen, "the value is null (a tombstone); "
		    "decode_message() handles those");
	else if (in->value_len == 0)
		fields_error(err, errlen, "the value is empty; a tombstone "
		    "must be null");
	else if ((root = dbz_load(in->value, in->value_len, &jerr)) == NULL)
		fields_error(err, errlen, "the value is not valid JSON: %s "
		    "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
	else
		result = dbz_decode(in, fields_unwrap(root), out, err, errlen);
	json_decref(root);
	if (result != DECODE_OK)
		change_clear(out);
	if (result == DECODE_ERROR)
		fields_error_prefix(err, errlen, "debezium");
	return result;
}
