/* Unit tests of the sweeper's packets: SipHash, cookies, build and parse. */
#include <sys/socket.h>

#include <arpa/inet.h>

#include <string.h>

#include "sweeper/sweep_packet.h"
#include "test_support.h"

/* A SipHash-2-4-128 test vector: key 00..0f, message 00..len-1. */
struct siphash_row {
	const char	*name;
	size_t		 len;
	uint8_t		 tag[16];
};

/* From the reference implementation's vectors.h (vectors_sip128). */
static const struct siphash_row siphash_rows[] = {
	{ "empty", 0, { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d,
	    0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 } },
	{ "1 byte", 1, { 0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34,
	    0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45 } },
	{ "7 bytes", 7, { 0xa1, 0xf1, 0xeb, 0xbe, 0xd8, 0xdb, 0xc1, 0x53, 0xc0,
	    0xb8, 0x4a, 0xa6, 0x1f, 0xf0, 0x82, 0x39 } },
	{ "one block", 8, { 0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61,
	    0x0f, 0x83, 0xe2, 0x64, 0xf3, 0x14, 0x97, 0xb4 } },
	{ "15 bytes", 15, { 0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11,
	    0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9 } },
	{ "two blocks", 16, { 0x6e, 0xe2, 0xa4, 0xca, 0x67, 0xb0, 0x54, 0xbb,
	    0xfd, 0x33, 0x15, 0xbf, 0x85, 0x23, 0x05, 0x77 } },
	{ "63 bytes", 63, { 0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a,
	    0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c } },
};

/* The hash of a reference message is the reference tag. */
static void
test_siphash(void **state)
{
	const struct siphash_row	*row = *state;
	uint8_t				 key[16], message[64], tag[16];
	size_t				 i;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < sizeof(message); i++)
		message[i] = (uint8_t)i;
	sweep_siphash128(key, message, row->len, tag);
	assert_memory_equal(tag, row->tag, sizeof(tag));
}

/* Makes an address from text. */
static struct sweep_addr
addr_of(const char *text)
{
	struct sweep_addr	addr;

	memset(&addr, 0, sizeof(addr));
	if (inet_pton(AF_INET, text, addr.bytes) == 1)
		addr.family = AF_INET;
	else if (inet_pton(AF_INET6, text, addr.bytes) == 1)
		addr.family = AF_INET6;
	else
		fail_msg("test data: %s is not an address", text);
	return addr;
}

/* A cookie depends on the key, the address, the sequence and the time. */
static void
test_cookie_inputs(void **state)
{
	uint8_t			key[SWEEP_KEY_LEN] = { 1, 2, 3 }, other_key[16];
	uint8_t			base[16], again[16], changed[16];
	struct sweep_addr	addr = addr_of("192.0.2.7");
	struct sweep_addr	other;

	sweep_cookie(key, &addr, 77, 123456789, base);
	sweep_cookie(key, &addr, 77, 123456789, again);
	assert_memory_equal(base, again, 16);
	assert_true(sweep_cookie_equal(base, again));

	sweep_cookie(key, &addr, 78, 123456789, changed);
	assert_false(sweep_cookie_equal(base, changed));
	sweep_cookie(key, &addr, 77, 123456790, changed);
	assert_false(sweep_cookie_equal(base, changed));
	other = addr_of("192.0.2.8");
	sweep_cookie(key, &other, 77, 123456789, changed);
	assert_false(sweep_cookie_equal(base, changed));
	memcpy(other_key, key, sizeof(other_key));
	other_key[15] ^= 1;
	sweep_cookie(other_key, &addr, 77, 123456789, changed);
	assert_false(sweep_cookie_equal(base, changed));

	/* The same 16 bytes as IPv4 and as IPv6 are not the same probe. */
	other = addr;
	other.family = AF_INET6;
	sweep_cookie(key, &other, 77, 123456789, changed);
	assert_false(sweep_cookie_equal(base, changed));
}

/* The comparison finds a difference in any byte. */
static void
test_cookie_equal(void **state)
{
	uint8_t	a[SWEEP_COOKIE_LEN], b[SWEEP_COOKIE_LEN];
	size_t	i;

	for (i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7);
	memcpy(b, a, sizeof(b));
	assert_true(sweep_cookie_equal(a, b));
	for (i = 0; i < sizeof(a); i++) {
		memcpy(b, a, sizeof(b));
		b[i] ^= 0x80;
		assert_false(sweep_cookie_equal(a, b));
	}
}

/* The checksum of RFC 1071's example, and of an odd length. */
static void
test_checksum(void **state)
{
	static const uint8_t	rfc[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5,
	    0xf6, 0xf7 };
	static const uint8_t	odd[] = { 0x12, 0x34, 0x56 };

	/* RFC 1071 section 3: the folded sum is 0xddf2. */
	assert_int_equal(sweep_checksum(rfc, sizeof(rfc)), 0xffff - 0xddf2);
	/* 0x1234 + 0x5600 = 0x6834. */
	assert_int_equal(sweep_checksum(odd, sizeof(odd)), 0xffff - 0x6834);
	assert_int_equal(sweep_checksum(NULL, 0), 0xffff);
}

