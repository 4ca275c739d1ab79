/* The CloudEvents 1.0 decoder: structured JSON or binary mode over Kafka. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/fnv.h"
#include "consumers/decode.h"
#include "consumers/decode_fields.h"

/* Longest extension attribute name CloudEvents 1.0 allows. */
#define CE_NAME_MAX	20

/* What an event type means: which entity, and what happens to it. */
struct ce_type {
	const char		*name;
	enum change_entity	 entity;
	enum change_op		 op;
};

static const struct ce_type ce_types[] = {
	{ "ipam.server.upserted", CHANGE_SERVER, CHANGE_UPSERT },
	{ "ipam.server.deleted", CHANGE_SERVER, CHANGE_DELETE },
	{ "ipam.subnet.upserted", CHANGE_SUBNET, CHANGE_UPSERT },
	{ "ipam.subnet.deleted", CHANGE_SUBNET, CHANGE_DELETE },
	{ "ipam.mark.set", CHANGE_MARK, CHANGE_UPSERT },
	{ "ipam.mark.cleared", CHANGE_MARK, CHANGE_DELETE },
};

#define CE_TYPE_COUNT	(sizeof(ce_types) / sizeof(ce_types[0]))

/*
 * One event being decoded.  Both modes end up as one JSON object of
 * attributes: the event itself in structured mode, or an object built
 * from the ce_ headers (with the value as "data") in binary mode.
 */
struct ce_event {
	const struct decode_input	*in;
	json_t				*attributes;
	bool				 binary;
	const struct ce_type		*type;
};

/*
 * Names an attribute the way the producer wrote it: "id" in structured
 * mode, "header ce_id" in binary mode.
 */
static const char *
ce_label(const struct ce_event *event, const char *name, char *buf,
    size_t buflen)
{
	if (!event->binary)
		snprintf(buf, buflen, "%s", name);
	else if (strcmp(name, "datacontenttype") == 0)
		snprintf(buf, buflen, "header content-type");
	else
		snprintf(buf, buflen, "header ce_%s", name);
	return buf;
}

/* Tells whether name is a valid attribute name: [a-z0-9], 1 to 20 long. */
static bool
ce_name_valid(const char *name)
{
	size_t	len;

	len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789");

	return len > 0 && len <= CE_NAME_MAX && name[len] == '\0';
}

/* Tells whether a media type says JSON: application/json or any +json. */
static bool
ce_media_json(const char *media)
{
	size_t	len = strcspn(media, ";");

	while (len > 0 && (media[len - 1] == ' ' || media[len - 1] == '\t'))
		len--;
	if (len == 16 && strncasecmp(media, "application/json", 16) == 0)
		return true;
	return len > 5 && strncasecmp(media + len - 5, "+json", 5) == 0;
}

/*
 * Checks that datacontenttype, when given, says JSON: the only data this
 * decoder reads.
 */
static int
ce_check_media(const struct ce_event *event, char *err, size_t errlen)
{
	json_t	*value;
	char	 quoted[FIELDS_QUOTE_SIZE], label[64];

	value = json_object_get(event->attributes, "datacontenttype");

	if (!json_is_string(value) || ce_media_json(json_string_value(value)))
		return 0;
	fields_quote(json_string_value(value), json_string_length(value),
	    quoted, sizeof(quoted));
	return fields_error(err, errlen, "%s %s is not JSON; data must be "
	    "JSON (application/json)", ce_label(event, "datacontenttype",
	    label, sizeof(label)), quoted);
}

/* Parses the message value as JSON; empty means no JSON at all. */
static int
ce_parse_value(const struct decode_input *in, size_t flags, const char *what,
    json_t **out, char *err, size_t errlen)
{
	json_error_t	jerr;
	const char	*nul = memchr(in->value, '\0', in->value_len);

	/* jansson skips a NUL byte that ends a number or a word. */
	*out = NULL;
	if (nul != NULL)
		return fields_error(err, errlen, "%s is not valid JSON: a NUL "
		    "byte at byte %zu", what, (size_t)(nul - (const char *)in->value));
	*out = json_loadb(in->value, in->value_len,
	    JSON_REJECT_DUPLICATES | flags, &jerr);
	if (*out == NULL)
		return fields_error(err, errlen, "%s is not valid JSON: %s "
		    "(line %d, column %d)", what, jerr.text, jerr.line,
		    jerr.column);
	return 0;
}

