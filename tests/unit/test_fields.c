/* Unit tests of the decoders' shared field validators. */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/decode_fields.h"
#include "test_support.h"

/* Parses a JSON value a test row gives; NULL text means absent. */
static json_t *
json_of(const char *text)
{
	json_error_t	 jerr;
	json_t		*value;

	if (text == NULL)
		return NULL;
	value = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (value == NULL)
		fail_msg("test data %s: %s", text, jerr.text);
	return value;
}

/* Fails unless err holds the wanted text. */
static void
check_error(const char *err, const char *want)
{
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* A MAC address in, its normal form out (NULL: refused). */
struct mac_row {
	const char	*text;
	const char	*normal;
};

static const struct mac_row mac_rows[] = {
	{ "aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff" },
	{ "AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff" },
	{ "AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff" },
	{ "aa-bb-cc-dd-ee-0f", "aa:bb:cc:dd:ee:0f" },
	{ "aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff" },
	{ "AABB.CCDD.EEFF", "aa:bb:cc:dd:ee:ff" },
	{ "00:1A:2b:3C:4d:5E", "00:1a:2b:3c:4d:5e" },
	{ "aa:bb-cc:dd:ee:ff", NULL },
	{ "aa:bb:cc:dd:ee", NULL },
	{ "aa:bb:cc:dd:ee:ff:00", NULL },
	{ "aa:bb:cc:dd:ee:fg", NULL },
	{ "aabbccddeeff", NULL },
	{ "aabb.ccdd-eeff", NULL },
	{ "aabb.ccdd.eefg", NULL },
	{ "a:bb:cc:dd:ee:fff", NULL },
	{ " aa:bb:cc:dd:ee:f", NULL },
	{ "aa.bb.cc.dd.ee.ff", NULL },
	{ "", NULL },
};

/* fields_mac_normalize accepts the three forms and nothing else. */
static void
test_mac(void **state)
{
	const struct mac_row	*row = *state;
	char			 out[FIELDS_MAC_TEXT];

	if (row->normal == NULL) {
		assert_int_equal(fields_mac_normalize(row->text, out), -1);
		return;
	}
	assert_int_equal(fields_mac_normalize(row->text, out), 0);
	assert_string_equal(out, row->normal);
}

/*
 * A validator applied to a JSON value (NULL: absent): what it gives
 * (NULL: a NULL string), or the error it must report.
 */
struct value_row {
	const char	*json;
	const char	*result;
	const char	*error;
};

/* The validators the value tables exercise, by table. */
enum value_kind {
	VALUE_MAC,
	VALUE_ID,
	VALUE_VRF,
	VALUE_HOSTNAME,
	VALUE_LINES,
	VALUE_ADDRESS,
	VALUE_VERSION,
	VALUE_BOOL,
};

/* Applies a validator to a value and writes what it gave into text. */
static int
apply_value(enum value_kind kind, const json_t *value, char *text,
    size_t textlen, char *err, size_t errlen)
{
	struct ip_addr	 addr;
	char		*out = NULL;
	int64_t		 version;
	bool		 present, flag;
	int		 rc;

	switch (kind) {
	case VALUE_MAC:
		rc = fields_mac("nic_mac", value, &out, err, errlen);
		break;
	case VALUE_ID:
		rc = fields_id("id", value, &out, err, errlen);
		break;
	case VALUE_VRF:
		rc = fields_vrf("vrf", value, &out, err, errlen);
		break;
	case VALUE_HOSTNAME:
		rc = fields_string("hostname", value, FIELDS_TEXT_MAX, true,
		    &out, err, errlen);
		break;
	case VALUE_LINES:
		rc = fields_lines("description", value, 1024, &out, err,
		    errlen);
		break;
	case VALUE_ADDRESS:
		rc = fields_address("ip_address", value, false, &addr,
		    &present, err, errlen);
		if (rc == 0 && present)
			addr_format(&addr, text, textlen);
		else
			snprintf(text, textlen, "(none)");
		return rc;
	case VALUE_VERSION:
		rc = fields_version("version", value, &present, &version, err,
		    errlen);
		if (present)
			snprintf(text, textlen, "%lld", (long long)version);
		else
			snprintf(text, textlen, "(none)");
		return rc;
	case VALUE_BOOL:
		rc = fields_bool("ping", value, true, &flag, err, errlen);
		snprintf(text, textlen, "%s", flag ? "true" : "false");
		return rc;
	}
	snprintf(text, textlen, "%s", out != NULL ? out : "(null)");
	if (rc == -1 && out != NULL)
		fail_msg("a failing validator gave a value");
	free(out);
	return rc;
}

/* Runs the validator of the current table on one row. */
static void
check_value(enum value_kind kind, const struct value_row *row)
{
	json_t	*value = json_of(row->json);
	char	 text[2048], err[512];
	int	 rc;

	rc = apply_value(kind, value, text, sizeof(text), err, sizeof(err));
	json_decref(value);
	if (row->error != NULL) {
		if (rc != -1)
			fail_msg("%s was accepted as %s", row->json, text);
		check_error(err, row->error);
		return;
	}
	if (rc != 0)
		fail_msg("%s was refused: %s", row->json, err);
	assert_string_equal(text, row->result != NULL ? row->result :
	    "(null)");
}

static const struct value_row mac_value_rows[] = {
	{ "\"AA-BB-CC-DD-EE-01\"", "aa:bb:cc:dd:ee:01", NULL },
	{ "\"\"", NULL, NULL },
	{ "null", NULL, NULL },
	{ NULL, NULL, NULL },
	{ "\"aa:bb:cc:dd:ee:0\\u001b\"", NULL, "nic_mac "
	    "\"aa:bb:cc:dd:ee:0\\x1b\" holds a control character (U+001B)" },
	{ "\"zz:bb:cc:dd:ee:ff\"", NULL, "nic_mac \"zz:bb:cc:dd:ee:ff\" is not "
	    "a MAC address (write aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or "
	    "aabb.ccdd.eeff)" },
	{ "12", NULL, "nic_mac must be a string, not an integer" },
};

/* fields_mac over JSON values. */
static void
test_mac_value(void **state)
{
	check_value(VALUE_MAC, *state);
}

static const struct value_row id_rows[] = {
	{ "\"42\"", "42", NULL },
	{ "\"srv-7f3a\"", "srv-7f3a", NULL },
	{ "42", "42", NULL },
	{ "-3", "-3", NULL },
	{ "0", "0", NULL },
	{ "9223372036854775807", "9223372036854775807", NULL },
	{ "\"\"", NULL, "id is empty" },
	{ "\"s\u00e9rveur-1\"", "s\u00e9rveur-1", NULL },
	{ "\" 42\"", NULL, "id \" 42\" begins or ends with white space" },
	{ "\"42 \"", NULL, "id \"42 \" begins or ends with white space" },
	{ "\"\\u00a042\"", NULL, "begins or ends with white space" },
	{ "\"42\\u3000\"", NULL, "begins or ends with white space" },
	{ "\"4 2\"", "4 2", NULL },
	{ "\"\\t42\"", NULL, "id \"\\x0942\" holds a control character "
	    "(U+0009)" },
	{ "\"4\\u001b[2J\"", NULL, "holds a control character (U+001B)" },
	{ "\"4\\u007f\"", NULL, "holds a control character (U+007F)" },
	{ "\"4\\u009b\"", NULL, "holds a control character (U+009B)" },
	{ "1e2", NULL, "id must be a string or an integer, not a number with "
	    "a fraction" },
	{ "5.0", NULL, "id must be a string or an integer, not a number with "
	    "a fraction" },
	{ "true", NULL, "not a boolean" },
	{ "{}", NULL, "not an object" },
	{ "[1]", NULL, "not an array" },
	{ "null", NULL, "id is required and may not be null" },
	{ NULL, NULL, "id is required" },
};

/* fields_id over JSON values. */
static void
test_id(void **state)
{
	check_value(VALUE_ID, *state);
}

static const struct value_row vrf_rows[] = {
	{ "\"blue\"", "blue", NULL },
	{ "\"\"", "", NULL },
	{ "null", "", NULL },
	{ NULL, "", NULL },
	{ "\"red/blue\"", NULL, "vrf \"red/blue\" may not contain '/'" },
	{ "\"red,blue\"", NULL, "vrf \"red,blue\" may not contain ','" },
	{ "\"-\"", NULL, "vrf \"-\" is reserved: the operator API and "
	    "sweeper.vrfs use it for the default vrf" },
	{ "\"*\"", NULL, "vrf \"*\" is reserved: the operator page uses it "
	    "for every vrf" },
	{ "\"-blue*\"", "-blue*", NULL },
	{ "\" blue\"", NULL, "vrf \" blue\" begins or ends with white space" },
	{ "\"blue\\u00a0\"", NULL, "begins or ends with white space" },
	{ "\" \"", NULL, "vrf \" \" begins or ends with white space" },
	{ "\"blue sky\"", "blue sky", NULL },
	{ "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\"", NULL, "vrf is 65 bytes, more than the limit of 64" },
	{ "7", NULL, "vrf must be a string, not an integer" },
	{ "\"blue\\u0007\"", NULL, "vrf \"blue\\x07\" holds a control "
	    "character (U+0007)" },
};

/* fields_vrf over JSON values. */
static void
test_vrf(void **state)
{
	check_value(VALUE_VRF, *state);
}

#define LONG_255 \
	"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct value_row hostname_rows[] = {
	{ "\"web-01.example.net\"", "web-01.example.net", NULL },
	{ "\"\"", "", NULL },
	{ "\"s\u00e9rveur\"", "s\u00e9rveur", NULL },
	{ LONG_255 "\"", NULL, NULL },
	{ LONG_255 "b\"", NULL, "hostname is 256 bytes, more than the limit of "
	    "255" },
	{ "null", NULL, "hostname is required and may not be null" },
	{ NULL, NULL, "hostname is required" },
	{ "[]", NULL, "hostname must be a string, not an array" },
	{ "\"web\\u001b[31m\"", NULL, "hostname \"web\\x1b[31m\" holds a "
	    "control character (U+001B)" },
	{ "\"web\\n01\"", NULL, "holds a control character (U+000A)" },
	{ "\"web\\u0085\"", NULL, "holds a control character (U+0085)" },
	{ "\"web\\u00a0\\u2028\"", "web\u00a0\u2028", NULL },
};

