/* The Debezium change-event decoder for the server and subnet tables. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consumers/decode.h"
#include "consumers/decode_decimal.h"
#include "consumers/decode_fields.h"
#include "consumers/decode_scan.h"

/* Longest "before.column" or "after.column" label in an error message. */
#define DBZ_LABEL_MAX	160

/* Most columns a row is read for (a server's seven). */
#define DBZ_COLUMNS	8

/*
 * Objects and arrays of a message whose ends the check notes for the
 * reading (a server event with its schema block holds about 60).
 */
#define DBZ_TAPE	256

/*
 * A string of the message with its escapes resolved, NUL-terminated, for
 * the validators: on the stack, or on the heap when it is long.
 */
struct dbz_text {
	char	 small[512];
	char	*heap;
};

/*
 * What the schema block says of the id column: whether its values are
 * Kafka Connect decimals (a numeric column), and their scale.
 */
struct dbz_id_type {
	enum decimal_kind	kind;
	long			scale;
};

/* Frees what a text took from the heap; it can be used again. */
static void
dbz_text_clear(struct dbz_text *text)
{
	free(text->heap);
	text->heap = NULL;
}

/*
 * Reads a value of the message as the validators take it; a string is
 * decoded into text, which holds it until its next use.
 */
static int
dbz_field(const struct scan_value *value, struct fields_value *field,
    struct dbz_text *text, char *err, size_t errlen)
{
	char	*buf = text->small;
	size_t	 len;

	memset(field, 0, sizeof(*field));
	field->kind = value->kind;
	if (value->kind == SCAN_INTEGER)
		field->integer = scan_integer(value);
	else if (value->kind == SCAN_ARRAY || value->kind == SCAN_OBJECT) {
		field->raw = value->start;
		field->raw_len = value->len;
	} else if (value->kind == SCAN_STRING) {
		dbz_text_clear(text);
		len = scan_string_length(value);
		if (len >= sizeof(text->small) &&
		    (buf = text->heap = malloc(len + 1)) == NULL)
			return fields_error(err, errlen, "out of memory");
		scan_string_copy(value, buf);
		field->text = buf;
		field->len = len;
	}
	return 0;
}

/*
 * Reads an id column: a numeric column's value, a Kafka Connect decimal
 * (the schema block says so: the base64 of its bytes) or a Debezium
 * VariableScaleDecimal (an object of scale and value), becomes its
 * decimal text (decode_decimal.h); any other value is an id as
 * fields_id_value() reads it.
 */
static int
dbz_id(const struct dbz_id_type *type, const char *label,
    const struct fields_value *value, char **out, char *err, size_t errlen)
{
	json_t	*parsed;
	int	 rc;

	if (value->kind == SCAN_STRING && type->kind != DECIMAL_NONE)
		return decimal_kind_id(label, type->kind, type->scale,
		    "the schema block", value->text, value->len, out, err,
		    errlen);
	if (value->kind == SCAN_OBJECT) {
		parsed = json_loadb(value->raw, value->raw_len, 0, NULL);
		if (decimal_is_variable(parsed)) {
			rc = decimal_variable_id(label, parsed, out, err,
			    errlen);
			json_decref(parsed);
			return rc;
		}
		json_decref(parsed);
	}
	return fields_id_value(label, value, out, err, errlen);
}

/* Tells whether a column is mapped: a name, not NULL or "". */
static bool
dbz_mapped(const char *column)
{
	return column != NULL && *column != '\0';
}

/*
 * Writes the label errors give a column, "row.column", or "row" for a
 * column mapped to nothing (a plain copy: this runs for every column).
 */
static void
dbz_label(char *label, const char *row_name, const char *column)
{
	size_t	used = strlen(row_name), n;

	memcpy(label, row_name, used);
	if (dbz_mapped(column)) {
		n = strlen(column);
		if (n > DBZ_LABEL_MAX - used - 2)
			n = DBZ_LABEL_MAX - used - 2;
		label[used++] = '.';
		memcpy(label + used, column, n);
		used += n;
	}
	label[used] = '\0';
}

/*
 * Labels a column of a row and refuses it missing when it is mapped and
 * required; found is what the row holds under the column's name
 * (SCAN_ABSENT when it is not mapped).
 */
static int
dbz_column(const char *row_name, const char *column, bool required,
    const struct scan_value *found, char *label, char *err, size_t errlen)
{
	char	quoted[FIELDS_QUOTE_SIZE];

	dbz_label(label, row_name, column);
	if (dbz_mapped(column) && found->kind == SCAN_ABSENT && required) {
		fields_quote(column, strlen(column), quoted, sizeof(quoted));
		return fields_error(err, errlen, "%s has no column %s (check "
		    "the column mapping)", row_name, quoted);
	}
	return 0;
}

