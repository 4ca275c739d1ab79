/* Configuration: one INI file, every key overridable from the environment. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "common/build_info.h"
#include "common/log.h"
#include "consumers/applier.h"
#include "daemon/config.h"
#include "daemon/kafka_scram.h"
#include "daemon/privileges.h"
#include "sweeper/sweeper.h"

extern char **environ;

/* The longest line the parser accepts; longer lines are an error, not cut. */
#define CONFIG_LINE_MAX	(64 * 1024)

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_BOOL,
};

/* One key of the table that drives parsing, checking and the example file. */
struct config_key {
	const char		*section;
	const char		*name;
	enum config_type	 type;
	size_t			 offset;
	const char		*default_value;
	long long		 min;
	long long		 max;
	bool			 reloadable;
	const char		*help;
};

#define KEY_STRING(sec, name, field, def, reload, help) \
	{ sec, name, CONFIG_STRING, offsetof(struct config, field), def, 0, 0, \
	    reload, help }
#define KEY_INT(sec, name, field, def, lo, hi, reload, help) \
	{ sec, name, CONFIG_INT, offsetof(struct config, field), def, lo, hi, \
	    reload, help }
#define KEY_BOOL(sec, name, field, def, reload, help) \
	{ sec, name, CONFIG_BOOL, offsetof(struct config, field), def, 0, 1, \
	    reload, help }