static const struct value_row lines_rows[] = {
	{ "\"office gateway\"", "office gateway", NULL },
	{ "\"gw\\r\\nticket 42:\\tdone\\n\"", "gw\r\nticket 42:\tdone\n",
	    NULL },
	{ "null", NULL, NULL },
	{ NULL, NULL, NULL },
	{ "\"\\u001b[2J\"", NULL, "description \"\\x1b[2J\" holds a "
	    "control character (U+001B); only tab, newline and carriage "
	    "return are allowed" },
	{ "\"a\\u000bb\"", NULL, "holds a control character (U+000B)" },
	{ "\"a\\u009bb\"", NULL, "holds a control character (U+009B)" },
};

/* fields_lines over JSON values (free text such as a description). */
static void
test_lines(void **state)
{
	check_value(VALUE_LINES, *state);
}

/* fields_string over JSON values (a required 255-byte field). */
static void
test_hostname(void **state)
{
	const struct value_row	*row = *state;
	struct value_row	 copy = *row;
	char			*want = NULL;

	/* The 255-byte row expects itself back, without its quotes. */
	if (row->error == NULL && row->result == NULL) {
		want = strdup(row->json + 1);
		want[strlen(want) - 1] = '\0';
		copy.result = want;
	}
	check_value(VALUE_HOSTNAME, &copy);
	free(want);
}

