/* ICMP echo packets of the ping sweeper: the keyed cookie, build and parse. */
#include <sys/socket.h>

#include <string.h>

#include "sweeper/sweep_packet.h"

/* Reads 8 bytes as a little-endian number. */
static uint64_t
sweep_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Writes a number as 8 little-endian bytes. */
static void
sweep_put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Reads 2 bytes in network order. */
static uint16_t
sweep_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Writes a number as 2 bytes in network order. */
static void
sweep_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

#define SWEEP_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound over the four state words. */
static void
sweep_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SWEEP_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SWEEP_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SWEEP_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SWEEP_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SWEEP_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SWEEP_ROTL(v[2], 32);
}

/* SipHash-2-4 with a 128-bit tag. */
void
sweep_siphash128(const uint8_t key[SWEEP_KEY_LEN], const void *data,
    size_t len, uint8_t out[16])
{
	const uint8_t *in = data;
	uint64_t k0 = sweep_le64(key), k1 = sweep_le64(key + 8);
	uint64_t v[4], m;
	uint8_t tail[8];
	size_t i, whole = len - len % 8;

	v[0] = 0x736f6d6570736575ULL ^ k0;
	v[1] = 0x646f72616e646f6dULL ^ k1 ^ 0xee;	/* 0xee: 128-bit tag */
	v[2] = 0x6c7967656e657261ULL ^ k0;
	v[3] = 0x7465646279746573ULL ^ k1;
	for (i = 0; i < whole; i += 8) {
		m = sweep_le64(in + i);
		v[3] ^= m;
		sweep_sipround(v);
		sweep_sipround(v);
		v[0] ^= m;
	}
	/* The last block: the bytes left, and the length in the top byte. */
	memset(tail, 0, sizeof(tail));
	memcpy(tail, in + whole, len - whole);
	tail[7] = (uint8_t)len;
	m = sweep_le64(tail);
	v[3] ^= m;
	sweep_sipround(v);
	sweep_sipround(v);
	v[0] ^= m;

	v[2] ^= 0xee;
	for (i = 0; i < 4; i++)
		sweep_sipround(v);
	sweep_put_le64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
	v[1] ^= 0xdd;
	for (i = 0; i < 4; i++)
		sweep_sipround(v);
	sweep_put_le64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
}

/* The cookie of one probe. */
void
sweep_cookie(const uint8_t key[SWEEP_KEY_LEN], const struct sweep_addr *addr,
    uint16_t sequence, int64_t sent_ns, uint8_t out[SWEEP_COOKIE_LEN])
{
	uint8_t message[1 + 16 + 2 + 8];

	/* A fixed layout, so that no two probes hash the same bytes. */
	message[0] = addr->family == AF_INET ? 4 : 6;
	memcpy(message + 1, addr->bytes, 16);
	sweep_put_be16(message + 17, sequence);
	sweep_put_le64(message + 19, (uint64_t)sent_ns);
	sweep_siphash128(key, message, sizeof(message), out);
}

/* Compares two cookies in constant time. */
bool
sweep_cookie_equal(const uint8_t *a, const uint8_t *b)
{
	/* volatile: the compiler must not turn the loop into an early exit. */
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < SWEEP_COOKIE_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* The Internet checksum of a buffer. */
uint16_t
sweep_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += sweep_be16(p + i);
	if (len % 2 == 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Writes an echo request. */
void
sweep_echo_build(uint8_t buf[SWEEP_ECHO_LEN], int family, uint16_t identifier,
    uint16_t sequence, const uint8_t cookie[SWEEP_COOKIE_LEN])
{
	buf[0] = family == AF_INET ? SWEEP_ICMP_ECHO_REQUEST :
	    SWEEP_ICMP6_ECHO_REQUEST;
	buf[1] = 0;
	sweep_put_be16(buf + 2, 0);
	sweep_put_be16(buf + 4, identifier);
	sweep_put_be16(buf + 6, sequence);
	memcpy(buf + 8, cookie, SWEEP_COOKIE_LEN);
	if (family == AF_INET)
		sweep_put_be16(buf + 2, sweep_checksum(buf, SWEEP_ECHO_LEN));
}

/* Parses a datagram read from an ICMP socket. */
enum sweep_parse_result
sweep_echo_parse(const uint8_t *buf, size_t len, int family, bool ip_header,
    struct sweep_reply *reply)
{
	size_t header_len, total;

	if (family == AF_INET && ip_header) {
		/* A raw IPv4 socket hands over the whole packet. */
		if (len < 20 || buf[0] >> 4 != 4)
			return SWEEP_PARSE_MALFORMED;
		header_len = (size_t)(buf[0] & 0x0f) * 4;
		total = sweep_be16(buf + 2);
		if (header_len < 20 || total < header_len || total > len ||
		    buf[9] != 1)
			return SWEEP_PARSE_MALFORMED;
		buf += header_len;
		len = total - header_len;
	}
	if (len < 8)
		return SWEEP_PARSE_MALFORMED;
	if (family == AF_INET && sweep_checksum(buf, len) != 0)
		return SWEEP_PARSE_MALFORMED;
	if (buf[1] != 0 || buf[0] != (family == AF_INET ?
	    SWEEP_ICMP_ECHO_REPLY : SWEEP_ICMP6_ECHO_REPLY))
		return SWEEP_PARSE_OTHER;
	reply->identifier = sweep_be16(buf + 4);
	reply->sequence = sweep_be16(buf + 6);
	reply->payload = buf + 8;
	reply->payload_len = len - 8;
	return SWEEP_PARSE_REPLY;
}
