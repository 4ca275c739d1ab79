/* Unit tests of ipamctl's import: the old app's tables to the body of POST /import. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipamctl/import.h"
#include "test_support.h"

/* A file, the table it holds, and the entities (or error and warnings) expected. */
struct import_row {
	const char		*name;
	enum import_kind	 kind;
	const char		*text;
	const char		*entities;	/* compact JSON, keys sorted; NULL: fails */
	const char		*error;
	const char		*warnings;	/* what goes to the warnings stream */
};

static const struct import_row import_rows[] = {
	{ "servers CSV, every column", IMPORT_SERVERS,
	    "id,hostname,ip_address,nic_mac,device_type,manufacture,vrf\n"
	    "1,web-1,10.0.0.5,52:54:00:00:00:01,vm,\"Dell, Inc.\",\n"
	    "2,db-1,,,,,blue\n",
	    "[{\"device_type\":\"vm\",\"hostname\":\"web-1\",\"id\":\"1\","
	    "\"ip_address\":\"10.0.0.5\",\"manufacture\":\"Dell, Inc.\","
	    "\"nic_mac\":\"52:54:00:00:00:01\"},"
	    "{\"hostname\":\"db-1\",\"id\":\"2\",\"vrf\":\"blue\"}]", NULL, "" },
	{ "servers CSV from Excel: BOM, CRLF, header case and order, blanks",
	    IMPORT_SERVERS,
	    "\xef\xbb\xbfHostname, ID ,ip_address\r\n"
	    " web-1 ,7, 10.0.0.7 \r\n",
	    "[{\"hostname\":\"web-1\",\"id\":\"7\",\"ip_address\":\"10.0.0.7\"}]",
	    NULL, "" },
	{ "an unknown column is named and left out", IMPORT_SERVERS,
	    "id,hostname,created_at\n1,a,2020-01-01\n",
	    "[{\"hostname\":\"a\",\"id\":\"1\"}]", NULL,
	    "servers.csv: line 1, column 3: \"created_at\" is not a column of "
	    "servers; left out\n" },
	{ "no hostname column", IMPORT_SERVERS, "id,ip_address\n1,10.0.0.1\n",
	    NULL, "servers.csv: line 1: no column hostname (a servers table "
	    "needs it)", "" },
	{ "a row with too few fields", IMPORT_SERVERS,
	    "id,hostname,ip_address\n1,a,10.0.0.1\n2,b\n", NULL,
	    "servers.csv: line 3: 2 fields where the header has 3", "" },
	{ "an empty hostname", IMPORT_SERVERS, "id,hostname\n1,a\n2, \n", NULL,
	    "servers.csv: line 3, column 2 (hostname): hostname is required",
	    "" },
	{ "an id twice", IMPORT_SERVERS, "id,hostname\n1,a\n2,b\n1,c\n", NULL,
	    "servers.csv: line 4: id \"1\" again (first on line 2)", "" },
	{ "a column twice", IMPORT_SERVERS, "id,hostname,ID\n", NULL,
	    "servers.csv: line 1, column 3: id again (first in column 1)", "" },
	{ "a CSV syntax error is named by line and column", IMPORT_SERVERS,
	    "id,hostname\n1,\"a\n", NULL,
	    "servers.csv: line 2, column 3: a quoted field is not closed", "" },
	{ "an empty file", IMPORT_SERVERS, "", NULL,
	    "servers.csv: no header line (the file is empty)", "" },
	{ "a field not in UTF-8 (cp1252 from a spreadsheet) is refused",
	    IMPORT_SERVERS,
	    "id,hostname,manufacture,vrf\n1,web-1,Soci\xe9t\xe9,Z\xfcrich\n",
	    NULL, "servers.csv: line 2, column 3 (manufacture): not UTF-8 text "
	    "(save the file as UTF-8)", "" },
	{ "a header alone is no server", IMPORT_SERVERS, "id,hostname\r\n",
	    "[]", NULL, "" },
	{ "subnets CSV: pools as JSON, as a list, empty; ping words",
	    IMPORT_SUBNETS,
	    "id,name,cidr,static_ip_pools,vrf,ping\n"
	    "lan,LAN,192.168.1.0/24,\"[\"\"192.168.1.10-192.168.1.20\"\"]\",,yes\n"
	    "dmz,DMZ,10.1.0.0/24,10.1.0.10-10.1.0.19; 10.1.0.64/28 ;,red,F\n"
	    "v6,,2001:db8::/64,,,\n",
	    "[{\"cidr\":\"192.168.1.0/24\",\"id\":\"lan\",\"name\":\"LAN\","
	    "\"ping\":true,\"static_ip_pools\":[\"192.168.1.10-192.168.1.20\"]},"
	    "{\"cidr\":\"10.1.0.0/24\",\"id\":\"dmz\",\"name\":\"DMZ\","
	    "\"ping\":false,\"static_ip_pools\":[\"10.1.0.10-10.1.0.19\","
	    "\"10.1.0.64/28\"],\"vrf\":\"red\"},"
	    "{\"cidr\":\"2001:db8::/64\",\"id\":\"v6\",\"static_ip_pools\":[]}]",
	    NULL, "" },
	{ "subnets CSV: a bad ping word", IMPORT_SUBNETS,
	    "id,cidr,ping\nlan,10.0.0.0/24,perhaps\n", NULL,
	    "subnets.csv: line 2, column 3 (ping): ping is not true or false",
	    "" },
	{ "subnets CSV: pools that look like JSON and are not", IMPORT_SUBNETS,
	    "id,cidr,static_ip_pools\nlan,10.0.0.0/24,\"[\"\"10.0.0.1-10.0.0.9\"\"\"\n",
	    NULL, "subnets.csv: line 2, column 3 (static_ip_pools): "
	    "static_ip_pools is not a JSON array of ranges: ']' expected "
	    "near end of file", "" },
	{ "subnets CSV: no cidr", IMPORT_SUBNETS, "id,name\nlan,LAN\n", NULL,
	    "subnets.csv: line 1: no column cidr (a subnets table needs it)",
	    "" },
	{ "servers JSON: an array, numeric ids, nulls", IMPORT_SERVERS,
	    "[{\"id\": 1, \"hostname\": \"web-1\", \"ip_address\": \"10.0.0.5\","
	    " \"nic_mac\": null, \"device_type\": \"\"}]",
	    "[{\"hostname\":\"web-1\",\"id\":\"1\",\"ip_address\":\"10.0.0.5\"}]",
	    NULL, "" },
	{ "subnets JSON under a key, with a BOM; pools as a list and as text",
	    IMPORT_SUBNETS,
	    "\xef\xbb\xbf{\"subnets\": [{\"id\": \"a\", \"cidr\": \"10.0.0.0/24\","
	    " \"static_ip_pools\": [\"10.0.0.5-10.0.0.9\"], \"ping\": 0},"
	    " {\"id\": \"b\", \"cidr\": \"10.0.1.0/24\", \"static_ip_pools\":"
	    " \"[\\\"10.0.1.5\\\"]\", \"ping\": \"true\"}]}",
	    "[{\"cidr\":\"10.0.0.0/24\",\"id\":\"a\",\"ping\":false,"
	    "\"static_ip_pools\":[\"10.0.0.5-10.0.0.9\"]},"
	    "{\"cidr\":\"10.0.1.0/24\",\"id\":\"b\",\"ping\":true,"
	    "\"static_ip_pools\":[\"10.0.1.5\"]}]", NULL, "" },
	{ "Django dumpdata rows", IMPORT_SERVERS,
	    "[{\"model\": \"inventory.server\", \"pk\": 12, \"fields\":"
	    " {\"hostname\": \"h12\", \"ip_address\": \"10.0.0.12\","
	    " \"rack\": \"r1\"}}]",
	    "[{\"hostname\":\"h12\",\"id\":\"12\",\"ip_address\":\"10.0.0.12\"}]",
	    NULL, "servers.json: item 1: \"rack\" is not a field of servers; "
	    "left out\n" },
	{ "JSON: an item that is not an object", IMPORT_SERVERS,
	    "[{\"id\": 1, \"hostname\": \"a\"}, 3]", NULL,
	    "servers.json: item 2: not an object", "" },
	{ "JSON: a field of the wrong type", IMPORT_SERVERS,
	    "[{\"id\": 1, \"hostname\": [\"a\"]}]", NULL,
	    "servers.json: item 1: hostname is not text", "" },
	{ "JSON: a pool entry that is not text", IMPORT_SUBNETS,
	    "[{\"id\": 1, \"cidr\": \"10.0.0.0/8\", \"static_ip_pools\": [5]}]",
	    NULL, "subnets.json: item 1: entry 1 of static_ip_pools is not a "
	    "string", "" },
	{ "JSON: an id twice", IMPORT_SERVERS,
	    "[{\"id\": 1, \"hostname\": \"a\"}, {\"id\": \"1\", \"hostname\": \"b\"}]",
	    NULL, "servers.json: item 2: id \"1\" again (first in item 1)", "" },
	{ "JSON: a syntax error by line and column", IMPORT_SERVERS,
	    "[\n{\"id\": 1,,}\n]", NULL,
	    "servers.json: line 2, column 10: string or '}' expected near ','",
	    "" },
	{ "JSON: keys match fields as CSV columns do, case and blanks aside",
	    IMPORT_SERVERS,
	    "[{\"ID\": 3, \"HostName\": \"h3\", \"IP_Address\": \"10.0.0.3\","
	    " \" vrf \": \"blue\"}]",
	    "[{\"hostname\":\"h3\",\"id\":\"3\",\"ip_address\":\"10.0.0.3\","
	    "\"vrf\":\"blue\"}]", NULL, "" },
	{ "JSON: two keys for one field", IMPORT_SERVERS,
	    "[{\"id\": 1, \"hostname\": \"a\", \"ip_address\": \"10.0.0.1\","
	    " \"IP_Address\": \"10.0.0.2\"}]", NULL,
	    "servers.json: item 1: \"ip_address\" and \"IP_Address\" are both "
	    "ip_address", "" },
	{ "JSON: one key twice", IMPORT_SERVERS,
	    "[{\"id\": 1,\n \"hostname\": \"a\", \"hostname\": \"b\"}]", NULL,
	    "servers.json: line 2, column 28: duplicate object key near "
	    "'\"hostname\"'", "" },
	{ "Django rows: the pk is the id, whatever fields hold", IMPORT_SERVERS,
	    "[{\"model\": \"inventory.server\", \"pk\": 12, \"fields\":"
	    " {\"ID\": 99, \"hostname\": \"h12\"}}]",
	    "[{\"hostname\":\"h12\",\"id\":\"12\"}]", NULL, "" },
	{ "JSON: an error's line counts the blank lines before the document",
	    IMPORT_SERVERS, "\xef\xbb\xbf\n\n  [\n{\"id\": 1,,}\n]", NULL,
	    "servers.json: line 4, column 10: string or '}' expected near ','",
	    "" },
	{ "JSON: the wrong shape", IMPORT_SUBNETS, "{\"servers\": []}", NULL,
	    "subnets.json: neither an array of subnets nor an object with a "
	    "\"subnets\" array", "" },
};

