/* Parsing, formatting and arithmetic of IPv4/IPv6 addresses and prefixes. */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

/* Longest piece of a caller's text quoted back in an error message. */
#define ADDR_QUOTE_MAX	64

/*
 * Copies text into buf as a double-quoted string for an error message,
 * escaping anything but printable ASCII and cutting it short when long.
 */
static void
addr_quote(const char *text, char *buf, size_t buflen)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)text;
	size_t			 used = 0, shown = 0;

	if (buflen < 8) {
		if (buflen > 0)
			buf[0] = '\0';
		return;
	}
	buf[used++] = '"';
	for (; *p != '\0'; p++, shown++) {
		/* Keep room for an escape, "...", the closing quote and NUL. */
		if (shown == ADDR_QUOTE_MAX || used + 9 > buflen) {
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			buf[used++] = (char)*p;
		else {
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[*p >> 4];
			buf[used++] = hex[*p & 0xf];
		}
	}
	buf[used++] = '"';
	buf[used] = '\0';
}

/*
 * Turns an IPv4-mapped IPv6 address (::ffff:a.b.c.d) into the IPv4
 * address it stands for; returns whether it did.
 */
static bool
addr_unmap(struct ip_addr *addr)
{
	static const uint8_t	mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	if (addr->family != AF_INET6 ||
	    memcmp(addr->bytes, mapped, sizeof(mapped)) != 0)
		return false;
	memmove(addr->bytes, addr->bytes + sizeof(mapped), 4);
	memset(addr->bytes + 4, 0, sizeof(addr->bytes) - 4);
	addr->family = AF_INET;
	return true;
}

/*
 * Parses an address as it is written, IPv4-mapped ones left as IPv6;
 * returns 0, or -1 with a reason in err.
 */
static int
addr_parse_text(const char *text, struct ip_addr *out, char *err,
    size_t errlen)
{
	char	quoted[ADDR_QUOTE_MAX * 4 + 8];
	int	family;

	memset(out, 0, sizeof(*out));
	addr_quote(text, quoted, sizeof(quoted));
	if (*text == '\0') {
		snprintf(err, errlen, "empty address");
		return -1;
	}
	/* Scoped addresses name an interface of one host: no use in IPAM. */
	if (strchr(text, '%') != NULL) {
		snprintf(err, errlen, "%s: a zone index (%%...) is not "
		    "allowed in an address", quoted);
		return -1;
	}
	if (strchr(text, '/') != NULL) {
		snprintf(err, errlen, "%s is a prefix, not a single address",
		    quoted);
		return -1;
	}
	family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(family, text, out->bytes) != 1) {
		snprintf(err, errlen, "%s is not an IPv4 or IPv6 address",
		    quoted);
		memset(out, 0, sizeof(*out));
		return -1;
	}
	out->family = family;
	return 0;
}

/*
 * Parses an IPv4 or IPv6 address; an IPv4-mapped IPv6 address comes out
 * as the IPv4 address, so that one address has one form.  Returns 0, or
 * -1 with a reason in err.
 */
int
addr_parse(const char *text, struct ip_addr *out, char *err, size_t errlen)
{
	if (addr_parse_text(text, out, err, errlen) == -1)
		return -1;
	addr_unmap(out);
	return 0;
}

/*
 * Writes an IPv6 address as RFC 5952 section 4 says: groups in lower-case
 * hex without leading zeros, the longest run of two or more zero groups
 * (the first of equal runs) as "::", and no dotted quad (glibc's
 * inet_ntop writes ::/96 as "::10.0.0.5" and PostgreSQL ::2 as
 * "::0.0.0.2"; Python, Go and RFC 5952 write "::a00:5" and "::2").  The
 * same text whatever the C library, since a mark's Kafka key must be it.
 */
static void
addr_format_v6(const uint8_t bytes[16], char *buf, size_t buflen)
{
	unsigned	groups[8];
	int		i, best = -1, best_len = 0, run = -1, len = 0;
	size_t		at = 0;

	for (i = 0; i < 8; i++) {
		groups[i] = (unsigned)bytes[2 * i] << 8 | bytes[2 * i + 1];
		if (groups[i] == 0) {
			if (run < 0)
				run = i;
			len = i - run + 1;
			if (len > best_len) {
				best = run;
				best_len = len;
			}
		} else
			run = -1;
	}
	if (best_len < 2)
		best = -1;
	buf[0] = '\0';
	for (i = 0; i < 8 && at < buflen; i++) {
		if (i == best) {
			at += (size_t)snprintf(buf + at, buflen - at, "::");
			i += best_len - 1;
			continue;
		}
		at += (size_t)snprintf(buf + at, buflen - at, "%s%x",
		    i > 0 && i != best + best_len ? ":" : "", groups[i]);
	}
}

