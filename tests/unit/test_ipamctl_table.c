/* Unit tests of ipamctl's tables and of how API answers are shown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipamctl/client.h"
#include "ipamctl/render.h"
#include "ipamctl/table.h"
#include "ipamctl/url.h"
#include "test_support.h"

/* Captures what a printer writes. */
struct capture {
	char	*text;
	size_t	 size;
	FILE	*stream;
};

static void
capture_open(struct capture *capture)
{
	capture->text = NULL;
	capture->size = 0;
	capture->stream = open_memstream(&capture->text, &capture->size);
	assert_non_null(capture->stream);
}

/* Closes the stream; the text stays until capture_free. */
static const char *
capture_close(struct capture *capture)
{
	fclose(capture->stream);
	return capture->text;
}

static void
capture_free(struct capture *capture)
{
	free(capture->text);
}

/* Columns line up on the widest cell; numbers go right; no trailing blanks. */
static void
test_table_alignment(void **state)
{
	static const char *const headers[] = { "ADDRESS", "STATUS", "N", "NOTE" };
	static const char *const row1[] = { "10.0.0.5", "reserved", "7", "gw" };
	static const char *const row2[] = { "10.0.0.10", "available", "123",
	    NULL };
	struct table	table;
	struct capture	out;

	assert_int_equal(table_init(&table, headers, 4), 0);
	table_align_right(&table, 2);
	assert_int_equal(table_add_row(&table, row1), 0);
	assert_int_equal(table_add_row(&table, row2), 0);
	capture_open(&out);
	table_print(&table, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "ADDRESS    STATUS       N  NOTE\n"
	    "10.0.0.5   reserved     7  gw\n"
	    "10.0.0.10  available  123  -\n");
	capture_free(&out);
	table_free(&table);
}

/* Width counts characters: a UTF-8 cell pads like its letters, not bytes. */
static void
test_table_utf8_width(void **state)
{
	static const char *const headers[] = { "NAME", "X" };
	static const char *const row1[] = { "r\xc3\xa9seau", "1" };
	static const char *const row2[] = { "lan", "2" };
	struct table	table;
	struct capture	out;

	assert_int_equal(table_text_width("r\xc3\xa9seau"), 6);
	table_init(&table, headers, 2);
	table_add_row(&table, row1);
	table_add_row(&table, row2);
	capture_open(&out);
	table_print(&table, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "NAME    X\n"
	    "r\xc3\xa9seau  1\n"
	    "lan     2\n");
	capture_free(&out);
	table_free(&table);
}

/* Control characters in a value cannot reach the terminal. */
static void
test_table_control_characters(void **state)
{
	static const char *const headers[] = { "DESCRIPTION" };
	static const char *const row[] = {
	    "two\nlines\t\033[31mred \xc2\x9b[2Jc1 \xc2\xa0nbsp" };
	struct table	table;
	struct capture	out;

	table_init(&table, headers, 1);
	table_add_row(&table, row);
	capture_open(&out);
	table_print(&table, out.stream, true);
	assert_string_equal(capture_close(&out),
	    "\033[1mDESCRIPTION\033[0m\n"
	    "two lines ?[31mred ?[2Jc1 \xc2\xa0nbsp\n");
	capture_free(&out);
	table_free(&table);
}

/* With colour, status words are coloured and the padding stays right. */
static void
test_table_colour(void **state)
{
	static const char *const headers[] = { "STATUS", "HOST" };
	static const char *const row1[] = { "quarantine", "a" };
	static const char *const row2[] = { "available", "b" };
	struct table	table;
	struct capture	out;

	table_init(&table, headers, 2);
	table_add_row(&table, row1);
	table_style_last(&table, 0, table_status_style("quarantine"));
	table_add_row(&table, row2);
	table_style_last(&table, 0, table_status_style("available"));
	capture_open(&out);
	table_print(&table, out.stream, true);
	assert_string_equal(capture_close(&out),
	    "\033[1mSTATUS      HOST\033[0m\n"
	    "\033[31mquarantine\033[0m  a\n"
	    "\033[32mavailable\033[0m   b\n");
	capture_free(&out);
	table_free(&table);
	assert_int_equal(table_status_style("reserved"), TABLE_STYLE_YELLOW);
	assert_int_equal(table_status_style("allocated"), TABLE_STYLE_BLUE);
	assert_int_equal(table_status_style("other"), TABLE_STYLE_PLAIN);
	assert_int_equal(table_status_style(NULL), TABLE_STYLE_PLAIN);
}