static const struct value_row address_rows[] = {
	{ "\"192.168.1.10\"", "192.168.1.10", NULL },
	{ "\"2001:DB8::10\"", "2001:db8::10", NULL },
	{ "\"\"", "(none)", NULL },
	{ "null", "(none)", NULL },
	{ NULL, "(none)", NULL },
	{ "\"192.168.1.0/24\"", NULL, "ip_address: \"192.168.1.0/24\" is a "
	    "prefix, not a single address" },
	{ "\"192.168.1.300\"", NULL, "ip_address: \"192.168.1.300\" is not an "
	    "IPv4 or IPv6 address" },
	{ "3232235786", NULL, "ip_address must be a string, not an integer" },
};

/* fields_address over JSON values. */
static void
test_address(void **state)
{
	check_value(VALUE_ADDRESS, *state);
}

static const struct value_row version_rows[] = {
	{ "7", "7", NULL },
	{ "0", "0", NULL },
	{ "\"12\"", "12", NULL },
	{ "\"9223372036854775807\"", "9223372036854775807", NULL },
	{ "null", "(none)", NULL },
	{ NULL, "(none)", NULL },
	{ "-1", NULL, "version is negative (-1)" },
	{ "\"-1\"", NULL, "version \"-1\" is not a whole number" },
	{ "\"\"", NULL, "version \"\" is not a whole number" },
	{ "\"12a\"", NULL, "is not a whole number from 0 to "
	    "9223372036854775807" },
	{ "\"9223372036854775808\"", NULL, "is not a whole number" },
	{ "1.5", NULL, "version must be an integer, not a number with a "
	    "fraction" },
	{ "true", NULL, "version must be an integer, not a boolean" },
};

/* fields_version over JSON values. */
static void
test_version(void **state)
{
	check_value(VALUE_VERSION, *state);
}

static const struct value_row bool_rows[] = {
	{ "true", "true", NULL },
	{ "false", "false", NULL },
	{ "null", "true", NULL },
	{ NULL, "true", NULL },
	{ "\"false\"", NULL, "ping must be true or false, not a string" },
	{ "0", NULL, "ping must be true or false, not an integer" },
};

/* fields_bool over JSON values (default true). */
static void
test_bool(void **state)
{
	check_value(VALUE_BOOL, *state);
}

/*
 * Static pools of a subnet: the JSON value (NULL: absent), the limit (0:
 * the default), and the normalized ranges ("a-b,c-d", "" for none) or
 * the error.
 */
struct pool_row {
	const char	*label;
	const char	*cidr;
	const char	*json;
	uint64_t	 limit;
	const char	*ranges;
	const char	*error;
	unsigned	 edges;		/* CHANGE_POOL_*: held as sent */
};

#define NET	CHANGE_POOL_NETWORK
#define BCAST	CHANGE_POOL_BROADCAST

