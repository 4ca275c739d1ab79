/* Aligned text tables for a person; status words coloured on a terminal. */
#ifndef IPAMCTL_TABLE_H
#define IPAMCTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How a cell is shown on a colour terminal. */
enum table_style {
	TABLE_STYLE_PLAIN,
	TABLE_STYLE_GREEN,
	TABLE_STYLE_BLUE,
	TABLE_STYLE_YELLOW,
	TABLE_STYLE_RED,
};

/* One cell: its text (owned by the table) and its style. */
struct table_cell {
	char			*text;
	enum table_style	 style;
};

/* A table being filled: headers, then rows of exactly that many cells. */
struct table {
	size_t			 columns;
	char			**headers;
	bool			*right_aligned;
	struct table_cell	*cells;		/* rows * columns */
	size_t			 rows;
	size_t			 capacity;	/* rows the cells have room for */
};

/* Sets a table up with copies of its headers; returns 0 or -1. */
int	 table_init(struct table *table, const char *const *headers,
	    size_t columns);

/* Numbers read better aligned to the right. */
void	 table_align_right(struct table *table, size_t column);

/*
 * Adds a row of `columns` cells, copied; a NULL or empty cell shows as
 * "-", and control characters as spaces or '?', so that no value can
 * move the cursor or colour the terminal.  Returns 0 or -1.
 */
int	 table_add_row(struct table *table, const char *const *cells);

/* Styles one cell of the last row added. */
void	 table_style_last(struct table *table, size_t column,
	    enum table_style style);

/*
 * Writes the table: a header line and the rows, columns two spaces apart
 * and padded to their widest cell (counted in characters, not bytes), no
 * blanks at a line's end.  colour adds ANSI colours and a bold header.
 */
void	 table_print(const struct table *table, FILE *out, bool colour);

/* Frees every cell and header. */
void	 table_free(struct table *table);

/* The style of an address status word. */
enum table_style table_status_style(const char *status);

/* The ANSI sequence that starts a style ("" for plain). */
const char *table_style_start(enum table_style style);

/* How many characters a UTF-8 string shows (its bytes but continuations). */
size_t	 table_text_width(const char *text);

#endif