/* Each row converts to its entities, or fails with its error. */
static void
test_import_row(void **state)
{
	const struct import_row	*row = *state;
	char			 error[512] = "", *warnings = NULL, *dumped;
	char			 file_name[32];
	size_t			 warnings_size = 0;
	FILE			*warnings_stream;
	json_t			*entities;
	const char		*first = row->text;
	bool			 is_json;

	/* Named as its content is: JSON when it opens with [ or {. */
	if (strncmp(first, "\xef\xbb\xbf", 3) == 0)
		first += 3;
	first += strspn(first, " \t\r\n");
	is_json = *first == '[' || *first == '{';
	snprintf(file_name, sizeof(file_name), "%s.%s",
	    row->kind == IMPORT_SERVERS ? "servers" : "subnets",
	    is_json ? "json" : "csv");
	warnings_stream = open_memstream(&warnings, &warnings_size);
	assert_non_null(warnings_stream);
	entities = import_convert(row->kind, file_name, row->text,
	    strlen(row->text), warnings_stream, error, sizeof(error));
	fclose(warnings_stream);
	assert_string_equal(warnings, row->warnings);
	free(warnings);
	if (row->entities == NULL) {
		assert_null(entities);
		assert_string_equal(error, row->error);
		return;
	}
	assert_non_null(entities);
	dumped = json_dumps(entities, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(dumped, row->entities);
	free(dumped);
	json_decref(entities);
}

/* The body holds both tables (empty when not given) and the dry-run flag. */
static void
test_import_body(void **state)
{
	json_t	*servers = json_pack("[{s:s, s:s}]", "id", "1", "hostname", "a");
	json_t	*body;
	char	*dumped;

	body = import_body(servers, NULL, true);
	dumped = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(dumped, "{\"dry_run\":true,\"servers\":[{\"hostname\":"
	    "\"a\",\"id\":\"1\"}],\"subnets\":[]}");
	free(dumped);
	json_decref(body);

	body = import_body(NULL, json_array(), false);
	dumped = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(dumped,
	    "{\"dry_run\":false,\"servers\":[],\"subnets\":[]}");
	free(dumped);
	json_decref(body);
}

/* Warnings may be dropped: a NULL stream converts the same. */
static void
test_import_without_warnings(void **state)
{
	static const char	text[] = "id,hostname,rack\n1,a,r1\n";
	char			error[256];
	json_t			*entities;

	entities = import_convert(IMPORT_SERVERS, "s.csv", text,
	    sizeof(text) - 1, NULL, error, sizeof(error));
	assert_non_null(entities);
	assert_int_equal(json_array_size(entities), 1);
	json_decref(entities);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_import_body),
		cmocka_unit_test(test_import_without_warnings),
	};
	int failed;

	failed = support_run_rows("import", test_import_row, import_rows,
	    sizeof(import_rows[0]), ROWS(import_rows));
	return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