static const struct pool_row pool_rows[] = {
	{ "range", "192.168.1.0/24", "[\"192.168.1.1-192.168.1.50\"]", 0,
	    "192.168.1.1-192.168.1.50", NULL, 0 },
	{ "single", "192.168.1.0/24", "[\"192.168.1.7\"]", 0,
	    "192.168.1.7-192.168.1.7", NULL, 0 },
	{ "cidr block", "192.168.1.0/24", "[\"192.168.1.64/28\"]", 0,
	    "192.168.1.64-192.168.1.79", NULL, 0 },
	{ "spaces around", "192.168.1.0/24",
	    "[\" 192.168.1.1 - 192.168.1.5 \"]", 0,
	    "192.168.1.1-192.168.1.5", NULL, 0 },
	{ "string holding the array", "192.168.1.0/24",
	    "\"[\\\"192.168.1.1-192.168.1.50\\\"]\"", 0,
	    "192.168.1.1-192.168.1.50", NULL, 0 },
	{ "absent", "192.168.1.0/24", NULL, 0, "", NULL, 0 },
	{ "null", "192.168.1.0/24", "null", 0, "", NULL, 0 },
	{ "empty array", "192.168.1.0/24", "[]", 0, "", NULL, 0 },
	{ "empty string", "192.168.1.0/24", "\"\"", 0, "", NULL, 0 },
	{ "string holding null", "192.168.1.0/24", "\"null\"", 0, "", NULL, 0 },
	{ "string holding []", "192.168.1.0/24", "\" [ ] \"", 0, "", NULL, 0 },
	/* Clamping off the network and broadcast address. */
	{ "/24 whole block", "192.168.1.0/24", "[\"192.168.1.0/24\"]", 0,
	    "192.168.1.1-192.168.1.254", NULL, NET | BCAST },
	{ "/24 whole range", "192.168.1.0/24",
	    "[\"192.168.1.0-192.168.1.255\"]", 0,
	    "192.168.1.1-192.168.1.254", NULL, NET | BCAST },
	{ "/24 network only", "192.168.1.0/24", "[\"192.168.1.0\"]", 0, "",
	    NULL, NET },
	{ "/24 broadcast only", "192.168.1.0/24", "[\"192.168.1.255\"]", 0,
	    "", NULL, BCAST },
	{ "/24 first block", "192.168.1.0/24", "[\"192.168.1.0/28\"]", 0,
	    "192.168.1.1-192.168.1.15", NULL, NET },
	{ "/30", "10.0.0.0/30", "[\"10.0.0.0-10.0.0.3\"]", 0,
	    "10.0.0.1-10.0.0.2", NULL, NET | BCAST },
	{ "/30 block", "10.0.0.4/30", "[\"10.0.0.4/30\"]", 0,
	    "10.0.0.5-10.0.0.6", NULL, NET | BCAST },
	{ "/31 kept whole", "10.0.0.0/31", "[\"10.0.0.0-10.0.0.1\"]", 0,
	    "10.0.0.0-10.0.0.1", NULL, 0 },
	{ "/32 kept", "10.0.0.5/32", "[\"10.0.0.5\"]", 0,
	    "10.0.0.5-10.0.0.5", NULL, 0 },
	{ "/32 as block", "10.0.0.5/32", "[\"10.0.0.5/32\"]", 0,
	    "10.0.0.5-10.0.0.5", NULL, 0 },
	{ "IPv6 not clamped", "2001:db8::/64", "[\"2001:db8::/126\"]", 0,
	    "2001:db8::-2001:db8::3", NULL, 0 },
	/* Sorting and merging. */
	{ "overlapping", "192.168.1.0/24",
	    "[\"192.168.1.10-192.168.1.20\", \"192.168.1.15-192.168.1.30\"]",
	    0, "192.168.1.10-192.168.1.30", NULL, 0 },
	{ "adjacent", "192.168.1.0/24",
	    "[\"192.168.1.11-192.168.1.20\", \"192.168.1.1-192.168.1.10\"]",
	    0, "192.168.1.1-192.168.1.20", NULL, 0 },
	{ "contained", "192.168.1.0/24",
	    "[\"192.168.1.1-192.168.1.100\", \"192.168.1.5\", "
	    "\"192.168.1.32/30\"]", 0, "192.168.1.1-192.168.1.100", NULL, 0 },
	{ "duplicates", "192.168.1.0/24",
	    "[\"192.168.1.5\", \"192.168.1.5\"]", 0,
	    "192.168.1.5-192.168.1.5", NULL, 0 },
	{ "apart, sorted", "192.168.1.0/24",
	    "[\"192.168.1.100\", \"192.168.1.1-192.168.1.5\", "
	    "\"192.168.1.7\"]", 0, "192.168.1.1-192.168.1.5,"
	    "192.168.1.7-192.168.1.7,192.168.1.100-192.168.1.100", NULL, 0 },
	{ "IPv6 merged", "2001:db8::/64",
	    "[\"2001:db8::100/120\", \"2001:db8::1-2001:db8::ff\"]", 0,
	    "2001:db8::1-2001:db8::1ff", NULL, 0 },
	{ "ends at the top", "::/0",
	    "[\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0-"
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\", "
	    "\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff8\"]", 0,
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0-"
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL, 0 },
	/* The address limit. */
	{ "at the limit", "192.168.1.0/24",
	    "[\"192.168.1.1-192.168.1.100\"]", 100,
	    "192.168.1.1-192.168.1.100", NULL, 0 },
	{ "overlap counted once", "192.168.1.0/24",
	    "[\"192.168.1.1-192.168.1.100\", \"192.168.1.50-192.168.1.100\"]",
	    100, "192.168.1.1-192.168.1.100", NULL, 0 },
	{ "clamped before counting", "192.168.1.0/24",
	    "[\"192.168.1.0/24\"]", 254, "192.168.1.1-192.168.1.254", NULL,
	    NET | BCAST },
	{ "over the limit", "192.168.1.0/24",
	    "[\"192.168.1.1-192.168.1.200\"]", 100, NULL,
	    "pools hold 200 addresses, more than the limit of 100", 0 },
	{ "IPv6 /64 over the default", "2001:db8::/64",
	    "[\"2001:db8::/64\"]", 0, NULL, "pools hold at least "
	    "18446744073709551615 addresses, more than the limit of 1048576", 0 },
	{ "IPv6 /108 at the default", "2001:db8::/64",
	    "[\"2001:db8::/108\"]", 0, "2001:db8::-2001:db8::f:ffff", NULL, 0 },
	{ "IPv6 /107 over the default", "2001:db8::/64",
	    "[\"2001:db8::/107\"]", 0, NULL, "pools hold 2097152 addresses, "
	    "more than the limit of 1048576", 0 },
	/* Errors, each naming the entry. */
	{ "outside", "192.168.1.0/24", "[\"10.0.0.1\"]", 0, NULL,
	    "pools[0] \"10.0.0.1\" is outside the subnet 192.168.1.0/24", 0 },
	{ "partly outside", "192.168.1.0/24",
	    "[\"192.168.1.1\", \"192.168.1.250-192.168.2.5\"]", 0, NULL,
	    "pools[1] \"192.168.1.250-192.168.2.5\" is outside the subnet "
	    "192.168.1.0/24", 0 },
	{ "larger block", "192.168.1.0/24", "[\"192.168.0.0/16\"]", 0, NULL,
	    "is outside the subnet 192.168.1.0/24", 0 },
	{ "host bits set", "192.168.1.0/24", "[\"192.168.1.1/28\"]", 0, NULL,
	    "pools[0]: \"192.168.1.1/28\" has host bits set (did you mean "
	    "192.168.1.0/28?)", 0 },
	{ "reversed", "192.168.1.0/24", "[\"192.168.1.50-192.168.1.1\"]", 0,
	    NULL, "\"192.168.1.50-192.168.1.1\" is reversed: 192.168.1.50 "
	    "comes after 192.168.1.1", 0 },
	{ "mixed families", "192.168.1.0/24",
	    "[\"192.168.1.1-2001:db8::1\"]", 0, NULL,
	    "\"192.168.1.1-2001:db8::1\" mixes IPv4 and IPv6", 0 },
	{ "other family", "192.168.1.0/24", "[\"2001:db8::1\"]", 0, NULL,
	    "\"2001:db8::1\" is IPv6 but the subnet 192.168.1.0/24 is IPv4", 0 },
	{ "other family block", "2001:db8::/64", "[\"192.168.1.0/28\"]", 0,
	    NULL, "is IPv4 but the subnet 2001:db8::/64 is IPv6", 0 },
	{ "garbage", "192.168.1.0/24", "[\"192.168.1.1\", \"gateway\"]", 0,
	    NULL, "pools[1]: \"gateway\" is not an IPv4 or IPv6 address", 0 },
	{ "half a range", "192.168.1.0/24", "[\"192.168.1.1-\"]", 0, NULL,
	    "\"192.168.1.1-\" is not a range of two addresses: empty address", 0 },
	{ "bad length", "192.168.1.0/24", "[\"192.168.1.0/33\"]", 0, NULL,
	    "must be a number from 0 to 32", 0 },
	{ "empty entry", "192.168.1.0/24", "[\"\"]", 0, NULL,
	    "pools[0] is empty", 0 },
	{ "not a string", "192.168.1.0/24", "[\"192.168.1.1\", 5]", 0, NULL,
	    "pools[1] must be a string, not an integer", 0 },
	{ "an object", "192.168.1.0/24", "{\"a\": 1}", 0, NULL,
	    "pools must be an array of strings (or a string holding one), "
	    "not an object", 0 },
	{ "a bare entry string", "192.168.1.0/24", "\"192.168.1.1\"", 0, NULL,
	    "pools holds text that is not JSON", 0 },
	{ "a string holding a string", "192.168.1.0/24", "\"\\\"x\\\"\"", 0,
	    NULL, "pools must hold an array of strings, not a string", 0 },
	{ "string with duplicate keys", "192.168.1.0/24",
	    "\"{\\\"a\\\": 1, \\\"a\\\": 2}\"", 0, NULL,
	    "pools holds text that is not JSON", 0 },
};

