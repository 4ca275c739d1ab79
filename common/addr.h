/* Parsing, formatting and arithmetic of IPv4/IPv6 addresses and prefixes. */
#ifndef IPAM_COMMON_ADDR_H
#define IPAM_COMMON_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An address of either family; bytes are in network order, IPv4 uses 4. */
struct ip_addr {
	int	family;		/* AF_INET or AF_INET6 */
	uint8_t	bytes[16];
};

/* A prefix (CIDR block) whose host bits are all zero. */
struct ip_prefix {
	struct ip_addr	addr;
	int		length;
};

/* Longest text form of an address or a prefix, with the terminating NUL. */
#define ADDR_TEXT_MAX	64

/*
 * Parses an IPv4 or IPv6 address; an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) comes out as the IPv4 address.  Returns 0, or -1 with
 * a reason in err.
 */
int	addr_parse(const char *text, struct ip_addr *out, char *err, size_t errlen);

/*
 * Parses PostgreSQL's inet text: an address, with or without a /length
 * (its netmask); the address comes out as host() gives it, IPv4-mapped
 * ones as IPv4.  Returns 0, or -1 with a reason in err.
 */
int	addr_parse_inet(const char *text, struct ip_addr *out, char *err,
	    size_t errlen);

/* Writes the canonical text form of an address into buf. */
void	addr_format(const struct ip_addr *addr, char *buf, size_t buflen);

/* Orders addresses: IPv4 before IPv6, then by value. */
int	addr_compare(const struct ip_addr *a, const struct ip_addr *b);

/* Number of bytes an address of this family uses (4 or 16). */
size_t	addr_width(const struct ip_addr *addr);

/* Adds one to an address; returns false when it wraps past the last one. */
bool	addr_increment(struct ip_addr *addr);

/* Subtracts one from an address; returns false when it wraps below zero. */
bool	addr_decrement(struct ip_addr *addr);

/*
 * Parses "a.b.c.d/n" or "x::/n"; a prefix with host bits set is refused,
 * as is a missing, out-of-range or zero-led length.  An IPv4-mapped
 * prefix of /96 or longer comes out as the IPv4 prefix; a shorter one is
 * refused.  Returns 0 or -1 with err filled.
 */
int	prefix_parse(const char *text, struct ip_prefix *out, char *err,
	    size_t errlen);

/* Writes the canonical text form of a prefix into buf. */
void	prefix_format(const struct ip_prefix *prefix, char *buf, size_t buflen);

/* Tells whether the prefix contains the address (same family, same bits). */
bool	prefix_contains(const struct ip_prefix *prefix,
	    const struct ip_addr *addr);

/* Tells whether outer contains all of inner (inner is as long or longer). */
bool	prefix_covers(const struct ip_prefix *outer,
	    const struct ip_prefix *inner);

/* The first and last address of a prefix. */
void	prefix_first(const struct ip_prefix *prefix, struct ip_addr *out);
void	prefix_last(const struct ip_prefix *prefix, struct ip_addr *out);

/*
 * Number of addresses from first to last inclusive, saturated at
 * UINT64_MAX (an IPv6 range can be far larger).
 */
uint64_t addr_range_size(const struct ip_addr *first,
	    const struct ip_addr *last);

#endif