/*
 * Builds the attribute object of a binary-mode event from the ce_
 * headers and content-type, with the value (JSON) as data.
 */
static int
ce_binary_attributes(struct ce_event *event, char *err, size_t errlen)
{
	const struct decode_input	*in = event->in;
	const struct decode_header	*h;
	const char			*name;
	char				 quoted[FIELDS_QUOTE_SIZE];
	json_t				*data;
	size_t				 i;

	if ((event->attributes = json_object()) == NULL)
		return fields_error(err, errlen, "out of memory");
	for (i = 0; i < in->header_count; i++) {
		h = &in->headers[i];
		if (h->name == NULL)
			continue;
		if (strcasecmp(h->name, "content-type") == 0)
			name = "datacontenttype";
		else if (strncmp(h->name, "ce_", 3) == 0)
			name = h->name + 3;
		else
			continue;
		fields_quote(h->name, strlen(h->name), quoted, sizeof(quoted));
		if (!ce_name_valid(name) || strcmp(name, "data") == 0)
			return fields_error(err, errlen, "header %s does not "
			    "name a CloudEvents attribute (lowercase letters "
			    "and digits, at most %d, after ce_; data is the "
			    "message value)", quoted, CE_NAME_MAX);
		if (json_object_get(event->attributes, name) != NULL)
			return fields_error(err, errlen, "header %s appears "
			    "more than once", quoted);
		if (h->value == NULL)
			return fields_error(err, errlen, "header %s has no "
			    "value", quoted);
		if (!fields_utf8_valid(h->value, h->value_len))
			return fields_error(err, errlen, "header %s is not "
			    "valid UTF-8 text (or holds a NUL byte)", quoted);
		if (json_object_set_new(event->attributes, name,
		    json_stringn(h->value, h->value_len)) == -1)
			return fields_error(err, errlen, "out of memory");
	}
	/* An empty value is an event without data (a delete may have none). */
	if (in->value_len == 0)
		return 0;
	if (ce_check_media(event, err, errlen) == -1)
		return -1;
	if (ce_parse_value(in, JSON_DECODE_ANY, "the value (the event's data)",
	    &data, err, errlen) == -1)
		return -1;
	if (json_object_set_new(event->attributes, "data", data) == -1)
		return fields_error(err, errlen, "out of memory");
	return 0;
}

bool
decode_cloudevents_binary(const struct decode_input *in)
{
	static const char		 structured[] = "application/cloudevents";
	const struct decode_header	*content_type;

	if (decode_header_find(in, "ce_specversion", false) == NULL)
		return false;
	content_type = decode_header_find(in, "content-type", true);
	return content_type == NULL || content_type->value == NULL ||
	    content_type->value_len < strlen(structured) ||
	    strncasecmp(content_type->value, structured,
	    strlen(structured)) != 0;
}

/*
 * Chooses the mode as the Kafka binding says (a content-type of
 * application/cloudevents... is structured; else ce_specversion means
 * binary; else structured) and loads the attributes.
 */
static int
ce_load(struct ce_event *event, char *err, size_t errlen)
{
	const struct decode_input	*in = event->in;
	const struct decode_header	*content_type;
	const char			*batch;

	batch = "application/cloudevents-batch";

	content_type = decode_header_find(in, "content-type", true);
	if (content_type != NULL && content_type->value != NULL &&
	    content_type->value_len >= strlen(batch) &&
	    strncasecmp(content_type->value, batch, strlen(batch)) == 0)
		return fields_error(err, errlen, "batched events "
		    "(content-type application/cloudevents-batch) are "
		    "not supported: send one event per message");
	if (decode_cloudevents_binary(in)) {
		event->binary = true;
		return ce_binary_attributes(event, err, errlen);
	}
	if (in->value_len == 0)
		return fields_error(err, errlen, "the value is empty; a "
		    "tombstone must be null (kcat -Z sends an empty value as "
		    "null)");
	if (ce_parse_value(in, 0, "the value", &event->attributes, err,
	    errlen) == -1)
		return -1;
	if (!json_is_object(event->attributes))
		return fields_error(err, errlen, "the event must be a JSON "
		    "object, not %s", fields_json_kind(event->attributes));
	return 0;
}

/*
 * Checks every attribute name (lowercase letters and digits, at most 20)
 * and that attribute values are strings, integers or booleans.
 */
