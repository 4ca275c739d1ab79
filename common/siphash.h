/* SipHash-2-4: a keyed hash, for tables whose keys a client chooses. */
#ifndef IPAM_COMMON_SIPHASH_H
#define IPAM_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* Reads 8 bytes as a little-endian 64-bit number. */
static inline uint64_t
siphash_word(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	    (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	    (uint64_t)p[7] << 56;
}

#define SIPHASH_ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound over the four words of the state. */
static inline void
siphash_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SIPHASH_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SIPHASH_ROTL(v[2], 32);
}

/*
 * SipHash-2-4 of len bytes under a 16-byte key (Aumasson and Bernstein,
 * 2012): without the key, nobody can choose inputs that collide.
 */
static inline uint64_t
siphash24(const unsigned char key[16], const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	uint64_t k0 = siphash_word(key), k1 = siphash_word(key + 8);
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
	    k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
	uint64_t m, last = (uint64_t)len << 56;
	size_t i, tail = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = siphash_word(p + i);
		v[3] ^= m;
		siphash_round(v);
		siphash_round(v);
		v[0] ^= m;
	}
	for (i = 0; i < tail; i++)
		last |= (uint64_t)p[len - tail + i] << (8 * i);
	v[3] ^= last;
	siphash_round(v);
	siphash_round(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		siphash_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

#undef SIPHASH_ROTL

#endif
