/* FNV-1a, 64 bits: the daemon's one non-cryptographic hash. */
#ifndef IPAM_COMMON_FNV_H
#define IPAM_COMMON_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_START	1469598103934665603ULL

/* Hashes len bytes into hash (FNV1A64_START to begin with). */
static inline uint64_t
fnv1a64(uint64_t hash, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	size_t i;

	for (i = 0; i < len; i++) {
		hash ^= p[i];
		hash *= 1099511628211ULL;
	}
	return hash;
}

#endif