static int
ce_check_names(const struct ce_event *event, char *err, size_t errlen)
{
	const char	*name;
	json_t		*value;
	char		 quoted[FIELDS_QUOTE_SIZE], label[64];

	json_object_foreach(event->attributes, name, value) {
		/* These two have checks of their own. */
		if (strcmp(name, "data") == 0 ||
		    strcmp(name, "entityversion") == 0)
			continue;
		fields_quote(name, strlen(name), quoted, sizeof(quoted));
		if (strcmp(name, "data_base64") == 0)
			return fields_error(err, errlen, "data_base64 is not "
			    "supported: send data as JSON");
		if (!ce_name_valid(name))
			return fields_error(err, errlen, "attribute %s is not "
			    "a CloudEvents attribute (extension names are "
			    "lowercase letters and digits, at most %d)",
			    quoted, CE_NAME_MAX);
		if (json_is_object(value) || json_is_array(value) ||
		    json_is_real(value))
			return fields_error(err, errlen, "%s must be a string, "
			    "an integer or a boolean, not %s",
			    ce_label(event, name, label, sizeof(label)),
			    fields_json_kind(value));
	}
	return 0;
}

/*
 * Reads a string attribute; absent or null gives NULL unless required,
 * and a present one may not be empty.
 */
static int
ce_string(const struct ce_event *event, const char *name, bool required,
    const char **out, char *err, size_t errlen)
{
	json_t	*value = json_object_get(event->attributes, name);
	char	 label[64];

	*out = NULL;
	ce_label(event, name, label, sizeof(label));
	if (value == NULL || json_is_null(value)) {
		if (required)
			return fields_error(err, errlen, "%s is required",
			    label);
		return 0;
	}
	if (!json_is_string(value))
		return fields_error(err, errlen, "%s must be a string, not %s",
		    label, fields_json_kind(value));
	if (json_string_length(value) == 0)
		return fields_error(err, errlen, "%s is empty", label);
	*out = json_string_value(value);
	return 0;
}

/*
 * Checks the context attributes (specversion, id, source, type, time,
 * dataschema, datacontenttype) and finds the event type, which must be
 * one of the topic's entity.
 */
static int
ce_check_context(struct ce_event *event, char *err, size_t errlen)
{
	const char	*specversion, *id, *source, *type, *other;
	char		 quoted[FIELDS_QUOTE_SIZE], label[64];
	size_t		 i;

	if (ce_string(event, "specversion", true, &specversion, err,
	    errlen) == -1 ||
	    ce_string(event, "id", true, &id, err, errlen) == -1 ||
	    ce_string(event, "source", true, &source, err, errlen) == -1 ||
	    ce_string(event, "type", true, &type, err, errlen) == -1 ||
	    ce_string(event, "time", false, &other, err, errlen) == -1 ||
	    ce_string(event, "dataschema", false, &other, err, errlen) == -1 ||
	    ce_string(event, "datacontenttype", false, &other, err,
	    errlen) == -1)
		return -1;
	if (strcmp(specversion, "1.0") != 0) {
		fields_quote(specversion, strlen(specversion), quoted,
		    sizeof(quoted));
		return fields_error(err, errlen, "%s %s is not supported "
		    "(only \"1.0\")", ce_label(event, "specversion", label,
		    sizeof(label)), quoted);
	}
	if (ce_check_media(event, err, errlen) == -1)
		return -1;
	fields_quote(type, strlen(type), quoted, sizeof(quoted));
	for (i = 0; i < CE_TYPE_COUNT; i++) {
		if (strcmp(type, ce_types[i].name) == 0)
			break;
	}
	if (i == CE_TYPE_COUNT)
		return fields_error(err, errlen, "type %s is not one of "
		    "ipam.server.upserted, ipam.server.deleted, "
		    "ipam.subnet.upserted, ipam.subnet.deleted, ipam.mark.set, "
		    "ipam.mark.cleared", quoted);
	event->type = &ce_types[i];
	if (event->type->entity != event->in->entity)
		return fields_error(err, errlen, "type %s is a %s event, but "
		    "this topic carries %s events", quoted,
		    change_entity_name(event->type->entity),
		    change_entity_name(event->in->entity));
	return 0;
}

/*
 * Sets the change's id (and, for a mark, its vrf and address) from the
 * subject and the Kafka key: either may give it, and when both are
 * there they must agree.
 */
