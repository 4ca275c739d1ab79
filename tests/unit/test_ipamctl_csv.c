/* Unit tests of ipamctl's CSV reader: quotes, commas, line ends, a BOM, errors. */
#include <string.h>

#include "ipamctl/csv.h"
#include "test_support.h"

/* A text and the records it must give, fields joined by '|', records by '/'. */
struct csv_row {
	const char	*name;
	const char	*text;
	const char	*records;	/* NULL: the parse must fail */
	const char	*lines;		/* each record's first line, "1 2 4" */
	const char	*error;		/* the error, when it fails */
};

static const struct csv_row csv_rows[] = {
	{ "plain", "id,name\n1,a\n2,b\n", "id|name/1|a/2|b", "1 2 3", NULL },
	{ "no final line end", "id,name\n1,a", "id|name/1|a", "1 2", NULL },
	{ "CRLF", "id,name\r\n1,a\r\n2,b\r\n", "id|name/1|a/2|b", "1 2 3",
	    NULL },
	{ "bare CR", "id,name\r1,a\r", "id|name/1|a", "1 2", NULL },
	{ "BOM", "\xef\xbb\xbfid,name\n1,a\n", "id|name/1|a", "1 2", NULL },
	{ "quoted comma", "id,maker\n1,\"Dell, Inc.\"\n", "id|maker/1|Dell, Inc.",
	    "1 2", NULL },
	{ "doubled quote", "a\n\"say \"\"hi\"\"\"\n", "a/say \"hi\"", "1 2",
	    NULL },
	{ "line end inside quotes", "a,b\n\"one\r\ntwo\",x\n3,y\n",
	    "a|b/one\r\ntwo|x/3|y", "1 2 4", NULL },
	{ "empty fields", "a,b,c\n,,\n", "a|b|c/||", "1 2", NULL },
	{ "empty quoted field", "a,b\n\"\",x\n", "a|b/|x", "1 2", NULL },
	{ "blank lines skipped", "a\n\n1\r\n\r\n2\n", "a/1/2", "1 3 5", NULL },
	{ "empty text", "", "", "", NULL },
	{ "only a BOM", "\xef\xbb\xbf", "", "", NULL },
	{ "trailing comma", "a,b\n1,\n", "a|b/1|", "1 2", NULL },
	{ "UTF-8 kept", "h\nr\xc3\xa9seau\n", "h/r\xc3\xa9seau", "1 2", NULL },
	{ "unclosed quote", "a,b\n1,\"open\n2,x\n", NULL, NULL,
	    "line 2, column 3: a quoted field is not closed" },
	{ "text after a closing quote", "a,b\n1,\"x\"y\n", NULL, NULL,
	    "line 2, column 6: text after the closing quote of a field "
	    "(a quote inside a field is written \"\")" },
	{ "quote inside a bare field", "a,b\n1,ab\"c\"\n", NULL, NULL,
	    "line 2, column 5: a quote inside a field that does not start "
	    "with one (quote the whole field)" },
	{ "columns count characters, not bytes", "a,b\n\xc3\xa9\xc3\xa9,x\"\n",
	    NULL, NULL, "line 2, column 5: a quote inside a field that does "
	    "not start with one (quote the whole field)" },
	{ "error after a CRLF quoted line end", "a\r\n\"x\r\ny\"z\r\n", NULL,
	    NULL, "line 3, column 3: text after the closing quote of a field "
	    "(a quote inside a field is written \"\")" },
};

/* Joins the parsed records as the rows write them. */
static void
csv_join(const struct csv *csv, char *records, size_t size, char *lines,
    size_t lines_size)
{
	size_t	used = 0, lines_used = 0;

	records[0] = lines[0] = '\0';
	for (size_t r = 0; r < csv->count; r++) {
		for (size_t f = 0; f < csv->records[r].count; f++)
			used += snprintf(records + used, size - used, "%s%s",
			    f > 0 ? "|" : r > 0 ? "/" : "",
			    csv->records[r].fields[f]);
		lines_used += snprintf(lines + lines_used, lines_size -
		    lines_used, "%s%u", r > 0 ? " " : "", csv->records[r].line);
	}
}

/* Each row parses to its records, or fails with its error. */
static void
test_csv_row(void **state)
{
	const struct csv_row	*row = *state;
	struct csv		 csv;
	char			 error[256] = "", records[512], lines[64];
	int			 rc;

	rc = csv_parse(row->text, strlen(row->text), &csv, error,
	    sizeof(error));
	if (row->records == NULL) {
		assert_int_equal(rc, -1);
		assert_string_equal(error, row->error);
		assert_int_equal(csv.count, 0);
		return;
	}
	assert_int_equal(rc, 0);
	csv_join(&csv, records, sizeof(records), lines, sizeof(lines));
	assert_string_equal(records, row->records);
	assert_string_equal(lines, row->lines);
	csv_free(&csv);
}

/* A NUL byte is refused where it is, inside quotes or not. */
static void
test_csv_nul_byte(void **state)
{
	static const char	text[] = "a,b\n1,x\0y\n";
	struct csv		csv;
	char			error[256];

	assert_int_equal(csv_parse(text, sizeof(text) - 1, &csv, error,
	    sizeof(error)), -1);
	assert_string_equal(error, "line 2, column 4: a NUL byte");
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_nul_byte),
	};
	int failed;

	failed = support_run_rows("csv", test_csv_row, csv_rows,
	    sizeof(csv_rows[0]), ROWS(csv_rows));
	return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