/* Echo requests of both families carry the fields where they belong. */
static void
test_build(void **state)
{
	uint8_t	cookie[SWEEP_COOKIE_LEN], packet[SWEEP_ECHO_LEN];
	size_t	i;

	for (i = 0; i < sizeof(cookie); i++)
		cookie[i] = (uint8_t)(0xa0 + i);
	sweep_echo_build(packet, AF_INET, 0x1234, 0xfedc, cookie);
	assert_int_equal(packet[0], SWEEP_ICMP_ECHO_REQUEST);
	assert_int_equal(packet[1], 0);
	assert_int_equal(packet[4] << 8 | packet[5], 0x1234);
	assert_int_equal(packet[6] << 8 | packet[7], 0xfedc);
	assert_memory_equal(packet + 8, cookie, sizeof(cookie));
	/* A correct checksum makes the sum over the whole packet 0. */
	assert_int_equal(sweep_checksum(packet, sizeof(packet)), 0);

	sweep_echo_build(packet, AF_INET6, 0x1234, 0x0001, cookie);
	assert_int_equal(packet[0], SWEEP_ICMP6_ECHO_REQUEST);
	assert_int_equal(packet[2] << 8 | packet[3], 0);  /* the kernel's job */
	assert_int_equal(packet[6] << 8 | packet[7], 1);
	assert_memory_equal(packet + 8, cookie, sizeof(cookie));
}

/* How a test datagram is made, and what parsing it must give. */
struct parse_row {
	const char			*name;
	int				 family;
	bool				 ip_header;	/* as a raw IPv4 socket */
	uint8_t				 type;
	uint8_t				 code;
	size_t				 payload_len;
	int				 ip_version;	/* 0: 4 */
	int				 ip_words;	/* IHL; 0: 5 */
	int				 ip_protocol;	/* 0: 1 */
	int				 total_extra;	/* added to the total length */
	size_t				 cut;		/* bytes cut off the end */
	bool				 bad_checksum;
	enum sweep_parse_result		 expect;
};

static const struct parse_row parse_rows[] = {
	{ "raw IPv4 reply", AF_INET, true, 0, 0, 16, 0, 0, 0, 0, 0, false,
	    SWEEP_PARSE_REPLY },
	{ "raw IPv4 reply with IP options", AF_INET, true, 0, 0, 16, 0, 7, 0, 0,
	    0, false, SWEEP_PARSE_REPLY },
	{ "raw IPv4 reply, longer payload", AF_INET, true, 0, 0, 56, 0, 0, 0,
	    0, 0, false, SWEEP_PARSE_REPLY },
	{ "raw IPv4 reply, no payload", AF_INET, true, 0, 0, 0, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_REPLY },
	{ "raw IPv4 echo request", AF_INET, true, 8, 0, 16, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_OTHER },
	{ "raw IPv4 unreachable", AF_INET, true, 3, 1, 16, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_OTHER },
	{ "raw IPv4 reply with a code", AF_INET, true, 0, 1, 16, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_OTHER },
	{ "raw IPv4 bad ICMP checksum", AF_INET, true, 0, 0, 16, 0, 0, 0, 0, 0,
	    true, SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 header cut short", AF_INET, true, 0, 0, 0, 0, 0, 0, 0, 9,
	    false, SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 version 6", AF_INET, true, 0, 0, 16, 6, 0, 0, 0, 0, false,
	    SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 header length 16", AF_INET, true, 0, 0, 16, 0, 4, 0, 0, 0,
	    false, SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 header past the end", AF_INET, true, 0, 0, 0, 0, 15, 0, 0,
	    10, false, SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 not ICMP", AF_INET, true, 0, 0, 16, 0, 0, 17, 0, 0, false,
	    SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 total length past the end", AF_INET, true, 0, 0, 16, 0, 0,
	    0, 1, 0, false, SWEEP_PARSE_MALFORMED },
	{ "raw IPv4 ICMP header cut short", AF_INET, true, 0, 0, 0, 0, 0, 0, -1,
	    1, false, SWEEP_PARSE_MALFORMED },
	{ "ping socket IPv4 reply", AF_INET, false, 0, 0, 16, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_REPLY },
	{ "ping socket IPv4 bad checksum", AF_INET, false, 0, 0, 16, 0, 0, 0, 0,
	    0, true, SWEEP_PARSE_MALFORMED },
	{ "ping socket IPv4 too short", AF_INET, false, 0, 0, 0, 0, 0, 0, 0, 1,
	    false, SWEEP_PARSE_MALFORMED },
	{ "IPv6 reply", AF_INET6, false, 129, 0, 16, 0, 0, 0, 0, 0, false,
	    SWEEP_PARSE_REPLY },
	{ "IPv6 checksum is the kernel's to check", AF_INET6, false, 129, 0, 16,
	    0, 0, 0, 0, 0, true, SWEEP_PARSE_REPLY },
	{ "IPv6 echo request", AF_INET6, false, 128, 0, 16, 0, 0, 0, 0, 0, false,
	    SWEEP_PARSE_OTHER },
	{ "IPv6 IPv4's reply type", AF_INET6, false, 0, 0, 16, 0, 0, 0, 0, 0,
	    false, SWEEP_PARSE_OTHER },
	{ "IPv6 too short", AF_INET6, false, 129, 0, 0, 0, 0, 0, 0, 2, false,
	    SWEEP_PARSE_MALFORMED },
};

