/* ICMP echo packets of the ping sweeper: the keyed cookie, build and parse. */
#ifndef IPAM_SWEEPER_SWEEP_PACKET_H
#define IPAM_SWEEPER_SWEEP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The secret key of the cookies, and the cookie an echo request carries. */
#define SWEEP_KEY_LEN		16
#define SWEEP_COOKIE_LEN	16

/* An echo request: the 8-byte ICMP header, then the cookie as payload. */
#define SWEEP_ECHO_LEN		(8 + SWEEP_COOKIE_LEN)

/* ICMP and ICMPv6 message types the sweeper sends and accepts. */
#define SWEEP_ICMP_ECHO_REQUEST		8
#define SWEEP_ICMP_ECHO_REPLY		0
#define SWEEP_ICMP6_ECHO_REQUEST	128
#define SWEEP_ICMP6_ECHO_REPLY		129

/* An address of either family; an IPv4 address fills the first 4 bytes. */
struct sweep_addr {
	uint8_t	family;			/* AF_INET or AF_INET6 */
	uint8_t	bytes[16];
};

/* What sweep_echo_parse() found in a datagram. */
enum sweep_parse_result {
	SWEEP_PARSE_REPLY,		/* an echo reply; *reply is filled */
	SWEEP_PARSE_OTHER,		/* a well-formed ICMP message of another type */
	SWEEP_PARSE_MALFORMED,		/* too short, bad header or bad checksum */
};

/* The fields of an echo reply; payload points into the parsed buffer. */
struct sweep_reply {
	uint16_t	 identifier;
	uint16_t	 sequence;
	const uint8_t	*payload;
	size_t		 payload_len;
};

/*
 * SipHash-2-4 with a 128-bit tag (Aumasson and Bernstein's reference
 * construction): a keyed pseudo-random function, fast on short inputs.
 */
void	sweep_siphash128(const uint8_t key[SWEEP_KEY_LEN], const void *data,
	    size_t len, uint8_t out[16]);

/*
 * The cookie of one probe: the keyed hash of the probed address, the
 * sequence number and the send time, so that only the sweeper can make
 * the payload of a reply it will accept, and only for that one probe.
 */
void	sweep_cookie(const uint8_t key[SWEEP_KEY_LEN],
	    const struct sweep_addr *addr, uint16_t sequence, int64_t sent_ns,
	    uint8_t out[SWEEP_COOKIE_LEN]);

/* Compares two cookies in time that does not depend on where they differ. */
bool	sweep_cookie_equal(const uint8_t *a, const uint8_t *b);

/* The Internet checksum (RFC 1071) of a buffer, ready to store as is. */
uint16_t sweep_checksum(const void *data, size_t len);

/*
 * Writes an echo request of the family into buf (SWEEP_ECHO_LEN bytes):
 * type, code, identifier, sequence and the cookie; for IPv4 also the
 * checksum (the kernel computes ICMPv6 checksums, and overwrites the
 * identifier and checksum on ping sockets).
 */
void	sweep_echo_build(uint8_t buf[SWEEP_ECHO_LEN], int family,
	    uint16_t identifier, uint16_t sequence,
	    const uint8_t cookie[SWEEP_COOKIE_LEN]);

/*
 * Parses a datagram read from an ICMP socket of the family.  With
 * ip_header (raw IPv4 sockets) the datagram starts with the IPv4 header,
 * which is checked and stripped.  IPv4 checksums are verified here; the
 * kernel verifies ICMPv6 checksums.
 */
enum sweep_parse_result sweep_echo_parse(const uint8_t *buf, size_t len,
	    int family, bool ip_header, struct sweep_reply *reply);

#endif
