/* The old app's servers and subnets tables (CSV, JSON) as an import's body. */
#ifndef IPAMCTL_IMPORT_H
#define IPAMCTL_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Which table a file holds. */
enum import_kind {
	IMPORT_SERVERS,
	IMPORT_SUBNETS,
};

/*
 * Converts a table's text into a JSON array of entities as the import
 * body has them.  The text is JSON when its first character (after a
 * byte order mark and blanks) is '[' or '{', CSV otherwise.
 *
 * CSV: a header line names the columns (any order, any case); servers
 * need id and hostname, subnets id and cidr; columns of neither table
 * are named in a warning on warnings (NULL: none) and left out.
 * static_ip_pools is a JSON array, or ranges and CIDRs separated by ';'.
 * JSON: an array of objects with those fields, the same under a
 * "servers" or "subnets" key, or Django dumpdata rows (pk, fields).
 *
 * Empty optional fields are left out; ids become strings; ping accepts
 * true/false, yes/no, t/f, 1/0.  file_name names the file in errors.
 * Returns a new array the caller owns, or NULL with "FILE: line L,
 * column C: what" (CSV) or "FILE: item N: what" (JSON) in error.
 */
json_t	*import_convert(enum import_kind kind, const char *file_name,
	    const char *text, size_t length, FILE *warnings, char *error,
	    size_t error_size);

/*
 * The request body: {"servers": [...], "subnets": [...], "dry_run": b}.
 * Takes over both arrays (NULL: an empty one).  Returns NULL when out of
 * memory.
 */
json_t	*import_body(json_t *servers, json_t *subnets, bool dry_run);

#endif
