/* Field validators shared by the CloudEvents and Debezium decoders. */
#ifndef IPAM_CONSUMERS_DECODE_FIELDS_H
#define IPAM_CONSUMERS_DECODE_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/addr.h"
#include "consumers/change.h"
#include "consumers/decode_scan.h"

/* Bytes in an entity id, a vrf name, other text and a description. */
#define FIELDS_ID_MAX		255
#define FIELDS_VRF_MAX		64
#define FIELDS_TEXT_MAX		255	/* hostname, name, ... */
#define FIELDS_DESCRIPTION_MAX	1024

/* Room for "aa:bb:cc:dd:ee:ff" and its NUL. */
#define FIELDS_MAC_TEXT		18

/* Characters of a value quoted in an error, and room for the quote. */
#define FIELDS_QUOTE_MAX	80
#define FIELDS_QUOTE_SIZE	(FIELDS_QUOTE_MAX * 4 + 8)

/*
 * A JSON value as the validators read it: from a jansson tree, or from
 * a message's bytes read in place (decode_scan.h).
 */
struct fields_value {
	enum scan_kind	 kind;
	const char	*text;		/* a string: its bytes, NUL-terminated */
	size_t		 len;		/* a string: its length */
	int64_t		 integer;	/* an integer */
	const json_t	*json;		/* an array or object of a tree */
	const char	*raw;		/* an array read in place: its text */
	size_t		 raw_len;
};

/*
 * In every validator below, field is the name the error message gives
 * (for example "data.nic_mac"), a NULL value (or kind SCAN_ABSENT) means
 * the field is absent, and the result is 0, or -1 with a reason in err.
 * A validator of a struct fields_value is named for its jansson twin
 * with a _value suffix, and behaves the same.
 */