/*
 * Debezium's stand-in for a TOASTed column that an update left as it
 * was: PostgreSQL does not log such a value unless the table's replica
 * identity is FULL, so Debezium cannot send it.  The connector's
 * unavailable.value.placeholder; this is its default.
 */
#define DBZ_UNAVAILABLE	"__debezium_unavailable_value"

/* The placeholder the connector is configured with. */
static const char *
dbz_placeholder(const struct decode_input *in)
{
	return in->columns->unavailable != NULL &&
	    *in->columns->unavailable != '\0' ? in->columns->unavailable :
	    DBZ_UNAVAILABLE;
}

/*
 * Whether an array column holds the placeholder alone: how Debezium sends
 * an unchanged TOASTed array column (text[]), the placeholder as its one
 * element.
 */
static bool
dbz_unavailable_array(const char *placeholder,
    const struct fields_value *value)
{
	json_t	*array;
	bool	 found;

	/*
	 * The placeholder and its brackets, with room for white space and
	 * escapes.
	 */
	if (value->kind != SCAN_ARRAY || value->raw == NULL ||
	    value->raw_len > 6 * strlen(placeholder) + 16)
		return false;
	array = json_loadb(value->raw, value->raw_len, 0, NULL);
	found = json_array_size(array) == 1 &&
	    json_is_string(json_array_get(array, 0)) &&
	    strcmp(json_string_value(json_array_get(array, 0)),
	    placeholder) == 0;
	json_decref(array);
	return found;
}

/*
 * Refuses or accepts the TOAST placeholder in a column (or an array of it
 * alone, dbz_unavailable_array()): an update leaves
 * the field as stored (keep is set in the change and the value becomes
 * absent); a new row, or a column whose keep bit is 0 (ids, addresses,
 * prefixes, vrf: never TOASTed), cannot hold it.
 */
static int
dbz_unchanged(const struct decode_input *in, char letter, const char *label,
    unsigned keep, struct fields_value *value, struct change *out, char *err,
    size_t errlen)
{
	const char	*placeholder = dbz_placeholder(in);

	if ((value->kind != SCAN_STRING ||
	    strcmp(value->text, placeholder) != 0) &&
	    !dbz_unavailable_array(placeholder, value))
		return 0;
	if (keep == 0)
		return fields_error(err, errlen, "%s holds %s, which stands "
		    "for a value Debezium did not send; this column must "
		    "always be sent", label, placeholder);
	/*
	 * An update that changed the primary key comes as a delete of the
	 * old key and a create of the new one, whose unchanged TOASTed
	 * columns PostgreSQL logs only under REPLICA IDENTITY FULL.
	 */
	if (letter == 'c' &&
	    decode_header_find(in, "__debezium.oldkey", false) != NULL)
		return fields_error(err, errlen, "%s holds %s in the create "
		    "Debezium sends for an update that changed the row's "
		    "primary key (header __debezium.oldkey): PostgreSQL did "
		    "not log the unchanged value; set REPLICA IDENTITY FULL "
		    "on the table so that such a row comes whole", label,
		    placeholder);
	if (letter != 'u')
		return fields_error(err, errlen, "%s holds %s, but op %c "
		    "carries a whole row: no stored value can stand in",
		    label, placeholder, letter);
	out->keep |= keep;
	value->kind = SCAN_ABSENT;
	return 0;
}

/*
 * The after image of an op c, u or r: its mapped columns, found in one
 * pass, then read one by one into out.
 */
struct dbz_row {
	struct scan_value	 after;
	struct dbz_id_type	 id_type;
	const char		*names[DBZ_COLUMNS];	/* NULL: not mapped */
	struct scan_value	 columns[DBZ_COLUMNS];
	char			 letter;
	struct change		*out;
	const struct decode_input *in;
	char			 label[DBZ_LABEL_MAX];	/* of the last column read */
	struct dbz_text		 text;			/* of the last column read */
};

/* Finds the row's columns, given in the order dbz_after() reads them. */
static void
dbz_find_columns(struct dbz_row *row, const char *const *columns,
    size_t count)
{
	size_t	k;

	for (k = 0; k < count; k++)
		row->names[k] = dbz_mapped(columns[k]) ? columns[k] : NULL;
	scan_find(&row->after, row->names, count, row->columns);
}