/* fields_pools parses, checks, clamps, merges and counts. */
static void
test_pools(void **state)
{
	const struct pool_row	*row = *state;
	struct ip_prefix	 cidr;
	struct pool_range	*ranges;
	json_t			*value;
	char			 err[512], text[1024], first[ADDR_TEXT_MAX];
	char			 last[ADDR_TEXT_MAX];
	size_t			 count, i, used = 0;
	unsigned		 edges;
	int			 rc;

	if (prefix_parse(row->cidr, &cidr, err, sizeof(err)) == -1)
		fail_msg("test data: %s", err);
	value = json_of(row->json);
	rc = fields_pools("pools", value, &cidr, row->limit != 0 ?
	    row->limit : 1048576, &ranges, &count, &edges, err, sizeof(err));
	json_decref(value);
	text[0] = '\0';
	for (i = 0; rc == 0 && i < count; i++) {
		addr_format(&ranges[i].first, first, sizeof(first));
		addr_format(&ranges[i].last, last, sizeof(last));
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		    "%s%s-%s", i > 0 ? "," : "", first, last);
	}
	if (rc == 0)
		free(ranges);
	if (row->error != NULL) {
		if (rc != -1)
			fail_msg("accepted as %s", text);
		assert_null(ranges);
		assert_int_equal(count, 0);
		assert_int_equal(edges, 0);
		check_error(err, row->error);
		return;
	}
	if (rc != 0)
		fail_msg("refused: %s", err);
	assert_string_equal(text, row->ranges);
	assert_int_equal(edges, row->edges);
	if (count == 0)
		assert_null(ranges);
}

/* A mark id in, its vrf and canonical id out (or the error). */
struct mark_row {
	const char	*text;
	const char	*vrf;
	const char	*id;
	const char	*error;
};

static const struct mark_row mark_rows[] = {
	{ "10.0.0.1", "", "10.0.0.1", NULL },
	{ "blue/10.0.0.1", "blue", "blue/10.0.0.1", NULL },
	{ "blue/2001:DB8::0001", "blue", "blue/2001:db8::1", NULL },
	{ "2001:db8::1", "", "2001:db8::1", NULL },
	{ "/10.0.0.1", NULL, NULL, "has an empty vrf before '/'" },
	{ "blue/", NULL, NULL, "is not a mark id (\"address\" or "
	    "\"vrf/address\"): empty address" },
	{ "blue/10.0.0.0/24", NULL, NULL, "is a prefix, not a single address" },
	{ "10.0.0.0/24", NULL, NULL, "key \"10.0.0.0/24\" is a prefix, not a "
	    "mark id (\"address\" or \"vrf/address\")" },
	{ "2001:db8::/64", NULL, NULL, "is a prefix, not a mark id" },
	{ " blue/10.0.0.1", NULL, NULL, "key \" blue\" begins or ends with "
	    "white space" },
	{ "host-1", NULL, NULL, "\"host-1\" is not an IPv4 or IPv6 address" },
	{ "", NULL, NULL, "key is empty" },
	{ "blue\x1b/10.0.0.1", NULL, NULL, "key \"blue\\x1b/10.0.0.1\" holds "
	    "a control character (U+001B)" },
};