/* Writes the canonical text form of an address into buf. */
void
addr_format(const struct ip_addr *addr, char *buf, size_t buflen)
{
	char	text[INET6_ADDRSTRLEN];

	if (buflen == 0)
		return;
	if (addr->family == AF_INET6) {
		addr_format_v6(addr->bytes, text, sizeof(text));
		snprintf(buf, buflen, "%s", text);
		return;
	}
	if (addr->family != AF_INET ||
	    inet_ntop(addr->family, addr->bytes, text, sizeof(text)) == NULL) {
		snprintf(buf, buflen, "?");
		return;
	}
	snprintf(buf, buflen, "%s", text);
}

/* Orders addresses: IPv4 before IPv6, then by value. */
int
addr_compare(const struct ip_addr *a, const struct ip_addr *b)
{
	int	cmp;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	cmp = memcmp(a->bytes, b->bytes, addr_width(a));
	return cmp < 0 ? -1 : cmp > 0;
}

/* Number of bytes an address of this family uses (4 or 16). */
size_t
addr_width(const struct ip_addr *addr)
{
	return addr->family == AF_INET ? 4 : 16;
}

/* Adds one to an address; returns false when it wraps past the last one. */
bool
addr_increment(struct ip_addr *addr)
{
	size_t	i = addr_width(addr);

	while (i-- > 0) {
		if (++addr->bytes[i] != 0)
			return true;
	}
	return false;
}

/* Subtracts one from an address; returns false when it wraps below zero. */
bool
addr_decrement(struct ip_addr *addr)
{
	size_t	i = addr_width(addr);

	while (i-- > 0) {
		if (addr->bytes[i]-- != 0)
			return true;
	}
	return false;
}

/* Number of address bits of the family: 32 or 128. */
static int
addr_bits(const struct ip_addr *addr)
{
	return (int)addr_width(addr) * 8;
}

/* Clears (or, with ones, sets) every bit of addr after the first length. */
static void
addr_fill_host_bits(struct ip_addr *addr, int length, bool ones)
{
	int	i, bits = addr_bits(addr);

	for (i = length; i < bits; i++) {
		uint8_t	mask = (uint8_t)(0x80 >> (i % 8));

		if (ones)
			addr->bytes[i / 8] |= mask;
		else
			addr->bytes[i / 8] &= (uint8_t)~mask;
	}
}

/*
 * Splits "address/length" into the address as written (IPv4-mapped ones
 * left as IPv6) and the length, a number from 0 to the family's bits
 * without sign, spaces or leading zeros.  Returns 0, or -1 with err
 * filled and what gives the reason ("a prefix", "an inet value").
 */
static int
addr_parse_with_length(const char *text, const char *what,
    struct ip_addr *addr, int *length, char *err, size_t errlen)
{
	char		 quoted[ADDR_QUOTE_MAX * 4 + 8];
	char		 addrtext[ADDR_TEXT_MAX];
	const char	*slash, *p;
	size_t		 addrlen;

	memset(addr, 0, sizeof(*addr));
	*length = 0;
	addr_quote(text, quoted, sizeof(quoted));
	if ((slash = strchr(text, '/')) == NULL) {
		snprintf(err, errlen, "%s is not %s: the /length is "
		    "missing (for example 192.168.1.0/24)", quoted, what);
		return -1;
	}
	addrlen = (size_t)(slash - text);
	if (addrlen == 0 || addrlen >= sizeof(addrtext)) {
		snprintf(err, errlen, "%s is not %s: the address "
		    "before / is %s", quoted, what, addrlen == 0 ? "missing" :
		    "too long");
		return -1;
	}
	memcpy(addrtext, text, addrlen);
	addrtext[addrlen] = '\0';
	if (addr_parse_text(addrtext, addr, err, errlen) == -1) {
		snprintf(err, errlen, "%s is not %s: the part before / "
		    "is not an IPv4 or IPv6 address%s", quoted, what,
		    strchr(addrtext, '%') != NULL ? " (a zone index, %..., is "
		    "not allowed)" : "");
		return -1;
	}
	/* Digits only: no sign, no spaces, at most three of them. */
	for (p = slash + 1; *p >= '0' && *p <= '9' && p - slash <= 3; p++)
		*length = *length * 10 + (*p - '0');
	if (p == slash + 1 || *p != '\0' || *length > addr_bits(addr)) {
		snprintf(err, errlen, "%s is not %s: the length after / "
		    "must be a number from 0 to %d", quoted, what,
		    addr_bits(addr));
		goto fail;
	}
	/* "/024" is read as 24 by some tools and as octal 20 by others. */
	if (slash[1] == '0' && p - slash > 2) {
		snprintf(err, errlen, "%s is not %s: the length after / has "
		    "a leading zero", quoted, what);
		goto fail;
	}
	return 0;
fail:
	memset(addr, 0, sizeof(*addr));
	*length = 0;
	return -1;
}