static const struct config_key config_keys[] = {
	KEY_STRING("daemon", "log_level", log_level, "info", true,
	    "Most verbose level written: error, warning, notice, info, debug."),
	KEY_INT("daemon", "shutdown_timeout_ms", shutdown_timeout_ms, "10000",
	    100, 600000, true,
	    "How long SIGTERM may take to drain before the daemon exits anyway."),
	KEY_STRING("daemon", "schema_dir", schema_dir, IPAM_SCHEMA_DIR, false,
	    "Folder holding the numbered SQL migrations (NNN_name.sql)."),
	KEY_STRING("daemon", "user", user, "", false,
	    "Started as root, become this user once the ICMP sockets, the\n"
	    "listener and the secret files are open (CAP_NET_RAW is kept);\n"
	    "--user overrides it. Empty: keep the user it was started as."),

	KEY_STRING("postgresql", "conninfo", pg_conninfo, "", false,
	    "libpq connection string; empty uses the PG* environment variables."),
	KEY_STRING("postgresql", "password_file", pg_password_file, "", false,
	    "File holding the password (a relative path is looked up in\n"
	    "$CREDENTIALS_DIRECTORY); empty: libpq's own rules (PGPASSFILE)."),
	KEY_INT("postgresql", "connect_timeout_ms", pg_connect_timeout_ms,
	    "5000", 100, 600000, true,
	    "A connection attempt that takes longer is abandoned and retried."),
	KEY_INT("postgresql", "reconnect_min_ms", pg_reconnect_min_ms, "200",
	    10, 600000, true, "First delay before reconnecting."),
	KEY_INT("postgresql", "reconnect_max_ms", pg_reconnect_max_ms, "10000",
	    10, 3600000, true,
	    "The delay doubles after each failure, and after each\n"
	    "connection lost within 10 s of being made, up to this bound."),

	KEY_STRING("consumer", "group_id", group_id, "ipam-syncd", false,
	    "Kafka consumer group."),
	KEY_STRING("consumer", "topics", topics_text,
	    "inventory.servers:server:cloudevents, "
	    "inventory.subnets:subnet:cloudevents, ipam.marks:mark:cloudevents",
	    false,
	    "Comma-separated topic:entity:format; entity is server, subnet or\n"
	    "mark; format is cloudevents or debezium."),
	KEY_INT("consumer", "batch_max_events", batch_max_events, "5000", 1,
	    1000000, true, "A batch is applied once it holds this many events,"),
	KEY_INT("consumer", "batch_max_bytes", batch_max_bytes, "16777216",
	    1024, 1073741824, true,
	    "or this many bytes of messages (keys, values and headers),"),
	KEY_INT("consumer", "batch_max_wait_ms", batch_max_wait_ms, "2", 0,
	    60000, true,
	    "or when this long has passed since its first event: a linger\n"
	    "that trades a little latency for fewer transactions."),
	KEY_INT("consumer", "batch_max_pool_addresses",
	    batch_max_pool_addresses, "1100000", 1, 268435456, true,
	    "One statement expands at most this many static pool addresses:\n"
	    "a batch whose subnets hold more is applied in several statements\n"
	    "(at least one subnet each), each well within the watchdog."),
	KEY_INT("consumer", "max_message_bytes", max_message_bytes, "1048576",
	    64, 268435456, false,
	    "Larger messages go to the dead letters."),
	KEY_INT("consumer", "max_pool_addresses", max_pool_addresses,
	    "1048576", 1, 16777216, false,
	    "Most addresses the static pools of one subnet may hold."),

	KEY_STRING("debezium", "server_id", dbz_server_id, "id", false,
	    "Column names of the inventory's server table."),
	KEY_STRING("debezium", "server_hostname", dbz_server_hostname,
	    "hostname", false, NULL),
	KEY_STRING("debezium", "server_ip_address", dbz_server_ip_address,
	    "ip_address", false, NULL),
	KEY_STRING("debezium", "server_nic_mac", dbz_server_nic_mac, "nic_mac",
	    false, NULL),
	KEY_STRING("debezium", "server_device_type", dbz_server_device_type,
	    "device_type", false, NULL),
	KEY_STRING("debezium", "server_manufacture", dbz_server_manufacture,
	    "manufacture", false, NULL),
	KEY_STRING("debezium", "server_vrf", dbz_server_vrf, "vrf", false, NULL),
	KEY_STRING("debezium", "subnet_id", dbz_subnet_id, "id", false,
	    "Column names of the inventory's subnet table."),
	KEY_STRING("debezium", "subnet_name", dbz_subnet_name, "name", false,
	    NULL),
	KEY_STRING("debezium", "subnet_cidr", dbz_subnet_cidr, "cidr", false,
	    NULL),
	KEY_STRING("debezium", "subnet_static_ip_pools",
	    dbz_subnet_static_ip_pools, "static_ip_pools", false, NULL),
	KEY_STRING("debezium", "subnet_vrf", dbz_subnet_vrf, "vrf", false, NULL),
	KEY_STRING("debezium", "subnet_ping", dbz_subnet_ping, "ping", false,
	    NULL),
	KEY_STRING("debezium", "unavailable_value_placeholder", dbz_unavailable,
	    "__debezium_unavailable_value", false,
	    "The connector's unavailable.value.placeholder: the stand-in for "
	    "an unchanged TOASTed column."),

	KEY_STRING("http", "listen", http_listen, "127.0.0.1:10187", false,
	    "Address and port of /healthz, /readyz, /metrics and the API\n"
	    "([::1]:10187 for IPv6, 0.0.0.0:10187 for every interface, port\n"
	    "0 for any free port); numeric only, a host name is refused.\n"
	    "Empty turns HTTP off."),
	KEY_INT("http", "ready_max_lag", http_ready_max_lag, "100000", 0,
	    1000000000, true,
	    "/readyz reports unready while more messages than this wait."),

	KEY_BOOL("api", "enabled", api_enabled, "true", false,
	    "Serve the operator API under /api/v1 on [http] listen\n"
	    "(docs/API.md)."),
	KEY_STRING("api", "read_token_file", api_read_token_file, "", true,
	    "File holding the bearer token that may read (relative to\n"
	    "$CREDENTIALS_DIRECTORY). With no token file, reads are served\n"
	    "to loopback clients only and writes are refused."),
	KEY_STRING("api", "write_token_file", api_write_token_file, "", true,
	    "File holding the bearer token that may read and write."),
	KEY_INT("api", "read_connections", api_read_connections, "2", 1, 32,
	    false,
	    "PostgreSQL connections of the API's own (reads and the wait\n"
	    "for writes), never the apply's."),
	KEY_INT("api", "statement_timeout_ms", api_statement_timeout_ms,
	    "5000", 100, 600000, false,
	    "Longest an API read may run; beyond it the request gets 504."),
	KEY_INT("api", "write_wait_ms", api_write_wait_ms, "10000", 100,
	    600000, true,
	    "How long a write waits to be applied before it answers 202\n"
	    "with the request to poll."),
	KEY_INT("api", "rate_limit", api_rate_limit, "200", 0, 1000000, true,
	    "Requests per second one client may make (bursts of twice\n"
	    "that): an IPv4 address, or the /64 of an IPv6 one; 0 is no\n"
	    "limit."),
	KEY_STRING("api", "marks_topic", api_marks_topic, "", false,
	    "Topic the API publishes its mark requests to; empty: the\n"
	    "first cloudevents topic of entity mark in [consumer] topics."),

	KEY_STRING("api", "web_dir", api_web_dir, IPAM_WEB_DIR, false,
	    "Folder of the operator page served under / (the files of web/);\n"
	    "empty serves no page. A folder that does not exist is warned\n"
	    "about, and the page answers 404."),
	KEY_STRING("api", "read_conninfo", api_read_conninfo, "", false,
	    "libpq connection string of the API's read connections, for a\n"
	    "read-only role (schema/roles.sql); empty: postgresql.conninfo."),
	KEY_STRING("api", "read_password_file", api_read_password_file, "",
	    false,
	    "Password file of read_conninfo's role; empty: with an empty\n"
	    "read_conninfo, postgresql.password_file, else libpq's own rules."),

	KEY_INT("retention", "audit_days", retention_audit_days, "90", 0,
	    36500, true,
	    "Audit rows older than this many days are removed, a little at\n"
	    "a time; 0 keeps them forever."),
	KEY_INT("retention", "dead_letter_days", retention_dead_letter_days,
	    "90", 0, 36500, true,
	    "Dead letters older than this many days are removed; 0 keeps\n"
	    "them forever."),
	KEY_INT("retention", "request_days", retention_request_days, "0", 0,
	    36500, true,
	    "Outcomes of operator requests older than this many days are\n"
	    "removed; 0 keeps them forever, so that a rebuild decides every\n"
	    "request as it was decided (docs/EVENTS.md)."),
	KEY_INT("retention", "interval_ms", retention_interval_ms, "600000",
	    1000, 86400000, true,
	    "How often old rows are looked for."),

	KEY_BOOL("sweeper", "enabled", sweeper_enabled, "true", true,
	    "Probe every address that has a row with ICMP echo (needs\n"
	    "CAP_NET_RAW, or a ping_group_range that holds the daemon's group)."),
	KEY_INT("sweeper", "interval_ms", sweeper_interval_ms, "60000", 1000,
	    86400000, true,
	    "A sweep starts as each round of this length begins, counted\n"
	    "on PostgreSQL's clock (never while one still runs). Instances\n"
	    "sharing a database share the sweep: give them the same value."),
	KEY_INT("sweeper", "rate", sweeper_rate, "2000", 1, 1000000, true,
	    "Most echo requests sent per second, paced with jitter."),
	KEY_INT("sweeper", "receive_buffer", sweeper_receive_buffer, "4194304",
	    4096, 268435456, false,
	    "Receive buffer of each ICMP socket, in bytes (root or\n"
	    "CAP_NET_ADMIN sets it past net.core.rmem_max; else that caps it).\n"
	    "Replies that find it full are dropped by the kernel, and their\n"
	    "addresses look silent: each sweep says how many (raise it, or\n"
	    "lower rate)."),
	KEY_INT("sweeper", "timeout_ms", sweeper_timeout_ms, "1000", 10, 60000,
	    true, "How long a probe waits for its reply."),
	KEY_INT("sweeper", "retries", sweeper_retries, "2", 0, 10, true,
	    "Probes sent again to an address that did not answer, each\n"
	    "waiting half again as long as the one before."),
	KEY_INT("sweeper", "down_after", sweeper_down_after, "3", 1, 100, true,
	    "Consecutive sweeps without a reply before active turns false."),
	KEY_STRING("sweeper", "vrfs", sweeper_vrfs, "-", true,
	    "Comma-separated routing domains whose addresses are probed from\n"
	    "this host; \"-\" is the default domain."),
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

/* Sections whose keys are not in the table. */
static const char config_kafka_section[] = "kafka";

/* A pointer to the field a key describes. */
static void *
config_field(struct config *config, const struct config_key *key)
{
	return (char *)config + key->offset;
}

/* Finds a key of the table. */
static const struct config_key *
config_find_key(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

/* Tells whether the table has a section of that name. */
static bool
config_known_section(const char *section)
{
	size_t i;

	if (strcmp(section, config_kafka_section) == 0)
		return true;
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

/* Parses an integer with an optional k/M/G suffix (powers of 1024 for sizes). */
static int
config_parse_int(const char *text, long long *out)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if (end == text || errno != 0)
		return -1;
	if (*end != '\0')
		return -1;
	*out = value;
	return 0;
}

/* Parses a boolean the way INI files usually write it. */
static int
config_parse_bool(const char *text, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Stores a value into the field of a key; fills err on a bad value. */
static int
config_set(struct config *config, const struct config_key *key,
    const char *value, char *err, size_t errlen)
{
	void *field = config_field(config, key);
	long long number;
	bool flag;
	char *copy;

	switch (key->type) {
	case CONFIG_STRING:
		if ((copy = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	case CONFIG_INT:
		if (config_parse_int(value, &number) == -1) {
			snprintf(err, errlen, "%s.%s: \"%s\" is not an integer",
			    key->section, key->name, value);
			return -1;
		}
		if (number < key->min || number > key->max) {
			snprintf(err, errlen,
			    "%s.%s: %lld is out of range (%lld to %lld)",
			    key->section, key->name, number, key->min, key->max);
			return -1;
		}
		*(long long *)field = number;
		return 0;
	case CONFIG_BOOL:
		if (config_parse_bool(value, &flag) == -1) {
			snprintf(err, errlen,
			    "%s.%s: \"%s\" is not a boolean (true or false)",
			    key->section, key->name, value);
			return -1;
		}
		*(bool *)field = flag;
		return 0;
	}
	return -1;
}

/* Sets or replaces a [kafka] property, remembering where it came from. */
static int
config_kafka_set(struct config *config, const char *name, const char *value,
    int line)
{
	struct config_property *grown;
	char *name_copy, *value_copy;
	size_t i;

	if ((value_copy = strdup(value)) == NULL)
		return -1;
	for (i = 0; i < config->kafka_count; i++) {
		if (strcmp(config->kafka[i].name, name) == 0) {
			free(config->kafka[i].value);
			config->kafka[i].value = value_copy;
			config->kafka[i].line = line;
			return 0;
		}
	}
	grown = realloc(config->kafka,
	    (config->kafka_count + 1) * sizeof(*grown));
	if (grown == NULL || (name_copy = strdup(name)) == NULL) {
		if (grown != NULL)
			config->kafka = grown;
		free(value_copy);
		return -1;
	}
	config->kafka = grown;
	config->kafka[config->kafka_count].name = name_copy;
	config->kafka[config->kafka_count].value = value_copy;
	config->kafka[config->kafka_count].line = line;
	config->kafka_count++;
	return 0;
}

/* Looks up a [kafka] property. */
const char *
config_kafka_get(const struct config *config, const char *name)
{
	size_t i;

	for (i = 0; i < config->kafka_count; i++) {
		if (strcmp(config->kafka[i].name, name) == 0)
			return config->kafka[i].value;
	}
	return NULL;
}

/* Strips white space at both ends, in place. */
static char *
config_trim(char *text)
{
	char *end;

	while (isspace((unsigned char)*text))
		text++;
	end = text + strlen(text);
	while (end > text && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return text;
}

/* Fills every key with its default. */
static int
config_set_defaults(struct config *config, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (config_set(config, &config_keys[i],
		    config_keys[i].default_value, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Reads the INI file line by line into config. */
static int
config_read_file(struct config *config, const char *path, char *err,
    size_t errlen)
{
	char section[128] = "";
	char *line = NULL, *text, *equals, *name, *value, *close;
	const struct config_key *key;
	char reason[512];
	size_t linecap = 0;
	ssize_t linelen;
	unsigned lineno = 0;
	FILE *file;

	if ((file = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((linelen = getline(&line, &linecap, file)) != -1) {
		lineno++;
		if (linelen > CONFIG_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line is longer than %d bytes",
			    path, lineno, CONFIG_LINE_MAX);
			goto fail;
		}
		if (strlen(line) != (size_t)linelen) {
			snprintf(err, errlen, "%s:%u: line holds a NUL byte",
			    path, lineno);
			goto fail;
		}
		text = config_trim(line);
		if (*text == '\0' || *text == '#' || *text == ';')
			continue;
		if (*text == '[') {
			close = strchr(text, ']');
			if (close == NULL || close[1] != '\0') {
				snprintf(err, errlen,
				    "%s:%u: a section header must be [name]",
				    path, lineno);
				goto fail;
			}
			*close = '\0';
			name = config_trim(text + 1);
			if (!config_known_section(name)) {
				snprintf(err, errlen, "%s:%u: unknown section [%s]",
				    path, lineno, name);
				goto fail;
			}
			snprintf(section, sizeof(section), "%s", name);
			continue;
		}
		if ((equals = strchr(text, '=')) == NULL) {
			snprintf(err, errlen,
			    "%s:%u: expected \"key = value\", found \"%.40s\"",
			    path, lineno, text);
			goto fail;
		}
		*equals = '\0';
		name = config_trim(text);
		value = config_trim(equals + 1);
		if (*name == '\0') {
			snprintf(err, errlen, "%s:%u: a key name is missing",
			    path, lineno);
			goto fail;
		}
		if (section[0] == '\0') {
			snprintf(err, errlen,
			    "%s:%u: key \"%s\" comes before any [section]",
			    path, lineno, name);
			goto fail;
		}
		if (strcmp(section, config_kafka_section) == 0) {
			if (config_kafka_set(config, name, value,
			    (int)lineno) == -1) {
				snprintf(err, errlen, "%s:%u: out of memory",
				    path, lineno);
				goto fail;
			}
			continue;
		}
		if ((key = config_find_key(section, name)) == NULL) {
			snprintf(err, errlen, "%s:%u: unknown key \"%s\" in [%s]",
			    path, lineno, name, section);
			goto fail;
		}
		if (config_set(config, key, value, reason, sizeof(reason)) == -1) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, reason);
			goto fail;
		}
		config->key_lines[key - config_keys] = (int)lineno;
	}
	if (ferror(file)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	free(line);
	fclose(file);
	return 0;
fail:
	free(line);
	fclose(file);
	return -1;
}

/*
 * Applies IPAM_<SECTION>_<KEY> variables on top of the file.  For [kafka],
 * IPAM_KAFKA_SOME_PROPERTY sets "some.property".  An IPAM_ variable that
 * names no key is an error, so that a typo does not go unnoticed.
 */
static int
config_read_environment(struct config *config, char *err, size_t errlen)
{
	char wanted[256], property[256], reason[512];
	const char *value;
	char **entry;
	size_t i, namelen;
	char *p;

	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		snprintf(wanted, sizeof(wanted), "IPAM_%s_%s",
		    config_keys[i].section, config_keys[i].name);
		for (p = wanted; *p != '\0'; p++)
			*p = toupper((unsigned char)*p);
		if ((value = getenv(wanted)) == NULL)
			continue;
		if (config_set(config, &config_keys[i], value, reason,
		    sizeof(reason)) == -1) {
			snprintf(err, errlen, "environment %s: %s", wanted,
			    reason);
			return -1;
		}
		config->key_lines[i] = -1;
	}
	for (entry = environ; *entry != NULL; entry++) {
		if (strncmp(*entry, "IPAM_KAFKA_", 11) != 0)
			continue;
		value = strchr(*entry, '=');
		if (value == NULL)
			continue;
		namelen = value - (*entry + 11);
		if (namelen == 0 || namelen >= sizeof(property))
			continue;
		memcpy(property, *entry + 11, namelen);
		property[namelen] = '\0';
		for (p = property; *p != '\0'; p++)
			*p = (*p == '_') ? '.' : tolower((unsigned char)*p);
		/*
		 * IPAM_KAFKA_SASL_PASSWORD_FILE names a secret file, as
		 * "sasl.password_file" does in the file: no librdkafka
		 * property ends in ".file".
		 */
		if (namelen > 5 && strcmp(property + namelen - 5, ".file") == 0)
			property[namelen - 5] = '_';
		if (config_kafka_set(config, property, value + 1, -1) == -1) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	/* A variable that names a known section but no key is a typo. */
	for (entry = environ; *entry != NULL; entry++) {
		bool section_known = false, key_known = false;

		if (strncmp(*entry, "IPAM_", 5) != 0 ||
		    strncmp(*entry, "IPAM_KAFKA_", 11) == 0)
			continue;
		for (i = 0; i < CONFIG_KEY_COUNT && !key_known; i++) {
			snprintf(wanted, sizeof(wanted), "IPAM_%s_",
			    config_keys[i].section);
			for (p = wanted; *p != '\0'; p++)
				*p = toupper((unsigned char)*p);
			if (strncmp(*entry, wanted, strlen(wanted)) != 0)
				continue;
			section_known = true;
			snprintf(wanted, sizeof(wanted), "IPAM_%s_%s=",
			    config_keys[i].section, config_keys[i].name);
			for (p = wanted; *p != '\0'; p++)
				*p = toupper((unsigned char)*p);
			key_known = strncmp(*entry, wanted, strlen(wanted)) == 0;
		}
		if (section_known && !key_known) {
			value = strchr(*entry, '=');
			snprintf(err, errlen,
			    "environment %.*s: no such configuration key",
			    value ? (int)(value - *entry) : 64, *entry);
			return -1;
		}
	}
	return 0;
}

/* Parses one "topic:entity:format" entry of consumer.topics. */
static int
config_parse_topic(char *entry, struct config_topic *topic, char *err,
    size_t errlen)
{
	char *name, *entity, *format;

	name = entry;
	if ((entity = strchr(name, ':')) == NULL ||
	    (format = strchr(entity + 1, ':')) == NULL) {
		snprintf(err, errlen,
		    "consumer.topics: \"%s\" is not topic:entity:format", entry);
		return -1;
	}
	*entity++ = '\0';
	*format++ = '\0';
	name = config_trim(name);
	entity = config_trim(entity);
	format = config_trim(format);
	if (*name == '\0') {
		snprintf(err, errlen, "consumer.topics: a topic name is empty");
		return -1;
	}
	if (!config_topic_name_valid(name)) {
		snprintf(err, errlen, "consumer.topics: \"%s\" is not a legal "
		    "Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', "
		    "'-'; not \".\" or \"..\")", name);
		return -1;
	}
	if (change_entity_parse(entity, &topic->entity) == -1) {
		snprintf(err, errlen,
		    "consumer.topics: entity \"%s\" of topic %s is not server, "
		    "subnet or mark", entity, name);
		return -1;
	}
	if (strcmp(format, "cloudevents") == 0)
		topic->format = DECODE_CLOUDEVENTS;
	else if (strcmp(format, "debezium") == 0)
		topic->format = DECODE_DEBEZIUM;
	else {
		snprintf(err, errlen,
		    "consumer.topics: format \"%s\" of topic %s is not "
		    "cloudevents or debezium", format, name);
		return -1;
	}
	if (topic->format == DECODE_DEBEZIUM && topic->entity == CHANGE_MARK) {
		snprintf(err, errlen,
		    "consumer.topics: topic %s: marks have no Debezium format",
		    name);
		return -1;
	}
	if ((topic->name = strdup(name)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Splits consumer.topics into the topic list. */
static int
config_parse_topics(struct config *config, char *err, size_t errlen)
{
	char *copy, *entry, *saveptr = NULL;
	size_t i;
	int rc = -1;

	if ((copy = strdup(config->topics_text)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (entry = strtok_r(copy, ",", &saveptr); entry != NULL;
	    entry = strtok_r(NULL, ",", &saveptr)) {
		struct config_topic *grown;

		if (*config_trim(entry) == '\0')
			continue;
		grown = realloc(config->topics,
		    (config->topic_count + 1) * sizeof(*grown));
		if (grown == NULL) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		config->topics = grown;
		memset(&config->topics[config->topic_count], 0,
		    sizeof(*grown));
		if (config_parse_topic(entry,
		    &config->topics[config->topic_count], err, errlen) == -1)
			goto done;
		config->topic_count++;
		for (i = 0; i + 1 < config->topic_count; i++) {
			if (strcmp(config->topics[i].name,
			    config->topics[config->topic_count - 1].name) == 0) {
				snprintf(err, errlen,
				    "consumer.topics: topic %s is named twice",
				    config->topics[i].name);
				goto done;
			}
		}
	}
	if (config->topic_count > APPLIER_MAX_TOPICS) {
		snprintf(err, errlen, "consumer.topics: %zu topics, more than "
		    "the limit of %d", config->topic_count, APPLIER_MAX_TOPICS);
		goto done;
	}
	if (config->topic_count == 0) {
		snprintf(err, errlen, "consumer.topics: no topic is named");
		goto done;
	}
	rc = 0;
done:
	free(copy);
	return rc;
}

/* Tells whether a name is a legal Kafka topic name. */
bool
config_topic_name_valid(const char *name)
{
	static const char legal[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	size_t len = strlen(name);

	/* Kafka's own rule (org.apache.kafka.common.internals.Topic). */
	return len >= 1 && len <= 249 && strspn(name, legal) == len &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Checks an http.listen value the way the daemon binds it. */
int
config_check_listen(const char *text, char *err, size_t errlen)
{
	char host[256];
	const char *colon, *port_text;
	struct in6_addr v6;
	struct in_addr v4;
	char *end;
	long port;

	if (*text == '\0')
		return 0;
	if ((colon = strrchr(text, ':')) == NULL || colon == text ||
	    (size_t)(colon - text) >= sizeof(host)) {
		snprintf(err, errlen, "http.listen: \"%s\" is not "
		    "address:port (127.0.0.1:10187, [::1]:10187)", text);
		return -1;
	}
	port_text = colon + 1;
	errno = 0;
	port = strtol(port_text, &end, 10);
	if (*port_text == '\0' || *end != '\0' || errno != 0 || port < 0 ||
	    port > 65535) {
		snprintf(err, errlen, "http.listen: \"%s\": port \"%s\" is not "
		    "0 to 65535", text, port_text);
		return -1;
	}
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	if (host[0] == '[') {
		size_t len = strlen(host);

		if (len > 2 && host[len - 1] == ']') {
			host[len - 1] = '\0';
			if (inet_pton(AF_INET6, host + 1, &v6) == 1)
				return 0;
		}
	} else if (inet_pton(AF_INET, host, &v4) == 1)
		return 0;
	snprintf(err, errlen, "http.listen: \"%s\": \"%s\" is not a numeric "
	    "address (host names are not resolved: give 127.0.0.1, [::1], "
	    "0.0.0.0 or [::])", text, host);
	return -1;
}

/* Wipes and frees a secret (NULL: nothing). */
void
config_free_secret(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

/*
 * Reads a secret from a file into a new string, without its final newline.
 * A relative path is looked up in $CREDENTIALS_DIRECTORY (systemd's
 * LoadCredential=) when that is set, else in the current folder, which
 * the error then says.  A file others may read or write is refused: the
 * secret is no longer one (chmod o-rwx).  A file its group may read is
 * taken with a warning, since root:ipam-syncd 0640 is a common layout
 * (but not from $CREDENTIALS_DIRECTORY, which is the service's alone).
 * The caller frees the result.
 */
char *
config_read_secret(const char *path, char *err, size_t errlen)
{
	char full[PATH_MAX], buf[4096];
	const char *credentials = getenv("CREDENTIALS_DIRECTORY");
	const char *hint = "";
	struct stat st;
	ssize_t got;
	size_t len = 0;
	int fd;

	if (path[0] != '/' && credentials != NULL)
		snprintf(full, sizeof(full), "%s/%s", credentials, path);
	else
		snprintf(full, sizeof(full), "%s", path);
	if (path[0] != '/' && credentials == NULL)
		hint = " (a relative path, and $CREDENTIALS_DIRECTORY is not "
		    "set: looked up in the current folder)";
	if ((fd = open(full, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "secret file %s: %s%s", full,
		    strerror(errno), hint);
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "secret file %s: %s", full,
		    errno != 0 && !S_ISREG(st.st_mode) ? "not a regular file" :
		    strerror(errno));
		close(fd);
		return NULL;
	}
	if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
		snprintf(err, errlen, "secret file %s: others may %s it (mode "
		    "%04o); refused: chmod o-rwx %s", full,
		    (st.st_mode & S_IROTH) ? "read" : "write",
		    (unsigned)(st.st_mode & 07777), full);
		close(fd);
		return NULL;
	}
	/*
	 * systemd's credentials belong to the service alone, its group
	 * included (DynamicUser=): only files found elsewhere are warned of.
	 */
	if ((st.st_mode & (S_IRGRP | S_IWGRP)) != 0 &&
	    (path[0] == '/' || credentials == NULL))
		log_warnx("secret file %s: its group may read it (mode %04o); "
		    "chmod g-rwx unless that group is the daemon's alone",
		    full, (unsigned)(st.st_mode & 07777));
	while (len < sizeof(buf) - 1 &&
	    (got = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (got == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "secret file %s: %s", full,
			    strerror(errno));
			close(fd);
			return NULL;
		}
		len += (size_t)got;
	}
	if (len == sizeof(buf) - 1 && read(fd, buf + len, 1) > 0) {
		snprintf(err, errlen, "secret file %s: longer than 4095 bytes",
		    full);
		explicit_bzero(buf, sizeof(buf));
		close(fd);
		return NULL;
	}
	close(fd);
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "secret file %s is empty", full);
		return NULL;
	}
	return strdup(buf);
}

/* Writes where a key's value came from. */
void
config_key_where(const struct config *config, const char *section,
    const char *name, char *buf, size_t buflen)
{
	const struct config_key *key = config_find_key(section, name);
	const char *path = config->path != NULL ? config->path : "(no file)";
	char variable[256], *p;
	int line = 0;
	size_t i;

	if (key != NULL)
		line = config->key_lines[key - config_keys];
	else if (strcmp(section, config_kafka_section) == 0) {
		for (i = 0; i < config->kafka_count; i++)
			if (strcmp(config->kafka[i].name, name) == 0)
				line = config->kafka[i].line;
	}
	if (line > 0) {
		snprintf(buf, buflen, "%s:%d", path, line);
		return;
	}
	if (line == 0) {
		snprintf(buf, buflen, "%s", path);
		return;
	}
	snprintf(variable, sizeof(variable), "IPAM_%s_%s", section, name);
	for (p = variable; *p != '\0'; p++)
		*p = (*p == '.') ? '_' : toupper((unsigned char)*p);
	snprintf(buf, buflen, "environment %s", variable);
}

/*
 * Fills err with "where: reason", where is the file and line (or the
 * variable) of the key at fault; returns -1.
 */
static int __attribute__((format(printf, 6, 7)))
config_fail(const struct config *config, char *err, size_t errlen,
    const char *section, const char *name, const char *format, ...)
{
	char where[PATH_MAX + 64], reason[2048];
	va_list ap;

	va_start(ap, format);
	vsnprintf(reason, sizeof(reason), format, ap);
	va_end(ap);
	config_key_where(config, section, name, where, sizeof(where));
	snprintf(err, errlen, "%s: %s", where, reason);
	return -1;
}

/* Replaces each [kafka] "name_file = path" by "name = <file's content>". */
static int
config_resolve_kafka_secrets(struct config *config, char *err, size_t errlen)
{
	char name[256], reason[1024], *secret;
	size_t i, len;

	for (i = 0; i < config->kafka_count; i++) {
		len = strlen(config->kafka[i].name);
		if (len <= 5 || len >= sizeof(name) ||
		    strcmp(config->kafka[i].name + len - 5, "_file") != 0)
			continue;
		memcpy(name, config->kafka[i].name, len - 5);
		name[len - 5] = '\0';
		if ((secret = config_read_secret(config->kafka[i].value, reason,
		    sizeof(reason))) == NULL)
			return config_fail(config, err, errlen,
			    config_kafka_section, config->kafka[i].name,
			    "kafka.%s: %s", config->kafka[i].name, reason);
		if (config_kafka_set(config, name, secret,
		    config->kafka[i].line) == -1) {
			free(secret);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		config_free_secret(secret);
	}
	return 0;
}

/*
 * librdkafka settings the consumer's guarantees rest on, which [kafka]
 * may not change: each with the one value it may be given (NULL: none)
 * and why.
 */
static const struct {
	const char	*name;
	const char	*allowed;
	const char	*why;
} config_kafka_owned[] = {
	{ "auto.offset.reset", NULL, "ipam-syncd sets it to error: a start "
	    "offset outside the log is reported, never skipped over" },
	{ "partition.assignment.strategy", NULL, "ipam-syncd sets it to "
	    "cooperative-sticky, which its handling of rebalances needs" },
	{ "isolation.level", "read_committed", "only read_committed: the "
	    "events of aborted transactions are never applied" },
	{ "enable.partition.eof", NULL, "the consumer reads the end of a "
	    "partition its own way" },
};

/* Refuses a [kafka] key that would undo one of those guarantees. */
static int
config_check_kafka_owned(struct config *config, char *err, size_t errlen)
{
	const char *value;
	size_t i;

	for (i = 0; i < sizeof(config_kafka_owned) /
	    sizeof(config_kafka_owned[0]); i++) {
		value = config_kafka_get(config, config_kafka_owned[i].name);
		if (value == NULL || (config_kafka_owned[i].allowed != NULL &&
		    strcmp(value, config_kafka_owned[i].allowed) == 0))
			continue;
		return config_fail(config, err, errlen, config_kafka_section,
		    config_kafka_owned[i].name, "kafka.%s: %s",
		    config_kafka_owned[i].name, config_kafka_owned[i].why);
	}
	return 0;
}

/* Lets librdkafka judge every [kafka] property now, not at start. */
static int
config_check_kafka(const struct config *config, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *mechanisms;
	char reason[512];
	size_t i, len;

	for (i = 0; i < config->kafka_count; i++) {
		len = strlen(config->kafka[i].name);
		if ((len > 5 && strcmp(config->kafka[i].name + len - 5,
		    "_file") == 0) || kafka_scram_own_key(config->kafka[i].name))
			continue;
		if (rd_kafka_conf_set(conf, config->kafka[i].name,
		    config->kafka[i].value, reason, sizeof(reason)) !=
		    RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(conf);
			return config_fail(config, err, errlen,
			    config_kafka_section, config->kafka[i].name,
			    "kafka.%s: %s", config->kafka[i].name, reason);
		}
	}
	rd_kafka_conf_destroy(conf);
	/* librdkafka takes "sasl.mechanism" as another name for it. */
	if ((mechanisms = config_kafka_get(config, "sasl.mechanisms")) == NULL)
		mechanisms = config_kafka_get(config, "sasl.mechanism");
	switch (kafka_scram_check(mechanisms,
	    config_kafka_get(config, KAFKA_SCRAM_ACK_KEY), rd_kafka_version(),
	    reason, sizeof(reason))) {
	case -1:
		return config_fail(config, err, errlen, config_kafka_section,
		    "sasl.mechanisms", "%s", reason);
	case -2:
		return config_fail(config, err, errlen, config_kafka_section,
		    KAFKA_SCRAM_ACK_KEY, "%s", reason);
	}
	return 0;
}

/* The topic the API publishes an entity's events to; NULL: none. */
const char *
config_api_topic(const struct config *config, enum change_entity entity)
{
	size_t i;

	if (entity == CHANGE_MARK && *config->api_marks_topic != '\0')
		return config->api_marks_topic;
	for (i = 0; i < config->topic_count; i++)
		if (config->topics[i].entity == entity &&
		    config->topics[i].format == DECODE_CLOUDEVENTS)
			return config->topics[i].name;
	return NULL;
}

/* Checks a secret file key: it can be read, it is not empty, not shared. */
static int
config_check_secret_key(const struct config *config, const char *section,
    const char *name, const char *path, char *err, size_t errlen)
{
	char reason[1024], *secret;

	if (*path == '\0')
		return 0;
	if ((secret = config_read_secret(path, reason, sizeof(reason))) ==
	    NULL)
		return config_fail(config, err, errlen, section, name,
		    "%s.%s: %s", section, name, reason);
	config_free_secret(secret);
	return 0;
}

/* Checks a libpq connection string the way libpq will read it. */
static int
config_check_conninfo(const struct config *config, const char *section,
    const char *name, const char *conninfo, char *err, size_t errlen)
{
	PQconninfoOption *options;
	char *message = NULL;
	size_t len;

	if ((options = PQconninfoParse(conninfo, &message)) != NULL) {
		PQconninfoFree(options);
		return 0;
	}
	if (message == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	len = strlen(message);
	while (len > 0 && message[len - 1] == '\n')
		message[--len] = '\0';
	config_fail(config, err, errlen, section, name, "%s.%s: %s", section,
	    name, message);
	PQfreemem(message);
	return -1;
}

/* Checks the API's topic, its token files and its page's folder. */
static int
config_check_api(const struct config *config, char *err, size_t errlen)
{
	struct stat st;
	size_t i;

	if (*config->api_marks_topic != '\0') {
		for (i = 0; i < config->topic_count; i++)
			if (strcmp(config->topics[i].name,
			    config->api_marks_topic) == 0 &&
			    config->topics[i].entity == CHANGE_MARK &&
			    config->topics[i].format == DECODE_CLOUDEVENTS)
				break;
		if (i == config->topic_count)
			return config_fail(config, err, errlen, "api",
			    "marks_topic", "api.marks_topic: \"%s\" is not "
			    "a mark topic in cloudevents format of "
			    "consumer.topics (the daemon must consume what it "
			    "publishes)", config->api_marks_topic);
	}
	if (config_check_secret_key(config, "api", "read_token_file",
	    config->api_read_token_file, err, errlen) == -1 ||
	    config_check_secret_key(config, "api", "write_token_file",
	    config->api_write_token_file, err, errlen) == -1 ||
	    config_check_secret_key(config, "api", "read_password_file",
	    config->api_read_password_file, err, errlen) == -1 ||
	    config_check_conninfo(config, "api", "read_conninfo",
	    config->api_read_conninfo, err, errlen) == -1)
		return -1;
	if (!config->api_enabled || *config->http_listen == '\0' ||
	    *config->api_web_dir == '\0')
		return 0;
	/*
	 * The page is optional: a missing folder is said, not refused (a
	 * build that is not installed has none); a file in its place is a
	 * mistake.
	 */
	if (stat(config->api_web_dir, &st) == -1) {
		char where[PATH_MAX + 64];

		config_key_where(config, "api", "web_dir", where,
		    sizeof(where));
		log_warnx("%s: api.web_dir %s: %s; the operator page is not "
		    "served (404)", where, config->api_web_dir,
		    strerror(errno));
	} else if (!S_ISDIR(st.st_mode))
		return config_fail(config, err, errlen, "api", "web_dir",
		    "api.web_dir: %s is not a folder", config->api_web_dir);
	return 0;
}

/* Checks values that depend on each other and derives the typed parts. */
static int
config_check(struct config *config, char *err, size_t errlen)
{
	enum log_level level;
	const char *bootstrap;
	char reason[1024];

	if (log_level_parse(config->log_level, &level) == -1)
		return config_fail(config, err, errlen, "daemon", "log_level",
		    "daemon.log_level: \"%s\" is not one of error, warning, "
		    "notice, info, debug", config->log_level);
	if (*config->user != '\0') {
		uid_t uid;
		gid_t gid;

		if (privileges_lookup(config->user, &uid, &gid, reason,
		    sizeof(reason)) == -1)
			return config_fail(config, err, errlen, "daemon", "user",
			    "daemon.user: %s", reason);
	}
	if (config->pg_reconnect_min_ms > config->pg_reconnect_max_ms)
		return config_fail(config, err, errlen, "postgresql",
		    "reconnect_min_ms",
		    "postgresql.reconnect_min_ms (%lld) is larger than "
		    "reconnect_max_ms (%lld)", config->pg_reconnect_min_ms,
		    config->pg_reconnect_max_ms);
	if (config_check_conninfo(config, "postgresql", "conninfo",
	    config->pg_conninfo, err, errlen) == -1 ||
	    config_check_secret_key(config, "postgresql", "password_file",
	    config->pg_password_file, err, errlen) == -1)
		return -1;
	if (config_check_listen(config->http_listen, reason,
	    sizeof(reason)) == -1)
		return config_fail(config, err, errlen, "http", "listen", "%s",
		    reason);
	if (config_parse_topics(config, reason, sizeof(reason)) == -1)
		return config_fail(config, err, errlen, "consumer", "topics",
		    "%s", reason);
	if (config_check_api(config, err, errlen) == -1)
		return -1;
	if (config_resolve_kafka_secrets(config, err, errlen) == -1)
		return -1;
	if (config_kafka_get(config, "group.id") != NULL)
		return config_fail(config, err, errlen, config_kafka_section,
		    "group.id",
		    "kafka.group.id: set the group with consumer.group_id");
	if (config_kafka_get(config, "enable.auto.offset.store") != NULL ||
	    config_kafka_get(config, "enable.auto.commit") != NULL)
		return config_fail(config, err, errlen, config_kafka_section,
		    config_kafka_get(config, "enable.auto.commit") != NULL ?
		    "enable.auto.commit" : "enable.auto.offset.store",
		    "kafka: offsets are kept in PostgreSQL; do not set "
		    "enable.auto.commit or enable.auto.offset.store");
	if (config_check_kafka_owned(config, err, errlen) == -1 ||
	    config_check_kafka(config, err, errlen) == -1)
		return -1;
	bootstrap = config_kafka_get(config, "bootstrap.servers");
	if (bootstrap == NULL)
		bootstrap = getenv("KAFKA_BOOTSTRAP_SERVERS");
	if (bootstrap == NULL || *bootstrap == '\0')
		return config_fail(config, err, errlen, config_kafka_section,
		    "bootstrap.servers",
		    "kafka.bootstrap.servers is not set (nor "
		    "KAFKA_BOOTSTRAP_SERVERS)");
	if (config_kafka_get(config, "bootstrap.servers") == NULL &&
	    config_kafka_set(config, "bootstrap.servers", bootstrap, -1) ==
	    -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	config->columns.server_id = config->dbz_server_id;
	config->columns.server_hostname = config->dbz_server_hostname;
	config->columns.server_ip_address = config->dbz_server_ip_address;
	config->columns.server_nic_mac = config->dbz_server_nic_mac;
	config->columns.server_device_type = config->dbz_server_device_type;
	config->columns.server_manufacture = config->dbz_server_manufacture;
	config->columns.server_vrf = config->dbz_server_vrf;
	config->columns.subnet_id = config->dbz_subnet_id;
	config->columns.subnet_name = config->dbz_subnet_name;
	config->columns.subnet_cidr = config->dbz_subnet_cidr;
	config->columns.subnet_static_ip_pools =
	    config->dbz_subnet_static_ip_pools;
	config->columns.subnet_vrf = config->dbz_subnet_vrf;
	config->columns.subnet_ping = config->dbz_subnet_ping;
	config->columns.unavailable = config->dbz_unavailable;
	config->limits.max_message_bytes = (size_t)config->max_message_bytes;
	config->limits.max_pool_addresses =
	    (uint64_t)config->max_pool_addresses;
	return 0;
}

/* Loads a config file and the environment, then checks the result. */
struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *config;

	if ((config = calloc(1, sizeof(*config))) == NULL ||
	    (config->key_lines = calloc(CONFIG_KEY_COUNT,
	    sizeof(*config->key_lines))) == NULL ||
	    (path != NULL && (config->path = strdup(path)) == NULL)) {
		config_free(config);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (config_set_defaults(config, err, errlen) == -1)
		goto fail;
	if (path != NULL && config_read_file(config, path, err, errlen) == -1)
		goto fail;
	if (config_read_environment(config, err, errlen) == -1)
		goto fail;
	/* Each error of the checks names the file and line, or the variable. */
	if (config_check(config, err, errlen) == -1)
		goto fail;
	return config;
fail:
	config_free(config);
	return NULL;
}

size_t
config_keys_in_file(const struct config *config)
{
	size_t i, n = 0;

	for (i = 0; i < CONFIG_KEY_COUNT; i++)
		if (config->key_lines[i] > 0)
			n++;
	for (i = 0; i < config->kafka_count; i++)
		if (config->kafka[i].line > 0)
			n++;
	return n;
}

/* Frees a config. */
void
config_free(struct config *config)
{
	size_t i;

	if (config == NULL)
		return;
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (config_keys[i].type == CONFIG_STRING)
			free(*(char **)config_field(config, &config_keys[i]));
	}
	for (i = 0; i < config->topic_count; i++)
		free(config->topics[i].name);
	free(config->topics);
	for (i = 0; i < config->kafka_count; i++) {
		free(config->kafka[i].name);
		free(config->kafka[i].value);
	}
	free(config->kafka);
	free(config->key_lines);
	free(config->path);
	free(config);
}

/* Tells whether a key holds the same value in two configs. */
static bool
config_key_equal(const struct config *a, const struct config *b,
    const struct config_key *key)
{
	const char *pa = (const char *)a + key->offset;
	const char *pb = (const char *)b + key->offset;

	switch (key->type) {
	case CONFIG_STRING:
		return strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
	case CONFIG_INT:
		return *(const long long *)pa == *(const long long *)pb;
	case CONFIG_BOOL:
		return *(const bool *)pa == *(const bool *)pb;
	}
	return false;
}

/* Names the keys that changed but need a restart. */
size_t
config_restart_keys(const struct config *old, const struct config *new,
    char *buf, size_t buflen)
{
	size_t i, count = 0, used = 0;
	bool kafka_changed = old->kafka_count != new->kafka_count;

	buf[0] = '\0';
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (config_keys[i].reloadable ||
		    config_key_equal(old, new, &config_keys[i]))
			continue;
		count++;
		if (used < buflen)
			used += snprintf(buf + used, buflen - used, "%s%s.%s",
			    count > 1 ? ", " : "", config_keys[i].section,
			    config_keys[i].name);
	}
	for (i = 0; !kafka_changed && i < new->kafka_count; i++) {
		const char *value = config_kafka_get(old, new->kafka[i].name);

		kafka_changed = value == NULL ||
		    strcmp(value, new->kafka[i].value) != 0;
	}
	if (kafka_changed) {
		count++;
		if (used < buflen)
			snprintf(buf + used, buflen - used, "%s[kafka]",
			    count > 1 ? ", " : "");
	}
	return count;
}

/* Fills the sweeper's settings from a config. */
void
config_sweeper_settings(const struct config *config, const char *password,
    struct sweeper_settings *settings)
{
	memset(settings, 0, sizeof(*settings));
	settings->enabled = config->sweeper_enabled;
	settings->interval_ms = config->sweeper_interval_ms;
	settings->rate = config->sweeper_rate;
	settings->receive_buffer = config->sweeper_receive_buffer;
	settings->timeout_ms = config->sweeper_timeout_ms;
	settings->retries = config->sweeper_retries;
	settings->down_after = config->sweeper_down_after;
	settings->vrfs = config->sweeper_vrfs;
	settings->conninfo = config->pg_conninfo;
	settings->password = password;
	settings->pg_connect_timeout_ms = config->pg_connect_timeout_ms;
	settings->pg_reconnect_min_ms = config->pg_reconnect_min_ms;
	settings->pg_reconnect_max_ms = config->pg_reconnect_max_ms;
}

/* Writes text as roff: backslashes escaped, no line taken for a request. */
static void
config_man_text(FILE *out, const char *text)
{
	const char *p;

	for (p = text; *p != '\0'; p++) {
		if ((p == text || p[-1] == '\n') && (*p == '.' || *p == '\''))
			fputs("\\&", out);
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
	fputc('\n', out);
}

/*
 * Writes ipam-syncd.conf(5), generated from the key table like the
 * example file, so that the page cannot drift from what the daemon reads.
 */
void
config_write_man(FILE *out)
{
	const char *section = "";
	size_t i;

	fprintf(out, ".TH IPAM-SYNCD.CONF 5 \"\" \"ipam-syncd %s\" "
	    "\"File Formats\"\n", IPAM_VERSION);
	fputs(".SH NAME\nipam-syncd.conf \\- configuration of ipam-syncd\n"
	    ".SH SYNOPSIS\n" IPAM_DEFAULT_CONFIG "\n"
	    ".SH DESCRIPTION\n"
	    "One INI file: sections in brackets, lines \\fIkey\\fR = "
	    "\\fIvalue\\fR, comments starting with # or ;.\n"
	    "Every key can be overridden from the environment as\n"
	    ".BI IPAM_ SECTION _ KEY\n"
	    "(upper case), for example IPAM_POSTGRESQL_CONNINFO.\n"
	    "A key that needs a restart keeps its running value on SIGHUP\n"
	    "and is named in a warning.\n"
	    "\\fBipam-syncd \\-\\-check-config\\fR checks a file as a start "
	    "would; \\fBipam-syncd \\-\\-print-example-config\\fR writes "
	    "the documented example.\n"
	    "This page is generated from the same key table.\n", out);
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		const struct config_key *key = &config_keys[i];

		if (strcmp(section, key->section) != 0) {
			section = key->section;
			fprintf(out, ".SH [%s]\n", section);
		}
		fprintf(out, ".TP\n.B %s\n", key->name);
		fputs("Default: ", out);
		config_man_text(out, *key->default_value != '\0' ?
		    key->default_value : "(empty)");
		fputs(".br\n", out);
		if (key->help != NULL)
			config_man_text(out, key->help);
		config_man_text(out, key->reloadable ? "Changes on SIGHUP." :
		    "Changes need a restart.");
	}
	fputs(".SH [kafka]\n"
	    "Every key is passed as it is to librdkafka (see its "
	    "CONFIGURATION.md), except the keys beginning with ipam., which "
	    "are the daemon's own.\n"
	    "A key ending in _file names a file holding the value of the key "
	    "without it (a secret), relative to $CREDENTIALS_DIRECTORY.\n"
	    "IPAM_KAFKA_BOOTSTRAP_SERVERS sets bootstrap.servers; without it, "
	    "KAFKA_BOOTSTRAP_SERVERS is used.\n"
	    "Changes need a restart.\n"
	    ".TP\n.B bootstrap.servers\n"
	    "The brokers to start from, host:port separated by commas.\n"
	    ".SH SEE ALSO\n"
	    ".BR ipam-syncd (8),\n"
	    ".BR ipamctl (1)\n", out);
}

/* Writes the documented example configuration from the key table. */
void
config_write_example(FILE *out)
{
	const char *section = "", *line, *next;
	size_t i;

	fprintf(out,
	    "# ipam-syncd configuration.\n"
	    "#\n"
	    "# Every key can be overridden from the environment as\n"
	    "# IPAM_<SECTION>_<KEY> (upper case), for example\n"
	    "# IPAM_POSTGRESQL_CONNINFO.  Keys marked \"restart\" keep their old\n"
	    "# value on SIGHUP and are named in a warning.  Lines are\n"
	    "# \"key = value\"; a line starting with # or ; is a comment.\n"
	    "# This file is generated by \"ipam-syncd --print-example-config\".\n");
	for (i = 0; i < CONFIG_KEY_COUNT; i++) {
		const struct config_key *key = &config_keys[i];

		if (strcmp(section, key->section) != 0) {
			section = key->section;
			fprintf(out, "\n[%s]\n", section);
		}
		if (key->help != NULL) {
			for (line = key->help; line != NULL; line = next) {
				next = strchr(line, '\n');
				fprintf(out, "# %.*s\n",
				    next ? (int)(next - line) : (int)strlen(line),
				    line);
				if (next != NULL)
					next++;
			}
		}
		if (!key->reloadable)
			fprintf(out, "# (restart)\n");
		fprintf(out, "%s = %s\n", key->name, key->default_value);
	}
	fprintf(out,
	    "\n[kafka]\n"
	    "# Every key here is passed as it is to librdkafka (see its\n"
	    "# CONFIGURATION.md); IPAM_KAFKA_BOOTSTRAP_SERVERS sets\n"
	    "# bootstrap.servers.  Without it, KAFKA_BOOTSTRAP_SERVERS is used.\n"
	    "# A secret can come from a file: sasl.password_file = kafka-pass\n"
	    "# (relative to $CREDENTIALS_DIRECTORY).  Changes need a restart.\n"
	    "bootstrap.servers = 127.0.0.1:9092\n");
}
