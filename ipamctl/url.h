/* Paths and query strings of API requests, percent-encoded. */
#ifndef IPAMCTL_URL_H
#define IPAMCTL_URL_H

#include <stdbool.h>
#include <stddef.h>

/* A growing string; text is NUL-terminated, or NULL when nothing was added. */
struct url_buffer {
	char	*text;
	size_t	 length;
	size_t	 size;
	bool	 failed;	/* an allocation failed; the text is incomplete */
};

/* Appends length bytes of text. */
void	 url_append(struct url_buffer *buffer, const char *text, size_t length);

/* Appends a NUL-terminated string. */
void	 url_append_string(struct url_buffer *buffer, const char *text);

/*
 * Appends text percent-encoded for one path segment or query value:
 * everything but letters, digits and -._~ (and ':' in a path, so that an
 * IPv6 address stays readable in logs) becomes %XX.
 */
void	 url_append_encoded(struct url_buffer *buffer, const char *text,
	    bool in_path);

/* Appends "?name=value" or "&name=value", the value encoded; NULL skips. */
void	 url_append_query(struct url_buffer *buffer, const char *name,
	    const char *value);

/*
 * Hands the text over to the caller (who frees it), or returns NULL when
 * an allocation failed; the buffer is empty after.
 */
char	*url_take(struct url_buffer *buffer);

/* Frees what the buffer holds. */
void	 url_buffer_free(struct url_buffer *buffer);

/* The path segment of a vrf: "-" for the default one (NULL or ""). */
const char *url_vrf_segment(const char *vrf);

#endif
