/* Unit tests of address and prefix parsing, formatting and arithmetic. */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "test_support.h"

/* Parses an address a test row gives, failing the test when it cannot. */
static struct ip_addr
addr_of(const char *text)
{
	struct ip_addr	addr;
	char		err[256];

	if (addr_parse(text, &addr, err, sizeof(err)) == -1)
		fail_msg("test data: %s", err);
	return addr;
}

/* Parses a prefix a test row gives, failing the test when it cannot. */
static struct ip_prefix
prefix_of(const char *text)
{
	struct ip_prefix	prefix;
	char			err[256];

	if (prefix_parse(text, &prefix, err, sizeof(err)) == -1)
		fail_msg("test data: %s", err);
	return prefix;
}

/* An address that parses, and its canonical form. */
struct parse_row {
	const char	*text;
	const char	*canonical;
	int		 family;
};

static const struct parse_row addr_good[] = {
	{ "192.168.1.1", "192.168.1.1", AF_INET },
	{ "0.0.0.0", "0.0.0.0", AF_INET },
	{ "255.255.255.255", "255.255.255.255", AF_INET },
	{ "10.0.0.10", "10.0.0.10", AF_INET },
	{ "2001:db8::1", "2001:db8::1", AF_INET6 },
	{ "2001:DB8::1", "2001:db8::1", AF_INET6 },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", AF_INET6 },
	{ "::", "::", AF_INET6 },
	{ "::1", "::1", AF_INET6 },
	{ "fe80::1", "fe80::1", AF_INET6 },
	{ "::ffff:192.168.1.1", "192.168.1.1", AF_INET },
	{ "::FFFF:10.0.0.5", "10.0.0.5", AF_INET },
	{ "0:0:0:0:0:ffff:a00:5", "10.0.0.5", AF_INET },
	{ "::ffff:1:2", "0.1.0.2", AF_INET },
	{ "::ffff:1:2:3", "::ffff:1:2:3", AF_INET6 },
	{ "::1:ffff:10.0.0.5", "::1:ffff:a00:5", AF_INET6 },
	{ "64:ff9b::10.0.0.5", "64:ff9b::a00:5", AF_INET6 },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AF_INET6 },
	/* RFC 5952: no dotted quad in ::/96, whatever the C library. */
	{ "::2", "::2", AF_INET6 },
	{ "::0.0.0.2", "::2", AF_INET6 },
	{ "::10.0.0.5", "::a00:5", AF_INET6 },
	{ "::1:0", "::1:0", AF_INET6 },
	/* The longest run of zero groups, the first of equal ones. */
	{ "1:0:0:1:0:0:0:1", "1:0:0:1::1", AF_INET6 },
	{ "1:0:0:1:1:0:0:1", "1::1:1:0:0:1", AF_INET6 },
	{ "1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0", AF_INET6 },
	{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", AF_INET6 },
	{ "1::", "1::", AF_INET6 },
	{ "1:0:0:0:0:0:0:0", "1::", AF_INET6 },
	{ "0:0:1::", "0:0:1::", AF_INET6 },
};

/* A good address parses to its family and formats canonically. */
static void
test_addr_good(void **state)
{
	const struct parse_row	*row = *state;
	struct ip_addr		 addr;
	char			 err[256], text[ADDR_TEXT_MAX];

	assert_int_equal(addr_parse(row->text, &addr, err, sizeof(err)), 0);
	assert_int_equal(addr.family, row->family);
	addr_format(&addr, text, sizeof(text));
	assert_string_equal(text, row->canonical);
	assert_int_equal(addr_width(&addr), row->family == AF_INET ? 4 : 16);
}

/* Text that is not an address, and what the error must say. */
struct error_row {
	const char	*text;
	const char	*error;
};

