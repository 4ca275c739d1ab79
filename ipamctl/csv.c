/* A CSV reader (RFC 4180): quotes, embedded commas and line ends, CRLF, BOM. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipamctl/csv.h"
#include "ipamctl/url.h"

/* Where the reader is: the text, the offset, its line and column. */
struct csv_reader {
	const char	*text;
	size_t		 length;
	size_t		 offset;
	unsigned	 line;
	unsigned	 column;	/* of text[offset], from 1 */
	char		*error;
	size_t		 error_size;
};

/* Steps over one byte, keeping line and column. */
static void
csv_advance(struct csv_reader *reader)
{
	unsigned char c = reader->text[reader->offset++];

	if (c == '\n' || (c == '\r' && (reader->offset >= reader->length ||
	    reader->text[reader->offset] != '\n'))) {
		reader->line++;
		reader->column = 1;
	} else if ((c & 0xc0) != 0x80 && c != '\r') {
		reader->column++;
	}
}

/* Says what is wrong where; returns -1. */
static int
csv_fail(struct csv_reader *reader, unsigned line, unsigned column,
    const char *what)
{
	snprintf(reader->error, reader->error_size, "line %u, column %u: %s",
	    line, column, what);
	return -1;
}

/* Whether the reader stands at a line end (LF, CR or CRLF). */
static bool
csv_at_line_end(const struct csv_reader *reader)
{
	char c = reader->text[reader->offset];

	return c == '\n' || c == '\r';
}

/* Steps over a line end: CRLF counts as one. */
static void
csv_skip_line_end(struct csv_reader *reader)
{
	if (reader->text[reader->offset] == '\r' &&
	    reader->offset + 1 < reader->length &&
	    reader->text[reader->offset + 1] == '\n')
		reader->offset++;
	csv_advance(reader);
}

/* Reads one field (emptied first); stops at ',', a line end or the end. */
static int
csv_read_field(struct csv_reader *reader, struct url_buffer *field)
{
	unsigned	line = reader->line, column = reader->column;

	url_append(field, "", 0);
	if (field->text == NULL)
		return csv_fail(reader, line, column, "out of memory");
	field->length = 0;
	field->text[0] = '\0';
	if (reader->offset < reader->length &&
	    reader->text[reader->offset] == '"') {
		csv_advance(reader);
		for (;;) {
			if (reader->offset >= reader->length)
				return csv_fail(reader, line, column,
				    "a quoted field is not closed");
			if (reader->text[reader->offset] == '"') {
				if (reader->offset + 1 < reader->length &&
				    reader->text[reader->offset + 1] == '"') {
					url_append(field, "\"", 1);
					csv_advance(reader);
					csv_advance(reader);
					continue;
				}
				csv_advance(reader);
				break;
			}
			if (reader->text[reader->offset] == '\0')
				return csv_fail(reader, reader->line,
				    reader->column, "a NUL byte");
			url_append(field, &reader->text[reader->offset], 1);
			csv_advance(reader);
		}
		if (reader->offset < reader->length &&
		    reader->text[reader->offset] != ',' &&
		    !csv_at_line_end(reader))
			return csv_fail(reader, reader->line, reader->column,
			    "text after the closing quote of a field "
			    "(a quote inside a field is written \"\")");
		return field->failed ? csv_fail(reader, line, column,
		    "out of memory") : 0;
	}
	while (reader->offset < reader->length &&
	    reader->text[reader->offset] != ',' && !csv_at_line_end(reader)) {
		char c = reader->text[reader->offset];

		if (c == '"')
			return csv_fail(reader, reader->line, reader->column,
			    "a quote inside a field that does not start "
			    "with one (quote the whole field)");
		if (c == '\0')
			return csv_fail(reader, reader->line, reader->column,
			    "a NUL byte");
		url_append(field, &reader->text[reader->offset], 1);
		csv_advance(reader);
	}
	return field->failed ? csv_fail(reader, line, column,
	    "out of memory") : 0;
}

/* Appends a field to a record; returns 0 or -1. */
static int
csv_record_push(struct csv_record *record, const char *text)
{
	char	**grown, *copy;

	copy = strdup(text);
	if (copy == NULL)
		return -1;
	grown = realloc(record->fields, (record->count + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(copy);
		return -1;
	}
	grown[record->count++] = copy;
	record->fields = grown;
	return 0;
}

/* Frees a record's fields. */
static void
csv_record_free(struct csv_record *record)
{
	for (size_t i = 0; i < record->count; i++)
		free(record->fields[i]);
	free(record->fields);
	memset(record, 0, sizeof(*record));
}

/* Appends a record to the file's list, taking it over; 0 or -1. */
static int
csv_push(struct csv *csv, struct csv_record *record)
{
	struct csv_record	*grown;

	grown = realloc(csv->records, (csv->count + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	grown[csv->count++] = *record;
	csv->records = grown;
	memset(record, 0, sizeof(*record));
	return 0;
}

/* Parses CSV text into records. */
int
csv_parse(const char *text, size_t length, struct csv *csv, char *error,
    size_t error_size)
{
	struct csv_reader	 reader = { text, length, 0, 1, 1, error,
				    error_size };
	struct csv_record	 record = { 0 };
	struct url_buffer	 field = { 0 };

	memset(csv, 0, sizeof(*csv));
	if (length >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		reader.offset = 3;
	while (reader.offset < length) {
		/* An empty line is no record. */
		if (csv_at_line_end(&reader)) {
			csv_skip_line_end(&reader);
			continue;
		}
		record.line = reader.line;
		for (;;) {
			unsigned line = reader.line, column = reader.column;

			if (csv_read_field(&reader, &field) == -1)
				goto fail;
			if (csv_record_push(&record, field.text) == -1) {
				csv_fail(&reader, line, column, "out of memory");
				goto fail;
			}
			if (reader.offset < length &&
			    text[reader.offset] == ',') {
				csv_advance(&reader);
				continue;
			}
			break;
		}
		if (reader.offset < length)
			csv_skip_line_end(&reader);
		if (csv_push(csv, &record) == -1) {
			csv_fail(&reader, record.line, 1, "out of memory");
			goto fail;
		}
	}
	url_buffer_free(&field);
	return 0;
fail:
	url_buffer_free(&field);
	csv_record_free(&record);
	csv_free(csv);
	return -1;
}

/* Frees every record of a parsed file. */
void
csv_free(struct csv *csv)
{
	for (size_t i = 0; i < csv->count; i++)
		csv_record_free(&csv->records[i]);
	free(csv->records);
	memset(csv, 0, sizeof(*csv));
}