/* An empty table still has its header. */
static void
test_table_empty(void **state)
{
	static const char *const headers[] = { "A", "B" };
	struct table	table;
	struct capture	out;

	table_init(&table, headers, 2);
	capture_open(&out);
	table_print(&table, out.stream, false);
	assert_string_equal(capture_close(&out), "A  B\n");
	capture_free(&out);
	table_free(&table);
}

/* Address rows: the columns, yes/no for active, the vrf column only when used. */
static void
test_render_addresses(void **state)
{
	json_t		*items;
	struct capture	 out;

	items = json_loads("[{\"vrf\": \"\", \"ip_address\": \"192.168.1.10\","
	    " \"subnet_id\": \"lan\", \"status\": \"allocated\", \"ip_type\":"
	    " \"static\", \"active\": true, \"hostname\": \"web-1\","
	    " \"mac_address\": \"52:54:00:00:00:01\", \"description\": null},"
	    " {\"vrf\": \"\", \"ip_address\": \"192.168.1.11\", \"subnet_id\":"
	    " \"lan\", \"status\": \"reserved\", \"ip_type\": \"static\","
	    " \"active\": false, \"hostname\": null, \"mac_address\": null,"
	    " \"description\": \"office gateway\"}]", 0, NULL);
	assert_non_null(items);
	capture_open(&out);
	render_addresses(items, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "ADDRESS       STATUS     TYPE    ACTIVE  SUBNET  HOSTNAME  MAC"
	    "                DESCRIPTION\n"
	    "192.168.1.10  allocated  static  yes     lan     web-1     "
	    "52:54:00:00:00:01  -\n"
	    "192.168.1.11  reserved   static  no      lan     -         -"
	    "                  office gateway\n");
	capture_free(&out);

	json_object_set_new(json_array_get(items, 1), "vrf", json_string("blue"));
	capture_open(&out);
	render_addresses(items, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "ADDRESS       VRF   STATUS"));
	assert_non_null(strstr(out.text, "192.168.1.11  blue  reserved"));
	capture_free(&out);
	json_decref(items);
}

/* Subnets: the stats columns, utilisation as a percentage. */
static void
test_render_subnets(void **state)
{
	json_t		*items;
	struct capture	 out;

	items = json_loads("[{\"id\": \"lan\", \"vrf\": \"\", \"name\": \"LAN\","
	    " \"cidr\": \"192.168.1.0/24\", \"static_ip_pools\": [],"
	    " \"ping\": true, \"stats\": {\"pool_size\": 200, \"available\": 150,"
	    " \"allocated\": 40, \"reserved\": 9, \"quarantine\": 1,"
	    " \"active\": 38, \"utilisation\": 0.25}}]", 0, NULL);
	capture_open(&out);
	render_subnets(items, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "ID   NAME  CIDR            POOL  AVAILABLE  ALLOCATED  RESERVED"
	    "  QUARANTINE  ACTIVE   USED\n"
	    "lan  LAN   192.168.1.0/24   200        150         40         9"
	    "           1      38  25.0%\n");
	capture_free(&out);
	json_decref(items);
}