/* fields_mark_key splits a mark id; fields_mark_id writes it back. */
static void
test_mark_key(void **state)
{
	const struct mark_row	*row = *state;
	struct ip_addr		 ip;
	char			*vrf, *id, err[512];
	int			 rc;

	rc = fields_mark_key("key", row->text, strlen(row->text), &vrf, &ip,
	    err, sizeof(err));
	if (row->error != NULL) {
		assert_int_equal(rc, -1);
		assert_null(vrf);
		check_error(err, row->error);
		return;
	}
	if (rc != 0)
		fail_msg("refused: %s", err);
	assert_string_equal(vrf, row->vrf);
	id = fields_mark_id(vrf, &ip);
	assert_string_equal(id, row->id);
	free(id);
	free(vrf);
}

/* A small deterministic generator, so that a failure can be run again. */
static uint64_t
spell_next(uint64_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return *seed;
}

/*
 * Other spellings of one address: upper case, every group written out
 * with its leading zeros, and an IPv4 address as IPv4-mapped IPv6.
 */
static size_t
spell_address(const struct ip_addr *ip, char out[][96])
{
	char	 text[ADDR_TEXT_MAX];
	size_t	 n = 0, i;

	addr_format(ip, text, sizeof(text));
	snprintf(out[n++], 96, "%s", text);
	if (ip->family == AF_INET) {
		snprintf(out[n++], 96, "::ffff:%s", text);
		snprintf(out[n++], 96, "::FFFF:%s", text);
		snprintf(out[n++], 96, "0:0:0:0:0:ffff:%s", text);
		return n;
	}
	/* ::/96 as glibc and PostgreSQL may write it: a dotted quad. */
	if (memcmp(ip->bytes, "\0\0\0\0\0\0\0\0\0\0\0\0", 12) == 0)
		snprintf(out[n++], 96, "::%u.%u.%u.%u", ip->bytes[12],
		    ip->bytes[13], ip->bytes[14], ip->bytes[15]);
	for (i = 0; text[i] != '\0'; i++)
		out[n][i] = (char)(text[i] >= 'a' && text[i] <= 'f' ?
		    text[i] - 'a' + 'A' : text[i]);
	out[n++][i] = '\0';
	snprintf(out[n++], 96, "%02x%02x:%02x%02x:%02x%02x:%02x%02x:"
	    "%02x%02x:%02x%02x:%02x%02x:%02x%02x", ip->bytes[0], ip->bytes[1],
	    ip->bytes[2], ip->bytes[3], ip->bytes[4], ip->bytes[5],
	    ip->bytes[6], ip->bytes[7], ip->bytes[8], ip->bytes[9],
	    ip->bytes[10], ip->bytes[11], ip->bytes[12], ip->bytes[13],
	    ip->bytes[14], ip->bytes[15]);
	return n;
}

/*
 * The rule behind fields_mark_kafka_key, over random addresses (runs of
 * zero groups included) and their spellings, with and without a vrf:
 * every spelling names the same mark, and exactly one of them — the id
 * as fields_mark_id() writes it — is taken as a Kafka key, so that one
 * mark is always one key to Kafka's partitioner and compaction.
 */
static void
test_mark_kafka_key_one_spelling(void **state)
{
	uint64_t	 seed = 0x9e3779b97f4a7c15ULL;
	struct ip_addr	 ip, parsed;
	char		 spellings[8][96], key[160], err[512];
	char		*vrf, *id, *canonical;
	size_t		 n, i, b, taken;
	int		 round, rc;

	(void)state;
	for (round = 0; round < 2000; round++) {
		memset(&ip, 0, sizeof(ip));
		ip.family = round % 3 == 0 ? AF_INET : AF_INET6;
		for (b = 0; b < addr_width(&ip); b++) {
			uint64_t r = spell_next(&seed);
			/* Zero bytes often, so that runs of zero groups occur. */
			ip.bytes[b] = r % 3 == 0 ? 0 : (uint8_t)(r >> 8);
		}
		/* ::/96, which writers spell differently, a round in five. */
		if (ip.family == AF_INET6 && round % 5 == 1)
			memset(ip.bytes, 0, 12);
		/* Mapped addresses are IPv4 addresses (addr_parse). */
		if (ip.family == AF_INET6 && ip.bytes[10] == 0xff &&
		    ip.bytes[11] == 0xff)
			ip.bytes[10] = 0;
		n = spell_address(&ip, spellings);
		canonical = fields_mark_id(round % 2 ? "blue" : "", &ip);
		taken = 0;
		for (i = 0; i < n; i++) {
			for (b = 0; b < i; b++)
				if (strcmp(spellings[b], spellings[i]) == 0)
					break;
			if (b < i)
				continue;	/* the same text twice */
			snprintf(key, sizeof(key), "%s%.95s", round % 2 ?
			    "blue/" : "", spellings[i]);
			/* Every spelling names the same mark... */
			rc = fields_mark_key("key", key, strlen(key), &vrf,
			    &parsed, err, sizeof(err));
			if (rc != 0)
				fail_msg("%s: refused: %s", key, err);
			assert_int_equal(addr_compare(&parsed, &ip), 0);
			free(vrf);
			/* ...and only its written form is a key. */
			rc = fields_mark_kafka_key(key, strlen(key), &vrf,
			    &parsed, &id, err, sizeof(err));
			if (strcmp(key, canonical) == 0) {
				if (rc != 0)
					fail_msg("%s: refused: %s", key, err);
				assert_string_equal(id, key);
				assert_int_equal(addr_compare(&parsed, &ip), 0);
				free(vrf);
				free(id);
				taken++;
			} else {
				assert_int_equal(rc, -1);
				assert_null(vrf);
				assert_null(id);
				if (strstr(err, canonical) == NULL)
					fail_msg("%s: the error does not name "
					    "%s: %s", key, canonical, err);
			}
		}
		if (taken != 1)
			fail_msg("%s: %zu of its spellings taken as a key",
			    canonical, taken);
		free(canonical);
	}
}

