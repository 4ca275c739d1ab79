/* Configuration: one INI file, every key overridable from the environment. */
#ifndef IPAM_DAEMON_CONFIG_H
#define IPAM_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "consumers/change.h"
#include "consumers/decode.h"

struct sweeper_settings;

/* One topic the consumer subscribes to, with what it carries. */
struct config_topic {
	char			*name;
	enum change_entity	 entity;
	enum decode_format	 format;
};

/* A librdkafka property passed through as given. */
struct config_property {
	char	*name;
	char	*value;
	int	 line;		/* its line in the file; -1: the environment */
};

/* The whole configuration; every string is owned by the struct. */
struct config {
	/* Where the values came from: the file, and each key's line (0: the
	 * default, -1: the environment), for error messages. */
	char		*path;
	int		*key_lines;

	/* [daemon] */
	char		*log_level;
	char		*user;
	long long	 shutdown_timeout_ms;
	char		*schema_dir;

	/* [postgresql] */
	char		*pg_conninfo;
	char		*pg_password_file;
	long long	 pg_connect_timeout_ms;
	long long	 pg_reconnect_min_ms;
	long long	 pg_reconnect_max_ms;

	/* [consumer] */
	char		*group_id;
	char		*topics_text;
	long long	 batch_max_events;
	long long	 batch_max_bytes;
	long long	 batch_max_wait_ms;
	long long	 batch_max_pool_addresses;
	long long	 max_message_bytes;
	long long	 max_pool_addresses;

	/* [debezium] column names */
	char		*dbz_server_id;
	char		*dbz_server_hostname;
	char		*dbz_server_ip_address;
	char		*dbz_server_nic_mac;
	char		*dbz_server_device_type;
	char		*dbz_server_manufacture;
	char		*dbz_server_vrf;
	char		*dbz_subnet_id;
	char		*dbz_subnet_name;
	char		*dbz_subnet_cidr;
	char		*dbz_subnet_static_ip_pools;
	char		*dbz_subnet_vrf;
	char		*dbz_subnet_ping;
	char		*dbz_unavailable;

	/* [http] */
	char		*http_listen;
	long long	 http_ready_max_lag;

	/* [api] */
	bool		 api_enabled;
	char		*api_read_token_file;
	char		*api_write_token_file;
	long long	 api_read_connections;
	long long	 api_statement_timeout_ms;
	long long	 api_write_wait_ms;
	long long	 api_rate_limit;
	char		*api_marks_topic;
	char		*api_web_dir;
	char		*api_read_conninfo;
	char		*api_read_password_file;

	/* [retention] */
	long long	 retention_audit_days;
	long long	 retention_dead_letter_days;
	long long	 retention_request_days;
	long long	 retention_interval_ms;

	/* [sweeper] */
	bool		 sweeper_enabled;
	long long	 sweeper_interval_ms;
	long long	 sweeper_rate;
	long long	 sweeper_receive_buffer;
	long long	 sweeper_timeout_ms;
	long long	 sweeper_retries;
	long long	 sweeper_down_after;
	char		*sweeper_vrfs;

	/* Derived from the above by config_load(). */
	struct config_topic	*topics;
	size_t			 topic_count;
	struct debezium_columns	 columns;
	struct decode_limits	 limits;

	/* [kafka]: passed straight to librdkafka. */
	struct config_property	*kafka;
	size_t			 kafka_count;
};

/*
 * Loads a config file, then the IPAM_* environment on top of it, and
 * checks it.  Returns a new config the caller frees with config_free(),
 * or NULL with "file:line: reason" (or "environment IPAM_X: reason") in err.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);

/* How many keys the file set (not the defaults, nor the environment). */
size_t		 config_keys_in_file(const struct config *config);

/*
 * Reads a secret file (relative paths are looked up in
 * $CREDENTIALS_DIRECTORY); returns a string the caller frees, or NULL.
 * An empty file, or one that others may read, is refused; one that its
 * group may read is taken with a warning.
 */
char		*config_read_secret(const char *path, char *err, size_t errlen);

/* Wipes and frees what config_read_secret() gave (NULL: nothing). */
void		 config_free_secret(char *secret);

/*
 * Writes where a key's value came from into buf: "file:line", "file"
 * (its default) or "environment IPAM_SECTION_KEY".
 */
void		 config_key_where(const struct config *config,
		    const char *section, const char *name, char *buf,
		    size_t buflen);

/*
 * Tells whether a name is a legal Kafka topic name: 1 to 249 of
 * [a-zA-Z0-9._-], and neither "." nor "..".
 */
bool		 config_topic_name_valid(const char *name);

/*
 * Checks an http.listen value as the daemon binds it: a numeric IPv4
 * address or a bracketed IPv6 one, a colon, a port 0 to 65535.  Host
 * names are refused: the daemon does not resolve them.
 */
int		 config_check_listen(const char *text, char *err, size_t errlen);

/* Frees a config. */
void		 config_free(struct config *config);

/* Looks up a [kafka] property; NULL when absent. */
const char	*config_kafka_get(const struct config *config, const char *name);

/*
 * Names, in buf, the keys whose values differ between two configs and
 * cannot change without a restart; returns how many there are.
 */
size_t		 config_restart_keys(const struct config *old,
		    const struct config *new, char *buf, size_t buflen);

/*
 * Fills the sweeper's settings from a config; the strings point into it
 * and into password (NULL: libpq's own rules).
 */
void		 config_sweeper_settings(const struct config *config,
		    const char *password, struct sweeper_settings *settings);

/*
 * The topic the operator API publishes an entity's events to: for marks
 * api.marks_topic, else the first cloudevents topic of that entity in
 * consumer.topics; NULL when there is none.
 */
const char	*config_api_topic(const struct config *config,
		    enum change_entity entity);

/* Writes the documented example configuration, generated from the key table. */
void		 config_write_example(FILE *out);

/* Writes ipam-syncd.conf(5) in roff, generated from the key table. */
void		 config_write_man(FILE *out);

#endif