/* show: the row, the mark with its requester, holders, and the history's changes. */
static void
test_render_address_detail(void **state)
{
	json_t		*detail;
	struct capture	 out;

	detail = json_loads("{\"row\": {\"vrf\": \"\", \"ip_address\":"
	    " \"10.0.0.5\", \"status\": \"reserved\", \"description\": \"gw\","
	    " \"etag\": \"\\\"e1\\\"\"},"
	    " \"mark\": {\"status\": \"reserved\", \"description\": \"gw\","
	    " \"requested_by\": \"write:alice\", \"updated_at\":"
	    " \"2026-11-28T10:00:00Z\"},"
	    " \"holders\": [], \"conflicts\": [],"
	    " \"history\": [{\"changed_at\": \"2026-11-28T10:00:00Z\","
	    " \"action\": \"update\", \"before\": {\"status\": \"available\"},"
	    " \"after\": {\"status\": \"reserved\", \"description\": \"gw\"},"
	    " \"requested_by\": \"write:alice\", \"source_topic\": \"t.marks\","
	    " \"source_partition\": 0, \"source_offset\": 41}]}", 0, NULL);
	assert_non_null(detail);
	capture_open(&out);
	render_address_detail(detail, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "ip_address       10.0.0.5\n"));
	assert_non_null(strstr(out.text, "vrf              (default)\n"));
	assert_non_null(strstr(out.text, "status           reserved\n"));
	assert_non_null(strstr(out.text, "etag             \"e1\"\n"));
	assert_non_null(strstr(out.text, "\nmark: reserved \"gw\" by write:alice"
	    " at 2026-11-28T10:00:00Z\n"));
	assert_non_null(strstr(out.text, "\nholders: 0\n"));
	assert_non_null(strstr(out.text, "\nhistory (newest first): 1\n"
	    "CHANGED               ACTION  REQUESTED BY  CHANGE"));
	assert_non_null(strstr(out.text, "2026-11-28T10:00:00Z  update  "
	    "write:alice   status available -> reserved; description - -> gw  "
	    "t.marks/0@41\n"));
	capture_free(&out);

	/* An insert written for a run of pool addresses names the run. */
	json_array_append_new(json_object_get(detail, "history"), json_pack(
	    "{s:s, s:s, s:n, s:{s:s, s:s}, s:n, s:s, s:i, s:i, s:[s, s]}",
	    "changed_at", "2026-11-27T09:00:00Z", "action", "insert",
	    "before", "after", "status", "available", "ip_type", "static",
	    "requested_by", "source_topic", "t.subnets", "source_partition", 0,
	    "source_offset", 3, "run", "10.0.0.1", "10.0.0.200"));
	capture_open(&out);
	render_address_detail(detail, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "2026-11-27T09:00:00Z  insert  -  "));
	assert_non_null(strstr(out.text, "status - -> available; ip_type - -> "
	    "static (with 10.0.0.1-10.0.0.200)"));
	capture_free(&out);
	json_array_remove(json_object_get(detail, "history"), 1);

	/* A mark without a description says so by leaving it out. */
	json_object_set_new(json_object_get(detail, "mark"), "description",
	    json_null());
	capture_open(&out);
	render_address_detail(detail, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "\nmark: reserved by write:alice at "
	    "2026-11-28T10:00:00Z\n"));
	capture_free(&out);

	/*
	 * A description of several lines goes on under its value; on the
	 * mark's line it stays on that line.
	 */
	json_object_set_new(json_object_get(detail, "row"), "description",
	    json_string("rack 4\r\nport 12\nthird\tcol"));
	json_object_set_new(json_object_get(detail, "mark"), "description",
	    json_string("rack 4\r\nport 12"));
	capture_open(&out);
	render_address_detail(detail, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "\ndescription      rack 4\n"
	    "                 port 12\n"
	    "                 third col\nlast_seen_at"));
	assert_non_null(strstr(out.text, "\nmark: reserved \"rack 4 port 12\" "
	    "by write:alice"));
	capture_free(&out);

	/*
	 * An address with no row (a server in no subnet): said so, with the
	 * etag the detail gives for --if-match.
	 */
	json_object_set_new(detail, "row", json_null());
	json_object_set_new(detail, "etag", json_string("\"e-norow\""));
	capture_open(&out);
	render_address_detail(detail, out.stream, false);
	capture_close(&out);
	assert_non_null(strstr(out.text, "no address row (the address is in no "
	    "subnet, or in no pool and named by no server or mark)\n"
	    "etag             \"e-norow\"\n"));
	capture_free(&out);
	json_decref(detail);
}

