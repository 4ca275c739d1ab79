/* Aligned text tables for a person; status words coloured on a terminal. */
#include <stdlib.h>
#include <string.h>

#include "ipamctl/table.h"

/* Sets a table up with its headers. */
int
table_init(struct table *table, const char *const *headers, size_t columns)
{
	memset(table, 0, sizeof(*table));
	table->columns = columns;
	table->headers = calloc(columns, sizeof(*table->headers));
	table->right_aligned = calloc(columns, sizeof(*table->right_aligned));
	if (table->headers == NULL || table->right_aligned == NULL)
		goto fail;
	for (size_t i = 0; i < columns; i++) {
		table->headers[i] = strdup(headers[i]);
		if (table->headers[i] == NULL)
			goto fail;
	}
	return 0;
fail:
	table_free(table);
	return -1;
}

/* Aligns a column to the right. */
void
table_align_right(struct table *table, size_t column)
{
	if (column < table->columns)
		table->right_aligned[column] = true;
}

/* A copy of a cell's text, safe to write to a terminal. */
static char *
table_clean_copy(const char *text)
{
	char		*copy;
	unsigned char	*to;

	if (text == NULL || text[0] == '\0')
		text = "-";
	copy = strdup(text);
	if (copy == NULL)
		return NULL;
	/* C1 controls (U+0080-U+009F, 0xc2 0x80-0x9f) become one '?'. */
	to = (unsigned char *)copy;
	for (const unsigned char *c = to; *c != '\0'; c++) {
		if (*c == '\t' || *c == '\n' || *c == '\r')
			*to++ = ' ';
		else if (*c < 0x20 || *c == 0x7f)
			*to++ = '?';
		else if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
			*to++ = '?';
			c++;
		} else
			*to++ = *c;
	}
	*to = '\0';
	return copy;
}

/* Adds a row of cells, copied and made safe for a terminal. */
int
table_add_row(struct table *table, const char *const *cells)
{
	struct table_cell	*grown, *row;

	if (table->rows == table->capacity) {
		size_t capacity = table->capacity != 0 ? table->capacity * 2 : 16;

		grown = realloc(table->cells,
		    capacity * table->columns * sizeof(*grown));
		if (grown == NULL)
			return -1;
		table->cells = grown;
		table->capacity = capacity;
	}
	row = &table->cells[table->rows * table->columns];
	for (size_t i = 0; i < table->columns; i++) {
		row[i].style = TABLE_STYLE_PLAIN;
		row[i].text = table_clean_copy(cells[i]);
		if (row[i].text == NULL) {
			while (i-- > 0)
				free(row[i].text);
			return -1;
		}
	}
	table->rows++;
	return 0;
}

/* Styles one cell of the last row. */
void
table_style_last(struct table *table, size_t column, enum table_style style)
{
	if (table->rows > 0 && column < table->columns)
		table->cells[(table->rows - 1) * table->columns + column].style =
		    style;
}

/* How many characters a UTF-8 text shows. */
size_t
table_text_width(const char *text)
{
	size_t	width = 0;

	for (const unsigned char *c = (const unsigned char *)text; *c != '\0';
	    c++)
		if ((*c & 0xc0) != 0x80)
			width++;
	return width;
}

/* The ANSI sequence that starts a style. */
const char *
table_style_start(enum table_style style)
{
	switch (style) {
	case TABLE_STYLE_GREEN:
		return "\033[32m";
	case TABLE_STYLE_BLUE:
		return "\033[34m";
	case TABLE_STYLE_YELLOW:
		return "\033[33m";
	case TABLE_STYLE_RED:
		return "\033[31m";
	case TABLE_STYLE_PLAIN:
		break;
	}
	return "";
}

/* Writes one cell padded to width; the last column gets no padding. */
static void
table_print_cell(FILE *out, const char *text, enum table_style style,
    size_t width, bool right, bool last, bool colour)
{
	size_t	pad = width - table_text_width(text);
	bool	styled = colour && style != TABLE_STYLE_PLAIN;

	if (right)
		fprintf(out, "%*s", (int)pad, "");
	fprintf(out, "%s%s%s", styled ? table_style_start(style) : "", text,
	    styled ? "\033[0m" : "");
	if (!right && !last)
		fprintf(out, "%*s", (int)pad, "");
}

/* Writes a table with its columns aligned. */
void
table_print(const struct table *table, FILE *out, bool colour)
{
	size_t	*widths;

	widths = calloc(table->columns != 0 ? table->columns : 1,
	    sizeof(*widths));
	if (widths == NULL)
		return;
	for (size_t c = 0; c < table->columns; c++) {
		widths[c] = table_text_width(table->headers[c]);
		for (size_t r = 0; r < table->rows; r++) {
			size_t w = table_text_width(
			    table->cells[r * table->columns + c].text);

			if (w > widths[c])
				widths[c] = w;
		}
	}
	if (colour)
		fputs("\033[1m", out);
	for (size_t c = 0; c < table->columns; c++) {
		if (c > 0)
			fputs("  ", out);
		table_print_cell(out, table->headers[c], TABLE_STYLE_PLAIN,
		    widths[c], table->right_aligned[c],
		    c + 1 == table->columns, false);
	}
	fputs(colour ? "\033[0m\n" : "\n", out);
	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			const struct table_cell *cell =
			    &table->cells[r * table->columns + c];

			if (c > 0)
				fputs("  ", out);
			table_print_cell(out, cell->text, cell->style, widths[c],
			    table->right_aligned[c], c + 1 == table->columns,
			    colour);
		}
		fputc('\n', out);
	}
	free(widths);
}

/* Frees a table's cells and headers. */
void
table_free(struct table *table)
{
	for (size_t i = 0; i < table->rows * table->columns; i++)
		free(table->cells[i].text);
	for (size_t i = 0; table->headers != NULL && i < table->columns; i++)
		free(table->headers[i]);
	free(table->headers);
	free(table->right_aligned);
	free(table->cells);
	memset(table, 0, sizeof(*table));
}

/* The style of an address status word. */
enum table_style
table_status_style(const char *status)
{
	if (status == NULL)
		return TABLE_STYLE_PLAIN;
	if (strcmp(status, "available") == 0)
		return TABLE_STYLE_GREEN;
	if (strcmp(status, "allocated") == 0)
		return TABLE_STYLE_BLUE;
	if (strcmp(status, "reserved") == 0)
		return TABLE_STYLE_YELLOW;
	if (strcmp(status, "quarantine") == 0)
		return TABLE_STYLE_RED;
	return TABLE_STYLE_PLAIN;
}