/* A Kafka key in, the id it names out (or the error). */
struct key_row {
	const char	*key;
	const char	*id;
	const char	*error;
};

static const struct key_row key_rows[] = {
	{ "{\"id\":5}", "5", NULL },
	{ "{\"id\":\"srv-9\"}", "srv-9", NULL },
	{ "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"id\":12}}", "12",
	    NULL },
	{ "5", "5", NULL },
	{ "\"abc\"", "abc", NULL },
	{ "abc", "abc", NULL },
	{ "Struct{id=5}", NULL, "key \"Struct{id=5}\" is a Kafka Connect "
	    "struct written as text by a StringConverter: set the "
	    "connector's key.converter to "
	    "org.apache.kafka.connect.json.JsonConverter" },
	{ "Structure-7", "Structure-7", NULL },
	{ "{\"vrf\":\"a\",\"id\":7}", NULL, "key has members besides the id "
	    "column \"id\" (\"vrf\"): the key must be the id alone, or a "
	    "change of those columns moves the row to another key; key the "
	    "table by its id (Debezium's message.key.columns)" },
	{ "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"id\":12,"
	    "\"tenant\":3,\"site\":\"x\"}}", NULL, "(\"tenant\", \"site\")" },
	{ "[1,2]", NULL, "key \"[1,2]\" is an array in JSON, not an id (a "
	    "string, an integer, or an object holding the id column)" },
	{ "true", NULL, "key \"true\" is a boolean in JSON, not an id" },
	{ "1e2", NULL, "key \"1e2\" is a number with a fraction in JSON" },
	{ "1e400", NULL, "key \"1e400\" is a number too big for 64 bits or a "
	    "double in JSON, not an id" },
	{ "-1e400", NULL, "is a number too big for 64 bits or a double" },
	{ "99999999999999999999", NULL, "key \"99999999999999999999\" is a "
	    "number too big for 64 bits or a double in JSON, not an id" },
	{ "9223372036854775807", "9223372036854775807", NULL },
	{ "1.5", NULL, "is a number with a fraction in JSON" },
	{ "null", NULL, "key \"null\" is null in JSON, not an id" },
	{ " 42", NULL, "key \" 42\" begins or ends with white space" },
	{ "42\n", NULL, "key \"42\\x0a\" begins or ends with white space" },
	{ "abc ", NULL, "begins or ends with white space" },
	{ "a\x1b" "c", NULL, "key \"a\\x1bc\" holds a control character" },
	{ "{\"id\":true}", NULL, "key.id must be a string or an integer, not "
	    "a boolean" },
	{ "{\"id\":1e2}", NULL, "key.id must be a string or an integer, not "
	    "a number with a fraction" },
	{ "{\"id\":\" 5\"}", NULL, "key.id \" 5\" begins or ends with white "
	    "space" },
	{ "{\"other\":1}", NULL, "key has no member \"id\" (check the id "
	    "column mapping)" },
	{ "{\"id\":null}", NULL, "key.id is required and may not be null" },
	{ "{\"id\":1.5}", NULL, "key.id must be a string or an integer" },
	{ "\"\"", NULL, "key is empty" },
	{ "{\"id\":7", NULL, "key \"{\\\"id\\\":7\" is not valid JSON: " },
	{ "{\"id\":7,\"id\":8}", NULL, "is not valid JSON: duplicate object key" },
	{ "[1,", NULL, "is not valid JSON: " },
	{ "\"abc", NULL, "is not valid JSON: " },
};

/* fields_key_id reads ids from Kafka keys of every shape. */
static void
test_key_id(void **state)
{
	const struct key_row	*row = *state;
	char			*id, err[512];
	int			 rc;

	rc = fields_key_id("key", row->key, strlen(row->key), "id", &id, err,
	    sizeof(err));
	if (row->error != NULL) {
		assert_int_equal(rc, -1);
		assert_null(id);
		check_error(err, row->error);
		return;
	}
	if (rc != 0)
		fail_msg("refused: %s", err);
	assert_string_equal(id, row->id);
	free(id);
}

/*
 * A NUL byte after a JSON integer is no JSON (jansson takes "7" and a
 * NUL for 7): the key is its bytes, and bytes with a NUL are no id.
 * Kafka keys "7" and "7\0" are two keys; they must not be one entity.
 */
static void
test_key_id_with_a_nul_after_a_number(void **state)
{
	char	*id, err[512];

	(void)state;
	assert_int_equal(fields_key_id("key", "7\0", 2, "id", &id, err,
	    sizeof(err)), -1);
	assert_null(id);
	check_error(err, "NUL");
}

/* Raw bytes in, and how an error message quotes them. */
struct quote_row {
	const char	*bytes;
	const char	*quoted;
};

static const struct quote_row quote_rows[] = {
	{ "plain", "\"plain\"" },
	{ "say \"hi\"\\", "\"say \\\"hi\\\"\\\\\"" },
	{ "line\nbreak\t", "\"line\\x0abreak\\x09\"" },
	{ "caf\xc3\xa9", "\"caf\xc3\xa9\"" },
	{ "bad\xff\xc3", "\"bad\\xff\\xc3\"" },
	{ "\xed\xa0\x80", "\"\\xed\\xa0\\x80\"" },
	{ "\xc2\x85", "\"\\xc2\\x85\"" },
	{ "\xc0\xaf", "\"\\xc0\\xaf\"" },
	{ "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789xyz",
	    "\"0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789...\"" },
};