/*
 * Reads column k of the row (see dbz_column) and deals with a TOAST
 * placeholder in it (see dbz_unchanged); absent, unmapped and unchanged
 * columns all give SCAN_ABSENT.
 */
static int
dbz_after(struct dbz_row *row, size_t k, bool required, unsigned keep,
    struct fields_value *value, char *err, size_t errlen)
{
	if (dbz_column("after", row->names[k], required, &row->columns[k],
	    row->label, err, errlen) == -1 ||
	    dbz_field(&row->columns[k], value, &row->text, err, errlen) == -1)
		return -1;
	return dbz_unchanged(row->in, row->letter, row->label, keep, value,
	    row->out, err, errlen);
}

/* Reads a server row into out. */
static int
dbz_server(const struct decode_input *in, struct dbz_row *row, char *err,
    size_t errlen)
{
	const struct debezium_columns	*c = in->columns;
	const char			*columns[] = { c->server_id,
	    c->server_hostname, c->server_ip_address, c->server_nic_mac,
	    c->server_device_type, c->server_manufacture, c->server_vrf };
	struct change			*out = row->out;
	const char			*label = row->label;
	struct fields_value		 v;

	dbz_find_columns(row, columns, sizeof(columns) / sizeof(columns[0]));
	if (dbz_after(row, 0, true, 0, &v, err, errlen) == -1 ||
	    dbz_id(&row->id_type, label, &v, &out->id, err, errlen) == -1 ||
	    dbz_after(row, 1, true, CHANGE_KEEP_HOSTNAME, &v, err,
	    errlen) == -1 ||
	    fields_string_value(label, &v, FIELDS_TEXT_MAX, false,
	    &out->hostname, err, errlen) == -1 ||
	    dbz_after(row, 2, true, 0, &v, err, errlen) == -1 ||
	    fields_inet_value(label, &v, false, &out->ip, &out->has_ip, err,
	    errlen) == -1 ||
	    dbz_after(row, 3, true, CHANGE_KEEP_NIC_MAC, &v, err,
	    errlen) == -1 ||
	    fields_mac_value(label, &v, &out->nic_mac, err, errlen) == -1 ||
	    dbz_after(row, 4, true, CHANGE_KEEP_DEVICE_TYPE, &v, err,
	    errlen) == -1 ||
	    fields_string_value(label, &v, FIELDS_TEXT_MAX, false,
	    &out->device_type, err, errlen) == -1 ||
	    dbz_after(row, 5, true, CHANGE_KEEP_MANUFACTURE, &v, err,
	    errlen) == -1 ||
	    fields_string_value(label, &v, FIELDS_TEXT_MAX, false,
	    &out->manufacture, err, errlen) == -1 ||
	    dbz_after(row, 6, false, 0, &v, err, errlen) == -1 ||
	    fields_vrf_value(label, &v, &out->vrf, err, errlen) == -1)
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
	const char			*columns[] = { c->subnet_id,
	    c->subnet_name, c->subnet_cidr, c->subnet_static_ip_pools,
	    c->subnet_vrf, c->subnet_ping };
	struct change			*out = row->out;
	const char			*label = row->label;
	struct fields_value		 v;

	dbz_find_columns(row, columns, sizeof(columns) / sizeof(columns[0]));
	if (dbz_after(row, 0, true, 0, &v, err, errlen) == -1 ||
	    dbz_id(&row->id_type, label, &v, &out->id, err, errlen) == -1 ||
	    dbz_after(row, 1, true, CHANGE_KEEP_NAME, &v, err, errlen) == -1 ||
	    fields_string_value(label, &v, FIELDS_TEXT_MAX, false, &out->name,
	    err, errlen) == -1 ||
	    dbz_after(row, 2, true, 0, &v, err, errlen) == -1 ||
	    fields_prefix_value(label, &v, &out->cidr, err, errlen) == -1 ||
	    dbz_after(row, 3, true, CHANGE_KEEP_POOLS, &v, err, errlen) == -1 ||
	    fields_pools_value(label, &v, &out->cidr,
	    in->limits->max_pool_addresses, &out->pools, &out->pool_count,
	    &out->pool_edges, err, errlen) == -1 ||
	    dbz_after(row, 4, false, 0, &v, err, errlen) == -1 ||
	    fields_vrf_value(label, &v, &out->vrf, err, errlen) == -1 ||
	    dbz_after(row, 5, false, 0, &v, err, errlen) == -1 ||
	    fields_bool_value(label, &v, true, &out->ping, err, errlen) == -1)
		return -1;
	return 0;
}