static const struct error_row addr_bad[] = {
	{ "", "empty address" },
	{ "192.168.1", "\"192.168.1\" is not an IPv4 or IPv6 address" },
	{ "192.168.1.256", "is not an IPv4 or IPv6 address" },
	{ "192.168.01.1", "is not an IPv4 or IPv6 address" },
	{ "1.2.3.4.5", "is not an IPv4 or IPv6 address" },
	{ " 192.168.1.1", "is not an IPv4 or IPv6 address" },
	{ "192.168.1.1 ", "is not an IPv4 or IPv6 address" },
	{ "2001:db8:::1", "is not an IPv4 or IPv6 address" },
	{ "gggg::1", "is not an IPv4 or IPv6 address" },
	{ "server-01", "is not an IPv4 or IPv6 address" },
	{ "fe80::1%eth0", "zone index" },
	{ "10.0.0.0/8", "is a prefix, not a single address" },
	{ "bad\n\"name", "\"bad\\x0a\\x22name\" is not" },
};

/* Bad text is refused with a reason, and the output is left zeroed. */
static void
test_addr_bad(void **state)
{
	const struct error_row	*row = *state;
	struct ip_addr		 addr;
	char			 err[256];

	assert_int_equal(addr_parse(row->text, &addr, err, sizeof(err)), -1);
	if (strstr(err, row->error) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, row->error);
	assert_int_equal(addr.family, 0);
}

static const struct parse_row prefix_good[] = {
	{ "192.168.1.0/24", "192.168.1.0/24", AF_INET },
	{ "0.0.0.0/0", "0.0.0.0/0", AF_INET },
	{ "10.0.0.1/32", "10.0.0.1/32", AF_INET },
	{ "10.0.0.0/8", "10.0.0.0/8", AF_INET },
	{ "192.168.1.4/30", "192.168.1.4/30", AF_INET },
	{ "192.168.1.0/31", "192.168.1.0/31", AF_INET },
	{ "172.16.0.0/12", "172.16.0.0/12", AF_INET },
	{ "2001:db8::/64", "2001:db8::/64", AF_INET6 },
	{ "2001:DB8::/32", "2001:db8::/32", AF_INET6 },
	{ "::/0", "::/0", AF_INET6 },
	{ "2001:db8::1/128", "2001:db8::1/128", AF_INET6 },
	{ "2001:db8:0:2::/63", "2001:db8:0:2::/63", AF_INET6 },
	{ "::ffff:10.0.0.0/104", "10.0.0.0/8", AF_INET },
	{ "::ffff:0:0/96", "0.0.0.0/0", AF_INET },
	{ "::ffff:192.168.1.7/128", "192.168.1.7/32", AF_INET },
	{ "::/0", "::/0", AF_INET6 },
	{ "::fffe:0:0/95", "::fffe:0:0/95", AF_INET6 },
};

