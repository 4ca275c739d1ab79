/* JSON text written as it goes, for the batch's argument: no tree. */
#ifndef IPAM_CONSUMERS_BATCH_JSON_H
#define IPAM_CONSUMERS_BATCH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/*
 * A JSON text being written.  Every member and element is followed by a
 * comma, which closing its object or array takes back, so a writer never
 * has to know whether it writes the first.  A member whose name is NULL
 * is an array element.
 */
struct batch_text {
	char	*buf;
	size_t	 len;
	size_t	 capacity;
};

/* Sets up an empty text with room for capacity bytes. */
void	batch_text_init(struct batch_text *text, size_t capacity);

/* Hands the text over, NUL-terminated: the caller frees it. */
char	*batch_text_finish(struct batch_text *text);

/* Frees the text. */
void	batch_text_free(struct batch_text *text);

/* Opens an object ('{') or array ('[') as a member or an element. */
void	batch_text_open(struct batch_text *text, const char *name,
	    char bracket);

/* Closes the object ('}') or array (']') opened last. */
void	batch_text_close(struct batch_text *text, char bracket);

/*
 * A string member, null when value is NULL.  A value that is not valid
 * UTF-8 writes no member at all, as jansson's json_string() refused it.
 */
void	batch_text_string(struct batch_text *text, const char *name,
	    const char *value);

/*
 * Writes the name of the next member, escaped, when it comes from outside
 * (a topic); a name that is not valid UTF-8 writes nothing and returns
 * false, and the caller leaves the member out.
 */
bool	batch_text_key(struct batch_text *text, const char *key);

/* An integer member. */
void	batch_text_int(struct batch_text *text, const char *name,
	    int64_t value);

/* A true or false member. */
void	batch_text_bool(struct batch_text *text, const char *name,
	    bool value);

/* A null member. */
void	batch_text_null(struct batch_text *text, const char *name);

/* An address member in text form, or null when not present. */
void	batch_text_addr(struct batch_text *text, const char *name,
	    bool present, const struct ip_addr *addr);

/* A prefix member in text form. */
void	batch_text_prefix(struct batch_text *text, const char *name,
	    const struct ip_prefix *prefix);

/* Bytes as a lowercase hex string member. */
void	batch_text_hex(struct batch_text *text, const char *name,
	    const uint8_t *bytes, size_t len);

/* Appends the members or elements another text holds. */
void	batch_text_append(struct batch_text *text,
	    const struct batch_text *items);

/* A member whose value is JSON text already (not checked here). */
void	batch_text_json(struct batch_text *text, const char *name,
	    const char *json);

#endif