/* Fills err like snprintf and returns -1, to end a failing path in one line. */
int	fields_error(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Puts "prefix: " in front of the message already in err. */
void	fields_error_prefix(char *err, size_t errlen, const char *prefix);

/*
 * Writes bytes as a double-quoted string for an error message: control
 * characters, quotes and invalid UTF-8 escaped, long text cut short.
 */
void	fields_quote(const void *bytes, size_t len, char *buf,
	    size_t buflen);

/* Escapes control characters and invalid UTF-8 in err, in place. */
void	fields_sanitize(char *err, size_t errlen);

/* Tells whether bytes are valid UTF-8 holding no NUL. */
bool	fields_utf8_valid(const void *bytes, size_t len);

/*
 * Writes n bytes of valid UTF-8 without NUL at out as the inside of a JSON
 * string, escaped as jansson's dump escapes them; returns how many bytes
 * it wrote, at most 6 * n.
 */
size_t	fields_json_escape(const void *bytes, size_t n, char *out);

/*
 * Length of the valid UTF-8 sequence at p (at most len bytes), or 0 when
 * the bytes there are not one (overlong, a surrogate, past U+10FFFF).
 */
size_t	fields_utf8_sequence(const uint8_t *p, size_t len);

/* Names a kind of JSON value for an error: "a string", "null", ... */
const char *fields_kind_name(enum scan_kind kind);

/* Names the kind of a JSON value for an error: "a string", "null", ... */
const char *fields_json_kind(const json_t *value);

/* Reads a value of a jansson tree (NULL: absent) as the validators take it. */
void	fields_from_json(const json_t *value, struct fields_value *out);

/* Refuses any member of obj that allowed (NULL-terminated) does not name. */
int	fields_strict(const char *what, const json_t *obj,
	    const char *const *allowed, char *err, size_t errlen);

/*
 * Copies bytes (a Kafka key or header value) into a new string after
 * checking they are UTF-8 without control characters, not empty and at
 * most max bytes; the caller owns *out.
 */
int	fields_text_bytes(const char *field, const void *bytes, size_t len,
	    size_t max, char **out, char *err, size_t errlen);

/*
 * A string of at most max bytes, without control characters (C0, DEL,
 * C1); absent or null gives NULL unless required.  The caller owns *out.
 */
int	fields_string(const char *field, const json_t *value, size_t max,
	    bool required, char **out, char *err, size_t errlen);
int	fields_string_value(const char *field, const struct fields_value *value,
	    size_t max, bool required, char **out, char *err, size_t errlen);

/*
 * Free text of at most max bytes, such as a description: lines may be
 * broken and tabs used, but no other control character; absent or null
 * gives NULL.  The caller owns *out.
 */
int	fields_lines(const char *field, const json_t *value, size_t max,
	    char **out, char *err, size_t errlen);

/*
 * An id given as bytes (a Kafka key, a subject, a JSON string): UTF-8
 * text of 1 to FIELDS_ID_MAX bytes, without control characters and not
 * beginning or ending with white space.  The caller owns *out.
 */
int	fields_id_bytes(const char *field, const void *bytes, size_t len,
	    char **out, char *err, size_t errlen);

/*
 * An entity id: a string (see fields_id_bytes), or a JSON integer, which
 * becomes its decimal text; true, 1.5 or 1e2 are not ids.  Required.
 * The caller owns *out.
 */
int	fields_id(const char *field, const json_t *value, char **out,
	    char *err, size_t errlen);
int	fields_id_value(const char *field, const struct fields_value *value,
	    char **out, char *err, size_t errlen);

/* A vrf name: a string, "" when absent or null.  The caller owns *out. */
int	fields_vrf(const char *field, const json_t *value, char **out,
	    char *err, size_t errlen);
int	fields_vrf_value(const char *field, const struct fields_value *value,
	    char **out, char *err, size_t errlen);

/*
 * Checks a vrf name, text already known to be UTF-8 without control
 * characters: at most FIELDS_VRF_MAX bytes, no '/' or ',', no white
 * space at either end, not "-" or "*".
 */
int	fields_vrf_check(const char *field, const char *vrf, char *err,
	    size_t errlen);

/*
 * Normalizes aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff into
 * lowercase colon form; returns 0, or -1 when text is none of those.
 */
int	fields_mac_normalize(const char *text, char out[FIELDS_MAC_TEXT]);

/*
 * A MAC address as a string; absent, null or "" gives NULL.  The caller
 * owns *out.
 */
int	fields_mac(const char *field, const json_t *value, char **out,
	    char *err, size_t errlen);
int	fields_mac_value(const char *field, const struct fields_value *value,
	    char **out, char *err, size_t errlen);

/*
 * An IPv4 or IPv6 address as a string (IPv4-mapped ones come out as
 * IPv4); absent, null or "" sets *present to false, which is an error
 * when required.
 */
int	fields_address(const char *field, const json_t *value, bool required,
	    struct ip_addr *out, bool *present, char *err, size_t errlen);

/*
 * An address as PostgreSQL's inet text (an inet column sent by
 * Debezium): with a /length, the address is its host part.  Absent,
 * null or "" sets *present to false, which is an error when required.
 */
int	fields_inet_value(const char *field, const struct fields_value *value,
	    bool required, struct ip_addr *out, bool *present, char *err,
	    size_t errlen);

/* A prefix as a string ("192.168.1.0/24"); required. */
int	fields_prefix(const char *field, const json_t *value,
	    struct ip_prefix *out, char *err, size_t errlen);
int	fields_prefix_value(const char *field, const struct fields_value *value,
	    struct ip_prefix *out, char *err, size_t errlen);

/* A JSON boolean; absent or null gives fallback. */
int	fields_bool(const char *field, const json_t *value, bool fallback,
	    bool *out, char *err, size_t errlen);
int	fields_bool_value(const char *field, const struct fields_value *value,
	    bool fallback, bool *out, char *err, size_t errlen);

/*
 * A version: an integer >= 0, or a string of decimal digits.  Absent or
 * null sets *present to false.
 */
int	fields_version(const char *field, const json_t *value, bool *present,
	    int64_t *out, char *err, size_t errlen);
int	fields_version_value(const char *field,
	    const struct fields_value *value, bool *present, int64_t *out,
	    char *err, size_t errlen);

/* A version given as decimal digits in bytes (a header value). */
int	fields_version_bytes(const char *field, const void *bytes,
	    size_t len, int64_t *out, char *err, size_t errlen);

/*
 * Static pools of the subnet cidr: a JSON array of "a-b", "a" or "a/n"
 * strings, or a string holding that array; absent, null, "" give none.
 * The ranges come out clamped off an IPv4 subnet's network and broadcast
 * addresses (for /30 and shorter), sorted and merged; *edges says which
 * of the two the ranges held as sent (CHANGE_POOL_*).  Their addresses
 * must not number more than max_addresses.  The caller owns *out.
 */
int	fields_pools(const char *field, const json_t *value,
	    const struct ip_prefix *cidr, uint64_t max_addresses,
	    struct pool_range **out, size_t *count, unsigned *edges,
	    char *err, size_t errlen);
int	fields_pools_value(const char *field, const struct fields_value *value,
	    const struct ip_prefix *cidr, uint64_t max_addresses,
	    struct pool_range **out, size_t *count, unsigned *edges,
	    char *err, size_t errlen);

/*
 * Splits a mark id, "address" or "vrf/address", into its vrf (the caller
 * owns *vrf) and address.
 */
int	fields_mark_key(const char *field, const void *bytes, size_t len,
	    char **vrf, struct ip_addr *ip, char *err, size_t errlen);

/*
 * The payload of a Kafka Connect {"schema": ..., "payload": ...} wrapper
 * (an object with exactly those two members), or value itself.
 */
json_t	*fields_unwrap(json_t *value);

/*
 * An entity id from a Kafka key: JSON such as {"id": 5} (column names the
 * member, a schema wrapper is allowed), a JSON string or integer, or
 * else, when the key is not JSON, its bytes as they are (see
 * fields_id_bytes).  Other JSON (true, 1.5, 1e2, null, arrays) is
 * refused.  The caller owns *out.
 */
int	fields_key_id(const char *field, const void *key, size_t len,
	    const char *column, char **out, char *err, size_t errlen);

/*
 * The canonical id of a mark: "vrf/address", or the address alone in the
 * default vrf; NULL when out of memory.  The caller owns the result.
 */
char	*fields_mark_id(const char *vrf, const struct ip_addr *ip);

/*
 * A mark's Kafka key: a mark id written exactly as fields_mark_id()
 * writes it, so that one mark is one key to Kafka's partitioner and
 * compaction.  On success the caller owns *vrf and *id.
 */
int	fields_mark_kafka_key(const void *bytes, size_t len, char **vrf,
	    struct ip_addr *ip, char **id, char *err, size_t errlen);

#endif