/*
 * Parses "a.b.c.d/n" or "x::/n"; a prefix with host bits set is refused,
 * as is a missing or out-of-range length.  An IPv4-mapped prefix
 * (::ffff:a.b.c.d/n, n from 96) comes out as the IPv4 prefix; a shorter
 * one reaches beyond the mapped addresses and is refused.  Returns 0 or
 * -1 with err filled.
 */
int
prefix_parse(const char *text, struct ip_prefix *out, char *err,
    size_t errlen)
{
	char		quoted[ADDR_QUOTE_MAX * 4 + 8], fixed[ADDR_TEXT_MAX];
	struct ip_addr	network;

	memset(out, 0, sizeof(*out));
	if (addr_parse_with_length(text, "a prefix", &out->addr, &out->length,
	    err, errlen) == -1)
		return -1;
	addr_quote(text, quoted, sizeof(quoted));
	network = out->addr;
	if (addr_unmap(&network)) {
		if (out->length < 96) {
			snprintf(err, errlen, "%s is an IPv4-mapped prefix "
			    "shorter than /96: it reaches beyond the "
			    "IPv4-mapped addresses (write the IPv4 prefix)",
			    quoted);
			goto fail;
		}
		out->addr = network;
		out->length -= 96;
	}
	network = out->addr;
	addr_fill_host_bits(&network, out->length, false);
	if (addr_compare(&network, &out->addr) != 0) {
		struct ip_prefix	suggestion = { network, out->length };

		prefix_format(&suggestion, fixed, sizeof(fixed));
		snprintf(err, errlen, "%s has host bits set (did you mean "
		    "%s?)", quoted, fixed);
		goto fail;
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/*
 * Parses PostgreSQL's inet text: an address, or an address with a
 * /length (its netmask, "10.10.2.71/24").  The address comes out as
 * host() gives it, the length dropped, IPv4-mapped ones as IPv4.
 * Returns 0, or -1 with a reason in err.
 */
int
addr_parse_inet(const char *text, struct ip_addr *out, char *err,
    size_t errlen)
{
	int	length;

	if (strchr(text, '/') == NULL)
		return addr_parse(text, out, err, errlen);
	if (addr_parse_with_length(text, "an inet value", out, &length, err,
	    errlen) == -1)
		return -1;
	addr_unmap(out);
	return 0;
}

/* Writes the canonical text form of a prefix into buf. */
void
prefix_format(const struct ip_prefix *prefix, char *buf, size_t buflen)
{
	char	text[ADDR_TEXT_MAX];

	addr_format(&prefix->addr, text, sizeof(text));
	snprintf(buf, buflen, "%.45s/%d", text, prefix->length);
}

/* Tells whether the prefix contains the address (same family, same bits). */
bool
prefix_contains(const struct ip_prefix *prefix, const struct ip_addr *addr)
{
	struct ip_addr	masked;

	if (prefix->addr.family != addr->family)
		return false;
	masked = *addr;
	addr_fill_host_bits(&masked, prefix->length, false);
	return memcmp(masked.bytes, prefix->addr.bytes, addr_width(addr)) == 0;
}

/* Tells whether outer contains all of inner (inner is as long or longer). */
bool
prefix_covers(const struct ip_prefix *outer, const struct ip_prefix *inner)
{
	return outer->length <= inner->length &&
	    prefix_contains(outer, &inner->addr);
}

/* The first address of a prefix: its network address. */
void
prefix_first(const struct ip_prefix *prefix, struct ip_addr *out)
{
	*out = prefix->addr;
	addr_fill_host_bits(out, prefix->length, false);
}

/* The last address of a prefix: all host bits set. */
void
prefix_last(const struct ip_prefix *prefix, struct ip_addr *out)
{
	*out = prefix->addr;
	addr_fill_host_bits(out, prefix->length, true);
}

/*
 * Number of addresses from first to last inclusive, saturated at
 * UINT64_MAX (an IPv6 range can be far larger).  A reversed range or one
 * that mixes families holds none.
 */
uint64_t
addr_range_size(const struct ip_addr *first, const struct ip_addr *last)
{
	uint8_t		diff[16];
	size_t		i, width;
	unsigned	borrow = 0;
	uint64_t	size = 0;

	if (first->family != last->family || addr_compare(first, last) > 0)
		return 0;
	/* Big-endian subtraction last - first, byte by byte from the end. */
	width = addr_width(first);
	for (i = width; i-- > 0;) {
		unsigned	a = last->bytes[i];
		unsigned	b = first->bytes[i] + borrow;

		borrow = a < b;
		diff[i] = (uint8_t)(a + (borrow ? 256 : 0) - b);
	}
	for (i = 0; i < width; i++) {
		if (size > (UINT64_MAX >> 8))
			return UINT64_MAX;
		size = (size << 8) | diff[i];
	}
	return size == UINT64_MAX ? UINT64_MAX : size + 1;
}