/* A written row on one line, in the vrf when it has one. */
static void
test_render_row_line(void **state)
{
	json_t		*row;
	struct capture	 out;

	row = json_pack("{s:s, s:s, s:s, s:s}", "vrf", "blue", "ip_address",
	    "10.0.0.5", "status", "quarantine", "description", "abuse 4711");
	capture_open(&out);
	render_row_line(row, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "10.0.0.5 (vrf blue)  quarantine  \"abuse 4711\"\n");
	capture_free(&out);
	/* One line per row, whatever the description holds. */
	json_object_set_new(row, "description", json_string("two\nlines\x1b"));
	capture_open(&out);
	render_row_line(row, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "10.0.0.5 (vrf blue)  quarantine  \"two lines?\"\n");
	capture_free(&out);
	json_decref(row);
}

/* An import: counts per kind; a dry run lists the changes and their fields. */
static void
test_render_import(void **state)
{
	json_t		*result;
	struct capture	 out;

	result = json_loads("{\"servers\": {\"create\": 1, \"update\": 1,"
	    " \"unchanged\": 3, \"changes\": [{\"id\": \"7\", \"action\":"
	    " \"create\", \"fields\": [\"hostname\", \"ip_address\"]},"
	    " {\"id\": \"12\", \"action\": \"update\", \"fields\":"
	    " [\"nic_mac\"]}]}, \"subnets\": {\"create\": 0, \"update\": 0,"
	    " \"unchanged\": 2, \"changes\": []}}", 0, NULL);
	assert_non_null(result);
	capture_open(&out);
	render_import(result, true, out.stream, false);
	assert_string_equal(capture_close(&out),
	    "dry run: nothing was published\n"
	    "servers: 1 to create, 1 to update, 3 unchanged\n"
	    "ID  ACTION  FIELDS\n"
	    "7   create  hostname,ip_address\n"
	    "12  update  nic_mac\n"
	    "subnets: 0 to create, 0 to update, 2 unchanged\n");
	capture_free(&out);
	json_decref(result);

	/* Once applied, a count per kind. */
	result = json_pack("{s:i, s:i}", "servers", 105, "subnets", 6);
	capture_open(&out);
	render_import(result, false, out.stream, false);
	assert_string_equal(capture_close(&out), "imported\n"
	    "servers: 105 imported\n"
	    "subnets: 6 imported\n");
	capture_free(&out);
	json_decref(result);
}

/* HTTP statuses map to the documented exit statuses. */
static void
test_exit_statuses(void **state)
{
	assert_int_equal(client_exit_for_status(200), CLIENT_EXIT_OK);
	assert_int_equal(client_exit_for_status(201), CLIENT_EXIT_OK);
	assert_int_equal(client_exit_for_status(202), CLIENT_EXIT_ACCEPTED);
	assert_int_equal(client_exit_for_status(400), CLIENT_EXIT_REFUSED);
	assert_int_equal(client_exit_for_status(401), CLIENT_EXIT_REFUSED);
	assert_int_equal(client_exit_for_status(403), CLIENT_EXIT_REFUSED);
	assert_int_equal(client_exit_for_status(404), CLIENT_EXIT_REFUSED);
	assert_int_equal(client_exit_for_status(429), CLIENT_EXIT_REFUSED);
	assert_int_equal(client_exit_for_status(409), CLIENT_EXIT_CONFLICT);
	assert_int_equal(client_exit_for_status(412), CLIENT_EXIT_CONFLICT);
	assert_int_equal(client_exit_for_status(500), CLIENT_EXIT_UNREACHABLE);
	assert_int_equal(client_exit_for_status(503), CLIENT_EXIT_UNREACHABLE);
	assert_int_equal(client_exit_for_status(504), CLIENT_EXIT_UNREACHABLE);
	assert_int_equal(CLIENT_EXIT_OK, 0);
	assert_int_equal(CLIENT_EXIT_REFUSED, 1);
	assert_int_equal(CLIENT_EXIT_USAGE, 2);
	assert_int_equal(CLIENT_EXIT_CONFLICT, 3);
	assert_int_equal(CLIENT_EXIT_UNREACHABLE, 4);
	assert_int_equal(CLIENT_EXIT_ACCEPTED, 5);
}