/* Builds a row's datagram into buf; returns its length and the ICMP offset. */
static size_t
parse_row_datagram(const struct parse_row *row, uint8_t *buf, size_t *icmp_at)
{
	size_t	header = 0, icmp_len = 8 + row->payload_len, i, len;
	int	words = row->ip_words ? row->ip_words : 5;

	memset(buf, 0, 256);
	if (row->ip_header) {
		header = (size_t)words * 4;
		buf[0] = (uint8_t)((row->ip_version ? row->ip_version : 4) << 4 |
		    words);
		len = header + icmp_len + (size_t)row->total_extra;
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
		buf[8] = 64;
		buf[9] = (uint8_t)(row->ip_protocol ? row->ip_protocol : 1);
	}
	*icmp_at = header;
	buf[header] = row->type;
	buf[header + 1] = row->code;
	buf[header + 4] = 0xbe;
	buf[header + 5] = 0xef;
	buf[header + 6] = 0x01;
	buf[header + 7] = 0x02;
	for (i = 0; i < row->payload_len; i++)
		buf[header + 8 + i] = (uint8_t)(0x40 + i);
	if (row->family == AF_INET) {
		uint16_t sum = sweep_checksum(buf + header, icmp_len);

		buf[header + 2] = (uint8_t)(sum >> 8);
		buf[header + 3] = (uint8_t)sum;
	}
	if (row->bad_checksum)
		buf[header + 2] ^= 0x01;
	return header + icmp_len - row->cut;
}

/* A datagram parses to what its row expects, with the fields of a reply. */
static void
test_parse(void **state)
{
	const struct parse_row	*row = *state;
	struct sweep_reply	 reply;
	uint8_t			 buf[256];
	size_t			 len, icmp_at;

	len = parse_row_datagram(row, buf, &icmp_at);
	assert_int_equal(sweep_echo_parse(buf, len, row->family,
	    row->ip_header, &reply), row->expect);
	if (row->expect != SWEEP_PARSE_REPLY)
		return;
	assert_int_equal(reply.identifier, 0xbeef);
	assert_int_equal(reply.sequence, 0x0102);
	assert_int_equal(reply.payload_len, row->payload_len);
	assert_ptr_equal(reply.payload, buf + icmp_at + 8);
}

/* What sweep_echo_build() writes, sweep_echo_parse() reads as a request. */
static void
test_build_then_parse(void **state)
{
	uint8_t			cookie[SWEEP_COOKIE_LEN] = { 9, 8, 7 };
	uint8_t			packet[SWEEP_ECHO_LEN];
	struct sweep_reply	reply;
	uint16_t		sum;

	sweep_echo_build(packet, AF_INET, 7, 9, cookie);
	assert_int_equal(sweep_echo_parse(packet, sizeof(packet), AF_INET,
	    false, &reply), SWEEP_PARSE_OTHER);
	/* Turned into a reply (type 0, checksum fixed), it parses as one. */
	packet[0] = SWEEP_ICMP_ECHO_REPLY;
	packet[2] = packet[3] = 0;
	sum = sweep_checksum(packet, sizeof(packet));
	packet[2] = (uint8_t)(sum >> 8);
	packet[3] = (uint8_t)sum;
	assert_int_equal(sweep_echo_parse(packet, sizeof(packet), AF_INET,
	    false, &reply), SWEEP_PARSE_REPLY);
	assert_int_equal(reply.sequence, 9);
	assert_int_equal(reply.payload_len, SWEEP_COOKIE_LEN);
	assert_memory_equal(reply.payload, cookie, SWEEP_COOKIE_LEN);
}

/* Runs every table and single test. */
int
main(void)
{
	const struct CMUnitTest	single[] = {
		cmocka_unit_test(test_cookie_inputs),
		cmocka_unit_test(test_cookie_equal),
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_build_then_parse),
	};
	int			failed = 0;

	failed += support_run_rows("siphash", test_siphash, siphash_rows,
	    sizeof(siphash_rows[0]), ROWS(siphash_rows));
	failed += support_run_rows("parse", test_parse, parse_rows,
	    sizeof(parse_rows[0]), ROWS(parse_rows));
	failed += cmocka_run_group_tests_name("packet", single, NULL, NULL);
	return failed != 0;
}