/* fields_quote escapes what would break a log line or a text column. */
static void
test_quote(void **state)
{
	const struct quote_row	*row = *state;
	char			 buf[FIELDS_QUOTE_SIZE], small[20];

	fields_quote(row->bytes, strlen(row->bytes), buf, sizeof(buf));
	assert_string_equal(buf, row->quoted);
	assert_true(fields_utf8_valid(buf, strlen(buf)));
	fields_quote(row->bytes, strlen(row->bytes), small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_true(fields_utf8_valid(small, strlen(small)));
}

/* fields_sanitize leaves clean text alone and escapes the rest. */
static void
test_sanitize(void **state)
{
	char	err[64];

	(void)state;
	strcpy(err, "clean text, caf\xc3\xa9");
	fields_sanitize(err, sizeof(err));
	assert_string_equal(err, "clean text, caf\xc3\xa9");
	strcpy(err, "near '\xff\xfe' and\na newline");
	fields_sanitize(err, sizeof(err));
	assert_string_equal(err, "near '\\xff\\xfe' and\\x0aa newline");
	/* C1 controls (U+0080-U+009F) are escaped too, not only C0. */
	strcpy(err, "near '\xc2\x9b[2J' and \xc2\xa0");
	fields_sanitize(err, sizeof(err));
	assert_string_equal(err, "near '\\xc2\\x9b[2J' and \xc2\xa0");
	assert_false(fields_utf8_valid("a\0b", 3));
	assert_true(fields_utf8_valid("", 0));
	assert_true(fields_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(fields_utf8_valid("\xf4\x90\x80\x80", 4));
}

/* fields_strict names the unknown member and lists the known ones. */
static void
test_strict(void **state)
{
	static const char *const	 allowed[] = { "hostname", "vrf",
	    NULL };
	json_t				*data;
	char				 err[512];

	(void)state;
	data = json_of("{\"hostname\": \"a\", \"vrf\": \"\"}");
	assert_int_equal(fields_strict("data", data, allowed, err,
	    sizeof(err)), 0);
	json_decref(data);
	data = json_of("{\"hostname\": \"a\", \"hostnme\": \"b\"}");
	assert_int_equal(fields_strict("data", data, allowed, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "data has an unknown field \"hostnme\" "
	    "(known fields: hostname, vrf)");
	json_decref(data);
}

/* fields_text_bytes takes keys and header values only as clean text. */
static void
test_text_bytes(void **state)
{
	char	*out, err[512];

	(void)state;
	assert_int_equal(fields_text_bytes("key", "42", 2, 255, &out, err,
	    sizeof(err)), 0);
	assert_string_equal(out, "42");
	free(out);
	assert_int_equal(fields_text_bytes("key", "4\0002", 3, 255, &out, err,
	    sizeof(err)), -1);
	check_error(err, "key \"4\\x002\" is not valid UTF-8 text (or holds "
	    "a NUL byte)");
	assert_int_equal(fields_text_bytes("key", "abcd", 4, 3, &out, err,
	    sizeof(err)), -1);
	check_error(err, "key is 4 bytes, more than the limit of 3");
	assert_int_equal(fields_text_bytes("key", "", 0, 3, &out, err,
	    sizeof(err)), -1);
	check_error(err, "key is empty");
	assert_null(out);
	assert_int_equal(fields_text_bytes("key", "4\x1b" "2", 3, 255, &out,
	    err, sizeof(err)), -1);
	check_error(err, "key \"4\\x1b2\" holds a control character (U+001B)");
	assert_null(out);
}

/* Runs every table of field validator cases; exits non-zero on a failure. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_text_bytes),
		cmocka_unit_test(test_mark_kafka_key_one_spelling),
		cmocka_unit_test(test_key_id_with_a_nul_after_a_number),
	};
	int			failed = 0;

	failed += support_run_rows("mac", test_mac, mac_rows,
	    sizeof(mac_rows[0]), ROWS(mac_rows));
	failed += support_run_rows("mac_value", test_mac_value,
	    mac_value_rows, sizeof(mac_value_rows[0]), ROWS(mac_value_rows));
	failed += support_run_rows("id", test_id, id_rows, sizeof(id_rows[0]),
	    ROWS(id_rows));
	failed += support_run_rows("vrf", test_vrf, vrf_rows,
	    sizeof(vrf_rows[0]), ROWS(vrf_rows));
	failed += support_run_rows("hostname", test_hostname, hostname_rows,
	    sizeof(hostname_rows[0]), ROWS(hostname_rows));
	failed += support_run_rows("lines", test_lines, lines_rows,
	    sizeof(lines_rows[0]), ROWS(lines_rows));
	failed += support_run_rows("address", test_address, address_rows,
	    sizeof(address_rows[0]), ROWS(address_rows));
	failed += support_run_rows("version", test_version, version_rows,
	    sizeof(version_rows[0]), ROWS(version_rows));
	failed += support_run_rows("bool", test_bool, bool_rows,
	    sizeof(bool_rows[0]), ROWS(bool_rows));
	failed += support_run_rows("pools", test_pools, pool_rows,
	    sizeof(pool_rows[0]), ROWS(pool_rows));
	failed += support_run_rows("mark_key", test_mark_key, mark_rows,
	    sizeof(mark_rows[0]), ROWS(mark_rows));
	failed += support_run_rows("key_id", test_key_id, key_rows,
	    sizeof(key_rows[0]), ROWS(key_rows));
	failed += support_run_rows("quote", test_quote, quote_rows,
	    sizeof(quote_rows[0]), ROWS(quote_rows));
	failed += cmocka_run_group_tests_name("fields_misc", single, NULL,
	    NULL);
	return failed != 0;
}