/* How Kafka Connect's JsonConverter begins a wrapper, and its payload. */
static const char dbz_schema_head[] = "{\"schema\":";
static const char dbz_payload_head[] = ",\"payload\":";
#define DBZ_SCHEMA_HEAD		(sizeof(dbz_schema_head) - 1)
#define DBZ_PAYLOAD_HEAD	(sizeof(dbz_payload_head) - 1)

/*
 * Tells whether a checked wrapper is written as Kafka Connect writes it,
 * {"schema":<block>,"payload":<payload>…, with a block of at most room
 * bytes: a memo can keep the block.
 */
static bool
dbz_compact(const char *text, const struct scan_value *schema,
    const struct scan_value *payload, size_t room)
{
	return schema->len <= room &&
	    memcmp(text, dbz_schema_head, DBZ_SCHEMA_HEAD) == 0 &&
	    schema->start == text + DBZ_SCHEMA_HEAD &&
	    payload->start == schema->start + schema->len + DBZ_PAYLOAD_HEAD &&
	    memcmp(schema->start + schema->len, dbz_payload_head,
	    DBZ_PAYLOAD_HEAD) == 0;
}

/*
 * Where the payload of text begins when text begins as a compact wrapper
 * of a kept block (block_len bytes, 0: none) does; 0 when it does not.
 */
static size_t
dbz_memo_skip(const char *text, size_t len, const char *block,
    size_t block_len)
{
	size_t	skip = DBZ_SCHEMA_HEAD + block_len + DBZ_PAYLOAD_HEAD;

	if (block_len == 0 || len <= skip ||
	    memcmp(text, dbz_schema_head, DBZ_SCHEMA_HEAD) != 0 ||
	    memcmp(text + DBZ_SCHEMA_HEAD, block, block_len) != 0 ||
	    memcmp(text + skip - DBZ_PAYLOAD_HEAD, dbz_payload_head,
	    DBZ_PAYLOAD_HEAD) != 0)
		return 0;
	return skip;
}

/* Tells whether text goes into a JSON string as it is, with no escape. */
static bool
dbz_plain(const char *text)
{
	for (; *text != '\0'; text++)
		if (*text == '"' || *text == '\\' || (unsigned char)*text < 0x20)
			return false;
	return true;
}

/*
 * The payload a key must hold to name id: {"<column>":<id>}, the id as
 * an integer when it reads as one that any check gives back as it is,
 * else as a string; false when id or column would need an escape there.
 */
static bool
dbz_key_payload(const char *column, const char *id, char *out, size_t size)
{
	size_t	len = strlen(id), sign = id[0] == '-', named = strlen(column);
	bool	integer;

	if (!dbz_plain(column) || !dbz_plain(id) || named + len + 7 > size)
		return false;
	/* Digits, no leading zero, no "-0", and well inside 64 bits. */
	integer = len > sign && len - sign <= 18 &&
	    strspn(id + sign, "0123456789") == len - sign &&
	    (id[sign] != '0' || (len == 1 && sign == 0));
	*out++ = '{';
	*out++ = '"';
	memcpy(out, column, named);
	out += named;
	*out++ = '"';
	*out++ = ':';
	if (!integer)
		*out++ = '"';
	memcpy(out, id, len);
	out += len;
	if (!integer)
		*out++ = '"';
	*out++ = '}';
	*out = '\0';
	return true;
}

/*
 * A key that begins as the memo's key does, its schema block byte for
 * byte, and holds exactly the payload that names id: it agrees, as a
 * check of every byte would say (the block was checked whole before and
 * names no Decimal, and the payload is written here).
 */
static bool
dbz_key_memo(const struct decode_input *in, const char *column,
    const char *id)
{
	const struct decode_memo	*memo = in->memo;
	const char			*key = in->key;
	char				 payload[FIELDS_QUOTE_SIZE + 64];
	size_t				 skip, n;

	if (memo == NULL || (skip = dbz_memo_skip(key, in->key_len,
	    memo->key_schema, memo->key_schema_len)) == 0 ||
	    !dbz_key_payload(column, id, payload, sizeof(payload)) ||
	    (n = strlen(payload)) != in->key_len - skip - 1 ||
	    key[in->key_len - 1] != '}' || memcmp(key + skip, payload, n) != 0)
		return false;
	return memmem(payload, n, "Decimal", 7) == NULL;
}

/*
 * Keeps a checked key's schema block in the memo when the key is a
 * compact wrapper, as dbz_memo_keep() does for values.
 */