static int
ce_identify(const struct ce_event *event, struct change *out, char *err,
    size_t errlen)
{
	const struct decode_input	*in = event->in;
	const char			*subject;
	char				*key_id = NULL, *key_vrf = NULL;
	char				*key_mark = NULL;
	char				 label[64];
	char				 quoted[FIELDS_QUOTE_SIZE];
	char				 named[FIELDS_QUOTE_SIZE];
	struct ip_addr			 key_ip;
	int				 rc = -1;
	bool				 has_key;

	/* An empty key is no key, as for tombstones. */
	has_key = in->key != NULL && in->key_len > 0;
	if (ce_string(event, "subject", false, &subject, err, errlen) == -1)
		return -1;
	ce_label(event, "subject", label, sizeof(label));
	if (subject != NULL)
		fields_quote(subject, strlen(subject), named, sizeof(named));
	if (subject == NULL && !has_key)
		return fields_error(err, errlen, "there is no %s and no Kafka "
		    "key: one of them must give the %s's id", label,
		    change_entity_name(in->entity));
	if (in->entity == CHANGE_MARK) {
		if (subject != NULL && fields_mark_key(label, subject,
		    strlen(subject), &out->vrf, &out->ip, err, errlen) == -1)
			goto fail;
		if (has_key && fields_mark_kafka_key(in->key, in->key_len,
		    &key_vrf, &key_ip, &key_mark, err, errlen) == -1)
			goto fail;
		if (subject == NULL) {
			out->vrf = key_vrf;
			out->ip = key_ip;
			key_vrf = NULL;
		} else if (has_key && (strcmp(key_vrf, out->vrf) != 0 ||
		    addr_compare(&key_ip, &out->ip) != 0)) {
			fields_quote(in->key, in->key_len, quoted,
			    sizeof(quoted));
			fields_error(err, errlen, "the Kafka key %s names "
			    "another mark than %s %s", quoted, label, named);
			goto fail;
		}
		out->has_ip = true;
		/* A key names the same mark: its id is the mark's. */
		if (key_mark != NULL) {
			out->id = key_mark;
			key_mark = NULL;
		} else if ((out->id = fields_mark_id(out->vrf,
		    &out->ip)) == NULL) {
			fields_error(err, errlen, "out of memory");
			goto fail;
		}
	} else {
		if (subject != NULL && fields_id_bytes(label, subject,
		    strlen(subject), &out->id, err, errlen) == -1)
			goto fail;
		if (has_key && fields_id_bytes("key", in->key, in->key_len,
		    &key_id, err, errlen) == -1)
			goto fail;
		if (subject == NULL) {
			out->id = key_id;
			key_id = NULL;
		} else if (has_key && strcmp(key_id, out->id) != 0) {
			fields_quote(key_id, strlen(key_id), quoted,
			    sizeof(quoted));
			fields_error(err, errlen, "the Kafka key %s differs "
			    "from %s %s; both must be the %s's id", quoted,
			    label, named, change_entity_name(in->entity));
			goto fail;
		}
	}
	rc = 0;
fail:
	free(key_id);
	free(key_vrf);
	free(key_mark);
	return rc;
}

/*
 * Gets the event's data as an object: required for upserts, optional
 * (absent or null gives NULL) for deletes.
 */
static int
ce_data(const struct ce_event *event, json_t **data, char *err, size_t errlen)
{
	*data = json_object_get(event->attributes, "data");
	if (*data != NULL && json_is_null(*data))
		*data = NULL;
	if (*data == NULL) {
		if (event->type->op == CHANGE_UPSERT)
			return fields_error(err, errlen, "data is required "
			    "for %s", event->type->name);
		return 0;
	}
	if (!json_is_object(*data))
		return fields_error(err, errlen, "data must be an object, not "
		    "%s", fields_json_kind(*data));
	return 0;
}

/* Fills a server from ipam.server.upserted data. */
static int
ce_server(json_t *data, struct change *out, char *err, size_t errlen)
{
	static const char *const	allowed[] = { "hostname", "ip_address",
	    "nic_mac", "device_type", "manufacture", "vrf", NULL };

	if (fields_strict("data", data, allowed, err, errlen) == -1 ||
	    fields_string("data.hostname", json_object_get(data, "hostname"),
	    FIELDS_TEXT_MAX, true, &out->hostname, err, errlen) == -1 ||
	    fields_address("data.ip_address", json_object_get(data,
	    "ip_address"), false, &out->ip, &out->has_ip, err, errlen) == -1 ||
	    fields_mac("data.nic_mac", json_object_get(data, "nic_mac"),
	    &out->nic_mac, err, errlen) == -1 ||
	    fields_string("data.device_type", json_object_get(data,
	    "device_type"), FIELDS_TEXT_MAX, false, &out->device_type, err,
	    errlen) == -1 ||
	    fields_string("data.manufacture", json_object_get(data,
	    "manufacture"), FIELDS_TEXT_MAX, false, &out->manufacture, err,
	    errlen) == -1 ||
	    fields_vrf("data.vrf", json_object_get(data, "vrf"), &out->vrf,
	    err, errlen) == -1)
		return -1;
	return 0;
}