/* A good prefix parses to its family and formats canonically. */
static void
test_prefix_good(void **state)
{
	const struct parse_row	*row = *state;
	struct ip_prefix	 prefix;
	char			 err[256], text[ADDR_TEXT_MAX];

	if (prefix_parse(row->text, &prefix, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(prefix.addr.family, row->family);
	prefix_format(&prefix, text, sizeof(text));
	assert_string_equal(text, row->canonical);
}

static const struct error_row prefix_bad[] = {
	{ "192.168.1.1/24", "\"192.168.1.1/24\" has host bits set (did you "
	    "mean 192.168.1.0/24?)" },
	{ "10.1.2.3/8", "has host bits set (did you mean 10.0.0.0/8?)" },
	{ "192.168.1.1/31", "(did you mean 192.168.1.0/31?)" },
	{ "2001:db8::1/64", "has host bits set (did you mean 2001:db8::/64?)" },
	{ "192.168.1.0/33", "must be a number from 0 to 32" },
	{ "2001:db8::/129", "must be a number from 0 to 128" },
	{ "192.168.1.0/", "must be a number from 0 to 32" },
	{ "192.168.1.0/-1", "must be a number from 0 to 32" },
	{ "192.168.1.0/+24", "must be a number from 0 to 32" },
	{ "192.168.1.0/ 24", "must be a number from 0 to 32" },
	{ "192.168.1.0/24 ", "must be a number from 0 to 32" },
	{ "192.168.1.0/2x", "must be a number from 0 to 32" },
	{ "192.168.1.0/0024", "must be a number from 0 to 32" },
	{ "192.168.1.0/024", "\"192.168.1.0/024\" is not a prefix: the "
	    "length after / has a leading zero" },
	{ "10.0.0.0/08", "has a leading zero" },
	{ "0.0.0.0/00", "has a leading zero" },
	{ "::ffff:10.0.0.0/64", "\"::ffff:10.0.0.0/64\" is an IPv4-mapped "
	    "prefix shorter than /96" },
	{ "::ffff:0:0/95", "is an IPv4-mapped prefix shorter than /96" },
	{ "::ffff:10.0.0.1/104", "has host bits set (did you mean "
	    "10.0.0.0/8?)" },
	{ "192.168.1.0/24/24", "must be a number from 0 to 32" },
	{ "192.168.1.0", "the /length is missing" },
	{ "/24", "the address before / is missing" },
	{ "subnet/24", "the part before / is not an IPv4 or IPv6 address" },
	{ "192.168.1.300/24", "the part before / is not" },
	{ "", "the /length is missing" },
};

/* A bad prefix is refused with a reason, and the output is left zeroed. */
static void
test_prefix_bad(void **state)
{
	const struct error_row	*row = *state;
	struct ip_prefix	 prefix;
	char			 err[256];

	assert_int_equal(prefix_parse(row->text, &prefix, err, sizeof(err)),
	    -1);
	if (strstr(err, row->error) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, row->error);
	assert_int_equal(prefix.addr.family, 0);
	assert_int_equal(prefix.length, 0);
}

/* PostgreSQL's inet text, and the address host() gives (NULL: refused). */
struct inet_row {
	const char	*text;
	const char	*host;
	const char	*error;
};

static const struct inet_row inet_rows[] = {
	{ "10.10.2.71/24", "10.10.2.71", NULL },
	{ "10.10.2.71", "10.10.2.71", NULL },
	{ "10.10.2.71/32", "10.10.2.71", NULL },
	{ "10.10.2.0/24", "10.10.2.0", NULL },
	{ "2001:db8::5/64", "2001:db8::5", NULL },
	{ "::ffff:10.0.0.5/120", "10.0.0.5", NULL },
	{ "::ffff:10.0.0.5/64", "10.0.0.5", NULL },
	{ "10.10.2.71/33", NULL, "\"10.10.2.71/33\" is not an inet value: "
	    "the length after / must be a number from 0 to 32" },
	{ "10.10.2.71/024", NULL, "the length after / has a leading zero" },
	{ "10.10.2.71/", NULL, "must be a number from 0 to 32" },
	{ "10.10.2.71/24/24", NULL, "must be a number from 0 to 32" },
	{ "/24", NULL, "the address before / is missing" },
	{ "host/24", NULL, "the part before / is not an IPv4 or IPv6 address" },
	{ "fe80::1%eth0/64", NULL, "the part before / is not an IPv4 or IPv6 "
	    "address (a zone index, %..., is not allowed)" },
	{ "", NULL, "empty address" },
};

/* addr_parse_inet takes an inet value's host part, or says why not. */
static void
test_inet(void **state)
{
	const struct inet_row	*row = *state;
	struct ip_addr		 addr;
	char			 err[256], text[ADDR_TEXT_MAX];

	if (row->host == NULL) {
		assert_int_equal(addr_parse_inet(row->text, &addr, err,
		    sizeof(err)), -1);
		if (strstr(err, row->error) == NULL)
			fail_msg("error \"%s\" lacks \"%s\"", err, row->error);
		assert_int_equal(addr.family, 0);
		return;
	}
	if (addr_parse_inet(row->text, &addr, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	addr_format(&addr, text, sizeof(text));
	assert_string_equal(text, row->host);
}

/* Whether a prefix contains an address, and its first and last address. */
struct contains_row {
	const char	*prefix;
	const char	*addr;
	bool		 contains;
	const char	*first;
	const char	*last;
};

static const struct contains_row contains_rows[] = {
	{ "192.168.1.0/24", "192.168.1.10", true, "192.168.1.0",
	    "192.168.1.255" },
	{ "192.168.1.0/24", "192.168.1.0", true, "192.168.1.0",
	    "192.168.1.255" },
	{ "192.168.1.0/24", "192.168.1.255", true, "192.168.1.0",
	    "192.168.1.255" },
	{ "192.168.1.0/24", "192.168.2.0", false, "192.168.1.0",
	    "192.168.1.255" },
	{ "192.168.1.0/24", "192.168.0.255", false, "192.168.1.0",
	    "192.168.1.255" },
	{ "10.0.0.0/8", "10.255.0.1", true, "10.0.0.0", "10.255.255.255" },
	{ "10.0.0.4/30", "10.0.0.8", false, "10.0.0.4", "10.0.0.7" },
	{ "10.0.0.4/31", "10.0.0.5", true, "10.0.0.4", "10.0.0.5" },
	{ "10.0.0.4/32", "10.0.0.4", true, "10.0.0.4", "10.0.0.4" },
	{ "10.0.0.4/32", "10.0.0.5", false, "10.0.0.4", "10.0.0.4" },
	{ "0.0.0.0/0", "203.0.113.7", true, "0.0.0.0", "255.255.255.255" },
	{ "0.0.0.0/0", "::1", false, "0.0.0.0", "255.255.255.255" },
	{ "2001:db8::/64", "2001:db8::dead:beef", true, "2001:db8::",
	    "2001:db8::ffff:ffff:ffff:ffff" },
	{ "2001:db8::/64", "2001:db8:0:1::1", false, "2001:db8::",
	    "2001:db8::ffff:ffff:ffff:ffff" },
	{ "2001:db8::/64", "192.168.1.1", false, "2001:db8::",
	    "2001:db8::ffff:ffff:ffff:ffff" },
	{ "2001:db8::/61", "2001:db8:0:7::1", true, "2001:db8::",
	    "2001:db8:0:7:ffff:ffff:ffff:ffff" },
	{ "::/0", "ffff::", true, "::",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	{ "::ffff:0:0/96", "::ffff:192.168.1.1", true, "0.0.0.0",
	    "255.255.255.255" },
};

/* prefix_contains, prefix_first and prefix_last agree with the row. */
static void
test_prefix_contains(void **state)
{
	const struct contains_row	*row = *state;
	struct ip_prefix		 prefix = prefix_of(row->prefix);
	struct ip_addr			 addr = addr_of(row->addr), edge;
	char				 text[ADDR_TEXT_MAX];

	assert_int_equal(prefix_contains(&prefix, &addr), row->contains);
	prefix_first(&prefix, &edge);
	addr_format(&edge, text, sizeof(text));
	assert_string_equal(text, row->first);
	prefix_last(&prefix, &edge);
	addr_format(&edge, text, sizeof(text));
	assert_string_equal(text, row->last);
}

/* Whether one prefix covers another. */
struct covers_row {
	const char	*outer;
	const char	*inner;
	bool		 covers;
};

static const struct covers_row covers_rows[] = {
	{ "192.168.0.0/16", "192.168.1.0/24", true },
	{ "192.168.1.0/24", "192.168.1.0/24", true },
	{ "192.168.1.0/24", "192.168.0.0/16", false },
	{ "192.168.1.0/24", "192.168.2.0/24", false },
	{ "192.168.1.0/24", "192.168.1.128/25", true },
	{ "0.0.0.0/0", "10.0.0.0/8", true },
	{ "0.0.0.0/0", "2001:db8::/32", false },
	{ "2001:db8::/32", "2001:db8:1::/48", true },
	{ "2001:db8:1::/48", "2001:db8::/32", false },
};

/* prefix_covers agrees with the row. */
static void
test_prefix_covers(void **state)
{
	const struct covers_row	*row = *state;
	struct ip_prefix	 outer = prefix_of(row->outer);
	struct ip_prefix	 inner = prefix_of(row->inner);

	assert_int_equal(prefix_covers(&outer, &inner), row->covers);
}

/* An address stepped up or down, and whether it wrapped. */
struct step_row {
	const char	*from;
	int		 step;		/* +1 or -1 */
	const char	*to;
	bool		 ok;
};

static const struct step_row step_rows[] = {
	{ "192.168.1.1", 1, "192.168.1.2", true },
	{ "192.168.1.255", 1, "192.168.2.0", true },
	{ "10.255.255.255", 1, "11.0.0.0", true },
	{ "255.255.255.255", 1, "0.0.0.0", false },
	{ "192.168.2.0", -1, "192.168.1.255", true },
	{ "0.0.0.0", -1, "255.255.255.255", false },
	{ "2001:db8::ffff", 1, "2001:db8::1:0", true },
	{ "2001:db8::", -1, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, "::", false },
	{ "::", -1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false },
};

/* addr_increment and addr_decrement carry, borrow and report wrapping. */
static void
test_addr_step(void **state)
{
	const struct step_row	*row = *state;
	struct ip_addr		 addr = addr_of(row->from);
	char			 text[ADDR_TEXT_MAX];
	bool			 ok;

	ok = row->step > 0 ? addr_increment(&addr) : addr_decrement(&addr);
	assert_int_equal(ok, row->ok);
	addr_format(&addr, text, sizeof(text));
	assert_string_equal(text, row->to);
}

/* The order of two addresses: -1, 0 or 1. */
struct compare_row {
	const char	*a;
	const char	*b;
	int		 order;
};

static const struct compare_row compare_rows[] = {
	{ "192.168.1.1", "192.168.1.1", 0 },
	{ "192.168.1.1", "192.168.1.2", -1 },
	{ "192.168.1.10", "192.168.1.9", 1 },
	{ "10.0.0.1", "9.255.255.255", 1 },
	{ "255.255.255.255", "::", -1 },
	{ "::", "0.0.0.0", 1 },
	{ "2001:db8::1", "2001:db8::2", -1 },
	{ "2001:db8::1", "2001:DB8::1", 0 },
};

/* addr_compare orders by family, then by value. */
static void
test_addr_compare(void **state)
{
	const struct compare_row	*row = *state;
	struct ip_addr			 a = addr_of(row->a);
	struct ip_addr			 b = addr_of(row->b);

	assert_int_equal(addr_compare(&a, &b), row->order);
	assert_int_equal(addr_compare(&b, &a), -row->order);
}

/* How many addresses a range holds. */
struct size_row {
	const char	*first;
	const char	*last;
	uint64_t	 size;
};

static const struct size_row size_rows[] = {
	{ "192.168.1.1", "192.168.1.50", 50 },
	{ "192.168.1.7", "192.168.1.7", 1 },
	{ "10.0.0.255", "10.0.1.0", 2 },
	{ "192.168.1.50", "192.168.1.1", 0 },
	{ "192.168.1.1", "2001:db8::1", 0 },
	{ "0.0.0.0", "255.255.255.255", 4294967296ULL },
	{ "2001:db8::", "2001:db8::ffff", 65536 },
	{ "2001:db8::1", "2001:db8::1:0", 65536 },
	{ "::", "::ffff:ffff:ffff:fffd", UINT64_MAX - 1 },
	{ "::", "::ffff:ffff:ffff:fffe", UINT64_MAX },
	{ "::", "::ffff:ffff:ffff:ffff", UINT64_MAX },
	{ "::", "::1:0:0:0:0", UINT64_MAX },
	{ "2001:db8::", "2001:db8:0:1::", UINT64_MAX },
	{ "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UINT64_MAX },
	{ "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::", 2 },
};

/* addr_range_size counts inclusively and saturates. */
static void
test_range_size(void **state)
{
	const struct size_row	*row = *state;
	struct ip_addr		 first = addr_of(row->first);
	struct ip_addr		 last = addr_of(row->last);

	assert_true(addr_range_size(&first, &last) == row->size);
}

/* Formatting into a short buffer cuts the text and still ends it. */
static void
test_format_short(void **state)
{
	struct ip_addr		addr = addr_of("2001:db8::1");
	struct ip_prefix	prefix = prefix_of("192.168.1.0/24");
	char			buf[8];

	(void)state;
	addr_format(&addr, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db");
	prefix_format(&prefix, buf, sizeof(buf));
	assert_string_equal(buf, "192.168");
	memset(&addr, 0, sizeof(addr));
	addr_format(&addr, buf, sizeof(buf));
	assert_string_equal(buf, "?");
}

/*
 * addr_format over random IPv6 addresses, zero groups often and ::/96
 * half the time: the text parses back to the same address, and outside
 * ::/96 (where glibc writes a dotted quad) it is what inet_ntop writes,
 * which follows RFC 5952 there.
 */
static void
test_format_random(void **state)
{
	uint64_t	seed = 0x2545f4914f6cdd1dULL;
	struct ip_addr	addr, back;
	char		text[ADDR_TEXT_MAX], libc[INET6_ADDRSTRLEN];
	char		err[256];
	int		round, b;
	bool		low;

	(void)state;
	for (round = 0; round < 20000; round++) {
		memset(&addr, 0, sizeof(addr));
		addr.family = AF_INET6;
		low = round % 2 == 0;
		for (b = low ? 12 : 0; b < 16; b += 2) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			if (seed % 3 == 0)
				continue;	/* a zero group */
			addr.bytes[b] = (uint8_t)(seed >> 16);
			addr.bytes[b + 1] = (uint8_t)(seed >> 24);
		}
		/* A mapped address is an IPv4 address: not this test's. */
		if (addr.bytes[10] == 0xff && addr.bytes[11] == 0xff &&
		    memcmp(addr.bytes, "\0\0\0\0\0\0\0\0\0\0", 10) == 0)
			continue;
		addr_format(&addr, text, sizeof(text));
		if (addr_parse(text, &back, err, sizeof(err)) == -1)
			fail_msg("%s: %s", text, err);
		if (back.family != AF_INET6 ||
		    memcmp(back.bytes, addr.bytes, 16) != 0)
			fail_msg("%s does not parse back to itself", text);
		if (strspn(text, "0123456789abcdef:") != strlen(text))
			fail_msg("%s: not lower-case hex and colons", text);
		if (!low) {
			inet_ntop(AF_INET6, addr.bytes, libc, sizeof(libc));
			if (strchr(libc, '.') == NULL)
				assert_string_equal(text, libc);
		}
	}
}

/* Runs every table of address and prefix cases; exits non-zero on a failure. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_format_short),
		cmocka_unit_test(test_format_random),
	};
	int			failed = 0;

	failed += support_run_rows("addr_good", test_addr_good, addr_good,
	    sizeof(addr_good[0]), ROWS(addr_good));
	failed += support_run_rows("addr_bad", test_addr_bad, addr_bad,
	    sizeof(addr_bad[0]), ROWS(addr_bad));
	failed += support_run_rows("prefix_good", test_prefix_good,
	    prefix_good, sizeof(prefix_good[0]), ROWS(prefix_good));
	failed += support_run_rows("prefix_bad", test_prefix_bad, prefix_bad,
	    sizeof(prefix_bad[0]), ROWS(prefix_bad));
	failed += support_run_rows("inet", test_inet, inet_rows,
	    sizeof(inet_rows[0]), ROWS(inet_rows));
	failed += support_run_rows("prefix_contains", test_prefix_contains,
	    contains_rows, sizeof(contains_rows[0]), ROWS(contains_rows));
	failed += support_run_rows("prefix_covers", test_prefix_covers,
	    covers_rows, sizeof(covers_rows[0]), ROWS(covers_rows));
	failed += support_run_rows("addr_step", test_addr_step, step_rows,
	    sizeof(step_rows[0]), ROWS(step_rows));
	failed += support_run_rows("addr_compare", test_addr_compare,
	    compare_rows, sizeof(compare_rows[0]), ROWS(compare_rows));
	failed += support_run_rows("range_size", test_range_size, size_rows,
	    sizeof(size_rows[0]), ROWS(size_rows));
	failed += cmocka_run_group_tests_name("addr_misc", single, NULL, NULL);
	return failed != 0;
}