static void
dbz_key_memo_keep(const struct decode_input *in,
    const struct scan_value *schema, const struct scan_value *payload)
{
	if (in->memo == NULL || !dbz_compact(in->key, schema, payload,
	    sizeof(in->memo->key_schema)))
		return;
	memcpy(in->memo->key_schema, schema->start, schema->len);
	in->memo->key_schema_len = schema->len;
}

/*
 * The common key, quickly: an object (in a schema wrapper or not) whose
 * one member is the id column, holding the id as an integer or a string.
 * False when it is not so, or not so plainly (a Decimal's base64): then
 * fields_key_id() reads it.
 */
static bool
dbz_key_is(const struct decode_input *in, const char *column, const char *id)
{
	static const char *const wrapper[] = { "schema", "payload" };
	const char		*key = in->key;
	size_t			 len = in->key_len;
	struct scan_tape_entry	 entries[16];
	struct scan_tape	 tape;
	struct scan_value	 top, found[2], member, *payload;
	size_t			 members;
	char			 reason[128], text[32];

	if (dbz_key_memo(in, column, id))
		return true;
	/*
	 * White space at an end, which fields_key_id() refuses, and a
	 * Decimal, whose text is not the id's, take the long way.
	 */
	if (key[0] != '{' || key[len - 1] != '}' ||
	    memmem(key, len, "Decimal", 7) != NULL)
		return false;
	scan_tape_init(&tape, entries, 16);
	if (scan_check_find(key, len, &tape, wrapper, 2, found, &members, &top,
	    reason, sizeof(reason)) == -1 || top.kind != SCAN_OBJECT)
		return false;
	if (members == 2 && found[0].kind != SCAN_ABSENT &&
	    found[1].kind != SCAN_ABSENT) {
		dbz_key_memo_keep(in, &found[0], &found[1]);
		payload = &found[1];
	} else
		payload = &top;
	if (scan_find(payload, &column, 1, &member) != 1)
		return false;
	if (member.kind == SCAN_INTEGER) {
		snprintf(text, sizeof(text), "%" PRId64, scan_integer(&member));
		return strcmp(text, id) == 0;
	}
	/* A string's bytes as written, quotes and no escape: the id's. */
	return member.kind == SCAN_STRING && member.len == strlen(id) + 2 &&
	    memchr(member.start, '\\', member.len) == NULL &&
	    memcmp(member.start + 1, id, member.len - 2) == 0;
}

/*
 * The Kafka key, when there is one, names the row's id and nothing else
 * (fields_key_id()): compaction and a delete's tombstone go by the key,
 * the state by the id, and they must be one.
 */
static int
dbz_key_agrees(const struct decode_input *in, const char *id, char *err,
    size_t errlen)
{
	const char	*column = in->entity == CHANGE_SERVER ?
	    in->columns->server_id : in->columns->subnet_id;
	char		*named, quoted[FIELDS_QUOTE_SIZE], row[FIELDS_QUOTE_SIZE];
	int		 rc = 0;

	if (in->key == NULL || in->key_len == 0 ||
	    dbz_key_is(in, column, id))
		return 0;
	/* Another shape, or another id: read it whole, to say which. */
	if (fields_key_id("key", in->key, in->key_len, column, &named, err,
	    errlen) == -1)
		return -1;
	if (strcmp(named, id) != 0) {
		fields_quote(named, strlen(named), quoted, sizeof(quoted));
		fields_quote(id, strlen(id), row, sizeof(row));
		rc = fields_error(err, errlen, "the Kafka key names the id %s "
		    "but the row's id is %s: the key must be the row's id "
		    "column alone", quoted, row);
	}
	free(named);
	return rc;
}

/*
 * Finds the id of a deleted row: from before (which holds at least the
 * primary key unless the table's replica identity is NOTHING), else from
 * the Kafka key.
 */