/* Fills a subnet from ipam.subnet.upserted data. */
static int
ce_subnet(const struct ce_event *event, json_t *data, struct change *out,
    char *err, size_t errlen)
{
	static const char *const	allowed[] = { "name", "cidr",
	    "static_ip_pools", "vrf", "ping", NULL };

	if (fields_strict("data", data, allowed, err, errlen) == -1 ||
	    fields_string("data.name", json_object_get(data, "name"),
	    FIELDS_TEXT_MAX, false, &out->name, err, errlen) == -1 ||
	    fields_prefix("data.cidr", json_object_get(data, "cidr"),
	    &out->cidr, err, errlen) == -1 ||
	    fields_pools("data.static_ip_pools", json_object_get(data,
	    "static_ip_pools"), &out->cidr,
	    event->in->limits->max_pool_addresses, &out->pools,
	    &out->pool_count, &out->pool_edges, err, errlen) == -1 ||
	    fields_vrf("data.vrf", json_object_get(data, "vrf"), &out->vrf,
	    err, errlen) == -1 ||
	    fields_bool("data.ping", json_object_get(data, "ping"), true,
	    &out->ping, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * Checks that a mark's data names the same address and vrf as its id
 * (already in out); the address is required when a mark is set.
 */
static int
ce_mark_agrees(const struct ce_event *event, json_t *data, bool required,
    struct change *out, char *err, size_t errlen)
{
	struct ip_addr	 address;
	char		*vrf = NULL, *expected = NULL, label[64];
	bool		 present;
	int		 rc = -1;

	if (fields_address("data.address", json_object_get(data, "address"),
	    required, &address, &present, err, errlen) == -1 ||
	    fields_vrf("data.vrf", json_object_get(data, "vrf"), &vrf, err,
	    errlen) == -1)
		goto fail;
	/* Data that names neither address nor vrf has nothing to compare. */
	if ((present || json_object_get(data, "vrf") != NULL) &&
	    (strcmp(vrf, out->vrf) != 0 ||
	    (present && addr_compare(&address, &out->ip) != 0))) {
		if (!present)
			address = out->ip;
		if ((expected = fields_mark_id(vrf, &address)) == NULL) {
			fields_error(err, errlen, "out of memory");
			goto fail;
		}
		/* Without a subject, the id came from the key. */
		if (json_object_get(event->attributes, "subject") == NULL)
			snprintf(label, sizeof(label), "Kafka key");
		else
			ce_label(event, "subject", label, sizeof(label));
		fields_error(err, errlen, "data names the mark \"%s\" but "
		    "the %s names \"%s\"", expected, label, out->id);
		goto fail;
	}
	rc = 0;
fail:
	free(vrf);
	free(expected);
	return rc;
}

/* Fills a mark from ipam.mark.set data. */
static int
ce_mark(const struct ce_event *event, json_t *data, struct change *out,
    char *err, size_t errlen)
{
	static const char *const	allowed[] = { "address", "vrf",
	    "status", "description", "reason", NULL };
	const char			*status;
	json_t				*value;
	char				 quoted[FIELDS_QUOTE_SIZE];

	if (fields_strict("data", data, allowed, err, errlen) == -1 ||
	    ce_mark_agrees(event, data, true, out, err, errlen) == -1)
		return -1;
	value = json_object_get(data, "status");
	if (value == NULL || json_is_null(value))
		return fields_error(err, errlen, "data.status is required "
		    "(reserved or quarantine)");
	if (!json_is_string(value))
		return fields_error(err, errlen, "data.status must be a "
		    "string, not %s", fields_json_kind(value));
	status = json_string_value(value);
	if (strcmp(status, "reserved") == 0)
		out->mark_status = MARK_RESERVED;
	else if (strcmp(status, "quarantine") == 0)
		out->mark_status = MARK_QUARANTINE;
	else {
		fields_quote(status, strlen(status), quoted, sizeof(quoted));
		return fields_error(err, errlen, "data.status %s is not "
		    "reserved or quarantine", quoted);
	}
	if (fields_lines("data.description", json_object_get(data,
	    "description"), FIELDS_DESCRIPTION_MAX, &out->description, err,
	    errlen) == -1)
		return -1;
	/* An empty description is no description, whatever the status. */
	if (out->description != NULL && *out->description == '\0') {
		free(out->description);
		out->description = NULL;
	}
	if (out->description != NULL && out->mark_status != MARK_RESERVED)
		return fields_error(err, errlen, "description is allowed only "
		    "on a reserved mark");
	if (fields_lines("data.reason", json_object_get(data, "reason"),
	    FIELDS_DESCRIPTION_MAX, &out->reason, err, errlen) == -1)
		return -1;
	if (out->reason != NULL && *out->reason == '\0') {
		free(out->reason);
		out->reason = NULL;
	}
	if (out->reason != NULL && out->mark_status != MARK_QUARANTINE)
		return fields_error(err, errlen, "reason is allowed only on a "
		    "quarantine mark");
	return 0;
}

/*
 * Reads who asked for a server's or subnet's change (an operator's
 * import): the extension attribute ipamrequestedby, which the audit
 * keeps.  It makes no request: no outcome, no preconditions.  An
 * attribute of its own, not ipamrequester (a request's, refused on these
 * entities before schema 20), so that an older instance still running
 * in the group ignores it instead of refusing the event.  A mark names
 * its requester in ipamrequester (ce_request()).
 */
static int
ce_requested_by(const struct ce_event *event, struct change *out,
    char *err, size_t errlen)
{
	json_t	*by = json_object_get(event->attributes, "ipamrequestedby");
	char	 label[64];

	if (by == NULL)
		return 0;
	if (out->entity == CHANGE_MARK)
		return fields_error(err, errlen, "%s is for server and subnet "
		    "events; a mark's request names its requester in "
		    "ipamrequester", ce_label(event, "ipamrequestedby", label,
		    sizeof(label)));
	return fields_string(ce_label(event, "ipamrequestedby", label,
	    sizeof(label)), by, FIELDS_TEXT_MAX, true, &out->requester, err,
	    errlen);
}

/*
 * Reads an operator's request (docs/API.md): the extension attributes
 * ipamrequester, ipamifavailable and ipamifmatch, allowed on marks only.
 * A request is known by its CloudEvent id.
 */
static int
ce_request(const struct ce_event *event, struct change *out, char *err,
    size_t errlen)
{
	json_t		*requester = json_object_get(event->attributes,
	    "ipamrequester");
	json_t		*available = json_object_get(event->attributes,
	    "ipamifavailable");
	json_t		*match = json_object_get(event->attributes, "ipamifmatch");
	const char	*text;
	char		 label[64];

	if (requester == NULL && available == NULL && match == NULL)
		return 0;
	if (out->entity != CHANGE_MARK)
		return fields_error(err, errlen, "ipamrequester, ipamifavailable "
		    "and ipamifmatch are allowed on mark events only");
	if (requester == NULL)
		return fields_error(err, errlen, "%s is required with "
		    "ipamifavailable or ipamifmatch", ce_label(event,
		    "ipamrequester", label, sizeof(label)));
	if (fields_string(ce_label(event, "ipamrequester", label,
	    sizeof(label)), requester, FIELDS_TEXT_MAX, true, &out->requester,
	    err, errlen) == -1 ||
	    fields_string(ce_label(event, "ipamifmatch", label, sizeof(label)),
	    match, FIELDS_TEXT_MAX, false, &out->if_match, err, errlen) == -1)
		return -1;
	/* Binary mode carries every attribute as text. */
	if (available != NULL && !json_is_boolean(available) &&
	    !(json_is_string(available) &&
	    (strcmp(json_string_value(available), "true") == 0 ||
	    strcmp(json_string_value(available), "false") == 0)))
		return fields_error(err, errlen, "%s must be true or false",
		    ce_label(event, "ipamifavailable", label, sizeof(label)));
	out->if_available = json_is_true(available) || (json_is_string(
	    available) && strcmp(json_string_value(available), "true") == 0);
	if (out->if_available && out->op != CHANGE_UPSERT)
		return fields_error(err, errlen, "ipamifavailable applies to "
		    "ipam.mark.set only");
	text = json_string_value(json_object_get(event->attributes, "id"));
	if ((out->request_id = strdup(text)) == NULL)
		return fields_error(err, errlen, "out of memory");
	return 0;
}

/* Adds one text (or none: NULL) to a request's digest. */
static uint64_t
ce_digest_text(uint64_t hash, const char *text)
{
	uint64_t len = text != NULL ? (uint64_t)strlen(text) + 1 : 0;

	hash = fnv1a64(hash, &len, sizeof(len));
	return text != NULL ? fnv1a64(hash, text, (size_t)len) : hash;
}

/*
 * The digest of a decoded request: everything it asks and who asks it,
 * so that another request under a reused id is told from a replay.
 */
static uint64_t
ce_request_digest(const struct ce_event *event, const struct change *out)
{
	uint64_t hash = FNV1A64_START;
	uint8_t flags[4];

	hash = ce_digest_text(hash, json_string_value(json_object_get(
	    event->attributes, "source")));
	hash = ce_digest_text(hash, event->type->name);
	hash = ce_digest_text(hash, out->vrf);
	flags[0] = out->has_ip ? (uint8_t)out->ip.family : 0;
	flags[1] = (uint8_t)out->mark_status;
	flags[2] = out->if_available;
	flags[3] = 0;
	hash = fnv1a64(hash, flags, sizeof(flags));
	if (out->has_ip)
		hash = fnv1a64(hash, out->ip.bytes, sizeof(out->ip.bytes));
	hash = ce_digest_text(hash, out->description);
	hash = ce_digest_text(hash, out->reason);
	hash = ce_digest_text(hash, out->requester);
	return ce_digest_text(hash, out->if_match);
}

/* Decodes the loaded event into out, or fails with a reason in err. */
static int
ce_decode(struct ce_event *event, struct change *out, char *err,
    size_t errlen)
{
	static const char *const	 cleared[] = { "address", "vrf", NULL };
	json_t				*data;
	bool				 present;

	if (ce_check_names(event, err, errlen) == -1 ||
	    ce_check_context(event, err, errlen) == -1)
		return -1;
	out->entity = event->type->entity;
	out->op = event->type->op;
	if (fields_version(event->binary ? "header ce_entityversion" :
	    "entityversion", json_object_get(event->attributes,
	    "entityversion"), &present, &out->version, err, errlen) == -1)
		return -1;
	out->has_version = present;
	if (ce_identify(event, out, err, errlen) == -1 ||
	    ce_request(event, out, err, errlen) == -1 ||
	    ce_requested_by(event, out, err, errlen) == -1 ||
	    ce_data(event, &data, err, errlen) == -1)
		return -1;
	if (out->entity == CHANGE_MARK) {
		if (out->op == CHANGE_UPSERT)
			return ce_mark(event, data, out, err, errlen);
		if (data == NULL)
			return 0;
		if (fields_strict("data", data, cleared, err, errlen) == -1)
			return -1;
		return ce_mark_agrees(event, data, false, out, err, errlen);
	}
	if (out->op == CHANGE_DELETE) {
		/* A delete names its entity by id; data is not used. */
		if ((out->vrf = strdup("")) == NULL)
			return fields_error(err, errlen, "out of memory");
		return 0;
	}
	if (out->entity == CHANGE_SERVER)
		return ce_server(data, out, err, errlen);
	return ce_subnet(event, data, out, err, errlen);
}

/* The CloudEvents 1.0 decoder (structured JSON or binary mode). */
enum decode_result
decode_cloudevents(const struct decode_input *in, struct change *out,
    char *err, size_t errlen)
{
	struct ce_event	event;
	int		rc;

	memset(out, 0, sizeof(*out));
	memset(&event, 0, sizeof(event));
	event.in = in;
	if (in->value == NULL)
		rc = fields_error(err, errlen, "the value is null (a "
		    "tombstone); decode_message() handles those");
	else if ((rc = ce_load(&event, err, errlen)) == 0 &&
	    (rc = ce_decode(&event, out, err, errlen)) == 0 &&
	    out->request_id != NULL)
		out->request_digest = ce_request_digest(&event, out);
	json_decref(event.attributes);
	if (rc == -1) {
		change_clear(out);
		fields_error_prefix(err, errlen, "cloudevents");
		return DECODE_ERROR;
	}
	return DECODE_OK;
}
