/* The API's JSON as tables and lines for a person. */
#ifndef IPAMCTL_RENDER_H
#define IPAMCTL_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/*
 * What an address without a row is: a row is there while it has a subnet
 * and a pool, a server or a mark names it (docs/STATE.md).
 */
#define RENDER_NO_ROW	"no address row (the address is in no subnet, or in " \
    "no pool and named by no server or mark)"

/* Address rows (GET /addresses items) as a table. */
void	 render_addresses(json_t *items, FILE *out, bool colour);

/* GET /addresses/{vrf}/{ip}: the row, holders, mark, conflicts, history. */
void	 render_address_detail(json_t *detail, FILE *out, bool colour);

/* One address row on one line: address, status, description, holder. */
void	 render_row_line(json_t *row, FILE *out, bool colour);

/* Subnets with their stats, as a table. */
void	 render_subnets(json_t *items, FILE *out, bool colour);

/* Conflicts as a table. */
void	 render_conflicts(json_t *items, FILE *out, bool colour);

/* Dead letters as a table. */
void	 render_dead_letters(json_t *items, FILE *out, bool colour);

/* GET /unplaced: servers and marks in no subnet. */
void	 render_unplaced(json_t *unplaced, FILE *out, bool colour);

/* A JSON object as "key  value" lines, nested objects with dotted keys. */
void	 render_key_values(json_t *object, FILE *out);

/*
 * The answer of POST /import: a count per kind once applied; for a dry
 * run, per kind what would be created, updated or left, and each change.
 */
void	 render_import(json_t *result, bool dry_run, FILE *out, bool colour);

/*
 * A JSON value as cell text: a string as it is, a number in decimal,
 * true/false as yes/no, anything else (null, absent) as NULL.  buffer
 * holds the text of numbers.
 */
const char *render_text(json_t *value, char *buffer, size_t size);

#endif