static int
dbz_deleted_id(const struct decode_input *in, const struct scan_value *before,
    const struct dbz_id_type *id_type, struct change *out, char *err,
    size_t errlen)
{
	const char		*column;
	struct scan_value	 found;
	struct fields_value	 v;
	struct dbz_text		 text = { .heap = NULL };
	char			 label[DBZ_LABEL_MAX];
	int			 rc;

	column = in->entity == CHANGE_SERVER ? in->columns->server_id :
	    in->columns->subnet_id;
	memset(&found, 0, sizeof(found));
	if (before->kind == SCAN_OBJECT && dbz_mapped(column))
		scan_member(before, column, &found);
	if (before->kind == SCAN_OBJECT && dbz_column("before", column, false,
	    &found, label, err, errlen) == 0 &&
	    found.kind != SCAN_ABSENT && found.kind != SCAN_NULL) {
		rc = dbz_field(&found, &v, &text, err, errlen);
		if (rc == 0)
			rc = dbz_unchanged(in, 'd', label, 0, &v, out, err,
			    errlen);
		if (rc == 0)
			rc = dbz_id(id_type, label, &v, &out->id, err, errlen);
		dbz_text_clear(&text);
		return rc == 0 ? dbz_key_agrees(in, out->id, err, errlen) : rc;
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
 * true older versions wrote.  Absent or null is a streamed change.  Tells
 * too whether it is the first record of the snapshot (first) or of its
 * table (first_in_data_collection): where a snapshot begins.
 */
static int
dbz_snapshot_flag(const struct fields_value *value, bool *snapshot,
    bool *begins, char *err, size_t errlen)
{
	static const char *const	 names[] = { "true", "first",
	    "first_in_data_collection", "last_in_data_collection", "last",
	    "incremental", NULL };
	char				 quoted[FIELDS_QUOTE_SIZE];
	size_t				 i;

	*snapshot = *begins = false;
	if (value->kind == SCAN_ABSENT || value->kind == SCAN_NULL)
		return 0;
	if (value->kind == SCAN_TRUE || value->kind == SCAN_FALSE) {
		*snapshot = value->kind == SCAN_TRUE;
		return 0;
	}
	if (value->kind != SCAN_STRING)
		return fields_error(err, errlen, "source.snapshot must be a "
		    "string or a boolean, not %s",
		    fields_kind_name(value->kind));
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(value->text, names[i]) == 0) {
			*snapshot = true;
			*begins = strncmp(names[i], "first", 5) == 0;
			return 0;
		}
	}
	if (strcmp(value->text, "false") == 0)
		return 0;
	fields_quote(value->text, value->len, quoted, sizeof(quoted));
	return fields_error(err, errlen, "source.snapshot %s is not one of "
	    "true, first, first_in_data_collection, last_in_data_collection, "
	    "last, incremental, false", quoted);
}

/*
 * Reads source.lsn and source.snapshot of a source object.
 */
