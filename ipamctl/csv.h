/* A CSV reader (RFC 4180): quotes, embedded commas and line ends, CRLF, BOM. */
#ifndef IPAMCTL_CSV_H
#define IPAMCTL_CSV_H

#include <stddef.h>

/* One record: its fields (owned) and the line it starts on (from 1). */
struct csv_record {
	char		**fields;
	size_t		  count;
	unsigned	  line;
};

/* A whole file's records; the first is the header when there is one. */
struct csv {
	struct csv_record	*records;
	size_t			 count;
};

/*
 * Parses length bytes of text.  Fields are separated by commas; a field
 * in double quotes may hold commas, line ends and "" for a quote.  Lines
 * end with LF, CRLF or CR; empty lines are skipped; a UTF-8 byte order
 * mark at the start is dropped.  Returns 0, or -1 with "line L, column C:
 * what" in error (C counts characters from 1).
 */
int	 csv_parse(const char *text, size_t length, struct csv *csv,
	    char *error, size_t error_size);

/* Frees every record. */
void	 csv_free(struct csv *csv);

#endif