/* Paths and queries are percent-encoded; ':' stays in a path segment. */
static void
test_url_encoding(void **state)
{
	struct url_buffer	 buffer = { 0 };
	char			*text;

	url_append_string(&buffer, "/api/v1/addresses/");
	url_append_encoded(&buffer, url_vrf_segment(""), true);
	url_append_string(&buffer, "/");
	url_append_encoded(&buffer, "2001:db8::1", true);
	url_append_query(&buffer, "q", "web 1&x=é");
	url_append_query(&buffer, "skipped", NULL);
	url_append_query(&buffer, "status", "reserved");
	text = url_take(&buffer);
	assert_string_equal(text, "/api/v1/addresses/-/2001:db8::1"
	    "?q=web%201%26x%3D%C3%A9&status=reserved");
	free(text);
	assert_string_equal(url_vrf_segment(NULL), "-");
	assert_string_equal(url_vrf_segment("blue"), "blue");

	/* A vrf or subnet named "." or "..": not a step of the path. */
	url_append_string(&buffer, "/api/v1/subnets/");
	url_append_encoded(&buffer, "..", true);
	url_append_string(&buffer, "/");
	url_append_encoded(&buffer, ".", true);
	url_append_string(&buffer, "/");
	url_append_encoded(&buffer, "...", true);
	url_append_query(&buffer, "vrf", "..");
	text = url_take(&buffer);
	assert_string_equal(text, "/api/v1/subnets/%2E%2E/%2E/...?vrf=..");
	free(text);
}

/* The token file's first line, without its line end; an empty one is refused. */
static void
test_token_file(void **state)
{
	char	 path[] = "/tmp/ipamctl-token-XXXXXX", error[256], *token;
	int	 fd = mkstemp(path);
	FILE	*file = fdopen(fd, "w");

	fputs("s3cret \r\nsecond line\n", file);
	fclose(file);
	token = client_read_token(path, error, sizeof(error));
	assert_string_equal(token, "s3cret");
	free(token);
	file = fopen(path, "w");
	fputs("\n", file);
	fclose(file);
	assert_null(client_read_token(path, error, sizeof(error)));
	assert_non_null(strstr(error, "no token on its first line"));
	unlink(path);
	assert_null(client_read_token(path, error, sizeof(error)));
	assert_non_null(strstr(error, "No such file or directory"));
	/* A folder opens and cannot be read: said so, not "no token". */
	assert_null(client_read_token("/tmp", error, sizeof(error)));
	assert_string_equal(error, "token file /tmp: Is a directory");
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_alignment),
		cmocka_unit_test(test_table_utf8_width),
		cmocka_unit_test(test_table_control_characters),
		cmocka_unit_test(test_table_colour),
		cmocka_unit_test(test_table_empty),
		cmocka_unit_test(test_render_addresses),
		cmocka_unit_test(test_render_subnets),
		cmocka_unit_test(test_render_address_detail),
		cmocka_unit_test(test_render_row_line),
		cmocka_unit_test(test_render_import),
		cmocka_unit_test(test_exit_statuses),
		cmocka_unit_test(test_url_encoding),
		cmocka_unit_test(test_token_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