static int
dbz_source(const struct scan_value *source, struct change *out, char *err,
    size_t errlen)
{
	static const char *const names[] = { "lsn", "snapshot" };
	struct scan_value	 found[2];
	struct fields_value	 v;
	struct dbz_text		 text = { .heap = NULL };
	int			 rc;

	scan_find(source, names, 2, found);
	rc = dbz_field(&found[0], &v, &text, err, errlen);
	if (rc == 0)
		rc = fields_version_value("source.lsn", &v, &out->has_lsn,
		    &out->lsn, err, errlen);
	if (rc == 0)
		rc = dbz_field(&found[1], &v, &text, err, errlen);
	if (rc == 0)
		rc = dbz_snapshot_flag(&v, &out->snapshot,
		    &out->snapshot_begins, err, errlen);
	dbz_text_clear(&text);
	return rc;
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
dbz_order(const struct scan_value *source, char letter, struct change *out,
    char *err, size_t errlen)
{
	if (source->kind != SCAN_ABSENT && source->kind != SCAN_NULL) {
		if (source->kind != SCAN_OBJECT)
			return fields_error(err, errlen, "source must be an "
			    "object, not %s", fields_kind_name(source->kind));
		if (dbz_source(source, out, err, errlen) == -1)
			return -1;
	}
	if (letter == 'r')
		out->snapshot = true;
	if (letter == 't') {
		/* A truncate's place is all that says which rows it empties. */
		out->snapshot = out->snapshot_begins = false;
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

/*
 * Reads op: one of the letters c, u, r, d, t, kept in *letter.
 */
static int
dbz_op(const struct scan_value *op, char *letter, char *err, size_t errlen)
{
	struct fields_value	v;
	struct dbz_text		text = { .heap = NULL };
	char			quoted[FIELDS_QUOTE_SIZE];
	int			rc = 0;

	if (op->kind != SCAN_STRING)
		return fields_error(err, errlen, "op is %s; a change event has "
		    "op c, u, r, d or t", fields_kind_name(op->kind));
	if (dbz_field(op, &v, &text, err, errlen) == -1)
		return -1;
	if (v.len != 1 || strchr("curdt", v.text[0]) == NULL) {
		fields_quote(v.text, v.len, quoted, sizeof(quoted));
		rc = fields_error(err, errlen, "op %s is not one of c, u, r, d, "
		    "t", quoted);
	}
	*letter = v.text[0];
	dbz_text_clear(&text);
	return rc;
}

/* Members of the envelope the decoder reads, in one pass. */
enum dbz_envelope { DBZ_OP, DBZ_SOURCE, DBZ_BEFORE, DBZ_AFTER, DBZ_MEMBERS };

/* Decodes the envelope (payload) into out; returns the decode result. */
static enum decode_result
dbz_decode(const struct decode_input *in, const struct scan_value *payload,
    const struct dbz_id_type *id_type, struct change *out, char *err,
    size_t errlen)
{
	static const char *const names[DBZ_MEMBERS] = {
		[DBZ_OP] = "op", [DBZ_SOURCE] = "source",
		[DBZ_BEFORE] = "before", [DBZ_AFTER] = "after",
	};
	struct scan_value	 found[DBZ_MEMBERS];
	struct dbz_row		 row;
	char			 letter = 0;
	int			 rc;

	if (payload->kind == SCAN_NULL) {
		fields_error(err, errlen, "payload is null; a delete's "
		    "tombstone must be a null message value");
		return DECODE_ERROR;
	}
	if (payload->kind != SCAN_OBJECT) {
		fields_error(err, errlen, "the change event must be a JSON "
		    "object, not %s", fields_kind_name(payload->kind));
		return DECODE_ERROR;
	}
	scan_find(payload, names, DBZ_MEMBERS, found);
	if (dbz_op(&found[DBZ_OP], &letter, err, errlen) == -1)
		return DECODE_ERROR;
	out->entity = in->entity;
	if (dbz_order(&found[DBZ_SOURCE], letter, out, err, errlen) == -1)
		return DECODE_ERROR;
	/* A truncate empties the table: it names no row, whatever the key. */
	if (letter == 't') {
		out->op = CHANGE_TRUNCATE;
		if ((out->vrf = strdup("")) == NULL) {
			fields_error(err, errlen, "out of memory");
			return DECODE_ERROR;
		}
		return DECODE_OK;
	}
	if (letter == 'd') {
		out->op = CHANGE_DELETE;
		rc = dbz_deleted_id(in, &found[DBZ_BEFORE], id_type, out, err,
		    errlen);
		if (rc == 0 && (out->vrf = strdup("")) == NULL)
			rc = fields_error(err, errlen, "out of memory");
		return rc == 0 ? DECODE_OK : DECODE_ERROR;
	}
	out->op = CHANGE_UPSERT;
	memset(&row, 0, sizeof(row));
	row.after = found[DBZ_AFTER];
	row.id_type = *id_type;
	row.letter = letter;
	row.out = out;
	row.in = in;
	if (row.after.kind != SCAN_OBJECT) {
		fields_error(err, errlen, "op \"%c\" needs after to be the "
		    "row, not %s", letter, fields_kind_name(row.after.kind));
		return DECODE_ERROR;
	}
	if (in->entity == CHANGE_SERVER)
		rc = dbz_server(in, &row, err, errlen);
	else
		rc = dbz_subnet(in, &row, err, errlen);
	if (rc == 0)
		rc = dbz_key_agrees(in, out->id, err, errlen);
	dbz_text_clear(&row.text);
	return rc == 0 ? DECODE_OK : DECODE_ERROR;
}

/*
 * Says why a value that the scan refused (or that is no object or array)
 * is not JSON a change event can be: jansson's words, as a message parsed
 * whole has always been refused with them; the scan's when jansson, which
 * it follows, takes the value after all.
 */
static void
dbz_not_json(const void *value, size_t len, const char *scan_reason,
    char *err, size_t errlen)
{
	json_error_t	 jerr;
	json_t		*root;

	root = json_loadb(value, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		fields_error(err, errlen, "the value is not valid JSON: %s "
		    "(line %d, column %d)", jerr.text, jerr.line, jerr.column);
	else
		fields_error(err, errlen, "the value is not valid JSON: %s",
		    scan_reason);
	json_decref(root);
}

/*
 * Checks the payload alone when a message is the memo's schema block in
 * a compact wrapper, {"schema":<the block>,"payload":<payload>} with
 * white space only before the closing brace: the block was checked
 * whole before, so the verdict is the same as a check of every byte.
 * True with the payload in *payload; false when the message is not
 * such a wrapper (or its payload not JSON), for the full check to say.
 */
static bool
dbz_memo_payload(const struct decode_input *in, struct scan_tape *tape,
    struct scan_value *payload)
{
	const struct decode_memo	*memo = in->memo;
	const char			*value = in->value, *rest;
	size_t				 end = in->value_len, skip, members;
	char				 reason[128];

	if (memo == NULL || (skip = dbz_memo_skip(value, end, memo->schema,
	    memo->schema_len)) == 0)
		return false;
	while (end > skip && strchr(" \t\r\n", value[end - 1]) != NULL &&
	    value[end - 1] != '\0')
		end--;
	if (end <= skip || value[end - 1] != '}')
		return false;
	rest = value + skip;
	/* The payload is a member of the wrapper: level 2 of the message. */
	return scan_check_nested(rest, (size_t)(value + end - 1 - rest), 2,
	    tape, NULL, 0, NULL, &members, payload, reason,
	    sizeof(reason)) == 0;
}

/*
 * Keeps a checked wrapper's schema block in the memo when the message
 * is written as Kafka Connect writes it (see dbz_memo_payload).
 */
static void
dbz_memo_keep(const struct decode_input *in, const struct scan_value *schema,
    const struct scan_value *payload, const struct dbz_id_type *id_type)
{
	if (in->memo == NULL || !dbz_compact(in->value, schema, payload,
	    sizeof(in->memo->schema)))
		return;
	memcpy(in->memo->schema, schema->start, schema->len);
	in->memo->schema_len = schema->len;
	in->memo->id_kind = (int)id_type->kind;
	in->memo->id_scale = id_type->scale;
}

/*
 * What a wrapper's schema block says of the id column (see
 * decimal_envelope_column()).
 */
static void
dbz_id_type(const struct decode_input *in, const struct scan_value *schema,
    struct dbz_id_type *type)
{
	const char	*column = in->entity == CHANGE_SERVER ?
	    in->columns->server_id : in->columns->subnet_id;

	type->scale = 0;
	type->kind = decimal_envelope_column(schema->start, schema->len,
	    column, &type->scale);
}

/* The Debezium change-event decoder (with or without schema wrapper). */
enum decode_result
decode_debezium(const struct decode_input *in, struct change *out, char *err,
    size_t errlen)
{
	static const char *const wrapper[] = { "schema", "payload" };
	enum decode_result	 result = DECODE_ERROR;
	struct scan_tape_entry	 entries[DBZ_TAPE];
	struct scan_tape	 tape;
	struct scan_value	 top, found[2];
	struct dbz_id_type	 id_type = { DECIMAL_NONE, 0 };
	size_t			 members;
	char			 reason[128];

	memset(out, 0, sizeof(*out));
	scan_tape_init(&tape, entries, DBZ_TAPE);
	if (in->entity == CHANGE_MARK)
		fields_error(err, errlen, "marks are not carried by Debezium; "
		    "a mark topic takes CloudEvents");
	else if (in->value == NULL)
		fields_error(err, errlen, "the value is null (a tombstone); "
		    "decode_message() handles those");
	else if (in->value_len == 0)
		fields_error(err, errlen, "the value is empty; a tombstone "
		    "must be null");
	else if (dbz_memo_payload(in, &tape, &found[1])) {
		id_type.kind = (enum decimal_kind)in->memo->id_kind;
		id_type.scale = in->memo->id_scale;
		result = dbz_decode(in, &found[1], &id_type, out, err, errlen);
	} else if (scan_check_find(in->value, in->value_len, &tape, wrapper, 2,
	    found, &members, &top, reason, sizeof(reason)) == -1 ||
	    (top.kind != SCAN_OBJECT && top.kind != SCAN_ARRAY))
		dbz_not_json(in->value, in->value_len, reason, err, errlen);
	/*
	 * A Kafka Connect {"schema": ..., "payload": ...} wrapper (exactly
	 * those two members) holds the event in payload; the schema block,
	 * most of a message's bytes, is checked but read only for the type
	 * of the id column, when it names Kafka Connect's Decimal at all.
	 */
	else if (members == 2 && found[0].kind != SCAN_ABSENT &&
	    found[1].kind != SCAN_ABSENT) {
		dbz_id_type(in, &found[0], &id_type);
		dbz_memo_keep(in, &found[0], &found[1], &id_type);
		result = dbz_decode(in, &found[1], &id_type, out, err, errlen);
	} else
		result = dbz_decode(in, &top, &id_type, out, err, errlen);
	if (result != DECODE_OK)
		change_clear(out);
	if (result == DECODE_ERROR)
		fields_error_prefix(err, errlen, "debezium");
	return result;
}
