/* Paths and query strings of API requests, percent-encoded. */
#include <stdlib.h>
#include <string.h>

#include "ipamctl/url.h"

/* Appends bytes to a buffer. */
void
url_append(struct url_buffer *buffer, const char *text, size_t length)
{
	char	*grown;
	size_t	 size;

	if (buffer->failed)
		return;
	if (buffer->length + length + 1 > buffer->size) {
		size = buffer->size != 0 ? buffer->size : 64;
		while (size < buffer->length + length + 1)
			size *= 2;
		grown = realloc(buffer->text, size);
		if (grown == NULL) {
			buffer->failed = true;
			return;
		}
		buffer->text = grown;
		buffer->size = size;
	}
	memcpy(buffer->text + buffer->length, text, length);
	buffer->length += length;
	buffer->text[buffer->length] = '\0';
}

/* Appends a string to a buffer. */
void
url_append_string(struct url_buffer *buffer, const char *text)
{
	url_append(buffer, text, strlen(text));
}

/*
 * Appends text percent-encoded.  A path segment that is only "." or ".."
 * (a vrf or subnet may be named so) is written %2E or %2E%2E: as dots,
 * curl would take it for a step of the path and remove it.
 */
void
url_append_encoded(struct url_buffer *buffer, const char *text, bool in_path)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			 escaped[3];

	if (in_path && (strcmp(text, ".") == 0 || strcmp(text, "..") == 0)) {
		url_append_string(buffer, text[1] == '\0' ? "%2E" : "%2E%2E");
		return;
	}
	for (const unsigned char *c = (const unsigned char *)text; *c != '\0';
	    c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~", *c) != NULL ||
		    (in_path && *c == ':')) {
			url_append(buffer, (const char *)c, 1);
			continue;
		}
		escaped[0] = '%';
		escaped[1] = hex[*c >> 4];
		escaped[2] = hex[*c & 0x0f];
		url_append(buffer, escaped, 3);
	}
}

/* Appends one query parameter, its value encoded. */
void
url_append_query(struct url_buffer *buffer, const char *name,
    const char *value)
{
	if (value == NULL)
		return;
	url_append_string(buffer,
	    buffer->text != NULL && strchr(buffer->text, '?') != NULL ?
	    "&" : "?");
	url_append_string(buffer, name);
	url_append_string(buffer, "=");
	url_append_encoded(buffer, value, false);
}

/* Hands a buffer's text over to the caller. */
char *
url_take(struct url_buffer *buffer)
{
	char	*text = buffer->text;

	if (buffer->failed) {
		free(text);
		text = NULL;
	}
	buffer->text = NULL;
	buffer->length = buffer->size = 0;
	buffer->failed = false;
	return text;
}

/* Frees a buffer's text. */
void
url_buffer_free(struct url_buffer *buffer)
{
	free(url_take(buffer));
}

/* The path segment of a vrf. */
const char *
url_vrf_segment(const char *vrf)
{
	return vrf == NULL || vrf[0] == '\0' ? "-" : vrf;
}
